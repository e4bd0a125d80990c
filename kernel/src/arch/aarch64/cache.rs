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

/// Zeroes `[addr, addr + len)` with `dc zva` where the CPU allows it (DCZID_EL0.DZP
/// clear), whole zeroing blocks at a time; plain stores for the edges or otherwise.
///
/// # Safety
/// The range must be RAM mapped in the EL2 identity map that the caller owns.
pub unsafe fn zero_range(addr: u64, len: u64) {
    let dczid = super::regs::read_sysreg!(dczid_el0);
    let block = 4u64 << (dczid & 0xf);
    let end = addr + len;
    let first = addr.next_multiple_of(block);
    if dczid & (1 << 4) != 0 || first >= end {
        // SAFETY: guaranteed by the caller.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len as usize) };
        return;
    }
    let last = end & !(block - 1);
    // SAFETY: the edges lie in the caller's range.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (first - addr) as usize) };
    let mut a = first;
    while a < last {
        // SAFETY: one zeroing block inside the caller's range.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += block;
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_bytes(last as *mut u8, 0, (end - last) as usize) };
}
