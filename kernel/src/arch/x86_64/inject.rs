//! Interrupts of the VM's local APIC into an SVM vCPU, through its VMCB. Pure (a
//! VMCB and the chip in, fields out), host-tested; `vcpu` calls [`fill`] before
//! each VMRUN and [`sync`] after it, and arms the host's timer for the deadline
//! [`fill`] returns.
//!
//! - The highest-priority deliverable vector (the local APIC decides, by TPR / PPR /
//!   ISR) is offered as a virtual interrupt: V_IRQ with V_INTR_VECTOR, V_IGN_TPR
//!   (the priority check is the model's). The guest takes it when its IF allows;
//!   the CPU then clears V_IRQ, and [`sync`] moves the vector from IRR to ISR. No
//!   VINTR intercept: the offer itself waits for the guest's interrupt window.
//! - NMIs and faults (#GP for a refused MSR) go through EVENTINJ; an event whose
//!   delivery an exit cut short (EXITINTINFO) is injected again ([`after_exit`]),
//!   an offered vector among them counting as taken.
//! - The guest's CR8 is V_TPR (V_INTR_MASKING): kept in step with the model's TPR.
//! - The local APIC timer is polled at both ends; [`fill`] returns its next
//!   deadline in guest TSC.

use super::vmcb::{ctl, Vmcb};
use crate::devices::x86apic::X86Apic;

const V_TPR: u64 = 0xf;
const V_IRQ: u64 = 1 << 8;
const V_PRIO_SHIFT: u32 = 16;
const V_IGN_TPR: u64 = 1 << 20;
const V_VECTOR_SHIFT: u32 = 32;
/// The V_INTR fields this module owns (V_INTR_MASKING and the rest stay).
const V_OWNED: u64 = V_TPR | V_IRQ | (0xf << V_PRIO_SHIFT) | V_IGN_TPR | (0xff << V_VECTOR_SHIFT);

/// EVENTINJ / EXITINTINFO: valid, error code valid, types.
const EV_VALID: u64 = 1 << 31;
const EV_ERR: u64 = 1 << 11;
const EV_TYPE_SHIFT: u32 = 8;
const TYPE_INTR: u64 = 0;
const TYPE_NMI: u64 = 2;
const TYPE_EXCEPTION: u64 = 3;
/// #GP, #UD.
const GP: u64 = 13;
const UD: u64 = 6;

/// Right after an exit: can the guest take an interrupt at once (an event queued in
/// EVENTINJ, or a virtual interrupt offered while the guest's IF is set)? A `hlt`
/// waits otherwise.
pub fn deliverable(vmcb: &Vmcb) -> bool {
    let if_set = vmcb.u64(super::vmcb::save::RFLAGS) & (1 << 9) != 0;
    vmcb.u64(ctl::EVENTINJ) & EV_VALID != 0 || (vmcb.u64(ctl::V_INTR) & V_IRQ != 0 && if_set)
}

/// What one vCPU keeps between [`fill`] and [`sync`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqState {
    /// The vector offered through V_IRQ.
    offered: Option<u8>,
    /// V_TPR as filled (a change after the exit is the guest's CR8 write).
    vtpr: u8,
}

/// Right after VMRUN returns: EVENTINJ was consumed by the entry; an event whose
/// delivery the exit interrupted (a first touch of the IDT or the stack, say) is
/// in EXITINTINFO and is delivered again at the next entry. Before anything of
/// the exit is handled (a refused MSR's #GP goes in after).
pub fn after_exit(vmcb: &mut Vmcb) {
    let info = vmcb.u64(ctl::EXITINTINFO);
    let kind = (info >> EV_TYPE_SHIFT) & 7;
    let again = info & EV_VALID != 0 && matches!(kind, TYPE_INTR | TYPE_NMI | TYPE_EXCEPTION);
    vmcb.set_u64(ctl::EVENTINJ, if again { info } else { 0 });
}

/// Before VMRUN: the timer polled, a pending NMI in EVENTINJ (unless an event is
/// queued there already), the deliverable vector offered, V_TPR from the model. Returns the local APIC timer's next deadline
/// (guest TSC).
pub fn fill(vmcb: &mut Vmcb, apic: &mut X86Apic, index: usize, st: &mut IrqState) -> Option<u64> {
    let _ = apic.poll(index);
    if vmcb.u64(ctl::EVENTINJ) & EV_VALID == 0 && apic.take_nmi(index) {
        vmcb.set_u64(ctl::EVENTINJ, EV_VALID | TYPE_NMI << EV_TYPE_SHIFT | 2);
    }
    let tpr = (apic.tpr(index) >> 4) as u8;
    let mut v_intr = vmcb.u64(ctl::V_INTR) & !V_OWNED | u64::from(tpr);
    st.vtpr = tpr;
    st.offered = apic.pending(index);
    if let Some(v) = st.offered {
        let v = u64::from(v);
        v_intr |= V_IRQ | V_IGN_TPR | (v >> 4) << V_PRIO_SHIFT | v << V_VECTOR_SHIFT;
    }
    vmcb.set_u64(ctl::V_INTR, v_intr);
    apic.timer_deadline(index)
}

/// After an exit: a taken offer into service (V_IRQ cleared by the CPU, or its
/// delivery cut short by the exit: EXITINTINFO has it, [`after_exit`] delivers it
/// again), the guest's CR8 into the TPR, the timer polled.
pub fn sync(vmcb: &mut Vmcb, apic: &mut X86Apic, index: usize, st: &mut IrqState) {
    let v_intr = vmcb.u64(ctl::V_INTR);
    let vtpr = (v_intr & V_TPR) as u8;
    if vtpr != st.vtpr {
        apic.set_tpr(index, u32::from(vtpr) << 4);
    }
    if let Some(v) = st.offered.take() {
        let info = vmcb.u64(ctl::EXITINTINFO);
        let cut_short =
            info & EV_VALID != 0 && (info >> EV_TYPE_SHIFT) & 7 == TYPE_INTR && info as u8 == v;
        if v_intr & V_IRQ == 0 || cut_short {
            let _ = apic.ack(index, v);
        }
    }
    vmcb.set_u64(ctl::V_INTR, v_intr & !(V_IRQ | V_IGN_TPR));
    let _ = apic.poll(index);
}

/// A general-protection fault (error code 0) for the next entry: the answer to a
/// refused MSR access (the instruction is not stepped over).
pub fn gp_fault(vmcb: &mut Vmcb) {
    vmcb.set_u64(
        ctl::EVENTINJ,
        EV_VALID | EV_ERR | TYPE_EXCEPTION << EV_TYPE_SHIFT | GP,
    );
}

/// An invalid-opcode fault (no error code) for the next entry: the answer to an
/// instruction the guest's CPU does not have (the instruction is not stepped over).
pub fn ud_fault(vmcb: &mut Vmcb) {
    vmcb.set_u64(
        ctl::EVENTINJ,
        EV_VALID | TYPE_EXCEPTION << EV_TYPE_SHIFT | UD,
    );
}

/// After a `hlt`: whether the vCPU halted with interrupts masked and nothing to
/// deliver, so that only an NMI or INIT could wake it.
pub fn halted_masked(vmcb: &Vmcb) -> bool {
    let if_set = vmcb.u64(super::vmcb::save::RFLAGS) & (1 << 9) != 0;
    !if_set && vmcb.u64(ctl::EVENTINJ) & EV_VALID == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::irqchip::IrqChip;
    use crate::devices::x86apic::lapic::{reg, XAPIC_BASE};
    use alloc::boxed::Box;

    fn zero() -> u64 {
        0
    }

    /// A zeroed VMCB with V_INTR_MASKING, a chip with `cpus` software-enabled APICs.
    fn setup(cpus: usize) -> (Box<Vmcb>, X86Apic, IrqState) {
        let mut vmcb = Box::new(Vmcb::zeroed());
        vmcb.set_u64(ctl::V_INTR, 1 << 24);
        let mut apic = X86Apic::new(cpus, zero).unwrap();
        for v in 0..cpus {
            lapic_write(&mut apic, v, reg::SVR, 0x1ff);
        }
        (vmcb, apic, IrqState::default())
    }

    fn lapic_write(apic: &mut X86Apic, vcpu: usize, off: u32, v: u32) {
        apic.mmio(vcpu, 1, XAPIC_BASE, u64::from(off), 4, Some(u64::from(v)))
            .unwrap();
    }

    fn self_ipi(apic: &mut X86Apic, vcpu: usize, vector: u8) {
        lapic_write(apic, vcpu, reg::ICR_LO, 0x4_0000 | u32::from(vector));
    }

    #[test]
    fn the_highest_vector_is_offered_and_acknowledged_when_taken() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        assert_eq!(fill(&mut vmcb, &mut apic, 0, &mut st), None);
        assert_eq!(vmcb.u64(ctl::V_INTR), 1 << 24, "nothing offered");
        self_ipi(&mut apic, 0, 0x41);
        self_ipi(&mut apic, 0, 0x62);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        let v = vmcb.u64(ctl::V_INTR);
        assert_eq!(v & V_IRQ, V_IRQ);
        assert!(!deliverable(&vmcb), "the guest's IF is clear");
        vmcb.set_u64(crate::arch::x86_64::vmcb::save::RFLAGS, 0x202);
        assert!(deliverable(&vmcb));
        assert_eq!(v >> 32 & 0xff, 0x62);
        assert_eq!(v >> 16 & 0xf, 6);
        assert_ne!(v & V_IGN_TPR, 0);
        assert_ne!(v & (1 << 24), 0, "V_INTR_MASKING kept");
        // An exit before the guest took it: still pending, offered again.
        sync(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(apic.pending(0), Some(0x62));
        fill(&mut vmcb, &mut apic, 0, &mut st);
        // The guest took it: the CPU cleared V_IRQ.
        let v = vmcb.u64(ctl::V_INTR);
        vmcb.set_u64(ctl::V_INTR, v & !V_IRQ);
        sync(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(apic.pending(0), None, "0x41 waits for the EOI of 0x62");
        lapic_write(&mut apic, 0, reg::EOI, 0);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::V_INTR) >> 32 & 0xff, 0x41);
    }

    #[test]
    fn an_offer_whose_delivery_an_exit_cut_short_is_in_service_and_injected_again() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        self_ipi(&mut apic, 0, 0x41);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        // V_IRQ still set as the CPU reports it, the delivery in EXITINTINFO.
        vmcb.set_u64(ctl::EXITINTINFO, 0x8000_0041);
        after_exit(&mut vmcb);
        sync(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(apic.pending(0), None, "in service, not offered twice");
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::V_INTR) & V_IRQ, 0);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0041);
    }

    #[test]
    fn cr8_and_tpr_stay_in_step() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        lapic_write(&mut apic, 0, reg::TPR, 0x50);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::V_INTR) & 0xf, 5);
        self_ipi(&mut apic, 0, 0x45);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::V_INTR) & V_IRQ, 0, "masked by TPR 0x50");
        // The guest writes CR8 = 2.
        let v = vmcb.u64(ctl::V_INTR);
        vmcb.set_u64(ctl::V_INTR, v & !0xf | 2);
        sync(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(apic.tpr(0), 0x20);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::V_INTR) >> 32 & 0xff, 0x45);
    }

    #[test]
    fn nmis_and_interrupted_events_go_through_eventinj() {
        let (mut vmcb, mut apic, mut st) = setup(2);
        lapic_write(&mut apic, 1, reg::ICR_HI, 0);
        lapic_write(&mut apic, 1, reg::ICR_LO, 0x4400);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0202);
        // The NMI's delivery was cut short by a nested page fault.
        vmcb.set_u64(ctl::EXITINTINFO, 0x8000_0202);
        after_exit(&mut vmcb);
        sync(&mut vmcb, &mut apic, 0, &mut st);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0202, "injected again");
        vmcb.set_u64(ctl::EXITINTINFO, 0);
        after_exit(&mut vmcb);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0, "once");
        // A refused MSR's #GP is not overwritten by a pending NMI.
        gp_fault(&mut vmcb);
        lapic_write(&mut apic, 1, reg::ICR_LO, 0x4400);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0b0d);
        assert!(deliverable(&vmcb));
        after_exit(&mut vmcb);
        sync(&mut vmcb, &mut apic, 0, &mut st);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0202, "the NMI next");
        // #UD for an instruction the guest's CPU lacks: no error code.
        ud_fault(&mut vmcb);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0306);
        // A software interrupt is not injected again (no NRIP to resume after).
        vmcb.set_u64(ctl::EXITINTINFO, 0x8000_0480);
        after_exit(&mut vmcb);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0);
    }

    #[test]
    fn the_timer_deadline_and_its_expiry() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        lapic_write(&mut apic, 0, reg::TIMER_DIV, 0xb);
        lapic_write(&mut apic, 0, reg::LVT_TIMER, 0xef);
        lapic_write(&mut apic, 0, reg::TIMER_INIT, 1000);
        // The clock stands at 0: due at 1000.
        assert_eq!(fill(&mut vmcb, &mut apic, 0, &mut st), Some(1000));
        apic.set_tsc_offset(u64::MAX - 999); // guest time 1000
        sync(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(
            fill(&mut vmcb, &mut apic, 0, &mut st),
            None,
            "one-shot done"
        );
        assert_eq!(vmcb.u64(ctl::V_INTR) >> 32 & 0xff, 0xef);
    }
}
