//! The doorbell of an inter-VM channel: one 4 KiB MMIO window per member VM. A write
//! rings peers (their doorbell raises its interrupt, level-triggered while any ring
//! is unacknowledged); a status register says who rang. The model is a pure state
//! machine over [`Peers`], the channel's side (`vmm::channel` in the hypervisor, a
//! fake in the tests below).
//!
//! Registers (32-bit accesses only):
//! - 0x00 MAGIC (ro): [`MAGIC`] ("IVC1").
//! - 0x04 ID (ro): this VM's number on the channel (its position on the `vms` list).
//! - 0x08 MEMBERS (ro): how many VMs the channel joins.
//! - 0x0C RING (wo): rings the members whose bits are set (this VM's own bit and bits
//!   past MEMBERS are ignored); reads 0.
//! - 0x10 STATUS: read: the members that rang since their bit was last cleared (bit i
//!   = member i); write: 1s clear those bits (the interrupt drops when none is left).
//! - 0x14 RUNG (ro): how many rings this doorbell has taken since reset (wraps).
//!
//! Other offsets read 0 and ignore writes.

use super::device::{Device, DeviceCtx};
use super::signal::Signal;
use super::{MmioError, Widths};
use alloc::sync::Arc;

/// "IVC1", little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"IVC1");
pub const REG_MAGIC: u64 = 0x00;
pub const REG_ID: u64 = 0x04;
pub const REG_MEMBERS: u64 = 0x08;
pub const REG_RING: u64 = 0x0C;
pub const REG_STATUS: u64 = 0x10;
pub const REG_RUNG: u64 = 0x14;

/// The channel as a doorbell sees it. Lock-free: rings come from other VMs' exits.
pub trait Peers: Send + Sync {
    /// How many VMs the channel joins.
    fn members(&self) -> u32;
    /// Member `from` rings the members of `mask` (already without `from` and without
    /// bits past [`Peers::members`]): each gets `from`'s bit and its signal raised.
    fn ring(&self, from: u32, mask: u32);
    /// The rings waiting for member `me` (bit i = member i rang), cleared.
    fn take(&self, me: u32) -> u32;
    /// Member `me`'s doorbell is on its VM's bus: rings raise `signal`.
    fn connect(&self, me: u32, signal: Signal);
}

/// One member's doorbell.
pub struct Doorbell {
    peers: Arc<dyn Peers>,
    me: u32,
    irq: u32,
    status: u32,
    rung: u32,
}

impl Doorbell {
    /// The doorbell of member `me` of `peers`, raising `irq` (0: none) when rung.
    pub fn new(peers: Arc<dyn Peers>, me: u32, irq: u32) -> Self {
        Self {
            peers,
            me,
            irq,
            status: 0,
            rung: 0,
        }
    }

    /// Moves the rings waiting on the channel into STATUS.
    fn collect(&mut self) {
        let new = self.peers.take(self.me);
        self.rung = self.rung.wrapping_add(new.count_ones());
        self.status |= new;
    }

    fn level(&self) -> bool {
        self.status != 0
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

    /// The members a RING of `value` reaches.
    fn targets(&self, value: u64) -> u32 {
        let all = match self.peers.members() {
            n if n >= 32 => u32::MAX,
            n => (1u32 << n) - 1,
        };
        (value as u32) & all & !(1u32.checked_shl(self.me).unwrap_or(0))
    }
}

impl Device for Doorbell {
    fn mmio_read(&mut self, _: &mut DeviceCtx, offset: u64, width: u8) -> Result<u64, MmioError> {
        Self::check(offset, width)?;
        Ok(u64::from(match offset {
            REG_MAGIC => MAGIC,
            REG_ID => self.me,
            REG_MEMBERS => self.peers.members(),
            REG_STATUS => {
                self.collect();
                self.status
            }
            REG_RUNG => {
                self.collect();
                self.rung
            }
            _ => 0,
        }))
    }

    fn mmio_write(
        &mut self,
        ctx: &mut DeviceCtx,
        offset: u64,
        width: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        Self::check(offset, width)?;
        match offset {
            REG_RING => {
                let mask = self.targets(value);
                if mask != 0 {
                    self.peers.ring(self.me, mask);
                }
            }
            REG_STATUS => {
                self.collect();
                self.status &= !(value as u32);
                ctx.set_irq(self.irq, self.level());
            }
            _ => {}
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.peers.take(self.me);
        self.status = 0;
        self.rung = 0;
    }

    fn connect(&mut self, signal: Signal) {
        self.peers.connect(self.me, signal);
    }

    /// A peer rang: STATUS gains its bit and the interrupt is raised.
    fn service(&mut self, ctx: &mut DeviceCtx) {
        self.collect();
        ctx.set_irq(self.irq, self.level());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::signal::SignalBoard;
    use crate::devices::testdev::RecordingChip;
    use crate::mm::guest::{GuestMemory, GuestRam};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};
    use spin::Mutex;

    /// Three members; rings are recorded and delivered like the channel does.
    struct Fake {
        pending: [AtomicU32; 3],
        signals: Mutex<Vec<(u32, Signal)>>,
        rings: Mutex<Vec<(u32, u32)>>,
    }

    impl Fake {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                pending: Default::default(),
                signals: Mutex::new(Vec::new()),
                rings: Mutex::new(Vec::new()),
            })
        }
    }

    impl Peers for Fake {
        fn members(&self) -> u32 {
            3
        }
        fn ring(&self, from: u32, mask: u32) {
            self.rings.lock().push((from, mask));
            for i in 0..3 {
                if mask & 1 << i != 0 {
                    self.pending[i].fetch_or(1 << from, Ordering::AcqRel);
                    for (m, s) in self.signals.lock().iter() {
                        if *m == i as u32 {
                            s.raise();
                        }
                    }
                }
            }
        }
        fn take(&self, me: u32) -> u32 {
            self.pending[me as usize].swap(0, Ordering::AcqRel)
        }
        fn connect(&self, me: u32, signal: Signal) {
            self.signals.lock().push((me, signal));
        }
    }

    fn with_ctx<R>(chip: &mut RecordingChip, f: impl FnOnce(&mut DeviceCtx) -> R) -> R {
        let mut events = Vec::new();
        let ram = GuestRam::default();
        let mut ctx = DeviceCtx::new(0, Some(chip), GuestMemory::new(&ram, None), &mut events);
        f(&mut ctx)
    }

    fn read(d: &mut Doorbell, chip: &mut RecordingChip, off: u64) -> u64 {
        with_ctx(chip, |c| d.mmio_read(c, off, 4)).unwrap()
    }

    fn write(d: &mut Doorbell, chip: &mut RecordingChip, off: u64, v: u64) {
        with_ctx(chip, |c| d.mmio_write(c, off, 4, v)).unwrap()
    }

    #[test]
    fn identity_registers() {
        let fake = Fake::new();
        let mut d = Doorbell::new(fake, 1, 40);
        let chip = &mut RecordingChip::default();
        assert_eq!(read(&mut d, chip, REG_MAGIC), 0x3143_5649);
        assert_eq!(read(&mut d, chip, REG_ID), 1);
        assert_eq!(read(&mut d, chip, REG_MEMBERS), 3);
        assert_eq!(read(&mut d, chip, REG_RING), 0);
        assert_eq!(read(&mut d, chip, 0xff0), 0);
        write(&mut d, chip, REG_MAGIC, 5); // read-only: ignored
        assert_eq!(read(&mut d, chip, REG_MAGIC), u64::from(MAGIC));
        assert!(chip.levels.is_empty());
    }

    #[test]
    fn only_aligned_words() {
        let mut d = Doorbell::new(Fake::new(), 0, 40);
        let chip = &mut RecordingChip::default();
        for w in [1u8, 2, 8] {
            let e = with_ctx(chip, |c| d.mmio_read(c, REG_STATUS, w)).unwrap_err();
            assert_eq!(
                e,
                MmioError::BadWidth {
                    offset: REG_STATUS,
                    width: w,
                    accepts: Widths::W4,
                }
            );
        }
        let e = with_ctx(chip, |c| d.mmio_write(c, 0x0e, 4, 1)).unwrap_err();
        assert_eq!(
            e,
            MmioError::Unaligned {
                offset: 0x0e,
                width: 4
            }
        );
    }

    #[test]
    fn a_ring_reaches_only_other_members() {
        let fake = Fake::new();
        let mut d = Doorbell::new(fake.clone(), 1, 40);
        let chip = &mut RecordingChip::default();
        write(&mut d, chip, REG_RING, 0xffff_ffff);
        write(&mut d, chip, REG_RING, 0b010); // itself only: nothing
        write(&mut d, chip, REG_RING, 0b1000); // past MEMBERS: nothing
        write(&mut d, chip, REG_RING, 0b001);
        assert_eq!(*fake.rings.lock(), [(1, 0b101), (1, 0b001)]);
        assert_eq!(fake.take(0), 0b010);
        assert_eq!(fake.take(2), 0b010);
        assert_eq!(fake.take(1), 0, "a member never rings itself");
    }

    #[test]
    fn a_peer_s_ring_raises_the_line_until_cleared() {
        let fake = Fake::new();
        let board = Arc::new(SignalBoard::default());
        let mut d0 = Doorbell::new(fake.clone(), 0, 40);
        d0.connect(Signal::new(&board, 3).unwrap());
        let mut d2 = Doorbell::new(fake.clone(), 2, 41);
        let chip = &mut RecordingChip::default();
        // Member 2 rings member 0: 0's signal is raised, service raises its line.
        write(&mut d2, chip, REG_RING, 0b001);
        assert_eq!(board.take(), 1 << 3);
        with_ctx(chip, |c| d0.service(c));
        assert_eq!(chip.levels, [(40, true)]);
        assert_eq!(read(&mut d0, chip, REG_STATUS), 0b100);
        assert_eq!(read(&mut d0, chip, REG_RUNG), 1);
        // Clearing another bit keeps the line up; clearing 2's drops it.
        write(&mut d0, chip, REG_STATUS, 0b010);
        assert_eq!(chip.levels.last(), Some(&(40, true)));
        write(&mut d0, chip, REG_STATUS, 0b100);
        assert_eq!(chip.levels.last(), Some(&(40, false)));
        assert_eq!(read(&mut d0, chip, REG_STATUS), 0);
        // A ring that is polled (STATUS read before any service) is seen too.
        write(&mut d2, chip, REG_RING, 0b001);
        assert_eq!(read(&mut d0, chip, REG_STATUS), 0b100);
        assert_eq!(read(&mut d0, chip, REG_RUNG), 2);
    }

    #[test]
    fn reset_forgets_rings() {
        let fake = Fake::new();
        let mut d0 = Doorbell::new(fake.clone(), 0, 40);
        let mut d1 = Doorbell::new(fake.clone(), 1, 41);
        let chip = &mut RecordingChip::default();
        write(&mut d1, chip, REG_RING, 0b001);
        assert_eq!(read(&mut d0, chip, REG_STATUS), 0b010);
        write(&mut d1, chip, REG_RING, 0b001);
        d0.reset();
        assert_eq!(read(&mut d0, chip, REG_STATUS), 0);
        assert_eq!(read(&mut d0, chip, REG_RUNG), 0);
    }
}
