//! Guest RAM zeroed on first touch.
//!
//! A VM must not see what its host memory held before: the previous boot's VMs, or
//! the bootloader's copies of other VMs' images. Zeroing and cache-cleaning all of a
//! VM's RAM before it starts costs time in proportion to its size (about a second
//! for 512 MiB under QEMU) although a booting guest touches little of it. So every
//! 2 MiB block that no image occupies starts *parked*: the stage-2 descriptor that
//! covers it (a block, or the table of its 4 KiB pages) is invalid and the first
//! access to it traps. The block is then zeroed, cleaned to
//! the point of coherency (the guest may still run with its MMU off) and mapped, and
//! the access is retried. A reset parks the blocks again.
//!
//! Not for VMs with passthrough devices: a device's DMA into a parked block would be
//! wiped when the CPU first touches it. Their RAM is zeroed before boot.

use crate::hal::exit::Access;
use crate::mm::guest::{RamFill, RamMapping};
use crate::spec::mem_flags;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// The unit parked and filled: what one level-2 (aarch64) / level-1 (RISC-V) stage-2
/// descriptor covers.
pub const BLOCK: u64 = 2 << 20;

/// One 2 MiB block of guest RAM zeroed on first touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub gpa: u64,
    pub hpa: u64,
    /// Host-physical address of the stage-2 descriptor covering it (a block, or a
    /// table of pages) and that descriptor's value (written back when the block is
    /// filled; 0 is written to park it).
    pub slot: u64,
    pub desc: u64,
    /// `mem_flags` of its region: which accesses may fill it.
    pub flags: u64,
    pub parked: bool,
}

/// What to do about a stage-2 fault at a GPA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Not a block of this kind, or an access its region forbids: the usual exit.
    No,
    /// A parked block: zero, clean and map it, then retry.
    Fill(usize),
    /// Mapped already (another vCPU filled it): retry.
    Retry,
}

/// The 2 MiB blocks of `regions` that can wait: aligned in both address spaces,
/// wholly inside a region, and clear of every `[start, end)` GPA range in `keep`
/// (the images loaded before boot). As (gpa, hpa, flags), in GPA order.
pub fn plan(regions: &[RamMapping], keep: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for r in regions {
        let first = r.gpa.next_multiple_of(BLOCK);
        let mut gpa = first;
        while gpa + BLOCK <= r.gpa + r.size {
            let hpa = r.hpa + (gpa - r.gpa);
            let clear = keep.iter().all(|&(s, e)| e <= gpa || s >= gpa + BLOCK);
            if hpa % BLOCK == 0 && clear {
                out.push((gpa, hpa, r.flags));
            }
            gpa += BLOCK;
        }
    }
    out.sort_unstable_by_key(|b| b.0);
    out
}

/// The parts of `regions` not covered by `blocks`, as guest-physical (start, length):
/// what is zeroed and cleaned before boot.
pub fn eager_ranges(regions: &[RamMapping], blocks: &[Block]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for r in regions {
        let mut at = r.gpa;
        let end = r.gpa + r.size;
        let inside = blocks.iter().filter(|b| b.gpa >= r.gpa && b.gpa < end);
        for b in inside {
            if b.gpa > at {
                out.push((at, b.gpa - at));
            }
            at = b.gpa + BLOCK;
        }
        if at < end {
            out.push((at, end - at));
        }
    }
    out
}

/// `ranges` (start, length) without the `[start, end)` ranges in `holes`: what of the
/// eager RAM the images do not overwrite anyway.
pub fn subtract(ranges: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(start, len) in ranges {
        let mut pieces = alloc::vec![(start, start + len)];
        for &(hs, he) in holes {
            pieces = pieces
                .into_iter()
                .flat_map(|(s, e)| {
                    if he <= s || hs >= e {
                        return [Some((s, e)), None];
                    }
                    [(s < hs).then_some((s, hs)), (he < e).then_some((he, e))]
                })
                .flatten()
                .collect();
        }
        out.extend(pieces.into_iter().map(|(s, e)| (s, e - s)));
    }
    out
}

fn allows(flags: u64, access: Access) -> bool {
    let need = match access {
        Access::Read => mem_flags::READ,
        Access::Write => mem_flags::WRITE,
        Access::Exec => mem_flags::EXECUTE,
    };
    flags & need != 0
}

/// The decision for a fault at `gpa` (blocks in GPA order).
pub fn decide(blocks: &[Block], gpa: u64, access: Access) -> Touch {
    let i = blocks.partition_point(|b| b.gpa + BLOCK <= gpa);
    match blocks.get(i) {
        Some(b) if b.gpa <= gpa && allows(b.flags, access) => {
            if b.parked {
                Touch::Fill(i)
            } else {
                Touch::Retry
            }
        }
        _ => Touch::No,
    }
}

/// A VM's blocks zeroed on first touch.
#[derive(Default)]
pub struct LazyRam {
    blocks: Mutex<Vec<Block>>,
    /// Blocks filled since the VM (last) started.
    filled: AtomicU64,
    /// Counter ticks spent filling them.
    fill_ticks: AtomicU64,
}

impl LazyRam {
    pub fn new(blocks: Vec<Block>) -> Self {
        Self {
            blocks: Mutex::new(blocks),
            filled: AtomicU64::new(0),
            fill_ticks: AtomicU64::new(0),
        }
    }

    /// How many blocks there are, how many the guest has touched, and the counter
    /// ticks spent filling those.
    pub fn counts(&self) -> (usize, u64, u64) {
        (
            self.blocks.lock().len(),
            self.filled.load(Ordering::Relaxed),
            self.fill_ticks.load(Ordering::Relaxed),
        )
    }

    pub fn blocks(&self) -> Vec<Block> {
        self.blocks.lock().clone()
    }
}

mod fill {
    use super::*;
    use crate::hal::{Current, HostTimer, MemoryOps};
    use crate::mm::phys;

    impl LazyRam {
        /// A stage-2 translation fault at `gpa`: true if the access is to be retried
        /// (the block is mapped now).
        pub fn touch(&self, gpa: u64, access: Access) -> bool {
            let mut blocks = self.blocks.lock();
            match decide(&blocks, gpa, access) {
                Touch::No => false,
                Touch::Retry => {
                    Current::stage2_mapped(gpa);
                    true
                }
                Touch::Fill(i) => {
                    self.fill_block(&mut blocks[i], gpa);
                    true
                }
            }
        }

        /// Puts every parked block's descriptor back (without filling the block):
        /// before the VM's tables are torn down, so the page table behind a parked
        /// block is reachable from the root and freed with the others.
        pub fn unpark_for_teardown(&self) {
            let mut blocks = self.blocks.lock();
            for b in blocks.iter_mut().filter(|b| b.parked) {
                // SAFETY: this VM's stage-2 descriptor for the block; the VM is
                // being destroyed and none of its vCPUs runs.
                unsafe { phys::write_table_entry(b.slot, b.desc) };
                b.parked = false;
            }
        }

        /// Zeroes, cleans and maps parked block `b` (its lock held by the caller);
        /// `gpa` is the address in it that was touched.
        pub(super) fn fill_block(&self, b: &mut Block, gpa: u64) {
            let start = Current::counter();
            // SAFETY: a parked block of this VM's RAM: unmapped from the guest, and
            // only touched under the lock the caller holds.
            unsafe { Current::zero_guest_ram(b.hpa, BLOCK) };
            Current::clean_for_guest(b.hpa, BLOCK);
            // SAFETY: `slot` is this VM's stage-2 descriptor for the block, invalid
            // now; one aligned 64-bit store makes it valid.
            unsafe { phys::write_table_entry(b.slot, b.desc) };
            b.parked = false;
            Current::stage2_mapped(gpa);
            self.filled.fetch_add(1, Ordering::Relaxed);
            let ticks = Current::counter().wrapping_sub(start);
            self.fill_ticks.fetch_add(ticks, Ordering::Relaxed);
        }

        /// Parks every block: its descriptor invalid, filled again on next touch.
        /// Before the VM first runs, or with every vCPU but the calling one off and
        /// the caller running on this VM's stage 2 (a reset).
        pub fn park_all(&self) {
            let mut blocks = self.blocks.lock();
            for b in blocks.iter_mut() {
                // SAFETY: this VM's stage-2 descriptor for the block; one aligned
                // 64-bit store makes it invalid.
                unsafe { phys::write_table_entry(b.slot, 0) };
                b.parked = true;
            }
            self.filled.store(0, Ordering::Relaxed);
            self.fill_ticks.store(0, Ordering::Relaxed);
            Current::stage2_unmapped();
        }
    }
}

/// A device reaching guest RAM (DMA) fills the parked blocks it touches first, so
/// the guest's first touch does not wipe what the device wrote.
impl RamFill for LazyRam {
    fn fill(&self, gpa: u64, len: u64) {
        let end = gpa.saturating_add(len);
        let mut blocks = self.blocks.lock();
        let first = blocks.partition_point(|b| b.gpa + BLOCK <= gpa);
        for b in blocks[first..].iter_mut().take_while(|b| b.gpa < end) {
            if b.parked {
                let at = b.gpa.max(gpa);
                self.fill_block(b, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const RWX: u64 = mem_flags::READ | mem_flags::WRITE | mem_flags::EXECUTE;

    fn region(gpa: u64, hpa: u64, size: u64) -> RamMapping {
        RamMapping {
            gpa,
            hpa,
            size,
            flags: RWX,
        }
    }

    fn blocks(plan: &[(u64, u64, u64)]) -> Vec<Block> {
        plan.iter()
            .map(|&(gpa, hpa, flags)| Block {
                gpa,
                hpa,
                slot: 0,
                desc: 0,
                flags,
                parked: true,
            })
            .collect()
    }

    #[test]
    fn images_and_unaligned_edges_stay_eager() {
        const M: u64 = 1 << 20;
        // 16 MiB at GPA 0x4000_0000 backed at an HPA 1 MiB off a 2 MiB boundary in
        // its second half: only the aligned blocks can be parked.
        let r = region(0x4000_0000, 0x8000_0000, 16 * M);
        // A kernel at +2 MiB..+5 MiB (blocks 1 and 2), a DTB in block 0.
        let keep = [(0x4020_0000, 0x4050_0000), (0x4000_0000, 0x4000_1000)];
        let p = plan(&[r], &keep);
        let gpas: Vec<u64> = p.iter().map(|b| b.0).collect();
        assert_eq!(
            gpas,
            (3..8).map(|i| 0x4000_0000 + i * 2 * M).collect::<Vec<_>>()
        );
        let e = eager_ranges(&[r], &blocks(&p));
        assert_eq!(e, vec![(0x4000_0000, 6 * M)], "blocks 0-2 zeroed up front");
        assert_eq!(
            subtract(&e, &keep),
            vec![(0x4000_1000, 2 * M - 0x1000), (0x4050_0000, M)],
            "less what the images overwrite"
        );

        let odd = region(0x4000_0000, 0x8010_0000, 4 * M);
        assert!(plan(&[odd], &[]).is_empty(), "HPA not 2 MiB aligned");
        assert_eq!(eager_ranges(&[odd], &[]), vec![(0x4000_0000, 4 * M)]);
    }

    #[test]
    fn eager_ranges_fill_the_gaps_between_blocks() {
        const M: u64 = 1 << 20;
        let r = region(0, 0x1000_0000, 10 * M);
        let b = blocks(&[
            (2 * M, 0x1000_0000 + 2 * M, RWX),
            (6 * M, 0x1000_0000 + 6 * M, RWX),
        ]);
        assert_eq!(
            eager_ranges(&[r], &b),
            vec![(0, 2 * M), (4 * M, 2 * M), (8 * M, 2 * M)]
        );
    }

    #[test]
    fn decides_by_block_state_and_permission() {
        let mut b = blocks(&[(0x20_0000, 0, RWX), (0x60_0000, 0, mem_flags::READ)]);
        assert_eq!(decide(&b, 0x20_0010, Access::Write), Touch::Fill(0));
        assert_eq!(decide(&b, 0x3f_ffff, Access::Exec), Touch::Fill(0));
        assert_eq!(decide(&b, 0x40_0000, Access::Read), Touch::No, "a gap");
        assert_eq!(decide(&b, 0x1f_ffff, Access::Read), Touch::No, "below");
        assert_eq!(decide(&b, 0x60_0000, Access::Write), Touch::No, "read-only");
        assert_eq!(decide(&b, 0x7f_fff8, Access::Read), Touch::Fill(1));
        assert_eq!(decide(&b, 0x80_0000, Access::Read), Touch::No, "above");
        b[0].parked = false;
        assert_eq!(decide(&b, 0x20_0010, Access::Read), Touch::Retry);
    }
}
