//! Boot entry. The image starts with an arm64 Linux `Image` header, so QEMU `-kernel`
//! and U-Boot `booti` start it like Linux: at EL2, MMU off, x0 = DTB address.
//! The boot CPU zeroes .bss and takes stack slot 0; secondary CPUs are started by the
//! boot CPU through PSCI CPU_ON at `secondary_entry` with x0 = their stack slot.
//!
//! Each stack slot starts with a gap that the EL2 map leaves unmapped
//! (`mmu::build`, `arch::stacks` for its size): a stack that overflows faults there
//! instead of running into the next CPU's stack, and the fault is reported on the
//! slot's own emergency stack (`trap.rs`).

pub use crate::arch::stacks::MAX_CPUS;
use crate::arch::stacks::{self, Stacks, SLOT_SHIFT, SLOT_SIZE};

#[no_mangle]
pub static mut BOOT_STACKS: Stacks = Stacks([[0; SLOT_SIZE]; MAX_CPUS]);

/// The gap of each stack slot (physical = virtual at EL2).
pub fn guard_pages() -> [u64; MAX_CPUS] {
    stacks::guard_pages(core::ptr::addr_of!(BOOT_STACKS) as u64)
}

/// The stack slot whose gap holds `addr`, if one does.
pub fn guard_slot(addr: u64) -> Option<usize> {
    stacks::guard_slot(core::ptr::addr_of!(BOOT_STACKS) as u64, addr)
}

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    // arm64 Image header (Documentation/arch/arm64/booting.rst).
    b       1f                      // code0
    .word   0                       // code1
    .quad   __text_offset           // text_offset: load offset from 2 MiB-aligned RAM base
    .quad   __image_size            // image_size, .bss included
    .quad   0x2                     // flags: little-endian, 4 KiB pages, anywhere near RAM base
    .quad   0, 0, 0                 // reserved
    .ascii  "ARM\x64"               // magic
    .word   0                       // no PE/COFF header
1:
    mrs     x9, CurrentEL
    cmp     x9, #8
    b.ne    .Lnot_el2
    mov     x19, x0                 // DTB
    // zero .bss (the stacks live there, so before any call)
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
2:  cmp     x9, x10
    b.hs    3f
    str     xzr, [x9], #8
    b       2b
3:  mov     x0, #0
    bl      .Lset_stack
    mov     x0, x19
    bl      {primary}
    b       .Lhang

    .global secondary_entry
secondary_entry:
    mov     x19, x0                 // stack slot
    bl      .Lset_stack
    mov     x0, x19
    bl      {secondary}
    b       .Lhang

// sp = BOOT_STACKS + (x0 + 1) * SLOT_SIZE; clobbers x9..x10
.Lset_stack:
    adrp    x9, BOOT_STACKS
    add     x9, x9, :lo12:BOOT_STACKS
    add     x10, x0, #1
    add     x9, x9, x10, lsl #{slot_shift}
    mov     sp, x9
    ret

.Lnot_el2:
    // Not entered at EL2: nothing this hypervisor can do. Park the CPU.
.Lhang:
    wfe
    b       .Lhang
"#,
    primary = sym primary_entry,
    secondary = sym secondary_entry_rust,
    slot_shift = const SLOT_SHIFT,
);

extern "C" {
    /// Entry point for secondary CPUs (address handed to PSCI CPU_ON).
    pub fn secondary_entry();
}

extern "C" fn primary_entry(dtb: u64) -> ! {
    crate::boot::primary_main(dtb)
}

extern "C" fn secondary_entry_rust(slot: u64) -> ! {
    crate::boot::secondary_main(slot as usize)
}
