//! x86_64's part of the attack mode (see `crate::attack`): the constants the
//! arch-neutral kinds use. x86's own kinds (wild MSRs, ports, CPUID leaves, vmmcall
//! numbers, INIT storms) are not written yet.

use core::arch::asm;

use crate::attack::Kind;

/// An address where the VM has neither RAM nor a device (below 4 GiB: mapped by the
/// guest's page tables).
pub const UNMAPPED: usize = 0xD000_0000;
/// An APIC id no VM of the guest has.
pub const BAD_CPU_ID: u64 = 0xff;
pub use super::firmware::{ERR_ALREADY_ON, ERR_INVALID_PARAM, ERR_ON_PENDING};

/// x86's own kinds: none yet.
pub const KINDS: &[Kind] = &[];

/// Runs `f` on the stack whose top is `top`.
pub fn on_stack(top: usize, f: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is in the guest's RAM; `f` never returns, so nothing of the old
    // stack is needed again.
    unsafe { asm!("mov rsp, {t}", "jmp {f}", t = in(reg) top, f = in(reg) f, options(noreturn)) }
}
