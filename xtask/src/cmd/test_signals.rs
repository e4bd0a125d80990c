//! Scenario `run-signals`: `cargo xtask run` leaves no QEMU behind and fails when QEMU
//! is ended early. It runs xtask's own executable (`run`, default board, `vm1` plus
//! `hold-vm`, a test guest that never stops) three times and, once `hold-vm` says it
//! is holding:
//!
//! 1. sends SIGTERM to xtask: xtask exits non-zero saying it was interrupted, and
//!    QEMU (pid from `xtask: QEMU started (pid N)`) is gone;
//! 2. sends SIGKILL to xtask (no handler can run): QEMU is gone all the same (it gets
//!    SIGTERM when its parent dies);
//! 3. types Ctrl-A x (QEMU's monitor: quit) on xtask's stdin: QEMU exits 0, but xtask
//!    exits non-zero because the hypervisor never said every VM stopped.
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::build::DEFAULT_BOARD;
use super::test::{log_path, verdict};
use crate::output::clean;
use crate::workspace::Workspace;

const VM1: &str = "configs/vms/testguest-aarch64-qemu-smp2-a.toml";
const HOLD_VM: &str = "xtask/tests/data/hold-vm.toml";
/// What `hold-vm` prints once it has passed its checks and holds.
const HOLDING: &str = "[hold-vm] testguest: holding";
/// How long the (possibly cold) build and the boot to `HOLDING` may take.
const START_LIMIT: Duration = Duration::from_secs(600);
/// How long xtask and QEMU may take to end after the signal or Ctrl-A x.
const END_LIMIT: Duration = Duration::from_secs(20);

/// One `xtask run` child and everything it printed so far.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Run {
    fn start(ws: &Workspace) -> Result<Run> {
        let exe = super::test::xtask_exe()?;
        let mut child = Command::new(&exe)
            .current_dir(&ws.root)
            .args([
                "run",
                "--config",
                DEFAULT_BOARD,
                "--vm",
                VM1,
                "--vm",
                HOLD_VM,
            ])
            .args(["--timeout", "300"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        let out = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = out.clone();
            thread::spawn(move || {
                let mut pipe = pipe;
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut o) = out.lock() {
                        o.extend_from_slice(&chunk[..n]);
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Run { child, stdin, out })
    }

    fn text(&self) -> String {
        let bytes = self.out.lock().map(|b| b.clone()).unwrap_or_default();
        clean(&String::from_utf8_lossy(&bytes))
    }

    /// Waits until the output has `HOLDING`; returns QEMU's pid.
    fn wait_holding(&mut self) -> Result<u32> {
        let start = Instant::now();
        loop {
            let text = self.text();
            if text.contains(HOLDING) {
                return qemu_pid(&text).context("no `xtask: QEMU started (pid N)` line");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("xtask ended ({status}) before `{HOLDING}`:\n{text}");
            }
            if start.elapsed() > START_LIMIT {
                let _ = self.child.kill();
                bail!("no `{HOLDING}` after {} s:\n{text}", START_LIMIT.as_secs());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for xtask to end; returns its exit code (None: killed by a signal).
    fn wait_end(&mut self) -> Result<Option<i32>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the readers take the last output.
                thread::sleep(Duration::from_millis(200));
                return Ok(status.code());
            }
            if start.elapsed() > END_LIMIT {
                let _ = self.child.kill();
                bail!(
                    "xtask still running {} s after it was told to end",
                    END_LIMIT.as_secs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The pid of `xtask: QEMU started (pid N)`.
pub fn qemu_pid(text: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("xtask: QEMU started (pid ")?
            .strip_suffix(')')?
            .parse()
            .ok()
    })
}

/// Whether process `pid` still runs (a zombie waiting to be reaped has ended).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Waits for `pid` to end; kills it (and says so) if it does not.
fn gone(pid: u32, problems: &mut Vec<String>, case: &str) {
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > END_LIMIT {
            problems.push(format!(
                "{case}: QEMU (pid {pid}) still runs after xtask ended"
            ));
            // SAFETY: kill(2) of the leftover QEMU this scenario started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn signal_case(ws: &Workspace, sig: i32, case: &str, log: &mut String) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut run = Run::start(ws)?;
    let qemu = run.wait_holding()?;
    // SAFETY: kill(2) of the xtask child this scenario started.
    unsafe { libc::kill(run.child.id() as i32, sig) };
    let code = run.wait_end()?;
    gone(qemu, &mut problems, case);
    let text = run.text();
    match (sig, code) {
        (libc::SIGKILL, _) => {}
        (_, Some(c)) if c != 0 => {
            let want = format!("interrupted by signal {sig}");
            if !text.contains(&want) {
                problems.push(format!("{case}: no `{want}` from xtask"));
            }
        }
        (_, c) => problems.push(format!("{case}: xtask exit code {c:?}, expected non-zero")),
    }
    log.push_str(&format!("==== {case}\n{text}\n"));
    Ok(problems)
}

fn monitor_quit_case(ws: &Workspace, log: &mut String) -> Result<Vec<String>> {
    let case = "Ctrl-A x";
    let mut problems = Vec::new();
    let mut run = Run::start(ws)?;
    let qemu = run.wait_holding()?;
    if let Some(stdin) = run.stdin.as_mut() {
        stdin
            .write_all(b"\x01x")
            .and_then(|_| stdin.flush())
            .context("cannot type Ctrl-A x to QEMU")?;
    }
    let code = run.wait_end()?;
    gone(qemu, &mut problems, case);
    let text = run.text();
    if code == Some(0) || code.is_none() {
        problems.push(format!(
            "{case}: xtask exit code {code:?}, expected non-zero"
        ));
    }
    if !text.contains("QEMU was ended before every VM stopped") {
        problems.push(format!(
            "{case}: xtask did not say QEMU ended before every VM stopped"
        ));
    }
    log.push_str(&format!("==== {case}\n{text}\n"));
    Ok(problems)
}

pub fn run_signals(ws: &Workspace, name: &str) -> Result<()> {
    crate::host_tools::ensure_qemu(crate::config::Arch::Aarch64)?;
    let mut log = String::new();
    let mut problems = Vec::new();
    problems.extend(signal_case(ws, libc::SIGTERM, "SIGTERM", &mut log)?);
    problems.extend(signal_case(ws, libc::SIGKILL, "SIGKILL", &mut log)?);
    problems.extend(monitor_quit_case(ws, &mut log)?);
    let path = log_path(ws, name)?;
    std::fs::write(&path, &log).with_context(|| format!("cannot write {}", path.display()))?;
    verdict(&problems, &log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_qemu_pid_line() {
        let text = "xtask: build took 0.8 s\nxtask: qemu-system-aarch64 -m 1G\n\
                    xtask: QEMU started (pid 4242)\nhv: ...";
        assert_eq!(qemu_pid(text), Some(4242));
        assert_eq!(qemu_pid("xtask: QEMU started (pid x)"), None);
        assert_eq!(qemu_pid(""), None);
    }

    #[test]
    fn a_reaped_or_missing_process_is_not_alive() {
        assert!(alive(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Unreaped it is a zombie: ended.
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid));
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
