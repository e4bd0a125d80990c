//! A checked fs VM config turned into the same [`VmSpec`] the built-in table holds,
//! so `create.rs` builds it like any other VM. The spec owns its strings and lists
//! (freed with the VM); the images are the boot modules themselves (RAM the frame
//! allocator never hands out, so they stay valid for as long as the machine runs).

use alloc::borrow::Cow;
use alloc::vec::Vec;

use vmconfig::{IrqMode, VmConfig};

use crate::spec::{
    ChannelSpec, DtPassthrough, EmuDevice, Image, InterruptMode, List, MapType, MemRegion,
    PassthroughDevice, Str, VmSpec,
};

/// The bytes of a config's kernel, DTB and ramdisk.
pub struct Images {
    pub kernel: &'static [u8],
    pub dtb: Option<&'static [u8]>,
    pub ramdisk: Option<&'static [u8]>,
}

/// The spec of `cfg`, its vCPUs on `pcpus`.
pub fn owned_spec(cfg: VmConfig, images: Images, pcpus: Vec<u32>) -> VmSpec {
    let image = |load_gpa, data| Image { load_gpa, data };
    VmSpec {
        id: cfg.id,
        name: Cow::Owned(cfg.name),
        vm_type: cfg.vm_type,
        cpu_num: cfg.cpu_num,
        pcpu_of_vcpu: Cow::Owned(pcpus),
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
        cmdline: Cow::Owned(cfg.cmdline),
        memory_regions: cfg.memory.iter().map(region).collect(),
        emu_devices: cfg.emu_devices.into_iter().map(emu_device).collect(),
        passthrough_devices: cfg.passthrough.into_iter().map(pass_device).collect(),
        dt_passthrough: dt_passthrough(&cfg.dt_passthrough, &cfg.excluded),
        interrupt_mode: match cfg.interrupt_mode {
            IrqMode::NoIrq => InterruptMode::NoIrq,
            IrqMode::Emulated => InterruptMode::Emulated,
            IrqMode::Passthrough => InterruptMode::Passthrough,
        },
        channels: cfg.channels.into_iter().map(channel).collect(),
    }
}

fn channel(c: vmconfig::channel::Channel) -> ChannelSpec {
    ChannelSpec {
        name: Cow::Owned(c.name),
        size: c.size,
        vms: c.vms.into_iter().map(Cow::Owned).collect(),
        gpa: c.gpa,
        writable: c.writable,
        doorbell: c.doorbell.map(|d| (d.gpa, d.irq)),
    }
}

fn dt_passthrough(
    paths: &[vmconfig::DtPath],
    excluded: &[vmconfig::DtPath],
) -> Option<DtPassthrough> {
    let owned = |l: &[vmconfig::DtPath]| -> List<Str> {
        l.iter().map(|p| Cow::Owned(p.path.clone())).collect()
    };
    (!paths.is_empty()).then(|| DtPassthrough {
        paths: owned(paths),
        excluded: owned(excluded),
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
        name: Cow::Owned(d.name),
        base_gpa: d.range.base,
        length: d.range.size,
        irq: d.irq,
        emu_type: d.emu_type,
        cfg: Cow::Owned(d.cfg),
    }
}

fn pass_device(d: vmconfig::PassDevice) -> PassthroughDevice {
    PassthroughDevice {
        name: Cow::Owned(d.name),
        base_gpa: d.gpa,
        base_hpa: d.hpa,
        length: d.len,
        irq: d.irq,
    }
}
