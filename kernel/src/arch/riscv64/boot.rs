//! Boot entry. The image starts with a RISC-V Linux `Image` header, so OpenSBI's
//! next stage (QEMU `-kernel`) and U-Boot `booti` start it like Linux: in S-mode
//! (HS-mode with the H extension), satp = 0, a0 = hart id, a1 = DTB address. The
//! boot hart zeroes .bss and takes stack slot 0; the others are started by the boot
//! hart through SBI HSM at `secondary_entry` with a0 = hart id (a1 = their stack
//! slot, which they do not rely on: they look their slot up by hart id).
//!
//! Each stack slot starts with a gap that the HS-mode map leaves unmapped
//! (`mmu::build`, `arch::stacks` for its size): a stack that overflows faults there
//! instead of running into the next hart's stack, and the trap vector reports it on
//! the hart's own emergency stack ([`HartLocal::emergency_top`], `trap.rs`), before
//! it touches the stack, whenever `sp` is below the hart's
//! [`HartLocal::stack_limit`].
//!
//! Each hart keeps its [`HartLocal`] in `tp` (the hypervisor uses no thread-local
//! storage; the world switch saves and restores `tp` around the guest).
//!
//! OpenSBI 1.1 marks a hart START_PENDING before it stores the hart's start address
//! and argument, and the hart, woken by any interrupt, may read them before they are
//! stored: it then starts with the cold-boot values (the boot hart's `_start` and the
//! DTB address in a1), or with the new address and the old a1. So:
//! - `_start` is safe against re-entry. The first hart to arrive claims the boot path
//!   with an atomic swap of a word in .data, before .bss is touched; any later one
//!   takes the secondary path. (Before this claim a late hart ran the boot path a
//!   second time, zeroing .bss under the running boot hart: the boot banner line came
//!   twice, the second cut off, then nothing.)
//! - the secondary path ignores a1 and looks up the slot the boot hart is starting
//!   this hart in by hart id ([`HART_STARTING`]), or parks if it has none. (Trusting
//!   a1 parked a hart handed the DTB address as its slot, silently.) A hart takes its
//!   slot once: a second arrival for the same slot parks too.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

pub use crate::arch::stacks::MAX_CPUS;
use crate::arch::stacks::{self, Stacks, GUARD_SIZE, SLOT_SHIFT, SLOT_SIZE};

/// Stack a trap in HS-mode needs (its register frame, 272 bytes, and some room):
/// with less left the trap vector switches to the emergency stack.
const TRAP_ROOM: u64 = 512;

#[no_mangle]
pub static mut BOOT_STACKS: Stacks = Stacks([[0; SLOT_SIZE]; MAX_CPUS]);

/// The gap of each stack slot (physical = virtual in HS-mode).
pub fn guard_pages() -> [u64; MAX_CPUS] {
    stacks::guard_pages(core::ptr::addr_of!(BOOT_STACKS) as u64)
}

/// The stack slot whose gap holds `addr`, if one does.
pub fn guard_slot(addr: u64) -> Option<usize> {
    stacks::guard_slot(core::ptr::addr_of!(BOOT_STACKS) as u64, addr)
}

/// Per stack slot: the hart id + 1 of the hart the boot hart is starting in it (0 =
/// none). Written before the hart is started ([`expect_hart`]); the hart clears it
/// when it takes the slot at `secondary_entry`.
#[no_mangle]
pub static HART_STARTING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Notes that hart `hartid` is about to be started in stack slot `slot` (before the
/// firmware call that starts it).
pub fn expect_hart(slot: usize, hartid: u64) {
    if let Some(s) = HART_STARTING.get(slot) {
        s.store(hartid.wrapping_add(1), Ordering::SeqCst);
    }
}

/// The hart in `slot` did not start: should it turn up later all the same, it parks.
pub fn forget_hart(slot: usize) {
    if let Some(s) = HART_STARTING.get(slot) {
        s.store(0, Ordering::SeqCst);
    }
}

/// What one hart needs to know about itself. The trap vector's assembly reads
/// `stack_limit` at offset 0, `emergency_top` at 8 and `emergency_taken` at 16.
#[derive(Default)]
#[repr(C)]
pub struct HartLocal {
    /// The lowest `sp` a trap in HS-mode may start its frame from: the top of the
    /// gap plus [`TRAP_ROOM`].
    pub stack_limit: u64,
    /// The top of this hart's emergency stack (its slot's).
    pub emergency_top: u64,
    /// Non-zero once the trap vector switched to the emergency stack: a second
    /// overflow while reporting the first stops the hart instead of starting over.
    pub emergency_taken: u64,
    pub hartid: u64,
    /// The vCPU index and virtual time offset of the vCPU being started here
    /// (set by `activate`, read by `Vcpu::new`).
    pub vcpu_index: u64,
    pub cntvoff: u64,
}

/// One [`HartLocal`] per stack slot; each is used only by the hart in that slot.
pub struct Harts(pub [UnsafeCell<HartLocal>; MAX_CPUS]);

// SAFETY: slot `n` is only ever accessed by the hart that booted with stack slot `n`
// (through `tp`), so no two harts share a cell.
unsafe impl Sync for Harts {}

pub static HARTS: Harts = Harts(
    [const {
        UnsafeCell::new(HartLocal {
            stack_limit: 0,
            emergency_top: 0,
            emergency_taken: 0,
            hartid: 0,
            vcpu_index: 0,
            cntvoff: 0,
        })
    }; MAX_CPUS],
);

fn local() -> *mut HartLocal {
    let tp: u64;
    // SAFETY: reading tp has no side effect.
    unsafe { core::arch::asm!("mv {}, tp", out(reg) tp, options(nomem, nostack)) };
    tp as *mut HartLocal
}

/// The id of the hart running this code.
pub fn hartid() -> u64 {
    // SAFETY: tp was set at entry to this hart's own slot of HARTS, which no other
    // hart touches.
    unsafe { (*local()).hartid }
}

/// The hart id, or u64::MAX before this hart has its [`HartLocal`] (for reports
/// of traps that may come that early).
pub fn hartid_if_known() -> u64 {
    if local().is_null() {
        u64::MAX
    } else {
        hartid()
    }
}

/// Notes the vCPU about to run on this hart.
pub fn set_vcpu(index: u64, cntvoff: u64) {
    // SAFETY: as for `hartid`; no reference into the slot is held anywhere.
    unsafe {
        (*local()).vcpu_index = index;
        (*local()).cntvoff = cntvoff;
    }
}

/// The vCPU index and virtual time offset noted by [`set_vcpu`].
pub fn vcpu() -> (u64, u64) {
    // SAFETY: as for `hartid`.
    unsafe { ((*local()).vcpu_index, (*local()).cntvoff) }
}

fn set_local(slot: usize, hartid: u64) {
    let slot = slot.min(MAX_CPUS - 1);
    let cell = &HARTS.0[slot];
    let limit = guard_pages()[slot] + GUARD_SIZE as u64 + TRAP_ROOM;
    let emergency =
        stacks::emergency_top(core::ptr::addr_of!(stacks::EMERGENCY_STACKS) as u64, slot);
    // SAFETY: this hart owns slot `slot` from now on (see `Harts`).
    unsafe {
        (*cell.get()).hartid = hartid;
        (*cell.get()).stack_limit = limit;
        (*cell.get()).emergency_top = emergency;
    }
    let p = cell.get() as u64;
    // SAFETY: tp is reserved for this pointer; the compiler does not use it.
    unsafe { core::arch::asm!("mv tp, {}", in(reg) p, options(nomem, nostack)) };
}

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .option push
    .option norvc
    .global _start
_start:
    // RISC-V Image header (Documentation/arch/riscv/boot-image-header.rst).
    j       1f                      // code0
    .word   0                       // code1
    .dword  __text_offset           // text_offset from the 2 MiB-aligned RAM base
    .dword  __image_size            // image_size, .bss included
    .dword  0                       // flags: little endian
    .word   2                       // header version 0.2
    .word   0                       // res1
    .dword  0                       // res2
    .ascii  "RISCV\0\0\0"           // magic (deprecated)
    .ascii  "RSC\x05"               // magic2
    .word   0                       // res3: no PE/COFF header
    .option pop
1:
    csrw    sie, zero
    csrw    sscratch, zero
    mv      tp, zero                // no HartLocal yet (the trap vector checks)
    la      t0, hv_trap_vector
    csrw    stvec, t0
    mv      s0, a0                  // hart id
    mv      s1, a1                  // DTB
    // Only the first hart here takes the boot path (claimed before .bss is touched).
    la      t0, hv_boot_claimed
    li      t1, 1
    .option push
    .option arch, +a
    amoswap.w.aqrl t2, t1, (t0)
    .option pop
    bnez    t2, .Lnot_boot
    // zero .bss (the stacks live there, so before any call)
    la      t0, __bss_start
    la      t1, __bss_end
2:  bgeu    t0, t1, 3f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       2b
3:  li      a0, 0
    call    .Lset_stack
    mv      a0, s0
    mv      a1, s1
    call    {primary}
    j       .Lhang

    // A hart other than the boot hart in _start (a0 = hart id): the secondary path,
    // which finds the slot the boot hart is starting it in, or parks.
.Lnot_boot:
    j       secondary_entry

    .global secondary_entry
secondary_entry:
    csrw    sie, zero
    csrw    sscratch, zero
    mv      tp, zero
    la      t0, hv_trap_vector
    csrw    stvec, t0
    mv      s0, a0                  // hart id
    // The slot is looked up by hart id, not taken from a1: OpenSBI 1.1 may hand a
    // started hart a stale a1 (see the module documentation).
    fence   rw, rw
    addi    t2, a0, 1
    la      t0, HART_STARTING
    li      t1, 1
    li      t3, {max_cpus}
4:  bgeu    t1, t3, .Lhang
    slli    t4, t1, 3
    add     t4, t0, t4
    ld      t5, 0(t4)
    beq     t5, t2, 5f
    addi    t1, t1, 1
    j       4b
    // Take the slot: it must still be waiting for this hart, and only once.
5:  mv      s1, t1                  // stack slot
    .option push
    .option arch, +a
6:  lr.d.aqrl t5, (t4)
    bne     t5, t2, .Lhang
    sc.d.aqrl t6, zero, (t4)
    bnez    t6, 6b
    .option pop
    mv      a0, s1
    call    .Lset_stack
    mv      a0, s0
    mv      a1, s1
    call    {secondary}
    j       .Lhang

// sp = BOOT_STACKS + (a0 + 1) * SLOT_SIZE; clobbers t0..t1
.Lset_stack:
    la      t0, BOOT_STACKS
    addi    t1, a0, 1
    slli    t1, t1, {slot_shift}
    add     sp, t0, t1
    ret

.Lhang:
    wfi
    j       .Lhang

    // Set by the boot hart in _start. In .data: zeroing .bss must not clear it.
    .pushsection .data
    .balign 8
hv_boot_claimed:
    .dword  0
    .popsection
"#,
    primary = sym primary_entry,
    secondary = sym secondary_entry_rust,
    slot_shift = const SLOT_SHIFT,
    max_cpus = const MAX_CPUS,
);

extern "C" {
    /// Entry point for secondary harts (address handed to SBI HSM hart_start).
    pub fn secondary_entry();
    /// The image entry (the boot hart's).
    #[cfg(feature = "test-reenter-start")]
    fn _start();
}

/// The address of `_start` (feature `test-reenter-start`).
#[cfg(feature = "test-reenter-start")]
pub fn image_entry() -> u64 {
    _start as *const () as u64
}

extern "C" fn primary_entry(hartid: u64, dtb: u64) -> ! {
    set_local(0, hartid);
    crate::boot::primary_main(dtb)
}

extern "C" fn secondary_entry_rust(hartid: u64, slot: u64) -> ! {
    set_local(slot as usize, hartid);
    crate::boot::secondary_main(slot as usize)
}
