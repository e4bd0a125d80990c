//! What aarch64 and riscv64 share as device-tree platforms with a firmware call
//! interface (PSCI, SBI HSM): items of the arch layer both re-export, written once.

/// The channel the `ivc` checks use comes from the device tree (`checks::ivc`).
pub fn ivc_channel(
    _platform: &crate::platform::Platform,
) -> Option<Result<crate::checks::ivc::View, crate::why::Why>> {
    None
}

/// The doorbell's interrupt is never let in (only its pending bit is read): the
/// line drops with STATUS, nothing else to do.
pub fn ivc_irq_done() -> bool {
    true
}

/// The reset race's second vCPU: a start of the boot vCPU (on: refused) and its
/// state.
pub fn hammer_once() {
    let _ = super::firmware::cpu_start(0, 0);
    let _ = super::firmware::cpu_state(0);
}

/// The address `exec-device` jumps to: the UART's window.
pub fn device_window(platform: &crate::platform::Platform) -> Result<usize, crate::why::Why> {
    let uart = platform.uart.ok_or_else(|| crate::why::why!("no UART"))?;
    Ok(uart.base as usize)
}
