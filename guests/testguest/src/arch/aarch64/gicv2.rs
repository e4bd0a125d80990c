//! GICv2 set-up as an ordinary guest (Linux, say) does it: the distributor enabled
//! (group 0, interrupts left in their reset group), one PPI given a priority and
//! enabled, and the memory-mapped CPU interface (GICC) enabled with EOI mode 0, so one
//! GICC_EOIR write both drops the priority and deactivates.

use crate::mmio;
use crate::why::{why, CheckResult};

// Distributor registers.
const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER0: usize = 0x100;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR0: usize = 0x800;
const GICD_PIDR2: usize = 0xfe8;
/// EnableGrp0 (the only enable in the Non-secure view): what Linux writes.
const GICD_CTLR_ENABLE: u32 = 1;

// CPU interface registers.
const GICC_CTLR: usize = 0x00;
const GICC_PMR: usize = 0x04;
const GICC_BPR: usize = 0x08;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;
/// Enable (group 0), EOI mode 0, interrupts signalled as IRQ.
const GICC_CTLR_ENABLE: u32 = 1;
/// GICC_IAR.InterruptID.
const IAR_ID_MASK: u32 = 0x3ff;

/// Priority given to the timer interrupt (any value below the 0xff mask works).
const PRIORITY: u8 = 0xa0;

/// Where the GICv2's register frames are (from the device tree).
#[derive(Clone, Copy, Debug)]
pub struct Regions {
    pub gicd: usize,
    pub gicc: usize,
}

/// Sets up the GIC so that private interrupt `intid` reaches this CPU as an IRQ.
pub fn init(regions: &Regions, intid: u32) -> CheckResult {
    if intid >= 32 {
        return Err(why!("INTID {intid} is not a private interrupt"));
    }
    let gicd = regions.gicd;
    // SAFETY: GICD_PIDR2 and GICD_ITARGETSR0 are read-only registers of the
    // distributor the device tree names.
    let (pidr2, targets) = unsafe {
        (
            mmio::read32(gicd + GICD_PIDR2),
            mmio::read32(gicd + GICD_ITARGETSR0),
        )
    };
    if (pidr2 >> 4) & 0xf != 2 {
        return Err(why!(
            "GICD_PIDR2 {pidr2:#x}: architecture revision {}, not GICv2",
            (pidr2 >> 4) & 0xf
        ));
    }
    if targets & 0xff == 0 {
        return Err(why!("GICD_ITARGETSR0 reads 0: no CPU interface number"));
    }
    // SAFETY: distributor enable, then this CPU's banked priority byte and enable bit
    // of `intid` (GICD_IPRIORITYR is byte-accessible); nothing else changes.
    unsafe {
        mmio::write32(gicd + GICD_CTLR, GICD_CTLR_ENABLE);
        mmio::write8(gicd + GICD_IPRIORITYR + intid as usize, PRIORITY);
        mmio::write32(gicd + GICD_ISENABLER0, 1 << intid);
    }
    // SAFETY: as above, reading back.
    let (ctlr, enabled) = unsafe {
        (
            mmio::read32(gicd + GICD_CTLR),
            mmio::read32(gicd + GICD_ISENABLER0),
        )
    };
    if ctlr & GICD_CTLR_ENABLE == 0 || enabled & (1 << intid) == 0 {
        return Err(why!(
            "GICD_CTLR {ctlr:#x} / GICD_ISENABLER0 {enabled:#x} after enabling INTID {intid}"
        ));
    }
    enable_cpu_interface(regions.gicc);
    Ok(())
}

fn enable_cpu_interface(gicc: usize) {
    // SAFETY: priority mask 0xff (let everything through), binary point 0, then the CPU
    // interface of this CPU enabled.
    unsafe {
        mmio::write32(gicc + GICC_PMR, 0xff);
        mmio::write32(gicc + GICC_BPR, 0);
        mmio::write32(gicc + GICC_CTLR, GICC_CTLR_ENABLE);
    }
}

/// Acknowledges the highest-priority pending interrupt: the raw GICC_IAR value (to be
/// given back to [`end`]) and its INTID.
pub fn acknowledge(gicc: usize) -> (u32, u32) {
    // SAFETY: reading GICC_IAR acknowledges an interrupt; the caller ends it.
    let iar = unsafe { mmio::read32(gicc + GICC_IAR) };
    (iar, iar & IAR_ID_MASK)
}

/// Ends the interrupt `iar` acknowledged (priority drop and deactivation).
pub fn end(gicc: usize, iar: u32) {
    // SAFETY: ends an interrupt this CPU acknowledged.
    unsafe { mmio::write32(gicc + GICC_EOIR, iar) };
}
