//! A virtual CPU on riscv64: the H-extension configuration of the hart it is pinned
//! to, entering the guest in VS-mode, and decoding each trap into a [`VmExit`].
//!
//! One vCPU per hart and never another on it, so the guest's VS CSRs (vsstatus,
//! vsatp, vstvec, ...) and FP registers simply stay in the hart across exits; only
//! the general registers, sepc, sstatus and hstatus go through the [`Frame`].

use super::boot;
use super::csr::{self, clear_csr, hstatus, irq, read_csr, set_csr, sstatus, write_csr};
use super::firmware;
use super::insn::{self, Htinst};
use super::sbi::{self, Call, Ret};
use super::trap::{self, Frame};
use crate::devices::irqchip::IrqChip;
use crate::devices::vplic::{Vplic, IPI_FENCE};
use crate::hal::exit::{Access, Fault, FirstTouch, Reply, VcpuOnError, VmExit, CONSOLE_CHUNK};
use crate::hal::VcpuStart;

/// scause values (interrupt bit clear).
mod cause {
    pub const INSN_MISALIGNED: u64 = 0;
    pub const INSN_ACCESS: u64 = 1;
    pub const ILLEGAL_INSN: u64 = 2;
    pub const BREAKPOINT: u64 = 3;
    pub const LOAD_MISALIGNED: u64 = 4;
    pub const LOAD_ACCESS: u64 = 5;
    pub const STORE_MISALIGNED: u64 = 6;
    pub const STORE_ACCESS: u64 = 7;
    pub const ECALL_VU: u64 = 8;
    pub const ECALL_VS: u64 = 10;
    pub const INSN_PAGE_FAULT: u64 = 12;
    pub const LOAD_PAGE_FAULT: u64 = 13;
    pub const STORE_PAGE_FAULT: u64 = 15;
    pub const INSN_GUEST_PAGE_FAULT: u64 = 20;
    pub const LOAD_GUEST_PAGE_FAULT: u64 = 21;
    pub const VIRTUAL_INSN: u64 = 22;
    pub const STORE_GUEST_PAGE_FAULT: u64 = 23;
}
const INTERRUPT: u64 = 1 << 63;

/// Exceptions the guest handles itself (hedeleg).
pub const HEDELEG: u64 = (1 << cause::INSN_MISALIGNED)
    | (1 << cause::ILLEGAL_INSN)
    | (1 << cause::BREAKPOINT)
    | (1 << cause::ECALL_VU)
    | (1 << cause::INSN_PAGE_FAULT)
    | (1 << cause::LOAD_PAGE_FAULT)
    | (1 << cause::STORE_PAGE_FAULT);
/// VS-level interrupts go straight to the guest (hideleg).
pub const HIDELEG: u64 = irq::VSSI | irq::VSTI | irq::VSEI;
/// vsstatus at vCPU start: UXL = 64-bit, everything else off.
const VSSTATUS_RESET: u64 = 2 << 32;

/// The state of one VM's G-stage translation, as the hart needs it.
#[derive(Clone, Copy, Debug)]
pub struct Stage2Regs {
    pub root: u64,
    pub vmid: u16,
    pub ipa_bits: u32,
}

/// Whether guests get the Sstc timer (vstimecmp) or an emulated one.
pub fn sstc() -> bool {
    super::host().is_some_and(|h| h.sstc)
}

/// Programs this hart for running vCPU `index` of a VM, with nothing of whoever ran
/// here before: VS CSRs, hvip, scounteren, senvcfg, FP registers and fcsr.
pub fn activate(s2: Stage2Regs, index: usize, cntvoff: u64) {
    write_csr!(
        csr::HGATP,
        super::gstage::hgatp(s2.root, s2.vmid, s2.ipa_bits)
    );
    csr::hfence_all();
    // Guest time = host time - cntvoff: every VM's clock starts near zero.
    write_csr!(csr::HTIMEDELTA, 0u64.wrapping_sub(cntvoff));
    write_csr!(csr::HVIP, 0);
    write_csr!(csr::VSSTATUS, VSSTATUS_RESET);
    write_csr!(csr::VSIE, 0);
    write_csr!(csr::VSTVEC, 0);
    write_csr!(csr::VSSCRATCH, 0);
    write_csr!(csr::VSEPC, 0);
    write_csr!(csr::VSCAUSE, 0);
    write_csr!(csr::VSTVAL, 0);
    write_csr!(csr::VSATP, 0);
    // What the guest's U-mode may read: the guest's own setting, not the last boot's.
    write_csr!(csr::SCOUNTEREN, 0);
    // VS-mode reaches senvcfg itself (no VS copy), and its FP state is the hart's.
    let _ = super::trap::try_senvcfg(0);
    csr::clear_fp();
    if sstc() {
        write_csr!(csr::VSTIMECMP, u64::MAX);
    }
    firmware::set_timer(u64::MAX);
    boot::set_vcpu(index as u64, cntvoff);
    // The guest's image was written by another hart.
    csr::fence_i();
}

/// The Sstc backstop fires 1/BACKSTOP_DIVISOR s (1 ms) after the guest's timer is due.
const BACKSTOP_DIVISOR: u64 = 1000;

/// With Sstc: if the guest's timer is due (guest time at or past vstimecmp),
/// vstimecmp is written again with the value it has. Done right before every guest
/// entry, and when the backstop fires: the host timer, programmed with every guest
/// set_timer for a millisecond after the guest's deadline.
///
/// On hardware this changes nothing (the interrupt is pending either way). It works
/// around QEMU 7.2, whose VS timer of Sstc loses interrupts now and then, two ways:
/// - the pending VSTIP lives in a flag beside `mip`, and each write of an
///   interrupt-pending bit (hvip, sip) recomputes whether the hart has an interrupt
///   to take from that flag read *before* taking the global lock. When the timer
///   fires in between, the stale read clears the hart's interrupt request again: the
///   guest reads VSTIP pending and enabled, idles with interrupts on, and never traps.
///   (Newer QEMU reads the flag under the lock, `riscv_cpu_interrupt`.)
/// - a guest idling in WFI after programming a short period (100 us) sometimes finds,
///   a second later, vstimecmp long due and VSTIP not pending at all: the QEMU timer
///   behind vstimecmp never fired (seen with the test guest's `timer-legacy` check).
///
/// Writing vstimecmp with a due value makes QEMU raise VSTIP and the request at once.
/// Nothing of the hypervisor writes an interrupt-pending bit after this before the
/// guest runs. `fill_irqs` writes hvip only when a bit changes, which makes the first
/// case rarer still.
fn repost_due_vstimer() {
    let cmp = read_csr!(csr::VSTIMECMP);
    let guest_now = read_csr!(csr::TIME).wrapping_add(read_csr!(csr::HTIMEDELTA));
    if cmp != u64::MAX && guest_now >= cmp {
        write_csr!(csr::VSTIMECMP, cmp);
    }
}

/// The hypervisor's time counter (for per-VM time offsets).
pub fn counter() -> u64 {
    read_csr!(csr::TIME)
}

/// Ticks of [`counter`] per second (the DTB's timebase-frequency).
pub fn counter_hz() -> u64 {
    super::host().map_or(0, |h| h.timebase_hz)
}

pub struct Vcpu {
    frame: Frame,
    cntvoff: u64,
    /// The exit being answered, to know how to place the reply.
    pending: Option<VmExit>,
    /// Register of the MMIO load being emulated: (reg, width, sign_extend).
    mmio_load: Option<(u8, u8, bool)>,
    /// With Sstc: how long after the guest's timer is due the host timer backs it up
    /// (see `repost_due_vstimer`), in timebase ticks.
    backstop_delay: u64,
}

impl crate::hal::Vcpu for Vcpu {
    type Stage2Regs = Stage2Regs;

    /// Programs this CPU for the vCPU ([`activate`]) and resets it to `start.entry`.
    fn start(s: VcpuStart<Stage2Regs>) -> Self {
        activate(s.stage2, s.index, s.cntvoff);
        Self::new(s.entry, s.arg)
    }

    /// Runs the guest until an exit the VMM must see. `first_touch` is asked first
    /// about every guest-page fault.
    fn run(&mut self, first_touch: FirstTouch) -> VmExit {
        loop {
            if sstc() {
                repost_due_vstimer();
            }
            trap::guest_enter(&mut self.frame);
            let scause = read_csr!(csr::SCAUSE);
            let exit = if scause & INTERRUPT != 0 {
                self.interrupt(scause & !INTERRUPT)
            } else {
                self.exception(scause, first_touch)
            };
            if let Some(e) = exit {
                self.pending = Some(e);
                return e;
            }
        }
    }

    /// Hands the VM's interrupt state for this hart to the guest. Before every entry.
    fn fill_irqs(&mut self, chip: &mut dyn IrqChip, index: usize) {
        if let Some(plic) = chip.model().downcast_mut::<Vplic>() {
            if plic.take_fence(index) {
                csr::hfence_vvma();
                csr::fence_i();
            }
            if plic.take_ipi(index) {
                set_csr!(csr::HVIP, irq::VSSI);
            }
            // Written only when it changes: see `repost_due_vstimer` for why fewer
            // writes of interrupt-pending bits matter under QEMU.
            let seip = plic.seip(index);
            if (read_csr!(csr::HVIP) & irq::VSEI != 0) != seip {
                if seip {
                    set_csr!(csr::HVIP, irq::VSEI);
                } else {
                    clear_csr!(csr::HVIP, irq::VSEI);
                }
            }
        }
    }

    /// Nothing to hand back: the guest clears VSSIP itself, VSEIP follows the PLIC.
    fn sync_irqs(&mut self, _chip: &mut dyn IrqChip, _index: usize) {}

    /// Applies the VMM's answer to the last exit.
    fn reply(&mut self, reply: Reply) {
        let pending = self.pending.take();
        match (pending, reply) {
            (Some(VmExit::Mmio { .. }), Reply::MmioRead(v)) => {
                if let Some((reg, width, sign)) = self.mmio_load.take() {
                    self.set_reg(reg, insn::load_value(v, width, sign));
                }
            }
            (_, Reply::VcpuOn(r)) => {
                let code = match r {
                    Ok(()) => sbi::SUCCESS,
                    Err(VcpuOnError::InvalidTarget) => sbi::ERR_INVALID_PARAM,
                    Err(VcpuOnError::AlreadyOn) => sbi::ERR_ALREADY_AVAILABLE,
                    Err(VcpuOnError::InvalidAddress) => sbi::ERR_INVALID_ADDRESS,
                    Err(VcpuOnError::Denied) => sbi::ERR_DENIED,
                };
                self.ret(Ret::err(code));
            }
            (_, Reply::VcpuStatus { on }) => self.ret(Ret::ok(if on {
                sbi::HART_STARTED
            } else {
                sbi::HART_STOPPED
            })),
            (_, Reply::Hypercall(r)) => {
                self.frame.x[10..14].copy_from_slice(&sbi::hypercall_ret(r));
            }
            (_, Reply::Return(v)) => self.frame.x[10] = v,
            _ => {}
        }
    }

    fn pc(&self) -> u64 {
        self.frame.sepc
    }
}

impl Vcpu {
    /// A vCPU that starts at `entry` in VS-mode, satp off, with a0 = its hart id and
    /// a1 = `arg` (the DTB for the boot vCPU, the HSM opaque value for the others).
    pub fn new(entry: u64, arg: u64) -> Self {
        let (index, cntvoff) = boot::vcpu();
        let mut frame = Frame::default();
        frame.x[10] = index;
        frame.x[11] = arg;
        frame.sepc = entry;
        frame.sstatus = (read_csr!(csr::SSTATUS) | sstatus::SPP | sstatus::FS_DIRTY)
            & !(sstatus::SIE | sstatus::SPIE);
        frame.hstatus = (read_csr!(csr::HSTATUS) | hstatus::SPV | hstatus::SPVP)
            & !(hstatus::VTW | hstatus::VTSR | hstatus::VTVM | hstatus::HU);
        Self {
            frame,
            cntvoff,
            pending: None,
            mmio_load: None,
            backstop_delay: counter_hz() / BACKSTOP_DIVISOR,
        }
    }

    fn set_reg(&mut self, r: u8, v: u64) {
        if r != 0 && r < 32 {
            self.frame.x[r as usize] = v;
        }
    }

    fn reg(&self, r: u8) -> u64 {
        if r == 0 || r >= 32 {
            0
        } else {
            self.frame.x[r as usize]
        }
    }

    fn ret(&mut self, r: Ret) {
        self.frame.x[10] = r.error as u64;
        self.frame.x[11] = r.value;
    }

    /// The answer to a call of extension `eid`: a legacy call gets a0 only.
    fn answer(&mut self, eid: u64, r: Ret) {
        let (a0, a1) = sbi::answer_regs(eid, r);
        self.frame.x[10] = a0;
        if let Some(a1) = a1 {
            self.frame.x[11] = a1;
        }
    }

    fn fault(&self, what: &'static str, addr: Option<u64>) -> VmExit {
        VmExit::Fault(Fault {
            what,
            addr,
            pc: self.frame.sepc,
            syndrome: read_csr!(csr::SCAUSE),
        })
    }

    /// A host interrupt taken while the guest ran. None when handled here entirely.
    fn interrupt(&mut self, code: u64) -> Option<VmExit> {
        match code {
            // A kick (or a wake-up meant for the idle loop): the VMM looks at the VM.
            1 => {
                clear_csr!(csr::SIP, irq::SSI);
                Some(VmExit::Interrupt { forward: None })
            }
            // The host timer standing in for the guest's (no Sstc): it fired. With
            // Sstc it is the backstop of the guest's vstimecmp: made pending again.
            5 => {
                firmware::set_timer(u64::MAX);
                if sstc() {
                    repost_due_vstimer();
                } else {
                    set_csr!(csr::HVIP, irq::VSTI);
                }
                None
            }
            // A device of the hypervisor's own (console input).
            9 => super::hostplic::claim().map(|source| {
                super::hostplic::complete(source);
                VmExit::HostInterrupt { intid: source }
            }),
            _ => Some(VmExit::Interrupt { forward: None }),
        }
    }

    fn exception(&mut self, scause: u64, first_touch: FirstTouch) -> Option<VmExit> {
        let gpa = || (read_csr!(csr::HTVAL) << 2) | (read_csr!(csr::STVAL) & 3);
        // A guest-page fault does not say whether the entry was invalid or lacked a
        // permission: `first_touch` only says yes where the access is permitted.
        let access = match scause {
            cause::INSN_GUEST_PAGE_FAULT => Some(Access::Exec),
            cause::LOAD_GUEST_PAGE_FAULT => Some(Access::Read),
            cause::STORE_GUEST_PAGE_FAULT => Some(Access::Write),
            _ => None,
        };
        if let Some(access) = access {
            if first_touch(gpa(), access) {
                return None;
            }
        }
        match scause {
            cause::ECALL_VS => {
                self.frame.sepc += 4;
                self.sbi_call(first_touch)
            }
            cause::LOAD_GUEST_PAGE_FAULT => Some(self.mmio(gpa(), false)),
            cause::STORE_GUEST_PAGE_FAULT => Some(self.mmio(gpa(), true)),
            cause::INSN_GUEST_PAGE_FAULT => Some(self.fault(
                "instruction guest-page fault (executing outside guest memory)",
                Some(gpa()),
            )),
            cause::VIRTUAL_INSN => self.virtual_insn(),
            cause::INSN_ACCESS | cause::LOAD_ACCESS | cause::STORE_ACCESS => Some(self.fault(
                "access fault (physical memory protection)",
                Some(read_csr!(csr::STVAL)),
            )),
            cause::LOAD_MISALIGNED | cause::STORE_MISALIGNED => {
                Some(self.fault("misaligned load/store", Some(read_csr!(csr::STVAL))))
            }
            _ => Some(self.fault("unexpected exception from VS-mode", None)),
        }
    }

    /// A virtual instruction exception: reads of cycle, instret and the hpmcounters
    /// (not readable in the guest, hcounteren) are emulated; anything else stops the VM.
    fn virtual_insn(&mut self) -> Option<VmExit> {
        let pc = self.frame.sepc;
        let read = self
            .fetch(pc)
            .and_then(|(low, high)| insn::counter_read(u32::from(low) | (u32::from(high) << 16)));
        let Some((rd, csr)) = read else {
            return Some(self.fault(
                "virtual instruction (a privileged instruction the hypervisor does not emulate)",
                None,
            ));
        };
        let guest_time = counter().wrapping_sub(self.cntvoff);
        self.set_reg(rd, insn::counter_value(csr, guest_time));
        self.frame.sepc += 4;
        None
    }

    /// A load or store to an unmapped guest-physical address: decoded for the VMM.
    fn mmio(&mut self, gpa: u64, write: bool) -> VmExit {
        let pc = self.frame.sepc;
        let decoded = match insn::htinst(read_csr!(csr::HTINST)) {
            Htinst::Transformed { insn, len } => insn::decode32(insn, len),
            Htinst::Implicit => {
                return self.fault("guest page-table walk outside guest memory", Some(gpa))
            }
            Htinst::None => match self.fetch(pc) {
                Some((low, high)) => insn::decode(low, high),
                None => return self.fault("guest instruction unreadable at PC", Some(gpa)),
            },
        };
        let access = match decoded {
            Ok(a) if a.write == write => a,
            Ok(_) => {
                return self.fault(
                    "guest-page fault kind does not match the instruction",
                    Some(gpa),
                )
            }
            Err(why) => return self.fault(why, Some(gpa)),
        };
        self.frame.sepc += u64::from(access.len);
        let value = access
            .write
            .then(|| insn::store_value(self.reg(access.reg), access.width));
        self.mmio_load = (!access.write).then_some((access.reg, access.width, access.sign_extend));
        VmExit::Mmio {
            gpa,
            width: access.width,
            write: value,
            pc,
        }
    }

    /// The instruction halfwords at guest address `pc` (the second only for a 32-bit
    /// instruction).
    fn fetch(&self, pc: u64) -> Option<(u16, u16)> {
        let low = trap::guest_fetch16(pc)?;
        if insn::insn_len(low) == 2 {
            return Some((low, 0));
        }
        Some((low, trap::guest_fetch16(pc.wrapping_add(2))?))
    }

    /// An SBI call from the guest (sepc already past the ecall). None = answered here.
    /// `first_touch` fills guest RAM a call reads that the guest never touched.
    fn sbi_call(&mut self, first_touch: FirstTouch) -> Option<VmExit> {
        let mut a = [0u64; 8];
        a.copy_from_slice(&self.frame.x[10..18]);
        let eid = a[7];
        match sbi::decode(a) {
            Call::Answer(r) => {
                self.answer(eid, r);
                None
            }
            Call::SetTimer(t) => {
                self.set_timer(t);
                self.answer(eid, Ret::ok(0));
                None
            }
            Call::ClearIpi => {
                clear_csr!(csr::HVIP, irq::VSSI);
                self.answer(eid, Ret::ok(0));
                None
            }
            Call::ConsoleByte { byte, .. } => {
                self.answer(eid, Ret::ok(0));
                let mut data = [0; CONSOLE_CHUNK];
                data[0] = byte;
                Some(VmExit::Console { data, len: 1 })
            }
            Call::ConsoleWrite { addr, len } => self.console_write(addr, len, first_touch),
            Call::Ipi { mask } => {
                self.answer(eid, Ret::ok(0));
                Some(VmExit::Ipi {
                    value: mask & !IPI_FENCE,
                })
            }
            // Asynchronous: the targets fence (HFENCE.VVMA and FENCE.I) when they next
            // leave the guest, which the kick makes immediate, but the call returns
            // before they have.
            Call::RemoteFence { mask, .. } => {
                self.answer(eid, Ret::ok(0));
                Some(VmExit::Ipi {
                    value: mask | IPI_FENCE,
                })
            }
            Call::HartStart {
                hart,
                entry,
                opaque,
            } => Some(VmExit::VcpuOn {
                target: hart,
                entry,
                arg: opaque,
            }),
            Call::HartStop => Some(VmExit::VcpuOff),
            Call::HartStatus { hart } => Some(VmExit::VcpuStatus { target: hart }),
            Call::Shutdown => Some(VmExit::SystemOff),
            Call::Reboot => Some(VmExit::SystemReset),
            Call::Hypercall { code, args } => Some(VmExit::Hypercall { code, args }),
        }
    }

    /// SBI set_timer: the guest's timer interrupt once guest time reaches `t`.
    fn set_timer(&mut self, t: u64) {
        let host = if t == u64::MAX {
            u64::MAX
        } else {
            t.saturating_add(self.cntvoff)
        };
        if sstc() {
            write_csr!(csr::VSTIMECMP, t);
            // The backstop (see `repost_due_vstimer`): the host timer a little after.
            firmware::set_timer(host.saturating_add(self.backstop_delay));
            return;
        }
        clear_csr!(csr::HVIP, irq::VSTI);
        firmware::set_timer(host);
    }

    /// DBCN console_write: up to one chunk of the guest-physical bytes at `addr`.
    /// Guest RAM still parked for first-touch zeroing is filled in (zeroed) as a
    /// guest load would, then read.
    fn console_write(&mut self, addr: u64, len: u64, first_touch: FirstTouch) -> Option<VmExit> {
        let mut data = [0u8; CONSOLE_CHUNK];
        let want = len.min(CONSOLE_CHUNK as u64) as usize;
        // Guest-physical: read with the guest's own translation switched off.
        let vsatp = read_csr!(csr::VSATP);
        write_csr!(csr::VSATP, 0);
        let mut got = 0;
        let mut filled = false;
        while got < want {
            let at = addr.wrapping_add(got as u64);
            match trap::guest_read8(at) {
                Some(b) => {
                    data[got] = b;
                    got += 1;
                    filled = false;
                }
                // One first touch per byte: if the read still faults, stop there.
                None if !filled && first_touch(at, Access::Read) => filled = true,
                None => break,
            }
        }
        write_csr!(csr::VSATP, vsatp);
        csr::hfence_vvma();
        if got == 0 && want > 0 {
            self.ret(Ret::err(sbi::ERR_INVALID_PARAM));
            return None;
        }
        self.ret(Ret::ok(got as u64));
        Some(VmExit::Console {
            data,
            len: got as u8,
        })
    }
}

impl Drop for Vcpu {
    /// The vCPU is off: nothing of it may fire on this hart any more.
    fn drop(&mut self) {
        write_csr!(csr::HVIP, 0);
        if sstc() {
            write_csr!(csr::VSTIMECMP, u64::MAX);
        }
        firmware::set_timer(u64::MAX);
    }
}
