//! aarch64: the guest runs at EL1 with the MMU and caches off (so all data accesses
//! are Device memory), calls PSCI and the project hypercalls with `hvc #0`, takes the
//! virtual timer's interrupt through a GICv3 (or a GICv2), and prints on a PL011.

use core::arch::asm;

use crate::console::{Uart, UartKind};

pub mod attack;
mod boot;
mod dtb;
mod exception;
pub mod firmware;
mod gic;
mod gicv2;
pub mod irq;
pub mod timer;

pub use dtb::{check_dtb, pending_bit};

pub use super::devtree::{ivc_channel, ivc_irq_done};

/// Name of the check of what the VM was booted with (`checks::dtb`).
pub const BOOT_INFO_CHECK: &str = "dtb";

/// Counter ticks of `out.len()` self-IPIs, each sent until seen pending (`ivc-bench`).
pub fn self_ipi_ticks(
    platform: &crate::platform::Platform,
    out: &mut [u64],
) -> crate::why::CheckResult {
    match dtb::gic(&platform.fdt) {
        Some(dtb::Gic::V3(regions)) => gic::self_sgi_ticks(&regions, out),
        _ => Err(crate::why::why!(
            "not supported yet: self-IPI timing without a GICv3"
        )),
    }
}

/// The UART the contract puts in every VM (and QEMU virt has), used when the device
/// tree names none.
pub const FALLBACK_UART: Uart = Uart {
    kind: UartKind::Pl011,
    base: 0x0900_0000,
    reg_shift: 0,
};

/// No firmware console on aarch64 (PSCI has none): `sbi-only` is ignored.
pub const FIRMWARE_CONSOLE: Option<fn(u8)> = None;

/// Full memory barrier: earlier accesses complete before later ones start.
pub fn barrier() {
    // SAFETY: a barrier has no effect besides ordering memory accesses.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Idles until an interrupt is pending (the caller has interrupts unmasked, so the
/// handler runs before this returns).
pub fn wait_for_interrupt() {
    // SAFETY: waiting only affects this CPU's execution.
    unsafe { asm!("dsb sy", "wfi", options(nomem, nostack)) };
}

/// Stops this CPU for good (interrupts masked, waiting forever).
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting only affect this CPU's execution.
        unsafe { asm!("msr daifset, #0xf", "wfi", options(nomem, nostack)) };
    }
}

/// Spins forever with every interrupt masked and no instruction that traps: only
/// an interrupt the hypervisor owns can take this CPU out of the guest.
pub fn spin_masked() -> ! {
    // SAFETY: masking interrupts only affects this CPU's execution.
    unsafe { asm!("msr daifset, #0xf", "isb", options(nomem, nostack)) };
    loop {
        core::hint::spin_loop();
    }
}

/// This CPU's hardware id as the device tree's `reg` of a CPU node gives it: the
/// affinity fields of MPIDR_EL1 (Aff3 and Aff2..Aff0).
pub fn cpu_hw_id() -> u64 {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    mpidr & 0xff_00ff_ffff
}

/// Address where secondary CPUs start (for `firmware::cpu_start`).
pub fn secondary_entry() -> u64 {
    boot::secondary_entry_address()
}
