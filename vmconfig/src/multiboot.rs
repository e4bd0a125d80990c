//! The Multiboot (v1) header of an x86 kernel image, with the "a.out kludge" (flag
//! bit 16: the header gives the load addresses itself), which is how the hypervisor
//! loads an x86 guest image whatever its file format (QEMU `-kernel` loads the same
//! image by the same header). Pure: shared by xtask's checks and the kernel's loader.
//!
//! The header (Multiboot 0.6.96, section 3.1): 4-byte aligned in the first 8192
//! bytes; magic 0x1BADB002, flags, checksum (magic + flags + checksum = 0), then
//! with bit 16 header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr.

/// The header's magic.
pub const MAGIC: u32 = 0x1bad_b002;
/// The header lies in the image's first bytes this long.
pub const SEARCH_LEN: usize = 8192;
/// Flag bit 16: the address fields are valid (the "a.out kludge").
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Flag bit 2: the kernel asks for a graphics mode (a console-only VM has none).
pub const FLAG_VIDEO: u32 = 1 << 2;

/// A Multiboot header with the a.out kludge, and where the image puts itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Offset of the header in the file.
    pub offset: usize,
    pub flags: u32,
    pub header_addr: u32,
    pub load_addr: u32,
    /// 0: the rest of the file is loaded.
    pub load_end_addr: u32,
    /// 0: no bss.
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

/// Where the loader puts an image: `file[file_start..file_end]` copied to
/// `load_addr`, zeroes up to `end` (the bss), entered at `entry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub load_addr: u64,
    pub file_start: usize,
    pub file_end: usize,
    /// End of the kernel in memory, bss included.
    pub end: u64,
    pub entry: u64,
}

/// Why an image cannot be loaded as a Multiboot kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No header with a valid checksum in the first 8192 bytes.
    NoHeader,
    /// The header does not set flag bit 16 (only ELF32 images without it).
    NoAddresses,
    /// The header's addresses do not describe a part of the file.
    BadAddresses(&'static str),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NoHeader => write!(
                f,
                "no Multiboot header (magic 0x1BADB002 with a valid checksum, 4-byte aligned in the first 8192 bytes)"
            ),
            Error::NoAddresses => write!(
                f,
                "the Multiboot header does not give its load addresses (flag bit 16, the a.out kludge), which the loader needs"
            ),
            Error::BadAddresses(why) => write!(f, "the Multiboot header's addresses: {why}"),
        }
    }
}

fn word(image: &[u8], at: usize) -> Option<u32> {
    let b = image.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The first Multiboot header of `image`, with its address fields.
pub fn find(image: &[u8]) -> Result<Header, Error> {
    let end = image.len().min(SEARCH_LEN);
    let mut at = 0;
    while at + 12 <= end {
        if let (Some(MAGIC), Some(flags), Some(sum)) =
            (word(image, at), word(image, at + 4), word(image, at + 8))
        {
            if MAGIC.wrapping_add(flags).wrapping_add(sum) == 0 {
                if flags & FLAG_AOUT_KLUDGE == 0 {
                    return Err(Error::NoAddresses);
                }
                let f = |i: usize| word(image, at + 12 + 4 * i).ok_or(Error::NoHeader);
                return Ok(Header {
                    offset: at,
                    flags,
                    header_addr: f(0)?,
                    load_addr: f(1)?,
                    load_end_addr: f(2)?,
                    bss_end_addr: f(3)?,
                    entry_addr: f(4)?,
                });
            }
        }
        at += 4;
    }
    Err(Error::NoHeader)
}

/// Where `image` goes by its header (Multiboot 0.6.96 3.1.3 and QEMU's loader).
pub fn layout(image: &[u8]) -> Result<Layout, Error> {
    layout_of(image, image.len())
}

/// [`layout`] from the file's first bytes `head` (at least [`SEARCH_LEN`] + 32 of
/// them, or the whole file) and its length `len`.
pub fn layout_of(head: &[u8], len: usize) -> Result<Layout, Error> {
    let h = find(head)?;
    let bad = Error::BadAddresses;
    if h.load_addr > h.header_addr {
        return Err(bad("load_addr is above header_addr"));
    }
    let back = (h.header_addr - h.load_addr) as usize;
    let file_start = h
        .offset
        .checked_sub(back)
        .ok_or(bad("load_addr lies before the file's start"))?;
    let file_end = if h.load_end_addr == 0 {
        len
    } else {
        if h.load_end_addr < h.load_addr {
            return Err(bad("load_end_addr is below load_addr"));
        }
        let want = file_start
            .checked_add((h.load_end_addr - h.load_addr) as usize)
            .ok_or(bad("load_end_addr lies beyond the file's end"))?;
        // A file cut from its ELF at the last initialized byte (a raw binary of a
        // guest crate) may end before load_end_addr: the rest is zero, as bss is.
        if want > len && h.bss_end_addr < h.load_end_addr {
            return Err(bad("load_end_addr lies beyond the file's end"));
        }
        want.min(len)
    };
    let load_end = u64::from(h.load_addr) + (file_end - file_start) as u64;
    let end = if h.bss_end_addr == 0 {
        load_end
    } else if u64::from(h.bss_end_addr) < load_end {
        return Err(bad("bss_end_addr is below the loaded part's end"));
    } else {
        u64::from(h.bss_end_addr)
    };
    let entry = u64::from(h.entry_addr);
    if entry < u64::from(h.load_addr) || entry >= load_end {
        return Err(bad("entry_addr is not in the loaded part"));
    }
    Ok(Layout {
        load_addr: h.load_addr.into(),
        file_start,
        file_end,
        end,
        entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A file with `pad` bytes, then a header with these addresses, then `tail`
    /// bytes.
    fn image(pad: usize, flags: u32, addrs: [u32; 5], tail: usize) -> Vec<u8> {
        let mut v = vec![0x90u8; pad];
        let sum = 0u32.wrapping_sub(MAGIC).wrapping_sub(flags);
        for w in [MAGIC, flags, sum].into_iter().chain(addrs) {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.extend(core::iter::repeat_n(0xccu8, tail));
        v
    }

    #[test]
    fn a_flat_image_loads_whole_at_its_header() {
        // Header at file offset 0 = load address 0x10_0000, 0x100 bytes, bss to
        // 0x10_2000, entry just after the header.
        let img = image(
            0,
            FLAG_AOUT_KLUDGE,
            [0x10_0000, 0x10_0000, 0, 0x10_2000, 0x10_0020],
            0xe0,
        );
        let l = layout(&img).unwrap();
        assert_eq!(
            l,
            Layout {
                load_addr: 0x10_0000,
                file_start: 0,
                file_end: 0x100,
                end: 0x10_2000,
                entry: 0x10_0020
            }
        );
    }

    #[test]
    fn an_elf_image_loads_from_the_headers_offset() {
        // ELF-like: the header at file offset 0x1000 is at 0x10_0000; load_end
        // cuts the file's tail (symbols).
        let img = image(
            0x1000,
            FLAG_AOUT_KLUDGE | 3,
            [0x10_0000, 0x10_0000, 0x10_0800, 0, 0x10_0040],
            0x1000,
        );
        let h = find(&img).unwrap();
        assert_eq!((h.offset, h.flags & 3), (0x1000, 3));
        let l = layout(&img).unwrap();
        assert_eq!(
            (l.file_start, l.file_end, l.end),
            (0x1000, 0x1800, 0x10_0800)
        );
    }

    #[test]
    fn a_raw_file_may_end_before_load_end_inside_the_bss() {
        // The file holds 0x40 bytes; load_end_addr says 0x48, bss goes on to 0x1000.
        let img = image(
            0,
            FLAG_AOUT_KLUDGE,
            [0x10_0000, 0x10_0000, 0x10_0048, 0x10_1000, 0x10_0020],
            0x20,
        );
        let l = layout(&img).unwrap();
        assert_eq!((l.file_end, l.end), (0x40, 0x10_1000));
    }

    #[test]
    fn a_header_that_is_not_one_is_refused() {
        assert_eq!(find(&[0u8; 64]), Err(Error::NoHeader));
        // Bad checksum.
        let mut img = image(
            0,
            FLAG_AOUT_KLUDGE,
            [0x10_0000, 0x10_0000, 0, 0, 0x10_0000],
            16,
        );
        img[8] ^= 1;
        assert_eq!(find(&img), Err(Error::NoHeader));
        // Not 4-byte aligned.
        let img = image(2, FLAG_AOUT_KLUDGE, [0; 5], 16);
        assert_eq!(find(&img), Err(Error::NoHeader));
        // Beyond the first 8192 bytes.
        let img = image(8192, FLAG_AOUT_KLUDGE, [0; 5], 16);
        assert_eq!(find(&img), Err(Error::NoHeader));
        // Without the address fields.
        let img = image(0, 3, [0; 5], 16);
        assert_eq!(layout(&img), Err(Error::NoAddresses));
        assert!(Error::NoAddresses.to_string().contains("bit 16"));
        // Cut inside the header.
        let img = image(0, FLAG_AOUT_KLUDGE, [0; 5], 0);
        assert_eq!(find(&img[..20]), Err(Error::NoHeader));
    }

    #[test]
    fn addresses_outside_the_file_are_refused() {
        let cases = [
            // load_addr above header_addr.
            ([0x10_0000, 0x10_0004, 0, 0, 0x10_0004], "above header_addr"),
            // load_addr before the file's start.
            ([0x10_0000, 0x0f_f000, 0, 0, 0x10_0000], "before the file"),
            // load_end beyond the file.
            (
                [0x10_0000, 0x10_0000, 0x20_0000, 0, 0x10_0000],
                "beyond the file",
            ),
            // load_end below load.
            (
                [0x10_0000, 0x10_0000, 0x0f_0000, 0, 0x10_0000],
                "below load_addr",
            ),
            // bss_end inside the loaded part.
            (
                [0x10_0000, 0x10_0000, 0, 0x10_0010, 0x10_0000],
                "bss_end_addr",
            ),
            // entry outside.
            ([0x10_0000, 0x10_0000, 0, 0, 0x20_0000], "entry_addr"),
        ];
        for (addrs, why) in cases {
            let img = image(0, FLAG_AOUT_KLUDGE, addrs, 0x40);
            match layout(&img) {
                Err(e @ Error::BadAddresses(_)) => {
                    assert!(e.to_string().contains(why), "{e} for {why}")
                }
                other => panic!("{addrs:x?}: {other:?}"),
            }
        }
    }
}
