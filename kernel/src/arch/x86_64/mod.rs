//! x86_64 support on AMD SVM with nested paging (QEMU's TCG emulates SVM, not
//! Intel VMX). QEMU `-kernel` starts the hypervisor's ELF through its PVH note in
//! 32-bit protected mode; `boot` sets up long mode, the other CPUs are started with
//! INIT-SIPI-SIPI, the board comes from the PVH memory map and ACPI
//! (`firmware::pvh`, `firmware::acpi`).
//!
//! `npt` (the nested page-table format), `svm` (the CPU feature decision),
//! `cpuid` (what a guest's CPUID says), `permmap` (the I/O and MSR permission maps),
//! `inject` (the local APIC's interrupts into the VMCB),
//! `ioexit` (SVM exit codes, I/O intercept and `in`/`out` length decoding), `insn`
//! (the `mov` forms a nested page fault on MMIO is emulated for), `gwalk` (the
//! guest's page tables walked to fetch those bytes), `exits` (SVM exits into the
//! arch-neutral `VmExit`s and the core's replies back into registers), `vmcb`
//! (the control block and a Multiboot vCPU's start state) and `multiboot` (the
//! information block at EBX) are pure and build everywhere (host unit tests); the
//! rest runs only on the bare-metal target. `world` is the SVM world switch (VMRUN
//! with the guest's general registers, the host save areas) and `vcpu` the vCPU
//! that runs on it; no VM reaches it yet (VM creation says "not supported yet").
pub mod acpi_guest;
pub mod cpuid;
pub mod descriptors;
pub mod exits;
pub mod gwalk;
pub mod inject;
pub mod insn;
pub mod ioexit;
pub mod legacy;
pub mod linux;
pub mod msr;
pub mod multiboot;
pub mod npt;
pub mod permmap;
pub mod pmports;
pub mod svm;
pub mod vmcb;

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
pub mod world;

#[cfg(target_os = "none")]
pub use hal_impl::X86_64;
