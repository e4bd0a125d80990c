//! Calls to the layer below the guest with `ecall` and the SBI calling convention:
//! the SBI (which the hypervisor emulates, OpenSBI on plain QEMU) and the project
//! hypercalls (extension `HV_EID`). An `ecall` is always answered on RISC-V, so no
//! call is ever undefined; an extension nobody implements answers NOT_SUPPORTED.

use crate::arch::{CallUndefined, CpuState, HvInfo};
use crate::console::println;
use crate::platform::{Platform, Region};
use crate::why::{why, CheckResult};

/// Name of the firmware check on this architecture.
pub const CHECK_NAME: &str = "sbi";

const EID_LEGACY_PUTCHAR: u64 = 0x01;
const EID_LEGACY_SHUTDOWN: u64 = 0x08;
const EID_BASE: u64 = 0x10;
const EID_TIME: u64 = 0x5449_4D45;
const EID_IPI: u64 = 0x0073_5049;
const EID_HSM: u64 = 0x0048_534D;
const EID_SRST: u64 = 0x5352_5354;
const EID_DBCN: u64 = 0x4442_434E;
/// The project's hypercall extension (firmware-specific range); FID 0 is HV_INFO.
const HV_EID: u64 = 0x0A48_5600;
const HV_INFO: u64 = 0;
/// How many times this VM has started.
const VM_BOOTS: u64 = 1;
/// A function of that extension nothing implements.
const UNKNOWN_FUNCTION: u64 = 0xff;

const SBI_ERR_ALREADY_AVAILABLE: i64 = -6;

const HART_STARTED: u64 = 0;
const HART_STOPPED: u64 = 1;
const HART_START_PENDING: u64 = 2;
const HART_STOP_PENDING: u64 = 3;

/// `ecall` with a0..a3 = `args`, a6 = `fid`, a7 = `eid`; returns a0..a3.
fn call(eid: u64, fid: u64, args: [u64; 4]) -> [u64; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = args;
    // SAFETY: an SBI call: the layer below changes only a0/a1 (a2/a3 for the project
    // hypercalls) and no guest memory (no call here passes a pointer).
    unsafe {
        core::arch::asm!("ecall",
            inout("a0") a0, inout("a1") a1, inout("a2") a2, inout("a3") a3,
            in("a6") fid, in("a7") eid, options(nostack))
    };
    [a0, a1, a2, a3]
}

/// Legacy SBI console_putchar (extension 0x01): one byte on the firmware's console.
pub fn console_putchar(byte: u8) {
    call(EID_LEGACY_PUTCHAR, 0, [u64::from(byte), 0, 0, 0]);
}

/// (error, value) of an SBI call.
fn sbi(eid: u64, fid: u64, a0: u64, a1: u64, a2: u64) -> (i64, u64) {
    let r = call(eid, fid, [a0, a1, a2, 0]);
    (r[0] as i64, r[1])
}

/// The firmware check: SBI version at least 0.2 with the HSM, TIME, IPI and SRST
/// extensions, the calling hart reported STARTED and ALREADY_AVAILABLE when started
/// again.
pub fn check() -> CheckResult {
    let (err, version) = sbi(EID_BASE, 0, 0, 0, 0);
    let (major, minor) = ((version >> 24) & 0x7f, version & 0xff_ffff);
    if err != 0 || (major == 0 && minor < 2) {
        return Err(why!(
            "get_spec_version returned {err}, {version:#x}: need >= 0.2"
        ));
    }
    let (_, impl_id) = sbi(EID_BASE, 1, 0, 0, 0);
    let line = why!("testguest: SBI {major}.{minor}, implementation id {impl_id:#x}");
    // Through the SBI debug console where there is one (SBI 2.0), as early Linux
    // consoles do; the line must come out the same.
    if !debug_console_line(line.as_str()) {
        println!("{line}");
    }
    for (eid, name) in [
        (EID_HSM, "HSM"),
        (EID_TIME, "TIME"),
        (EID_IPI, "IPI"),
        (EID_SRST, "SRST"),
    ] {
        let (err, present) = sbi(EID_BASE, 3, eid, 0, 0);
        if err != 0 || present == 0 {
            return Err(why!("the {name} extension is missing"));
        }
    }
    let me = super::cpu_hw_id();
    let state = cpu_state(me);
    if state != CpuState::On {
        return Err(why!(
            "hart_get_status of the calling hart {me} is {state:?}"
        ));
    }
    let (again, _) = sbi(EID_HSM, 0, me, super::secondary_entry(), 0);
    if again != SBI_ERR_ALREADY_AVAILABLE {
        return Err(why!(
            "hart_start of the calling hart returned {again}, not ALREADY_AVAILABLE (-6)"
        ));
    }
    Ok(())
}

/// Prints `text` and a line end through the SBI debug console (DBCN console_write,
/// which takes a physical address: the guest runs with satp off). False if there is
/// no debug console or it refused the write before anything was printed.
fn debug_console_line(text: &str) -> bool {
    let (err, present) = sbi(EID_BASE, 3, EID_DBCN, 0, 0);
    if err != 0 || present == 0 {
        return false;
    }
    let mut printed = false;
    for part in [text.as_bytes(), b"\r\n"] {
        let mut done = 0;
        while done < part.len() {
            let rest = &part[done..];
            let (err, n) = sbi(EID_DBCN, 0, rest.len() as u64, rest.as_ptr() as u64, 0);
            if err != 0 || n == 0 {
                return printed;
            }
            done += n as usize;
            printed = true;
        }
    }
    true
}

/// This architecture's own checks, run after `dtb` and before `memory` (which
/// touches all of RAM).
pub const ARCH_CHECKS: &[crate::arch::ArchCheck] = &[
    ("dbcn-fresh-ram", dbcn_fresh_ram),
    ("counters", super::counters::check),
    ("sbi-legacy", super::legacy::registers),
    ("timer-legacy", super::legacy::timer_periods),
    ("fresh-state", fresh_state),
];

/// What the first boot leaves in the registers `fresh-state` looks at.
const MARK: u64 = 0x5eed_f00d_0000_0001;
/// senvcfg.FIOM: a harmless bit (fences on I/O also order memory) the first boot
/// leaves set for the second to see.
const SENVCFG_FIOM: u64 = 1;
/// fcsr with every accrued exception flag set and rounding towards zero.
const FCSR_MARK: u64 = (1 << 5) | 0x1f;

/// fresh-state: a VM's second boot finds nothing of its first in the registers the
/// world switch leaves in the hart: sscratch (vsscratch), senvcfg (where the hart
/// has it: no VS copy exists, the hypervisor must clear it), the FP register f31 and
/// fcsr. Every boot then leaves marks for the next.
fn fresh_state(_: &Platform) -> CheckResult {
    let (scratch, f31, fcsr): (u64, u64, u64);
    // SAFETY: sstatus.FS is Initial from boot, so FP instructions run; sscratch, f31
    // and fcsr are used by nothing else in this guest.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +d",
            "csrr {a}, sscratch",
            "fmv.x.d {b}, f31",
            "csrr {c}, fcsr",
            "csrw sscratch, {m}",
            "fmv.d.x f31, {m}",
            "csrw fcsr, {fm}",
            ".option pop",
            a = out(reg) scratch,
            b = out(reg) f31,
            c = out(reg) fcsr,
            m = in(reg) MARK,
            fm = in(reg) FCSR_MARK,
            options(nomem, nostack)
        )
    };
    let mut senvcfg = 0u64;
    // SAFETY: senvcfg (0x10a) only says how fences and cache-block instructions
    // behave for U-mode; a hart without it raises an illegal instruction, caught.
    let trapped = crate::attack::catch(|| unsafe {
        core::arch::asm!("csrrs {0}, 0x10a, {1}", out(reg) senvcfg, in(reg) SENVCFG_FIOM,
            options(nomem, nostack))
    });
    if vm_boots().unwrap_or(0) < 2 {
        return Ok(());
    }
    // No senvcfg on this hart: nothing to compare.
    let senvcfg = if trapped.is_none() { senvcfg } else { 0 };
    let left = [
        ("sscratch", scratch),
        ("f31", f31),
        ("fcsr", fcsr),
        ("senvcfg", senvcfg),
    ];
    match left.iter().find(|(_, v)| *v != 0) {
        Some((name, v)) => Err(why!(
            "{name} reads {v:#x} on this boot: state of the previous boot"
        )),
        None => Ok(()),
    }
}

/// Bytes the `dbcn-fresh-ram` check hands the debug console.
const FRESH_LEN: u64 = 1;

/// dbcn-fresh-ram: a DBCN console_write from RAM the guest never touched (the end of
/// its highest RAM region, which a hypervisor zeroing RAM on first touch has not
/// filled yet) is accepted whole, and that RAM reads as zero. The byte printed is a
/// NUL, at the start of the line that reports the check. Skipped without a debug
/// console.
fn dbcn_fresh_ram(platform: &Platform) -> CheckResult {
    let (err, present) = sbi(EID_BASE, 3, EID_DBCN, 0, 0);
    if err != 0 || present == 0 {
        return Ok(());
    }
    let end = platform
        .ram_end()
        .ok_or_else(|| why!("no RAM in the device tree"))?;
    let buffer = Region {
        base: end - FRESH_LEN,
        size: FRESH_LEN,
    };
    let taken = [platform.dtb, crate::image::region()];
    if taken
        .iter()
        .chain(platform.reserved())
        .any(|r| r.overlaps(&buffer))
    {
        return Ok(());
    }
    let (err, n) = sbi(EID_DBCN, 0, FRESH_LEN, buffer.base, 0);
    if err != 0 || n != FRESH_LEN {
        return Err(why!(
            "console_write of {FRESH_LEN} byte(s) of untouched RAM at {:#x} returned {err}, {n}",
            buffer.base
        ));
    }
    // SAFETY: guest RAM (the device tree's memory node), clear of the image, the
    // device tree and reserved memory; nothing else uses it yet.
    let byte = unsafe { crate::mmio::read8(buffer.base as usize) };
    println!(
        "testguest: DBCN wrote {n} byte(s) from untouched RAM at {:#x}",
        buffer.base
    );
    if byte != 0 {
        return Err(why!(
            "untouched RAM at {:#x} reads {byte:#x}, not zero",
            buffer.base
        ));
    }
    Ok(())
}

/// Starts the hart `hw_id` at the secondary entry with `slot` as its argument.
pub fn cpu_start(hw_id: u64, slot: u64) -> Result<(), i64> {
    match sbi(EID_HSM, 0, hw_id, super::secondary_entry(), slot).0 {
        0 => Ok(()),
        err => Err(err),
    }
}

/// What hart_get_status says about the hart `hw_id`.
pub fn cpu_state(hw_id: u64) -> CpuState {
    match sbi(EID_HSM, 2, hw_id, 0, 0) {
        (0, HART_STARTED | HART_STOP_PENDING) => CpuState::On,
        (0, HART_STOPPED) => CpuState::Off,
        (0, HART_START_PENDING) => CpuState::OnPending,
        (0, other) => CpuState::Error(other as i64),
        (err, _) => CpuState::Error(err),
    }
}

/// Stops the calling hart (SBI hart_stop); if that fails, halts it.
pub fn cpu_stop() -> ! {
    sbi(EID_HSM, 1, 0, 0, 0);
    super::halt()
}

/// Powers the VM off (SBI system_reset shutdown, else the legacy call); if that
/// returns, halts this hart.
pub fn system_off() -> ! {
    sbi(EID_SRST, 0, 0, 0, 0);
    sbi(EID_LEGACY_SHUTDOWN, 0, 0, 0, 0);
    super::halt()
}

/// Resets the VM (SBI system_reset, cold reboot); if that returns, halts this hart.
pub fn system_reset() -> ! {
    sbi(EID_SRST, 0, 1, 0, 0);
    super::halt()
}

/// The project hypercall VM_BOOTS: how many times this VM has started.
pub fn vm_boots() -> Result<u64, CallUndefined> {
    Ok(call(HV_EID, VM_BOOTS, [0; 4])[1])
}

/// SBI send_ipi to the harts of `mask` (bit i: hart `base` + i); the SBI error.
pub fn send_ipi(mask: u64, base: u64) -> i64 {
    sbi(EID_IPI, 0, mask, base, 0).0
}

/// Programs the supervisor timer for `time` (u64::MAX: never); clears its interrupt.
pub fn set_timer(time: u64) {
    sbi(EID_TIME, 0, time, 0, 0);
}

/// The project hypercall HV_INFO.
pub fn hv_info() -> Result<HvInfo, CallUndefined> {
    Ok(call(HV_EID, HV_INFO, [0; 4]))
}

/// AxVisor's hypercall extension ("HVC").
const AXVISOR_EID: u64 = 0x48_5643;

/// An AxVisor hypercall: `ecall` with a7 = its extension, a6 = `code`, a0..a3 =
/// `args`; its answer is a0 alone (0 done, -1 refused).
pub fn axvisor_call(code: u64, args: [u64; 4]) -> i64 {
    let [mut a0, a1, a2, a3] = args;
    // SAFETY: a hypercall: the hypervisor answers in a0 and may write guest memory
    // the arguments point at (the asm is not `nomem`, so the compiler assumes so).
    unsafe {
        core::arch::asm!("ecall",
            inout("a0") a0, inlateout("a1") a1 => _, inlateout("a2") a2 => _,
            inlateout("a3") a3 => _, in("a6") code, in("a7") AXVISOR_EID, options(nostack))
    };
    a0 as i64
}

/// A harmless call every SBI answers (get_spec_version); returns a0.
pub fn probe() -> Result<u64, CallUndefined> {
    Ok(sbi(EID_BASE, 0, 0, 0, 0).0 as u64)
}

/// A call with a function id nothing implements; returns a0.
pub fn unknown_call() -> Result<u64, CallUndefined> {
    Ok(call(HV_EID, UNKNOWN_FUNCTION, [0; 4])[0])
}
