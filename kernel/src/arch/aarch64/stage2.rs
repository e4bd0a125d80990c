//! Stage-2 translation tables (VMSAv8-64, 4 KiB granule) for one VM: guest-physical
//! (IPA) to host-physical. 2 MiB blocks where GPA, HPA and size allow, 4 KiB pages
//! elsewhere. The walk starts at level 1 (VTCR_EL2.SL0 = 1), so the IPA space is at
//! most 39 bits; `ipa_bits` below that shrinks it for CPUs with a smaller PARange.
//!
//! Table memory comes from a [`TableMemory`]: identity-mapped frames on the target,
//! a vector of frames in host unit tests.

pub const PAGE: u64 = 4096;
pub const BLOCK_2M: u64 = 2 << 20;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;

/// Largest IPA width a level-1 start supports with 4 KiB pages.
pub const MAX_IPA_BITS: u32 = 39;

pub use crate::mm::tables::TableMemory;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Normal write-back cacheable RAM.
    Normal,
    /// Device-nGnRE (passthrough MMIO); never executable.
    Device,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    Unaligned,
    /// Beyond the IPA space of this table.
    OutOfRange,
    /// Part of the range is mapped already.
    Overlap {
        gpa: u64,
    },
    OutOfMemory,
}

pub struct Stage2 {
    root: u64,
    ipa_bits: u32,
}

fn leaf_attrs(perms: Perms, ty: MemType) -> u64 {
    let mut a = AF;
    if perms.read {
        a |= S2AP_READ;
    }
    if perms.write {
        a |= S2AP_WRITE;
    }
    match ty {
        MemType::Normal => a |= MEMATTR_NORMAL_WB | SH_INNER,
        MemType::Device => a |= MEMATTR_DEVICE_NGNRE,
    }
    if !perms.exec || ty == MemType::Device {
        a |= XN;
    }
    a
}

/// Index of `gpa` in a table at `level` (1..=3).
fn index(gpa: u64, level: u32) -> usize {
    ((gpa >> (12 + 9 * (3 - level))) & 0x1ff) as usize
}

impl Stage2 {
    /// An empty address space of `ipa_bits` (capped at [`MAX_IPA_BITS`]).
    pub fn new(mem: &mut dyn TableMemory, ipa_bits: u32) -> Result<Self, MapError> {
        let root = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
        Ok(Self {
            root,
            ipa_bits: ipa_bits.min(MAX_IPA_BITS),
        })
    }

    /// Physical address of the level-1 table (VTTBR_EL2.BADDR).
    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn ipa_bits(&self) -> u32 {
        self.ipa_bits
    }

    /// Maps `[gpa, gpa + size)` to `[hpa, hpa + size)`.
    pub fn map(
        &mut self,
        mem: &mut dyn TableMemory,
        gpa: u64,
        hpa: u64,
        size: u64,
        perms: Perms,
        ty: MemType,
    ) -> Result<(), MapError> {
        if (gpa | hpa | size) & (PAGE - 1) != 0 {
            return Err(MapError::Unaligned);
        }
        let end = gpa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > (1u64 << self.ipa_bits) {
            return Err(MapError::OutOfRange);
        }
        let attrs = leaf_attrs(perms, ty);
        let mut off = 0;
        while off < size {
            let (g, h) = (gpa + off, hpa + off);
            let block = (g | h) & (BLOCK_2M - 1) == 0 && size - off >= BLOCK_2M;
            if block {
                self.set_leaf(mem, g, 2, h | attrs | VALID)?;
                off += BLOCK_2M;
            } else {
                self.set_leaf(mem, g, 3, h | attrs | VALID | TABLE_OR_PAGE)?;
                off += PAGE;
            }
        }
        Ok(())
    }

    /// Writes a leaf descriptor at `level` (2 = block, 3 = page), creating tables.
    fn set_leaf(
        &mut self,
        mem: &mut dyn TableMemory,
        gpa: u64,
        level: u32,
        desc: u64,
    ) -> Result<(), MapError> {
        let mut table = self.root;
        for l in 1..level {
            let i = index(gpa, l);
            let entry = mem.table(table)[i];
            table = if entry & VALID == 0 {
                let next = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
                mem.table(table)[i] = next | VALID | TABLE_OR_PAGE;
                next
            } else if entry & TABLE_OR_PAGE != 0 {
                entry & ADDR_MASK
            } else {
                return Err(MapError::Overlap { gpa });
            };
        }
        let i = index(gpa, level);
        let slot = &mut mem.table(table)[i];
        if *slot & VALID != 0 {
            return Err(MapError::Overlap { gpa });
        }
        *slot = desc;
        Ok(())
    }

    /// Where the 2 MiB block descriptor mapping `gpa` lives: (physical address of the
    /// descriptor, the descriptor). None if `gpa` is not mapped by a valid block.
    /// Guest RAM filled on first touch parks such descriptors (writes 0 there) and
    /// writes them back when the guest first touches the block.
    pub fn block_slot(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if gpa >= (1u64 << self.ipa_bits) {
            return None;
        }
        let l1 = mem.table(self.root)[index(gpa, 1)];
        if l1 & (VALID | TABLE_OR_PAGE) != VALID | TABLE_OR_PAGE {
            return None;
        }
        let table = l1 & ADDR_MASK;
        let i = index(gpa, 2);
        let desc = mem.table(table)[i];
        (desc & (VALID | TABLE_OR_PAGE) == VALID).then_some((table + 8 * i as u64, desc))
    }

    /// Walks the tables: the host-physical address and leaf descriptor for `gpa`.
    pub fn translate(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if gpa >= (1u64 << self.ipa_bits) {
            return None;
        }
        let mut table = self.root;
        for level in 1..=3 {
            let entry = mem.table(table)[index(gpa, level)];
            if entry & VALID == 0 {
                return None;
            }
            let is_table = entry & TABLE_OR_PAGE != 0 && level < 3;
            if !is_table {
                let span = 1u64 << (12 + 9 * (3 - level));
                return Some((
                    (entry & ADDR_MASK & !(span - 1)) | (gpa & (span - 1)),
                    entry,
                ));
            }
            table = entry & ADDR_MASK;
        }
        None
    }
}

/// Attribute bits of a leaf descriptor, for tests and diagnostics.
pub fn describe(desc: u64) -> (Perms, MemType) {
    let perms = Perms {
        read: desc & S2AP_READ != 0,
        write: desc & S2AP_WRITE != 0,
        exec: desc & XN == 0,
    };
    let ty = if desc & (0b1111 << 2) == MEMATTR_NORMAL_WB {
        MemType::Normal
    } else {
        MemType::Device
    };
    (perms, ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::tables::ENTRIES;
    use alloc::vec::Vec;

    /// Table frames kept in a vector; "physical" addresses start at 0x8000_0000.
    struct FakeMem {
        frames: Vec<[u64; ENTRIES]>,
        limit: usize,
    }
    const BASE: u64 = 0x8000_0000;
    impl TableMemory for FakeMem {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.frames.len() == self.limit {
                return None;
            }
            self.frames.push([0; ENTRIES]);
            Some(BASE + (self.frames.len() as u64 - 1) * PAGE)
        }
        fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
            &mut self.frames[((pa - BASE) / PAGE) as usize]
        }
    }
    fn mem() -> FakeMem {
        FakeMem {
            frames: Vec::new(),
            limit: 64,
        }
    }
    const RWX: Perms = Perms {
        read: true,
        write: true,
        exec: true,
    };
    const RW: Perms = Perms {
        read: true,
        write: true,
        exec: false,
    };

    #[test]
    fn aligned_ram_uses_2m_blocks() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 39).unwrap();
        s2.map(
            &mut m,
            0x4000_0000,
            0x4800_0000,
            16 << 20,
            RWX,
            MemType::Normal,
        )
        .unwrap();
        // root + one level-2 table, no level-3 tables.
        assert_eq!(m.frames.len(), 2);
        let (hpa, desc) = s2.translate(&mut m, 0x40ab_cdef).unwrap();
        assert_eq!(hpa, 0x48ab_cdef);
        assert_eq!(desc & 0b11, 0b01, "block descriptor");
        assert_eq!(describe(desc), (RWX, MemType::Normal));
        assert!(
            s2.translate(&mut m, 0x4100_0000).is_none(),
            "one past the end is unmapped"
        );
        assert!(s2.translate(&mut m, 0x3fff_ffff).is_none());
    }

    #[test]
    fn unaligned_part_falls_back_to_pages() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 39).unwrap();
        // HPA offset by 4 KiB: no block can be used.
        s2.map(
            &mut m,
            0x4000_0000,
            0x4800_1000,
            0x40_0000,
            RW,
            MemType::Normal,
        )
        .unwrap();
        let (hpa, desc) = s2.translate(&mut m, 0x4020_0010).unwrap();
        assert_eq!(hpa, 0x4820_1010);
        assert_eq!(desc & 0b11, 0b11, "page descriptor");
        assert_eq!(describe(desc).0, RW);
    }

    #[test]
    fn device_mappings_are_never_executable() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 39).unwrap();
        s2.map(
            &mut m,
            0x0900_0000,
            0xfeb5_0000,
            0x1000,
            RWX,
            MemType::Device,
        )
        .unwrap();
        let (_, desc) = s2.translate(&mut m, 0x0900_0000).unwrap();
        assert_eq!(describe(desc), (RW, MemType::Device));
    }

    #[test]
    fn overlap_and_range_errors() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 32).unwrap();
        s2.map(
            &mut m,
            0x4000_0000,
            0x4000_0000,
            0x20_0000,
            RW,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(
            s2.map(
                &mut m,
                0x401f_f000,
                0x5000_0000,
                0x1000,
                RW,
                MemType::Normal
            ),
            Err(MapError::Overlap { gpa: 0x401f_f000 })
        );
        assert_eq!(
            s2.map(&mut m, 0x1000, 0x1000, 0x800, RW, MemType::Normal),
            Err(MapError::Unaligned)
        );
        assert_eq!(
            s2.map(&mut m, 0xffff_f000, 0x1000, 0x2000, RW, MemType::Normal),
            Err(MapError::OutOfRange),
            "32-bit IPA space ends at 4 GiB"
        );
    }

    #[test]
    fn out_of_table_memory_is_an_error() {
        let mut m = FakeMem {
            frames: Vec::new(),
            limit: 2,
        };
        let mut s2 = Stage2::new(&mut m, 39).unwrap();
        assert_eq!(
            s2.map(
                &mut m,
                0x4000_0000,
                0x4000_1000,
                0x2000,
                RW,
                MemType::Normal
            ),
            Err(MapError::OutOfMemory)
        );
    }
}
