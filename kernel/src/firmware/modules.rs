//! Boot modules: files the boot loader loaded into RAM for the hypervisor (VM
//! configs and images of `image_location = "fs"` VMs), as any firmware reader finds
//! them: the device tree's `/chosen/hv-modules` today ([`super::fdt::modules`]),
//! Multiboot's module list on x86 later.
//!
//! Read before the heap exists (the slots must be kept out of the frame allocator),
//! so fixed-capacity and allocation-free.

use super::Range;

/// Most modules kept; more are reported by [`Modules::overflow`].
pub const MAX_MODULES: usize = 32;

/// What a module holds, from its `compatible`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleKind {
    /// A VM config (TOML) of an `image_location = "fs"` VM.
    VmConfig,
    /// An image (kernel, DTB, ramdisk) a VM config names.
    VmImage,
    /// Something else marked `hv,module`.
    Other,
}

/// One boot module. `file` borrows from the DTB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootModule<'a> {
    pub kind: ModuleKind,
    /// Path on the boot partition, without a leading '/'.
    pub file: &'a str,
    /// The RAM reserved for the file (`hv,slot`).
    pub slot: Option<Range>,
    /// Where the file was loaded and its size (`reg`); `None` when it was not.
    pub loaded: Option<Range>,
}

/// Every module found, in DTB order.
#[derive(Clone, Copy, Debug)]
pub struct Modules<'a> {
    items: [Option<BootModule<'a>>; MAX_MODULES],
    len: usize,
    /// More modules than [`MAX_MODULES`] were listed.
    pub overflow: bool,
}

impl<'a> Modules<'a> {
    pub const fn new() -> Self {
        Self {
            items: [None; MAX_MODULES],
            len: 0,
            overflow: false,
        }
    }

    /// Adds a module; past [`MAX_MODULES`] only [`Modules::overflow`] is set.
    pub fn push(&mut self, m: BootModule<'a>) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(m);
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Adds a module (tests build lists without a DTB).
    #[cfg(test)]
    pub fn push_for_tests(&mut self, m: BootModule<'a>) {
        self.push(m);
    }

    pub fn iter(&self) -> impl Iterator<Item = &BootModule<'a>> {
        self.items[..self.len].iter().flatten()
    }

    /// The module holding `file` (a path on the boot partition, no leading '/').
    pub fn find(&self, file: &str) -> Option<&BootModule<'a>> {
        self.iter().find(|m| m.file == file)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Modules<'_> {
    fn default() -> Self {
        Self::new()
    }
}
