//! The supervisor timer through SBI set_timer, measured on the `time` CSR, whose rate
//! the device tree gives (`/cpus/timebase-frequency`).

use core::arch::asm;

use super::{boot, firmware};
use crate::fdt::Fdt;
use crate::shared::Shared;

/// sie.STIE.
const STIE: u64 = 1 << 5;

/// The timebase in Hz, once read from the device tree (0: not yet).
static FREQUENCY: Shared = Shared::new(0);
/// When the armed timer is due.
static DEADLINE: Shared = Shared::new(u64::MAX);
/// Non-zero: the timer is programmed with the legacy set_timer (extension 0x00).
static LEGACY: Shared = Shared::new(0);

/// Programs the timer with the legacy SBI set_timer (`on`) or the TIME extension.
pub fn set_legacy(on: bool) {
    LEGACY.set(u64::from(on));
}

/// SBI set_timer through the extension chosen with [`set_legacy`].
fn set_timer(time: u64) {
    if LEGACY.get() != 0 {
        super::legacy::set_timer(time);
    } else {
        firmware::set_timer(time);
    }
}

/// The `time` CSR rate in Hz (0 if the device tree does not say).
pub fn frequency() -> u64 {
    let known = FREQUENCY.get();
    if known != 0 {
        return known;
    }
    // SAFETY: the address the boot hart was given (see `primary_main`); the blob
    // stays where it is.
    let Ok(fdt) = (unsafe { Fdt::from_addr(boot::dtb_address()) }) else {
        return 0;
    };
    let freq = fdt
        .find("/cpus")
        .and_then(|cpus| cpus.prop("timebase-frequency"))
        .map_or(0, |v| match v.len() {
            4 => u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            8 => u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]),
            _ => 0,
        });
    FREQUENCY.set(freq);
    freq
}

/// The `time` CSR.
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reading the time CSR has no side effects.
    unsafe { asm!("rdtime {}", out(reg) t, options(nomem, nostack)) };
    t
}

/// Makes the timer interrupt come once `ticks` ticks from now.
pub fn arm(ticks: u64) {
    arm_at(now().saturating_add(ticks));
}

/// Makes the timer interrupt come once the `time` CSR reaches `due`.
pub fn arm_at(due: u64) {
    DEADLINE.set(due);
    set_timer(due);
    // SAFETY: enabling the timer interrupt only affects this hart.
    unsafe { asm!("csrs sie, {}", in(reg) STIE, options(nomem, nostack)) };
}

/// Stops the timer.
pub fn disarm() {
    // SAFETY: as in `arm`.
    unsafe { asm!("csrc sie, {}", in(reg) STIE, options(nomem, nostack)) };
    set_timer(u64::MAX);
    DEADLINE.set(u64::MAX);
}

/// In the interrupt handler: moves the timer out of the way (so its interrupt drops)
/// and returns whether it was due when the interrupt came.
pub fn mask_and_check_fired() -> bool {
    let fired = now() >= DEADLINE.get();
    set_timer(u64::MAX);
    DEADLINE.set(u64::MAX);
    fired
}

/// Whether the timer is armed and its interrupt not yet taken.
pub fn armed() -> bool {
    DEADLINE.get() != u64::MAX
}
