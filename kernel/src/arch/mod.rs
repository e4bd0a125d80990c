//! Architecture support: everything that touches a CPU's registers, its exception
//! vectors, its world switch or its firmware interface, behind the traits of
//! `crate::hal`. Pure parts (trap decoders, table formats, guest device-tree
//! builders) build on every host so they are unit-tested there; the parts that
//! touch the CPU are built for their target only. `hal::Current` says which
//! architecture the kernel is built for.
#[cfg(any(target_arch = "aarch64", not(target_os = "none")))]
pub mod aarch64;
#[cfg(any(target_arch = "riscv64", not(target_os = "none")))]
pub mod riscv64;
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "riscv64",
    not(target_os = "none")
))]
pub mod stacks;
#[cfg(any(target_arch = "x86_64", not(target_os = "none")))]
pub mod x86_64;
