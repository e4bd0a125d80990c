//! The `cargo xtask test` scenarios of the hypervisor shell: a script typed on the
//! console (`shell_script`: Ctrl-\ to the shell, each command at its prompt, `#wait`
//! for what the console must show; never timed).
//!
//! - `restart-loop`: vm2 restarted 100 times from the shell while vm1 holds; `mem`
//!   prints the same frame count before and after, vm1 still runs, vm2 passes again.
//! - `shell-lifecycle`: board qemu-aarch64-uboot-shell (U-Boot, the card image,
//!   `on_last_stop = "shell"`) with Linux and vm2 bundled and vm3 on the card
//!   (`spin-masked`: it spins with its interrupts masked after its checks). The script
//!   lists the VMs, stops vm3 (only the hypervisor's interrupt can take it out),
//!   restarts it (its checks pass again, its RAM reads zero at boot), deletes it,
//!   creates it again from `vms/vm3.toml` on the card, and powers off.
//! - `riscv64-shell-lifecycle`: the same on qemu-riscv64 (five harts, Linux with 2
//!   vCPUs, all VMs built in); with no card there (a hypervisor without feature
//!   fs-vms), `vm create` must say that it cannot read VM configs.
//! - `disk-shell`, `riscv64-disk-shell`: a board with `on_last_stop = "shell"`
//!   booted with `-kernel` and the FAT32 disk `cargo xtask run` attaches: vm1 built
//!   in, vm3 only on the disk. The script deletes vm3, is refused `more/vm5.toml`
//!   (an unknown key) and `more/nothing.toml`, then creates `more/vm6.toml` (a VM
//!   only on the disk, never started at boot) and deletes it ten times between two
//!   `mem`s (equal: its files are freed with it and read again), shows that
//!   `log debug` prints a VM's exits when it stops and `log info` does not, and
//!   `reboot`s: the machine starts over and vm1 and vm3 pass again.
use anyhow::Result;

use super::build::DEFAULT_BOARD;
use super::test::{boot_scripted, check_summary, exit_status, failure, has_line, verdict};
use crate::config::Arch;
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

/// shell-lifecycle's board and VMs.
const SHELL_BOARD: &str = "xtask/tests/data/qemu-aarch64-uboot-shell.toml";
const SHELL_VMS: [&str; 3] = [
    "configs/vms/linux-aarch64-qemu-smp1.toml",
    VM2,
    "xtask/tests/data/shell-spin-vm.toml",
];
/// What vm3 says when it spins with its interrupts masked.
const SPINNING: &str = "[vm3] testguest: spinning with interrupts masked";

/// riscv64-shell-lifecycle's board and VMs.
const RISCV64_SHELL_BOARD: &str = "xtask/tests/data/qemu-riscv64-shell.toml";
const RISCV64_SHELL_VMS: [&str; 3] = [
    "configs/vms/linux-riscv64-qemu-smp2.toml",
    "configs/vms/testguest-riscv64-qemu-smp2-b.toml",
    "xtask/tests/data/shell-spin-vm-riscv64.toml",
];

/// The script of `shell-lifecycle` (`card`: vm3 is created again from the card;
/// else `vm create` has no file source to read from).
fn lifecycle_script(card: bool) -> Vec<Step> {
    let t = |s: &str| Step::Type(s.into());
    let w = |s: &str| Step::Wait(s.into());
    let create = if card {
        vec![
            t("vm create vms/nothing.toml"),
            t("vm create vms/vm3.toml"),
            w("VM 3 (vm3) started"),
            w(SPINNING),
        ]
    } else {
        vec![t("vm create vms/vm3.toml")]
    };
    let start = vec![
        t("help"),
        t("vm list"),
        w(SPINNING),
        t("vm stop 3"),
        w("VM 3 (vm3): its vCPUs left the guest, its devices are reset"),
        t("vm show 3"),
        t("vm restart 3"),
        w("VM 3 (vm3) restarted: boot 2"),
        w("[vm3] testguest: boot 2 of this VM"),
        w(SPINNING),
        t("cpus"),
        t("vm delete 3"),
        w("VM 3 (vm3) deleted"),
        t("cpus"),
        t("mem"),
    ];
    let end = vec![
        Step::Seen("hv: VM 1 (linux) powered off".into()),
        Step::Seen("hv: VM 2 (vm2) powered off".into()),
        t("vm list"),
        t("poweroff"),
    ];
    [start, create, end].concat()
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

pub fn shell_lifecycle(ws: &Workspace, name: &str) -> Result<()> {
    let card = super::test_fs::make_card_with(ws, SHELL_BOARD, &SHELL_VMS)?;
    let args = crate::image::qemu::image_args(&card.plan.board, &card.qemu, &card.image);
    let program = crate::qemu::qemu_binary(&card.plan.board);
    let (outcome, out, mut problems) =
        run_qemu_script(ws, name, &program, &args, lifecycle_script(true))?;
    exit_status(&outcome, true, &mut problems);
    lifecycle_problems(&out, true, &mut problems);
    verdict(&problems, &out)
}

/// Runs QEMU (`program` with `args`, made by the caller) with `script` typed on its
/// console: how it ended, the cleaned output, and a problem if the script did not
/// finish.
fn run_qemu_script(
    ws: &Workspace,
    name: &str,
    program: &str,
    args: &[String],
    script: Vec<Step>,
) -> Result<(crate::qemu::Outcome, String, Vec<String>)> {
    let log = super::test::log_path(ws, name)?;
    println!(
        "xtask: {program} {} (output in {})",
        args.join(" "),
        log.display()
    );
    let mut typist = Typist::new(script);
    let mut f = |out: &[u8]| typist.poll(out);
    let (outcome, raw, _) = crate::qemu::run_scripted(
        program,
        args,
        Some(super::test::QEMU_TIMEOUT),
        &log,
        false,
        Some(&mut f),
    )?;
    let mut problems = Vec::new();
    if let Some(what) = typist.waiting_for() {
        problems.push(format!("the shell script stopped waiting for {what}"));
    }
    Ok((outcome, clean(&raw), problems))
}

/// `riscv64-shell-lifecycle`: all VMs built in, no card.
pub fn riscv64_shell_lifecycle(ws: &Workspace, name: &str) -> Result<()> {
    let (outcome, out, mut problems) = run_script(
        ws,
        name,
        RISCV64_SHELL_BOARD,
        &RISCV64_SHELL_VMS,
        lifecycle_script(false),
    )?;
    exit_status(&outcome, true, &mut problems);
    lifecycle_problems(&out, false, &mut problems);
    verdict(&problems, &out)
}

/// What the output of `shell-lifecycle` must show (`card`: vm3 created again from
/// the card on CPU 1; else, on riscv64, vm3 on hart 4 and no file source).
fn lifecycle_problems(out: &str, card: bool, problems: &mut Vec<String>) {
    let mut wanted = vec![
        "hv: VM 3 (vm3) stopped from the shell",
        "VM 3 (vm3) restarted: boot 2",
        "VM 3 (vm3) deleted: ",
        "[linux] linux-up",
    ];
    if card {
        wanted.extend([
            "CPU 1 (0x1): free",
            "vm create vms/nothing.toml: refused",
            "vms/nothing.toml: no boot module holds it",
            "VM 3 (vm3) created: 1 vCPU(s) on CPU(s) [1]",
            "hv: all VMs stopped: 3 clean, 0 faulted (powered off from the shell",
        ]);
    } else {
        wanted.extend([
            "CPU 4 (0x4): free",
            "not supported in this build: VM configs are read only by a hypervisor built with feature fs-vms",
            "hv: all VMs stopped: 2 clean, 0 faulted (powered off from the shell",
        ]);
    }
    for w in wanted {
        if !has_line(out, w) {
            problems.push(format!("no line `{w}`"));
        }
    }
    check_summary(out, "vm2", problems);
    // vm3 passes on each of its boots: the first, the restart (boot 2: its memory
    // check reads its RAM as zero), and (from the card) the VM created again.
    let marks: &[&str] = if card {
        &[
            "[vm3] testguest: vCPU 0 up",
            "[vm3] testguest: boot 2 of this VM",
            "VM 3 (vm3) created",
        ]
    } else {
        &[
            "[vm3] testguest: vCPU 0 up",
            "[vm3] testguest: boot 2 of this VM",
        ]
    };
    for (i, m) in marks.iter().enumerate() {
        let Some(at) = out.find(m) else {
            problems.push(format!("no `{m}`"));
            continue;
        };
        let end = marks[i + 1..]
            .iter()
            .find_map(|n| out[at..].find(n).map(|e| at + e))
            .unwrap_or(out.len());
        let mut p = Vec::new();
        check_summary(&out[at..end], "vm3", &mut p);
        problems.extend(p.into_iter().map(|p| format!("vm3 after `{m}`: {p}")));
    }
}

/// What `disk-shell` runs: a board that stays in the shell, the built-in vm1 and
/// the fs VM vm3 (its config and kernel only on the disk).
pub struct DiskShell {
    pub board: &'static str,
    pub vm1: &'static str,
    pub fs_vm: &'static str,
    pub arch: Arch,
}

pub const DISK_SHELL: DiskShell = DiskShell {
    board: "xtask/tests/data/qemu-aarch64-shell.toml",
    vm1: "configs/vms/testguest-aarch64-qemu-smp2-a.toml",
    fs_vm: "xtask/tests/data/fs-vm.toml",
    arch: Arch::Aarch64,
};

pub const RISCV64_DISK_SHELL: DiskShell = DiskShell {
    board: RISCV64_SHELL_BOARD,
    vm1: "configs/vms/testguest-riscv64-qemu-smp2-a.toml",
    fs_vm: "xtask/tests/data/fs-vm-riscv64.toml",
    arch: Arch::Riscv64,
};

/// How many times `disk-shell` creates and deletes vm6 between its two `mem`s.
const DISK_CREATES: usize = 10;

/// The script of `disk-shell`.
fn disk_shell_script() -> Vec<Step> {
    let t = |s: &str| Step::Type(s.into());
    let w = |s: &str| Step::Wait(s.into());
    let mut s = vec![
        Step::Seen("hv: VM 3 (vm3) powered off".into()),
        t("vm delete 3"),
        w("VM 3 (vm3) deleted"),
        t("vm create more/vm5.toml"),
        w("vm create more/vm5.toml: refused"),
        t("vm create more/nothing.toml"),
        w("vm create more/nothing.toml: refused"),
        t("mem"),
    ];
    let create_delete = [
        t("vm create more/vm6.toml"),
        w("hv: VM 6 (vm6) powered off"),
        t("vm delete 6"),
        w("VM 6 (vm6) deleted"),
    ];
    for _ in 0..DISK_CREATES {
        s.extend(create_delete.iter().cloned());
    }
    s.push(t("mem"));
    // `log debug`: a VM that stops says its exits; `log info`: not any more.
    s.extend([
        t("log debug"),
        t("vm create more/vm6.toml"),
        w("hv: VM 6 (vm6) exits:"),
    ]);
    s.extend(create_delete[1..].iter().cloned());
    s.push(t("log info"));
    s.extend(create_delete.iter().cloned());
    // The machine starts over; with no VM running it gives the shell the keyboard.
    s.extend([
        t("reboot"),
        w("hv: rebooting"),
        w("hv: hypervisor "),
        w("hv: no VM is running"),
        Step::Shell,
        t("vm list"),
        t("poweroff"),
    ]);
    s
}

/// `disk-shell` and `riscv64-disk-shell`.
pub fn disk_shell(ws: &Workspace, name: &str, d: &DiskShell) -> Result<()> {
    use super::test_fs::{disk_config, load_vms};
    crate::host_tools::ensure_qemu(d.arch)?;
    let plan = load_vms(ws, d.board, &[d.vm1, d.fs_vm])?;
    let board = plan.board.clone();
    let q = board
        .qemu
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{}: no [qemu] section", d.board))?;
    // Outside vms/, so not started at boot: a VM only `vm create` starts, its kernel
    // vm3's file on the disk, and a config with an unknown key.
    let mut vm6 = disk_config(ws, d.fs_vm, 6, "vm6", |doc| {
        doc["kernel"]["kernel_path"] = toml_edit::value("/vms/vm3/testguest.bin");
    })?;
    vm6.path = "more/vm6.toml".into();
    let mut vm5 = disk_config(ws, d.fs_vm, 5, "vm5", |doc| {
        doc["base"]["bogus"] = toml_edit::value(1);
    })?;
    vm5.path = "more/vm5.toml".into();
    let run = crate::image::run_disk(ws, plan, &[vm5, vm6])?;
    let mut args = crate::qemu::qemu_args(&board, &q, &run.bin);
    args.extend(crate::image::qemu::disk_args(&run.disk));
    let program = crate::qemu::qemu_binary(&board);
    let (outcome, out, mut problems) =
        run_qemu_script(ws, name, &program, &args, disk_shell_script())?;
    exit_status(&outcome, true, &mut problems);
    disk_shell_problems(&out, &mut problems);
    verdict(&problems, &out)
}

/// What the output of `disk-shell` must show.
fn disk_shell_problems(out: &str, problems: &mut Vec<String>) {
    for w in [
        "VM 3 (vm3) deleted: ",
        "VM 5 (vm5) not started: more/vm5.toml: base.bogus: unknown field `bogus`",
        "more/nothing.toml: not on the disk",
        "hv: all VMs stopped: 2 clean, 0 faulted (powered off from the shell",
    ] {
        if !has_line(out, w) {
            problems.push(format!("no line `{w}`"));
        }
    }
    let mem = mem_lines(out);
    match mem.as_slice() {
        [before, after] if before == after => {}
        [before, after] => problems.push(format!(
            "`mem` printed {before} frames used before {DISK_CREATES} creates and deletes of vm6 and {after} after"
        )),
        _ => problems.push(format!("{} `mem` lines, expected 2", mem.len())),
    }
    // Every vm6 created (12 times) was read from the disk and passed.
    let count = |p: &dyn Fn(&str) -> bool| out.lines().filter(|l| p(l)).count();
    let created = count(&|l| l.contains("VM 6 (vm6) created: "));
    let passed = count(&|l| {
        l.strip_prefix("[vm6] ")
            .and_then(super::test::parse_summary)
            .is_some_and(|(n, f)| n > 0 && f == 0)
    });
    let want = DISK_CREATES + 2;
    if (created, passed) != (want, want) {
        problems.push(format!(
            "vm6 was created {created} times and passed {passed} times, expected {want}"
        ));
    }
    // `log debug` prints the exits of the one vm6 that stopped under it.
    let exits = count(&|l| l.starts_with("hv: VM 6 (vm6) exits:"));
    if exits != 1 {
        problems.push(format!(
            "{exits} `hv: VM 6 (vm6) exits:` lines: expected 1 (under `log debug` only)"
        ));
    }
    // After the reboot, the machine reads vm3 from the disk again; both VMs pass.
    match out.find("hv: rebooting") {
        Some(at) => {
            let again = &out[at..];
            for w in ["hv: hypervisor ", "hv: VM 3 (vm3): 2 vCPU(s)"] {
                if !has_line(again, w) {
                    problems.push(format!("no line `{w}` after the reboot"));
                }
            }
            for vm in ["vm1", "vm3"] {
                let mut p = Vec::new();
                check_summary(again, vm, &mut p);
                problems.extend(p.into_iter().map(|p| format!("after the reboot: {p}")));
            }
        }
        None => problems.push("no line `hv: rebooting`".into()),
    }
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
    fn the_lifecycle_checks_see_each_boot_of_vm3() {
        let mut p = Vec::new();
        lifecycle_problems(
            "[vm3] testguest: vCPU 0 up\n[vm3] 9 passed, 0 failed\n",
            true,
            &mut p,
        );
        assert!(
            p.iter().any(|p| p.contains("no `[vm3] testguest: boot 2")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.contains("no line `[linux] linux-up`")),
            "{p:?}"
        );
        assert!(
            !p.iter()
                .any(|p| p.contains("after `[vm3] testguest: vCPU 0 up`")),
            "{p:?}"
        );
    }

    #[test]
    fn the_disk_shell_script_creates_vm6_between_two_mems_and_reboots() {
        let s = disk_shell_script();
        let creates = s
            .iter()
            .filter(|x| **x == Step::Type("vm create more/vm6.toml".into()))
            .count();
        assert_eq!(creates, DISK_CREATES + 2);
        let at = |x: &Step| s.iter().position(|y| y == x).unwrap();
        assert!(at(&Step::Type("mem".into())) < at(&Step::Type("vm create more/vm6.toml".into())));
        assert!(at(&Step::Type("reboot".into())) < at(&Step::Shell));
        assert_eq!(s.last(), Some(&Step::Type("poweroff".into())));
    }

    #[test]
    fn the_disk_shell_checks_see_a_leak_and_a_missing_reboot() {
        let mut p = Vec::new();
        disk_shell_problems(
            "mem: 100 frames used, 9 free\nhv: VM 6 (vm6) exits: total 1\nmem: 101 frames used, 8 free\n",
            &mut p,
        );
        assert!(
            p.iter().any(|p| p.contains("100 frames used before")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.contains("hv: rebooting")), "{p:?}");
        assert!(
            p.iter().any(|p| p.contains("vm6 was created 0 times")),
            "{p:?}"
        );
        assert!(
            !p.iter().any(|p| p.contains("exits:")),
            "one exits line is right: {p:?}"
        );
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
