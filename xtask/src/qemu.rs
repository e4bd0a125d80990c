//! Starting QEMU for a board (command line from its `[qemu]` section), with the
//! console on the terminal or captured, and a timeout that kills it.
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
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
    args.extend(["-nographic".into(), "-no-reboot".into()]);
    args.extend(q.args.iter().cloned());
    args.extend(["-kernel".into(), kernel.display().to_string()]);
    args
}

/// How a QEMU run ended.
#[derive(Debug)]
pub enum Outcome {
    Exited(ExitStatus),
    /// Killed after this many seconds.
    TimedOut(u64),
}

/// Waits for `child`, killing it after `timeout`.
fn wait(child: &mut Child, timeout: Option<Duration>) -> Result<Outcome> {
    wait_polling(child, timeout, || {})
}

/// As [`wait`], calling `poll` every 50 ms meanwhile.
fn wait_polling(
    child: &mut Child,
    timeout: Option<Duration>,
    mut poll: impl FnMut(),
) -> Result<Outcome> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(Outcome::Exited(status));
        }
        poll();
        if let Some(limit) = timeout {
            if start.elapsed() >= limit {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Outcome::TimedOut(limit.as_secs()));
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs QEMU with the console on this terminal (stdin inherited).
pub fn run_interactive(
    program: &str,
    args: &[String],
    timeout: Option<Duration>,
) -> Result<Outcome> {
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    wait(&mut child, timeout)
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
    let mut child = Command::new(program)
        .args(args)
        .stdin(if typing.is_some() {
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
        readers.push(pump(out, buf.clone(), file.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(pump(err, buf.clone(), file.clone()));
    }
    let mut stdin = child.stdin.take();
    let mut typed = false;
    let outcome = wait_polling(&mut child, Some(timeout), || {
        let Some(t) = &typing else { return };
        if typed {
            return;
        }
        let seen = buf
            .lock()
            .map(|b| contains(&b, t.after.as_bytes()))
            .unwrap_or(false);
        if let (true, Some(input)) = (seen, stdin.as_mut()) {
            typed = input
                .write_all(t.input)
                .and_then(|()| input.flush())
                .is_ok();
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
    fn captured_run_and_timeout() {
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
