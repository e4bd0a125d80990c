//! Host-test support for the walker: a fake [`TableMemory`] that counts the frames
//! it has out (and refuses double frees loudly), and the tests every
//! [`PageTableFormat`] instance runs through `format_tests!(Format)`.

use super::PageTable;
use crate::hal::paging::{
    Geometry, Leaf, MapError, MemType, PageTableFormat, Perms, TableMemory, ENTRIES, PAGE,
};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// "Physical" address of the fake's first frame.
pub const BASE: u64 = 0x8000_0000;

/// Table frames in a vector; freed slots are reused. At most `limit` frames live.
pub struct FakeMem {
    frames: Vec<Option<Box<[u64; ENTRIES]>>>,
    limit: usize,
    live: usize,
}

impl FakeMem {
    pub fn new(limit: usize) -> Self {
        Self {
            frames: Vec::new(),
            limit,
            live: 0,
        }
    }

    /// Frames allocated and not freed.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Writes one descriptor, as first-touch RAM parks and restores them.
    pub fn poke(&mut self, pa: u64, value: u64) {
        self.table(pa & !(PAGE - 1))[((pa % PAGE) / 8) as usize] = value;
    }

    fn index(pa: u64) -> usize {
        ((pa - BASE) / PAGE) as usize
    }

    fn alloc(&mut self, count: usize) -> Option<u64> {
        if !count.is_power_of_two() || self.live + count > self.limit {
            return None;
        }
        let mut i = 0;
        while self.frames[i.min(self.frames.len())..]
            .iter()
            .take(count)
            .any(|f| f.is_some())
        {
            i += count;
        }
        if self.frames.len() < i + count {
            self.frames.resize_with(i + count, || None);
        }
        for f in &mut self.frames[i..i + count] {
            *f = Some(Box::new([0; ENTRIES]));
        }
        self.live += count;
        Some(BASE + i as u64 * PAGE)
    }
}

impl TableMemory for FakeMem {
    fn alloc_table(&mut self) -> Option<u64> {
        self.alloc(1)
    }
    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        let frame = self.frames[Self::index(pa)].as_mut();
        frame.expect("access to a frame that is not allocated")
    }
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        self.alloc(count)
    }
    fn free_tables(&mut self, pa: u64, count: usize) {
        for i in Self::index(pa)..Self::index(pa) + count {
            assert!(self.frames[i].take().is_some(), "double free at frame {i}");
        }
        self.live -= count;
    }
}

/// Guest RAM at 1 GiB, backed at 4 GiB: both aligned for every block size.
const G: u64 = 0x4000_0000;
const H: u64 = 0x1_0000_0000;
const MIB: u64 = 1 << 20;

/// Empty tables for an IPA space of `bits`: the root is all there is.
fn table<F: PageTableFormat>(m: &mut FakeMem, bits: u32, blocks: bool) -> PageTable<F> {
    let t = PageTable::<F>::new(m, bits, blocks).unwrap();
    assert_eq!(m.live(), t.root_tables());
    t
}

pub fn map_pages<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, false);
    t.map(&mut m, G, H + 0x5000, 3 * PAGE, Perms::RW, MemType::Normal)
        .unwrap();
    let tr = t.translate(&mut m, G + 0x1234).unwrap();
    assert_eq!(
        (tr.hpa, tr.level, tr.perms, tr.ty),
        (H + 0x6234, 0, Perms::RW, MemType::Normal)
    );
    assert!(
        t.translate(&mut m, G + 3 * PAGE).is_none(),
        "one past the end"
    );
    assert!(t.translate(&mut m, G - 1).is_none());
    let levels = t.start_level() as usize;
    assert_eq!(m.live(), t.root_tables() + levels, "one table per level");
}

pub fn blocks_2m<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, true);
    t.map(
        &mut m,
        G,
        H,
        4 * MIB + 2 * PAGE,
        Perms::RWX,
        MemType::Normal,
    )
    .unwrap();
    let tr = t.translate(&mut m, G + 2 * MIB - 1).unwrap();
    assert_eq!((tr.hpa, tr.level), (H + 2 * MIB - 1, 1), "a 2 MiB block");
    let tr = t.translate(&mut m, G + 4 * MIB + PAGE + 8).unwrap();
    assert_eq!(
        (tr.hpa, tr.level),
        (H + 4 * MIB + PAGE + 8, 0),
        "a page after"
    );
    let below_root = t.start_level() as usize - 1;
    assert_eq!(
        m.live(),
        t.root_tables() + below_root + 1,
        "+ one page table"
    );
    // Without huge blocks a 1 GiB range is still 2 MiB blocks.
    t.map(&mut m, 2 * G, 2 * H, 1 << 30, Perms::RW, MemType::Normal)
        .unwrap();
    assert_eq!(t.translate(&mut m, 2 * G + 5).map(|t| t.level), Some(1));
}

pub fn blocks_1g<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, true).with_huge_blocks();
    if !F::block_allowed(2) || t.start_level() < 2 {
        return;
    }
    t.map(
        &mut m,
        G,
        H,
        (1 << 30) + 2 * MIB,
        Perms::RW,
        MemType::Normal,
    )
    .unwrap();
    let tr = t.translate(&mut m, G + (1 << 30) - 8).unwrap();
    assert_eq!((tr.hpa, tr.level), (H + (1 << 30) - 8, 2), "a 1 GiB block");
    let tr = t.translate(&mut m, G + (1 << 30) + 8).unwrap();
    assert_eq!((tr.hpa, tr.level), (H + (1 << 30) + 8, 1), "then 2 MiB");
    assert_eq!(
        t.block_slot(&mut m, G),
        None,
        "no level-1 slot in a 1 GiB block"
    );
}

pub fn unmap<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, false);
    t.map(&mut m, G, H, 4 * MIB, Perms::RW, MemType::Normal)
        .unwrap();
    t.unmap(&mut m, G + MIB, MIB).unwrap();
    assert!(t.translate(&mut m, G + MIB).is_none());
    assert!(t.translate(&mut m, G + 2 * MIB - PAGE).is_none());
    assert!(t.translate(&mut m, G + MIB - PAGE).is_some());
    assert!(t.translate(&mut m, G + 2 * MIB).is_some());
    t.unmap(&mut m, G, 4 * MIB).unwrap();
    assert!(t.translate(&mut m, G).is_none());
    assert_eq!(m.live(), t.root_tables(), "emptied tables are freed");
    t.unmap(&mut m, G, 4 * MIB).expect("holes are fine");
    assert_eq!(t.unmap(&mut m, G + 8, PAGE), Err(MapError::Unaligned));
    t.destroy(&mut m);

    let mut t = table::<F>(&mut m, bits, true);
    t.map(&mut m, G, H, 2 * MIB, Perms::RW, MemType::Normal)
        .unwrap();
    let split = Err(MapError::SplitsBlock { gpa: G + PAGE });
    assert_eq!(t.unmap(&mut m, G + PAGE, PAGE), split);
    assert_eq!(
        t.unmap(&mut m, G, PAGE),
        split,
        "the end cuts the block too"
    );
    assert!(t.translate(&mut m, G + PAGE).is_some(), "nothing changed");
    t.unmap(&mut m, G, 2 * MIB).unwrap();
    assert!(t.translate(&mut m, G).is_none());
}

pub fn perms_and_types<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, true);
    let mut mapped = 0;
    for i in 0..16u64 {
        let perms = Perms {
            read: i & 1 != 0,
            write: i & 2 != 0,
            exec: i & 4 != 0,
        };
        let ty = if i & 8 != 0 {
            MemType::Device
        } else {
            MemType::Normal
        };
        let want = Perms {
            exec: perms.exec && ty == MemType::Normal,
            ..perms
        };
        for (gpa, size, level) in [(G + i * PAGE, PAGE, 0), (G + (i + 1) * 2 * MIB, 2 * MIB, 1)] {
            let r = t.map(&mut m, gpa, H + gpa, size, perms, ty);
            if F::leaf(0, 0, perms, ty).is_err() {
                assert_eq!(r, Err(MapError::BadPerms));
                assert!(t.translate(&mut m, gpa).is_none());
                continue;
            }
            r.unwrap();
            let tr = t.translate(&mut m, gpa).unwrap();
            assert_eq!(
                (tr.perms, tr.ty, tr.level),
                (want, ty, level),
                "{perms:?} {ty:?}"
            );
            assert_eq!(tr.hpa, H + gpa);
            mapped += 1;
        }
    }
    assert!(mapped >= 16, "every readable combination maps");
}

pub fn overlap<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, true);
    t.map(&mut m, G, H, 2 * MIB, Perms::RW, MemType::Normal)
        .unwrap();
    t.map(&mut m, G + 4 * MIB, H, PAGE, Perms::RW, MemType::Normal)
        .unwrap();
    let before = m.live();
    assert_eq!(
        t.map(&mut m, G + PAGE, H, PAGE, Perms::RW, MemType::Normal),
        Err(MapError::Overlap { gpa: G + PAGE }),
        "a page inside a block"
    );
    assert_eq!(
        t.map(&mut m, G + 4 * MIB, H, 2 * MIB, Perms::RW, MemType::Normal),
        Err(MapError::Overlap { gpa: G + 4 * MIB }),
        "a block over a table"
    );
    // The first 2 MiB maps, then the page at 4 MiB collides: all of it rolls back.
    assert_eq!(
        t.map(
            &mut m,
            G + 2 * MIB,
            H,
            2 * MIB + PAGE,
            Perms::RW,
            MemType::Normal
        ),
        Err(MapError::Overlap { gpa: G + 4 * MIB })
    );
    assert!(t.translate(&mut m, G + 2 * MIB).is_none(), "rolled back");
    assert_eq!(t.translate(&mut m, G + 4 * MIB).map(|t| t.hpa), Some(H));
    assert_eq!(m.live(), before, "no table leaked");
}

pub fn out_of_range<F: PageTableFormat>(_bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = PageTable::<F>::new(&mut m, 32, true).unwrap();
    assert_eq!(t.ipa_bits(), 32);
    let top = 1u64 << t.ipa_bits();
    assert_eq!(
        t.map(&mut m, top - PAGE, H, 2 * PAGE, Perms::RW, MemType::Normal),
        Err(MapError::OutOfRange)
    );
    t.map(&mut m, top - PAGE, H, PAGE, Perms::RW, MemType::Normal)
        .unwrap();
    t.map(&mut m, 0, H, PAGE, Perms::RW, MemType::Normal)
        .unwrap();
    assert_eq!(
        t.translate(&mut m, top - 1).map(|t| t.hpa),
        Some(H + PAGE - 1)
    );
    assert_eq!(t.translate(&mut m, 0).map(|t| t.hpa), Some(H));
    assert!(t.translate(&mut m, top).is_none());
    assert!(t.block_slot(&mut m, top).is_none());
    let far = !(PAGE - 1);
    assert_eq!(
        t.map(&mut m, far, H, PAGE, Perms::RW, MemType::Normal),
        Err(MapError::OutOfRange)
    );
    assert_eq!(t.unmap(&mut m, top, PAGE), Err(MapError::OutOfRange));
    assert_eq!(
        t.map(&mut m, PAGE, H, 0x800, Perms::RW, MemType::Normal),
        Err(MapError::Unaligned)
    );
    t.destroy(&mut m);
    let wide = PageTable::<F>::new(&mut m, 64, true).unwrap();
    assert_eq!(wide.ipa_bits(), F::MAX_IPA_BITS, "capped");
    wide.destroy(&mut m);
    assert_eq!(m.live(), 0);
}

pub fn out_of_memory<F: PageTableFormat>(bits: u32) {
    let geo = F::geometry(bits);
    let mut m = FakeMem::new(geo.root_tables + geo.start_level as usize - 1);
    let mut t = table::<F>(&mut m, bits, false);
    assert_eq!(
        t.map(&mut m, G, H, 2 * PAGE, Perms::RW, MemType::Normal),
        Err(MapError::OutOfMemory)
    );
    assert_eq!(m.live(), t.root_tables(), "partial tables freed again");
    assert!(PageTable::<F>::new(&mut FakeMem::new(0), bits, true).is_err());
}

/// Builds a varied table (blocks, pages, devices, the top of the space) in `m`.
fn build_varied<F: PageTableFormat>(m: &mut FakeMem, bits: u32, huge: bool) -> PageTable<F> {
    let mut t = PageTable::<F>::new(m, bits, true).unwrap();
    if huge {
        t = t.with_huge_blocks();
    }
    let top = (1u64 << t.ipa_bits()) - PAGE;
    t.map(
        m,
        G,
        H,
        (1 << 30) + 6 * MIB + PAGE,
        Perms::RWX,
        MemType::Normal,
    )
    .unwrap();
    t.map(
        m,
        0x0900_0000,
        0x0900_0000,
        3 * PAGE,
        Perms::RW,
        MemType::Device,
    )
    .unwrap();
    t.map(m, top, H, PAGE, Perms::RW, MemType::Normal).unwrap();
    t.map(m, 4 * G, H + PAGE, MIB, Perms::RW, MemType::Normal)
        .unwrap();
    t
}

pub fn teardown<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(256);
    for i in 0..100 {
        let t = build_varied::<F>(&mut m, bits, i % 2 == 1);
        assert!(m.live() > t.root_tables());
        t.destroy(&mut m);
        assert_eq!(m.live(), 0, "every table frame back, round {i}");
    }
    let mut t = build_varied::<F>(&mut m, bits, false);
    t.unmap(&mut m, 0, 1 << t.ipa_bits()).unwrap();
    assert_eq!(
        m.live(),
        t.root_tables(),
        "unmapping everything leaves the root"
    );
    t.destroy(&mut m);
    assert_eq!(m.live(), 0);
}

pub fn block_slot<F: PageTableFormat>(bits: u32) {
    let mut m = FakeMem::new(64);
    let mut t = table::<F>(&mut m, bits, true);
    t.map(&mut m, G, H, 4 * MIB, Perms::RW, MemType::Normal)
        .unwrap();
    let (_, desc) = t.block_slot(&mut m, G + MIB).unwrap();
    assert_eq!(
        F::decode_leaf(desc, 1).map(|l| l.pa),
        Some(H),
        "the block itself"
    );
    assert!(t.block_slot(&mut m, G + 4 * MIB).is_none());
    t.destroy(&mut m);

    let mut t = table::<F>(&mut m, bits, false);
    t.map(&mut m, G, H, 4 * MIB, Perms::RW, MemType::Normal)
        .unwrap();
    let (slot, desc) = t.block_slot(&mut m, G + 2 * MIB).unwrap();
    assert!(F::is_table(desc, 1), "a table of pages");
    // Parking it unmaps that 2 MiB; writing it back maps it again.
    m.poke(slot, 0);
    assert!(t.translate(&mut m, G + 4 * MIB - PAGE).is_none());
    assert!(
        t.translate(&mut m, G + 2 * MIB - PAGE).is_some(),
        "the other stays"
    );
    m.poke(slot, desc);
    assert_eq!(
        t.translate(&mut m, G + 3 * MIB + 8).map(|t| t.hpa),
        Some(H + 3 * MIB + 8)
    );
}

/// The walker tests, instantiated for format `$f` in a module `walker`, over an IPA
/// space of `$bits` (39 unless given: the format picks its depth from it). One
/// `#[test]` per function above, named after it.
macro_rules! format_tests {
    ($f:ty) => {
        crate::mm::stage2::testing::format_tests!($f, 39);
    };
    ($f:ty, $bits:expr) => {
        crate::mm::stage2::testing::format_tests!(@each $f, $bits;
            map_pages blocks_2m blocks_1g unmap perms_and_types overlap out_of_range
            out_of_memory teardown block_slot);
    };
    (@each $f:ty, $bits:expr; $($name:ident)*) => {
        mod walker {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    crate::mm::stage2::testing::$name::<$f>($bits);
                }
            )*
        }
    };
}
pub(crate) use format_tests;

/// A format of no real architecture (four levels of 512 entries, bit 0 valid, bit 1
/// table, bits 2..5 R/W/X/device), for tests of the core that need one.
pub struct FakeFormat;

const ADDR: u64 = 0x000f_ffff_ffff_f000;

impl PageTableFormat for FakeFormat {
    const MAX_IPA_BITS: u32 = 48;

    fn geometry(ipa_bits: u32) -> Geometry {
        let start_level = if ipa_bits <= 39 { 2 } else { 3 };
        Geometry {
            start_level,
            root_tables: 1,
            ipa_bits,
        }
    }
    fn block_allowed(level: u32) -> bool {
        level == 1 || level == 2
    }
    fn is_valid(desc: u64) -> bool {
        desc & 1 != 0
    }
    fn is_table(desc: u64, level: u32) -> bool {
        level > 0 && desc & 3 == 3
    }
    fn table(pa: u64) -> u64 {
        pa | 3
    }
    fn table_addr(desc: u64) -> u64 {
        desc & ADDR
    }
    fn leaf(pa: u64, _level: u32, perms: Perms, ty: MemType) -> Result<u64, MapError> {
        let device = ty == MemType::Device;
        let exec = perms.exec && !device;
        let bits = [true, false, perms.read, perms.write, exec, device];
        Ok(bits
            .iter()
            .enumerate()
            .fold(pa & ADDR, |d, (i, &b)| d | (u64::from(b) << i)))
    }
    fn decode_leaf(desc: u64, level: u32) -> Option<Leaf> {
        if !Self::is_valid(desc) || Self::is_table(desc, level) {
            return None;
        }
        let bit = |i: u32| desc & (1 << i) != 0;
        let ty = if bit(5) {
            MemType::Device
        } else {
            MemType::Normal
        };
        Some(Leaf {
            pa: desc & ADDR,
            perms: Perms {
                read: bit(2),
                write: bit(3),
                exec: bit(4),
            },
            ty,
        })
    }
}

mod fake_format {
    use super::FakeFormat;
    super::format_tests!(FakeFormat);
}
