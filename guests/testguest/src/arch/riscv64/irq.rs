//! Interrupts for the timer check: the supervisor timer interrupt (a local interrupt,
//! no controller in the way), the PLIC set up as Linux does it and tested once with
//! the console UART's "THR empty" interrupt, IRQ masking, and the trap handler's
//! interrupt part, reporting to the arch-neutral timer check.

use core::arch::asm;

use super::{plic, timer};
use crate::checks;
use crate::platform::Platform;
use crate::why::CheckResult;

/// sstatus.SIE.
const SIE: u64 = 1 << 1;
/// sip.SSIP.
const SSIP: u64 = 1 << 1;

/// scause interrupt codes.
const SOFTWARE: u64 = 1;
const TIMER: u64 = 5;
const EXTERNAL: u64 = 9;

/// Sets up the PLIC for this hart and checks that an external interrupt comes
/// through it; the timer needs nothing more. With `sbi-only` the PLIC is left alone.
pub fn init(platform: &Platform) -> CheckResult {
    if crate::guest::sbi_only() {
        crate::console::println!(
            "testguest: sbi-only: PLIC and UART interrupt test skipped; SBI timer only"
        );
        return Ok(());
    }
    plic::init_and_test(platform)
}

/// Lets interrupts in on this hart.
pub fn enable() {
    // SAFETY: unmasking interrupts; the trap vector is installed and ready.
    unsafe { asm!("csrs sstatus, {}", in(reg) SIE, options(nomem, nostack)) };
}

/// Keeps interrupts out on this hart.
pub fn disable() {
    // SAFETY: masking interrupts only delays interrupt handling on this hart.
    unsafe { asm!("csrc sstatus, {}", in(reg) SIE, options(nomem, nostack)) };
}

/// The interrupt handler, with the interrupt code of scause.
pub fn handle(code: u64) {
    match code {
        TIMER => {
            let fired = timer::mask_and_check_fired();
            checks::timer::on_timer_interrupt(timer::now(), fired);
        }
        EXTERNAL if !crate::guest::sbi_only() => plic::handle(),
        SOFTWARE => {
            // SAFETY: clearing this hart's own software interrupt.
            unsafe { asm!("csrc sip, {}", in(reg) SSIP, options(nomem, nostack)) };
            checks::timer::on_other_interrupt(SOFTWARE as u32);
        }
        other => checks::timer::on_other_interrupt(other as u32),
    }
}
