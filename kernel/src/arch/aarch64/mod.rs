//! aarch64 (ARMv8-A, EL2 without VHE) support.
//!
//! `board`, `esr` and `stage2` are pure and build everywhere (host unit tests); the
//! rest runs only on the bare-metal target.
pub mod board;
pub mod esr;
pub mod gicv2_lr;
pub mod guest_dtb;
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

#[cfg(target_os = "none")]
mod target {
    use super::{board, firmware, hostgic, mmu, regs, trap};
    use crate::firmware::BoardInfo;

    /// Boot CPU: EL2 identity map over the board's RAM, vectors, then (with the MMU
    /// on, so the caller can print why) what the board must have, and the interrupt
    /// controller.
    pub fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
        mmu::build(p.ram()).map_err(|_| "RAM map too fragmented for the EL2 page tables")?;
        mmu::enable();
        trap::install_vectors();
        board::check(p)?;
        // Console input interrupts go to the boot CPU.
        hostgic::init_primary(p)?;
        init_cpu(p)
    }

    /// Every CPU: MMU on, vectors, its GIC redistributor and CPU interface.
    pub fn init_secondary(p: &BoardInfo) -> Result<(), &'static str> {
        mmu::enable();
        trap::install_vectors();
        init_cpu(p)
    }

    fn init_cpu(p: &BoardInfo) -> Result<(), &'static str> {
        hostgic::init_cpu(p, &super::FORWARDED_PPIS)
    }

    /// Physical address width from ID_AA64MMFR0_EL1.PARange.
    pub fn pa_bits() -> u32 {
        match regs::read_sysreg!(id_aa64mmfr0_el1) & 0xf {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            5 => 48,
            _ => 52,
        }
    }

    /// MPIDR of the CPU running this code.
    pub fn this_cpu() -> u64 {
        regs::mpidr()
    }

    /// Starts CPU `mpidr` at the secondary entry with its stack slot.
    pub fn start_cpu(p: &BoardInfo, mpidr: u64, slot: usize) -> Result<(), i64> {
        let method = board::psci(p);
        let entry = super::boot::secondary_entry as *const () as u64;
        match firmware::cpu_on(method, mpidr, entry, slot as u64) {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// Interrupts CPU `mpidr` so it leaves its guest and looks at its VM's state.
    pub fn kick(mpidr: u64) {
        hostgic::send_sgi(mpidr, hostgic::SGI_KICK);
    }

    /// Waits for an interrupt on a CPU not running a guest (all interrupts stay
    /// masked at EL2) and handles what arrived: kicks end the wait, interrupts of the
    /// hypervisor's own devices go to `host`, timer interrupts of a vCPU that is not
    /// running are dropped.
    pub fn idle(host: &mut dyn FnMut(u32)) {
        regs::wfi();
        loop {
            let intid = hostgic::ack();
            if intid >= 1020 {
                break;
            }
            hostgic::eoi(intid);
            hostgic::deactivate(intid);
            let internal = intid == hostgic::SGI_KICK || intid == hostgic::MAINTENANCE_IRQ;
            if !internal && !super::FORWARDED_PPIS.contains(&intid) {
                host(intid);
            }
        }
    }

    /// Ends the machine: semihosting exit status when enabled, else PSCI SYSTEM_OFF.
    pub fn power_off(p: &BoardInfo, success: bool) -> ! {
        if cfg!(feature = "semihosting-exit") {
            firmware::semihosting_exit(if success { 0 } else { 1 });
        }
        firmware::system_off(board::psci(p));
        loop {
            regs::wfe();
        }
    }

    /// A stage-2 descriptor went from invalid to valid: make the store visible to
    /// the table walkers. Invalid entries are never cached in TLBs, so no TLBI.
    pub fn stage2_mapped(_gpa: u64) {
        // SAFETY: barriers only.
        unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack, preserves_flags)) };
    }

    /// Stage-2 descriptors of the VM whose vCPU runs on this CPU (its VMID is in
    /// VTTBR_EL2) became invalid: drop its cached translations on every CPU.
    pub fn stage2_unmapped() {
        // SAFETY: TLB maintenance for the current VMID and barriers; no operands.
        unsafe {
            core::arch::asm!(
                "dsb ishst",
                "tlbi vmalls12e1is",
                "dsb ish",
                "isb",
                options(nostack, preserves_flags)
            )
        };
    }

    /// Zeroes guest RAM at `[hpa, hpa + len)`; `clean_for_guest` must follow before
    /// a guest with its MMU off may read it.
    ///
    /// # Safety
    /// The range must be RAM the caller owns (a VM's, with no vCPU using it).
    pub unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        // SAFETY: guaranteed by the caller.
        unsafe { super::cache::zero_range(hpa, len) }
    }

    /// Makes what the hypervisor wrote to `[hpa, hpa + len)` visible to a guest
    /// running with its MMU (and so its caches) off.
    pub fn clean_for_guest(hpa: u64, len: u64) {
        super::cache::clean_invalidate_range(hpa, len);
    }
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
