//! The injection side of the vGIC: interrupts raised by devices, the VMM and SGIs,
//! and the hand-over to and from the list registers the arch code owns.

use super::irq::{Injection, LrAction, LrState};
use super::{Vgic, VgicError, PRIVATE_IRQS};

/// ICC_SGI1R_EL1 fields.
const SGI1R_INTID_SHIFT: u32 = 24;
const SGI1R_AFF1_SHIFT: u32 = 16;
const SGI1R_AFF2_SHIFT: u32 = 32;
const SGI1R_IRM: u64 = 1 << 40;
const SGI1R_RS_SHIFT: u32 = 44;
const SGI1R_AFF3_SHIFT: u32 = 48;

/// In the `VmExit::Ipi` value of an aarch64 vCPU: the write was to ICC_SGI0R_EL1 or
/// ICC_ASGI1R_EL1. With one security state (GICD_CTLR.DS = 1) those make the SGI
/// pending only on targets where it is Group 0 (ASGI1R has no other group to name),
/// while ICC_SGI1R_EL1 makes it pending in either group. Bit 63 is RES0 in the three
/// registers, so it never comes from the guest (see [`sgi_request`]).
pub const SGI_GROUP0_ONLY: u64 = 1 << 63;

/// The `VmExit::Ipi` value for a trapped write of `value` to ICC_SGI1R_EL1
/// (`group0_only` false) or to ICC_SGI0R_EL1 / ICC_ASGI1R_EL1 (true).
pub fn sgi_request(value: u64, group0_only: bool) -> u64 {
    (value & !SGI_GROUP0_ONLY) | if group0_only { SGI_GROUP0_ONLY } else { 0 }
}

impl Vgic {
    fn check_vcpu(&self, vcpu: usize) -> Result<(), VgicError> {
        if vcpu < self.nr_vcpus() {
            Ok(())
        } else {
            Err(VgicError::BadVcpu(vcpu))
        }
    }

    fn check_intid(&self, intid: u32) -> Result<(), VgicError> {
        if intid < PRIVATE_IRQS + self.nr_spis() {
            Ok(())
        } else {
            Err(VgicError::BadIntid(intid))
        }
    }

    /// An edge on `intid`: SGIs and PPIs of `target_vcpu`, or an SPI (delivered where
    /// its GICD_IROUTER points; `target_vcpu` is then ignored). Returns the vCPU that
    /// now has it deliverable, if any.
    ///
    /// An edge is never lost: while the interrupt is in a list register the model
    /// only learns at the vCPU's next exit whether the guest has taken it already, so
    /// the edge is latched (and the vCPU kicked, see `note`). If the list register
    /// turns out to have still held it pending, the guest sees it once more: a
    /// spurious repeat, which guests tolerate, where a lost edge (an IPI) would leave
    /// a vCPU asleep.
    pub fn set_pending(
        &mut self,
        intid: u32,
        target_vcpu: usize,
    ) -> Result<Option<usize>, VgicError> {
        self.check_intid(intid)?;
        let vcpu = if intid < PRIVATE_IRQS { target_vcpu } else { 0 };
        self.check_vcpu(vcpu)?;
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return Err(VgicError::BadIntid(intid));
        };
        irq.latch = true;
        Ok(self.note(vcpu, intid))
    }

    /// Level of an SPI's input line (level-sensitive devices such as the UART).
    pub fn set_level(&mut self, intid: u32, level: bool) -> Result<Option<usize>, VgicError> {
        if intid < PRIVATE_IRQS {
            return Err(VgicError::BadIntid(intid));
        }
        self.check_intid(intid)?;
        self.set_line(0, intid, level)
    }

    /// Level of a PPI's input line on `vcpu` (the timers).
    pub fn set_private_level(
        &mut self,
        vcpu: usize,
        intid: u32,
        level: bool,
    ) -> Result<Option<usize>, VgicError> {
        if !(16..PRIVATE_IRQS).contains(&intid) {
            return Err(VgicError::BadIntid(intid));
        }
        self.check_vcpu(vcpu)?;
        self.set_line(vcpu, intid, level)
    }

    fn set_line(
        &mut self,
        vcpu: usize,
        intid: u32,
        level: bool,
    ) -> Result<Option<usize>, VgicError> {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return Err(VgicError::BadIntid(intid));
        };
        let rising = level && !irq.line;
        irq.line = level;
        // An edge-configured interrupt latches on the rising edge of its line.
        if rising && irq.edge && irq.lr != LrState::Pending {
            irq.latch = true;
        }
        Ok(if level { self.note(vcpu, intid) } else { None })
    }

    /// Marks `intid` (PPIs: of `vcpu`) as backed by the physical interrupt of the same
    /// number, so its list register gets the HW bit.
    pub fn set_hw(&mut self, vcpu: usize, intid: u32, hw: bool) -> Result<(), VgicError> {
        self.check_intid(intid)?;
        self.check_vcpu(vcpu)?;
        let irq = self
            .irq_mut(vcpu, intid)
            .ok_or(VgicError::BadIntid(intid))?;
        irq.hw = hw;
        Ok(())
    }

    /// Candidate INTIDs for `vcpu`: its private ones, then the SPIs routed to it.
    fn candidates(&self, vcpu: usize) -> impl Iterator<Item = u32> + '_ {
        let spis = (0..self.nr_spis()).filter(move |&i| self.targets[i as usize] == Some(vcpu));
        (0..PRIVATE_IRQS).chain(spis.map(|i| i + PRIVATE_IRQS))
    }

    /// The highest-priority interrupt `vcpu` could take now, without claiming it.
    pub fn peek(&self, vcpu: usize) -> Option<Injection> {
        if vcpu >= self.nr_vcpus() {
            return None;
        }
        let best = self
            .candidates(vcpu)
            .filter(|&intid| self.deliverable(vcpu, intid))
            .min_by_key(|&intid| (self.irq(vcpu, intid).map_or(u8::MAX, |i| i.priority), intid))?;
        let irq = self.irq(vcpu, best)?;
        Some(Injection {
            intid: best,
            priority: irq.priority,
            group1: irq.group1,
            hw: irq.hw,
            level: !irq.edge,
        })
    }

    /// Whether `vcpu` has an interrupt waiting for a list register (a WFI can end).
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        self.peek(vcpu).is_some()
    }

    /// The highest-priority interrupt that is pending, enabled (group enabled too, for
    /// SPIs) and not in flight, for a list register of `vcpu`; it is in flight from now
    /// on until [`Vgic::lr_update`] reports it done.
    pub fn next_to_inject(&mut self, vcpu: usize) -> Option<Injection> {
        let next = self.peek(vcpu)?;
        self.irq_mut(vcpu, next.intid)?.inject(vcpu);
        Some(next)
    }

    /// The in-flight `intid` of `vcpu`.
    fn in_flight(&mut self, vcpu: usize, intid: u32) -> Result<&mut super::irq::Irq, VgicError> {
        self.check_vcpu(vcpu)?;
        match self.irq_mut(vcpu, intid) {
            Some(irq) if irq.lr != LrState::Invalid && irq.lr_vcpu == vcpu => Ok(irq),
            _ => Err(VgicError::NotInFlight(intid)),
        }
    }

    /// What `vcpu`'s list register for `intid` says after an exit. Returns what to do
    /// with that list register so it agrees with the model (the guest may have
    /// withdrawn the interrupt through the distributor meanwhile).
    pub fn lr_update(
        &mut self,
        vcpu: usize,
        intid: u32,
        state: LrState,
    ) -> Result<LrAction, VgicError> {
        let action = self.in_flight(vcpu, intid)?.update_from_lr(state);
        if matches!(action, LrAction::Remove) || state == LrState::Invalid {
            self.note(vcpu, intid);
        }
        Ok(action)
    }

    /// The arch code took `intid`, still Pending (the guest never saw it), out of
    /// `vcpu`'s list registers; it waits in the model again.
    pub fn unqueue(&mut self, vcpu: usize, intid: u32) -> Result<(), VgicError> {
        let irq = self.in_flight(vcpu, intid)?;
        if irq.lr != LrState::Pending {
            return Err(VgicError::NotInFlight(intid));
        }
        irq.unqueue();
        self.note(vcpu, intid);
        Ok(())
    }

    /// A trapped write of ICC_SGI1R_EL1 by `from_vcpu` (or of ICC_SGI0R_EL1 /
    /// ICC_ASGI1R_EL1, marked with [`SGI_GROUP0_ONLY`]): makes the SGI pending on every
    /// targeted vCPU (TargetList with Aff3.Aff2.Aff1 and RS, or all but the sender with
    /// IRM), for Group 0 only writes only where that SGI is in Group 0. Returns the
    /// vCPUs that got a deliverable SGI (bit i = vCPU i); targets that do not exist
    /// are ignored.
    pub fn sgi(&mut self, from_vcpu: usize, icc_sgi1r: u64) -> Result<u64, VgicError> {
        self.check_vcpu(from_vcpu)?;
        let intid = ((icc_sgi1r >> SGI1R_INTID_SHIFT) & 0xf) as u32;
        let targets = self.sgi_targets(from_vcpu, icc_sgi1r);
        let group0_only = icc_sgi1r & SGI_GROUP0_ONLY != 0;
        let in_group = |g: &Self, vcpu: usize| {
            !group0_only || g.irq(vcpu, intid).is_some_and(|irq| !irq.group1)
        };
        let mut woken = 0;
        for vcpu in (0..self.nr_vcpus()).filter(|v| targets & (1 << v) != 0) {
            if !in_group(self, vcpu) {
                continue;
            }
            if self.set_pending(intid, vcpu)?.is_some() {
                woken |= 1 << vcpu;
            }
        }
        Ok(woken)
    }

    fn sgi_targets(&self, from_vcpu: usize, v: u64) -> u64 {
        let all = if self.nr_vcpus() == 64 {
            u64::MAX
        } else {
            (1u64 << self.nr_vcpus()) - 1
        };
        if v & SGI1R_IRM != 0 {
            return all & !(1 << from_vcpu);
        }
        let field = |shift: u32| (v >> shift) & 0xff;
        let upper = (field(SGI1R_AFF3_SHIFT) << 32)
            | (field(SGI1R_AFF2_SHIFT) << 16)
            | (field(SGI1R_AFF1_SHIFT) << 8);
        let rs = (v >> SGI1R_RS_SHIFT) & 0xf;
        (0..16u64)
            .filter(|bit| v & (1 << bit) != 0)
            .filter_map(|bit| self.vcpu_of_mpidr(upper | (rs * 16 + bit)))
            .fold(0, |acc, vcpu| acc | (1 << vcpu))
    }
}
