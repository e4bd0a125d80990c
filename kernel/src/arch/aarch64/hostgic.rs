//! The host interrupt controller, GICv2 or GICv3, picked once at boot from the
//! board description. The rest of the aarch64 code uses only this module: acknowledge, priority
//! drop, deactivation, SGIs between CPUs, and the list registers of the virtual CPU
//! interface (always in the ICH_LR<n>_EL2 layout, [`lr`]; the GICv2 driver converts).

use super::board;
use super::regs::{isb, mpidr, write_sysreg};
use super::{gicv2, gicv3};
use crate::firmware::{BoardInfo, Gic, Range};
use spin::Once;

pub use gicv3::{lr, MAINTENANCE_IRQ, SGI_KICK};

/// Smallest GICv2 CPU interface: GICC_DIR / GICV_DIR live at offset 0x1000.
pub const GICV2_CPU_IF_SIZE: u64 = 0x2000;

enum HostGic {
    V3,
    V2 {
        regs: gicv2::Regs,
        /// The virtual CPU interface frame guests get as their GICC.
        gicv: Range,
    },
}

static HOST: Once<HostGic> = Once::new();

/// The GIC in use; None before [`init_primary`] ran.
fn host() -> Option<&'static HostGic> {
    HOST.get()
}

/// Boot CPU: picks the driver from the board's GIC, enables the distributor and
/// routes the console UART's interrupt to this CPU.
pub fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
    let uart_irq = p.console.and_then(|u| u.irq);
    match *board::gic(p)? {
        Gic::V3 { gicd, .. } => {
            HOST.call_once(|| HostGic::V3);
            gicv3::init_distributor(gicd);
            if let Some(irq) = uart_irq {
                gicv3::enable_spi(gicd, irq, mpidr());
            }
        }
        Gic::V2 {
            gicd,
            gicc,
            gich,
            gicv,
            ..
        } => {
            let (Some(gich), Some(gicv)) = (gich, gicv) else {
                return Err("GICv2 without virtualization extensions (no GICH/GICV in the DTB)");
            };
            if gicc.size < GICV2_CPU_IF_SIZE || gicv.size < GICV2_CPU_IF_SIZE {
                return Err("GICv2 CPU interface frames smaller than 8 KiB in the DTB");
            }
            let regs = gicv2::Regs {
                gicd: gicd.base,
                gicc: gicc.base,
                gich: gich.base,
            };
            HOST.call_once(|| HostGic::V2 { regs, gicv });
            gicv2::init_distributor(&regs);
            if let Some(irq) = uart_irq {
                gicv2::enable_spi(&regs, irq);
            }
        }
    }
    Ok(())
}

/// Every CPU: its redistributor (GICv3) or banked distributor registers (GICv2), the
/// physical CPU interface and the virtual interface control. `ppis` are the PPIs
/// forwarded to guests.
pub fn init_cpu(p: &BoardInfo, ppis: &[u32]) -> Result<(), &'static str> {
    match (host(), *board::gic(p)?) {
        (
            Some(HostGic::V3),
            Gic::V3 {
                gicr, gicr_stride, ..
            },
        ) => gicv3::init_cpu(gicr, gicr_stride, mpidr(), ppis)
            .map_err(|_| "no GICv3 redistributor for this CPU"),
        (Some(HostGic::V2 { regs, .. }), _) => gicv2::init_cpu(regs, ppis).map_err(|e| match e {
            gicv2::CpuInitError::NoInterfaceNumber => "GICD_ITARGETSR0 reads as zero",
            gicv2::CpuInitError::TooManyCpus => "more CPUs than the GICv2 driver records",
        }),
        _ => Err("the interrupt controller was not initialised"),
    }
}

/// The host's GICv2 virtual CPU interface frame (GICV), if the host has a GICv2.
pub fn gicv2_virtual_cpu_interface() -> Option<Range> {
    match host() {
        Some(HostGic::V2 { gicv, .. }) => Some(*gicv),
        _ => None,
    }
}

/// Whether the host GIC is a GICv2 (false before initialisation).
pub fn is_gicv2() -> bool {
    matches!(host(), Some(HostGic::V2 { .. }))
}

/// Acknowledges the highest-priority pending interrupt: its INTID (1020..1023 = none).
pub fn ack() -> u32 {
    match host() {
        Some(HostGic::V3) => gicv3::ack(),
        Some(HostGic::V2 { regs, .. }) => gicv2::ack(regs),
        None => 1023,
    }
}

/// Priority drop (the interrupt stays active).
pub fn eoi(intid: u32) {
    match host() {
        Some(HostGic::V3) => gicv3::eoi(intid),
        Some(HostGic::V2 { regs, .. }) => gicv2::eoi(regs, intid),
        None => {}
    }
}

/// Deactivates an interrupt the hypervisor handled itself.
pub fn deactivate(intid: u32) {
    match host() {
        Some(HostGic::V3) => gicv3::deactivate(intid),
        Some(HostGic::V2 { regs, .. }) => gicv2::deactivate(regs, intid),
        None => {}
    }
}

/// Sends SGI `sgi` to the CPU with affinity `target`.
pub fn send_sgi(target: u64, sgi: u32) {
    match host() {
        Some(HostGic::V3) => gicv3::send_sgi(target, sgi),
        Some(HostGic::V2 { regs, .. }) => gicv2::send_sgi(regs, target, sgi),
        None => {}
    }
}

/// Number of list registers.
pub fn num_lrs() -> usize {
    match host() {
        Some(HostGic::V3) => gicv3::num_lrs(),
        Some(HostGic::V2 { regs, .. }) => gicv2::num_lrs(regs),
        None => 0,
    }
}

/// List register `i` in the ICH_LR<n>_EL2 layout.
pub fn read_lr(i: usize) -> u64 {
    match host() {
        Some(HostGic::V3) => gicv3::read_lr(i),
        Some(HostGic::V2 { regs, .. }) => gicv2::read_lr(regs, i),
        None => 0,
    }
}

/// Writes list register `i` from a value in the ICH_LR<n>_EL2 layout.
pub fn write_lr(i: usize, v: u64) {
    match host() {
        Some(HostGic::V3) => gicv3::write_lr(i, v),
        Some(HostGic::V2 { regs, .. }) => gicv2::write_lr(regs, i, v),
        None => {}
    }
}

/// ICH_HCR_EL2: En, UIE.
const ICH_HCR_EN: u64 = 1 << 0;
const ICH_HCR_UIE: u64 = 1 << 1;

/// Virtual CPU interface on, with the underflow maintenance interrupt if `uie` (more
/// interrupts wait than there are list registers).
pub fn set_underflow_irq(uie: bool) {
    match host() {
        Some(HostGic::V3) => {
            let v = ICH_HCR_EN | if uie { ICH_HCR_UIE } else { 0 };
            write_sysreg!(ich_hcr_el2, v);
        }
        Some(HostGic::V2 { regs, .. }) => gicv2::set_hcr(regs, uie),
        None => {}
    }
}

/// Empties the list registers and resets the guest's virtual CPU interface state
/// (control, priority mask, active priorities) for a vCPU that starts afresh. A
/// forwarded interrupt still in a list register (a guest reset from inside its timer
/// handler) keeps its physical interrupt active until the guest would have finished
/// it: it is deactivated here, or that PPI never fires on this CPU again. (The
/// GICv2 driver keeps HW list registers as software ones and does the same.)
pub fn reset_virtual_interface() {
    match host() {
        Some(HostGic::V3) => {
            for i in 0..gicv3::num_lrs() {
                if let Some(phys) = lr::hw_in_flight(gicv3::read_lr(i)) {
                    gicv3::deactivate(phys);
                }
                gicv3::write_lr(i, 0);
            }
            write_sysreg!(ich_vmcr_el2, 0);
            write_sysreg!(ich_ap0r0_el2, 0);
            write_sysreg!(ich_ap1r0_el2, 0);
        }
        Some(HostGic::V2 { regs, .. }) => gicv2::reset_virtual_interface(regs),
        None => {}
    }
    isb();
}
