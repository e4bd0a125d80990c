//! counters: the `cycle` and `instret` counters can be read (under the hypervisor:
//! emulated, so they do not count the hypervisor's own cycles), and on a VM's second
//! boot `scounteren`, which the first boot leaves non-zero, starts clean.

use core::arch::asm;

use crate::why::{why, CheckResult};

/// scounteren: CY | IR (what the first boot leaves for the second to see).
const SCOUNTEREN_CY_IR: u64 = 0b101;

/// Runs the check.
pub fn check(_: &crate::platform::Platform) -> CheckResult {
    let (c0, i0, c1): (u64, u64, u64);
    // SAFETY: reading counters has no side effects.
    unsafe {
        asm!("rdcycle {}", "rdinstret {}", "rdcycle {}",
            out(reg) c0, out(reg) i0, out(reg) c1, options(nomem, nostack))
    };
    if c1 < c0 {
        return Err(why!("cycle went backwards: {c0} then {c1}"));
    }
    let _ = i0;
    let scounteren: u64;
    // SAFETY: reading scounteren has no side effects; writing it only decides what
    // U-mode (never entered here) may read.
    unsafe {
        asm!("csrr {}, scounteren", "csrw scounteren, {}",
            out(reg) scounteren, in(reg) SCOUNTEREN_CY_IR, options(nomem, nostack))
    };
    if super::firmware::vm_boots().unwrap_or(0) > 1 && scounteren != 0 {
        return Err(why!(
            "scounteren reads {scounteren:#x} on this boot: state of the previous boot"
        ));
    }
    Ok(())
}
