//! The hypervisor kernel.
//!
//! Layers, each using only those below it (see DESIGN.md):
//! - `arch`: boot, exception vectors, world switch, 2nd-stage tables, trap decoding;
//!   the only place with inline assembly and system registers.
//! - `firmware`: what the board is (RAM, CPUs, UART, interrupt controller, timer), one
//!   neutral description filled by a reader of what the firmware handed over (a DTB).
//! - `mm`: physical frames, heap, guest address spaces.
//! - `devices`: emulated device models, pure state machines tested on the host.
//! - `vmm`: VMs, vCPU placement, image loading, exit dispatch, VM lifecycle.
//! - `console`: per-VM line buffering so VM output never interleaves mid-line.
//! - `boot_image`: the Linux `Image` header arm64 and RISC-V share (`vmconfig::image`,
//!   so xtask checks placements with the same reader); `arch` names its variant.
//!
//! On the host (`cargo test -p hypervisor`) everything but the bare-metal entry and
//! the assembly builds and is unit-tested.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub use vmconfig::image as boot_image;
pub mod console;
pub mod devices;
pub mod drivers;
pub mod entropy;
pub mod fdt;
pub mod firmware;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod hal;
pub mod mm;
pub mod spec;
pub mod vmm;

#[cfg(target_os = "none")]
pub mod boot;
