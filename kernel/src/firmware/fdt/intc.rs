//! Interrupt controllers in the device tree and the interrupt specifiers wired to
//! them: the GIC (Arm; specifiers of 3 or 4 cells decoded into INTIDs) and the PLIC
//! (RISC-V; one-cell source numbers, and the supervisor-mode context of every hart
//! from its `interrupts-extended`). Specifiers are kept raw during the walk and
//! decoded once the controller is known.

use super::dt::{self, Node};
use super::gic_intid;
use crate::firmware::{GenericTimer, Gic, Plic, Range, MAX_CPUS};

const GIC_V3: &[&str] = &["arm,gic-v3"];
const GIC_V2: &[&str] = &[
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a7-gic",
    "arm,cortex-a9-gic",
    "qcom,msm-qgic2",
];
const PLIC: &[&str] = &["riscv,plic0", "sifive,plic-1.0.0"];
/// Default GICv3 redistributor stride (RD_base + SGI_base frames, no VLPI frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Local interrupt number of the supervisor external interrupt (SEIP).
const IRQ_S_EXT: u32 = 9;
/// Most PLIC contexts looked at (two per hart on QEMU virt).
const MAX_CONTEXTS: usize = 2 * MAX_CPUS;

/// An `interrupts` (or `interrupts-extended`) property kept raw until the
/// controller's cell count is known.
#[derive(Clone, Copy)]
pub(super) struct Irqs<'a> {
    value: &'a [u8],
    /// `interrupt-parent` of the node or its nearest ancestor.
    parent: Option<u32>,
    /// `interrupts-extended`: every specifier starts with its controller's phandle.
    extended: bool,
}

pub(super) const NO_IRQS: Irqs<'static> = Irqs {
    value: &[],
    parent: None,
    extended: false,
};

pub(super) fn phandle(node: Node<'_, '_>) -> Option<u32> {
    dt::prop_u32(node, "phandle").or_else(|| dt::prop_u32(node, "linux,phandle"))
}

fn interrupt_parent(path: &[Node<'_, '_>]) -> Option<u32> {
    path.iter()
        .rev()
        .find_map(|n| dt::prop_u32(*n, "interrupt-parent"))
}

/// The interrupts of `path.last()`, raw.
pub(super) fn irqs_of<'a>(path: &[Node<'_, 'a>]) -> Option<Irqs<'a>> {
    let node = *path.last()?;
    if let Some(value) = dt::prop(node, "interrupts-extended") {
        return Some(Irqs {
            value,
            parent: None,
            extended: true,
        });
    }
    let value = dt::prop(node, "interrupts")?;
    Some(Irqs {
        value,
        parent: interrupt_parent(path),
        extended: false,
    })
}

/// A GIC node seen during the walk.
#[derive(Clone, Copy)]
pub(super) struct GicSeen<'a> {
    compat_v3: bool,
    regs: [Option<Range>; 4],
    stride: Option<u64>,
    phandle: Option<u32>,
    irq_cells: usize,
    irqs: Irqs<'a>,
}

/// `path.last()` as a GIC, if it is one.
pub(super) fn gic_seen<'a>(path: &[Node<'_, 'a>]) -> Option<GicSeen<'a>> {
    let node = *path.last()?;
    let compat_v3 = dt::compatible_with(node, GIC_V3);
    if !compat_v3 && !dt::compatible_with(node, GIC_V2) {
        return None;
    }
    let mut regs = [None; 4];
    for (slot, (base, size)) in regs.iter_mut().zip(dt::regs(path)) {
        *slot = Some(Range { base, size });
    }
    Some(GicSeen {
        compat_v3,
        regs,
        stride: dt::prop_u64(node, "redistributor-stride"),
        phandle: phandle(node),
        irq_cells: dt::prop_u32(node, "#interrupt-cells").map_or(3, |c| c as usize),
        irqs: irqs_of(path).unwrap_or(NO_IRQS),
    })
}

impl GicSeen<'_> {
    /// The `index`th interrupt of `irqs`, if it is wired to this GIC.
    pub(super) fn intid(&self, irqs: Irqs<'_>, index: usize) -> Option<u32> {
        let cells = self.irq_cells;
        if cells < 2 {
            return None;
        }
        if irqs.extended {
            return self.extended_intid(irqs.value, index);
        }
        if let (Some(parent), Some(me)) = (irqs.parent, self.phandle) {
            if parent != me {
                return None;
            }
        }
        let first = index.checked_mul(cells)?;
        gic_intid(
            dt::be32_at(irqs.value, first)?,
            dt::be32_at(irqs.value, first + 1)?,
        )
    }

    /// `interrupts-extended`: `<phandle cells...>` entries. Entries for another
    /// controller have a size we do not know, so decoding stops at the first one.
    fn extended_intid(&self, value: &[u8], index: usize) -> Option<u32> {
        let stride = self.irq_cells + 1;
        for i in 0..=index {
            let at = i.checked_mul(stride)?;
            if Some(dt::be32_at(value, at)?) != self.phandle {
                return None;
            }
            if i == index {
                return gic_intid(dt::be32_at(value, at + 1)?, dt::be32_at(value, at + 2)?);
            }
        }
        None
    }

    /// The GIC, if the node has the registers its version needs.
    pub(super) fn to_gic(self) -> Option<Gic> {
        let maint_irq = self.intid(self.irqs, 0);
        let [Some(gicd), Some(second), third, fourth] = self.regs else {
            return None;
        };
        Some(if self.compat_v3 {
            Gic::V3 {
                gicd,
                gicr: second,
                gicr_stride: self.stride.unwrap_or(GICR_STRIDE),
                maint_irq,
            }
        } else {
            Gic::V2 {
                gicd,
                gicc: second,
                gich: third,
                gicv: fourth,
                maint_irq,
            }
        })
    }

    /// The generic timer's four PPIs, from its `interrupts`.
    pub(super) fn timer(&self, irqs: Irqs<'_>) -> Option<GenericTimer> {
        Some(GenericTimer {
            sec_phys: self.intid(irqs, 0)?,
            phys: self.intid(irqs, 1)?,
            virt: self.intid(irqs, 2)?,
            hyp_phys: self.intid(irqs, 3)?,
        })
    }
}

/// The PLIC node seen during the walk; contexts are resolved once every hart's
/// interrupt controller phandle is known.
#[derive(Clone, Copy)]
pub(super) struct PlicSeen<'a> {
    reg: Range,
    ndev: u32,
    phandle: Option<u32>,
    contexts: &'a [u8],
}

/// `path.last()` as a PLIC, if it is one.
pub(super) fn plic_seen<'a>(path: &[Node<'_, 'a>]) -> Option<PlicSeen<'a>> {
    let node = *path.last()?;
    if !dt::compatible_with(node, PLIC) {
        return None;
    }
    let (base, size) = dt::regs(path).next()?;
    Some(PlicSeen {
        reg: Range { base, size },
        ndev: dt::prop_u32(node, "riscv,ndev").unwrap_or(0),
        phandle: phandle(node),
        contexts: dt::prop(node, "interrupts-extended").unwrap_or(&[]),
    })
}

impl PlicSeen<'_> {
    /// The PLIC; `hart_intc` is the phandle of each hart's `riscv,cpu-intc`, in the
    /// order of the board's CPUs.
    pub(super) fn to_plic(self, hart_intc: &[Option<u32>]) -> Plic {
        Plic {
            base: self.reg.base,
            size: self.reg.size,
            ndev: self.ndev,
            s_context: self.s_contexts(hart_intc),
        }
    }

    /// The supervisor-mode context of every hart: context `k` is the `k`th
    /// (phandle, irq) pair of the PLIC's `interrupts-extended`.
    fn s_contexts(&self, hart_intc: &[Option<u32>]) -> [Option<u16>; MAX_CPUS] {
        let mut out = [None; MAX_CPUS];
        for k in 0..MAX_CONTEXTS {
            let (Some(ph), Some(irq)) = (
                dt::be32_at(self.contexts, 2 * k),
                dt::be32_at(self.contexts, 2 * k + 1),
            ) else {
                break;
            };
            if irq != IRQ_S_EXT {
                continue;
            }
            let hart = hart_intc.iter().position(|&p| p == Some(ph));
            if let Some(h) = hart.filter(|&h| h < MAX_CPUS) {
                out[h] = out[h].or(Some(k as u16));
            }
        }
        out
    }

    /// The first interrupt of `irqs` as a PLIC source, if it is wired to this PLIC
    /// (only an interrupt wired to it means something to us).
    pub(super) fn source(&self, irqs: Irqs<'_>) -> Option<u32> {
        let me = self.phandle?;
        if irqs.extended {
            return (dt::be32_at(irqs.value, 0)? == me)
                .then(|| dt::be32_at(irqs.value, 1))
                .flatten();
        }
        (irqs.parent? == me)
            .then(|| dt::be32_at(irqs.value, 0))
            .flatten()
    }
}
