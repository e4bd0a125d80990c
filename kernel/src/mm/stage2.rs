//! The second-stage page-table walker: one VM's guest-physical (IPA) to host-physical
//! translation tables, built, queried and torn down over any descriptor format
//! ([`PageTableFormat`]: aarch64 stage 2, RISC-V Sv39x4 / Sv48x4, ...). Levels are
//! counted from the leaf (level 0 maps 4 KiB pages; see `hal::paging`).
//!
//! Blocks (superpages) are used where GPA, HPA and size allow: up to 2 MiB unless
//! the table is built for 4 KiB pages only (`blocks = false`, see [`PageTable::new`])
//! or for every block size the format has ([`PageTable::with_huge_blocks`]).
//!
//! Table memory comes from a [`TableMemory`]: identity-mapped frames on the target,
//! vectors of frames in host unit tests. The walker does no TLB maintenance: tables
//! are changed while no CPU runs on them, or the caller invalidates.

use crate::hal::paging::{
    Geometry, Leaf, MapError, MemType, PageTableFormat, Perms, TableMemory, ENTRIES, PAGE,
};
use core::marker::PhantomData;

/// One VM's second-stage tables in format `F`. Not `Clone`: the frames have one
/// owner, who gives them back with [`PageTable::destroy`].
pub struct PageTable<F: PageTableFormat> {
    root: u64,
    geo: Geometry,
    /// Highest level a leaf may be written at (0: pages only).
    max_leaf: u32,
    format: PhantomData<F>,
}

/// Where a guest-physical address leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The host-physical address of the GPA itself (not of its page).
    pub hpa: u64,
    /// The leaf descriptor and its level (0: a 4 KiB page, higher: a block).
    pub desc: u64,
    pub level: u32,
    pub perms: Perms,
    pub ty: MemType,
}

impl<F: PageTableFormat> PageTable<F> {
    /// An empty address space of `ipa_bits` (capped at the format's maximum; the
    /// format may widen a small one or narrow one the CPU cannot walk, see
    /// [`Self::ipa_bits`]). `blocks`: map aligned
    /// 2 MiB ranges with block descriptors; false maps everything with 4 KiB pages.
    pub fn new(mem: &mut dyn TableMemory, ipa_bits: u32, blocks: bool) -> Result<Self, MapError> {
        let geo = F::geometry(ipa_bits.min(F::MAX_IPA_BITS));
        let root = mem
            .alloc_tables(geo.root_tables)
            .ok_or(MapError::OutOfMemory)?;
        Ok(Self {
            root,
            geo,
            max_leaf: u32::from(blocks).min(geo.start_level),
            format: PhantomData,
        })
    }

    /// Also uses the larger blocks the format has (1 GiB, ...). Guest RAM parked for
    /// first touch (`vmm::lazy_ram`) needs at most 2 MiB blocks, so not for that.
    pub fn with_huge_blocks(mut self) -> Self {
        self.max_leaf = self.geo.start_level;
        self
    }

    /// Physical address of the root table (VTTBR_EL2.BADDR, hgatp.PPN << 12).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Width of the IPA space the tables cover.
    pub fn ipa_bits(&self) -> u32 {
        self.geo.ipa_bits
    }

    /// Level of the root table, counted from the leaf (see `hal::paging`).
    pub fn start_level(&self) -> u32 {
        self.geo.start_level
    }

    /// How many 4 KiB tables make up the root.
    pub fn root_tables(&self) -> usize {
        self.geo.root_tables
    }

    fn span(level: u32) -> u64 {
        1 << F::shift(level)
    }

    fn in_range(&self, gpa: u64) -> bool {
        gpa < 1u64 << self.geo.ipa_bits
    }

    /// Index of `gpa` in a table at `level`; the root may be concatenated tables
    /// (and is as wide as the IPA space needs, which may be less than one table).
    fn index(&self, level: u32, gpa: u64) -> u64 {
        let bits = if level == self.geo.start_level {
            self.geo.ipa_bits.saturating_sub(F::shift(level))
        } else {
            9
        };
        (gpa >> F::shift(level)) & ((1u64 << bits) - 1)
    }

    /// Physical address of the entry for `gpa` in `table` at `level`.
    fn slot(&self, table: u64, level: u32, gpa: u64) -> u64 {
        table + 8 * self.index(level, gpa)
    }

    /// The entry for `gpa` in `table` at `level`.
    fn entry<'m>(
        &self,
        mem: &'m mut dyn TableMemory,
        table: u64,
        level: u32,
        gpa: u64,
    ) -> &'m mut u64 {
        let slot = self.slot(table, level, gpa);
        &mut mem.table(slot & !(PAGE - 1))[((slot % PAGE) / 8) as usize]
    }

    fn read(&self, mem: &mut dyn TableMemory, table: u64, level: u32, gpa: u64) -> u64 {
        *self.entry(mem, table, level, gpa)
    }

    fn write(&self, mem: &mut dyn TableMemory, table: u64, level: u32, gpa: u64, desc: u64) {
        *self.entry(mem, table, level, gpa) = desc;
    }

    /// Checks a (gpa, size) request: page-aligned and inside the IPA space.
    fn check(&self, gpa: u64, other: u64, size: u64) -> Result<u64, MapError> {
        if (gpa | other | size) & (PAGE - 1) != 0 {
            return Err(MapError::Unaligned);
        }
        let end = gpa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1u64 << self.geo.ipa_bits {
            return Err(MapError::OutOfRange);
        }
        Ok(end)
    }

    /// Maps `[gpa, gpa + size)` to `[hpa, hpa + size)`. On any error nothing of the
    /// range stays mapped (what was mapped before is untouched).
    pub fn map(
        &mut self,
        mem: &mut dyn TableMemory,
        gpa: u64,
        hpa: u64,
        size: u64,
        perms: Perms,
        ty: MemType,
    ) -> Result<(), MapError> {
        self.check(gpa, hpa, size)?;
        // The format refuses permissions before anything is written.
        F::leaf(0, 0, perms, ty)?;
        let mut off = 0;
        while off < size {
            let (g, h) = (gpa + off, hpa + off);
            let level = self.leaf_level(g | h, size - off);
            let placed = F::leaf(h, level, perms, ty).and_then(|d| self.set_leaf(mem, g, level, d));
            if let Err(e) = placed {
                // Only leaves of this call lie in [gpa, gpa + off): no block to split.
                let _ = self.unmap(mem, gpa, off);
                self.prune(mem, self.root, self.geo.start_level, g);
                return Err(e);
            }
            off += Self::span(level);
        }
        Ok(())
    }

    /// The highest level whose block fits addresses aligned as `addrs` and `left`
    /// bytes; 0 for a page.
    fn leaf_level(&self, addrs: u64, left: u64) -> u32 {
        (1..=self.max_leaf)
            .rev()
            .find(|&l| {
                let span = Self::span(l);
                F::block_allowed(l) && addrs & (span - 1) == 0 && left >= span
            })
            .unwrap_or(0)
    }

    /// Writes leaf `desc` for `gpa` at `level`, creating the tables above it.
    fn set_leaf(
        &mut self,
        mem: &mut dyn TableMemory,
        gpa: u64,
        level: u32,
        desc: u64,
    ) -> Result<(), MapError> {
        let mut table = self.root;
        for l in (level + 1..=self.geo.start_level).rev() {
            let entry = self.read(mem, table, l, gpa);
            table = if !F::is_valid(entry) {
                let next = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
                self.write(mem, table, l, gpa, F::table(next));
                next
            } else if F::is_table(entry, l) {
                F::table_addr(entry)
            } else {
                return Err(MapError::Overlap { gpa });
            };
        }
        if F::is_valid(self.read(mem, table, level, gpa)) {
            return Err(MapError::Overlap { gpa });
        }
        self.write(mem, table, level, gpa, desc);
        Ok(())
    }

    /// Follows table descriptors from the root towards `gpa`, down to level `stop`
    /// at most: (the table reached, its level, the entry for `gpa` in it). The
    /// entry is what ended the walk: invalid, a leaf, or anything at `stop`.
    fn descend(&self, mem: &mut dyn TableMemory, gpa: u64, stop: u32) -> (u64, u32, u64) {
        let (mut table, mut level) = (self.root, self.geo.start_level);
        loop {
            let entry = self.read(mem, table, level, gpa);
            if level <= stop || !F::is_valid(entry) || !F::is_table(entry, level) {
                return (table, level, entry);
            }
            table = F::table_addr(entry);
            level -= 1;
        }
    }

    /// The valid leaf mapping `gpa`: (its descriptor, its level).
    fn leaf_of(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u32)> {
        if !self.in_range(gpa) {
            return None;
        }
        let (_, level, entry) = self.descend(mem, gpa, 0);
        F::is_valid(entry).then_some((entry, level))
    }

    /// Walks the tables: where `gpa` leads, with the leaf's rights and type.
    pub fn translate(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<Translation> {
        let (desc, level) = self.leaf_of(mem, gpa)?;
        let Leaf { pa, perms, ty } = F::decode_leaf(desc, level)?;
        let span = Self::span(level);
        Some(Translation {
            hpa: (pa & !(span - 1)) | (gpa & (span - 1)),
            desc,
            level,
            perms,
            ty,
        })
    }

    /// The level-1 descriptor covering the 2 MiB range of `gpa`: (its physical
    /// address, its value). A block, or a table of 4 KiB pages, which the caller
    /// knows to map one contiguous 2 MiB range of its own (a range `map` was given
    /// whole, aligned in both address spaces). None if there is no valid one.
    /// Guest RAM filled on first touch parks such descriptors (writes 0 there) and
    /// writes them back when the guest first touches the range.
    pub fn block_slot(&self, mem: &mut dyn TableMemory, gpa: u64) -> Option<(u64, u64)> {
        if !self.in_range(gpa) || self.geo.start_level < 1 {
            return None;
        }
        let (table, level, desc) = self.descend(mem, gpa, 1);
        (level == 1 && F::is_valid(desc)).then(|| (self.slot(table, 1, gpa), desc))
    }

    /// Unmaps `[gpa, gpa + size)`: every leaf in it is cleared and every table left
    /// empty is freed. Holes in the range are fine; a block that crosses either end
    /// is refused (before anything changes). The caller invalidates TLBs if a CPU
    /// may have walked these tables.
    pub fn unmap(
        &mut self,
        mem: &mut dyn TableMemory,
        gpa: u64,
        size: u64,
    ) -> Result<(), MapError> {
        let end = self.check(gpa, 0, size)?;
        for edge in [gpa, end] {
            if let Some((_, level)) = self.leaf_of(mem, edge) {
                if edge & (Self::span(level) - 1) != 0 {
                    return Err(MapError::SplitsBlock { gpa: edge });
                }
            }
        }
        self.clear(mem, self.root, self.geo.start_level, gpa, end);
        Ok(())
    }

    /// Clears `[lo, hi)` in `table` at `level`, freeing the tables it empties. The
    /// range does not cut any leaf (checked by `unmap`).
    fn clear(&self, mem: &mut dyn TableMemory, table: u64, level: u32, lo: u64, hi: u64) {
        let span = Self::span(level);
        let mut g = lo;
        while g < hi {
            let next = ((g & !(span - 1)) + span).min(hi);
            let entry = self.read(mem, table, level, g);
            if F::is_valid(entry) && level > 0 && F::is_table(entry, level) {
                let sub = F::table_addr(entry);
                self.clear(mem, sub, level - 1, g, next);
                self.free_if_empty(mem, table, level, g, sub);
            } else if F::is_valid(entry) {
                self.write(mem, table, level, g, 0);
            }
            g = next;
        }
    }

    /// Frees the tables on the path of `gpa` below `table` (at `level`) that hold
    /// nothing (left by a `map` that failed half-way down).
    fn prune(&self, mem: &mut dyn TableMemory, table: u64, level: u32, gpa: u64) {
        if level == 0 {
            return;
        }
        let entry = self.read(mem, table, level, gpa);
        if F::is_valid(entry) && F::is_table(entry, level) {
            let sub = F::table_addr(entry);
            self.prune(mem, sub, level - 1, gpa);
            self.free_if_empty(mem, table, level, gpa, sub);
        }
    }

    /// Frees table `sub`, which the entry for `gpa` in `table` at `level` points
    /// to, if every entry of it is zero.
    fn free_if_empty(&self, mem: &mut dyn TableMemory, table: u64, level: u32, gpa: u64, sub: u64) {
        if mem.table(sub).iter().all(|&d| d == 0) {
            self.write(mem, table, level, gpa, 0);
            mem.free_tables(sub, 1);
        }
    }

    /// Gives every table frame, the root included, back to `mem`. Only tables
    /// reachable from the root are found: descriptors parked by first-touch RAM
    /// must be written back first.
    pub fn destroy(self, mem: &mut dyn TableMemory) {
        Self::free_below(mem, self.root, self.geo.start_level, self.geo.root_tables);
        mem.free_tables(self.root, self.geo.root_tables);
    }

    /// Frees every table below the `pages` 4 KiB tables at `table` (a `level` table).
    fn free_below(mem: &mut dyn TableMemory, table: u64, level: u32, pages: usize) {
        if level == 0 {
            return;
        }
        for i in 0..pages * ENTRIES {
            let entry = mem.table(table + (i / ENTRIES) as u64 * PAGE)[i % ENTRIES];
            if F::is_valid(entry) && F::is_table(entry, level) {
                let sub = F::table_addr(entry);
                Self::free_below(mem, sub, level - 1, 1);
                mem.free_tables(sub, 1);
            }
        }
    }
}

/// Host-test support: a counting fake [`TableMemory`] and the tests every format
/// must pass (`format_tests!(Format)` in each format's file).
#[cfg(test)]
pub mod testing;
