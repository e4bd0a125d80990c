//! Architecture support. Pure parts (trap decoders, table formats) build on every host
//! so they can be unit-tested; the parts that touch the CPU are gated on the target.
//! `current` names the architecture the kernel is built for; the core uses only
//! `current::{init_primary, init_secondary, start_cpu, kick, power_off, Vcpu, ...}`.
#[cfg(any(target_arch = "aarch64", not(target_os = "none")))]
pub mod aarch64;
#[cfg(any(target_arch = "riscv64", not(target_os = "none")))]
pub mod riscv64;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64 as current;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64 as current;

/// Facts about the guests of the architecture the kernel is built for, which the
/// arch-neutral VMM needs (vCPU MPIDRs, forwarded PPIs, console model, config rules).
/// Host unit tests use aarch64's.
#[cfg(any(target_arch = "aarch64", not(target_os = "none")))]
pub use aarch64::guest;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64::guest;

/// The per-VM interrupt state a vCPU of this architecture exchanges with before it
/// enters the guest (`Vcpu::fill_irqs`) and after it leaves (`Vcpu::sync_irqs`): the
/// virtual GIC on aarch64, the virtual PLIC (with the harts' software lines) on
/// riscv64.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn irq_chip(
    devices: &mut crate::vmm::devices::VmDevices,
) -> Option<&mut crate::devices::vgic::Vgic> {
    devices.vgic()
}

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub fn irq_chip(
    devices: &mut crate::vmm::devices::VmDevices,
) -> Option<&mut crate::devices::vplic::Vplic> {
    devices.vplic()
}
