//! Building a VM from its spec: guest RAM, stage-2 mappings, images, the guest DTB,
//! devices and vCPU placement. Any problem is returned as a message; the VM is then
//! not started and the others are unaffected.

use super::config::{mem_flags, MapType, VmSpec};
use super::devices::VmDevices;
use super::vm::{VcpuSlot, Vm};
use crate::arch::current::{self, MemType, Perms, Stage2, Stage2Regs, MAX_IPA_BITS};
use crate::mm::frames::FrameAllocator;
use crate::mm::guest::{GuestRam, RamMapping};
use crate::mm::phys::{self, FrameTables};
use crate::platform::HostPlatform as Platform;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub fn create_vm(
    spec: &'static VmSpec,
    index: usize,
    platform: &Platform,
    frames: &mut FrameAllocator,
) -> Result<Vm, String> {
    let vcpus = place_vcpus(spec, platform)?;
    let devices = VmDevices::new(spec)?;
    let direct = current::direct_windows(spec, platform)?;
    let (mut s2, ram) = build_memory(spec, frames)?;
    map_direct_windows(&direct, &mut s2, frames)?;
    for m in &ram.regions {
        // SAFETY: freshly allocated/claimed RAM owned by this VM, not yet running.
        unsafe { phys::slice_mut(m.hpa, m.size) }.fill(0);
    }
    load_images(spec, &ram)?;
    for m in &ram.regions {
        current::clean_for_guest(m.hpa, m.size);
    }
    let vmid = u16::try_from(index + 1).map_err(|_| String::from("too many VMs"))?;
    let stage2 = Stage2Regs {
        root: s2.root(),
        vmid,
        ipa_bits: s2.ipa_bits(),
    };
    let vm = Vm::new(spec, ram, vcpus, devices, current::counter(), stage2);
    vm.vcpus[0]
        .request_start(spec.entry_point, guest_dtb_address(spec))
        .map_err(|_| String::from("vCPU 0 already on"))?;
    Ok(vm)
}

/// Puts a VM back to its boot state for a guest-requested reset: RAM zeroed, images
/// and DTB loaded again. Every vCPU of the VM must be off. Returns vCPU 0's
/// (entry, argument).
pub fn reload(vm: &Vm) -> Result<(u64, u64), String> {
    for m in &vm.ram.regions {
        // SAFETY: the VM's own RAM; all its vCPUs are off, so no CPU uses it.
        unsafe { phys::slice_mut(m.hpa, m.size) }.fill(0);
    }
    load_images(vm.spec, &vm.ram)?;
    for m in &vm.ram.regions {
        current::clean_for_guest(m.hpa, m.size);
    }
    Ok((vm.spec.entry_point, guest_dtb_address(vm.spec)))
}

fn place_vcpus(spec: &VmSpec, p: &Platform) -> Result<Vec<VcpuSlot>, String> {
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
                    p.cpu_count
                )
            })?;
            Ok(VcpuSlot::new(c as usize, *mpidr))
        })
        .collect()
}

fn perms(flags: u64) -> Perms {
    Perms {
        read: flags & mem_flags::READ != 0,
        write: flags & mem_flags::WRITE != 0,
        exec: flags & mem_flags::EXECUTE != 0,
    }
}

/// Allocates and maps the VM's memory regions and passthrough devices.
fn build_memory(spec: &VmSpec, frames: &mut FrameAllocator) -> Result<(Stage2, GuestRam), String> {
    let ipa_bits = pa_bits().min(MAX_IPA_BITS);
    let mut s2 = Stage2::new(&mut FrameTables(frames), ipa_bits)
        .map_err(|e| format!("stage-2 tables: {e:?}"))?;
    let mut ram = GuestRam::default();
    for (i, r) in spec.memory_regions.iter().enumerate() {
        let device = r.flags & mem_flags::DEVICE != 0;
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
        let ty = if device {
            MemType::Device
        } else {
            MemType::Normal
        };
        s2.map(
            &mut FrameTables(frames),
            r.gpa,
            hpa,
            r.size,
            perms(r.flags),
            ty,
        )
        .map_err(|e| format!("memory_regions[{i}]: stage-2 mapping failed: {e:?}"))?;
        if r.map_type != MapType::Reserved && !device {
            ram.regions.push(RamMapping {
                gpa: r.gpa,
                hpa,
                size: r.size,
            });
        }
    }
    for d in spec.passthrough_devices {
        let rw = Perms {
            read: true,
            write: true,
            exec: false,
        };
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
    Ok((s2, ram))
}

/// Maps the device windows the arch gives this VM straight to hardware (the GICv2
/// virtual CPU interface; `current::direct_windows` also refuses a VM whose interrupt
/// controller the host lacks).
fn map_direct_windows(
    windows: &[current::DirectWindow],
    s2: &mut Stage2,
    frames: &mut FrameAllocator,
) -> Result<(), String> {
    let rw = Perms {
        read: true,
        write: true,
        exec: false,
    };
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

fn pa_bits() -> u32 {
    current::pa_bits()
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
    // being created owns and no CPU runs yet.
    unsafe { phys::slice_mut(hpa, data.len() as u64) }.copy_from_slice(data);
    Ok(())
}

fn load_images(spec: &VmSpec, ram: &GuestRam) -> Result<(), String> {
    let generated = match spec.dtb {
        Some(_) => None,
        None => Some(generate_dtb(spec, ram)?),
    };
    let dtb: &[u8] = spec
        .dtb
        .map_or(generated.as_deref().unwrap_or(&[]), |d| d.data);
    let dtb_gpa = guest_dtb_address(spec);
    let mut others = Vec::new();
    others.push(("DTB", dtb_gpa, dtb_gpa + dtb.len() as u64));
    if let Some(rd) = spec.ramdisk {
        others.push(("initramfs", rd.load_gpa, rd.load_gpa + rd.data.len() as u64));
    }
    // A kernel with a boot-protocol header (Linux) uses more than its file: check
    // where it will really live before loading anything.
    if let Some((start, end)) =
        current::kernel_footprint(spec.kernel.data, spec.kernel.load_gpa, &others)?
    {
        ram.translate(start, end - start).ok_or_else(|| {
            format!("the kernel needs {start:#x}..{end:#x} (bss included), which is not all in the VM's RAM")
        })?;
    }
    copy_in(ram, "kernel image", spec.kernel.load_gpa, spec.kernel.data)?;
    if let Some(rd) = spec.ramdisk {
        copy_in(ram, "ramdisk", rd.load_gpa, rd.data)?;
    }
    copy_in(ram, "DTB", dtb_gpa, dtb)
}

fn guest_dtb_address(spec: &VmSpec) -> u64 {
    match (spec.dtb, spec.dtb_load_gpa) {
        (Some(d), _) => d.load_gpa,
        (None, Some(a)) => a,
        (None, None) => spec.memory_regions.first().map_or(0, |r| r.gpa),
    }
}

fn generate_dtb(spec: &VmSpec, ram: &GuestRam) -> Result<Vec<u8>, String> {
    let memory: Vec<(u64, u64)> = ram.regions.iter().map(|m| (m.gpa, m.size)).collect();
    current::guest_dtb(spec, &memory)
}
