//! `cargo xtask test`: the host unit tests (`cargo test --workspace`) and the QEMU
//! integration scenarios, ending with one line `N passed, N failed`.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::build::{build, build_plan, BuildOptions, BuildOutput, DEFAULT_BOARD};
use crate::config::range::Range;
use crate::config::{Arch, Plan, Vm};
use crate::host_tools::ensure_qemu;
use crate::output::clean;
use crate::qemu::{qemu_args, qemu_binary, run_captured, run_scripted, Outcome, Typing};
use crate::workspace::{cargo, Workspace};

/// Time limit for one QEMU run.
pub(super) const QEMU_TIMEOUT: Duration = Duration::from_secs(300);

/// The scenarios, in the order they run.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "two-vms",
        "the default board: two test-guest VMs pass their checks, exit 0",
    ),
    (
        "two-vms-gicv2",
        "board qemu-aarch64-gicv2 (GICv2 host): two test-guest VMs with a GICv2 pass their checks, exit 0",
    ),
    (
        "fault-isolation",
        "a VM that reads outside its memory is stopped; the other VM finishes",
    ),
    (
        "bad-config",
        "a bad VM config (xtask/tests/data/bad-vm.toml: vCPU list, overlapping regions, unknown emu_type, an SGI as a UART interrupt, a PLIC on aarch64) is rejected with file, key and reason for each before any build",
    ),
    (
        "dt-passthrough",
        "an AxVisor-style VM (configs/vms/testguest-aarch64-qemu-smp2-dtpass.toml: flags 0xf, identity RAM at 0x8000_0000, passthrough_devices = [[\"/pl031@9010000\"]]) next to a test VM: the hypervisor resolves the path in its DTB, the guest reads the RTC's PrimeCell ids through the mapping; both pass, exit 0",
    ),
    (
        "console",
        "the VM with the keyboard prints a prompt without a line end: it must reach the console before anything is typed (the scenario types a line only once it sees the prompt, the guest echoes it); the other VM's colours (SGR) pass, its cursor movement, window title and carriage return do not (no forged `hv:` line); both pass, exit 0",
    ),
    (
        "run-signals",
        "`cargo xtask run` with a VM that never stops, ended by SIGTERM or SIGKILL to xtask: no QEMU is left; ended by Ctrl-A x (QEMU's monitor): xtask exits non-zero",
    ),
    (
        "linux-smp1",
        "Debian's arm64 Linux with 1 vCPU boots to its initramfs, reports 1 CPU, runs a command and powers off; exit 0",
    ),
    (
        "linux-smp2",
        "the same with 2 vCPUs (configs/vms/linux-aarch64-qemu-smp2.toml); the default board's CPU is a Cortex-A72",
    ),
    (
        "linux-smp4",
        "the same with 4 vCPUs, one per physical CPU",
    ),
    (
        "linux-cpu-max",
        "linux-smp2 on QEMU `-cpu max` (SVE, SME, pointer authentication, MTE, RAS, LOR...): the guest sees none of the features the hypervisor does not offer (sanitised ID registers), boots and powers off; exit 0",
    ),
    (
        "linux-cortex-a53",
        "linux-smp2 on a Cortex-A53 (`-cpu cortex-a53`)",
    ),
    (
        "linux-cortex-a76",
        "linux-smp2 on a Cortex-A76 (`-cpu cortex-a76`: ARMv8.2, RAS, SSBS, CSV2/CSV3)",
    ),
    (
        "linux-and-testguest",
        "Linux (2 vCPUs) and a test-guest VM (2 vCPUs) at the same time, each finishing; exit 0",
    ),
    (
        "linux-gicv2",
        "board qemu-aarch64-gicv2 (GICv2 host): Linux (2 vCPUs, GICv2) and a GICv2 test-guest VM at the same time, each finishing; exit 0",
    ),
    (
        "uboot-two-vms",
        "board qemu-aarch64-uboot: U-Boot (-bios) finds boot.scr on the card image of `cargo xtask image` (a virtio disk), boots the hypervisor; the two test VMs pass, exit 0",
    ),
    (
        "riscv64-two-vms",
        "board qemu-riscv64: two test-guest VMs pass their checks, exit 0",
    ),
    (
        "riscv64-no-sstc",
        "board qemu-riscv64 on a CPU without Sstc (-cpu rv64,sstc=false): the hypervisor emulates the guest timer; the two test VMs pass (timer-legacy included), exit 0",
    ),
    (
        "riscv64-fault-isolation",
        "qemu-riscv64: a VM that reads outside its memory is stopped; the other finishes",
    ),
    (
        "riscv64-reenter-start",
        "qemu-riscv64 with its first secondary hart started at the image entry `_start` and its second with a stale start argument (kernel feature test-reenter-start, as OpenSBI 1.1 sometimes does): one banner, the two test VMs pass, exit 0",
    ),
    (
        "x86_64-host",
        "board qemu-x86_64 with no VMs: the hypervisor starts from QEMU's PVH entry in long mode, prints on COM1, finds 4 CPUs (ACPI MADT) and its RAM (PVH memory map), and ends through isa-debug-exit with a failure status (no VM ran)",
    ),
    (
        "x86_64-two-vms",
        "board qemu-x86_64's own VMs: two x86_64 test guests (Multiboot, 2 vCPUs each, the second started with INIT-SIPI-SIPI, local APIC timer, COM1 interrupt through the I/O APIC) pass and power off through ACPI; exit 0",
    ),
    (
        "x86_64-fault-isolation",
        "qemu-x86_64: a VM that reads outside its memory is stopped; the other finishes",
    ),
    (
        "x86_64-vm-reset",
        "qemu-x86_64: a VM resets itself through port 0xCF9 and passes its checks again (RAM zero on the second boot); the other finishes",
    ),
    (
        "x86_64-linux",
        "qemu-x86_64: Debian's amd64 Linux (bzImage, 32-bit boot protocol, zero page, per-VM ACPI tables) with 2 vCPUs reports 2 CPUs, runs `uname -m` (x86_64) and powers off, next to a test VM that passes; exit 0 (pulls linux-x86_64 when missing)",
    ),
    (
        "x86_64-no-svm",
        "board qemu-x86_64 on `-cpu qemu64,-svm`: the hypervisor refuses to start, saying the CPU has no AMD SVM, and ends with a failure status",
    ),
    (
        "stack-guard",
        "qemu-aarch64 with kernel feature test-stack-overflow: the first secondary CPU's stack runs into its unmapped guard page; the hypervisor says which CPU overflowed and ends the machine with a failure status instead of corrupting or hanging",
    ),
    (
        "riscv64-stack-guard",
        "the same on qemu-riscv64 (HS-mode Sv39 identity map with the guard pages unmapped): the first secondary hart's overflow is reported on the emergency stack, naming the hart; failure status, no hang",
    ),
    (
        "stack-guard-two-cpus",
        "qemu-aarch64 with kernel feature test-two-overflows: the CPUs in stack slots 1 and 2 overflow at the same moment; each is reported on its own emergency stack, naming its CPU (two `hv: BUG` lines), failure status",
    ),
    (
        "stack-frame-check",
        "`cargo xtask build` of board xtask/tests/data/qemu-riscv64-big-frame.toml (kernel feature test-big-frame: a function with a 40 KiB stack frame, more than half the 64 KiB gap below each hypervisor stack) fails, naming the function and its frame (nothing boots)",
    ),
    (
        "riscv64-sbi-only",
        "qemu-riscv64: a VM with no emulated devices (configs/vms/testguest-riscv64-qemu-smp2-sbi.toml, the test guest with `sbi-only`: SBI console and timer, no UART, no PLIC) next to a normal test VM; its device tree has no PLIC and no interrupt wiring; both pass, exit 0",
    ),
    (
        "riscv64-linux",
        "qemu-riscv64: Debian's riscv64 Linux (2 vCPUs) and a test-guest VM (2 vCPUs) at the same time, each finishing; exit 0",
    ),
    (
        "vm-reset",
        "a test-guest VM resets itself after its checks, from inside its timer interrupt handler; it boots again with its RAM zeroed (checked by the guest) and passes again, next to a VM that just passes; exit 0",
    ),
    (
        "vm-reset-gicv2",
        "the same on board qemu-aarch64-gicv2 (GICv2 host and VMs)",
    ),
    (
        "riscv64-vm-reset",
        "the same on qemu-riscv64",
    ),
    (
        "uboot-serial",
        "board qemu-aarch64-uboot without a card: `cargo xtask uboot --qemu` stops U-Boot on a pseudo-terminal serial line, sends the hypervisor with loady (YMODEM) and runs booti; the two test VMs pass, exit 0",
    ),
    (
        "uboot-tftp",
        "the same with board xtask/tests/data/qemu-aarch64-uboot-tftp.toml ([uboot.tftp]), vm1 built in and vm3 (image_location = \"fs\"): U-Boot gets an address by DHCP from QEMU's user network and loads the hypervisor and vm3's config and image with tftp from QEMU's TFTP server; both VMs pass, exit 0",
    ),
    (
        "ivc-pingpong",
        "three test-guest VMs (configs/vms/testguest-aarch64-qemu-ivc-*.toml): ivc-a and ivc-b exchange 1,000 messages each way through channel \"link\" as their device trees describe it (each rung with the doorbell, whose interrupt must be pending at the receiver's interrupt controller, and checked by sequence number and checksum; each prints its counts and passes); ivc-c, on no channel, finds none of their messages and its own RAM where they see the region and is stopped when it rings ivc-a's doorbell address; exit status: 1 faulted",
    ),
    (
        "riscv64-ivc-pingpong",
        "the same on board qemu-riscv64 (configs/vms/testguest-riscv64-qemu-ivc-*.toml: doorbell interrupts are PLIC sources)",
    ),
    (
        "x86_64-ivc-pingpong",
        "the same on board qemu-x86_64 (configs/vms/testguest-x86_64-qemu-ivc-*.toml): the hypervisor puts each channel on the Multiboot command line (`hv.channel=...`, no device tree), the doorbell interrupts are I/O APIC pins (GSI 10, 11) routed level-triggered to the receiver, whose local APIC's IRR must show the vector before the guest takes it",
    ),
    (
        "ivc-linux",
        "Debian's arm64 Linux (configs/vms/linux-aarch64-qemu-ivc.toml, no driver: busybox devmem) and a test-guest VM (ivc-once) on channel \"link\": Linux writes a message and rings, the test guest sees the interrupt, checks it, answers and rings back; Linux prints the answer; both finish, exit 0",
    ),
    (
        "x86_64-ivc-linux",
        "the same on board qemu-x86_64 with Debian's amd64 Linux (configs/vms/linux-x86_64-qemu-ivc.toml): Linux first prints what it found of the channel in its DSDT (ACPI device HVSC0001:00 with description \"link\", its region and doorbell window in /proc/iomem); the test guest finds the channel on its Multiboot command line",
    ),
    (
        "ivc-axvisor",
        "two test-guest VMs written as AxVisor guests (configs/vms/testguest-aarch64-qemu-ivc-axvisor-{pub,sub}.toml, each with AxVisor's IVC device emu_type 0xA): axpub publishes a channel by hypercall 3 (asking 0x1800 bytes, given 0x2000 in its IVC window, AxVisor's header at its start), axsub subscribes by hypercall 4 (retrying until it is published); a message each way is checked (checksum), axpub unpublishes (5) and axsub, which still reads the region, unsubscribes (6); refusals (-1) on the way: size 0, an answer pointer past RAM, a key published twice, a second subscription, an unknown publisher, unpublishing or unsubscribing what is not there; both pass, the hypervisor logs the publish and the subscribe, exit 0",
    ),
    (
        "riscv64-ivc-axvisor",
        "the same on board qemu-riscv64 (configs/vms/testguest-riscv64-qemu-ivc-axvisor-{pub,sub}.toml: the calls are ecalls to extension 0x485643)",
    ),
    (
        "x86_64-ivc-axvisor",
        "the same on board qemu-x86_64 (configs/vms/testguest-x86_64-qemu-ivc-axvisor-{pub,sub}.toml: the calls are vmmcall with EAX = AxVisor's number, arguments RBX, RCX, RDX, RSI, answer RAX)",
    ),
    (
        "bench-smoke",
        "`cargo xtask bench` once per side on the default board: linux-boot (wall clock), linux-boot --icount (guest time), tiny-boot, hypercall, mmio, irq and cpu each print a ratio, both medians and the QEMU commands (the bare one with the hypervisor's guest DTB, -dtb), and keep one console log per side holding the marker (hypercall: its baseline runs in the hypervisor's run); mmio once more on qemu-x86_64, whose bare side has xtask's boot ROM (-bios) and the Multiboot description and image by -device loader, naming the register it read (lapic-version); bench ivc once prints all its figures; the figures' values are not judged",
    ),
    (
        "uboot-fs-vm",
        "board qemu-aarch64-uboot with vm1 built in and vm3 (image_location = \"fs\") as files on the card: the hypervisor reads vm3's config and image from the boot modules; both pass, exit 0",
    ),
    (
        "uboot-edit-config",
        "vms/vm3.toml edited inside that card image (cmdline = \"fault\"), booted with no rebuild: vm3 is stopped outside its memory, vm1 passes",
    ),
    (
        "uboot-bad-fs-config",
        "an unknown key in vms/vm3.toml on the card stops only vm3 (message names file and key); vm1 passes",
    ),
    (
        "disk-vm",
        "board qemu-aarch64 (-kernel, no U-Boot) with vm1 built in and vm3 only on the FAT32 disk `cargo xtask run` attaches (virtio-blk): the hypervisor drives the disk and reads vm3's config and kernel; vm4 (kernel missing on the disk) and vm5 (an unknown key) are each named as not started; vm1 and vm3 pass",
    ),
    (
        "riscv64-disk-vm",
        "the same on board qemu-riscv64 (vm3: xtask/tests/data/fs-vm-riscv64.toml) with QEMU's modern virtio-mmio (version 2; disk-vm has the legacy version 1, QEMU's default)",
    ),
    (
        "attacks-aarch64",
        "the attack suite on a 16-CPU qemu-aarch64: a test VM passes next to a walker VM going through every kind answered as specified and one VM per kind that must stop its VM (named reason); no hv: BUG, every VM accounted for, the runs end (table: cargo xtask test --attacks)",
    ),
    (
        "attacks-riscv64",
        "the same on a 16-hart qemu-riscv64",
    ),
    (
        "attacks-x86_64",
        "the same on a 16-CPU qemu-x86_64 (MSRs, SVM and hidden instructions, MMIO forms the decoder refuses, ports, IPIs/NMIs/timer modes, triple faults)",
    ),
    (
        "restart-loop",
        "a script on the console (Ctrl-\\ to the hypervisor shell, each command at its prompt) restarts vm2 100 times with `vm restart 2` while vm1 (xtask/tests/data/shell-hold-vm.toml, `hold`) runs; `mem` prints the same frames used before and after, vm1 never stops and `vm list` shows it running, vm2's last boot passes its checks; `poweroff` ends the run, exit 0",
    ),
    (
        "shell-lifecycle",
        "board xtask/tests/data/qemu-aarch64-uboot-shell.toml (U-Boot and the card image, on_last_stop = \"shell\"): Linux and vm2 built in, vm3 on the card (`spin-masked`: spins with interrupts masked after its checks); a shell script lists the VMs, stops vm3, restarts it (its checks pass again, RAM zero at boot), deletes it (its CPU free), refuses a missing config, creates vm3 again from vms/vm3.toml on the card (it passes), waits for Linux and vm2 to finish and powers off; exit 0",
    ),
    (
        "riscv64-shell-lifecycle",
        "board xtask/tests/data/qemu-riscv64-shell.toml (5 harts, on_last_stop = \"shell\"): Linux (2 vCPUs), vm2 and vm3 (`spin-masked`, 1 vCPU on hart 4) built in; the script stops vm3, restarts it (passes again, RAM zero), deletes it (hart 4 free), `vm create` says this build reads no VM configs (no card on this board, no feature fs-vms), waits for Linux and vm2 to power off and powers off; exit 0",
    ),
    (
        "disk-shell",
        "board xtask/tests/data/qemu-aarch64-shell.toml (-kernel, on_last_stop = \"shell\", no -no-reboot) with vm1 built in and vm3 only on the FAT32 disk `run` attaches; a shell script deletes vm3, is refused more/vm5.toml (unknown key: file, key, reason) and more/nothing.toml (not on the disk), creates and deletes more/vm6.toml (only on the disk, never started at boot) 10 times between two `mem`s (equal: its files are freed with it and read again; every vm6 passes), `log debug` shows vm6's exits when it stops and `log info` not, `reboot`: the machine starts over and vm1 and vm3 pass again; `poweroff`, exit 0",
    ),
    (
        "riscv64-disk-shell",
        "the same on board xtask/tests/data/qemu-riscv64-shell.toml (vm3: xtask/tests/data/fs-vm-riscv64.toml)",
    ),
];

const FAULT_VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-smp2-a.toml",
    "configs/vms/testguest-aarch64-qemu-smp2-fault.toml",
];
const BAD_VM: &str = "xtask/tests/data/bad-vm.toml";
const TESTGUEST_B: &str = "configs/vms/testguest-aarch64-qemu-smp2-b.toml";
const LINUX_VMS: [&str; 3] = [
    "configs/vms/linux-aarch64-qemu-smp1.toml",
    "configs/vms/linux-aarch64-qemu-smp2.toml",
    "configs/vms/linux-aarch64-qemu-smp4.toml",
];
const RISCV64_BOARD: &str = "configs/board/qemu-riscv64.toml";
const RISCV64_FAULT_VMS: [&str; 2] = [
    "configs/vms/testguest-riscv64-qemu-smp2-a.toml",
    "configs/vms/testguest-riscv64-qemu-smp2-fault.toml",
];
const RISCV64_LINUX_VMS: [&str; 2] = [
    "configs/vms/linux-riscv64-qemu-smp2.toml",
    "configs/vms/testguest-riscv64-qemu-smp2-b.toml",
];
const RISCV64_SBI_VMS: [&str; 2] = [
    "configs/vms/testguest-riscv64-qemu-smp2-sbi.toml",
    "configs/vms/testguest-riscv64-qemu-smp2-b.toml",
];
const DTPASS_VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-smp2-dtpass.toml",
    "configs/vms/testguest-aarch64-qemu-smp2-b.toml",
];
const RESET_VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-smp2-a.toml",
    "configs/vms/testguest-aarch64-qemu-smp2-reset.toml",
];
const GICV2_RESET_VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-gicv2-smp2-a.toml",
    "configs/vms/testguest-aarch64-qemu-gicv2-smp2-reset.toml",
];
const RISCV64_RESET_VMS: [&str; 2] = [
    "configs/vms/testguest-riscv64-qemu-smp2-a.toml",
    "configs/vms/testguest-riscv64-qemu-smp2-reset.toml",
];
/// QEMU virt with a GICv2 (gic-version=2) and two GICv2 test-guest VMs.
const GICV2_BOARD: &str = "configs/board/qemu-aarch64-gicv2.toml";
/// Linux with a GICv2 and a GICv2 test guest, for that board.
const GICV2_LINUX_VMS: [&str; 2] = [
    "configs/vms/linux-aarch64-qemu-gicv2-smp2.toml",
    "configs/vms/testguest-aarch64-qemu-gicv2-smp2-b.toml",
];

/// Which tests to run.
pub struct TestOptions {
    pub unit_only: bool,
    pub scenario: Option<String>,
}

/// Counts of one test binary's `test result:` line.
#[derive(Debug, PartialEq, Eq)]
pub struct BinResult {
    pub name: String,
    pub passed: u64,
    pub failed: u64,
}

/// Runs the tests; returns whether everything passed. Prints the final line.
pub fn test(ws: &Workspace, opts: &TestOptions) -> Result<bool> {
    if let Some(s) = &opts.scenario {
        if !SCENARIOS.iter().any(|(n, _)| n == s) {
            let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            bail!("unknown scenario `{s}` (known: {})", names.join(", "));
        }
    }
    let (mut passed, mut failed) = (0u64, 0u64);
    if opts.scenario.is_none() {
        let (p, f) = unit_tests(&ws.root)?;
        passed += p;
        failed += f;
    }
    if opts.scenario.is_none() && !opts.unit_only {
        println!("xtask: check clippy: cargo xtask clippy");
        if super::clippy::clippy(&ws.root)? {
            println!("check clippy: ok");
            passed += 1;
        } else {
            println!("check clippy: FAILED");
            failed += 1;
        }
    }
    if !opts.unit_only {
        for (name, _) in SCENARIOS {
            if opts.scenario.as_deref().is_some_and(|s| s != *name) {
                continue;
            }
            if run_scenario(ws, name) {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// `cargo test --workspace`, echoed, then counted per test binary.
fn unit_tests(root: &Path) -> Result<(u64, u64)> {
    crate::toolchain::ensure(root, None)?;
    println!("xtask: unit tests: cargo test --workspace --no-fail-fast");
    let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
    let mut child = {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root)
            .args(["test", "--workspace", "--no-fail-fast"])
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("cannot clone a pipe")?)
            .stderr(writer);
        cmd.spawn().context("cannot run cargo test")?
    };
    let mut text = String::new();
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap_or_default();
        println!("{line}");
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().context("waiting for cargo test")?;
    let bins = parse_test_output(&text);
    let passed: u64 = bins.iter().map(|b| b.passed).sum();
    let mut failed: u64 = bins.iter().map(|b| b.failed).sum();
    println!("xtask: unit test results:");
    for b in &bins {
        println!("  {}: {} passed, {} failed", b.name, b.passed, b.failed);
    }
    if !status.success() && failed == 0 {
        println!("  cargo test failed ({status}) without a failing test: counted as 1 failure");
        failed = 1;
    }
    Ok((passed, failed))
}

/// The `test result:` lines of libtest output, named after the `Running` /
/// `Doc-tests` line before them.
pub fn parse_test_output(text: &str) -> Vec<BinResult> {
    let mut current = String::from("tests");
    let mut out = Vec::new();
    for line in clean(text).lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            current = binary_name(rest);
        } else if let Some(krate) = t.strip_prefix("Doc-tests ") {
            current = format!("{krate} (doc-tests)");
        } else if let Some(rest) = t.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(word).map(str::trim))
                    .and_then(|n| n.rsplit(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            out.push(BinResult {
                name: current.clone(),
                passed: count("passed"),
                failed: count("failed"),
            });
        }
    }
    out
}

/// `unittests src/lib.rs (target/debug/deps/hypervisor-0123)` -> `hypervisor unittests src/lib.rs`.
fn binary_name(running: &str) -> String {
    let (what, path) = match running.split_once(" (") {
        Some((w, p)) => (w, p.trim_end_matches(')')),
        None => (running, ""),
    };
    let file = Path::new(path)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("");
    let krate = file.rsplit_once('-').map(|(k, _)| k).unwrap_or(file);
    if krate.is_empty() {
        what.to_string()
    } else {
        format!("{krate} {what}")
    }
}

fn run_scenario(ws: &Workspace, name: &str) -> bool {
    println!("xtask: scenario {name}: starting");
    let start = Instant::now();
    let result = match name {
        "two-vms" => two_vms(ws, name, DEFAULT_BOARD),
        "two-vms-gicv2" => two_vms(ws, name, GICV2_BOARD),
        "fault-isolation" => fault_isolation(ws, name, DEFAULT_BOARD, &FAULT_VMS),
        "bad-config" => bad_config(ws),
        "dt-passthrough" => dt_passthrough(ws, name),
        "console" => console(ws, name),
        "run-signals" => super::test_signals::run_signals(ws, name),
        "uboot-two-vms" => uboot_two_vms(ws),
        "linux-smp1" => linux(ws, name, DEFAULT_BOARD, &[LINUX_VMS[0]], 1),
        "linux-smp2" => linux(ws, name, DEFAULT_BOARD, &[LINUX_VMS[1]], 2),
        "linux-smp4" => linux(ws, name, DEFAULT_BOARD, &[LINUX_VMS[2]], 4),
        "linux-cpu-max" => linux_on_cpu(ws, name, "max"),
        "linux-cortex-a53" => linux_on_cpu(ws, name, "cortex-a53"),
        "linux-cortex-a76" => linux_on_cpu(ws, name, "cortex-a76"),
        "linux-and-testguest" => linux(ws, name, DEFAULT_BOARD, &[LINUX_VMS[1], TESTGUEST_B], 2),
        "riscv64-two-vms" => riscv64_timer(ws, name, RISCV64_BOARD, SSTC_LINE),
        "riscv64-no-sstc" => riscv64_timer(ws, name, NO_SSTC_BOARD, NO_SSTC_LINE),
        "riscv64-fault-isolation" => fault_isolation(ws, name, RISCV64_BOARD, &RISCV64_FAULT_VMS),
        "riscv64-linux" => linux(ws, name, RISCV64_BOARD, &RISCV64_LINUX_VMS, 2),
        "riscv64-sbi-only" => sbi_only(ws, name),
        "linux-gicv2" => linux(ws, name, GICV2_BOARD, &GICV2_LINUX_VMS, 2),
        "riscv64-reenter-start" => reenter_start(ws, name),
        "stack-guard" => stack_guard(ws, name, STACK_OVERFLOW_BOARD, |_| Some("CPU 0x1".into())),
        "riscv64-stack-guard" => stack_guard(ws, name, RISCV64_STACK_OVERFLOW_BOARD, slot1_hart),
        "stack-frame-check" => stack_frame_check(ws),
        "stack-guard-two-cpus" => stack_guard_two_cpus(ws, name),
        "x86_64-host" => x86_64_host(ws, name),
        "x86_64-no-svm" => x86_64_no_svm(ws, name),
        "x86_64-two-vms" => two_vms(ws, name, X86_64_BOARD),
        "x86_64-fault-isolation" => fault_isolation(ws, name, X86_64_BOARD, &X86_64_FAULT_VMS),
        "x86_64-vm-reset" => vm_reset(ws, name, X86_64_BOARD, &X86_64_RESET_VMS),
        "x86_64-linux" => linux(ws, name, X86_64_BOARD, &X86_64_LINUX_VMS, 2),
        "vm-reset" => vm_reset(ws, name, DEFAULT_BOARD, &RESET_VMS),
        "vm-reset-gicv2" => vm_reset(ws, name, GICV2_BOARD, &GICV2_RESET_VMS),
        "riscv64-vm-reset" => vm_reset(ws, name, RISCV64_BOARD, &RISCV64_RESET_VMS),
        "uboot-serial" => uboot_serial(ws, name, UBOOT_BOARD, &[]),
        "uboot-tftp" => uboot_serial(ws, name, UBOOT_TFTP_BOARD, &UBOOT_TFTP_VMS),
        "bench-smoke" => bench_smoke(ws),
        "ivc-pingpong" => ivc_pingpong(ws, name, DEFAULT_BOARD, &IVC_VMS),
        "ivc-linux" => ivc_linux(
            ws,
            name,
            DEFAULT_BOARD,
            "linux-aarch64",
            &IVC_LINUX_VMS,
            &[],
        ),
        "x86_64-ivc-linux" => ivc_linux(
            ws,
            name,
            X86_64_BOARD,
            "linux-x86_64",
            &X86_64_IVC_LINUX_VMS,
            &X86_64_IVC_LINUX_ACPI,
        ),
        "ivc-axvisor" => ivc_axvisor(ws, name, DEFAULT_BOARD, &AXIVC_VMS),
        "riscv64-ivc-axvisor" => ivc_axvisor(ws, name, RISCV64_BOARD, &RISCV64_AXIVC_VMS),
        "x86_64-ivc-axvisor" => ivc_axvisor(ws, name, X86_64_BOARD, &X86_64_AXIVC_VMS),
        "riscv64-ivc-pingpong" => ivc_pingpong(ws, name, RISCV64_BOARD, &RISCV64_IVC_VMS),
        "x86_64-ivc-pingpong" => ivc_pingpong(ws, name, X86_64_BOARD, &X86_64_IVC_VMS),
        "uboot-fs-vm" => super::test_fs::fs_vm(ws),
        "uboot-edit-config" => super::test_fs::edit_config_scenario(ws),
        "uboot-bad-fs-config" => super::test_fs::bad_config(ws),
        "disk-vm" => super::test_fs::disk_vm(ws, &super::test_fs::DISK_VM),
        "riscv64-disk-vm" => super::test_fs::disk_vm(ws, &super::test_fs::RISCV64_DISK_VM),
        "attacks-aarch64" => super::test_attacks::attacks(ws, name, Arch::Aarch64),
        "attacks-riscv64" => super::test_attacks::attacks(ws, name, Arch::Riscv64),
        "attacks-x86_64" => super::test_attacks::attacks(ws, name, Arch::X86_64),
        "restart-loop" => super::test_shell::restart_loop(ws, name),
        "shell-lifecycle" => super::test_shell::shell_lifecycle(ws, name),
        "riscv64-shell-lifecycle" => super::test_shell::riscv64_shell_lifecycle(ws, name),
        "disk-shell" => super::test_shell::disk_shell(ws, name, &super::test_shell::DISK_SHELL),
        "riscv64-disk-shell" => {
            super::test_shell::disk_shell(ws, name, &super::test_shell::RISCV64_DISK_SHELL)
        }
        _ => Err(anyhow::anyhow!("no such scenario")),
    };
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            println!("scenario {name}: ok ({secs:.1} s)");
            true
        }
        Err(e) => {
            println!("scenario {name}: FAILED ({secs:.1} s)\n{e:#}");
            false
        }
    }
}

pub(super) fn log_path(ws: &Workspace, name: &str) -> Result<PathBuf> {
    let dir = ws.target_dir.join("hv").join("test-logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join(format!("{name}.log")))
}

/// Builds with `board` and `vms` (none: the board's own), boots it, returns the plan,
/// how QEMU ended and its cleaned output.
fn boot(ws: &Workspace, name: &str, board: &str, vms: &[&str]) -> Result<(Plan, Outcome, String)> {
    boot_on(ws, name, board, vms, None)
}

/// [`boot`] with VM configs given by path (generated ones); returns how QEMU ended
/// and its cleaned output.
pub(super) fn boot_with(
    ws: &Workspace,
    name: &str,
    board: &str,
    vms: &[PathBuf],
) -> Result<(Outcome, String)> {
    let paths: Vec<String> = vms.iter().map(|p| p.display().to_string()).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (_, outcome, out) = boot(ws, name, board, &refs)?;
    Ok((outcome, out))
}

/// [`boot`], with QEMU's `-cpu` set to `cpu` instead of the board's.
fn boot_on(
    ws: &Workspace,
    name: &str,
    board: &str,
    vms: &[&str],
    cpu: Option<&str>,
) -> Result<(Plan, Outcome, String)> {
    let (plan, outcome, raw, _) = boot_typing(ws, name, board, vms, cpu, None)?;
    Ok((plan, outcome, clean(&raw)))
}

/// As [`boot_on`], typing on the console as `typing` says; returns the raw output
/// (escape sequences and carriage returns kept) and whether the input was typed.
fn boot_typing(
    ws: &Workspace,
    name: &str,
    board: &str,
    vms: &[&str],
    cpu: Option<&str>,
    typing: Option<Typing>,
) -> Result<(Plan, Outcome, String, bool)> {
    let mut typed = false;
    let mut once = typing.map(|t| {
        move |out: &[u8]| -> Option<Vec<u8>> {
            let seen = String::from_utf8_lossy(out).contains(t.after);
            (!typed && seen).then(|| {
                typed = true;
                t.input.to_vec()
            })
        }
    });
    let typist = once.as_mut().map(|f| f as crate::qemu::Typist<'_>);
    boot_scripted(ws, name, board, vms, cpu, typist)
}

/// As [`boot_on`], `typist` (given the output so far) saying what to type on the
/// console; returns the raw output (escape sequences and carriage returns kept) and
/// whether anything was typed.
pub(super) fn boot_scripted(
    ws: &Workspace,
    name: &str,
    board: &str,
    vms: &[&str],
    cpu: Option<&str>,
    typist: Option<crate::qemu::Typist<'_>>,
) -> Result<(Plan, Outcome, String, bool)> {
    let opts = BuildOptions {
        config: Some(ws.root.join(board)),
        vms: vms.iter().map(|v| ws.root.join(v)).collect(),
        force_bin: true,
    };
    let out = build(ws, &opts)?;
    run_built(ws, name, board, out, cpu, typist)
}

/// Runs what [`build`] made in QEMU, `typist` saying what to type (as
/// [`boot_scripted`]).
fn run_built(
    ws: &Workspace,
    name: &str,
    board: &str,
    out: BuildOutput,
    cpu: Option<&str>,
    typist: Option<crate::qemu::Typist<'_>>,
) -> Result<(Plan, Outcome, String, bool)> {
    ensure_qemu(out.plan.board.arch)?;
    let mut q = out
        .plan
        .board
        .qemu
        .clone()
        .with_context(|| format!("{board} has no [qemu] section"))?;
    if let Some(cpu) = cpu {
        q.cpu = Some(cpu.to_string());
    }
    let kernel = out.qemu_kernel()?;
    let log = log_path(ws, name)?;
    let program = qemu_binary(&out.plan.board);
    let args = qemu_args(&out.plan.board, &q, &kernel);
    println!(
        "xtask: {program} {} (output in {})",
        args.join(" "),
        log.display()
    );
    let (outcome, text, typed) =
        run_scripted(&program, &args, Some(QEMU_TIMEOUT), &log, false, typist)?;
    Ok((out.plan, outcome, text, typed))
}

/// The scenario `console`: vm1 (the VM with the keyboard) with boot argument
/// `prompt`, vm2 with `escapes` (xtask/tests/data).
const CONSOLE_VMS: [&str; 2] = [
    "xtask/tests/data/console-prompt-vm.toml",
    "xtask/tests/data/console-escapes-vm.toml",
];
/// The prompt as the console shows it, and what is typed once it is there.
const PROMPT: &str = "[vm1] testguest: type a line> ";
const TYPED: &[u8] = b"hello console\r";
/// vm2's colour line as it must come out: its SGR sequences kept.
const COLOURS: &str =
    "[vm2] testguest: colours: \x1b[1;32mgreen\x1b[0m and \x1b[38;5;208morange\x1b[0m";
/// vm2's hostile line with what it may not do taken out.
const DEFANGED: &str = "[vm2] testguest: cursor:hv: VM 9 (forged) powered off";

fn console(ws: &Workspace, name: &str) -> Result<()> {
    let typing = Typing {
        after: PROMPT,
        input: TYPED,
    };
    let (plan, outcome, raw, typed) =
        boot_typing(ws, name, DEFAULT_BOARD, &CONSOLE_VMS, None, Some(typing))?;
    let out = clean(&raw);
    let mut problems = console_problems(&raw, &out, typed);
    check_all_pass(&plan, &outcome, &out, &mut problems);
    verdict(&problems, &out)
}

/// What is wrong with the `console` scenario's raw and cleaned output.
fn console_problems(raw: &str, out: &str, typed: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !typed {
        problems.push(format!(
            "the prompt `{PROMPT}` never reached the console, so nothing was typed"
        ));
    }
    let echo = "[vm1] testguest: read \"hello console\"";
    if !has_line(out, echo) {
        problems.push(format!("no `{echo}` line"));
    }
    if !raw.contains(COLOURS) {
        problems.push(format!(
            "vm2's colours did not pass: no {COLOURS:?} in the raw output"
        ));
    }
    if !raw.contains(DEFANGED) {
        problems.push(format!("no {DEFANGED:?} in the raw output"));
    }
    for seq in ["\x1b[2J", "\x1b[H", "\x1b]0;"] {
        if raw.contains(seq) {
            problems.push(format!("the sequence {seq:?} of vm2 reached the console"));
        }
    }
    for l in out.lines().filter(|l| l.starts_with("hv: VM 9")) {
        problems.push(format!("a VM forged a hypervisor line: {l}"));
    }
    problems
}

/// Failure message with the end of the output.
pub(super) fn failure(problems: &[String], output: &str) -> anyhow::Error {
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    anyhow::anyhow!(
        "  {}\n  --- last lines of output ---\n{tail}",
        problems.join("\n  ")
    )
}

/// Lines the VM `name` printed (without the `[name] ` prefix).
pub(super) fn vm_lines<'a>(output: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("[{name}] ");
    output
        .lines()
        .filter_map(|l| l.find(&prefix).map(|i| l[i + prefix.len()..].trim_end()))
        .collect()
}

/// Checks the VM's `<N> passed, <M> failed` line: N > 0 and M == 0.
pub(super) fn check_summary(output: &str, name: &str, problems: &mut Vec<String>) {
    let lines = vm_lines(output, name);
    // The VM with the keyboard streams its output; another VM's line can split one
    // of its lines in two, so a piece joined with the next is tried too.
    let joined = |i: usize| -> Option<(u64, u64)> {
        parse_summary(lines[i]).or_else(|| {
            let next = lines.get(i + 1)?;
            parse_summary(&format!("{}{next}", lines[i]))
        })
    };
    let summary = (0..lines.len()).rev().find_map(joined);
    match summary {
        Some((n, 0)) if n > 0 => {}
        Some((n, m)) => {
            problems.push(format!("[{name}] reported {n} passed, {m} failed"));
            for l in lines.iter().filter(|l| l.starts_with("FAIL")) {
                problems.push(format!("[{name}] {l}"));
            }
        }
        None => problems.push(format!("no `[{name}] <N> passed, <M> failed` line")),
    }
}

/// `12 passed, 0 failed` -> (12, 0).
pub fn parse_summary(line: &str) -> Option<(u64, u64)> {
    let (p, f) = line.trim().split_once(" passed, ")?;
    let f = f.strip_suffix(" failed")?;
    Some((p.trim().parse().ok()?, f.trim().parse().ok()?))
}

/// Checks the `[name] memory: 0x<base>..0x<end>` lines against the VM's RAM regions:
/// one for each.
fn check_memory_line(output: &str, plan: &Plan, name: &str, problems: &mut Vec<String>) {
    let Some(vm) = plan.vms.iter().find(|v| v.name == name) else {
        return;
    };
    let want: Vec<Range> = vm.ram().map(|m| m.range).collect();
    // A line of the VM with the keyboard that other output cut is drawn again in
    // full after the cut, so every region has one whole line.
    let seen: Vec<Range> = vm_lines(output, name)
        .into_iter()
        .filter_map(|l| l.strip_prefix("memory: "))
        .filter_map(parse_memory)
        .collect();
    for w in &want {
        if !seen.contains(w) {
            problems.push(format!("no `[{name}] memory: {w}` line"));
        }
    }
}

/// `0x40000000..0x41000000` -> the range.
pub fn parse_memory(text: &str) -> Option<Range> {
    let (a, b) = text.trim().split_once("..")?;
    let hex = |s: &str| {
        u64::from_str_radix(
            s.trim().trim_start_matches("0x").trim_start_matches("0X"),
            16,
        )
        .ok()
    };
    let (base, end) = (hex(a)?, hex(b)?);
    (end > base).then(|| Range::new(base, end - base))
}

/// How QEMU ended against what the scenario wants: exit 0, or a failure status.
pub(super) fn exit_status(outcome: &Outcome, want_success: bool, problems: &mut Vec<String>) {
    match outcome {
        Outcome::Exited(s) if s.success() == want_success => {}
        Outcome::Exited(s) => problems.push(format!(
            "QEMU exited with {s}, expected {}",
            if want_success {
                "0"
            } else {
                "a failure status (a VM did not finish cleanly)"
            }
        )),
        Outcome::TimedOut(t) => {
            problems.push(format!("timeout: QEMU still running after {t} s (killed)"))
        }
        Outcome::Interrupted(sig) => problems.push(format!(
            "xtask got signal {sig} and ended QEMU before it finished"
        )),
    }
}

/// The scenario's result: passed, or failed with its problems and QEMU's output.
pub(super) fn verdict(problems: &[String], out: &str) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(failure(problems, out))
    }
}

/// The VM of `plan` whose command line holds `word` (the test guest's `fault`,
/// `reset`).
fn vm_with_word<'p>(plan: &'p Plan, word: &str, vms: &[&str]) -> Result<&'p Vm> {
    plan.vms
        .iter()
        .find(|v| v.cmdline.split_whitespace().any(|w| w == word))
        .with_context(|| format!("no VM with cmdline `{word}` in {vms:?}"))
}

pub(super) fn has_line(output: &str, text: &str) -> bool {
    output.lines().any(|l| l.contains(text))
}

/// `board`'s own VMs all pass their checks and the machine exits 0.
fn two_vms(ws: &Workspace, name: &str, board: &str) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, board, &[])?;
    let mut problems = Vec::new();
    check_all_pass(&plan, &outcome, &out, &mut problems);
    verdict(&problems, &out)
}

/// The machine exits 0, every VM passes its checks and reports its memory, and all
/// stop cleanly.
fn check_all_pass(plan: &Plan, outcome: &Outcome, out: &str, problems: &mut Vec<String>) {
    exit_status(outcome, true, problems);
    for vm in &plan.vms {
        check_summary(out, &vm.name, problems);
        check_memory_line(out, plan, &vm.name, problems);
    }
    let all = format!("hv: all VMs stopped: {} clean, 0 faulted", plan.vms.len());
    if !has_line(out, &all) {
        problems.push(format!("no `{all}` line"));
    }
}

/// Boots the Linux VM (named `linux`, `cpus` vCPUs) on `board` with any other VMs in
/// `vms`: Linux must report its CPUs, run its command (`uname -m` printing the board's
/// architecture) and power off; test guests must pass; QEMU must exit 0. The guest
/// image `linux-<arch>` is pulled when missing.
fn linux(ws: &Workspace, name: &str, board: &str, vms: &[&str], cpus: u32) -> Result<()> {
    linux_with(ws, name, board, vms, cpus, None)
}

/// Linux with 2 vCPUs that also prints its first `Features` line of /proc/cpuinfo.
const LINUX_FEATURES_VM: &str = "xtask/tests/data/linux-aarch64-features.toml";

/// Features (names of /proc/cpuinfo) the hypervisor does not offer to guests: SVE,
/// SME, pointer authentication, MTE (see kernel/src/arch/aarch64/idregs.rs).
const HIDDEN_FEATURES: &[&str] = &[
    "sve", "sve2", "sme", "sme2", "paca", "pacg", "mte", "mte3", "fpmr", "gcs",
];
/// Features every arm64 CPU here has, which the guest must still see.
const KEPT_FEATURES: &[&str] = &["fp", "asimd", "cpuid"];

/// `linux-smp2` on the default board with QEMU's `-cpu` set to `cpu`; Linux's
/// `Features` line must name none of [`HIDDEN_FEATURES`] and all of
/// [`KEPT_FEATURES`].
fn linux_on_cpu(ws: &Workspace, name: &str, cpu: &str) -> Result<()> {
    linux_with(ws, name, DEFAULT_BOARD, &[LINUX_FEATURES_VM], 2, Some(cpu))
}

/// What is wrong with Linux's `Features : ...` line among `lines` (the VM's).
pub fn feature_problems(lines: &[&str]) -> Vec<String> {
    let Some(list) = lines.iter().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "Features").then_some(value)
    }) else {
        return vec!["no `[linux] Features : ...` line (from /proc/cpuinfo)".to_string()];
    };
    let seen: Vec<&str> = list.split_whitespace().collect();
    let mut problems = Vec::new();
    for f in HIDDEN_FEATURES.iter().filter(|f| seen.contains(f)) {
        problems.push(format!(
            "Linux found `{f}`, a feature the hypervisor does not offer (Features: {})",
            list.trim()
        ));
    }
    for f in KEPT_FEATURES.iter().filter(|f| !seen.contains(f)) {
        problems.push(format!(
            "Linux did not find `{f}` (Features: {})",
            list.trim()
        ));
    }
    problems
}

fn linux_with(
    ws: &Workspace,
    name: &str,
    board: &str,
    vms: &[&str],
    cpus: u32,
    cpu: Option<&str>,
) -> Result<()> {
    let (loaded, report) = crate::config::board::load_board(&ws.root.join(board), &ws.root);
    let arch = loaded
        .map(|b| b.arch)
        .ok_or(crate::config::ConfigError(report))?;
    crate::guest::ensure_pulled(&ws.root, &format!("linux-{}", arch.name()))?;
    let (plan, outcome, out) = boot_on(ws, name, board, vms, cpu)?;
    let mut problems = Vec::new();
    exit_status(&outcome, true, &mut problems);
    let wanted = [
        "[linux] guest-init: ready".to_string(),
        format!("[linux] guest-init: cpus {cpus}"),
        "[linux] linux-up".to_string(),
        format!("[linux] {}", plan.board.arch.name()),
        "[linux] guest-init: done 0".to_string(),
        "hv: VM 1 (linux) powered off".to_string(),
    ];
    for w in &wanted {
        if !out.lines().any(|l| l.trim_end() == w) {
            problems.push(format!("no line `{w}`"));
        }
    }
    if cpu.is_some() {
        problems.extend(feature_problems(&vm_lines(&out, "linux")));
    }
    for vm in plan.vms.iter().filter(|v| v.name != "linux") {
        check_summary(&out, &vm.name, &mut problems);
    }
    verdict(&problems, &out)
}

/// A VM with a device passed through by device-tree path next to a normal test VM:
/// the hypervisor resolves the path in the DTB it booted with and says so, and the
/// guest finds the device at its host address.
fn dt_passthrough(ws: &Workspace, name: &str) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, DEFAULT_BOARD, &DTPASS_VMS)?;
    let mut problems = Vec::new();
    check_all_pass(&plan, &outcome, &out, &mut problems);
    let vm = plan
        .vms
        .iter()
        .find(|v| !v.dt_passthrough.is_empty())
        .context("no VM with device-tree passthrough")?;
    let resolved = format!(
        "hv: VM {} ({}): passthrough /pl031@9010000 at 0x9010000..0x9011000, interrupt 34",
        vm.id, vm.name
    );
    if !has_line(&out, &resolved) {
        problems.push(format!("no line `{resolved}`"));
    }
    let lines = vm_lines(&out, &vm.name);
    for want in [
        "testguest: passthrough: PL031 at 0x9010000: part 0x31, designer 0x41",
        "ok: passthrough",
    ] {
        if !lines.iter().any(|l| l.starts_with(want)) {
            problems.push(format!("no line `[{}] {want}...`", vm.name));
        }
    }
    verdict(&problems, &out)
}

/// A riscv64 VM with no emulated devices whose guest uses only the SBI console and
/// timer, next to a normal test VM: both pass, and the guest saw no PLIC and no
/// interrupt wiring in its device tree.
fn sbi_only(ws: &Workspace, name: &str) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, RISCV64_BOARD, &RISCV64_SBI_VMS)?;
    let mut problems = Vec::new();
    check_all_pass(&plan, &outcome, &out, &mut problems);
    let sbi = vm_with_word(&plan, "sbi-only", &RISCV64_SBI_VMS)?;
    let lines = vm_lines(&out, &sbi.name);
    for want in [
        "testguest: sbi-only: console and timer through the SBI",
        "testguest: sbi-only: device tree: PLIC absent, 0 nodes with interrupts or an interrupt-parent",
        "ok: timer",
        "ok: smp",
    ] {
        if !lines.iter().any(|l| l.starts_with(want)) {
            problems.push(format!("no line `[{}] {want}...`", sbi.name));
        }
    }
    verdict(&problems, &out)
}

fn fault_isolation(ws: &Workspace, name: &str, board: &str, vms: &[&str]) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, board, vms)?;
    let mut problems = Vec::new();
    exit_status(&outcome, false, &mut problems);
    let faulty = vm_with_word(&plan, "fault", vms)?;
    let stopped = format!("hv: VM {} ({}) stopped:", faulty.id, faulty.name);
    match out.lines().find(|l| l.contains(&stopped)) {
        Some(l) if l.contains("outside guest memory") => {}
        Some(l) => problems.push(format!(
            "the stop reason does not say `outside guest memory`: {l}"
        )),
        None => problems.push(format!("no `{stopped} ...` line")),
    }
    if vm_lines(&out, &faulty.name)
        .iter()
        .any(|l| l.contains("access outside memory was allowed"))
    {
        problems.push(format!(
            "[{}] read outside its memory and was not stopped",
            faulty.name
        ));
    }
    for vm in plan.vms.iter().filter(|v| v.id != faulty.id) {
        check_summary(&out, &vm.name, &mut problems);
    }
    let all = format!(
        "hv: all VMs stopped: {} clean, 1 faulted",
        plan.vms.len() - 1
    );
    if !has_line(&out, &all) {
        problems.push(format!("no `{all}` line"));
    }
    verdict(&problems, &out)
}

/// The VMs of scenario ivc-pingpong (aarch64): a pair on channel "link" and one on
/// no channel.
const IVC_VMS: [&str; 3] = [
    "configs/vms/testguest-aarch64-qemu-ivc-a.toml",
    "configs/vms/testguest-aarch64-qemu-ivc-b.toml",
    "configs/vms/testguest-aarch64-qemu-ivc-c.toml",
];

/// The same on riscv64.
const RISCV64_IVC_VMS: [&str; 3] = [
    "configs/vms/testguest-riscv64-qemu-ivc-a.toml",
    "configs/vms/testguest-riscv64-qemu-ivc-b.toml",
    "configs/vms/testguest-riscv64-qemu-ivc-c.toml",
];

/// The same on x86_64.
const X86_64_IVC_VMS: [&str; 3] = [
    "configs/vms/testguest-x86_64-qemu-ivc-a.toml",
    "configs/vms/testguest-x86_64-qemu-ivc-b.toml",
    "configs/vms/testguest-x86_64-qemu-ivc-c.toml",
];

/// The test guest of `vm` printed the channel where `vm`'s config puts it (its
/// first channel with a doorbell): what its device description (DTB, or x86's
/// Multiboot command line) told it.
fn check_channel_view(out: &str, vm: &Vm, problems: &mut Vec<String>) {
    let Some(c) = vm.channels.iter().find(|c| c.doorbell.is_some()) else {
        problems.push(format!(
            "{}: no channel with a doorbell in its config",
            vm.name
        ));
        return;
    };
    let db = c.doorbell.map_or(0, |d| d.gpa);
    let want = format!(
        "testguest: ivc: region {:#x} size {:#x}, doorbell {db:#x}",
        c.gpa, c.size
    );
    let lines = vm_lines(out, &vm.name);
    if !lines.contains(&want.as_str()) {
        let seen: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("testguest: ivc: region "))
            .collect();
        problems.push(format!(
            "[{}] the guest did not see the channel where its config puts it: want `{want}`, saw {seen:?}",
            vm.name
        ));
    }
}

/// `testguest: ivc: member 0: 1000 sent, 1000 received, 0 bad, 1000 interrupts` ->
/// (0, [1000, 1000, 0, 1000]).
pub fn parse_ivc_line(line: &str) -> Option<(u32, [u64; 4])> {
    let rest = line.trim().strip_prefix("testguest: ivc: member ")?;
    let (member, rest) = rest.split_once(": ")?;
    let mut counts = rest.split(", ").map(|part| {
        let (n, what) = part.split_once(' ')?;
        Some((n.parse::<u64>().ok()?, what))
    });
    let mut next = |want: &str| match counts.next()?? {
        (n, w) if w == want => Some(n),
        _ => None,
    };
    let counts = [
        next("sent")?,
        next("received")?,
        next("bad")?,
        next("interrupts")?,
    ];
    Some((member.parse().ok()?, counts))
}

/// The ivc pair of `plan` passed and counted every message; the third VM was
/// stopped at the doorbell address it does not have, having found its own RAM
/// where the pair sees the region.
fn ivc_pingpong(ws: &Workspace, name: &str, board: &str, vms: &[&str]) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, board, vms)?;
    let mut problems = Vec::new();
    exit_status(&outcome, false, &mut problems);
    let probe = vm_with_word_prefix(&plan, "ivc-probe=", vms)?;
    let mut members = Vec::new();
    for vm in plan.vms.iter().filter(|v| v.id != probe.id) {
        check_summary(&out, &vm.name, &mut problems);
        let lines = vm_lines(&out, &vm.name);
        match lines.iter().find_map(|l| parse_ivc_line(l)) {
            Some((m, [sent, received, 0, irqs])) if [sent, received, irqs] == [IVC_MESSAGES; 3] => {
                members.push(m)
            }
            Some(c) => problems.push(format!(
                "[{}] ivc counts {c:?}: not {IVC_MESSAGES} sent, received and interrupts, 0 bad",
                vm.name
            )),
            None => problems.push(format!(
                "no `[{}] testguest: ivc: member ...` line",
                vm.name
            )),
        }
        if !lines.contains(&"ok: ivc") {
            problems.push(format!("no `[{}] ok: ivc` line", vm.name));
        }
        check_channel_view(&out, vm, &mut problems);
    }
    members.sort();
    if members != [0, 1] && problems.is_empty() {
        problems.push(format!("ivc members {members:?}, expected 0 and 1"));
    }
    check_summary(&out, &probe.name, &mut problems);
    let lines = vm_lines(&out, &probe.name);
    if !lines
        .iter()
        .any(|l| l.starts_with("testguest: ivc-probe: no message of the channel at "))
    {
        problems.push(format!(
            "[{}] did not look for the pair's messages at the region's address",
            probe.name
        ));
    }
    if !lines
        .iter()
        .any(|l| l.contains("ivc-probe: ") && l.contains("is this VM's own memory"))
    {
        problems.push(format!(
            "[{}] did not find its own memory at the region's address",
            probe.name
        ));
    }
    if lines.iter().any(|l| l.starts_with("FAIL: ivc-probe")) {
        problems.push(format!(
            "[{}] reached the channel or rang its doorbell",
            probe.name
        ));
    }
    let stopped = format!("hv: VM {} ({}) stopped:", probe.id, probe.name);
    match out.lines().find(|l| l.contains(&stopped)) {
        Some(l) if l.contains("outside guest memory") => {}
        Some(l) => problems.push(format!("unexpected stop reason: {l}")),
        None => problems.push(format!("no `{stopped} ...` line")),
    }
    let all = "hv: all VMs stopped: 2 clean, 1 faulted";
    if !has_line(&out, all) {
        problems.push(format!("no `{all}` line"));
    }
    verdict(&problems, &out)
}

/// The VMs of scenario ivc-axvisor: the publisher (VM 1), the subscriber (VM 2).
const AXIVC_VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-ivc-axvisor-pub.toml",
    "configs/vms/testguest-aarch64-qemu-ivc-axvisor-sub.toml",
];

/// The same on riscv64.
const RISCV64_AXIVC_VMS: [&str; 2] = [
    "configs/vms/testguest-riscv64-qemu-ivc-axvisor-pub.toml",
    "configs/vms/testguest-riscv64-qemu-ivc-axvisor-sub.toml",
];

/// The same on x86_64.
const X86_64_AXIVC_VMS: [&str; 2] = [
    "configs/vms/testguest-x86_64-qemu-ivc-axvisor-pub.toml",
    "configs/vms/testguest-x86_64-qemu-ivc-axvisor-sub.toml",
];

/// What each side of ivc-axvisor prints, in order, after its VM's name.
const AXIVC_PUB_LINES: [&str; 4] = [
    "testguest: ivc-axvisor: published key 0x7e57000000a50001 at ",
    "testguest: ivc-axvisor: VM 2's answer checked",
    "testguest: ivc-axvisor: unpublished",
    "ok: ivc-axvisor",
];
const AXIVC_SUB_LINES: [&str; 4] = [
    "testguest: ivc-axvisor: subscribed to VM 1's key 0x7e57000000a50001 at ",
    "testguest: ivc-axvisor: VM 1's message checked",
    "testguest: ivc-axvisor: unsubscribed",
    "ok: ivc-axvisor",
];

/// Two test guests make a channel with AxVisor's hypercalls and use it.
fn ivc_axvisor(ws: &Workspace, name: &str, board: &str, vms: &[&str]) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, board, vms)?;
    let mut problems = Vec::new();
    exit_status(&outcome, true, &mut problems);
    for (vm, want) in plan.vms.iter().zip([AXIVC_PUB_LINES, AXIVC_SUB_LINES]) {
        check_summary(&out, &vm.name, &mut problems);
        let lines = vm_lines(&out, &vm.name);
        let mut from = 0;
        for w in want {
            match lines[from..].iter().position(|l| l.starts_with(w)) {
                Some(i) => from += i + 1,
                None => problems.push(format!("no `[{}] {w}...` line (in order)", vm.name)),
            }
        }
    }
    for w in [
        "hv: VM 1 (axpub): IVC channel 0x7e57000000a50001 published at ",
        "hv: VM 2 (axsub): subscribed to VM 1's channel 0x7e57000000a50001 at ",
        "hv: all VMs stopped: 2 clean, 0 faulted",
    ] {
        if !has_line(&out, w) {
            problems.push(format!("no `{w}...` line"));
        }
    }
    verdict(&problems, &out)
}

/// The VMs of scenario ivc-linux: Linux (member 0) and a test guest (member 1).
const IVC_LINUX_VMS: [&str; 2] = [
    "configs/vms/linux-aarch64-qemu-ivc.toml",
    "configs/vms/testguest-aarch64-qemu-ivc-linux.toml",
];

/// The VMs of scenario x86_64-ivc-linux.
const X86_64_IVC_LINUX_VMS: [&str; 2] = [
    "configs/vms/linux-x86_64-qemu-ivc.toml",
    "configs/vms/testguest-x86_64-qemu-ivc-linux.toml",
];

/// What x86 Linux prints of the channel's DSDT device (`_HID`, `_STR`) and of its
/// resources in /proc/iomem (the region, then the doorbell window).
const X86_64_IVC_LINUX_ACPI: [&str; 3] = [
    "[linux] ivc: acpi HVSC0001 link",
    "[linux] ivc: iomem 18000000-1800ffff : HVSC0001:00",
    "[linux] ivc: iomem fe000000-fe000fff : HVSC0001:00",
];

/// Linux with busybox `devmem` and a test guest exchange one message each way;
/// `extra`: more lines Linux must print (x86: what it found in its ACPI tables).
fn ivc_linux(
    ws: &Workspace,
    name: &str,
    board: &str,
    image: &str,
    vms: &[&str],
    extra: &[&str],
) -> Result<()> {
    crate::guest::ensure_pulled(&ws.root, image)?;
    let (plan, outcome, out) = boot(ws, name, board, vms)?;
    let mut problems = Vec::new();
    exit_status(&outcome, true, &mut problems);
    let wanted = [
        "[linux] guest-init: ready",
        "[linux] ivc: id 0x00000000 of 0x00000002",
        "[linux] ivc: sent, rang member 1",
        "[ivc-tg] testguest: ivc-once: member 0 wrote 0x1 0x4c696e78 0xb3969187",
        "[ivc-tg] ok: ivc-once",
        "[linux] ivc: reply 0x00000001 0x54477374 0xABB88C8B status 0x00000000",
        "[linux] guest-init: done 0",
        "hv: all VMs stopped: 2 clean, 0 faulted",
    ];
    for w in wanted.iter().chain(extra) {
        if !out.lines().any(|l| l.trim_end() == *w) {
            problems.push(format!("no line `{w}`"));
        }
    }
    for vm in plan.vms.iter().filter(|v| v.name != "linux") {
        check_summary(&out, &vm.name, &mut problems);
        check_channel_view(&out, vm, &mut problems);
    }
    verdict(&problems, &out)
}

/// Messages the test guest's ivc check sends each way.
const IVC_MESSAGES: u64 = 1000;

/// The VM whose command line has a word starting with `prefix`.
fn vm_with_word_prefix<'p>(plan: &'p Plan, prefix: &str, vms: &[&str]) -> Result<&'p Vm> {
    plan.vms
        .iter()
        .find(|v| v.cmdline.split_whitespace().any(|w| w.starts_with(prefix)))
        .with_context(|| format!("no VM with `{prefix}...` in its cmdline in {vms:?}"))
}

/// Board qemu-riscv64 on a CPU without Sstc (xtask/tests/data).
const NO_SSTC_BOARD: &str = "xtask/tests/data/qemu-riscv64-nosstc.toml";
/// What the hypervisor says about the guest timer with Sstc and without.
const SSTC_LINE: &str = "hv: RISC-V H extension present; guest timer: Sstc (vstimecmp)";
const NO_SSTC_LINE: &str =
    "hv: RISC-V H extension present; guest timer: SBI set_timer emulated with the host timer";

/// `board`'s own VMs all pass (the test guest's timer-legacy check among them: 10,000
/// short periods programmed with the legacy SBI set_timer) and the hypervisor says it
/// uses the guest timer `timer_line` names: Sstc, or the emulated one.
fn riscv64_timer(ws: &Workspace, name: &str, board: &str, timer_line: &str) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, board, &[])?;
    let mut problems = Vec::new();
    check_all_pass(&plan, &outcome, &out, &mut problems);
    if !has_line(&out, timer_line) {
        problems.push(format!("no `{timer_line}` line"));
    }
    for vm in &plan.vms {
        let passed = format!("[{}] ok: timer-legacy", vm.name);
        if !has_line(&out, &passed) {
            problems.push(format!("no `{passed}` line"));
        }
    }
    verdict(&problems, &out)
}

/// Board qemu-riscv64 with feature test-reenter-start (xtask/tests/data).
const REENTER_BOARD: &str = "xtask/tests/data/qemu-riscv64-reenter-start.toml";

/// The re-entered `_start` must not take the boot path again: the banner comes once,
/// no CPU fails to start, and the test VMs pass as in `two-vms`.
fn reenter_start(ws: &Workspace, name: &str) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, REENTER_BOARD, &[])?;
    let mut problems = Vec::new();
    check_all_pass(&plan, &outcome, &out, &mut problems);
    let banners = out
        .lines()
        .filter(|l| l.starts_with("hv: hypervisor "))
        .count();
    if banners != 1 {
        problems.push(format!("the banner came {banners} times, expected once"));
    }
    for l in out.lines().filter(|l| l.contains("did not start")) {
        problems.push(l.to_string());
    }
    verdict(&problems, &out)
}

/// Board qemu-aarch64 with feature test-stack-overflow (xtask/tests/data).
const STACK_OVERFLOW_BOARD: &str = "xtask/tests/data/qemu-aarch64-stack-overflow.toml";
/// The same for qemu-riscv64.
const RISCV64_STACK_OVERFLOW_BOARD: &str = "xtask/tests/data/qemu-riscv64-stack-overflow.toml";

/// The hart in stack slot 1 on qemu-riscv64: the first in DTB order that is not
/// the boot hart, which OpenSBI picks by lottery and names ("Boot HART ID : N").
fn slot1_hart(out: &str) -> Option<String> {
    let boot: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Boot HART ID"))
        .and_then(|r| r.split(':').nth(1))
        .and_then(|n| n.trim().parse().ok())?;
    Some(format!("hart {:#x}", if boot == 0 { 1 } else { 0 }))
}

/// The overflow is caught by the guard page and reported, naming the CPU (as
/// `cpu` says from the log: "CPU 0x1", "hart 0x0"), on the emergency stack; the
/// machine ends with a failure status (no hang, no other bug).
fn stack_guard(
    ws: &Workspace,
    name: &str,
    board: &str,
    cpu: fn(&str) -> Option<String>,
) -> Result<()> {
    let (_, outcome, out) = boot(ws, name, board, &[])?;
    let mut problems = Vec::new();
    exit_status(&outcome, false, &mut problems);
    let Some(cpu) = cpu(&out) else {
        problems.push("the log does not say which CPU is in stack slot 1".into());
        return verdict(&problems, &out);
    };
    let want =
        format!("hv: BUG: {cpu}: hypervisor stack overflow (stack slot 1 ran into its guard page");
    if !out.contains(&want) {
        problems.push(format!("no line \"{want} ...\""));
    }
    let bugs = out.lines().filter(|l| l.contains("hv: BUG")).count();
    if bugs != 1 {
        problems.push(format!(
            "{bugs} \"hv: BUG\" lines, expected the one overflow"
        ));
    }
    verdict(&problems, &out)
}

/// Board qemu-aarch64 with feature test-two-overflows (xtask/tests/data).
const TWO_OVERFLOWS_BOARD: &str = "xtask/tests/data/qemu-aarch64-two-overflows.toml";

/// Two CPUs overflow at once: both are reported, each naming its CPU (with one
/// emergency stack for the machine, the second parked silently).
fn stack_guard_two_cpus(ws: &Workspace, name: &str) -> Result<()> {
    let (_, outcome, out) = boot(ws, name, TWO_OVERFLOWS_BOARD, &[])?;
    let mut problems = Vec::new();
    exit_status(&outcome, false, &mut problems);
    for (cpu, slot) in [(1, 1), (2, 2)] {
        let want = format!(
            "hv: BUG: CPU {cpu:#x}: hypervisor stack overflow (stack slot {slot} ran into its guard page"
        );
        if !out.contains(&want) {
            problems.push(format!("no line \"{want} ...\""));
        }
    }
    let bugs = out.lines().filter(|l| l.contains("hv: BUG")).count();
    if bugs != 2 {
        problems.push(format!(
            "{bugs} \"hv: BUG\" lines, expected the two overflows"
        ));
    }
    verdict(&problems, &out)
}

/// Board qemu-riscv64 with feature test-big-frame (xtask/tests/data).
const BIG_FRAME_BOARD: &str = "xtask/tests/data/qemu-riscv64-big-frame.toml";

/// The build's stack frame check refuses a kernel with a frame larger than half the
/// gap below its stacks, naming the function.
fn stack_frame_check(ws: &Workspace) -> Result<()> {
    let opts = BuildOptions {
        config: Some(ws.root.join(BIG_FRAME_BOARD)),
        vms: Vec::new(),
        force_bin: false,
    };
    let err = match build(ws, &opts) {
        Ok(_) => anyhow::bail!("the build of {BIG_FRAME_BOARD} passed the stack frame check"),
        Err(e) => format!("{e:#}"),
    };
    let want = [
        "stack frame check",
        "hypervisor::boot::big_frame at 0x",
        "bytes of stack",
    ];
    let missing: Vec<String> = want
        .iter()
        .filter(|w| !err.contains(*w))
        .map(|w| format!("the build's error does not say \"{w}\""))
        .collect();
    verdict(&missing, &err)
}

const X86_64_BOARD: &str = "configs/board/qemu-x86_64.toml";
const X86_64_FAULT_VMS: [&str; 2] = [
    "configs/vms/testguest-x86_64-qemu-smp2-a.toml",
    "configs/vms/testguest-x86_64-qemu-smp2-fault.toml",
];
const X86_64_LINUX_VMS: [&str; 2] = [
    "configs/vms/linux-x86_64-qemu-smp2.toml",
    "configs/vms/testguest-x86_64-qemu-smp2-b.toml",
];
const X86_64_RESET_VMS: [&str; 2] = [
    "configs/vms/testguest-x86_64-qemu-smp2-a.toml",
    "configs/vms/testguest-x86_64-qemu-smp2-reset.toml",
];

/// Boots the hypervisor of `board` with no VMs at all (scenarios about the host's
/// own start), on QEMU CPU `cpu` if given.
fn boot_host_only(
    ws: &Workspace,
    name: &str,
    board: &str,
    cpu: Option<&str>,
) -> Result<(Outcome, String)> {
    let ctx = crate::config::Context {
        guest_crates: &ws.guest_crates,
    };
    let plan = crate::config::load(
        &ws.root,
        &ws.root.join(board),
        crate::config::VmList::HostOnly,
        &ctx,
    )?;
    let out = build_plan(ws, plan, true)?;
    let (_, outcome, raw, _) = run_built(ws, name, board, out, cpu, None)?;
    Ok((outcome, clean(&raw)))
}

/// x86_64 host start: banner with the board's 4 CPUs, RAM from 1 MiB, no VMs, the
/// failure exit of isa-debug-exit (no VM ran).
fn x86_64_host(ws: &Workspace, name: &str) -> Result<()> {
    let (outcome, out) = boot_host_only(ws, name, X86_64_BOARD, None)?;
    let mut problems = Vec::new();
    exit_status(&outcome, false, &mut problems);
    for want in [
        "on board qemu-x86_64 (4 CPUs)",
        "hv: RAM 0x100000..",
        "hv: no VMs configured",
        "hv: all VMs stopped: 0 clean, 0 faulted",
    ] {
        if !out.contains(want) {
            problems.push(format!("no line with \"{want}\""));
        }
    }
    if out.contains("hv: BUG") || out.contains("cannot start") {
        problems.push("the hypervisor failed to start".into());
    }
    verdict(&problems, &out)
}

/// x86_64 on a CPU without SVM: refused with the reason.
fn x86_64_no_svm(ws: &Workspace, name: &str) -> Result<()> {
    let (outcome, out) = boot_host_only(ws, name, X86_64_BOARD, Some("qemu64,-svm"))?;
    let mut problems = Vec::new();
    exit_status(&outcome, false, &mut problems);
    let want = "hv: cannot start: this CPU has no AMD SVM";
    if !out.contains(want) {
        problems.push(format!("no line \"{want} ...\""));
    }
    if out.contains("hv: hypervisor ") {
        problems.push("the hypervisor started on a CPU without SVM".into());
    }
    verdict(&problems, &out)
}

/// Boots `vms` on `board`, one of them with cmdline `reset`: that VM must be reset
/// by the hypervisor (asked from inside its timer interrupt handler, with the
/// interrupt active), say it booted a second time, and pass its checks both times
/// (the memory check of the second boot reads its RAM as zero before writing it);
/// every VM finishes cleanly.
fn vm_reset(ws: &Workspace, name: &str, board: &str, vms: &[&str]) -> Result<()> {
    let (plan, outcome, out) = boot(ws, name, board, vms)?;
    let mut problems = Vec::new();
    exit_status(&outcome, true, &mut problems);
    let resetting = vm_with_word(&plan, "reset", vms)?;
    let requested = format!(
        "hv: VM {} ({}) reset requested",
        resetting.id, resetting.name
    );
    if !has_line(&out, &requested) {
        problems.push(format!("no `{requested}` line"));
    }
    let lines = vm_lines(&out, &resetting.name);
    let said = [
        "testguest: resetting the VM from its timer interrupt handler",
        "testguest: boot 2 of this VM",
    ];
    for text in said
        .iter()
        .filter(|t| !lines.iter().any(|l| l.contains(*t)))
    {
        problems.push(format!("[{}] never said `{text}`", resetting.name));
    }
    let summaries: Vec<_> = lines.iter().filter_map(|l| parse_summary(l)).collect();
    if summaries.len() != 2 {
        problems.push(format!(
            "[{}] printed {} summary lines, expected 2 (one per boot)",
            resetting.name,
            summaries.len()
        ));
    }
    for vm in &plan.vms {
        check_summary(&out, &vm.name, &mut problems);
    }
    for (n, m) in summaries.iter().filter(|s| s.1 != 0 || s.0 == 0) {
        problems.push(format!(
            "[{}] a boot reported {n} passed, {m} failed",
            resetting.name
        ));
    }
    for l in lines.iter().filter(|l| l.starts_with("FAIL")) {
        problems.push(format!("[{}] {l}", resetting.name));
    }
    // The second boot finds nothing of the first in the CPU (the first leaves marks).
    let fresh = lines.iter().filter(|l| **l == "ok: fresh-state").count();
    if fresh != 2 {
        problems.push(format!(
            "[{}] `ok: fresh-state` {fresh} times, expected once per boot",
            resetting.name
        ));
    }
    let all = format!("hv: all VMs stopped: {} clean, 0 faulted", plan.vms.len());
    if !has_line(&out, &all) {
        problems.push(format!("no `{all}` line"));
    }
    verdict(&problems, &out)
}

/// The board whose QEMU boots the card image through U-Boot.
const UBOOT_BOARD: &str = "configs/board/qemu-aarch64-uboot.toml";

/// Makes the card image of the U-Boot board and boots it (U-Boot as -bios, the image
/// as a virtio disk); returns the plan, how QEMU ended and its cleaned output.
fn boot_card_image(ws: &Workspace, name: &str) -> Result<(Plan, Outcome, String)> {
    ensure_qemu(Arch::Aarch64)?;
    let opts = BuildOptions {
        config: Some(ws.root.join(UBOOT_BOARD)),
        vms: Vec::new(),
        force_bin: true,
    };
    let ctx = crate::config::Context {
        guest_crates: &ws.guest_crates,
    };
    let board_file = ws.root.join(UBOOT_BOARD);
    let plan = crate::config::load(
        &ws.root,
        &board_file,
        crate::config::VmList::FromBoard,
        &ctx,
    )?;
    let q = plan.board.qemu.clone().context("no [qemu] section")?;
    let check = crate::config::load(
        &ws.root,
        &board_file,
        crate::config::VmList::FromBoard,
        &ctx,
    )?;
    let args = crate::image::qemu::prepare(ws, plan, &opts, &q)?;
    let log = log_path(ws, name)?;
    let program = qemu_binary(&check.board);
    println!(
        "xtask: {program} {} (output in {})",
        args.join(" "),
        log.display()
    );
    let (outcome, text) = run_captured(&program, &args, QEMU_TIMEOUT, &log)?;
    Ok((check, outcome, clean(&text)))
}

fn uboot_two_vms(ws: &Workspace) -> Result<()> {
    let (plan, outcome, out) = boot_card_image(ws, "uboot-two-vms")?;
    let mut problems = Vec::new();
    exit_status(&outcome, true, &mut problems);
    let booti = format!("boot.scr: booti {:#x} - ", plan.board.hv_load_addr);
    for line in [
        "Found U-Boot script /boot.scr",
        booti.as_str(),
        "hv: hypervisor",
    ] {
        if !has_line(&out, line) {
            problems.push(format!("no `{line}` line"));
        }
    }
    for vm in &plan.vms {
        check_summary(&out, &vm.name, &mut problems);
        check_memory_line(&out, &plan, &vm.name, &mut problems);
    }
    let all = format!("hv: all VMs stopped: {} clean, 0 faulted", plan.vms.len());
    if !has_line(&out, &all) {
        problems.push(format!("no `{all}` line"));
    }
    verdict(&problems, &out)
}

/// The U-Boot board with `[uboot.tftp]` and QEMU's user network.
const UBOOT_TFTP_BOARD: &str = "xtask/tests/data/qemu-aarch64-uboot-tftp.toml";
/// vm1 built in, vm3 (`image_location = "fs"`) loaded as files by U-Boot.
const UBOOT_TFTP_VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-smp2-a.toml",
    "xtask/tests/data/fs-vm.toml",
];

/// `cargo xtask uboot --qemu` on a U-Boot board: U-Boot as -bios, no card, the
/// hypervisor sent over the pseudo-terminal serial line with YMODEM, or with TFTP
/// when the board has `[uboot.tftp]`.
fn uboot_serial(ws: &Workspace, name: &str, board: &str, vms: &[&str]) -> Result<()> {
    ensure_qemu(Arch::Aarch64)?;
    let build = BuildOptions {
        config: Some(ws.root.join(board)),
        vms: vms.iter().map(|v| ws.root.join(v)).collect(),
        force_bin: true,
    };
    let plan = super::build::load_plan(ws, &build)?;
    let log = log_path(ws, name)?;
    let opts = crate::uboot::UbootOptions {
        build,
        qemu: true,
        timeout: Some(QEMU_TIMEOUT),
        ..Default::default()
    };
    let vms: Vec<String> = plan.vms.iter().map(|v| v.name.clone()).collect();
    let hv_addr = plan.board.hv_load_addr;
    let tftp = plan.board.uboot.as_ref().is_some_and(|u| u.tftp.is_some());
    let fs_vms: Vec<String> = plan
        .vms
        .iter()
        .filter(|v| v.location == crate::config::vm::ImageLocation::Fs)
        .map(|v| v.name.clone())
        .collect();
    let (load, loaded) = if tftp {
        (
            format!("tftp {hv_addr:#x} {}/hypervisor.bin", plan.board.name),
            "Bytes transferred",
        )
    } else {
        (format!("loady {hv_addr:#x}"), "## Total Size")
    };
    println!("xtask: serial line transcript in {}", log.display());
    let ended = crate::uboot::boot(ws, plan, &opts, Some(&log), false);
    let ended = match ended {
        Ok(e) => e,
        Err(e) => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(failure(&[format!("{e:#}")], &clean(&text)));
        }
    };
    let out = clean(&ended.transcript);
    let mut problems = Vec::new();
    if ended.timed_out {
        problems.push(format!("timed out after {} s", QEMU_TIMEOUT.as_secs()));
    }
    if ended.qemu_ok != Some(true) {
        problems.push("QEMU did not exit 0".into());
    }
    let booti = format!("booti {hv_addr:#x} - ");
    let mut lines = vec![
        load,
        loaded.to_string(),
        booti,
        "Starting kernel".to_string(),
    ];
    for vm in &fs_vms {
        // The fs VM's config, sent like the hypervisor, and described to it.
        lines.push(format!("vms/{vm}.toml"));
        lines.push("hv,vm-config".to_string());
    }
    lines.push("hv: hypervisor".to_string());
    for line in lines {
        if !has_line(&out, &line) {
            problems.push(format!("no `{line}` line"));
        }
    }
    for vm in &vms {
        check_summary(&out, vm, &mut problems);
    }
    let all = format!("hv: all VMs stopped: {} clean, 0 faulted", vms.len());
    if !has_line(&out, &all) {
        problems.push(format!("no `{all}` line"));
    }
    verdict(&problems, &out)
}

/// What `cargo xtask build --vm bad-vm.toml` must say: key and reason per problem.
const BAD_VM_ERRORS: &[(&str, &str)] = &[
    ("base.phys_cpu_ids", "has 1 entries but cpu_num = 2"),
    (
        "kernel.memory_regions[1]",
        "overlaps kernel.memory_regions[0]",
    ),
    ("devices.emu_devices[0][4]", "unknown emu_type 0x99"),
    ("devices.emu_devices[1][3]", "irq_id 5 is an SGI"),
    ("devices.emu_devices[2][4]", "is a riscv64 device"),
];

/// Runs `xtask build` on the bad config with `$CARGO` pointing at a shim that logs
/// every cargo invocation, then checks the messages and that no build was started.
fn bad_config(ws: &Workspace) -> Result<()> {
    let dir = ws.target_dir.join("hv").join("test-shim");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let shim = dir.join("cargo");
    let calls = dir.join("cargo-calls.log");
    let _ = std::fs::remove_file(&calls);
    write_shim(&shim)?;
    let exe = xtask_exe()?;
    let output = Command::new(&exe)
        .current_dir(&ws.root)
        .args(["build", "--config", DEFAULT_BOARD, "--vm", BAD_VM])
        .env("CARGO", &shim)
        .env("XTASK_SHIM_LOG", &calls)
        .env("XTASK_REAL_CARGO", cargo())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let text = clean(&format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ));
    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    let problems = bad_config_problems(output.status.success(), &text, &calls);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(failure(&problems, &text))
    }
}

/// This program's executable. `cargo test --workspace` (the unit-test step) may have
/// rebuilt it under the same path meanwhile: Linux then names the running one
/// `<path> (deleted)`, and the fresh file at `<path>` is the one to run.
pub(super) fn xtask_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the xtask executable")?;
    Ok(live_exe(exe))
}

/// `exe`, or the path it was rebuilt at when the running file was replaced.
fn live_exe(exe: PathBuf) -> PathBuf {
    if exe.exists() {
        return exe;
    }
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(p) => PathBuf::from(p),
        None => exe,
    }
}

fn write_shim(shim: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let script = "#!/bin/sh\n# Written by `cargo xtask test` (bad-config): logs each cargo call.\n\
                  printf '%s\\n' \"$*\" >> \"$XTASK_SHIM_LOG\"\nexec \"$XTASK_REAL_CARGO\" \"$@\"\n";
    std::fs::write(shim, script).with_context(|| format!("cannot write {}", shim.display()))?;
    std::fs::set_permissions(shim, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", shim.display()))
}

/// What is wrong with a bad-config run: its success, its output, its cargo calls.
fn bad_config_problems(succeeded: bool, text: &str, calls: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if succeeded {
        problems.push("`xtask build` accepted the bad config".to_string());
    }
    for (key, reason) in BAD_VM_ERRORS {
        let found = text.lines().any(|l| {
            l.contains(&format!("{BAD_VM}:"))
                && l.contains(&format!(": {key}: "))
                && l.contains(reason)
        });
        if !found {
            problems.push(format!(
                "no error naming {BAD_VM}, key {key} and reason `{reason}`"
            ));
        }
    }
    if !calls.lines().any(|l| l.starts_with("metadata")) {
        problems.push(
            "the cargo shim saw no `cargo metadata` call: cannot tell whether a build was started"
                .into(),
        );
    }
    for call in calls
        .lines()
        .filter(|l| l.starts_with("build") || l.starts_with("rustc"))
    {
        problems.push(format!(
            "a build was started although the config is bad: cargo {call}"
        ));
    }
    problems
}

/// The scenario `bench-smoke`: each bench once per side on the default board; what
/// it printed and logged is checked, never its values.
fn bench_smoke(ws: &Workspace) -> Result<()> {
    use super::bench::{self, BenchOptions};
    let board = ws.root.join(DEFAULT_BOARD);
    let opts_on = |board: &std::path::Path, what: &str, icount: bool| BenchOptions {
        what: what.into(),
        config: Some(board.to_path_buf()),
        vm: None,
        runs: 1,
        marker: None,
        timeout: QEMU_TIMEOUT,
        icount,
        exits: false,
    };
    let opts = |what: &str, icount: bool| opts_on(&board, what, icount);
    let mut problems = Vec::new();
    let mut printed = String::new();
    // Every bench once; `--icount` once, on linux-boot (cpu --icount, in `bench
    // all`, runs the same code path and would only lengthen the test run).
    for &(what, icount) in bench::ALL_BENCHES {
        if icount && what != "linux-boot" {
            continue;
        }
        let o = opts(what, icount);
        let f = bench::run_one(ws, &board, what, None, &o)?;
        let text = bench::report::figures_text(&f);
        print!("{text}");
        printed.push_str(&text);
        bench_smoke_problems(&f, &text, &mut problems);
    }
    // x86_64's bare side (boot ROM, the Multiboot description, the loaded image) once,
    // with mmio, which also names its register (about 15 s; the other x86 test-guest
    // benches take the same path and would add about 80 s).
    let x86 = ws.root.join("configs/board/qemu-x86_64.toml");
    let f = bench::run_one(ws, &x86, "mmio", None, &opts_on(&x86, "mmio", false))?;
    let text = bench::report::figures_text(&f);
    print!("{text}");
    printed.push_str(&text);
    bench_smoke_problems(&f, &text, &mut problems);
    if f.register.as_deref() != Some("lapic-version") {
        problems.push(format!(
            "bench mmio on qemu-x86_64: read {:?}, not the local APIC's version register",
            f.register
        ));
    }
    // bench ivc once: every figure is there (their values are not judged).
    let f = bench::ivc::ivc(ws, &opts("ivc", false))?;
    let text = bench::ivc::table(&f, "qemu-aarch64");
    printed.push_str(&text);
    let zero = [
        ("round trip median", f.round_trip_median_ns),
        ("self-IPI median", f.self_ipi_median_ns),
        ("memcpy", f.memcpy_kib_s),
    ];
    for (what, v) in zero.iter().filter(|(_, v)| *v == 0) {
        problems.push(format!("bench ivc: {what} is {v}"));
    }
    verdict(&problems, &printed)
}

/// What is missing from one bench's figures, text and logs.
fn bench_smoke_problems(f: &super::bench::Figures, text: &str, problems: &mut Vec<String>) {
    let what = format!("bench {} ({})", f.bench, f.mode);
    if f.hv.len() != 1 || f.bare.len() != 1 || f.ratio.n != 1 {
        problems.push(format!(
            "{what}: {} hypervisor and {} bare figures, {} ratios, not one each",
            f.hv.len(),
            f.bare.len(),
            f.ratio.n
        ));
    }
    // hypercall's baseline is a loop in the same run under the hypervisor.
    let (compared, sides): (&str, &[&str]) = if f.bench == "hypercall" {
        ("hypercall / trapless loop", &["hv"])
    } else {
        ("hypervisor / bare", &["hv", "bare"])
    };
    let first = compared.split(" / ").next().unwrap_or("");
    let wanted = [
        format!(
            "{what} on {}: ratio {compared}, median of 1 pairs: ",
            f.board
        ),
        format!("for reference, medians: {first} "),
    ];
    for w in &wanted {
        if !text.contains(w.as_str()) {
            problems.push(format!("{what} did not print `{w}`"));
        }
    }
    // The test guest's benches time on its counter, no clock line to name.
    if f.mode == "icount" && f.bench == "linux-boot" && f.clock.is_none() {
        problems.push(format!("{what}: no guest clock named"));
    }
    for (side, cmd) in [("hv", &f.hv_command), ("bare", &f.bare_command)] {
        if !sides.contains(&side) {
            continue;
        }
        // x86 has no device tree: the boot ROM and the loader put the description in.
        let wanted: &[&str] = match (side, f.board.as_str()) {
            ("bare", "qemu-x86_64") => &[" -bios ", " -device loader,"],
            ("bare", _) => &[" -dtb ", " -kernel "],
            _ => &[" -kernel "],
        };
        for w in wanted.iter().filter(|w| !cmd.contains(**w)) {
            problems.push(format!(
                "{what}: the {side} QEMU command has no{w}: `{cmd}`"
            ));
        }
        let log = std::path::Path::new(&f.logs)
            .join(format!("{}-{}-{}-1-{side}.log", f.bench, f.board, f.mode));
        match std::fs::read_to_string(&log) {
            Ok(t) if t.contains(&f.marker) => {}
            Ok(_) => problems.push(format!("{}: no `{}` line", log.display(), f.marker)),
            Err(e) => problems.push(format!("{}: {e}", log.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARGO_TEST: &str = "   Compiling xtask v0.1.0
     Running unittests src/lib.rs (target/debug/deps/hypervisor-1a2b3c)

running 3 tests
test a ... ok
test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running unittests src/main.rs (target/debug/deps/xtask-99ff)
test result: FAILED. 40 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.10s

   Doc-tests hypervisor
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    #[test]
    fn counts_per_test_binary() {
        let bins = parse_test_output(CARGO_TEST);
        assert_eq!(
            bins,
            vec![
                BinResult {
                    name: "hypervisor unittests src/lib.rs".into(),
                    passed: 3,
                    failed: 0
                },
                BinResult {
                    name: "xtask unittests src/main.rs".into(),
                    passed: 40,
                    failed: 2
                },
                BinResult {
                    name: "hypervisor (doc-tests)".into(),
                    passed: 0,
                    failed: 0
                },
            ]
        );
    }

    #[test]
    fn a_binary_rebuilt_in_place_is_run_from_its_path() {
        let gone = PathBuf::from("/nonexistent-dir/xtask (deleted)");
        assert_eq!(live_exe(gone), PathBuf::from("/nonexistent-dir/xtask"));
        let here = std::env::current_exe().unwrap();
        assert_eq!(live_exe(here.clone()), here);
    }

    #[test]
    fn ivc_lines_are_parsed() {
        assert_eq!(
            parse_ivc_line(
                "testguest: ivc: member 1: 1000 sent, 999 received, 1 bad, 998 interrupts"
            ),
            Some((1, [1000, 999, 1, 998]))
        );
        assert_eq!(
            parse_ivc_line("testguest: ivc: member 0: 1000 sent, 1000 received"),
            None
        );
        assert_eq!(
            parse_ivc_line("testguest: ivc: member 0: 10 received, 10 sent, 0 bad"),
            None
        );
        assert_eq!(parse_ivc_line("ok: ivc"), None);
    }

    #[test]
    fn summary_and_memory_lines() {
        assert_eq!(parse_summary("12 passed, 0 failed"), Some((12, 0)));
        assert_eq!(parse_summary("ok: timer"), None);
        assert_eq!(
            parse_memory("0x40000000..0x41000000"),
            Some(Range::new(0x4000_0000, 0x100_0000))
        );
        assert_eq!(parse_memory("0x41000000..0x40000000"), None);
    }

    #[test]
    fn vm_output_is_found_by_prefix() {
        let out = "hv: starting\n[vm1] ok: uart\n[vm1] 5 passed, 0 failed\n[vm2] 4 passed, 1 failed\n[vm2] FAIL: timer: no interrupt\n";
        let mut problems = Vec::new();
        check_summary(out, "vm1", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        check_summary(out, "vm2", &mut problems);
        assert_eq!(
            problems,
            [
                "[vm2] reported 4 passed, 1 failed",
                "[vm2] FAIL: timer: no interrupt"
            ]
        );
        problems.clear();
        check_summary(out, "vm3", &mut problems);
        assert_eq!(problems.len(), 1);
        problems.clear();
        check_summary("[vm1] 0 passed, 0 failed\n", "vm1", &mut problems);
        assert_eq!(problems.len(), 1, "zero checks is a failure");
        problems.clear();
        let split = "[vm1] 8 passed, 0 fa\n[vm3] ok: x\n[vm1] iled\n";
        check_summary(split, "vm1", &mut problems);
        assert!(
            problems.is_empty(),
            "a line split by another VM's: {problems:?}"
        );
    }

    #[test]
    fn cpu_features_of_linux_are_judged() {
        // What Debian's Linux printed on QEMU's cortex-a76 under the hypervisor.
        let a76 = ["linux-up", "aarch64", "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"];
        assert!(feature_problems(&a76).is_empty());
        // What `-cpu max` shows without sanitised ID registers.
        let max = ["Features : fp asimd sve paca pacg cpuid mte bti"];
        let p = feature_problems(&max);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("`sve`"), "{p:?}");
        let bare = ["Features\t: evtstrm"];
        assert_eq!(feature_problems(&bare).len(), KEPT_FEATURES.len());
        assert_eq!(
            feature_problems(&["linux-up"]),
            ["no `[linux] Features : ...` line (from /proc/cpuinfo)"]
        );
    }

    #[test]
    fn the_cpu_scenarios_linux_config_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let g = vec!["testguest".to_string()];
        let vms = [root.join(LINUX_FEATURES_VM)];
        let plan = crate::config::load(
            root,
            &root.join(DEFAULT_BOARD),
            crate::config::VmList::Override(&vms),
            &crate::config::Context { guest_crates: &g },
        )
        .unwrap_or_else(|e| panic!("{LINUX_FEATURES_VM}: {e}"));
        assert_eq!(plan.vms.len(), 1);
        assert_eq!(
            plan.vms[0].name, "linux",
            "the checks look for [linux] lines"
        );
        assert!(plan.vms[0]
            .cmdline
            .contains("grep -m1 Features /proc/cpuinfo"));
    }

    #[test]
    fn the_bad_config_file_gives_the_expected_errors() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let g = vec!["testguest".to_string()];
        let vms = [root.join(BAD_VM)];
        let result = crate::config::load(
            root,
            &root.join(DEFAULT_BOARD),
            crate::config::VmList::Override(&vms),
            &crate::config::Context { guest_crates: &g },
        );
        let Err(crate::config::ConfigError(report)) = result else {
            panic!("{BAD_VM} was accepted");
        };
        let text = report.to_string();
        assert!(
            bad_config_problems(false, &text, "metadata\n").is_empty(),
            "{text}"
        );
    }

    #[test]
    fn console_verdicts() {
        let raw = format!(
            "{PROMPT}hello\r\n[vm1] testguest: read \"hello console\"\r\n{COLOURS}\x1b[0m\r\n{DEFANGED}\r\n"
        );
        let out = clean(&raw);
        assert!(console_problems(&raw, &out, true).is_empty());
        assert_eq!(console_problems(&raw, &out, false).len(), 1, "not typed");
        let forged = raw.replace(
            "cursor:hv: VM 9",
            "cursor:\x1b[2J\x1b]0;t\x07\r\nhv: VM 9 (forged) powered off\r\nhv: VM 9",
        );
        assert_eq!(
            console_problems(&forged, &clean(&forged), true).len(),
            5,
            "the line not whole, clear screen, title, two forged lines"
        );
        let greyed = raw.replace("\x1b[1;32m", "?[1;32m");
        assert_eq!(console_problems(&greyed, &clean(&greyed), true).len(), 1);
    }

    #[test]
    fn bad_config_verdicts() {
        let good_text = "error: xtask/tests/data/bad-vm.toml:9:1: base.phys_cpu_ids: has 1 entries but cpu_num = 2\n\
                         error: xtask/tests/data/bad-vm.toml:18:5: kernel.memory_regions[1]: region x overlaps kernel.memory_regions[0] (y)\n\
                         error: xtask/tests/data/bad-vm.toml:24:38: devices.emu_devices[0][4]: unknown emu_type 0x99 (known: ...)\n\
                         error: xtask/tests/data/bad-vm.toml:26:38: devices.emu_devices[1][3]: irq_id 5 is an SGI (...)\n\
                         error: xtask/tests/data/bad-vm.toml:27:38: devices.emu_devices[2][4]: emu_type 0x30 (...) is a riscv64 device: ...\n";
        let calls = "metadata --format-version 1 --manifest-path x --no-deps\n";
        assert!(bad_config_problems(false, good_text, calls).is_empty());
        assert_eq!(bad_config_problems(true, good_text, calls).len(), 1);
        let built = format!("{calls}build -p hypervisor --release\n");
        assert_eq!(bad_config_problems(false, good_text, &built).len(), 1);
        assert_eq!(
            bad_config_problems(false, good_text, "").len(),
            1,
            "no shim log: cannot judge"
        );
        let missing = good_text.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(bad_config_problems(false, &missing, calls).len(), 3);
    }
}
