//! virtio over its MMIO transport (virtio 1.x section 4.2), legacy (version 1) and
//! modern (version 2) register layouts, as QEMU's `virt` machines offer them: the
//! transport registers ([`Regs`]), one split virtqueue ([`queue`]) and the block
//! device driver ([`blk`]). Everything is polled and pure: registers, memory the
//! device reads and writes (DMA) and the clock are traits, so the queue logic is
//! tested on the host against a simulated device (`tests.rs`); `hw.rs` has the real
//! MMIO window and physical memory.

pub mod blk;
#[cfg(target_os = "none")]
pub mod hw;
pub mod queue;
#[cfg(test)]
mod tests;

/// Register offsets of the MMIO transport.
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// Legacy only.
    pub const GUEST_PAGE_SIZE: u64 = 0x028;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    /// Legacy only.
    pub const QUEUE_ALIGN: u64 = 0x03c;
    /// Legacy only: the queue's page number.
    pub const QUEUE_PFN: u64 = 0x040;
    /// Modern only.
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    /// Modern only: the queue's three parts (low and high words).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// The device-specific configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// "virt" in little endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Device ID of a block device.
pub const DEVICE_BLOCK: u32 = 2;

/// Device status bits.
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const FAILED: u32 = 128;
}

/// Feature bit 32: the device follows virtio 1.x (modern devices require it).
pub const F_VERSION_1: u64 = 1 << 32;

/// A transport's 32-bit registers.
pub trait Regs {
    fn read(&self, off: u64) -> u32;
    fn write(&mut self, off: u64, v: u32);
}

/// Memory the device reads and writes: physically contiguous, at device address
/// [`Dma::addr`]. Reads see what the device wrote (no caching across calls).
pub trait Dma {
    fn addr(&self) -> u64;
    fn size(&self) -> usize;
    fn read(&self, off: usize, out: &mut [u8]);
    fn write(&mut self, off: usize, data: &[u8]);
}

/// A monotonic clock in microseconds, for time limits while polling.
pub trait Clock {
    fn now_us(&self) -> u64;
}

/// Why a transport did not become a working device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// Not a virtio-mmio window (bad magic value).
    NotVirtio,
    /// A transport with no device behind it (device ID 0, QEMU's empty slots).
    Empty,
    /// A device of another kind.
    OtherDevice(u32),
    UnknownVersion(u32),
    /// The device refused the features the driver can use.
    FeaturesRefused,
    /// The device's queue 0 is missing or too small.
    NoQueue(u32),
    /// The DMA area is too small for the queue and requests.
    DmaTooSmall,
}

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProbeError::NotVirtio => f.write_str("not a virtio-mmio device (bad magic value)"),
            ProbeError::Empty => f.write_str("no device behind the transport"),
            ProbeError::OtherDevice(id) => {
                write!(f, "a virtio device of kind {id}, not a block device")
            }
            ProbeError::UnknownVersion(v) => write!(f, "virtio-mmio version {v} is not supported"),
            ProbeError::FeaturesRefused => f.write_str("the device refused the driver's features"),
            ProbeError::NoQueue(max) => {
                write!(f, "queue 0 holds {max} descriptors (at least 4 needed)")
            }
            ProbeError::DmaTooSmall => f.write_str("not enough DMA memory for the queue"),
        }
    }
}
