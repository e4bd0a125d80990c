//! The real transport and memory: an MMIO window of the host (identity-mapped as
//! device memory) and physical RAM frames the device reads and writes.

use core::ptr::{read_volatile, write_volatile};

use super::{Clock, Dma, Regs};
use crate::hal::{Current, HostTimer};

/// A virtio-mmio window at host-physical `base`.
pub struct MmioRegs {
    pub base: u64,
}

impl Regs for MmioRegs {
    fn read(&self, off: u64) -> u32 {
        // SAFETY: `base` is a virtio-mmio window from the DTB, mapped as device
        // memory by the hypervisor's identity map; `off` is a register inside it.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn write(&mut self, off: u64, v: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }
}

/// Frames of RAM owned by the driver for as long as the machine runs.
pub struct PhysDma {
    pub base: u64,
    pub len: usize,
}

impl Dma for PhysDma {
    fn addr(&self) -> u64 {
        self.base
    }

    fn size(&self) -> usize {
        self.len
    }

    fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.len, "DMA read out of bounds");
        // SAFETY: the range lies in frames this driver owns; the device may write
        // them, so no reference to them is formed and each call reads afresh.
        unsafe { crate::mm::phys::read_bytes(self.base + off as u64, out) }
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len, "DMA write out of bounds");
        // SAFETY: as in `read`.
        unsafe { crate::mm::phys::write_bytes(self.base + off as u64, data) }
    }
}

/// The architecture's counter.
pub struct HostClock;

impl Clock for HostClock {
    fn now_us(&self) -> u64 {
        let hz = Current::counter_hz().max(1);
        (u128::from(Current::counter()) * 1_000_000 / u128::from(hz)) as u64
    }
}
