//! The checks of one VM config that need nothing but the config (and the
//! architecture): names and counts, memory regions, load addresses, devices. xtask
//! runs them before building, the hypervisor on every config it reads from a card.
//!
//! Checks never stop at the first problem: everything found goes into [`Problems`].
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::key::{KeyPath, Problems};
use crate::model::*;
use crate::range::{Range, PAGE};
use crate::schema::{BaseToml, DevicesToml, KernelToml, Raw};

/// Checks a config's three sections and builds the VM from them. `None` when the
/// config is too broken to build a VM from; otherwise the caller decides by whether
/// errors were added to `out`.
pub fn check_vm(
    base: &BaseToml,
    kernel: &KernelToml,
    devices: &DevicesToml,
    arch: ArchLimits,
    out: &mut Problems,
) -> Option<VmConfig> {
    let id = check_base(base, out);
    let memory = memory_regions(&kernel.memory_regions, out);
    let images = kernel_images(kernel, &memory, out);
    let emu_devices = emu_devices(&devices.emu_devices, arch, out);
    crate::channel::check_ivc_windows(&emu_devices, out);
    check_plic_sources(&emu_devices, arch, out);
    if arch.irq_chip == IrqChip::Gic {
        crate::irq::check_gic(
            &emu_devices,
            base.cpu_num.min(u64::from(u32::MAX)) as u32,
            out,
        );
    }
    let (passthrough, dt_passthrough, excluded) = passthrough(devices, out);
    crate::irq::check_irqs(&emu_devices, &passthrough, arch, out);
    let interrupt_mode = irq_mode(devices.interrupt_mode.as_deref(), out);
    check_device_overlaps(&emu_devices, &passthrough, &memory, arch, out);
    let channels = crate::channel::channels(&devices.channels, &base.name, arch, out);
    crate::channel::check_layout(&channels, &memory, &emu_devices, &passthrough, arch, out);
    let (kernel_img, dtb, ramdisk, dtb_load_gpa) = images?;
    Some(VmConfig {
        id: id?,
        name: base.name.clone(),
        vm_type: base.vm_type as u32,
        cpu_num: base.cpu_num as u32,
        phys_cpu_ids: base.phys_cpu_ids.clone(),
        phys_cpu_sets: base.phys_cpu_sets.clone(),
        entry_point: kernel.entry_point,
        location: image_location(kernel.image_location.as_deref()),
        kernel: kernel_img,
        dtb,
        ramdisk,
        dtb_load_gpa,
        cmdline: kernel.cmdline.clone(),
        memory,
        emu_devices,
        passthrough,
        dt_passthrough,
        excluded,
        interrupt_mode: interrupt_mode?,
        channels,
    })
}

/// The longest VM name (it names files on the card: `vms/<name>.toml`, `vms/<name>/`).
pub const MAX_NAME_LEN: usize = 64;

/// Whether a VM name is usable. It prefixes console lines and names files and a
/// directory on the boot partition, so it is one plain file name: 1 to
/// [`MAX_NAME_LEN`] letters, digits, '-', '_' and '.', not starting with '.' (no `.`,
/// `..` or hidden names, and no '/' or '\\').
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_base(base: &BaseToml, out: &mut Problems) -> Option<u32> {
    let key = KeyPath::new("base");
    if !valid_name(&base.name) {
        out.error(
            &key.key("name"),
            format!(
                "VM name {:?} must be non-empty and use only letters, digits, '-', '_' and '.', \
                 not start with '.' and be at most {MAX_NAME_LEN} characters (it names files on \
                 the card)",
                base.name
            ),
        );
    }
    if base.vm_type > 2 {
        out.error(
            &key.key("vm_type"),
            format!(
                "unknown vm_type {} (0 host VM, 1 RTOS, 2 Linux)",
                base.vm_type
            ),
        );
    }
    if base.cpu_num == 0 || base.cpu_num > 512 {
        out.error(
            &key.key("cpu_num"),
            format!("cpu_num must be between 1 and 512, not {}", base.cpu_num),
        );
    }
    for (field, list) in [
        ("phys_cpu_ids", &base.phys_cpu_ids),
        ("phys_cpu_sets", &base.phys_cpu_sets),
    ] {
        if let Some(list) = list {
            if list.len() as u64 != base.cpu_num {
                out.error(
                    &key.key(field),
                    format!(
                        "has {} entries but cpu_num = {} (one entry per vCPU)",
                        list.len(),
                        base.cpu_num
                    ),
                );
            }
        }
    }
    match u32::try_from(base.id) {
        Ok(id) => Some(id),
        Err(_) => {
            out.error(&key.key("id"), "VM id does not fit in 32 bits");
            None
        }
    }
}

/// An element of a heterogeneous array, as a non-negative integer.
fn int_at(list: &[Raw], i: usize, key: &KeyPath, what: &str, out: &mut Problems) -> Option<u64> {
    match list.get(i) {
        Some(Raw::Int(v)) if *v >= 0 => Some(*v as u64),
        Some(other) => {
            out.error(
                &key.index(i),
                format!(
                    "{what} must be a non-negative integer, not {}",
                    describe(other)
                ),
            );
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
    raw: &'a Raw,
    key: &KeyPath,
    shape: &str,
    lens: core::ops::RangeInclusive<usize>,
    out: &mut Problems,
) -> Option<&'a [Raw]> {
    match raw {
        Raw::List(l) if lens.contains(&l.len()) => Some(l),
        Raw::List(l) => {
            out.error(
                key,
                format!("expected {shape}, found an array of {} elements", l.len()),
            );
            None
        }
        other => {
            out.error(key, format!("expected {shape}, found {}", other.kind()));
            None
        }
    }
}

fn memory_regions(raw: &[Raw], out: &mut Problems) -> Vec<MemRegion> {
    let key = KeyPath::new("kernel").key("memory_regions");
    let mut regions: Vec<MemRegion> = Vec::new();
    if raw.is_empty() {
        out.error(&key, "the VM has no memory regions");
    }
    for (i, r) in raw.iter().enumerate() {
        let k = key.index(i);
        if let Some(region) = memory_region(r, &k, out) {
            check_region(&region, &k, &regions, out);
            regions.push(region);
        }
    }
    if !raw.is_empty() && regions.len() == raw.len() && !regions.iter().any(MemRegion::is_ram) {
        out.error(&key, "the VM has no normal (non-device) memory region");
    }
    regions
}

fn memory_region(raw: &Raw, k: &KeyPath, out: &mut Problems) -> Option<MemRegion> {
    let l = list_of(raw, k, "[gpa, size, flags, map_type]", 4..=4, out)?;
    let gpa = int_at(l, 0, k, "gpa", out);
    let size = int_at(l, 1, k, "size", out);
    let flags = int_at(l, 2, k, "flags", out);
    let map_type = int_at(l, 3, k, "map_type", out);
    let (gpa, size, flags, map_type) = (gpa?, size?, flags?, map_type?);
    let mut ok = true;
    let rights = flags & (FLAG_READ | FLAG_WRITE | FLAG_EXECUTE);
    if flags & !FLAGS_KNOWN != 0 || (rights == 0 && flags & FLAG_DEVICE == 0) {
        out.error(
            &k.index(2),
            format!("flags {flags:#x}: use AxVisor's bits 0x1 read, 0x2 write, 0x4 execute, 0x8 user, 0x10 device, 0x20 uncached (memory needs at least one of read/write/execute)"),
        );
        ok = false;
    } else if Mapping::of(flags).kind == MemKind::UncachedRam {
        out.error(&k.index(2), format!("flags {flags:#x}: {UNCACHED_RAM}"));
        ok = false;
    } else if flags & FLAG_DEVICE != 0 && flags & FLAG_EXECUTE != 0 {
        out.warning(
            &k.index(2),
            format!("flags {flags:#x}: execute (0x4) is ignored on device memory (0x10): it is never executable"),
        );
    }
    if map_type > 2 {
        out.error(
            &k.index(3),
            format!("unknown map_type {map_type} (0 allocate, 1 identity, 2 reserved)"),
        );
        ok = false;
    }
    ok.then_some(MemRegion {
        range: Range::new(gpa, size),
        flags,
        map_type: map_type as u8,
    })
}

fn check_region(r: &MemRegion, k: &KeyPath, prev: &[MemRegion], out: &mut Problems) {
    let range = r.range;
    if range.size == 0 {
        out.error(k, "region size is 0");
    } else if range.end().is_none() {
        out.error(
            k,
            format!("region {:#x} + {:#x} overflows", range.base, range.size),
        );
    } else if !range.is_aligned(PAGE) {
        out.error(
            k,
            format!(
                "region {range} is not 4 KiB aligned (base and size must be multiples of 0x1000)"
            ),
        );
    }
    for (j, other) in prev.iter().enumerate() {
        if other.range.overlaps(&range) {
            out.error(
                k,
                format!(
                    "region {range} overlaps kernel.memory_regions[{j}] ({})",
                    other.range
                ),
            );
        }
    }
}

type Images = (ImageRef, Option<ImageRef>, Option<ImageRef>, u64);

fn image_ref(path: &str, load: u64, key: &str, load_key: &str) -> ImageRef {
    let k = KeyPath::new("kernel");
    ImageRef {
        path: path.to_string(),
        load,
        key: k.key(key),
        load_key: k.key(load_key),
    }
}

fn kernel_images(k: &KernelToml, mem: &[MemRegion], out: &mut Problems) -> Option<Images> {
    let key = KeyPath::new("kernel");
    check_unsupported(k, out);
    let kernel = image_ref(
        &k.kernel_path,
        k.kernel_load_addr,
        "kernel_path",
        "kernel_load_addr",
    );
    let first_ram = mem.iter().find(|m| m.is_ram()).map(|m| m.range.base);
    let dtb = k.dtb_path.as_ref().and_then(|p| {
        let load = k.dtb_load_addr.or(first_ram)?;
        Some(image_ref(p, load, "dtb_path", "dtb_load_addr"))
    });
    let ramdisk = match (&k.ramdisk_path, k.ramdisk_load_addr) {
        (Some(p), Some(load)) => Some(image_ref(p, load, "ramdisk_path", "ramdisk_load_addr")),
        (Some(_), None) => {
            out.error(
                &key.key("ramdisk_path"),
                "ramdisk_path needs ramdisk_load_addr",
            );
            None
        }
        (None, Some(_)) => {
            out.warning(&key.key("ramdisk_load_addr"), "ignored: no ramdisk_path");
            None
        }
        (None, None) => None,
    };
    let dtb_load_gpa = match (k.dtb_load_addr, &k.dtb_path) {
        (Some(addr), None) => Some(addr),
        _ => first_ram,
    };
    check_addresses(k, mem, dtb_load_gpa, out);
    Some((kernel, dtb, ramdisk, dtb_load_gpa?))
}

fn image_location(value: Option<&str>) -> ImageLocation {
    match value {
        Some("fs") => ImageLocation::Fs,
        _ => ImageLocation::Memory,
    }
}

fn check_unsupported(k: &KernelToml, out: &mut Problems) {
    let key = KeyPath::new("kernel");
    match k.image_location.as_deref() {
        None | Some("memory") | Some("fs") => {}
        Some(other) => out.error(
            &key.key("image_location"),
            format!("unknown image_location {other:?} (\"memory\" or \"fs\")"),
        ),
    }
    if k.bios_path.is_some() {
        out.error(
            &key.key("bios_path"),
            "not supported yet: bios_path (the hypervisor boots the kernel image directly)",
        );
    } else if k.bios_load_addr.is_some() {
        out.warning(&key.key("bios_load_addr"), "ignored: no bios_path");
    }
    if k.disk_path.is_some() {
        out.warning(
            &key.key("disk_path"),
            "ignored: disk images are not supported yet",
        );
    }
}

fn check_addresses(k: &KernelToml, mem: &[MemRegion], dtb: Option<u64>, out: &mut Problems) {
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
            out.error(
                &key.key(field),
                format!("{addr:#x} is outside the VM's memory"),
            );
        }
    }
    if let (Some(addr), None) = (dtb, &k.dtb_path) {
        if !in_ram(addr) {
            let field = if k.dtb_load_addr.is_some() {
                "dtb_load_addr"
            } else {
                "memory_regions"
            };
            out.error(
                &key.key(field),
                format!("the generated DTB would go to {addr:#x}, outside the VM's memory"),
            );
        }
    }
}

fn emu_devices(raw: &[Raw], arch: ArchLimits, out: &mut Problems) -> Vec<EmuDevice> {
    let key = KeyPath::new("devices").key("emu_devices");
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| emu_device(r, &key.index(i), arch, out))
        .collect()
}

fn emu_device(raw: &Raw, k: &KeyPath, arch: ArchLimits, out: &mut Problems) -> Option<EmuDevice> {
    let shape = "[name, base_gpa, length, irq_id, emu_type, [cfg...]]";
    let l = list_of(raw, k, shape, 5..=6, out)?;
    let name = device_name(&l[0], k, out);
    let base = int_at(l, 1, k, "base_gpa", out);
    let len = int_at(l, 2, k, "length", out);
    let irq = int_at(l, 3, k, "irq_id", out);
    let emu_type = int_at(l, 4, k, "emu_type", out);
    let cfg = emu_cfg(l.get(5), &k.index(5), out);
    let (name, base, len, irq, emu_type, cfg) = (name?, base?, len?, irq?, emu_type?, cfg?);
    let range = Range::new(base, len);
    let mut ok = true;
    if len == 0 || range.end().is_none() {
        out.error(
            &k.index(2),
            format!("bad device window {base:#x} + {len:#x}"),
        );
        ok = false;
    }
    if !EMU_TYPES.iter().any(|(c, _)| u64::from(*c) == emu_type) {
        let known: Vec<String> = EMU_TYPES
            .iter()
            .map(|(c, n)| format!("{c:#x} {n}"))
            .collect();
        out.error(
            &k.index(4),
            format!(
                "unknown emu_type {emu_type:#x} (known: {})",
                known.join(", ")
            ),
        );
        ok = false;
    } else if let Some((_, why)) = EMU_NOT_YET.iter().find(|(c, _)| u64::from(*c) == emu_type) {
        out.error(&k.index(4), *why);
        ok = false;
    } else if let Some(why) = crate::irq::emu_type_arch_problem(emu_type as u32, arch) {
        out.error(&k.index(4), why);
        ok = false;
    }
    if arch.console_ports
        && emu_type == u64::from(EMU_CONSOLE)
        && range.end().is_some_and(|e| e > 0x1_0000)
    {
        out.error(
            &k.index(1),
            format!(
                "the console at ports {range} is not in the I/O port space (0x0..0x10000): on {} its base_gpa is its first port (0x3f8 for COM1)",
                arch.name
            ),
        );
        ok = false;
    }
    if !arch.chip_windows.is_empty()
        && emu_type == u64::from(EMU_GIC_CPU_IF)
        && !arch.chip_windows.contains(&(base, len))
    {
        let want: Vec<String> = arch
            .chip_windows
            .iter()
            .map(|(b, l)| format!("{b:#x} + {l:#x}"))
            .collect();
        out.error(
            &k.index(1),
            format!(
                "the interrupt controller window {base:#x} + {len:#x} is none of {}'s ({})",
                arch.name,
                want.join(", ")
            ),
        );
        ok = false;
    }
    if irq > arch.max_irq {
        out.error(
            &k.index(3),
            format!(
                "irq_id {irq} is above {}, the largest on {}",
                arch.max_irq, arch.name
            ),
        );
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

/// riscv64: the console's interrupt is a source of the VM's emulated PLIC, so a
/// console needs one and a source number it has. A VM with neither a console nor a
/// PLIC is fine (its guest uses the SBI console and timer only).
fn check_plic_sources(devs: &[EmuDevice], arch: ArchLimits, out: &mut Problems) {
    let Some(sources) = arch.plic_sources else {
        return;
    };
    let plic = devs.iter().any(|d| d.emu_type == EMU_PLIC);
    for d in devs.iter().filter(|d| d.emu_type == EMU_CONSOLE) {
        if !plic {
            out.error(
                &d.key,
                format!(
                    "console {:?} needs an emulated PLIC (emu_type 0x30) on {}: its irq_id is a PLIC source (a guest using only the SBI console needs neither the console nor a PLIC)",
                    d.name, arch.name
                ),
            );
        } else if d.irq == 0 || d.irq > sources {
            out.error(
                &d.key.index(3),
                format!(
                    "irq_id {} of console {:?} is not a source of the emulated PLIC (1..={sources})",
                    d.irq, d.name
                ),
            );
        }
    }
}

fn device_name(raw: &Raw, k: &KeyPath, out: &mut Problems) -> Option<String> {
    match raw {
        Raw::Str(s) if !s.is_empty() => Some(s.clone()),
        other => {
            out.error(
                &k.index(0),
                format!("name must be a non-empty string, not {}", describe(other)),
            );
            None
        }
    }
}

fn emu_cfg(raw: Option<&Raw>, k: &KeyPath, out: &mut Problems) -> Option<Vec<u64>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    let Raw::List(items) = raw else {
        out.error(
            k,
            format!("cfg must be an array of integers, not {}", raw.kind()),
        );
        return None;
    };
    let vals: Vec<Option<u64>> = (0..items.len())
        .map(|i| int_at(items, i, k, "cfg value", out))
        .collect();
    vals.into_iter().collect()
}

type Passthrough = (Vec<PassDevice>, Vec<DtPath>, Vec<DtPath>);

fn passthrough(d: &DevicesToml, out: &mut Problems) -> Passthrough {
    let key = KeyPath::new("devices");
    let mut devs = Vec::new();
    let mut paths = Vec::new();
    for (i, raw) in d.passthrough_devices.iter().enumerate() {
        let k = key.key("passthrough_devices").index(i);
        if let Some(path) = dt_path(raw, &k, out) {
            paths.extend(path);
        } else if let Some(p) = pass_device(raw, &k, out) {
            devs.push(p);
        }
    }
    for (i, raw) in d.passthrough_addresses.iter().enumerate() {
        let k = key.key("passthrough_addresses").index(i);
        if let Some(p) = pass_address(raw, &k, out) {
            devs.push(p);
        }
    }
    let mut excluded = Vec::new();
    for (i, raw) in d.excluded_devices.iter().enumerate() {
        let k = key.key("excluded_devices").index(i);
        match dt_path(raw, &k, out) {
            Some(p) => excluded.extend(p),
            None => out.error(
                &k,
                format!(
                    "expected a device-tree path [\"/path\"], found {}",
                    describe(raw)
                ),
            ),
        }
    }
    if !excluded.is_empty() && paths.is_empty() {
        out.warning(
            &key.key("excluded_devices"),
            "ignored: excluded_devices only narrows device-tree path entries of passthrough_devices, and there are none",
        );
    }
    (devs, paths, excluded)
}

/// `["/dt/path"]` (AxVisor's form) or `"/dt/path"`: `Some(Some(path))`; `Some(None)`
/// after reporting a string that is not a path; `None` when `raw` is not of that form.
fn dt_path(raw: &Raw, k: &KeyPath, out: &mut Problems) -> Option<Option<DtPath>> {
    let s = match raw {
        Raw::Str(s) => s,
        Raw::List(l) if l.len() == 1 => match &l[0] {
            Raw::Str(s) => s,
            _ => return None,
        },
        _ => return None,
    };
    if !s.starts_with('/') || s.contains("//") || s.chars().any(char::is_whitespace) {
        out.error(
            k,
            format!("{s:?} is not a device-tree path (\"/node@unit/child\")"),
        );
        return Some(None);
    }
    Some(Some(DtPath {
        key: k.clone(),
        path: s.clone(),
    }))
}

fn pass_address(raw: &Raw, k: &KeyPath, out: &mut Problems) -> Option<PassDevice> {
    let l = list_of(raw, k, "[gpa, length]", 2..=2, out)?;
    let gpa = int_at(l, 0, k, "gpa", out);
    let len = int_at(l, 1, k, "length", out);
    let (gpa, len) = (gpa?, len?);
    check_pass_window(k, gpa, gpa, len, out).then(|| PassDevice {
        key: k.clone(),
        name: format!("passthrough-{gpa:#x}"),
        gpa,
        hpa: gpa,
        len,
        irq: 0,
    })
}

fn pass_device(raw: &Raw, k: &KeyPath, out: &mut Problems) -> Option<PassDevice> {
    let shape = "[name, base_gpa, base_hpa, length, irq_id]";
    let l = list_of(raw, k, shape, 5..=5, out)?;
    let name = device_name(&l[0], k, out);
    let gpa = int_at(l, 1, k, "base_gpa", out);
    let hpa = int_at(l, 2, k, "base_hpa", out);
    let len = int_at(l, 3, k, "length", out);
    let irq = int_at(l, 4, k, "irq_id", out);
    let (name, gpa, hpa, len, irq) = (name?, gpa?, hpa?, len?, irq?);
    if irq > u64::from(u32::MAX) {
        out.error(&k.index(4), "irq_id is too large");
        return None;
    }
    check_pass_window(k, gpa, hpa, len, out).then_some(PassDevice {
        key: k.clone(),
        name,
        gpa,
        hpa,
        len,
        irq: irq as u32,
    })
}

fn check_pass_window(k: &KeyPath, gpa: u64, hpa: u64, len: u64, out: &mut Problems) -> bool {
    let g = Range::new(gpa, len);
    let h = Range::new(hpa, len);
    if len == 0 || g.end().is_none() || h.end().is_none() {
        out.error(k, format!("bad passthrough window: length {len:#x}"));
        return false;
    }
    if !g.is_aligned(PAGE) || !hpa.is_multiple_of(PAGE) {
        out.error(
            k,
            format!(
                "passthrough window {g} (host {h}) is not 4 KiB aligned: it is mapped page by page"
            ),
        );
        return false;
    }
    true
}

fn irq_mode(mode: Option<&str>, out: &mut Problems) -> Option<IrqMode> {
    match mode {
        None | Some("emu") => Some(IrqMode::Emulated),
        Some("no_irq") => Some(IrqMode::NoIrq),
        Some("passthrough") => Some(IrqMode::Passthrough),
        Some(other) => {
            out.error(
                &KeyPath::new("devices").key("interrupt_mode"),
                format!(
                    "unknown interrupt_mode {other:?} (\"no_irq\", \"emu\" or \"passthrough\")"
                ),
            );
            None
        }
    }
}

/// Whether device `d` sits in the I/O port space on `arch` (an x86 console).
pub fn on_ports(d: &EmuDevice, arch: ArchLimits) -> bool {
    arch.console_ports && d.emu_type == EMU_CONSOLE
}

fn check_device_overlaps(
    emu: &[EmuDevice],
    pass: &[PassDevice],
    mem: &[MemRegion],
    arch: ArchLimits,
    out: &mut Problems,
) {
    // Port devices overlap only each other.
    let ports: Vec<&EmuDevice> = emu.iter().filter(|d| on_ports(d, arch)).collect();
    for (i, d) in ports.iter().enumerate() {
        for o in &ports[..i] {
            if o.range.overlaps(&d.range) {
                out.error(
                    &d.key,
                    format!(
                        "device {} at ports {} overlaps {} ({} at ports {})",
                        d.name, d.range, o.key, o.name, o.range
                    ),
                );
            }
        }
    }
    let mut windows: Vec<(&KeyPath, &str, Range)> = Vec::new();
    for d in emu.iter().filter(|d| !on_ports(d, arch)) {
        windows.push((&d.key, &d.name, d.range));
    }
    for d in pass {
        windows.push((&d.key, &d.name, Range::new(d.gpa, d.len)));
    }
    for (i, (key, name, w)) in windows.iter().enumerate() {
        for (other, oname, ow) in &windows[..i] {
            if ow.overlaps(w) {
                out.error(
                    key,
                    format!("device {name} at {w} overlaps {other} ({oname} at {ow})"),
                );
            }
        }
        for (j, m) in mem.iter().enumerate() {
            if m.range.overlaps(w) {
                out.error(
                    key,
                    format!("device {name} at {w} overlaps memory region kernel.memory_regions[{j}] ({})", m.range),
                );
            }
        }
    }
}
