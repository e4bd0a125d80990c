//! The virtual machine monitor: VMs, vCPUs, exits, lifecycle. Arch-neutral.
pub mod config;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod create;
pub mod devices;
pub mod exit;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod run;
pub mod vm;
