//! Exception vectors and the world switch.
//!
//! `guest_enter(frame)` saves the hypervisor's callee-saved registers on its stack,
//! loads the guest's registers from `frame` and `eret`s. Any exception from the
//! guest lands in the lower-EL vectors, which store the guest's registers back into
//! the frame (found through TPIDR_EL2), restore the hypervisor's registers and return
//! from `guest_enter` with the kind of exit. Exceptions taken at EL2 itself are
//! hypervisor bugs: they are reported and the CPU stops.

/// Guest general-purpose state saved on every exit. Layout is used by the assembly.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
}

/// Why `guest_enter` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Sync,
    Irq,
    Fiq,
    SError,
    /// An exception from AArch32 state, which guests cannot use here.
    Aarch32,
}

use crate::arch::stacks::{EMERGENCY_SHIFT, EMERGENCY_STACKS, MAX_CPUS, SLOT_SHIFT};

/// Per stack slot: non-zero once its CPU took the slot's emergency stack (a fault
/// while reporting one then stops that CPU instead of starting over).
#[no_mangle]
static mut HV_EMERGENCY_TAKEN: [u8; MAX_CPUS] = [0; MAX_CPUS];

core::arch::global_asm!(
    r#"
    .section .text
    .balign 2048
    .global hv_vectors
hv_vectors:
    // current EL with SP0
    .balign 0x80
    mov x0, #0
    b .Lhyp_fault
    .balign 0x80
    mov x0, #1
    b .Lhyp_fault
    .balign 0x80
    mov x0, #2
    b .Lhyp_fault
    .balign 0x80
    mov x0, #3
    b .Lhyp_fault
    // current EL with SPx
    .balign 0x80
    mov x0, #0
    b .Lhyp_fault
    .balign 0x80
    mov x0, #1
    b .Lhyp_fault
    .balign 0x80
    mov x0, #2
    b .Lhyp_fault
    .balign 0x80
    mov x0, #3
    b .Lhyp_fault
    // lower EL, AArch64
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #0
    b .Lguest_exit
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #1
    b .Lguest_exit
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #2
    b .Lguest_exit
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #3
    b .Lguest_exit
    // lower EL, AArch32
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #4
    b .Lguest_exit
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #4
    b .Lguest_exit
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #4
    b .Lguest_exit
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #4
    b .Lguest_exit

.Lhyp_fault:
    // The stack may be what faulted (an overflow into its gap): the report runs on
    // the emergency stack of the slot that holds sp (at a first fault, the CPU's own
    // slot, gap included: see arch::stacks). No slot holds sp (a fault on the
    // emergency stack itself), or the slot's emergency stack is taken already (a
    // second fault while reporting): this CPU stops here.
    mov x9, sp
    adrp x10, BOOT_STACKS
    add x10, x10, :lo12:BOOT_STACKS
    subs x9, x9, x10
    b.lo 2f
    lsr x9, x9, #{slot_shift}
    cmp x9, #{max_cpus}
    b.hs 2f
    adrp x10, HV_EMERGENCY_TAKEN
    add x10, x10, :lo12:HV_EMERGENCY_TAKEN
    ldrb w11, [x10, x9]
    cbnz w11, 2f
    mov w11, #1
    strb w11, [x10, x9]
    // sp = EMERGENCY_STACKS + (slot + 1) << EMERGENCY_SHIFT
    add x9, x9, #1
    adrp x10, {emergency}
    add x10, x10, :lo12:{emergency}
    add x10, x10, x9, lsl #{emergency_shift}
    mov sp, x10
    mrs x1, esr_el2
    mrs x2, elr_el2
    mrs x3, far_el2
    bl {hyp_fault}
2:  wfe
    b 2b

    // x0 = exit kind, guest x0/x1 on the stack, host callee-saved below them.
.Lguest_exit:
    mrs x1, tpidr_el2
    stp x2, x3, [x1, #16]
    stp x4, x5, [x1, #32]
    stp x6, x7, [x1, #48]
    stp x8, x9, [x1, #64]
    stp x10, x11, [x1, #80]
    stp x12, x13, [x1, #96]
    stp x14, x15, [x1, #112]
    stp x16, x17, [x1, #128]
    stp x18, x19, [x1, #144]
    stp x20, x21, [x1, #160]
    stp x22, x23, [x1, #176]
    stp x24, x25, [x1, #192]
    stp x26, x27, [x1, #208]
    stp x28, x29, [x1, #224]
    str x30, [x1, #240]
    mrs x2, elr_el2
    mrs x3, spsr_el2
    stp x2, x3, [x1, #248]
    ldp x2, x3, [sp], #16
    stp x2, x3, [x1, #0]
    ldp x19, x20, [sp], #16
    ldp x21, x22, [sp], #16
    ldp x23, x24, [sp], #16
    ldp x25, x26, [sp], #16
    ldp x27, x28, [sp], #16
    ldp x29, x30, [sp], #16
    ret

    // x0 = &mut Frame; returns the exit kind.
    .global hv_guest_enter
hv_guest_enter:
    stp x29, x30, [sp, #-16]!
    stp x27, x28, [sp, #-16]!
    stp x25, x26, [sp, #-16]!
    stp x23, x24, [sp, #-16]!
    stp x21, x22, [sp, #-16]!
    stp x19, x20, [sp, #-16]!
    msr tpidr_el2, x0
    ldp x2, x3, [x0, #248]
    msr elr_el2, x2
    msr spsr_el2, x3
    ldp x2, x3, [x0, #16]
    ldp x4, x5, [x0, #32]
    ldp x6, x7, [x0, #48]
    ldp x8, x9, [x0, #64]
    ldp x10, x11, [x0, #80]
    ldp x12, x13, [x0, #96]
    ldp x14, x15, [x0, #112]
    ldp x16, x17, [x0, #128]
    ldp x18, x19, [x0, #144]
    ldp x20, x21, [x0, #160]
    ldp x22, x23, [x0, #176]
    ldp x24, x25, [x0, #192]
    ldp x26, x27, [x0, #208]
    ldp x28, x29, [x0, #224]
    ldr x30, [x0, #240]
    ldp x0, x1, [x0, #0]
    eret
"#,
    hyp_fault = sym hyp_fault,
    emergency = sym EMERGENCY_STACKS,
    emergency_shift = const EMERGENCY_SHIFT,
    slot_shift = const SLOT_SHIFT,
    max_cpus = const MAX_CPUS,
);

extern "C" {
    static hv_vectors: u8;
    fn hv_guest_enter(frame: *mut Frame) -> u64;
}

/// Installs the exception vectors on this CPU.
pub fn install_vectors() {
    // SAFETY: only the address of the vector table is taken.
    let base = unsafe { &hv_vectors as *const u8 as u64 };
    super::regs::write_sysreg!(vbar_el2, base);
    super::regs::isb();
}

/// Runs the guest until its next exception.
pub fn guest_enter(frame: &mut Frame) -> ExitKind {
    // SAFETY: `frame` is a valid, exclusively borrowed Frame for the whole call; the
    // assembly saves and restores every callee-saved register and the stack pointer,
    // and the guest runs in its own stage-2 address space set up by the caller.
    let kind = unsafe { hv_guest_enter(frame) };
    match kind {
        0 => ExitKind::Sync,
        1 => ExitKind::Irq,
        2 => ExitKind::Fiq,
        3 => ExitKind::SError,
        _ => ExitKind::Aarch32,
    }
}

/// A synchronous exception (`kind` 0), IRQ, FIQ or SError taken at EL2: a bug or a
/// stack overflow. Reported, naming the CPU, and the machine ends with a failure.
extern "C" fn hyp_fault(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    let cpu = super::regs::mpidr() & 0xff_00ff_ffff;
    let data_abort_here = kind == 0 && (esr >> 26) == 0x25;
    match super::boot::guard_slot(far).filter(|_| data_abort_here) {
        Some(slot) => crate::boot::fatal_bug(format_args!(
            "CPU {cpu:#x}: hypervisor stack overflow (stack slot {slot} ran into its guard page at {far:#x}, PC {elr:#x})"
        )),
        None => crate::boot::fatal_bug(format_args!(
            "CPU {cpu:#x}: exception at EL2 (kind {kind}) ESR {esr:#x} ELR {elr:#x} FAR {far:#x}"
        )),
    }
}
