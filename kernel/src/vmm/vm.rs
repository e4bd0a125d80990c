//! One virtual machine: its guest memory, stage-2 address space, emulated devices,
//! vCPU slots and lifecycle. The second-stage register bundle it only stores and
//! hands back to the architecture.

use super::devices::VmDevices;
use crate::hal::exit::VcpuOnError;
use crate::hal::{Arch, Current, Stage2};
use crate::mm::guest::GuestRam;
use crate::spec::{MapType, VmSpec};
use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use spin::Mutex;

/// Power state of a vCPU slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    Off = 0,
    /// CPU_ON accepted; the physical CPU picks it up.
    Starting = 1,
    On = 2,
}

/// Lifecycle of a VM:
///
/// ```text
///  Created --start--> Running --reset--> Resetting --reset done--> Running
///     |                  |                   |
///     |                  +------stop---------+--> Stopped --restart--> Running
///     +-----------------destroy-------------------------+--> Destroyed
/// ```
///
/// `Stopped` is not final: a stopped VM can be restarted (RAM scrubbed, images
/// loaded again, vCPU 0 at its entry) or destroyed (its frames and second-stage
/// tables go back to the allocator). Only `Destroyed` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VmState {
    /// Built, no vCPU started yet.
    Created = 0,
    Running = 1,
    /// A vCPU asked for a reset: the others leave the guest and power off, then the
    /// VM's images are loaded afresh and vCPU 0 starts again.
    Resetting = 2,
    Stopped = 3,
    Destroyed = 4,
}

/// What the shell asked of a VM that is done once its last vCPU has left the guest
/// (`Machine::settle`): the CPU that runs the shell may be one of its vCPUs' CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Pending {
    Nothing = 0,
    /// Stopped from the shell: its devices are reset.
    Stop = 1,
    /// Booted afresh (RAM scrubbed, devices and vCPUs as at first boot).
    Restart = 2,
    /// Freed: frames, second-stage tables, VMID.
    Delete = 3,
}

impl Pending {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Stop,
            2 => Self::Restart,
            3 => Self::Delete,
            _ => Self::Nothing,
        }
    }
}

/// What moves a VM from one [`VmState`] to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Start,
    Reset,
    ResetDone,
    Stop,
    Restart,
    Destroy,
}

impl VmState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Resetting,
            3 => Self::Stopped,
            _ => Self::Destroyed,
        }
    }

    /// The state `event` leads to from `self`; None when it does not apply.
    pub fn after(self, event: Lifecycle) -> Option<VmState> {
        use Lifecycle as L;
        use VmState as S;
        match (self, event) {
            (S::Created, L::Start) => Some(S::Running),
            (S::Running, L::Reset) => Some(S::Resetting),
            (S::Resetting, L::ResetDone) => Some(S::Running),
            (S::Running | S::Resetting, L::Stop) => Some(S::Stopped),
            (S::Stopped, L::Restart) => Some(S::Running),
            (S::Created | S::Stopped, L::Destroy) => Some(S::Destroyed),
            _ => None,
        }
    }
}

pub struct VcpuSlot {
    /// Index of the physical CPU (DTB order) this vCPU is pinned to.
    pub pcpu: usize,
    pub pcpu_mpidr: u64,
    power: AtomicU8,
    boot: Mutex<(u64, u64)>,
}

impl VcpuSlot {
    pub fn new(pcpu: usize, pcpu_mpidr: u64) -> Self {
        Self {
            pcpu,
            pcpu_mpidr,
            power: AtomicU8::new(Power::Off as u8),
            boot: Mutex::new((0, 0)),
        }
    }

    pub fn power(&self) -> Power {
        match self.power.load(Ordering::Acquire) {
            0 => Power::Off,
            1 => Power::Starting,
            _ => Power::On,
        }
    }

    pub fn set_power(&self, p: Power) {
        self.power.store(p as u8, Ordering::Release);
    }

    /// Off -> Starting with the given entry and argument.
    pub fn request_start(&self, entry: u64, arg: u64) -> Result<(), VcpuOnError> {
        let mut boot = self.boot.lock();
        self.power
            .compare_exchange(
                Power::Off as u8,
                Power::Starting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_err(|_| VcpuOnError::AlreadyOn)?;
        *boot = (entry, arg);
        Ok(())
    }

    fn change(&self, from: Power, to: Power) {
        let _ =
            self.power
                .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Starting -> On, as its CPU enters the guest; false when a reset cancelled
    /// the start meanwhile (the vCPU must not run).
    pub fn begin_run(&self) -> bool {
        self.power
            .compare_exchange(
                Power::Starting as u8,
                Power::On as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Starting -> Off (a reset cancels a CPU_ON not yet picked up).
    pub fn cancel_start(&self) {
        self.change(Power::Starting, Power::Off);
    }

    /// On -> Off, leaving a Starting vCPU alone.
    pub fn power_off_if_on(&self) {
        self.change(Power::On, Power::Off);
    }

    /// Where a Starting vCPU begins.
    pub fn boot_params(&self) -> (u64, u64) {
        *self.boot.lock()
    }
}

pub struct Vm {
    /// What it is built from: borrowed from the built-in table, or owned (a VM
    /// loaded from the card) and freed with the VM.
    pub spec: Cow<'static, VmSpec>,
    pub ram: GuestRam,
    /// The RAM blocks zeroed on first touch.
    pub lazy: super::lazy_ram::LazyRam,
    pub vcpus: Vec<VcpuSlot>,
    pub devices: Mutex<VmDevices>,
    /// Virtual counter offset, the same on every vCPU of the VM.
    pub cntvoff: u64,
    /// Exits of all its vCPUs, by kind.
    pub exits: super::stats::ExitStats,
    /// How many times the VM has started: 1, then one more after each reset.
    boots: AtomicU32,
    pub stage2: <Current as Arch>::Stage2Regs,
    /// The second-stage tables themselves, taken when the VM is destroyed.
    pub tables: Mutex<Option<Stage2>>,
    /// Host RAM ranges (base, size) it allocated or claimed, freed when destroyed.
    pub owned: Mutex<Vec<(u64, u64)>>,
    /// Its hardware VM tag (second-stage TLB entries are tagged with it).
    pub vmid: u16,
    state: AtomicU8,
    /// It last stopped because of a fault (or a refused access).
    faulted: AtomicBool,
    /// Its last stop has been reported on the console (the machine may end only
    /// after every stop is reported).
    stop_reported: AtomicBool,
    /// What the shell asked that waits for its vCPUs to leave the guest.
    pending: AtomicU8,
    /// Host counter when it last started (0: never).
    started_at: AtomicU64,
}

/// What a VM is built from, besides its spec.
pub struct VmParts {
    pub ram: GuestRam,
    pub vcpus: Vec<VcpuSlot>,
    pub devices: VmDevices,
    pub cntvoff: u64,
    pub tables: Stage2,
    /// Host ranges (base, size) the VM allocated or claimed.
    pub owned: Vec<(u64, u64)>,
    pub vmid: u16,
}

impl Vm {
    pub fn new(spec: Cow<'static, VmSpec>, parts: VmParts) -> Self {
        Self {
            spec,
            ram: parts.ram,
            lazy: Default::default(),
            vcpus: parts.vcpus,
            devices: Mutex::new(parts.devices),
            cntvoff: parts.cntvoff,
            exits: Default::default(),
            boots: AtomicU32::new(1),
            stage2: Current::stage2_regs(&parts.tables, parts.vmid),
            tables: Mutex::new(Some(parts.tables)),
            owned: Mutex::new(parts.owned),
            vmid: parts.vmid,
            state: AtomicU8::new(VmState::Created as u8),
            faulted: AtomicBool::new(false),
            stop_reported: AtomicBool::new(false),
            pending: AtomicU8::new(Pending::Nothing as u8),
            started_at: AtomicU64::new(0),
        }
    }

    /// Asks for `p` once the vCPUs are out (a later request replaces an earlier one,
    /// except that a delete stays a delete).
    pub fn set_pending(&self, p: Pending) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur != Pending::Delete as u8).then_some(p as u8)
            });
    }

    /// Takes what is pending (for the one caller that will do it).
    pub fn take_pending(&self) -> Pending {
        Pending::from_u8(self.pending.swap(Pending::Nothing as u8, Ordering::AcqRel))
    }

    pub fn pending(&self) -> Pending {
        Pending::from_u8(self.pending.load(Ordering::Acquire))
    }

    /// Notes the host counter at a start.
    pub fn set_started_at(&self, counter: u64) {
        self.started_at.store(counter.max(1), Ordering::Release);
    }

    /// Host counter at its last start (0: never started).
    pub fn started_at(&self) -> u64 {
        self.started_at.load(Ordering::Acquire)
    }

    /// Is any of its vCPUs in the guest (or about to leave it)?
    pub fn any_vcpu_on(&self) -> bool {
        self.vcpus.iter().any(|v| v.power() == Power::On)
    }

    /// RAM given to it (its regions but reserved ones), in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.spec
            .memory_regions
            .iter()
            .filter(|r| r.map_type != MapType::Reserved)
            .map(|r| r.size)
            .sum()
    }

    /// Has its last stop been reported (and so may the machine end)?
    pub fn stop_reported(&self) -> bool {
        self.stop_reported.load(Ordering::Acquire)
    }

    pub fn set_stop_reported(&self, r: bool) {
        self.stop_reported.store(r, Ordering::Release);
    }

    /// Did it last stop because of a fault?
    pub fn faulted(&self) -> bool {
        self.faulted.load(Ordering::Acquire)
    }

    pub fn set_faulted(&self, f: bool) {
        self.faulted.store(f, Ordering::Release);
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn id(&self) -> u32 {
        self.spec.id
    }

    pub fn state(&self) -> VmState {
        VmState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Not running guest code, and not about to (stopped, destroyed, or never
    /// started).
    pub fn is_stopped(&self) -> bool {
        !matches!(self.state(), VmState::Running | VmState::Resetting)
    }

    /// Applies `event`; Ok(new state) for the one caller that made the change,
    /// Err(current state) when the event does not apply (or another CPU won).
    pub fn apply(&self, event: Lifecycle) -> Result<VmState, VmState> {
        let mut cur = self.state();
        loop {
            let next = cur.after(event).ok_or(cur)?;
            match self.state.compare_exchange(
                cur as u8,
                next as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(next),
                Err(now) => cur = VmState::from_u8(now),
            }
        }
    }

    /// Marks the VM stopped (from running or resetting); true for the one caller
    /// that actually stopped it.
    pub fn mark_stopped(&self) -> bool {
        self.apply(Lifecycle::Stop).is_ok()
    }

    /// Created -> Running, before its first vCPU is let in.
    pub fn mark_started(&self) -> bool {
        self.apply(Lifecycle::Start).is_ok()
    }

    /// How many times the VM has started (1 until its first reset).
    pub fn boots(&self) -> u32 {
        self.boots.load(Ordering::Acquire)
    }

    /// Counts one more start, after a reset.
    pub fn count_boot(&self) {
        self.boots.fetch_add(1, Ordering::AcqRel);
    }

    /// Running -> Resetting; false if the VM is stopping or already resetting.
    pub fn begin_reset(&self) -> bool {
        self.apply(Lifecycle::Reset).is_ok()
    }

    /// Resetting -> Running.
    pub fn end_reset(&self) -> bool {
        self.apply(Lifecycle::ResetDone).is_ok()
    }

    /// The vCPU a guest names by its arch id (aarch64: MPIDR, riscv64: hart id).
    pub fn vcpu_by_target(&self, target: u64) -> Option<usize> {
        Current::vcpu_index(target).filter(|&i| i < self.vcpus.len())
    }

    /// Is `gpa` inside one of the VM's memory regions (RAM or reserved ranges)?
    pub fn owns_memory(&self, gpa: u64) -> bool {
        self.spec
            .memory_regions
            .iter()
            .any(|r| r.gpa <= gpa && gpa - r.gpa < r.size)
    }

    /// A description of the VM for the boot log.
    pub fn summary(&self) -> String {
        let mem = self.ram_bytes();
        let cpus: Vec<usize> = self.vcpus.iter().map(|v| v.pcpu).collect();
        alloc::format!(
            "{} vCPU(s) on CPU(s) {:?}, {} MiB",
            self.vcpus.len(),
            cpus,
            mem >> 20
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_transitions() {
        use Lifecycle as L;
        use VmState as S;
        let all = [
            S::Created,
            S::Running,
            S::Resetting,
            S::Stopped,
            S::Destroyed,
        ];
        let events = [
            L::Start,
            L::Reset,
            L::ResetDone,
            L::Stop,
            L::Restart,
            L::Destroy,
        ];
        let allowed = [
            (S::Created, L::Start, S::Running),
            (S::Running, L::Reset, S::Resetting),
            (S::Resetting, L::ResetDone, S::Running),
            (S::Running, L::Stop, S::Stopped),
            (S::Resetting, L::Stop, S::Stopped),
            (S::Stopped, L::Restart, S::Running),
            (S::Created, L::Destroy, S::Destroyed),
            (S::Stopped, L::Destroy, S::Destroyed),
        ];
        for from in all {
            for ev in events {
                let want = allowed
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == ev)
                    .map(|t| t.2);
                assert_eq!(from.after(ev), want, "{from:?} + {ev:?}");
            }
        }
        assert!(all.iter().all(|s| S::from_u8(*s as u8) == *s));
    }

    #[test]
    fn cpu_on_only_from_off() {
        let s = VcpuSlot::new(1, 0x1);
        assert_eq!(s.power(), Power::Off);
        assert_eq!(s.request_start(0x4008_0000, 7), Ok(()));
        assert_eq!(s.power(), Power::Starting);
        assert_eq!(s.boot_params(), (0x4008_0000, 7));
        assert_eq!(s.request_start(0x4009_0000, 8), Err(VcpuOnError::AlreadyOn));
        assert_eq!(
            s.boot_params(),
            (0x4008_0000, 7),
            "a refused CPU_ON changes nothing"
        );
    }

    #[test]
    fn power_off_if_on_keeps_a_queued_start() {
        let s = VcpuSlot::new(0, 0);
        s.request_start(1, 2).unwrap();
        s.power_off_if_on();
        assert_eq!(s.power(), Power::Starting);
        s.set_power(Power::On);
        s.power_off_if_on();
        assert_eq!(s.power(), Power::Off);
        s.request_start(1, 2).unwrap();
        s.cancel_start();
        assert_eq!(s.power(), Power::Off);
    }
}
