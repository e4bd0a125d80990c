//! The trap vector and the world switch.
//!
//! `guest_enter(frame)` saves the hypervisor's callee-saved registers on its stack,
//! puts the frame's address in `sscratch`, loads the guest's registers and `sret`s
//! into VS-mode (hstatus.SPV set). Every trap lands in `hv_trap_vector`: with
//! `sscratch` non-zero it came from the guest, whose registers are stored back into
//! the frame before `guest_enter` returns to its caller; with `sscratch` zero it came
//! from the hypervisor itself (HS-mode), which is expected in one case only: a probe
//! or guest-memory access stub listed in `FIXUPS` faulted, and resumes after the
//! faulting instruction with a1 = 1. Anything else is a hypervisor bug: reported
//! through `boot::fatal_bug`, which ends the machine.
//!
//! A trap in HS-mode first checks, before it stores anything on the stack, that
//! `sp` is above the hart's stack limit (`boot::HartLocal::stack_limit`, through
//! `tp`): a stack that overflowed into its gap traps with `sp` in or near the gap,
//! and is reported on the hart's own emergency stack instead (`HartLocal::
//! emergency_top`; a second overflow while reporting stops the hart).

use super::csr::{read_csr, SCAUSE, STVAL};

/// Guest state saved on every exit. Layout is used by the assembly.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct Frame {
    /// x0..x31 (x[0] unused).
    pub x: [u64; 32],
    pub sepc: u64,
    pub sstatus: u64,
    pub hstatus: u64,
    /// The hypervisor's stack pointer while the guest runs.
    pub host_sp: u64,
}

/// Registers saved on a trap taken in HS-mode. Layout is used by the assembly.
#[repr(C)]
struct HypFrame {
    /// x0..x31 (x[0] unused; x[2] = sp before the trap).
    x: [u64; 32],
    sepc: u64,
}

core::arch::global_asm!(
    r#"
    .section .text
    .balign 4
    .global hv_trap_vector
hv_trap_vector:
    csrrw   t6, sscratch, t6
    beqz    t6, .Lhyp_trap
    sd      x1, 8(t6)
    sd      x2, 16(t6)
    sd      x3, 24(t6)
    sd      x4, 32(t6)
    sd      x5, 40(t6)
    sd      x6, 48(t6)
    sd      x7, 56(t6)
    sd      x8, 64(t6)
    sd      x9, 72(t6)
    sd      x10, 80(t6)
    sd      x11, 88(t6)
    sd      x12, 96(t6)
    sd      x13, 104(t6)
    sd      x14, 112(t6)
    sd      x15, 120(t6)
    sd      x16, 128(t6)
    sd      x17, 136(t6)
    sd      x18, 144(t6)
    sd      x19, 152(t6)
    sd      x20, 160(t6)
    sd      x21, 168(t6)
    sd      x22, 176(t6)
    sd      x23, 184(t6)
    sd      x24, 192(t6)
    sd      x25, 200(t6)
    sd      x26, 208(t6)
    sd      x27, 216(t6)
    sd      x28, 224(t6)
    sd      x29, 232(t6)
    sd      x30, 240(t6)
    csrr    t5, sscratch
    sd      t5, 248(t6)
    csrw    sscratch, zero
    csrr    t5, sepc
    sd      t5, 256(t6)
    csrr    t5, sstatus
    sd      t5, 264(t6)
    csrr    t5, hstatus
    sd      t5, 272(t6)
    ld      sp, 280(t6)
    ld      ra, 0(sp)
    ld      gp, 8(sp)
    ld      tp, 16(sp)
    ld      s0, 24(sp)
    ld      s1, 32(sp)
    ld      s2, 40(sp)
    ld      s3, 48(sp)
    ld      s4, 56(sp)
    ld      s5, 64(sp)
    ld      s6, 72(sp)
    ld      s7, 80(sp)
    ld      s8, 88(sp)
    ld      s9, 96(sp)
    ld      s10, 104(sp)
    ld      s11, 112(sp)
    addi    sp, sp, 128
    ret

.Lhyp_trap:
    // t6 = 0 and sscratch = the trapped t6 here. Room on the stack for the frame?
    // (tp = 0 before the hart has its HartLocal: nothing to check against.)
    beqz    tp, 1f
    ld      t6, 0(tp)
    bltu    sp, t6, .Lhyp_overflow
    // The trapped t6 back, and sscratch zero again (a later trap here is the
    // hypervisor's too: a fixup's stub may trap again).
1:  csrrw   t6, sscratch, zero
    addi    sp, sp, -272
    sd      x1, 8(sp)
    sd      x3, 24(sp)
    sd      x4, 32(sp)
    sd      x5, 40(sp)
    sd      x6, 48(sp)
    sd      x7, 56(sp)
    sd      x8, 64(sp)
    sd      x9, 72(sp)
    sd      x10, 80(sp)
    sd      x11, 88(sp)
    sd      x12, 96(sp)
    sd      x13, 104(sp)
    sd      x14, 112(sp)
    sd      x15, 120(sp)
    sd      x16, 128(sp)
    sd      x17, 136(sp)
    sd      x18, 144(sp)
    sd      x19, 152(sp)
    sd      x20, 160(sp)
    sd      x21, 168(sp)
    sd      x22, 176(sp)
    sd      x23, 184(sp)
    sd      x24, 192(sp)
    sd      x25, 200(sp)
    sd      x26, 208(sp)
    sd      x27, 216(sp)
    sd      x28, 224(sp)
    sd      x29, 232(sp)
    sd      x30, 240(sp)
    sd      x31, 248(sp)
    addi    t0, sp, 272
    sd      t0, 16(sp)
    csrr    t0, sepc
    sd      t0, 256(sp)
    mv      a0, sp
    call    {hyp_trap}
    ld      t0, 256(sp)
    csrw    sepc, t0
    ld      x1, 8(sp)
    ld      x3, 24(sp)
    ld      x4, 32(sp)
    ld      x5, 40(sp)
    ld      x6, 48(sp)
    ld      x7, 56(sp)
    ld      x8, 64(sp)
    ld      x9, 72(sp)
    ld      x10, 80(sp)
    ld      x11, 88(sp)
    ld      x12, 96(sp)
    ld      x13, 104(sp)
    ld      x14, 112(sp)
    ld      x15, 120(sp)
    ld      x16, 128(sp)
    ld      x17, 136(sp)
    ld      x18, 144(sp)
    ld      x19, 152(sp)
    ld      x20, 160(sp)
    ld      x21, 168(sp)
    ld      x22, 176(sp)
    ld      x23, 184(sp)
    ld      x24, 192(sp)
    ld      x25, 200(sp)
    ld      x26, 208(sp)
    ld      x27, 216(sp)
    ld      x28, 224(sp)
    ld      x29, 232(sp)
    ld      x30, 240(sp)
    ld      x31, 248(sp)
    addi    sp, sp, 272
    sret

    // No room on the stack (an overflow into the gap): report on this hart's
    // emergency stack (tp = its HartLocal). a0..a3 and t6 are lost, as is the machine.
.Lhyp_overflow:
    csrw    sscratch, zero
    mv      a0, sp
    ld      t6, 16(tp)
    bnez    t6, 2f
    li      t6, 1
    sd      t6, 16(tp)
    ld      sp, 8(tp)
    csrr    a1, scause
    csrr    a2, sepc
    csrr    a3, stval
    call    {hyp_overflow}
2:  wfi
    j       2b

    // a0 = &mut Frame. Returns when the guest traps.
    .global hv_guest_enter
hv_guest_enter:
    addi    sp, sp, -128
    sd      ra, 0(sp)
    sd      gp, 8(sp)
    sd      tp, 16(sp)
    sd      s0, 24(sp)
    sd      s1, 32(sp)
    sd      s2, 40(sp)
    sd      s3, 48(sp)
    sd      s4, 56(sp)
    sd      s5, 64(sp)
    sd      s6, 72(sp)
    sd      s7, 80(sp)
    sd      s8, 88(sp)
    sd      s9, 96(sp)
    sd      s10, 104(sp)
    sd      s11, 112(sp)
    sd      sp, 280(a0)
    ld      t0, 256(a0)
    csrw    sepc, t0
    ld      t0, 264(a0)
    csrw    sstatus, t0
    ld      t0, 272(a0)
    csrw    hstatus, t0
    csrw    sscratch, a0
    ld      x1, 8(a0)
    ld      x2, 16(a0)
    ld      x3, 24(a0)
    ld      x4, 32(a0)
    ld      x5, 40(a0)
    ld      x6, 48(a0)
    ld      x7, 56(a0)
    ld      x8, 64(a0)
    ld      x9, 72(a0)
    ld      x11, 88(a0)
    ld      x12, 96(a0)
    ld      x13, 104(a0)
    ld      x14, 112(a0)
    ld      x15, 120(a0)
    ld      x16, 128(a0)
    ld      x17, 136(a0)
    ld      x18, 144(a0)
    ld      x19, 152(a0)
    ld      x20, 160(a0)
    ld      x21, 168(a0)
    ld      x22, 176(a0)
    ld      x23, 184(a0)
    ld      x24, 192(a0)
    ld      x25, 200(a0)
    ld      x26, 208(a0)
    ld      x27, 216(a0)
    ld      x28, 224(a0)
    ld      x29, 232(a0)
    ld      x30, 240(a0)
    ld      x31, 248(a0)
    ld      x10, 80(a0)
    sret

    // Stubs that may fault; a1 = 0 on success, 1 when the marked instruction trapped.
    .option push
    .option arch, +h
    .option norvc
    .global hv_read_hstatus
hv_read_hstatus:
    li      a1, 0
.Lfix_hstatus:
    csrr    a0, hstatus
    ret
    // a0 = guest virtual address: the halfword there, read as the guest executes it.
    .global hv_guest_fetch16
hv_guest_fetch16:
    li      a1, 0
.Lfix_fetch:
    hlvx.hu a0, (a0)
    ret
    // a0 = guest address: the byte there, read with the guest's translation.
    .global hv_guest_read8
hv_guest_read8:
    li      a1, 0
.Lfix_read8:
    hlv.bu  a0, (a0)
    ret
    // a0 = value for henvcfg; returns what reads back.
    .global hv_try_henvcfg
hv_try_henvcfg:
    li      a1, 0
.Lfix_henvcfg:
    csrw    henvcfg, a0
.Lfix_henvcfg2:
    csrr    a0, henvcfg
    ret
    // a0 = value for senvcfg (0x10a: no `.option` names it on every assembler).
    .global hv_try_senvcfg
hv_try_senvcfg:
    li      a1, 0
.Lfix_senvcfg:
    csrw    0x10a, a0
    ret
    .option pop

    .section .rodata
    .balign 8
    .global hv_fixups
hv_fixups:
    .dword  .Lfix_hstatus
    .dword  .Lfix_fetch
    .dword  .Lfix_read8
    .dword  .Lfix_henvcfg
    .dword  .Lfix_henvcfg2
    .dword  .Lfix_senvcfg
"#,
    hyp_trap = sym hyp_trap,
    hyp_overflow = sym hyp_overflow,
);

extern "C" {
    static hv_trap_vector: u8;
    static hv_fixups: [u64; 6];
    fn hv_guest_enter(frame: *mut Frame);
    fn hv_read_hstatus() -> Probe;
    fn hv_guest_fetch16(addr: u64) -> Probe;
    fn hv_guest_read8(addr: u64) -> Probe;
    fn hv_try_henvcfg(value: u64) -> Probe;
    fn hv_try_senvcfg(value: u64) -> Probe;
}

/// a0/a1 of a stub: the value and whether the instruction trapped.
#[repr(C)]
struct Probe {
    value: u64,
    trapped: u64,
}

impl Probe {
    fn ok(self) -> Option<u64> {
        (self.trapped == 0).then_some(self.value)
    }
}

/// The address of the trap vector (for stvec).
pub fn vector() -> u64 {
    // SAFETY: only the address of the vector is taken.
    unsafe { &hv_trap_vector as *const u8 as u64 }
}

/// Runs the guest until its next trap.
pub fn guest_enter(frame: &mut Frame) {
    // SAFETY: `frame` is a valid, exclusively borrowed Frame for the whole call; the
    // assembly saves and restores every callee-saved register, gp, tp and sp, and the
    // guest runs in VS-mode behind the G-stage translation set up by the caller.
    unsafe { hv_guest_enter(frame) };
}

/// hstatus, or None when reading it traps (no H extension).
pub fn probe_hstatus() -> Option<u64> {
    // SAFETY: the stub only reads hstatus; a trap resumes it through the fixup table.
    unsafe { hv_read_hstatus() }.ok()
}

/// Writes henvcfg and returns what reads back (None if it traps).
pub fn try_henvcfg(value: u64) -> Option<u64> {
    // SAFETY: as for `probe_hstatus`; henvcfg only affects VS-mode.
    unsafe { hv_try_henvcfg(value) }.ok()
}

/// Writes senvcfg, which VS-mode reaches directly (there is no VS copy); false if
/// the hart has none (priv. spec before 1.12: the write traps).
pub fn try_senvcfg(value: u64) -> bool {
    // SAFETY: as for `probe_hstatus`; senvcfg only affects how U-mode's fences and
    // cache-block instructions behave, and the hypervisor has no U-mode.
    unsafe { hv_try_senvcfg(value) }.ok().is_some()
}

/// The halfword at guest virtual address `addr`, fetched as the guest would execute
/// it (two-stage translation, execute permission). None if that faults.
pub fn guest_fetch16(addr: u64) -> Option<u16> {
    // SAFETY: HLVX reads guest memory through the guest's own translations; a fault
    // resumes the stub through the fixup table.
    unsafe { hv_guest_fetch16(addr) }.ok().map(|v| v as u16)
}

/// The byte at guest address `addr` (through vsatp and hgatp). None if that faults.
pub fn guest_read8(addr: u64) -> Option<u8> {
    // SAFETY: as for `guest_fetch16`.
    unsafe { hv_guest_read8(addr) }.ok().map(|v| v as u8)
}

extern "C" fn hyp_trap(frame: &mut HypFrame) {
    // SAFETY: the fixup table is constant data defined in the assembly above.
    let fixups = unsafe { &hv_fixups };
    if fixups.contains(&frame.sepc) {
        frame.sepc += 4;
        frame.x[11] = 1;
        return;
    }
    let (cause, tval) = (read_csr!(SCAUSE), read_csr!(STVAL));
    report(cause, frame.sepc, tval, frame.x[2], frame.x[1])
}

/// A trap in HS-mode with `sp` below the hart's stack limit, on the emergency stack.
extern "C" fn hyp_overflow(sp: u64, cause: u64, sepc: u64, tval: u64) -> ! {
    report(cause, sepc, tval, sp, 0)
}

/// Load and store page faults (scause 13, 15): what a guard page gives.
const LOAD_PAGE_FAULT: u64 = 13;
const STORE_PAGE_FAULT: u64 = 15;

/// A trap in HS-mode that no fixup expects: a hypervisor bug or a stack overflow.
/// Said naming the hart; the machine ends with a failure.
fn report(cause: u64, sepc: u64, tval: u64, sp: u64, ra: u64) -> ! {
    let hart = super::boot::hartid_if_known();
    let page_fault = matches!(cause, LOAD_PAGE_FAULT | STORE_PAGE_FAULT);
    match super::boot::guard_slot(tval).filter(|_| page_fault) {
        Some(slot) => crate::boot::fatal_bug(format_args!(
            "hart {hart:#x}: hypervisor stack overflow (stack slot {slot} ran into its guard page at {tval:#x}, PC {sepc:#x}, sp {sp:#x})"
        )),
        None => crate::boot::fatal_bug(format_args!(
            "hart {hart:#x}: trap in HS-mode: scause {cause:#x} sepc {sepc:#x} stval {tval:#x} sp {sp:#x} ra {ra:#x}"
        )),
    }
}
