//! The riscv64 part of the device tree: the timebase, the harts' ISA and local
//! interrupt controllers, and the PLIC.

use super::plic;
use crate::platform::{is_cpu_node, Platform};
use crate::why::{why, CheckResult};

/// The riscv64 part of the device-tree check: `/cpus/timebase-frequency`; every CPU
/// with a 64-bit `riscv,isa` and a `riscv,cpu-intc` interrupt controller; a PLIC with
/// a supervisor context for the boot hart.
pub fn check_dtb(platform: &Platform) -> CheckResult {
    let fdt = &platform.fdt;
    let cpus = fdt.find("/cpus").ok_or_else(|| why!("no /cpus node"))?;
    if cpus.prop("timebase-frequency").is_none() {
        return Err(why!("no /cpus/timebase-frequency"));
    }
    for cpu in cpus.children().filter(is_cpu_node) {
        let isa = cpu.prop_str("riscv,isa").unwrap_or("");
        if !isa.starts_with("rv64") {
            return Err(why!("{} has riscv,isa {isa:?}, not rv64", cpu.name));
        }
        if !cpu.children().any(|c| c.is_compatible("riscv,cpu-intc")) {
            return Err(why!(
                "{} has no riscv,cpu-intc interrupt controller",
                cpu.name
            ));
        }
    }
    plic::find(platform)
        .ok_or_else(|| why!("no PLIC with a supervisor context for the boot hart"))?;
    Ok(())
}
