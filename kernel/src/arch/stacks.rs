//! The hypervisor's per-CPU stacks as aarch64 and riscv64 lay them out: one slot per
//! CPU, each an unmapped gap (left out of the hypervisor's own page tables) below a
//! 64 KiB stack, so an overflow faults; and one emergency stack per slot, which that
//! CPU's fault is reported on. The boot code of each architecture owns the slots
//! (its `BOOT_STACKS`, which its entry assembly names) and asks here where the gaps
//! and emergency stacks are.
//!
//! Why the gap is 64 KiB and not one page: riscv64gc-unknown-none-elf has no stack
//! probes (aarch64-unknown-none-softfloat and x86_64-unknown-none do), so a function
//! with a frame larger than the gap could move `sp` past an unmapped page and write
//! below it without ever touching it. Accesses stay at or above `sp`, and a function
//! writes inside its own frame before it calls anything (its return address), so with
//! every frame at most half the gap, the first access below a stack lands in the gap
//! (at most one frame of the caller and one of the callee below the stack's bottom).
//! `cargo xtask build` reads every function's frame size from its code in the built
//! ELF and fails, naming the function, when one is larger than half the gap, which
//! it finds in the ELF as `HV_STACK_GAP` (`xtask/src/frames.rs`).

pub const STACK_SHIFT: usize = 16;
pub const STACK_SIZE: usize = 1 << STACK_SHIFT;
pub const GUARD_SHIFT: usize = 16;
/// The unmapped gap below each stack (whole pages).
pub const GUARD_SIZE: usize = 1 << GUARD_SHIFT;
/// A slot: the gap, then the stack (a power of two, so the slot of an address is a
/// shift away, for the trap vectors' assembly).
pub const SLOT_SHIFT: usize = 17;
pub const SLOT_SIZE: usize = 1 << SLOT_SHIFT;
const _: () = assert!(GUARD_SIZE + STACK_SIZE == SLOT_SIZE);
pub const MAX_CPUS: usize = crate::firmware::MAX_CPUS;

/// The gap below every hypervisor stack, in the ELF for `cargo xtask build`'s frame
/// check (which reads this symbol's value rather than a copy of the constant).
#[cfg(target_os = "none")]
#[no_mangle]
#[used]
pub static HV_STACK_GAP: u64 = GUARD_SIZE as u64;

/// The stack slots (in .bss; page-aligned so each gap is whole pages).
#[repr(C, align(4096))]
pub struct Stacks(pub [[u8; SLOT_SIZE]; MAX_CPUS]);

/// The gap of each slot of the stacks at `base` (physical = virtual): its first
/// byte; it is [`GUARD_SIZE`] long.
pub fn guard_pages(base: u64) -> [u64; MAX_CPUS] {
    core::array::from_fn(|i| base + (i * SLOT_SIZE) as u64)
}

/// The slot (of the stacks at `base`) whose gap holds `addr`, if one does.
pub fn guard_slot(base: u64, addr: u64) -> Option<usize> {
    slot_of(base, addr).filter(|&s| addr - guard_pages(base)[s] < GUARD_SIZE as u64)
}

/// The slot (of the stacks at `base`) that holds `addr` (its gap or its stack).
/// The trap vectors' assembly does the same with `sp`: at a CPU's first fault its
/// `sp` is in its own slot, the gap included (see the module documentation).
pub fn slot_of(base: u64, addr: u64) -> Option<usize> {
    let slot = (addr.checked_sub(base)? >> SLOT_SHIFT) as usize;
    (slot < MAX_CPUS).then_some(slot)
}

pub const EMERGENCY_SHIFT: usize = 14;
/// Size of the stack a CPU's fault in the hypervisor is reported on.
pub const EMERGENCY_SIZE: usize = 1 << EMERGENCY_SHIFT;

/// One emergency stack per slot.
#[repr(C, align(16))]
pub struct EmergencyStacks(pub [[u8; EMERGENCY_SIZE]; MAX_CPUS]);

/// The top of the emergency stack of `slot` (of the stacks at `base`).
pub fn emergency_top(base: u64, slot: usize) -> u64 {
    base + ((slot.min(MAX_CPUS - 1) + 1) * EMERGENCY_SIZE) as u64
}

/// The stacks faults in the hypervisor are reported on, one per slot (used by the
/// trap vectors' assembly, through `sym`, and by [`emergency_top`]'s callers).
#[cfg(target_os = "none")]
pub static mut EMERGENCY_STACKS: EmergencyStacks = EmergencyStacks([[0; EMERGENCY_SIZE]; MAX_CPUS]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_sit_below_each_stack() {
        let base = 0x8030_0000;
        let g = guard_pages(base);
        assert_eq!(g[0], base);
        assert_eq!(
            g[1],
            base + 0x20000,
            "a 64 KiB gap and a 64 KiB stack per slot"
        );
        assert_eq!(guard_slot(base, base + 0x20000), Some(1));
        assert_eq!(
            guard_slot(base, base + 0x2fff8),
            Some(1),
            "the gap's last word"
        );
        assert_eq!(guard_slot(base, base + 0x30000), None, "slot 1's stack");
        assert_eq!(guard_slot(base, base + 0x1fff8), None, "slot 0's stack top");
        assert_eq!(guard_slot(base, base - 8), None);
        let last = g[MAX_CPUS - 1];
        assert_eq!(guard_slot(base, last + 0xfff8), Some(MAX_CPUS - 1));
        assert_eq!(
            guard_slot(base, last + SLOT_SIZE as u64),
            None,
            "past the slots"
        );
    }

    #[test]
    fn gaps_are_whole_pages_and_slots_back_to_back() {
        assert_eq!(GUARD_SIZE % 4096, 0);
        assert_eq!(core::mem::size_of::<Stacks>(), MAX_CPUS * SLOT_SIZE);
    }

    #[test]
    fn an_sp_anywhere_in_a_slot_names_that_slot() {
        let base = 0x4030_0000;
        // The stack's top (the first push), its gap, and the gap's lowest byte.
        assert_eq!(slot_of(base, base + 2 * SLOT_SIZE as u64 - 16), Some(1));
        assert_eq!(slot_of(base, base + SLOT_SIZE as u64 + 0x8000), Some(1));
        assert_eq!(slot_of(base, base + SLOT_SIZE as u64), Some(1));
        assert_eq!(slot_of(base, base + SLOT_SIZE as u64 - 1), Some(0));
        assert_eq!(slot_of(base, base - 16), None, "below the slots");
        assert_eq!(slot_of(base, base + (MAX_CPUS * SLOT_SIZE) as u64), None);
    }

    #[test]
    fn every_slot_has_its_own_emergency_stack() {
        let base = 0x4100_0000;
        let tops: Vec<u64> = (0..MAX_CPUS).map(|s| emergency_top(base, s)).collect();
        assert_eq!(tops[0], base + EMERGENCY_SIZE as u64);
        for w in tops.windows(2) {
            assert_eq!(w[1] - w[0], EMERGENCY_SIZE as u64, "disjoint, back to back");
        }
        assert_eq!(
            tops[MAX_CPUS - 1],
            base + (MAX_CPUS * EMERGENCY_SIZE) as u64,
            "the last ends where the array ends"
        );
        assert_eq!(emergency_top(base, MAX_CPUS + 3), tops[MAX_CPUS - 1]);
    }
}
