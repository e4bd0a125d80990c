//! System register access. Each macro is one `mrs`/`msr` instruction.

/// Reads a system register by name: `read_sysreg!(esr_el2)`.
macro_rules! read_sysreg {
    ($reg:tt) => {{
        let v: u64;
        // SAFETY: reading a system register has no memory effects; the caller names a
        // register that is readable at EL2.
        unsafe { core::arch::asm!(concat!("mrs {}, ", stringify!($reg)), out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
}

/// Writes a system register by name: `write_sysreg!(hcr_el2, value)`.
macro_rules! write_sysreg {
    ($reg:tt, $val:expr) => {{
        let v: u64 = $val;
        // SAFETY: the caller is the EL2 code that owns this register and writes a value
        // valid for it; ordering against memory is handled by explicit barriers.
        unsafe { core::arch::asm!(concat!("msr ", stringify!($reg), ", {}"), in(reg) v, options(nostack, preserves_flags)) };
    }};
}

pub(crate) use read_sysreg;
pub(crate) use write_sysreg;

pub fn isb() {
    // SAFETY: a barrier has no operands.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

pub fn dsb_sy() {
    // SAFETY: a barrier has no operands.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Waits for an event (`sev` from another CPU or an interrupt becoming pending).
pub fn wfe() {
    // SAFETY: only stalls this CPU.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack, preserves_flags)) };
}

/// Waits for an interrupt (pending even while masked at EL2).
pub fn wfi() {
    // SAFETY: only stalls this CPU.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// MPIDR_EL1 affinity fields (Aff3..Aff0) of this CPU.
pub fn mpidr() -> u64 {
    read_sysreg!(mpidr_el1) & 0xff_00ff_ffff
}
