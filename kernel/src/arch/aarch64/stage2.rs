//! Stage-2 translation tables (VMSAv8-64, 4 KiB granule) for one VM: guest-physical
//! (IPA) to host-physical. 2 MiB blocks where GPA, HPA and size allow (unless the
//! tables are built for 4 KiB pages only, see [`Stage2::new`]), 4 KiB pages elsewhere.
//!
//! An IPA space of at most 34 bits (16 GiB, every QEMU virt and Rockchip layout)
//! starts the walk at level 2 (VTCR_EL2.SL0 = 0) with up to 16 concatenated level-2
//! tables as the root, one level less to walk on every TLB miss. Larger spaces (up to
//! 39 bits) start at level 1 (SL0 = 1).
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
    /// Level of the root table: 2 (concatenated) or 1.
    start: u32,
    /// Map aligned 2 MiB ranges with block descriptors.
    blocks: bool,
}

/// Widest IPA space whose walk can start at level 2 (16 concatenated tables).
const MAX_LEVEL2_IPA_BITS: u32 = 34;

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
    ((gpa >> shift(level)) & 0x1ff) as usize
}

/// Address bits below what one entry at `level` maps.
fn shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

impl Stage2 {
    /// An empty address space of `ipa_bits` (capped at [`MAX_IPA_BITS`]; at least
    /// 30 bits when the walk starts at level 2). `blocks`: map aligned 2 MiB ranges
    /// with block descriptors; false maps everything with 4 KiB pages.
    pub fn new(mem: &mut dyn TableMemory, ipa_bits: u32, blocks: bool) -> Result<Self, MapError> {
        let ipa_bits = ipa_bits.min(MAX_IPA_BITS);
        let (start, ipa_bits, tables) = if ipa_bits <= MAX_LEVEL2_IPA_BITS {
            let bits = ipa_bits.max(shift(1));
            (2, bits, 1usize << (bits - shift(1)))
        } else {
            (1, ipa_bits, 1)
        };
        let root = mem.alloc_tables(tables).ok_or(MapError::OutOfMemory)?;
        Ok(Self {
            root,
            ipa_bits,
            start,
            blocks,
        })
    }

    /// Index of `gpa` in a table at `level`; the root may be concatenated tables.
    fn slot_index(&self, level: u32, gpa: u64) -> u64 {
        if level == self.start {
            (gpa >> shift(level)) & ((1u64 << (self.ipa_bits - shift(level))) - 1)
        } else {
            index(gpa, level) as u64
        }
    }

    /// The entry for `gpa` in `table` at `level`.
    fn entry<'m>(
        &self,
        mem: &'m mut dyn TableMemory,
        table: u64,
        level: u32,
        gpa: u64,
    ) -> &'m mut u64 {
        let i = self.slot_index(level, gpa);
        &mut mem.table(table + (i / 512) * PAGE)[(i % 512) as usize]
    }

    /// Level of the root table (VTCR_EL2.SL0 = 2 - level).
    pub fn start_level(&self) -> u32 {
        self.start
    }

    /// What a CPU needs to run on these tables as VM `vmid`.
    #[cfg(target_os = "none")]
    pub fn regs(&self, vmid: u16) -> super::vcpu::Stage2Regs {
        super::vcpu::Stage2Regs {
            root: self.root,
            vmid,
            ipa_bits: self.ipa_bits,
            start_level: self.start,
        }
    }

    /// Physical address of the root table (VTTBR_EL2.BADDR).
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
            let block = self.blocks && (g | h) & (BLOCK_2M - 1) == 0 && size - off >= BLOCK_2M;
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
        for l in self.start..level {
            let entry = *self.entry(mem, table, l, gpa);
            table = if entry & VALID == 0 {
                let next = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
                *self.entry(mem, table, l, gpa) = next | VALID | TABLE_OR_PAGE;
                next
            } else if entry & TABLE_OR_PAGE != 0 {
                entry & ADDR_MASK
            } else {
                return Err(MapError::Overlap { gpa });
            };
        }
        let slot = self.entry(mem, table, level, gpa);
        if *slot & VALID != 0 {
            return Err(MapError::Overlap { gpa });
        }
        *slot = desc;
        Ok(())
    }

    /// The level-2 descriptor covering the 2 MiB range of `gpa`: (its physical
    /// address, its value). A block, or a table of 4 KiB pages, which the caller
    /// knows to map one contiguous 2 MiB range of its own (a range `map` was given
    /// whole, aligned in both address spaces). None if there is no valid one.
    /// Guest RAM filled on first touch parks such descriptors (writes 0 there) and
    /// writes them back when the guest first touches the range.
    pub fn block_slot(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if gpa >= (1u64 << self.ipa_bits) {
            return None;
        }
        let mut table = self.root;
        if self.start == 1 {
            let l1 = *self.entry(mem, table, 1, gpa);
            if l1 & (VALID | TABLE_OR_PAGE) != VALID | TABLE_OR_PAGE {
                return None;
            }
            table = l1 & ADDR_MASK;
        }
        let desc = *self.entry(mem, table, 2, gpa);
        let slot = table + 8 * self.slot_index(2, gpa);
        (desc & VALID != 0).then_some((slot, desc))
    }

    /// Walks the tables: the host-physical address and leaf descriptor for `gpa`.
    pub fn translate(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if gpa >= (1u64 << self.ipa_bits) {
            return None;
        }
        let mut table = self.root;
        for level in self.start..=3 {
            let entry = *self.entry(mem, table, level, gpa);
            if entry & VALID == 0 {
                return None;
            }
            let is_table = entry & TABLE_OR_PAGE != 0 && level < 3;
            if !is_table {
                let span = 1u64 << shift(level);
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
        fn alloc_tables(&mut self, count: usize) -> Option<u64> {
            let first = self.alloc_table()?;
            for _ in 1..count {
                self.alloc_table()?;
            }
            Some(first)
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
        let mut s2 = Stage2::new(&mut m, 39, true).unwrap();
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
    fn small_ipa_spaces_start_at_level_2_with_concatenated_roots() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 34, true).unwrap();
        assert_eq!(s2.start_level(), 2);
        assert_eq!(m.frames.len(), 16, "16 concatenated level-2 tables");
        // RAM in the last root page (GPA 15.5 GiB), a device low down.
        s2.map(
            &mut m,
            0x3_e000_0000,
            0x4000_0000,
            4 << 20,
            RWX,
            MemType::Normal,
        )
        .unwrap();
        s2.map(
            &mut m,
            0x0900_0000,
            0xfeb5_0000,
            0x1000,
            RW,
            MemType::Device,
        )
        .unwrap();
        assert_eq!(m.frames.len(), 17, "one level-3 table for the device page");
        assert_eq!(
            s2.translate(&mut m, 0x3_e021_2345).map(|t| t.0),
            Some(0x4021_2345)
        );
        assert_eq!(
            s2.translate(&mut m, 0x0900_0010).map(|t| t.0),
            Some(0xfeb5_0010)
        );
        let (slot, desc) = s2.block_slot(&mut m, 0x3_e020_0000).unwrap();
        // Root page 15, entry 0x101 (GPA bits 29..21 of 0x3_e020_0000).
        assert_eq!(slot, BASE + 15 * PAGE + 8 * 0x101);
        assert_eq!(desc & ADDR_MASK, 0x4020_0000);
        assert_eq!(
            s2.map(&mut m, 0x4_0000_0000, 0, 0x1000, RW, MemType::Normal),
            Err(MapError::OutOfRange),
            "34-bit IPA space ends at 16 GiB"
        );
        let s = Stage2::new(&mut mem(), 35, true).unwrap();
        assert_eq!(s.start_level(), 1, "35 bits need a level-1 root");
        let s = Stage2::new(&mut mem(), 20, true).unwrap();
        assert_eq!(
            (s.start_level(), s.ipa_bits()),
            (2, 30),
            "at least one full table"
        );
    }

    #[test]
    fn pages_only_tables_park_by_their_level_2_table_descriptor() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 32, false).unwrap();
        s2.map(
            &mut m,
            0x4000_0000,
            0x4800_0000,
            4 << 20,
            RWX,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(m.frames.len(), 4 + 2, "root + two level-3 tables");
        let (_, desc) = s2.translate(&mut m, 0x4020_0000).unwrap();
        assert_eq!(desc & 0b11, 0b11, "a page, no block");
        let (slot, table) = s2.block_slot(&mut m, 0x4020_0000).unwrap();
        assert_eq!(
            table & 0b11,
            0b11,
            "the level-2 entry is a table descriptor"
        );
        // Parking it unmaps the whole 2 MiB; writing it back maps it again.
        let (page, i) = (slot & !(PAGE - 1), ((slot % PAGE) / 8) as usize);
        m.table(page)[i] = 0;
        assert!(s2.translate(&mut m, 0x403f_f000).is_none());
        assert!(
            s2.translate(&mut m, 0x401f_f000).is_some(),
            "the other 2 MiB stays"
        );
        m.table(page)[i] = table;
        assert_eq!(
            s2.translate(&mut m, 0x403f_f008).map(|t| t.0),
            Some(0x483f_f008)
        );
    }

    #[test]
    fn unaligned_part_falls_back_to_pages() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 39, true).unwrap();
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
        let mut s2 = Stage2::new(&mut m, 39, true).unwrap();
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
        let mut s2 = Stage2::new(&mut m, 32, true).unwrap();
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
        let mut s2 = Stage2::new(&mut m, 39, true).unwrap();
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
