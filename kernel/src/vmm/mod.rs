//! The virtual machine monitor: VMs, vCPUs, exits, lifecycle. Arch-neutral.
pub mod create;
pub mod devices;
pub mod fs;
pub mod input;
pub mod lazy_ram;
pub mod run;
pub mod stats;
pub mod vm;
