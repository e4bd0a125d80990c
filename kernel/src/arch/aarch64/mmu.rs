//! The hypervisor's own address space at EL2: an identity map of the low 512 GiB,
//! RAM as normal write-back memory and everything else as Device-nGnRE. RAM is taken
//! from the DTB; a GiB that mixes RAM and device space is mapped with 2 MiB blocks.
//! The gap below each hypervisor stack is left unmapped (the 2 MiB around it mapped
//! with 4 KiB pages), so a stack overflow faults.
//! The boot CPU builds the tables with the MMU off; every CPU then loads the same ones.

use super::regs::{isb, read_sysreg, write_sysreg};
use crate::firmware::Range;
use core::cell::UnsafeCell;

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
const PAGE: u64 = 4096;
const L2_POOL: usize = 8;
/// Level-3 tables for the 2 MiB blocks that hold stack gaps.
const L3_POOL: usize = 4;

const VALID_BLOCK: u64 = 0b01;
const TABLE: u64 = 0b11;
/// A level-3 page descriptor has the same low bits as a table descriptor.
const PAGE_DESC: u64 = 0b11;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const AP_EL2_RW: u64 = 0b01 << 6; // AP[1] is RES1 in the EL2 regime
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;

const MAIR: u64 = 0x04 | (0xff << 8); // attr0 Device-nGnRE, attr1 Normal WB RA/WA

#[repr(C, align(4096))]
struct Table([u64; 512]);

struct Tables {
    l0: Table,
    l1: Table,
    l2: [Table; L2_POOL],
    l3: [Table; L3_POOL],
}

struct TablesCell(UnsafeCell<Tables>);
// SAFETY: written only by the boot CPU before any other CPU runs, read-only afterwards.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    l0: Table([0; 512]),
    l1: Table([0; 512]),
    l2: [const { Table([0; 512]) }; L2_POOL],
    l3: [const { Table([0; 512]) }; L3_POOL],
}));

#[derive(Debug)]
pub struct TooFragmented;

fn block(pa: u64, normal: bool) -> u64 {
    if normal {
        pa | VALID_BLOCK | ATTR_NORMAL | AP_EL2_RW | SH_INNER | AF
    } else {
        pa | VALID_BLOCK | ATTR_DEVICE | AP_EL2_RW | AF | XN
    }
}

fn overlaps_ram(ram: &[Range], base: u64, size: u64) -> bool {
    ram.iter().any(|r| r.base < base + size && base < r.end())
}

fn covered_by_ram(ram: &[Range], base: u64, size: u64) -> bool {
    ram.iter().any(|r| r.base <= base && base + size <= r.end())
}

/// Builds the identity map, with the `gap` bytes from each of `guards` (page
/// addresses) left unmapped. Boot CPU only, MMU off, before secondaries start.
pub fn build(ram: &[Range], guards: &[u64], gap: u64) -> Result<(), TooFragmented> {
    // SAFETY: single-threaded boot; nothing else references the tables yet.
    let t = unsafe { &mut *TABLES.0.get() };
    let (mut next_l2, mut next_l3) = (0, 0);
    t.l0.0[0] = t.l1.0.as_ptr() as u64 | TABLE;
    for i in 0..512 {
        let base = i as u64 * GIB;
        t.l1.0[i] = if covered_by_ram(ram, base, GIB) || !overlaps_ram(ram, base, GIB) {
            block(base, covered_by_ram(ram, base, GIB))
        } else {
            split_gib(t, &mut next_l2, ram, base)?
        };
    }
    let pages = guards
        .iter()
        .flat_map(|&g| (g..g + gap).step_by(PAGE as usize));
    for g in pages {
        let (i1, i2, i3) = (
            (g / GIB) as usize,
            ((g / MIB2) % 512) as usize,
            ((g / PAGE) % 512) as usize,
        );
        if i1 >= 512 {
            continue;
        }
        if t.l1.0[i1] & 0b11 != TABLE {
            t.l1.0[i1] = split_gib(t, &mut next_l2, ram, i1 as u64 * GIB)?;
        }
        let l2 = (t.l1.0[i1] & ADDR_MASK) as *mut u64;
        // SAFETY: the entry points at one of the static level-2 tables (identity map).
        let e2 = unsafe { &mut *l2.add(i2) };
        if *e2 & 0b11 != TABLE {
            let l3 = t.l3.get_mut(next_l3).ok_or(TooFragmented)?;
            next_l3 += 1;
            let base = g & !(MIB2 - 1);
            for (j, e) in l3.0.iter_mut().enumerate() {
                let b = base + j as u64 * PAGE;
                *e = block(b, overlaps_ram(ram, b, PAGE)) | PAGE_DESC;
            }
            *e2 = l3.0.as_ptr() as u64 | TABLE;
        }
        let l3 = (*e2 & ADDR_MASK) as *mut u64;
        // SAFETY: as above, a static level-3 table.
        unsafe { *l3.add(i3) = 0 };
    }
    Ok(())
}

/// A level-2 table of 2 MiB blocks for the GiB at `base` (from the pool).
fn split_gib(
    t: &mut Tables,
    next: &mut usize,
    ram: &[Range],
    base: u64,
) -> Result<u64, TooFragmented> {
    let l2 = t.l2.get_mut(*next).ok_or(TooFragmented)?;
    *next += 1;
    for (j, e) in l2.0.iter_mut().enumerate() {
        let b = base + j as u64 * MIB2;
        *e = block(b, overlaps_ram(ram, b, MIB2));
    }
    Ok(l2.0.as_ptr() as u64 | TABLE)
}

/// Turns on the MMU and caches at EL2 with the tables from [`build`].
pub fn enable() {
    let parange = read_sysreg!(id_aa64mmfr0_el1) & 0xf;
    let ps = parange.min(0b101);
    // T0SZ 16 (48-bit VA), inner/outer WB WA walks, inner shareable, 4 KiB granule.
    let tcr = 16 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (ps << 16) | (1 << 23) | (1 << 31);
    // SAFETY: only the address of the static is taken.
    let root = unsafe { (*TABLES.0.get()).l0.0.as_ptr() as u64 };
    write_sysreg!(mair_el2, MAIR);
    write_sysreg!(tcr_el2, tcr);
    write_sysreg!(ttbr0_el2, root);
    isb();
    // SAFETY: TLB invalidation of the EL2 regime before its first use.
    unsafe { core::arch::asm!("tlbi alle2", "dsb ish", "isb", options(nostack)) };
    // M, C, SA, I, plus the RES1 bits of SCTLR_EL2 (non-VHE).
    let sctlr = 0x30C5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12);
    write_sysreg!(sctlr_el2, sctlr);
    isb();
}
