//! The boot-time side of fs VMs: keeping the boot modules out of the frame
//! allocator, and reading the fs VMs from them once the heap exists.

use alloc::vec::Vec;

use super::{create_one, fs_vms, FsVm, FsVms, Host};
use crate::firmware::modules::Modules;
use crate::firmware::{BoardInfo, Range, RangeList};
use crate::println;
use crate::spec::VmSpec;
use alloc::string::String;
use spin::Once;

/// The card's files and what no VM may map, kept from boot for `vm create`.
struct Files {
    modules: Modules<'static>,
    guarded: Vec<Range>,
}

static FILES: Once<Files> = Once::new();

/// Adds every module's slot to `excl` (unless a range there already covers it) so
/// the frame allocator never hands it out. `false` when `excl` is full: the modules
/// cannot be kept safe and must not be used.
pub fn protect_modules(modules: &Modules<'_>, excl: &mut RangeList) -> bool {
    for m in modules.iter() {
        let Some(r) = m.slot.or(m.loaded) else {
            continue;
        };
        if !super::files::inside(r, excl.as_slice()) && excl.push(r).is_err() {
            return false;
        }
    }
    true
}

/// The bytes of a loaded boot module.
fn read_module(r: Range) -> Option<&'static [u8]> {
    // A module must fit the address space, and address 0 is no module.
    if r.base == 0 || usize::try_from(r.size).is_err() {
        return None;
    }
    // SAFETY: `r` is a boot module the caller checked lies in RAM; its slot is
    // excluded from the frame allocator, so nothing writes it after the bootloader
    // did, and it stays for the hypervisor's lifetime.
    Some(unsafe { crate::mm::phys::slice(r.base, r.size) })
}

/// Reads the fs VMs (`safe`: [`protect_modules`] succeeded) and prints what became of
/// those that will not start. `protected` are the hypervisor image and its DTB.
pub fn load(
    p: &BoardInfo,
    modules: &Modules<'static>,
    safe: bool,
    protected: &[Range],
    builtin: &[VmSpec],
) -> FsVms {
    if modules.is_empty() {
        return FsVms::default();
    }
    if !safe {
        crate::warn!("hv: too many reserved memory ranges to keep the boot modules safe: no fs VM is started");
        return FsVms::default();
    }
    let mut guarded: Vec<Range> = protected.to_vec();
    guarded.extend(modules.iter().filter_map(|m| m.slot.or(m.loaded)));
    FILES.call_once(|| Files {
        modules: *modules,
        guarded: guarded.clone(),
    });
    let kept = p.kept_windows();
    let host = Host {
        kept: &kept,
        cpus: p.cpus(),
        ram: p.ram(),
        reserved: p.reserved(),
        protected: &guarded,
        read: &read_module,
    };
    let out = fs_vms(modules, &host, builtin);
    for line in &out.lines {
        println!("hv: {line}");
    }
    out
}

/// The shell's `vm create PATH`: the config at `path` among the card's files, read
/// and checked as at boot, its vCPUs placed on CPUs none of `existing` uses.
pub fn create(p: &BoardInfo, path: &str, existing: &[VmSpec]) -> Result<FsVm, Vec<String>> {
    let Some(files) = FILES.get() else {
        return Err(alloc::vec![String::from(
            "no file source: the bootloader handed over no card files (boot modules); make the card with `cargo xtask image`"
        )]);
    };
    let kept = p.kept_windows();
    let host = Host {
        kept: &kept,
        cpus: p.cpus(),
        ram: p.ram(),
        reserved: p.reserved(),
        protected: &files.guarded,
        read: &read_module,
    };
    let source = super::source::ModuleFiles {
        modules: &files.modules,
        host: &host,
    };
    create_one(&source, path, &host, existing)
}
