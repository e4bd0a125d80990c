//! Building a VM from its spec: guest RAM, stage-2 mappings, images, the guest DTB,
//! devices and vCPU placement. Any problem is returned as a message; the VM is then
//! not started and the others are unaffected.

use super::channel::Channel;
use super::devices::VmDevices;
use super::lazy_ram::{self, Block, LazyRam};
use super::vm::{VcpuSlot, Vm, VmParts};
use crate::devices::bus::Window;
use crate::devices::doorbell::Doorbell;
use crate::devices::registry::Created;
use crate::firmware::BoardInfo;
use crate::hal::{Arch, Current, DirectWindow, GuestBoot, HostTimer};
use crate::hal::{MemType, MemoryOps, Perms, Stage2};
use crate::mm::frames::FrameAllocator;
use crate::mm::guest::{GuestRam, RamMapping};
use crate::mm::phys::FrameTables;
use crate::spec::{MapType, VmSpec};
use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use vmconfig::channel::DOORBELL_SIZE;
use vmconfig::{Mapping, MemKind};

/// Builds the VM of `spec`, tagged `vmid` in second-stage TLBs. Its vCPU 0 is
/// queued to start at the spec's entry; nothing runs until the VM is started. On
/// failure, whatever was taken (RAM, tables) goes back to `frames`.
pub fn create_vm(
    spec: Cow<'static, VmSpec>,
    vmid: u16,
    platform: &BoardInfo,
    frames: &mut FrameAllocator,
    channels: &[Arc<Channel>],
) -> Result<Vm, String> {
    let vcpus = place_vcpus(&spec, platform)?;
    check_passthrough(&spec, platform)?;
    let mut devices = VmDevices::new(&spec)?;
    attach_doorbells(&spec, channels, &mut devices)?;
    let direct = Current::direct_windows(&spec, platform)?;
    let mut held = Holdings::default();
    match build(&spec, &direct, frames, &mut held, channels) {
        Ok((ram, lazy)) => {
            let Some(tables) = held.tables.take() else {
                return Err(String::from("no stage-2 tables"));
            };
            let parts = VmParts {
                ram,
                vcpus,
                devices,
                cntvoff: Current::counter(),
                tables,
                owned: core::mem::take(&mut held.owned),
                vmid,
            };
            let (entry, dtb) = (
                spec.entry_point,
                Current::start_arg(&spec, guest_dtb_address(&spec)),
            );
            let mut vm = Vm::new(spec, parts);
            vm.lazy = lazy;
            // A device's signal wakes the CPU of vCPU 0 (any vCPU serves it).
            let cpu0 = vm.vcpus[0].pcpu_mpidr;
            vm.devices
                .get_mut()
                .set_waker(super::machine::wake_cpu, cpu0);
            vm.vcpus[0]
                .request_start(entry, dtb)
                .map_err(|_| String::from("vCPU 0 already on"))?;
            Ok(vm)
        }
        Err(e) => {
            held.release(frames);
            Err(e)
        }
    }
}

/// Each channel's doorbell the VM has, on its bus.
fn attach_doorbells(
    spec: &VmSpec,
    channels: &[Arc<Channel>],
    devices: &mut VmDevices,
) -> Result<(), String> {
    for (c, ch) in spec.channels.iter().zip(channels) {
        let Some((gpa, irq)) = c.doorbell else {
            continue;
        };
        let me = ch
            .member(&spec.name)
            .ok_or_else(|| format!("channel {:?}: this VM is not on its list", c.name))?;
        let created = Created {
            device: Box::new(Doorbell::new(ch.clone(), me, irq)),
            windows: alloc::vec![Window::mmio(gpa, DOORBELL_SIZE)],
        };
        devices.attach(format!("doorbell of channel {}", c.name), created)?;
    }
    Ok(())
}

/// Maps each channel's region where the VM sees it (normal memory, never
/// executable; read-only when its access says so). The frames are the channel's:
/// they are not the VM's to free.
fn map_channels(
    spec: &VmSpec,
    channels: &[Arc<Channel>],
    s2: &mut Stage2,
    frames: &mut FrameAllocator,
) -> Result<(), String> {
    for (c, ch) in spec.channels.iter().zip(channels) {
        let perms = Perms {
            read: true,
            write: c.writable,
            exec: false,
        };
        s2.map(
            &mut FrameTables(frames),
            c.gpa,
            ch.hpa,
            c.size,
            perms,
            MemType::Normal,
        )
        .map_err(|e| format!("channel {:?}: stage-2 mapping failed: {e:?}", c.name))?;
    }
    Ok(())
}

/// What a VM holds of the host's memory: its second-stage tables and the host
/// ranges it allocated or claimed. Given back when the VM is destroyed, or when
/// building it fails half-way.
#[derive(Default)]
struct Holdings {
    tables: Option<Stage2>,
    owned: Vec<(u64, u64)>,
}

impl Holdings {
    fn release(self, frames: &mut FrameAllocator) {
        if let Some(t) = self.tables {
            t.destroy(&mut FrameTables(frames));
        }
        for (base, size) in self.owned {
            if frames.free(base, size).is_err() {
                crate::warn!("hv: RAM {base:#x}+{size:#x} was not allocated");
            }
        }
    }
}

/// Every passthrough window against what the host keeps (`vmconfig::host`, the rule
/// xtask checks against the board file): never the hypervisor's interrupt
/// controller, console or power device, never host RAM.
fn check_passthrough(spec: &VmSpec, platform: &BoardInfo) -> Result<(), String> {
    let kept = platform.kept_windows();
    let ram: Vec<vmconfig::Range> = platform
        .ram()
        .iter()
        .map(|r| vmconfig::Range::new(r.base, r.size))
        .collect();
    for d in spec.passthrough_devices.iter() {
        let host = vmconfig::Range::new(d.base_hpa, d.length);
        if let Some(why) = vmconfig::host::passthrough_problem(host, &kept, &ram) {
            return Err(format!("passthrough device {}: {why}", d.name));
        }
    }
    Ok(())
}

/// Memory, images and first-touch blocks of a VM being built, into `held`.
fn build(
    spec: &VmSpec,
    direct: &[DirectWindow],
    frames: &mut FrameAllocator,
    held: &mut Holdings,
    channels: &[Arc<Channel>],
) -> Result<(GuestRam, LazyRam), String> {
    let ram = build_memory(spec, ipa_bits(spec, direct), frames, held)?;
    let s2 = held
        .tables
        .as_mut()
        .ok_or_else(|| String::from("no stage-2 tables"))?;
    map_direct_windows(direct, s2, frames)?;
    map_channels(spec, channels, s2, frames)?;
    let images = prepare_images(spec, &ram)?;
    #[cfg(feature = "dump-guest-dtb")]
    dump_dtb(spec, &images);
    let lazy = park_untouched(spec, &ram, &images, s2, frames);
    lazy.park_all();
    fill_eager(&ram, &lazy, &images)?;
    Ok((ram, lazy))
}

/// Gives back what a destroyed VM held: its RAM (allocated or claimed identity
/// ranges) and its second-stage tables. Every vCPU of the VM must be off.
pub fn release(vm: &Vm, frames: &mut FrameAllocator) {
    vm.lazy.unpark_for_teardown();
    let held = Holdings {
        tables: vm.tables.lock().take(),
        owned: core::mem::take(&mut *vm.owned.lock()),
    };
    held.release(frames);
}

/// Puts a VM back to its power-on state, for a guest's reset and for a restart of
/// a stopped VM: devices reset, RAM scrubbed (the lazily filled blocks parked
/// again), images and boot description loaded again, one more boot counted and
/// vCPU 0 queued at its entry. Every vCPU of the VM but the caller's must be off;
/// the caller changes the VM's state and wakes vCPU 0.
pub fn boot_afresh(vm: &Vm) -> Result<(), String> {
    vm.devices.lock().reset();
    let images = prepare_images(&vm.spec, &vm.ram)?;
    vm.lazy.park_all();
    fill_eager(&vm.ram, &vm.lazy, &images)?;
    vm.count_boot();
    vm.vcpus[0]
        .request_start(
            vm.spec.entry_point,
            Current::start_arg(&vm.spec, guest_dtb_address(&vm.spec)),
        )
        .map_err(|_| String::from("vCPU 0 is already starting"))
}

/// Zeroes the RAM that is not zeroed on first touch, loads the images into it and
/// cleans it for a guest starting with its MMU off.
fn fill_eager(ram: &GuestRam, lazy: &LazyRam, images: &Images) -> Result<(), String> {
    let eager = lazy_ram::eager_ranges(&ram.regions, &lazy.blocks());
    let loaded: Vec<(u64, u64)> = images
        .parts
        .iter()
        .map(|(_, gpa, data)| (*gpa, gpa + data.len() as u64))
        .collect();
    for (gpa, len) in lazy_ram::subtract(&eager, &loaded) {
        if let Some(hpa) = ram.translate(gpa, len) {
            // SAFETY: RAM of this VM that no vCPU runs on: being created, or
            // resetting with every vCPU off (parked blocks are not in `eager`).
            unsafe { Current::zero_guest_ram(hpa, len) };
        }
    }
    for (what, gpa, data) in &images.parts {
        copy_in(ram, what, *gpa, data)?;
    }
    for &(gpa, len) in &eager {
        if let Some(hpa) = ram.translate(gpa, len) {
            Current::clean_for_guest(hpa, len);
        }
    }
    Ok(())
}

/// The blocks of a VM's RAM left to fill on first touch (none for a VM with
/// passthrough devices: see `lazy_ram`).
fn park_untouched(
    spec: &VmSpec,
    ram: &GuestRam,
    images: &Images,
    s2: &mut Stage2,
    frames: &mut FrameAllocator,
) -> LazyRam {
    if !spec.passthrough_devices.is_empty() {
        return LazyRam::default();
    }
    let mut tables = FrameTables(frames);
    let blocks = lazy_ram::plan(&ram.regions, &images.footprints)
        .into_iter()
        .filter_map(|(gpa, hpa, flags)| {
            let (slot, desc) = s2.block_slot(&mut tables, gpa)?;
            Some(Block {
                gpa,
                hpa,
                slot,
                desc,
                flags,
                parked: false,
            })
        })
        .collect();
    LazyRam::new(blocks)
}

fn place_vcpus(spec: &VmSpec, p: &BoardInfo) -> Result<Vec<VcpuSlot>, String> {
    if spec.pcpu_of_vcpu.len() != spec.cpu_num as usize || spec.cpu_num == 0 {
        return Err(format!(
            "cpu_num is {} but {} vCPU placements were given",
            spec.cpu_num,
            spec.pcpu_of_vcpu.len()
        ));
    }
    spec.pcpu_of_vcpu
        .iter()
        .enumerate()
        .map(|(v, &c)| {
            let mpidr = p.cpus().get(c as usize).ok_or_else(|| {
                format!(
                    "vCPU {v} is placed on physical CPU {c}, but this machine has {} CPUs",
                    p.cpus().len()
                )
            })?;
            Ok(VcpuSlot::new(c as usize, *mpidr))
        })
        .collect()
}

/// How a region of `flags` is mapped (vmconfig's reading of AxVisor's flags).
fn mapping(flags: u64) -> Result<(Perms, MemType), &'static str> {
    let m = Mapping::of(flags);
    let ty = match m.kind {
        MemKind::Ram => MemType::Normal,
        MemKind::Device => MemType::Device,
        MemKind::UncachedRam => return Err(vmconfig::UNCACHED_RAM),
    };
    let perms = Perms {
        read: m.read,
        write: m.write,
        exec: m.exec,
    };
    Ok((perms, ty))
}

/// The guest-physical address width the VM's layout needs: everything it maps or
/// emulates lies below it (at least 32 bits; the CPU's width at most, so a layout
/// beyond it fails to map). A small space lets the arch walk fewer table levels.
fn ipa_bits(spec: &VmSpec, direct: &[DirectWindow]) -> u32 {
    let ends = spec
        .memory_regions
        .iter()
        .map(|r| r.gpa.saturating_add(r.size))
        .chain(
            spec.emu_devices
                .iter()
                .map(|d| d.base_gpa.saturating_add(d.length)),
        )
        .chain(
            spec.passthrough_devices
                .iter()
                .map(|d| d.base_gpa.saturating_add(d.length)),
        )
        .chain(direct.iter().map(|w| w.gpa.saturating_add(w.size)))
        .chain(spec.channels.iter().flat_map(|c| {
            let doorbell = c.doorbell.map(|(gpa, _)| gpa.saturating_add(DOORBELL_SIZE));
            core::iter::once(c.gpa.saturating_add(c.size)).chain(doorbell)
        }));
    let top = ends.max().unwrap_or(0).saturating_sub(1);
    let needed = 64 - top.leading_zeros();
    needed
        .max(32)
        .min(Current::pa_bits())
        .min(Current::MAX_IPA_BITS)
}

/// Allocates and maps the VM's memory regions and passthrough devices.
fn build_memory(
    spec: &VmSpec,
    ipa_bits: u32,
    frames: &mut FrameAllocator,
    held: &mut Holdings,
) -> Result<GuestRam, String> {
    // Feature `s2-page-mappings` (QEMU boards): 4 KiB stage-2 pages only. QEMU's TCG
    // treats every TLB entry under a 2 MiB stage-2 block as a large page and then
    // turns each single-page TLB invalidation of the guest into a full flush, which
    // made parts of a Linux boot (ftrace patching its call sites) 3x slower.
    let blocks = !cfg!(feature = "s2-page-mappings");
    let s2 = Stage2::new(&mut FrameTables(frames), ipa_bits, blocks)
        .map_err(|e| format!("stage-2 tables: {e:?}"))?;
    let s2 = held.tables.insert(s2);
    let mut ram = GuestRam::default();
    for (i, r) in spec.memory_regions.iter().enumerate() {
        let (perms, ty) = mapping(r.flags).map_err(|e| format!("memory_regions[{i}]: {e}"))?;
        let device = ty == MemType::Device;
        let hpa = match r.map_type {
            MapType::Allocate => frames.alloc_prefer_blocks(r.size).map_err(|_| {
                format!(
                    "memory_regions[{i}]: no {} MiB of free host RAM",
                    r.size >> 20
                )
            })?,
            MapType::Identity => {
                frames.claim(r.gpa, r.size).map_err(|_| {
                    format!(
                        "memory_regions[{i}]: identity range {:#x}+{:#x} is not free host RAM",
                        r.gpa, r.size
                    )
                })?;
                r.gpa
            }
            MapType::Reserved => r.gpa,
        };
        if r.map_type != MapType::Reserved {
            held.owned.push((hpa, r.size));
        }
        s2.map(&mut FrameTables(frames), r.gpa, hpa, r.size, perms, ty)
            .map_err(|e| format!("memory_regions[{i}]: stage-2 mapping failed: {e:?}"))?;
        if r.map_type != MapType::Reserved && !device {
            ram.regions.push(RamMapping {
                gpa: r.gpa,
                hpa,
                size: r.size,
                flags: r.flags,
            });
        }
    }
    for d in spec.passthrough_devices.iter() {
        let rw = Perms::RW;
        s2.map(
            &mut FrameTables(frames),
            d.base_gpa,
            d.base_hpa,
            d.length,
            rw,
            MemType::Device,
        )
        .map_err(|e| {
            format!(
                "passthrough device \"{}\": stage-2 mapping failed: {e:?}",
                d.name
            )
        })?;
    }
    Ok(ram)
}

/// Maps the device windows the arch gives this VM straight to hardware (the GICv2
/// virtual CPU interface; `current::direct_windows` also refuses a VM whose interrupt
/// controller the host lacks).
fn map_direct_windows(
    windows: &[DirectWindow],
    s2: &mut Stage2,
    frames: &mut FrameAllocator,
) -> Result<(), String> {
    let rw = Perms::RW;
    for w in windows {
        s2.map(
            &mut FrameTables(frames),
            w.gpa,
            w.hpa,
            w.size,
            rw,
            MemType::Device,
        )
        .map_err(|e| format!("{}: stage-2 mapping failed: {e:?}", w.what))?;
    }
    Ok(())
}

/// Copies `data` to guest-physical `gpa`.
fn copy_in(ram: &GuestRam, what: &str, gpa: u64, data: &[u8]) -> Result<(), String> {
    let hpa = ram.translate(gpa, data.len() as u64).ok_or_else(|| {
        format!(
            "{what} ({} bytes at {gpa:#x}) does not fit in the VM's RAM",
            data.len()
        )
    })?;
    // SAFETY: `translate` checked the range lies in this VM's RAM, which the VM
    // being created (or reset with its vCPUs off) owns and no CPU runs; the images
    // live in the hypervisor's memory, never in a VM's RAM.
    unsafe { Current::copy_to_guest_ram(hpa, data) };
    Ok(())
}

/// What is loaded into a VM's RAM before it starts.
struct Images {
    /// (what, GPA, bytes): kernel, initramfs, DTB.
    parts: Vec<(&'static str, u64, Cow<'static, [u8]>)>,
    /// GPA ranges [start, end) they occupy, the kernel's with its bss.
    footprints: Vec<(u64, u64)>,
}

/// The VM's images (the DTB generated when the config names none), checked to fit
/// in its RAM where they go.
fn prepare_images(spec: &VmSpec, ram: &GuestRam) -> Result<Images, String> {
    let dtb: Cow<'static, [u8]> = match spec.dtb {
        Some(d) => Cow::Borrowed(d.data),
        None => Cow::Owned(generate_dtb(spec, ram)?),
    };
    let mut parts = Vec::new();
    parts.push(("DTB", guest_dtb_address(spec), dtb));
    if let Some(rd) = spec.ramdisk {
        parts.push(("initramfs", rd.load_gpa, Cow::Borrowed(rd.data)));
    }
    let others: Vec<(&'static str, u64, u64)> = parts
        .iter()
        .map(|(what, gpa, data)| (*what, *gpa, gpa + data.len() as u64))
        .collect();
    let (kernel_gpa, kernel_data) = Current::kernel_load(spec.kernel.data, spec.kernel.load_gpa)?;
    let end = kernel_gpa + kernel_data.len() as u64;
    // Nothing placed may overlap anything else (the checks placed the generated DTB
    // by an estimate; this is its real size).
    let mut placed = others.clone();
    placed.push(("kernel image", kernel_gpa, end));
    if let Some(why) = overlap(&placed) {
        return Err(why);
    }
    let mut footprints: Vec<(u64, u64)> = others.iter().map(|o| (o.1, o.2)).collect();
    footprints.push((kernel_gpa, end));
    // A kernel with a boot-protocol header (Linux) uses more than its file: check
    // where it will really live before loading anything.
    if let Some((start, end)) =
        Current::kernel_footprint(spec.kernel.data, spec.kernel.load_gpa, &others)?
    {
        ram.translate(start, end - start).ok_or_else(|| {
            format!("the kernel needs {start:#x}..{end:#x} (bss included), which is not all in the VM's RAM")
        })?;
        footprints.push((start, end));
    }
    parts.insert(0, ("kernel image", kernel_gpa, Cow::Borrowed(kernel_data)));
    Ok(Images { parts, footprints })
}

/// The first two of `parts` (what, start, end) that overlap, said.
fn overlap(parts: &[(&'static str, u64, u64)]) -> Option<String> {
    parts
        .iter()
        .enumerate()
        .find_map(|(i, &(what, start, end))| {
            parts[..i]
                .iter()
                .find(|&&(_, s, e)| start < e && s < end && start < end && s < e)
                .map(|&(other, s, e)| {
                    format!(
                        "the {what} at {start:#x}..{end:#x} overlaps the {other} at {s:#x}..{e:#x}"
                    )
                })
        })
}

fn guest_dtb_address(spec: &VmSpec) -> u64 {
    match (spec.dtb, spec.dtb_load_gpa) {
        (Some(d), _) => d.load_gpa,
        (None, Some(a)) => a,
        (None, None) => spec.memory_regions.first().map_or(0, |r| r.gpa),
    }
}

/// Feature `dump-guest-dtb`: the VM's DTB on the console, for `cargo xtask bench`.
#[cfg(feature = "dump-guest-dtb")]
fn dump_dtb(spec: &VmSpec, images: &Images) {
    if let Some((_, _, dtb)) = images.parts.iter().find(|(what, _, _)| *what == "DTB") {
        for line in vmconfig::dtbdump::lines(&spec.name, dtb) {
            crate::println!("{line}");
        }
    }
}

fn generate_dtb(spec: &VmSpec, ram: &GuestRam) -> Result<Vec<u8>, String> {
    let memory: Vec<(u64, u64)> = ram.regions.iter().map(|m| (m.gpa, m.size)).collect();
    Current::guest_description(spec, &memory)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placed_parts_must_not_overlap() {
        let parts = [
            ("DTB", 0x4000_0000, 0x4010_2000),
            ("initramfs", 0x4800_0000, 0x4800_1000),
        ];
        assert_eq!(super::overlap(&parts), None);
        let kernel = ("kernel image", 0x4008_0000, 0x4009_0000);
        assert_eq!(
            super::overlap(&[parts[0], parts[1], kernel]).as_deref(),
            Some("the kernel image at 0x40080000..0x40090000 overlaps the DTB at 0x40000000..0x40102000")
        );
    }
}
