//! x86_64 support on AMD SVM with nested paging (QEMU's TCG emulates SVM, not
//! Intel VMX). QEMU `-kernel` starts the hypervisor's ELF through its PVH note in
//! 32-bit protected mode; `boot` sets up long mode, the other CPUs are started with
//! INIT-SIPI-SIPI, the board comes from the PVH memory map and ACPI
//! (`firmware::pvh`, `firmware::acpi`).
//!
//! `npt` (the nested page-table format) and `svm` (the CPU feature decision) are
//! pure and build everywhere (host unit tests); the rest runs only on the
//! bare-metal target.
pub mod npt;
pub mod svm;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod hal_impl;
#[cfg(target_os = "none")]
mod idt;
#[cfg(target_os = "none")]
mod lapic;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod vcpu;

#[cfg(target_os = "none")]
pub use hal_impl::X86_64;
