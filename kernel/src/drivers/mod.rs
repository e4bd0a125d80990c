//! Drivers for the hypervisor's own devices (not emulated for guests).
pub mod block;
pub mod uart;
pub mod virtio;
