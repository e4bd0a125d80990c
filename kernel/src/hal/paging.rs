//! Second-stage page-table *formats*: how one architecture encodes descriptors
//! (aarch64 stage 2, RISC-V Sv39x4 / Sv48x4, later x86 NPT). The one walker that
//! builds, queries and tears down tables over any of them is
//! [`crate::mm::stage2::PageTable`]; a format knows nothing about walking.
//!
//! Levels are counted from the leaf: level 0 entries map 4 KiB pages, an entry at
//! level `l` covers `1 << shift(l)` bytes (2 MiB at level 1, 1 GiB at level 2, ...).
//! Every table is 4 KiB of 512 64-bit descriptors, except that the root may be
//! several physically contiguous tables concatenated ([`Geometry::root_tables`]).

/// Bytes of one page and of one table.
pub const PAGE: u64 = 4096;
/// Entries of one 4 KiB table of 64-bit descriptors.
pub const ENTRIES: usize = 512;

/// Access rights of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Perms {
    /// Read and write (data, device registers).
    pub const RW: Self = Self {
        read: true,
        write: true,
        exec: false,
    };
    /// Read, write and execute (guest RAM).
    pub const RWX: Self = Self {
        read: true,
        write: true,
        exec: true,
    };
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// RAM (write-back cacheable where the format says so).
    Normal,
    /// Passthrough MMIO: never executable.
    Device,
}

/// Why a mapping request was refused. Nothing is half-done on `Unaligned`,
/// `OutOfRange`, `BadPerms` and `SplitsBlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    Unaligned,
    /// Beyond the IPA space of this table.
    OutOfRange,
    /// Part of the range is mapped already.
    Overlap {
        gpa: u64,
    },
    OutOfMemory,
    /// Permissions the format cannot express (RISC-V has no write-only leaves).
    BadPerms,
    /// An unmap boundary falls inside a block mapping (blocks are not split).
    SplitsBlock {
        gpa: u64,
    },
}

/// The shape of a table for one IPA width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Level of the root table.
    pub start_level: u32,
    /// Physically contiguous 4 KiB tables making up the root (a power of two; the
    /// root is aligned to its size).
    pub root_tables: usize,
    /// The IPA width the table really covers (the format may widen a request, or
    /// narrow one the hardware cannot walk).
    pub ipa_bits: u32,
}

/// A leaf descriptor decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Output address of the start of what the leaf maps.
    pub pa: u64,
    pub perms: Perms,
    pub ty: MemType,
}

/// Descriptor encoding of one second-stage page-table format. Only encoding: the
/// walker in `mm::stage2` does every walk.
pub trait PageTableFormat {
    /// Widest IPA space the format can describe.
    const MAX_IPA_BITS: u32;

    /// Root level, root concatenation and effective width for an IPA space of
    /// `ipa_bits` (at most [`Self::MAX_IPA_BITS`]).
    fn geometry(ipa_bits: u32) -> Geometry;

    /// Address bits below what one entry at `level` maps.
    fn shift(level: u32) -> u32 {
        12 + 9 * level
    }

    /// Whether a leaf may sit at `level` (> 0) as a block / superpage.
    fn block_allowed(level: u32) -> bool;

    /// Whether `desc` is valid (a table or a leaf).
    fn is_valid(desc: u64) -> bool;

    /// Whether valid `desc` at `level` points to a next-level table.
    fn is_table(desc: u64, level: u32) -> bool;

    /// A descriptor pointing to the next-level table at `pa`.
    fn table(pa: u64) -> u64;

    /// The next-level table address in table descriptor `desc`.
    fn table_addr(desc: u64) -> u64;

    /// A leaf at `level` mapping `pa` (aligned to the level's span).
    fn leaf(pa: u64, level: u32, perms: Perms, ty: MemType) -> Result<u64, MapError>;

    /// `desc` at `level` as a leaf; None if it is invalid or a table.
    fn decode_leaf(desc: u64, level: u32) -> Option<Leaf>;
}

/// A source of zeroed 4 KiB table frames, and where they go back.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned frame for a table; its physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at physical address `pa` (one returned by `alloc_table` or
    /// `alloc_tables`).
    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES];
    /// `count` (a power of two) physically contiguous zeroed frames aligned to
    /// `count * 4 KiB`, for root tables wider than one page (RISC-V: 16 KiB).
    /// Sources that cannot do it only serve `count == 1`.
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if count == 1 {
            self.alloc_table()
        } else {
            None
        }
    }
    /// Gives back `count` frames at `pa`, as `alloc_tables(count)` (or
    /// `alloc_table` for 1) returned them.
    fn free_tables(&mut self, pa: u64, count: usize);
}
