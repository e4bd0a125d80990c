//! I/O port instructions, CPUID, MSRs and the time-stamp counter.

use core::arch::asm;

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: an `in` has no memory effect; which devices the hypervisor touches is
    // its callers' choice (the console, the PM timer, the power registers).
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

pub fn outb(port: u16, v: u8) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

pub fn outw(port: u16, v: u16) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}

pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}

/// CPUID leaf `leaf`, sub-leaf `sub`: EAX, EBX, ECX, EDX.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: callers read MSRs that exist on the CPUs the hypervisor accepts.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// # Safety
/// Writing an MSR changes how the CPU runs: the caller knows what `msr` does.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    };
}

pub fn rdtsc() -> u64 {
    // SAFETY: reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Waits for an interrupt with interrupts enabled, then masks them again.
pub fn wait_interrupt() {
    // SAFETY: `sti; hlt` enables interrupts only for the wait (sti's one-instruction
    // shadow makes the pair atomic); the handlers that can run are the IDT's.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Lets a pending interrupt in (one instruction with interrupts enabled), then
/// masks them again.
pub fn take_interrupts() {
    // SAFETY: interrupts are enabled for one `nop`; the handlers that can run are
    // the IDT's.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts masked this CPU stays here.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
