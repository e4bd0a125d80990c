//! Boot: the entry of the boot hart, the entry of secondary harts, and the per-hart
//! stacks.
//!
//! The image is linked at 0x8020_0000 and entered like Linux on RISC-V: in S-mode,
//! satp = 0, a0 = hart id, a1 = device tree address. Secondary harts started through
//! SBI HSM enter `tg_secondary_entry` with a0 = hart id and a1 = the opaque value,
//! which the guest sets to the hart's stack slot (its position in the device tree).
//! Both entries keep the hart id in `tp`, mask interrupts, turn the FPU on (the
//! compiler may use FP registers) and install the trap vector.

use core::arch::global_asm;
use core::cell::UnsafeCell;

use crate::platform::MAX_CPUS;
use crate::shared::Shared;

/// Bytes of stack per hart (a power of two: slot addresses are computed by shifting).
const STACK_SHIFT: usize = 15;
const STACK_SIZE: usize = 1 << STACK_SHIFT;
/// sstatus.FS = Initial.
const SSTATUS_FS_INITIAL: usize = 1 << 13;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// The stacks of all harts, slot `n` for the hart at position `n` in the device tree.
#[repr(C, align(16))]
struct Stacks(UnsafeCell<[Stack; MAX_CPUS]>);

// SAFETY: Rust code never accesses the stacks through this static; each hart's entry
// code takes the address of its own slot and uses it as its stack pointer.
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new(
    [const { Stack([0; STACK_SIZE]) }; MAX_CPUS],
));

/// The device tree address the boot hart was given.
static DTB: Shared = Shared::new(0);

extern "C" {
    fn tg_secondary_entry();
}

/// Where secondary harts start.
pub fn secondary_entry_address() -> u64 {
    tg_secondary_entry as *const () as u64
}

/// The device tree the guest was booted with.
pub fn dtb_address() -> usize {
    DTB.get() as usize
}

extern "C" fn primary_entry(_hartid: usize, dtb: usize) -> ! {
    DTB.set(dtb as u64);
    crate::guest::primary_main(dtb)
}

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    csrci   sstatus, 2
    csrw    sie, zero
    mv      tp, a0                  // hart id
    mv      s1, a1                  // device tree address
    li      t0, {fs}
    csrs    sstatus, t0
    la      t0, tg_trap_vector
    csrw    stvec, t0

    // Zero .bss (it also holds the stacks, not in use yet).
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:
    // Stack slot 0.
    la      sp, {stacks}
    li      t0, {stack_size}
    add     sp, sp, t0

    mv      a0, tp
    mv      a1, s1
    call    {primary}
3:  wfi
    j       3b

    .section .text, "ax"
    .global tg_secondary_entry
    .balign 4
tg_secondary_entry:
    csrci   sstatus, 2
    csrw    sie, zero
    mv      tp, a0
    li      t0, {fs}
    csrs    sstatus, t0
    la      t0, tg_trap_vector
    csrw    stvec, t0
    // a1 = stack slot; slot 0 is the boot hart's, others must be < MAX_CPUS.
    beqz    a1, 9f
    li      t0, {max_cpus}
    bgeu    a1, t0, 9f
    addi    t0, a1, 1
    slli    t0, t0, {stack_shift}
    la      sp, {stacks}
    add     sp, sp, t0
    mv      a0, a1
    call    {secondary_main}        // a0 = slot
9:  wfi
    j       9b
"#,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    stack_shift = const STACK_SHIFT,
    max_cpus = const MAX_CPUS,
    fs = const SSTATUS_FS_INITIAL,
    primary = sym primary_entry,
    secondary_main = sym crate::guest::secondary_main,
);
