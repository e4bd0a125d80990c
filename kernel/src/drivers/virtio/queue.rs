//! One split virtqueue (virtio 1.x section 2.7) inside a [`Dma`] area: the
//! descriptor table and the driver ("available") ring in its first page, the device
//! ("used") ring in its second, laid out so that the legacy transport (one page
//! number, 4096-byte alignment) and the modern one (three addresses) both find it.

use super::Dma;

/// Where the used ring starts (legacy alignment).
pub const USED: usize = 4096;
/// Bytes of the queue: two pages.
pub const QUEUE_BYTES: usize = 2 * 4096;
/// Most descriptors used: the largest size whose rings fit the layout is 128; a
/// polled driver with one request in flight needs few.
pub const MAX_SIZE: u16 = 8;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;

/// The driver's side of the queue.
#[derive(Debug)]
pub struct Queue {
    size: u16,
    /// The next index of the available ring to fill.
    avail_idx: u16,
    /// The next index of the used ring to read.
    used_idx: u16,
}

impl Queue {
    /// A queue of the largest power of two descriptors up to `max` and [`MAX_SIZE`]
    /// (`None` below 4), its rings zeroed in `dma`.
    pub fn new(max: u32, dma: &mut impl Dma) -> Option<Self> {
        let cap = max.min(u32::from(MAX_SIZE));
        if cap < 4 || dma.size() < QUEUE_BYTES {
            return None;
        }
        let size = 1u16 << (31 - cap.leading_zeros());
        dma.write(0, &[0; QUEUE_BYTES]);
        Some(Self {
            size,
            avail_idx: 0,
            used_idx: 0,
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Offset of the available ring in the DMA area.
    pub fn avail_off(&self) -> usize {
        16 * usize::from(self.size)
    }

    /// Writes descriptor `i`.
    pub fn set_desc(&self, dma: &mut impl Dma, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        dma.write(16 * usize::from(i % self.size), &d);
    }

    /// Offers the chain starting at descriptor `head` to the device (the caller
    /// notifies it afterwards).
    pub fn submit(&mut self, dma: &mut impl Dma, head: u16) {
        let slot = usize::from(self.avail_idx % self.size);
        let ring = self.avail_off() + 4 + 2 * slot;
        dma.write(ring, &head.to_le_bytes());
        // The entry must be visible before the index that publishes it.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        dma.write(self.avail_off() + 2, &self.avail_idx.to_le_bytes());
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    /// The next chain the device has finished: (head descriptor, bytes it wrote).
    pub fn poll(&mut self, dma: &impl Dma) -> Option<(u32, u32)> {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let mut idx = [0u8; 2];
        dma.read(USED + 2, &mut idx);
        if u16::from_le_bytes(idx) == self.used_idx {
            return None;
        }
        // The entry is read only after the index that published it.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let slot = usize::from(self.used_idx % self.size);
        let mut e = [0u8; 8];
        dma.read(USED + 4 + 8 * slot, &mut e);
        self.used_idx = self.used_idx.wrapping_add(1);
        let id = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let len = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        Some((id, len))
    }
}
