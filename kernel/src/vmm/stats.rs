//! Per-VM exit counters: how often each kind of exit happened, summed over the VM's
//! vCPUs. Printed when the VM stops if the build's log level is `Debug` or `Trace`,
//! to see where a guest's time under the hypervisor goes.

use crate::hal::exit::VmExit;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Exit kinds counted, in the order they are printed.
const KINDS: [&str; 15] = [
    "mmio",
    "pio",
    "msr",
    "cpuid",
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

    /// Exits of every kind.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

fn kind(exit: &VmExit) -> usize {
    match exit {
        VmExit::Mmio { .. } => 0,
        VmExit::PortIo { .. } => 1,
        VmExit::MsrRead { .. } | VmExit::MsrWrite { .. } => 2,
        VmExit::Cpuid { .. } => 3,
        VmExit::VcpuOn { .. } => 4,
        VmExit::VcpuStatus { .. } => 5,
        VmExit::VcpuOff => 6,
        VmExit::SystemOff | VmExit::SystemReset => 7,
        VmExit::Hypercall { .. } => 8,
        VmExit::Ipi { .. } => 9,
        VmExit::Console { .. } => 10,
        VmExit::Interrupt { forward: Some(_) } => 11,
        VmExit::Interrupt { forward: None } | VmExit::HostInterrupt { .. } => 12,
        VmExit::Idle => 13,
        VmExit::Fault(_) => 14,
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
