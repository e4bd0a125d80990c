//! timer: the guest sets up its interrupt controller as an ordinary guest would, arms
//! its timer for about 10 ms several times, and needs every one of those interrupts
//! to arrive within a generous deadline (1 s each, emulation is slow), not before the
//! time it asked for, with the timer condition really met, and no stray interrupts.
//! The first round busy-waits; the others idle in WFI as an operating system does, so
//! the timer must also wake an idle vCPU. The worst lateness is reported.
//!
//! [`reset_from_handler`] (boot argument `reset`) resets the VM from inside the timer
//! interrupt handler, with the interrupt still active: the hypervisor must end the
//! physical interrupt behind it, or the next boot's timer check gets no interrupt.

use crate::arch;
use crate::console::println;
use crate::platform::Platform;
use crate::shared::Shared;
use crate::time;
use crate::why::{why, CheckResult};

/// Interrupts required.
const ROUNDS: u64 = 3;
/// Time until each interrupt, in milliseconds.
const INTERVAL_MS: u64 = 10;
/// How long to wait for each interrupt, in milliseconds.
const DEADLINE_MS: u64 = 1000;

/// Timer interrupts taken.
static TICKS: Shared = Shared::new(0);
/// Counter value when the last timer interrupt was taken.
static LAST_TICK_AT: Shared = Shared::new(0);
/// Timer interrupts taken while the timer condition was not met.
static NOT_FIRED: Shared = Shared::new(0);
/// Interrupts other than the timer's, and the last such INTID.
static OTHER: Shared = Shared::new(0);
static LAST_OTHER: Shared = Shared::new(0);
/// Spurious acknowledges.
static SPURIOUS: Shared = Shared::new(0);
/// Set: the next timer interrupt resets the VM from inside its handler.
static RESET_IN_HANDLER: Shared = Shared::new(0);

/// From the interrupt handler: the timer interrupt came at counter value `now`;
/// `fired` says whether the timer condition was met.
pub fn on_timer_interrupt(now: u64, fired: bool) {
    if RESET_IN_HANDLER.get() != 0 {
        println!("testguest: resetting the VM from its timer interrupt handler");
        arch::firmware::system_reset();
    }
    if !fired {
        NOT_FIRED.increment();
    }
    LAST_TICK_AT.set(now);
    TICKS.increment();
}

/// Timer interrupts taken so far (for riscv64's `timer-legacy` check).
#[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))]
pub fn ticks() -> u64 {
    TICKS.get()
}

/// Timer interrupts so far that came while the timer condition was not met.
#[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))]
pub fn not_fired() -> u64 {
    NOT_FIRED.get()
}

/// From the interrupt handler: some other interrupt came.
pub fn on_other_interrupt(id: u32) {
    LAST_OTHER.set(u64::from(id));
    OTHER.increment();
}

/// From the interrupt handler: the acknowledge returned a spurious id.
pub fn on_spurious_interrupt() {
    SPURIOUS.increment();
}

/// Arms the timer once and waits for its interrupt (idling in WFI when `idle`).
/// Returns how many ticks late the interrupt was.
fn one_round(round: u64, of: u64, interval: u64, idle: bool) -> Result<u64, crate::why::Why> {
    let before = TICKS.get();
    let start = arch::timer::now();
    arch::timer::arm(interval);
    arch::irq::enable();
    let arrived = time::wait_until(DEADLINE_MS, || {
        if idle && TICKS.get() == before {
            arch::wait_for_interrupt();
        }
        TICKS.get() != before
    });
    arch::irq::disable();
    arch::timer::disarm();
    if !arrived {
        return Err(why!(
            "interrupt {round} of {of} did not arrive within {DEADLINE_MS} ms"
        ));
    }
    let waited = LAST_TICK_AT.get().wrapping_sub(start);
    if waited < interval {
        return Err(why!(
            "interrupt {round} came after {waited} ticks, before the {interval} programmed"
        ));
    }
    Ok(waited - interval)
}

/// Runs the check.
pub fn run(platform: &Platform) -> CheckResult {
    let freq = arch::timer::frequency();
    if freq == 0 {
        return Err(why!("the counter frequency reads 0"));
    }
    arch::timer::disarm();
    arch::irq::init(platform)?;
    let interval = time::ms_to_ticks(INTERVAL_MS).max(1);
    let (ticks_before, not_fired_before) = (TICKS.get(), NOT_FIRED.get());
    let mut late = 0;
    for round in 1..=ROUNDS {
        late = late.max(one_round(round, ROUNDS, interval, round > 1)?);
    }
    let not_fired = NOT_FIRED.get() - not_fired_before;
    if not_fired != 0 {
        return Err(why!(
            "{not_fired} timer interrupts came while the timer condition was not met"
        ));
    }
    if OTHER.get() != 0 {
        return Err(why!(
            "{} unexpected interrupts, the last INTID {}",
            OTHER.get(),
            LAST_OTHER.get()
        ));
    }
    println!(
        "testguest: timer: {} interrupts, counter at {freq} Hz, {} spurious, at most {} us late",
        TICKS.get() - ticks_before,
        SPURIOUS.get(),
        late * 1_000_000 / freq
    );
    Ok(())
}

/// Boot argument `bench=irq`: `N` rounds of 1 ms with the vCPU busy, each one's
/// lateness in counter ticks (from the deadline to the handler's counter read).
pub fn lateness<const N: usize>(platform: &Platform) -> Result<[u64; N], crate::why::Why> {
    arch::timer::disarm();
    arch::irq::init(platform)?;
    let interval = time::ms_to_ticks(1).max(1);
    let mut late = [0; N];
    for (round, slot) in late.iter_mut().enumerate() {
        *slot = one_round(round as u64 + 1, N as u64, interval, false)?;
    }
    Ok(late)
}

/// Arms the timer and resets the VM from inside the interrupt handler, before the
/// interrupt is ended (after the timer check set the interrupt controller up). If
/// the interrupt does not come, says so and resets from here.
pub fn reset_from_handler() -> ! {
    RESET_IN_HANDLER.set(1);
    arch::timer::arm(time::ms_to_ticks(INTERVAL_MS).max(1));
    arch::irq::enable();
    let _ = time::wait_until(DEADLINE_MS, || {
        arch::wait_for_interrupt();
        false
    });
    arch::irq::disable();
    println!("FAIL: timer: no interrupt to reset the VM from; resetting without one");
    arch::firmware::system_reset()
}
