//! G-stage translation tables (RISC-V H extension, Sv39x4) for one VM: guest-physical
//! to host-physical. The root table covers 41 bits of guest-physical space with 2048
//! entries (16 KiB, 16 KiB aligned); below it two levels of 512-entry tables. 2 MiB
//! superpages where GPA, HPA and size allow, 4 KiB pages elsewhere.
//!
//! Every leaf has U set (the G-stage treats all guest accesses as user accesses) and
//! A/D set (no hardware or software A/D updating needed). Memory types come from the
//! platform's PMAs, so [`MemType::Device`] only makes a mapping non-executable.

pub use crate::mm::tables::TableMemory;
use crate::mm::tables::ENTRIES;

pub const PAGE: u64 = 4096;
pub const MEGAPAGE: u64 = 2 << 20;

const V: u64 = 1 << 0;
const R: u64 = 1 << 1;
const W: u64 = 1 << 2;
const X: u64 = 1 << 3;
const U: u64 = 1 << 4;
const A: u64 = 1 << 6;
const D: u64 = 1 << 7;
const PPN_SHIFT: u32 = 10;
/// PPN field of a PTE (bits 53:10).
const PPN_MASK: u64 = ((1 << 44) - 1) << PPN_SHIFT;

/// Guest-physical address width of Sv39x4.
pub const MAX_IPA_BITS: u32 = 41;
/// Tables making up the root (2048 entries).
pub const ROOT_TABLES: usize = 4;
/// hgatp.MODE value of Sv39x4.
pub const HGATP_MODE_SV39X4: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// RAM.
    Normal,
    /// Passthrough MMIO: never executable.
    Device,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    Unaligned,
    /// Beyond the guest-physical space of this table.
    OutOfRange,
    /// Part of the range is mapped already.
    Overlap {
        gpa: u64,
    },
    OutOfMemory,
    /// No read permission (write-only and no-access leaves do not exist in RISC-V).
    BadPerms,
}

pub struct Stage2 {
    root: u64,
    ipa_bits: u32,
    /// Map aligned 2 MiB ranges with megapages.
    blocks: bool,
}

fn pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << PPN_SHIFT) & PPN_MASK | flags
}

fn pte_addr(pte: u64) -> u64 {
    ((pte & PPN_MASK) >> PPN_SHIFT) << 12
}

fn leaf_flags(perms: Perms, ty: MemType) -> Result<u64, MapError> {
    if !perms.read {
        return Err(MapError::BadPerms);
    }
    let mut f = V | R | U | A | D;
    if perms.write {
        f |= W;
    }
    if perms.exec && ty == MemType::Normal {
        f |= X;
    }
    Ok(f)
}

fn is_leaf(pte: u64) -> bool {
    pte & (R | W | X) != 0
}

/// Index of `gpa` in its table at `level` (2 = root, 11 bits; 1 and 0, 9 bits).
fn index(gpa: u64, level: u32) -> usize {
    let shift = 12 + 9 * level;
    let bits = if level == 2 { 0x7ff } else { 0x1ff };
    ((gpa >> shift) & bits) as usize
}

impl Stage2 {
    /// An empty address space of `ipa_bits` (capped at [`MAX_IPA_BITS`]).
    /// `blocks`: map aligned 2 MiB ranges with megapages; false maps 4 KiB pages only.
    pub fn new(mem: &mut dyn TableMemory, ipa_bits: u32, blocks: bool) -> Result<Self, MapError> {
        let root = mem.alloc_tables(ROOT_TABLES).ok_or(MapError::OutOfMemory)?;
        Ok(Self {
            root,
            ipa_bits: ipa_bits.min(MAX_IPA_BITS),
            blocks,
        })
    }

    /// Physical address of the 16 KiB root table (hgatp.PPN << 12).
    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn ipa_bits(&self) -> u32 {
        self.ipa_bits
    }

    /// What a hart needs to run on these tables as VM `vmid`.
    #[cfg(target_os = "none")]
    pub fn regs(&self, vmid: u16) -> super::vcpu::Stage2Regs {
        super::vcpu::Stage2Regs {
            root: self.root,
            vmid,
            ipa_bits: self.ipa_bits,
        }
    }

    /// The entry for `gpa` in the table at `table` (`level` 2 is the 4-page root).
    fn entry(mem: &mut dyn TableMemory, table: u64, level: u32, gpa: u64) -> &mut u64 {
        let i = index(gpa, level);
        let page = table + (i / ENTRIES) as u64 * PAGE;
        &mut mem.table(page)[i % ENTRIES]
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
        let flags = leaf_flags(perms, ty)?;
        let mut off = 0;
        while off < size {
            let (g, h) = (gpa + off, hpa + off);
            let mega = self.blocks && (g | h) & (MEGAPAGE - 1) == 0 && size - off >= MEGAPAGE;
            let (level, step) = if mega { (1, MEGAPAGE) } else { (0, PAGE) };
            self.set_leaf(mem, g, level, pte(h, flags))?;
            off += step;
        }
        Ok(())
    }

    /// Writes a leaf PTE at `level` (1 = 2 MiB, 0 = 4 KiB), creating tables.
    fn set_leaf(
        &mut self,
        mem: &mut dyn TableMemory,
        gpa: u64,
        level: u32,
        leaf: u64,
    ) -> Result<(), MapError> {
        let mut table = self.root;
        for l in (level + 1..=2).rev() {
            let entry = *Self::entry(mem, table, l, gpa);
            table = if entry & V == 0 {
                let next = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
                *Self::entry(mem, table, l, gpa) = pte(next, V);
                next
            } else if is_leaf(entry) {
                return Err(MapError::Overlap { gpa });
            } else {
                pte_addr(entry)
            };
        }
        let slot = Self::entry(mem, table, level, gpa);
        if *slot & V != 0 {
            return Err(MapError::Overlap { gpa });
        }
        *slot = leaf;
        Ok(())
    }

    /// The level-1 PTE covering the 2 MiB range of `gpa`: (its physical address, its
    /// value). A megapage, or a table of 4 KiB pages, which the caller knows to map
    /// one contiguous 2 MiB range of its own. None if there is no valid one. Guest
    /// RAM filled on first touch parks such PTEs (writes 0 there) and writes them
    /// back when the guest first touches the range.
    pub fn block_slot(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if gpa >= (1u64 << self.ipa_bits) {
            return None;
        }
        let root = *Self::entry(mem, self.root, 2, gpa);
        if root & V == 0 || is_leaf(root) {
            return None;
        }
        let table = pte_addr(root);
        let i = index(gpa, 1);
        let leaf = *Self::entry(mem, table, 1, gpa);
        (leaf & V != 0).then_some((table + 8 * i as u64, leaf))
    }

    /// Walks the tables: the host-physical address and leaf PTE for `gpa`.
    pub fn translate(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if gpa >= (1u64 << self.ipa_bits) {
            return None;
        }
        let mut table = self.root;
        for level in (0..=2).rev() {
            let entry = *Self::entry(mem, table, level, gpa);
            if entry & V == 0 {
                return None;
            }
            if is_leaf(entry) {
                let span = 1u64 << (12 + 9 * level);
                return Some(((pte_addr(entry) & !(span - 1)) | (gpa & (span - 1)), entry));
            }
            table = pte_addr(entry);
        }
        None
    }
}

/// The permissions and type of a leaf PTE, for tests and diagnostics.
pub fn describe(pte: u64) -> Perms {
    Perms {
        read: pte & R != 0,
        write: pte & W != 0,
        exec: pte & X != 0,
    }
}

/// The hgatp value that selects these tables for VMID `vmid`.
pub fn hgatp(root: u64, vmid: u16) -> u64 {
    (HGATP_MODE_SV39X4 << 60) | ((vmid as u64 & 0x3fff) << 44) | (root >> 12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Frames kept in a vector; "physical" addresses start at 0x8000_0000. The
    /// first frame is left unused so that a root must be realigned to 16 KiB.
    struct FakeMem {
        frames: Vec<[u64; ENTRIES]>,
        limit: usize,
    }
    const BASE: u64 = 0x8000_0000;
    impl TableMemory for FakeMem {
        fn alloc_table(&mut self) -> Option<u64> {
            self.alloc_tables_aligned(1)
        }
        fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
            &mut self.frames[((pa - BASE) / PAGE) as usize]
        }
        fn alloc_tables(&mut self, count: usize) -> Option<u64> {
            self.alloc_tables_aligned(count)
        }
    }
    impl FakeMem {
        fn alloc_tables_aligned(&mut self, count: usize) -> Option<u64> {
            while !self.frames.len().is_multiple_of(count) {
                self.frames.push([0; ENTRIES]);
            }
            if self.frames.len() + count > self.limit {
                return None;
            }
            let pa = BASE + self.frames.len() as u64 * PAGE;
            for _ in 0..count {
                self.frames.push([0; ENTRIES]);
            }
            Some(pa)
        }
        fn used(&self) -> usize {
            self.frames.len()
        }
    }
    fn mem() -> FakeMem {
        FakeMem {
            frames: alloc::vec![[0; ENTRIES]],
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
    fn root_is_16k_aligned_and_hgatp_encodes_it() {
        let mut m = mem();
        let s2 = Stage2::new(&mut m, 41, true).unwrap();
        assert_eq!(s2.root() % (4 * PAGE), 0);
        assert_eq!(s2.root(), BASE + 4 * PAGE);
        let h = hgatp(s2.root(), 3);
        assert_eq!(h >> 60, 8, "Sv39x4");
        assert_eq!((h >> 44) & 0x3fff, 3);
        assert_eq!(h & ((1 << 44) - 1), s2.root() >> 12);
        let mut plain = FakeMem {
            frames: Vec::new(),
            limit: 8,
        };
        struct OnlyPages<'a>(&'a mut FakeMem);
        impl TableMemory for OnlyPages<'_> {
            fn alloc_table(&mut self) -> Option<u64> {
                self.0.alloc_table()
            }
            fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
                self.0.table(pa)
            }
        }
        assert_eq!(
            Stage2::new(&mut OnlyPages(&mut plain), 41, true).err(),
            Some(MapError::OutOfMemory),
            "a source without multi-page allocations cannot hold a root"
        );
    }

    #[test]
    fn aligned_ram_uses_megapages() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 41, true).unwrap();
        let before = m.used();
        s2.map(
            &mut m,
            0x8000_0000,
            0x9000_0000,
            16 << 20,
            RWX,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(m.used() - before, 1, "one level-1 table, no level-0 tables");
        let (hpa, pte) = s2.translate(&mut m, 0x80ab_cdef).unwrap();
        assert_eq!(hpa, 0x90ab_cdef);
        assert_eq!(pte & 0xff, V | R | W | X | U | A | D);
        assert_eq!(describe(pte), RWX);
        assert!(s2.translate(&mut m, 0x8100_0000).is_none());
        assert!(s2.translate(&mut m, 0x7fff_ffff).is_none());
    }

    #[test]
    fn high_guest_addresses_use_the_upper_root_pages() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 41, true).unwrap();
        // Root index 768: the second page of the root.
        let gpa = 0xc0_0000_0000u64;
        s2.map(&mut m, gpa, 0x8800_0000, PAGE, RW, MemType::Normal)
            .unwrap();
        assert_eq!(index(gpa, 2) / ENTRIES, 1);
        assert_eq!(
            s2.translate(&mut m, gpa + 8).map(|t| t.0),
            Some(0x8800_0008)
        );
        let top = (1u64 << 41) - PAGE;
        s2.map(&mut m, top, 0x8800_1000, PAGE, RW, MemType::Normal)
            .unwrap();
        assert_eq!(index(top, 2), 2047);
        assert_eq!(s2.translate(&mut m, top).map(|t| t.0), Some(0x8800_1000));
        assert_eq!(
            s2.map(&mut m, top, 0x8800_1000, 2 * PAGE, RW, MemType::Normal),
            Err(MapError::OutOfRange)
        );
    }

    #[test]
    fn unaligned_part_falls_back_to_pages() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 41, true).unwrap();
        s2.map(
            &mut m,
            0x8000_0000,
            0x9000_1000,
            0x40_0000,
            RW,
            MemType::Normal,
        )
        .unwrap();
        let (hpa, pte) = s2.translate(&mut m, 0x8020_0010).unwrap();
        assert_eq!(hpa, 0x9020_1010);
        assert_eq!(describe(pte), RW);
    }

    #[test]
    fn device_mappings_are_never_executable() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 41, true).unwrap();
        s2.map(&mut m, 0x1000_0000, 0x1000_0000, PAGE, RWX, MemType::Device)
            .unwrap();
        let (_, pte) = s2.translate(&mut m, 0x1000_0000).unwrap();
        assert_eq!(describe(pte), RW);
    }

    #[test]
    fn errors() {
        let mut m = mem();
        let mut s2 = Stage2::new(&mut m, 32, true).unwrap();
        s2.map(
            &mut m,
            0x8000_0000,
            0x8000_0000,
            0x20_0000,
            RW,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(
            s2.map(&mut m, 0x801f_f000, 0x5000_0000, PAGE, RW, MemType::Normal),
            Err(MapError::Overlap { gpa: 0x801f_f000 })
        );
        assert_eq!(
            s2.map(&mut m, 0x1000, 0x1000, 0x800, RW, MemType::Normal),
            Err(MapError::Unaligned)
        );
        assert_eq!(
            s2.map(&mut m, 0xffff_f000, 0x1000, 0x2000, RW, MemType::Normal),
            Err(MapError::OutOfRange)
        );
        let wo = Perms {
            read: false,
            write: true,
            exec: false,
        };
        assert_eq!(
            s2.map(&mut m, 0x9000_0000, 0x1000, PAGE, wo, MemType::Normal),
            Err(MapError::BadPerms)
        );
        let mut small = FakeMem {
            frames: Vec::new(),
            limit: 5,
        };
        let mut s2 = Stage2::new(&mut small, 41, true).unwrap();
        assert_eq!(
            s2.map(
                &mut small,
                0x8000_0000,
                0x8000_1000,
                0x2000,
                RW,
                MemType::Normal
            ),
            Err(MapError::OutOfMemory)
        );
    }
}
