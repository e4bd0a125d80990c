//! A VM's RAM as the hypervisor sees it: guest-physical ranges and where they live in
//! host memory, for loading images and checking what a GPA is.

use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamMapping {
    pub gpa: u64,
    pub hpa: u64,
    pub size: u64,
    /// `mem_flags` of the region (read, write, execute).
    pub flags: u64,
}

#[derive(Default)]
pub struct GuestRam {
    pub regions: Vec<RamMapping>,
}

impl GuestRam {
    /// The host-physical address backing `[gpa, gpa + len)` if it lies in one region.
    pub fn translate(&self, gpa: u64, len: u64) -> Option<u64> {
        self.regions.iter().find_map(|m| {
            let end = gpa.checked_add(len)?;
            (m.gpa <= gpa && end <= m.gpa + m.size).then(|| m.hpa + (gpa - m.gpa))
        })
    }

    pub fn contains(&self, gpa: u64) -> bool {
        self.translate(gpa, 1).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_inside_one_region_only() {
        let mut ram = GuestRam::default();
        ram.regions.push(RamMapping {
            gpa: 0x4000_0000,
            hpa: 0x8000_0000,
            size: 0x1000,
            flags: 0,
        });
        ram.regions.push(RamMapping {
            gpa: 0x4000_1000,
            hpa: 0x9000_0000,
            size: 0x1000,
            flags: 0,
        });
        assert_eq!(ram.translate(0x4000_0010, 0x10), Some(0x8000_0010));
        assert_eq!(ram.translate(0x4000_1ff0, 0x10), Some(0x9000_0ff0));
        assert_eq!(
            ram.translate(0x4000_0ff0, 0x20),
            None,
            "straddles two host ranges"
        );
        assert_eq!(ram.translate(u64::MAX, 2), None);
        assert!(!ram.contains(0x4000_2000));
    }
}
