//! aarch64's own attack kinds (see `crate::attack`): accesses the hypervisor cannot
//! emulate (pairs, writeback, exclusives, cache maintenance on MMIO), wild system
//! registers (EL2/EL3, GIC hypervisor interface, PMU, debug, trace, RAS, LOR,
//! implementation defined, ID register writes), wild PSCI and hypercalls, SGI floods,
//! wrong access widths on the emulated devices, exception loops, WFE.

use core::arch::asm;

use super::dtb::{self, Gic};
use crate::attack::{not_stopped, Kind, Outcome};
use crate::platform::Platform;
use crate::why::{why, Why};

/// An address where the VM has neither RAM nor a device.
pub const UNMAPPED: usize = 0x0a00_0000;
/// A CPU id (MPIDR affinity) no VM has.
pub const BAD_CPU_ID: u64 = 0xff_00ff_ff00;
/// PSCI INVALID_PARAMETERS.
pub const ERR_INVALID_PARAM: i64 = -2;
/// PSCI ALREADY_ON.
pub const ERR_ALREADY_ON: i64 = -4;
/// PSCI ON_PENDING.
pub const ERR_ON_PENDING: i64 = -5;

const PSCI_NOT_SUPPORTED: i64 = -1;

pub const KINDS: &[Kind] = &[
    ("mmio-ldp", mmio_ldp),
    ("mmio-post-index", mmio_post_index),
    ("mmio-ldxr", mmio_ldxr),
    ("mmio-stxr", mmio_stxr),
    ("mmio-ldaxp", mmio_ldaxp),
    ("mmio-ldar", mmio_ldar),
    ("dc-ivac-mmio", dc_ivac_mmio),
    ("dc-civac-unmapped", dc_civac_unmapped),
    ("dc-zva-mmio", dc_zva_mmio),
    ("hvc-imm", hvc_imm),
    ("vbar-unmapped", vbar_unmapped),
    ("vbar-ram-end", vbar_ram_end),
    ("sysreg-impdef", sysreg_impdef),
    ("sysreg-idreg-write", sysreg_idreg_write),
    ("sysreg-el2", sysreg_el2),
    ("sysreg-el3", sysreg_el3),
    ("sysreg-ich-el2", sysreg_ich_el2),
    ("sysreg-ras", sysreg_ras),
    ("sysreg-lor", sysreg_lor),
    ("sysreg-trace", sysreg_trace),
    ("sysreg-pmu", sysreg_pmu),
    ("sysreg-debug", sysreg_debug),
    ("sysreg-pauth-key", sysreg_pauth_key),
    ("udf", udf),
    ("smc-psci", smc_psci),
    ("psci-affinity-bad-level", psci_affinity_bad_level),
    ("psci-features-bad", psci_features_bad),
    ("psci-cpu-suspend", psci_cpu_suspend),
    ("psci-migrate", psci_migrate),
    ("psci-cpu-on-bad-entry", psci_cpu_on_bad_entry),
    ("smccc-sweep", smccc_sweep),
    ("hv-sweep", hv_sweep),
    ("sgi-flood", sgi_flood),
    ("sgi-wild-target", sgi_wild_target),
    ("gicd-width-8", gicd_width_8),
    ("gicd-width-1", gicd_width_1),
    ("gicr-width-2", gicr_width_2),
    ("uart-width-8", uart_width_8),
    ("gicd-sweep", gicd_sweep),
    ("wfe-masked", wfe_masked),
];

fn uart(platform: &Platform) -> Result<usize, Why> {
    Ok(platform.uart.ok_or_else(|| why!("no UART"))?.base as usize)
}

fn gicv3(platform: &Platform) -> Result<super::gic::GicRegions, Why> {
    match dtb::gic(&platform.fdt) {
        Some(Gic::V3(r)) => Ok(r),
        _ => Err(why!("needs a GICv3")),
    }
}

fn mmio_ldp(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    let (x, y): (u64, u64);
    // SAFETY: a pair load from the UART's window: the hypervisor cannot emulate it.
    unsafe {
        asm!("ldp {x}, {y}, [{a}]", a = in(reg) a, x = out(reg) x, y = out(reg) y, options(nostack))
    };
    not_stopped(why!("ldp from the UART ({x:#x}, {y:#x})").as_str())
}

fn mmio_post_index(platform: &Platform) -> Outcome {
    let mut a = gicv3(platform)?.gicd;
    let x: u64;
    // SAFETY: a load with writeback from GICD: not emulable.
    unsafe { asm!("ldr {x:w}, [{a}], #4", a = inout(reg) a, x = out(reg) x, options(nostack)) };
    not_stopped(why!("post-indexed load from GICD ({x:#x}, {a:#x})").as_str())
}

fn mmio_ldxr(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    let x: u64;
    // SAFETY: a load-exclusive from the UART.
    unsafe { asm!("ldxr {x:w}, [{a}]", a = in(reg) a, x = out(reg) x, options(nostack)) };
    not_stopped(why!("ldxr from the UART ({x:#x})").as_str())
}

/// A store-exclusive with no monitor set fails without an access (status 1): the
/// hypervisor never sees it. (With a monitor, the load-exclusive before it stops the
/// VM: `mmio-ldxr`.)
fn mmio_stxr(platform: &Platform) -> Outcome {
    let a = gicv3(platform)?.gicd;
    let s: u64;
    // SAFETY: a store-exclusive to GICD_CTLR (value 0: the attacker's own GIC).
    unsafe {
        asm!("clrex", "stxr {s:w}, wzr, [{a}]", a = in(reg) a, s = out(reg) s, options(nostack))
    };
    if s == 1 {
        Ok(why!(
            "stxr to GICD without a monitor failed (status 1), no access"
        ))
    } else {
        Err(why!("stxr to GICD without a monitor returned status {s}"))
    }
}

fn mmio_ldaxp(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    let (x, y): (u64, u64);
    // SAFETY: a pair load-acquire-exclusive from the UART: not emulable.
    unsafe {
        asm!("ldaxp {x}, {y}, [{a}]", a = in(reg) a, x = out(reg) x, y = out(reg) y, options(nostack))
    };
    not_stopped(why!("ldaxp from the UART ({x:#x}, {y:#x})").as_str())
}

fn mmio_ldar(platform: &Platform) -> Outcome {
    let a = uart(platform)? + 0x18;
    let x: u64;
    // SAFETY: a load-acquire of UARTFR: a single register with a syndrome, emulable.
    unsafe { asm!("ldar {x:w}, [{a}]", a = in(reg) a, x = out(reg) x, options(nostack)) };
    Ok(why!("ldar of UARTFR answered {x:#x}"))
}

/// Cache maintenance by VA on an address with no stage-2 mapping: QEMU performs none
/// (no fault reaches the hypervisor) and the guest goes on; on hardware the stage-2
/// abort (no instruction syndrome) stops the VM.
fn maintenance(what: &str, f: impl FnOnce()) -> Outcome {
    match crate::attack::catch(f) {
        Some(esr) => Err(why!("{what}: exception in the guest, ESR_EL1 {esr:#x}")),
        None => Ok(why!("{what}: came back, nothing changed")),
    }
}

fn dc_ivac_mmio(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    maintenance("dc ivac on the UART", || {
        // SAFETY: cache maintenance by VA on the UART's window.
        unsafe { asm!("dc ivac, {a}", "dsb sy", a = in(reg) a, options(nostack)) }
    })
}

fn dc_civac_unmapped(_: &Platform) -> Outcome {
    maintenance("dc civac outside the VM", || {
        // SAFETY: cache maintenance by VA where the VM has nothing.
        unsafe { asm!("dc civac, {a}", "dsb sy", a = in(reg) UNMAPPED, options(nostack)) }
    })
}

fn dc_zva_mmio(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    caught_or_stopped("dc zva on the UART", || {
        // SAFETY: zeroing a block at the UART's window.
        unsafe { asm!("dc zva, {a}", "dsb sy", a = in(reg) a, options(nostack)) }
    })
}

/// A kind that either stops the VM or raises an exception in the guest itself: the
/// guest's exception is the answer (with its syndrome).
fn caught_or_stopped(what: &str, f: impl FnOnce()) -> Outcome {
    match crate::attack::catch(f) {
        Some(esr) => Ok(why!(
            "{what}: exception in the guest, ESR_EL1 {esr:#x} (class {:#x})",
            esr >> 26
        )),
        None => not_stopped(what),
    }
}

/// Exception class of an instruction UNDEFINED at EL1.
const EC_UNKNOWN: u64 = 0;

/// A kind whose instruction must be UNDEFINED at EL1 (it traps to the guest itself).
fn undefined(what: &str, f: impl FnOnce()) -> Outcome {
    match crate::attack::catch(f) {
        Some(esr) if esr >> 26 == EC_UNKNOWN => {
            Ok(why!("{what}: UNDEFINED in the guest (ESR_EL1 {esr:#x})"))
        }
        Some(esr) => Err(why!(
            "{what}: guest exception ESR_EL1 {esr:#x}, expected UNDEFINED"
        )),
        None => Err(why!("{what}: executed without an exception")),
    }
}

fn hvc_imm(_: &Platform) -> Outcome {
    // SAFETY: a hypervisor call with immediate 1 (this project answers only #0).
    unsafe { asm!("hvc #1", options(nostack)) };
    not_stopped("hvc #1")
}

/// Points VBAR_EL1 at `vbar` and takes an exception: the vector fetch faults.
fn vector_loop(vbar: u64) -> Outcome {
    // SAFETY: the exception goes to a vector where nothing executable is; the
    // hypervisor stops the VM at the fetch.
    unsafe { asm!("msr vbar_el1, {v}", "isb", "udf #0", v = in(reg) vbar, options(nostack)) };
    not_stopped("an exception with VBAR_EL1 outside RAM")
}

fn vbar_unmapped(_: &Platform) -> Outcome {
    vector_loop(UNMAPPED as u64)
}

fn vbar_ram_end(platform: &Platform) -> Outcome {
    vector_loop(platform.ram_end().ok_or_else(|| why!("no RAM"))?)
}

/// With HCR_EL2.TIDCP the hypervisor stops the VM here. A CPU model that ignores
/// TIDCP (QEMU before 8.0) lets the read through; QEMU's Cortex-A72 reads it as zero,
/// which is accepted as the answer there (anything else is a failure).
fn sysreg_impdef(_: &Platform) -> Outcome {
    let v: u64;
    // SAFETY: reading an implementation-defined register (Cortex-A72 CPUECTLR_EL1).
    unsafe { asm!("mrs {}, s3_1_c15_c2_1", out(reg) v, options(nostack)) };
    if v == 0 {
        Ok(why!(
            "a read of CPUECTLR_EL1 came back with 0: this CPU model ignores HCR_EL2.TIDCP"
        ))
    } else {
        not_stopped(why!("a read of CPUECTLR_EL1 ({v:#x})").as_str())
    }
}

fn sysreg_idreg_write(_: &Platform) -> Outcome {
    undefined("a write to ID_AA64PFR0_EL1", || {
        // SAFETY: an attempt to write a read-only ID register.
        unsafe { asm!("msr s3_0_c0_c4_0, {}", in(reg) u64::MAX, options(nostack)) }
    })
}

macro_rules! undefined_read {
    ($fn:ident, $reg:literal, $what:literal) => {
        fn $fn(_: &Platform) -> Outcome {
            undefined($what, || {
                // SAFETY: a read of a register EL1 may not access: UNDEFINED.
                unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) _, options(nostack)) }
            })
        }
    };
}

undefined_read!(sysreg_el2, "s3_4_c1_c1_0", "a read of HCR_EL2");
undefined_read!(sysreg_el3, "s3_6_c1_c1_0", "a read of SCR_EL3");
undefined_read!(sysreg_ich_el2, "s3_4_c12_c11_0", "a read of ICH_HCR_EL2");
undefined_read!(
    sysreg_ras,
    "s3_0_c5_c3_0",
    "a read of ERRIDR_EL1 (RAS, hidden)"
);
undefined_read!(
    sysreg_lor,
    "s3_0_c10_c4_3",
    "a read of LORC_EL1 (LOR, hidden)"
);
undefined_read!(sysreg_trace, "s2_1_c0_c2_0", "a read of TRCPRGCTLR (trace)");

fn sysreg_pauth_key(_: &Platform) -> Outcome {
    caught_or_stopped("a write to APIAKeyLo_EL1", || {
        // SAFETY: pointer authentication is not offered; the key is never used.
        unsafe { asm!("msr s3_0_c2_c1_0, {}", in(reg) 0x1234u64, options(nostack)) }
    })
}

fn udf(_: &Platform) -> Outcome {
    undefined("udf #0", || {
        // SAFETY: a permanently undefined instruction.
        unsafe { asm!("udf #0", options(nostack)) }
    })
}

fn sysreg_pmu(_: &Platform) -> Outcome {
    let (cr, cnten): (u64, u64);
    // SAFETY: the PMU registers are inert for guests (read as zero, writes ignored).
    unsafe {
        asm!("msr pmcr_el0, {e}", "msr pmcntenset_el0, {m}", "msr pmccntr_el0, {m}", "isb",
             "mrs {a}, pmcr_el0", "mrs {b}, pmcntenset_el0",
             e = in(reg) 0x7u64, m = in(reg) u64::MAX, a = out(reg) cr, b = out(reg) cnten, options(nostack))
    };
    if cr != 0 || cnten != 0 {
        return Err(why!(
            "PMU writes stuck: PMCR_EL0 {cr:#x}, PMCNTENSET_EL0 {cnten:#x}"
        ));
    }
    Ok(why!(
        "PMCR_EL0, PMCNTENSET_EL0, PMCCNTR_EL0 written; read back 0 (inert PMU)"
    ))
}

fn sysreg_debug(_: &Platform) -> Outcome {
    let (bvr, bcr): (u64, u64);
    // SAFETY: the debug registers are inert for guests (read as zero, writes ignored);
    // a breakpoint at 0 would never match this guest anyway.
    unsafe {
        asm!("msr dbgbvr0_el1, {z}", "msr dbgbcr0_el1, {e}", "msr dbgwcr0_el1, {e}", "isb",
             "mrs {a}, dbgbvr0_el1", "mrs {b}, dbgbcr0_el1",
             z = in(reg) 0u64, e = in(reg) 0x1e7u64, a = out(reg) bvr, b = out(reg) bcr, options(nostack))
    };
    if bcr != 0 {
        return Err(why!(
            "DBGBCR0_EL1 reads {bcr:#x} after writing an enabled breakpoint"
        ));
    }
    Ok(why!(
        "breakpoint and watchpoint 0 enabled; DBGBCR0_EL1 reads 0, DBGBVR0_EL1 {bvr:#x}"
    ))
}

/// `hvc #0` or `smc #0` with x0..x3; returns x0.
fn raw_call(smc: bool, args: [u64; 4]) -> i64 {
    let mut x0 = args[0];
    // SAFETY: a firmware call; x0-x17 may change (the SMC calling convention).
    unsafe {
        if smc {
            asm!("smc #0", inout("x0") x0, inout("x1") args[1] => _, inout("x2") args[2] => _,
                 inout("x3") args[3] => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                 out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                 out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
        } else {
            asm!("hvc #0", inout("x0") x0, inout("x1") args[1] => _, inout("x2") args[2] => _,
                 inout("x3") args[3] => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                 out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                 out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
        }
    }
    x0 as i64
}

fn expect_call(what: &str, args: [u64; 4], want: i64) -> Outcome {
    match raw_call(false, args) {
        got if got == want => Ok(why!("{what}: {got}")),
        got => Err(why!("{what}: returned {got}, expected {want}")),
    }
}

fn smc_psci(_: &Platform) -> Outcome {
    match crate::attack::catch(|| {
        raw_call(true, [0x8400_0000, 0, 0, 0]);
    }) {
        Some(esr) => Ok(why!("smc #0 is UNDEFINED in the guest (ESR_EL1 {esr:#x})")),
        None => {
            let v = raw_call(true, [0x8400_0000, 0, 0, 0]);
            if v == 0x1_0001 {
                Ok(why!("smc #0 PSCI_VERSION answered as hvc: {v:#x}"))
            } else {
                Err(why!("smc #0 PSCI_VERSION returned {v:#x}"))
            }
        }
    }
}

fn psci_affinity_bad_level(_: &Platform) -> Outcome {
    expect_call(
        "AFFINITY_INFO(self, level 7)",
        [0xC400_0004, super::cpu_hw_id(), 7, 0],
        ERR_INVALID_PARAM,
    )
}

fn psci_features_bad(_: &Platform) -> Outcome {
    expect_call(
        "PSCI_FEATURES(0xdead_beef)",
        [0x8400_000A, 0xdead_beef, 0, 0],
        PSCI_NOT_SUPPORTED,
    )
}

fn psci_cpu_suspend(_: &Platform) -> Outcome {
    let got = raw_call(false, [0xC400_0001, u64::MAX, UNMAPPED as u64, 0]);
    if got == PSCI_NOT_SUPPORTED || got == ERR_INVALID_PARAM || got == 0 {
        Ok(why!("CPU_SUSPEND(wild state, entry outside RAM): {got}"))
    } else {
        Err(why!(
            "CPU_SUSPEND(wild state, entry outside RAM) returned {got}"
        ))
    }
}

fn psci_migrate(_: &Platform) -> Outcome {
    expect_call(
        "MIGRATE(0xff00)",
        [0xC400_0005, 0xff00, 0, 0],
        PSCI_NOT_SUPPORTED,
    )
}

fn psci_cpu_on_bad_entry(platform: &Platform) -> Outcome {
    let cpu = platform
        .cpus()
        .get(1)
        .copied()
        .ok_or_else(|| why!("needs 2 vCPUs"))?;
    let got = raw_call(false, [0xC400_0003, cpu, UNMAPPED as u64, 0]);
    const INVALID_ADDRESS: i64 = -9;
    if got == INVALID_ADDRESS {
        Ok(why!(
            "CPU_ON with the entry outside RAM: {got} (INVALID_ADDRESS)"
        ))
    } else {
        Err(why!(
            "CPU_ON with the entry outside RAM returned {got}, expected -9"
        ))
    }
}

/// Function ids of every calling-convention range with wild arguments, skipping the
/// calls that end or reset the VM, start or stop a CPU: each is answered.
fn smccc_sweep(_: &Platform) -> Outcome {
    const SKIP: [u64; 8] = [0x02, 0x03, 0x08, 0x09, 0x0E, 0x12, 0x15, 0x13];
    let mut calls = 0;
    let mut not_supported = 0;
    for owner in [
        0x8000_0000u64,
        0x8400_0000,
        0xC400_0000,
        0x8100_0000,
        0xC300_0000,
        0xBF00_0000,
    ] {
        for f in 0..0x20 {
            if owner & 0x0f00_0000 == 0x0400_0000 && SKIP.contains(&f) {
                continue;
            }
            let r = raw_call(false, [owner | f, u64::MAX, 0xdead_beef_0000, u64::MAX]);
            calls += 1;
            not_supported += u64::from(r == PSCI_NOT_SUPPORTED);
        }
    }
    Ok(why!(
        "{calls} calls answered, {not_supported} of them NOT_SUPPORTED"
    ))
}

/// The project's hypercall range with wild arguments: each is answered.
fn hv_sweep(_: &Platform) -> Outcome {
    let mut not_supported = 0;
    for f in 0..0x100u64 {
        let r = raw_call(false, [0xC600_0000 | f, u64::MAX, u64::MAX, u64::MAX]);
        not_supported += u64::from(r == PSCI_NOT_SUPPORTED);
    }
    Ok(why!(
        "256 hypercalls answered, {not_supported} of them NOT_SUPPORTED"
    ))
}

fn write_sgi1r(v: u64) {
    // SAFETY: an SGI request (emulated by the hypervisor for this VM only).
    unsafe { asm!("msr s3_0_c12_c11_5, {}", "isb", in(reg) v, options(nostack)) };
}

fn sgi_flood(_: &Platform) -> Outcome {
    const N: u64 = 20_000;
    // IRM = 1: every other vCPU of this VM; SGI 3.
    for _ in 0..N {
        write_sgi1r(1 << 40 | 3 << 24);
    }
    Ok(why!("{N} broadcast SGIs sent"))
}

fn sgi_wild_target(_: &Platform) -> Outcome {
    // Aff3, Aff2, Aff1 = 0xff, every target bit, RS = 15, SGI 15; then Aff1 = 1.
    write_sgi1r(0xff << 48 | 0xff << 32 | 0xf << 44 | 15 << 24 | 0xff << 16 | 0xffff);
    write_sgi1r(1 << 16 | 0xffff | 7 << 24);
    Ok(why!("SGIs to CPUs no VM has were sent"))
}

fn gicd_width_8(platform: &Platform) -> Outcome {
    let a = gicv3(platform)?.gicd;
    // SAFETY: a 64-bit read of GICD_CTLR (a 32-bit register).
    let v = unsafe { crate::mmio::read64(a) };
    not_stopped(why!("64-bit read of GICD_CTLR ({v:#x})").as_str())
}

fn gicd_width_1(platform: &Platform) -> Outcome {
    let a = gicv3(platform)?.gicd;
    // SAFETY: a byte read of GICD_TYPER.
    let v = unsafe { crate::mmio::read8(a + 4) };
    not_stopped(why!("byte read of GICD_TYPER ({v:#x})").as_str())
}

fn gicr_width_2(platform: &Platform) -> Outcome {
    let a = gicv3(platform)?.gicr;
    let v: u64;
    // SAFETY: a 16-bit read of GICR_CTLR.
    unsafe { asm!("ldrh {v:w}, [{a}]", a = in(reg) a, v = out(reg) v, options(nostack)) };
    not_stopped(why!("16-bit read of GICR_CTLR ({v:#x})").as_str())
}

fn uart_width_8(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    // SAFETY: a 64-bit read of the PL011's flag register.
    let v = unsafe { crate::mmio::read64(a + 0x18) };
    not_stopped(why!("64-bit read of UARTFR ({v:#x})").as_str())
}

/// Reads every word of the distributor's 64 KiB and writes all-ones to its enable,
/// pending, priority and routing registers (then clears them).
fn gicd_sweep(platform: &Platform) -> Outcome {
    let a = gicv3(platform)?.gicd;
    let mut sum = 0u64;
    for off in (0..0x1_0000).step_by(4) {
        // SAFETY: reads of the emulated distributor (read side effects: none in GICD).
        sum = sum.wrapping_add(u64::from(unsafe { crate::mmio::read32(a + off) }));
    }
    for off in (0x100..0x800).step_by(4).chain((0x6100..0x7fe0).step_by(8)) {
        // SAFETY: writes to the attacker's own distributor.
        unsafe { crate::mmio::write32(a + off, u32::MAX) };
    }
    for off in (0x180..0x300).step_by(4) {
        // SAFETY: as above: disable and clear what was set.
        unsafe { crate::mmio::write32(a + off, u32::MAX) };
    }
    Ok(why!(
        "16384 GICD reads (sum {sum:#x}) and wild writes answered"
    ))
}

fn wfe_masked(_: &Platform) -> Outcome {
    let start = super::timer::now();
    super::timer::arm(crate::time::ms_to_ticks(20));
    // SAFETY: waiting for an event with interrupts masked; the timer's event stream
    // (CNTKCTL_EL1.EVNTEN, every 2^5 ticks) wakes it if nothing else does.
    unsafe {
        asm!("msr daifset, #2", "msr cntkctl_el1, {k}", "isb", "sevl", "wfe", "wfe",
             "msr cntkctl_el1, xzr", k = in(reg) (1u64 << 2) | (4 << 4), options(nomem, nostack))
    };
    let woke = super::timer::now();
    super::timer::disarm();
    let ms = (woke - start) * 1000 / super::timer::frequency().max(1);
    Ok(why!("WFE with interrupts masked came back after {ms} ms"))
}

/// Runs `f` on a stack whose top is `top` (for the stack overflow: low in RAM, so
/// it runs off the bottom of RAM before reaching the guest's image).
pub fn on_stack(top: usize, f: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is in the guest's RAM; `f` never returns, so nothing of the old
    // stack is needed again.
    unsafe { asm!("mov sp, {t}", "br {f}", t = in(reg) top, f = in(reg) f, options(noreturn)) }
}

pub use crate::arch::devtree::{device_window, hammer_once};
