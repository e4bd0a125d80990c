//! The machine: the board, the frame allocator and the table of VMs, which grows and
//! shrinks at run time. Each VM is an `Arc<Vm>` that physical CPUs look up when
//! they look for work; its lifecycle (`vm::VmState`) decides what they do with it.
//! Second-stage VMIDs are allocated from a pool and reused after a VM is destroyed.
//! When the last running VM stops, the machine powers off (QEMU boards and tests;
//! the exit status says whether every VM stopped cleanly), or, with the board's
//! `on_last_stop = "shell"`, stays up with the hypervisor shell.

use super::axivc::AxIvc;
use super::channel::{Channel, Channels};
use super::create::{self, create_vm};
use super::vm::{Lifecycle, Pending, Power, Vm, VmState};
use crate::firmware::BoardInfo;
use crate::hal::{Arch, Cpu, Current, HostIrq, HostTimer};
use crate::mm::frames::FrameAllocator;
use crate::println;
use crate::spec::{OnLastStop, VmSpec, BUILD};
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
    /// The channels guests published by AxVisor's IVC hypercalls (`axivc.rs`).
    ivc: Mutex<AxIvc>,
    /// VMs that were configured but never built (they count as faulted).
    failed: AtomicUsize,
    /// Set by the one CPU that ends the machine.
    finishing: AtomicBool,
    /// What happens when the last VM stops.
    pub on_last_stop: OnLastStop,
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
            ivc: Mutex::new(AxIvc::default()),
            failed: AtomicUsize::new(0),
            finishing: AtomicBool::new(false),
            on_last_stop: BUILD.on_last_stop,
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

    /// [`Machine::create`] for a VM whose files were read into `frames` (base, size)
    /// (from a disk): the VM keeps them and frees them when it is destroyed; when it
    /// cannot be built they are freed at once.
    pub fn create_holding(
        &self,
        spec: Cow<'static, VmSpec>,
        frames: Vec<(u64, u64)>,
    ) -> Result<Arc<Vm>, String> {
        match self.create(spec) {
            Ok(vm) => {
                vm.owned.lock().extend(frames);
                Ok(vm)
            }
            Err(e) => {
                let mut f = self.frames.lock();
                for (base, size) in frames {
                    if f.free(base, size).is_err() {
                        crate::warn!("hv: RAM {base:#x}+{size:#x} was not allocated");
                    }
                }
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
        let started = vm.mark_started();
        if started {
            vm.set_started_at(Current::counter());
            wake(&vm.vcpus[0]);
        }
        started
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
        vm.set_started_at(Current::counter());
        wake(&vm.vcpus[0]);
        Ok(())
    }

    /// Stops a running VM on the shell's behalf and asks for `then` once its vCPUs
    /// have left the guest (kicked out by an interrupt the hypervisor owns, which
    /// reaches them even when the guest masked its own interrupts). Only a plain stop
    /// may end the machine (it may be the last VM); a restart or delete does not.
    /// False when the VM was not running.
    pub fn stop_from_shell(&self, vm: &Vm, then: Pending) -> bool {
        if !vm.mark_stopped() {
            return false;
        }
        vm.set_pending(then);
        vm.devices.lock().flush_console();
        crate::info!("hv: VM {} ({}) stopped from the shell", vm.id(), vm.name());
        for v in &vm.vcpus {
            wake(v);
        }
        vm.set_stop_reported(true);
        if then == Pending::Stop {
            self.after_stop();
        }
        true
    }

    /// Does what the shell asked of `vm` once no vCPU of it is in the guest any
    /// more; called by the shell and by each CPU whose vCPU of it left the guest.
    /// The one caller that takes the request does it; returns what it did.
    pub fn settle(&self, vm: &Vm) -> Option<Result<String, String>> {
        let pending = loop {
            if vm.pending() == Pending::Nothing || vm.any_vcpu_on() || !vm.is_stopped() {
                return None;
            }
            let p = vm.take_pending();
            // A vCPU that was starting may have entered meanwhile: the request goes
            // back for it to do when it leaves (checked again, in case it already
            // left and found nothing to do).
            if vm.any_vcpu_on() {
                vm.set_pending(p);
                continue;
            }
            break p;
        };
        let who = alloc::format!("VM {} ({})", vm.id(), vm.name());
        match pending {
            Pending::Nothing => None,
            Pending::Stop => {
                vm.devices.lock().reset();
                Some(Ok(alloc::format!(
                    "{who}: its vCPUs left the guest, its devices are reset"
                )))
            }
            Pending::Restart => Some(
                self.restart(vm)
                    .map(|()| alloc::format!("{who} restarted: boot {}", vm.boots()))
                    .map_err(|e| alloc::format!("{who} not restarted: {e}")),
            ),
            Pending::Delete => {
                let before = self.free_bytes();
                let r = self.destroy(vm.id());
                let freed = self.free_bytes().saturating_sub(before);
                let r = r
                    .map(|()| {
                        alloc::format!(
                            "{who} deleted: {} frames ({} KiB) freed",
                            freed / 4096,
                            freed >> 10
                        )
                    })
                    .map_err(|e| alloc::format!("{who} not deleted: {e}"));
                self.after_stop();
                Some(r)
            }
        }
    }

    /// [`Machine::settle`], telling the console what was done.
    pub fn settle_report(&self, vm: &Vm) {
        match self.settle(vm) {
            Some(Ok(done)) => crate::info!("hv: {done}"),
            Some(Err(why)) => println!("hv: {why}"),
            None => {}
        }
    }

    /// Frames (4 KiB) of host RAM: (used, free). Used counts everything the
    /// allocator handed out (the heap, VMs' RAM and second-stage tables).
    /// Runs `f` with the frame allocator (the shell's `vm create` reads a disk's
    /// files into frames).
    pub fn with_frames<R>(&self, f: impl FnOnce(&mut FrameAllocator) -> R) -> R {
        f(&mut self.frames.lock())
    }

    pub fn frames(&self) -> (u64, u64) {
        let f = self.frames.lock();
        let total: u64 = f.managed_bytes();
        let free = f.free_bytes();
        (total.saturating_sub(free) / 4096, free / 4096)
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
        self.ivc.lock().release(id, &mut self.frames.lock());
        self.vmids.lock().give_back(vm.vmid);
        for v in &vm.vcpus {
            wake(v);
        }
        Ok(())
    }

    /// AxVisor IVC hypercall `code` of `vm` (`axivc::call`): 0, or -1.
    pub fn ivc_call(&self, vm: &Vm, code: u64, args: [u64; 4]) -> u64 {
        let mut ivc = self.ivc.lock();
        super::axivc::call(&mut ivc, &mut self.frames.lock(), vm, code, args)
    }

    /// The channels published by IVC hypercalls now.
    pub fn ivc_channels(&self) -> Vec<super::axivc::AxChannel> {
        self.ivc.lock().channels().to_vec()
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
        if !self.vms().iter().all(done) {
            return;
        }
        match self.on_last_stop {
            OnLastStop::PowerOff => self.finish(),
            OnLastStop::Shell => {
                let (clean, faulted) = self.tally();
                // Not "all VMs stopped:": that line is the machine's last (poweroff).
                crate::info!(
                    "hv: no VM is running ({clean} stopped cleanly, {faulted} faulted); the hypervisor shell stays (on_last_stop = \"shell\")"
                );
                super::input::to_shell(self);
            }
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

    /// The shell's `poweroff`: stops every VM that runs (a clean stop) and ends the
    /// machine now; the status says whether no VM faulted.
    pub fn power_off_now(&self) -> ! {
        let mut running = 0;
        for vm in self.vms() {
            if vm.mark_stopped() {
                running += 1;
                vm.devices.lock().flush_console();
            }
        }
        let (clean, faulted) = self.tally();
        println!(
            "hv: all VMs stopped: {clean} clean, {faulted} faulted (powered off from the shell; {running} VM(s) were running)"
        );
        Current::power_off(&self.platform, faulted == 0)
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
