//! What riscv64 needs of the board description, read from the neutral
//! [`BoardInfo`]: every hart's ISA (to see the H extension and Sstc) and the
//! timebase; the PLIC is optional (without it, no console input). The H extension
//! itself is also probed on each hart at boot. Pure, so the refusals are
//! unit-tested on the host.

use crate::firmware::{BoardInfo, Isa};

/// What every hart has, or why it is not known.
pub fn common_isa(b: &BoardInfo) -> Result<Isa, &'static str> {
    b.common_isa().ok_or(
        "the board description gives no RISC-V ISA (riscv,isa) for every hart: \
         is this a RISC-V board?",
    )
}

/// The `time` CSR rate, or why it is not known.
pub fn timebase_hz(b: &BoardInfo) -> Result<u64, &'static str> {
    b.timebase_hz()
        .ok_or("no timebase-frequency in the board description's /cpus")
}

/// Whether the hart with id `hartid` may run vCPUs: false when the firmware says it
/// lacks the H extension (it is then not started).
pub fn can_run_vcpus(b: &BoardInfo, hartid: u64) -> bool {
    b.isa_of(hartid).is_none_or(|isa| isa.h())
}

/// Whether the riscv64 hypervisor can run on this board; why not, if it cannot.
pub fn check(b: &BoardInfo) -> Result<(), &'static str> {
    common_isa(b)?;
    timebase_hz(b)?;
    Ok(())
}
