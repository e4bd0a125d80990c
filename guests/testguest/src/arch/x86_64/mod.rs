//! x86_64: the guest starts like a Multiboot v1 kernel (32-bit protected mode), sets
//! up identity-mapped long mode itself (`boot`), reads its VM from the Multiboot
//! information (`multiboot`), makes the project hypercalls with `vmmcall` under the
//! hypervisor (`firmware`), takes the local APIC timer's interrupt (xAPIC MMIO) through
//! its IDT, starts secondary vCPUs with INIT-SIPI-SIPI, and prints on COM1 (port
//! 0x3F8).

use core::arch::asm;

use crate::console::Uart;

pub mod attack;
mod boot;
pub mod firmware;
mod idt;
mod ioapic;
pub mod irq;
mod ivc;
mod lapic;
mod multiboot;
pub mod port;
pub mod timer;

/// Name of the check of what the VM was booted with (`checks::dtb`).
pub const BOOT_INFO_CHECK: &str = "multiboot";

/// The architecture's part of the boot-information check: the Multiboot information.
pub fn check_dtb(platform: &crate::platform::Platform) -> crate::why::CheckResult {
    multiboot::check(platform)
}

/// The channel the `ivc` checks use: from the command line (`ivc`).
pub use ivc::channel as ivc_channel;

/// After the doorbell's STATUS was cleared: its pending interrupt is taken (ended by
/// its handler), see `ivc`.
pub use ivc::take as ivc_irq_done;

/// No device tree, so no interrupt this guest finds the pending state of by one.
pub fn pending_bit(_fdt: &crate::fdt::Fdt, _node: &crate::fdt::Node) -> Option<(usize, u32)> {
    None
}

/// Self-IPI timing (`ivc-bench`).
pub fn self_ipi_ticks(
    _platform: &crate::platform::Platform,
    _out: &mut [u64],
) -> crate::why::CheckResult {
    Err(crate::why::why!(
        "not supported yet: self-IPI timing on x86_64"
    ))
}

/// The local APIC's version register (xAPIC MMIO), which the `mmio` bench reads:
/// the UART is port I/O here.
pub const LAPIC_VERSION: usize = lapic::BASE + lapic::VERSION;

/// COM1, which every x86 VM has.
pub const FALLBACK_UART: Uart = multiboot::COM1;

/// No firmware console on x86.
pub const FIRMWARE_CONSOLE: Option<fn(u8)> = None;

/// Full memory barrier.
pub fn barrier() {
    // SAFETY: a fence has no effect besides ordering memory accesses.
    unsafe { asm!("mfence", options(nostack, preserves_flags)) };
}

/// Idles until an interrupt is pending (the caller has interrupts unmasked, so the
/// handler runs before this returns). `sti; hlt` leaves no window between the test
/// and the halt: the interrupt is recognised only once HLT waits.
pub fn wait_for_interrupt() {
    // SAFETY: masking interrupts and halting only affect this vCPU.
    unsafe { asm!("cli", options(nomem, nostack)) };
    if timer::armed() {
        // SAFETY: as above; the IDT is loaded.
        unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
    } else {
        // SAFETY: unmasking again; the IDT is loaded.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
}

/// Stops this vCPU for good (interrupts masked, halted).
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and halting only affect this vCPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Spins forever with interrupts masked and no instruction that exits to the
/// hypervisor.
pub fn spin_masked() -> ! {
    // SAFETY: masking interrupts only affects this vCPU.
    unsafe { asm!("cli", options(nomem, nostack)) };
    loop {
        core::hint::spin_loop();
    }
}

/// This vCPU's initial APIC id (CPUID leaf 1 EBX[31:24]).
pub fn cpu_hw_id() -> u64 {
    u64::from(port::cpuid(1, 0)[1] >> 24)
}
