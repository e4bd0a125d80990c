//! A checked fs VM config turned into the same [`VmSpec`] the built-in table holds,
//! so `create.rs` builds it like any other VM. VMs live until power-off, so the
//! spec's strings and lists are leaked into `'static`; the images are the boot
//! modules themselves (RAM the frame allocator never hands out).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use vmconfig::{IrqMode, VmConfig};

use crate::spec::{
    DtPassthrough, EmuDevice, Image, InterruptMode, MapType, MemRegion, PassthroughDevice, VmSpec,
};

/// The bytes of a config's kernel, DTB and ramdisk.
pub struct Images {
    pub kernel: &'static [u8],
    pub dtb: Option<&'static [u8]>,
    pub ramdisk: Option<&'static [u8]>,
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The spec of `cfg`, its vCPUs on `pcpus`.
pub fn leak_spec(cfg: VmConfig, images: Images, pcpus: Vec<u32>) -> &'static VmSpec {
    let image = |load_gpa, data| Image { load_gpa, data };
    let spec = VmSpec {
        id: cfg.id,
        name: leak_str(cfg.name),
        vm_type: cfg.vm_type,
        cpu_num: cfg.cpu_num,
        pcpu_of_vcpu: pcpus.leak(),
        entry_point: cfg.entry_point,
        kernel: image(cfg.kernel.load, images.kernel),
        dtb: cfg
            .dtb
            .as_ref()
            .zip(images.dtb)
            .map(|(r, d)| image(r.load, d)),
        ramdisk: cfg
            .ramdisk
            .as_ref()
            .zip(images.ramdisk)
            .map(|(r, d)| image(r.load, d)),
        dtb_load_gpa: Some(cfg.dtb_load_gpa),
        cmdline: leak_str(cfg.cmdline),
        memory_regions: cfg.memory.iter().map(region).collect::<Vec<_>>().leak(),
        emu_devices: cfg
            .emu_devices
            .into_iter()
            .map(emu_device)
            .collect::<Vec<_>>()
            .leak(),
        passthrough_devices: cfg
            .passthrough
            .into_iter()
            .map(pass_device)
            .collect::<Vec<_>>()
            .leak(),
        dt_passthrough: dt_passthrough(&cfg.dt_passthrough, &cfg.excluded),
        interrupt_mode: match cfg.interrupt_mode {
            IrqMode::NoIrq => InterruptMode::NoIrq,
            IrqMode::Emulated => InterruptMode::Emulated,
            IrqMode::Passthrough => InterruptMode::Passthrough,
        },
    };
    Box::leak(Box::new(spec))
}

fn dt_passthrough(
    paths: &[vmconfig::DtPath],
    excluded: &[vmconfig::DtPath],
) -> Option<DtPassthrough> {
    let leak = |l: &[vmconfig::DtPath]| -> &'static [&'static str] {
        l.iter()
            .map(|p| leak_str(p.path.clone()))
            .collect::<Vec<_>>()
            .leak()
    };
    (!paths.is_empty()).then(|| DtPassthrough {
        paths: leak(paths),
        excluded: leak(excluded),
    })
}

fn region(m: &vmconfig::MemRegion) -> MemRegion {
    MemRegion {
        gpa: m.range.base,
        size: m.range.size,
        flags: m.flags,
        map_type: match m.map_type {
            1 => MapType::Identity,
            2 => MapType::Reserved,
            _ => MapType::Allocate,
        },
    }
}

fn emu_device(d: vmconfig::EmuDevice) -> EmuDevice {
    EmuDevice {
        name: leak_str(d.name),
        base_gpa: d.range.base,
        length: d.range.size,
        irq: d.irq,
        emu_type: d.emu_type,
        cfg: d.cfg.leak(),
    }
}

fn pass_device(d: vmconfig::PassDevice) -> PassthroughDevice {
    PassthroughDevice {
        name: leak_str(d.name),
        base_gpa: d.gpa,
        base_hpa: d.hpa,
        length: d.len,
        irq: d.irq,
    }
}
