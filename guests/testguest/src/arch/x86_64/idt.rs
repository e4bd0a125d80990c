//! The interrupt descriptor table: 256 gates to 16-byte stubs that push the vector
//! (and a zero where the CPU pushes no error code), save the general registers and
//! call [`tg_trap`]: interrupts go to `irq`, exceptions end the guest with a `FAIL`
//! line naming the vector, the error code, RIP and CR2.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

use crate::report;

/// What the stubs leave on the stack, lowest address first.
#[repr(C)]
pub struct Frame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[[u64; 2]; 256]>);

// SAFETY: written once by the boot vCPU before any vCPU loads it (`load` on the boot
// vCPU runs before secondaries exist); afterwards only the CPUs read it.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([[0; 2]; 256]));
static BUILT: crate::shared::Shared = crate::shared::Shared::new(0);

extern "C" {
    static tg_vectors: u8;
}

/// Code segment selector of the boot GDT.
const CODE64: u64 = 0x08;

/// Fills the IDT (first call) and loads it on this vCPU.
pub fn load() {
    if BUILT.get() == 0 {
        let stubs = &raw const tg_vectors as u64;
        // SAFETY: only the boot vCPU gets here first, before any other vCPU runs.
        let idt = unsafe { &mut *IDT.0.get() };
        for (vector, gate) in idt.iter_mut().enumerate() {
            let handler = stubs + 16 * vector as u64;
            // Interrupt gate (type 0xE), present, DPL 0.
            gate[0] =
                (handler & 0xffff) | CODE64 << 16 | 0x8e00 << 32 | ((handler >> 16) & 0xffff) << 48;
            gate[1] = handler >> 32;
        }
        BUILT.set(1);
    }
    let pointer = IdtPointer {
        limit: (256 * 16 - 1) as u16,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the table is complete and stays in place for good.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

/// Names of the exception vectors.
fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD error",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        _ => "reserved exception",
    }
}

extern "C" fn tg_trap(frame: &mut Frame) {
    if frame.vector >= 32 {
        super::irq::handle(frame.vector as u8);
        return;
    }
    if frame.vector == 2 && super::attack::on_nmi() {
        return;
    }
    if crate::attack::take_exception(frame.vector | frame.error << 8) {
        frame.rip = super::attack::take_resume(frame.rip);
        return;
    }
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    let during = report::current();
    report::fatal(format_args!(
        "FAIL: unexpected exception {} ({}) error {:#x} RIP={:#x} CR2={cr2:#x} RSP={:#x}{}{}",
        frame.vector,
        exception_name(frame.vector),
        frame.error,
        frame.rip,
        frame.rsp,
        if during.is_some() {
            ", during check "
        } else {
            ""
        },
        during.unwrap_or(""),
    ))
}

global_asm!(
    r#"
    .section .text, "ax"
    .balign 16
    .global tg_vectors
tg_vectors:
    .set tg_vector, 0
    .rept 256
    .balign 16
    .if (tg_vector == 8) || (tg_vector >= 10 && tg_vector <= 14) || (tg_vector == 17) || (tg_vector == 21) || (tg_vector == 29) || (tg_vector == 30)
    pushq   $tg_vector
    .else
    pushq   $0
    pushq   $tg_vector
    .endif
    jmp     tg_trap_common
    .set tg_vector, tg_vector + 1
    .endr

tg_trap_common:
    push    %rax
    push    %rcx
    push    %rdx
    push    %rbx
    push    %rbp
    push    %rsi
    push    %rdi
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    mov     %rsp, %rdi
    cld
    call    {trap}
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rdi
    pop     %rsi
    pop     %rbp
    pop     %rbx
    pop     %rdx
    pop     %rcx
    pop     %rax
    add     $16, %rsp
    iretq
"#,
    trap = sym tg_trap,
    options(att_syntax)
);
