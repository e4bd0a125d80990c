//! riscv64's own attack kinds (see `crate::attack`): accesses the hypervisor cannot
//! emulate (atomics, reservations, misaligned, cache-block operations on MMIO),
//! hypervisor and machine CSRs and instructions from VS-mode, a wild `satp` and
//! `stvec`, wild SBI calls (HSM, IPI, RFENCE, SRST, DBCN, unknown extensions) and
//! hypercalls, IPI floods, wrong access widths on the emulated devices.

use core::arch::asm;

use crate::attack::{not_stopped, Kind, Outcome};
use crate::platform::Platform;
use crate::why::{why, Why};

/// An address where the VM has neither RAM nor a device.
pub const UNMAPPED: usize = 0x2000_0000;
/// A hart id no VM has.
pub const BAD_CPU_ID: u64 = 0xffff;
/// SBI_ERR_INVALID_PARAM.
pub const ERR_INVALID_PARAM: i64 = -3;
/// SBI_ERR_ALREADY_AVAILABLE.
pub const ERR_ALREADY_ON: i64 = -6;
/// SBI_ERR_ALREADY_STARTED.
pub const ERR_ON_PENDING: i64 = -7;

const ERR_NOT_SUPPORTED: i64 = -2;
const ERR_INVALID_ADDRESS: i64 = -5;
const PLIC: usize = 0x0c00_0000;

pub const KINDS: &[Kind] = &[
    ("mmio-amo", mmio_amo),
    ("mmio-lr", mmio_lr),
    ("mmio-sc", mmio_sc),
    ("mmio-misaligned", mmio_misaligned),
    ("mmio-compressed", mmio_compressed),
    ("cbo-clean-mmio", cbo_clean_mmio),
    ("cbo-zero-mmio", cbo_zero_mmio),
    ("uart-width-8", uart_width_8),
    ("plic-width-1", plic_width_1),
    ("plic-sweep", plic_sweep),
    ("csr-hstatus", csr_hstatus),
    ("csr-hgatp", csr_hgatp),
    ("csr-vsatp", csr_vsatp),
    ("csr-mstatus", csr_mstatus),
    ("csr-illegal", csr_illegal),
    ("csr-cycle", csr_cycle),
    ("csr-hpmcounter", csr_hpmcounter),
    ("hfence-gvma", hfence_gvma),
    ("hlv", hlv),
    ("satp-wild", satp_wild),
    ("stvec-unmapped", stvec_unmapped),
    ("stvec-ram-end", stvec_ram_end),
    ("sbi-hsm-bad-entry", sbi_hsm_bad_entry),
    ("sbi-ipi-bad-mask", sbi_ipi_bad_mask),
    ("sbi-rfence-bad-mask", sbi_rfence_bad_mask),
    ("sbi-srst-bad-type", sbi_srst_bad_type),
    ("sbi-dbcn-outside", sbi_dbcn_outside),
    ("sbi-dbcn-huge", sbi_dbcn_huge),
    ("sbi-sweep", sbi_sweep),
    ("hv-sweep", hv_sweep),
    ("ipi-flood", ipi_flood),
];

/// `ecall` with a0..a2, a6 = fid, a7 = eid; returns (a0, a1).
fn sbi(eid: u64, fid: u64, a0: u64, a1: u64, a2: u64) -> (i64, u64) {
    let (mut r0, mut r1) = (a0, a1);
    // SAFETY: an SBI call; the layer below changes a0/a1 (a2/a3 for hypercalls).
    unsafe {
        asm!("ecall", inout("a0") r0, inout("a1") r1, inout("a2") a2 => _, out("a3") _,
             in("a6") fid, in("a7") eid, options(nostack))
    };
    (r0 as i64, r1)
}

fn uart(platform: &Platform) -> Result<usize, Why> {
    Ok(platform.uart.ok_or_else(|| why!("no UART"))?.base as usize)
}

fn mmio_amo(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    let v: u64;
    // SAFETY: an atomic add on the UART's window: not emulable.
    unsafe {
        asm!("amoadd.w {v}, {one}, ({a})", a = in(reg) a, one = in(reg) 1u64, v = out(reg) v, options(nostack))
    };
    not_stopped(why!("amoadd.w on the UART ({v:#x})").as_str())
}

fn mmio_lr(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    let v: u64;
    // SAFETY: a load-reserved from the UART: not emulable.
    unsafe { asm!("lr.w {v}, ({a})", a = in(reg) a, v = out(reg) v, options(nostack)) };
    not_stopped(why!("lr.w on the UART ({v:#x})").as_str())
}

fn mmio_sc(_: &Platform) -> Outcome {
    let s: u64;
    // SAFETY: a store-conditional to the PLIC with no reservation.
    unsafe {
        asm!("sc.w {s}, zero, ({a})", a = in(reg) PLIC + 4, s = out(reg) s, options(nostack))
    };
    if s != 0 {
        Ok(why!(
            "sc.w to the PLIC without a reservation failed ({s}), no access"
        ))
    } else {
        Err(why!("sc.w to the PLIC without a reservation succeeded"))
    }
}

fn mmio_misaligned(_: &Platform) -> Outcome {
    // SAFETY: a misaligned 32-bit load from the PLIC's priority registers.
    match crate::attack::catch(|| unsafe {
        asm!("lw {v}, 0({a})", a = in(reg) PLIC + 6, v = out(reg) _, options(nostack));
    }) {
        Some(cause) => Ok(why!(
            "misaligned load: exception in the guest (scause {cause:#x})"
        )),
        None => not_stopped("a misaligned load from the PLIC"),
    }
}

fn mmio_compressed(_: &Platform) -> Outcome {
    let v: u64;
    // SAFETY: a compressed load of PLIC priority 1: emulable.
    unsafe { asm!("c.lw a0, 4(a1)", in("a1") PLIC, out("a0") v, options(nostack)) };
    Ok(why!("c.lw of a PLIC priority answered {v:#x}"))
}

/// A cache-block operation (Zicbom/Zicboz) `insn` on `addr`: its exception if any.
fn cbo(addr: usize, what: &str, f: impl FnOnce(usize)) -> Outcome {
    match crate::attack::catch(|| f(addr)) {
        Some(cause) => Ok(why!("{what}: exception in the guest (scause {cause:#x})")),
        None => not_stopped(what),
    }
}

fn cbo_clean_mmio(platform: &Platform) -> Outcome {
    cbo(uart(platform)?, "cbo.clean on the UART", |a| {
        // SAFETY: cbo.clean (a0): cache-block clean of the UART's window.
        unsafe { asm!(".insn i 0x0f, 2, x0, 1({a})", a = in(reg) a, options(nostack)) }
    })
}

fn cbo_zero_mmio(platform: &Platform) -> Outcome {
    cbo(uart(platform)?, "cbo.zero on the UART", |a| {
        // SAFETY: cbo.zero (a0): zeroing a block at the UART's window.
        unsafe { asm!(".insn i 0x0f, 2, x0, 4({a})", a = in(reg) a, options(nostack)) }
    })
}

fn uart_width_8(platform: &Platform) -> Outcome {
    let a = uart(platform)?;
    // SAFETY: a 64-bit read of the 16550's registers 0..7.
    let v = unsafe { crate::mmio::read64(a) };
    not_stopped(why!("64-bit read of the 16550 ({v:#x})").as_str())
}

fn plic_width_1(_: &Platform) -> Outcome {
    // SAFETY: a byte read of PLIC priority 1.
    let v = unsafe { crate::mmio::read8(PLIC + 4) };
    not_stopped(why!("byte read of a PLIC priority ({v:#x})").as_str())
}

/// Reads the PLIC's priorities, pending bits and context 0/1 enables, writes
/// all-ones to every priority and this hart's enables, then zero.
fn plic_sweep(_: &Platform) -> Outcome {
    let mut sum = 0u64;
    let words = (0..0x1000)
        .step_by(4)
        .chain((0x1000..0x1080).step_by(4))
        .chain((0x2000..0x2100).step_by(4));
    for off in words.clone() {
        // SAFETY: reads of the emulated PLIC (no read side effects here).
        sum = sum.wrapping_add(u64::from(unsafe { crate::mmio::read32(PLIC + off) }));
    }
    for value in [u32::MAX, 0] {
        for off in (4..0x1000).step_by(4).chain((0x2000..0x2100).step_by(4)) {
            // SAFETY: writes to the attacker's own PLIC.
            unsafe { crate::mmio::write32(PLIC + off, value) };
        }
    }
    for ctx in 0..4 {
        // SAFETY: threshold and claim/complete of contexts 0..3 (the VM's own PLIC).
        unsafe {
            crate::mmio::write32(PLIC + 0x20_0000 + ctx * 0x1000, u32::MAX);
            let claim = crate::mmio::read32(PLIC + 0x20_0004 + ctx * 0x1000);
            crate::mmio::write32(PLIC + 0x20_0004 + ctx * 0x1000, claim | 0xffff);
            crate::mmio::write32(PLIC + 0x20_0000 + ctx * 0x1000, 0);
        }
    }
    Ok(why!(
        "PLIC words read (sum {sum:#x}), wild priorities, enables, thresholds, claims answered"
    ))
}

macro_rules! virtual_insn {
    ($fn:ident, $insn:literal, $what:literal) => {
        fn $fn(_: &Platform) -> Outcome {
            // SAFETY: a hypervisor instruction or CSR access from VS-mode: a virtual
            // instruction exception the hypervisor does not emulate.
            unsafe { asm!($insn, out("t0") _, in("t1") 0u64, options(nostack)) };
            not_stopped($what)
        }
    };
}

virtual_insn!(csr_hstatus, "csrr t0, hstatus", "a read of hstatus");
virtual_insn!(csr_hgatp, "csrw hgatp, t1", "a write of hgatp");
virtual_insn!(csr_vsatp, "csrr t0, vsatp", "a read of vsatp");
virtual_insn!(hfence_gvma, ".4byte 0x62000073", "hfence.gvma");
virtual_insn!(hlv, ".4byte 0x6c0342f3", "hlv.d t0, (t1)");

/// An access that must be an illegal instruction in the guest itself.
fn illegal(what: &str, f: impl FnOnce()) -> Outcome {
    match crate::attack::catch(f) {
        Some(2) => Ok(why!("{what}: illegal instruction in the guest")),
        Some(cause) => Err(why!(
            "{what}: guest exception scause {cause:#x}, expected 2 (illegal)"
        )),
        None => Err(why!("{what}: executed without an exception")),
    }
}

fn csr_mstatus(_: &Platform) -> Outcome {
    illegal("a read of mstatus", || {
        // SAFETY: a machine-mode CSR from S-mode.
        unsafe { asm!("csrr {}, mstatus", out(reg) _, options(nostack)) }
    })
}

fn csr_illegal(_: &Platform) -> Outcome {
    illegal("a read of CSR 0x5ff (none)", || {
        // SAFETY: a CSR number nothing implements.
        unsafe { asm!("csrr {}, 0x5ff", out(reg) _, options(nostack)) }
    })
}

fn csr_cycle(_: &Platform) -> Outcome {
    let (a, b): (u64, u64);
    // SAFETY: reading the cycle counter.
    unsafe { asm!("rdcycle {}", "rdcycle {}", out(reg) a, out(reg) b, options(nostack)) };
    Ok(why!("rdcycle answered ({a} then {b})"))
}

fn csr_hpmcounter(_: &Platform) -> Outcome {
    let v: u64;
    // SAFETY: reading hpmcounter3.
    unsafe { asm!("csrr {}, hpmcounter3", out(reg) v, options(nostack)) };
    Ok(why!("hpmcounter3 answered {v:#x}"))
}

fn satp_wild(_: &Platform) -> Outcome {
    // Sv39 with the root table outside the VM: the next fetch walks it.
    let satp = (8u64 << 60) | (UNMAPPED as u64 >> 12);
    // SAFETY: turning on translation with a root table where nothing is; the
    // hypervisor stops the VM at the walk.
    unsafe { asm!("csrw satp, {}", "sfence.vma", "nop", in(reg) satp, options(nostack)) };
    not_stopped("satp with its root table outside the VM")
}

fn trap_to(vector: u64) -> Outcome {
    // SAFETY: an exception with the vector where nothing executable is.
    unsafe { asm!("csrw stvec, {}", "ebreak", in(reg) vector, options(nostack)) };
    not_stopped("an exception with stvec outside RAM")
}

fn stvec_unmapped(_: &Platform) -> Outcome {
    trap_to(UNMAPPED as u64)
}

fn stvec_ram_end(platform: &Platform) -> Outcome {
    trap_to(platform.ram_end().ok_or_else(|| why!("no RAM"))?)
}

const EID_IPI: u64 = 0x0073_5049;
const EID_RFENCE: u64 = 0x5246_4E43;
const EID_HSM: u64 = 0x0048_534D;
const EID_SRST: u64 = 0x5352_5354;
const EID_DBCN: u64 = 0x4442_434E;

fn expect(what: &str, got: i64, want: &[i64]) -> Outcome {
    if want.contains(&got) {
        Ok(why!("{what}: {got}"))
    } else {
        Err(why!("{what}: returned {got}, expected one of {want:?}"))
    }
}

fn sbi_hsm_bad_entry(platform: &Platform) -> Outcome {
    let cpu = platform
        .cpus()
        .get(1)
        .copied()
        .ok_or_else(|| why!("needs 2 vCPUs"))?;
    let (e, _) = sbi(EID_HSM, 0, cpu, UNMAPPED as u64, 0);
    expect(
        "hart_start with the entry outside RAM",
        e,
        &[ERR_INVALID_ADDRESS],
    )
}

fn sbi_ipi_bad_mask(_: &Platform) -> Outcome {
    let (e, _) = sbi(EID_IPI, 0, u64::MAX, 1000, 0);
    expect("send_ipi to harts 1000..1063", e, &[ERR_INVALID_PARAM])
}

fn sbi_rfence_bad_mask(_: &Platform) -> Outcome {
    let (e, _) = sbi(EID_RFENCE, 0, u64::MAX, 1 << 40, 0);
    expect("remote_fence_i to harts from 2^40", e, &[ERR_INVALID_PARAM])
}

fn sbi_srst_bad_type(_: &Platform) -> Outcome {
    let (e, _) = sbi(EID_SRST, 0, 0x1234, 0, 0);
    expect("system_reset of type 0x1234", e, &[ERR_INVALID_PARAM])
}

fn sbi_dbcn_outside(_: &Platform) -> Outcome {
    let (e, _) = sbi(EID_DBCN, 0, 16, UNMAPPED as u64, 0);
    expect(
        "debug console write from outside RAM",
        e,
        &[ERR_INVALID_PARAM],
    )
}

/// A debug console write of 2^40 bytes from the last 8 bytes of RAM: refused, or cut
/// to what lies in RAM (at most 8 bytes, zeros the console drops).
fn sbi_dbcn_huge(platform: &Platform) -> Outcome {
    let end = platform.ram_end().ok_or_else(|| why!("no RAM"))?;
    let (e, n) = sbi(EID_DBCN, 0, 1 << 40, end - 8, 0);
    if e == ERR_INVALID_PARAM || (e == 0 && n <= 8) {
        Ok(why!(
            "debug console write of 2^40 bytes at the end of RAM: error {e}, {n} bytes written"
        ))
    } else {
        Err(why!(
            "debug console write of 2^40 bytes at the end of RAM: error {e}, {n} bytes written"
        ))
    }
}

/// Unknown functions of the known extensions and unknown extensions, with wild
/// arguments: each answered NOT_SUPPORTED.
fn sbi_sweep(_: &Platform) -> Outcome {
    let known_unknown: [(u64, core::ops::Range<u64>); 8] = [
        (0x10, 7..32),
        (0x5449_4D45, 1..8),
        (EID_IPI, 1..8),
        (EID_RFENCE, 7..16),
        (EID_HSM, 3..8),
        (EID_SRST, 1..4),
        (EID_DBCN, 3..8),
        (0x0A48_5600 + 1, 0..8),
    ];
    let unknown_eids = [
        0x0050_4D55u64,
        0x5355_5350,
        0x4350_5043,
        0x4E41_434C,
        0x0053_5441,
        0xdead_beef,
        u64::MAX,
        0x09,
        0x0A00_0000,
    ];
    let mut calls = 0;
    for (eid, fids) in known_unknown {
        for fid in fids {
            let (e, _) = sbi(eid, fid, u64::MAX, u64::MAX, u64::MAX);
            calls += 1;
            if e != ERR_NOT_SUPPORTED {
                return Err(why!(
                    "extension {eid:#x} function {fid} answered {e}, expected NOT_SUPPORTED"
                ));
            }
        }
    }
    for eid in unknown_eids {
        for fid in [0, 1, 2, 0xffff_ffff] {
            let (e, _) = sbi(eid, fid, u64::MAX, u64::MAX, u64::MAX);
            calls += 1;
            if e != ERR_NOT_SUPPORTED {
                return Err(why!(
                    "extension {eid:#x} function {fid} answered {e}, expected NOT_SUPPORTED"
                ));
            }
        }
    }
    Ok(why!(
        "{calls} calls of unknown functions answered NOT_SUPPORTED"
    ))
}

fn hv_sweep(_: &Platform) -> Outcome {
    let mut not_supported = 0;
    for fid in 0..0x100u64 {
        let (e, _) = sbi(0x0A48_5600, fid, u64::MAX, u64::MAX, u64::MAX);
        not_supported += u64::from(e == ERR_NOT_SUPPORTED);
    }
    Ok(why!(
        "256 hypercalls answered, {not_supported} of them NOT_SUPPORTED"
    ))
}

fn ipi_flood(_: &Platform) -> Outcome {
    const N: u64 = 20_000;
    let me = super::cpu_hw_id();
    for _ in 0..N {
        // IPIs to every hart of this VM from 0 (the others are off or not there).
        let (e, _) = sbi(EID_IPI, 0, 0b11, 0, 0);
        if e != 0 {
            return Err(why!("send_ipi answered {e}"));
        }
    }
    // SAFETY: clearing this hart's own pending software interrupt (interrupts masked).
    unsafe { asm!("csrc sip, {}", in(reg) 2u64, options(nomem, nostack)) };
    Ok(why!("{N} IPIs to harts 0 and 1 sent from hart {me}"))
}

/// Runs `f` on a stack whose top is `top` (for the stack overflow: low in RAM, so
/// it runs off the bottom of RAM before reaching the guest's image).
pub fn on_stack(top: usize, f: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is in the guest's RAM; `f` never returns, so nothing of the old
    // stack is needed again.
    unsafe { asm!("mv sp, {t}", "jr {f}", t = in(reg) top, f = in(reg) f, options(noreturn)) }
}

pub use crate::arch::devtree::{device_window, hammer_once};
