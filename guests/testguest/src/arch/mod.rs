//! The architecture layer: the only place with assembly, system registers and the
//! firmware calling convention. Each architecture module provides the same items, which
//! the arch-neutral checks use:
//!
//! - boot: the image entry (device tree address in, stacks, .bss, exception vectors)
//!   calling [`crate::guest::primary_main`] (x86_64: the Multiboot information in,
//!   read into a [`crate::platform::Platform`] for [`crate::guest::run`]), and a
//!   secondary-CPU entry that takes its stack slot from the start argument (x86_64:
//!   from the SIPI trampoline's data) and calls [`crate::guest::secondary_main`];
//! - `FALLBACK_UART`, `FIRMWARE_CONSOLE` (a byte writer over a firmware call, for
//!   the `sbi-only` boot argument, if the architecture has one), `barrier`, `halt`,
//!   `wait_for_interrupt`, `spin_masked`, `cpu_hw_id`, `secondary_entry` (not on
//!   x86_64, whose secondaries start at the SIPI vector);
//! - `timer`: `frequency`, `now`, `arm`, `disarm`;
//! - `irq`: `init` (interrupt controller set up for the timer), `enable`, `disable`,
//!   and an interrupt handler that reports to [`crate::checks::timer`];
//! - `firmware`: the firmware check (`CHECK_NAME`, `check`), `ARCH_CHECKS` (the
//!   architecture's own, run before the memory check touches all of RAM),
//!   `cpu_start`, `cpu_state`, `cpu_stop`, `system_off`, `system_reset`, `vm_boots`,
//!   `hv_info`, `unknown_call`, `probe` (a call that must always be answered);
//! - `BOOT_INFO_CHECK` (the name of the check of what the VM was booted with: `dtb`, or
//!   `multiboot` on x86_64) and `check_dtb`: the architecture's part of that check;
//! - `link.ld` next to the module: the linker script (`build.rs` passes it), defining
//!   `__image_start` and `__image_end` around everything the image occupies.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "riscv64")]
pub use riscv64::*;

#[cfg(any(target_arch = "aarch64", target_arch = "riscv64"))]
mod devtree;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "x86_64"
)))]
compile_error!("testguest: no architecture module for this target yet (see src/arch/mod.rs)");

/// One of an architecture's own checks (`firmware::ARCH_CHECKS`): name and check.
pub type ArchCheck = (
    &'static str,
    fn(&crate::platform::Platform) -> crate::why::CheckResult,
);

/// What the firmware says about a CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CpuState {
    On,
    Off,
    OnPending,
    /// The call failed with this error code.
    Error(i64),
}

/// The call instruction itself raised an exception in the guest (nothing at a higher
/// privilege level answered it); the guest caught the exception and went on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CallUndefined;

/// The registers a project hypercall returns: status, ABI magic, VM id, vCPU index.
pub type HvInfo = [u64; 4];

/// `HV_INFO` status for success.
pub const HV_INFO_OK: u64 = 0;
/// `HV_INFO` ABI magic: "HV" and version 1.
pub const HV_INFO_MAGIC: u64 = 0x4856_0001;
/// The answer to an unknown call: NOT_SUPPORTED (-1 in the SMC calling convention,
/// SBI_ERR_NOT_SUPPORTED = -2 in the SBI's).
#[cfg(not(target_arch = "riscv64"))]
pub const NOT_SUPPORTED: u64 = u64::MAX;
#[cfg(target_arch = "riscv64")]
pub const NOT_SUPPORTED: u64 = -2i64 as u64;
