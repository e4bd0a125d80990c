//! The `cargo xtask test` scenarios of the hypervisor shell: a script typed on the
//! console (`shell_script`: Ctrl-\ to the shell, each command at its prompt, `#wait`
//! for what the console must show; never timed).
//!
//! - `restart-loop`: vm2 restarted 100 times from the shell while vm1 holds; `mem`
//!   prints the same frame count before and after, vm1 still runs, vm2 passes again.
use anyhow::Result;

use super::build::DEFAULT_BOARD;
use super::test::{boot_scripted, check_summary, exit_status, failure, has_line, verdict};
use crate::output::clean;
use crate::shell_script::{Step, Typist};
use crate::workspace::Workspace;

/// vm1: passes, then holds (never stops by itself).
const HOLD_VM: &str = "xtask/tests/data/shell-hold-vm.toml";
/// vm2: passes and powers itself off.
const VM2: &str = "configs/vms/testguest-aarch64-qemu-smp2-b.toml";
/// Restarts of `restart-loop`.
const RESTARTS: u32 = 100;

/// The script of `restart-loop`.
fn restart_loop_script() -> Vec<Step> {
    let mut s = vec![Step::Type("mem".into())];
    for k in 0..RESTARTS {
        s.push(Step::Type("vm restart 2".into()));
        s.push(Step::Wait(format!("VM 2 (vm2) restarted: boot {}", k + 2)));
    }
    s.push(Step::Wait(format!(
        "[vm2] testguest: boot {} of this VM",
        RESTARTS + 1
    )));
    s.push(Step::Wait("hv: VM 2 (vm2) powered off".into()));
    s.extend(["mem", "vm list", "poweroff"].map(|c| Step::Type(c.into())));
    s
}

/// Runs `script` on `board` with `vms`: the plan's VMs, how QEMU ended, the cleaned
/// output, and a problem if the script did not finish.
fn run_script(
    ws: &Workspace,
    name: &str,
    board: &str,
    vms: &[&str],
    script: Vec<Step>,
) -> Result<(crate::qemu::Outcome, String, Vec<String>)> {
    let mut typist = Typist::new(script);
    let mut f = |out: &[u8]| typist.poll(out);
    let (_, outcome, raw, _) = boot_scripted(ws, name, board, vms, None, Some(&mut f))?;
    let mut problems = Vec::new();
    if let Some(what) = typist.waiting_for() {
        problems.push(format!("the shell script stopped waiting for {what}"));
    }
    Ok((outcome, clean(&raw), problems))
}

/// The `mem: N frames used` numbers, in order.
pub fn mem_lines(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.split("mem: ").nth(1))
        .filter_map(|rest| rest.split(" frames used").next()?.trim().parse().ok())
        .collect()
}

pub fn restart_loop(ws: &Workspace, name: &str) -> Result<()> {
    let (outcome, out, mut problems) = run_script(
        ws,
        name,
        DEFAULT_BOARD,
        &[HOLD_VM, VM2],
        restart_loop_script(),
    )?;
    exit_status(&outcome, true, &mut problems);
    let mem = mem_lines(&out);
    match mem.as_slice() {
        [before, .., after] if before == after => {}
        [before, .., after] => problems.push(format!(
            "`mem` printed {before} frames used before the {RESTARTS} restarts and {after} after"
        )),
        _ => problems.push(format!("{} `mem` lines, expected 2", mem.len())),
    }
    let restarted = (2..=RESTARTS + 1)
        .filter(|k| has_line(&out, &format!("VM 2 (vm2) restarted: boot {k}")))
        .count();
    if restarted != RESTARTS as usize {
        problems.push(format!(
            "vm2 restarted {restarted} times, expected {RESTARTS}"
        ));
    }
    // vm1 ran through it all: it passed, never stopped, and `vm list` shows it running.
    check_summary(&out, "vm1", &mut problems);
    if has_line(&out, "hv: VM 1 (vm1) stopped") || has_line(&out, "hv: VM 1 (vm1) powered off") {
        problems.push("vm1 stopped".into());
    }
    let listed = out
        .lines()
        .rev()
        .find(|l| l.starts_with("1    vm1"))
        .unwrap_or("");
    if !listed.contains("running") {
        problems.push(format!("`vm list` does not show vm1 running: {listed:?}"));
    }
    // vm2's last boot passed its checks (RAM read zero at boot: the memory check).
    let last_boot = format!("[vm2] testguest: boot {} of this VM", RESTARTS + 1);
    match out.find(&last_boot) {
        Some(at) => check_summary(&out[at..], "vm2", &mut problems),
        None => problems.push(format!("no `{last_boot}` line")),
    }
    if !problems.is_empty() {
        return Err(failure(&problems, &out));
    }
    verdict(&problems, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_lines_are_read_in_order() {
        let out = "hv> mem\nmem: 1234 frames used, 99 free (4 KiB frames; 0 MiB free)\nx\nmem: 1240 frames used, 93 free\n";
        assert_eq!(mem_lines(out), [1234, 1240]);
    }

    #[test]
    fn the_restart_loop_script_waits_for_each_restart() {
        let s = restart_loop_script();
        let restarts = s
            .iter()
            .filter(|x| **x == Step::Type("vm restart 2".into()))
            .count();
        assert_eq!(restarts, RESTARTS as usize);
        assert_eq!(s.last(), Some(&Step::Type("poweroff".into())));
    }
}
