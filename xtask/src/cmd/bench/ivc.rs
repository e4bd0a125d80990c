//! `cargo xtask bench ivc`: inter-VM channel speed, against the same work inside one
//! VM, side by side in one run. Two test-guest VMs on one channel
//! (configs/vms/testguest-{aarch64,riscv64}-qemu-ivc-bench-{a,b}.toml, boot argument
//! `ivc-bench`): member 0 times 1,000 doorbell round trips (median, p99) and 200 bulk
//! transfers of 32 KiB (copied into the region by one VM, out of it by the other),
//! then, inside itself, the same transfers buffer to buffer and 1,000 self-IPIs
//! (aarch64: an SGI to itself until it shows pending at its GICv3 redistributor;
//! riscv64: an SBI send_ipi to itself until its software interrupt shows in `sip`).
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::BenchOptions;
use crate::cmd::build::{board_file, build, BuildOptions};
use crate::config::Arch;
use crate::qemu::{qemu_args, qemu_binary, run_captured};
use crate::workspace::Workspace;

/// The two VMs of the bench on aarch64.
pub const VMS: [&str; 2] = [
    "configs/vms/testguest-aarch64-qemu-ivc-bench-a.toml",
    "configs/vms/testguest-aarch64-qemu-ivc-bench-b.toml",
];
/// The two VMs of the bench on riscv64.
pub const VMS_RISCV64: [&str; 2] = [
    "configs/vms/testguest-riscv64-qemu-ivc-bench-a.toml",
    "configs/vms/testguest-riscv64-qemu-ivc-bench-b.toml",
];

/// The bench's VMs on an architecture.
fn vms_of(arch: Arch) -> Result<[&'static str; 2]> {
    match arch {
        Arch::Aarch64 => Ok(VMS),
        Arch::Riscv64 => Ok(VMS_RISCV64),
        other => bail!(
            "not supported yet: bench ivc on {} (its VMs are aarch64 and riscv64 test guests)",
            other.name()
        ),
    }
}
/// The VM that prints the figures.
const MEASURER: &str = "ivc-a";

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct IvcFigures {
    pub round_trip_median_ns: u64,
    pub round_trip_p99_ns: u64,
    pub channel_kib_s: u64,
    pub memcpy_kib_s: u64,
    pub self_ipi_median_ns: u64,
    pub self_ipi_p99_ns: u64,
}

/// The figures in the lines the measuring VM printed (its `[name] ` prefix removed).
/// The last line of each kind counts: the console can show a line's beginning as a
/// line of its own before the whole line (as when the other VM printed meanwhile).
pub fn parse(lines: &[&str]) -> Result<IvcFigures, String> {
    let find = |prefix: &str| {
        lines
            .iter()
            .rev()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .ok_or_else(|| format!("no `{prefix}...` line"))
    };
    let num = |s: &str, what: &str| {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("{what}: no number in {s:?}"))
    };
    // `median <n> ns p99 <n> ns ...`
    let pair = |s: &str, what: &str| -> Result<(u64, u64), String> {
        let rest = s
            .strip_prefix("median ")
            .ok_or_else(|| format!("{what}: {s:?}"))?;
        let median = num(rest, what)?;
        let p99 = rest
            .split_once(" p99 ")
            .map(|(_, p)| p)
            .ok_or_else(|| format!("{what}: no p99 in {s:?}"))?;
        Ok((median, num(p99, what)?))
    };
    let (rt_med, rt_p99) = pair(find("testguest: ivc-bench: round-trip ")?, "round trip")?;
    let channel = num(find("testguest: ivc-bench: channel copy ")?, "channel copy")?;
    let memcpy = num(find("testguest: ivc-bench: local memcpy ")?, "memcpy")?;
    let (ipi_med, ipi_p99) = pair(find("testguest: ivc-bench: local self-ipi ")?, "self-IPI")?;
    Ok(IvcFigures {
        round_trip_median_ns: rt_med,
        round_trip_p99_ns: rt_p99,
        channel_kib_s: channel,
        memcpy_kib_s: memcpy,
        self_ipi_median_ns: ipi_med,
        self_ipi_p99_ns: ipi_p99,
    })
}

/// The figures side by side.
pub fn table(f: &IvcFigures, board: &str) -> String {
    let us = |ns: u64| format!("{:.1} us", ns as f64 / 1000.0);
    let mib = |kib: u64| format!("{:.2}", kib as f64 / 1024.0);
    format!(
        "ivc on board {board} (one run; guest counter time)\n\
         {:<22} {:>24} {:>24}\n\
         {:<22} {:>24} {:>24}\n\
         {:<22} {:>24} {:>24}\n\
         {:<22} {:>24} {:>24}\n",
        "",
        "channel (2 VMs)",
        "inside one VM",
        "notify, median",
        format!("{} round trip", us(f.round_trip_median_ns)),
        format!("{} self-IPI", us(f.self_ipi_median_ns)),
        "notify, p99",
        format!("{} round trip", us(f.round_trip_p99_ns)),
        format!("{} self-IPI", us(f.self_ipi_p99_ns)),
        "bulk copy",
        format!("{} MiB/s", mib(f.channel_kib_s)),
        format!("{} MiB/s memcpy", mib(f.memcpy_kib_s)),
    )
}

/// `cargo xtask bench ivc`.
pub fn ivc(ws: &Workspace, o: &BenchOptions) -> Result<IvcFigures> {
    let config = board_file(ws, &super::build_options(o.config.clone(), vec![]));
    let vms = vms_of(super::load_board(ws, &config)?.arch)?;
    let opts = BuildOptions {
        config: Some(config.clone()),
        vms: vms.iter().map(|v| ws.root.join(v)).collect(),
        force_bin: true,
    };
    let out = build(ws, &opts)?;
    let board = &out.plan.board;
    let q = board
        .qemu
        .clone()
        .with_context(|| format!("{} has no [qemu] section", config.display()))?;
    let bin = out.bin.clone().context("no raw binary")?;
    let logs = ws.target_dir.join("hv").join("bench-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let log = logs.join("ivc.log");
    let program = qemu_binary(board);
    let args = qemu_args(board, &q, &bin);
    println!(
        "xtask: {program} {} (output in {})",
        args.join(" "),
        log.display()
    );
    let timeout = Duration::from_secs(o.timeout.as_secs().max(1));
    let (_, text) = run_captured(&program, &args, timeout, &log)?;
    let text = crate::output::clean(&text);
    let prefix = format!("[{MEASURER}] ");
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
        .collect();
    let f = parse(&lines)
        .map_err(|why| anyhow::anyhow!("bench ivc: {why} (console output in {})", log.display()))?;
    print!("{}", table(&f, &board.name));
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: [&str; 5] = [
        "testguest: ivc-bench: round-trip median 41000 ns p99 95000 ns (1000 rounds)",
        "testguest: ivc-bench: channel copy 122880 KiB/s (200 x 32768 bytes)",
        "ok: console",
        "testguest: ivc-bench: local memcpy 921600 KiB/s (2 copies per transfer)",
        "testguest: ivc-bench: local self-ipi median 3000 ns p99 7000 ns (1000 rounds)",
    ];

    #[test]
    fn the_guest_s_lines_give_the_figures() {
        let f = parse(&LINES).unwrap();
        assert_eq!(
            f,
            IvcFigures {
                round_trip_median_ns: 41000,
                round_trip_p99_ns: 95000,
                channel_kib_s: 122880,
                memcpy_kib_s: 921600,
                self_ipi_median_ns: 3000,
                self_ipi_p99_ns: 7000,
            }
        );
        let t = table(&f, "qemu-aarch64");
        assert!(t.contains("41.0 us round trip"), "{t}");
        assert!(t.contains("3.0 us self-IPI"), "{t}");
        assert!(t.contains("900.00 MiB/s memcpy"), "{t}");
        assert!(t.contains("120.00 MiB/s"), "{t}");
    }

    /// As seen in a run: beginnings of a line shown before the whole line.
    #[test]
    fn the_whole_line_after_its_beginnings_counts() {
        let mut lines = vec![
            "testguest: ivc-bench:",
            "testguest: ivc-bench: round-trip median ",
            "testguest: ivc-bench: round-trip median 186768 ns p99 270256 ns (1000 roun",
            "testguest: ivc-bench: round-trip median 186768 ns p99 270256 ns (1000 rounds)",
            "testguest: ivc-bench: ch",
        ];
        lines.extend_from_slice(&LINES[1..]);
        let f = parse(&lines).unwrap();
        assert_eq!(
            (f.round_trip_median_ns, f.round_trip_p99_ns),
            (186768, 270256)
        );
        assert_eq!(f.channel_kib_s, 122880);
    }

    #[test]
    fn each_architecture_has_its_pair_of_vms() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        for arch in [Arch::Aarch64, Arch::Riscv64] {
            for v in vms_of(arch).unwrap() {
                assert!(v.contains(arch.name()), "{v} is not a {} VM", arch.name());
                let text = std::fs::read_to_string(root.join(v)).unwrap();
                assert!(text.contains("cmdline = \"ivc-bench\""), "{v}");
            }
        }
        let e = vms_of(Arch::X86_64).unwrap_err().to_string();
        assert!(
            e.starts_with("not supported yet: bench ivc on x86_64"),
            "{e}"
        );
    }

    #[test]
    fn missing_or_malformed_lines_are_named() {
        let e = parse(&LINES[..2]).unwrap_err();
        assert_eq!(e, "no `testguest: ivc-bench: local memcpy ...` line");
        let bad = ["testguest: ivc-bench: round-trip median x ns p99 1 ns"];
        assert!(parse(&bad)
            .unwrap_err()
            .starts_with("round trip: no number"));
        let no_p99 = ["testguest: ivc-bench: round-trip median 5 ns"];
        assert!(parse(&no_p99).unwrap_err().contains("no p99"));
    }
}
