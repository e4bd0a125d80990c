//! The RISC-V Linux `Image` header: the "RSC\x05" magic (magic2), and a 64-bit
//! kernel that sits at a 2 MiB-aligned address. The format, its reading and its checks live
//! in [`crate::boot_image`] (`vmconfig::image`), shared with xtask.
use crate::boot_image::Format;

pub const FORMAT: Format = crate::boot_image::RISCV;

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
        let h = FORMAT.parse(&image(0x180_0000)).unwrap();
        assert_eq!(h.image_size, 0x180_0000);
        assert_eq!(
            FORMAT.check_placement(&h, 64, 0x8020_0000, &[("DTB", 0x8220_0000, 0x8220_1000)]),
            Ok((0x8020_0000, 0x81a0_0000))
        );
        let e = FORMAT
            .check_placement(&h, 64, 0x8020_0000, &[("DTB", 0x8100_0000, 0x8100_1000)])
            .unwrap_err();
        assert!(e.contains("DTB"), "{e}");
        assert!(
            FORMAT.check_placement(&h, 64, 0x8010_0000, &[]).is_err(),
            "not 2 MiB aligned"
        );
        assert_eq!(FORMAT.parse(&[0u8; 64]), None);
        assert_eq!(FORMAT.parse(b"short"), None);
    }
}
