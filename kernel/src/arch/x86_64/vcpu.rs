//! The x86_64 vCPU: not built yet. VM creation is refused before a vCPU exists
//! (`hal_impl`'s `direct_windows` says "not supported yet"); this type only fills
//! the place the hal gives it, and would stop its VM with that reason if it ran.

use crate::devices::irqchip::IrqChip;
use crate::hal::exit::{Fault, FirstTouch, Reply, VmExit};
use crate::hal::VcpuStart;

/// What a CPU needs to run on a VM's nested page tables.
#[derive(Clone, Copy, Debug)]
pub struct Stage2Regs {
    /// The nested page tables' root (VMCB nCR3).
    pub ncr3: u64,
    /// The VM's address-space id.
    pub asid: u16,
}

pub struct Vcpu {
    entry: u64,
}

impl crate::hal::Vcpu for Vcpu {
    type Stage2Regs = Stage2Regs;

    fn start(s: VcpuStart<Stage2Regs>) -> Self {
        Self { entry: s.entry }
    }

    fn run(&mut self, _first_touch: FirstTouch) -> VmExit {
        VmExit::Fault(Fault {
            what: "not supported yet: running x86_64 vCPUs (SVM world switch)",
            addr: None,
            pc: self.entry,
            syndrome: 0,
        })
    }

    fn reply(&mut self, _reply: Reply) {}
    fn fill_irqs(&mut self, _chip: &mut dyn IrqChip, _index: usize) {}
    fn sync_irqs(&mut self, _chip: &mut dyn IrqChip, _index: usize) {}
    fn pc(&self) -> u64 {
        self.entry
    }
}
