//! The generic timer's virtual timer (CNTV_*) and virtual counter (CNTVCT_EL0).

use core::arch::asm;

const CTL_ENABLE: u64 = 1 << 0;
const CTL_IMASK: u64 = 1 << 1;
const CTL_ISTATUS: u64 = 1 << 2;

/// Counter frequency in Hz (CNTFRQ_EL0).
pub fn frequency() -> u64 {
    let freq: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack)) };
    freq & 0xffff_ffff
}

/// The virtual counter (CNTVCT_EL0).
pub fn now() -> u64 {
    let count: u64;
    // SAFETY: reading the counter has no side effects; the isb keeps the read from
    // being performed early.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) count, options(nomem, nostack)) };
    count
}

/// Makes the virtual timer fire once `ticks` counter ticks from now.
pub fn arm(ticks: u64) {
    let ticks = ticks.min(i32::MAX as u64);
    // SAFETY: programming this CPU's virtual timer only affects its interrupt line.
    unsafe {
        asm!(
            "msr cntv_tval_el0, {t}",
            "msr cntv_ctl_el0, {c}",
            "isb",
            t = in(reg) ticks,
            c = in(reg) CTL_ENABLE,
            options(nomem, nostack)
        )
    };
}

/// Stops the virtual timer.
pub fn disarm() {
    // SAFETY: as in `arm`.
    unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}

/// In the interrupt handler: masks the timer's output (so its level interrupt drops)
/// and returns whether the timer condition was met (ISTATUS) when the interrupt came.
pub fn mask_and_check_fired() -> bool {
    let ctl: u64;
    // SAFETY: reading CNTV_CTL_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
    // SAFETY: as in `arm`.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, {}",
            "isb",
            in(reg) ctl | CTL_IMASK,
            options(nomem, nostack)
        )
    };
    ctl & CTL_ISTATUS != 0
}
