//! The machine: the board, the frame allocator and the table of VMs, which grows and
//! shrinks at run time. Each VM is an `Arc<Vm>` that physical CPUs look up when
//! they look for work; its lifecycle (`vm::VmState`) decides what they do with it.
//! Second-stage VMIDs are allocated from a pool and reused after a VM is destroyed.
//! When the last running VM stops, the machine powers off (QEMU boards and tests;
//! the exit status says whether every VM stopped cleanly).

use super::channel::{Channel, Channels};
use super::create::{self, create_vm};
use super::vm::{Lifecycle, Power, Vm, VmState};
use crate::firmware::BoardInfo;
use crate::hal::{Arch, Cpu, Current, HostIrq, HostTimer};
use crate::mm::frames::FrameAllocator;
use crate::println;
use crate::spec::VmSpec;
use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use spin::{Mutex, Once};

/// Hardware VM tags (VMID) handed to VMs: 1..=MAX_VMID (0 is never a guest's).
pub const MAX_VMID: u16 = <Current as Arch>::MAX_VMID;
// The pool's bitmap holds 256 tags.
const _: () = assert!(MAX_VMID <= 255);

/// A pool of VMIDs: the lowest free one is taken, a destroyed VM's comes back.
#[derive(Default)]
pub struct VmidPool {
    used: [u64; 4],
}

impl VmidPool {
    pub fn take(&mut self) -> Option<u16> {
        let id = (1..=MAX_VMID).find(|&i| !self.is_used(i))?;
        self.used[usize::from(id / 64)] |= 1 << (id % 64);
        Some(id)
    }

    pub fn give_back(&mut self, id: u16) {
        if id <= MAX_VMID {
            self.used[usize::from(id / 64)] &= !(1 << (id % 64));
        }
    }

    fn is_used(&self, id: u16) -> bool {
        self.used[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }
}

pub struct Machine {
    pub platform: BoardInfo,
    vms: Mutex<Vec<Arc<Vm>>>,
    frames: Mutex<FrameAllocator>,
    vmids: Mutex<VmidPool>,
    /// The inter-VM channels (owned by the machine, used by the VMs that map them).
    channels: Mutex<Channels>,
    /// VMs that were configured but never built (they count as faulted).
    failed: AtomicUsize,
    /// Set by the one CPU that ends the machine.
    finishing: AtomicBool,
}

/// How a VM ended.
pub enum Outcome<'a> {
    PoweredOff,
    Faulted(&'a dyn core::fmt::Display),
}

static MACHINE: Once<Machine> = Once::new();

/// Publishes the machine the CPUs run; once, at boot.
pub fn publish(m: Machine) -> &'static Machine {
    MACHINE.call_once(|| m)
}

pub fn machine() -> Option<&'static Machine> {
    MACHINE.get()
}

impl Machine {
    /// A machine with no VMs yet.
    pub fn new(platform: BoardInfo, frames: FrameAllocator) -> Self {
        Self {
            platform,
            vms: Mutex::new(Vec::new()),
            frames: Mutex::new(frames),
            vmids: Mutex::new(VmidPool::default()),
            channels: Mutex::new(Channels::default()),
            failed: AtomicUsize::new(0),
            finishing: AtomicBool::new(false),
        }
    }

    /// Builds the VM of `spec` (state Created; `start` lets it run).
    pub fn create(&self, spec: Cow<'static, VmSpec>) -> Result<Arc<Vm>, String> {
        let vmid = self
            .vmids
            .lock()
            .take()
            .ok_or_else(|| String::from("no free VMID: too many VMs"))?;
        let built = super::dtpass::resolve(spec, &self.platform).and_then(|spec| {
            let (id, name) = (spec.id, spec.name.clone());
            let mut channels = self.channels.lock();
            let mut frames = self.frames.lock();
            let shared = channels.acquire(&spec, &mut frames)?;
            create_vm(spec, vmid, &self.platform, &mut frames, &shared).inspect_err(|_| {
                channels.release(id, &name, &mut frames);
            })
        });
        match built {
            Ok(vm) => {
                let vm = Arc::new(vm);
                self.vms.lock().push(vm.clone());
                Ok(vm)
            }
            Err(e) => {
                self.vmids.lock().give_back(vmid);
                Err(e)
            }
        }
    }

    /// Counts a VM that was configured but could not be built (it counts as
    /// faulted when the machine ends).
    pub fn note_failed(&self) {
        self.failed.fetch_add(1, Ordering::AcqRel);
    }

    /// Created -> Running: vCPU 0 may enter the guest. Its CPU sees that when it
    /// next looks (at boot, before the other CPUs are started, that is at once).
    pub fn start(&self, vm: &Vm) -> bool {
        vm.mark_started()
    }

    /// Stopped -> Running with a fresh state: devices at power-on, RAM scrubbed,
    /// images loaded again, vCPU 0 at its entry.
    pub fn restart(&self, vm: &Vm) -> Result<(), String> {
        if vm.state() != VmState::Stopped {
            return Err(alloc::format!(
                "VM {} is {:?}, not stopped",
                vm.id(),
                vm.state()
            ));
        }
        if vm.vcpus.iter().any(|v| v.power() == Power::On) {
            return Err(String::from("its vCPUs are still leaving the guest"));
        }
        vm.vcpus.iter().for_each(|v| v.cancel_start());
        create::boot_afresh(vm)?;
        vm.set_faulted(false);
        vm.set_stop_reported(false);
        vm.apply(Lifecycle::Restart)
            .map_err(|s| alloc::format!("VM {} became {s:?}", vm.id()))?;
        wake(&vm.vcpus[0]);
        Ok(())
    }

    /// Frees everything a stopped (or never started) VM holds: its RAM frames and
    /// second-stage tables go back to the allocator, its VMID to the pool, and it
    /// leaves the VM table. Its CPUs then look for other work.
    pub fn destroy(&self, id: u32) -> Result<(), String> {
        let vm = self
            .vm(id)
            .ok_or_else(|| alloc::format!("no VM with id {id}"))?;
        if vm.vcpus.iter().any(|v| v.power() == Power::On) {
            return Err(String::from("its vCPUs are still leaving the guest"));
        }
        vm.apply(Lifecycle::Destroy)
            .map_err(|s| alloc::format!("VM {id} is {s:?}: stop it first"))?;
        self.vms.lock().retain(|v| v.id() != id);
        create::release(&vm, &mut self.frames.lock());
        self.channels
            .lock()
            .release(id, vm.name(), &mut self.frames.lock());
        self.vmids.lock().give_back(vm.vmid);
        for v in &vm.vcpus {
            wake(v);
        }
        Ok(())
    }

    /// The VMs, in the order they were created.
    pub fn vms(&self) -> Vec<Arc<Vm>> {
        self.vms.lock().clone()
    }

    pub fn vm(&self, id: u32) -> Option<Arc<Vm>> {
        self.vms.lock().iter().find(|v| v.id() == id).cloned()
    }

    /// The VM with a vCPU on physical CPU `cpu` (index in the board's order), and
    /// that vCPU's index.
    pub fn assigned(&self, cpu: usize) -> Option<(Arc<Vm>, usize)> {
        self.vms.lock().iter().find_map(|vm| {
            let i = vm.vcpus.iter().position(|v| v.pcpu == cpu)?;
            Some((vm.clone(), i))
        })
    }

    /// The inter-VM channel called `name`.
    pub fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.channels.lock().get(name)
    }

    /// Free host RAM, in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.frames.lock().free_bytes()
    }

    /// Stops `vm` (once), kicks its other vCPUs, and powers the machine off when it
    /// was the last VM running.
    pub fn stop_vm(&self, vm: &Vm, outcome: Outcome) {
        if !vm.mark_stopped() {
            return;
        }
        vm.devices.lock().flush_console();
        let (blocks, filled, ticks) = vm.lazy.counts();
        let ms = ticks * 1000 / Current::counter_hz().max(1);
        crate::debug!(
            "hv: VM {} ({}) exits: {}; RAM blocks zeroed on first touch: {filled} of {blocks} ({ms} ms)",
            vm.id(),
            vm.name(),
            vm.exits
        );
        match outcome {
            Outcome::PoweredOff => crate::info!("hv: VM {} ({}) powered off", vm.id(), vm.name()),
            Outcome::Faulted(why) => {
                vm.set_faulted(true);
                println!("hv: VM {} ({}) stopped: {}", vm.id(), vm.name(), why);
            }
        }
        // Running vCPUs leave the guest, waiting ones wake up and see the VM stopped.
        for v in &vm.vcpus {
            wake(v);
        }
        vm.set_stop_reported(true);
        self.after_stop();
    }

    /// Ends the machine once no VM runs any more and every stop has been reported
    /// (a VM marked stopped on another CPU may still be printing why).
    fn after_stop(&self) {
        let done = |v: &Arc<Vm>| v.state() == VmState::Created || v.stop_reported();
        if self.vms().iter().all(done) {
            self.finish();
        }
    }

    /// (clean, faulted) VMs, counting the ones that never started as faulted.
    pub fn tally(&self) -> (usize, usize) {
        let vms = self.vms();
        let failed = self.failed.load(Ordering::Acquire);
        let faulted = failed + vms.iter().filter(|v| v.faulted()).count();
        (vms.len() + failed - faulted, faulted)
    }

    /// Reports how the VMs ended and powers the machine off (one caller only; any
    /// other waits for the end).
    pub fn finish(&self) {
        if self.finishing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (clean, faulted) = self.tally();
        println!("hv: all VMs stopped: {clean} clean, {faulted} faulted");
        Current::power_off(&self.platform, faulted == 0 && clean > 0);
    }
}

/// Wakes the physical CPU of vCPU `slot` (from the guest or from idle), unless that
/// is this CPU.
pub fn wake(slot: &super::vm::VcpuSlot) {
    wake_cpu(slot.pcpu_mpidr);
}

/// Makes physical CPU `id` look at its vCPU (a kick, unless it is this CPU).
pub fn wake_cpu(id: u64) {
    if id != Current::this_cpu() {
        Current::kick(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmids_are_reused_lowest_first() {
        let mut p = VmidPool::default();
        assert_eq!((p.take(), p.take(), p.take()), (Some(1), Some(2), Some(3)));
        p.give_back(2);
        assert_eq!(p.take(), Some(2));
        for _ in 4..=MAX_VMID {
            assert!(p.take().is_some());
        }
        assert_eq!(p.take(), None, "all taken");
        p.give_back(200);
        assert_eq!(p.take(), Some(200));
        p.give_back(0x7fff);
    }
}
