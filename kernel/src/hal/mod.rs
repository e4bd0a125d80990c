//! The hardware interface: everything the architecture-neutral core (`vmm`,
//! `devices`, `mm`, `console`, `boot`) asks of an architecture, written down as
//! traits. `arch/aarch64` and `arch/riscv64` implement them on the bare-metal
//! targets; [`fake`] implements them on the host so the core is unit-tested there.
//!
//! The core never names an architecture: it calls through [`Current`], the one
//! architecture this build is for, chosen below (the only `cfg(target_arch)` outside
//! `arch/`).
//!
//! - [`Cpu`]: a physical CPU: bring-up, ids, starting others, powering off.
//! - [`HostIrq`]: the host interrupt controller as the core sees it: kick another
//!   CPU, wait for and dispatch interrupts while idle.
//! - [`HostTimer`]: the free-running counter.
//! - [`HostPorts`]: the x86 I/O port space (the COM1 console); empty elsewhere.
//! - [`MemoryOps`]: cache and second-stage TLB maintenance around guest memory.
//! - [`GuestBoot`]: how a guest of this architecture is described and placed (its
//!   boot description, today a device tree; its kernel's footprint).
//! - [`Vcpu`]: enter the guest, return a [`exit::VmExit`], apply a
//!   [`exit::Reply`], exchange interrupt state with the VM's interrupt chip.
//! - [`Arch`]: the bundle, with the associated types and guest facts.
//! - [`paging::PageTableFormat`]: the second-stage descriptor format (encoding only;
//!   the one walker over it is `mm::stage2`), and [`paging::TableMemory`].

pub mod exit;
#[cfg(not(target_os = "none"))]
pub mod fake;
pub mod paging;

use crate::devices::irqchip::IrqChip;
use crate::devices::ConsoleKind;
use crate::firmware::{BoardInfo, DiscoveryError, Handover};
use crate::spec::VmSpec;
use alloc::string::String;
use alloc::vec::Vec;
use exit::{FirstTouch, Reply, VmExit};

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use crate::arch::aarch64::Aarch64 as Current;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use crate::arch::riscv64::Riscv64 as Current;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use crate::arch::x86_64::X86_64 as Current;
#[cfg(not(target_os = "none"))]
pub use fake::FakeArch as Current;

pub use paging::{MapError, MemType, Perms};

/// A physical CPU. The board it runs on is the neutral [`BoardInfo`] a firmware
/// reader filled; the architecture reads what it needs from it and refuses a board
/// that lacks it.
pub trait Cpu {
    /// Reads the board description the firmware handed over at boot. Which reader is
    /// the architecture's choice, as its boot protocol says what it is handed (a
    /// device tree on aarch64 and riscv64; Multiboot information and ACPI on x86).
    /// `handover` is the address the boot protocol passed in a register.
    fn discover(handover: u64) -> Result<Handover, DiscoveryError>;
    /// Boot CPU: its MMU, vectors, interrupt controller and console. Err says why
    /// this board cannot run the hypervisor (no GIC, no H extension ...).
    fn init_primary(board: &BoardInfo) -> Result<(), &'static str>;
    /// Every other CPU, once started.
    fn init_secondary(board: &BoardInfo) -> Result<(), &'static str>;
    /// The firmware id of the CPU running this code.
    fn this_cpu() -> u64;
    /// Starts CPU `id` at the secondary entry with stack slot `slot`; the firmware's
    /// error code when it refuses.
    fn start_cpu(board: &BoardInfo, id: u64, slot: usize) -> Result<(), i64>;
    /// Ends the machine; `success` becomes the exit status where the board has one.
    fn power_off(board: &BoardInfo, success: bool) -> !;
    /// Restarts the whole machine through its firmware (the shell's `reboot`).
    fn reboot(board: &BoardInfo) -> !;
}

/// The host interrupt controller, as the core uses it.
pub trait HostIrq {
    /// Interrupts CPU `id` so it leaves its guest (or its idle wait) and looks at
    /// its VM's state.
    fn kick(id: u64);
    /// Waits for an interrupt on a CPU not running a guest and handles what arrived:
    /// kicks end the wait, interrupts of the hypervisor's own devices go to `host`.
    fn idle(host: &mut dyn FnMut(u32));
}

/// The free-running counter every CPU shares.
pub trait HostTimer {
    fn counter() -> u64;
    /// Ticks of [`HostTimer::counter`] per second.
    fn counter_hz() -> u64;
}

/// The I/O port space, as the hypervisor's own drivers use it (a console UART on
/// x86's COM1). Architectures without one read all ones and drop writes: no firmware
/// reader of theirs describes a device on ports.
pub trait HostPorts {
    fn port_read(port: u16) -> u8;
    fn port_write(port: u16, value: u8);
}

/// Cache and TLB maintenance around guest memory.
pub trait MemoryOps {
    /// Whether [`MemoryOps::stage2_unmapped`] reaches every CPU (so a VM's other
    /// running vCPUs lose the entries too); else only the calling CPU's.
    const STAGE2_UNMAP_ALL_CPUS: bool;
    /// A second-stage entry for `gpa` went from invalid to valid.
    fn stage2_mapped(gpa: u64);
    /// Second-stage entries of the VM running on this CPU became invalid.
    fn stage2_unmapped();
    /// Zeroes guest RAM at host-physical `[hpa, hpa + len)`.
    ///
    /// # Safety
    /// The range must be RAM the caller owns (a VM's, with no vCPU using it).
    unsafe fn zero_guest_ram(hpa: u64, len: u64);
    /// Copies `data` (an image loaded before boot) to guest RAM at host-physical
    /// `hpa`. Architectures whose plain `memcpy` is slow under emulation copy in
    /// larger strides.
    ///
    /// # Safety
    /// `[hpa, hpa + data.len())` must be RAM the caller owns (a VM's, with no vCPU
    /// using it) and must not overlap `data`.
    unsafe fn copy_to_guest_ram(hpa: u64, data: &[u8]) {
        // SAFETY: guaranteed by the caller; the identity map makes `hpa` a pointer.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), hpa as *mut u8, data.len()) }
    }
    /// Makes what the hypervisor wrote to `[hpa, hpa + len)` visible to a guest
    /// that runs with its caches off.
    fn clean_for_guest(hpa: u64, len: u64);
}

/// A guest-physical window backed directly by host device registers (aarch64: the
/// GICv2 virtual CPU interface).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectWindow {
    pub gpa: u64,
    pub hpa: u64,
    pub size: u64,
    /// What it is, for messages.
    pub what: &'static str,
}

/// How a guest of this architecture is described and placed.
pub trait GuestBoot {
    /// The boot description a VM gets when its config names none (a device tree
    /// today; a zero page and ACPI tables on x86 later). `memory`: (GPA, size) of
    /// its RAM.
    fn guest_description(spec: &VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String>;
    /// Where a kernel with this architecture's boot-protocol header lives, bss
    /// included, avoiding `others` (name, start, end); None for bare images.
    fn kernel_footprint(
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String>;
    /// Device windows of `spec` that go straight to hardware; Err when the host
    /// cannot give the VM what its config asks (say, its interrupt controller).
    fn direct_windows(spec: &VmSpec, board: &BoardInfo) -> Result<Vec<DirectWindow>, String>;
    /// The part of the kernel file `image` that is loaded, and its GPA, for a
    /// config that loads it at `load`: the whole file there by default; an x86
    /// Multiboot kernel says by its header which part goes where.
    fn kernel_load(image: &'static [u8], load: u64) -> Result<(u64, &'static [u8]), String> {
        Ok((load, image))
    }
    /// vCPU 0's start argument for a VM whose boot description is at
    /// `description`: that address by default; x86 adds which boot protocol the
    /// vCPU starts with (Multiboot or Linux, by the kernel image).
    fn start_arg(spec: &VmSpec, description: u64) -> u64 {
        let _ = spec;
        description
    }
}

/// Where a vCPU starts, and the VM state its CPU is programmed with.
pub struct VcpuStart<R> {
    /// The VM's second-stage translation, as the CPU needs it.
    pub stage2: R,
    /// The vCPU's index in its VM.
    pub index: usize,
    /// How many vCPUs the VM has.
    pub vcpus: usize,
    /// The VM's counter offset (guest time starts near zero).
    pub cntvoff: u64,
    pub entry: u64,
    pub arg: u64,
}

/// A virtual CPU, pinned to the physical CPU that creates it.
pub trait Vcpu: Sized {
    type Stage2Regs: Copy;
    /// Programs this CPU for the vCPU and resets it to its power-on state at
    /// `start.entry`: this is both "create" and "reset".
    fn start(start: VcpuStart<Self::Stage2Regs>) -> Self;
    /// Runs the guest until an exit the core must see. `first_touch` is asked
    /// first about every second-stage translation fault.
    fn run(&mut self, first_touch: FirstTouch) -> VmExit;
    /// Applies the core's answer to the last exit.
    fn reply(&mut self, reply: Reply);
    /// Hands the interrupt chip's deliverable interrupts to the guest; before entry.
    fn fill_irqs(&mut self, chip: &mut dyn IrqChip, index: usize);
    /// Reports to the interrupt chip what the guest did with them; after an exit.
    fn sync_irqs(&mut self, chip: &mut dyn IrqChip, index: usize);
    /// Where the guest is.
    fn pc(&self) -> u64;
}

/// One architecture: the traits above plus its types and guest facts.
pub trait Arch: Cpu + HostIrq + HostTimer + MemoryOps + GuestBoot + HostPorts {
    type Vcpu: Vcpu<Stage2Regs = Self::Stage2Regs>;
    /// A VM's second-stage tables (`mm::stage2::PageTable` over this
    /// architecture's descriptor format).
    type Stage2: Send;
    /// What a CPU needs to run a VM's second-stage translation.
    type Stage2Regs: Copy + Send + Sync;
    /// Widest guest-physical space the second-stage format supports.
    const MAX_IPA_BITS: u32;
    /// Largest VM tag (VMID) second-stage TLB entries carry.
    const MAX_VMID: u16;
    /// The console UART model this architecture's guests expect.
    const CONSOLE: ConsoleKind;
    /// The VM config rules of this architecture (shared with xtask).
    const LIMITS: vmconfig::ArchLimits;
    /// Per-CPU interrupt lines of the VM's interrupt chip that are backed by the
    /// physical CPU's own (the guest timers), forwarded to the vCPU on that CPU.
    const PERCPU_HW_IRQS: &'static [u32];
    /// The host's physical address width.
    fn pa_bits() -> u32;
    /// What a CPU needs to run on the tables `s2` as VM `vmid`.
    fn stage2_regs(s2: &Self::Stage2, vmid: u16) -> Self::Stage2Regs;
    /// The id a guest names vCPU `index` by (MPIDR, hart id, APIC id).
    fn vcpu_id(index: usize) -> u64;
    /// The vCPU index a guest means by `id`; inverse of [`Arch::vcpu_id`].
    fn vcpu_index(id: u64) -> Option<usize>;
}

/// The second-stage tables of this build's architecture (`mm::stage2::PageTable`
/// over its format).
pub type Stage2 = <Current as Arch>::Stage2;
/// The vCPU type of this build.
pub type CurrentVcpu = <Current as Arch>::Vcpu;
