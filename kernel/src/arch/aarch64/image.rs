//! The arm64 Linux `Image` boot protocol as the hypervisor must honour it when
//! loading a guest kernel: the header's text_offset and image_size say where the
//! kernel must sit and how much memory (bss included) it will use, which must not
//! collide with the DTB or initramfs the hypervisor places.

/// Offset of the "ARM\x64" magic in the header.
const MAGIC_OFFSET: usize = 56;
const MAGIC: [u8; 4] = *b"ARM\x64";
const BLOCK_2M: u64 = 2 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// Bytes from the load address the kernel uses, bss included (0 = unknown: very
    /// old kernels, then text_offset is 0x80000 by convention).
    pub image_size: u64,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The header of an arm64 `Image`, or None for other images (bare-metal binaries).
pub fn parse(image: &[u8]) -> Option<ImageHeader> {
    if image.len() < 64 || image[MAGIC_OFFSET..MAGIC_OFFSET + 4] != MAGIC {
        return None;
    }
    let image_size = le64(image, 16);
    let text_offset = if image_size == 0 {
        0x8_0000
    } else {
        le64(image, 8)
    };
    Some(ImageHeader {
        text_offset,
        image_size,
    })
}

/// Checks a Linux kernel's placement: `load` must be text_offset above a 2 MiB
/// boundary, and the kernel's whole footprint must avoid `others` (DTB, initrd).
/// Returns the footprint `(start, end)` to check against guest RAM.
pub fn check_placement(
    h: &ImageHeader,
    file_len: u64,
    load: u64,
    others: &[(&'static str, u64, u64)],
) -> Result<(u64, u64), alloc::string::String> {
    use alloc::format;
    if !load.wrapping_sub(h.text_offset).is_multiple_of(BLOCK_2M) {
        return Err(format!(
            "kernel_load_addr {load:#x} breaks the arm64 boot protocol: it must be a 2 MiB-aligned address plus the Image's text_offset {:#x}",
            h.text_offset
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

    fn image(text_offset: u64, image_size: u64) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec![0u8; 64];
        v[8..16].copy_from_slice(&text_offset.to_le_bytes());
        v[16..24].copy_from_slice(&image_size.to_le_bytes());
        v[56..60].copy_from_slice(b"ARM\x64");
        v
    }

    #[test]
    fn parses_linux_header_and_ignores_other_binaries() {
        assert_eq!(
            parse(&image(0, 0x240_0000)),
            Some(ImageHeader {
                text_offset: 0,
                image_size: 0x240_0000
            })
        );
        assert_eq!(
            parse(&image(0x1234, 0)),
            Some(ImageHeader {
                text_offset: 0x8_0000,
                image_size: 0
            })
        );
        assert_eq!(parse(&[0u8; 64]), None);
        assert_eq!(parse(b"short"), None);
    }

    #[test]
    fn placement_must_follow_text_offset() {
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x240_0000,
        };
        assert_eq!(
            check_placement(&h, 0x200_0000, 0x4020_0000, &[]),
            Ok((0x4020_0000, 0x4260_0000))
        );
        let err = check_placement(&h, 0x200_0000, 0x4008_0000, &[]).unwrap_err();
        assert!(err.contains("2 MiB-aligned"), "{err}");
        let h2 = ImageHeader {
            text_offset: 0x8_0000,
            image_size: 0x10_0000,
        };
        assert!(check_placement(&h2, 0x1000, 0x4008_0000, &[]).is_ok());
    }

    #[test]
    fn bss_must_not_overlap_dtb_or_initrd() {
        // The file is 16 MiB but the kernel uses 36 MiB: a DTB at +20 MiB is in its bss.
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x240_0000,
        };
        let err = check_placement(
            &h,
            0x100_0000,
            0x4020_0000,
            &[("DTB", 0x4160_0000, 0x4161_0000)],
        )
        .unwrap_err();
        assert!(err.contains("DTB"), "{err}");
        assert!(check_placement(
            &h,
            0x100_0000,
            0x4020_0000,
            &[("initrd", 0x4800_0000, 0x4900_0000)]
        )
        .is_ok());
    }
}
