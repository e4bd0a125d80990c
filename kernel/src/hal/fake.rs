//! A fake architecture for host unit tests of the core: no guest ever runs, but
//! everything around it does. Physical memory is host memory (the fake board's RAM
//! is a buffer whose addresses are its "physical" addresses, so the identity map
//! the real architectures have holds here too), second-stage tables use aarch64's
//! pure format, kicks are counted, and a vCPU plays a script of exits.

use super::exit::{FirstTouch, Reply, VmExit};
use super::{Arch, Cpu, DirectWindow, GuestBoot, HostIrq, HostPorts, HostTimer, MemoryOps};
use super::{Vcpu, VcpuStart};
use crate::devices::irqchip::IrqChip;
use crate::devices::ConsoleKind;
use crate::firmware::{BoardInfo, DiscoveryError, Handover, Range};
use crate::spec::VmSpec;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

pub struct FakeArch;

/// A board of `cpus` CPUs (ids 0..cpus) over the RAM ranges given (at most
/// [`crate::firmware::MAX_RANGES`] and [`crate::firmware::MAX_CPUS`]).
pub fn board(ram: &[Range], cpus: usize) -> BoardInfo {
    let mut b = BoardInfo::new();
    for r in ram {
        b.ram.push(*r).expect("fake board: too many RAM ranges");
    }
    for id in 0..cpus as u64 {
        b.cpus.push(id, None).expect("fake board: too many CPUs");
    }
    b
}

/// Kicks sent, over all tests (they only ever look at increases).
pub static KICKS: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cpu for FakeArch {
    /// The fake has no firmware to read: tests build their board with [`board`].
    fn discover(_handover: u64) -> Result<Handover, DiscoveryError> {
        Err(DiscoveryError::NoHandover)
    }
    fn init_primary(_: &BoardInfo) -> Result<(), &'static str> {
        Ok(())
    }
    fn init_secondary(_: &BoardInfo) -> Result<(), &'static str> {
        Ok(())
    }
    fn this_cpu() -> u64 {
        0
    }
    fn start_cpu(_: &BoardInfo, _id: u64, _slot: usize) -> Result<(), i64> {
        Err(-1)
    }
    fn power_off(_: &BoardInfo, success: bool) -> ! {
        panic!("fake machine powered off (success: {success})")
    }
    fn reboot(_: &BoardInfo) -> ! {
        panic!("fake machine rebooted")
    }
}

impl HostIrq for FakeArch {
    fn kick(_id: u64) {
        KICKS.fetch_add(1, Ordering::Relaxed);
    }
    fn idle(_host: &mut dyn FnMut(u32)) {}
}

impl HostTimer for FakeArch {
    fn counter() -> u64 {
        COUNTER.fetch_add(1, Ordering::Relaxed)
    }
    fn counter_hz() -> u64 {
        1_000_000
    }
}

/// No I/O port space: reads are all ones, writes go nowhere.
impl HostPorts for FakeArch {
    fn port_read(_port: u16) -> u8 {
        0xff
    }
    fn port_write(_port: u16, _value: u8) {}
}

impl MemoryOps for FakeArch {
    const STAGE2_UNMAP_ALL_CPUS: bool = true;
    fn stage2_mapped(_gpa: u64) {}
    fn stage2_unmapped() {}
    unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        // SAFETY: the caller owns the range, which is host memory on the fake board.
        unsafe { core::ptr::write_bytes(hpa as *mut u8, 0, len as usize) }
    }
    fn clean_for_guest(_hpa: u64, _len: u64) {}
}

impl GuestBoot for FakeArch {
    /// A stand-in description: the VM's name and RAM, so tests can find it in RAM.
    fn guest_description(spec: &VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
        let mut d = Vec::from(&b"FAKEDESC"[..]);
        d.extend_from_slice(spec.name.as_bytes());
        for (gpa, size) in memory {
            d.extend_from_slice(&gpa.to_le_bytes());
            d.extend_from_slice(&size.to_le_bytes());
        }
        Ok(d)
    }
    fn kernel_footprint(
        _image: &[u8],
        _load: u64,
        _others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        Ok(None)
    }
    fn direct_windows(_spec: &VmSpec, _board: &BoardInfo) -> Result<Vec<DirectWindow>, String> {
        Ok(Vec::new())
    }
}

/// The fake second-stage registers: where the root table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeStage2Regs {
    pub root: u64,
    pub vmid: u16,
}

/// A vCPU that returns the exits of its script, then [`VmExit::SystemOff`]; every
/// reply it was given is kept.
pub struct FakeVcpu {
    pub index: usize,
    pub entry: u64,
    pub arg: u64,
    pub script: VecDeque<VmExit>,
    pub replies: Vec<Reply>,
    /// fill_irqs / sync_irqs calls.
    pub irq_syncs: usize,
}

impl FakeVcpu {
    pub fn scripted(exits: &[VmExit]) -> Self {
        Self {
            index: 0,
            entry: 0,
            arg: 0,
            script: exits.iter().copied().collect(),
            replies: Vec::new(),
            irq_syncs: 0,
        }
    }
}

impl Vcpu for FakeVcpu {
    type Stage2Regs = FakeStage2Regs;
    fn start(s: VcpuStart<FakeStage2Regs>) -> Self {
        let mut v = Self::scripted(&[]);
        (v.index, v.entry, v.arg) = (s.index, s.entry, s.arg);
        v
    }
    fn run(&mut self, _first_touch: FirstTouch) -> VmExit {
        self.script.pop_front().unwrap_or(VmExit::SystemOff)
    }
    fn reply(&mut self, reply: Reply) {
        self.replies.push(reply);
    }
    fn fill_irqs(&mut self, _chip: &mut dyn IrqChip, _index: usize) {
        self.irq_syncs += 1;
    }
    fn sync_irqs(&mut self, _chip: &mut dyn IrqChip, _index: usize) {
        self.irq_syncs += 1;
    }
    fn pc(&self) -> u64 {
        self.entry
    }
}

impl Arch for FakeArch {
    type Vcpu = FakeVcpu;
    type Stage2Regs = FakeStage2Regs;
    /// aarch64's format: pure code that runs on the host.
    type Stage2 = crate::arch::aarch64::stage2::Stage2;
    const MAX_IPA_BITS: u32 = 39;
    const MAX_VMID: u16 = 255;
    const CONSOLE: ConsoleKind = ConsoleKind::Pl011;
    const LIMITS: vmconfig::ArchLimits = vmconfig::AARCH64;
    const PERCPU_HW_IRQS: &'static [u32] = &[27, 30];
    fn pa_bits() -> u32 {
        48
    }
    fn stage2_regs(s2: &Self::Stage2, vmid: u16) -> FakeStage2Regs {
        FakeStage2Regs {
            root: s2.root(),
            vmid,
        }
    }
    fn vcpu_id(index: usize) -> u64 {
        index as u64
    }
    fn vcpu_index(id: u64) -> Option<usize> {
        usize::try_from(id).ok()
    }
}
