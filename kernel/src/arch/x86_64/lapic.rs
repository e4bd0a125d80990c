//! The host's local APIC (xAPIC, memory-mapped at the MADT's address): enabled on
//! every CPU, kicks as fixed IPIs, INIT-SIPI-SIPI to start a CPU, EOI, and the
//! timer (one-shot, raising the kick vector) that ends a guest's run at its local
//! APIC timer's deadline.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

/// The local APIC's physical address (the same on every CPU).
static BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);

const EOI: u64 = 0xb0;
const SVR: u64 = 0xf0;
const ICR_LO: u64 = 0x300;
const ICR_HI: u64 = 0x310;
const LVT_TIMER: u64 = 0x320;
const LVT_LINT0: u64 = 0x350;
const LVT_LINT1: u64 = 0x360;
const LVT_ERROR: u64 = 0x370;
const TIMER_INIT: u64 = 0x380;
const TIMER_CUR: u64 = 0x390;
const TIMER_DIV: u64 = 0x3e0;
/// TIMER_DIV: divide by 1.
const DIV_BY_1: u32 = 0xb;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const ICR_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 5 << 8;
const ICR_STARTUP: u32 = 6 << 8;
const ICR_ASSERT: u32 = 1 << 14;

/// Vector of a kick between CPUs.
pub const KICK_VECTOR: u8 = 0xf0;
/// Vector of spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

fn read(reg: u64) -> u32 {
    // SAFETY: a local APIC register, identity-mapped uncached.
    unsafe { read_volatile((BASE.load(Ordering::Relaxed) + reg) as *const u32) }
}

fn write(reg: u64, v: u32) {
    // SAFETY: as for `read`.
    unsafe { write_volatile((BASE.load(Ordering::Relaxed) + reg) as *mut u32, v) }
}

/// Enables this CPU's local APIC with every local interrupt masked.
pub fn init(base: u64) {
    BASE.store(base, Ordering::Relaxed);
    for lvt in [LVT_TIMER, LVT_LINT0, LVT_LINT1, LVT_ERROR] {
        write(lvt, LVT_MASKED);
    }
    write(SVR, SVR_ENABLE | SPURIOUS_VECTOR as u32);
}

pub fn eoi() {
    write(EOI, 0);
}

fn send(dest: u64, lo: u32) {
    while read(ICR_LO) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
    write(ICR_HI, (dest as u32) << 24);
    write(ICR_LO, lo);
    while read(ICR_LO) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// A fixed interrupt `vector` to the CPU with APIC id `dest`.
pub fn ipi(dest: u64, vector: u8) {
    send(dest, ICR_ASSERT | vector as u32);
}

/// INIT to `dest`: it waits for a start-up IPI.
pub fn init_ipi(dest: u64) {
    send(dest, ICR_INIT | ICR_ASSERT);
}

/// Host timer ticks per second (0: not measured yet).
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// The local APIC timer's frequency, measured once against the TSC (`tsc_hz`)
/// over a millisecond.
fn timer_hz(tsc_hz: u64) -> u64 {
    let hz = TIMER_HZ.load(Ordering::Relaxed);
    if hz != 0 {
        return hz;
    }
    write(TIMER_DIV, DIV_BY_1);
    write(LVT_TIMER, LVT_MASKED);
    write(TIMER_INIT, u32::MAX);
    let t0 = super::port::rdtsc();
    let span = (tsc_hz / 1000).max(1);
    while super::port::rdtsc().wrapping_sub(t0) < span {
        core::hint::spin_loop();
    }
    let counted = u32::MAX - read(TIMER_CUR);
    let elapsed = super::port::rdtsc().wrapping_sub(t0).max(1);
    write(TIMER_INIT, 0);
    let hz = (u128::from(counted) * u128::from(tsc_hz) / u128::from(elapsed)) as u64;
    let hz = hz.max(1);
    TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Arms this CPU's timer (one-shot) to raise the kick vector at TSC value
/// `deadline`, or disarms it (None). A deadline already passed fires at once.
pub fn arm_timer(deadline: Option<u64>, tsc_hz: u64) {
    let Some(deadline) = deadline else {
        write(TIMER_INIT, 0);
        return;
    };
    let hz = timer_hz(tsc_hz);
    let delta = deadline.saturating_sub(super::port::rdtsc());
    let count = u128::from(delta) * u128::from(hz) / u128::from(tsc_hz.max(1));
    write(TIMER_DIV, DIV_BY_1);
    write(LVT_TIMER, u32::from(KICK_VECTOR));
    write(TIMER_INIT, count.clamp(1, u128::from(u32::MAX)) as u32);
}

/// Start-up IPI: `dest` starts in real mode at `page << 12`.
pub fn startup_ipi(dest: u64, page: u8) {
    send(dest, ICR_STARTUP | ICR_ASSERT | page as u32);
}
