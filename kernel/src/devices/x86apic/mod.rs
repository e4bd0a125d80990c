//! The x86 interrupt chip of one VM: one I/O APIC and one local APIC per vCPU
//! (APIC ID = vCPU index), behind [`IrqChip`]. Pure state plus a clock: the
//! guest's TSC is `clock() - tsc_offset` (the architecture's vCPU sets the offset it
//! gives the guest, [`X86Apic::set_tsc_offset`]).
//!
//! - xAPIC window (0xFEE0_0000, 4 KiB): the accessing vCPU's own local APIC.
//! - I/O APIC window (0xFEC0_0000, 4 KiB): IOREGSEL / IOWIN / EOI.
//! - MSRs through [`IrqChip::msr`]: IA32_APIC_BASE (0x1B), IA32_TSC_DEADLINE
//!   (0x6E0) and the x2APIC range 0x800-0x8FF of the vCPU's local APIC.
//! - Device lines: [`IrqChip::set_level`] drives I/O APIC pin n (GSI n).
//! - IPIs from the ICR are delivered here: fixed and NMI ones to local APICs,
//!   INIT resets the target's local APIC, a start-up IPI to one waiting for it is a
//!   [`VmEvent::StartVcpu`] at `vector << 12` (the vCPU starts in real mode at
//!   CS = vector << 8, IP = 0).
//!
//! For the architecture's injection: [`X86Apic::pending`], [`X86Apic::ack`],
//! [`X86Apic::take_nmi`], [`X86Apic::poll`] and [`X86Apic::timer_deadline`].

pub mod ioapic;
pub mod lapic;

use super::device::VmEvent;
use super::irqchip::{IrqChip, MsrAnswer};
use super::MmioError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use ioapic::{IoApic, IOAPIC_BASE};
use lapic::{Delivery, Dest, Effect, Lapic, Message, XAPIC_BASE};

/// Most vCPUs (vCPU sets are `u64` bitmasks).
pub const MAX_VCPUS: usize = 64;

/// Where the chip reads time: a counter of the host (the TSC on x86).
pub type Clock = fn() -> u64;

pub struct X86Apic {
    lapics: Vec<Lapic>,
    ioapic: IoApic,
    kicks: u64,
    events: Vec<VmEvent>,
    clock: Clock,
    tsc_offset: u64,
}

impl X86Apic {
    /// The chip of a VM with `cpus` vCPUs, reading time from `clock`.
    pub fn new(cpus: usize, clock: Clock) -> Result<Self, String> {
        if cpus == 0 || cpus > MAX_VCPUS {
            return Err(format!("{cpus} vCPUs: 1 to {MAX_VCPUS} have local APICs"));
        }
        Ok(Self {
            lapics: (0..cpus as u32).map(Lapic::new).collect(),
            ioapic: IoApic::new(),
            kicks: 0,
            events: Vec::new(),
            clock,
            tsc_offset: 0,
        })
    }

    pub fn vcpus(&self) -> usize {
        self.lapics.len()
    }

    /// The guest's TSC is the clock minus `offset`.
    pub fn set_tsc_offset(&mut self, offset: u64) {
        self.tsc_offset = offset;
    }

    /// The periodic timers' shortest period in TSC ticks
    /// ([`Lapic::set_period_floor`]).
    pub fn set_period_floor(&mut self, ticks: u64) {
        for l in &mut self.lapics {
            l.set_period_floor(ticks);
        }
    }

    /// The guest's TSC now.
    pub fn now(&self) -> u64 {
        (self.clock)().wrapping_sub(self.tsc_offset)
    }

    /// Local APIC of vCPU `vcpu`.
    pub fn lapic(&mut self, vcpu: usize) -> Option<&mut Lapic> {
        self.lapics.get_mut(vcpu)
    }

    /// The I/O APIC.
    pub fn ioapic(&self) -> &IoApic {
        &self.ioapic
    }

    /// The vector to inject into `vcpu` now, if any.
    pub fn pending(&self, vcpu: usize) -> Option<u8> {
        self.lapics.get(vcpu).and_then(Lapic::pending)
    }

    /// `vcpu` took `vector`: it is in service.
    pub fn ack(&mut self, vcpu: usize, vector: u8) -> bool {
        self.lapics.get_mut(vcpu).is_some_and(|l| l.ack(vector))
    }

    /// Takes `vcpu`'s pending NMI.
    pub fn take_nmi(&mut self, vcpu: usize) -> bool {
        self.lapics.get_mut(vcpu).is_some_and(Lapic::take_nmi)
    }

    /// The task priority `vcpu` set through CR8.
    pub fn set_tpr(&mut self, vcpu: usize, tpr: u32) {
        if let Some(l) = self.lapics.get_mut(vcpu) {
            l.set_tpr(tpr);
        }
    }

    pub fn tpr(&self, vcpu: usize) -> u32 {
        self.lapics.get(vcpu).map_or(0, Lapic::tpr)
    }

    /// Fires `vcpu`'s timer if it is due now; true if it fired.
    pub fn poll(&mut self, vcpu: usize) -> bool {
        let now = self.now();
        self.lapics.get_mut(vcpu).is_some_and(|l| l.poll(now))
    }

    /// When `vcpu`'s local APIC timer fires next, in guest TSC.
    pub fn timer_deadline(&self, vcpu: usize) -> Option<u64> {
        self.lapics.get(vcpu).and_then(Lapic::timer_deadline)
    }

    /// The vCPUs message `m` from `from` (None: the I/O APIC) is for.
    fn targets(&self, from: Option<usize>, dest: Dest) -> u64 {
        let all = if self.lapics.len() == 64 {
            u64::MAX
        } else {
            (1u64 << self.lapics.len()) - 1
        };
        let me = from.map_or(0, |f| 1u64 << f);
        let by = |f: &dyn Fn(&Lapic) -> bool| {
            self.lapics
                .iter()
                .enumerate()
                .filter(|(_, l)| f(l))
                .fold(0u64, |s, (i, _)| s | 1 << i)
        };
        match dest {
            Dest::SelfOnly => me,
            Dest::All => all,
            Dest::AllButSelf => all & !me,
            Dest::Physical(d) => by(&|l| l.matches_physical(d)),
            Dest::Logical(d) => by(&|l| l.matches_logical(d)),
        }
    }

    /// Delivers message `m` sent by vCPU `from` (None: the I/O APIC).
    fn deliver(&mut self, from: Option<usize>, m: Message) {
        let mut targets = self.targets(from, m.dest);
        if m.delivery == (Delivery::Fixed { lowest: true }) {
            // Lowest priority: the first APIC named (all run at the same priority).
            targets &= targets.wrapping_neg();
        }
        for i in (0..self.lapics.len()).filter(|i| targets & (1 << i) != 0) {
            let l = &mut self.lapics[i];
            let kick = match m.delivery {
                Delivery::Fixed { .. } => l.accept(m.vector, m.level),
                Delivery::Nmi => {
                    l.accept_nmi();
                    true
                }
                Delivery::Init { assert: true } if i != 0 => {
                    l.init();
                    false
                }
                Delivery::Startup if l.take_sipi() => {
                    self.events.push(VmEvent::StartVcpu {
                        index: i,
                        entry: u64::from(m.vector) << 12,
                        arg: 0,
                    });
                    false
                }
                // INIT of the BSP (a machine reset is the guest's reset port), SMI,
                // ExtINT, a second SIPI: nothing.
                _ => false,
            };
            if kick {
                self.kicks |= 1 << i;
            }
        }
    }

    fn apply(&mut self, from: usize, e: Effect) {
        match e {
            Effect::None => {}
            Effect::Ipi(m) => self.deliver(Some(from), m),
            Effect::Eoi(v) => {
                let mut sent = Vec::new();
                self.ioapic.eoi(v, &mut |m| sent.push(m));
                for m in sent {
                    self.deliver(None, m);
                }
            }
        }
    }

    fn ioapic_write(&mut self, off: u64, v: u32) {
        let mut sent = Vec::new();
        self.ioapic.write(off, v, &mut |m| sent.push(m));
        for m in sent {
            self.deliver(None, m);
        }
    }

    fn reset_state(&mut self) {
        let cpus = self.lapics.len() as u32;
        self.lapics = (0..cpus).map(Lapic::new).collect();
        self.ioapic = IoApic::new();
        self.kicks = 0;
        self.events.clear();
    }
}

impl IrqChip for X86Apic {
    /// Both windows take 4-byte accesses at 16-byte boundaries (the I/O APIC's
    /// IOREGSEL also 1 byte); anything else is refused.
    fn mmio(
        &mut self,
        vcpu: usize,
        _window: u32,
        base: u64,
        off: u64,
        width: u8,
        write: Option<u64>,
    ) -> Result<u64, MmioError> {
        if off & 0xf != 0 {
            return Err(MmioError::Unaligned { offset: off, width });
        }
        let io = base == IOAPIC_BASE;
        if width != 4 && !(io && width == 1 && off == ioapic::IOREGSEL) {
            // IOREGSEL also takes a byte; everything else only 32-bit accesses.
            let accepts = if io && off == ioapic::IOREGSEL {
                crate::devices::Widths::W1_4
            } else {
                crate::devices::Widths::W4
            };
            return Err(MmioError::BadWidth {
                offset: off,
                width,
                accepts,
            });
        }
        let now = self.now();
        match (io, base == XAPIC_BASE, write) {
            (true, _, None) => Ok(u64::from(self.ioapic.read(off))),
            (true, _, Some(v)) => {
                self.ioapic_write(off, v as u32);
                Ok(0)
            }
            (_, true, _) if vcpu >= self.lapics.len() => Ok(0),
            (_, true, None) => Ok(u64::from(self.lapics[vcpu].mmio_read(off, now))),
            (_, true, Some(v)) => {
                let e = self.lapics[vcpu].mmio_write(off, v as u32, now);
                self.apply(vcpu, e);
                Ok(0)
            }
            // A window at another address: nothing there.
            _ => Ok(0),
        }
    }

    fn set_level(&mut self, line: u32, level: bool) {
        let mut sent = Vec::new();
        self.ioapic
            .set_level(line as usize, level, &mut |m| sent.push(m));
        for m in sent {
            self.deliver(None, m);
        }
    }

    /// `value` is an x2APIC ICR value (destination in bits 63:32).
    fn ipi(&mut self, from: usize, value: u64) {
        if from < self.lapics.len() {
            self.deliver(Some(from), Message::from_icr(value, true));
        }
    }

    /// `line` is a vector (x86 has no per-CPU interrupts backed by hardware).
    fn inject(&mut self, vcpu: usize, line: u32) {
        if let (Some(l), Ok(v)) = (self.lapics.get_mut(vcpu), u8::try_from(line)) {
            if l.accept(v, false) {
                self.kicks |= 1 << vcpu;
            }
        }
    }

    fn take_kicks(&mut self) -> u64 {
        core::mem::take(&mut self.kicks)
    }

    fn msr(&mut self, vcpu: usize, msr: u32, write: Option<u64>) -> MsrAnswer {
        use lapic::{MSR_APIC_BASE, MSR_TSC_DEADLINE, MSR_X2APIC_FIRST, MSR_X2APIC_LAST};
        let mine = matches!(msr, MSR_APIC_BASE | MSR_TSC_DEADLINE)
            || (MSR_X2APIC_FIRST..=MSR_X2APIC_LAST).contains(&msr);
        if !mine || vcpu >= self.lapics.len() {
            return MsrAnswer::NotMine;
        }
        let now = self.now();
        let l = &mut self.lapics[vcpu];
        match write {
            None => l
                .msr_read(msr, now)
                .map_or(MsrAnswer::Refused, MsrAnswer::Value),
            Some(v) => match l.msr_write(msr, v, now) {
                Ok(e) => {
                    self.apply(vcpu, e);
                    MsrAnswer::Value(0)
                }
                Err(_) => MsrAnswer::Refused,
            },
        }
    }

    fn take_events(&mut self, out: &mut Vec<VmEvent>) {
        out.append(&mut self.events);
    }

    fn reset(&mut self) {
        self.reset_state();
    }

    fn model(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;
