//! The AMD nested page table (NPT) descriptor format: x86-64 four-level long-mode
//! page-table entries, walked by the CPU from the VMCB's nCR3. The walking itself is
//! the generic [`crate::mm::stage2::PageTable`]; this file only encodes entries.
//!
//! The nested walk treats every guest access as a user access, so every entry has
//! U/S set; A and D are preset (no hardware updates needed). Readable is implied by
//! present: write-only or no-access leaves do not exist. Large pages: 2 MiB (PDE)
//! and 1 GiB (PDPE). [`MemType::Device`] leaves are uncacheable (PCD + PWT) and never
//! executable (NX); NX also marks non-executable RAM.

use crate::hal::paging::{Geometry, Leaf, MapError, MemType, PageTableFormat, Perms};
use crate::mm::stage2::PageTable;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
/// PS in a PDE / PDPE: a large page.
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
/// Physical address bits 51:12.
const ADDR: u64 = ((1 << 52) - 1) & !0xfff;

/// Guest-physical width of four-level nested paging.
pub const MAX_IPA_BITS: u32 = 48;

/// NPT entries (four levels, whatever the VM's width: the nested walk always has
/// the host's paging depth).
pub struct Npt;

/// One VM's nested page tables.
pub type Stage2 = PageTable<Npt>;

impl PageTableFormat for Npt {
    const MAX_IPA_BITS: u32 = MAX_IPA_BITS;

    /// Always four levels; the VM's space is what it asked for (the walker refuses
    /// what lies beyond it).
    fn geometry(ipa_bits: u32) -> Geometry {
        Geometry {
            start_level: 3,
            root_tables: 1,
            ipa_bits: ipa_bits.min(MAX_IPA_BITS),
        }
    }

    fn block_allowed(level: u32) -> bool {
        level == 1 || level == 2
    }

    fn is_valid(desc: u64) -> bool {
        desc & P != 0
    }

    fn is_table(desc: u64, level: u32) -> bool {
        level > 0 && desc & P != 0 && desc & PS == 0
    }

    fn table(pa: u64) -> u64 {
        (pa & ADDR) | P | RW | US | A
    }

    fn table_addr(desc: u64) -> u64 {
        desc & ADDR
    }

    fn leaf(pa: u64, level: u32, perms: Perms, ty: MemType) -> Result<u64, MapError> {
        if !perms.read {
            return Err(MapError::BadPerms);
        }
        let mut d = (pa & ADDR) | P | US | A | D;
        if level > 0 {
            d |= PS;
        }
        if perms.write {
            d |= RW;
        }
        match ty {
            MemType::Normal if perms.exec => {}
            MemType::Normal => d |= NX,
            MemType::Device => d |= NX | PCD | PWT,
        }
        Ok(d)
    }

    fn decode_leaf(desc: u64, level: u32) -> Option<Leaf> {
        if desc & P == 0 || (level > 0 && desc & PS == 0) {
            return None;
        }
        // PAT (bit 12) of a large page is not part of its address.
        let pa = if level > 0 {
            desc & ADDR & !(1 << 12)
        } else {
            desc & ADDR
        };
        Some(Leaf {
            pa,
            perms: Perms {
                read: true,
                write: desc & RW != 0,
                exec: desc & NX == 0,
            },
            ty: if desc & PCD != 0 {
                MemType::Device
            } else {
                MemType::Normal
            },
        })
    }
}

impl PageTable<Npt> {
    /// What a CPU needs to run on these tables as VM `asid`.
    #[cfg(target_os = "none")]
    pub fn regs(&self, asid: u16) -> super::vcpu::Stage2Regs {
        super::vcpu::Stage2Regs {
            ncr3: self.root(),
            asid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::mm::stage2::testing::format_tests!(Npt, 48);

    #[test]
    fn leaves_are_user_accessed_dirty_and_device_is_uncached_nx() {
        let ram = Npt::leaf(0x20_0000, 1, Perms::RWX, MemType::Normal).unwrap();
        assert_eq!(ram, 0x20_0000 | P | RW | US | A | D | PS);
        let dev = Npt::leaf(0xfee0_0000, 0, Perms::RW, MemType::Device).unwrap();
        assert_eq!(dev, 0xfee0_0000 | P | RW | US | A | D | PCD | PWT | NX);
        let ro = Npt::leaf(
            0x1000,
            0,
            Perms {
                read: true,
                write: false,
                exec: false,
            },
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(ro & (RW | NX), NX);
        let wo = Perms {
            read: false,
            write: true,
            exec: false,
        };
        assert_eq!(
            Npt::leaf(0x1000, 0, wo, MemType::Normal),
            Err(MapError::BadPerms)
        );
        assert_eq!(
            Npt::decode_leaf(dev, 0),
            Some(Leaf {
                pa: 0xfee0_0000,
                perms: Perms::RW,
                ty: MemType::Device
            })
        );
        // A table entry at level 1 is not a leaf; a level-0 entry has no PS.
        assert_eq!(Npt::decode_leaf(Npt::table(0x5000), 1), None);
        assert!(Npt::is_table(Npt::table(0x5000), 1));
        assert!(!Npt::is_table(ram, 1));
    }
}
