//! The exit vocabulary: why a vCPU stopped running guest code, in words every
//! architecture shares, and the answer the core gives back. Arch code decodes its
//! traps (ESR_EL2 / scause / the SVM exit code) and its firmware calls (PSCI, SBI,
//! x86 INIT-SIPI and ACPI ports) into [`VmExit`] and turns a [`Reply`] into register
//! values.

use core::fmt;

/// Most console bytes one [`VmExit::Console`] carries.
pub const CONSOLE_CHUNK: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// A load or store to an unmapped (or write-protected) guest-physical address.
    Mmio {
        gpa: u64,
        width: u8,
        write: Option<u64>,
        pc: u64,
    },
    /// An `in`/`out` to an I/O port (x86): `width` 1, 2 or 4 bytes; `write` is
    /// None for `in`.
    PortIo {
        port: u16,
        width: u8,
        write: Option<u32>,
        pc: u64,
    },
    /// A read of model-specific register `msr` the CPU did not let through (x86).
    MsrRead { msr: u32, pc: u64 },
    /// A write of model-specific register `msr` (x86).
    MsrWrite { msr: u32, value: u64, pc: u64 },
    /// CPUID leaf `leaf`, sub-leaf `subleaf` (x86).
    Cpuid { leaf: u32, subleaf: u32 },
    /// Start vCPU `target` (the id the guest names it by: MPIDR, hart id, APIC id) at
    /// `entry` with `arg` (PSCI CPU_ON, SBI HART_START, INIT-SIPI).
    VcpuOn { target: u64, entry: u64, arg: u64 },
    /// Is vCPU `target` running? (PSCI AFFINITY_INFO, SBI HART_GET_STATUS)
    VcpuStatus { target: u64 },
    /// The calling vCPU powers itself off.
    VcpuOff,
    /// The guest asks for its VM to power off (clean stop).
    SystemOff,
    /// The guest asks for its VM to be reset.
    SystemReset,
    /// A project hypercall.
    Hypercall { code: u64, args: [u64; 4] },
    /// The guest sent an inter-processor interrupt; `value` is the arch encoding.
    Ipi { value: u64 },
    /// A physical interrupt arrived while the guest ran. `forward` is the INTID to
    /// make pending for this vCPU (a timer interrupt), or None (handled by the host).
    Interrupt { forward: Option<u32> },
    /// A physical interrupt of a device the hypervisor itself drives (the console
    /// UART): already acknowledged and deactivated.
    HostInterrupt { intid: u32 },
    /// The guest waited for an interrupt and was woken.
    Idle,
    /// Console output the guest handed to its firmware interface (riscv64: SBI
    /// debug console and legacy putchar) instead of its UART: `data[..len]`.
    Console { data: [u8; CONSOLE_CHUNK], len: u8 },
    /// The guest did something the hypervisor refuses: its VM is stopped.
    Fault(Fault),
}

/// What stops a VM: the exit kind, the address involved and where the guest was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub what: &'static str,
    pub addr: Option<u64>,
    pub pc: u64,
    /// The raw arch syndrome (ESR_EL2 / scause), for the log.
    pub syndrome: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault: {}", self.what)?;
        if let Some(a) = self.addr {
            write!(f, " at {a:#x}")?;
        }
        write!(f, ", PC {:#x} (syndrome {:#x})", self.pc, self.syndrome)
    }
}

/// What a guest access that found no valid stage-2 entry meant to do; the VMM may
/// map the memory then (guest RAM filled on first touch) and have it retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// Asked by the arch code on a stage-2 translation fault, before anything else:
/// true when the memory is now mapped and the access is to be retried as it is.
pub type FirstTouch<'a> = &'a dyn Fn(u64, Access) -> bool;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuOnError {
    /// No such vCPU in this VM.
    InvalidTarget,
    AlreadyOn,
    /// The entry address is not in guest memory.
    InvalidAddress,
    /// Not now: the VM is resetting (or stopping).
    Denied,
}

/// The VMM's answer to an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    None,
    MmioRead(u64),
    /// The value of an `in`.
    PortRead(u32),
    /// The value of a model-specific register.
    MsrRead(u64),
    /// EAX, EBX, ECX, EDX of a CPUID.
    Cpuid([u32; 4]),
    VcpuOn(Result<(), VcpuOnError>),
    VcpuStatus {
        on: bool,
    },
    Hypercall([u64; 4]),
    /// A hypercall answered in the return register alone (x0, a0, RAX), every other
    /// register as the guest had it: AxVisor's calls.
    Return(u64),
    /// The access is refused: the vCPU takes the architecture's fault for it
    /// (x86: #GP for an MSR), the instruction not completed.
    Refused,
}
