//! VM configs (`configs/vms/*.toml`) in AxVisor's format: typed parsing, then the
//! checks that need only the VM itself (and the board's architecture).
//!
//! Project extension: `kernel_path = "guest:<crate>"` names the in-repo guest crate
//! `guests/<crate>`, which `cargo xtask build` builds and turns into a raw binary.
//! `kernel_path`, `ramdisk_path` and `dtb_path` may also be `"image:<name>/<file>"`,
//! a file of a guest image pulled with `cargo xtask guest pull <name>`.
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::board::Arch;
use super::diag::{KeyPath, Report};
use super::range::{human_size, Range, PAGE};
use super::source::{Overrides, Raw, Source};

/// AxVisor `emu_type` codes and what they are.
pub const EMU_TYPES: &[(u32, &str)] = &[
    (0x0, "dummy"),
    (0x1, "interrupt controller (aarch64: GICv2 CPU interface)"),
    (0x2, "console"),
    (0xA, "inter-VM channel"),
    (0x20, "GIC redistributor (partial passthrough)"),
    (0x21, "GIC distributor (partial passthrough)"),
    (0x22, "GIC ITS (partial passthrough)"),
    (0x30, "RISC-V PLIC (partial passthrough)"),
    (0xE1, "virtio-blk"),
    (0xE2, "virtio-net"),
    (0xE3, "virtio-console"),
];

/// Memory region flag bits (`memory_regions` third field).
pub const FLAG_READ: u64 = 1;
pub const FLAG_WRITE: u64 = 2;
pub const FLAG_EXECUTE: u64 = 4;
pub const FLAG_DEVICE: u64 = 8;

/// The three sections, each parsed in its own pass (the others ignored) so that an
/// error in one section does not hide errors in the next.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parts<B, K, D> {
    base: B,
    kernel: K,
    #[serde(default)]
    devices: D,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseToml {
    id: u64,
    name: String,
    #[serde(default = "one")]
    vm_type: u64,
    cpu_num: u64,
    phys_cpu_ids: Option<Vec<u64>>,
    phys_cpu_sets: Option<Vec<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelToml {
    entry_point: u64,
    image_location: Option<String>,
    kernel_path: String,
    kernel_load_addr: u64,
    bios_path: Option<String>,
    bios_load_addr: Option<u64>,
    dtb_path: Option<String>,
    dtb_load_addr: Option<u64>,
    ramdisk_path: Option<String>,
    ramdisk_load_addr: Option<u64>,
    disk_path: Option<String>,
    #[serde(default)]
    cmdline: String,
    memory_regions: Vec<Raw>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicesToml {
    #[serde(default)]
    emu_devices: Vec<Raw>,
    #[serde(default)]
    passthrough_devices: Vec<Raw>,
    interrupt_mode: Option<String>,
    #[serde(default)]
    excluded_devices: Vec<Raw>,
    #[serde(default)]
    passthrough_addresses: Vec<Raw>,
}

/// Where a VM image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// A file (absolute path).
    File(PathBuf),
    /// An in-repo guest crate under `guests/`, built by xtask.
    Guest(String),
}

/// Where a VM's images and config live at run time (`kernel.image_location`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageLocation {
    /// Bundled into the hypervisor at build time.
    #[default]
    Memory,
    /// Files on the boot partition of a card image (`cargo xtask image`), loaded by
    /// the bootloader and found by the hypervisor at boot.
    Fs,
}

/// An image bundled into the hypervisor and copied to `load` (a GPA) before boot.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub source: ImageSource,
    pub load: u64,
    /// The config key that names the image (for messages).
    pub key: KeyPath,
    /// The config key of its load address.
    pub load_key: KeyPath,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    pub range: Range,
    pub flags: u64,
    /// 0 allocate anywhere, 1 identity (GPA = HPA), 2 reserved host range.
    pub map_type: u8,
}

impl MemRegion {
    pub fn is_ram(&self) -> bool {
        self.flags & FLAG_DEVICE == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmuDevice {
    pub key: KeyPath,
    pub name: String,
    pub range: Range,
    pub irq: u32,
    pub emu_type: u32,
    pub cfg: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassDevice {
    pub key: KeyPath,
    pub name: String,
    pub gpa: u64,
    pub hpa: u64,
    pub len: u64,
    pub irq: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqMode {
    NoIrq,
    Emulated,
    Passthrough,
}

/// A VM config that passed its own checks.
pub struct Vm {
    pub src: Source,
    pub id: u32,
    pub name: String,
    pub vm_type: u32,
    pub cpu_num: u32,
    pub phys_cpu_ids: Option<Vec<u64>>,
    pub phys_cpu_sets: Option<Vec<u64>>,
    /// Physical CPU index of each vCPU (filled in by the CPU placement).
    pub pcpus: Vec<u32>,
    pub entry_point: u64,
    pub location: ImageLocation,
    pub kernel: ImageSpec,
    pub dtb: Option<ImageSpec>,
    pub ramdisk: Option<ImageSpec>,
    /// Where the hypervisor puts the guest DTB it generates.
    pub dtb_load_gpa: u64,
    pub cmdline: String,
    pub memory: Vec<MemRegion>,
    pub emu_devices: Vec<EmuDevice>,
    pub passthrough: Vec<PassDevice>,
    pub interrupt_mode: IrqMode,
}

impl Vm {
    /// Regions of normal memory (not device memory).
    pub fn ram(&self) -> impl Iterator<Item = &MemRegion> {
        self.memory.iter().filter(|m| m.is_ram())
    }

    pub fn ram_size(&self) -> u64 {
        self.ram().map(|m| m.range.size).sum()
    }

    /// Every image with its source, for building and bundling.
    pub fn images(&self) -> impl Iterator<Item = &ImageSpec> {
        std::iter::once(&self.kernel)
            .chain(self.dtb.iter())
            .chain(self.ramdisk.iter())
    }
}

/// Parses and checks one VM config. Returns the VM when it has no errors.
#[allow(dead_code)] // the one-file form of `load_vm_with`, for callers without edits
pub fn load_vm(path: &Path, root: &Path, arch: Arch, report: &mut Report) -> Option<Vm> {
    load_vm_with(path, root, arch, &Overrides::new(), report)
}

/// [`load_vm`] with the text of `path` taken from `overrides` when it is there.
pub fn load_vm_with(
    path: &Path,
    root: &Path,
    arch: Arch,
    overrides: &Overrides,
    report: &mut Report,
) -> Option<Vm> {
    let src = match Source::load_with(path, root, overrides) {
        Ok(s) => s,
        Err(d) => {
            report.push(d);
            return None;
        }
    };
    let before = report.error_count();
    let base = src
        .typed::<Parts<BaseToml, IgnoredAny, IgnoredAny>>()
        .map_err(|d| report.push(d))
        .ok();
    let kernel = src
        .typed::<Parts<IgnoredAny, KernelToml, IgnoredAny>>()
        .map_err(|d| report.push(d))
        .ok();
    let devices = src
        .typed::<Parts<IgnoredAny, IgnoredAny, Option<DevicesToml>>>()
        .map_err(|d| report.push(d))
        .ok();
    let (base, kernel, devices) = (base?.base, kernel?.kernel, devices?.devices);
    let vm = build_vm(src, base, kernel, devices.unwrap_or_default(), arch, report);
    (report.error_count() == before).then_some(vm).flatten()
}

fn build_vm(
    src: Source,
    base: BaseToml,
    kernel: KernelToml,
    devices: DevicesToml,
    arch: Arch,
    report: &mut Report,
) -> Option<Vm> {
    let id = check_base(&src, &base, report);
    let memory = memory_regions(&src, &kernel.memory_regions, report);
    let images = kernel_images(&src, &kernel, &memory, report);
    let emu_devices = emu_devices(&src, &devices.emu_devices, arch, report);
    let passthrough = passthrough(&src, &devices, report);
    let interrupt_mode = irq_mode(&src, devices.interrupt_mode.as_deref(), report);
    check_device_overlaps(&src, &emu_devices, &passthrough, &memory, report);
    let (kernel_img, dtb, ramdisk, dtb_load_gpa) = images?;
    Some(Vm {
        id: id?,
        name: base.name,
        vm_type: base.vm_type as u32,
        cpu_num: base.cpu_num as u32,
        phys_cpu_ids: base.phys_cpu_ids,
        phys_cpu_sets: base.phys_cpu_sets,
        pcpus: Vec::new(),
        entry_point: kernel.entry_point,
        location: image_location(kernel.image_location.as_deref()),
        kernel: kernel_img,
        dtb,
        ramdisk,
        dtb_load_gpa,
        cmdline: kernel.cmdline,
        memory,
        emu_devices,
        passthrough,
        interrupt_mode: interrupt_mode?,
        src,
    })
}

fn check_base(src: &Source, base: &BaseToml, report: &mut Report) -> Option<u32> {
    let key = KeyPath::new("base");
    let name_ok = !base.name.is_empty()
        && base
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        report.push(src.error(
            &key.key("name"),
            format!(
                "VM name {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                base.name
            ),
        ));
    }
    if base.vm_type > 2 {
        report.push(src.error(
            &key.key("vm_type"),
            format!(
                "unknown vm_type {} (0 host VM, 1 RTOS, 2 Linux)",
                base.vm_type
            ),
        ));
    }
    if base.cpu_num == 0 || base.cpu_num > 512 {
        report.push(src.error(
            &key.key("cpu_num"),
            format!("cpu_num must be between 1 and 512, not {}", base.cpu_num),
        ));
    }
    for (field, list) in [
        ("phys_cpu_ids", &base.phys_cpu_ids),
        ("phys_cpu_sets", &base.phys_cpu_sets),
    ] {
        if let Some(list) = list {
            if list.len() as u64 != base.cpu_num {
                report.push(src.error(
                    &key.key(field),
                    format!(
                        "has {} entries but cpu_num = {} (one entry per vCPU)",
                        list.len(),
                        base.cpu_num
                    ),
                ));
            }
        }
    }
    match u32::try_from(base.id) {
        Ok(id) => Some(id),
        Err(_) => {
            report.push(src.error(&key.key("id"), "VM id does not fit in 32 bits"));
            None
        }
    }
}

/// An element of a heterogeneous array, as a non-negative integer.
fn int_at(
    src: &Source,
    list: &[Raw],
    i: usize,
    key: &KeyPath,
    what: &str,
    report: &mut Report,
) -> Option<u64> {
    match list.get(i) {
        Some(Raw::Int(v)) if *v >= 0 => Some(*v as u64),
        Some(other) => {
            report.push(src.error(
                &key.index(i),
                format!(
                    "{what} must be a non-negative integer, not {}",
                    describe(other)
                ),
            ));
            None
        }
        None => None,
    }
}

fn describe(raw: &Raw) -> String {
    match raw {
        Raw::Int(v) => format!("{v}"),
        Raw::Str(s) => format!("the string {s:?}"),
        other => other.kind().to_string(),
    }
}

/// `raw` as an array of `min..=max` elements, or an error naming the expected shape.
fn list_of<'a>(
    src: &Source,
    raw: &'a Raw,
    key: &KeyPath,
    shape: &str,
    lens: std::ops::RangeInclusive<usize>,
    report: &mut Report,
) -> Option<&'a [Raw]> {
    match raw {
        Raw::List(l) if lens.contains(&l.len()) => Some(l),
        Raw::List(l) => {
            report.push(src.error(
                key,
                format!("expected {shape}, found an array of {} elements", l.len()),
            ));
            None
        }
        other => {
            report.push(src.error(key, format!("expected {shape}, found {}", other.kind())));
            None
        }
    }
}

fn memory_regions(src: &Source, raw: &[Raw], report: &mut Report) -> Vec<MemRegion> {
    let key = KeyPath::new("kernel").key("memory_regions");
    let mut out: Vec<MemRegion> = Vec::new();
    if raw.is_empty() {
        report.push(src.error(&key, "the VM has no memory regions"));
    }
    for (i, r) in raw.iter().enumerate() {
        let k = key.index(i);
        if let Some(region) = memory_region(src, r, &k, report) {
            check_region(src, &region, &k, &out, report);
            out.push(region);
        }
    }
    if !raw.is_empty() && out.len() == raw.len() && !out.iter().any(MemRegion::is_ram) {
        report.push(src.error(&key, "the VM has no normal (non-device) memory region"));
    }
    out
}

fn memory_region(src: &Source, raw: &Raw, k: &KeyPath, report: &mut Report) -> Option<MemRegion> {
    let shape = "[gpa, size, flags, map_type]";
    let l = list_of(src, raw, k, shape, 4..=4, report)?;
    let gpa = int_at(src, l, 0, k, "gpa", report);
    let size = int_at(src, l, 1, k, "size", report);
    let flags = int_at(src, l, 2, k, "flags", report);
    let map_type = int_at(src, l, 3, k, "map_type", report);
    let (gpa, size, flags, map_type) = (gpa?, size?, flags?, map_type?);
    let mut ok = true;
    if flags & !0xF != 0 || flags & (FLAG_READ | FLAG_WRITE | FLAG_EXECUTE) == 0 {
        report.push(src.error(
            &k.index(2),
            format!("flags {flags:#x}: use bits 0x1 read, 0x2 write, 0x4 execute, 0x8 device (at least one of R/W/X)"),
        ));
        ok = false;
    }
    if map_type > 2 {
        report.push(src.error(
            &k.index(3),
            format!("unknown map_type {map_type} (0 allocate, 1 identity, 2 reserved)"),
        ));
        ok = false;
    }
    ok.then_some(MemRegion {
        range: Range::new(gpa, size),
        flags,
        map_type: map_type as u8,
    })
}

fn check_region(src: &Source, r: &MemRegion, k: &KeyPath, prev: &[MemRegion], report: &mut Report) {
    let range = r.range;
    if range.size == 0 {
        report.push(src.error(k, "region size is 0"));
    } else if range.end().is_none() {
        report.push(src.error(
            k,
            format!("region {:#x} + {:#x} overflows", range.base, range.size),
        ));
    } else if !range.is_aligned(PAGE) {
        report.push(src.error(
            k,
            format!(
                "region {range} is not 4 KiB aligned (base and size must be multiples of 0x1000)"
            ),
        ));
    }
    for (j, other) in prev.iter().enumerate() {
        if other.range.overlaps(&range) {
            report.push(src.error(
                k,
                format!(
                    "region {range} overlaps kernel.memory_regions[{j}] ({})",
                    other.range
                ),
            ));
        }
    }
}

type Images = (ImageSpec, Option<ImageSpec>, Option<ImageSpec>, u64);

fn kernel_images(
    src: &Source,
    k: &KernelToml,
    mem: &[MemRegion],
    report: &mut Report,
) -> Option<Images> {
    let key = KeyPath::new("kernel");
    check_unsupported(src, k, report);
    let kernel = image_spec(
        src,
        &k.kernel_path,
        true,
        k.kernel_load_addr,
        "kernel_path",
        "kernel_load_addr",
        report,
    );
    let first_ram = mem.iter().find(|m| m.is_ram()).map(|m| m.range.base);
    let dtb = k.dtb_path.as_ref().and_then(|p| {
        let load = k.dtb_load_addr.or(first_ram)?;
        image_spec(src, p, false, load, "dtb_path", "dtb_load_addr", report)
    });
    let ramdisk = match (&k.ramdisk_path, k.ramdisk_load_addr) {
        (Some(p), Some(load)) => image_spec(
            src,
            p,
            false,
            load,
            "ramdisk_path",
            "ramdisk_load_addr",
            report,
        ),
        (Some(_), None) => {
            report.push(src.error(
                &key.key("ramdisk_path"),
                "ramdisk_path needs ramdisk_load_addr",
            ));
            None
        }
        (None, Some(_)) => {
            report.push(src.warning(&key.key("ramdisk_load_addr"), "ignored: no ramdisk_path"));
            None
        }
        (None, None) => None,
    };
    let dtb_load_gpa = match (k.dtb_load_addr, &k.dtb_path) {
        (Some(addr), None) => Some(addr),
        _ => first_ram,
    };
    check_addresses(src, k, mem, dtb_load_gpa, report);
    let kernel = kernel?;
    let images: Vec<&ImageSpec> = std::iter::once(&kernel)
        .chain(dtb.iter())
        .chain(ramdisk.iter())
        .collect();
    check_file_images(src, &images, mem, report);
    Some((kernel, dtb, ramdisk, dtb_load_gpa?))
}

fn image_location(value: Option<&str>) -> ImageLocation {
    match value {
        Some("fs") => ImageLocation::Fs,
        _ => ImageLocation::Memory,
    }
}

fn check_unsupported(src: &Source, k: &KernelToml, report: &mut Report) {
    let key = KeyPath::new("kernel");
    match k.image_location.as_deref() {
        None | Some("memory") | Some("fs") => {}
        Some(other) => report.push(src.error(
            &key.key("image_location"),
            format!("unknown image_location {other:?} (\"memory\" or \"fs\")"),
        )),
    }
    if k.bios_path.is_some() {
        report.push(src.error(
            &key.key("bios_path"),
            "not supported yet: bios_path (the hypervisor boots the kernel image directly)",
        ));
    } else if k.bios_load_addr.is_some() {
        report.push(src.warning(&key.key("bios_load_addr"), "ignored: no bios_path"));
    }
    if k.disk_path.is_some() {
        report.push(src.warning(
            &key.key("disk_path"),
            "ignored: disk images are not supported yet",
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn image_spec(
    src: &Source,
    path: &str,
    allow_guest: bool,
    load: u64,
    key: &str,
    load_key: &str,
    report: &mut Report,
) -> Option<ImageSpec> {
    let k = KeyPath::new("kernel").key(key);
    let source = if let Some(krate) = path.strip_prefix("guest:") {
        let valid = !krate.is_empty()
            && krate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !allow_guest || !valid {
            let why = if allow_guest {
                "a crate name"
            } else {
                "a file (\"guest:\" is only for kernel_path)"
            };
            report.push(src.error(&k, format!("{path:?}: expected {why}")));
            return None;
        }
        ImageSource::Guest(krate.to_string())
    } else if path.starts_with(crate::guest::CONFIG_PREFIX) {
        // "image:<name>/<file>": a file of a pulled guest image (`cargo xtask guest`).
        match crate::guest::resolve_config_path(path) {
            Ok(Some(file)) => ImageSource::File(file),
            Ok(None) => return None,
            Err(why) => {
                report.push(src.error(&k, why));
                return None;
            }
        }
    } else {
        let dir = src.path.parent().unwrap_or(Path::new("."));
        let file = dir.join(path);
        if !file.is_file() {
            report.push(src.error(&k, format!("image file not found: {}", file.display())));
            return None;
        }
        ImageSource::File(file)
    };
    Some(ImageSpec {
        source,
        load,
        key: k,
        load_key: KeyPath::new("kernel").key(load_key),
    })
}

fn check_addresses(
    src: &Source,
    k: &KernelToml,
    mem: &[MemRegion],
    dtb: Option<u64>,
    report: &mut Report,
) {
    let key = KeyPath::new("kernel");
    let in_ram = |addr: u64| mem.iter().any(|m| m.is_ram() && m.range.contains(addr));
    if mem.is_empty() {
        return;
    }
    for (field, addr) in [
        ("entry_point", k.entry_point),
        ("kernel_load_addr", k.kernel_load_addr),
    ] {
        if !in_ram(addr) {
            report.push(src.error(
                &key.key(field),
                format!("{addr:#x} is outside the VM's memory"),
            ));
        }
    }
    if let (Some(addr), None) = (dtb, &k.dtb_path) {
        if !in_ram(addr) {
            let field = if k.dtb_load_addr.is_some() {
                "dtb_load_addr"
            } else {
                "memory_regions"
            };
            report.push(src.error(
                &key.key(field),
                format!("the generated DTB would go to {addr:#x}, outside the VM's memory"),
            ));
        }
    }
}

/// Checks that an image of `size` bytes at its load address lies inside one RAM
/// region; `what` names it in the message.
pub fn image_fits(img: &ImageSpec, size: u64, mem: &[MemRegion]) -> Result<(), String> {
    let r = Range::new(img.load, size.max(1));
    if mem.iter().any(|m| m.is_ram() && m.range.contains_range(&r)) {
        return Ok(());
    }
    let regions: Vec<String> = mem
        .iter()
        .filter(|m| m.is_ram())
        .map(|m| m.range.to_string())
        .collect();
    Err(format!(
        "the image ({}, {r}) does not fit in the VM's memory ({})",
        human_size(size),
        regions.join(", ")
    ))
}

fn check_file_images(src: &Source, images: &[&ImageSpec], mem: &[MemRegion], report: &mut Report) {
    let mut placed: Vec<(&ImageSpec, Range)> = Vec::new();
    for img in images {
        let ImageSource::File(path) = &img.source else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if let Err(why) = image_fits(img, meta.len(), mem) {
            report.push(src.error(&img.key, why));
            continue;
        }
        let r = Range::new(img.load, meta.len().max(1));
        if let Some((other, or)) = placed.iter().find(|(_, or)| or.overlaps(&r)) {
            report.push(src.error(
                &img.key,
                format!("the image at {r} overlaps {} ({or})", other.key),
            ));
        }
        placed.push((img, r));
    }
}

fn emu_devices(src: &Source, raw: &[Raw], arch: Arch, report: &mut Report) -> Vec<EmuDevice> {
    let key = KeyPath::new("devices").key("emu_devices");
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        if let Some(d) = emu_device(src, r, &key.index(i), arch, report) {
            out.push(d);
        }
    }
    out
}

fn emu_device(
    src: &Source,
    raw: &Raw,
    k: &KeyPath,
    arch: Arch,
    report: &mut Report,
) -> Option<EmuDevice> {
    let shape = "[name, base_gpa, length, irq_id, emu_type, [cfg...]]";
    let l = list_of(src, raw, k, shape, 5..=6, report)?;
    let name = match &l[0] {
        Raw::Str(s) if !s.is_empty() => Some(s.clone()),
        other => {
            report.push(src.error(
                &k.index(0),
                format!("name must be a non-empty string, not {}", describe(other)),
            ));
            None
        }
    };
    let base = int_at(src, l, 1, k, "base_gpa", report);
    let len = int_at(src, l, 2, k, "length", report);
    let irq = int_at(src, l, 3, k, "irq_id", report);
    let emu_type = int_at(src, l, 4, k, "emu_type", report);
    let cfg = emu_cfg(src, l.get(5), &k.index(5), report);
    let (name, base, len, irq, emu_type, cfg) = (name?, base?, len?, irq?, emu_type?, cfg?);
    let range = Range::new(base, len);
    let mut ok = true;
    if len == 0 || range.end().is_none() {
        report.push(src.error(
            &k.index(2),
            format!("bad device window {base:#x} + {len:#x}"),
        ));
        ok = false;
    }
    if !EMU_TYPES.iter().any(|(c, _)| u64::from(*c) == emu_type) {
        let known: Vec<String> = EMU_TYPES
            .iter()
            .map(|(c, n)| format!("{c:#x} {n}"))
            .collect();
        report.push(src.error(
            &k.index(4),
            format!(
                "unknown emu_type {emu_type:#x} (known: {})",
                known.join(", ")
            ),
        ));
        ok = false;
    }
    let max_irq = match arch {
        Arch::Aarch64 => 1019,
        Arch::Riscv64 => 1023,
        Arch::X86_64 => 255,
    };
    if irq > max_irq {
        report.push(src.error(
            &k.index(3),
            format!(
                "irq_id {irq} is above {max_irq}, the largest on {}",
                arch.name()
            ),
        ));
        ok = false;
    }
    ok.then_some(EmuDevice {
        key: k.clone(),
        name,
        range,
        irq: irq as u32,
        emu_type: emu_type as u32,
        cfg,
    })
}

fn emu_cfg(src: &Source, raw: Option<&Raw>, k: &KeyPath, report: &mut Report) -> Option<Vec<u64>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    let Raw::List(items) = raw else {
        report.push(src.error(
            k,
            format!("cfg must be an array of integers, not {}", raw.kind()),
        ));
        return None;
    };
    let vals: Vec<Option<u64>> = (0..items.len())
        .map(|i| int_at(src, items, i, k, "cfg value", report))
        .collect();
    vals.into_iter().collect()
}

fn passthrough(src: &Source, d: &DevicesToml, report: &mut Report) -> Vec<PassDevice> {
    let key = KeyPath::new("devices");
    let mut out = Vec::new();
    for (i, raw) in d.passthrough_devices.iter().enumerate() {
        let k = key.key("passthrough_devices").index(i);
        if let Some(p) = pass_device(src, raw, &k, report) {
            out.push(p);
        }
    }
    for (i, raw) in d.passthrough_addresses.iter().enumerate() {
        let k = key.key("passthrough_addresses").index(i);
        let Some(l) = list_of(src, raw, &k, "[gpa, length]", 2..=2, report) else {
            continue;
        };
        if let (Some(gpa), Some(len)) = (
            int_at(src, l, 0, &k, "gpa", report),
            int_at(src, l, 1, &k, "length", report),
        ) {
            if check_pass_window(src, &k, gpa, gpa, len, report) {
                out.push(PassDevice {
                    key: k.clone(),
                    name: format!("passthrough-{gpa:#x}"),
                    gpa,
                    hpa: gpa,
                    len,
                    irq: 0,
                });
            }
        }
    }
    if !d.excluded_devices.is_empty() {
        report.push(src.warning(
            &key.key("excluded_devices"),
            "ignored: excluded_devices only applies to device-tree passthrough, which is not supported yet",
        ));
    }
    out
}

fn pass_device(src: &Source, raw: &Raw, k: &KeyPath, report: &mut Report) -> Option<PassDevice> {
    if let Raw::List(l) = raw {
        if l.len() == 1 && matches!(l[0], Raw::Str(_)) {
            report.push(src.error(
                k,
                "not supported yet: device-tree path passthrough ([\"/dt/path\"]); give [name, gpa, hpa, length, irq]",
            ));
            return None;
        }
    }
    let l = list_of(
        src,
        raw,
        k,
        "[name, base_gpa, base_hpa, length, irq_id]",
        5..=5,
        report,
    )?;
    let name = match &l[0] {
        Raw::Str(s) if !s.is_empty() => Some(s.clone()),
        other => {
            report.push(src.error(
                &k.index(0),
                format!("name must be a non-empty string, not {}", describe(other)),
            ));
            None
        }
    };
    let gpa = int_at(src, l, 1, k, "base_gpa", report);
    let hpa = int_at(src, l, 2, k, "base_hpa", report);
    let len = int_at(src, l, 3, k, "length", report);
    let irq = int_at(src, l, 4, k, "irq_id", report);
    let (name, gpa, hpa, len, irq) = (name?, gpa?, hpa?, len?, irq?);
    if irq > u64::from(u32::MAX) {
        report.push(src.error(&k.index(4), "irq_id is too large"));
        return None;
    }
    check_pass_window(src, k, gpa, hpa, len, report).then_some(PassDevice {
        key: k.clone(),
        name,
        gpa,
        hpa,
        len,
        irq: irq as u32,
    })
}

fn check_pass_window(
    src: &Source,
    k: &KeyPath,
    gpa: u64,
    hpa: u64,
    len: u64,
    report: &mut Report,
) -> bool {
    let g = Range::new(gpa, len);
    let h = Range::new(hpa, len);
    if len == 0 || g.end().is_none() || h.end().is_none() {
        report.push(src.error(k, format!("bad passthrough window: length {len:#x}")));
        return false;
    }
    if !g.is_aligned(PAGE) || !hpa.is_multiple_of(PAGE) {
        report.push(src.error(
            k,
            format!(
                "passthrough window {g} (host {h}) is not 4 KiB aligned: it is mapped page by page"
            ),
        ));
        return false;
    }
    true
}

fn irq_mode(src: &Source, mode: Option<&str>, report: &mut Report) -> Option<IrqMode> {
    match mode {
        None | Some("emu") => Some(IrqMode::Emulated),
        Some("no_irq") => Some(IrqMode::NoIrq),
        Some("passthrough") => Some(IrqMode::Passthrough),
        Some(other) => {
            report.push(src.error(
                &KeyPath::new("devices").key("interrupt_mode"),
                format!(
                    "unknown interrupt_mode {other:?} (\"no_irq\", \"emu\" or \"passthrough\")"
                ),
            ));
            None
        }
    }
}

fn check_device_overlaps(
    src: &Source,
    emu: &[EmuDevice],
    pass: &[PassDevice],
    mem: &[MemRegion],
    report: &mut Report,
) {
    let mut windows: Vec<(&KeyPath, &str, Range)> = Vec::new();
    for d in emu {
        windows.push((&d.key, &d.name, d.range));
    }
    for d in pass {
        windows.push((&d.key, &d.name, Range::new(d.gpa, d.len)));
    }
    for (i, (key, name, w)) in windows.iter().enumerate() {
        for (other, oname, ow) in &windows[..i] {
            if ow.overlaps(w) {
                report.push(src.error(
                    key,
                    format!("device {name} at {w} overlaps {other} ({oname} at {ow})"),
                ));
            }
        }
        for (j, m) in mem.iter().enumerate() {
            if m.range.overlaps(w) {
                report.push(src.error(
                    key,
                    format!("device {name} at {w} overlaps memory region kernel.memory_regions[{j}] ({})", m.range),
                ));
            }
        }
    }
}
