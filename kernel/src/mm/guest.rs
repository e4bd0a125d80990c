//! A VM's RAM as the hypervisor sees it: guest-physical ranges and where they live in
//! host memory, for loading images and checking what a GPA is; and
//! [`GuestMemory`], the bounds-checked handle through which devices (DMA-style ones
//! such as virtio) read and write it: an address outside the VM's RAM is an error,
//! never a panic or a stray access.

use super::phys;
use crate::spec::mem_flags;
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

/// RAM that is filled lazily (zeroed on first touch): asked before the hypervisor
/// touches guest RAM on a device's behalf, so that the guest later sees what the
/// device wrote (and the device never reads what the memory held before the VM).
pub trait RamFill: Sync {
    /// Makes `[gpa, gpa + len)` hold what the guest would see there.
    fn fill(&self, gpa: u64, len: u64);
}

/// Why a guest-memory access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMemError {
    /// Part of `[gpa, gpa + len)` is not RAM of the VM.
    OutOfBounds { gpa: u64, len: u64 },
    /// The VM's RAM at `gpa` does not allow the access (a read-only region).
    NotPermitted { gpa: u64 },
}

/// A VM's RAM as a device reaches it: reads and writes of bytes at a GPA, checked
/// against the VM's RAM regions and their permissions. An access is checked whole
/// before any byte moves; it may span adjacent regions.
#[derive(Clone, Copy)]
pub struct GuestMemory<'a> {
    ram: &'a GuestRam,
    fill: Option<&'a dyn RamFill>,
}

impl<'a> GuestMemory<'a> {
    /// The handle to `ram`; `fill` is asked first about every range accessed.
    pub fn new(ram: &'a GuestRam, fill: Option<&'a dyn RamFill>) -> Self {
        Self { ram, fill }
    }

    /// Reads `out.len()` bytes at `gpa`.
    pub fn read(&self, gpa: u64, out: &mut [u8]) -> Result<(), GuestMemError> {
        self.pieces(gpa, out.len(), mem_flags::READ, |hpa, at, n| {
            // SAFETY: `pieces` checked that `[hpa, hpa + n)` is this VM's RAM, which
            // stays allocated while the VM exists; no reference to it is formed.
            unsafe { phys::read_bytes(hpa, &mut out[at..at + n]) }
        })
    }

    /// Writes `data` at `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), GuestMemError> {
        self.pieces(gpa, data.len(), mem_flags::WRITE, |hpa, at, n| {
            // SAFETY: `pieces` checked that `[hpa, hpa + n)` is this VM's writable
            // RAM, which stays allocated while the VM exists and holds nothing of
            // the hypervisor's.
            unsafe { phys::write_bytes(hpa, &data[at..at + n]) }
        })
    }

    /// Checks `[gpa, gpa + len)` whole, has it filled, then calls `f(hpa, offset,
    /// n)` for each piece of it that lies in one region.
    fn pieces(
        &self,
        gpa: u64,
        len: usize,
        need: u64,
        f: impl FnMut(u64, usize, usize),
    ) -> Result<(), GuestMemError> {
        self.walk(gpa, len, need, |_, _, _| {})?;
        if let Some(fill) = self.fill {
            fill.fill(gpa, len as u64);
        }
        self.walk(gpa, len, need, f)
    }

    fn walk(
        &self,
        gpa: u64,
        len: usize,
        need: u64,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), GuestMemError> {
        let oob = GuestMemError::OutOfBounds {
            gpa,
            len: len as u64,
        };
        let mut done = 0usize;
        while done < len {
            let at = gpa.checked_add(done as u64).ok_or(oob)?;
            let m = self.region(at).ok_or(oob)?;
            if m.flags & need == 0 {
                return Err(GuestMemError::NotPermitted { gpa: at });
            }
            let left = m.size - (at - m.gpa);
            let n = usize::try_from(left).map_or(len - done, |l| l.min(len - done));
            f(m.hpa + (at - m.gpa), done, n);
            done += n;
        }
        Ok(())
    }

    fn region(&self, gpa: u64) -> Option<&RamMapping> {
        self.ram
            .regions
            .iter()
            .find(|m| m.gpa <= gpa && gpa - m.gpa < m.size)
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

    const RW: u64 = mem_flags::READ | mem_flags::WRITE;

    /// Two adjacent regions over one host buffer (the fake architecture's physical
    /// memory is host memory), the second read-only, and a third one apart.
    fn ram_over(buf: &mut [u8]) -> GuestRam {
        let hpa = buf.as_mut_ptr() as u64;
        let mut ram = GuestRam::default();
        for (gpa, off, size, flags) in [
            (0x4000_0000, 0, 0x1000, RW),
            (0x4000_1000, 0x1000, 0x1000, RW),
            (0x4000_2000, 0x2000, 0x1000, mem_flags::READ),
            (0x8000_0000, 0x3000, 0x1000, RW),
        ] {
            ram.regions.push(RamMapping {
                gpa,
                hpa: hpa + off,
                size,
                flags,
            });
        }
        ram
    }

    #[test]
    fn guest_memory_reads_and_writes_inside_ram_only() {
        let mut buf = alloc::vec![0u8; 0x4000];
        let ram = ram_over(&mut buf);
        let mem = GuestMemory::new(&ram, None);
        mem.write(0x4000_0ffe, b"dma!").unwrap();
        let mut back = [0u8; 4];
        mem.read(0x4000_0ffe, &mut back).unwrap();
        assert_eq!(&back, b"dma!", "across two adjacent regions");
        mem.write(0x8000_0ff8, &7u64.to_le_bytes()).unwrap();
        assert_eq!(&buf[0xffe..0x1002], b"dma!");
        assert_eq!(buf[0x3ff8], 7);

        let mem = GuestMemory::new(&ram, None);
        let oob = |gpa, len| Err(GuestMemError::OutOfBounds { gpa, len });
        assert_eq!(mem.read(0x3fff_fffe, &mut back), oob(0x3fff_fffe, 4));
        assert_eq!(mem.write(0x8000_0ffe, b"dma!"), oob(0x8000_0ffe, 4));
        assert_eq!(mem.read(u64::MAX - 1, &mut back), oob(u64::MAX - 1, 4));
        assert_eq!(mem.write(0x4000_3000, b"x"), oob(0x4000_3000, 1));
        assert_eq!(
            mem.write(0x4000_1ffe, b"dma!"),
            Err(GuestMemError::NotPermitted { gpa: 0x4000_2000 })
        );
        mem.read(0x4000_2000, &mut back).unwrap();
        assert_eq!(
            &buf[0x1ffe..0x2000],
            &[0, 0],
            "a refused write moves nothing"
        );
        assert_eq!(mem.read(0x4000_0000, &mut []), Ok(()));
    }

    struct Recorder(spin::Mutex<Vec<(u64, u64)>>);

    impl RamFill for Recorder {
        fn fill(&self, gpa: u64, len: u64) {
            self.0.lock().push((gpa, len));
        }
    }

    #[test]
    fn guest_memory_fills_lazy_ram_before_touching_it() {
        let mut buf = alloc::vec![0u8; 0x4000];
        let ram = ram_over(&mut buf);
        let rec = Recorder(spin::Mutex::new(Vec::new()));
        let mem = GuestMemory::new(&ram, Some(&rec));
        mem.write(0x4000_0010, b"ab").unwrap();
        let _ = mem.write(0x9000_0000, b"ab");
        assert_eq!(*rec.0.lock(), [(0x4000_0010, 2)], "refused: nothing filled");
    }
}
