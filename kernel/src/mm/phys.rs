//! Access to host-physical memory. The hypervisor runs with an identity map of all
//! RAM, so a host-physical address is also a pointer; this is the one place that
//! turns one into the other. (On the host, the fake architecture's board RAM is a
//! host buffer whose addresses are its physical addresses: the same holds there.)

#[cfg(target_os = "none")]
use crate::firmware::Range;
use crate::mm::frames::FrameAllocator;
use crate::mm::tables::TableMemory;

#[cfg(target_os = "none")]
extern "C" {
    // Defined by every architecture's linker.ld around the whole image.
    static __image_start: u8;
    static __image_end: u8;
}

/// Physical range of the hypervisor image, .bss and boot stacks included.
#[cfg(target_os = "none")]
pub fn image_range() -> Range {
    // SAFETY: only the addresses of linker symbols are taken.
    let (s, e) = unsafe {
        (
            &__image_start as *const u8 as u64,
            &__image_end as *const u8 as u64,
        )
    };
    Range {
        base: s,
        size: e - s,
    }
}

/// The bytes at host-physical `[pa, pa + len)`.
///
/// # Safety
/// The range must be RAM that the caller owns exclusively for the lifetime of the
/// slice (frames it allocated and has not handed to anyone else, or guest memory of
/// a VM that is not running).
pub unsafe fn slice_mut<'a>(pa: u64, len: u64) -> &'a mut [u8] {
    // SAFETY: guaranteed by the caller; identity map makes `pa` a valid pointer.
    unsafe { core::slice::from_raw_parts_mut(pa as *mut u8, len as usize) }
}

/// Stores one 64-bit translation-table entry at host-physical `pa`, in one access
/// (a table walker may read it at any time).
///
/// # Safety
/// `pa` must be an 8-byte-aligned entry of translation tables the caller owns.
pub unsafe fn write_table_entry(pa: u64, value: u64) {
    // SAFETY: guaranteed by the caller; identity map makes `pa` a valid pointer.
    unsafe { core::ptr::write_volatile(pa as *mut u64, value) }
}

/// Page-table frames taken from the frame allocator, zeroed.
pub struct FrameTables<'a>(pub &'a mut FrameAllocator);

impl TableMemory for FrameTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        let pa = self.0.alloc(4096, 4096).ok()?;
        // SAFETY: a frame just taken from the allocator, owned by nobody else.
        unsafe { slice_mut(pa, 4096) }.fill(0);
        Some(pa)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        // SAFETY: `pa` is a table frame returned by `alloc_table`: 4 KiB aligned,
        // owned by the stage-2 tables being built, which are not yet in use by a CPU
        // while the VM is being created.
        unsafe { &mut *(pa as *mut [u64; 512]) }
    }

    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if !count.is_power_of_two() {
            return None;
        }
        let size = 4096 * count as u64;
        let pa = self.0.alloc(size, size).ok()?;
        // SAFETY: frames just taken from the allocator, owned by nobody else.
        unsafe { slice_mut(pa, size) }.fill(0);
        Some(pa)
    }
}
