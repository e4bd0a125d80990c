//! The aarch64 stage-2 descriptor format (VMSAv8-64, 4 KiB granule) and what the CPU
//! needs to walk such tables (VTTBR_EL2 / VTCR_EL2 inputs). The walking itself is
//! the generic [`crate::mm::stage2::PageTable`]; this file only encodes descriptors.
//!
//! An IPA space of at most 34 bits (16 GiB, every QEMU virt and Rockchip layout)
//! starts the walk at ARM level 2 (VTCR_EL2.SL0 = 0) with up to 16 concatenated
//! level-2 tables as the root, one level less to walk on every TLB miss. Larger
//! spaces (up to 39 bits) start at ARM level 1 (SL0 = 1). The walker counts levels
//! from the leaf, so ARM level `n` is walker level `3 - n`.

use crate::hal::paging::{Geometry, Leaf, MapError, MemType, PageTableFormat, Perms};
use crate::mm::stage2::PageTable;

const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const MEMATTR_MASK: u64 = 0b1111 << 2;
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;

/// Largest IPA width a level-1 start supports with 4 KiB pages.
pub const MAX_IPA_BITS: u32 = 39;
/// Widest IPA space whose walk can start at ARM level 2 (16 concatenated tables).
const MAX_LEVEL2_IPA_BITS: u32 = 34;

/// VMSAv8-64 stage-2 descriptors, 4 KiB granule.
pub struct Vmsa4k;

/// One VM's stage-2 tables.
pub type Stage2 = PageTable<Vmsa4k>;

impl PageTableFormat for Vmsa4k {
    const MAX_IPA_BITS: u32 = MAX_IPA_BITS;

    fn geometry(ipa_bits: u32) -> Geometry {
        // An ARM level-2 root covers at least one full table (30 bits).
        let top = Self::shift(2);
        if ipa_bits <= MAX_LEVEL2_IPA_BITS {
            let bits = ipa_bits.max(top);
            Geometry {
                start_level: 1,
                root_tables: 1 << (bits - top),
                ipa_bits: bits,
            }
        } else {
            Geometry {
                start_level: 2,
                root_tables: 1,
                ipa_bits,
            }
        }
    }

    fn block_allowed(level: u32) -> bool {
        // ARM level 2 (2 MiB) and level 1 (1 GiB) blocks.
        level == 1 || level == 2
    }

    fn is_valid(desc: u64) -> bool {
        desc & VALID != 0
    }

    fn is_table(desc: u64, level: u32) -> bool {
        // At the last level the same bit means "page".
        level > 0 && desc & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE
    }

    fn table(pa: u64) -> u64 {
        (pa & ADDR_MASK) | VALID | TABLE_OR_PAGE
    }

    fn table_addr(desc: u64) -> u64 {
        desc & ADDR_MASK
    }

    fn leaf(pa: u64, level: u32, perms: Perms, ty: MemType) -> Result<u64, MapError> {
        let kind = if level == 0 { TABLE_OR_PAGE } else { 0 };
        Ok((pa & ADDR_MASK) | leaf_attrs(perms, ty) | VALID | kind)
    }

    fn decode_leaf(desc: u64, level: u32) -> Option<Leaf> {
        if !Self::is_valid(desc) || Self::is_table(desc, level) {
            return None;
        }
        let ty = if desc & MEMATTR_MASK == MEMATTR_NORMAL_WB {
            MemType::Normal
        } else {
            MemType::Device
        };
        let perms = Perms {
            read: desc & S2AP_READ != 0,
            write: desc & S2AP_WRITE != 0,
            exec: desc & XN == 0,
        };
        Some(Leaf {
            pa: desc & ADDR_MASK,
            perms,
            ty,
        })
    }
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

/// The ARM level (1 or 2) of a root at walker level `start_level`: what
/// VTCR_EL2.SL0 is derived from (SL0 = 2 - ARM level).
pub fn arm_start_level(start_level: u32) -> u32 {
    3 - start_level
}

impl PageTable<Vmsa4k> {
    /// What a CPU needs to run on these tables as VM `vmid`.
    #[cfg(target_os = "none")]
    pub fn regs(&self, vmid: u16) -> super::vcpu::Stage2Regs {
        super::vcpu::Stage2Regs {
            root: self.root(),
            vmid,
            ipa_bits: self.ipa_bits(),
            start_level: arm_start_level(self.start_level()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::paging::PAGE;
    use crate::mm::stage2::testing::{format_tests, FakeMem, BASE};

    format_tests!(Vmsa4k);

    #[test]
    fn descriptor_bits() {
        let mut m = FakeMem::new(64);
        let mut s2 = Stage2::new(&mut m, 39, true).unwrap();
        assert_eq!(arm_start_level(s2.start_level()), 1);
        s2.map(
            &mut m,
            0x4000_0000,
            0x4800_0000,
            16 << 20,
            Perms::RWX,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(
            m.live(),
            2,
            "root + one ARM level-2 table, no level-3 tables"
        );
        let t = s2.translate(&mut m, 0x40ab_cdef).unwrap();
        assert_eq!(t.hpa, 0x48ab_cdef);
        assert_eq!(t.desc & 0b11, 0b01, "block descriptor");
        assert_eq!(
            t.desc & (AF | SH_INNER | MEMATTR_MASK | XN),
            AF | SH_INNER | MEMATTR_NORMAL_WB
        );
        s2.map(
            &mut m,
            0x0900_0000,
            0xfeb5_0000,
            PAGE,
            Perms::RWX,
            MemType::Device,
        )
        .unwrap();
        let t = s2.translate(&mut m, 0x0900_0000).unwrap();
        assert_eq!(t.desc & 0b11, 0b11, "page descriptor");
        assert_eq!(t.desc & (MEMATTR_MASK | XN), MEMATTR_DEVICE_NGNRE | XN);
        assert_eq!((t.perms, t.ty), (Perms::RW, MemType::Device));
        s2.destroy(&mut m);
        assert_eq!(m.live(), 0);
    }

    #[test]
    fn small_ipa_spaces_start_at_level_2_with_concatenated_roots() {
        let mut m = FakeMem::new(64);
        let mut s2 = Stage2::new(&mut m, 34, true).unwrap();
        assert_eq!(arm_start_level(s2.start_level()), 2);
        assert_eq!(m.live(), 16, "16 concatenated level-2 tables");
        // RAM in the last root page (GPA 15.5 GiB), a device low down.
        s2.map(
            &mut m,
            0x3_e000_0000,
            0x4000_0000,
            4 << 20,
            Perms::RWX,
            MemType::Normal,
        )
        .unwrap();
        s2.map(
            &mut m,
            0x0900_0000,
            0xfeb5_0000,
            0x1000,
            Perms::RW,
            MemType::Device,
        )
        .unwrap();
        assert_eq!(m.live(), 17, "one level-3 table for the device page");
        let hpa = |s2: &Stage2, m: &mut FakeMem, gpa| s2.translate(m, gpa).map(|t| t.hpa);
        assert_eq!(hpa(&s2, &mut m, 0x3_e021_2345), Some(0x4021_2345));
        assert_eq!(hpa(&s2, &mut m, 0x0900_0010), Some(0xfeb5_0010));
        let (slot, desc) = s2.block_slot(&mut m, 0x3_e020_0000).unwrap();
        // Root page 15, entry 0x101 (GPA bits 29..21 of 0x3_e020_0000).
        assert_eq!(slot, BASE + 15 * PAGE + 8 * 0x101);
        assert_eq!(desc & ADDR_MASK, 0x4020_0000);
        assert_eq!(
            s2.map(&mut m, 0x4_0000_0000, 0, 0x1000, Perms::RW, MemType::Normal),
            Err(MapError::OutOfRange),
            "34-bit IPA space ends at 16 GiB"
        );
        s2.destroy(&mut m);
        assert_eq!(m.live(), 0);
        let s = Stage2::new(&mut m, 35, true).unwrap();
        assert_eq!(
            arm_start_level(s.start_level()),
            1,
            "35 bits need a level-1 root"
        );
        s.destroy(&mut m);
        let s = Stage2::new(&mut m, 20, true).unwrap();
        assert_eq!(
            (arm_start_level(s.start_level()), s.ipa_bits()),
            (2, 30),
            "at least one full table"
        );
    }

    #[test]
    fn pages_only_tables_park_by_their_level_2_table_descriptor() {
        let mut m = FakeMem::new(64);
        let mut s2 = Stage2::new(&mut m, 32, false).unwrap();
        s2.map(
            &mut m,
            0x4000_0000,
            0x4800_0000,
            4 << 20,
            Perms::RWX,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(m.live(), 4 + 2, "root + two level-3 tables");
        let t = s2.translate(&mut m, 0x4020_0000).unwrap();
        assert_eq!(t.desc & 0b11, 0b11, "a page, no block");
        let (slot, table) = s2.block_slot(&mut m, 0x4020_0000).unwrap();
        assert_eq!(
            table & 0b11,
            0b11,
            "the level-2 entry is a table descriptor"
        );
        // Root page 1 (GPA bit 30), entry 1.
        assert_eq!(slot, BASE + PAGE + 8);
    }
}
