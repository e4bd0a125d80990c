//! The x86_64 vCPU on SVM: a VMCB in a Multiboot start state (vCPU 0) or in real
//! mode at a start-up IPI's vector (the others), the I/O and MSR permission maps,
//! the world switch, and the exits turned into `VmExit`s by `exits` (MMIO
//! instructions fetched through the guest's page tables and the nested tables by
//! `gwalk`, decoded by `insn`).
//!
//! Answered here without the core: CPUID (`cpuid`), the MSRs of `msr` (passed ones
//! not intercepted, emulated ones answered, unknown ones #GP injected; the x2APIC
//! range goes to the core for the interrupt chip), the ACPI power / reset ports of
//! `pmports` (power-off and reset become `SystemOff` / `SystemReset`). HLT steps
//! over the instruction and waits on this CPU for an interrupt (a kick, the host
//! timer) unless the guest can take one at once, then says `Idle`; a HLT with
//! interrupts masked and no event to deliver is the vCPU turning itself off
//! (`VcpuOff`: the last one powers the VM off; an INIT-SIPI starts it again; an NMI
//! sent to it later is not delivered). The SVM instructions, XSETBV and
//! MONITOR/MWAIT are answered with #UD, INVD and WBINVD are stepped over, RDTSCP is
//! emulated with the vCPU's TSC_AUX (also loaded into the CPU's MSR, for a CPU that
//! ignores the intercept and for RDPID). Interrupts:
//! `fill_irqs` / `sync_irqs` exchange them with the VM's `X86Apic` through
//! `inject`, and arm the host's local APIC timer for the guest's; a MSR the chip
//! refuses (`Reply::Refused`) is a #GP.

use super::exits::{self, Pending, Regs};
use super::gwalk::{self, GuestMem, Paging};
use super::inject::{self, IrqState};
use super::insn::Mode;
use super::ioexit::{code, decode_npf};
use super::msr::{self, InVmcb, Msrs};
use super::permmap::{IoMap, MsrMap, IOPM_SIZE, MSRPM_SIZE};
use super::pmports::{Action, Pm};
use super::vmcb::{ctl, save, Setup, Vmcb};
use super::{boot, cpuid, lapic, port, world};
use crate::devices::irqchip::IrqChip;
use crate::devices::x86apic::X86Apic;
use crate::hal::exit::{Access, FirstTouch, Reply, VmExit};
use crate::hal::HostTimer;
use crate::hal::VcpuStart;
use alloc::boxed::Box;

/// What a CPU needs to run on a VM's nested page tables.
#[derive(Clone, Copy, Debug)]
pub struct Stage2Regs {
    /// The nested page tables' root (VMCB nCR3).
    pub ncr3: u64,
    /// The VM's address-space id.
    pub asid: u16,
}

/// The I/O and MSR permission maps (each 4 KiB aligned: the I/O map is 12 KiB).
#[repr(C, align(4096))]
struct Maps {
    iopm: [u8; IOPM_SIZE],
    msrpm: [u8; MSRPM_SIZE],
}

pub struct Vcpu {
    vmcb: Box<Vmcb>,
    /// Kept alive for the VMCB, which points at them.
    _maps: Box<Maps>,
    regs: Regs,
    pending: Pending,
    ncr3: u64,
    msrs: Msrs,
    pm: Pm,
    cpu: cpuid::Vcpu,
    /// The interrupt offered for the next entry (`inject`).
    irq: IrqState,
    /// The host timer's deadline as last armed (host TSC).
    timer: Option<u64>,
    /// Not entered yet: the first entry clears the CPU's x87/SSE state
    /// (`world::clear_fp_state`), on the CPU the vCPU runs on.
    fresh: bool,
}

/// Host memory, identity-mapped: the nested tables and, through them, guest RAM.
struct HostMem;

impl GuestMem for HostMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        // SAFETY: only addresses the nested tables name are read (the tables
        // themselves and the guest RAM they map), all identity-mapped host RAM.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// Guest-physical memory through the VM's nested tables.
struct GuestRam {
    ncr3: u64,
}

impl GuestMem for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let in_page = (0x1000 - (gpa & 0xfff)) as usize;
        if buf.len() > in_page {
            return false;
        }
        match gwalk::translate(&Paging::nested(self.ncr3), gpa, &HostMem) {
            Ok(hpa) => HostMem.read(hpa, buf),
            Err(_) => false,
        }
    }
}

/// The local APIC's periodic timer fires at most this often per second (100 µs).
const PERIODIC_FLOOR_PER_S: u64 = 10_000;
const EFER_LMA: u64 = 1 << 10;
/// The L bit of a segment's packed attributes.
const ATTR_L: u16 = 1 << 9;
/// TLB_CONTROL: flush this guest's entries.
const TLB_FLUSH_ASID: u32 = 3;

impl Vcpu {
    fn mode(&self) -> Mode {
        let long = self.vmcb.u64(save::EFER) & EFER_LMA != 0;
        if long && self.vmcb.u16(save::CS + 2) & ATTR_L != 0 {
            Mode::Long64
        } else {
            Mode::Prot32
        }
    }

    /// Up to 15 bytes of guest code at RIP; how many could be read.
    fn code_bytes(&self, out: &mut [u8; 15]) -> usize {
        let v = &self.vmcb;
        let paging = Paging {
            cr0: v.u64(save::CR0),
            cr3: v.u64(save::CR3),
            cr4: v.u64(save::CR4),
            efer: v.u64(save::EFER),
        };
        let cs_base = if self.mode() == Mode::Long64 {
            0
        } else {
            v.u64(save::CS + 8)
        };
        let ram = GuestRam { ncr3: self.ncr3 };
        gwalk::fetch(&paging, cs_base.wrapping_add(self.regs.rip), &ram, out).unwrap_or(0)
    }

    /// One VMRUN with the registers; the exit code.
    fn enter(&mut self) -> u64 {
        let r = &self.regs.gpr;
        let mut g = world::GuestRegs {
            rbx: r[3],
            rcx: r[1],
            rdx: r[2],
            rsi: r[6],
            rdi: r[7],
            rbp: r[5],
            r8: r[8],
            r9: r[9],
            r10: r[10],
            r11: r[11],
            r12: r[12],
            r13: r[13],
            r14: r[14],
            r15: r[15],
        };
        self.vmcb.set_u64(save::RAX, r[0]);
        self.vmcb.set_u64(save::RSP, r[4]);
        self.vmcb.set_u64(save::RIP, self.regs.rip);
        self.vmcb.set_u32(ctl::TLB_CONTROL, TLB_FLUSH_ASID);
        self.vmcb.set_u32(ctl::CLEAN_BITS, 0);
        let pa = (&raw const *self.vmcb) as u64;
        // SAFETY: the VMCB is this vCPU's (4 KiB aligned, identity-mapped heap), its
        // nested tables and permission maps live as long as the vCPU, and
        // `enable_svm` pointed this CPU's VM_HSAVE_PA at its save area.
        unsafe { world::run(boot::current_slot(), pa, &mut g) };
        self.regs.gpr = [
            self.vmcb.u64(save::RAX),
            g.rcx,
            g.rdx,
            g.rbx,
            self.vmcb.u64(save::RSP),
            g.rbp,
            g.rsi,
            g.rdi,
            g.r8,
            g.r9,
            g.r10,
            g.r11,
            g.r12,
            g.r13,
            g.r14,
            g.r15,
        ];
        self.regs.rip = self.vmcb.u64(save::RIP);
        // An event whose delivery the exit interrupted (a first touch of the IDT or
        // the stack, say) is delivered again at the next entry.
        inject::after_exit(&mut self.vmcb);
        self.vmcb.u64(ctl::EXITCODE)
    }

    /// Finishes the pending exit with `reply` (stepping over the instruction).
    fn finish(&mut self, reply: Reply) {
        // A reply that does not fit leaves the instruction to run again.
        let _ = exits::complete(self.pending, reply, &mut self.regs);
        self.pending = Pending::Nothing;
    }

    /// #GP(0) for the instruction of the pending exit (not stepped over).
    fn inject_gp(&mut self) {
        inject::gp_fault(&mut self.vmcb);
        self.pending = Pending::Nothing;
    }

    /// Puts the guest's TSC_AUX into this CPU's MSR, which RDTSCP and RDPID read
    /// (QEMU's RDTSCP ignores the intercept; the hypervisor itself never reads
    /// the MSR, and each CPU runs one vCPU), so no value of another VM shows.
    fn load_tsc_aux(&self) {
        // SAFETY: TSC_AUX only feeds RDTSCP/RDPID; the hypervisor does not use it.
        unsafe { port::wrmsr(msr::TSC_AUX, self.msrs.tsc_aux) };
    }

    fn in_vmcb(&self) -> InVmcb {
        InVmcb {
            efer: self.vmcb.u64(save::EFER),
            pat: self.vmcb.u64(save::G_PAT),
            tsc_offset: self.vmcb.u64(ctl::TSC_OFFSET),
        }
    }

    /// Answers the exits that are the arch's own; the others go to the core.
    fn local(&mut self, exit: VmExit) -> Option<VmExit> {
        match exit {
            VmExit::Cpuid { leaf, subleaf } => {
                let v = cpuid::guest(leaf, subleaf, port::cpuid(leaf, subleaf), self.cpu);
                self.finish(Reply::Cpuid(v));
                None
            }
            VmExit::MsrRead { msr: m, .. } if msr::kind(m) != msr::Kind::Chip => {
                match self.msrs.read(m, &self.in_vmcb(), port::rdtsc()) {
                    Some(v) => self.finish(Reply::MsrRead(v)),
                    None => self.inject_gp(),
                }
                None
            }
            VmExit::MsrWrite { msr: m, value, .. } if msr::kind(m) != msr::Kind::Chip => {
                let mut v = self.in_vmcb();
                if self.msrs.write(m, value, &mut v, port::rdtsc()) {
                    if m == msr::TSC_AUX {
                        self.load_tsc_aux();
                    }
                    self.vmcb.set_u64(save::EFER, v.efer);
                    self.vmcb.set_u64(save::G_PAT, v.pat);
                    self.vmcb.set_u64(ctl::TSC_OFFSET, v.tsc_offset);
                    self.finish(Reply::None);
                } else {
                    self.inject_gp();
                }
                None
            }
            VmExit::PortIo {
                port: p,
                width,
                write,
                ..
            } => {
                let guest_tsc = port::rdtsc().wrapping_add(self.vmcb.u64(ctl::TSC_OFFSET));
                let hz = super::X86_64::counter_hz();
                match self.pm.access(p, width, write, guest_tsc, hz) {
                    Action::Done(v) => {
                        let reply = if write.is_some() {
                            Reply::None
                        } else {
                            Reply::PortRead(v)
                        };
                        self.finish(reply);
                        None
                    }
                    Action::PowerOff => Some(VmExit::SystemOff),
                    Action::Reset => Some(VmExit::SystemReset),
                    // A legacy chip the VM does not have (Linux probes them).
                    Action::NotMine => match super::legacy::access(p, width, write) {
                        Some(v) => {
                            let reply = if write.is_some() {
                                Reply::None
                            } else {
                                Reply::PortRead(v)
                            };
                            self.finish(reply);
                            None
                        }
                        None => Some(exit),
                    },
                }
            }
            VmExit::Idle => {
                self.finish(Reply::None);
                // Only an NMI or INIT could wake it: x86's way of turning a CPU off
                // (an OS parks one so); an INIT-SIPI starts it again.
                if inject::halted_masked(&self.vmcb) {
                    return Some(VmExit::VcpuOff);
                }
                // Sleep until an interrupt (a kick: a new virtual interrupt, a stop;
                // the host timer at the local APIC timer's deadline) unless the
                // guest can take one already.
                if !inject::deliverable(&self.vmcb) {
                    port::wait_interrupt();
                }
                Some(VmExit::Idle)
            }
            other => Some(other),
        }
    }
}

impl crate::hal::Vcpu for Vcpu {
    type Stage2Regs = Stage2Regs;

    fn start(s: VcpuStart<Stage2Regs>) -> Self {
        // SAFETY: all-zero bytes are valid permission maps and a valid (empty) VMCB.
        let mut maps = unsafe { Box::<Maps>::new_zeroed().assume_init() };
        // SAFETY: as above.
        let mut vmcb = unsafe { Box::<Vmcb>::new_zeroed().assume_init() };
        IoMap::new(&mut maps.iopm);
        let mut msrpm = MsrMap::new(&mut maps.msrpm);
        for m in msr::PASSED {
            msrpm.pass(m);
        }
        let setup = Setup {
            // VMIDs start at 1: ASID 0 is the host's.
            asid: u32::from(s.stage2.asid),
            ncr3: s.stage2.ncr3,
            iopm_pa: (&raw const maps.iopm) as u64,
            msrpm_pa: (&raw const maps.msrpm) as u64,
        };
        let (linux, arg) = super::linux::split_arg(s.arg);
        if s.index != 0 {
            vmcb.real_mode(&setup, s.entry as u32);
        } else if linux {
            super::linux::start_state(&mut vmcb, &setup, s.entry as u32);
        } else {
            vmcb.multiboot(&setup, s.entry as u32);
        }
        // Guest time starts near zero, as the other arches' counter offset.
        vmcb.set_u64(ctl::TSC_OFFSET, s.cntvoff.wrapping_neg());
        let mut regs = Regs {
            rip: vmcb.u64(save::RIP),
            ..Regs::default()
        };
        regs.gpr[exits::RAX] = vmcb.u64(save::RAX);
        if s.index == 0 {
            // Multiboot: the information block in EBX; Linux: the zero page in ESI.
            let r = if linux { exits::RSI } else { exits::RBX };
            regs.gpr[r] = arg;
        }
        let tsc_khz = super::X86_64::counter_hz() / 1000;
        Self {
            vmcb,
            _maps: maps,
            regs,
            pending: Pending::Nothing,
            ncr3: s.stage2.ncr3,
            msrs: Msrs::new(s.index),
            pm: Pm::default(),
            cpu: cpuid::Vcpu {
                apic_id: s.index as u32,
                vcpus: s.vcpus as u32,
                tsc_khz: u32::try_from(tsc_khz).unwrap_or(u32::MAX),
            },
            irq: IrqState::default(),
            timer: None,
            fresh: true,
        }
    }

    fn run(&mut self, first_touch: FirstTouch) -> VmExit {
        if core::mem::take(&mut self.fresh) {
            world::clear_fp_state();
            self.load_tsc_aux();
        }
        loop {
            let exit = self.enter();
            let info1 = self.vmcb.u64(ctl::EXITINFO1);
            if exits::undefined(exit) {
                inject::ud_fault(&mut self.vmcb);
                continue;
            }
            if let Some(len) = exits::no_op_len(exit) {
                self.regs.rip = self.regs.rip.wrapping_add(u64::from(len));
                continue;
            }
            if exit == code::RDTSCP {
                let tsc = port::rdtsc().wrapping_add(self.vmcb.u64(ctl::TSC_OFFSET));
                exits::rdtscp(&mut self.regs, tsc, self.msrs.tsc_aux);
                continue;
            }
            let (vm_exit, pending) = match exit {
                code::INTR | code::NMI => {
                    port::take_interrupts();
                    return VmExit::Interrupt { forward: None };
                }
                code::VINTR => continue,
                code::NPF => {
                    let gpa = self.vmcb.u64(ctl::EXITINFO2);
                    let npf = decode_npf(info1);
                    let access = if npf.write {
                        Access::Write
                    } else if npf.fetch {
                        Access::Exec
                    } else {
                        Access::Read
                    };
                    if !npf.present && first_touch(gpa, access) {
                        continue;
                    }
                    let during = self.vmcb.u64(ctl::EXITINTINFO);
                    if let Some(stop) = exits::delivery_fault(gpa, during, self.regs.rip) {
                        stop
                    } else {
                        let mut b = [0u8; 15];
                        let n = self.code_bytes(&mut b);
                        exits::mmio(gpa, info1, &self.regs, &b[..n], self.mode())
                    }
                }
                code::IOIO => {
                    let mut b = [0u8; 15];
                    let n = self.code_bytes(&mut b);
                    exits::decode(exit, info1, &self.regs, &b[..n])
                }
                _ => exits::decode(exit, info1, &self.regs, &[]),
            };
            self.pending = pending;
            if let Some(e) = self.local(vm_exit) {
                return e;
            }
        }
    }

    fn reply(&mut self, reply: Reply) {
        if reply == Reply::Refused {
            self.inject_gp();
            return;
        }
        self.finish(reply);
    }

    /// The local APIC's interrupt offered, the host timer armed for its timer.
    fn fill_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        let Some(apic) = chip.model().downcast_mut::<X86Apic>() else {
            return;
        };
        // Guest TSC = host TSC + TSC_OFFSET (the guest may write its TSC).
        let behind = self.vmcb.u64(ctl::TSC_OFFSET).wrapping_neg();
        apic.set_tsc_offset(behind);
        apic.set_period_floor(super::X86_64::counter_hz() / PERIODIC_FLOOR_PER_S);
        let due = inject::fill(&mut self.vmcb, apic, index, &mut self.irq);
        let host = due.map(|d| d.wrapping_add(behind));
        if host != self.timer {
            lapic::arm_timer(host, super::X86_64::counter_hz());
            self.timer = host;
        }
    }

    fn sync_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        if let Some(apic) = chip.model().downcast_mut::<X86Apic>() {
            inject::sync(&mut self.vmcb, apic, index, &mut self.irq);
        }
    }

    fn pc(&self) -> u64 {
        self.regs.rip
    }
}
