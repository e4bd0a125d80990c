//! Interrupts for the timer check: the GIC (v3 through system registers, or v2 through
//! its memory-mapped CPU interface) and virtual timer set-up from the device tree, IRQ
//! masking, and the IRQ handler that acknowledges, masks the timer and ends the
//! interrupt, reporting to the arch-neutral timer check.

use core::arch::asm;

use super::dtb::{self, Gic};
use super::{gic, gicv2, timer};
use crate::checks;
use crate::platform::Platform;
use crate::shared::Shared;
use crate::why::{why, CheckResult};

/// INTIDs from 1020 up are special (spurious); they are not ended.
const FIRST_SPECIAL_INTID: u32 = 1020;

/// The INTID of the virtual timer, once `init` found it.
static TIMER_INTID: Shared = Shared::new(u64::MAX);
/// The GICv2 CPU interface base once `init` found a GICv2; 0 = GICv3.
static GICV2_GICC: Shared = Shared::new(0);

/// Sets up the GIC for the virtual timer's interrupt, as the device tree describes them.
pub fn init(platform: &Platform) -> CheckResult {
    let gic = dtb::gic(&platform.fdt).ok_or_else(|| why!("no usable GICv3 or GICv2 node"))?;
    let intid =
        dtb::virtual_timer_intid(&platform.fdt).ok_or_else(|| why!("no virtual timer PPI"))?;
    TIMER_INTID.set(u64::from(intid));
    match gic {
        Gic::V3(regions) => gic::init(&regions, intid),
        Gic::V2(regions) => {
            gicv2::init(&regions, intid)?;
            GICV2_GICC.set(regions.gicc as u64);
            Ok(())
        }
    }
}

/// Lets IRQs in on this CPU.
pub fn enable() {
    // SAFETY: unmasking IRQs; the vector table is installed and the handler is ready.
    unsafe { asm!("msr daifclr, #2", "isb", options(nomem, nostack)) };
}

/// Keeps IRQs out on this CPU.
pub fn disable() {
    // SAFETY: masking IRQs only delays interrupt handling on this CPU.
    unsafe { asm!("msr daifset, #2", "isb", options(nomem, nostack)) };
}

/// The IRQ handler.
pub fn handle() {
    let gicc = GICV2_GICC.get() as usize;
    let (raw, intid) = if gicc != 0 {
        gicv2::acknowledge(gicc)
    } else {
        let intid = gic::acknowledge();
        (intid, intid)
    };
    if intid >= FIRST_SPECIAL_INTID {
        checks::timer::on_spurious_interrupt();
        return;
    }
    if u64::from(intid) == TIMER_INTID.get() {
        let fired = timer::mask_and_check_fired();
        checks::timer::on_timer_interrupt(timer::now(), fired);
    } else {
        checks::timer::on_other_interrupt(intid);
    }
    if gicc != 0 {
        gicv2::end(gicc, raw);
    } else {
        gic::end(intid);
    }
}
