//! Where the frames of 2nd-stage translation tables come from, for every
//! architecture's table builder: identity-mapped frames of the frame allocator on the
//! target ([`super::phys::FrameTables`]), vectors of frames in host unit tests.

/// Entries of one 4 KiB table of 64-bit descriptors.
pub const ENTRIES: usize = 512;

/// A source of zeroed 4 KiB table frames.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned frame for a table; its physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at physical address `pa` (one returned by `alloc_table` or
    /// `alloc_tables`).
    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES];
    /// `count` (a power of two) physically contiguous zeroed frames aligned to
    /// `count * 4 KiB`, for root tables wider than one page (RISC-V Sv39x4: 16 KiB).
    /// Sources that cannot do it only serve `count == 1`.
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if count == 1 {
            self.alloc_table()
        } else {
            None
        }
    }
}
