//! A VM config that passed its own checks: what both xtask and the hypervisor build
//! a VM from. Image paths are kept as written; each side resolves them (xtask on the
//! host's disk, the hypervisor among the files the bootloader loaded).
use alloc::string::String;
use alloc::vec::Vec;

use crate::key::KeyPath;
use crate::range::Range;

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

/// Where a VM's images and config live at run time (`kernel.image_location`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageLocation {
    /// Bundled into the hypervisor at build time.
    #[default]
    Memory,
    /// Files on the boot partition of a card image, loaded by the bootloader and
    /// found by the hypervisor at boot.
    Fs,
}

/// An image a config names (`kernel_path`, `dtb_path`, `ramdisk_path`), copied to
/// `load` (a GPA) before the VM starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The path as written in the config.
    pub path: String,
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

/// A checked VM config. `I` is how its images are known: [`ImageRef`] (the paths as
/// written) here and in the hypervisor; xtask swaps in the images it resolved on the
/// host with [`VmConfig::with_images`], so the fields exist once.
#[derive(Clone, Debug)]
pub struct VmConfig<I = ImageRef> {
    pub id: u32,
    pub name: String,
    pub vm_type: u32,
    pub cpu_num: u32,
    pub phys_cpu_ids: Option<Vec<u64>>,
    pub phys_cpu_sets: Option<Vec<u64>>,
    pub entry_point: u64,
    pub location: ImageLocation,
    pub kernel: I,
    pub dtb: Option<I>,
    pub ramdisk: Option<I>,
    /// Where the hypervisor puts the guest DTB it generates (when there is no dtb).
    pub dtb_load_gpa: u64,
    pub cmdline: String,
    pub memory: Vec<MemRegion>,
    pub emu_devices: Vec<EmuDevice>,
    pub passthrough: Vec<PassDevice>,
    pub interrupt_mode: IrqMode,
}

impl<I> VmConfig<I> {
    /// Regions of normal memory (not device memory).
    pub fn ram(&self) -> impl Iterator<Item = &MemRegion> {
        self.memory.iter().filter(|m| m.is_ram())
    }

    pub fn ram_size(&self) -> u64 {
        self.ram().map(|m| m.range.size).sum()
    }

    /// Every image: the kernel, then the DTB and the ramdisk when given.
    pub fn images(&self) -> impl Iterator<Item = &I> {
        core::iter::once(&self.kernel)
            .chain(self.dtb.iter())
            .chain(self.ramdisk.iter())
    }

    /// The same VM with its images replaced (the caller resolved them; the DTB and
    /// ramdisk are expected to be given exactly when they are given here).
    pub fn with_images<J>(self, kernel: J, dtb: Option<J>, ramdisk: Option<J>) -> VmConfig<J> {
        VmConfig {
            id: self.id,
            name: self.name,
            vm_type: self.vm_type,
            cpu_num: self.cpu_num,
            phys_cpu_ids: self.phys_cpu_ids,
            phys_cpu_sets: self.phys_cpu_sets,
            entry_point: self.entry_point,
            location: self.location,
            kernel,
            dtb,
            ramdisk,
            dtb_load_gpa: self.dtb_load_gpa,
            cmdline: self.cmdline,
            memory: self.memory,
            emu_devices: self.emu_devices,
            passthrough: self.passthrough,
            interrupt_mode: self.interrupt_mode,
        }
    }
}

/// What the checks need to know about the architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchLimits {
    pub name: &'static str,
    /// The largest interrupt number a device may have.
    pub max_irq: u64,
}

pub const AARCH64: ArchLimits = ArchLimits {
    name: "aarch64",
    max_irq: 1019,
};
pub const RISCV64: ArchLimits = ArchLimits {
    name: "riscv64",
    max_irq: 1023,
};
pub const X86_64: ArchLimits = ArchLimits {
    name: "x86_64",
    max_irq: 255,
};
