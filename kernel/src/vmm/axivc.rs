//! AxVisor's inter-VM channels by hypercall, for guests written for AxVisor: a VM
//! with an IVC window (`emu_type` 0xA, `vmconfig::channel::check_ivc_windows`)
//! publishes a channel under a key of its choosing and another VM subscribes to it
//! by (publisher VM id, key). The hypervisor places the region in each VM's IVC
//! window and writes where, and how big, into the guest's memory.
//!
//! The calls (aarch64: `hvc #0`, x0 = code, x1.. = arguments; riscv64: `ecall` with
//! a7 = 0x48_5643 "HVC", a6 = code, a0.. = arguments; the answer in x0 / a0 alone:
//! 0 done, -1 refused, with the reason in the hypervisor's log):
//! - 3 publish(key, &base, &size): reads the size wanted (a 64-bit word at `&size`),
//!   rounds it up to 4 KiB pages and cuts it to
//!   [`vmconfig::channel::IVC_MAX_PUBLISH`]; allocates and zeroes the region, writes
//!   its header (publisher VM id, key: two little-endian 64-bit words at its start),
//!   maps it read-write in the publisher's window and writes the region's address and
//!   size to `&base` and `&size`. A key this VM already published is refused.
//! - 4 subscribe(vm, key, &base, &size): maps VM `vm`'s channel `key` read-write in
//!   the caller's window and writes where and its size. One subscriber per channel
//!   (AxVisor's rule: its rings have one producer and one consumer each way).
//! - 5 unpublish(key): unmaps it from the publisher; a subscriber keeps its mapping,
//!   and the region is freed when it unsubscribes. No new subscriber is taken.
//! - 6 unsubscribe(vm, key): unmaps it from the subscriber; an unpublished channel's
//!   region is freed then.
//!
//! On an architecture whose stage-2 TLB flush reaches the calling CPU only
//! (`MemoryOps::STAGE2_UNMAP_ALL_CPUS` false: riscv64), unpublish and unsubscribe
//! are refused while another vCPU of the VM runs ("not supported yet").
//!
//! Every argument is checked: pointers must be 8 bytes of the caller's writable RAM
//! (checked before anything is taken), sizes non-zero, the channel must exist, the
//! window must have room. The machine owns the regions like those of
//! `[[devices.channels]]`: a destroyed VM's channels are unpublished / unsubscribed
//! and freed with their last user; a restarted VM keeps its mappings (its
//! second-stage tables are kept), as its configured channels are.

use super::vm::Vm;
use crate::hal::{Current, MemType, MemoryOps, Perms};
use crate::mm::frames::FrameAllocator;
use crate::mm::guest::GuestMemory;
use crate::mm::phys::{self, FrameTables};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use vmconfig::channel::IVC_MAX_PUBLISH;

/// AxVisor's hypercall numbers.
pub const HC_PUBLISH: u64 = 3;
pub const HC_SUBSCRIBE: u64 = 4;
pub const HC_UNPUBLISH: u64 = 5;
pub const HC_UNSUBSCRIBE: u64 = 6;
/// AxVisor's hypercall numbers are below this (its others, 0..=2 hypervisor
/// disable and debug, are refused).
pub const AXVISOR_CODES_END: u64 = 0x100;
/// The answer to a refused call: -1.
pub const REFUSED: u64 = u64::MAX;

const PAGE: u64 = 0x1000;
/// Bytes of the header at the start of a published region.
pub const HEADER_SIZE: usize = 16;

/// One published channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxChannel {
    pub publisher: u32,
    pub key: u64,
    pub hpa: u64,
    pub size: u64,
    /// Where the publisher sees it; None once unpublished (a subscriber remains).
    pub publisher_gpa: Option<u64>,
    /// The subscriber VM and where it sees the region.
    pub subscriber: Option<(u32, u64)>,
}

impl AxChannel {
    fn gpa_in(&self, vm: u32) -> impl Iterator<Item = u64> + '_ {
        let publisher = self.publisher_gpa.filter(|_| self.publisher == vm);
        let subscriber = self.subscriber.filter(|s| s.0 == vm).map(|s| s.1);
        publisher.into_iter().chain(subscriber)
    }

    fn unused(&self) -> bool {
        self.publisher_gpa.is_none() && self.subscriber.is_none()
    }
}

/// The machine's published channels.
#[derive(Default)]
pub struct AxIvc {
    list: Vec<AxChannel>,
}

impl AxIvc {
    pub fn channels(&self) -> &[AxChannel] {
        &self.list
    }

    fn find(&self, publisher: u32, key: u64) -> Option<usize> {
        self.list
            .iter()
            .position(|c| c.publisher == publisher && c.key == key)
    }

    /// The lowest page-aligned place for `size` bytes in VM `vm`'s window
    /// `(base, len)` that none of its channels takes.
    fn place(&self, vm: u32, (base, len): (u64, u64), size: u64) -> Option<u64> {
        let mut taken: Vec<(u64, u64)> = self
            .list
            .iter()
            .flat_map(|c| c.gpa_in(vm).map(move |g| (g, c.size)))
            .collect();
        taken.sort_unstable();
        let end = base.checked_add(len)?;
        let mut at = base;
        for (g, s) in taken {
            if g.saturating_sub(at) >= size {
                break;
            }
            at = at.max(g.saturating_add(s));
        }
        (at.checked_add(size)? <= end).then_some(at)
    }

    /// VM `id` is destroyed (its second-stage tables with it): it publishes and
    /// subscribes to nothing any more; a region no VM maps goes back to `frames`.
    pub fn release(&mut self, id: u32, frames: &mut FrameAllocator) {
        for c in self.list.iter_mut() {
            if c.publisher == id {
                c.publisher_gpa = None;
            }
            if c.subscriber.is_some_and(|s| s.0 == id) {
                c.subscriber = None;
            }
        }
        self.list.retain(|c| {
            if !c.unused() {
                return true;
            }
            free_region(c, frames);
            false
        });
    }
}

fn free_region(c: &AxChannel, frames: &mut FrameAllocator) {
    if frames.free(c.hpa, c.size).is_err() {
        crate::warn!(
            "hv: IVC channel {:#x} of VM {}: region was not allocated",
            c.key,
            c.publisher
        );
    }
}

/// Answers AxVisor hypercall `code` (below [`AXVISOR_CODES_END`]) of `vm`: 0, or [`REFUSED`] with the
/// reason logged.
pub fn call(
    ivc: &mut AxIvc,
    frames: &mut FrameAllocator,
    vm: &Vm,
    code: u64,
    args: [u64; 4],
) -> u64 {
    let (what, r) = match code {
        HC_PUBLISH => ("publish", publish(ivc, frames, vm, args)),
        HC_SUBSCRIBE => ("subscribe", subscribe(ivc, frames, vm, args)),
        HC_UNPUBLISH => ("unpublish", unpublish(ivc, frames, vm, args[0])),
        HC_UNSUBSCRIBE => ("unsubscribe", unsubscribe(ivc, frames, vm, args)),
        _ => (
            "hypercall",
            Err(format!("not supported: AxVisor hypercall {code}")),
        ),
    };
    match r {
        Ok(()) => 0,
        Err(why) => {
            crate::warn!(
                "hv: VM {} ({}): IVC {what} refused: {why}",
                vm.id(),
                vm.name()
            );
            REFUSED
        }
    }
}

/// The VM's IVC window (base, length).
fn window(vm: &Vm) -> Result<(u64, u64), String> {
    vm.spec
        .emu_devices
        .iter()
        .find(|d| d.emu_type == crate::devices::emu_type::IVC)
        .map(|d| (d.base_gpa, d.length))
        .ok_or_else(|| String::from("this VM has no IVC window (emu_type 0xa)"))
}

/// The 64-bit word at `gpa` in the VM's RAM, which must also be writable there
/// (it is written back unchanged to make sure, before anything is taken).
fn word(mem: &GuestMemory, gpa: u64, what: &str) -> Result<u64, String> {
    let mut b = [0u8; 8];
    mem.read(gpa, &mut b)
        .and_then(|()| mem.write(gpa, &b))
        .map_err(|_| format!("{what} pointer {gpa:#x} is not 8 bytes of this VM's writable RAM"))?;
    Ok(u64::from_le_bytes(b))
}

fn memory(vm: &Vm) -> GuestMemory<'_> {
    GuestMemory::new(&vm.ram, Some(&vm.lazy))
}

/// Maps `[gpa, gpa + size)` of `vm` to the region at `hpa`, read-write, never
/// executable.
fn map(vm: &Vm, frames: &mut FrameAllocator, gpa: u64, hpa: u64, size: u64) -> Result<(), String> {
    let mut tables = vm.tables.lock();
    let s2 = tables
        .as_mut()
        .ok_or_else(|| String::from("the VM has no second-stage tables"))?;
    let perms = Perms {
        read: true,
        write: true,
        exec: false,
    };
    s2.map(
        &mut FrameTables(frames),
        gpa,
        hpa,
        size,
        perms,
        MemType::Normal,
    )
    .map_err(|e| format!("stage-2 mapping at {gpa:#x} failed: {e:?}"))?;
    Current::stage2_mapped(gpa);
    Ok(())
}

fn unmap(vm: &Vm, frames: &mut FrameAllocator, gpa: u64, size: u64) -> Result<(), String> {
    // Another running vCPU of the VM would keep the old translations where the TLB
    // flush does not reach it, and the region may be freed next.
    let on = vm
        .vcpus
        .iter()
        .filter(|v| v.power() != super::vm::Power::Off)
        .count();
    if !Current::STAGE2_UNMAP_ALL_CPUS && on > 1 {
        return Err(String::from(
            "not supported yet: unmapping a channel while other vCPUs of the VM run, on this architecture (its TLB flush reaches this CPU only)",
        ));
    }
    let mut tables = vm.tables.lock();
    let s2 = tables
        .as_mut()
        .ok_or_else(|| String::from("the VM has no second-stage tables"))?;
    s2.unmap(&mut FrameTables(frames), gpa, size)
        .map_err(|e| format!("stage-2 unmapping at {gpa:#x} failed: {e:?}"))?;
    Current::stage2_unmapped();
    Ok(())
}

/// Writes where the region is and its size to the guest's two words.
fn tell(mem: &GuestMemory, (base_ptr, size_ptr): (u64, u64), gpa: u64, size: u64) {
    // Both were checked writable before anything was taken.
    let wrote = mem
        .write(base_ptr, &gpa.to_le_bytes())
        .and_then(|()| mem.write(size_ptr, &size.to_le_bytes()));
    if wrote.is_err() {
        crate::warn!("hv: IVC: the answer words at {base_ptr:#x}, {size_ptr:#x} went away");
    }
}

fn publish(
    ivc: &mut AxIvc,
    frames: &mut FrameAllocator,
    vm: &Vm,
    [key, base_ptr, size_ptr, _]: [u64; 4],
) -> Result<(), String> {
    let win = window(vm)?;
    let mem = memory(vm);
    word(&mem, base_ptr, "base")?;
    let wanted = word(&mem, size_ptr, "size")?;
    if wanted == 0 {
        return Err(format!("key {key:#x}: size 0"));
    }
    let size = wanted.min(IVC_MAX_PUBLISH).next_multiple_of(PAGE);
    let id = vm.id();
    if ivc.find(id, key).is_some() {
        return Err(format!(
            "key {key:#x}: this VM published it already (unpublish it first; a subscriber may still hold it)"
        ));
    }
    let gpa = ivc.place(id, win, size).ok_or_else(|| {
        format!(
            "key {key:#x}: no room for {size:#x} bytes in the IVC window {:#x}+{:#x}",
            win.0, win.1
        )
    })?;
    let hpa = frames
        .alloc(size, PAGE)
        .map_err(|_| format!("key {key:#x}: no {size:#x} bytes of host RAM for its region"))?;
    // SAFETY: frames just allocated: nobody maps them yet.
    unsafe { Current::zero_guest_ram(hpa, size) };
    let mut header = [0u8; HEADER_SIZE];
    header[..8].copy_from_slice(&u64::from(id).to_le_bytes());
    header[8..].copy_from_slice(&key.to_le_bytes());
    // SAFETY: the first bytes of the frames just allocated, which nothing else uses.
    unsafe { phys::write_bytes(hpa, &header) };
    Current::clean_for_guest(hpa, size);
    if let Err(e) = map(vm, frames, gpa, hpa, size) {
        let _ = frames.free(hpa, size);
        return Err(e);
    }
    tell(&mem, (base_ptr, size_ptr), gpa, size);
    ivc.list.push(AxChannel {
        publisher: id,
        key,
        hpa,
        size,
        publisher_gpa: Some(gpa),
        subscriber: None,
    });
    crate::info!(
        "hv: VM {id} ({}): IVC channel {key:#x} published at {gpa:#x}, {size:#x} bytes",
        vm.name()
    );
    Ok(())
}

fn subscribe(
    ivc: &mut AxIvc,
    frames: &mut FrameAllocator,
    vm: &Vm,
    [publisher, key, base_ptr, size_ptr]: [u64; 4],
) -> Result<(), String> {
    let win = window(vm)?;
    let mem = memory(vm);
    word(&mem, base_ptr, "base")?;
    word(&mem, size_ptr, "size")?;
    let what = format!("VM {publisher}'s channel {key:#x}");
    let i = u32::try_from(publisher)
        .ok()
        .and_then(|p| ivc.find(p, key))
        .filter(|&i| ivc.list[i].publisher_gpa.is_some())
        .ok_or_else(|| format!("{what} is not published"))?;
    if let Some((s, _)) = ivc.list[i].subscriber {
        return Err(format!("{what} has its subscriber already (VM {s})"));
    }
    let (hpa, size) = (ivc.list[i].hpa, ivc.list[i].size);
    let id = vm.id();
    let gpa = ivc.place(id, win, size).ok_or_else(|| {
        format!(
            "{what}: no room for {size:#x} bytes in the IVC window {:#x}+{:#x}",
            win.0, win.1
        )
    })?;
    map(vm, frames, gpa, hpa, size)?;
    tell(&mem, (base_ptr, size_ptr), gpa, size);
    ivc.list[i].subscriber = Some((id, gpa));
    crate::info!(
        "hv: VM {id} ({}): subscribed to {what} at {gpa:#x}",
        vm.name()
    );
    Ok(())
}

fn unpublish(
    ivc: &mut AxIvc,
    frames: &mut FrameAllocator,
    vm: &Vm,
    key: u64,
) -> Result<(), String> {
    let i = ivc
        .find(vm.id(), key)
        .filter(|&i| ivc.list[i].publisher_gpa.is_some())
        .ok_or_else(|| format!("key {key:#x}: this VM does not publish it"))?;
    let c = &mut ivc.list[i];
    let gpa = c.publisher_gpa.unwrap_or_default();
    unmap(vm, frames, gpa, c.size)?;
    c.publisher_gpa = None;
    if c.unused() {
        free_region(c, frames);
        ivc.list.remove(i);
    }
    Ok(())
}

fn unsubscribe(
    ivc: &mut AxIvc,
    frames: &mut FrameAllocator,
    vm: &Vm,
    [publisher, key, ..]: [u64; 4],
) -> Result<(), String> {
    let id = vm.id();
    let found = u32::try_from(publisher)
        .ok()
        .and_then(|p| ivc.find(p, key))
        .and_then(|i| Some((i, ivc.list[i].subscriber.filter(|s| s.0 == id)?.1)));
    let (i, gpa) = found
        .ok_or_else(|| format!("this VM is not subscribed to VM {publisher}'s channel {key:#x}"))?;
    let c = &mut ivc.list[i];
    unmap(vm, frames, gpa, c.size)?;
    c.subscriber = None;
    if c.unused() {
        free_region(c, frames);
        ivc.list.remove(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(publisher: u32, gpa: Option<u64>, sub: Option<(u32, u64)>, size: u64) -> AxChannel {
        AxChannel {
            publisher,
            key: 1,
            hpa: 0,
            size,
            publisher_gpa: gpa,
            subscriber: sub,
        }
    }

    #[test]
    fn regions_are_placed_first_fit_in_the_window() {
        let w = (0x1000_0000, 0x1_0000);
        let mut ivc = AxIvc::default();
        assert_eq!(ivc.place(1, w, 0x2000), Some(0x1000_0000));
        assert_eq!(ivc.place(1, w, 0x1_0000), Some(0x1000_0000));
        assert_eq!(ivc.place(1, w, 0x1_1000), None, "bigger than the window");
        ivc.list.push(ch(1, Some(0x1000_0000), None, 0x2000));
        ivc.list
            .push(ch(2, Some(0x1000_4000), Some((1, 0x1000_6000)), 0x1000));
        // VM 2's mapping is in its own window: not in VM 1's way.
        assert_eq!(ivc.place(1, w, 0x2000), Some(0x1000_2000));
        assert_eq!(ivc.place(1, w, 0x4000), Some(0x1000_2000));
        assert_eq!(ivc.place(1, w, 0x5000), Some(0x1000_7000));
        assert_eq!(ivc.place(2, w, 0x4000), Some(0x1000_0000));
        assert_eq!(ivc.place(1, w, 0x9000), Some(0x1000_7000));
        assert_eq!(ivc.place(1, w, 0xa000), None);
        assert_eq!(ivc.place(1, (u64::MAX - 0xfff, 0x1000), 0x1000), None);
    }
}
