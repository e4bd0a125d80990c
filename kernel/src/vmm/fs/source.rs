//! Where the files of fs VMs come from: a [`FileSource`] lists the VM configs it
//! holds and reads a file by its path. Two sources today: the boot modules a
//! bootloader loaded ([`ModuleSource`]) and the FAT32 disk the hypervisor reads
//! itself ([`super::disk_source::DiskSource`]); the shell's `vm create PATH` reads
//! through the same trait.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::files::module_bytes;
use super::Host;
use crate::firmware::modules::{ModuleKind, Modules};

/// Files of fs VMs, by path (from the source's root, `/`-separated, no leading '/').
pub trait FileSource {
    /// What it is, for messages ("the boot partition", "the disk").
    fn what(&self) -> &str;
    /// The VM configs it holds, in the order they are read; lines for the console
    /// about what could not be listed.
    fn configs(&mut self, lines: &mut Vec<String>) -> Vec<String>;
    /// The bytes of file `path`, at most `limit` bytes long; the error is the reason
    /// only (the caller names the file).
    fn read(&mut self, path: &str, limit: u64) -> Result<&'static [u8], String>;
    /// The host frames (base, size) holding the files read since the last call,
    /// now the caller's: a VM keeps those of its images and frees them when it is
    /// deleted. Empty for a source whose files stay where they are (boot modules).
    fn take_frames(&mut self) -> Vec<(u64, u64)> {
        Vec::new()
    }
    /// Gives back frames [`FileSource::take_frames`] handed out (a refused config's).
    fn release(&mut self, _frames: &[(u64, u64)]) {}
}

/// The boot modules a bootloader loaded and listed in the DTB.
pub struct ModuleSource<'m, 'h> {
    pub modules: &'m Modules<'m>,
    pub host: &'h Host<'h>,
}

impl FileSource for ModuleSource<'_, '_> {
    fn what(&self) -> &str {
        "the boot partition"
    }

    fn configs(&mut self, lines: &mut Vec<String>) -> Vec<String> {
        if self.modules.overflow {
            lines.push(format!(
                "more than {} boot modules: the others are ignored",
                crate::firmware::modules::MAX_MODULES
            ));
        }
        self.modules
            .iter()
            .filter(|m| m.kind == ModuleKind::VmConfig)
            .map(|m| m.file.to_string())
            .collect()
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<&'static [u8], String> {
        let Some(m) = self.modules.find(path) else {
            return Err(
                "no boot module holds it (only files listed by boot.scr are loaded; make the card image again with `cargo xtask image`)"
                    .into(),
            );
        };
        let bytes = module_bytes(m, self.host)?;
        too_large(bytes.len() as u64, limit)?;
        Ok(bytes)
    }
}

/// Refuses a file of `size` bytes above `limit`.
pub fn too_large(size: u64, limit: u64) -> Result<(), String> {
    if size > limit {
        return Err(format!(
            "is {size} bytes, more than the {limit} bytes it may have"
        ));
    }
    Ok(())
}
