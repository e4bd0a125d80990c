//! The RISC-V G-stage descriptor format (H extension) and the hgatp value that
//! selects such tables. The walking itself is the generic
//! [`crate::mm::stage2::PageTable`]; this file only encodes PTEs.
//!
//! Sv39x4 and Sv48x4 share their PTEs and differ in depth only, so they are one
//! format whose [`Geometry`] follows the IPA width, as the aarch64 format picks its
//! start level: a VM gets Sv39x4 (three levels, 41 bits) when its layout fits, one
//! level less to walk on every TLB miss, and Sv48x4 (four levels, 50 bits) otherwise,
//! if the hart has it. Both roots are 2048 entries (16 KiB, 16 KiB aligned); below
//! them 512-entry tables. Superpages: 2 MiB and 1 GiB (and 512 GiB in Sv48x4).
//!
//! Every leaf has U set (the G-stage treats all guest accesses as user accesses) and
//! A/D set (no hardware or software A/D updating needed). Memory types come from the
//! platform's PMAs, so [`MemType::Device`] only makes a mapping non-executable; it is
//! recorded in a bit reserved for software (RSW) so that it reads back.

use crate::hal::paging::{Geometry, Leaf, MapError, MemType, PageTableFormat, Perms};
use crate::mm::stage2::PageTable;

const V: u64 = 1 << 0;
const R: u64 = 1 << 1;
const W: u64 = 1 << 2;
const X: u64 = 1 << 3;
const U: u64 = 1 << 4;
const A: u64 = 1 << 6;
const D: u64 = 1 << 7;
/// RSW bit 8: ignored by hardware; marks a [`MemType::Device`] leaf.
const SW_DEVICE: u64 = 1 << 8;
const PPN_SHIFT: u32 = 10;
/// PPN field of a PTE (bits 53:10).
const PPN_MASK: u64 = ((1 << 44) - 1) << PPN_SHIFT;

/// Tables making up a root (2048 entries).
const ROOT_TABLES: usize = 4;

/// Widest guest-physical space of Sv39x4.
const SV39X4_BITS: u32 = 41;
/// Widest guest-physical space a VM can have (Sv48x4).
pub const MAX_IPA_BITS: u32 = 50;

/// hgatp.MODE values.
const HGATP_SV39X4: u64 = 8;
const HGATP_SV48X4: u64 = 9;

/// G-stage PTEs, Sv39x4 or Sv48x4 by the width of the IPA space.
pub struct GStage;

/// One VM's G-stage tables.
pub type Stage2 = PageTable<GStage>;

fn pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << PPN_SHIFT) & PPN_MASK | flags
}

fn pte_addr(pte: u64) -> u64 {
    ((pte & PPN_MASK) >> PPN_SHIFT) << 12
}

fn is_leaf(pte: u64) -> bool {
    pte & (R | W | X) != 0
}

fn leaf_flags(perms: Perms, ty: MemType) -> Result<u64, MapError> {
    // Write-only and no-access leaves do not exist (R=0 W=1 is reserved; R=W=X=0
    // means "table").
    if !perms.read {
        return Err(MapError::BadPerms);
    }
    let mut f = V | R | U | A | D;
    if perms.write {
        f |= W;
    }
    match ty {
        MemType::Normal if perms.exec => f |= X,
        MemType::Normal => {}
        MemType::Device => f |= SW_DEVICE,
    }
    Ok(f)
}

impl PageTableFormat for GStage {
    const MAX_IPA_BITS: u32 = MAX_IPA_BITS;

    fn geometry(ipa_bits: u32) -> Geometry {
        // A hart without Sv48x4 gets the widest Sv39x4 space: whatever lies beyond
        // it fails to map, as beyond the CPU's width on any architecture.
        let ipa_bits = if ipa_bits > SV39X4_BITS && !sv48x4_supported() {
            SV39X4_BITS
        } else {
            ipa_bits
        };
        // The root is always the full 16 KiB: hgatp requires it.
        Geometry {
            start_level: if ipa_bits > SV39X4_BITS { 3 } else { 2 },
            root_tables: ROOT_TABLES,
            ipa_bits,
        }
    }

    fn block_allowed(level: u32) -> bool {
        // A superpage at every level above the leaf, the root's included.
        level > 0
    }

    fn is_valid(pte: u64) -> bool {
        pte & V != 0
    }

    fn is_table(pte: u64, level: u32) -> bool {
        level > 0 && pte & V != 0 && !is_leaf(pte)
    }

    fn table(pa: u64) -> u64 {
        pte(pa, V)
    }

    fn table_addr(pte: u64) -> u64 {
        pte_addr(pte)
    }

    fn leaf(pa: u64, _level: u32, perms: Perms, ty: MemType) -> Result<u64, MapError> {
        Ok(pte(pa, leaf_flags(perms, ty)?))
    }

    fn decode_leaf(pte: u64, _level: u32) -> Option<Leaf> {
        if pte & V == 0 || !is_leaf(pte) {
            return None;
        }
        let ty = if pte & SW_DEVICE != 0 {
            MemType::Device
        } else {
            MemType::Normal
        };
        let perms = Perms {
            read: pte & R != 0,
            write: pte & W != 0,
            exec: pte & X != 0,
        };
        Some(Leaf {
            pa: pte_addr(pte),
            perms,
            ty,
        })
    }
}

/// The hgatp value that selects the tables [`Stage2::new`] built at `root` for an
/// IPA space of `ipa_bits` (their [`PageTable::ipa_bits`]), for VMID `vmid`.
pub fn hgatp(root: u64, vmid: u16, ipa_bits: u32) -> u64 {
    let mode = if ipa_bits > SV39X4_BITS {
        HGATP_SV48X4
    } else {
        HGATP_SV39X4
    };
    (mode << 60) | ((vmid as u64 & 0x3fff) << 44) | (root >> 12)
}

impl PageTable<GStage> {
    /// What a hart needs to run on these tables as VM `vmid`.
    #[cfg(target_os = "none")]
    pub fn regs(&self, vmid: u16) -> super::vcpu::Stage2Regs {
        super::vcpu::Stage2Regs {
            root: self.root(),
            vmid,
            ipa_bits: self.ipa_bits(),
        }
    }
}

/// Whether this hart translates with Sv48x4: hgatp.MODE is WARL, so a mode the hart
/// lacks does not stick. Probed on the hart building VMs while no guest runs on it.
#[cfg(target_os = "none")]
fn sv48x4_supported() -> bool {
    use super::csr::{self, read_csr, write_csr};
    let old = read_csr!(csr::HGATP);
    write_csr!(csr::HGATP, HGATP_SV48X4 << 60);
    let mode = read_csr!(csr::HGATP) >> 60;
    write_csr!(csr::HGATP, old);
    mode == HGATP_SV48X4
}

/// Host tests: the fake memory has every mode.
#[cfg(not(target_os = "none"))]
fn sv48x4_supported() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::paging::{TableMemory, PAGE};
    use crate::mm::stage2::testing::{FakeMem, BASE};

    /// The walker tests over three levels (Sv39x4) and over four (Sv48x4).
    mod sv39x4 {
        use super::super::GStage;
        crate::mm::stage2::testing::format_tests!(GStage, 39);
    }

    mod sv48x4 {
        use super::super::GStage;
        crate::mm::stage2::testing::format_tests!(GStage, 48);
    }

    #[test]
    fn root_is_16k_aligned_and_hgatp_encodes_it() {
        let mut m = FakeMem::new(64);
        m.alloc_table().unwrap();
        let s2 = Stage2::new(&mut m, 41, true).unwrap();
        assert_eq!(s2.root(), BASE + 4 * PAGE, "realigned past the used frame");
        let h = hgatp(s2.root(), 3, 41);
        assert_eq!(h >> 60, 8, "Sv39x4");
        assert_eq!((h >> 44) & 0x3fff, 3);
        assert_eq!(h & ((1 << 44) - 1), s2.root() >> 12);
        assert_eq!(hgatp(s2.root(), 3, 42) >> 60, 9, "Sv48x4");

        struct OnlyPages<'a>(&'a mut FakeMem);
        impl TableMemory for OnlyPages<'_> {
            fn alloc_table(&mut self) -> Option<u64> {
                self.0.alloc_table()
            }
            fn table(&mut self, pa: u64) -> &mut [u64; crate::hal::paging::ENTRIES] {
                self.0.table(pa)
            }
            fn free_tables(&mut self, pa: u64, count: usize) {
                self.0.free_tables(pa, count)
            }
        }
        assert_eq!(
            Stage2::new(&mut OnlyPages(&mut m), 41, true).err(),
            Some(MapError::OutOfMemory),
            "a source without multi-page allocations cannot hold a root"
        );
    }

    #[test]
    fn pte_bits() {
        let mut m = FakeMem::new(64);
        let mut s2 = Stage2::new(&mut m, 41, true).unwrap();
        s2.map(
            &mut m,
            0x8000_0000,
            0x9000_0000,
            16 << 20,
            Perms::RWX,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(m.live(), 4 + 1, "one level-1 table, no level-0 tables");
        let t = s2.translate(&mut m, 0x80ab_cdef).unwrap();
        assert_eq!(t.hpa, 0x90ab_cdef);
        assert_eq!(t.desc & 0x3ff, V | R | W | X | U | A | D);
        s2.map(
            &mut m,
            0x1000_0000,
            0x1000_0000,
            PAGE,
            Perms::RWX,
            MemType::Device,
        )
        .unwrap();
        let t = s2.translate(&mut m, 0x1000_0000).unwrap();
        assert_eq!(t.desc & 0x3ff, V | R | W | U | A | D | SW_DEVICE, "no X");
        assert_eq!((t.perms, t.ty), (Perms::RW, MemType::Device));
        let wo = Perms {
            read: false,
            write: true,
            exec: false,
        };
        assert_eq!(
            s2.map(&mut m, 0x9000_0000, 0x1000, PAGE, wo, MemType::Normal),
            Err(MapError::BadPerms)
        );
    }

    #[test]
    fn high_guest_addresses_use_the_upper_root_pages() {
        let mut m = FakeMem::new(64);
        let mut s2 = Stage2::new(&mut m, 41, true).unwrap();
        // Root index 768: the second page of the root.
        let gpa = 0xc0_0000_0000u64;
        s2.map(&mut m, gpa, 0x8800_0000, PAGE, Perms::RW, MemType::Normal)
            .unwrap();
        assert_eq!(
            s2.translate(&mut m, gpa + 8).map(|t| t.hpa),
            Some(0x8800_0008)
        );
        let root_page_1 = m.table(s2.root() + PAGE)[768 - 512];
        assert!(GStage::is_table(root_page_1, 2));
        let top = (1u64 << 41) - PAGE;
        s2.map(&mut m, top, 0x8800_1000, PAGE, Perms::RW, MemType::Normal)
            .unwrap();
        assert_ne!(m.table(s2.root() + 3 * PAGE)[511], 0, "root index 2047");
        assert_eq!(s2.translate(&mut m, top).map(|t| t.hpa), Some(0x8800_1000));
        assert_eq!(
            s2.map(
                &mut m,
                top,
                0x8800_1000,
                2 * PAGE,
                Perms::RW,
                MemType::Normal
            ),
            Err(MapError::OutOfRange)
        );
    }

    #[test]
    fn sv48x4_reaches_50_bits_with_four_levels() {
        let mut m = FakeMem::new(64);
        let mut s2 = Stage2::new(&mut m, 50, true).unwrap();
        assert_eq!((s2.start_level(), s2.ipa_bits()), (3, 50));
        let top = (1u64 << 50) - PAGE;
        s2.map(&mut m, top, 0x8800_0000, PAGE, Perms::RW, MemType::Normal)
            .unwrap();
        assert_eq!(m.live(), 4 + 3, "one table per level below the root");
        assert_ne!(m.table(s2.root() + 3 * PAGE)[511], 0, "root index 2047");
        assert_eq!(
            s2.translate(&mut m, top + 8).map(|t| t.hpa),
            Some(0x8800_0008)
        );
        let mut huge = Stage2::new(&mut m, 50, true).unwrap().with_huge_blocks();
        let tera = 1u64 << 39;
        huge.map(&mut m, tera, tera, tera, Perms::RW, MemType::Normal)
            .unwrap();
        assert_eq!(
            huge.translate(&mut m, 2 * tera - 1).map(|t| t.level),
            Some(3)
        );
        huge.destroy(&mut m);
        s2.destroy(&mut m);
        assert_eq!(m.live(), 0);
    }

    #[test]
    fn the_narrowest_format_that_fits_is_chosen() {
        let mut m = FakeMem::new(64);
        let narrow = Stage2::new(&mut m, 41, true).unwrap();
        assert_eq!(narrow.start_level(), 2, "Sv39x4: three levels");
        assert_eq!(hgatp(narrow.root(), 1, narrow.ipa_bits()) >> 60, 8);
        let mut wide = Stage2::new(&mut m, 42, true).unwrap();
        assert_eq!((wide.start_level(), wide.ipa_bits()), (3, 42), "Sv48x4");
        assert_eq!(hgatp(wide.root(), 1, wide.ipa_bits()) >> 60, 9);
        let gpa = 1u64 << 41;
        wide.map(
            &mut m,
            gpa,
            0x8000_0000,
            2 << 20,
            Perms::RW,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(
            wide.translate(&mut m, gpa + 4).map(|t| t.hpa),
            Some(0x8000_0004)
        );
        assert!(wide.block_slot(&mut m, gpa).is_some());
        wide.unmap(&mut m, gpa, 2 << 20).unwrap();
        wide.destroy(&mut m);
        narrow.destroy(&mut m);
        assert_eq!(m.live(), 0);
    }
}
