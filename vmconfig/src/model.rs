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

/// `emu_type` of a console UART.
pub const EMU_CONSOLE: u32 = 0x2;
/// `emu_type` of a RISC-V PLIC.
pub const EMU_PLIC: u32 = 0x30;
/// `emu_type` of AxVisor's inter-VM channel device: a window of the VM's
/// guest-physical space where the channels its guest publishes or subscribes to by
/// hypercall are placed (`channel::check_ivc_windows`).
pub const EMU_IVC: u32 = 0xA;
/// Known `emu_type`s the hypervisor does not build yet, each with what to use
/// instead: `check` refuses them, so a config never passes the host's checks and
/// then fails at boot.
pub const EMU_NOT_YET: &[(u32, &str)] = &[
    (0x22, "not supported yet: emu_type 0x22 (GIC ITS partial passthrough); a GICv3 VM gets its distributor (0x21) and redistributors (0x20) without an ITS"),
    (0xE1, "not supported yet: emu_type 0xe1 (virtio-blk for guests); give the VM its files in RAM (kernel, ramdisk) instead"),
    (0xE2, "not supported yet: emu_type 0xe2 (virtio-net for guests)"),
    (0xE3, "not supported yet: emu_type 0xe3 (virtio-console for guests); every VM has a console UART (emu_type 0x2)"),
];
/// `emu_type` of a GICv2 CPU interface window (AxVisor's "interrupt controller").
pub const EMU_GIC_CPU_IF: u32 = 0x1;
/// `emu_type` of a GICv3 redistributor region.
pub const EMU_GIC_REDIST: u32 = 0x20;
/// `emu_type` of a GIC distributor.
pub const EMU_GIC_DIST: u32 = 0x21;
/// `emu_type` of a GIC ITS.
pub const EMU_GIC_ITS: u32 = 0x22;
/// The `emu_type`s that are a GIC's parts (aarch64 only).
pub const EMU_GIC_PARTS: [u32; 4] = [EMU_GIC_CPU_IF, EMU_GIC_REDIST, EMU_GIC_DIST, EMU_GIC_ITS];

/// Memory region flag bits (`memory_regions` third field): AxVisor's mapping flags.
/// Its stock configs use 0x7 and 0xf (read, write, execute, user) for RAM and 0x13 /
/// 0x33 style values for device windows.
pub const FLAG_READ: u64 = 1 << 0;
pub const FLAG_WRITE: u64 = 1 << 1;
pub const FLAG_EXECUTE: u64 = 1 << 2;
/// "User" in AxVisor's flags. A second-stage mapping has no user/kernel split (the
/// guest's own page tables decide that), so it is accepted and has no effect.
pub const FLAG_USER: u64 = 1 << 3;
/// Device memory: mapped as device (uncached, no speculation, never executable),
/// not RAM (no memory node in the guest's device tree, never zeroed or loaded).
pub const FLAG_DEVICE: u64 = 1 << 4;
/// Uncached normal memory: RAM the guest sees uncached (a shared buffer with a
/// non-coherent device).
pub const FLAG_UNCACHED: u64 = 1 << 5;
/// Every flag bit that has a meaning.
pub const FLAGS_KNOWN: u64 = 0x3f;

/// Why a region of [`MemKind::UncachedRam`] is refused (by the checks and by the
/// hypervisor): its second-stage mappings know normal cacheable and device memory.
pub const UNCACHED_RAM: &str = "not supported yet: uncached normal memory (0x20 without 0x10 device); a window shared with a non-coherent device can be device memory (0x10 or 0x30)";

/// What a region is to the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Normal, cacheable RAM.
    Ram,
    /// RAM mapped uncached (normal non-cacheable where the architecture says so).
    UncachedRam,
    /// Device memory.
    Device,
}

/// The hypervisor's reading of a region's AxVisor flags: access rights and kind.
/// The one place the flag bits are interpreted (xtask, the hypervisor's fs VMs and
/// its built-in table all go through it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub kind: MemKind,
}

impl Mapping {
    /// `flags` as the hypervisor maps them. Bits without a meaning are ignored here
    /// (the checks reject them). Device memory is never executable; a device region
    /// that names none of read/write/execute (AxVisor's `0x10`, `0x30`) is read+write.
    pub const fn of(flags: u64) -> Self {
        let device = flags & FLAG_DEVICE != 0;
        let rights = flags & (FLAG_READ | FLAG_WRITE | FLAG_EXECUTE);
        let flags = if device && rights == 0 {
            flags | FLAG_READ | FLAG_WRITE
        } else {
            flags
        };
        let kind = if device {
            MemKind::Device
        } else if flags & FLAG_UNCACHED != 0 {
            MemKind::UncachedRam
        } else {
            MemKind::Ram
        };
        Self {
            read: flags & FLAG_READ != 0,
            write: flags & FLAG_WRITE != 0,
            exec: flags & FLAG_EXECUTE != 0 && !device,
            kind,
        }
    }

    /// Whether the region is the guest's RAM (in its memory map, zeroed, loaded).
    pub const fn is_ram(&self) -> bool {
        !matches!(self.kind, MemKind::Device)
    }
}

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
        self.mapping().is_ram()
    }

    /// How the hypervisor maps the region ([`Mapping::of`] its flags).
    pub fn mapping(&self) -> Mapping {
        Mapping::of(self.flags)
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

/// A device-tree path in `passthrough_devices` (AxVisor's `["/pl011@9000000"]`) or in
/// `excluded_devices`. Passthrough paths are resolved against the host's device tree
/// (`devtree::Tree::passthrough`): by xtask from the board's DTB, by the hypervisor
/// from the DTB it booted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtPath {
    pub key: KeyPath,
    pub path: String,
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
    /// `passthrough_devices` given as device-tree paths.
    pub dt_passthrough: Vec<DtPath>,
    /// `excluded_devices`: device-tree nodes (and their subtrees) the paths above
    /// do not pass through.
    pub excluded: Vec<DtPath>,
    pub interrupt_mode: IrqMode,
    /// Inter-VM channels the VM maps (`[[devices.channels]]`).
    pub channels: Vec<crate::channel::Channel>,
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
            dt_passthrough: self.dt_passthrough,
            excluded: self.excluded,
            interrupt_mode: self.interrupt_mode,
            channels: self.channels,
        }
    }
}

/// The interrupt controller of an architecture, as the checks know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqChip {
    /// Arm GIC: INTIDs 0-15 are SGIs, 16-31 PPIs, 32 and up SPIs.
    Gic,
    /// RISC-V PLIC: sources 1..=N (0 is "no interrupt").
    Plic,
    /// x86 local/IO APIC (no VM rules yet).
    Apic,
}

/// What the checks need to know about the architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchLimits {
    pub name: &'static str,
    pub irq_chip: IrqChip,
    /// The Linux `Image` header variant of the architecture, if it has one.
    pub linux_image: Option<crate::image::Format>,
    /// The largest interrupt number a device may have.
    pub max_irq: u64,
    /// Device interrupts are sources of an emulated PLIC (emu_type 0x30) numbered
    /// 1..=this (riscv64): a console with an interrupt needs that PLIC in the same
    /// VM. `None`: the architecture's interrupt controller needs no such pairing
    /// here (aarch64's GIC rules are board checks).
    pub plic_sources: Option<u32>,
    /// The console (emu_type 0x2) sits in the I/O port space (x86: `base_gpa` is
    /// its first port), not in guest-physical memory.
    pub console_ports: bool,
    /// Kernel images are Multiboot (v1) kernels loaded by their header's addresses
    /// (x86, [`crate::multiboot`]).
    pub multiboot: bool,
    /// Each `emu_type` 0x1 device is one of these (base, length) windows (x86: the
    /// local APICs and the I/O APIC); empty: no such rule.
    pub chip_windows: &'static [(u64, u64)],
}

pub const AARCH64: ArchLimits = ArchLimits {
    name: "aarch64",
    irq_chip: IrqChip::Gic,
    linux_image: Some(crate::image::ARM64),
    max_irq: 1019,
    plic_sources: None,
    console_ports: false,
    multiboot: false,
    chip_windows: &[],
};
pub const RISCV64: ArchLimits = ArchLimits {
    name: "riscv64",
    irq_chip: IrqChip::Plic,
    linux_image: Some(crate::image::RISCV),
    max_irq: 1023,
    // The hypervisor's virtual PLIC (QEMU virt's source count).
    plic_sources: Some(95),
    console_ports: false,
    multiboot: false,
    chip_windows: &[],
};
pub const X86_64: ArchLimits = ArchLimits {
    name: "x86_64",
    irq_chip: IrqChip::Apic,
    linux_image: None,
    max_irq: 255,
    plic_sources: None,
    console_ports: true,
    multiboot: true,
    // The local APICs' xAPIC window and the I/O APIC's.
    chip_windows: &[(0xfee0_0000, 0x1000), (0xfec0_0000, 0x1000)],
};
