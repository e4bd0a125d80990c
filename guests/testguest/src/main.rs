//! The test guest: a bare-metal program that runs inside a VM of the hypervisor and
//! checks, from the guest's side, what the hypervisor promises: its console, the device
//! tree it generates, the guest's memory, timer interrupts, PSCI and secondary vCPUs,
//! the project hypercall and the answer to unknown calls. It prints one line per check
//! (`ok: <check>` or `FAIL: <check>: <why>`), then `<N> passed, <M> failed`, and powers
//! its VM off.
//!
//! Architecture-specific code lives in `arch/<arch>/`; everything else is written once.
//! On the host the crate builds to an empty program, so the whole workspace builds there.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod checks;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod fdt;
#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
mod image;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod shared;
#[cfg(target_os = "none")]
mod time;
#[cfg(target_os = "none")]
mod why;

/// Host build: nothing to do (the guest only means something inside a VM).
#[cfg(not(target_os = "none"))]
fn main() {}
