//! Waiting with a deadline, measured on the architecture's counter (CNTVCT_EL0 on
//! aarch64). Everything here runs under emulation too, so callers pass generous limits.

use crate::arch;

/// Counter ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    arch::timer::frequency().saturating_mul(ms) / 1000
}

/// Polls `done` until it returns true (then returns true) or `ms` milliseconds have
/// passed without that (then returns false).
pub fn wait_until(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let limit = ms_to_ticks(ms);
    let start = arch::timer::now();
    loop {
        if done() {
            return true;
        }
        if arch::timer::now().wrapping_sub(start) > limit {
            return done();
        }
        core::hint::spin_loop();
    }
}

/// Busy-waits `ms` milliseconds (interrupts, when unmasked, are taken meanwhile).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub fn delay_ms(ms: u64) {
    wait_until(ms, || false);
}
