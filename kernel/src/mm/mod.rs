//! Memory management: host physical frames, the hypervisor heap, and guest memory
//! (which guest-physical range lives at which host-physical address).
pub mod frames;
pub mod guest;
#[cfg(target_os = "none")]
pub mod heap;
pub mod phys;
pub mod stage2;
