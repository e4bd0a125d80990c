//! The legacy SBI (v0.1 extensions 0x00..0x0F), as older guests use it.
//!
//! - `sbi-legacy`: set_timer, console_putchar, console_getchar and clear_ipi return
//!   in a0 alone and keep every other register: a1..a7, t0..t6 and s2..s11 hold
//!   known values across each call and must come back unchanged.
//! - `timer-legacy`: [`PERIODS`] short timer periods programmed only with legacy
//!   set_timer (the interrupt handler moves the timer away with it too). Each
//!   period's interrupt must come, with the timer due, within [`DEADLINE_MS`]. Even
//!   periods idle in WFI; odd ones poll with legacy clear_ipi calls, so the
//!   hypervisor writes the guest's interrupt-pending bits (hvip) while the timer
//!   fires. Under QEMU 7.2 with Sstc both ways lost VS timer interrupts for good (see
//!   the hypervisor's `repost_due_vstimer`). An interrupt that comes before the
//!   timer is due is counted and printed, and the timer armed again for the same
//!   time, as an operating system does: QEMU 7.2's Sstc timer delivers a few such
//!   (a stale QEMU timer firing after vstimecmp was written), which hardware does not.

use core::arch::asm;

use super::timer;
use crate::checks;
use crate::console::println;
use crate::platform::Platform;
use crate::time;
use crate::why::{why, CheckResult};

const EID_SET_TIMER: u64 = 0x00;
const EID_PUTCHAR: u64 = 0x01;
const EID_GETCHAR: u64 = 0x02;
const EID_CLEAR_IPI: u64 = 0x03;

/// Timer periods of `timer-legacy`.
pub const PERIODS: u64 = 10_000;
/// Length of one period, in microseconds.
const PERIOD_US: u64 = 100;
/// How long one period's interrupt may take to come, in milliseconds.
const DEADLINE_MS: u64 = 1000;

/// The value register number `n` holds across a call (a1 = x11 ... s11 = x27).
const fn mark(n: u64) -> u64 {
    0x5eed_0000_0000_0000 | (n << 32) | (n * 0x0101)
}

/// The registers checked, as (name, x-number), in the order [`legacy_call`] returns them.
const KEPT: [(&str, u64); 24] = [
    ("a1", 11),
    ("a2", 12),
    ("a3", 13),
    ("a4", 14),
    ("a5", 15),
    ("a6", 16),
    ("a7", 17),
    ("t0", 5),
    ("t1", 6),
    ("t2", 7),
    ("t3", 28),
    ("t4", 29),
    ("t5", 30),
    ("t6", 31),
    ("s2", 18),
    ("s3", 19),
    ("s4", 20),
    ("s5", 21),
    ("s6", 22),
    ("s7", 23),
    ("s8", 24),
    ("s9", 25),
    ("s10", 26),
    ("s11", 27),
];

/// A legacy call of extension `eid` with a0 = `arg` and every register of [`KEPT`]
/// holding its [`mark`] (a7 holds `eid`, as the call needs). Returns a0 and what the
/// registers of [`KEPT`] held afterwards.
fn legacy_call(eid: u64, arg: u64) -> (u64, [u64; 24]) {
    let mut r = [0u64; 24];
    for (i, &(_, n)) in KEPT.iter().enumerate() {
        r[i] = mark(n);
    }
    r[6] = eid;
    let a0: u64;
    // SAFETY: a legacy SBI call: it passes no pointer, so the layer below touches no
    // guest memory; every register it may change is an output here.
    unsafe {
        asm!("ecall",
            inlateout("a0") arg => a0,
            inlateout("a1") r[0] => r[0], inlateout("a2") r[1] => r[1],
            inlateout("a3") r[2] => r[2], inlateout("a4") r[3] => r[3],
            inlateout("a5") r[4] => r[4], inlateout("a6") r[5] => r[5],
            inlateout("a7") r[6] => r[6],
            inlateout("t0") r[7] => r[7], inlateout("t1") r[8] => r[8],
            inlateout("t2") r[9] => r[9], inlateout("t3") r[10] => r[10],
            inlateout("t4") r[11] => r[11], inlateout("t5") r[12] => r[12],
            inlateout("t6") r[13] => r[13],
            inlateout("s2") r[14] => r[14], inlateout("s3") r[15] => r[15],
            inlateout("s4") r[16] => r[16], inlateout("s5") r[17] => r[17],
            inlateout("s6") r[18] => r[18], inlateout("s7") r[19] => r[19],
            inlateout("s8") r[20] => r[20], inlateout("s9") r[21] => r[21],
            inlateout("s10") r[22] => r[22], inlateout("s11") r[23] => r[23],
            options(nostack))
    };
    (a0, r)
}

/// Legacy set_timer (the timer module's choice while [`timer::set_legacy`] is on).
pub fn set_timer(time: u64) {
    legacy_call(EID_SET_TIMER, time);
}

/// Legacy clear_ipi.
fn clear_ipi() {
    legacy_call(EID_CLEAR_IPI, 0);
}

/// sbi-legacy: each legacy call keeps every register but a0.
pub fn registers(_: &Platform) -> CheckResult {
    // The first letter of the line below goes out through legacy putchar.
    let calls = [
        ("set_timer", EID_SET_TIMER, u64::MAX),
        ("console_putchar", EID_PUTCHAR, u64::from(b't')),
        ("console_getchar", EID_GETCHAR, 0),
        ("clear_ipi", EID_CLEAR_IPI, 0),
    ];
    let mut line_started = false;
    for (name, eid, arg) in calls {
        let (_, after) = legacy_call(eid, arg);
        line_started |= eid == EID_PUTCHAR;
        for (i, &(reg, n)) in KEPT.iter().enumerate() {
            let want = if reg == "a7" { eid } else { mark(n) };
            if after[i] != want {
                if line_started {
                    println!("");
                }
                return Err(why!(
                    "legacy {name} changed {reg}: {want:#x} -> {:#x}",
                    after[i]
                ));
            }
        }
    }
    println!(
        "estguest: legacy SBI calls kept a1-a7, t0-t6, s2-s11 (line started by console_putchar)"
    );
    Ok(())
}

/// sip, sie and sstatus, for the failure message.
fn interrupt_state() -> (u64, u64, u64) {
    let (sip, sie, sstatus): (u64, u64, u64);
    // SAFETY: reading CSRs has no side effects.
    unsafe {
        asm!("csrr {}, sip", "csrr {}, sie", "csrr {}, sstatus",
            out(reg) sip, out(reg) sie, out(reg) sstatus, options(nomem, nostack))
    };
    (sip, sie, sstatus)
}

/// timer-legacy: see the module documentation.
pub fn timer_periods(_: &Platform) -> CheckResult {
    let freq = timer::frequency();
    if freq == 0 {
        return Err(why!("the timebase frequency reads 0"));
    }
    let period = (freq * PERIOD_US / 1_000_000).max(1);
    let early_before = checks::timer::not_fired();
    let start = timer::now();
    timer::set_legacy(true);
    let result = run_periods(period);
    timer::disarm();
    timer::set_legacy(false);
    result?;
    let early = checks::timer::not_fired() - early_before;
    let ms = timer::now().wrapping_sub(start) * 1000 / freq;
    println!(
        "testguest: timer-legacy: {PERIODS} periods of {period} ticks ({PERIOD_US} us) in {ms} ms, {early} interrupts before their time"
    );
    Ok(())
}

/// Timer interrupts taken with the timer due.
fn due_ticks() -> u64 {
    checks::timer::ticks() - checks::timer::not_fired()
}

fn run_periods(period: u64) -> CheckResult {
    for i in 0..PERIODS {
        let before = due_ticks();
        let idle = i % 2 == 0;
        let due = timer::now().saturating_add(period);
        timer::arm_at(due);
        super::irq::enable();
        let arrived = time::wait_until(DEADLINE_MS, || {
            if due_ticks() != before {
                return true;
            }
            // An interrupt before its time moved the timer away: again.
            if !timer::armed() {
                super::irq::disable();
                timer::arm_at(due);
                super::irq::enable();
            }
            if idle {
                super::wait_for_interrupt();
            } else {
                clear_ipi();
            }
            due_ticks() != before
        });
        super::irq::disable();
        if !arrived {
            let (sip, sie, sstatus) = interrupt_state();
            return Err(why!(
                "period {} of {PERIODS} ({}): no interrupt in {DEADLINE_MS} ms; sip {sip:#x} sie {sie:#x} sstatus {sstatus:#x}",
                i + 1,
                if idle { "wfi" } else { "polling" }
            ));
        }
    }
    Ok(())
}
