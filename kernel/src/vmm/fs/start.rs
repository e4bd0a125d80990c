//! The boot-time side of fs VMs: keeping the boot modules out of the frame
//! allocator, and reading the fs VMs once the heap exists: from the boot modules
//! when a bootloader loaded some, else from the FAT32 disk the hypervisor finds
//! among the virtio-mmio transports of the DTB.

use alloc::string::String;
use alloc::vec::Vec;

use super::disk::FatDisk;
use super::disk_source::{DiskSource, Frames};
use super::source::ModuleSource;
use super::{create_one, fs_vms, vms_from, FsVm, FsVms, Host};
use crate::drivers::virtio::blk::VirtioBlk;
use crate::drivers::virtio::hw::{HostClock, MmioRegs, PhysDma};
use crate::drivers::virtio::ProbeError;
use crate::firmware::modules::Modules;
use crate::firmware::{BoardInfo, Range, RangeList};
use crate::mm::frames::FrameAllocator;
use crate::println;
use crate::spec::VmSpec;

/// The card's files (boot modules, when there were any) and what no VM may map,
/// kept from boot for the shell's `vm create`.
struct Files {
    modules: Modules<'static>,
    guarded: Vec<Range>,
}

static FILES: spin::Once<Files> = spin::Once::new();

/// DMA memory of the disk driver: its queue, a request and a 64 KiB bounce buffer.
const DISK_DMA: u64 = 0x1_4000;

/// The disk driver the hypervisor reads fs VMs with.
pub type Disk = VirtioBlk<MmioRegs, PhysDma, HostClock>;

/// The FAT32 disk found at boot, kept mounted (for the shell's `vm create`: read it
/// through a [`DiskSource`] with frames of the machine).
static DISK: spin::Once<spin::Mutex<FatDisk<Disk>>> = spin::Once::new();

/// The FAT32 disk found at boot, if any.
pub fn disk() -> Option<&'static spin::Mutex<FatDisk<Disk>>> {
    DISK.get()
}

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
/// Without boot modules, the fs VMs come from the disk (`p.disk` is set when one is
/// found; its files are read into `frames`).
pub fn load(
    p: &mut BoardInfo,
    modules: &Modules<'static>,
    safe: bool,
    protected: &[Range],
    builtin: &[VmSpec],
    frames: &mut FrameAllocator,
) -> FsVms {
    if modules.is_empty() {
        return from_disk(p, protected, builtin, frames);
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
    with_host(p, &guarded, &read_module, |host| {
        fs_vms(modules, host, builtin)
    })
}

/// Runs `read_vms` with the machine as fs VMs see it, then prints the lines about
/// the VMs that will not start.
fn with_host(
    p: &BoardInfo,
    protected: &[Range],
    read: &dyn Fn(Range) -> Option<&'static [u8]>,
    read_vms: impl FnOnce(&Host<'_>) -> FsVms,
) -> FsVms {
    let kept = p.kept_windows();
    let host = Host {
        kept: &kept,
        cpus: p.cpus(),
        ram: p.ram(),
        reserved: p.reserved(),
        protected,
        read,
    };
    let out = read_vms(&host);
    for line in &out.lines {
        println!("hv: {line}");
    }
    out
}

/// The first virtio block device among the board's virtio-mmio transports (its
/// window, page-rounded), its driver's DMA memory taken from `frames`.
fn find_disk(p: &BoardInfo, frames: &mut FrameAllocator) -> Option<(Range, Disk)> {
    let windows = p.virtio_mmio.as_slice();
    if windows.is_empty() {
        return None;
    }
    let Ok(base) = frames.alloc(DISK_DMA, 4096) else {
        println!("hv: disk: no memory for the virtio-blk driver");
        return None;
    };
    for w in windows {
        let dma = PhysDma {
            base,
            len: DISK_DMA as usize,
        };
        match VirtioBlk::probe(MmioRegs { base: w.base }, dma, HostClock) {
            Ok(d) => {
                let page = Range {
                    base: w.base & !0xfff,
                    size: (w.end() - (w.base & !0xfff)).next_multiple_of(0x1000),
                };
                println!(
                    "hv: disk: virtio-blk at {:#x} (virtio-mmio version {}), {} MiB",
                    w.base,
                    d.version(),
                    crate::drivers::block::BlockDevice::blocks(&d) >> 11
                );
                return Some((page, d));
            }
            Err(ProbeError::Empty | ProbeError::OtherDevice(_)) => {}
            Err(e) => println!("hv: disk: virtio-mmio at {:#x}: {e}", w.base),
        }
    }
    let _ = frames.free(base, DISK_DMA);
    None
}

/// The fs VMs of the FAT32 disk, if there is one.
fn from_disk(
    p: &mut BoardInfo,
    protected: &[Range],
    builtin: &[VmSpec],
    frames: &mut FrameAllocator,
) -> FsVms {
    let Some((window, disk)) = find_disk(p, frames) else {
        return FsVms::default();
    };
    p.disk = Some(window);
    FILES.call_once(|| Files {
        modules: Modules::default(),
        guarded: protected.to_vec(),
    });
    let fat = match FatDisk::mount(disk) {
        Ok(f) => DISK.call_once(|| spin::Mutex::new(f)).lock(),
        Err(why) => {
            println!("hv: disk: {why}; no VM is read from it");
            return FsVms::default();
        }
    };
    let mut mem = Frames(frames);
    let mut src = DiskSource::new(&fat, &mut mem);
    // Disk files are read into fresh frames, not from modules.
    with_host(p, protected, &|_| None, |host| {
        vms_from(&mut src, host, builtin)
    })
}

/// The shell's `vm create PATH`: the config at `path` among the card's files (the
/// boot modules, else the disk, whose files are read into `frames`: the VM keeps
/// those of its images and frees them when it is deleted, a refused config's go
/// back at once), read and checked as at boot, its vCPUs placed on CPUs none of
/// `existing` uses.
pub fn create(
    p: &BoardInfo,
    path: &str,
    existing: &[VmSpec],
    frames: &mut FrameAllocator,
) -> Result<FsVm, Vec<String>> {
    let Some(files) = FILES.get() else {
        return Err(alloc::vec![String::from(
            "no file source: no card files (boot modules) and no FAT32 disk were found at boot"
        )]);
    };
    let kept = p.kept_windows();
    let mut host = Host {
        kept: &kept,
        cpus: p.cpus(),
        ram: p.ram(),
        reserved: p.reserved(),
        protected: &files.guarded,
        read: &read_module,
    };
    if !files.modules.is_empty() {
        let mut src = ModuleSource {
            modules: &files.modules,
            host: &host,
        };
        return create_one(&mut src, path, &host, existing);
    }
    let Some(disk) = DISK.get() else {
        return Err(alloc::vec![String::from(
            "no file source: the disk found at boot could not be mounted"
        )]);
    };
    let fat = disk.lock();
    let mut mem = Frames(frames);
    let mut src = DiskSource::new(&fat, &mut mem);
    host.read = &|_| None;
    create_one(&mut src, path, &host, existing)
}
