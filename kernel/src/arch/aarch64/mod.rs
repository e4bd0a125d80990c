//! aarch64 (ARMv8-A, EL2 without VHE) support.
//!
//! `board`, `esr`, `idregs`, `pmu_debug` and `stage2` are pure and build everywhere (host unit tests); the
//! rest runs only on the bare-metal target.
pub mod board;
pub mod esr;
pub mod gicv2_lr;
pub mod guest_dtb;
pub mod idregs;
pub mod image;
pub mod pmu_debug;
pub mod smccc;
pub mod stage2;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod cache;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod gicv2;
#[cfg(target_os = "none")]
pub mod gicv3;
#[cfg(target_os = "none")]
mod hal_impl;
#[cfg(target_os = "none")]
mod hostgic;
#[cfg(target_os = "none")]
mod lrs;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod regs;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod vcpu;
#[cfg(target_os = "none")]
mod vm_gic;

#[cfg(target_os = "none")]
pub use hal_impl::Aarch64;

/// Timer PPIs (GIC INTIDs) a guest owns: the virtual and the EL1 physical timer.
/// They are forwarded to the vCPU on the CPU they fire on.
pub const FORWARDED_PPIS: [u32; 2] = [27, 30];

/// The MPIDR affinity (Aff1:Aff0) of vCPU `index`, which is `index` itself: what
/// VMPIDR_EL2 gives the vCPU, what the guest DTB and the virtual GIC name it by. A
/// vCPU needs a physical CPU of its own, so indices stay far below the 65536 that
/// Aff1:Aff0 can number. [`vcpu_index`] is the inverse.
pub fn vcpu_mpidr(index: usize) -> u64 {
    let i = index as u64;
    (((i >> 8) & 0xff) << 8) | (i & 0xff)
}

/// The vCPU index a guest means by an MPIDR (Aff1:Aff0; see [`vcpu_mpidr`]).
pub fn vcpu_index(mpidr: u64) -> Option<usize> {
    (mpidr & !0xffff == 0).then_some((((mpidr >> 8) & 0xff) * 256 + (mpidr & 0xff)) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_mpidr_is_the_index_and_vcpu_index_inverts_it() {
        for i in [0, 1, 7, 255, 256, 257, 0xffff] {
            assert_eq!(vcpu_mpidr(i), i as u64);
            assert_eq!(vcpu_index(vcpu_mpidr(i)), Some(i));
        }
        assert_eq!(vcpu_index(0x1_0000), None, "Aff2 is never a vCPU's");
        assert_eq!(vcpu_index(1 << 32), None, "nor Aff3");
    }
}
