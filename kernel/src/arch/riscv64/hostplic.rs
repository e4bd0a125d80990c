//! The host's PLIC, for the hypervisor's own device interrupts: the console UART's
//! receive interrupt, enabled on the supervisor context of the boot hart only (the
//! hart that takes console input, as the boot CPU does on aarch64).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::firmware::BoardInfo;

const ENABLE_BASE: u64 = 0x2000;
const ENABLE_STRIDE: u64 = 0x80;
const CONTEXT_BASE: u64 = 0x20_0000;
const CONTEXT_STRIDE: u64 = 0x1000;

/// Claim/complete register of the console hart's context (0: no host interrupts).
static CLAIM: AtomicU64 = AtomicU64::new(0);
/// The hart that takes them.
static HART: AtomicU64 = AtomicU64::new(u64::MAX);

fn write32(addr: u64, v: u32) {
    // SAFETY: a PLIC register the DTB describes (identity-mapped MMIO in HS-mode).
    unsafe { write_volatile(addr as *mut u32, v) };
}

fn read32(addr: u64) -> u32 {
    // SAFETY: as for `write32`.
    unsafe { read_volatile(addr as *const u32) }
}

/// Routes the console UART's interrupt to `hartid`'s supervisor context; true if
/// there is one to route.
pub fn init(p: &BoardInfo, hartid: u64) -> bool {
    let (Some(plic), Some(source)) = (p.plic(), p.console.and_then(|u| u.irq)) else {
        return false;
    };
    let Some(i) = p.cpus().iter().position(|&h| h == hartid) else {
        return false;
    };
    let Some(ctx) = plic.s_context[i].map(u64::from) else {
        return false;
    };
    if source == 0 || source > plic.ndev {
        return false;
    }
    let src = u64::from(source);
    write32(plic.base + 4 * src, 1);
    write32(plic.base + CONTEXT_BASE + ctx * CONTEXT_STRIDE, 0);
    let enable = plic.base + ENABLE_BASE + ctx * ENABLE_STRIDE + (src / 32) * 4;
    write32(enable, read32(enable) | 1 << (src % 32));
    CLAIM.store(
        plic.base + CONTEXT_BASE + ctx * CONTEXT_STRIDE + 4,
        Ordering::Release,
    );
    HART.store(hartid, Ordering::Release);
    true
}

/// The highest-priority host interrupt pending for this hart, claimed.
pub fn claim() -> Option<u32> {
    let reg = CLAIM.load(Ordering::Acquire);
    if reg == 0 || HART.load(Ordering::Acquire) != super::boot::hartid() {
        return None;
    }
    match read32(reg) {
        0 => None,
        id => Some(id),
    }
}

/// Ends the handling of `source`.
pub fn complete(source: u32) {
    let reg = CLAIM.load(Ordering::Acquire);
    if reg != 0 {
        write32(reg, source);
    }
}
