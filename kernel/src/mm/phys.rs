//! Access to host-physical memory. The hypervisor runs with an identity map of all
//! RAM, so a host-physical address is also a pointer; this is the one place that
//! turns one into the other. (On the host, the fake architecture's board RAM is a
//! host buffer whose addresses are its physical addresses: the same holds there.)

#[cfg(target_os = "none")]
use crate::firmware::Range;
use crate::hal::paging::{TableMemory, ENTRIES, PAGE};
use crate::mm::frames::FrameAllocator;

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

/// The bytes at host-physical `[pa, pa + len)`, read-only.
///
/// # Safety
/// The range must be memory that nothing writes for the lifetime of the slice
/// (firmware data or boot modules the frame allocator never hands out, say).
pub unsafe fn slice<'a>(pa: u64, len: u64) -> &'a [u8] {
    // SAFETY: guaranteed by the caller; identity map makes `pa` a valid pointer.
    unsafe { core::slice::from_raw_parts(pa as *const u8, len as usize) }
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

/// Copies host-physical `[pa, pa + out.len())` into `out`, without forming a
/// reference to the source (a running guest may be writing it).
///
/// # Safety
/// The range must be RAM (guest memory of a VM, say) that stays allocated for the
/// duration of the copy.
pub unsafe fn read_bytes(pa: u64, out: &mut [u8]) {
    // SAFETY: guaranteed by the caller; identity map makes `pa` a valid pointer, and
    // `out` is a distinct hypervisor buffer.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, out.as_mut_ptr(), out.len()) }
}

/// Copies `data` to host-physical `[pa, pa + data.len())`, without forming a
/// reference to the destination (a running guest may be reading it).
///
/// # Safety
/// The range must be RAM (guest memory of a VM, say) that stays allocated for the
/// duration of the copy and holds nothing the hypervisor relies on.
pub unsafe fn write_bytes(pa: u64, data: &[u8]) {
    // SAFETY: guaranteed by the caller; identity map makes `pa` a valid pointer, and
    // `data` is a distinct hypervisor buffer.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) }
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
        self.alloc_tables(1)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` is a table frame returned by `alloc_table(s)`: 4 KiB aligned,
        // owned by the stage-2 tables being built or torn down, which no CPU runs
        // on while that happens (the VM is being created or is stopped).
        unsafe { &mut *(pa as *mut [u64; ENTRIES]) }
    }

    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if !count.is_power_of_two() {
            return None;
        }
        let size = PAGE * count as u64;
        let pa = self.0.alloc(size, size).ok()?;
        // SAFETY: frames just taken from the allocator, owned by nobody else.
        unsafe { slice_mut(pa, size) }.fill(0);
        Some(pa)
    }

    fn free_tables(&mut self, pa: u64, count: usize) {
        // A refusal means the frames were not ours to give (a walker bug) or the
        // free list is full: either way they stay out of use, which is safe.
        if let Err(e) = self.0.free(pa, PAGE * count as u64) {
            crate::debug!("hv: table frames at {pa:#x} not freed: {e:?}");
        }
    }
}
