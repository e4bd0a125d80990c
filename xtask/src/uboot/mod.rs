//! `cargo xtask uboot`: boots a board through the U-Boot on its serial console,
//! without a card. xtask builds what `cargo xtask image` would put on the card (the
//! hypervisor, the board DTB, the files of `image_location = "fs"` VMs), opens the
//! serial line, stops U-Boot's autoboot at its prompt, sends each file with `loady`
//! (YMODEM, [`ymodem`]) or, when the board file has `[uboot.tftp]`, copies it to the
//! TFTP directory and runs `tftp`, types the rest of the boot script (the
//! `/chosen/hv-modules` nodes) and `booti`, then stays on the console.
//!
//! `--qemu` does the same with the board's QEMU (`[qemu]` with U-Boot as `bios`) on a
//! pseudo-terminal (`-serial pty`) instead of a real line: the `uboot-serial` scenario.
pub mod session;
pub mod ymodem;

#[cfg(test)]
mod tests;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::build::{load_plan, BuildOptions};
use crate::config::board::{QemuToml, TftpToml};
use crate::config::{Board, Plan};
use crate::image::script::Step;
use crate::image::{contents, Contents, ImageOptions};
use crate::qemu::qemu_binary;
use crate::workspace::Workspace;
use session::{Console, Left, Loader};

/// Default baud rate of a board's console.
pub const DEFAULT_BAUD: u32 = 115_200;
/// U-Boot's default prompt.
pub const DEFAULT_PROMPT: &str = "=> ";

/// `cargo xtask uboot` options.
#[derive(Clone, Debug, Default)]
pub struct UbootOptions {
    pub build: BuildOptions,
    /// Serial device (`--serial`), else the board's `[uboot] serial`.
    pub serial: Option<String>,
    /// Baud rate (`--baud`), else the board's `[uboot] baud`, else 115200.
    pub baud: Option<u32>,
    /// Boot the board's QEMU on a pseudo-terminal instead of a real line.
    pub qemu: bool,
    /// Give up (and stop QEMU) after this long.
    pub timeout: Option<Duration>,
}

/// How a session ended.
pub struct Ended {
    /// Everything read from the serial line.
    pub transcript: String,
    /// QEMU's exit status (`--qemu`): `Some(true)` when it exited 0.
    pub qemu_ok: Option<bool>,
    /// The session ran out of time.
    pub timed_out: bool,
}

/// `cargo xtask uboot`; returns whether the boot went through (and, with `--qemu`,
/// QEMU exited 0).
pub fn uboot(ws: &Workspace, opts: &UbootOptions) -> Result<bool> {
    let plan = load_plan(ws, &opts.build)?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let ended = boot(ws, plan, opts, None, interactive)?;
    if ended.timed_out {
        eprintln!("xtask: uboot: time is up");
        return Ok(false);
    }
    Ok(ended.qemu_ok.unwrap_or(true))
}

/// Builds, then boots the plan through U-Boot. `log`: also write the transcript
/// there (and not to stdout). `interactive`: forward this terminal's keys after
/// `booti` (Ctrl-] leaves).
pub fn boot(
    ws: &Workspace,
    plan: Plan,
    opts: &UbootOptions,
    log: Option<&Path>,
    interactive: bool,
) -> Result<Ended> {
    let start = Instant::now();
    let board = plan.board.clone();
    let cfg = board.uboot.clone().unwrap_or_default();
    // What cannot work is said before anything is built.
    if board.image.is_none() {
        bail!(
            "board {} has no [image] section: cargo xtask uboot boots what `cargo xtask image` \
             would put on the card, and needs its uboot_dram_base (where U-Boot's booti runs the \
             hypervisor); see configs/board/qemu-aarch64-uboot.toml",
            board.name
        );
    }
    let serial = match (opts.qemu, opts.serial.clone().or(cfg.serial.clone())) {
        (true, _) => None,
        (false, Some(s)) if !Path::new(&s).exists() => {
            bail!("no serial device {s} (the board's USB serial adapter is usually /dev/ttyUSB0)")
        }
        (false, Some(s)) => Some(s),
        (false, None) => bail!(
            "no serial line: give --serial DEVICE (e.g. /dev/ttyUSB0) or `serial` in the [uboot] \
             section of the board file {}, or --qemu to use the board's QEMU",
            board.shown
        ),
    };
    let qemu_cfg = match opts.qemu {
        true => Some(board.qemu.clone().with_context(|| {
            format!(
                "board {} has no [qemu] section: --qemu needs one (with `bios` = U-Boot)",
                board.name
            )
        })?),
        false => None,
    };
    let image_opts = ImageOptions {
        build: opts.build.clone(),
        ..ImageOptions::default()
    };
    let (board, contents) = contents(ws, plan, &image_opts, false)?;
    let loader = match &cfg.tftp {
        Some(t) => Loader::Tftp(tftp_setup(&ws.root, &board, t, &contents)?),
        None => Loader::Ymodem,
    };
    let prompt = cfg.prompt.clone().unwrap_or_else(|| DEFAULT_PROMPT.into());
    let baud = opts.baud.or(cfg.baud).unwrap_or(DEFAULT_BAUD);
    let sink: Box<dyn Write + Send> = match log {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let deadline = opts.timeout.map(|t| start + t);
    let mut qemu = None;
    let device = match (qemu_cfg, serial) {
        (Some(q), _) => {
            let (child, pty) = start_qemu(&ws.root, &board, &q)?;
            qemu = Some(child);
            pty
        }
        (None, Some(s)) => s,
        (None, None) => bail!("no serial line"),
    };
    let result = (|| -> Result<(String, Left)> {
        let port = session::open(&device, baud)?;
        println!("xtask: uboot: serial line {device} at {baud} baud; waiting for U-Boot's prompt {prompt:?}");
        let mut con = Console::new(port, sink, prompt, deadline);
        con.boot(&contents, &loader, &board)?;
        let left = con.stay(interactive && log.is_none())?;
        Ok((con.transcript(), left))
    })();
    let qemu_ok = match (qemu.as_mut(), &result) {
        // The boot failed (QEMU would sit at U-Boot's prompt), or the user left the
        // console: QEMU is stopped now.
        (Some(child), Err(_) | Ok((_, Left::ByKey | Left::TimedOut))) => {
            Some(stop_qemu(child, Some(Instant::now()))?)
        }
        (Some(child), Ok(_)) => Some(stop_qemu(child, deadline)?),
        (None, _) => None,
    };
    let (transcript, left) = result?;
    let timed_out = left == Left::TimedOut;
    Ok(Ended {
        transcript,
        qemu_ok,
        timed_out,
    })
}

/// Copies the files to `<dir>/<board>/` (`dir` relative to the repository root);
/// returns the commands that set U-Boot's network up and the directory prefix U-Boot
/// asks the server for.
fn tftp_setup(
    root: &Path,
    board: &Board,
    t: &TftpToml,
    contents: &Contents,
) -> Result<session::Tftp> {
    let dir = root.join(&t.dir).join(&board.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in &contents.files {
        let to = dir.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&to, &f.data).with_context(|| format!("cannot write {}", to.display()))?;
    }
    println!(
        "xtask: uboot: copied {} file(s) to {} for TFTP",
        contents.files.len(),
        dir.display()
    );
    Ok(session::tftp_commands(t, &board.name))
}

/// Starts the board's QEMU with U-Boot as firmware and the console on a new
/// pseudo-terminal; returns QEMU and the terminal's path.
fn start_qemu(root: &Path, board: &Board, q: &QemuToml) -> Result<(Child, String)> {
    crate::image::qemu::ensure_bios(q)?;
    crate::host_tools::ensure_qemu(board.arch)?;
    let program = qemu_binary(board);
    let args = qemu_pty_args(board, q);
    println!("xtask: {program} {}", args.join(" "));
    // QEMU dies with xtask (even on SIGKILL): no orphan after Ctrl-C.
    let mut child = crate::qemu::qemu_command(&program, &args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    // QEMU says `char device redirected to /dev/pts/N (label serial0)` on stdout or
    // stderr (versions differ); everything else it prints is passed on.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = Arc::new(Mutex::new(tx));
    let readers: Vec<Box<dyn std::io::Read + Send>> = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for r in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                match pty_path(&line) {
                    Some(p) => {
                        if let Ok(tx) = tx.lock() {
                            let _ = tx.send(p);
                        }
                    }
                    None => eprintln!("qemu: {line}"),
                }
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(p) => Ok((child, p)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("QEMU did not say which pseudo-terminal its serial line is on")
        }
    }
}

/// `char device redirected to /dev/pts/3 (label serial0)` -> `/dev/pts/3`.
pub fn pty_path(line: &str) -> Option<String> {
    let rest = line.split("redirected to ").nth(1)?;
    let path = rest.split_whitespace().next()?;
    path.starts_with("/dev/").then(|| path.to_string())
}

/// The board's QEMU command line with U-Boot as `-bios`, no card and no kernel, and
/// the serial console on a pseudo-terminal.
pub fn qemu_pty_args(board: &Board, q: &QemuToml) -> Vec<String> {
    let mut args = vec!["-machine".to_string(), q.machine.clone()];
    if let Some(cpu) = &q.cpu {
        args.extend(["-cpu".into(), cpu.clone()]);
    }
    args.extend(["-smp".into(), board.smp.to_string()]);
    if let Some(mem) = &q.memory {
        args.extend(["-m".into(), mem.clone()]);
    }
    args.extend(
        ["-display", "none", "-monitor", "none", "-no-reboot"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.extend(q.args.iter().cloned());
    if let Some(bios) = &q.bios {
        args.extend(["-bios".into(), bios.clone()]);
    }
    args.extend(["-serial".into(), "pty".into()]);
    args
}

/// Waits for QEMU to exit by itself (until `deadline`, else a few seconds: the line
/// closed, so it is exiting), then kills it; returns whether it exited 0.
fn stop_qemu(child: &mut Child, deadline: Option<Instant>) -> Result<bool> {
    let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(5));
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            println!("xtask: uboot: QEMU exited ({status})");
            return Ok(status.success());
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            println!("xtask: uboot: QEMU stopped (killed)");
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which file each load step names, with its bytes.
pub fn file_of<'a>(contents: &'a Contents, step: &Step) -> Option<&'a [u8]> {
    match step {
        Step::Load { file, .. } => contents
            .files
            .iter()
            .find(|f| &f.path == file)
            .map(|f| f.data.as_slice()),
        Step::Run(_) => None,
    }
}
