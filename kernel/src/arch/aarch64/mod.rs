//! aarch64 (ARMv8-A EL2) support.
pub mod guest_dtb;
