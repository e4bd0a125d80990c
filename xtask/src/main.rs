//! `cargo xtask`: the host toolchain of the hypervisor. It configures (board and VM
//! configs), validates, builds (guests, VM table, kernel, raw image), runs (QEMU) and
//! tests (unit tests and QEMU scenarios). `cargo xtask --help` is the manual.
mod apt;
mod cleanup;
mod cmd;
mod config;
mod download;
mod elf;
mod frames;
mod gen;
mod guest;
mod host_tools;
mod image;
#[cfg(feature = "menuconfig")]
mod menuconfig;
mod output;
mod qemu;
#[cfg(not(all(feature = "menuconfig", feature = "schema")))]
mod rerun;
mod shell_script;
mod toolchain;
mod uboot;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use cmd::build::BuildOptions;
use config::ConfigError;
use workspace::Workspace;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Configure, build, run and test the hypervisor",
    long_about = "Configure, build, run and test the hypervisor.\n\n\
        The build configuration is .build.toml at the repository root (make one with \
        `cargo xtask defconfig <board>`); without it the default board \
        configs/board/qemu-aarch64.toml is used. A board file names the target, the \
        kernel features, the board's CPUs and RAM, the QEMU command ([qemu]) and the VM \
        configs to bundle (vm_configs). Every config is checked before anything is built.",
    after_help = "Quick start:\n  cargo xtask run     boot the two test VMs in QEMU\n  cargo xtask test    all unit tests and QEMU scenarios"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which board and VMs to use.
#[derive(Args, Clone, Debug)]
struct ConfigArgs {
    /// Board file to use instead of .build.toml (or, without it, the default board
    /// configs/board/qemu-aarch64.toml). AxVisor's name --build-config works too.
    #[arg(long, visible_alias = "build-config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// A VM config to bundle; repeat for several (or name several after one --vm).
    /// Replaces the board's vm_configs. AxVisor's name --vmconfigs works too.
    #[arg(long = "vm", visible_alias = "vmconfigs", value_name = "FILE", num_args = 1..)]
    vms: Vec<PathBuf>,
}

impl ConfigArgs {
    fn options(&self) -> BuildOptions {
        BuildOptions {
            config: self.config.clone(),
            vms: self.vms.clone(),
            force_bin: false,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Make configs/board/<BOARD>.toml the build configuration .build.toml (an existing,
    /// different .build.toml is kept as .build.toml.backup_<unix time>; a symlink there
    /// is replaced, never written through).
    Defconfig {
        /// Board name: a file name in configs/board/ without .toml, e.g. orangepi-5-plus.
        board: String,
    },
    /// Edit .build.toml (created from configs/board/qemu-aarch64.toml when missing)
    /// and the VM configs it bundles in a terminal UI, with the checks of `build`.
    /// Keys: arrows or j/k move, Enter edits, Esc goes back, / searches the settings
    /// of the board and of all its VM configs, ? helps, s saves, q quits; on the VM
    /// list n makes a new VM config from the one under the cursor. Numbers are
    /// checked as they are typed.
    Menuconfig {
        /// Board file to edit instead of .build.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Directory holding .build.toml and configs/ (default: the repository root).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Check the board and VM configs (types, unknown keys, memory layout, CPUs,
    /// images) without building anything.
    Check(ConfigArgs),
    /// Pull the guest images the VM configs name (`image:<name>/...`) that the store
    /// lacks, validate, build the guests from guests/, generate the VM table, build the
    /// hypervisor, check its stack frames against the unmapped gap below its stacks
    /// and write target/hv/<board>/hypervisor.elf and hypervisor.bin.
    Build(ConfigArgs),
    /// Build, then boot the board in QEMU (from its [qemu] section) with the console
    /// on this terminal. Exits 0 only if QEMU exits 0 after the hypervisor said every
    /// VM stopped, i.e. every VM stopped cleanly (quitting QEMU from its monitor,
    /// Ctrl-A x, is a failure). Ctrl-C or SIGTERM to xtask ends QEMU too. VMs with
    /// image_location = "fs" go on a FAT32 disk image (target/hv/<board>/disk.img,
    /// vms/ as on a card) attached as a virtio disk, which the hypervisor reads at
    /// boot. `qemu` is the same command under AxVisor's name.
    #[command(visible_alias = "qemu")]
    Run {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Kill QEMU and fail after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Type this hypervisor-shell script on the console instead of the keyboard:
        /// Ctrl-\ until the shell has the keyboard, then each line once the shell
        /// shows its next prompt; `#wait TEXT` waits for TEXT on the console (after
        /// the last command and the last #wait), `#seen TEXT` until the console has
        /// shown TEXT at all; `#shell` moves the keyboard to the shell again (after
        /// `reboot`); other `#` lines are comments. Never timed: each step waits for the output. The
        /// script should end the run (`poweroff`).
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// AxVisor's QEMU config file: not supported yet (the QEMU command line comes
        /// from the board file's [qemu] section).
        #[arg(long, value_name = "FILE")]
        qemu_config: Option<PathBuf>,
    },
    /// Build, then write a bootable card image for the board (from its [image]
    /// section): GPT, the board's bootloader, a FAT32 boot partition with the
    /// hypervisor, the board DTB, the files of image_location = "fs" VMs and a U-Boot
    /// boot.scr. Prints the layout, the load addresses and the `dd` command.
    Image {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Output file, not a directory (default target/hv/<board>/<board>.img).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Total image size, e.g. 256M or 1G (default: the board's [image] size).
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// Bootloader file to write instead of the one the board file names.
        #[arg(long, value_name = "FILE")]
        bootloader: Option<PathBuf>,
    },
    /// Boot the board through the U-Boot on its serial console, without a card: build
    /// what `image` puts on the card, stop U-Boot's autoboot at its prompt, send the
    /// hypervisor (and the files of image_location = "fs" VMs) with `loady` (YMODEM)
    /// or, when the board file has [uboot.tftp], with `tftp`, run `booti`, and stay on
    /// the console (Ctrl-] leaves). Exits 0 when the boot went through (with --qemu:
    /// when QEMU exited 0).
    Uboot {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Serial device wired to the board's console (default: [uboot] serial).
        #[arg(long, value_name = "DEVICE")]
        serial: Option<String>,
        /// Baud rate (default: [uboot] baud, else 115200).
        #[arg(long, value_name = "BAUD")]
        baud: Option<u32>,
        /// Use the board's QEMU ([qemu] with U-Boot as `bios`) on a pseudo-terminal
        /// instead of a serial device.
        #[arg(long)]
        qemu: bool,
        /// Give up after this many seconds (with --qemu: and stop QEMU).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Run the host unit tests (cargo test --workspace), clippy on every target (as
    /// `cargo xtask clippy`, counted as one check) and the QEMU integration scenarios
    /// (listed below); the last line is `N passed, N failed`.
    Test {
        /// Only the host unit tests (no clippy, no scenarios).
        #[arg(long, conflicts_with = "scenario")]
        unit: bool,
        /// Only this scenario (see the list below).
        #[arg(long, value_name = "NAME")]
        scenario: Option<String>,
        /// Print the attack suite's kinds with their expected outcomes and exit
        /// (the scenarios attacks-aarch64 / attacks-riscv64 / attacks-x86_64 print them
        /// with what they saw).
        #[arg(long, conflicts_with_all = ["unit", "scenario"])]
        attacks: bool,
    },
    /// Measure speed as ratios taken side by side in one run: each run under the
    /// hypervisor is paired with the bare QEMU run next to it (the board's machine
    /// without virtualization, the VM's CPUs, memory and command line, and with -dtb
    /// the device tree the hypervisor generates for the VM, printed by a build with
    /// feature dump-guest-dtb; riscv64 adds QEMU's CLINT and test device for OpenSBI;
    /// x86_64 has no device tree: the hypervisor's boot description of the VM, dumped
    /// the same way (a Linux zero page with its ACPI tables, or a Multiboot information
    /// block), the kernel and initramfs go in with -device loader at the VM's addresses
    /// and xtask's boot ROM (-bios) enters the kernel as the hypervisor enters vCPU 0);
    /// the figure is the median of the per-pair ratios hypervisor / bare with their
    /// min..max (and quartiles from 5 pairs), the two medians for reference. Prints the
    /// QEMU command of both sides; each run's console output is kept in
    /// target/hv/bench-logs/.
    ///
    /// linux-boot: the VM's Linux kernel and initramfs (with the current /init) to
    /// `guest-init: ready`, wall-clock from QEMU's start, or with --icount the guest's
    /// own time at that line. tiny-boot: a test-guest VM from QEMU's start to its first
    /// line. hypercall, mmio, irq, cpu: the test guest booted with bench=<name> times
    /// the operation on its counter (ns, median of 9 batches): a null hypercall against
    /// a loop that traps nowhere (both under the hypervisor), a read of an emulated
    /// register (the UART's status register: uart-fr on aarch64, uart-lsr on riscv64;
    /// lapic-version on x86_64, whose UART is port I/O: the local APIC's version
    /// register by MMIO; printed as "register read"), timer deadline to handler, a
    /// CoreMark-like round (under the hypervisor and bare; --icount: the counter
    /// follows executed instructions). all: linux-boot (wall and --icount, at most 3
    /// pairs), tiny-boot, hypercall, mmio, irq and cpu, each of these four with
    /// --icount too (the instructions the hypervisor adds, whatever the host's load), on the boards
    /// qemu-aarch64, qemu-aarch64-gicv2, qemu-riscv64 and qemu-x86_64 (or only
    /// --config; riscv64 and x86_64 linux-boot --icount boot a 1-vCPU VM: 2 bare
    /// riscv64 harts stall under -icount on QEMU 7.2, the 2-vCPU x86_64 VM stalls
    /// under -icount), then a Markdown table and a JSON file with the machine and QEMU
    /// version in target/hv/bench/results.{md,json}.
    ///
    /// ivc: two test-guest VMs on an inter-VM channel (aarch64, riscv64): doorbell round trip
    /// (median, p99) and bulk copy throughput through the channel, side by side with a
    /// self-IPI and memcpy inside one VM, in one run under the hypervisor (guest time;
    /// no bare side, --runs and --icount do not apply).
    #[command(verbatim_doc_comment)]
    Bench {
        /// What to measure: linux-boot, tiny-boot, hypercall, mmio, irq, cpu, all or ivc.
        what: String,
        /// Board file (default: .build.toml, else configs/board/qemu-aarch64.toml;
        /// `all`: only this board).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The VM config to boot (default by bench and board: the board's
        /// linux-<arch>-qemu[-gicv2]-smp2.toml or testguest-<arch>-qemu[-gicv2]-smp2-a.toml).
        #[arg(long, value_name = "FILE")]
        vm: Option<PathBuf>,
        /// Pairs of runs (one under the hypervisor, one bare).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The line that ends a boot (default: `guest-init: ready` for linux-boot,
        /// `testguest: vCPU 0 up` for tiny-boot).
        #[arg(long)]
        marker: Option<String>,
        /// Deterministic mode (linux-boot, hypercall, mmio, irq, cpu): QEMU
        /// `-icount shift=0,sleep=off` on both sides; linux-boot's figure is the
        /// guest's own time at the marker (its `guest-init: monotonic-ns` line, else
        /// its `guest-init: uptime` line, else the last printk timestamp), the test
        /// guest's benches time on a counter that follows executed instructions; it
        /// does not depend on the host's load. riscv64 linux-boot then boots 1 vCPU
        /// by default (2 bare harts stall under -icount on QEMU 7.2).
        #[arg(long)]
        icount: bool,
        /// linux-boot: after the pairs, one more boot under the hypervisor built with
        /// `log = "Debug"`, to the VM's power-off (the Linux VMs power off after their
        /// `run=` command), and print the hypervisor's exit counts by kind (mmio, ipi,
        /// irq-host, ...) and its RAM blocks zeroed on first touch; that run's console
        /// is kept in target/hv/bench-logs/<board>-exits.log.
        #[arg(long)]
        exits: bool,
        /// Seconds one boot may take.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Clippy with warnings as errors for every crate on every target it is built for:
    /// the host (workspace, all targets; xtask also without its default features, as
    /// `cargo xtask` builds it) and each bare-metal target of the board
    /// files, with each set of kernel features they use. `cargo xtask test` runs it
    /// as one check.
    Clippy,
    /// Fuzz one target of kernel/src/fuzz.rs (what guests and card configs control):
    /// vmconfig, aarch64-esr, aarch64-smccc, riscv64-insn, riscv64-sbi, x86_64-insn, pl011,
    /// uart16550, testdev, vgic, vgicv2, vplic, x86apic. The stable driver by default (random
    /// inputs and mutations of the seed corpus fuzz/corpus/NAME, plus the repository's
    /// VM configs for vmconfig); --engine libfuzzer: libFuzzer through cargo-fuzz
    /// (crate fuzz/, nightly toolchain and cargo-fuzz; the first build takes about
    /// 2 CPU-minutes); a finding fails with the input saved (stable:
    /// target/hv/fuzz/NAME/crash-SEED; libFuzzer: fuzz/artifacts/NAME/). A short run
    /// of each is a host unit test (stable only).
    Fuzz {
        /// The target.
        name: String,
        /// How long to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// stable: our driver on the stable toolchain; libfuzzer: cargo +nightly
        /// fuzz; auto: libFuzzer if cargo-fuzz on nightly is there, else stable.
        #[arg(long, value_enum, default_value_t = cmd::fuzz::Engine::Stable)]
        engine: cmd::fuzz::Engine,
    },
    /// VM config tools. --schema prints the JSON Schema (draft 2020-12) of the VM
    /// config format, generated from the model the checks use, for editors (e.g. a
    /// TOML editor's schema association for configs/vms/*.toml).
    Vmconfig {
        /// Print the JSON Schema of VM configs.
        #[arg(long)]
        schema: bool,
        /// Write it to FILE instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Guest images (Linux kernels, initramfs): `list`, `pull NAME`, `rm NAME`, from a
    /// registry or a built-in recipe (linux-aarch64, linux-riscv64, linux-x86_64). VM configs name
    /// their files as "image:<name>/<file>".
    Guest(guest::GuestArgs),
}

fn run(cli: Cli) -> Result<bool> {
    let ws = Workspace::load()?;
    match cli.cmd {
        Cmd::Defconfig { board } => {
            let backup = cmd::defconfig::defconfig(&ws.root, &board)?;
            if let Some(b) = backup {
                println!("xtask: kept the previous .build.toml as {}", b.display());
            }
            println!("xtask: .build.toml is now configs/board/{board}.toml");
        }
        #[cfg(feature = "menuconfig")]
        Cmd::Menuconfig { config, root } => {
            menuconfig::menuconfig(&ws, &menuconfig::Options { config, root })?;
        }
        #[cfg(not(feature = "menuconfig"))]
        Cmd::Menuconfig { .. } => {
            return rerun::with_feature(&ws.root, "menuconfig", "menuconfig (ratatui)")
        }
        Cmd::Check(cfg) => {
            let plan = cmd::build::check_plan(&ws, &cfg.options())?;
            println!(
                "xtask: board {} and {} VM config(s) are valid",
                plan.board.name,
                plan.vms.len()
            );
        }
        Cmd::Build(cfg) => {
            cmd::build::build(&ws, &cfg.options())?;
        }
        Cmd::Run {
            cfg,
            timeout,
            script,
            qemu_config,
        } => {
            if let Some(f) = qemu_config {
                anyhow::bail!(
                    "not supported yet: --qemu-config {}: the QEMU command line comes from \
                     the board file's [qemu] section (machine, cpu, memory, args)",
                    f.display()
                );
            }
            cmd::run::run(&ws, &cfg.options(), timeout, script.as_deref())?
        }
        Cmd::Bench {
            what,
            config,
            vm,
            runs,
            marker,
            icount,
            exits,
            timeout,
        } => {
            let opts = cmd::bench::BenchOptions {
                what,
                config,
                vm,
                runs: runs.max(1),
                marker,
                timeout: std::time::Duration::from_secs(timeout),
                icount,
                exits,
            };
            cmd::bench::bench(&ws, &opts)?
        }
        Cmd::Image {
            cfg,
            out,
            size,
            bootloader,
        } => {
            let opts = image::ImageOptions {
                build: cfg.options(),
                out,
                size,
                bootloader,
            };
            image::image(&ws, &opts)?;
        }
        Cmd::Uboot {
            cfg,
            serial,
            baud,
            qemu,
            timeout,
        } => {
            let opts = uboot::UbootOptions {
                build: cfg.options(),
                serial,
                baud,
                qemu,
                timeout: timeout.map(std::time::Duration::from_secs),
            };
            return uboot::uboot(&ws, &opts);
        }
        Cmd::Test { attacks: true, .. } => cmd::test_attacks::print_tables(),
        Cmd::Test { unit, scenario, .. } => {
            let opts = cmd::test::TestOptions {
                unit_only: unit,
                scenario,
            };
            return cmd::test::test(&ws, &opts);
        }
        Cmd::Clippy => return cmd::clippy::clippy(&ws.root),
        Cmd::Fuzz {
            name,
            seconds,
            seed,
            engine,
        } => return cmd::fuzz::fuzz(&ws.root, &name, seconds, seed, engine),
        #[cfg(feature = "schema")]
        Cmd::Vmconfig { schema, out } => cmd::vmconfig::vmconfig(schema, out.as_deref())?,
        #[cfg(not(feature = "schema"))]
        Cmd::Vmconfig { .. } => {
            return rerun::with_feature(&ws.root, "schema", "vmconfig --schema (schemars)")
        }
        Cmd::Guest(args) => guest::run(&ws.root, &args)?,
    }
    Ok(true)
}

/// The command line; `test --help` lists the scenarios of [`cmd::test::SCENARIOS`].
fn parse_args() -> Cli {
    let scenarios: String = cmd::test::SCENARIOS
        .iter()
        .map(|(name, what)| format!("  {name:<24} {what}\n"))
        .collect();
    let matches = Cli::command()
        .mut_subcommand("test", |c| c.after_help(format!("Scenarios:\n{scenarios}")))
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    match run(parse_args()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            match e.downcast_ref::<ConfigError>() {
                Some(c) => eprintln!("{c}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["cargo xtask"];
        all.extend(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn qemu_is_run_with_axvisors_flag_names() {
        let Cmd::Run { cfg, timeout, .. } = parse(&[
            "qemu",
            "--build-config",
            "b.toml",
            "--vmconfigs",
            "a.toml",
            "c.toml",
            "--timeout",
            "9",
        ])
        .cmd
        else {
            panic!("not run");
        };
        assert_eq!(cfg.config, Some(PathBuf::from("b.toml")));
        assert_eq!(cfg.vms, [PathBuf::from("a.toml"), PathBuf::from("c.toml")]);
        assert_eq!(timeout, Some(9));
        let Cmd::Run { cfg, .. } = parse(&["run", "--vm", "a.toml", "--vm", "c.toml"]).cmd else {
            panic!("not run");
        };
        assert_eq!(cfg.vms, [PathBuf::from("a.toml"), PathBuf::from("c.toml")]);
        let Cmd::Run { qemu_config, .. } = parse(&["qemu", "--qemu-config", "q.toml"]).cmd else {
            panic!("not run");
        };
        assert_eq!(qemu_config, Some(PathBuf::from("q.toml")));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
