//! The virtual machine monitor: VMs, vCPUs, exits, lifecycle. Arch-neutral.
pub mod axivc;
pub mod channel;
pub mod create;
pub mod devices;
pub mod dtpass;
// VM configs read from the card at boot (`image_location = "fs"`): only in builds
// with feature `fs-vms`, which carry the TOML parser; a stand-in refuses them else.
#[cfg(any(feature = "fs-vms", test))]
pub mod fs;
#[cfg(not(any(feature = "fs-vms", test)))]
#[path = "fs/off.rs"]
pub mod fs;
pub mod input;
pub mod lazy_ram;
pub mod machine;
pub mod run;
pub mod shell;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod vm;
