//! The interrupt descriptor table, each CPU's TSS, and what an exception or
//! interrupt in the hypervisor does: a kick is acknowledged, anything else the CPU
//! raises is a hypervisor bug (`boot::fatal_bug`), a stack overflow named as one.
//! Exceptions run on the CPU's emergency stack (IST1), so a dead stack can still
//! report.

use super::boot::{self, MAX_CPUS};
use super::descriptors::{interrupt_gate, tss_descriptor};
use super::lapic;

/// What `hv_isr_common` pushed: the registers, then the stub's vector and error
/// code, then the CPU's interrupt frame.
#[repr(C)]
pub struct Frame {
    pub gprs: [u64; 15],
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The 64-bit task-state segment: only the interrupt stack table is used.
#[repr(C, packed)]
struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap: u16,
}

static mut TSS: [Tss; MAX_CPUS] = [const {
    Tss {
        _r0: 0,
        rsp: [0; 3],
        _r1: 0,
        ist: [0; 7],
        _r2: 0,
        _r3: 0,
        iomap: core::mem::size_of::<Tss>() as u16,
    }
}; MAX_CPUS];

#[repr(C, align(16))]
struct Idt([u64; 512]);
static mut IDT: Idt = Idt([0; 512]);

extern "C" {
    /// (vector, stub address) pairs.
    static hv_isr_table: [[u64; 2]; 34];
}

fn build_idt() {
    // SAFETY: the boot CPU fills the IDT before any other CPU loads it; the stub
    // table is read-only data of the image.
    unsafe {
        let idt: *mut Idt = &raw mut IDT;
        let table: *const [[u64; 2]; 34] = &raw const hv_isr_table;
        for &[vector, addr] in (*table).iter() {
            let v = vector as usize;
            // Exceptions on IST1 (the emergency stack); interrupts on the CPU's stack.
            let ist = if vector < 32 { 1 } else { 0 };
            let [lo, hi] = interrupt_gate(addr, boot::CODE_SEL, ist);
            (*idt).0[2 * v] = lo;
            (*idt).0[2 * v + 1] = hi;
        }
    }
}

/// Loads the IDT and this CPU's TSS (slot `slot`); the boot CPU builds the IDT first.
pub fn init_cpu(slot: usize) {
    let slot = slot.min(MAX_CPUS - 1);
    if slot == 0 {
        build_idt();
    }
    // SAFETY: slot `slot`'s TSS and GDT descriptor belong to the CPU in that slot
    // alone; the IDT is complete (built by the boot CPU before others start).
    unsafe {
        let tss = &raw mut TSS[slot];
        (*tss).ist[0] = boot::emergency_top(slot);
        let [lo, hi] = tss_descriptor(tss as u64, (core::mem::size_of::<Tss>() - 1) as u32);
        let gdt = boot::gdt();
        let i = boot::tss_selector(slot) as usize / 8;
        (*gdt)[i] = lo;
        (*gdt)[i + 1] = hi;
        core::arch::asm!("ltr {0:x}", in(reg) boot::tss_selector(slot), options(nostack));
        let ptr = IdtPtr {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: (&raw const IDT) as u64,
        };
        core::arch::asm!("lidt [{0}]", in(reg) &ptr, options(nostack));
    }
}

#[repr(C, packed)]
struct IdtPtr {
    limit: u16,
    base: u64,
}

const NAMES: [&str; 22] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
];

/// Called by `hv_isr_common` for every vector the IDT has.
pub extern "C" fn trap(f: &mut Frame) {
    let vector = f.vector as u8;
    if vector == lapic::KICK_VECTOR {
        lapic::eoi();
        return;
    }
    if vector == lapic::SPURIOUS_VECTOR {
        return;
    }
    let cr2: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    let near_guard = boot::guard_slot(cr2).or(boot::guard_slot(f.rsp));
    if let (14 | 8, Some(slot)) = (vector, near_guard) {
        let cpu = (super::port::cpuid(1, 0)[1] >> 24) as u64;
        crate::boot::fatal_bug(format_args!(
            "CPU {cpu:#x}: hypervisor stack overflow (stack slot {slot} ran into its guard page \
             at {cr2:#x}, RIP {:#x})",
            f.rip
        ));
    }
    let name = NAMES.get(vector as usize).copied().unwrap_or("exception");
    crate::boot::fatal_bug(format_args!(
        "{name} (vector {vector}) in the hypervisor at RIP {:#x}, error code {:#x}, CR2 {cr2:#x}",
        f.rip, f.error
    ));
}
