//! How bench figures are shown: the lines after one bench, the Markdown table and the
//! JSON file of `bench all`, and the machine they were taken on.
use std::fmt::Write;
use std::process::Command;

use anyhow::Result;
use serde::Serialize;

use super::parse::Summary;
use super::Figures;

/// The boards `bench all` measures.
pub const ALL_BOARDS: &[&str] = &[
    "configs/board/qemu-aarch64.toml",
    "configs/board/qemu-aarch64-gicv2.toml",
    "configs/board/qemu-riscv64.toml",
    "configs/board/qemu-x86_64.toml",
];

/// The machine the figures were taken on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPUs this process may use (`nproc`).
    pub nproc: usize,
    pub cpu_model: String,
    /// The first line of `<qemu> --version`, per QEMU binary.
    pub qemu: Vec<(String, String)>,
}

impl Machine {
    pub fn probe(programs: &[String]) -> Machine {
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into());
        let qemu = programs
            .iter()
            .map(|p| {
                let v = Command::new(p)
                    .arg("--version")
                    .output()
                    .ok()
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .next()
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "unknown (cannot run --version)".into());
                (p.clone(), v)
            })
            .collect();
        Machine {
            nproc,
            cpu_model,
            qemu,
        }
    }
}

/// The CPU model of /proc/cpuinfo text (`model name`, else `Model` or `uarch`).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "uarch"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    })
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Row {
    Done(Box<Figures>),
    Failed {
        bench: String,
        mode: String,
        board: String,
        error: String,
    },
    /// Not run, and why (not a failure).
    Skipped {
        bench: String,
        mode: String,
        board: String,
        reason: String,
    },
}

/// `1.023 (0.98..1.07, q 1.00..1.04)`.
pub fn ratio_text(s: &Summary) -> String {
    let q = s.quartiles.map_or(String::new(), |(a, b)| {
        format!(", quartiles {a:.3}..{b:.3}")
    });
    format!("{:.3} (min..max {:.3}..{:.3}{q})", s.median, s.min, s.max)
}

/// Decimals of a figure in `unit`.
fn decimals(unit: &str) -> usize {
    match unit {
        "ns" => 1,
        "s guest time" => 6,
        _ => 3,
    }
}

/// What is printed after one bench.
pub fn figures_text(f: &Figures) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "bench {} ({}) on {}: ratio {}, median of {} pairs: {}",
        f.bench,
        f.mode,
        f.board,
        f.compared,
        f.ratio.n,
        ratio_text(&f.ratio)
    );
    let (a, b) = f
        .compared
        .split_once(" / ")
        .unwrap_or(("hypervisor", "bare"));
    let _ = writeln!(
        t,
        "  for reference, medians: {a} {:.p$} {u}, {b} {:.p$} {u}",
        f.hv_median,
        f.bare_median,
        u = f.unit,
        p = decimals(&f.unit)
    );
    if let Some(c) = f.clock {
        let _ = writeln!(t, "  guest time from: {c:?}");
    }
    if let Some(r) = &f.register {
        let _ = writeln!(t, "  register read: {r}");
    }
    if let Some(e) = &f.exits {
        let _ = writeln!(
            t,
            "  exits under the hypervisor (one boot to power-off): {e}"
        );
    }
    t
}

/// The Markdown of `bench all`.
pub fn markdown(m: &Machine, rows: &[Row]) -> String {
    let mut t = String::from("# Bench results\n\n");
    let _ = writeln!(t, "Machine: {} CPUs (nproc), {}", m.nproc, m.cpu_model);
    for (p, v) in &m.qemu {
        let _ = writeln!(t, "{p}: {v}");
    }
    t.push_str(
        "\nRatio = hypervisor / bare per pair of neighbouring runs (hypercall: hypercall / trapless loop, both timed in one run under the hypervisor): \
         median (min..max, quartiles from 5 pairs). `wall`: seconds from QEMU's start to the marker; `icount`: the guest's own time under `-icount shift=0,sleep=off`; \
         `guest`: what the test guest timed on its counter, ns per operation (the median of its batches); \
         `mmio (register)`: the emulated register it read.\n\n",
    );
    t.push_str("| bench | mode | board | pairs | ratio (median) | min..max | quartiles | hypervisor median | bare (baseline) median |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        match r {
            Row::Done(f) => {
                let q = f
                    .ratio
                    .quartiles
                    .map_or("-".into(), |(a, b)| format!("{a:.3}..{b:.3}"));
                let _ = writeln!(
                    t,
                    "| {}{} | {} | {} | {} | {:.3} | {:.3}..{:.3} | {q} | {:.p$} {u} | {:.p$} {u}{base} |",
                    f.bench,
                    f.register.as_ref().map_or(String::new(), |r| format!(" ({r})")),
                    f.mode,
                    f.board,
                    f.ratio.n,
                    f.ratio.median,
                    f.ratio.min,
                    f.ratio.max,
                    f.hv_median,
                    f.bare_median,
                    u = f.unit.split(' ').next().unwrap_or(""),
                    p = decimals(&f.unit),
                    base = if f.compared == "hypervisor / bare" {
                        String::new()
                    } else {
                        format!(" ({})", f.compared.split(" / ").nth(1).unwrap_or(""))
                    }
                );
            }
            Row::Failed {
                bench,
                mode,
                board,
                error,
            } => {
                let first = error.lines().next().unwrap_or("").replace('|', "\\|");
                let _ = writeln!(
                    t,
                    "| {bench} | {mode} | {board} | - | failed: {first} | | | | |"
                );
            }
            Row::Skipped {
                bench,
                mode,
                board,
                reason,
            } => {
                let why = reason.replace('|', "\\|");
                let _ = writeln!(t, "| {bench} | {mode} | {board} | - | {why} | | | | |");
            }
        }
    }
    t
}

/// The JSON of `bench all`.
pub fn json(m: &Machine, rows: &[Row]) -> Result<String> {
    #[derive(Serialize)]
    struct All<'a> {
        machine: &'a Machine,
        results: &'a [Row],
    }
    Ok(serde_json::to_string_pretty(&All {
        machine: m,
        results: rows,
    })?)
}
