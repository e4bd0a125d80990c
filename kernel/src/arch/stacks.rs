//! The hypervisor's per-CPU stacks as aarch64 and riscv64 lay them out: one slot per
//! CPU, each an unmapped guard page (left out of the hypervisor's own page tables)
//! below a 64 KiB stack, so an overflow faults; and the one emergency stack the
//! fault is reported on (the first CPU to fault takes it: a fault there ends the
//! machine). The boot code of each architecture owns the slots (its `BOOT_STACKS`,
//! which its entry assembly names) and asks here where the guard pages are.

pub const STACK_SHIFT: usize = 16;
pub const STACK_SIZE: usize = 1 << STACK_SHIFT;
pub const GUARD_SHIFT: usize = 12;
/// The unmapped page below each stack.
pub const GUARD_SIZE: usize = 1 << GUARD_SHIFT;
pub const SLOT_SIZE: usize = GUARD_SIZE + STACK_SIZE;
pub const MAX_CPUS: usize = crate::firmware::MAX_CPUS;

/// The stack slots (in .bss; page-aligned so each guard is a whole page).
#[repr(C, align(4096))]
pub struct Stacks(pub [[u8; SLOT_SIZE]; MAX_CPUS]);

/// The guard page of each slot of the stacks at `base` (physical = virtual).
pub fn guard_pages(base: u64) -> [u64; MAX_CPUS] {
    core::array::from_fn(|i| base + (i * SLOT_SIZE) as u64)
}

/// The slot (of the stacks at `base`) whose guard page holds `addr`, if one does.
pub fn guard_slot(base: u64, addr: u64) -> Option<usize> {
    guard_pages(base)
        .iter()
        .position(|&g| (g..g + GUARD_SIZE as u64).contains(&addr))
}

/// Size of the stack a fault in the hypervisor is reported on.
pub const EMERGENCY_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
pub struct EmergencyStack(pub [u8; EMERGENCY_SIZE]);

/// The stack a fault in the hypervisor is reported on (used only by the trap
/// vectors' assembly, through `sym`).
#[cfg(target_os = "none")]
pub static mut EMERGENCY_STACK: EmergencyStack = EmergencyStack([0; EMERGENCY_SIZE]);
/// Non-zero once a CPU took [`EMERGENCY_STACK`].
#[cfg(target_os = "none")]
pub static mut EMERGENCY_TAKEN: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_pages_sit_below_each_stack() {
        let base = 0x8030_0000;
        let g = guard_pages(base);
        assert_eq!(g[0], base);
        assert_eq!(
            g[1],
            base + 0x11000,
            "a 4 KiB guard and a 64 KiB stack per slot"
        );
        assert_eq!(guard_slot(base, base + 0x11ff8), Some(1));
        assert_eq!(guard_slot(base, base + 0x12000), None, "slot 1's stack");
        assert_eq!(guard_slot(base, base - 8), None);
        let last = g[MAX_CPUS - 1];
        assert_eq!(guard_slot(base, last + 0xfff), Some(MAX_CPUS - 1));
    }
}
