//! The byte layout of a card image: protective MBR and primary GPT at the start, the
//! bootloader (if any) raw between the GPT and the first partition where the board's
//! boot ROM reads it, one FAT32 boot partition, the backup GPT at the end.
use anyhow::{ensure, Result};

use crate::config::image::{GPT_PRIMARY_END, SECTOR};
use crate::config::range::{human_size, Range};

/// Partitions start and end on 1 MiB boundaries.
pub const PART_ALIGN: u64 = 1 << 20;
/// The backup GPT: 32 sectors of entries and the header in the last sector.
pub const GPT_BACKUP_LEN: u64 = 33 * SECTOR;
/// A FAT32 volume needs 65525 clusters; with 512-byte clusters and the FATs that is
/// about 33 MiB. Below this size the boot partition is refused.
pub const MIN_BOOT_PARTITION: u64 = 40 << 20;

/// Where everything goes, in bytes from the start of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    /// The FAT32 boot partition (GPT partition 1).
    pub boot: Range,
    /// The bootloader's bytes, if the board has one on the card.
    pub bootloader: Option<Range>,
}

impl Layout {
    /// First and last LBA (inclusive) of the boot partition.
    pub fn boot_lbas(&self) -> (u64, u64) {
        let first = self.boot.base / SECTOR;
        (first, first + self.boot.size / SECTOR - 1)
    }
}

/// Lays out an image of `size` bytes with the boot partition at `partition_offset`
/// and a bootloader of `len` bytes at `offset`.
pub fn layout(size: u64, partition_offset: u64, bootloader: Option<(u64, u64)>) -> Result<Layout> {
    ensure!(
        size.is_multiple_of(PART_ALIGN),
        "image size {size:#x} is not a multiple of 1 MiB"
    );
    ensure!(
        partition_offset.is_multiple_of(PART_ALIGN) && partition_offset >= PART_ALIGN,
        "the boot partition must start on a 1 MiB boundary, at 1 MiB or later"
    );
    let end = size.saturating_sub(GPT_BACKUP_LEN) / PART_ALIGN * PART_ALIGN;
    ensure!(
        end >= partition_offset + MIN_BOOT_PARTITION,
        "an image of {} leaves less than {} for the FAT32 boot partition after {}: give a larger --size",
        human_size(size),
        human_size(MIN_BOOT_PARTITION),
        human_size(partition_offset)
    );
    let bootloader = match bootloader {
        None => None,
        Some((offset, len)) => {
            ensure!(len > 0, "the bootloader file is empty");
            ensure!(
                offset >= GPT_PRIMARY_END && offset.is_multiple_of(SECTOR),
                "the bootloader offset {offset:#x} is inside the GPT (it must be a multiple of 512, at {GPT_PRIMARY_END:#x} or later)"
            );
            ensure!(
                offset + len <= partition_offset,
                "the bootloader ({}) at {offset:#x} runs past the start of the boot partition at {} (move partition_offset up)",
                human_size(len),
                human_size(partition_offset)
            );
            Some(Range::new(offset, len))
        }
    };
    Ok(Layout {
        size,
        boot: Range::new(partition_offset, end - partition_offset),
        bootloader,
    })
}
