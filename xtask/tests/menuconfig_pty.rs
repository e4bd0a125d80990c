//! End-to-end test of `cargo xtask menuconfig`: the built xtask binary runs in a
//! pseudo-terminal (80x24) on a scratch copy of the repository's configs
//! (`--root`), so the developer's own `.build.toml` is never touched. Keys are typed
//! as a terminal sends them and the screen is read back through a terminal
//! emulator (vt100).
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

const ROWS: NonZeroU16 = NonZeroU16::new(24).unwrap();
const COLS: NonZeroU16 = NonZeroU16::new(80).unwrap();
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the repository")
        .to_path_buf()
}

/// A scratch directory with a copy of `configs/` and no `.build.toml`.
fn scratch(tag: &str) -> PathBuf {
    let root =
        std::env::temp_dir().join(format!("xtask-menuconfig-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["configs/board", "configs/vms"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            std::fs::copy(e.path(), root.join(dir).join(e.file_name())).unwrap();
        }
    }
    root
}

/// A program running in a pseudo-terminal, its screen and everything it wrote.
struct Session {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    _master: Box<dyn MasterPty + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Session {
    fn start(cmd: CommandBuilder) -> Session {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS.get(),
                cols: COLS.get(),
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("cannot open a pseudo-terminal");
        let child = pair.slave.spawn_command(cmd).expect("cannot start xtask");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (screen.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().process(&buf[..n]);
                r.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Session {
            child,
            writer,
            _master: pair.master,
            screen,
            raw,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }

    /// Waits until the screen shows `text`.
    fn wait_for(&self, text: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.contents().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {text:?}; the screen:\n{}",
            self.contents()
        );
    }

    /// Types keys, then gives the UI a moment (a lone Esc must not merge with the
    /// next key into Alt+key).
    fn keys(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Waits for the program to end; returns whether it exited with status 0.
    fn wait_exit(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < STEP_TIMEOUT {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader take the last output.
                std::thread::sleep(Duration::from_millis(200));
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("xtask did not exit; the screen:\n{}", self.contents());
    }
}

fn xtask(root: &Path) -> CommandBuilder {
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["menuconfig", "--root"]);
    cmd.arg(root);
    cmd.cwd(repo());
    cmd.env("TERM", "xterm-256color");
    cmd
}

const UP: &str = "\x1b[A";

#[test]
fn change_log_level_and_feature_save_and_quit() {
    let root = scratch("edit");
    let default = std::fs::read_to_string(root.join("configs/board/qemu-aarch64.toml")).unwrap();
    let mut s = Session::start(xtask(&root));
    s.wait_for("Build configuration", START_TIMEOUT);
    s.wait_for(
        "did not exist: created it from configs/board/qemu-aarch64.toml",
        STEP_TIMEOUT,
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".build.toml")).unwrap(),
        default
    );

    // The log level: search, jump to it, choose the level above Info.
    s.keys("/");
    s.wait_for("Search settings", STEP_TIMEOUT);
    s.keys("log\r");
    s.wait_for("Settings matching \"log\"", STEP_TIMEOUT);
    s.keys("\r");
    s.wait_for("menuconfig: .build.toml > Build ", STEP_TIMEOUT);
    s.keys("\r");
    s.wait_for("(*) Info", STEP_TIMEOUT);
    s.keys(UP);
    s.keys("\r");
    s.wait_for("log             Debug", STEP_TIMEOUT);
    s.wait_for("[modified]", STEP_TIMEOUT);

    // The feature: search, jump, untick it in the checklist.
    s.keys("/features\r");
    s.wait_for("Settings matching \"features\"", STEP_TIMEOUT);
    s.keys("\r\r");
    s.wait_for("[x] semihosting-exit", STEP_TIMEOUT);
    s.wait_for("[x] s2-page-mappings", STEP_TIMEOUT);
    s.keys(" ");
    s.wait_for("[ ] s2-page-mappings", STEP_TIMEOUT);
    s.keys("\r");
    s.wait_for("features        semihosting-exit", STEP_TIMEOUT);

    s.keys("s");
    s.wait_for("saved .build.toml", STEP_TIMEOUT);
    s.wait_for("[saved]", STEP_TIMEOUT);
    s.keys("q");
    assert!(s.wait_exit(), "xtask failed:\n{}", s.output());

    let out = s.output();
    assert!(out.contains("\x1b[?1049l"), "the alternate screen was left");
    assert!(out.contains("xtask: created .build.toml from configs/board/qemu-aarch64.toml"));
    assert!(out.contains("xtask: .build.toml: no unsaved changes"));

    let after = std::fs::read_to_string(root.join(".build.toml")).unwrap();
    let changed: Vec<(&str, &str)> = default
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(default.lines().count(), after.lines().count());
    assert_eq!(
        changed,
        vec![
            (
                "features = [\"semihosting-exit\", \"s2-page-mappings\"]",
                "features = [\"semihosting-exit\"]"
            ),
            ("log = \"Info\"", "log = \"Debug\""),
        ],
        "exactly log and features changed; the file is now:\n{after}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_panic_gives_the_terminal_back() {
    let root = scratch("panic");
    let mut cmd = CommandBuilder::new("sh");
    cmd.arg("-c");
    cmd.arg("\"$0\" menuconfig --root \"$1\"; echo \"exit=$?\"; stty -a");
    cmd.arg(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg(&root);
    cmd.cwd(repo());
    cmd.env("TERM", "xterm-256color");
    cmd.env("XTASK_MENUCONFIG_TEST_PANIC", "1");
    let mut s = Session::start(cmd);
    let start = Instant::now();
    while start.elapsed() < START_TIMEOUT && s.child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    s.wait_exit();
    let out = s.output();
    let left = out
        .find("\x1b[?1049l")
        .expect("the alternate screen was left");
    let panicked = out.find("panicked").expect("the panic message is shown");
    assert!(
        left < panicked,
        "the terminal is restored before the message"
    );
    assert!(out.contains("exit=101"), "{out}");
    let stty = &out[out.find("exit=101").unwrap_or(0)..];
    assert!(
        stty.contains(" icanon") && stty.contains(" echo ") && !stty.contains("-icanon"),
        "raw mode was ended: {stty}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
