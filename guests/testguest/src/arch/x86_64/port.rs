//! Port I/O (`in`/`out`) and the few instructions that read CPU state: CPUID and
//! model-specific registers.

use core::arch::asm;

/// Reads the byte at I/O port `port`.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a port read; the ports the guest reads (COM1, the ACPI PM timer) have no
    // side effects on memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes the byte `value` to I/O port `port`.
pub fn outb(port: u16, value: u8) {
    // SAFETY: a port write to a device of the VM (COM1, reset ports); no memory changes.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes the 16-bit `value` to I/O port `port`.
pub fn outw(port: u16, value: u16) {
    // SAFETY: as in `outb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes the 32-bit `value` to I/O port `port`.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as in `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads the 32-bit value at I/O port `port`.
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as in `inb`.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// CPUID `leaf`.`sub`: EAX, EBX, ECX, EDX.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u64, u32, u32);
    // SAFETY: CPUID only reads CPU state; RBX (reserved by the compiler) is swapped
    // out and back.
    unsafe {
        asm!("xchg {b}, rbx", "cpuid", "xchg {b}, rbx",
            b = out(reg) b, inout("eax") leaf => a, inout("ecx") sub => c, out("edx") d,
            options(nomem, nostack, preserves_flags))
    };
    [a, b as u32, c, d]
}

/// Reads the model-specific register `msr`.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the guest reads only architectural MSRs every x86_64 CPU has (a missing
    // one raises #GP, which the exception handler reports).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading the TSC has no side effects.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(hi) << 32 | u64::from(lo)
}
