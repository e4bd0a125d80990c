//! The SVM world switch: VMRUN of a vCPU's VMCB with its general registers (those
//! the VMCB does not hold: all but RAX and RSP), and the per-CPU host save area
//! (VM_HSAVE_PA). Interrupts stay masked in the hypervisor (IF = 0); VMRUN runs
//! with GIF = 0 and IF = 1, so the host's IF that VMRUN keeps (V_INTR_MASKING)
//! lets a physical interrupt that arrives while the guest runs exit it (INTR
//! intercept: without it such an interrupt would wait for the guest's next exit);
//! it is taken after the exit, when the hypervisor enables interrupts.
//!
//! VMRUN switches neither the x87/SSE registers nor MXCSR: `clear_fp_state` gives
//! a vCPU's first entry a CPU with nothing of the guest that ran there before.
//!
//! First checked by hand on QEMU 7.2 (-cpu EPYC) with a throwaway boot hook: a VMCB from
//! `Vmcb::multiboot`, hand-built nested tables mapping one code page at 0x10_0000,
//! guest code `mov eax, 0x1234; mov ebx, 0x5678; mov edx, ecx; vmmcall` with RCX =
//! 0xabc in [`GuestRegs`]: exit code 0x81, VMCB RAX 0x1234, RBX 0x5678, RDX 0xabc,
//! RIP at the `vmmcall` (no NRIP save), and the hypervisor went on running. Then
//! with nested tables from the shared walker (`PageTable<Npt>` over the frame
//! allocator) and a load from an unmapped GPA: exit 0x400 (NPF), EXITINFO1
//! 0x1_0000_0004, EXITINFO2 the GPA, RIP at the load.

use super::boot::MAX_CPUS;
use super::port;

/// The guest's general registers the VMCB does not hold, in the order the world
/// switch saves them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// One host save area per stack slot (VMRUN's), and one page per slot for the host
/// state VMRUN does not keep (FS, GS, TR, LDTR, KernelGsBase, the SYSCALL MSRs:
/// VMSAVE before, VMLOAD after each run).
static mut HOST_SAVE: [Page; MAX_CPUS] = [const { Page([0; 4096]) }; MAX_CPUS];
static mut HOST_EXTRA: [Page; MAX_CPUS] = [const { Page([0; 4096]) }; MAX_CPUS];

const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

/// Points this CPU's VM_HSAVE_PA at its host save area (after EFER.SVME is set).
pub fn init_cpu(slot: usize) {
    let slot = slot.min(MAX_CPUS - 1);
    // SAFETY: only the address of slot `slot`'s page is taken; the CPU in that slot
    // alone uses it, and only the CPU writes it (at VMRUN).
    let pa = unsafe { (&raw const HOST_SAVE[slot]) as u64 };
    // SAFETY: SVM is enabled on this CPU; the page is 4 KiB aligned and reserved for
    // the CPU's host state.
    unsafe { port::wrmsr(MSR_VM_HSAVE_PA, pa) };
}

core::arch::global_asm!(
    r#"
    .text
    // hv_svm_run(vmcb_pa: rdi, regs: rsi, host_extra_pa: rdx)
    .global hv_svm_run
hv_svm_run:
    pushq   %rbx
    pushq   %rbp
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    pushq   %rdx                    // host extra state
    pushq   %rsi                    // regs
    movq    %rdx, %rax
    clgi
    // IF = 1 under GIF = 0: no interrupt is taken here, but VMRUN keeps it as the
    // host's IF (V_INTR_MASKING), which lets physical interrupts exit the guest.
    sti
    vmsave  %rax
    movq    %rdi, %rax              // VMCB
    movq    0x00(%rsi), %rbx
    movq    0x08(%rsi), %rcx
    movq    0x10(%rsi), %rdx
    movq    0x28(%rsi), %rbp
    movq    0x30(%rsi), %r8
    movq    0x38(%rsi), %r9
    movq    0x40(%rsi), %r10
    movq    0x48(%rsi), %r11
    movq    0x50(%rsi), %r12
    movq    0x58(%rsi), %r13
    movq    0x60(%rsi), %r14
    movq    0x68(%rsi), %r15
    movq    0x20(%rsi), %rdi
    movq    0x18(%rsi), %rsi
    vmload  %rax
    vmrun   %rax
    vmsave  %rax
    pushq   %rsi
    movq    8(%rsp), %rsi           // regs
    movq    %rbx, 0x00(%rsi)
    movq    %rcx, 0x08(%rsi)
    movq    %rdx, 0x10(%rsi)
    popq    %rcx
    movq    %rcx, 0x18(%rsi)
    movq    %rdi, 0x20(%rsi)
    movq    %rbp, 0x28(%rsi)
    movq    %r8, 0x30(%rsi)
    movq    %r9, 0x38(%rsi)
    movq    %r10, 0x40(%rsi)
    movq    %r11, 0x48(%rsi)
    movq    %r12, 0x50(%rsi)
    movq    %r13, 0x58(%rsi)
    movq    %r14, 0x60(%rsi)
    movq    %r15, 0x68(%rsi)
    popq    %rsi
    popq    %rax
    vmload  %rax
    cli
    stgi
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbp
    popq    %rbx
    ret
"#,
    options(att_syntax)
);

extern "C" {
    fn hv_svm_run(vmcb_pa: u64, regs: *mut GuestRegs, host_extra_pa: u64);
}

/// Runs the guest of the VMCB at `vmcb_pa` until its next exit.
///
/// `slot` is this CPU's stack slot.
///
/// # Safety
/// `vmcb_pa` must be a valid VMCB (4 KiB aligned, identity-mapped) of a vCPU of this
/// CPU, its nested tables and permission maps valid, and [`init_cpu`] done here.
pub unsafe fn run(slot: usize, vmcb_pa: u64, regs: &mut GuestRegs) {
    let slot = slot.min(MAX_CPUS - 1);
    // SAFETY: guaranteed by the caller; the world switch preserves the callee-saved
    // registers and the stack; the extra host page is this slot's.
    unsafe {
        let extra = (&raw const HOST_EXTRA[slot]) as u64;
        hv_svm_run(vmcb_pa, regs, extra)
    };
}

/// MXCSR as a CPU comes out of reset (all SSE exceptions masked).
const MXCSR_RESET: u32 = 0x1f80;

/// Puts the x87 and SSE state this CPU holds (left by whichever guest ran here
/// before: VMRUN does not switch it) back to its reset values: FNINIT, xmm0-15
/// zero, MXCSR 0x1f80. Guests cannot enable AVX (XSAVE is hidden, XSETBV
/// intercepted), so the upper halves of the ymm registers stay as the host left
/// them (never written).
pub fn clear_fp_state() {
    let mxcsr = MXCSR_RESET;
    // SAFETY: CR4.OSFXSR is set and CR0.EM clear (boot.rs), so these instructions
    // run; they touch only the x87/SSE registers, which the soft-float hypervisor
    // never uses, and read the local `mxcsr`.
    unsafe {
        core::arch::asm!(
            "fninit",
            "xorps xmm0, xmm0",
            "xorps xmm1, xmm1",
            "xorps xmm2, xmm2",
            "xorps xmm3, xmm3",
            "xorps xmm4, xmm4",
            "xorps xmm5, xmm5",
            "xorps xmm6, xmm6",
            "xorps xmm7, xmm7",
            "xorps xmm8, xmm8",
            "xorps xmm9, xmm9",
            "xorps xmm10, xmm10",
            "xorps xmm11, xmm11",
            "xorps xmm12, xmm12",
            "xorps xmm13, xmm13",
            "xorps xmm14, xmm14",
            "xorps xmm15, xmm15",
            "ldmxcsr [{m}]",
            m = in(reg) &raw const mxcsr,
            options(nostack, readonly)
        )
    };
}
