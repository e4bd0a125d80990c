//! The Linux `Image` boot protocol as the hypervisor must honour it when loading a
//! guest kernel. arm64 and RISC-V share the header layout (text_offset at byte 8,
//! image_size at byte 16, a magic at byte 56) and the rule that the kernel's whole
//! footprint, bss included, must not collide with the DTB or initramfs the hypervisor
//! places; they differ in the magic and in where the kernel may be loaded. Each
//! architecture describes its variant as a [`Format`] (`arch::*::image::FORMAT`).
//!
//! Pure and arch-neutral (it depends on nothing else in the kernel), so `arch` may use
//! it and every variant is unit-tested on the host.
use alloc::format;
use alloc::string::String;

const BLOCK_2M: u64 = 2 << 20;

/// The bytes of the header this module reads; shorter images have no header.
const HEADER_LEN: usize = 64;
const TEXT_OFFSET_AT: usize = 8;
const IMAGE_SIZE_AT: usize = 16;

/// Where a kernel of a [`Format`] may be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadRule {
    /// text_offset above a 2 MiB boundary (arm64).
    TextOffsetAbove2M,
    /// On a 2 MiB boundary, text_offset aside (64-bit RISC-V).
    Aligned2M,
}

/// One architecture's variant of the `Image` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// The architecture as messages name it ("arm64", "RISC-V").
    pub arch: &'static str,
    /// Offset of the magic that tells a Linux `Image` from a bare-metal binary.
    pub magic_at: usize,
    pub magic: [u8; 4],
    /// The text_offset to assume when image_size is 0 (old arm64 kernels, whose
    /// header fields were not yet defined); None to take the header as it is.
    pub unsized_text_offset: Option<u64>,
    pub load_rule: LoadRule,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// Bytes from the load address the kernel uses, bss included (0 = unknown).
    pub image_size: u64,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Format {
    /// The header of an `Image` of this format, or None for other images (bare-metal
    /// binaries).
    pub fn parse(&self, image: &[u8]) -> Option<ImageHeader> {
        let magic_end = self.magic_at + self.magic.len();
        if image.len() < HEADER_LEN.max(magic_end) || image[self.magic_at..magic_end] != self.magic
        {
            return None;
        }
        let image_size = le64(image, IMAGE_SIZE_AT);
        let text_offset = match self.unsized_text_offset {
            Some(assumed) if image_size == 0 => assumed,
            _ => le64(image, TEXT_OFFSET_AT),
        };
        Some(ImageHeader {
            text_offset,
            image_size,
        })
    }

    /// Checks a Linux kernel's placement: `load` must follow the format's
    /// [`LoadRule`], and the kernel's whole footprint must avoid `others` (name,
    /// start, end: DTB, initrd). Returns the footprint `(start, end)` to check against
    /// guest RAM.
    pub fn check_placement(
        &self,
        h: &ImageHeader,
        file_len: u64,
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<(u64, u64), String> {
        let arch = self.arch;
        match self.load_rule {
            LoadRule::TextOffsetAbove2M
                if !load.wrapping_sub(h.text_offset).is_multiple_of(BLOCK_2M) =>
            {
                return Err(format!(
                    "kernel_load_addr {load:#x} breaks the {arch} boot protocol: it must be a 2 MiB-aligned address plus the Image's text_offset {:#x}",
                    h.text_offset
                ));
            }
            LoadRule::Aligned2M if !load.is_multiple_of(BLOCK_2M) => {
                return Err(format!(
                    "kernel_load_addr {load:#x} breaks the {arch} boot protocol: a 64-bit kernel must be loaded at a 2 MiB-aligned address"
                ));
            }
            _ => {}
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

    /// Where a guest kernel with this format's header will live, bss included, if its
    /// placement follows the boot protocol and avoids `others` (name, start, end);
    /// None for kernels without the header (bare-metal images).
    pub fn kernel_footprint(
        &self,
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        match self.parse(image) {
            Some(h) => self
                .check_placement(&h, image.len() as u64, load, others)
                .map(Some),
            None => Ok(None),
        }
    }
}
