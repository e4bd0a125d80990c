//! Volatile accessors for memory-mapped device registers.

/// Reads the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register (or RAM) the guest may read.
pub unsafe fn read32(addr: usize) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe { (addr as *const u32).read_volatile() }
}

/// Writes the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register (or RAM) the guest may write, and
/// the write must not break memory the program relies on.
pub unsafe fn write32(addr: usize, value: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe { (addr as *mut u32).write_volatile(value) }
}

/// Reads the 64-bit register at `addr`.
///
/// # Safety
/// `addr` must be an 8-byte aligned device register (or RAM) the guest may read.
pub unsafe fn read64(addr: usize) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { (addr as *const u64).read_volatile() }
}

/// Writes the 64-bit word at `addr`.
///
/// # Safety
/// As for [`write32`], with 8-byte alignment.
pub unsafe fn write64(addr: usize, value: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe { (addr as *mut u64).write_volatile(value) }
}

/// Reads the 8-bit register at `addr`.
///
/// # Safety
/// `addr` must be a device register (or RAM) the guest may read.
pub unsafe fn read8(addr: usize) -> u8 {
    // SAFETY: guaranteed by the caller.
    unsafe { (addr as *const u8).read_volatile() }
}

/// Writes the 8-bit register at `addr`.
///
/// # Safety
/// As for [`write32`], for one byte.
pub unsafe fn write8(addr: usize, value: u8) {
    // SAFETY: guaranteed by the caller.
    unsafe { (addr as *mut u8).write_volatile(value) }
}
