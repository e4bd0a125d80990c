//! riscv64 support: the hypervisor runs in HS-mode (RISC-V H extension), started by
//! OpenSBI; guests run in VS-mode behind a G-stage translation.
//!
//! `board`, `gstage`, `image`, `insn`, `sbi` and `guest_dtb` are pure and build
//! everywhere (host unit tests); the rest runs only on the bare-metal target.
pub mod board;
pub mod gstage;
pub mod guest_dtb;
pub mod image;
pub mod insn;
pub mod sbi;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod csr;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod hal_impl;
#[cfg(target_os = "none")]
mod host;
#[cfg(target_os = "none")]
mod hostplic;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod vcpu;

#[cfg(target_os = "none")]
pub use hal_impl::Riscv64;
#[cfg(target_os = "none")]
pub(crate) use host::host;
