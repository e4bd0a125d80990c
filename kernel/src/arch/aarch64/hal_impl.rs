//! aarch64's implementation of the hardware interface (`crate::hal`): thin
//! forwarding to the modules that do the work.

use super::target;
use crate::devices::irqchip::IrqChip;
use crate::firmware::{BoardInfo, DiscoveryError};
use crate::hal::exit::{FirstTouch, Reply, VmExit};
use crate::hal::{Arch, Cpu, DirectWindow, GuestBoot, HostIrq, HostTimer, MemoryOps, Stage2};
use crate::hal::{Vcpu as VcpuOps, VcpuStart};
use crate::spec::VmSpec;
use alloc::string::String;
use alloc::vec::Vec;

/// The aarch64 architecture (EL2, no VHE).
pub struct Aarch64;

impl Cpu for Aarch64 {
    /// The device tree the boot loader passed.
    fn discover(blob: &'static [u8]) -> Result<BoardInfo, DiscoveryError> {
        crate::firmware::fdt::read(blob)
    }
    fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
        target::init_primary(p)
    }
    fn init_secondary(p: &BoardInfo) -> Result<(), &'static str> {
        target::init_secondary(p)
    }
    fn this_cpu() -> u64 {
        target::this_cpu()
    }
    fn start_cpu(p: &BoardInfo, id: u64, slot: usize) -> Result<(), i64> {
        target::start_cpu(p, id, slot)
    }
    fn power_off(p: &BoardInfo, success: bool) -> ! {
        target::power_off(p, success)
    }
}

impl HostIrq for Aarch64 {
    fn kick(id: u64) {
        target::kick(id)
    }
    fn idle(host: &mut dyn FnMut(u32)) {
        target::idle(host)
    }
}

impl HostTimer for Aarch64 {
    fn counter() -> u64 {
        super::vcpu::counter()
    }
    fn counter_hz() -> u64 {
        super::vcpu::counter_hz()
    }
}

impl MemoryOps for Aarch64 {
    fn stage2_mapped(gpa: u64) {
        target::stage2_mapped(gpa)
    }
    fn stage2_unmapped() {
        target::stage2_unmapped()
    }
    unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        // SAFETY: guaranteed by the caller (see the trait).
        unsafe { target::zero_guest_ram(hpa, len) }
    }
    fn clean_for_guest(hpa: u64, len: u64) {
        target::clean_for_guest(hpa, len)
    }
}

impl GuestBoot for Aarch64 {
    fn guest_description(spec: &VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
        super::guest_dtb::for_vm(spec, memory)
    }
    fn kernel_footprint(
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        super::image::FORMAT.kernel_footprint(image, load, others)
    }
    fn direct_windows(spec: &VmSpec, p: &BoardInfo) -> Result<Vec<DirectWindow>, String> {
        super::vm_gic::direct_windows(spec, p)
    }
}

impl VcpuOps for super::vcpu::Vcpu {
    type Stage2Regs = super::vcpu::Stage2Regs;
    fn start(s: VcpuStart<Self::Stage2Regs>) -> Self {
        super::vcpu::activate(s.stage2, s.index, s.cntvoff);
        Self::new(s.entry, s.arg)
    }
    fn run(&mut self, first_touch: FirstTouch) -> VmExit {
        super::vcpu::Vcpu::run(self, first_touch)
    }
    fn reply(&mut self, reply: Reply) {
        super::vcpu::Vcpu::reply(self, reply)
    }
    fn fill_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        if let Some(gic) = chip.model().downcast_mut() {
            self.fill_list_regs(gic, index)
        }
    }
    fn sync_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        if let Some(gic) = chip.model().downcast_mut() {
            self.sync_list_regs(gic, index)
        }
    }
    fn pc(&self) -> u64 {
        super::vcpu::Vcpu::pc(self)
    }
}

impl Arch for Aarch64 {
    type Vcpu = super::vcpu::Vcpu;
    type Stage2Regs = super::vcpu::Stage2Regs;
    const MAX_IPA_BITS: u32 = super::stage2::MAX_IPA_BITS;
    const CONSOLE: crate::devices::ConsoleKind = crate::devices::ConsoleKind::Pl011;
    const LIMITS: vmconfig::ArchLimits = vmconfig::AARCH64;
    const PERCPU_HW_IRQS: &'static [u32] = &super::FORWARDED_PPIS;
    fn pa_bits() -> u32 {
        target::pa_bits()
    }
    fn stage2_regs(s2: &Stage2, vmid: u16) -> Self::Stage2Regs {
        s2.regs(vmid)
    }
    fn vcpu_id(index: usize) -> u64 {
        super::vcpu_mpidr(index)
    }
    fn vcpu_index(id: u64) -> Option<usize> {
        super::vcpu_index(id)
    }
}
