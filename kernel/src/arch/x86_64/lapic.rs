//! The host's local APIC (xAPIC, memory-mapped at the MADT's address): enabled on
//! every CPU, kicks as fixed IPIs, INIT-SIPI-SIPI to start a CPU, EOI, and its
//! timer as a one-shot wake-up on the kick vector (a halted vCPU's next virtual
//! timer), its rate measured against the TSC at boot.

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
const TIMER_INITIAL: u64 = 0x380;
const TIMER_CURRENT: u64 = 0x390;
const TIMER_DIVIDE: u64 = 0x3e0;
/// Divide configuration: by 1.
const DIVIDE_BY_1: u32 = 0xb;

/// The timer's ticks per 2^20 TSC ticks (measured by the boot CPU; 0: unknown).
static TICKS_PER_MTSC: AtomicU64 = AtomicU64::new(0);

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

/// Start-up IPI: `dest` starts in real mode at `page << 12`.
pub fn startup_ipi(dest: u64, page: u8) {
    send(dest, ICR_STARTUP | ICR_ASSERT | page as u32);
}

/// Measures the timer's rate against the TSC (`tsc_hz` ticks a second) over about
/// 1 ms, with the timer masked.
pub fn calibrate_timer(tsc_hz: u64) {
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, LVT_MASKED);
    write(TIMER_INITIAL, u32::MAX);
    let t0 = super::port::rdtsc();
    let span = (tsc_hz / 1000).max(1 << 16);
    while super::port::rdtsc().wrapping_sub(t0) < span {
        core::hint::spin_loop();
    }
    let ticks = u64::from(u32::MAX - read(TIMER_CURRENT));
    let tsc = super::port::rdtsc().wrapping_sub(t0);
    write(TIMER_INITIAL, 0);
    TICKS_PER_MTSC.store((ticks << 20) / tsc.max(1), Ordering::Relaxed);
}

/// Arms this CPU's timer to interrupt (on the kick vector) once the TSC reaches
/// `tsc`; false when that is now or the rate is unknown.
pub fn wake_at(tsc: u64) -> bool {
    let now = super::port::rdtsc();
    let rate = TICKS_PER_MTSC.load(Ordering::Relaxed);
    if tsc <= now || rate == 0 {
        return false;
    }
    let count = (u128::from(tsc - now) * u128::from(rate)) >> 20;
    let count = count.clamp(1, u128::from(u32::MAX)) as u32;
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, KICK_VECTOR as u32);
    write(TIMER_INITIAL, count);
    true
}

/// Stops this CPU's timer.
pub fn wake_off() {
    write(TIMER_INITIAL, 0);
    write(LVT_TIMER, LVT_MASKED);
}
