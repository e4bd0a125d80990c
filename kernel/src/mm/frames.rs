//! Physical memory allocator: free ranges of host RAM, carved first-fit with any
//! power-of-two alignment, and given back with [`FrameAllocator::free`], which joins
//! neighbours again. Starts as every RAM range the DTB reports minus the hypervisor
//! image, the DTB and the reserved ranges. Guests get their RAM here, stage-2 tables
//! their frames. Pure logic over a fixed array: built before the heap exists, and
//! unit-tested on the host.

use crate::firmware::{Range, RangeList};

/// Free ranges the allocator can keep apart. Freed frames join their neighbours,
/// so this bounds fragmentation, not memory: 256 ranges (4 KiB) is far more than
/// the RAM ranges plus the holes that live VMs' allocations leave.
pub const MAX_FREE_RANGES: usize = 256;

pub struct FrameAllocator {
    /// Free ranges, sorted by base, never touching (neighbours are joined).
    free: [Range; MAX_FREE_RANGES],
    len: usize,
    /// What the allocator hands out (RAM minus the exclusions at boot): a range to
    /// free must lie inside one of these.
    managed: RangeList,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    pub size: u64,
    pub align: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooFragmented;

/// Why [`FrameAllocator::free`] refused a range (nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Not 4 KiB-aligned, or empty.
    Unaligned,
    /// Not RAM this allocator hands out.
    NotManaged,
    /// Part of it is free already (a double free).
    AlreadyFree,
    /// It would be a new free range and there is no room for one.
    TooFragmented,
}

impl FrameAllocator {
    /// All of `ram`, minus every range in `exclude` (page-granular: partial pages at
    /// the edges of RAM ranges are dropped).
    pub fn new(ram: &[Range], exclude: &[Range]) -> Result<Self, TooFragmented> {
        let mut a = Self {
            free: [Range { base: 0, size: 0 }; MAX_FREE_RANGES],
            len: 0,
            managed: RangeList::new(),
        };
        for r in ram {
            let base = align_up(r.base, 4096);
            let end = r.end() & !4095;
            if end > base {
                a.insert(Range {
                    base,
                    size: end - base,
                })
                .map_err(|_| TooFragmented)?;
            }
        }
        for x in exclude {
            let base = x.base & !4095;
            let end = align_up(x.end(), 4096);
            a.cut(Range {
                base,
                size: end - base,
            })?;
        }
        for i in 0..a.len {
            a.managed.push(a.free[i]).map_err(|_| TooFragmented)?;
        }
        Ok(a)
    }

    /// The free ranges, in address order.
    pub fn ranges(&self) -> &[Range] {
        &self.free[..self.len]
    }

    /// Adds `r` (free, touching no free range or overlapping none) to the sorted
    /// list, joined with the neighbours it touches.
    fn insert(&mut self, r: Range) -> Result<(), TooFragmented> {
        let i = self.ranges().partition_point(|f| f.base < r.base);
        let joins_prev = i > 0 && self.free[i - 1].end() == r.base;
        let joins_next = i < self.len && r.end() == self.free[i].base;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.free[i - 1].size += r.size + self.free[i].size;
                self.remove_at(i);
            }
            (true, false) => self.free[i - 1].size += r.size,
            (false, true) => {
                self.free[i].base = r.base;
                self.free[i].size += r.size;
            }
            (false, false) => self.insert_at(i, r)?,
        }
        Ok(())
    }

    fn insert_at(&mut self, i: usize, r: Range) -> Result<(), TooFragmented> {
        if self.len == MAX_FREE_RANGES {
            return Err(TooFragmented);
        }
        self.free.copy_within(i..self.len, i + 1);
        self.free[i] = r;
        self.len += 1;
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        self.free.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }

    /// Takes `r` out of the free ranges (whatever of it is free). Nothing changes
    /// when it fails: only cutting a hole in the middle of one range needs a slot.
    fn cut(&mut self, r: Range) -> Result<(), TooFragmented> {
        let mut i = 0;
        while i < self.len {
            let f = self.free[i];
            if f.end() <= r.base || r.end() <= f.base {
                i += 1;
                continue;
            }
            let left = (f.base < r.base).then(|| Range {
                base: f.base,
                size: r.base - f.base,
            });
            let right = (r.end() < f.end()).then(|| Range {
                base: r.end(),
                size: f.end() - r.end(),
            });
            match (left, right) {
                (Some(l), Some(rest)) => {
                    self.insert_at(i + 1, rest)?;
                    self.free[i] = l;
                    i += 2;
                }
                (Some(piece), None) | (None, Some(piece)) => {
                    self.free[i] = piece;
                    i += 1;
                }
                (None, None) => self.remove_at(i),
            }
        }
        Ok(())
    }

    /// `size` bytes (a multiple of 4 KiB) aligned to `align` (a power of two ≥ 4 KiB).
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, OutOfMemory> {
        let err = OutOfMemory { size, align };
        let size = align_up(size.max(1), 4096);
        let found = self.ranges().iter().find_map(|f| {
            let base = align_up(f.base, align);
            (base.checked_add(size)? <= f.end()).then_some(base)
        });
        let base = found.ok_or(err)?;
        self.cut(Range { base, size }).map_err(|_| err)?;
        Ok(base)
    }

    /// Like [`alloc`](Self::alloc), preferring 2 MiB alignment (stage-2 blocks) and
    /// falling back to 4 KiB.
    pub fn alloc_prefer_blocks(&mut self, size: u64) -> Result<u64, OutOfMemory> {
        self.alloc(size, 2 << 20)
            .or_else(|_| self.alloc(size, 4096))
    }

    /// Takes exactly `[base, base + size)` (identity-mapped guest memory).
    pub fn claim(&mut self, base: u64, size: u64) -> Result<(), OutOfMemory> {
        let err = OutOfMemory { size, align: 4096 };
        let inside = self
            .ranges()
            .iter()
            .any(|f| f.base <= base && base.checked_add(size).is_some_and(|e| e <= f.end()));
        if !inside {
            return Err(err);
        }
        self.cut(Range { base, size }).map_err(|_| err)
    }

    /// Gives `[base, base + size)` back: memory `alloc` or `claim` handed out (any
    /// part of it, or several neighbouring allocations at once). Refuses a range
    /// that is partly free already or that the allocator never managed.
    pub fn free(&mut self, base: u64, size: u64) -> Result<(), FreeError> {
        if size == 0 || (base | size) & 4095 != 0 {
            return Err(FreeError::Unaligned);
        }
        let end = base.checked_add(size).ok_or(FreeError::NotManaged)?;
        let managed = self.managed.as_slice();
        if !managed.iter().any(|m| m.base <= base && end <= m.end()) {
            return Err(FreeError::NotManaged);
        }
        if self.ranges().iter().any(|f| f.base < end && base < f.end()) {
            return Err(FreeError::AlreadyFree);
        }
        self.insert(Range { base, size })
            .map_err(|_| FreeError::TooFragmented)
    }

    pub fn free_bytes(&self) -> u64 {
        self.ranges().iter().map(|r| r.size).sum()
    }

    /// Everything it manages (free at the start), in bytes.
    pub fn managed_bytes(&self) -> u64 {
        self.managed.as_slice().iter().map(|r| r.size).sum()
    }
}

fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::paging::{MemType, Perms, TableMemory, ENTRIES};
    use crate::mm::stage2::testing::FakeFormat;
    use crate::mm::stage2::PageTable;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    fn r(base: u64, size: u64) -> Range {
        Range { base, size }
    }

    #[test]
    fn excludes_image_dtb_and_reserved() {
        let ram = [r(0x4000_0000, 0x4000_0000)];
        let a = FrameAllocator::new(&ram, &[r(0x4020_0000, 0x12_3456), r(0x4800_0000, 0x1000)])
            .unwrap();
        assert_eq!(
            a.ranges(),
            &[
                r(0x4000_0000, 0x20_0000),
                r(0x4032_4000, 0x7cd_c000),
                r(0x4800_1000, 0x37ff_f000)
            ]
        );
        assert_eq!(a.free_bytes(), 0x4000_0000 - 0x12_4000 - 0x1000);
    }

    #[test]
    fn uses_every_ram_range() {
        let ram = [r(0x20_0000, 0x20_0000), r(0x1_0000_0000, 0x40_0000)];
        let mut a = FrameAllocator::new(&ram, &[]).unwrap();
        assert_eq!(a.alloc(0x20_0000, 0x20_0000), Ok(0x20_0000));
        assert_eq!(
            a.alloc(0x40_0000, 0x20_0000),
            Ok(0x1_0000_0000),
            "second range used once the first is full"
        );
        assert_eq!(
            a.alloc(0x1000, 0x1000),
            Err(OutOfMemory {
                size: 0x1000,
                align: 0x1000
            })
        );
    }

    #[test]
    fn alignment_and_fallback() {
        let ram = [r(0x4000_1000, 0x30_0000)];
        let mut a = FrameAllocator::new(&ram, &[]).unwrap();
        let b = a.alloc_prefer_blocks(0x10_0000).unwrap();
        assert_eq!(b, 0x4020_0000);
        let c = a.alloc_prefer_blocks(0x10_0000).unwrap();
        assert_eq!(c % 4096, 0);
        assert!(
            c + 0x10_0000 <= 0x4020_0000,
            "fell back to a 4 KiB-aligned range below"
        );
    }

    #[test]
    fn claim_exact_range() {
        let ram = [r(0x8000_0000, 0x1000_0000)];
        let mut a = FrameAllocator::new(&ram, &[]).unwrap();
        a.claim(0x8100_0000, 0x10_0000).unwrap();
        assert!(a.claim(0x8100_0000, 0x1000).is_err(), "already taken");
        assert!(a.claim(0x9000_0000, 0x1000).is_err(), "outside RAM");
    }

    #[test]
    fn free_joins_neighbours_back_to_one_range() {
        let ram = [r(0x4000_0000, 0x100_0000)];
        let mut a = FrameAllocator::new(&ram, &[]).unwrap();
        let base = a.free_bytes();
        let pages: Vec<u64> = (0..64).map(|_| a.alloc(0x1000, 0x1000).unwrap()).collect();
        // Every other page first: 32 separate holes, then the rest fills them.
        for p in pages.iter().step_by(2) {
            a.free(*p, 0x1000).unwrap();
        }
        assert_eq!(a.ranges().len(), 33);
        for p in pages.iter().skip(1).step_by(2) {
            a.free(*p, 0x1000).unwrap();
        }
        assert_eq!(a.ranges(), &ram);
        assert_eq!(a.free_bytes(), base);
    }

    #[test]
    fn bad_frees_are_refused() {
        let ram = [r(0x4000_0000, 0x10_0000)];
        let mut a = FrameAllocator::new(&ram, &[r(0x4008_0000, 0x1000)]).unwrap();
        let p = a.alloc(0x2000, 0x1000).unwrap();
        let before = a.ranges().to_vec();
        assert_eq!(a.free(p + 0x2000, 0x1000), Err(FreeError::AlreadyFree));
        assert_eq!(
            a.free(p, 0x3000),
            Err(FreeError::AlreadyFree),
            "overlaps free"
        );
        assert_eq!(
            a.free(0x4008_0000, 0x1000),
            Err(FreeError::NotManaged),
            "excluded"
        );
        assert_eq!(a.free(0x5000_0000, 0x1000), Err(FreeError::NotManaged));
        assert_eq!(a.free(!4095, 0x1000), Err(FreeError::NotManaged));
        assert_eq!(a.free(p + 8, 0x1000), Err(FreeError::Unaligned));
        assert_eq!(a.free(p, 0), Err(FreeError::Unaligned));
        assert_eq!(a.ranges(), &before[..], "nothing changed");
        a.free(p + 0x1000, 0x1000).unwrap();
        a.free(p, 0x1000).unwrap();
        assert_eq!(
            a.free(p, 0x1000),
            Err(FreeError::AlreadyFree),
            "double free"
        );
    }

    #[test]
    fn scattered_frees_beyond_the_capacity_are_refused_not_lost() {
        let ram = [r(0, 0x1000 * 2 * (MAX_FREE_RANGES as u64 + 8))];
        let mut a = FrameAllocator::new(&ram, &[]).unwrap();
        let pages: Vec<u64> = (0..2 * MAX_FREE_RANGES + 8)
            .map(|_| a.alloc(0x1000, 0x1000).unwrap())
            .collect();
        let mut refused = Vec::new();
        for p in pages.iter().step_by(2) {
            if a.free(*p, 0x1000) == Err(FreeError::TooFragmented) {
                refused.push(*p);
            }
        }
        assert_eq!(a.ranges().len(), MAX_FREE_RANGES);
        assert!(!refused.is_empty());
        // Freeing the neighbours joins ranges and makes room again.
        for p in pages.iter().skip(1).step_by(2).chain(&refused) {
            a.free(*p, 0x1000).unwrap();
        }
        assert_eq!(a.ranges(), &ram);
    }

    #[test]
    fn alloc_and_free_in_loops_return_to_baseline() {
        let ram = [r(0x4000_0000, 0x400_0000), r(0x1_0000_0000, 0x100_0000)];
        let mut a = FrameAllocator::new(&ram, &[r(0x4100_0000, 0x3000)]).unwrap();
        let (base, ranges) = (a.free_bytes(), a.ranges().to_vec());
        for round in 0..50u64 {
            let mut got = Vec::new();
            for i in 0..20u64 {
                let size = 0x1000 * (1 + (i * 7 + round) % 13);
                let align = if i % 3 == 0 { 2 << 20 } else { 0x1000 };
                got.push((a.alloc(size, align).unwrap(), size));
            }
            // Free in a shuffled order.
            for k in 0..got.len() {
                let (p, size) = got[(k * 7 + round as usize) % got.len()];
                a.free(p, size).unwrap();
            }
            assert_eq!(a.free_bytes(), base, "round {round}");
        }
        assert_eq!(a.ranges(), &ranges[..]);
    }

    /// Page-table frames taken from and given back to a [`FrameAllocator`]; their
    /// contents live in a map (host memory is not at those addresses).
    struct AllocatorTables<'a> {
        frames: &'a mut FrameAllocator,
        contents: BTreeMap<u64, Box<[u64; ENTRIES]>>,
    }

    impl TableMemory for AllocatorTables<'_> {
        fn alloc_table(&mut self) -> Option<u64> {
            self.alloc_tables(1)
        }
        fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
            self.contents.get_mut(&pa).expect("a live table frame")
        }
        fn alloc_tables(&mut self, count: usize) -> Option<u64> {
            let size = 0x1000 * count as u64;
            let pa = self.frames.alloc(size, size).ok()?;
            for i in 0..count as u64 {
                self.contents
                    .insert(pa + i * 0x1000, Box::new([0; ENTRIES]));
            }
            Some(pa)
        }
        fn free_tables(&mut self, pa: u64, count: usize) {
            for i in 0..count as u64 {
                self.contents.remove(&(pa + i * 0x1000));
            }
            self.frames.free(pa, 0x1000 * count as u64).unwrap();
        }
    }

    #[test]
    fn page_tables_built_and_destroyed_give_every_frame_back() {
        let ram = [r(0x4000_0000, 0x400_0000)];
        let mut a = FrameAllocator::new(&ram, &[r(0x4000_3000, 0x1000)]).unwrap();
        let (base, ranges) = (a.free_bytes(), a.ranges().to_vec());
        for round in 0..100u64 {
            // Guest RAM and tables interleave in the allocator, as at VM creation.
            let ram_hpa = a.alloc(0x20_0000, 0x1000).unwrap();
            let mut mem = AllocatorTables {
                frames: &mut a,
                contents: BTreeMap::new(),
            };
            let mut t = PageTable::<FakeFormat>::new(&mut mem, 40, round % 2 == 0).unwrap();
            t.map(
                &mut mem,
                0x8000_0000,
                ram_hpa,
                0x20_0000,
                Perms::RW,
                MemType::Normal,
            )
            .unwrap();
            let far = 0x80_0000_0000 + round * 0x4000_0000;
            t.map(&mut mem, far, ram_hpa, 0x1000, Perms::RW, MemType::Device)
                .unwrap();
            t.destroy(&mut mem);
            assert!(mem.contents.is_empty());
            a.free(ram_hpa, 0x20_0000).unwrap();
            assert_eq!(a.free_bytes(), base, "round {round}");
        }
        assert_eq!(a.ranges(), &ranges[..]);
    }
}
