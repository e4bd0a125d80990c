//! Physical memory allocator: free ranges of host RAM, carved first-fit with any
//! power-of-two alignment. Starts as every RAM range the DTB reports minus the
//! hypervisor image, the DTB and the reserved ranges. Guests get their RAM here.
//! Pure logic over [`RangeList`]s: unit-tested on the host.

use crate::firmware::{Range, RangeList};

pub struct FrameAllocator {
    free: RangeList,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    pub size: u64,
    pub align: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooFragmented;

impl FrameAllocator {
    /// All of `ram`, minus every range in `exclude` (page-granular: partial pages at
    /// the edges of RAM ranges are dropped).
    pub fn new(ram: &[Range], exclude: &[Range]) -> Result<Self, TooFragmented> {
        let mut free = RangeList::new();
        for r in ram {
            let base = align_up(r.base, 4096);
            let end = r.end() & !4095;
            if end > base {
                free.push(Range {
                    base,
                    size: end - base,
                })
                .map_err(|_| TooFragmented)?;
            }
        }
        let mut a = Self { free };
        for x in exclude {
            let base = x.base & !4095;
            let end = align_up(x.end(), 4096);
            a.remove(Range {
                base,
                size: end - base,
            })?;
        }
        Ok(a)
    }

    /// Takes `r` out of the free ranges.
    fn remove(&mut self, r: Range) -> Result<(), TooFragmented> {
        let mut out = RangeList::new();
        for f in self.free.as_slice() {
            if f.end() <= r.base || r.end() <= f.base {
                out.push(*f).map_err(|_| TooFragmented)?;
                continue;
            }
            if f.base < r.base {
                out.push(Range {
                    base: f.base,
                    size: r.base - f.base,
                })
                .map_err(|_| TooFragmented)?;
            }
            if r.end() < f.end() {
                out.push(Range {
                    base: r.end(),
                    size: f.end() - r.end(),
                })
                .map_err(|_| TooFragmented)?;
            }
        }
        self.free = out;
        Ok(())
    }

    /// `size` bytes (a multiple of 4 KiB) aligned to `align` (a power of two ≥ 4 KiB).
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, OutOfMemory> {
        let err = OutOfMemory { size, align };
        let size = align_up(size.max(1), 4096);
        let found = self.free.as_slice().iter().find_map(|f| {
            let base = align_up(f.base, align);
            (base.checked_add(size)? <= f.end()).then_some(base)
        });
        let base = found.ok_or(err)?;
        self.remove(Range { base, size }).map_err(|_| err)?;
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
            .free
            .as_slice()
            .iter()
            .any(|f| f.base <= base && base + size <= f.end());
        if !inside {
            return Err(err);
        }
        self.remove(Range { base, size }).map_err(|_| err)
    }

    pub fn free_bytes(&self) -> u64 {
        self.free.as_slice().iter().map(|r| r.size).sum()
    }
}

fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, size: u64) -> Range {
        Range { base, size }
    }

    #[test]
    fn excludes_image_dtb_and_reserved() {
        let ram = [r(0x4000_0000, 0x4000_0000)];
        let a = FrameAllocator::new(&ram, &[r(0x4020_0000, 0x12_3456), r(0x4800_0000, 0x1000)])
            .unwrap();
        assert_eq!(
            a.free.as_slice(),
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
}
