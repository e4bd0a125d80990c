//! The x86_64 vCPU on SVM: a VMCB in a Multiboot start state, the I/O and MSR
//! permission maps (everything intercepted), the world switch, and the exits turned
//! into `VmExit`s by `exits` (MMIO instructions fetched through the guest's page
//! tables and the nested tables by `gwalk`, decoded by `insn`).
//!
//! Not reached yet: VM creation is refused before a vCPU exists (`hal_impl`'s
//! `direct_windows` says "not supported yet"), so this code has not run a guest.
//! Missing before it can: CPUID and the MSRs other than the APIC's answered (the
//! core stops the VM on them with "not supported yet"). Interrupts: `fill_irqs` /
//! `sync_irqs` exchange them with the VM's `X86Apic` through `inject`; a refused
//! MSR (`Reply::Refused`) is a #GP.

use super::exits::{self, Pending, Regs};
use super::gwalk::{self, GuestMem, Paging};
use super::inject::{self, IrqState};
use super::insn::Mode;
use super::ioexit::{code, decode_npf};
use super::permmap::{IoMap, MsrMap, IOPM_SIZE, MSRPM_SIZE};
use super::vmcb::{ctl, save, Setup, Vmcb};
use super::{boot, lapic, port, world};
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
    /// The interrupt offered / queued for the next entry (`inject`).
    irq: IrqState,
    /// Guest TSC = host TSC - cntvoff.
    cntvoff: u64,
    /// The host timer's deadline as last armed (host TSC).
    timer: Option<u64>,
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
        self.vmcb.u64(ctl::EXITCODE)
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
        MsrMap::new(&mut maps.msrpm);
        let setup = Setup {
            // VMIDs start at 1: ASID 0 is the host's.
            asid: u32::from(s.stage2.asid),
            ncr3: s.stage2.ncr3,
            iopm_pa: (&raw const maps.iopm) as u64,
            msrpm_pa: (&raw const maps.msrpm) as u64,
        };
        vmcb.multiboot(&setup, s.entry as u32);
        // Guest time starts near zero, as the other arches' counter offset.
        vmcb.set_u64(ctl::TSC_OFFSET, s.cntvoff.wrapping_neg());
        let mut regs = Regs {
            rip: vmcb.u64(save::RIP),
            ..Regs::default()
        };
        regs.gpr[exits::RAX] = vmcb.u64(save::RAX);
        regs.gpr[exits::RBX] = s.arg;
        Self {
            vmcb,
            _maps: maps,
            regs,
            pending: Pending::Nothing,
            ncr3: s.stage2.ncr3,
            irq: IrqState::default(),
            cntvoff: s.cntvoff,
            timer: None,
        }
    }

    fn run(&mut self, first_touch: FirstTouch) -> VmExit {
        loop {
            let exit = self.enter();
            let info1 = self.vmcb.u64(ctl::EXITINFO1);
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
                    let mut b = [0u8; 15];
                    let n = self.code_bytes(&mut b);
                    exits::mmio(gpa, info1, &self.regs, &b[..n], self.mode())
                }
                code::IOIO => {
                    let mut b = [0u8; 15];
                    let n = self.code_bytes(&mut b);
                    exits::decode(exit, info1, &self.regs, &b[..n])
                }
                _ => exits::decode(exit, info1, &self.regs, &[]),
            };
            self.pending = pending;
            if pending == Pending::Halt {
                // Step over the `hlt`; unless an interrupt can be taken at once,
                // wait for one of the host's: the local APIC timer's deadline (armed
                // by `fill_irqs`) or a kick (a new interrupt, a stop).
                let _ = exits::complete(pending, Reply::None, &mut self.regs);
                self.pending = Pending::Nothing;
                if !inject::deliverable(&self.vmcb) {
                    port::wait_interrupt();
                }
            }
            return vm_exit;
        }
    }

    fn reply(&mut self, reply: Reply) {
        if reply == Reply::Refused {
            // #GP, the instruction not completed.
            inject::gp_fault(&mut self.vmcb);
            self.pending = Pending::Nothing;
            return;
        }
        // A reply that does not fit leaves the instruction to run again.
        let _ = exits::complete(self.pending, reply, &mut self.regs);
        self.pending = Pending::Nothing;
    }

    /// The local APIC's interrupt offered, the host timer armed for its timer.
    fn fill_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        let Some(apic) = chip.model().downcast_mut::<X86Apic>() else {
            return;
        };
        apic.set_tsc_offset(self.cntvoff);
        let due = inject::fill(&mut self.vmcb, apic, index, &mut self.irq);
        let host = due.map(|d| d.wrapping_add(self.cntvoff));
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
