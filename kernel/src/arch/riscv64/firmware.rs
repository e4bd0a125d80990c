//! Calls from the hypervisor to the SBI firmware below it (OpenSBI in M-mode): hart
//! start, IPIs, the supervisor timer, system reset; and the QEMU SiFive test device
//! that ends a run with an exit status.

use super::sbi::{EID_HSM, EID_IPI, EID_LEGACY_SHUTDOWN, EID_SRST, EID_TIME};

/// SBI SRST reset reasons.
const REASON_NONE: u64 = 0;
const REASON_FAILURE: u64 = 1;
/// SBI SRST reset type: cold reboot.
const TYPE_COLD_REBOOT: u64 = 1;
/// SiFive test device ("finisher") commands.
const FINISHER_PASS: u32 = 0x5555;
const FINISHER_FAIL: u32 = 0x3333;

/// One SBI call; returns (error, value).
fn call(eid: u64, fid: u64, a0: u64, a1: u64, a2: u64) -> (i64, u64) {
    let (err, val): (u64, u64);
    // SAFETY: an SBI call to the firmware: arguments in a0..a2, a6, a7; a0/a1 out. The
    // firmware preserves every other register and does not touch our memory unless a
    // call says so (none of these pass pointers).
    unsafe {
        core::arch::asm!("ecall",
            inlateout("a0") a0 => err, inlateout("a1") a1 => val, in("a2") a2,
            in("a6") fid, in("a7") eid, options(nostack))
    };
    (err as i64, val)
}

/// Starts hart `hartid` in S-mode at `entry` with a0 = hartid, a1 = `opaque`.
pub fn hart_start(hartid: u64, entry: u64, opaque: u64) -> i64 {
    call(EID_HSM, 0, hartid, entry, opaque).0
}

/// Sends a supervisor software interrupt to the harts `mask << base` (base u64::MAX:
/// all harts).
pub fn send_ipi(mask: u64, base: u64) {
    call(EID_IPI, 0, mask, base, 0);
}

/// Programs this hart's supervisor timer for `time` (u64::MAX: never); clears a
/// pending timer interrupt.
pub fn set_timer(time: u64) {
    call(EID_TIME, 0, time, 0, 0);
}

/// Powers the machine off through the firmware (SRST, else the legacy call).
pub fn shutdown(success: bool) {
    let reason = if success { REASON_NONE } else { REASON_FAILURE };
    call(EID_SRST, 0, 0, reason, 0);
    call(EID_LEGACY_SHUTDOWN, 0, 0, 0, 0);
}

/// Restarts the machine through the firmware (SRST cold reboot).
pub fn reboot() {
    call(EID_SRST, 0, TYPE_COLD_REBOOT, REASON_NONE, 0);
}

/// Ends the QEMU run through the SiFive test device at `base` with status `code`.
pub fn sifive_test_exit(base: u64, code: u32) {
    let value = if code == 0 {
        FINISHER_PASS
    } else {
        (code << 16) | FINISHER_FAIL
    };
    // SAFETY: the device the DTB describes; one 32-bit store ends the machine.
    unsafe { core::ptr::write_volatile(base as *mut u32, value) };
}
