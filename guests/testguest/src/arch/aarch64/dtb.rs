//! The aarch64 part of the device tree: the GIC (v3, or v2), the generic timer, PSCI,
//! and how CPUs are started.

use super::gic::GicRegions;
use super::gicv2;
use crate::fdt::Fdt;
use crate::platform::{is_cpu_node, Platform};
use crate::why::{why, CheckResult};

const GIC_V3: &str = "arm,gic-v3";
const GIC_V2: [&str; 2] = ["arm,cortex-a15-gic", "arm,gic-400"];
const TIMERS: [&str; 2] = ["arm,armv8-timer", "arm,armv7-timer"];
const PSCI: [&str; 3] = ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];
/// The timer node's interrupts, in order: secure, non-secure, virtual, hypervisor.
const VIRTUAL_TIMER_INDEX: usize = 2;
/// Interrupt specifier type of a PPI (first of the GIC's three cells).
const GIC_PPI: u32 = 1;
/// Bytes in a GIC interrupt specifier (three cells).
const GIC_SPECIFIER_BYTES: usize = 12;

/// The GICv3's distributor and redistributor region.
pub fn gic_regions(fdt: &Fdt) -> Option<GicRegions> {
    let node = fdt.find_compatible(&[GIC_V3])?;
    let mut regs = node.reg();
    let (gicd, _) = regs.next()?;
    let (gicr, gicr_size) = regs.next()?;
    Some(GicRegions {
        gicd: gicd as usize,
        gicr: gicr as usize,
        gicr_size,
    })
}

/// The interrupt controller the device tree describes.
#[derive(Clone, Copy, Debug)]
pub enum Gic {
    V3(GicRegions),
    V2(gicv2::Regions),
}

/// The GICv3 if there is one, else a GICv2 with distributor and CPU interface.
pub fn gic(fdt: &Fdt) -> Option<Gic> {
    if let Some(v3) = gic_regions(fdt) {
        return Some(Gic::V3(v3));
    }
    let node = fdt.find_compatible(&GIC_V2)?;
    let mut regs = node.reg();
    let (gicd, _) = regs.next()?;
    let (gicc, _) = regs.next()?;
    Some(Gic::V2(gicv2::Regions {
        gicd: gicd as usize,
        gicc: gicc as usize,
    }))
}

/// The INTID of the virtual timer's PPI.
pub fn virtual_timer_intid(fdt: &Fdt) -> Option<u32> {
    let node = fdt.find_compatible(&TIMERS)?;
    let specifier = node
        .prop("interrupts")?
        .chunks_exact(GIC_SPECIFIER_BYTES)
        .nth(VIRTUAL_TIMER_INDEX)?;
    let cell = |i: usize| u32::from_be_bytes([0, 1, 2, 3].map(|b| specifier[i * 4 + b]));
    if cell(0) != GIC_PPI {
        return None;
    }
    let ppi = cell(1);
    (ppi < 16).then_some(ppi + 16)
}

/// The aarch64 part of the device-tree check: a GICv3 with distributor and
/// redistributors (or a GICv2 with distributor and CPU interface), a generic timer with a virtual timer PPI, PSCI with the `hvc`
/// conduit, and every secondary CPU started through PSCI.
pub fn check_dtb(platform: &Platform) -> CheckResult {
    let fdt = &platform.fdt;
    gic(fdt).ok_or_else(|| {
        why!("no {GIC_V3} node with GICD and GICR regions, nor a GICv2 {GIC_V2:?} with GICD and GICC")
    })?;
    virtual_timer_intid(fdt)
        .ok_or_else(|| why!("no generic timer node with a virtual timer PPI"))?;
    let psci = fdt
        .find_compatible(&PSCI)
        .ok_or_else(|| why!("no PSCI node"))?;
    match psci.prop_str("method") {
        Some("hvc") => {}
        other => return Err(why!("PSCI method is {other:?}, the guest calls with hvc")),
    }
    let cpus = fdt.find("/cpus").ok_or_else(|| why!("no /cpus node"))?;
    // The boot CPU (the first) needs no enable method: it is already running (and QEMU
    // gives none to a lone CPU); the others are started through PSCI.
    for cpu in cpus.children().filter(is_cpu_node).skip(1) {
        if cpu.prop_str("enable-method") != Some("psci") {
            return Err(why!("{} has no enable-method \"psci\"", cpu.name));
        }
    }
    Ok(())
}

/// Where the pending state of the SPI that `node` (a device node with a 3-cell GIC
/// `interrupts`) raises reads: the GICD_ISPENDR word's address and the bit.
pub fn pending_bit(fdt: &Fdt, node: &crate::fdt::Node) -> Option<(usize, u32)> {
    let cells = node.prop("interrupts")?;
    let cell = |i: usize| {
        let b = cells.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if cell(0)? != 0 {
        return None;
    }
    let intid = cell(1)? + 32;
    let gicd = match gic(fdt)? {
        Gic::V3(r) => r.gicd,
        Gic::V2(r) => r.gicd,
    };
    Some((gicd + 0x200 + 4 * (intid / 32) as usize, 1 << (intid % 32)))
}
