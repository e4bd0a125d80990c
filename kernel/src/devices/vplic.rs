//! Virtual RISC-V PLIC (platform-level interrupt controller), one per VM, laid out
//! like QEMU virt's (SiFive PLIC): source priorities at 0x0, pending bits at
//! 0x1000, per-context enable bits at 0x2000 + 0x80 * context, per-context threshold
//! and claim/complete at 0x20_0000 + 0x1000 * context.
//!
//! Contexts come in pairs per hart, as on QEMU virt: context 2n is hart n's M-mode
//! (kept, never delivered: a guest has no M-mode), context 2n + 1 its S-mode, which
//! the vCPU sees as VSEIP ([`Vplic::seip`]). Sources are level-triggered: a device
//! line sets its source pending while it is high and the source is not being
//! serviced (claimed and not yet completed), as QEMU's PLIC does.
//!
//! Besides the PLIC, the per-hart software lines a VM needs on riscv64 live here: the
//! software interrupt of SBI IPI calls (delivered as VSSIP) and remote-fence requests
//! of SBI RFENCE calls, both posted by one vCPU and taken by the target before it
//! next enters the guest.

use super::{MmioDevice, MmioError, Widths};
use alloc::vec::Vec;

/// Interrupt sources 1..=NDEV (0 means "none"): the number vmconfig's riscv64 rules
/// check console interrupts against (xtask and fs VMs alike).
pub const NDEV: u32 = match vmconfig::RISCV64.plic_sources {
    Some(n) => n,
    None => 95,
};
const SOURCES: usize = NDEV as usize + 1;
const WORDS: usize = SOURCES.div_ceil(32);
/// Priorities are 3 bits (1..=7; 0 never interrupts).
const PRIORITY_MASK: u32 = 7;

const PENDING_BASE: u64 = 0x1000;
const ENABLE_BASE: u64 = 0x2000;
const ENABLE_STRIDE: u64 = 0x80;
const CONTEXT_BASE: u64 = 0x20_0000;
const CONTEXT_STRIDE: u64 = 0x1000;
/// Size of the register window of QEMU virt's PLIC (room for 0x3e00 contexts).
pub const WINDOW: u64 = 0x60_0000;
/// Most harts (vCPUs) one PLIC serves here.
pub const MAX_HARTS: usize = 32;
/// In the `VmExit::Ipi` value of a riscv64 vCPU (a mask of hart ids): marks a remote
/// fence request (SBI RFENCE) rather than a software interrupt (SBI IPI).
pub const IPI_FENCE: u64 = 1 << 63;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlicError {
    NoHarts,
    TooManyHarts(usize),
}

pub struct Vplic {
    harts: usize,
    priority: [u32; SOURCES],
    pending: [u32; WORDS],
    /// Line state of each source, as the devices drive it.
    level: [u32; WORDS],
    /// Claimed and not yet completed.
    in_service: [u32; WORDS],
    enable: Vec<[u32; WORDS]>,
    threshold: Vec<u32>,
    /// Harts whose S-mode context had a deliverable interrupt at the last update.
    delivered: u64,
    kicks: u64,
    /// SBI IPI software interrupts not yet taken, per hart.
    soft: u64,
    /// SBI RFENCE requests not yet taken, per hart.
    fence: u64,
}

fn bit(id: u32) -> (usize, u32) {
    ((id / 32) as usize, 1 << (id % 32))
}

impl Vplic {
    /// A PLIC in its reset state for `harts` harts: everything zero.
    pub fn new(harts: usize) -> Result<Self, PlicError> {
        if harts == 0 {
            return Err(PlicError::NoHarts);
        }
        if harts > MAX_HARTS {
            return Err(PlicError::TooManyHarts(harts));
        }
        Ok(Self {
            harts,
            priority: [0; SOURCES],
            pending: [0; WORDS],
            level: [0; WORDS],
            in_service: [0; WORDS],
            enable: alloc::vec![[0; WORDS]; 2 * harts],
            threshold: alloc::vec![0; 2 * harts],
            delivered: 0,
            kicks: 0,
            soft: 0,
            fence: 0,
        })
    }

    pub fn harts(&self) -> usize {
        self.harts
    }

    fn contexts(&self) -> usize {
        2 * self.harts
    }

    fn hart_mask(&self) -> u64 {
        (1 << self.harts) - 1
    }

    /// Posts what a `VmExit::Ipi` value asks for: a fence request to the harts of
    /// the mask when [`IPI_FENCE`] is set, else a software interrupt.
    pub fn post(&mut self, value: u64) {
        if value & IPI_FENCE != 0 {
            self.post_fence(value & !IPI_FENCE);
        } else {
            self.post_ipi(value);
        }
    }

    /// Drives the line of `source` (1..=NDEV); other numbers are ignored.
    pub fn set_level(&mut self, source: u32, high: bool) {
        if source == 0 || source > NDEV {
            return;
        }
        let (w, b) = bit(source);
        if high {
            self.level[w] |= b;
            if self.in_service[w] & b == 0 {
                self.pending[w] |= b;
            }
        } else {
            self.level[w] &= !b;
            self.pending[w] &= !b;
        }
        self.update();
    }

    /// The source `context` would be given by a claim now (0: none).
    fn best(&self, context: usize) -> u32 {
        let Some(enable) = self.enable.get(context) else {
            return 0;
        };
        let threshold = self.threshold[context];
        let mut best = (0, 0);
        for id in 1..=NDEV {
            let (w, b) = bit(id);
            let prio = self.priority[id as usize];
            if self.pending[w] & enable[w] & b != 0 && prio > threshold && prio > best.1 {
                best = (id, prio);
            }
        }
        best.0
    }

    /// Whether hart `hart`'s S-mode context has an interrupt to take (VSEIP).
    pub fn seip(&self, hart: usize) -> bool {
        self.best(2 * hart + 1) != 0
    }

    fn claim(&mut self, context: usize) -> u32 {
        let id = self.best(context);
        if id != 0 {
            let (w, b) = bit(id);
            self.pending[w] &= !b;
            self.in_service[w] |= b;
            self.update();
        }
        id
    }

    fn complete(&mut self, context: usize, id: u32) {
        if id == 0 || id > NDEV {
            return;
        }
        let (w, b) = bit(id);
        // Completions of sources not enabled for the context are ignored.
        if self.enable[context][w] & b == 0 || self.in_service[w] & b == 0 {
            return;
        }
        self.in_service[w] &= !b;
        if self.level[w] & b != 0 {
            self.pending[w] |= b;
        }
        self.update();
    }

    /// Notes which harts got a deliverable interrupt since the last update.
    fn update(&mut self) {
        let now = (0..self.harts)
            .filter(|&h| self.seip(h))
            .fold(0u64, |m, h| m | 1 << h);
        self.kicks |= now & !self.delivered;
        self.delivered = now;
    }

    /// Posts an SBI IPI to the harts in `mask` (bits of harts that do not exist are
    /// dropped).
    pub fn post_ipi(&mut self, mask: u64) {
        let mask = mask & self.hart_mask();
        self.soft |= mask;
        self.kicks |= mask;
    }

    /// Takes hart `hart`'s pending IPI.
    pub fn take_ipi(&mut self, hart: usize) -> bool {
        self.take(hart, |s| &mut s.soft)
    }

    /// Asks the harts in `mask` to fence before they next run guest code.
    pub fn post_fence(&mut self, mask: u64) {
        let mask = mask & self.hart_mask();
        self.fence |= mask;
        self.kicks |= mask;
    }

    /// Takes hart `hart`'s pending fence request.
    pub fn take_fence(&mut self, hart: usize) -> bool {
        self.take(hart, |s| &mut s.fence)
    }

    fn take(&mut self, hart: usize, field: impl FnOnce(&mut Self) -> &mut u64) -> bool {
        if hart >= self.harts {
            return false;
        }
        let f = field(self);
        let was = *f & (1 << hart) != 0;
        *f &= !(1 << hart);
        was
    }

    /// Harts that may have something new to take since the last call (bit n = hart n).
    pub fn take_kicks(&mut self) -> u64 {
        core::mem::take(&mut self.kicks)
    }

    fn read_reg(&mut self, offset: u64) -> u32 {
        match offset {
            0..PENDING_BASE => self
                .priority
                .get((offset / 4) as usize)
                .copied()
                .unwrap_or(0),
            PENDING_BASE..ENABLE_BASE => self
                .pending
                .get(((offset - PENDING_BASE) / 4) as usize)
                .copied()
                .unwrap_or(0),
            ENABLE_BASE..CONTEXT_BASE => {
                let (ctx, word) = Self::enable_slot(offset);
                self.enable
                    .get(ctx)
                    .and_then(|e| e.get(word))
                    .copied()
                    .unwrap_or(0)
            }
            _ => match self.context_reg(offset) {
                Some((ctx, 0)) => self.threshold[ctx],
                Some((ctx, 4)) => self.claim(ctx),
                _ => 0,
            },
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            // Source 0 does not exist; its priority stays 0.
            4..PENDING_BASE => {
                if let Some(p) = self.priority.get_mut((offset / 4) as usize) {
                    *p = v & PRIORITY_MASK;
                }
            }
            ENABLE_BASE..CONTEXT_BASE => {
                let (ctx, word) = Self::enable_slot(offset);
                let valid = Self::valid_bits(word);
                if let Some(e) = self.enable.get_mut(ctx).and_then(|e| e.get_mut(word)) {
                    *e = v & valid;
                }
            }
            _ => match self.context_reg(offset) {
                Some((ctx, 0)) => self.threshold[ctx] = v & PRIORITY_MASK,
                Some((ctx, 4)) => self.complete(ctx, v),
                _ => return,
            },
        }
        self.update();
    }

    fn enable_slot(offset: u64) -> (usize, usize) {
        let rel = offset - ENABLE_BASE;
        (
            (rel / ENABLE_STRIDE) as usize,
            ((rel % ENABLE_STRIDE) / 4) as usize,
        )
    }

    /// Bits of enable word `word` that name sources 1..=NDEV.
    fn valid_bits(word: usize) -> u32 {
        (0..32)
            .filter(|i| {
                let id = word * 32 + i;
                id != 0 && id <= NDEV as usize
            })
            .fold(0, |m, i| m | 1 << i)
    }

    /// (context, register offset within the context) of a context register.
    fn context_reg(&self, offset: u64) -> Option<(usize, u64)> {
        let rel = offset.checked_sub(CONTEXT_BASE)?;
        let ctx = (rel / CONTEXT_STRIDE) as usize;
        (ctx < self.contexts()).then_some((ctx, rel % CONTEXT_STRIDE))
    }
}

fn check(offset: u64, width: u8) -> Result<(), MmioError> {
    if width != 4 {
        return Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::W4,
        });
    }
    if !offset.is_multiple_of(4) {
        return Err(MmioError::Unaligned { offset, width });
    }
    Ok(())
}

impl MmioDevice for Vplic {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        check(offset, width)?;
        Ok(u64::from(self.read_reg(offset)))
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        check(offset, width)?;
        self.write_reg(offset, value as u32);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UART: u32 = 10;

    fn rd(p: &mut Vplic, off: u64) -> u32 {
        p.read(off, 4).unwrap() as u32
    }
    fn wr(p: &mut Vplic, off: u64, v: u32) {
        p.write(off, 4, u64::from(v)).unwrap();
    }
    fn s_ctx(hart: u64) -> u64 {
        2 * hart + 1
    }
    fn enable(p: &mut Vplic, ctx: u64, id: u32) {
        let off = ENABLE_BASE + ctx * ENABLE_STRIDE + u64::from(id / 32) * 4;
        let old = rd(p, off);
        wr(p, off, old | 1 << (id % 32));
    }
    fn claim_reg(ctx: u64) -> u64 {
        CONTEXT_BASE + ctx * CONTEXT_STRIDE + 4
    }

    /// What Linux's PLIC driver does: thresholds 0, the source's priority 1,
    /// enabled on hart 0's S-mode context.
    fn linux_setup() -> Vplic {
        let mut p = Vplic::new(2).unwrap();
        for ctx in 0..4 {
            wr(&mut p, CONTEXT_BASE + ctx * CONTEXT_STRIDE, 0);
        }
        wr(&mut p, 4 * u64::from(UART), 1);
        enable(&mut p, s_ctx(0), UART);
        p
    }

    #[test]
    fn reset_state_and_registers() {
        let mut p = Vplic::new(2).unwrap();
        assert_eq!(rd(&mut p, 4 * 10), 0);
        wr(&mut p, 4 * 10, 0xff);
        assert_eq!(rd(&mut p, 4 * 10), 7, "3-bit priorities");
        wr(&mut p, 0, 5);
        assert_eq!(rd(&mut p, 0), 0, "source 0 has no priority");
        wr(&mut p, ENABLE_BASE + 0x80, u32::MAX);
        assert_eq!(
            rd(&mut p, ENABLE_BASE + 0x80),
            !1,
            "source 0 cannot be enabled"
        );
        wr(&mut p, ENABLE_BASE + 0x80 + 8, u32::MAX);
        assert_eq!(
            rd(&mut p, ENABLE_BASE + 0x80 + 8),
            u32::MAX,
            "sources 64..=95"
        );
        wr(&mut p, CONTEXT_BASE + 0x1000, 9);
        assert_eq!(rd(&mut p, CONTEXT_BASE + 0x1000), 1, "threshold masked");
        assert_eq!(rd(&mut p, claim_reg(3)), 0, "nothing pending");
        assert_eq!(rd(&mut p, claim_reg(7)), 0, "no context 7 with 2 harts");
        assert_eq!(rd(&mut p, 0x30_0000), 0);
        assert_eq!(
            p.read(4, 1),
            Err(MmioError::BadWidth {
                offset: 4,
                width: 1,
                accepts: Widths::W4,
            })
        );
        assert_eq!(
            p.write(6, 4, 0),
            Err(MmioError::Unaligned {
                offset: 6,
                width: 4
            })
        );
        assert_eq!(Vplic::new(0).err(), Some(PlicError::NoHarts));
        assert_eq!(Vplic::new(33).err(), Some(PlicError::TooManyHarts(33)));
    }

    #[test]
    fn claim_complete_cycle_of_a_level_interrupt() {
        let mut p = linux_setup();
        p.set_level(UART, true);
        assert_eq!(rd(&mut p, PENDING_BASE), 1 << UART);
        assert!(p.seip(0) && !p.seip(1));
        assert_eq!(p.take_kicks(), 0b01);
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), UART);
        assert!(!p.seip(0), "claimed: no longer pending");
        assert_eq!(rd(&mut p, PENDING_BASE), 0);
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), 0, "nothing else");
        // Line still high at completion: pending again.
        wr(&mut p, claim_reg(s_ctx(0)), UART);
        assert!(p.seip(0));
        assert_eq!(p.take_kicks(), 0b01);
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), UART);
        // The driver served the device: line drops, completion leaves nothing.
        p.set_level(UART, false);
        wr(&mut p, claim_reg(s_ctx(0)), UART);
        assert!(!p.seip(0));
        assert_eq!(p.take_kicks(), 0);
    }

    #[test]
    fn line_dropping_before_the_claim_withdraws_it() {
        let mut p = linux_setup();
        p.set_level(UART, true);
        p.set_level(UART, false);
        assert!(!p.seip(0));
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), 0);
    }

    #[test]
    fn priorities_thresholds_and_enables() {
        let mut p = linux_setup();
        wr(&mut p, 4 * 3, 2);
        enable(&mut p, s_ctx(0), 3);
        p.set_level(3, true);
        p.set_level(UART, true);
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), 3, "priority 2 beats 1");
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), UART);
        wr(&mut p, claim_reg(s_ctx(0)), 3);
        wr(&mut p, claim_reg(s_ctx(0)), UART);
        // Threshold 2: only priorities above it interrupt.
        wr(&mut p, CONTEXT_BASE + s_ctx(0) * CONTEXT_STRIDE, 2);
        assert!(!p.seip(0));
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), 0);
        wr(&mut p, 4 * 3, 3);
        assert!(p.seip(0));
        // Equal priorities: the lower id first.
        let mut p = linux_setup();
        wr(&mut p, 4 * 40, 1);
        enable(&mut p, s_ctx(0), 40);
        p.set_level(40, true);
        p.set_level(UART, true);
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), UART);
        // Not enabled for hart 1, and the M-mode context never shows as SEIP.
        enable(&mut p, 0, 40);
        assert!(!p.seip(1));
        assert_eq!(rd(&mut p, claim_reg(0)), 40, "the M-mode context can claim");
    }

    #[test]
    fn completions_must_match_an_enabled_source_in_service() {
        let mut p = linux_setup();
        p.set_level(UART, true);
        assert_eq!(rd(&mut p, claim_reg(s_ctx(0))), UART);
        wr(&mut p, claim_reg(s_ctx(1)), UART);
        wr(&mut p, claim_reg(s_ctx(0)), 0);
        wr(&mut p, claim_reg(s_ctx(0)), 200);
        assert!(!p.seip(0), "still in service");
        wr(&mut p, claim_reg(s_ctx(0)), UART);
        assert!(p.seip(0));
    }

    #[test]
    fn ipis_and_fences() {
        let mut p = Vplic::new(2).unwrap();
        p.post_ipi(0b110);
        assert_eq!(p.take_kicks(), 0b10, "hart 2 does not exist");
        assert!(p.take_ipi(1));
        assert!(!p.take_ipi(1), "taken once");
        assert!(!p.take_ipi(0) && !p.take_ipi(99));
        p.post_fence(u64::MAX);
        assert_eq!(p.take_kicks(), 0b11);
        assert!(p.take_fence(0) && p.take_fence(1) && !p.take_fence(0));
        assert!(!p.take_ipi(0), "fences are no IPIs");
        let mut big = Vplic::new(32).unwrap();
        big.post(!IPI_FENCE);
        assert!((0..32).all(|h| big.take_ipi(h)) && !big.take_fence(31));
        big.post(IPI_FENCE | 1 << 5);
        assert!(big.take_fence(5) && !big.take_ipi(5));
    }
}
