//! riscv64: the guest runs in S-mode (VS-mode under the hypervisor) with satp off,
//! calls the SBI (the firmware interface the hypervisor emulates, OpenSBI on plain
//! QEMU) and the project hypercalls with `ecall`, takes its timer interrupt (SBI
//! set_timer) as a supervisor timer interrupt, and prints on a 16550.

use core::arch::asm;

use crate::console::{Uart, UartKind};

pub mod attack;
mod boot;
mod counters;
mod dtb;
mod exception;
pub mod firmware;
pub mod irq;
mod legacy;
mod plic;
pub mod timer;

pub use dtb::{check_dtb, pending_bit};

pub use super::devtree::{ivc_channel, ivc_irq_done};

/// Name of the check of what the VM was booted with (`checks::dtb`).
pub const BOOT_INFO_CHECK: &str = "dtb";

/// Supervisor software interrupt pending bit of `sip` (SSIP).
const SIP_SSIP: u64 = 1 << 1;

/// Self-IPI timing (`ivc-bench`): each slot the ticks from an SBI send_ipi to this
/// hart until its software interrupt shows pending in `sip` (never taken: interrupts
/// are masked meanwhile), then cleared by the guest (VSSIP is the guest's to clear).
pub fn self_ipi_ticks(
    _platform: &crate::platform::Platform,
    out: &mut [u64],
) -> crate::why::CheckResult {
    let me = cpu_hw_id();
    let pending = || {
        let sip: u64;
        // SAFETY: reading sip has no side effects.
        unsafe { asm!("csrr {}, sip", out(reg) sip, options(nomem, nostack)) };
        sip & SIP_SSIP != 0
    };
    let clear = || {
        // SAFETY: clears only this hart's (virtual) supervisor software interrupt.
        unsafe { asm!("csrc sip, {}", in(reg) SIP_SSIP, options(nomem, nostack)) };
    };
    let sstatus: u64;
    // SAFETY: masking interrupts only affects this hart's execution.
    unsafe { asm!("csrrci {}, sstatus, 2", out(reg) sstatus, options(nomem, nostack)) };
    clear();
    let mut result = Ok(());
    for slot in out.iter_mut() {
        let start = timer::now();
        let err = firmware::send_ipi(1, me);
        let seen = crate::time::wait_until(1000, pending);
        *slot = timer::now().wrapping_sub(start);
        clear();
        if err != 0 || !seen {
            result = Err(crate::why::why!(
                "SBI send_ipi to this hart ({me}): error {err}, software interrupt pending: {seen}"
            ));
            break;
        }
    }
    if sstatus & 2 != 0 {
        // SAFETY: unmasking again as it was; the trap vector is installed.
        unsafe { asm!("csrsi sstatus, 2", options(nomem, nostack)) };
    }
    result
}

/// The UART the riscv64 test VMs (and QEMU virt) have, used when the device tree
/// names none.
pub const FALLBACK_UART: Uart = Uart {
    kind: UartKind::Ns16550,
    base: 0x1000_0000,
    reg_shift: 0,
};

/// The SBI's legacy console_putchar, for `sbi-only`.
pub const FIRMWARE_CONSOLE: Option<fn(u8)> = Some(firmware::console_putchar);

/// Full memory barrier: earlier accesses complete before later ones start.
pub fn barrier() {
    // SAFETY: a fence has no effect besides ordering memory accesses.
    unsafe { asm!("fence rw, rw", options(nostack, preserves_flags)) };
}

/// Idles until an interrupt is pending (the caller has interrupts unmasked, so the
/// handler runs before this returns). Interrupts are masked around the test and the
/// WFI: if the timer interrupt was already taken, there is nothing to wait for; if it
/// comes after the test, WFI returns at once and it is taken on unmasking.
pub fn wait_for_interrupt() {
    // SAFETY: masking interrupts and waiting only affect this hart's execution.
    unsafe { asm!("csrci sstatus, 2", options(nomem, nostack)) };
    if timer::armed() {
        // SAFETY: as above; WFI wakes for a pending interrupt even while masked.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
    // SAFETY: unmasking again; the trap vector is installed.
    unsafe { asm!("csrsi sstatus, 2", options(nomem, nostack)) };
}

/// Stops this hart for good (interrupts masked, waiting forever).
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting only affect this hart's execution.
        unsafe { asm!("csrci sstatus, 2", "wfi", options(nomem, nostack)) };
    }
}

/// Spins forever with interrupts masked (sstatus.SIE clear) and no instruction
/// that traps: only an interrupt the hypervisor owns can take this hart out of the
/// guest.
pub fn spin_masked() -> ! {
    // SAFETY: masking interrupts only affects this hart's execution.
    unsafe { asm!("csrci sstatus, 2", options(nomem, nostack)) };
    loop {
        core::hint::spin_loop();
    }
}

/// This hart's id as the device tree's `reg` of a CPU node gives it (kept in `tp`
/// since entry: S-mode cannot read mhartid).
pub fn cpu_hw_id() -> u64 {
    let id: u64;
    // SAFETY: reading tp has no side effects.
    unsafe { asm!("mv {}, tp", out(reg) id, options(nomem, nostack)) };
    id
}

/// Address where secondary harts start (for `firmware::cpu_start`).
pub fn secondary_entry() -> u64 {
    boot::secondary_entry_address()
}
