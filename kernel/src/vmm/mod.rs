//! The virtual machine monitor: VMs, vCPUs, exits, lifecycle. Arch-neutral.
pub mod create;
pub mod devices;
pub mod fs;
pub mod input;
pub mod lazy_ram;
pub mod machine;
pub mod run;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod vm;
