//! The FAT32 disk as a [`FileSource`]: VM configs are the `vms/*.toml` files (the
//! layout `cargo xtask image` writes on a card); a file is read whole into memory
//! the caller hands out (frames), after its size was checked against the limit, so
//! an oversized file costs nothing. The frames of each file read are handed on
//! ([`FileSource::take_frames`]): a VM keeps its images' and frees them when it is
//! deleted; a refused config's are given back at once.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::disk::FatDisk;
use super::source::{too_large, FileSource};
use crate::drivers::block::BlockDevice;
use crate::mm::frames::FrameAllocator;

/// Where fs VM configs live on the disk.
pub const VM_DIR: &str = "vms";

/// Memory a file is read into: `size` bytes held at `base` (`held` bytes, whole
/// frames, what [`FileMemory::free`] gives back).
pub struct Held {
    pub base: u64,
    pub held: u64,
    pub bytes: &'static mut [u8],
}

/// Where the disk's files are read to.
pub trait FileMemory {
    fn alloc(&mut self, size: u64) -> Option<Held>;
    fn free(&mut self, base: u64, held: u64);
}

/// Files in frames of the machine's frame allocator.
pub struct Frames<'f>(pub &'f mut FrameAllocator);

impl FileMemory for Frames<'_> {
    fn alloc(&mut self, size: u64) -> Option<Held> {
        let held = size.max(1).next_multiple_of(4096);
        let base = self.0.alloc(held, 4096).ok()?;
        // SAFETY: fresh frames, this file's alone until they are freed, which
        // happens only once nothing reads the file any more (its VM deleted, or its
        // config refused).
        let bytes = unsafe { crate::mm::phys::slice_mut(base, size) };
        Some(Held { base, held, bytes })
    }

    fn free(&mut self, base: u64, held: u64) {
        if self.0.free(base, held).is_err() {
            crate::warn!("hv: disk file memory {base:#x}+{held:#x} was not allocated");
        }
    }
}

/// A mounted FAT32 disk (the one found at boot stays mounted for `vm create`:
/// [`super::start::disk`]) and where its files are read to.
pub struct DiskSource<'a, B: BlockDevice> {
    fat: &'a FatDisk<B>,
    mem: &'a mut dyn FileMemory,
    /// Frames of the files read since the last `take_frames`.
    read: Vec<(u64, u64)>,
}

impl<'a, B: BlockDevice> DiskSource<'a, B> {
    pub fn new(fat: &'a FatDisk<B>, mem: &'a mut dyn FileMemory) -> Self {
        Self {
            fat,
            mem,
            read: Vec::new(),
        }
    }
}

impl<B: BlockDevice> Drop for DiskSource<'_, B> {
    /// Frames nobody took (a caller that stopped half-way) are given back.
    fn drop(&mut self) {
        let left = core::mem::take(&mut self.read);
        self.release(&left);
    }
}

impl<B: BlockDevice> FileSource for DiskSource<'_, B> {
    fn what(&self) -> &str {
        "the disk"
    }

    fn configs(&mut self, lines: &mut Vec<String>) -> Vec<String> {
        match self.fat.list(VM_DIR, ".toml") {
            Ok(names) => names.into_iter().map(|n| format!("{VM_DIR}/{n}")).collect(),
            Err(why) => {
                lines.push(format!(
                    "disk: {VM_DIR}/: {why}; no VM is read from the disk"
                ));
                Vec::new()
            }
        }
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<&'static [u8], String> {
        let size = self.fat.size(path)?;
        too_large(size, limit)?;
        let Some(h) = self.mem.alloc(size) else {
            return Err(format!("no free memory for its {size} bytes"));
        };
        // Recorded first: a failed read gives its frames back with the rest.
        self.read.push((h.base, h.held));
        let Some(buf) = h.bytes.get_mut(..size as usize) else {
            return Err(format!("no free memory for its {size} bytes"));
        };
        self.fat.read(path, buf)?;
        Ok(buf)
    }

    fn take_frames(&mut self) -> Vec<(u64, u64)> {
        core::mem::take(&mut self.read)
    }

    fn release(&mut self, frames: &[(u64, u64)]) {
        for &(base, held) in frames {
            self.mem.free(base, held);
        }
    }
}
