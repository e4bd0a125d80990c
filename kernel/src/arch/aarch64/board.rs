//! What aarch64 needs of the board description, read from the neutral
//! [`BoardInfo`]: a GIC (v2 or v3) and the generic timer's interrupts; PSCI to start
//! and stop CPUs (over SMC when the firmware names no conduit). Pure, so the
//! refusals are unit-tested on the host.

use crate::firmware::{BoardInfo, GenericTimer, Gic, IrqController, PsciMethod};

/// The host GIC, or why there is none this hypervisor can use.
pub fn gic(b: &BoardInfo) -> Result<&Gic, &'static str> {
    match &b.irq_controller {
        Some(IrqController::Gic(g)) => Ok(g),
        Some(IrqController::Plic(_)) => Err(
            "the board's interrupt controller is a PLIC, not a GIC: this is a RISC-V board, \
             and the aarch64 hypervisor needs a GICv2 or GICv3",
        ),
        Some(IrqController::Apic(_)) => Err(
            "the board's interrupt controller is an x86 APIC, not a GIC: this is an x86 board, \
             and the aarch64 hypervisor needs a GICv2 or GICv3",
        ),
        None => {
            Err("no GIC in the board description: the aarch64 hypervisor needs a GICv2 or GICv3")
        }
    }
}

/// The generic timer's interrupts, or why they are not known.
pub fn timer(b: &BoardInfo) -> Result<GenericTimer, &'static str> {
    b.generic_timer().ok_or(
        "no Arm generic timer (arm,armv8-timer) with interrupts on the GIC in the board description",
    )
}

/// The PSCI conduit: the firmware's, else SMC.
pub fn psci(b: &BoardInfo) -> PsciMethod {
    b.firmware.psci.unwrap_or(PsciMethod::Smc)
}

/// Whether the aarch64 hypervisor can run on this board; why not, if it cannot.
pub fn check(b: &BoardInfo) -> Result<(), &'static str> {
    gic(b)?;
    timer(b)?;
    Ok(())
}
