//! [`crate::vmm::fs`] in a hypervisor built without feature `fs-vms`: no TOML parser,
//! no VMs from the boot card. Config files the bootloader loaded anyway (a card whose
//! `hypervisor.bin` was replaced by one built without the feature) are not ignored in
//! silence: each is named and counts as a VM that did not start.

use alloc::string::String;
use alloc::vec::Vec;

use crate::spec::VmSpec;

/// The fs VMs ready to be built (never any here), and how many were refused.
#[derive(Default)]
pub struct FsVms {
    pub vms: Vec<FsVm>,
    pub refused: usize,
}

/// One fs VM ready to be built (the same shape as with the feature).
pub struct FsVm {
    pub spec: VmSpec,
    pub file: String,
    pub frames: Vec<(u64, u64)>,
}

#[cfg(target_os = "none")]
pub mod start {
    //! The boot-time entry points of the fs VMs, refusing them.

    use super::FsVms;
    use crate::firmware::modules::{ModuleKind, Modules};
    use crate::firmware::{BoardInfo, Range, RangeList};
    use crate::spec::VmSpec;

    /// Nothing to keep: the modules are never read.
    pub fn protect_modules(_modules: &Modules<'_>, _excl: &mut RangeList) -> bool {
        true
    }

    /// The shell's `vm create`: no VM configs are read in this build.
    pub fn create(
        _p: &BoardInfo,
        _path: &str,
        _existing: &[VmSpec],
        _frames: &mut crate::mm::frames::FrameAllocator,
    ) -> Result<super::FsVm, alloc::vec::Vec<alloc::string::String>> {
        Err(alloc::vec![alloc::string::String::from(
            "not supported in this build: VM configs are read only by a hypervisor built with feature fs-vms (`cargo xtask image` adds it when the card carries fs VMs; or list it in the board's features)"
        )])
    }

    /// Names every VM config module as not started.
    pub fn load(
        _p: &mut BoardInfo,
        modules: &Modules<'static>,
        _safe: bool,
        _protected: &[Range],
        _builtin: &[VmSpec],
        _frames: &mut crate::mm::frames::FrameAllocator,
    ) -> FsVms {
        let mut out = FsVms::default();
        for m in modules.iter().filter(|m| m.kind == ModuleKind::VmConfig) {
            crate::println!(
                "hv: {}: not started: this hypervisor was built without feature fs-vms (VMs with image_location = \"fs\"); make the card with `cargo xtask image`",
                m.file
            );
            out.refused += 1;
        }
        out
    }
}
