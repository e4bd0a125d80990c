//! The virtio block driver: reads only, one request at a time, polled. Requests and
//! the data bounce buffer live in the DMA area after the queue.

use super::queue::{Queue, DESC_F_NEXT, DESC_F_WRITE, QUEUE_BYTES};
use super::{reg, status, Clock, Dma, ProbeError, Regs, DEVICE_BLOCK, F_VERSION_1, MAGIC};
use crate::drivers::block::{BlockDevice, BlockError, BLOCK};

/// The request header (16 bytes) and its status byte after it.
const HEADER: usize = QUEUE_BYTES;
const STATUS_BYTE: usize = HEADER + 16;
/// The data bounce buffer.
const DATA: usize = QUEUE_BYTES + 4096;
/// Smallest DMA area: the queue, a request page and one block of data.
pub const MIN_DMA: usize = DATA + BLOCK;
/// Request type: read.
const T_IN: u32 = 0;
/// How long one request may take.
const TIMEOUT_US: u64 = 5_000_000;

/// A virtio block device on an MMIO transport.
pub struct VirtioBlk<R: Regs, D: Dma, C: Clock> {
    regs: R,
    dma: D,
    clock: C,
    queue: Queue,
    version: u32,
    capacity: u64,
    /// A request timed out: the device may still write the DMA area, so nothing
    /// more is asked of it.
    dead: bool,
}

impl<R: Regs, D: Dma, C: Clock> VirtioBlk<R, D, C> {
    /// Brings up the block device behind `regs` (reset, features, queue 0) with its
    /// queue and requests in `dma` (page-aligned, at least [`MIN_DMA`] bytes).
    pub fn probe(mut regs: R, mut dma: D, clock: C) -> Result<Self, ProbeError> {
        if regs.read(reg::MAGIC) != MAGIC {
            return Err(ProbeError::NotVirtio);
        }
        let version = regs.read(reg::VERSION);
        if version != 1 && version != 2 {
            return Err(ProbeError::UnknownVersion(version));
        }
        match regs.read(reg::DEVICE_ID) {
            0 => return Err(ProbeError::Empty),
            DEVICE_BLOCK => {}
            other => return Err(ProbeError::OtherDevice(other)),
        }
        if dma.size() < MIN_DMA || !dma.addr().is_multiple_of(4096) {
            return Err(ProbeError::DmaTooSmall);
        }
        regs.write(reg::STATUS, 0);
        let mut st = status::ACKNOWLEDGE | status::DRIVER;
        regs.write(reg::STATUS, st);
        let offered = features(&mut regs);
        // No optional feature is needed; a modern device must get VERSION_1.
        let wanted = if version == 2 { F_VERSION_1 } else { 0 };
        if offered & wanted != wanted {
            regs.write(reg::STATUS, st | status::FAILED);
            return Err(ProbeError::FeaturesRefused);
        }
        for (sel, half) in [(0, wanted as u32), (1, (wanted >> 32) as u32)] {
            regs.write(reg::DRIVER_FEATURES_SEL, sel);
            regs.write(reg::DRIVER_FEATURES, half);
        }
        if version == 2 {
            st |= status::FEATURES_OK;
            regs.write(reg::STATUS, st);
            if regs.read(reg::STATUS) & status::FEATURES_OK == 0 {
                regs.write(reg::STATUS, st | status::FAILED);
                return Err(ProbeError::FeaturesRefused);
            }
        } else {
            regs.write(reg::GUEST_PAGE_SIZE, 4096);
        }
        regs.write(reg::QUEUE_SEL, 0);
        let max = regs.read(reg::QUEUE_NUM_MAX);
        let Some(queue) = Queue::new(max, &mut dma) else {
            regs.write(reg::STATUS, st | status::FAILED);
            return Err(ProbeError::NoQueue(max));
        };
        regs.write(reg::QUEUE_NUM, u32::from(queue.size()));
        let base = dma.addr();
        if version == 2 {
            let parts = [
                (reg::QUEUE_DESC_LOW, base),
                (reg::QUEUE_DRIVER_LOW, base + queue.avail_off() as u64),
                (reg::QUEUE_DEVICE_LOW, base + super::queue::USED as u64),
            ];
            for (low, addr) in parts {
                regs.write(low, addr as u32);
                regs.write(low + 4, (addr >> 32) as u32);
            }
            regs.write(reg::QUEUE_READY, 1);
        } else {
            let Ok(pfn) = u32::try_from(base / 4096) else {
                regs.write(reg::STATUS, st | status::FAILED);
                return Err(ProbeError::DmaTooSmall);
            };
            regs.write(reg::QUEUE_ALIGN, 4096);
            regs.write(reg::QUEUE_PFN, pfn);
        }
        regs.write(reg::STATUS, st | status::DRIVER_OK);
        let capacity =
            u64::from(regs.read(reg::CONFIG)) | (u64::from(regs.read(reg::CONFIG + 4)) << 32);
        Ok(Self {
            regs,
            dma,
            clock,
            queue,
            version,
            capacity,
            dead: false,
        })
    }

    /// The transport version: 1 legacy, 2 modern.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Reads `buf.len() / BLOCK` blocks (at most the bounce buffer) from `lba`.
    fn read_chunk(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&T_IN.to_le_bytes());
        hdr[8..].copy_from_slice(&lba.to_le_bytes());
        self.dma.write(HEADER, &hdr);
        self.dma.write(STATUS_BYTE, &[0xff]);
        let base = self.dma.addr();
        let q = &mut self.queue;
        let len = buf.len() as u32;
        q.set_desc(&mut self.dma, 0, base + HEADER as u64, 16, DESC_F_NEXT, 1);
        let w = DESC_F_WRITE | DESC_F_NEXT;
        q.set_desc(&mut self.dma, 1, base + DATA as u64, len, w, 2);
        q.set_desc(
            &mut self.dma,
            2,
            base + STATUS_BYTE as u64,
            1,
            DESC_F_WRITE,
            0,
        );
        q.submit(&mut self.dma, 0);
        self.regs.write(reg::QUEUE_NOTIFY, 0);
        let start = self.clock.now_us();
        let (id, _) = loop {
            if let Some(done) = self.queue.poll(&self.dma) {
                break done;
            }
            if self.clock.now_us().saturating_sub(start) > TIMEOUT_US {
                self.dead = true;
                return Err(BlockError::Timeout);
            }
            core::hint::spin_loop();
        };
        let isr = self.regs.read(reg::INTERRUPT_STATUS);
        self.regs.write(reg::INTERRUPT_ACK, isr);
        if id != 0 {
            self.dead = true;
            return Err(BlockError::Protocol("finished a request that was not made"));
        }
        let mut st = [0u8];
        self.dma.read(STATUS_BYTE, &mut st);
        match st[0] {
            0 => {}
            1 => return Err(BlockError::Io),
            2 => return Err(BlockError::Unsupported),
            _ => return Err(BlockError::Protocol("unknown request status")),
        }
        self.dma.read(DATA, buf);
        Ok(())
    }
}

/// Every feature bit the device offers.
fn features(regs: &mut impl Regs) -> u64 {
    regs.write(reg::DEVICE_FEATURES_SEL, 0);
    let low = regs.read(reg::DEVICE_FEATURES);
    regs.write(reg::DEVICE_FEATURES_SEL, 1);
    let high = regs.read(reg::DEVICE_FEATURES);
    u64::from(low) | (u64::from(high) << 32)
}

impl<R: Regs, D: Dma, C: Clock> BlockDevice for VirtioBlk<R, D, C> {
    fn blocks(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let blocks = (buf.len() / BLOCK) as u64;
        let whole = buf.len().is_multiple_of(BLOCK);
        if !whole
            || lba
                .checked_add(blocks)
                .is_none_or(|end| end > self.capacity)
        {
            return Err(BlockError::OutOfRange { lba, blocks });
        }
        if self.dead {
            return Err(BlockError::Timeout);
        }
        let room = (self.dma.size() - DATA) / BLOCK * BLOCK;
        for (i, chunk) in buf.chunks_mut(room).enumerate() {
            self.read_chunk(lba + (i * room / BLOCK) as u64, chunk)?;
        }
        Ok(())
    }
}
