//! Interrupts for the timer check: the local APIC set up as an operating system does
//! it, IF masking, and the interrupt handler's part of the trap handler, reporting to
//! the arch-neutral timer check.

use core::arch::asm;

use super::{ioapic, ivc, lapic, timer};
use crate::checks;
use crate::platform::Platform;
use crate::why::{why, CheckResult};

/// IA32_APIC_BASE and its bits.
const APIC_BASE_MSR: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

/// Sets up this vCPU's local APIC (xAPIC mode, enabled, LINT0/LINT1 masked).
pub fn init(_platform: &Platform) -> CheckResult {
    let base = super::port::rdmsr(APIC_BASE_MSR);
    if base & APIC_BASE_ENABLE == 0 || base & APIC_BASE_X2APIC != 0 {
        return Err(why!(
            "IA32_APIC_BASE is {base:#x}: the local APIC is not enabled in xAPIC mode"
        ));
    }
    if base & 0xf_ffff_f000 != lapic::BASE as u64 {
        return Err(why!(
            "IA32_APIC_BASE is {base:#x}, not at {:#x}",
            lapic::BASE
        ));
    }
    lapic::enable();
    Ok(())
}

/// Lets interrupts in on this vCPU.
pub fn enable() {
    // SAFETY: unmasking interrupts; the IDT is loaded and its handlers ready.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Keeps interrupts out on this vCPU.
pub fn disable() {
    // SAFETY: masking interrupts only delays interrupt handling on this vCPU.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// The interrupt handler, with the vector (32..=255).
pub fn handle(vector: u8) {
    match vector {
        timer::VECTOR => {
            let fired = timer::mask_and_check_fired();
            // Reports first: with `reset` this resets the VM with the interrupt
            // still in service.
            checks::timer::on_timer_interrupt(timer::now(), fired);
            lapic::eoi();
        }
        ioapic::UART_VECTOR => {
            ioapic::handle_uart();
            lapic::eoi();
        }
        ivc::VECTOR => ivc::handle(),
        v if super::attack::on_vector(v) => lapic::eoi(),
        // Spurious interrupts take no end of interrupt.
        lapic::SPURIOUS_VECTOR => checks::timer::on_spurious_interrupt(),
        other => {
            lapic::eoi();
            checks::timer::on_other_interrupt(u32::from(other));
        }
    }
}
