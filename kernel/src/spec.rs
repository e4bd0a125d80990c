//! The VM table the hypervisor is built with.
//!
//! `cargo xtask build` validates the board and VM configs on the host and generates a
//! Rust file (`HV_GEN_RS`, see `build.rs`) that defines `BUILD` and `VMS` with these
//! types; guest images with `image_location = "memory"` are bundled with
//! `include_bytes!`. The kernel trusts the host's validation for consistency but still
//! refuses, per VM, anything it cannot honour on the machine it finds itself on.

use alloc::borrow::Cow;

/// A string of a spec: borrowed from the built-in table, owned for a VM loaded from
/// the card (freed with its VM).
pub type Str = Cow<'static, str>;
/// A list of a spec, borrowed or owned like [`Str`].
pub type List<T> = Cow<'static, [T]>;

/// Flags of a memory region (AxVisor `memory_regions` flags field); what they mean
/// is `vmconfig::Mapping::of`.
pub mod mem_flags {
    pub use vmconfig::{
        FLAG_DEVICE as DEVICE, FLAG_EXECUTE as EXECUTE, FLAG_READ as READ, FLAG_WRITE as WRITE,
    };
}

/// How a guest-physical region is backed (AxVisor `map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// Backed by host RAM allocated anywhere (map_type 0).
    Allocate,
    /// GPA == HPA, the host range is reserved for this VM (map_type 1).
    Identity,
    /// A reserved host range mapped 1:1 (map_type 2).
    Reserved,
}

#[derive(Clone, Copy, Debug)]
pub struct MemRegion {
    pub gpa: u64,
    pub size: u64,
    pub flags: u64,
    pub map_type: MapType,
}

/// A guest image bundled into the hypervisor, copied to `load_gpa` before boot.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub load_gpa: u64,
    pub data: &'static [u8],
}

#[derive(Clone, Debug)]
pub struct EmuDevice {
    pub name: Str,
    pub base_gpa: u64,
    pub length: u64,
    /// Interrupt ID as the guest sees it (GIC INTID on aarch64), 0 = none.
    pub irq: u32,
    /// AxVisor `emu_type` code (0x1 interrupt controller, 0x2 console, ...).
    pub emu_type: u32,
    pub cfg: List<u64>,
}

#[derive(Clone, Debug)]
pub struct PassthroughDevice {
    pub name: Str,
    pub base_gpa: u64,
    pub base_hpa: u64,
    pub length: u64,
    pub irq: u32,
}

/// Passthrough by device-tree path (AxVisor's `passthrough_devices = [["/path"]]`):
/// resolved against the DTB the hypervisor booted with when it builds the VM,
/// leaving out what `excluded` names (`vmconfig::devtree`, `vmm::dtpass`).
#[derive(Clone, Debug)]
pub struct DtPassthrough {
    pub paths: List<Str>,
    pub excluded: List<Str>,
}

/// An inter-VM channel as one VM maps it (`vmconfig::channel`, `[[devices.channels]]`):
/// the machine holds the region, shared by every VM on `vms`.
#[derive(Clone, Debug)]
pub struct ChannelSpec {
    pub name: Str,
    /// Bytes of shared memory (4 KiB multiples), the same for every member.
    pub size: u64,
    /// The member VMs by name; a VM's position is its number on the doorbell.
    pub vms: List<Str>,
    /// Where this VM sees the region.
    pub gpa: u64,
    /// Read-write for this VM (else read-only).
    pub writable: bool,
    /// This VM's doorbell: (window GPA, the interrupt a peer's ring raises).
    pub doorbell: Option<(u64, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptMode {
    NoIrq,
    Emulated,
    Passthrough,
}

/// Everything a VM is built from. Built-in VMs borrow theirs from the generated
/// table; a VM loaded from the card owns its spec, which is freed when the VM is
/// destroyed.
#[derive(Clone, Debug)]
pub struct VmSpec {
    pub id: u32,
    pub name: Str,
    /// 0 host VM, 1 RTOS, 2 Linux.
    pub vm_type: u32,
    pub cpu_num: u32,
    /// Physical CPU of each vCPU, as an index into the CPUs the DTB lists
    /// (xtask resolves `phys_cpu_ids` / `phys_cpu_sets` / defaults to this).
    pub pcpu_of_vcpu: List<u32>,
    pub entry_point: u64,
    pub kernel: Image,
    pub dtb: Option<Image>,
    pub ramdisk: Option<Image>,
    /// Where a generated guest DTB goes when the config names none.
    pub dtb_load_gpa: Option<u64>,
    pub cmdline: Str,
    pub memory_regions: List<MemRegion>,
    pub emu_devices: List<EmuDevice>,
    pub passthrough_devices: List<PassthroughDevice>,
    /// Device-tree path passthrough, if the config has any.
    pub dt_passthrough: Option<DtPassthrough>,
    pub interrupt_mode: InterruptMode,
    /// Inter-VM channels the VM maps.
    pub channels: List<ChannelSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// What the hypervisor does when the last VM stops (board key `on_last_stop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLastStop {
    /// Power the machine off (the default; QEMU boards and tests).
    PowerOff,
    /// Stay up with the hypervisor shell on the console.
    Shell,
}

#[derive(Clone, Copy, Debug)]
pub struct BuildInfo {
    pub board: &'static str,
    pub log: LogLevel,
    pub on_last_stop: OnLastStop,
}

#[allow(clippy::all)]
mod generated {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/gen.rs"));
}

pub use generated::{BUILD, VMS};

/// For tests: a one-vCPU VM "vm1" with nothing in it; tests fill in what they need
/// with struct update syntax (`VmSpec { emu_devices: ..., ..TEST_SPEC }`); the fuzz
/// targets too.
#[cfg(any(test, feature = "fuzz"))]
pub const TEST_SPEC: VmSpec = VmSpec {
    id: 1,
    name: Cow::Borrowed("vm1"),
    vm_type: 1,
    cpu_num: 1,
    pcpu_of_vcpu: Cow::Borrowed(&[0]),
    entry_point: 0x4008_0000,
    kernel: Image {
        load_gpa: 0x4008_0000,
        data: &[],
    },
    dtb: None,
    ramdisk: None,
    dtb_load_gpa: None,
    cmdline: Cow::Borrowed(""),
    memory_regions: Cow::Borrowed(&[]),
    emu_devices: Cow::Borrowed(&[]),
    passthrough_devices: Cow::Borrowed(&[]),
    dt_passthrough: None,
    interrupt_mode: InterruptMode::NoIrq,
    channels: Cow::Borrowed(&[]),
};
