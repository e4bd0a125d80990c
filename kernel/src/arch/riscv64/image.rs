//! The RISC-V Linux `Image` boot protocol as the hypervisor must honour it when
//! loading a guest kernel: a 64-bit kernel sits at a 2 MiB-aligned address, and the
//! header's image_size says how much memory (bss included) it uses, which must not
//! collide with the DTB or initramfs the hypervisor places.

/// Offset of the "RSC\x05" magic (magic2) in the header.
const MAGIC2_OFFSET: usize = 56;
const MAGIC2: [u8; 4] = *b"RSC\x05";
const ALIGN: u64 = 2 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// Bytes from the load address the kernel uses, bss included.
    pub image_size: u64,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The header of a RISC-V `Image`, or None for other images (bare-metal binaries).
pub fn parse(image: &[u8]) -> Option<ImageHeader> {
    if image.len() < 64 || image[MAGIC2_OFFSET..MAGIC2_OFFSET + 4] != MAGIC2 {
        return None;
    }
    Some(ImageHeader {
        text_offset: le64(image, 8),
        image_size: le64(image, 16),
    })
}

/// Checks a Linux kernel's placement: `load` must be 2 MiB aligned, and the
/// kernel's whole footprint must avoid `others` (DTB, initrd). Returns the footprint
/// `(start, end)` to check against guest RAM.
pub fn check_placement(
    h: &ImageHeader,
    file_len: u64,
    load: u64,
    others: &[(&'static str, u64, u64)],
) -> Result<(u64, u64), alloc::string::String> {
    use alloc::format;
    if !load.is_multiple_of(ALIGN) {
        return Err(format!(
            "kernel_load_addr {load:#x} breaks the RISC-V boot protocol: a 64-bit kernel must be loaded at a 2 MiB-aligned address"
        ));
    }
    let size = h.image_size.max(file_len);
    let end = load
        .checked_add(size)
        .ok_or_else(|| format!("kernel at {load:#x} + {size:#x} overflows"))?;
    for &(what, start, stop) in others {
        if start < end && load < stop {
            return Err(format!(
                "the kernel needs {load:#x}..{end:#x} (Image image_size, bss included) but the {what} is at {start:#x}..{stop:#x}"
            ));
        }
    }
    Ok((load, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(image_size: u64) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec![0u8; 64];
        v[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
        v[16..24].copy_from_slice(&image_size.to_le_bytes());
        v[48..56].copy_from_slice(b"RISCV\0\0\0");
        v[56..60].copy_from_slice(b"RSC\x05");
        v
    }

    #[test]
    fn header_and_placement() {
        let h = parse(&image(0x180_0000)).unwrap();
        assert_eq!(h.image_size, 0x180_0000);
        assert_eq!(
            check_placement(&h, 64, 0x8020_0000, &[("DTB", 0x8220_0000, 0x8220_1000)]),
            Ok((0x8020_0000, 0x81a0_0000))
        );
        let e =
            check_placement(&h, 64, 0x8020_0000, &[("DTB", 0x8100_0000, 0x8100_1000)]).unwrap_err();
        assert!(e.contains("DTB"), "{e}");
        assert!(
            check_placement(&h, 64, 0x8010_0000, &[]).is_err(),
            "not 2 MiB aligned"
        );
        assert_eq!(parse(&[0u8; 64]), None);
        assert_eq!(parse(b"short"), None);
    }
}
