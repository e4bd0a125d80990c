//! Calls from the hypervisor to the firmware below it (PSCI over SMC or HVC) and the
//! QEMU semihosting exit.

use super::smccc::{PSCI_CPU_ON, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET};
use crate::firmware::PsciMethod;

fn call(method: PsciMethod, f: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = f;
    match method {
        // SAFETY: an SMCCC call to the firmware: x0..x3 in, x0 out, x1..x17 may be
        // clobbered; it does not touch the hypervisor's memory.
        PsciMethod::Smc => unsafe {
            core::arch::asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
        // SAFETY: as above, through HVC.
        PsciMethod::Hvc => unsafe {
            core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
    }
    x0 as i64
}

/// Starts the CPU `mpidr` at `entry` with x0 = `context`. PSCI return code.
pub fn cpu_on(method: PsciMethod, mpidr: u64, entry: u64, context: u64) -> i64 {
    call(method, PSCI_CPU_ON, mpidr, entry, context)
}

pub fn system_off(method: PsciMethod) {
    call(method, PSCI_SYSTEM_OFF, 0, 0, 0);
}

pub fn system_reset(method: PsciMethod) {
    call(method, PSCI_SYSTEM_RESET, 0, 0, 0);
}

/// Ends the QEMU run with `code` as its exit status (Arm semihosting SYS_EXIT with
/// ADP_Stopped_ApplicationExit). Only meaningful when QEMU enables semihosting.
pub fn semihosting_exit(code: u32) {
    let block: [u64; 2] = [0x20026, code as u64];
    // SAFETY: the semihosting call reads the two-word block, which lives on this
    // stack for the duration of the call.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack));
    }
}
