//! The arm64 Linux `Image` header: the "ARM\x64" magic, and a kernel that sits
//! text_offset above a 2 MiB boundary. The format, its reading and its checks live in
//! [`crate::boot_image`] (`vmconfig::image`), shared with xtask.
use crate::boot_image::Format;

pub const FORMAT: Format = crate::boot_image::ARM64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_image::ImageHeader;

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
            FORMAT.parse(&image(0, 0x240_0000)),
            Some(ImageHeader {
                text_offset: 0,
                image_size: 0x240_0000
            })
        );
        assert_eq!(
            FORMAT.parse(&image(0x1234, 0)),
            Some(ImageHeader {
                text_offset: 0x8_0000,
                image_size: 0
            })
        );
        assert_eq!(FORMAT.parse(&[0u8; 64]), None);
        assert_eq!(FORMAT.parse(b"short"), None);
    }

    #[test]
    fn placement_must_follow_text_offset() {
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x240_0000,
        };
        assert_eq!(
            FORMAT.check_placement(&h, 0x200_0000, 0x4020_0000, &[]),
            Ok((0x4020_0000, 0x4260_0000))
        );
        let err = FORMAT
            .check_placement(&h, 0x200_0000, 0x4008_0000, &[])
            .unwrap_err();
        assert!(err.contains("2 MiB-aligned"), "{err}");
        let h2 = ImageHeader {
            text_offset: 0x8_0000,
            image_size: 0x10_0000,
        };
        assert!(FORMAT
            .check_placement(&h2, 0x1000, 0x4008_0000, &[])
            .is_ok());
    }

    #[test]
    fn bss_must_not_overlap_dtb_or_initrd() {
        // The file is 16 MiB but the kernel uses 36 MiB: a DTB at +20 MiB is in its bss.
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x240_0000,
        };
        let err = FORMAT
            .check_placement(
                &h,
                0x100_0000,
                0x4020_0000,
                &[("DTB", 0x4160_0000, 0x4161_0000)],
            )
            .unwrap_err();
        assert!(err.contains("DTB"), "{err}");
        assert!(FORMAT
            .check_placement(
                &h,
                0x100_0000,
                0x4020_0000,
                &[("initrd", 0x4800_0000, 0x4900_0000)]
            )
            .is_ok());
    }
}
