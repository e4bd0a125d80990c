//! Where the guest's own image (code, data, .bss with the stacks) lies in memory, from
//! the symbols every architecture's linker script defines.

use crate::platform::Region;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The guest image, from its first byte to the end of .bss, page aligned.
pub fn region() -> Region {
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    Region {
        base: start,
        size: end.saturating_sub(start),
    }
}
