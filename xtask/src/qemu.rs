//! Starting QEMU for a board (command line from its `[qemu]` section), with the
//! console on the terminal or captured, and a timeout that kills it.
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::board::QemuToml;
use crate::config::Board;

/// The QEMU binary for a board's architecture.
pub fn qemu_binary(board: &Board) -> String {
    format!("qemu-system-{}", board.arch.name())
}

/// The QEMU arguments that boot `kernel` (the raw hypervisor binary) on `board`.
pub fn qemu_args(board: &Board, q: &QemuToml, kernel: &Path) -> Vec<String> {
    let mut args = vec!["-machine".to_string(), q.machine.clone()];
    if let Some(cpu) = &q.cpu {
        args.extend(["-cpu".into(), cpu.clone()]);
    }
    args.extend(["-smp".into(), board.smp.to_string()]);
    if let Some(mem) = &q.memory {
        args.extend(["-m".into(), mem.clone()]);
    }
    args.extend(console_args(board));
    args.extend(q.args.iter().cloned());
    args.extend(["-kernel".into(), kernel.display().to_string()]);
    args
}

/// `-nographic`, and `-no-reboot` (a reset ends QEMU) unless the board stays in the
/// hypervisor shell when its VMs stop (`on_last_stop = "shell"`), whose `reboot`
/// must bring the machine back.
pub fn console_args(board: &Board) -> Vec<String> {
    let mut args = vec!["-nographic".to_string()];
    if board.on_last_stop != crate::config::board::OnLastStop::Shell {
        args.push("-no-reboot".into());
    }
    args
}

/// How a QEMU run ended.
#[derive(Debug)]
pub enum Outcome {
    Exited(ExitStatus),
    /// Killed after this many seconds.
    TimedOut(u64),
    /// xtask got this signal (SIGINT, SIGTERM, SIGHUP) and ended QEMU.
    Interrupted(i32),
}

/// The signals that make xtask end QEMU and stop (Ctrl-C outside QEMU's raw terminal,
/// `kill`, a closed terminal).
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// How many QEMU runs are being waited for, and the stop signal xtask got meanwhile.
static QEMU_RUNNING: AtomicUsize = AtomicUsize::new(0);
static RECEIVED: AtomicI32 = AtomicI32::new(0);
static HANDLERS: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Installs (once) the stop-signal handlers: while a QEMU run is waited for, a stop
/// signal is remembered for [`wait`], which ends QEMU; otherwise it removes the files
/// registered with [`crate::cleanup`] and does what it would do without a handler
/// (end xtask).
pub fn install_handlers() -> Result<()> {
    HANDLERS
        .get_or_init(|| {
            for sig in STOP_SIGNALS {
                // SAFETY: the handler only reads and writes atomics and calls
                // unlink(2) and emulate_default_handler, all async-signal-safe.
                unsafe {
                    signal_hook::low_level::register(sig, move || {
                        if QEMU_RUNNING.load(Ordering::SeqCst) > 0 {
                            RECEIVED.store(sig, Ordering::SeqCst);
                        } else {
                            crate::cleanup::remove_all();
                            let _ = signal_hook::low_level::emulate_default_handler(sig);
                        }
                    })
                }
                .map_err(|e| format!("cannot install a handler for signal {sig}: {e}"))?;
            }
            Ok(())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// While alive, a QEMU run is being waited for: stop signals are caught (instead of
/// ending xtask and leaving QEMU behind as an orphan) and remembered for [`wait`].
struct SignalGuard;

impl SignalGuard {
    fn install() -> Result<SignalGuard> {
        install_handlers()?;
        if QEMU_RUNNING.fetch_add(1, Ordering::SeqCst) == 0 {
            RECEIVED.store(0, Ordering::SeqCst);
        }
        Ok(SignalGuard)
    }

    /// The signal received, if any.
    fn received(&self) -> Option<i32> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        QEMU_RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A QEMU command whose process gets SIGTERM when xtask dies in any way (even
/// SIGKILL), so that no QEMU outlives the xtask that started it.
pub fn qemu_command(program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes two system
        // calls (prctl, getppid), both async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // xtask died before prctl took effect: do not start an orphan.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    cmd
}

/// Ends `child`: SIGTERM (QEMU then restores the terminal), SIGKILL after `grace`.
fn stop(child: &mut Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain kill(2) on the pid of our own child, which we have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for `child`, killing it after `timeout` or when xtask gets a stop signal.
fn wait(child: &mut Child, timeout: Option<Duration>, signals: &SignalGuard) -> Result<Outcome> {
    wait_polling(child, timeout, signals, || {})
}

/// As [`wait`], calling `poll` every 50 ms meanwhile.
fn wait_polling(
    child: &mut Child,
    timeout: Option<Duration>,
    signals: &SignalGuard,
    mut poll: impl FnMut(),
) -> Result<Outcome> {
    let start = Instant::now();
    loop {
        // The signal first: QEMU may have got it too (Ctrl-C to the process group
        // when the console is not a terminal) and exited on its own.
        if let Some(sig) = signals.received() {
            stop(child, Duration::from_secs(5));
            return Ok(Outcome::Interrupted(sig));
        }
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(Outcome::Exited(status));
        }
        poll();
        if let Some(limit) = timeout {
            if start.elapsed() >= limit {
                stop(child, Duration::from_secs(2));
                return Ok(Outcome::TimedOut(limit.as_secs()));
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The line the hypervisor prints when every VM has stopped, just before it powers
/// the machine off.
pub const ALL_STOPPED: &str = "hv: all VMs stopped:";

/// Watches a byte stream for a line containing a marker (across chunk boundaries).
#[derive(Default)]
pub struct LineWatch {
    line: Vec<u8>,
    seen: bool,
}

impl LineWatch {
    pub fn feed(&mut self, bytes: &[u8], marker: &str) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                self.line.clear();
                continue;
            }
            if self.line.len() < 4096 {
                self.line.push(b);
            }
            if !self.seen && self.line.ends_with(marker.as_bytes()) {
                self.seen = true;
            }
        }
    }

    pub fn seen(&self) -> bool {
        self.seen
    }
}

/// The line the hypervisor prints before the shell's `reboot`.
pub const REBOOTING: &str = "hv: rebooting";

/// How an interactive run ended, whether the hypervisor said every VM stopped, and
/// whether it rebooted the machine (which ends QEMU when it runs with -no-reboot).
#[derive(Debug)]
pub struct Interactive {
    pub outcome: Outcome,
    pub all_stopped: bool,
    pub rebooted: bool,
}

/// Runs QEMU with the console on this terminal (stdin inherited; its output passes
/// through xtask, which watches for [`ALL_STOPPED`]).
pub fn run_interactive(
    program: &str,
    args: &[String],
    timeout: Option<Duration>,
) -> Result<Interactive> {
    let signals = SignalGuard::install()?;
    let mut child = qemu_command(program, args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    println!("xtask: QEMU started (pid {})", child.id());
    let stdout = child.stdout.take().context("no output from QEMU")?;
    let pass = thread::spawn(move || {
        let mut watch = LineWatch::default();
        let mut reboot = LineWatch::default();
        let mut from = stdout;
        let mut out = std::io::stdout();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            watch.feed(&chunk[..n], ALL_STOPPED);
            reboot.feed(&chunk[..n], REBOOTING);
            let _ = out.write_all(&chunk[..n]);
            let _ = out.flush();
        }
        (watch.seen(), reboot.seen())
    });
    let outcome = wait(&mut child, timeout, &signals)?;
    let (all_stopped, rebooted) = pass.join().unwrap_or((false, false));
    Ok(Interactive {
        outcome,
        all_stopped,
        rebooted,
    })
}

/// Runs QEMU with stdin from /dev/null, capturing stdout and stderr (also written to
/// `log`). Returns how it ended and everything it printed.
pub fn run_captured(
    program: &str,
    args: &[String],
    timeout: Duration,
    log: &Path,
) -> Result<(Outcome, String)> {
    let (outcome, text, _) = run_typing(program, args, timeout, log, None)?;
    Ok((outcome, text))
}

/// What to type on QEMU's console: `input`, once the output holds `after`.
pub struct Typing<'a> {
    pub after: &'a str,
    pub input: &'a [u8],
}

/// As [`run_captured`], typing `typing.input` on QEMU's stdin as soon as its output
/// holds `typing.after` (each output chunk is looked at as it comes). The third
/// value says whether the input was typed.
pub fn run_typing(
    program: &str,
    args: &[String],
    timeout: Duration,
    log: &Path,
    typing: Option<Typing>,
) -> Result<(Outcome, String, bool)> {
    let mut typed = false;
    let typist = typing.as_ref().map(|t| {
        move |out: &[u8]| -> Option<Vec<u8>> {
            (!typed && contains(out, t.after.as_bytes())).then(|| {
                typed = true;
                t.input.to_vec()
            })
        }
    });
    let mut typist = typist;
    let (outcome, text, typed_any) = match typist.as_mut() {
        Some(f) => run_scripted(program, args, Some(timeout), log, false, Some(f))?,
        None => run_scripted(program, args, Some(timeout), log, false, None)?,
    };
    Ok((outcome, text, typed_any))
}

/// Given the whole console output so far, what to type on QEMU's stdin next.
pub type Typist<'a> = &'a mut dyn FnMut(&[u8]) -> Option<Vec<u8>>;

/// Runs QEMU with its output captured (into `log`, and onto this terminal with
/// `echo`); `typist`, given the whole output so far each time more comes, says
/// what to type on QEMU's stdin next. The third value says whether anything was
/// typed.
pub fn run_scripted(
    program: &str,
    args: &[String],
    timeout: Option<Duration>,
    log: &Path,
    echo: bool,
    mut typist: Option<Typist<'_>>,
) -> Result<(Outcome, String, bool)> {
    let signals = SignalGuard::install()?;
    let mut child = qemu_command(program, args)
        .stdin(if typist.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let file = Arc::new(Mutex::new(
        File::create(log).with_context(|| format!("cannot create {}", log.display()))?,
    ));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(pump(out, buf.clone(), file.clone(), echo));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(pump(err, buf.clone(), file.clone(), echo));
    }
    let mut stdin = child.stdin.take();
    let mut typed = false;
    let mut seen = 0;
    let outcome = wait_polling(&mut child, timeout, &signals, || {
        let Some(t) = typist.as_mut() else { return };
        // Asked again whenever more output came.
        let Ok(b) = buf.lock().map(|b| (b.len() != seen).then(|| b.clone())) else {
            return;
        };
        let Some(b) = b else { return };
        seen = b.len();
        while let Some(input) = t(&b) {
            if let Some(s) = stdin.as_mut() {
                typed |= s.write_all(&input).and_then(|()| s.flush()).is_ok();
            }
        }
    })?;
    drop(stdin);
    for r in readers {
        let _ = r.join();
    }
    let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
    Ok((outcome, String::from_utf8_lossy(&bytes).into_owned(), typed))
}

/// Whether `hay` holds `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn pump(
    mut from: impl Read + Send + 'static,
    buf: Arc<Mutex<Vec<u8>>>,
    log: Arc<Mutex<File>>,
    echo: bool,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut b) = buf.lock() {
                b.extend_from_slice(&chunk[..n]);
            }
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(&chunk[..n]);
            }
            if echo {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&chunk[..n]);
                let _ = out.flush();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Context, VmList};

    #[test]
    fn default_board_command_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let g = vec!["testguest".to_string()];
        let plan = load(
            root,
            &root.join("configs/board/qemu-aarch64.toml"),
            VmList::FromBoard,
            &Context { guest_crates: &g },
        )
        .unwrap();
        let q = plan.board.qemu.clone().unwrap();
        assert_eq!(qemu_binary(&plan.board), "qemu-system-aarch64");
        let args = qemu_args(&plan.board, &q, Path::new("/t/hypervisor.bin")).join(" ");
        assert_eq!(
            args,
            "-machine virt,virtualization=on,gic-version=3 -cpu cortex-a72 -smp 4 -m 4G \
             -nographic -no-reboot -nic none -semihosting-config enable=on,target=native -kernel /t/hypervisor.bin"
        );
    }

    #[test]
    fn riscv64_board_command_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let g = vec!["testguest".to_string()];
        let plan = load(
            root,
            &root.join("configs/board/qemu-riscv64.toml"),
            VmList::FromBoard,
            &Context { guest_crates: &g },
        )
        .unwrap();
        let q = plan.board.qemu.clone().unwrap();
        assert_eq!(qemu_binary(&plan.board), "qemu-system-riscv64");
        let args = qemu_args(&plan.board, &q, Path::new("/t/hypervisor.bin")).join(" ");
        assert_eq!(
            args,
            "-machine virt -cpu rv64 -smp 4 -m 4G -nographic -no-reboot -nic none -bios default \
             -kernel /t/hypervisor.bin"
        );
        assert_eq!(plan.vms.len(), 2);
        assert!(plan.vms.iter().all(|v| v.cpu_num == 2));
    }

    #[test]
    fn a_board_that_stays_in_the_shell_may_reboot() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let g = vec!["testguest".to_string()];
        let plan = load(
            root,
            &root.join("xtask/tests/data/qemu-riscv64-shell.toml"),
            VmList::HostOnly,
            &Context { guest_crates: &g },
        )
        .unwrap();
        let q = plan.board.qemu.clone().unwrap();
        let args = qemu_args(&plan.board, &q, Path::new("/t/hypervisor.bin"));
        assert!(args.contains(&"-nographic".to_string()), "{args:?}");
        assert!(!args.contains(&"-no-reboot".to_string()), "{args:?}");
    }

    /// The tests that wait for a child share the process's signal state.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn line_watch_finds_a_marker_split_across_chunks() {
        let mut w = LineWatch::default();
        w.feed(b"[vm1] 12 passed, 0 failed\r\nhv: all VM", ALL_STOPPED);
        assert!(!w.seen());
        w.feed(b"s stopped: 2 clean, 0 faulted\r\n", ALL_STOPPED);
        assert!(w.seen());
        let mut w = LineWatch::default();
        w.feed(b"hv: all VMs\nstopped: 2 clean\n", ALL_STOPPED);
        assert!(!w.seen(), "a marker broken by a newline is not that line");
    }

    #[test]
    fn a_stop_signal_ends_the_child_and_is_reported() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("xtask-qemu-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let pidfile = dir.join("pid");
        let args = vec![
            "-c".to_string(),
            format!("echo $$ > {}; exec sleep 60", pidfile.display()),
        ];
        let me = std::process::id() as i32;
        let killer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(500));
            // SAFETY: kill(2) of this very process with SIGTERM, which the run's
            // handler catches.
            unsafe { libc::kill(me, libc::SIGTERM) };
        });
        let start = Instant::now();
        let (outcome, _) = run_captured("sh", &args, Duration::from_secs(30), &log).unwrap();
        killer.join().unwrap();
        assert!(matches!(outcome, Outcome::Interrupted(15)), "{outcome:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the child {pid} is still there"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn captured_run_and_timeout() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("xtask-qemu-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let args = vec![
            "-c".to_string(),
            "echo out; echo err >&2; exit 3".to_string(),
        ];
        let (outcome, text) = run_captured("sh", &args, Duration::from_secs(30), &log).unwrap();
        assert!(matches!(outcome, Outcome::Exited(s) if s.code() == Some(3)));
        assert!(text.contains("out\n") && text.contains("err\n"), "{text:?}");
        assert_eq!(std::fs::read_to_string(&log).unwrap().len(), text.len());

        let args = vec!["-c".to_string(), "echo started; exec sleep 30".to_string()];
        let start = Instant::now();
        let (outcome, text) = run_captured("sh", &args, Duration::from_secs(1), &log).unwrap();
        assert!(matches!(outcome, Outcome::TimedOut(1)));
        assert!(start.elapsed() < Duration::from_secs(20));
        assert!(text.contains("started"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
