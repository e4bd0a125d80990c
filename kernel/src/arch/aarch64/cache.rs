//! Cache maintenance by address. The hypervisor runs with caches on; guests start
//! with their MMU off and read memory uncached, so whatever the hypervisor wrote into
//! guest memory must be cleaned to the point of coherency before the guest runs.

/// Cleans and invalidates the data cache lines covering `[addr, addr + len)` to the
/// point of coherency, and invalidates the instruction cache.
pub fn clean_invalidate_range(addr: u64, len: u64) {
    let line = dcache_line();
    let mut a = addr & !(line - 1);
    while a < addr + len {
        // SAFETY: `dc civac` on an address mapped in the EL2 identity map; it does not
        // change memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: barriers and a whole instruction-cache invalidate have no operands.
    unsafe {
        core::arch::asm!(
            "dsb sy",
            "ic iallu",
            "dsb sy",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

fn dcache_line() -> u64 {
    let ctr = super::regs::read_sysreg!(ctr_el0);
    4 << ((ctr >> 16) & 0xf)
}
