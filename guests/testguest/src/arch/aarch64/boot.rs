//! Boot: the arm64 Image header and entry of the boot vCPU, the entry of secondary
//! vCPUs, and the per-vCPU stacks.
//!
//! The image starts with an arm64 Linux `Image` header (text_offset 0x8_0000), so QEMU
//! and boot loaders load it at 0x4008_0000 and enter it like Linux: at EL1 (or the
//! hypervisor's vCPU at EL1), x0 = device tree address, MMU off. Both entries put
//! SCTLR_EL1 in a known MMU-off state, mask interrupts and install the vectors. A secondary vCPU
//! started through PSCI CPU_ON enters `tg_secondary_entry` with x0 = the context id,
//! which the guest sets to the CPU's stack slot (its position in the device tree).

use core::arch::global_asm;
use core::cell::UnsafeCell;

use crate::platform::MAX_CPUS;

/// Bytes of stack per vCPU.
const STACK_SIZE: usize = 32 * 1024;

/// SCTLR_EL1 while the guest runs: only the bits that are RES1 in ARMv8.0 (11, 20, 22,
/// 23, 28, 29), so the MMU, caches and alignment checks are off and data is little
/// endian, whatever state the vCPU was handed over in.
const SCTLR_EL1_MMU_OFF: u64 = 0x30d0_0800;

/// One vCPU's stack.
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// The stacks of all vCPUs, slot `n` for the CPU at position `n` in the device tree.
/// Only the entry code below touches them (by address); they live in .bss.
#[repr(C, align(16))]
struct Stacks(UnsafeCell<[Stack; MAX_CPUS]>);

// SAFETY: Rust code never accesses the stacks through this static; each vCPU's entry
// code takes the address of its own slot and uses it as its stack pointer.
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new(
    [const { Stack([0; STACK_SIZE]) }; MAX_CPUS],
));

extern "C" {
    fn tg_secondary_entry();
}

/// Where secondary vCPUs start.
pub fn secondary_entry_address() -> u64 {
    tg_secondary_entry as *const () as u64
}

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    // arm64 Image header (Documentation/arch/arm64/booting.rst).
    b       tg_primary_entry        // code0
    .word   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size, .bss included
    .quad   0x2                     // flags: little endian, 4 KiB pages
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .byte   0x41, 0x52, 0x4d, 0x64  // magic "ARM\x64"
    .word   0                       // res5

tg_primary_entry:
    msr     daifset, #0xf
    mov     x19, x0                 // device tree address
    mov     x1, #{sctlr_lo}
    movk    x1, #{sctlr_hi}, lsl #16
    msr     sctlr_el1, x1           // MMU and caches off, little endian
    isb

    // Zero .bss (it also holds the stacks, not in use yet).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    // Stack slot 0.
    adrp    x1, {stacks}
    add     x1, x1, :lo12:{stacks}
    mov     x2, #{stack_size}
    add     sp, x1, x2

    adrp    x1, tg_vectors
    add     x1, x1, :lo12:tg_vectors
    msr     vbar_el1, x1
    isb

    mov     x0, x19
    bl      {primary_main}
3:  wfi
    b       3b

    .section .text, "ax"
    .global tg_secondary_entry
    .balign 4
tg_secondary_entry:
    msr     daifset, #0xf
    mov     x1, #{sctlr_lo}
    movk    x1, #{sctlr_hi}, lsl #16
    msr     sctlr_el1, x1
    isb
    // x0 = stack slot; slot 0 is the boot vCPU's, others must be < MAX_CPUS.
    cbz     x0, 9f
    mov     x1, #{max_cpus}
    cmp     x0, x1
    b.hs    9f

    adrp    x1, {stacks}
    add     x1, x1, :lo12:{stacks}
    add     x2, x0, #1
    mov     x3, #{stack_size}
    madd    x1, x2, x3, x1          // top of slot x0
    mov     sp, x1

    adrp    x1, tg_vectors
    add     x1, x1, :lo12:tg_vectors
    msr     vbar_el1, x1
    isb

    bl      {secondary_main}        // x0 = slot
9:  wfi
    b       9b
"#,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    max_cpus = const MAX_CPUS,
    sctlr_lo = const SCTLR_EL1_MMU_OFF & 0xffff,
    sctlr_hi = const SCTLR_EL1_MMU_OFF >> 16,
    primary_main = sym crate::guest::primary_main,
    secondary_main = sym crate::guest::secondary_main,
);
