//! The FAT32 disk as a [`FileSource`]: VM configs are the `vms/*.toml` files (the
//! layout `cargo xtask image` writes on a card); a file is read whole into memory
//! the caller hands out (frames at boot), after its size was checked against the
//! limit, so an oversized file costs nothing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::disk::FatDisk;
use super::source::{too_large, FileSource};
use crate::drivers::block::BlockDevice;

/// Where fs VM configs live on the disk.
pub const VM_DIR: &str = "vms";

/// Memory for a file of this many bytes, kept for as long as the machine runs.
pub type Alloc<'a> = &'a mut dyn FnMut(u64) -> Option<&'static mut [u8]>;

/// A mounted FAT32 disk (the one found at boot stays mounted for `vm create`:
/// [`super::start::disk`]) and where its files are read to.
pub struct DiskSource<'a, B: BlockDevice> {
    pub fat: &'a FatDisk<B>,
    pub alloc: Alloc<'a>,
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
        let Some(buf) = (self.alloc)(size) else {
            return Err(format!("no free memory for its {size} bytes"));
        };
        let Some(buf) = buf.get_mut(..size as usize) else {
            return Err(format!("no free memory for its {size} bytes"));
        };
        self.fat.read(path, buf)?;
        Ok(buf)
    }
}
