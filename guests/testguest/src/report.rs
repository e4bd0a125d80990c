//! Check bookkeeping: one `ok: <check>` or `FAIL: <check>: <why>` line per check, the
//! running totals, the final `<N> passed, <M> failed` line, and the way out when the
//! guest cannot go on (a panic or an unexpected exception): report it, then power off.

use core::fmt;

use crate::arch;
use crate::console::println;
use crate::shared::Shared;
use crate::why::CheckResult;

static PASSED: Shared = Shared::new(0);
static FAILED: Shared = Shared::new(0);
static SUMMARY_PRINTED: Shared = Shared::new(0);
static FATAL_ENTERED: Shared = Shared::new(0);
/// Name of the running check (pointer and length of a `&'static str`; 0 = none).
static CURRENT_PTR: Shared = Shared::new(0);
static CURRENT_LEN: Shared = Shared::new(0);

/// Runs the check `name` and prints its result line.
pub fn run(name: &'static str, check: impl FnOnce() -> CheckResult) {
    CURRENT_PTR.set(name.as_ptr() as u64);
    CURRENT_LEN.set(name.len() as u64);
    let result = check();
    CURRENT_PTR.set(0);
    record(name, result);
}

/// Prints and counts the result of the check `name`.
pub fn record(name: &str, result: CheckResult) {
    match result {
        Ok(()) => {
            PASSED.increment();
            println!("ok: {name}");
        }
        Err(why) => {
            FAILED.increment();
            println!("FAIL: {name}: {why}");
        }
    }
}

/// The running check, if any.
pub fn current() -> Option<&'static str> {
    let ptr = CURRENT_PTR.get() as *const u8;
    if ptr.is_null() {
        return None;
    }
    let len = CURRENT_LEN.get() as usize;
    // SAFETY: `run` stores the pointer and length of a `&'static str` (and clears the
    // pointer when the check ends), so they describe live, valid UTF-8.
    Some(unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len)) })
}

/// Prints `<N> passed, <M> failed` (once).
pub fn summary() {
    if SUMMARY_PRINTED.get() != 0 {
        return;
    }
    SUMMARY_PRINTED.set(1);
    println!("{} passed, {} failed", PASSED.get(), FAILED.get());
}

/// The guest cannot go on: prints `line` (a `FAIL: ...` line), counts one more failure,
/// prints the summary if that was not done yet, and powers the VM off.
pub fn fatal(line: fmt::Arguments<'_>) -> ! {
    if FATAL_ENTERED.get() != 0 {
        // Failing again while reporting a failure: just stop.
        arch::firmware::system_off();
    }
    FATAL_ENTERED.set(1);
    println!("{line}");
    FAILED.increment();
    summary();
    arch::firmware::system_off()
}
