//! The local APIC through its xAPIC MMIO window at 0xFEE0_0000: identity, set-up as an
//! operating system does it (spurious vector, task priority, LINT0/LINT1 masked, so
//! the legacy PIC of bare hardware stays out), end of interrupt, the one-shot timer and
//! the interrupt command register (INIT, SIPI).

use crate::mmio;

/// The xAPIC window (IA32_APIC_BASE reads this address).
pub const BASE: usize = 0xFEE0_0000;

pub const ID: usize = 0x20;
pub const VERSION: usize = 0x30;
const TPR: usize = 0x80;
const EOI: usize = 0xB0;
const SVR: usize = 0xF0;
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
const LVT_TIMER: usize = 0x320;
const LVT_LINT0: usize = 0x350;
const LVT_LINT1: usize = 0x360;
const LVT_ERROR: usize = 0x370;
const TIMER_INITIAL: usize = 0x380;
const TIMER_CURRENT: usize = 0x390;
const TIMER_DIVIDE: usize = 0x3E0;

/// LVT mask bit; the timer's periodic and TSC-deadline modes.
const MASKED: u32 = 1 << 16;
const PERIODIC: u32 = 1 << 17;
const TSC_DEADLINE: u32 = 2 << 17;
/// SVR: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0xB;

/// Vector of the spurious interrupt.
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// Vector of the local APIC error interrupt.
pub const ERROR_VECTOR: u8 = 0xFE;

/// Reads the register at `offset`.
pub fn read(offset: usize) -> u32 {
    // SAFETY: a register of the local APIC window (identity-mapped, uncached).
    unsafe { mmio::read32(BASE + offset) }
}

/// Writes the register at `offset`.
pub fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; the callers write documented registers.
    unsafe { mmio::write32(BASE + offset, value) }
}

/// This vCPU's APIC id as the ID register gives it.
pub fn id() -> u32 {
    read(ID) >> 24
}

/// Enables the local APIC of this vCPU as Linux does: spurious vector and software
/// enable, task priority 0, LINT0 (ExtINT from the legacy PIC) and LINT1 (NMI)
/// masked, errors to [`ERROR_VECTOR`], the timer masked, divide by 1.
pub fn enable() {
    write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(TPR, 0);
    write(LVT_LINT0, MASKED);
    write(LVT_LINT1, MASKED);
    write(LVT_ERROR, u32::from(ERROR_VECTOR));
    write(LVT_TIMER, MASKED);
    write(TIMER_DIVIDE, DIVIDE_BY_1);
}

/// Ends the interrupt being handled.
pub fn eoi() {
    write(EOI, 0);
}

/// Arms the one-shot timer: `count` ticks of the timer clock, then `vector`.
pub fn timer_one_shot(vector: u8, count: u32) {
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, u32::from(vector));
    write(TIMER_INITIAL, count);
}

/// Starts the timer in periodic mode: `vector` every `count` ticks.
pub fn timer_periodic(vector: u8, count: u32) {
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, u32::from(vector) | PERIODIC);
    write(TIMER_INITIAL, count);
}

/// Puts the timer in TSC-deadline mode with `vector` (IA32_TSC_DEADLINE arms it).
pub fn timer_tsc_deadline(vector: u8) {
    write(TIMER_INITIAL, 0);
    write(LVT_TIMER, u32::from(vector) | TSC_DEADLINE);
}

/// Stops the timer (count 0, masked).
pub fn timer_stop() {
    write(TIMER_INITIAL, 0);
    write(LVT_TIMER, MASKED);
}

/// Starts the masked timer from `count` for measuring its rate.
pub fn timer_count_from(count: u32) {
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, MASKED);
    write(TIMER_INITIAL, count);
}

/// The timer's current count.
pub fn timer_current() -> u32 {
    read(TIMER_CURRENT)
}

/// Sends an IPI: `low` is the ICR's low word (vector, delivery mode, level), to the
/// APIC id `dest`. Waits (a bounded number of polls) for the send to complete; false
/// if it never did.
pub fn send_ipi(dest: u32, low: u32) -> bool {
    write(ICR_HIGH, dest << 24);
    write(ICR_LOW, low);
    for _ in 0..100_000 {
        if read(ICR_LOW) & ICR_PENDING == 0 {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// ICR delivery modes, level assert.
pub const ICR_INIT: u32 = 0x4500;
pub const ICR_STARTUP: u32 = 0x4600;
