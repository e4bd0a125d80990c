//! The guest's own page tables, walked in software: a nested page fault on MMIO
//! names the guest-physical address of the access but not the instruction's bytes
//! (QEMU's SVM has no decode assists), so the bytes at RIP are read through the
//! guest's translation (none, 32-bit, PAE or 4-level paging) and then guest RAM.
//! Pure over a [`GuestMem`] reader; tested per paging mode.

/// Reads guest-physical memory (through the VM's nested tables, as the guest sees
/// it). False when `gpa..gpa + buf.len()` is not guest RAM.
pub trait GuestMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
}

/// The guest's paging state (from the VMCB save area).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const EFER_LMA: u64 = 1 << 10;
const P: u64 = 1 << 0;
const PS: u64 = 1 << 7;
/// Physical address bits 51:12 of a 64-bit entry.
const ADDR: u64 = 0x000f_ffff_ffff_f000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The guest's tables have no present entry for the address.
    NotPresent,
    /// A table of the guest lies outside its RAM.
    TableOutsideRam(u64),
}

fn entry(mem: &dyn GuestMem, gpa: u64, wide: bool) -> Result<u64, WalkError> {
    let mut b = [0u8; 8];
    let n = if wide { 8 } else { 4 };
    if !mem.read(gpa, &mut b[..n]) {
        return Err(WalkError::TableOutsideRam(gpa));
    }
    let e = u64::from_le_bytes(b);
    if e & P == 0 {
        return Err(WalkError::NotPresent);
    }
    Ok(e)
}

impl Paging {
    /// The nested page tables at `ncr3` as paging state: the NPT format is 4-level
    /// long-mode paging, so [`translate`] over host memory turns a GPA into the
    /// host-physical address the VM's tables give it.
    pub fn nested(ncr3: u64) -> Self {
        Self {
            cr0: CR0_PG | 1,
            cr3: ncr3,
            cr4: CR4_PAE,
            efer: EFER_LMA,
        }
    }
}

/// The guest-physical address of linear address `va`.
pub fn translate(p: &Paging, va: u64, mem: &dyn GuestMem) -> Result<u64, WalkError> {
    if p.cr0 & CR0_PG == 0 {
        return Ok(va & 0xffff_ffff);
    }
    if p.cr4 & CR4_PAE == 0 {
        // 32-bit paging: 1024-entry directory and tables of 4-byte entries.
        let va = va & 0xffff_ffff;
        let pde = entry(mem, (p.cr3 & 0xffff_f000) + ((va >> 22) & 0x3ff) * 4, false)?;
        if pde & PS != 0 && p.cr4 & CR4_PSE != 0 {
            return Ok((pde & 0xffc0_0000) | (va & 0x3f_ffff));
        }
        let pte = entry(mem, (pde & 0xffff_f000) + ((va >> 12) & 0x3ff) * 4, false)?;
        return Ok((pte & 0xffff_f000) | (va & 0xfff));
    }
    // PAE or 4-level: 512-entry tables of 8-byte entries, 9 bits a level.
    let (mut table, levels) = if p.efer & EFER_LMA != 0 {
        (p.cr3 & ADDR, 4)
    } else {
        // The PAE page-directory-pointer table: four entries at CR3[31:5].
        let pdpte = entry(mem, (p.cr3 & 0xffff_ffe0) + ((va >> 30) & 3) * 8, true)?;
        (pdpte & ADDR, 2)
    };
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * (level - 1);
        let e = entry(mem, table + ((va >> shift) & 0x1ff) * 8, true)?;
        // Large pages: 1 GiB at level 3, 2 MiB at level 2.
        if level > 1 && level < 4 && e & PS != 0 {
            let mask = (1u64 << shift) - 1;
            return Ok((e & ADDR & !mask) | (va & mask));
        }
        table = e & ADDR;
    }
    Ok(table | (va & 0xfff))
}

/// Reads up to `out.len()` bytes of guest code at linear address `va`, page by page
/// (an instruction may cross a page); returns how many were read (fewer when the
/// next page is not mapped or not RAM; the decoder then says the bytes end early).
pub fn fetch(p: &Paging, va: u64, mem: &dyn GuestMem, out: &mut [u8]) -> Result<usize, WalkError> {
    let mut done = 0;
    while done < out.len() {
        let at = va.wrapping_add(done as u64);
        let gpa = match translate(p, at, mem) {
            Ok(g) => g,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let n = (0x1000 - (at & 0xfff) as usize).min(out.len() - done);
        if !mem.read(gpa, &mut out[done..done + n]) {
            if done == 0 {
                return Err(WalkError::TableOutsideRam(gpa));
            }
            break;
        }
        done += n;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Sparse guest RAM below 16 MiB.
    struct Mem(BTreeMap<u64, u8>);
    impl Mem {
        fn new() -> Self {
            Self(BTreeMap::new())
        }
        fn put(&mut self, gpa: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.0.insert(gpa + i as u64, *b);
            }
        }
        fn put32(&mut self, gpa: u64, v: u32) {
            self.put(gpa, &v.to_le_bytes());
        }
        fn put64(&mut self, gpa: u64, v: u64) {
            self.put(gpa, &v.to_le_bytes());
        }
    }
    impl GuestMem for Mem {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            if gpa + buf.len() as u64 > 0x100_0000 {
                return false;
            }
            for (i, b) in buf.iter_mut().enumerate() {
                *b = *self.0.get(&(gpa + i as u64)).unwrap_or(&0);
            }
            true
        }
    }

    #[test]
    fn without_paging_linear_is_physical() {
        let p = Paging {
            cr0: 1,
            cr3: 0,
            cr4: 0,
            efer: 0,
        };
        assert_eq!(translate(&p, 0x10_0123, &Mem::new()), Ok(0x10_0123));
    }

    #[test]
    fn paging_32_bit_with_4k_and_4m_pages() {
        let mut m = Mem::new();
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PSE,
            efer: 0,
        };
        // 0xc000_0000 -> PDE 0x300 -> table 0x2000 -> PTE 5 -> 0x40_0000.
        m.put32(0x1000 + 0x300 * 4, 0x2000 | 1);
        m.put32(0x2000 + 5 * 4, 0x40_0000 | 1);
        assert_eq!(translate(&p, 0xc000_5abc, &m), Ok(0x40_0abc));
        // 4 MiB page at PDE 1.
        m.put32(0x1000 + 4, 0x80_0000 | PS as u32 | 1);
        assert_eq!(translate(&p, 0x0052_3456, &m), Ok(0x92_3456));
        assert_eq!(translate(&p, 0x0800_0000, &m), Err(WalkError::NotPresent));
    }

    #[test]
    fn pae_paging_with_2m_pages() {
        let mut m = Mem::new();
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x1020,
            cr4: CR4_PAE,
            efer: 0,
        };
        // PDPTE 3 (0xc000_0000) -> directory 0x3000, entry 1: 2 MiB page at 0x60_0000.
        m.put64(0x1020 + 3 * 8, 0x3000 | 1);
        m.put64(0x3000 + 8, 0x60_0000 | PS | 1);
        assert_eq!(translate(&p, 0xc021_0008, &m), Ok(0x61_0008));
    }

    #[test]
    fn four_level_paging_and_a_fetch_across_pages() {
        let mut m = Mem::new();
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | 1 << 8,
        };
        let va: u64 = 0xffff_8000_0000_0ffe;
        // PML4 256 -> 0x2000, PDPT 0 -> 0x3000, PD 0 -> 0x4000, PT 0 -> 0x9000, 1 -> 0x7000.
        m.put64(0x1000 + 256 * 8, 0x2000 | 3);
        m.put64(0x2000, 0x3000 | 3);
        m.put64(0x3000, 0x4000 | 3);
        m.put64(0x4000, 0x9000 | 3);
        m.put64(0x4008, 0x7000 | 3);
        assert_eq!(translate(&p, va, &m), Ok(0x9ffe));
        // `mov eax, [0x...]` split across the pages 0x9000 and 0x7000.
        m.put(0x9ffe, &[0x8b, 0x04]);
        m.put(0x7000, &[0x25, 0x30, 0, 0xe0, 0xfe]);
        let mut b = [0u8; 7];
        assert_eq!(fetch(&p, va, &m, &mut b), Ok(7));
        assert_eq!(b, [0x8b, 0x04, 0x25, 0x30, 0, 0xe0, 0xfe]);
        // The page after is not mapped: a short read, then an error at its start.
        let mut long = [0u8; 15];
        let end = 0xffff_8000_0000_1ffc;
        assert_eq!(fetch(&p, end, &m, &mut long), Ok(4));
        assert_eq!(
            fetch(&p, end + 4, &m, &mut long),
            Err(WalkError::NotPresent)
        );
        // 1 GiB page at PDPT 1.
        m.put64(0x2008, 0x4000_0000 | PS | 3);
        assert_eq!(translate(&p, 0xffff_8000_4001_2345, &m), Ok(0x4001_2345));
    }

    #[test]
    fn the_shared_walkers_nested_tables_walk_as_4_level_paging() {
        use crate::hal::paging::{MemType, Perms, TableMemory, PAGE};
        use crate::mm::stage2::{testing::FakeMem, PageTable};
        use core::cell::RefCell;
        /// The walker's table frames, read as host memory.
        struct Tables(RefCell<FakeMem>);
        impl GuestMem for Tables {
            fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
                let e = self.0.borrow_mut().table(pa & !0xfff)[((pa & 0xfff) / 8) as usize];
                buf.copy_from_slice(&e.to_le_bytes()[..buf.len()]);
                true
            }
        }
        let mut m = FakeMem::new(64);
        let mut t = PageTable::<super::super::npt::Npt>::new(&mut m, 48, true).unwrap();
        t.map(
            &mut m,
            0x10_0000,
            0x1234_5000,
            3 * PAGE,
            Perms::RWX,
            MemType::Normal,
        )
        .unwrap();
        t.map(
            &mut m,
            0x4000_0000,
            0x9000_0000,
            0x20_0000,
            Perms::RW,
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(
            t.translate(&mut m, 0x4000_0000).unwrap().level,
            1,
            "a 2 MiB block"
        );
        let p = Paging::nested(t.root());
        let mem = Tables(RefCell::new(m));
        assert_eq!(translate(&p, 0x10_1abc, &mem), Ok(0x1234_6abc));
        // A 2 MiB block.
        assert_eq!(translate(&p, 0x401f_fff8, &mem), Ok(0x901f_fff8));
        assert_eq!(translate(&p, 0x10_3000, &mem), Err(WalkError::NotPresent));
    }

    #[test]
    fn tables_outside_ram_are_named() {
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x2000_0000,
            cr4: 0,
            efer: 0,
        };
        assert_eq!(
            translate(&p, 0x1000, &Mem::new()),
            Err(WalkError::TableOutsideRam(0x2000_0000))
        );
    }
}
