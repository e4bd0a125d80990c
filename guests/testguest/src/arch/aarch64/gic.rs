//! GICv3 set-up as an ordinary guest (Linux, say) does it: distributor with affinity
//! routing and group 1 enabled, this CPU's redistributor woken, one PPI made group 1,
//! given a priority and enabled, and the CPU interface used through system registers.

use core::arch::asm;

use crate::mmio;
use crate::time::wait_until;
use crate::why::{why, CheckResult, Why};

// Distributor registers.
const GICD_CTLR: usize = 0x0000;
const GICD_PIDR2: usize = 0xFFE8;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// ARE (ARE_NS in the non-secure view), EnableGrp1 (Grp1A), EnableGrp0 (Grp1 in the
/// non-secure view): what Linux writes.
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1) | (1 << 0);
const GICD_CTLR_ARE: u32 = 1 << 4;

// Redistributor registers (RD_base frame, then SGI_base frame 64 KiB later).
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_SGI_BASE: usize = 0x1_0000;
const GICR_IGROUPR0: usize = GICR_SGI_BASE + 0x0080;
const GICR_ISENABLER0: usize = GICR_SGI_BASE + 0x0100;
const GICR_ICENABLER0: usize = GICR_SGI_BASE + 0x0180;
const GICR_ISPENDR0: usize = GICR_SGI_BASE + 0x0200;
const GICR_ICPENDR0: usize = GICR_SGI_BASE + 0x0280;
const GICR_IPRIORITYR: usize = GICR_SGI_BASE + 0x0400;
const GICR_FRAME: u64 = 0x2_0000;
const GICR_FRAME_VLPI: u64 = 0x4_0000;

/// Priority given to the timer interrupt (any value below the 0xff mask works).
const PRIORITY: u32 = 0xa0;

/// Where the GIC's register frames are (from the device tree).
#[derive(Clone, Copy, Debug)]
pub struct GicRegions {
    pub gicd: usize,
    pub gicr: usize,
    pub gicr_size: u64,
}

/// Sets up the GIC so that private interrupt `intid` reaches this CPU as an IRQ.
pub fn init(regions: &GicRegions, intid: u32) -> CheckResult {
    if intid >= 32 {
        return Err(why!("INTID {intid} is not a private interrupt"));
    }
    check_version(regions.gicd)?;
    enable_distributor(regions.gicd)?;
    let rd = find_redistributor(regions)?;
    wake(rd)?;
    enable_private(rd, intid);
    enable_cpu_interface()
}

fn check_version(gicd: usize) -> CheckResult {
    // SAFETY: GICD_PIDR2 is a read-only ID register of the distributor.
    let pidr2 = unsafe { mmio::read32(gicd + GICD_PIDR2) };
    match (pidr2 >> 4) & 0xf {
        3 | 4 => Ok(()),
        rev => Err(why!(
            "GICD_PIDR2 {pidr2:#x}: architecture revision {rev}, not GICv3"
        )),
    }
}

fn enable_distributor(gicd: usize) -> CheckResult {
    // SAFETY: GICD_CTLR of the distributor the device tree names.
    unsafe { mmio::write32(gicd + GICD_CTLR, GICD_CTLR_ENABLE) };
    let settled = wait_until(1000, || {
        // SAFETY: as above, reading.
        let ctlr = unsafe { mmio::read32(gicd + GICD_CTLR) };
        ctlr & GICD_CTLR_RWP == 0
    });
    if !settled {
        return Err(why!("GICD_CTLR.RWP stayed set for 1 s"));
    }
    // SAFETY: as above, reading.
    let ctlr = unsafe { mmio::read32(gicd + GICD_CTLR) };
    if ctlr & GICD_CTLR_ARE == 0 {
        return Err(why!(
            "GICD_CTLR reads {ctlr:#x} after enabling affinity routing"
        ));
    }
    Ok(())
}

/// The affinity value GICR_TYPER[63:32] holds for this CPU.
fn my_affinity() -> u32 {
    let id = super::cpu_hw_id();
    ((id & 0xff_ffff) | (((id >> 32) & 0xff) << 24)) as u32
}

fn find_redistributor(regions: &GicRegions) -> Result<usize, Why> {
    let want = my_affinity();
    let mut offset = 0u64;
    while offset + GICR_FRAME <= regions.gicr_size {
        let rd = regions.gicr + offset as usize;
        // SAFETY: `rd` is a redistributor frame inside the GICR region the device tree
        // names; GICR_TYPER is read-only.
        let typer = unsafe { mmio::read64(rd + GICR_TYPER) };
        if (typer >> 32) as u32 == want {
            return Ok(rd);
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
        offset += if typer & GICR_TYPER_VLPIS != 0 {
            GICR_FRAME_VLPI
        } else {
            GICR_FRAME
        };
    }
    Err(why!(
        "no redistributor with affinity {want:#x} in the GICR region"
    ))
}

fn wake(rd: usize) -> CheckResult {
    // SAFETY: GICR_WAKER of this CPU's redistributor.
    let waker = unsafe { mmio::read32(rd + GICR_WAKER) };
    // SAFETY: as above.
    unsafe { mmio::write32(rd + GICR_WAKER, waker & !GICR_WAKER_PROCESSOR_SLEEP) };
    let awake = wait_until(1000, || {
        // SAFETY: as above, reading.
        let waker = unsafe { mmio::read32(rd + GICR_WAKER) };
        waker & GICR_WAKER_CHILDREN_ASLEEP == 0
    });
    if awake {
        Ok(())
    } else {
        Err(why!("GICR_WAKER.ChildrenAsleep stayed set for 1 s"))
    }
}

fn enable_private(rd: usize, intid: u32) {
    let bit = 1u32 << intid;
    let priority_reg = rd + GICR_IPRIORITYR + (intid as usize / 4) * 4;
    let shift = (intid % 4) * 8;
    // SAFETY: SGI/PPI configuration registers of this CPU's redistributor; only the
    // bits and byte of `intid` change.
    unsafe {
        let group = mmio::read32(rd + GICR_IGROUPR0);
        mmio::write32(rd + GICR_IGROUPR0, group | bit);
        let priority = mmio::read32(priority_reg);
        let priority = (priority & !(0xff << shift)) | (PRIORITY << shift);
        mmio::write32(priority_reg, priority);
        mmio::write32(rd + GICR_ISENABLER0, bit);
    }
}

/// One write of the `sgi-groups` check: register name, how to write it, SGI, whether
/// it must become pending.
type SgiCase = (&'static str, fn(u64), u32, bool);

/// SGIs the `sgi-groups` check makes pending: disabled, so never taken.
const SGI_GROUP0: u32 = 14;
const SGI_GROUP1: u32 = 13;

/// The `sgi-groups` check: SGI 14 in Group 0 and SGI 13 in Group 1 on this CPU's
/// redistributor, both disabled; each SGI register is written to target this CPU and
/// the redistributor's pending bits must show what the GIC architecture says for one
/// security state: ICC_SGI0R_EL1 and ICC_ASGI1R_EL1 generate only a Group 0 SGI,
/// ICC_SGI1R_EL1 one of either group. (A hypervisor that does not emulate the first
/// two stops the VM at the write.)
pub fn check_sgi_groups(regions: &GicRegions) -> CheckResult {
    check_version(regions.gicd)?;
    enable_distributor(regions.gicd)?;
    let rd = find_redistributor(regions)?;
    wake(rd)?;
    enable_system_registers()?;
    let (g0, g1) = (1u32 << SGI_GROUP0, 1u32 << SGI_GROUP1);
    // SAFETY: SGI configuration registers of this CPU's redistributor; only the bits of
    // the two SGIs this check owns change, and they stay disabled.
    unsafe {
        mmio::write32(rd + GICR_ICENABLER0, g0 | g1);
        let group = mmio::read32(rd + GICR_IGROUPR0);
        mmio::write32(rd + GICR_IGROUPR0, (group & !g0) | g1);
        mmio::write32(rd + GICR_ICPENDR0, g0 | g1);
    }
    let me = this_cpu_target();
    let cases: [SgiCase; 5] = [
        ("ICC_SGI0R_EL1", write_sgi0r, SGI_GROUP1, false),
        ("ICC_SGI0R_EL1", write_sgi0r, SGI_GROUP0, true),
        ("ICC_ASGI1R_EL1", write_asgi1r, SGI_GROUP1, false),
        ("ICC_ASGI1R_EL1", write_asgi1r, SGI_GROUP0, true),
        ("ICC_SGI1R_EL1", write_sgi1r, SGI_GROUP1, true),
    ];
    for (name, write, intid, want) in cases {
        write(me | (u64::from(intid) << 24));
        // SAFETY: pending bits of this CPU's SGIs: read, then the check's SGI cleared.
        let pending = unsafe {
            let p = mmio::read32(rd + GICR_ISPENDR0) & (1 << intid) != 0;
            mmio::write32(rd + GICR_ICPENDR0, 1 << intid);
            p
        };
        if pending != want {
            let group = if intid == SGI_GROUP0 { 0 } else { 1 };
            return Err(why!(
                "{name} of SGI {intid} (Group {group}) to this CPU: pending {pending}, expected {want}"
            ));
        }
    }
    // SAFETY: as above; SGI 14 back to Group 1 like every other interrupt here.
    unsafe { mmio::write32(rd + GICR_IGROUPR0, mmio::read32(rd + GICR_IGROUPR0) | g0) };
    Ok(())
}

/// Self-IPI timing (`ivc-bench`): SGI 13 (Group 1, disabled) sent to this CPU with
/// ICC_SGI1R_EL1 until its pending bit shows at the redistributor, then cleared; the
/// counter ticks of each round into `out`.
pub fn self_sgi_ticks(regions: &GicRegions, out: &mut [u64]) -> CheckResult {
    check_version(regions.gicd)?;
    enable_distributor(regions.gicd)?;
    let rd = find_redistributor(regions)?;
    wake(rd)?;
    enable_system_registers()?;
    let bit = 1u32 << SGI_GROUP1;
    // SAFETY: this CPU's redistributor; only SGI 13's bits change, and it stays
    // disabled (never taken).
    unsafe {
        mmio::write32(rd + GICR_ICENABLER0, bit);
        mmio::write32(rd + GICR_IGROUPR0, mmio::read32(rd + GICR_IGROUPR0) | bit);
        mmio::write32(rd + GICR_ICPENDR0, bit);
    }
    let me = this_cpu_target();
    for slot in out.iter_mut() {
        let start = super::timer::now();
        write_sgi1r(me | (u64::from(SGI_GROUP1) << 24));
        // SAFETY: as above: SGI 13's pending bit, read until set, then cleared.
        let seen = wait_until(1000, || unsafe {
            mmio::read32(rd + GICR_ISPENDR0) & bit != 0
        });
        // SAFETY: as above.
        unsafe { mmio::write32(rd + GICR_ICPENDR0, bit) };
        if !seen {
            return Err(why!("SGI 13 to this CPU never became pending"));
        }
        *slot = super::timer::now().wrapping_sub(start);
    }
    Ok(())
}

/// The target fields of an ICC_SGI*R_EL1 value that name this CPU: Aff3, Aff2, Aff1,
/// RS (Aff0 / 16) and the TargetList bit of Aff0 % 16.
fn this_cpu_target() -> u64 {
    let id = super::cpu_hw_id();
    (((id >> 32) & 0xff) << 48)
        | (((id >> 16) & 0xff) << 32)
        | (((id >> 8) & 0xff) << 16)
        | (((id & 0xff) >> 4) << 44)
        | (1 << (id & 0xf))
}

fn write_sgi0r(v: u64) {
    // SAFETY: generates an SGI (a disabled one, see `check_sgi_groups`).
    unsafe { asm!("msr S3_0_C12_C11_7, {}", "isb", in(reg) v, options(nomem, nostack)) };
}

fn write_asgi1r(v: u64) {
    // SAFETY: as above.
    unsafe { asm!("msr S3_0_C12_C11_6, {}", "isb", in(reg) v, options(nomem, nostack)) };
}

fn write_sgi1r(v: u64) {
    // SAFETY: as above.
    unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) v, options(nomem, nostack)) };
}

/// ICC_SRE_EL1.SRE set: the CPU interface is used through system registers.
fn enable_system_registers() -> CheckResult {
    let sre: u64;
    // SAFETY: enabling the system-register interface (ICC_SRE_EL1.SRE) and reading it
    // back only affects how this CPU talks to its GIC CPU interface.
    unsafe {
        asm!(
            "mrs {tmp}, S3_0_C12_C12_5",
            "orr {tmp}, {tmp}, #1",
            "msr S3_0_C12_C12_5, {tmp}",
            "isb",
            "mrs {sre}, S3_0_C12_C12_5",
            tmp = out(reg) _,
            sre = out(reg) sre,
            options(nomem, nostack)
        )
    };
    if sre & 1 == 0 {
        return Err(why!("ICC_SRE_EL1.SRE does not stick ({sre:#x})"));
    }
    Ok(())
}

fn enable_cpu_interface() -> CheckResult {
    enable_system_registers()?;
    // SAFETY: priority mask 0xff (let everything through), binary point 0, EOI mode 0
    // (EOI drops priority and deactivates), then group 1 enabled: the CPU interface of
    // this CPU only.
    unsafe {
        asm!(
            "msr S3_0_C4_C6_0, {pmr}",
            "msr S3_0_C12_C12_3, xzr",
            "msr S3_0_C12_C12_4, xzr",
            "msr S3_0_C12_C12_7, {one}",
            "isb",
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            options(nomem, nostack)
        )
    };
    Ok(())
}

/// Acknowledges the highest-priority pending group 1 interrupt (ICC_IAR1_EL1).
pub fn acknowledge() -> u32 {
    let iar: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt; the caller ends it.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) iar, options(nomem, nostack)) };
    (iar & 0xff_ffff) as u32
}

/// Ends interrupt `intid` (ICC_EOIR1_EL1: priority drop and deactivation).
pub fn end(intid: u32) {
    // SAFETY: ends an interrupt this CPU acknowledged.
    unsafe {
        asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid), options(nomem, nostack))
    };
}
