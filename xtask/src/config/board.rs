//! Board files (`configs/board/<name>.toml`, copied to `.build.toml`): AxVisor's
//! `.build.toml` keys plus what this project needs to check VM configs against the
//! machine (`arch`, `hv_load_addr`, `[memory]`, `cpu_mpidrs`) and to run it (`[qemu]`).
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::diag::{KeyPath, Report};
use super::image::{check_image, ImageConfig, ImageSection};
use super::range::{covered_by, human_size, Range, PAGE};
use super::source::{Overrides, Source};

/// `[base, size]`: exactly two non-negative integers (a plain tuple would silently
/// accept extra elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair(pub u64, pub u64);

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<u64> = Vec::deserialize(d)?;
        match v.as_slice() {
            [base, size] => Ok(Pair(*base, *size)),
            _ => Err(serde::de::Error::invalid_length(v.len(), &"[base, size]")),
        }
    }
}

/// CPU architecture of a board.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Arch {
    #[serde(rename = "aarch64")]
    Aarch64,
    #[serde(rename = "riscv64")]
    Riscv64,
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::X86_64 => "x86_64",
        }
    }

    /// Rust targets the hypervisor can be built for on this architecture.
    pub fn targets(self) -> &'static [&'static str] {
        match self {
            Arch::Aarch64 => &["aarch64-unknown-none-softfloat", "aarch64-unknown-none"],
            Arch::Riscv64 => &["riscv64gc-unknown-none-elf", "riscv64imac-unknown-none-elf"],
            Arch::X86_64 => &["x86_64-unknown-none"],
        }
    }

    /// The architecture a known target belongs to.
    pub fn of_target(target: &str) -> Option<Arch> {
        [Arch::Aarch64, Arch::Riscv64, Arch::X86_64]
            .into_iter()
            .find(|a| a.targets().contains(&target))
    }

    /// Alignment the hypervisor's load address needs.
    fn load_align(self) -> u64 {
        match self {
            // An arm64 Image is placed at a 2 MiB aligned base (+ text_offset).
            Arch::Aarch64 | Arch::Riscv64 => 0x20_0000,
            Arch::X86_64 => PAGE,
        }
    }
}

/// AxVisor's log levels (`log = "Info"`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum LogLevel {
    #[serde(alias = "trace")]
    Trace,
    #[serde(alias = "debug")]
    Debug,
    #[default]
    #[serde(alias = "info")]
    Info,
    #[serde(alias = "warn")]
    Warn,
    #[serde(alias = "error")]
    Error,
}

impl LogLevel {
    pub fn variant(self) -> &'static str {
        match self {
            LogLevel::Trace => "Trace",
            LogLevel::Debug => "Debug",
            LogLevel::Info => "Info",
            LogLevel::Warn => "Warn",
            LogLevel::Error => "Error",
        }
    }
}

/// What the hypervisor does when the last VM stops (`on_last_stop`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnLastStop {
    /// Power the machine off (QEMU boards and tests: the exit status says whether
    /// every VM stopped cleanly).
    #[default]
    Poweroff,
    /// Stay up with the hypervisor shell on the console.
    Shell,
}

impl OnLastStop {
    pub fn variant(self) -> &'static str {
        match self {
            OnLastStop::Poweroff => "PowerOff",
            OnLastStop::Shell => "Shell",
        }
    }
}

fn yes() -> bool {
    true
}

/// The top-level keys; sections are checked separately so that an error in one
/// section does not hide those in another.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopToml {
    target: String,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    log: LogLevel,
    #[serde(default)]
    on_last_stop: OnLastStop,
    #[serde(default)]
    cargo_args: Vec<String>,
    #[serde(default = "yes")]
    to_bin: bool,
    smp: Option<u32>,
    #[serde(default)]
    vm_configs: Vec<String>,
    arch: Option<Arch>,
    board: Option<String>,
    hv_load_addr: Option<u64>,
    cpu_mpidrs: Option<Vec<u64>>,
    host_dtb: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    memory: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    qemu: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    devices: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    image: IgnoredAny,
    #[serde(default)]
    #[allow(dead_code)]
    uboot: IgnoredAny,
}

#[derive(Debug, Deserialize)]
struct MemorySection {
    memory: Option<MemoryToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryToml {
    ram: Vec<Pair>,
    #[serde(default)]
    reserved: Vec<Pair>,
}

#[derive(Debug, Deserialize)]
struct QemuSection {
    qemu: Option<QemuToml>,
}

#[derive(Debug, Deserialize)]
struct UbootSection {
    uboot: Option<UbootToml>,
}

/// The `[uboot]` section: how `cargo xtask uboot` reaches the board's U-Boot.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UbootToml {
    /// The host's serial device wired to the board's console (`--serial` wins).
    pub serial: Option<String>,
    /// Its baud rate (default 115200; `--baud` wins).
    pub baud: Option<u32>,
    /// U-Boot's prompt (default "=> ").
    pub prompt: Option<String>,
    /// Load the files over TFTP instead of YMODEM over the serial line.
    pub tftp: Option<TftpToml>,
}

/// `[uboot.tftp]`: the host's TFTP server directory and the addresses U-Boot uses.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TftpToml {
    /// The directory the TFTP server serves (relative to the repository root, or
    /// absolute); xtask copies the files into `<dir>/<board>/` and U-Boot asks for
    /// `<board>/<file>`.
    pub dir: String,
    /// The TFTP server's address as U-Boot reaches it (`serverip`).
    pub server_ip: Option<String>,
    /// The board's address (`ipaddr`), or "dhcp" (default) to ask a DHCP server.
    pub ip: Option<String>,
}

/// The `[qemu]` section: how `cargo xtask run` starts QEMU for this board.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QemuToml {
    pub machine: String,
    pub cpu: Option<String>,
    /// QEMU `-m` value, e.g. "1G".
    pub memory: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Firmware for `-bios` (e.g. Debian's U-Boot for QEMU).
    pub bios: Option<String>,
    /// "kernel" (default): `-kernel hypervisor.bin`; "image": the card image of
    /// `cargo xtask image` as a virtio disk, booted by the `bios` firmware.
    pub boot: Option<String>,
}

impl QemuToml {
    /// Whether QEMU boots the card image (through firmware) instead of `-kernel`.
    pub fn boots_image(&self) -> bool {
        self.boot.as_deref() == Some("image")
    }
}

#[derive(Debug, Deserialize)]
struct DevicesSection {
    devices: Option<DevicesToml>,
}

/// `[devices]`: where the board's console UART and interrupt controller are. Only
/// documentation and a cross-check: the hypervisor discovers them from the DTB.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicesToml {
    uart: Option<Pair>,
    #[allow(dead_code)]
    uart_kind: Option<String>,
    #[allow(dead_code)]
    uart_irq: Option<u32>,
    gic_version: Option<u32>,
    gicd: Option<Pair>,
    gicr: Option<Pair>,
    gicc: Option<Pair>,
    gich: Option<Pair>,
    gicv: Option<Pair>,
    gits: Option<Vec<Pair>>,
    /// RISC-V PLIC.
    plic: Option<Pair>,
}

impl DevicesToml {
    fn windows(&self) -> Vec<(&'static str, Range)> {
        let singles = [
            ("uart", self.uart),
            ("gicd", self.gicd),
            ("gicr", self.gicr),
            ("gicc", self.gicc),
            ("gich", self.gich),
            ("gicv", self.gicv),
            ("plic", self.plic),
        ];
        let mut out: Vec<(&'static str, Range)> = singles
            .into_iter()
            .filter_map(|(k, w)| w.map(|Pair(b, s)| (k, Range::new(b, s))))
            .collect();
        for Pair(b, s) in self.gits.iter().flatten() {
            out.push(("gits", Range::new(*b, *s)));
        }
        out
    }
}

/// A validated board.
#[derive(Clone, Debug)]
pub struct Board {
    pub shown: String,
    pub name: String,
    pub arch: Arch,
    pub target: String,
    pub features: Vec<String>,
    pub log: LogLevel,
    /// What happens when the last VM stops.
    pub on_last_stop: OnLastStop,
    pub cargo_args: Vec<String>,
    pub to_bin: bool,
    /// Number of physical CPUs.
    pub smp: u32,
    /// MPIDR (aarch64) / hart id of each CPU, in DTB order.
    pub cpu_mpidrs: Vec<u64>,
    pub hv_load_addr: u64,
    pub ram: Vec<Range>,
    pub reserved: Vec<Range>,
    pub qemu: Option<QemuToml>,
    /// The host's GIC version (2 or 3) and where that comes from (`[devices]
    /// gic_version`, or a QEMU virt board's `gic-version=` machine option): VM GICs
    /// are checked against it. `None`: unknown (the check is skipped with a warning).
    pub gic: Option<(u32, String)>,
    /// `[devices] gicv` (GICv2 virtual CPU interface), if the board says.
    pub gicv: Option<Range>,
    /// Host windows the hypervisor keeps (interrupt controller, console, ...) and
    /// where they come from (`[devices]`, or QEMU virt's memory map): never passed
    /// through. `None`: unknown (passthrough is checked against RAM only, with a
    /// warning).
    pub kept: Option<(Vec<vmconfig::host::HostWindow>, String)>,
    /// `[image]`: how `cargo xtask image` writes a card image for the board.
    pub image: Option<ImageConfig>,
    /// `host_dtb`: the board's device tree, for the host checks of device-tree
    /// passthrough (QEMU boards without it: dumped from QEMU).
    pub host_dtb: Option<PathBuf>,
    /// `[uboot]`: how `cargo xtask uboot` reaches the board's U-Boot.
    pub uboot: Option<UbootToml>,
    /// VM config paths as written and resolved against the repository root.
    pub vm_configs: Vec<(String, PathBuf)>,
    /// Where keys that later checks point at are in the file (line, column).
    pub smp_at: Option<(usize, usize)>,
    pub vm_configs_at: Vec<Option<(usize, usize)>>,
}

impl Board {
    pub fn total_ram(&self) -> u64 {
        self.ram.iter().map(|r| r.size).sum()
    }
}

/// Parses and checks a board file; returns the board only when it has no errors.
pub fn load_board(path: &Path, root: &Path) -> (Option<Board>, Report) {
    load_board_with(path, root, &Overrides::new())
}

/// [`load_board`] with the text of `path` taken from `overrides` when it is there.
pub fn load_board_with(path: &Path, root: &Path, overrides: &Overrides) -> (Option<Board>, Report) {
    let mut report = Report::default();
    let src = match Source::load_with(path, root, overrides) {
        Ok(s) => s,
        Err(d) => {
            report.push(d);
            return (None, report);
        }
    };
    let board = check_board(&src, root, &mut report);
    if report.has_errors() {
        (None, report)
    } else {
        (board, report)
    }
}

fn check_board(src: &Source, root: &Path, report: &mut Report) -> Option<Board> {
    let top = src.typed::<TopToml>().map_err(|d| report.push(d)).ok();
    // Err(()) = the section is there but malformed (already reported).
    let memory = src
        .typed::<MemorySection>()
        .map(|m| m.memory)
        .map_err(|d| report.push(d));
    let qemu = src.typed::<QemuSection>().map_err(|d| report.push(d)).ok();
    let devices = src
        .typed::<DevicesSection>()
        .map_err(|d| report.push(d))
        .ok();
    let image = src.typed::<ImageSection>().map_err(|d| report.push(d)).ok();
    let uboot = src
        .typed::<UbootSection>()
        .map_err(|d| report.push(d))
        .ok()
        .and_then(|u| u.uboot);
    let top = top?;

    let arch = check_arch(src, &top, report);
    let name = board_name(src, &top, report);
    let (smp, cpu_mpidrs) = check_cpus(src, &top, report);
    let (ram, reserved) = match &memory {
        Ok(Some(m)) => check_memory(src, m, report),
        Err(()) => (Vec::new(), Vec::new()),
        Ok(None) => {
            report.push(src.error(
                &KeyPath::new("memory"),
                "missing section [memory] with `ram = [[base, size], ...]` (the board's RAM map)",
            ));
            (Vec::new(), Vec::new())
        }
    };
    let hv_load_addr = check_load_addr(src, &top, arch, &ram, &reserved, report);
    let image_toml = image.and_then(|i| i.image);
    let image = image_toml
        .as_ref()
        .and_then(|i| check_image(src, root, i, &ram, report));
    let qemu = qemu.and_then(|q| q.qemu);
    if let Some(q) = &qemu {
        check_qemu(src, q, &ram, report);
        check_qemu_boot(src, q, image_toml.is_some(), report);
    }
    let devices = devices.and_then(|d| d.devices);
    if let Some(d) = &devices {
        check_device_windows(src, d, &ram, report);
        check_gic_version(src, d, report);
    }
    let gic = board_gic(devices.as_ref(), qemu.as_ref(), arch);
    let kept = kept_windows(devices.as_ref(), qemu.as_ref(), arch);
    let gicv = devices
        .as_ref()
        .and_then(|d| d.gicv)
        .map(|Pair(b, s)| Range::new(b, s));
    let vm_configs = top
        .vm_configs
        .iter()
        .map(|p| (p.clone(), root.join(p)))
        .collect();
    let host_dtb = top.host_dtb.as_ref().and_then(|p| {
        let abs = root.join(p);
        if abs.is_file() {
            Some(abs)
        } else {
            report.push(src.error(
                &KeyPath::new("host_dtb"),
                format!("device tree not found: {p} (paths are relative to the repository root)"),
            ));
            None
        }
    });
    let vm_configs_at = (0..top.vm_configs.len())
        .map(|i| src.locate(&KeyPath::new("vm_configs").index(i)))
        .collect();
    Some(Board {
        shown: src.shown.clone(),
        name: name?,
        arch: arch?,
        target: top.target.clone(),
        features: top.features.clone(),
        log: top.log,
        on_last_stop: top.on_last_stop,
        cargo_args: top.cargo_args.clone(),
        to_bin: top.to_bin,
        smp: smp?,
        cpu_mpidrs,
        hv_load_addr: hv_load_addr?,
        ram,
        reserved,
        qemu,
        gic,
        gicv,
        kept,
        image,
        host_dtb,
        uboot,
        vm_configs,
        smp_at: src.locate(&KeyPath::new("smp")),
        vm_configs_at,
    })
}

fn check_arch(src: &Source, top: &TopToml, report: &mut Report) -> Option<Arch> {
    let of_target = Arch::of_target(&top.target);
    match (top.arch, of_target) {
        (Some(a), Some(t)) if a == t => Some(a),
        (Some(a), _) => {
            report.push(src.error(
                &KeyPath::new("target"),
                format!(
                    "target `{}` is not a target for arch \"{}\" (use one of: {})",
                    top.target,
                    a.name(),
                    a.targets().join(", ")
                ),
            ));
            None
        }
        (None, Some(t)) => Some(t),
        (None, None) => {
            let all: Vec<&str> = [Arch::Aarch64, Arch::Riscv64, Arch::X86_64]
                .iter()
                .flat_map(|a| a.targets().iter().copied())
                .collect();
            report.push(src.error(
                &KeyPath::new("target"),
                format!(
                    "unknown target `{}` (known: {})",
                    top.target,
                    all.join(", ")
                ),
            ));
            None
        }
    }
}

fn board_name(src: &Source, top: &TopToml, report: &mut Report) -> Option<String> {
    if let Some(b) = &top.board {
        let ok = !b.is_empty()
            && b.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            report.push(src.error(
                &KeyPath::new("board"),
                "board name must be non-empty and use only letters, digits, '-' and '_'",
            ));
            return None;
        }
        return Some(b.clone());
    }
    match src.path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !stem.starts_with('.') => Some(stem.to_string()),
        _ => {
            report.push(src.error(
                &KeyPath::new("board"),
                "missing key `board` (the board's name, e.g. \"qemu-aarch64\")",
            ));
            None
        }
    }
}

fn check_cpus(src: &Source, top: &TopToml, report: &mut Report) -> (Option<u32>, Vec<u64>) {
    let smp = match (top.smp, &top.cpu_mpidrs) {
        (Some(0), _) => {
            report.push(src.error(&KeyPath::new("smp"), "smp must be at least 1"));
            return (None, Vec::new());
        }
        (Some(n), Some(ids)) if ids.len() != n as usize => {
            report.push(src.error(
                &KeyPath::new("cpu_mpidrs"),
                format!("lists {} CPUs but smp = {n}", ids.len()),
            ));
            return (None, Vec::new());
        }
        (Some(n), _) => n,
        (None, Some(ids)) if !ids.is_empty() => ids.len() as u32,
        (None, _) => {
            report.push(src.error(
                &KeyPath::new("smp"),
                "missing key `smp` (the number of CPUs of the board)",
            ));
            return (None, Vec::new());
        }
    };
    let ids: Vec<u64> = match &top.cpu_mpidrs {
        Some(ids) => ids.clone(),
        None => (0..smp as u64).collect(),
    };
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            report.push(src.error(
                &KeyPath::new("cpu_mpidrs").index(i),
                format!("MPIDR {id:#x} is listed twice"),
            ));
        }
    }
    (Some(smp), ids)
}

fn check_regions(src: &Source, key: &KeyPath, list: &[Pair], report: &mut Report) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for (i, &Pair(base, size)) in list.iter().enumerate() {
        let k = key.index(i);
        let r = Range::new(base, size);
        if size == 0 {
            report.push(src.error(&k, "region size is 0"));
        } else if r.end().is_none() {
            report.push(src.error(&k, format!("region {base:#x} + {size:#x} overflows")));
        } else if !r.is_aligned(PAGE) {
            report.push(src.error(&k, format!("region {r} is not 4 KiB aligned")));
        } else if let Some((j, other)) = out.iter().enumerate().find(|(_, o)| o.overlaps(&r)) {
            report.push(src.error(&k, format!("region {r} overlaps {key}[{j}] ({other})")));
        } else {
            out.push(r);
            continue;
        }
        out.push(Range::new(base, 0));
    }
    out.retain(|r| r.size != 0);
    out
}

fn check_memory(src: &Source, m: &MemoryToml, report: &mut Report) -> (Vec<Range>, Vec<Range>) {
    let ram_key = KeyPath::new("memory").key("ram");
    if m.ram.is_empty() {
        report.push(src.error(&ram_key, "the board has no RAM regions"));
    }
    let ram = check_regions(src, &ram_key, &m.ram, report);
    let res_key = KeyPath::new("memory").key("reserved");
    let reserved = check_regions(src, &res_key, &m.reserved, report);
    for (i, r) in reserved.iter().enumerate() {
        if !covered_by(r, &ram) {
            report.push(src.error(
                &res_key.index(i),
                format!("reserved region {r} is not inside the board's RAM"),
            ));
        }
    }
    (ram, reserved)
}

fn check_load_addr(
    src: &Source,
    top: &TopToml,
    arch: Option<Arch>,
    ram: &[Range],
    reserved: &[Range],
    report: &mut Report,
) -> Option<u64> {
    let key = KeyPath::new("hv_load_addr");
    let Some(addr) = top.hv_load_addr else {
        report.push(src.error(
            &key,
            "missing key `hv_load_addr` (the physical address the hypervisor is linked and loaded at)",
        ));
        return None;
    };
    let align = arch.map(Arch::load_align).unwrap_or(PAGE);
    if addr % align != 0 {
        report.push(src.error(
            &key,
            format!("{addr:#x} is not aligned to {}", human_size(align)),
        ));
    }
    if !ram.is_empty() && !ram.iter().any(|r| r.contains(addr)) {
        report.push(src.error(&key, format!("{addr:#x} is not inside the board's RAM")));
    }
    if let Some(r) = reserved.iter().find(|r| r.contains(addr)) {
        report.push(src.error(&key, format!("{addr:#x} is inside reserved region {r}")));
    }
    Some(addr)
}

/// Parses a QEMU `-m` size: a number with an optional K/M/G/T suffix (default MiB).
pub fn parse_qemu_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 10),
        'm' | 'M' => (&t[..t.len() - 1], 20),
        'g' | 'G' => (&t[..t.len() - 1], 30),
        't' | 'T' => (&t[..t.len() - 1], 40),
        _ => (t, 20),
    };
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

fn check_qemu(src: &Source, q: &QemuToml, ram: &[Range], report: &mut Report) {
    if q.machine.trim().is_empty() {
        report.push(src.error(&KeyPath::new("qemu").key("machine"), "machine is empty"));
    }
    let Some(mem) = &q.memory else { return };
    let key = KeyPath::new("qemu").key("memory");
    match parse_qemu_size(mem) {
        None => report.push(src.error(
            &key,
            format!("cannot read {mem:?} as a size (e.g. \"1G\", \"512M\")"),
        )),
        Some(bytes) => {
            let total: u64 = ram.iter().map(|r| r.size).sum();
            if !ram.is_empty() && bytes != total {
                report.push(src.error(
                    &key,
                    format!(
                        "QEMU gets {} of RAM but [memory] ram describes {}",
                        human_size(bytes),
                        human_size(total)
                    ),
                ));
            }
        }
    }
}

fn check_gic_version(src: &Source, d: &DevicesToml, report: &mut Report) {
    let versions = super::gic::BOARD_GIC_VERSIONS;
    if let Some(v) = d.gic_version.filter(|v| !versions.contains(v)) {
        report.push(src.error(
            &KeyPath::new("devices").key("gic_version"),
            format!("unknown gic_version {v} (known: {versions:?})"),
        ));
    }
}

fn check_qemu_boot(src: &Source, q: &QemuToml, has_image: bool, report: &mut Report) {
    let key = KeyPath::new("qemu").key("boot");
    match q.boot.as_deref() {
        None | Some("kernel") => {}
        Some("image") => {
            if !has_image {
                report.push(src.error(
                    &key,
                    "boot = \"image\" needs an [image] section (how to write the card image)",
                ));
            }
            if q.bios.is_none() {
                report.push(src.error(
                    &key,
                    "boot = \"image\" needs `bios` = the firmware that boots the image (e.g. U-Boot)",
                ));
            }
        }
        Some(other) => report.push(src.error(
            &key,
            format!("unknown boot {other:?} (\"kernel\" or \"image\")"),
        )),
    }
}

fn check_device_windows(src: &Source, d: &DevicesToml, ram: &[Range], report: &mut Report) {
    for (name, w) in d.windows() {
        if let Some(r) = ram.iter().find(|r| r.overlaps(&w)) {
            report.push(src.error(
                &KeyPath::new("devices").key(name),
                format!("device window {w} overlaps RAM region {r}"),
            ));
        }
    }
}

/// Whether the board is QEMU's `virt` machine (its memory map is known).
fn qemu_virt(qemu: Option<&QemuToml>) -> bool {
    qemu.is_some_and(|q| q.machine.split(',').next() == Some("virt"))
}

/// The host's GIC version: `[devices] gic_version`, else a QEMU virt board's
/// `gic-version=` machine option (QEMU's default is 2).
fn board_gic(
    devices: Option<&DevicesToml>,
    qemu: Option<&QemuToml>,
    arch: Option<Arch>,
) -> Option<(u32, String)> {
    if arch != Some(Arch::Aarch64) {
        return None;
    }
    if let Some(v) = devices.and_then(|d| d.gic_version) {
        return Some((v, format!("[devices] gic_version = {v}")));
    }
    let q = qemu.filter(|q| qemu_virt(Some(q)))?;
    let option = q
        .machine
        .split(',')
        .find_map(|o| o.strip_prefix("gic-version="));
    match option {
        None => Some((
            2,
            "QEMU virt's default GIC, version 2: [qemu] machine has no gic-version=".into(),
        )),
        Some("2") => Some((2, "[qemu] machine gic-version=2".into())),
        Some("3") => Some((3, "[qemu] machine gic-version=3".into())),
        // "max", "host", 4: QEMU picks; unknown here.
        Some(_) => None,
    }
}

/// What the hypervisor keeps of the host: `[devices]`, else QEMU virt's memory map.
fn kept_windows(
    devices: Option<&DevicesToml>,
    qemu: Option<&QemuToml>,
    arch: Option<Arch>,
) -> Option<(Vec<vmconfig::host::HostWindow>, String)> {
    use vmconfig::host::{self as h, HostWindow};
    if let Some(d) = devices {
        let what = |k: &str| match k {
            "uart" => h::CONSOLE,
            "gicd" => h::GICD,
            "gicr" => h::GICR,
            "gicc" => h::GICC,
            "gich" => h::GICH,
            "gicv" => h::GICV,
            "gits" => h::GITS,
            _ => h::PLIC,
        };
        let windows = d
            .windows()
            .into_iter()
            .map(|(k, r)| HostWindow::new(what(k), r.base, r.size))
            .collect();
        return Some((windows, "the board's [devices]".into()));
    }
    if !qemu_virt(qemu) {
        return None;
    }
    match arch? {
        Arch::Aarch64 => Some((h::qemu_virt_aarch64(), "QEMU virt's memory map".into())),
        Arch::Riscv64 => Some((h::qemu_virt_riscv64(), "QEMU virt's memory map".into())),
        Arch::X86_64 => None,
    }
}
