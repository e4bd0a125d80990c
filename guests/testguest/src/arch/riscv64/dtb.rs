//! The riscv64 part of the device tree: the timebase, the harts' ISA and local
//! interrupt controllers, and the PLIC.

use super::plic;
use crate::platform::{is_cpu_node, Platform};
use crate::why::{why, CheckResult};

/// The riscv64 part of the device-tree check: `/cpus/timebase-frequency`; every CPU
/// with a 64-bit `riscv,isa` and a `riscv,cpu-intc` interrupt controller; a PLIC with
/// a supervisor context for the boot hart (not with `sbi-only`, which uses none).
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
    if crate::guest::sbi_only() {
        report_interrupt_wiring(platform);
        return Ok(());
    }
    plic::find(platform)
        .ok_or_else(|| why!("no PLIC with a supervisor context for the boot hart"))?;
    Ok(())
}

/// `sbi-only`: the PLIC is not needed, so not required; says whether the device
/// tree has one and how many nodes name an interrupt parent (a VM without an
/// emulated PLIC should show neither).
fn report_interrupt_wiring(platform: &Platform) {
    let fdt = &platform.fdt;
    let plic = fdt
        .find_compatible(&["riscv,plic0", "sifive,plic-1.0.0"])
        .is_some();
    let parents = fdt
        .nodes()
        .filter(|n| n.prop("interrupt-parent").is_some() || n.prop("interrupts").is_some())
        .count();
    crate::console::println!(
        "testguest: sbi-only: device tree: PLIC {}, {parents} nodes with interrupts or an interrupt-parent",
        if plic { "present" } else { "absent" }
    );
}

/// Where the pending state of the PLIC source that `node` raises reads: the PLIC's
/// pending word's address and the bit.
pub fn pending_bit(fdt: &crate::fdt::Fdt, node: &crate::fdt::Node) -> Option<(usize, u32)> {
    let source = node.prop_u32("interrupts")?;
    let (base, _) = fdt.find_compatible(&plic::COMPATIBLE)?.reg().next()?;
    Some((
        base as usize + 0x1000 + 4 * (source / 32) as usize,
        1 << (source % 32),
    ))
}
