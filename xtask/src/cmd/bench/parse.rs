//! The pure parts of the benchmarks: the statistics of paired runs and the parsers
//! of what the guests print.
use serde::Serialize;

/// Median, range and (from 5 values on) quartiles of a series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartile; `None` below 5 values, where they say nothing.
    pub quartiles: Option<(f64, f64)>,
}

/// The summary of `values`; `None` when there are none or one is not a finite number.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let quartiles = (v.len() >= 5).then(|| (quantile(&v, 0.25), quantile(&v, 0.75)));
    Some(Summary {
        n: v.len(),
        median: quantile(&v, 0.5),
        min: v[0],
        max: v[v.len() - 1],
        quartiles,
    })
}

/// The `p` quantile of sorted, non-empty `v`, interpolated linearly between the two
/// nearest values (the usual definition: type 7 of Hyndman and Fan, numpy's default).
fn quantile(v: &[f64], p: f64) -> f64 {
    let pos = p * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Run `i` under the hypervisor divided by the bare run next to it, for every pair.
pub fn pair_ratios(hv: &[f64], bare: &[f64]) -> Vec<f64> {
    hv.iter().zip(bare).map(|(h, b)| h / b).collect()
}

/// The seconds of a `guest-init: uptime <secs>` line (`/proc/uptime`'s first field,
/// as the initramfs's /init prints it, possibly after a `[vm] ` prefix).
pub fn uptime(line: &str) -> Option<f64> {
    let rest = &line[line.find("guest-init: uptime ")? + "guest-init: uptime ".len()..];
    seconds(rest.split_whitespace().next()?)
}

/// The seconds of a `guest-init: monotonic-ns <ns>` line (CLOCK_MONOTONIC from
/// /proc/timer_list, as /init prints it).
pub fn monotonic(line: &str) -> Option<f64> {
    let rest = &line[line.find("guest-init: monotonic-ns ")? + "guest-init: monotonic-ns ".len()..];
    let ns = rest.split_whitespace().next()?;
    (ns.bytes().all(|b| b.is_ascii_digit()) && ns.len() <= 19)
        .then(|| ns.parse::<u64>().ok())
        .flatten()
        .map(|n| n as f64 / 1e9)
}

/// The last printk timestamp of a line: `[    0.867961] ...` gives 0.867961. A line
/// of a VM under the hypervisor has its prefix first (`[linux] [    0.867961] ...`).
pub fn printk_time(line: &str) -> Option<f64> {
    line.match_indices('[').rev().find_map(|(i, _)| {
        let inner = &line[i + 1..];
        let inner = &inner[..inner.find(']')?];
        let t = inner.trim_start_matches(' ');
        let (whole, frac) = t.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(whole) && frac.len() == 6 && digits(frac))
            .then(|| seconds(t))
            .flatten()
    })
}

/// A plain decimal number of seconds (`0.87`, `12`); nothing else.
fn seconds(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|b| *b == b'.').count() <= 1
        && s.bytes().next().is_some_and(|b| b.is_ascii_digit());
    ok.then(|| s.parse().ok()).flatten()
}

/// Where a guest time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Clock {
    /// The `guest-init: monotonic-ns` line of /init (ns).
    Monotonic,
    /// The `guest-init: uptime` line of /init (10 ms steps).
    Uptime,
    /// The last kernel message's printk timestamp (an initramfs without that line).
    Printk,
}

/// The guest's own time at the marker, from the output up to it: the last
/// `guest-init: monotonic-ns` line, else the last `guest-init: uptime` line, else the
/// last printk timestamp.
pub fn guest_time(output: &str) -> Option<(f64, Clock)> {
    let lines = || output.lines().rev();
    lines()
        .find_map(monotonic)
        .map(|t| (t, Clock::Monotonic))
        .or_else(|| lines().find_map(uptime).map(|t| (t, Clock::Uptime)))
        .or_else(|| lines().find_map(printk_time).map(|t| (t, Clock::Printk)))
}

/// What the test guest's `bench=<name>` mode printed: `testguest: bench <name>
/// ns=<ns> n=<operations> [baseline-ns=<ns>] [reg=<register>] [other=...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestBench {
    /// Nanoseconds per operation (the median batch).
    pub ns: f64,
    /// Operations per batch.
    pub n: u64,
    /// The baseline's nanoseconds per operation, measured in the same run.
    pub baseline_ns: Option<f64>,
    /// `mmio`: the emulated register read (`uart-fr`, `uart-lsr`, `lapic-version`).
    pub reg: Option<String>,
}

/// A register name as the test guest prints it (`uart-fr`, `lapic-version`).
fn register_name(v: &str) -> bool {
    (1..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The line that starts a guest bench's result (after a `[vm] ` prefix, if any).
pub fn guest_bench_marker(name: &str) -> String {
    format!("testguest: bench {name} ")
}

/// The result of guest bench `name` in console `output` (the last such line), or
/// why there is none: the guest's `failed: <why>`, no line, or a malformed one.
pub fn guest_bench(output: &str, name: &str) -> Result<GuestBench, String> {
    let marker = guest_bench_marker(name);
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains(&marker))
        .ok_or_else(|| format!("no `{marker}...` line"))?;
    let rest = &line[line.find(&marker).unwrap_or(0) + marker.len()..];
    if let Some(why) = rest.strip_prefix("failed: ") {
        return Err(format!("the guest says: {why}"));
    }
    let (mut ns, mut n, mut baseline_ns, mut reg) = (None, None, None, None);
    for word in rest.split_whitespace() {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("`{word}` is not key=value in `{line}`"))?;
        let bad = || format!("`{word}`: not a number in `{line}`");
        match key {
            "ns" => ns = Some(seconds(value).ok_or_else(bad)?),
            "baseline-ns" => baseline_ns = Some(seconds(value).ok_or_else(bad)?),
            "n" => n = Some(value.parse::<u64>().map_err(|_| bad())?),
            // A register's name goes into the Markdown table: a guest's `|` or
            // backtick would break it, so only short names of [a-z0-9-] count.
            "reg" if value.is_empty() => {}
            "reg" if register_name(value) => reg = Some(value.to_string()),
            "reg" => return Err(bad()),
            _ => {}
        }
    }
    match (ns, n) {
        (Some(ns), Some(n)) if n > 0 => Ok(GuestBench {
            ns,
            n,
            baseline_ns,
            reg,
        }),
        _ => Err(format!("no ns= and n= (above 0) in `{line}`")),
    }
}

/// The hypervisor's line once every VM has stopped (`hv: all VMs stopped: ...`).
pub const ALL_STOPPED: &str = "hv: all VMs stopped";

/// VM `name`'s exit counts, from the line a `log = "Debug"` hypervisor prints when
/// the VM stops: `hv: VM 1 (linux) exits: total 751, mmio 700, ...; RAM blocks ...`
/// gives `total 751, mmio 700, ...; RAM blocks ...`. The last such line at the
/// start of a line counts.
pub fn exit_counts<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let tag = format!(" ({name}) exits: ");
    text.lines().rev().find_map(|l| {
        // Only the hypervisor's own lines: a guest's are prefixed with `[name] `.
        let rest = l.strip_prefix("hv: VM ")?;
        let (id, counts) = rest.split_once(&tag)?;
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && counts.starts_with("total "))
            .then_some(counts.trim_end())
    })
}
