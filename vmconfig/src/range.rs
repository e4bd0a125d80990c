//! Address ranges `[base, base + size)` and the few operations the checks need.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub const PAGE: u64 = 0x1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    pub fn new(base: u64, size: u64) -> Self {
        Range { base, size }
    }

    /// The end (exclusive), or `None` when `base + size` does not fit in 64 bits.
    pub fn end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    /// The end, saturated (for ranges already known not to overflow).
    fn end_sat(&self) -> u128 {
        self.base as u128 + self.size as u128
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.size != 0
            && other.size != 0
            && (self.base as u128) < other.end_sat()
            && (other.base as u128) < self.end_sat()
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_range(&self, other: &Range) -> bool {
        other.base >= self.base && other.end_sat() <= self.end_sat()
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && (addr as u128) < self.end_sat()
    }

    pub fn is_aligned(&self, align: u64) -> bool {
        self.base.is_multiple_of(align) && self.size.is_multiple_of(align)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.base, self.end_sat())
    }
}

/// Whether `r` lies entirely inside the union of `regions` (which may be adjacent).
pub fn covered_by(r: &Range, regions: &[Range]) -> bool {
    let mut sorted: Vec<Range> = regions.to_vec();
    sorted.sort();
    let mut cursor = r.base as u128;
    let end = r.base as u128 + r.size as u128;
    for reg in sorted {
        if (reg.base as u128) <= cursor && reg.end_sat() > cursor {
            cursor = reg.end_sat();
            if cursor >= end {
                return true;
            }
        }
    }
    cursor >= end
}

/// A size as `16 MiB`, `1 GiB`, or bytes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    if bytes >= 1 << 20 {
        return format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64);
    }
    if bytes >= 1 << 10 {
        return format!("{:.1} KiB", bytes as f64 / 1024.0);
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn overlap_and_containment() {
        let a = Range::new(0x1000, 0x1000);
        let b = Range::new(0x1800, 0x1000);
        let c = Range::new(0x2000, 0x1000);
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c), "adjacent ranges do not overlap");
        assert!(Range::new(0, 0x10000).contains_range(&a));
        assert!(!a.contains_range(&b));
        assert!(a.contains(0x1fff));
        assert!(!a.contains(0x2000));
        assert_eq!(Range::new(u64::MAX, 2).end(), None);
        assert!(Range::new(u64::MAX - 1, 2).overlaps(&Range::new(u64::MAX - 1, 1)));
    }

    #[test]
    fn covered_by_adjacent_regions() {
        let regions = [Range::new(0x0, 0x1000), Range::new(0x1000, 0x1000)];
        assert!(covered_by(&Range::new(0x800, 0x1000), &regions));
        assert!(!covered_by(&Range::new(0x800, 0x2000), &regions));
        assert!(!covered_by(&Range::new(0x3000, 0x10), &regions));
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_size(16 << 20), "16 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(100), "100 B");
        assert_eq!(human_size(1536 * 1024 + 1), "1.5 MiB");
        assert_eq!(
            Range::new(0x4000_0000, 0x100_0000).to_string(),
            "0x40000000..0x41000000"
        );
    }
}
