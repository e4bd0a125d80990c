//! The block-device interface the FAT32 disk of fs VMs is read through
//! ([`crate::vmm::fs::disk`]): virtio-blk on QEMU virt today ([`super::virtio`]); an
//! SD/MMC host-controller driver for boards goes behind the same trait.

/// Bytes in one block (sector) as the interface counts them.
pub const BLOCK: usize = 512;

/// A disk read in whole 512-byte blocks.
pub trait BlockDevice {
    /// Its size in blocks.
    fn blocks(&self) -> u64;
    /// Fills `buf` (a whole number of blocks) from block `lba` on.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
}

/// Why a read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The buffer is not a whole number of blocks, or the range leaves the disk.
    OutOfRange { lba: u64, blocks: u64 },
    /// The device reported an I/O error (virtio-blk status 1).
    Io,
    /// The device does not support the request (virtio-blk status 2).
    Unsupported,
    /// The device answered something the driver did not ask for.
    Protocol(&'static str),
    /// No answer within the time limit.
    Timeout,
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::OutOfRange { lba, blocks } => {
                write!(f, "blocks {lba}+{blocks} are outside the disk")
            }
            BlockError::Io => f.write_str("the device reported an I/O error"),
            BlockError::Unsupported => f.write_str("the device does not support reading"),
            BlockError::Protocol(what) => write!(f, "the device broke the protocol: {what}"),
            BlockError::Timeout => f.write_str("the device did not answer in time"),
        }
    }
}

impl core::error::Error for BlockError {}
