//! Word-sized cells shared between vCPUs and with interrupt handlers.
//!
//! The guest runs with the MMU off, so every data access is to Device memory, where
//! exclusive and atomic read-modify-write instructions cannot be relied on. A [`Shared`]
//! is one aligned 64-bit word, read and written with single volatile accesses (which the
//! architecture performs single-copy atomically), with full barriers so that a flag
//! written after some data is seen after that data. Each cell must have one writer at a
//! time; readers may be anywhere.

use core::cell::UnsafeCell;

use crate::arch;

/// A 64-bit word that vCPUs and interrupt handlers share.
#[repr(transparent)]
pub struct Shared(UnsafeCell<u64>);

// SAFETY: the inner word is only ever accessed through `get`/`set`, each a single aligned
// 64-bit volatile access (single-copy atomic); no reference to the inner value escapes.
unsafe impl Sync for Shared {}

impl Shared {
    /// A cell holding `value`.
    pub const fn new(value: u64) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// Reads the word; later memory accesses are ordered after this read.
    pub fn get(&self) -> u64 {
        // SAFETY: the pointer comes from a live `UnsafeCell<u64>`, so it is valid and
        // 8-byte aligned; a racing store is a single-copy-atomic word store.
        let value = unsafe { self.0.get().read_volatile() };
        arch::barrier();
        value
    }

    /// Writes the word; earlier memory accesses are ordered before this write, and the
    /// write completes before this function returns.
    pub fn set(&self, value: u64) {
        arch::barrier();
        // SAFETY: as in `get`; each cell has a single writer at a time.
        unsafe { self.0.get().write_volatile(value) };
        arch::barrier();
    }

    /// The word's address, for instructions that store to it themselves.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn as_ptr(&self) -> *mut u64 {
        self.0.get()
    }

    /// Adds one (only for cells with a single writer, such as interrupt counters).
    pub fn increment(&self) {
        self.set(self.get().wrapping_add(1));
    }
}
