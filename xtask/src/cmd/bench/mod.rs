//! `cargo xtask bench`: speed measured as ratios taken side by side in one run.
//!
//! Every bench boots the same guest under the hypervisor and straight on QEMU
//! ("bare": the board's machine without virtualization, the VM's vCPUs, RAM and
//! command line, and the device tree the hypervisor generates for the VM), in pairs: run i under the hypervisor and bare run i are next to
//! each other in time (which one goes first alternates), so the ratio of a pair is
//! taken under the same load of the host. The figure is the median of the per-pair
//! ratios with their spread; the medians of both sides are only for reference.
//!
//! - `linux-boot`: the VM's Linux kernel and initramfs to the marker line
//!   (`guest-init: ready`). Wall-clock time from QEMU's start (both sides pay the same
//!   QEMU start-up); with `--icount` (QEMU `-icount shift=0,sleep=off` on both sides: guest time
//!   follows executed instructions, 1 ns each) the guest's own clock at the marker,
//!   which does not depend on the host's load. The initramfs is the pulled one with
//!   the current `/init` appended (it prints `guest-init: uptime <s>` before the
//!   marker), on both sides.
//! - `tiny-boot`: a test-guest VM from QEMU's start to its first line
//!   (`testguest: vCPU 0 up`); bare, the same raw image is QEMU's `-kernel` (the
//!   aarch64 test guest has an arm64 Image header, the riscv64 one is linked where
//!   OpenSBI jumps to); on x86_64 the part its Multiboot header names is loaded at
//!   its address and entered by xtask's boot ROM ([`x86boot`]).
//!
//! The bare side's device tree: before the timed runs the hypervisor is built once
//! with feature `dump-guest-dtb` and booted until it has printed the VM's generated
//! DTB (`vmconfig::dtbdump`); bare QEMU gets that DTB with `-dtb`. QEMU writes its own
//! memory node, `-initrd` and `-append` into it, which say the same as the VM's. On
//! riscv64 the CLINT and test device of QEMU's own tree are added to it: OpenSBI,
//! which runs under the bare guest only, needs them for its timer, inter-processor
//! interrupts and reset (see [`dtb`]). The devices the guest sees are at the same
//! addresses on both sides (QEMU virt's layout). x86_64 has no device tree: the dump
//! is the VM's boot description (a Linux zero page with its command line and ACPI
//! tables, or a Multiboot information block with the memory map and command line),
//! which bare QEMU loads at the VM's address with the kernel and initramfs, started
//! by xtask's boot ROM as the hypervisor starts vCPU 0 (see [`x86boot`]).
//! - `hypercall`, `mmio`, `irq`, `cpu`: the test guest booted with `bench=<name>`
//!   times one operation itself on its counter and prints
//!   `testguest: bench <name> ns=...` ([`parse::guest_bench`]); `hypercall`'s baseline
//!   is a trapless loop timed in the same run under the hypervisor (bare, there is no
//!   hypervisor to call), the others run under the hypervisor and bare.
//!   `mmio` reads an emulated register, named by the guest's `reg=`: the UART's
//!   status register, or on x86_64 (a port I/O UART) the local APIC's version
//!   register by MMIO.
//! - `all`: all of them ([`ALL_BENCHES`]), on the QEMU boards ([`report::ALL_BOARDS`]),
//!   written as a Markdown table and a JSON file.
//! - `ivc` ([`ivc`]): inter-VM channel round trips and bulk copies against a self-IPI
//!   and memcpy inside one VM, in one run under the hypervisor (no bare side).
//!
//! Each run's console output is kept under `target/hv/bench-logs/`.
pub mod dtb;
pub mod ivc;
pub mod parse;
pub mod report;
#[cfg(test)]
mod tests;
pub mod x86boot;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cmd::build::{board_file, build_plan, load_plan, BuildOptions};
use crate::config::vm::{ImageSource, ImageSpec};
use crate::config::{Arch, Board};
use crate::qemu::{qemu_args, qemu_binary};
use crate::workspace::Workspace;
use parse::{guest_time, pair_ratios, summarize, Clock, Summary};

/// The benches `cargo xtask bench` knows.
pub const BENCHES: &[&str] = &[
    "linux-boot",
    "tiny-boot",
    "hypercall",
    "mmio",
    "irq",
    "cpu",
    "all",
    "ivc",
];
/// The benches the test guest measures itself (boot argument `bench=<name>`).
pub const GUEST_BENCHES: &[&str] = &["hypercall", "mmio", "irq", "cpu"];
/// The line of the initramfs's /init that ends a Linux boot.
pub const LINUX_MARKER: &str = "guest-init: ready";
/// The test guest's first line.
pub const TINY_MARKER: &str = "testguest: vCPU 0 up";
/// The QEMU arguments of the deterministic mode: 1 instruction = 1 ns of guest time,
/// and an idle guest's clock jumps to its next timer instead of following the host's
/// clock while it waits (`sleep=on`, QEMU's default, made the figure depend on the
/// host's load wherever a guest idles).
const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

pub struct BenchOptions {
    pub what: String,
    pub config: Option<PathBuf>,
    pub vm: Option<PathBuf>,
    pub runs: usize,
    pub marker: Option<String>,
    pub timeout: Duration,
    pub icount: bool,
    /// linux-boot: after the pairs, one more boot under a `log = "Debug"` build to
    /// the VM's power-off, for the hypervisor's exit counts by kind.
    pub exits: bool,
}

/// What one bench measured, both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// `linux-boot`, `tiny-boot` or one of [`GUEST_BENCHES`].
    pub bench: String,
    /// `wall` (seconds from QEMU's start to the marker), `icount` (the guest's own
    /// time under `-icount shift=0,sleep=off`) or `guest` (what the test guest timed on its
    /// counter).
    pub mode: String,
    /// What the ratio divides: `hypervisor / bare`, or for `hypercall`
    /// `hypercall / trapless loop` (both from the run under the hypervisor; `bare`
    /// then holds the loop's figures).
    pub compared: String,
    /// The unit of `hv` and `bare`: `s wall`, `s guest time` or `ns`.
    pub unit: String,
    pub board: String,
    /// The VM config file.
    pub vm: String,
    pub marker: String,
    /// Where the guest time came from (icount mode).
    pub clock: Option<Clock>,
    pub hv: Vec<f64>,
    pub bare: Vec<f64>,
    pub hv_median: f64,
    pub bare_median: f64,
    /// The per-pair ratios hypervisor / bare.
    pub ratios: Vec<f64>,
    pub ratio: Summary,
    pub hv_command: String,
    pub bare_command: String,
    /// The directory with the runs' console logs.
    pub logs: String,
    /// With `--exits` (linux-boot): the hypervisor's exit counts of one more boot
    /// (its `hv: VM .. exits:` line, from `total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exits: Option<String>,
    /// `mmio`: the emulated register the guest read (its `reg=`: `uart-fr`,
    /// `uart-lsr` or on x86 `lapic-version`), the same on both sides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
}

/// `cargo xtask bench WHAT`.
pub fn bench(ws: &Workspace, o: &BenchOptions) -> Result<()> {
    match o.what.as_str() {
        "linux-boot" | "tiny-boot" | "hypercall" | "mmio" | "irq" | "cpu" => {
            let board = board_file(ws, &build_options(o.config.clone(), vec![]));
            let f = run_one(ws, &board, &o.what, o.vm.clone(), o)?;
            print!("{}", report::figures_text(&f));
            Ok(())
        }
        "all" => all(ws, o),
        "ivc" => ivc::ivc(ws, o).map(|_| ()),
        other => bail!(
            "unknown benchmark `{other}`: the benchmarks are: {}",
            BENCHES.join(", ")
        ),
    }
}

/// Bench `what` (not `all`) on `board`.
pub fn run_one(
    ws: &Workspace,
    board: &Path,
    what: &str,
    vm: Option<PathBuf>,
    o: &BenchOptions,
) -> Result<Figures> {
    match what {
        "linux-boot" => linux_boot(ws, board, vm, o),
        "tiny-boot" => tiny_boot(ws, board, vm, o),
        name => guest_bench(ws, board, name, vm, o),
    }
}

fn build_options(config: Option<PathBuf>, vms: Vec<PathBuf>) -> BuildOptions {
    BuildOptions {
        config,
        vms,
        force_bin: true,
    }
}

/// The board file's board (for its architecture and GIC before anything is built).
fn load_board(ws: &Workspace, path: &Path) -> Result<Board> {
    let (board, report) = crate::config::board::load_board(path, &ws.root);
    board.ok_or_else(|| crate::config::ConfigError(report).into())
}

/// The VM config a bench uses on `board` when `--vm` is not given (`icount`: for
/// `--icount`).
///
/// riscv64 `linux-boot --icount` boots 1 vCPU: under `-icount` QEMU 7.2 runs all
/// emulated harts on one thread in turns of up to 100 ms of guest time, and bare
/// Linux's remote TLB fences go through OpenSBI, which spins in M-mode until every
/// target hart has fenced, so each fence waits for the target's next turn: with 2
/// harts the bare boot takes minutes of guest time (it sits in OpenSBI's fence wait)
/// and the figure would measure QEMU's scheduling, not the hypervisor.
pub fn default_vm(bench: &str, board: &Board, icount: bool) -> Result<&'static str> {
    let gicv2 = matches!(board.gic, Some((2, _)));
    let asked = bench;
    // The guest benches boot tiny-boot's test-guest VM.
    let bench = if GUEST_BENCHES.contains(&bench) {
        "tiny-boot"
    } else {
        bench
    };
    Ok(match (bench, board.arch, gicv2) {
        ("linux-boot", Arch::Riscv64, _) if icount => "configs/vms/linux-riscv64-qemu-smp1.toml",
        ("linux-boot", Arch::Aarch64, false) => "configs/vms/linux-aarch64-qemu-smp2.toml",
        ("linux-boot", Arch::Aarch64, true) => "configs/vms/linux-aarch64-qemu-gicv2-smp2.toml",
        ("linux-boot", Arch::Riscv64, _) => "configs/vms/linux-riscv64-qemu-smp2.toml",
        // x86_64 --icount boots 1 vCPU too: with 2, the VM's Linux stalls under
        // -icount after its RTC probe (not understood yet; without -icount it boots).
        ("linux-boot", Arch::X86_64, _) if icount => "configs/vms/linux-x86_64-qemu-smp1.toml",
        ("linux-boot", Arch::X86_64, _) => "configs/vms/linux-x86_64-qemu-smp2.toml",
        ("tiny-boot", Arch::Aarch64, false) => "configs/vms/testguest-aarch64-qemu-smp2-a.toml",
        ("tiny-boot", Arch::Aarch64, true) => {
            "configs/vms/testguest-aarch64-qemu-gicv2-smp2-a.toml"
        }
        ("tiny-boot", Arch::Riscv64, _) => "configs/vms/testguest-riscv64-qemu-smp2-a.toml",
        ("tiny-boot", Arch::X86_64, _) => "configs/vms/testguest-x86_64-qemu-smp2-a.toml",
        (_, arch, _) => bail!(
            "not supported yet: {asked} on {} (board {}): give a VM config with --vm",
            arch.name(),
            board.name
        ),
    })
}

/// The bench on `board`: boots the Linux VM `vm` (default: [`default_vm`]) to the
/// marker, in pairs.
pub fn linux_boot(
    ws: &Workspace,
    board_path: &Path,
    vm: Option<PathBuf>,
    o: &BenchOptions,
) -> Result<Figures> {
    let board = load_board(ws, board_path)?;
    let vm_path = match vm {
        Some(v) => v,
        None => ws.root.join(default_vm("linux-boot", &board, o.icount)?),
    };
    crate::host_tools::ensure_qemu(board.arch)?;
    crate::guest::ensure_pulled(&ws.root, &format!("linux-{}", board.arch.name()))?;
    let opts = build_options(Some(board_path.to_path_buf()), vec![vm_path.clone()]);
    let mut plan = load_plan(ws, &opts)?;
    anyhow::ensure!(
        plan.vms.len() == 1,
        "linux-boot boots one VM, the plan has {}",
        plan.vms.len()
    );
    // Both sides get the pulled initramfs with the current /init appended.
    let bench_dir = ws.target_dir.join("hv").join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("cannot create {}", bench_dir.display()))?;
    let vm = &mut plan.vms[0];
    let vm_name = vm.cfg.name.clone();
    if let Some(rd) = vm.cfg.ramdisk.as_mut() {
        let pulled = file_of(rd)?;
        let base =
            std::fs::read(&pulled).with_context(|| format!("cannot read {}", pulled.display()))?;
        let bytes = crate::guest::initramfs::with_current_init(&base)?;
        let overlay = bench_dir.join(format!("initramfs-{}-{vm_name}.cpio.gz", board.name));
        // Rewritten only when it changes: the build bundles it, and a new file
        // would rebuild the hypervisor.
        if std::fs::read(&overlay).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&overlay, bytes)
                .with_context(|| format!("cannot write {}", overlay.display()))?;
        }
        rd.source = ImageSource::File(overlay);
    }
    let (out, dtb) = build_with_guest_dtb(ws, plan, o.timeout, false, o.icount)?;
    let bin = out.qemu_kernel()?;
    let vm = out.plan.vms.first().context("no VM to benchmark")?;
    let kernel = file_of(&vm.kernel)?;
    let bare = bare_side(&out.plan.board, vm, &kernel, &dtb)?;
    let marker = o.marker.clone().unwrap_or_else(|| LINUX_MARKER.into());
    let setup = Setup::new(
        "linux-boot",
        Measure::Boot,
        &out.plan.board,
        vm,
        &vm_path,
        &marker,
        &bin,
        bare,
    )?;
    let mut figures = paired(ws, &setup, o)?;
    if o.exits {
        figures.exits = Some(exit_counts(ws, out.plan, o.timeout)?);
    }
    Ok(figures)
}

/// `--exits`: builds `plan` (one VM) with `log = "Debug"`, boots it under the
/// hypervisor until every VM has stopped and returns the VM's exit counts, which the
/// hypervisor prints when a VM stops at that level. The VM must power off by itself
/// (the Linux VMs do after their `run=` command).
fn exit_counts(ws: &Workspace, mut plan: crate::config::Plan, timeout: Duration) -> Result<String> {
    plan.board.log = crate::config::board::LogLevel::Debug;
    let out = build_plan(ws, plan, true)?;
    // What `run` boots: the raw binary, or on x86_64 the ELF (QEMU's Multiboot).
    let bin = out.qemu_kernel()?;
    let vm = out.plan.vms.first().context("no VM to benchmark")?;
    let log = ws
        .target_dir
        .join("hv")
        .join("bench-logs")
        .join(format!("{}-exits.log", out.plan.board.name));
    let args = hv_args(&out.plan.board, vm, &bin)?;
    println!("  exits: one more boot under a log = \"Debug\" build, to the VM's power-off");
    let run = run_to_marker(
        &qemu_binary(&out.plan.board),
        &args,
        parse::ALL_STOPPED,
        timeout,
        &log,
    )
    .with_context(|| format!("the boot for the exit counts (log {})", log.display()))?;
    parse::exit_counts(&run.text, &vm.name)
        .map(String::from)
        .with_context(|| format!("no exit counts of VM {} in {}", vm.name, log.display()))
}

/// The bench on `board`: a test-guest VM from QEMU's start to its first line.
pub fn tiny_boot(
    ws: &Workspace,
    board_path: &Path,
    vm: Option<PathBuf>,
    o: &BenchOptions,
) -> Result<Figures> {
    if o.icount {
        bail!("not supported yet: tiny-boot --icount (the test guest prints no time of its own)");
    }
    test_guest(ws, board_path, "tiny-boot", vm, o)
}

/// The bench `name` of [`GUEST_BENCHES`] on `board`: a test-guest VM (default: the
/// one of `tiny-boot`) booted with `bench=<name>` added to its command line times
/// the operation itself and prints its figure; under the hypervisor and bare, in
/// pairs, except `hypercall`, whose baseline (a loop that traps nowhere) is timed
/// in the same run under the hypervisor (a bare guest has no hypervisor to call).
pub fn guest_bench(
    ws: &Workspace,
    board_path: &Path,
    name: &str,
    vm: Option<PathBuf>,
    o: &BenchOptions,
) -> Result<Figures> {
    let bench = GUEST_BENCHES
        .iter()
        .copied()
        .find(|b| *b == name)
        .with_context(|| format!("`{name}` is not a guest bench"))?;
    if o.marker.is_some() {
        bail!("{name}: the marker is the guest's result line: drop --marker");
    }
    test_guest(ws, board_path, bench, vm, o)
}

/// `tiny-boot` or one of [`GUEST_BENCHES`] (then with `bench=<name>` on the VM's
/// command line) of a test-guest VM; bare, the same raw image is QEMU's `-kernel`.
fn test_guest(
    ws: &Workspace,
    board_path: &Path,
    bench: &'static str,
    vm: Option<PathBuf>,
    o: &BenchOptions,
) -> Result<Figures> {
    let board = load_board(ws, board_path)?;
    let vm_path = match vm {
        Some(v) => v,
        None => ws.root.join(default_vm(bench, &board, o.icount)?),
    };
    crate::host_tools::ensure_qemu(board.arch)?;
    let opts = build_options(Some(board_path.to_path_buf()), vec![vm_path.clone()]);
    let mut plan = load_plan(ws, &opts)?;
    let vm = plan.vms.first_mut().context("no VM to benchmark")?;
    let ImageSource::Guest(krate) = &vm.cfg.kernel.source else {
        bail!(
            "{}: {bench} needs a test-guest VM (kernel_path = \"guest:testguest\")",
            vm.src.shown
        );
    };
    let krate = krate.clone();
    let (measure, marker) = match bench {
        "tiny-boot" => (
            Measure::Boot,
            o.marker.clone().unwrap_or_else(|| TINY_MARKER.into()),
        ),
        "hypercall" => (Measure::GuestWithBaseline, parse::guest_bench_marker(bench)),
        _ => (Measure::Guest, parse::guest_bench_marker(bench)),
    };
    if measure != Measure::Boot {
        vm.cfg.cmdline = format!("{} bench={bench}", vm.cfg.cmdline)
            .trim()
            .to_string();
    }
    // A guest bench's figure is timed by the guest after its VM started: the DTB
    // printed before does not count, so the build that printed it is the timed one.
    let (out, dtb) = build_with_guest_dtb(ws, plan, o.timeout, measure != Measure::Boot, o.icount)?;
    let bin = out.qemu_kernel()?;
    let vm = out.plan.vms.first().context("no VM to benchmark")?;
    let image = ws
        .board_dir(&out.plan.board.name)
        .join("guests")
        .join(format!("{krate}.bin"));
    let bare = bare_side(&out.plan.board, vm, &image, &dtb)?;
    let setup = Setup::new(
        bench,
        measure,
        &out.plan.board,
        vm,
        &vm_path,
        &marker,
        &bin,
        bare,
    )?;
    paired(ws, &setup, o)
}

/// The hypervisor side: the board's QEMU command with only the emulated CPUs up to
/// the last one the VM is placed on. Idle emulated CPUs are not free under QEMU
/// (every broadcast TLB invalidation of the guest waits for them), unlike idle cores
/// on hardware, so the board's full `smp` would measure QEMU.
fn hv_args(board: &Board, vm: &crate::config::Vm, bin: &Path) -> Result<Vec<String>> {
    let q = board
        .qemu
        .as_ref()
        .context("the board has no [qemu] section: cannot benchmark")?;
    let hv_board = Board {
        smp: vm.pcpus.iter().max().map_or(board.smp, |&c| c + 1),
        ..board.clone()
    };
    Ok(qemu_args(&hv_board, q, bin))
}

/// The feature of the hypervisor build that prints each VM's generated DTB.
const DUMP_FEATURE: &str = "dump-guest-dtb";

/// Builds `plan` (one VM) with feature `dump-guest-dtb`, boots it under the
/// hypervisor until the VM's generated device tree has been printed, and writes that
/// DTB (for the bare side, see [`bare_dtb`]) to `target/hv/bench/`. The bare side
/// boots with it: the device description the guest gets, written by the
/// hypervisor's own code. Then, unless `keep` (a figure the guest times itself,
/// after the printing), builds `plan` as it is, so that timed boots print nothing
/// extra.
fn build_with_guest_dtb(
    ws: &Workspace,
    mut plan: crate::config::Plan,
    timeout: Duration,
    keep: bool,
    icount: bool,
) -> Result<(crate::cmd::build::BuildOutput, PathBuf)> {
    anyhow::ensure!(
        plan.vms.len() == 1,
        "a bench boots one VM, the plan has {}",
        plan.vms.len()
    );
    let feature_added = !plan.board.features.iter().any(|f| f == DUMP_FEATURE);
    if feature_added {
        plan.board.features.push(DUMP_FEATURE.into());
    }
    let out = build_plan(ws, plan, true)?;
    let bin = out.qemu_kernel()?;
    let vm = out.plan.vms.first().context("no VM to benchmark")?;
    let name = vm.name.clone();
    let dir = ws.target_dir.join("hv").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join(format!("guest-dtb-{}-{name}.log", out.plan.board.name));
    let mut args = hv_args(&out.plan.board, vm, &bin)?;
    // x86's description holds what the hypervisor measured at boot (the TSC rate in
    // Linux's `tsc_early_khz=`), so it is made under the clock the timed runs have:
    // under -icount the TSC ticks at 1 GHz of instructions, not at the host's rate
    // (bare Linux's clock ran 2.5 times slow before, until its watchdog noticed).
    if icount && out.plan.board.arch == Arch::X86_64 {
        args.extend(ICOUNT.map(String::from));
    }
    let end = format!("{}{name} end", vmconfig::dtbdump::TAG);
    let run = run_to_marker(&qemu_binary(&out.plan.board), &args, &end, timeout, &log)
        .with_context(|| format!("printing VM {name}'s device tree (log {})", log.display()))?;
    let guest = vmconfig::dtbdump::parse(&run.text, &name)
        .map_err(|e| anyhow::anyhow!("{}: {e}", log.display()))?;
    // x86 has no device tree: the dump is the VM's boot description (zero page,
    // command line, ACPI tables), loaded as it is (see [`x86boot`]).
    let (dtb, added) = if out.plan.board.arch == Arch::X86_64 {
        (guest.clone(), Vec::new())
    } else {
        bare_dtb(&out.plan.board, vm, &guest, &dir)?
    };
    let path = dir.join(format!("bare-{}-{name}.dtb", out.plan.board.name));
    std::fs::write(&path, &dtb).with_context(|| format!("cannot write {}", path.display()))?;
    let firmware = if added.is_empty() {
        String::new()
    } else {
        format!(", with QEMU's {} for the firmware", added.join(" and "))
    };
    let what = if out.plan.board.arch == Arch::X86_64 {
        "boot description"
    } else {
        "device tree"
    };
    println!(
        "xtask: bare side's {what}: VM {name}'s generated one ({} bytes){firmware}: {}",
        guest.len(),
        path.display()
    );
    if keep || !feature_added {
        return Ok((out, path));
    }
    let mut plan = out.plan;
    plan.board.features.retain(|f| f != DUMP_FEATURE);
    Ok((build_plan(ws, plan, true)?, path))
}

/// The bare machine: the board's machine without virtualization (with `extra`
/// options), its CPU model, the VM's vCPUs and RAM.
fn bare_machine(board: &Board, vm: &crate::config::Vm, extra: &str) -> Result<Vec<String>> {
    let q = board
        .qemu
        .as_ref()
        .context("the board has no [qemu] section: cannot benchmark")?;
    let mut machine: Vec<&str> = q
        .machine
        .split(',')
        .filter(|p| !p.starts_with("virtualization"))
        .collect();
    if !extra.is_empty() {
        machine.push(extra);
    }
    let mut bare = vec!["-machine".to_string(), machine.join(",")];
    if let Some(cpu) = &q.cpu {
        bare.extend(["-cpu".into(), cpu.clone()]);
    }
    bare.extend([
        "-smp".into(),
        vm.cpu_num.to_string(),
        "-m".into(),
        format!("{}M", vm.ram_size() >> 20),
    ]);
    Ok(bare)
}

/// The device tree of the bare side: `guest` (the VM's generated DTB) with the
/// firmware-only devices of QEMU's own tree for the bare machine (see [`dtb`]).
fn bare_dtb(
    board: &Board,
    vm: &crate::config::Vm,
    guest: &[u8],
    dir: &Path,
) -> Result<(Vec<u8>, Vec<String>)> {
    let machine_dtb = dir.join(format!("qemu-{}-{}.dtb", board.name, vm.name));
    let mut args = bare_machine(board, vm, &format!("dumpdtb={}", machine_dtb.display()))?;
    args.extend(["-nographic", "-nic", "none"].map(String::from));
    let program = qemu_binary(board);
    let out = crate::qemu::qemu_command(&program, &args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {} failed: {}",
        shell_words(&args),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let machine = std::fs::read(&machine_dtb)
        .with_context(|| format!("cannot read {}", machine_dtb.display()))?;
    dtb::bare_dtb(guest, &machine).with_context(|| format!("{}", machine_dtb.display()))
}

/// The bare side up to its `-kernel`: [`bare_machine`] and `dtb`, the device tree
/// of [`build_with_guest_dtb`] (QEMU puts its own memory node, `-initrd` and
/// `-append` in it, which say the same).
/// The bare side's QEMU arguments for `vm` booting `kernel` with the hypervisor's
/// description of it (`desc`): [`bare_args_x86`] on x86_64, else [`bare_args`] with
/// the VM's initramfs as `-initrd`.
fn bare_side(
    board: &Board,
    vm: &crate::config::Vm,
    kernel: &Path,
    desc: &Path,
) -> Result<Vec<String>> {
    if board.arch == Arch::X86_64 {
        return bare_args_x86(board, vm, kernel, desc);
    }
    let mut bare = bare_args(board, vm, kernel, desc)?;
    if let Some(rd) = &vm.ramdisk {
        bare.extend(["-initrd".into(), file_of(rd)?.display().to_string()]);
    }
    Ok(bare)
}

fn bare_args(
    board: &Board,
    vm: &crate::config::Vm,
    kernel: &Path,
    dtb: &Path,
) -> Result<Vec<String>> {
    let mut bare = bare_machine(board, vm, "")?;
    bare.extend(["-nographic", "-no-reboot", "-nic", "none"].map(String::from));
    bare.extend(["-dtb".into(), dtb.display().to_string()]);
    bare.extend(["-kernel".into(), kernel.display().to_string()]);
    Ok(bare)
}

/// The bare side of an x86_64 VM (see [`x86boot`]): the board's machine and the
/// VM's CPUs and RAM, the CPU model with what the hypervisor hides hidden, the boot
/// ROM, and at the VM's addresses the boot description `desc` (the hypervisor's,
/// dumped), the part of `kernel` the hypervisor loads (a bzImage's protected-mode
/// kernel, or what a Multiboot header names) and the initramfs.
fn bare_args_x86(
    board: &Board,
    vm: &crate::config::Vm,
    kernel: &Path,
    desc: &Path,
) -> Result<Vec<String>> {
    let mut bare = bare_machine(board, vm, "")?;
    if let Some(at) = bare.iter().position(|a| a == "-cpu") {
        bare[at + 1] = x86boot::bare_cpu(&bare[at + 1]);
    }
    if let Some(at) = bare.iter().position(|a| a == "-machine") {
        bare[at + 1] = x86boot::bare_machine(&bare[at + 1]);
    }
    let dir = desc.parent().context("the description has no folder")?;
    let stem = format!("{}-{}", board.name, vm.name);
    let entry = u32::try_from(vm.entry_point).context("the kernel entry is above 4 GiB")?;
    let at = u32::try_from(vm.dtb_load_gpa).context("the boot description is above 4 GiB")?;
    let image =
        std::fs::read(kernel).with_context(|| format!("cannot read {}", kernel.display()))?;
    let (protocol, load, part) = x86boot::kernel_part(&image, at, vm.kernel.load)
        .with_context(|| kernel.display().to_string())?;
    let rom = dir.join(format!("boot-rom-{stem}.bin"));
    std::fs::write(&rom, x86boot::boot_rom(protocol, entry))
        .with_context(|| format!("cannot write {}", rom.display()))?;
    let loaded = dir.join(format!("kernel-loaded-{stem}.bin"));
    std::fs::write(&loaded, part).with_context(|| format!("cannot write {}", loaded.display()))?;
    bare.extend(["-nographic", "-no-reboot", "-nic", "none"].map(String::from));
    bare.extend(["-bios".into(), rom.display().to_string()]);
    bare.extend(x86boot::loader(desc, vm.dtb_load_gpa));
    bare.extend(x86boot::loader(&loaded, load));
    if let Some(rd) = &vm.ramdisk {
        bare.extend(x86boot::loader(&file_of(rd)?, rd.load));
    }
    Ok(bare)
}

/// What a run's figure is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// Time to the marker: wall clock, or the guest's clock under icount.
    Boot,
    /// The test guest's `ns=` figure, under the hypervisor and bare.
    Guest,
    /// The test guest's `ns=` and `baseline-ns=` figures of one run under the
    /// hypervisor (no bare run).
    GuestWithBaseline,
}

/// What a bench runs on both sides.
struct Setup<'a> {
    bench: &'static str,
    measure: Measure,
    board: &'a Board,
    vm: &'a crate::config::Vm,
    vm_path: &'a Path,
    marker: &'a str,
    hv_args: Vec<String>,
    bare_args: Vec<String>,
}

impl<'a> Setup<'a> {
    /// `bench` of `vm`: the hypervisor side boots `bin`, the bare side runs `bare`
    /// with the VM's command line added.
    #[allow(clippy::too_many_arguments)]
    fn new(
        bench: &'static str,
        measure: Measure,
        board: &'a Board,
        vm: &'a crate::config::Vm,
        vm_path: &'a Path,
        marker: &'a str,
        bin: &Path,
        mut bare: Vec<String>,
    ) -> Result<Self> {
        // x86: the command line is in the boot description already.
        if !vm.cmdline.is_empty() && board.arch != Arch::X86_64 {
            bare.extend(["-append".into(), vm.cmdline.clone()]);
        }
        Ok(Self {
            bench,
            measure,
            board,
            vm,
            vm_path,
            marker,
            hv_args: hv_args(board, vm, bin)?,
            bare_args: bare,
        })
    }
}

/// One run of one side.
struct Run {
    wall: f64,
    guest: Option<(f64, Clock)>,
    /// The console output up to the marker.
    text: String,
}

/// Runs `s` in `o.runs` pairs and sums them up.
fn paired(ws: &Workspace, s: &Setup, o: &BenchOptions) -> Result<Figures> {
    let program = qemu_binary(s.board);
    let (mut hv_args, mut bare_args) = (s.hv_args.clone(), s.bare_args.clone());
    if o.icount {
        hv_args.extend(ICOUNT.map(String::from));
        bare_args.extend(ICOUNT.map(String::from));
    }
    let mode = match (o.icount, s.measure) {
        (true, _) => "icount",
        (false, Measure::Boot) => "wall",
        (false, _) => "guest",
    };
    let (compared, unit) = match s.measure {
        Measure::Boot if o.icount => ("hypervisor / bare", "s guest time"),
        Measure::Boot => ("hypervisor / bare", "s wall"),
        Measure::Guest => ("hypervisor / bare", "ns"),
        Measure::GuestWithBaseline => ("hypercall / trapless loop", "ns"),
    };
    let sides: &[bool] = if s.measure == Measure::GuestWithBaseline {
        &[true]
    } else {
        &[true, false]
    };
    let hv_marker = format!("[{}] {}", s.vm.name, s.marker);
    let logs = ws.target_dir.join("hv").join("bench-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let hv_command = format!("{program} {}", shell_words(&hv_args));
    let bare_command = if sides.len() == 2 {
        format!("{program} {}", shell_words(&bare_args))
    } else {
        "none: the baseline is timed in the run under the hypervisor".into()
    };
    println!(
        "bench {} ({mode}) on {}: VM {} ({} vCPUs, {} MiB), {} pairs, marker \"{}\"",
        s.bench,
        s.board.name,
        s.vm.name,
        s.vm.cpu_num,
        s.vm.ram_size() >> 20,
        o.runs,
        s.marker
    );
    println!("  hypervisor: {hv_command}");
    if sides.len() == 2 {
        println!("  bare:       {bare_command}");
    }
    println!("  logs:       {}", logs.display());
    let (mut hv, mut bare) = (Vec::new(), Vec::new());
    let mut clock = None;
    let mut register: Option<String> = None;
    for i in 0..o.runs {
        // Alternate which side goes first so a drift in the host's load hits both.
        let mut order = sides.to_vec();
        if i % 2 == 1 {
            order.reverse();
        }
        let mut pair = [0.0f64; 2];
        for under_hv in order {
            let (args, marker, side) = if under_hv {
                (&hv_args, hv_marker.as_str(), "hv")
            } else {
                (&bare_args, s.marker, "bare")
            };
            let log = logs.join(format!(
                "{}-{}-{mode}-{}-{side}.log",
                s.bench,
                s.board.name,
                i + 1
            ));
            let run =
                run_to_marker(&program, args, marker, o.timeout, &log).with_context(|| {
                    format!("{} run {} {side} (log {})", s.bench, i + 1, log.display())
                })?;
            if s.measure != Measure::Boot {
                let g = parse::guest_bench(&run.text, s.bench).map_err(|e| {
                    anyhow::anyhow!(
                        "{} run {} {side}: {e} (log {})",
                        s.bench,
                        i + 1,
                        log.display()
                    )
                })?;
                same_register(&mut register, g.reg.as_deref(), s.bench, i + 1, side)?;
                let base = g
                    .baseline_ns
                    .map_or(String::new(), |b| format!(", trapless loop {b:.3} ns"));
                println!(
                    "  pair {}: {:10} {:10.3} ns ({} per batch){base}",
                    i + 1,
                    if under_hv { "hypervisor" } else { "bare" },
                    g.ns,
                    g.n
                );
                pair[usize::from(!under_hv)] = g.ns;
                if s.measure == Measure::GuestWithBaseline {
                    pair[1] = g.baseline_ns.with_context(|| {
                        format!(
                            "{} run {}: no baseline-ns= (log {})",
                            s.bench,
                            i + 1,
                            log.display()
                        )
                    })?;
                }
                continue;
            }
            let value = if o.icount {
                let (t, c) = run.guest.with_context(|| {
                    format!(
                        "{} run {} {side}: no guest time (a `guest-init: uptime` line or a printk timestamp) before the marker in {}",
                        s.bench,
                        i + 1,
                        log.display()
                    )
                })?;
                clock = Some(c);
                t
            } else {
                run.wall
            };
            let guest = run
                .guest
                .map_or(String::new(), |(t, _)| format!(", guest {t:.6} s"));
            println!(
                "  pair {}: {:10} {:8.3} s wall{guest}",
                i + 1,
                if under_hv { "hypervisor" } else { "bare" },
                run.wall
            );
            pair[usize::from(!under_hv)] = value;
        }
        hv.push(pair[0]);
        bare.push(pair[1]);
    }
    let ratios = pair_ratios(&hv, &bare);
    let ratio = summarize(&ratios).context("no finite ratio of the runs")?;
    let median = |v: &[f64]| summarize(v).map_or(f64::NAN, |s| s.median);
    Ok(Figures {
        bench: s.bench.into(),
        mode: mode.into(),
        compared: compared.into(),
        unit: unit.into(),
        board: s.board.name.clone(),
        vm: crate::config::source::shown_path(s.vm_path, &ws.root),
        marker: s.marker.into(),
        clock: if o.icount && s.measure == Measure::Boot {
            clock
        } else {
            None
        },
        hv_median: median(&hv),
        bare_median: median(&bare),
        hv,
        bare,
        ratios,
        ratio,
        hv_command,
        bare_command,
        logs: logs.display().to_string(),
        exits: None,
        register,
    })
}

/// Keeps the register a guest bench read (`reg=`) in `seen`; an error when a run
/// read another one than the runs before (the sides would not compare).
fn same_register(
    seen: &mut Option<String>,
    reg: Option<&str>,
    bench: &str,
    run: usize,
    side: &str,
) -> Result<()> {
    match (seen.as_deref(), reg) {
        (_, None) => Ok(()),
        (None, Some(r)) => {
            *seen = Some(r.to_string());
            Ok(())
        }
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(a), Some(b)) => {
            bail!("{bench} run {run} {side} read register {b}, the runs before {a}")
        }
    }
}

fn file_of(img: &ImageSpec) -> Result<PathBuf> {
    match &img.source {
        ImageSource::File(p) => Ok(p.clone()),
        other => bail!(
            "{}: the benchmark needs a kernel/initramfs file, not {other:?}",
            img.key
        ),
    }
}

/// Arguments joined for a shell (quoted where they hold a space or a quote).
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=.,:/+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts QEMU, writes its output to `log` and returns the wall-clock time until a
/// line containing `marker` appears, with the guest time read from the output up to
/// there; QEMU is then killed.
fn run_to_marker(
    program: &str,
    args: &[String],
    marker: &str,
    timeout: Duration,
    log: &Path,
) -> Result<Run> {
    let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut err_file = file
        .try_clone()
        .with_context(|| format!("cannot write {}", log.display()))?;
    let start = Instant::now();
    // QEMU gets SIGTERM if xtask dies (Ctrl-C, kill) while it waits for the marker.
    let mut child = crate::qemu::qemu_command(program, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    let wanted = marker.to_string();
    // The log is written as the output comes, so a run that hangs shows how far it got.
    let mut file = std::io::LineWriter::new(file);
    let reader = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = crate::output::clean(&line);
            let _ = writeln!(file, "{line}");
            text.push_str(&line);
            text.push('\n');
            if line.contains(&wanted) {
                let _ = tx.send(Instant::now());
                break;
            }
        }
        text
    });
    let errs = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(err_file, "{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let seen = rx.recv_timeout(timeout);
    let _ = child.kill();
    let _ = child.wait();
    let text = reader.join().unwrap_or_default();
    let errs = errs.join().unwrap_or_default();
    match seen {
        Ok(at) => Ok(Run {
            wall: (at - start).as_secs_f64(),
            guest: guest_time(&text),
            text,
        }),
        Err(_) => {
            let tail: Vec<&str> = text.lines().chain(errs.lines()).collect();
            bail!(
                "no line containing \"{marker}\" within {} s; last lines:\n{}",
                timeout.as_secs(),
                tail[tail.len().saturating_sub(10)..].join("\n")
            )
        }
    }
}

/// What `bench all` runs on each board: bench and whether under `-icount`.
pub const ALL_BENCHES: &[(&str, bool)] = &[
    ("linux-boot", false),
    ("linux-boot", true),
    ("tiny-boot", false),
    ("hypercall", false),
    ("hypercall", true),
    ("mmio", false),
    ("mmio", true),
    ("irq", false),
    ("irq", true),
    ("cpu", false),
    ("cpu", true),
];

/// `bench all`: every bench on every QEMU board (or only `--config`'s), then the
/// table and the JSON file.
fn all(ws: &Workspace, o: &BenchOptions) -> Result<()> {
    if o.vm.is_some() || o.marker.is_some() {
        bail!("bench all picks its VM configs and markers itself: drop --vm and --marker");
    }
    let boards: Vec<PathBuf> = match &o.config {
        Some(c) => vec![crate::cmd::build::absolute(c)],
        None => report::ALL_BOARDS.iter().map(|b| ws.root.join(b)).collect(),
    };
    let mut rows = Vec::new();
    for board in &boards {
        for &(bench, icount) in ALL_BENCHES {
            let shown = crate::config::source::shown_path(board, &ws.root);
            let mode = match (icount, GUEST_BENCHES.contains(&bench)) {
                (true, _) => "icount",
                (false, true) => "guest",
                (false, false) => "wall",
            };
            if let Some(reason) = skipped(ws, board, bench, icount) {
                println!("bench {bench} ({mode}) on {shown}: {reason}");
                rows.push(report::Row::Skipped {
                    bench: bench.into(),
                    mode: mode.into(),
                    board: shown,
                    reason,
                });
                continue;
            }
            let runs = if icount { o.runs.min(3) } else { o.runs };
            let bo = BenchOptions {
                what: bench.into(),
                config: Some(board.clone()),
                vm: None,
                runs,
                marker: None,
                timeout: o.timeout,
                icount,
                // The exit counts once per board, with linux-boot's wall-clock pairs.
                exits: o.exits && !icount,
            };
            let result = run_one(ws, board, bench, None, &bo);
            match result {
                Ok(f) => {
                    print!("{}", report::figures_text(&f));
                    rows.push(report::Row::Done(Box::new(f)));
                }
                Err(e) => {
                    println!("bench {bench} ({mode}) on {shown}: FAILED: {e:#}");
                    rows.push(report::Row::Failed {
                        bench: bench.into(),
                        mode: mode.into(),
                        board: shown,
                        error: format!("{e:#}"),
                    });
                }
            }
        }
    }
    let machine = report::Machine::probe(&boards_arches(ws, &boards));
    let dir = ws.target_dir.join("hv").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = report::markdown(&machine, &rows);
    let json = report::json(&machine, &rows)?;
    let (md_path, json_path) = (dir.join("results.md"), dir.join("results.json"));
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    std::fs::write(&json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("\n{md}");
    println!(
        "bench all: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    let failed = rows
        .iter()
        .filter(|r| matches!(r, report::Row::Failed { .. }))
        .count();
    if failed > 0 {
        bail!("{failed} of {} benches failed", rows.len());
    }
    Ok(())
}

/// Why `bench all` leaves a bench out on a board, if it does: no VM for it there.
fn skipped(ws: &Workspace, board: &Path, bench: &str, icount: bool) -> Option<String> {
    let board = load_board(ws, board).ok()?;
    default_vm(bench, &board, icount)
        .err()
        .map(|e| e.to_string())
        .filter(|e| e.starts_with("not supported yet"))
}

/// The QEMU binaries the boards use.
fn boards_arches(ws: &Workspace, boards: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = boards
        .iter()
        .filter_map(|b| load_board(ws, b).ok())
        .map(|b| qemu_binary(&b))
        .collect();
    v.sort();
    v.dedup();
    v
}
