//! riscv64 support: the hypervisor runs in HS-mode (RISC-V H extension), started by
//! OpenSBI; guests run in VS-mode behind a G-stage translation.
//!
//! `gstage`, `insn`, `sbi` and `guest_dtb` are pure and build everywhere (host unit
//! tests); the rest runs only on the bare-metal target.
pub mod guest_dtb;
pub mod gstage;
pub mod insn;
pub mod sbi;
