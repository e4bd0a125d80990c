//! Calls to the layer above the guest with `hvc #0` and the SMC calling convention:
//! PSCI (the firmware interface the hypervisor emulates) and the project hypercalls.
//!
//! On hardware without EL2 an `hvc` nothing answers is UNDEFINED; the exception handler
//! then resumes the call stub at `tg_hvc_undef`, which reports the call as undefined
//! instead of letting the guest die, so checks can say what happened.

use core::arch::global_asm;

use crate::arch::{CallUndefined, CpuState, HvInfo, NOT_SUPPORTED};
use crate::why::{why, CheckResult};

/// Name of the firmware check on this architecture.
pub const CHECK_NAME: &str = "psci";

/// This architecture's own checks, run after `dtb` and before `memory`.
pub const ARCH_CHECKS: &[crate::arch::ArchCheck] = &[
    ("pmu-debug", pmu_debug),
    ("cpu-features", cpu_features),
    ("sgi-groups", sgi_groups),
    ("fresh-state", fresh_state),
];

/// What the first boot leaves in the registers `fresh-state` looks at.
const MARK: u64 = 0x5eed_f00d_0000_0001;

/// fresh-state: a VM's second boot finds nothing of its first in the registers the
/// world switch leaves in the CPU: TPIDR_EL1, TPIDR_EL0, CONTEXTIDR_EL1, the FP/SIMD
/// register d31 and FPCR (FP is enabled here for the check: this guest is softfloat
/// and never uses it otherwise). Every boot then leaves marks for the next.
fn fresh_state(_: &crate::platform::Platform) -> CheckResult {
    let (tpidr1, tpidr0, ctxid, d31, fpcr): (u64, u64, u64, u64, u64);
    // SAFETY: CPACR_EL1.FPEN = 0b11 only stops FP/SIMD from trapping at EL1/EL0; the
    // registers read and written are thread ids, the context id, d31 and FPCR, none of
    // which this guest uses for anything else.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 20)",
            "msr cpacr_el1, {t}",
            "isb",
            "mrs {a}, tpidr_el1",
            "mrs {b}, tpidr_el0",
            "mrs {c}, contextidr_el1",
            "fmov {d}, d31",
            "mrs {e}, fpcr",
            "msr tpidr_el1, {m}",
            "msr tpidr_el0, {m}",
            "msr contextidr_el1, {m32}",
            "fmov d31, {m}",
            "msr fpcr, {dn}",
            "isb",
            t = out(reg) _,
            a = out(reg) tpidr1,
            b = out(reg) tpidr0,
            c = out(reg) ctxid,
            d = out(reg) d31,
            e = out(reg) fpcr,
            m = in(reg) MARK,
            m32 = in(reg) MARK & 0xffff,
            dn = in(reg) 1u64 << 25,
            options(nomem, nostack)
        )
    };
    if vm_boots().unwrap_or(0) < 2 {
        return Ok(());
    }
    let left = [
        ("TPIDR_EL1", tpidr1),
        ("TPIDR_EL0", tpidr0),
        ("CONTEXTIDR_EL1", ctxid),
        ("d31", d31),
        ("FPCR", fpcr),
    ];
    match left.iter().find(|(_, v)| *v != 0) {
        Some((name, v)) => Err(why!(
            "{name} reads {v:#x} on this boot: state of the previous boot"
        )),
        None => Ok(()),
    }
}

/// PMCCFILTR_EL0.NSH: count cycles at EL2.
const PMCCFILTR_NSH: u64 = 1 << 27;
/// MDSCR_EL1.TDCC: a harmless bit the first boot leaves set for the second to see.
const MDSCR_TDCC: u64 = 1 << 12;

/// pmu-debug: the guest cannot make the cycle counter count at EL2 (PMCCFILTR_EL0.NSH
/// does not stick), and on a VM's second boot its debug state (MDSCR_EL1, which the
/// first boot leaves non-zero) starts clean. The PMU part runs where ID_AA64DFR0_EL1
/// shows a PMU or this project's hypervisor answers HV_INFO (it hides its inert PMU
/// but still traps every PMU register); skipped otherwise.
fn pmu_debug(_: &crate::platform::Platform) -> CheckResult {
    let dfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nomem, nostack)) };
    if !matches!((dfr0 >> 8) & 0xf, 0 | 0xf)
        || hv_info().is_ok_and(|x| x[1] == crate::arch::HV_INFO_MAGIC)
    {
        let filter: u64;
        // SAFETY: PMCCFILTR_EL0 only filters what the cycle counter counts.
        unsafe {
            core::arch::asm!("msr pmccfiltr_el0, {}", "isb", "mrs {}, pmccfiltr_el0",
                in(reg) PMCCFILTR_NSH, lateout(reg) filter, options(nomem, nostack))
        };
        if filter & PMCCFILTR_NSH != 0 {
            return Err(why!(
                "PMCCFILTR_EL0.NSH stays set: the guest can count cycles spent at EL2"
            ));
        }
    }
    let mdscr: u64;
    // SAFETY: reading MDSCR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, mdscr_el1", out(reg) mdscr, options(nomem, nostack)) };
    // SAFETY: TDCC only traps EL0 debug communication channel accesses (none here).
    unsafe {
        core::arch::asm!("msr mdscr_el1, {}", "isb", in(reg) mdscr | MDSCR_TDCC, options(nomem, nostack))
    };
    if vm_boots().unwrap_or(0) > 1 && mdscr != 0 {
        return Err(why!(
            "MDSCR_EL1 reads {mdscr:#x} on this boot: debug state of the previous boot"
        ));
    }
    Ok(())
}

/// Reads an ID register by its generic name (`S3_0_C0_C<m>_<n>`).
macro_rules! id_reg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an ID register has no side effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// cpu-features: the ID registers show none of the features this project's
/// hypervisor does not offer (kernel/src/arch/aarch64/idregs.rs): SVE, SME, pointer
/// authentication, MTE, RAS, AMU, the PMU, AArch32, VHE, nested virtualisation; the
/// registers of hidden features (ID_AA64ZFR0_EL1, ID_AA64SMFR0_EL1,
/// ID_AA64MMFR3_EL1) and the AArch32 ones (ID_PFR0_EL1) read as zero; EL1 still
/// shows AArch64 and FP/AdvSIMD are there.
fn cpu_features(_: &crate::platform::Platform) -> CheckResult {
    let pfr0 = id_reg!("S3_0_C0_C4_0");
    let pfr1 = id_reg!("S3_0_C0_C4_1");
    let dfr0 = id_reg!("S3_0_C0_C5_0");
    let isar1 = id_reg!("S3_0_C0_C6_1");
    let isar2 = id_reg!("S3_0_C0_C6_2");
    let mmfr1 = id_reg!("S3_0_C0_C7_1");
    let mmfr2 = id_reg!("S3_0_C0_C7_2");
    let field = |v: u64, lsb: u32| (v >> lsb) & 0xf;
    let hidden = [
        ("ID_AA64PFR0_EL1.RAS", pfr0, 28),
        ("ID_AA64PFR0_EL1.SVE", pfr0, 32),
        ("ID_AA64PFR0_EL1.AMU", pfr0, 44),
        ("ID_AA64PFR1_EL1.MTE", pfr1, 8),
        ("ID_AA64PFR1_EL1.SME", pfr1, 24),
        ("ID_AA64DFR0_EL1.PMUVer", dfr0, 8),
        ("ID_AA64ISAR1_EL1.APA", isar1, 4),
        ("ID_AA64ISAR1_EL1.API", isar1, 8),
        ("ID_AA64ISAR1_EL1.GPA", isar1, 24),
        ("ID_AA64ISAR1_EL1.GPI", isar1, 28),
        ("ID_AA64ISAR2_EL1.GPA3", isar2, 8),
        ("ID_AA64ISAR2_EL1.APA3", isar2, 12),
        ("ID_AA64MMFR1_EL1.VH", mmfr1, 8),
        ("ID_AA64MMFR2_EL1.NV", mmfr2, 24),
    ];
    for (name, reg, lsb) in hidden {
        if field(reg, lsb) != 0 {
            return Err(why!("{name} = {} (a feature not offered)", field(reg, lsb)));
        }
    }
    for (el, lsb) in [(0, 0), (1, 4), (2, 8), (3, 12)] {
        if field(pfr0, lsb) > 1 {
            return Err(why!(
                "ID_AA64PFR0_EL1.EL{el} = {}: AArch32 shown",
                field(pfr0, lsb)
            ));
        }
    }
    if field(pfr0, 4) != 1 || field(pfr0, 16) == 0xf || field(pfr0, 20) == 0xf {
        return Err(why!(
            "ID_AA64PFR0_EL1 = {pfr0:#x}: no AArch64 EL1 or no FP/AdvSIMD"
        ));
    }
    let zero = [
        ("ID_AA64ZFR0_EL1", id_reg!("S3_0_C0_C4_4")),
        ("ID_AA64SMFR0_EL1", id_reg!("S3_0_C0_C4_5")),
        ("ID_AA64MMFR3_EL1", id_reg!("S3_0_C0_C7_3")),
        ("ID_PFR0_EL1", id_reg!("S3_0_C0_C1_0")),
    ];
    for (name, v) in zero {
        if v != 0 {
            return Err(why!("{name} = {v:#x}, expected 0"));
        }
    }
    Ok(())
}

/// sgi-groups: with a GICv3, ICC_SGI0R_EL1 and ICC_ASGI1R_EL1 are emulated (Group 0
/// SGIs only) and ICC_SGI1R_EL1 reaches either group (see `gic::check_sgi_groups`).
/// Skipped with a GICv2.
fn sgi_groups(p: &crate::platform::Platform) -> CheckResult {
    match super::dtb::gic(&p.fdt) {
        Some(super::dtb::Gic::V3(regions)) => super::gic::check_sgi_groups(&regions),
        _ => {
            crate::console::println!("testguest: sgi-groups: skipped (no GICv3)");
            Ok(())
        }
    }
}

const PSCI_VERSION: u64 = 0x8400_0000;
const PSCI_CPU_OFF: u64 = 0x8400_0002;
const PSCI_CPU_ON: u64 = 0xC400_0003;
const PSCI_AFFINITY_INFO: u64 = 0xC400_0004;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
const PSCI_FEATURES: u64 = 0x8400_000A;
/// PSCI error code ALREADY_ON.
const PSCI_ALREADY_ON: i64 = -4;

/// Project hypercall HV_INFO (SMCCC standard hypervisor service range).
const HV_INFO: u64 = 0xC600_0000;
/// Project hypercall VM_BOOTS: how many times this VM has started.
const VM_BOOTS: u64 = 0xC600_0001;
/// A function id in the same range that nothing implements.
const UNKNOWN_FUNCTION: u64 = 0xC600_00FF;

/// Arguments in, results out, of one call (layout shared with `tg_hvc`).
#[repr(C)]
struct CallRegs {
    x: [u64; 4],
    /// Set to 1 by the stub when the `hvc` raised an exception in the guest.
    undefined: u64,
}

extern "C" {
    fn tg_hvc(regs: *mut CallRegs);
    fn tg_hvc_insn();
    fn tg_hvc_undef();
}

/// Address of the `hvc` instruction in the call stub.
pub fn call_instruction_address() -> u64 {
    tg_hvc_insn as *const () as u64
}

/// Where the stub resumes when its `hvc` was UNDEFINED.
pub fn call_undefined_address() -> u64 {
    tg_hvc_undef as *const () as u64
}

/// `hvc #0` with x0..x3 = `args`; returns x0..x3.
fn call(args: [u64; 4]) -> Result<[u64; 4], CallUndefined> {
    let mut regs = CallRegs {
        x: args,
        undefined: 0,
    };
    // SAFETY: `tg_hvc` reads and writes only `regs`, which lives across the call; the
    // layer above the guest may change nothing but x0-x17, which the stub treats as
    // clobbered (it is an `extern "C"` function).
    unsafe { tg_hvc(&mut regs) };
    if regs.undefined != 0 {
        return Err(CallUndefined);
    }
    Ok(regs.x)
}

/// A PSCI call; x0 as a signed PSCI return value (NOT_SUPPORTED if undefined).
fn psci(function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    match call([function, a1, a2, a3]) {
        Ok(x) => x[0] as i64,
        Err(CallUndefined) => NOT_SUPPORTED as i64,
    }
}

/// The firmware check: PSCI VERSION is at least 1.0, FEATURES says CPU_ON exists, and
/// the calling CPU is reported ON (AFFINITY_INFO) and ALREADY_ON (CPU_ON on itself).
pub fn check() -> CheckResult {
    let version = call([PSCI_VERSION, 0, 0, 0]).map_err(|_| why!("hvc is undefined (no PSCI)"))?[0];
    let (major, minor) = ((version >> 16) & 0xffff, version & 0xffff);
    if version >> 31 != 0 || major < 1 {
        return Err(why!("PSCI_VERSION returned {version:#x}, need >= 1.0"));
    }
    crate::console::println!("testguest: PSCI {major}.{minor}");
    let cpu_on = psci(PSCI_FEATURES, PSCI_CPU_ON, 0, 0);
    if cpu_on < 0 {
        return Err(why!("PSCI_FEATURES(CPU_ON) returned {cpu_on}"));
    }
    let me = super::cpu_hw_id();
    let state = cpu_state(me);
    if state != CpuState::On {
        return Err(why!(
            "AFFINITY_INFO of the calling CPU {me:#x} is {state:?}"
        ));
    }
    let again = psci(PSCI_CPU_ON, me, super::secondary_entry(), 0);
    if again != PSCI_ALREADY_ON {
        return Err(why!(
            "CPU_ON of the calling CPU returned {again}, not ALREADY_ON (-4)"
        ));
    }
    Ok(())
}

/// Starts the CPU `hw_id` at the secondary entry with `slot` as its argument.
pub fn cpu_start(hw_id: u64, slot: u64) -> Result<(), i64> {
    match psci(PSCI_CPU_ON, hw_id, super::secondary_entry(), slot) {
        0 => Ok(()),
        err => Err(err),
    }
}

/// What AFFINITY_INFO says about the CPU `hw_id`.
pub fn cpu_state(hw_id: u64) -> CpuState {
    match psci(PSCI_AFFINITY_INFO, hw_id, 0, 0) {
        0 => CpuState::On,
        1 => CpuState::Off,
        2 => CpuState::OnPending,
        err => CpuState::Error(err),
    }
}

/// Turns the calling CPU off (PSCI CPU_OFF); if that fails, halts it.
pub fn cpu_stop() -> ! {
    psci(PSCI_CPU_OFF, 0, 0, 0);
    super::halt()
}

/// Powers the VM off (PSCI SYSTEM_OFF); if that returns, halts this CPU.
pub fn system_off() -> ! {
    psci(PSCI_SYSTEM_OFF, 0, 0, 0);
    super::halt()
}

/// Resets the VM (PSCI SYSTEM_RESET); if that returns, halts this CPU.
pub fn system_reset() -> ! {
    psci(PSCI_SYSTEM_RESET, 0, 0, 0);
    super::halt()
}

/// The project hypercall VM_BOOTS: how many times this VM has started.
pub fn vm_boots() -> Result<u64, CallUndefined> {
    Ok(call([VM_BOOTS, 0, 0, 0])?[1])
}

/// The project hypercall HV_INFO.
pub fn hv_info() -> Result<HvInfo, CallUndefined> {
    call([HV_INFO, 0, 0, 0])
}

/// An AxVisor hypercall: `hvc #0` with x0 = `code`, x1..x4 = `args`; its answer is
/// x0 alone (0 done, -1 refused).
pub fn axvisor_call(code: u64, args: [u64; 4]) -> i64 {
    let ret: u64;
    // SAFETY: a hypercall: the hypervisor answers in x0 and may write guest memory
    // the arguments point at (the asm is not `nomem`, so the compiler assumes so).
    unsafe {
        core::arch::asm!("hvc #0",
            inlateout("x0") code => ret,
            inlateout("x1") args[0] => _, inlateout("x2") args[1] => _,
            inlateout("x3") args[2] => _, inlateout("x4") args[3] => _,
            options(nostack))
    };
    ret as i64
}

/// A harmless call every firmware answers (PSCI VERSION); returns x0.
pub fn probe() -> Result<u64, CallUndefined> {
    Ok(call([PSCI_VERSION, 0, 0, 0])?[0])
}

/// A call with a function id nothing implements; returns x0.
pub fn unknown_call() -> Result<u64, CallUndefined> {
    Ok(call([UNKNOWN_FUNCTION, 0, 0, 0])?[0])
}

global_asm!(
    r#"
    .section .text, "ax"
    .balign 4
    .global tg_hvc
    .global tg_hvc_insn
    .global tg_hvc_undef
    // x0 = struct CallRegs *: x0..x3 in, x0..x3 and `undefined` out.
tg_hvc:
    str     x0, [sp, #-16]!
    ldp     x2, x3, [x0, #16]
    ldp     x0, x1, [x0]
tg_hvc_insn:
    hvc     #0
    mov     x4, #0
1:  ldr     x5, [sp], #16
    stp     x0, x1, [x5]
    stp     x2, x3, [x5, #16]
    str     x4, [x5, #32]
    ret
tg_hvc_undef:
    mov     x0, #-1
    mov     x1, #0
    mov     x2, #0
    mov     x3, #0
    mov     x4, #1
    b       1b
"#
);
