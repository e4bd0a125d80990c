//! Per-VM exit counters: how often each kind of exit happened, summed over the VM's
//! vCPUs. Printed when the VM stops if the build's log level is `Debug` or `Trace`,
//! to see where a guest's time under the hypervisor goes.

use crate::hal::exit::VmExit;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Exit kinds counted, in the order they are printed.
const KINDS: [&str; 12] = [
    "mmio",
    "vcpu-on",
    "vcpu-status",
    "vcpu-off",
    "system",
    "hypercall",
    "ipi",
    "console",
    "irq-guest",
    "irq-host",
    "idle",
    "fault",
];

#[derive(Default)]
pub struct ExitStats {
    counts: [AtomicU64; KINDS.len()],
}

impl ExitStats {
    pub fn count(&self, exit: &VmExit) {
        self.counts[kind(exit)].fetch_add(1, Ordering::Relaxed);
    }
}

fn kind(exit: &VmExit) -> usize {
    match exit {
        VmExit::Mmio { .. } => 0,
        VmExit::VcpuOn { .. } => 1,
        VmExit::VcpuStatus { .. } => 2,
        VmExit::VcpuOff => 3,
        VmExit::SystemOff | VmExit::SystemReset => 4,
        VmExit::Hypercall { .. } => 5,
        VmExit::Ipi { .. } => 6,
        VmExit::Console { .. } => 7,
        VmExit::Interrupt { forward: Some(_) } => 8,
        VmExit::Interrupt { forward: None } | VmExit::HostInterrupt { .. } => 9,
        VmExit::Idle => 10,
        VmExit::Fault(_) => 11,
    }
}

/// `total N: mmio N, ipi N, ...`, kinds that never happened left out.
impl fmt::Display for ExitStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n: [u64; KINDS.len()] =
            core::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed));
        write!(f, "total {}", n.iter().sum::<u64>())?;
        for (name, c) in KINDS.iter().zip(n).filter(|(_, c)| *c != 0) {
            write!(f, ", {name} {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn counts_by_kind_and_leaves_out_zeros() {
        let s = ExitStats::default();
        s.count(&VmExit::Idle);
        s.count(&VmExit::Idle);
        s.count(&VmExit::Ipi { value: 1 });
        assert_eq!(s.to_string(), "total 3, ipi 1, idle 2");
    }
}
