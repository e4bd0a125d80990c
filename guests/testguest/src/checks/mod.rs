//! The checks, one module each (the small ones live here). Each returns a
//! [`CheckResult`](crate::why::CheckResult); `guest` runs them in order and `report`
//! prints their lines.

pub mod axivc;
pub mod hypercall;
pub mod ivc;
pub mod memory;
pub mod passthrough;
pub mod smp;
pub mod timer;

use crate::arch;
use crate::platform::Platform;
use crate::why::{why, CheckResult, Why};

/// console: the device tree's `/chosen/stdout-path` names a UART the guest drives
/// (the banner before this line already went out through it); with `sbi-only`, the
/// firmware's console carried the lines before this one.
pub fn console(platform: &Result<Platform, Why>) -> CheckResult {
    let platform = usable(platform)?;
    if crate::guest::sbi_only() {
        // The lines before this one went out through the firmware's console.
        return Ok(());
    }
    match platform.uart {
        Some(_) => Ok(()),
        None => Err(why!("/chosen/stdout-path names no PL011 or 16550 UART")),
    }
}

/// dtb: the device tree parses and describes RAM, at least one CPU, and what the
/// architecture needs (on aarch64: a GICv3, the generic timer and PSCI over hvc).
pub fn dtb(platform: &Result<Platform, Why>) -> CheckResult {
    let platform = usable(platform)?;
    if platform.memory().is_empty() {
        return Err(why!(
            "no memory node (device_type \"memory\") with a non-empty reg"
        ));
    }
    if platform.cpus().is_empty() {
        return Err(why!("no cpu node with a reg under /cpus"));
    }
    arch::check_dtb(platform)
}

/// unknown-call: a call with a function id nothing implements returns NOT_SUPPORTED
/// (-1), and the VM keeps running (a firmware call still works afterwards).
pub fn unknown_call() -> CheckResult {
    let answer = arch::firmware::unknown_call()
        .map_err(|_| why!("the call raised an exception in the guest (no hypervisor?)"))?;
    if answer != arch::NOT_SUPPORTED {
        return Err(why!(
            "returned {answer:#x}, expected {} (NOT_SUPPORTED)",
            arch::NOT_SUPPORTED as i64
        ));
    }
    arch::firmware::probe()
        .map(|_| ())
        .map_err(|_| why!("calls stopped working after the unknown call"))
}

/// The platform, or the reason there is none.
pub fn usable(platform: &Result<Platform, Why>) -> Result<&Platform, Why> {
    platform.as_ref().map_err(|err| *err)
}
