//! The trap vector and handler in S-mode.
//!
//! The vector saves the general registers, sepc and sstatus in a [`TrapFrame`] on the
//! current stack and calls [`tg_trap`]. Interrupts go to the interrupt handler. No
//! exception is expected (every `ecall` is answered) except one an attack provokes and
//! catches (`crate::attack::catch`), so any other exception is a failure:
//! the guest prints `FAIL: unexpected exception scause=.. sepc=.. stval=..` and
//! powers off.

use core::arch::{asm, global_asm};

use super::irq;
use crate::report;

/// Bytes of a trap frame on the stack (x0-x31, sepc, sstatus).
const FRAME_SIZE: usize = 272;

/// The registers saved on trap entry, restored on return.
#[repr(C)]
pub struct TrapFrame {
    pub x: [u64; 32],
    pub sepc: u64,
    pub sstatus: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == FRAME_SIZE);

const INTERRUPT: u64 = 1 << 63;

/// Called by the vector code with the saved registers and scause.
extern "C" fn tg_trap(frame: &mut TrapFrame, scause: u64) {
    if scause & INTERRUPT != 0 {
        irq::handle(scause & !INTERRUPT);
        return;
    }
    if crate::attack::take_exception(scause) {
        // SAFETY: the faulting instruction is in the guest's own image.
        let low = unsafe { core::ptr::read_volatile(frame.sepc as *const u16) };
        frame.sepc += if low & 3 == 3 { 4 } else { 2 };
        return;
    }
    let stval: u64;
    // SAFETY: reading stval has no side effects.
    unsafe { asm!("csrr {}, stval", out(reg) stval, options(nomem, nostack)) };
    let sepc = frame.sepc;
    match report::current() {
        Some(check) => report::fatal(format_args!(
            "FAIL: unexpected exception scause={scause:#x} sepc={sepc:#x} stval={stval:#x} (during check {check})"
        )),
        None => report::fatal(format_args!(
            "FAIL: unexpected exception scause={scause:#x} sepc={sepc:#x} stval={stval:#x}"
        )),
    }
}

global_asm!(
    r#"
    .section .text, "ax"
    .balign 4
    .global tg_trap_vector
tg_trap_vector:
    addi    sp, sp, -{frame_size}
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
    addi    t0, sp, {frame_size}
    sd      t0, 16(sp)
    csrr    t0, sepc
    sd      t0, 256(sp)
    csrr    t0, sstatus
    sd      t0, 264(sp)
    mv      a0, sp
    csrr    a1, scause
    call    {trap}
    ld      t0, 256(sp)
    csrw    sepc, t0
    ld      t0, 264(sp)
    csrw    sstatus, t0
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
    addi    sp, sp, {frame_size}
    sret
"#,
    frame_size = const FRAME_SIZE,
    trap = sym tg_trap,
);
