//! The virtual machine monitor: VMs, vCPUs, exits, lifecycle.
pub mod config;
