//! aarch64's implementation of the hardware interface (`crate::hal`): CPU
//! bring-up, the host GIC as the core sees it, TLB and cache maintenance, and the
//! vCPU (whose work is in `vcpu.rs`).

use super::{board, firmware, hostgic, mmu, regs, trap};
use crate::firmware::{BoardInfo, DiscoveryError, Handover};
use crate::hal::{Arch, Cpu, DirectWindow, GuestBoot, HostIrq, HostPorts, HostTimer, MemoryOps};
use crate::spec::VmSpec;
use alloc::string::String;
use alloc::vec::Vec;

/// The aarch64 architecture (EL2, no VHE).
pub struct Aarch64;

impl Cpu for Aarch64 {
    /// The device tree the boot loader passed.
    /// The device tree the boot loader passed in x0.
    fn discover(handover: u64) -> Result<Handover, DiscoveryError> {
        crate::firmware::fdt::handover(handover)
    }
    /// Boot CPU: EL2 identity map over the board's RAM, vectors, then (with the MMU
    /// on, so the caller can print why) what the board must have, and the interrupt
    /// controller.
    fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
        mmu::build(
            p.ram(),
            &super::boot::guard_pages(),
            crate::arch::stacks::GUARD_SIZE as u64,
        )
        .map_err(|_| "RAM map too fragmented for the EL2 page tables")?;
        mmu::enable();
        trap::install_vectors();
        board::check(p)?;
        // Console input interrupts go to the boot CPU.
        hostgic::init_primary(p)?;
        hostgic::init_cpu(p, &super::FORWARDED_PPIS)
    }

    /// Every CPU: MMU on, vectors, its GIC redistributor and CPU interface.
    fn init_secondary(p: &BoardInfo) -> Result<(), &'static str> {
        mmu::enable();
        trap::install_vectors();
        hostgic::init_cpu(p, &super::FORWARDED_PPIS)
    }

    /// The MPIDR of the CPU running this code.
    fn this_cpu() -> u64 {
        regs::mpidr()
    }

    /// Starts CPU `mpidr` at the secondary entry with its stack slot (PSCI CPU_ON).
    fn start_cpu(p: &BoardInfo, mpidr: u64, slot: usize) -> Result<(), i64> {
        let entry = super::boot::secondary_entry as *const () as u64;
        match firmware::cpu_on(board::psci(p), mpidr, entry, slot as u64) {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// Ends the machine: semihosting exit status when enabled, else PSCI SYSTEM_OFF.
    fn power_off(p: &BoardInfo, success: bool) -> ! {
        if cfg!(feature = "semihosting-exit") {
            firmware::semihosting_exit(if success { 0 } else { 1 });
        }
        firmware::system_off(board::psci(p));
        loop {
            regs::wfe();
        }
    }

    /// PSCI SYSTEM_RESET.
    fn reboot(p: &BoardInfo) -> ! {
        firmware::system_reset(board::psci(p));
        loop {
            regs::wfe();
        }
    }
}

impl HostIrq for Aarch64 {
    /// A kick is an SGI: the CPU leaves its guest and looks at its VM's state.
    fn kick(mpidr: u64) {
        hostgic::send_sgi(mpidr, hostgic::SGI_KICK);
    }

    /// Waits with all interrupts masked at EL2 and handles what arrived: kicks end
    /// the wait, interrupts of the hypervisor's own devices go to `host`, timer
    /// interrupts of a vCPU that is not running are dropped.
    fn idle(host: &mut dyn FnMut(u32)) {
        regs::wfi();
        loop {
            let intid = hostgic::ack();
            if intid >= 1020 {
                break;
            }
            hostgic::eoi(intid);
            hostgic::deactivate(intid);
            let internal = intid == hostgic::SGI_KICK || intid == hostgic::MAINTENANCE_IRQ;
            if super::FORWARDED_PPIS.contains(&intid) {
                // A stopped vCPU's timer (Linux powers off with its timer armed).
                super::vcpu::quiesce_timers();
            } else if !internal {
                host(intid);
            }
        }
    }
}

impl HostTimer for Aarch64 {
    fn counter() -> u64 {
        super::vcpu::counter()
    }
    fn counter_hz() -> u64 {
        super::vcpu::counter_hz()
    }
}

/// No I/O port space: reads are all ones, writes go nowhere.
impl HostPorts for Aarch64 {
    fn port_read(_port: u16) -> u8 {
        0xff
    }
    fn port_write(_port: u16, _value: u8) {}
}

impl MemoryOps for Aarch64 {
    /// TLBI ... IS: the inner-shareable domain, every CPU.
    const STAGE2_UNMAP_ALL_CPUS: bool = true;
    /// Makes the store visible to the table walkers. Invalid entries are never
    /// cached in TLBs, so no TLBI.
    fn stage2_mapped(_gpa: u64) {
        // SAFETY: barriers only.
        unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack, preserves_flags)) };
    }

    /// Drops the current VMID's cached translations on every CPU.
    fn stage2_unmapped() {
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

    /// `dc zva` over the range; `clean_for_guest` must follow before a guest with
    /// its MMU off may read it.
    unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        // SAFETY: guaranteed by the caller (see the trait).
        unsafe { super::cache::zero_range(hpa, len) }
    }

    fn clean_for_guest(hpa: u64, len: u64) {
        super::cache::clean_invalidate_range(hpa, len);
    }
}

impl GuestBoot for Aarch64 {
    fn guest_description(spec: &VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
        let seed = crate::entropy::guest_seed(u64::from(spec.id), super::vcpu::counter());
        super::guest_dtb::for_vm(spec, memory, seed.as_ref().map(|s| &s[..]))
    }
    fn kernel_footprint(
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        super::image::FORMAT.kernel_footprint(image, load, others)
    }
    fn direct_windows(spec: &VmSpec, p: &BoardInfo) -> Result<Vec<DirectWindow>, String> {
        super::vm_gic::direct_windows(spec, p)
    }
}

impl Arch for Aarch64 {
    type Vcpu = super::vcpu::Vcpu;
    type Stage2Regs = super::vcpu::Stage2Regs;
    type Stage2 = super::stage2::Stage2;
    const MAX_IPA_BITS: u32 = super::stage2::MAX_IPA_BITS;
    /// 8-bit VMIDs (VTCR_EL2.VS = 0).
    const MAX_VMID: u16 = 255;
    const CONSOLE: crate::devices::ConsoleKind = crate::devices::ConsoleKind::Pl011;
    const LIMITS: vmconfig::ArchLimits = vmconfig::AARCH64;
    const PERCPU_HW_IRQS: &'static [u32] = &super::FORWARDED_PPIS;
    /// From ID_AA64MMFR0_EL1.PARange.
    fn pa_bits() -> u32 {
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
    fn stage2_regs(s2: &Self::Stage2, vmid: u16) -> Self::Stage2Regs {
        s2.regs(vmid)
    }
    fn vcpu_id(index: usize) -> u64 {
        super::vcpu_mpidr(index)
    }
    fn vcpu_index(id: u64) -> Option<usize> {
        super::vcpu_index(id)
    }
}
