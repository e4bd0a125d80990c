//! Exception vectors and handlers at EL1.
//!
//! Every vector saves the general registers, ELR and SPSR in a [`TrapFrame`] on the
//! current stack and calls [`tg_trap`]. IRQs go to the interrupt handler. A synchronous
//! exception is expected in two cases: an `hvc` that nothing above EL1 answers is
//! UNDEFINED (bare hardware without EL2); then the guest resumes in the firmware-call
//! stub, which reports the call as undefined. And an attack may provoke one and catch
//! it (`crate::attack::catch`). Anything else is a failure: the guest prints
//! `FAIL: unexpected exception ESR=.. ELR=.. FAR=..` and powers off.

use core::arch::{asm, global_asm};

use super::{firmware, irq};
use crate::report;

/// Bytes of a trap frame on the stack (x0-x30, ELR, SPSR, padding to 16).
const FRAME_SIZE: usize = 272;

/// The registers saved on exception entry, restored on return.
#[repr(C)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == FRAME_SIZE);

/// Exception class of an unknown (undefined) instruction.
const EC_UNKNOWN: u64 = 0x00;
/// Vector index (group * 4 + type) of a synchronous exception from EL1 using SP_EL1.
const VECTOR_SYNC_SPX: u64 = 4;
/// Vector index of an IRQ from EL1 using SP_EL1.
const VECTOR_IRQ_SPX: u64 = 5;

const VECTOR_NAMES: [&str; 16] = [
    "synchronous, EL1 with SP_EL0",
    "IRQ, EL1 with SP_EL0",
    "FIQ, EL1 with SP_EL0",
    "SError, EL1 with SP_EL0",
    "synchronous",
    "IRQ",
    "FIQ",
    "SError",
    "synchronous from EL0",
    "IRQ from EL0",
    "FIQ from EL0",
    "SError from EL0",
    "synchronous from AArch32 EL0",
    "IRQ from AArch32 EL0",
    "FIQ from AArch32 EL0",
    "SError from AArch32 EL0",
];

/// Called by the vector code with the saved registers and the vector index.
extern "C" fn tg_trap(frame: &mut TrapFrame, vector: u64) {
    match vector {
        VECTOR_IRQ_SPX => irq::handle(),
        VECTOR_SYNC_SPX => synchronous(frame),
        _ => unexpected(frame, vector),
    }
}

fn synchronous(frame: &mut TrapFrame) {
    let esr = read_esr();
    if crate::attack::take_exception(esr) {
        frame.elr += 4;
        return;
    }
    if esr >> 26 == EC_UNKNOWN && frame.elr == firmware::call_instruction_address() {
        frame.elr = firmware::call_undefined_address();
        return;
    }
    unexpected(frame, VECTOR_SYNC_SPX);
}

fn unexpected(frame: &TrapFrame, vector: u64) -> ! {
    let esr = read_esr();
    let far: u64;
    // SAFETY: reading FAR_EL1 has no side effects.
    unsafe { asm!("mrs {}, far_el1", out(reg) far, options(nomem, nostack)) };
    let kind = VECTOR_NAMES.get(vector as usize).copied().unwrap_or("?");
    let elr = frame.elr;
    match report::current() {
        Some(check) => report::fatal(format_args!(
            "FAIL: unexpected exception ESR={esr:#x} ELR={elr:#x} FAR={far:#x} ({kind}, during check {check})"
        )),
        None => report::fatal(format_args!(
            "FAIL: unexpected exception ESR={esr:#x} ELR={elr:#x} FAR={far:#x} ({kind})"
        )),
    }
}

fn read_esr() -> u64 {
    let esr: u64;
    // SAFETY: reading ESR_EL1 has no side effects.
    unsafe { asm!("mrs {}, esr_el1", out(reg) esr, options(nomem, nostack)) };
    esr
}

global_asm!(
    r#"
    .macro TG_VECTOR index
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp]
    mov     x1, #\index
    b       tg_trap_common
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global tg_vectors
tg_vectors:
    TG_VECTOR 0
    TG_VECTOR 1
    TG_VECTOR 2
    TG_VECTOR 3
    TG_VECTOR 4
    TG_VECTOR 5
    TG_VECTOR 6
    TG_VECTOR 7
    TG_VECTOR 8
    TG_VECTOR 9
    TG_VECTOR 10
    TG_VECTOR 11
    TG_VECTOR 12
    TG_VECTOR 13
    TG_VECTOR 14
    TG_VECTOR 15

tg_trap_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #248]

    mov     x0, sp
    bl      {trap}

    ldp     x2, x3, [sp, #248]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldr     x30, [sp, #240]
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp]
    add     sp, sp, #{frame_size}
    eret
"#,
    frame_size = const FRAME_SIZE,
    trap = sym tg_trap,
);
