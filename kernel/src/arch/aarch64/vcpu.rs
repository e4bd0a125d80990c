//! A virtual CPU on aarch64: the EL2 configuration of the physical CPU it is pinned
//! to, entering the guest, and decoding each exception into a [`VmExit`].

use super::esr::{self, ec, DataAbort};
use super::hostgic as gic;
use super::idregs::{self, IdRead, IdReg};
use super::lrs::ListRegs;
use super::pmu_debug;
use super::regs::{read_sysreg, write_sysreg};
use super::smccc::{
    self, Smccc, PSCI_ALREADY_ON, PSCI_DENIED, PSCI_INVALID_ADDRESS, PSCI_INVALID_PARAMS,
    PSCI_SUCCESS,
};
use super::trap::{guest_enter, ExitKind, Frame};
use crate::devices::irqchip::IrqChip;
use crate::devices::vgic::{self, Vgic};
use crate::hal::exit::{Access, Fault, FirstTouch, Reply, VcpuOnError, VmExit};
use crate::hal::VcpuStart;

/// HCR_EL2: VM | SWIO | FMO | IMO | AMO | TID3 | TSC | TIDCP | RW. WFI and WFE are not
/// trapped: a vCPU has its physical CPU to itself, so a guest waiting in WFI lets that
/// CPU sleep in hardware until a virtual interrupt (list register) or a physical one
/// (taken to EL2, a kick or the timer) arrives; trapping would add an exit per idle
/// period. TID3 traps the ID registers, answered from `idregs`. API and APK stay
/// clear: pointer authentication is not offered (see `idregs`), so its key registers
/// and, with a key enabled, its instructions trap. TIDCP traps the implementation
/// defined registers (CRn 11 and 15: CPU-specific power, prefetch and coherency
/// controls such as Cortex-A72's CPUECTLR_EL1), which are no guest's business: an
/// access stops the VM (attack kind `sysreg-impdef`).
const HCR: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 18)
    | (1 << 19)
    | (1 << 20)
    | (1 << 31);
/// EL1h with D, A, I, F masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// SCTLR_EL1 reset value: MMU and caches off, RES1 bits set.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// The state of one VM's stage-2 translation, as the CPU needs it.
#[derive(Clone, Copy, Debug)]
pub struct Stage2Regs {
    pub root: u64,
    pub vmid: u16,
    pub ipa_bits: u32,
    /// Level of the root table: 1, or 2 (concatenated tables).
    pub start_level: u32,
}

pub struct Vcpu {
    frame: Frame,
    lrs: ListRegs,
    /// The exit being answered, to know how to place the reply.
    pending: Option<VmExit>,
    /// Register of the MMIO load being emulated: (reg, width, sign_extend, reg64).
    mmio_load: Option<(u8, u8, bool, bool)>,
    /// The VM's IPA size, the most ID_AA64MMFR0_EL1.PARange shows it.
    ipa_bits: u32,
}

/// Programs this physical CPU for running vCPU `index` of a VM.
pub fn activate(s2: Stage2Regs, index: usize, cntvoff: u64) {
    let parange = read_sysreg!(id_aa64mmfr0_el1) & 0xf;
    let t0sz = 64 - s2.ipa_bits as u64;
    // SL0 = 2 - start level (4 KiB granule), inner/outer WB walks, inner shareable.
    let sl0 = 2 - u64::from(s2.start_level.clamp(1, 2));
    let vtcr = t0sz
        | (sl0 << 6)
        | (1 << 8)
        | (1 << 10)
        | (3 << 12)
        | (parange.min(0b101) << 16)
        | (1 << 31);
    write_sysreg!(vtcr_el2, vtcr);
    write_sysreg!(vttbr_el2, s2.root | ((s2.vmid as u64) << 48));
    write_sysreg!(hcr_el2, HCR);
    write_sysreg!(vpidr_el2, read_sysreg!(midr_el1));
    write_sysreg!(vmpidr_el2, (1 << 31) | super::vcpu_mpidr(index));
    // EL1 may use the physical counter and timer; the virtual timer is the guest's.
    write_sysreg!(cnthctl_el2, 0b11);
    write_sysreg!(cntvoff_el2, cntvoff);
    // No FP/SIMD traps: the hypervisor never touches FP state (softfloat target), so
    // the guest's registers stay in the CPU across exits. SVE, SME and the activity
    // monitors trap (not offered, see `idregs`).
    write_sysreg!(cptr_el2, idregs::cptr_el2(read_sysreg!(id_aa64pfr0_el1)));
    write_sysreg!(hstr_el2, 0);
    // PMU and debug registers trapped and emulated as inert (see `pmu_debug`): the
    // guest cannot count at EL2, and no such state survives into its next boot.
    let dfr0 = read_sysreg!(id_aa64dfr0_el1);
    let pmu = pmu_debug::has_pmu(dfr0);
    let pmcr = if pmu { read_sysreg!(pmcr_el0) } else { 0 };
    write_sysreg!(mdcr_el2, pmu_debug::mdcr_el2(dfr0, pmcr));
    write_sysreg!(mdscr_el1, 0);
    if pmu {
        write_sysreg!(pmuserenr_el0, 0);
    }
    write_sysreg!(sctlr_el1, SCTLR_EL1_RESET);
    clear_el1_state();
    // A vCPU starts with its timers off and no virtual interrupt in flight.
    write_sysreg!(cntv_ctl_el0, 0);
    write_sysreg!(cntp_ctl_el0, 0);
    gic::reset_virtual_interface();
    // SAFETY: invalidates this VMID's stage-1/2 TLB entries on this CPU; no operands.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}

/// Turns off the guest timers a vCPU that no longer runs left in this CPU: their
/// interrupts are level-triggered, so one left firing would come back at once
/// after each acknowledge and keep an idle CPU from ever seeing another interrupt
/// (the console's). A vCPU that starts here later sets them up afresh (`activate`).
pub fn quiesce_timers() {
    write_sysreg!(cntv_ctl_el0, 0);
    write_sysreg!(cntp_ctl_el0, 0);
}

/// Nothing of whoever ran on this CPU before (another VM, or this VM before its
/// reset) is left in the state the guest owns: FP/SIMD registers and the EL1 system
/// registers the world switch does not save (they stay in the CPU across exits).
fn clear_el1_state() {
    // SAFETY: writes zero to guest-owned FP/SIMD registers; the hypervisor itself
    // never uses them (softfloat target) and FP is not trapped at EL2 (CPTR_EL2.TFP 0).
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "movi v0.2d, #0",
            "movi v1.2d, #0",
            "movi v2.2d, #0",
            "movi v3.2d, #0",
            "movi v4.2d, #0",
            "movi v5.2d, #0",
            "movi v6.2d, #0",
            "movi v7.2d, #0",
            "movi v8.2d, #0",
            "movi v9.2d, #0",
            "movi v10.2d, #0",
            "movi v11.2d, #0",
            "movi v12.2d, #0",
            "movi v13.2d, #0",
            "movi v14.2d, #0",
            "movi v15.2d, #0",
            "movi v16.2d, #0",
            "movi v17.2d, #0",
            "movi v18.2d, #0",
            "movi v19.2d, #0",
            "movi v20.2d, #0",
            "movi v21.2d, #0",
            "movi v22.2d, #0",
            "movi v23.2d, #0",
            "movi v24.2d, #0",
            "movi v25.2d, #0",
            "movi v26.2d, #0",
            "movi v27.2d, #0",
            "movi v28.2d, #0",
            "movi v29.2d, #0",
            "movi v30.2d, #0",
            "movi v31.2d, #0",
            "msr fpcr, xzr",
            "msr fpsr, xzr",
            options(nostack)
        )
    };
    write_sysreg!(tpidr_el1, 0);
    write_sysreg!(tpidr_el0, 0);
    write_sysreg!(tpidrro_el0, 0);
    write_sysreg!(contextidr_el1, 0);
    write_sysreg!(vbar_el1, 0);
    write_sysreg!(ttbr0_el1, 0);
    write_sysreg!(ttbr1_el1, 0);
    write_sysreg!(tcr_el1, 0);
    write_sysreg!(mair_el1, 0);
    write_sysreg!(amair_el1, 0);
    write_sysreg!(cpacr_el1, 0);
    write_sysreg!(cntkctl_el1, 0);
    write_sysreg!(sp_el0, 0);
    write_sysreg!(sp_el1, 0);
    write_sysreg!(elr_el1, 0);
    write_sysreg!(spsr_el1, 0);
    write_sysreg!(esr_el1, 0);
    write_sysreg!(far_el1, 0);
    write_sysreg!(par_el1, 0);
    write_sysreg!(afsr0_el1, 0);
    write_sysreg!(afsr1_el1, 0);
}

/// The hypervisor's current counter value (for per-VM virtual counter offsets).
pub fn counter() -> u64 {
    read_sysreg!(cntpct_el0)
}

/// Ticks of [`counter`] per second.
pub fn counter_hz() -> u64 {
    read_sysreg!(cntfrq_el0)
}

impl crate::hal::Vcpu for Vcpu {
    type Stage2Regs = Stage2Regs;

    /// Programs this CPU for the vCPU ([`activate`]) and resets it to `start.entry`.
    fn start(s: VcpuStart<Stage2Regs>) -> Self {
        activate(s.stage2, s.index, s.cntvoff);
        let mut v = Self::new(s.entry, s.arg);
        v.ipa_bits = s.stage2.ipa_bits;
        v
    }

    /// Runs the guest until an exit the VMM must see. `first_touch` is asked first
    /// about every stage-2 translation fault.
    fn run(&mut self, first_touch: FirstTouch) -> VmExit {
        loop {
            let exit = match guest_enter(&mut self.frame) {
                ExitKind::Sync => self.sync_exit(first_touch),
                ExitKind::Irq | ExitKind::Fiq => Some(irq_exit()),
                ExitKind::SError => Some(self.fault("SError (asynchronous external abort)", None)),
                ExitKind::Aarch32 => {
                    Some(self.fault("exception from AArch32 state (not supported)", None))
                }
            };
            if let Some(e) = exit {
                self.pending = Some(e);
                return e;
            }
        }
    }

    /// Hands the virtual GIC's deliverable interrupts to the list registers. Before
    /// every entry.
    fn fill_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        if let Some(vgic) = chip.model().downcast_mut::<Vgic>() {
            self.lrs.fill(vgic, index);
        }
    }

    /// Reports to the virtual GIC what the guest did with its list registers. After
    /// every exit.
    fn sync_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        if let Some(vgic) = chip.model().downcast_mut::<Vgic>() {
            self.lrs.sync(vgic, index);
        }
    }

    /// Applies the VMM's answer to the last exit.
    fn reply(&mut self, reply: Reply) {
        match (self.pending.take(), reply) {
            (Some(VmExit::Mmio { .. }), Reply::MmioRead(v)) => {
                if let Some((reg, width, sign, reg64)) = self.mmio_load.take() {
                    self.set_reg(reg, extend(v, width, sign, reg64));
                }
            }
            (_, Reply::VcpuOn(r)) => {
                let code = match r {
                    Ok(()) => PSCI_SUCCESS,
                    Err(VcpuOnError::InvalidTarget) => PSCI_INVALID_PARAMS,
                    Err(VcpuOnError::AlreadyOn) => PSCI_ALREADY_ON,
                    Err(VcpuOnError::InvalidAddress) => PSCI_INVALID_ADDRESS,
                    Err(VcpuOnError::Denied) => PSCI_DENIED,
                };
                self.frame.x[0] = code as u64;
            }
            // AFFINITY_INFO: 0 ON, 1 OFF.
            (_, Reply::VcpuStatus { on }) => self.frame.x[0] = if on { 0 } else { 1 },
            (_, Reply::Hypercall(r)) => self.frame.x[..4].copy_from_slice(&r),
            (_, Reply::Return(v)) => self.frame.x[0] = v,
            _ => {}
        }
    }

    fn pc(&self) -> u64 {
        self.frame.elr
    }
}

impl Vcpu {
    /// A vCPU that starts at `entry` in EL1h, MMU off, with x0 = `arg`.
    pub fn new(entry: u64, arg: u64) -> Self {
        let mut frame = Frame::default();
        frame.x[0] = arg;
        frame.elr = entry;
        frame.spsr = SPSR_EL1H_MASKED;
        Self {
            frame,
            lrs: ListRegs::default(),
            pending: None,
            mmio_load: None,
            ipa_bits: 32,
        }
    }

    fn reg(&self, r: u8) -> u64 {
        if r == 31 {
            0
        } else {
            self.frame.x[r as usize]
        }
    }

    fn set_reg(&mut self, r: u8, v: u64) {
        if r != 31 {
            self.frame.x[r as usize] = v;
        }
    }

    fn fault(&self, what: &'static str, addr: Option<u64>) -> VmExit {
        VmExit::Fault(Fault {
            what,
            addr,
            pc: self.frame.elr,
            syndrome: read_sysreg!(esr_el2),
        })
    }

    /// Decodes a synchronous exception; None when it was handled here entirely.
    fn sync_exit(&mut self, first_touch: FirstTouch) -> Option<VmExit> {
        let esr = read_sysreg!(esr_el2);
        let class = esr::class(esr);
        if matches!(class, ec::DABT_LOWER | ec::IABT_LOWER) && esr::is_translation_fault(esr) {
            let ipa = esr::fault_ipa(read_sysreg!(hpfar_el2), read_sysreg!(far_el2));
            let access = match class {
                ec::IABT_LOWER => Access::Exec,
                _ if esr::is_data_write(esr) => Access::Write,
                _ => Access::Read,
            };
            if first_touch(ipa, access) {
                return None;
            }
        }
        match class {
            ec::DABT_LOWER => Some(self.data_abort(esr)),
            ec::HVC64 => {
                if esr & 0xffff != 0 {
                    return Some(self.fault(
                        "undefined hypervisor call (HVC with non-zero immediate)",
                        None,
                    ));
                }
                self.smccc_call()
            }
            ec::SMC64 => {
                // A trapped SMC returns to the SMC itself: step over it.
                self.frame.elr += 4;
                self.smccc_call()
            }
            // Not trapped (HCR_EL2.TWI/TWE clear): the guest sleeps in hardware. Should
            // one arrive anyway, stepping over it is correct (WFx may wake at will).
            ec::WFX => {
                self.frame.elr += esr::instr_len(esr);
                Some(VmExit::Idle)
            }
            ec::SYSREG => self.sysreg(esr),
            ec::IABT_LOWER => {
                let ipa = esr::fault_ipa(read_sysreg!(hpfar_el2), read_sysreg!(far_el2));
                Some(self.fault(
                    "instruction abort (executing outside guest memory)",
                    Some(ipa),
                ))
            }
            ec::UNKNOWN => Some(self.fault("undefined instruction trapped to EL2", None)),
            ec::PAC => Some(self.fault(
                "pointer authentication instruction with a key enabled (pointer authentication is not offered to guests)",
                None,
            )),
            ec::SVE => Some(self.fault(
                "SVE instruction or register access (SVE is not offered to guests)",
                None,
            )),
            ec::SME => Some(self.fault(
                "SME instruction or register access (SME is not offered to guests)",
                None,
            )),
            _ => Some(self.fault("unknown exception class", None)),
        }
    }

    fn data_abort(&mut self, esr: u64) -> VmExit {
        let gpa = esr::fault_ipa(read_sysreg!(hpfar_el2), read_sysreg!(far_el2));
        let pc = self.frame.elr;
        match esr::data_abort(esr) {
            DataAbort::NoSyndrome { .. } => {
                self.fault("data abort without instruction syndrome (load/store pair or writeback: cannot emulate)", Some(gpa))
            }
            DataAbort::Access(a) => {
                self.frame.elr += esr::instr_len(esr);
                let write = a.write.then(|| self.reg(a.reg) & width_mask(a.width));
                self.mmio_load = (!a.write).then_some((a.reg, a.width, a.sign_extend, a.reg64));
                VmExit::Mmio { gpa, width: a.width, write, pc }
            }
        }
    }

    /// A trapped MSR/MRS. None = emulated here.
    fn sysreg(&mut self, esr: u64) -> Option<VmExit> {
        let acc = esr::sysreg(esr);
        if let Some(group) = esr::sgi_register(acc.encoding()).filter(|_| !acc.read) {
            self.frame.elr += esr::instr_len(esr);
            return Some(VmExit::Ipi {
                value: vgic::sgi_request(self.reg(acc.reg), group.group0_only()),
            });
        }
        if let Some(id) = idregs::classify(acc.encoding()) {
            if !acc.read {
                return Some(self.fault("write to a read-only ID register", None));
            }
            self.frame.elr += esr::instr_len(esr);
            let v = match id {
                IdRead::Sanitised(reg) => idregs::guest_value(reg, host_id(reg), self.ipa_bits),
                IdRead::Zero => 0,
            };
            self.set_reg(acc.reg, v);
            return None;
        }
        if esr::is_pauth_key(acc.encoding()) {
            return Some(self.fault(
                "pointer authentication key register access (pointer authentication is not offered to guests)",
                None,
            ));
        }
        if pmu_debug::is_pmu_or_debug(acc.encoding()) {
            // Read as zero, writes ignored.
            self.frame.elr += esr::instr_len(esr);
            if acc.read {
                self.set_reg(acc.reg, 0);
            }
            return None;
        }
        Some(self.fault("unhandled system register access", None))
    }

    /// PSCI and hypercalls (SMC calling convention). None = answered here.
    fn smccc_call(&mut self) -> Option<VmExit> {
        let mut x = [0; 5];
        x.copy_from_slice(&self.frame.x[..5]);
        match smccc::decode(x) {
            Smccc::Return(x0) => {
                self.frame.x[0] = x0 as u64;
                None
            }
            Smccc::Exit(e) => Some(e),
        }
    }
}

fn width_mask(width: u8) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    }
}

/// The value a load of `width` bytes leaves in its destination register.
fn extend(v: u64, width: u8, sign: bool, reg64: bool) -> u64 {
    let v = v & width_mask(width);
    let v = if sign && width < 8 {
        let shift = 64 - width as u32 * 8;
        (((v << shift) as i64) >> shift) as u64
    } else {
        v
    };
    if reg64 {
        v
    } else {
        v & 0xffff_ffff
    }
}

/// The host's value of an ID register the guest sees part of.
fn host_id(reg: IdReg) -> u64 {
    match reg {
        IdReg::Pfr0 => read_sysreg!(id_aa64pfr0_el1),
        IdReg::Pfr1 => read_sysreg!(id_aa64pfr1_el1),
        IdReg::Dfr0 => read_sysreg!(id_aa64dfr0_el1),
        IdReg::Isar0 => read_sysreg!(id_aa64isar0_el1),
        IdReg::Isar1 => read_sysreg!(id_aa64isar1_el1),
        // ID_AA64ISAR2_EL1 and ID_AA64MMFR2_EL1 by encoding: on CPUs older than them
        // they are reserved ID space, which reads as zero.
        IdReg::Isar2 => read_sysreg!(s3_0_c0_c6_2),
        IdReg::Mmfr0 => read_sysreg!(id_aa64mmfr0_el1),
        IdReg::Mmfr1 => read_sysreg!(id_aa64mmfr1_el1),
        IdReg::Mmfr2 => read_sysreg!(s3_0_c0_c7_2),
    }
}

/// Handles a physical interrupt taken while a guest ran.
fn irq_exit() -> VmExit {
    let intid = gic::ack();
    if intid >= 1020 {
        return VmExit::Interrupt { forward: None };
    }
    gic::eoi(intid);
    if super::FORWARDED_PPIS.contains(&intid) {
        // Stays active until the guest deactivates the virtual interrupt, which the
        // list register's HW bit passes on to the physical one.
        return VmExit::Interrupt {
            forward: Some(intid),
        };
    }
    gic::deactivate(intid);
    if intid == gic::SGI_KICK || intid == gic::MAINTENANCE_IRQ {
        VmExit::Interrupt { forward: None }
    } else {
        VmExit::HostInterrupt { intid }
    }
}
