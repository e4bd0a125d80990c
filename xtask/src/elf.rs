//! ELF to raw binary, with the `object` crate (no objcopy): the `PT_LOAD` segments are
//! copied to their physical addresses, counted from the lowest one, and the gaps
//! between them are zero-filled.
use anyhow::{bail, Context, Result};
use object::elf::PT_LOAD;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

/// The largest raw image we agree to produce (a stray segment would make it huge).
const MAX_RAW: u64 = 1 << 30;

/// A raw binary and where it belongs.
#[derive(Debug, PartialEq, Eq)]
pub struct RawImage {
    /// Physical address of the first byte.
    pub base: u64,
    /// ELF entry point.
    pub entry: u64,
    pub data: Vec<u8>,
}

struct Segment<'a> {
    paddr: u64,
    bytes: &'a [u8],
}

/// Converts an ELF file (32 or 64 bit, either endianness) into a raw binary.
pub fn elf_to_raw(file: &[u8]) -> Result<RawImage> {
    match FileKind::parse(file).context("not an object file")? {
        FileKind::Elf64 => convert::<object::elf::FileHeader64<Endianness>>(file),
        FileKind::Elf32 => convert::<object::elf::FileHeader32<Endianness>>(file),
        other => bail!("not an ELF file ({other:?})"),
    }
}

fn convert<Elf: FileHeader<Endian = Endianness>>(file: &[u8]) -> Result<RawImage> {
    let header = Elf::parse(file).context("bad ELF header")?;
    let endian = header.endian().context("bad ELF endianness")?;
    let entry: u64 = header.e_entry(endian).into();
    let mut segments = Vec::new();
    for ph in header
        .program_headers(endian, file)
        .context("bad ELF program headers")?
    {
        if ph.p_type(endian) != PT_LOAD || ph.p_filesz(endian).into() == 0 {
            continue;
        }
        let bytes = ph
            .data(endian, file)
            .map_err(|()| anyhow::anyhow!("PT_LOAD segment lies outside the file"))?;
        segments.push(Segment {
            paddr: ph.p_paddr(endian).into(),
            bytes,
        });
    }
    flatten(entry, segments)
}

fn flatten(entry: u64, mut segments: Vec<Segment>) -> Result<RawImage> {
    if segments.is_empty() {
        bail!("the ELF file has no loadable segment with contents");
    }
    segments.sort_by_key(|s| s.paddr);
    let base = segments[0].paddr;
    let mut end = base;
    for s in &segments {
        let seg_end = s
            .paddr
            .checked_add(s.bytes.len() as u64)
            .context("segment end overflows")?;
        end = end.max(seg_end);
    }
    if end - base > MAX_RAW {
        bail!(
            "loadable segments span {:#x}..{end:#x}, more than 1 GiB: check the linker script",
            base
        );
    }
    let mut data = vec![0u8; (end - base) as usize];
    for s in &segments {
        let off = (s.paddr - base) as usize;
        data[off..off + s.bytes.len()].copy_from_slice(s.bytes);
    }
    Ok(RawImage { base, entry, data })
}

/// The arm64 Linux `Image` header of a raw binary, when it has one:
/// (text_offset, image_size).
pub fn arm64_image_header(raw: &[u8]) -> Option<(u64, u64)> {
    let magic = raw.get(0x38..0x3c)?;
    if magic != b"ARM\x64" {
        return None;
    }
    let word = |at: usize| -> Option<u64> {
        let b: [u8; 8] = raw.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    };
    Some((word(0x08)?, word(0x10)?))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Builds a little-endian ELF64 file with the given (paddr, vaddr, bytes, memsz)
    /// PT_LOAD segments plus one PT_NOTE, for tests.
    pub fn make_elf64(entry: u64, segs: &[(u64, u64, &[u8], u64)]) -> Vec<u8> {
        let phnum = segs.len() + 1;
        let phoff = 64u64;
        let mut data_off = phoff + 56 * phnum as u64;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, SysV
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&phoff.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // no section headers
        out.extend_from_slice(&0u32.to_le_bytes());
        for v in [64u16, 56, phnum as u16, 64, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut payload = Vec::new();
        let phdr = |ty: u32, off: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64| {
            let mut p = Vec::new();
            p.extend_from_slice(&ty.to_le_bytes());
            p.extend_from_slice(&7u32.to_le_bytes());
            for v in [off, vaddr, paddr, filesz, memsz, 0x1000] {
                p.extend_from_slice(&v.to_le_bytes());
            }
            p
        };
        let mut headers = Vec::new();
        for (paddr, vaddr, bytes, memsz) in segs {
            headers.extend(phdr(
                1,
                data_off,
                *vaddr,
                *paddr,
                bytes.len() as u64,
                *memsz,
            ));
            payload.extend_from_slice(bytes);
            data_off += bytes.len() as u64;
        }
        headers.extend(phdr(4, 0, 0, 0, 0, 0)); // PT_NOTE, ignored
        out.extend(headers);
        out.extend(payload);
        out
    }

    #[test]
    fn segments_are_placed_by_physical_address_with_zero_gaps() {
        // Second segment first in the file, virtual addresses differ from physical.
        let elf = make_elf64(
            0x4020_0000,
            &[
                (0x4020_0010, 0xffff_0000_0000_0010, b"CD", 2),
                (0x4020_0000, 0xffff_0000_0000_0000, b"AB", 0x100),
            ],
        );
        let raw = elf_to_raw(&elf).unwrap();
        assert_eq!(raw.base, 0x4020_0000);
        assert_eq!(raw.entry, 0x4020_0000);
        let mut want = vec![0u8; 0x12];
        want[0..2].copy_from_slice(b"AB");
        want[0x10..0x12].copy_from_slice(b"CD");
        assert_eq!(
            raw.data, want,
            "bss (memsz > filesz) is not part of the file"
        );
    }

    #[test]
    fn rejects_non_elf_and_empty_and_huge() {
        assert!(elf_to_raw(b"hello world, not an elf file at all........").is_err());
        let empty = make_elf64(0, &[]);
        assert!(elf_to_raw(&empty)
            .unwrap_err()
            .to_string()
            .contains("no loadable segment"));
        let huge = make_elf64(0, &[(0, 0, b"A", 1), (0x8000_0000, 0, b"B", 1)]);
        assert!(elf_to_raw(&huge)
            .unwrap_err()
            .to_string()
            .contains("more than 1 GiB"));
    }

    #[test]
    fn truncated_segment_is_an_error() {
        let mut elf = make_elf64(0, &[(0x1000, 0x1000, b"ABCD", 4)]);
        elf.truncate(elf.len() - 2);
        assert!(elf_to_raw(&elf).is_err());
    }

    #[test]
    fn arm64_header_is_recognised() {
        let mut raw = vec![0u8; 64];
        raw[0x08..0x10].copy_from_slice(&0x20_0000u64.to_le_bytes());
        raw[0x10..0x18].copy_from_slice(&0x5_0000u64.to_le_bytes());
        assert_eq!(arm64_image_header(&raw), None);
        raw[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(arm64_image_header(&raw), Some((0x20_0000, 0x5_0000)));
    }
}
