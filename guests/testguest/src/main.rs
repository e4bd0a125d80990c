//! The test guest: a bare-metal program that runs inside a VM of the hypervisor and
//! checks, from the guest's side, what the hypervisor promises: its console, the device
//! tree it generates, the guest's memory, timer interrupts, PSCI and secondary vCPUs,
//! the project hypercall and the answer to unknown calls. It prints one line per check
//! (`ok: <check>` or `FAIL: <check>: <why>`), then `<N> passed, <M> failed`, and powers
//! its VM off.
//!
//! Architecture-specific code lives in `arch/<arch>/`; everything else is written once.
//! On the host the crate builds to an empty program, so the whole workspace builds there;
//! `cargo test -p testguest` runs the host tests of the arch-neutral parsing code.

#![cfg_attr(target_os = "none", no_std, no_main)]
// On the host only the tested modules are built, and only their tests use them.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod attack;
#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod checks;
#[cfg(target_os = "none")]
mod console;
#[cfg(any(target_os = "none", test))]
mod fdt;
#[cfg(target_os = "none")]
mod guest;
// x86's Multiboot guests only (the other architectures read a device tree).
#[cfg(any(target_os = "none", test))]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod hvchannel;
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
#[cfg(any(target_os = "none", test))]
mod why;

/// Host build: nothing to do (the guest only means something inside a VM).
#[cfg(not(target_os = "none"))]
fn main() {}
