//! The hypervisor's own address space in HS-mode: an Sv39 identity map of the low
//! 256 GiB (all Sv39 reaches without sign-extended addresses), so that the gap
//! below each hypervisor stack can be left unmapped and a stack overflow faults
//! instead of running into the next hart's stack.
//!
//! RISC-V page-table entries carry no memory type (the platform's PMAs say what is
//! RAM and what is I/O), so the map is simple: 1 GiB pages everywhere, executable
//! where the GiB holds RAM; only the 2 MiB around a stack gap is split into 4 KiB
//! pages. Everything the hypervisor touches stays reachable: its image, the frames
//! it hands out, the boot DTB, device MMIO and the console.
//!
//! satp only translates HS-mode's own accesses: the guest runs behind vsatp and
//! hgatp, and HLV/HLVX/HSV (`trap.rs` guest-memory stubs) translate as the guest
//! does, so none of them change.
//!
//! The boot hart builds the tables with paging off; every hart then loads the same.

use super::csr::{read_csr, write_csr};
use crate::firmware::Range;
use core::cell::UnsafeCell;

const SATP: u16 = 0x180;
/// satp.MODE = Sv39.
const SATP_SV39: u64 = 8 << 60;

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
const PAGE: u64 = 4096;
/// Sv39 root entries whose addresses need no sign extension (bit 38 clear).
const ROOT_ENTRIES: usize = 256;
/// Level-1 tables (2 MiB pages) for the GiBs that hold stack gaps.
const L1_POOL: usize = 2;
/// Level-0 tables (4 KiB pages) for the 2 MiB ranges that hold stack gaps.
const L0_POOL: usize = 4;

const V: u64 = 1 << 0;
const R: u64 = 1 << 1;
const W: u64 = 1 << 2;
const X: u64 = 1 << 3;
const A: u64 = 1 << 6;
const D: u64 = 1 << 7;
/// The physical page number's bits of an entry (bits 10..53).
const PPN_MASK: u64 = ((1 << 44) - 1) << 10;

#[repr(C, align(4096))]
struct Table([u64; 512]);

struct Tables {
    root: Table,
    l1: [Table; L1_POOL],
    l0: [Table; L0_POOL],
}

struct TablesCell(UnsafeCell<Tables>);
// SAFETY: written only by the boot hart before any other hart runs, read-only
// afterwards.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    root: Table([0; 512]),
    l1: [const { Table([0; 512]) }; L1_POOL],
    l0: [const { Table([0; 512]) }; L0_POOL],
}));

/// Why the map could not be built.
#[derive(Debug)]
pub enum MapError {
    /// More GiBs / 2 MiB ranges with stack gaps than the static tables cover.
    TooFragmented,
    /// A stack lies beyond what the identity map reaches.
    OutOfReach,
}

/// A leaf (R/W, accessed and dirty set so no hardware update is needed).
fn leaf(pa: u64, exec: bool) -> u64 {
    ((pa >> 12) << 10) | V | R | W | A | D | if exec { X } else { 0 }
}

fn table(t: &Table) -> u64 {
    ((t.0.as_ptr() as u64 >> 12) << 10) | V
}

fn is_table(e: u64) -> bool {
    e & (V | R | W | X) == V
}

fn overlaps_ram(ram: &[Range], base: u64, size: u64) -> bool {
    ram.iter().any(|r| r.base < base + size && base < r.end())
}

/// Builds the identity map with the `gap` bytes from each of `guards` (page
/// addresses) left unmapped. Boot hart only, paging off, before the other harts start.
pub fn build(ram: &[Range], guards: &[u64], gap: u64) -> Result<(), MapError> {
    // SAFETY: single-threaded boot; nothing else references the tables yet.
    let t = unsafe { &mut *TABLES.0.get() };
    for (i, e) in t.root.0.iter_mut().enumerate() {
        *e = if i < ROOT_ENTRIES {
            let base = i as u64 * GIB;
            leaf(base, overlaps_ram(ram, base, GIB))
        } else {
            0
        };
    }
    let (mut next_l1, mut next_l0) = (0, 0);
    let pages = guards
        .iter()
        .flat_map(|&g| (g..g + gap).step_by(PAGE as usize));
    for g in pages {
        let (i2, i1, i0) = (
            (g / GIB) as usize,
            ((g / MIB2) % 512) as usize,
            ((g / PAGE) % 512) as usize,
        );
        if i2 >= ROOT_ENTRIES {
            return Err(MapError::OutOfReach);
        }
        if !is_table(t.root.0[i2]) {
            let l1 = t.l1.get_mut(next_l1).ok_or(MapError::TooFragmented)?;
            next_l1 += 1;
            let gib = i2 as u64 * GIB;
            for (j, e) in l1.0.iter_mut().enumerate() {
                let b = gib + j as u64 * MIB2;
                *e = leaf(b, overlaps_ram(ram, b, MIB2));
            }
            t.root.0[i2] = table(l1);
        }
        let l1 = ((t.root.0[i2] & PPN_MASK) << 2) as *mut u64;
        // SAFETY: the entry points at one of the static level-1 tables (identity map,
        // paging off).
        let e1 = unsafe { &mut *l1.add(i1) };
        if !is_table(*e1) {
            let l0 = t.l0.get_mut(next_l0).ok_or(MapError::TooFragmented)?;
            next_l0 += 1;
            let mib = g & !(MIB2 - 1);
            for (j, e) in l0.0.iter_mut().enumerate() {
                let b = mib + j as u64 * PAGE;
                *e = leaf(b, overlaps_ram(ram, b, PAGE));
            }
            *e1 = table(l0);
        }
        let l0 = ((*e1 & PPN_MASK) << 2) as *mut u64;
        // SAFETY: as above, a static level-0 table.
        unsafe { *l0.add(i0) = 0 };
    }
    Ok(())
}

/// Turns on Sv39 translation for HS-mode on this hart with the tables of [`build`].
pub fn enable() -> Result<(), &'static str> {
    // SAFETY: only the address of the static is taken.
    let root = unsafe { (*TABLES.0.get()).root.0.as_ptr() as u64 };
    sfence_vma();
    write_csr!(SATP, SATP_SV39 | (root >> 12));
    sfence_vma();
    // A MODE the hart does not support leaves satp unchanged (Bare).
    if read_csr!(SATP) >> 60 != SATP_SV39 >> 60 {
        return Err(
            "this hart has no Sv39 paging, which the hypervisor needs for the unmapped gaps below its stacks",
        );
    }
    Ok(())
}

fn sfence_vma() {
    // SAFETY: TLB maintenance only; orders the table stores before later walks.
    unsafe { core::arch::asm!("sfence.vma zero, zero", options(nostack)) };
}
