//! The virtual machine monitor: VMs, vCPUs, exits, lifecycle. Arch-neutral.
pub mod config;
#[cfg(target_os = "none")]
pub mod create;
pub mod devices;
pub mod exit;
#[cfg(any(feature = "fs-vms", test))]
pub mod fs;
#[cfg(not(any(feature = "fs-vms", test)))]
#[path = "fs/off.rs"]
pub mod fs;
pub mod guest_gic;
#[cfg(target_os = "none")]
pub mod input;
pub mod lazy_ram;
#[cfg(target_os = "none")]
pub mod run;
pub mod stats;
pub mod vm;
