//! The hypervisor heap: one block of frames handed to a linked-list allocator.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Gives `[base, base + size)` (identity-mapped RAM) to the heap. Once, at boot.
pub fn init(base: u64, size: u64) {
    // SAFETY: the range is RAM taken from the frame allocator, mapped in the EL2
    // identity map and used for nothing else.
    unsafe { HEAP.lock().init(base as *mut u8, size as usize) };
}
