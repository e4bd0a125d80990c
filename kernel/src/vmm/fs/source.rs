//! Where the files of fs VMs come from: a [`FileSource`] reads a file of the card by
//! its path. Today's source is the boot modules (the files the bootloader loaded and
//! listed in the DTB); a disk driver with a FAT32 reader is another source behind the
//! same trait. The boot-time reading of fs VMs and the shell's `vm create` both read
//! through it.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;

use super::files::module_bytes;
use super::Host;
use crate::firmware::modules::Modules;

/// Files of the card, by path (from the card's root, without a leading `/`).
pub trait FileSource {
    /// The whole file at `path`, or why it cannot be read (a message that names
    /// `path`).
    fn read(&self, path: &str) -> Result<Cow<'static, [u8]>, String>;
}

/// The card's files the bootloader loaded as boot modules.
pub struct ModuleFiles<'a> {
    pub modules: &'a Modules<'a>,
    pub host: &'a Host<'a>,
}

impl FileSource for ModuleFiles<'_> {
    fn read(&self, path: &str) -> Result<Cow<'static, [u8]>, String> {
        let Some(m) = self.modules.find(path) else {
            return Err(format!(
                "no boot module holds {path} (only files listed by boot.scr are loaded; make the card image again with `cargo xtask image`)"
            ));
        };
        module_bytes(m, self.host)
            .map(Cow::Borrowed)
            .map_err(|why| format!("{path}: {why}"))
    }
}

/// Bytes that stay for as long as the machine runs (what a VM's images are today).
pub fn lasting(bytes: Cow<'static, [u8]>, path: &str) -> Result<&'static [u8], String> {
    match bytes {
        Cow::Borrowed(b) => Ok(b),
        Cow::Owned(_) => Err(format!(
            "{path}: not supported yet: VM images read into memory the VM owns (a file source other than the boot modules)"
        )),
    }
}
