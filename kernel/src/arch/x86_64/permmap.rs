//! The SVM I/O and MSR permission maps (AMD APM vol. 2, 15.10 and 15.11): which
//! `in`/`out` and `rdmsr`/`wrmsr` of a guest exit to the hypervisor. A set bit
//! intercepts. Pure bitmaps over caller-owned memory, so every rule is unit-tested on
//! the host; the VMCB points at them by physical address (IOPM_BASE_PA,
//! MSRPM_BASE_PA, both 4 KiB aligned).
//!
//! Default: everything intercepted (ports and MSRs the hypervisor does not emulate
//! are refused, never passed to hardware); [`MsrMap::pass`] opens an MSR the CPU
//! keeps per guest in the VMCB (FS/GS base, SYSCALL MSRs ...).

/// Bytes of the I/O permission map: one bit per port, plus the bits an access at
/// the top ports spills into (3 pages).
pub const IOPM_SIZE: usize = 3 * 4096;
/// Bytes of the MSR permission map (2 pages).
pub const MSRPM_SIZE: usize = 2 * 4096;

/// The I/O permission map.
pub struct IoMap<'a>(&'a mut [u8; IOPM_SIZE]);

impl<'a> IoMap<'a> {
    /// Every port intercepted.
    pub fn new(bytes: &'a mut [u8; IOPM_SIZE]) -> Self {
        bytes.fill(0xff);
        Self(bytes)
    }

    fn set(&mut self, port: u16, on: bool) {
        let (byte, bit) = (port as usize / 8, port % 8);
        if on {
            self.0[byte] |= 1 << bit;
        } else {
            self.0[byte] &= !(1 << bit);
        }
    }

    /// Lets the guest reach ports `[first, first + count)` directly.
    pub fn pass(&mut self, first: u16, count: u16) {
        for p in first..first.saturating_add(count) {
            self.set(p, false);
        }
    }

    /// Whether an access of `width` bytes at `port` exits (the CPU checks every
    /// port the access touches).
    pub fn intercepts(&self, port: u16, width: u8) -> bool {
        (0..width as usize).any(|i| {
            let p = port as usize + i;
            self.0[p / 8] & (1 << (p % 8)) != 0
        })
    }
}

/// The three MSR ranges the map covers and the byte offset of each in the map.
const MSR_RANGES: [(u32, usize); 3] = [(0, 0), (0xc000_0000, 0x800), (0xc001_0000, 0x1000)];
/// MSRs per range.
const RANGE_LEN: u32 = 0x2000;

/// The MSR permission map: two bits per MSR, read then write.
pub struct MsrMap<'a>(&'a mut [u8; MSRPM_SIZE]);

impl<'a> MsrMap<'a> {
    /// Every MSR intercepted (MSRs outside the three ranges always are).
    pub fn new(bytes: &'a mut [u8; MSRPM_SIZE]) -> Self {
        bytes.fill(0xff);
        Self(bytes)
    }

    /// (byte, bit of the read permission) of `msr`; None outside the map.
    fn slot(msr: u32) -> Option<(usize, u8)> {
        MSR_RANGES.iter().find_map(|&(base, off)| {
            let i = msr.checked_sub(base).filter(|&i| i < RANGE_LEN)? as usize;
            Some((off + i / 4, (i % 4) as u8 * 2))
        })
    }

    /// Lets the guest read and write `msr` directly; false when the map cannot
    /// (outside its ranges: always intercepted).
    pub fn pass(&mut self, msr: u32) -> bool {
        match Self::slot(msr) {
            Some((byte, bit)) => {
                self.0[byte] &= !(0b11 << bit);
                true
            }
            None => false,
        }
    }

    /// Whether a read (`write` false) or write of `msr` exits.
    pub fn intercepts(&self, msr: u32, write: bool) -> bool {
        match Self::slot(msr) {
            Some((byte, bit)) => self.0[byte] & (1 << (bit + write as u8)) != 0,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    #[test]
    fn ports_are_intercepted_unless_passed_and_wide_accesses_check_every_port() {
        let mut bytes = Box::new([0u8; IOPM_SIZE]);
        let mut m = IoMap::new(&mut bytes);
        assert!(m.intercepts(0x3f8, 1));
        assert!(m.intercepts(0xffff, 4));
        m.pass(0x80, 4);
        assert!(!m.intercepts(0x80, 1));
        assert!(!m.intercepts(0x80, 4));
        // 0x82..0x85: 0x84 is still intercepted.
        assert!(m.intercepts(0x82, 4));
        assert!(m.intercepts(0x7f, 2));
        // Port 0x80 is bit 0 of byte 0x10; the rest of the map stays set.
        assert_eq!(bytes[0x10], 0xf0);
        assert_eq!(bytes[IOPM_SIZE - 1], 0xff);
    }

    #[test]
    fn msrs_in_the_three_ranges_are_passed_by_two_bits_others_always_exit() {
        let mut bytes = Box::new([0u8; MSRPM_SIZE]);
        let mut m = MsrMap::new(&mut bytes);
        // FS base (0xc000_0100): range 2, MSR 0x100 -> byte 0x800 + 0x40, bits 0..1.
        assert!(m.pass(0xc000_0100));
        assert!(!m.intercepts(0xc000_0100, false));
        assert!(!m.intercepts(0xc000_0100, true));
        assert!(m.intercepts(0xc000_0101, false));
        // IA32_SYSENTER_CS (0x174): range 1 -> byte 0x5d, bits 0..1.
        assert!(m.pass(0x174));
        // An AMD MSR in the third range: VM_HSAVE_PA (0xc001_0117) stays intercepted.
        assert!(m.intercepts(0xc001_0117, true));
        assert!(m.pass(0xc001_0117));
        // Outside every range.
        assert!(!m.pass(0x4000_0000));
        assert!(m.intercepts(0x4000_0000, false));
        assert!(m.intercepts(0x2000, true));
        assert_eq!(bytes[0x800 + 0x40], 0xfc);
        assert_eq!(bytes[0x5d], 0xfc);
        assert_eq!(bytes[0x1000 + 0x117 / 4], !(0b11 << 6));
    }
}
