//! One virtual local APIC, as pure state: the xAPIC registers (by MMIO offset) and
//! the same registers as x2APIC MSRs (0x800 + offset / 16), the IA32_APIC_BASE and
//! TSC-deadline MSRs, priorities (TPR/PPR, ISR nesting, EOI) and the timer in its
//! one-shot, periodic and TSC-deadline modes.
//!
//! Time is the guest's TSC, passed in as `now` wherever it matters; the timer counts
//! the TSC divided by the divide configuration register. Nothing here reaches
//! another local APIC: what a write asks of the rest of the machine (an IPI from the
//! ICR, an EOI of a level-triggered vector to broadcast to the I/O APIC) comes back
//! as an [`Effect`] the chip (`mod.rs`) carries out.
//!
//! A hostile guest gets defined answers: reserved registers read 0 and ignore
//! writes, setting "illegal register address" in ESR; illegal vectors set their ESR
//! bits; x2APIC MSR accesses the architecture refuses answer `Err(Gp)` (the vCPU
//! then takes #GP).

/// The xAPIC window's guest-physical base (the platform's fixed address).
pub const XAPIC_BASE: u64 = 0xfee0_0000;
/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// The x2APIC MSR range.
pub const MSR_X2APIC_FIRST: u32 = 0x800;
pub const MSR_X2APIC_LAST: u32 = 0x8ff;

/// APIC_BASE bits: BSP, x2APIC enable, global enable.
pub const BASE_BSP: u64 = 1 << 8;
pub const BASE_EXTD: u64 = 1 << 10;
pub const BASE_EN: u64 = 1 << 11;

/// Version register: version 0x14 (an integrated APIC), 6 LVT entries (max LVT 5:
/// timer, thermal, performance counters, LINT0, LINT1, error), no EOI-broadcast
/// suppression.
pub const VERSION: u32 = 0x0005_0014;

/// Register offsets in the xAPIC window.
pub mod reg {
    pub const ID: u32 = 0x20;
    pub const VERSION: u32 = 0x30;
    pub const TPR: u32 = 0x80;
    pub const APR: u32 = 0x90;
    pub const PPR: u32 = 0xa0;
    pub const EOI: u32 = 0xb0;
    pub const RRD: u32 = 0xc0;
    pub const LDR: u32 = 0xd0;
    pub const DFR: u32 = 0xe0;
    pub const SVR: u32 = 0xf0;
    pub const ISR: u32 = 0x100;
    pub const TMR: u32 = 0x180;
    pub const IRR: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const ICR_LO: u32 = 0x300;
    pub const ICR_HI: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_THERMAL: u32 = 0x330;
    pub const LVT_PERF: u32 = 0x340;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INIT: u32 = 0x380;
    pub const TIMER_CUR: u32 = 0x390;
    pub const TIMER_DIV: u32 = 0x3e0;
    /// x2APIC only (MSR 0x83f).
    pub const SELF_IPI: u32 = 0x3f0;
}

/// ESR bits.
pub const ESR_SEND_ILLEGAL: u32 = 1 << 5;
pub const ESR_RECV_ILLEGAL: u32 = 1 << 6;
pub const ESR_ILLEGAL_REG: u32 = 1 << 7;

const LVT_MASK: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;
/// LVT timer mode (bits 18:17).
const TIMER_MODE_SHIFT: u32 = 17;
pub const TIMER_ONESHOT: u32 = 0;
pub const TIMER_PERIODIC: u32 = 1;
pub const TIMER_TSC_DEADLINE: u32 = 2;

/// LVT slots and the bits of each the guest may write.
const LVT_REGS: [(u32, u32); 6] = [
    (reg::LVT_TIMER, 0x0007_00ff),
    (reg::LVT_THERMAL, 0x0001_07ff),
    (reg::LVT_PERF, 0x0001_07ff),
    (reg::LVT_LINT0, 0x0001_a7ff),
    (reg::LVT_LINT1, 0x0001_a7ff),
    (reg::LVT_ERROR, 0x0001_00ff),
];
const TIMER: usize = 0;
const LINT0: usize = 3;
const LINT1: usize = 4;
const ERROR: usize = 5;

/// A refused x2APIC MSR access: the vCPU takes a general-protection fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gp;

/// ICR delivery modes (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Fixed (and lowest priority, delivered as fixed to the first APIC named).
    Fixed {
        lowest: bool,
    },
    Smi,
    Nmi,
    /// INIT; `assert` false is the level de-assert of old CPUs (ignored).
    Init {
        assert: bool,
    },
    Startup,
    ExtInt,
}

/// Who an interrupt message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Destination field, physical mode: the APIC with this ID (all ones: every APIC).
    Physical(u32),
    /// Destination field, logical mode (matched against each LDR, see [`Lapic::matches_logical`]).
    Logical(u32),
    /// ICR shorthands.
    SelfOnly,
    All,
    AllButSelf,
}

/// An interrupt message: from the ICR (an IPI) or from an I/O APIC pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub vector: u8,
    pub delivery: Delivery,
    pub dest: Dest,
    /// Level-triggered (the vector's TMR bit is set; its EOI is broadcast).
    pub level: bool,
}

/// What a register write asks of the rest of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Send this IPI (the ICR was written).
    Ipi(Message),
    /// A level-triggered vector was ended: the I/O APIC clears its remote IRR.
    Eoi(u8),
}

impl Message {
    /// The message an ICR value asks for (`x2apic`: the destination is bits 63:32,
    /// else bits 63:56).
    pub fn from_icr(icr: u64, x2apic: bool) -> Self {
        let lo = icr as u32;
        let delivery = match (lo >> 8) & 7 {
            0 => Delivery::Fixed { lowest: false },
            1 => Delivery::Fixed { lowest: true },
            2 => Delivery::Smi,
            4 => Delivery::Nmi,
            5 => Delivery::Init {
                assert: lo & (1 << 14) != 0 || lo & (1 << 15) == 0,
            },
            6 => Delivery::Startup,
            // 3 and 7 are reserved; 7 is ExtINT on I/O APIC pins.
            _ => Delivery::ExtInt,
        };
        let field = if x2apic {
            (icr >> 32) as u32
        } else {
            (icr >> 56) as u32
        };
        let dest = match (lo >> 18) & 3 {
            1 => Dest::SelfOnly,
            2 => Dest::All,
            3 => Dest::AllButSelf,
            _ if lo & (1 << 11) != 0 => Dest::Logical(field),
            _ => Dest::Physical(field),
        };
        Self {
            vector: lo as u8,
            delivery,
            dest,
            level: lo & (1 << 15) != 0,
        }
    }
}

/// 256 bits (ISR, TMR, IRR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bits([u32; 8]);

impl Bits {
    fn get(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    fn set(&mut self, v: u8, on: bool) {
        let w = &mut self.0[usize::from(v >> 5)];
        if on {
            *w |= 1 << (v & 31);
        } else {
            *w &= !(1 << (v & 31));
        }
    }
    fn highest(&self) -> Option<u8> {
        (0..8)
            .rev()
            .find(|&i| self.0[i] != 0)
            .map(|i| (i * 32 + 31 - self.0[i].leading_zeros() as usize) as u8)
    }
}

/// The local APIC of one vCPU.
#[derive(Clone, Debug)]
pub struct Lapic {
    id: u32,
    apic_base: u64,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: Bits,
    tmr: Bits,
    irr: Bits,
    /// ESR as last latched (read value) and errors since.
    esr: u32,
    esr_pending: u32,
    icr: u64,
    lvt: [u32; 6],
    initial: u32,
    divide: u32,
    /// One-shot / periodic: counting since this time (None: stopped).
    start: Option<u64>,
    /// TSC-deadline mode: the deadline (0: disarmed).
    deadline: u64,
    nmi: bool,
    /// After INIT: waiting for a start-up IPI.
    wait_sipi: bool,
    /// The shortest period of the periodic timer (TSC ticks; see
    /// [`Lapic::set_period_floor`]).
    floor: u64,
}

impl Lapic {
    /// The power-on local APIC of the vCPU with APIC ID `id` (vCPU 0 is the BSP).
    pub fn new(id: u32) -> Self {
        let bsp = if id == 0 { BASE_BSP } else { 0 };
        Self {
            id,
            apic_base: XAPIC_BASE | BASE_EN | bsp,
            tpr: 0,
            ldr: 0,
            dfr: u32::MAX,
            svr: 0xff,
            isr: Bits::default(),
            tmr: Bits::default(),
            irr: Bits::default(),
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASK; 6],
            initial: 0,
            divide: 0,
            start: None,
            deadline: 0,
            nmi: false,
            wait_sipi: id != 0,
            floor: 0,
        }
    }

    /// INIT: the registers back to their power-on values (ID and APIC_BASE kept),
    /// then waiting for a start-up IPI.
    pub fn init(&mut self) {
        let (id, base) = (self.id, self.apic_base);
        *self = Self::new(id);
        self.apic_base = base;
        self.wait_sipi = true;
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn x2apic(&self) -> bool {
        self.apic_base & BASE_EXTD != 0
    }

    /// Globally enabled (APIC_BASE) and software-enabled (SVR).
    fn enabled(&self) -> bool {
        self.apic_base & BASE_EN != 0 && self.svr & SVR_ENABLE != 0
    }

    /// A start-up IPI arrived: true if this APIC was waiting for one (it is then
    /// no longer waiting: a second SIPI is ignored, as hardware does).
    pub fn take_sipi(&mut self) -> bool {
        core::mem::take(&mut self.wait_sipi)
    }

    /// The logical destination register: in x2APIC mode derived from the ID.
    fn ldr(&self) -> u32 {
        if self.x2apic() {
            ((self.id >> 4) << 16) | (1 << (self.id & 0xf))
        } else {
            self.ldr
        }
    }

    /// Does logical destination `dest` name this APIC?
    pub fn matches_logical(&self, dest: u32) -> bool {
        let ldr = self.ldr();
        if self.x2apic() {
            return dest == u32::MAX || (dest >> 16 == ldr >> 16 && dest & ldr & 0xffff != 0);
        }
        let (dest, ldr) = (dest & 0xff, ldr >> 24);
        if dest == 0xff {
            return true;
        }
        if self.dfr >> 28 == 0xf {
            dest & ldr != 0
        } else {
            dest >> 4 == ldr >> 4 && dest & ldr & 0xf != 0
        }
    }

    /// Does physical destination `dest` name this APIC?
    pub fn matches_physical(&self, dest: u32) -> bool {
        if self.x2apic() {
            dest == u32::MAX || dest == self.id
        } else {
            dest & 0xff == 0xff || dest & 0xff == self.id & 0xff
        }
    }

    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[ERROR];
        if lvt & LVT_MASK == 0 && lvt as u8 >= 16 {
            let _ = self.accept(lvt as u8, false);
        }
    }

    /// A fixed interrupt `vector` arrives (edge, or `level`-triggered): pending in
    /// IRR. False when it was not taken (illegal vector, APIC disabled).
    pub fn accept(&mut self, vector: u8, level: bool) -> bool {
        if vector < 16 {
            self.error(ESR_RECV_ILLEGAL);
            return false;
        }
        if !self.enabled() {
            return false;
        }
        self.irr.set(vector, true);
        self.tmr.set(vector, level);
        true
    }

    /// A non-maskable interrupt for this vCPU.
    pub fn accept_nmi(&mut self) {
        self.nmi = true;
    }

    /// Takes the pending NMI.
    pub fn take_nmi(&mut self) -> bool {
        core::mem::take(&mut self.nmi)
    }

    /// LINT0 / LINT1 asserted (`pin` 0 or 1): what its LVT entry says.
    pub fn lint(&mut self, pin: usize) -> bool {
        let lvt = self.lvt[if pin == 0 { LINT0 } else { LINT1 }];
        if lvt & LVT_MASK != 0 {
            return false;
        }
        match (lvt >> 8) & 7 {
            0 => self.accept(lvt as u8, lvt & (1 << 15) != 0),
            4 => {
                self.nmi = true;
                true
            }
            _ => false,
        }
    }

    fn ppr(&self) -> u32 {
        let isrv = self.isr.highest().map_or(0, u32::from);
        if self.tpr & 0xf0 >= isrv & 0xf0 {
            self.tpr & 0xff
        } else {
            isrv & 0xf0
        }
    }

    /// The interrupt to deliver now: the highest pending vector whose priority
    /// class is above the processor priority.
    pub fn pending(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        (u32::from(v) & 0xf0 > self.ppr() & 0xf0).then_some(v)
    }

    /// The guest took `vector`: from IRR into ISR. False if it was not pending.
    pub fn ack(&mut self, vector: u8) -> bool {
        if !self.irr.get(vector) {
            return false;
        }
        self.irr.set(vector, false);
        self.isr.set(vector, true);
        true
    }

    /// End of interrupt: the highest in-service vector ends; a level-triggered
    /// one is broadcast.
    fn eoi(&mut self) -> Effect {
        let Some(v) = self.isr.highest() else {
            return Effect::None;
        };
        self.isr.set(v, false);
        if self.tmr.get(v) {
            Effect::Eoi(v)
        } else {
            Effect::None
        }
    }

    pub fn tpr(&self) -> u32 {
        self.tpr
    }

    /// The task priority the guest set through CR8 (bits 7:4; V_TPR on SVM).
    pub fn set_tpr(&mut self, tpr: u32) {
        self.tpr = tpr & 0xff;
    }

    // ---- the timer ----

    fn timer_mode(&self) -> u32 {
        (self.lvt[TIMER] >> TIMER_MODE_SHIFT) & 3
    }

    /// log2 of the divide configuration's divisor.
    fn div_shift(&self) -> u32 {
        let v = ((self.divide & 8) >> 1) | (self.divide & 3);
        if v == 7 {
            0
        } else {
            v + 1
        }
    }

    /// TSC ticks of one full count from the initial count; a periodic timer's no
    /// shorter than the floor.
    fn period(&self) -> u64 {
        let p = u64::from(self.initial) << self.div_shift();
        if self.timer_mode() == TIMER_PERIODIC {
            p.max(self.floor)
        } else {
            p
        }
    }

    /// The periodic timer's shortest period, in TSC ticks: a guest asking for less
    /// (down to 1 tick, a period no interrupt handler can keep up with) gets this
    /// one, as KVM clamps it, so its vCPU still makes progress and its exits stay
    /// bounded.
    pub fn set_period_floor(&mut self, ticks: u64) {
        self.floor = ticks;
    }

    /// When the timer fires next (guest TSC), if it is armed.
    pub fn timer_deadline(&self) -> Option<u64> {
        match self.timer_mode() {
            TIMER_TSC_DEADLINE => (self.deadline != 0).then_some(self.deadline),
            TIMER_ONESHOT | TIMER_PERIODIC => self.start.map(|s| s.saturating_add(self.period())),
            _ => None,
        }
    }

    /// Fires the timer if its deadline passed by `now`: its vector pending unless
    /// the LVT entry is masked; one-shot and TSC-deadline timers disarm, a
    /// periodic one re-arms for the next period after `now` (periods missed
    /// meanwhile fire once). True if it fired.
    pub fn poll(&mut self, now: u64) -> bool {
        let Some(due) = self.timer_deadline() else {
            return false;
        };
        if now < due {
            return false;
        }
        match self.timer_mode() {
            TIMER_PERIODIC => {
                let period = self.period().max(1);
                let start = self.start.unwrap_or(now);
                let n = (now - start) / period;
                self.start = Some(start + n * period);
            }
            TIMER_TSC_DEADLINE => self.deadline = 0,
            _ => self.start = None,
        }
        let lvt = self.lvt[TIMER];
        if lvt & LVT_MASK == 0 {
            let _ = self.accept(lvt as u8, false);
        }
        true
    }

    fn current_count(&self, now: u64) -> u32 {
        let (Some(start), true) = (self.start, self.timer_mode() != TIMER_TSC_DEADLINE) else {
            return 0;
        };
        let elapsed = now.saturating_sub(start) >> self.div_shift();
        let initial = u64::from(self.initial);
        if self.timer_mode() == TIMER_PERIODIC {
            (initial - elapsed % initial.max(1)) as u32
        } else {
            initial.saturating_sub(elapsed) as u32
        }
    }

    fn write_lvt(&mut self, slot: usize, mask: u32, v: u32) {
        let mut v = v & mask;
        if self.svr & SVR_ENABLE == 0 {
            v |= LVT_MASK;
        }
        if slot == TIMER && (v >> TIMER_MODE_SHIFT) & 3 == 3 {
            // Mode 3 is reserved: the mode stays.
            v = (v & !(3 << TIMER_MODE_SHIFT)) | (self.lvt[TIMER] & (3 << TIMER_MODE_SHIFT));
        }
        let old_mode = self.timer_mode();
        self.lvt[slot] = v;
        if slot == TIMER && self.timer_mode() != old_mode {
            // A change of mode disarms the timer.
            self.start = None;
            self.initial = 0;
            self.deadline = 0;
        }
    }

    fn write_initial(&mut self, v: u32, now: u64) {
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            return;
        }
        self.initial = v;
        self.start = (v != 0).then_some(now);
    }

    /// IA32_TSC_DEADLINE read (0 unless armed in TSC-deadline mode).
    pub fn tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            self.deadline
        } else {
            0
        }
    }

    /// IA32_TSC_DEADLINE write: arms (or with 0 disarms) the timer in TSC-deadline
    /// mode; ignored in the other modes.
    pub fn set_tsc_deadline(&mut self, v: u64) {
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            self.deadline = v;
        }
    }

    // ---- register access ----

    /// Reads register `off` (a multiple of 16 in the xAPIC window); `None` for a
    /// register that does not exist (or cannot be read).
    fn reg_read(&self, off: u32, now: u64) -> Option<u32> {
        Some(match off {
            reg::ID if self.x2apic() => self.id,
            reg::ID => self.id << 24,
            reg::VERSION => VERSION,
            reg::TPR => self.tpr,
            reg::APR if !self.x2apic() => 0,
            reg::PPR => self.ppr(),
            reg::RRD if !self.x2apic() => 0,
            reg::LDR => self.ldr(),
            reg::DFR if !self.x2apic() => self.dfr,
            reg::SVR => self.svr,
            0x100..=0x170 => self.isr.0[(off as usize - 0x100) >> 4],
            0x180..=0x1f0 => self.tmr.0[(off as usize - 0x180) >> 4],
            0x200..=0x270 => self.irr.0[(off as usize - 0x200) >> 4],
            reg::ESR => self.esr,
            reg::ICR_LO => self.icr as u32,
            reg::ICR_HI if !self.x2apic() => (self.icr >> 32) as u32,
            reg::LVT_TIMER..=reg::LVT_ERROR => self.lvt[(off as usize - 0x320) >> 4],
            reg::TIMER_INIT => self.initial,
            reg::TIMER_CUR => self.current_count(now),
            reg::TIMER_DIV => self.divide,
            _ => return None,
        })
    }

    /// Writes register `off`; `None` for a register that cannot be written.
    fn reg_write(&mut self, off: u32, v: u32, now: u64) -> Option<Effect> {
        match off {
            reg::TPR => self.tpr = v & 0xff,
            reg::EOI => return Some(self.eoi()),
            reg::LDR if !self.x2apic() => self.ldr = v & 0xff00_0000,
            reg::DFR if !self.x2apic() => self.dfr = v | 0x0fff_ffff,
            reg::SVR => {
                self.svr = v & 0x1ff;
                if v & SVR_ENABLE == 0 {
                    for l in &mut self.lvt {
                        *l |= LVT_MASK;
                    }
                }
            }
            reg::ESR => self.esr = core::mem::take(&mut self.esr_pending),
            reg::ICR_LO => {
                // The delivery status bit (12) and the remote read status read 0.
                self.icr = (self.icr & !0xffff_ffff) | u64::from(v & 0x000c_cfff);
                return Some(self.send());
            }
            reg::ICR_HI if !self.x2apic() => {
                self.icr = (self.icr & 0xffff_ffff) | (u64::from(v & 0xff00_0000) << 32)
            }
            reg::LVT_TIMER..=reg::LVT_ERROR => {
                let slot = (off as usize - 0x320) >> 4;
                self.write_lvt(slot, LVT_REGS[slot].1, v);
            }
            reg::TIMER_INIT => self.write_initial(v, now),
            reg::TIMER_DIV => self.divide = v & 0xb,
            reg::SELF_IPI if self.x2apic() => {
                let _ = self.accept(v as u8, false);
            }
            _ => return None,
        }
        Some(Effect::None)
    }

    /// The IPI the ICR now asks for.
    fn send(&mut self) -> Effect {
        let msg = Message::from_icr(self.icr, self.x2apic());
        if matches!(msg.delivery, Delivery::Fixed { .. }) && msg.vector < 16 {
            self.error(ESR_SEND_ILLEGAL);
            return Effect::None;
        }
        Effect::Ipi(msg)
    }

    /// An xAPIC MMIO read at `off` of the window (4 bytes at a 16-byte boundary;
    /// the chip refuses other accesses). In x2APIC mode the window reads 0.
    pub fn mmio_read(&mut self, off: u64, now: u64) -> u32 {
        if self.x2apic() || off > 0xff0 {
            return 0;
        }
        match self.reg_read(off as u32, now) {
            Some(v) if off as u32 != reg::SELF_IPI => v,
            _ => {
                self.error(ESR_ILLEGAL_REG);
                0
            }
        }
    }

    /// An xAPIC MMIO write at `off` (ignored in x2APIC mode).
    pub fn mmio_write(&mut self, off: u64, v: u32, now: u64) -> Effect {
        if self.x2apic() || off > 0xff0 {
            return Effect::None;
        }
        let known = matches!(
            off as u32,
            reg::ID | reg::VERSION | reg::APR | reg::PPR | reg::RRD | 0x100
                ..=0x270 | reg::TIMER_CUR
        );
        match self.reg_write(off as u32, v, now) {
            Some(e) => e,
            // Read-only registers ignore writes.
            None if known => Effect::None,
            None => {
                self.error(ESR_ILLEGAL_REG);
                Effect::None
            }
        }
    }

    /// An RDMSR of the APIC's MSRs (APIC_BASE, TSC_DEADLINE, x2APIC range).
    pub fn msr_read(&self, msr: u32, now: u64) -> Result<u64, Gp> {
        match msr {
            MSR_APIC_BASE => return Ok(self.apic_base),
            MSR_TSC_DEADLINE => return Ok(self.tsc_deadline()),
            _ => {}
        }
        let off = self.x2apic_offset(msr)?;
        match off {
            reg::ICR_LO => Ok(self.icr),
            reg::EOI | reg::SELF_IPI => Err(Gp),
            _ => self.reg_read(off, now).map(u64::from).ok_or(Gp),
        }
    }

    /// A WRMSR of the APIC's MSRs.
    pub fn msr_write(&mut self, msr: u32, v: u64, now: u64) -> Result<Effect, Gp> {
        match msr {
            MSR_APIC_BASE => return self.write_base(v).map(|_| Effect::None),
            MSR_TSC_DEADLINE => {
                self.set_tsc_deadline(v);
                return Ok(Effect::None);
            }
            _ => {}
        }
        let off = self.x2apic_offset(msr)?;
        let reserved = match off {
            reg::ICR_LO => v as u32 & 0xfff3_3000 != 0,
            reg::EOI | reg::ESR => v != 0,
            _ => v >> 32 != 0,
        };
        if reserved {
            return Err(Gp);
        }
        if off == reg::ICR_LO {
            self.icr = v;
            return Ok(self.send());
        }
        self.reg_write(off, v as u32, now).ok_or(Gp)
    }

    /// The register offset of x2APIC MSR `msr`: only while x2APIC is on.
    fn x2apic_offset(&self, msr: u32) -> Result<u32, Gp> {
        if !(MSR_X2APIC_FIRST..=MSR_X2APIC_LAST).contains(&msr) || !self.x2apic() {
            return Err(Gp);
        }
        Ok((msr - MSR_X2APIC_FIRST) << 4)
    }

    /// IA32_APIC_BASE write: enable, x2APIC enable; the base cannot move and the
    /// BSP bit is the machine's (what is written there is ignored). Invalid
    /// transitions (x2APIC without enable, x2APIC back to xAPIC) are refused as
    /// the architecture does.
    fn write_base(&mut self, v: u64) -> Result<(), Gp> {
        let keep = XAPIC_BASE | (self.apic_base & BASE_BSP);
        if v & !(BASE_EN | BASE_EXTD | BASE_BSP) != XAPIC_BASE {
            return Err(Gp);
        }
        let (en, extd) = (v & BASE_EN != 0, v & BASE_EXTD != 0);
        if extd && !en {
            return Err(Gp);
        }
        if self.x2apic() && en && !extd {
            return Err(Gp);
        }
        if !en {
            // Globally disabled: back to the power-on state, then disabled.
            let (id, bsp) = (self.id, self.apic_base & BASE_BSP);
            let wait = self.wait_sipi;
            *self = Self::new(id);
            self.wait_sipi = wait;
            self.apic_base = XAPIC_BASE | bsp;
            return Ok(());
        }
        self.apic_base = keep | v & (BASE_EN | BASE_EXTD);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
