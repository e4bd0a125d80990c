//! Interrupts of the VM's local APIC into an SVM vCPU, through its VMCB. Pure (a
//! VMCB and the chip in, fields out), host-tested; `vcpu` calls [`after_exit`]
//! right after VMRUN, [`fill`] before the next and [`sync`] after each exit, and
//! wakes its CPU for the deadline [`fill`] returns.
//!
//! - The highest-priority deliverable vector (the local APIC decides, by TPR / PPR /
//!   ISR) goes into EVENTINJ when the guest can take it (IF set, no interrupt
//!   shadow) and is in service from then on; else the interrupt window is asked
//!   for: V_IRQ with the VINTR intercept, an exit as soon as the guest can take
//!   an interrupt, after which [`fill`] injects it. NMIs go first, through EVENTINJ.
//! - An event whose delivery an exit cut short (EXITINTINFO) is injected again
//!   (hardware interrupts, NMIs, exceptions; a software interrupt's `int n` runs
//!   again instead), and nothing else is injected until it is delivered.
//! - The guest's CR8 is V_TPR (V_INTR_MASKING): kept in step with the model's TPR.
//! - A refused MSR is a #GP ([`gp_fault`]).

use super::vmcb::{ctl, misc1, save, Vmcb};
use crate::devices::x86apic::X86Apic;

const V_TPR: u64 = 0xf;
/// V_INTR: V_IRQ (used to exit when the guest can take an interrupt), its
/// priority (highest) and "ignore the TPR".
const V_IRQ: u64 = 1 << 8;
const V_INTR_PRIO: u64 = 0xf << 16;
const V_IGN_TPR: u64 = 1 << 20;

/// EVENTINJ / EXITINTINFO: valid, error code valid, types.
const EV_VALID: u64 = 1 << 31;
const EV_ERR: u64 = 1 << 11;
const EV_TYPE_SHIFT: u32 = 8;
const TYPE_INTR: u64 = 0;
const TYPE_NMI: u64 = 2;
const TYPE_EXCEPTION: u64 = 3;
const VECTOR_NMI: u64 = 2;
const VECTOR_GP: u64 = 13;
const RFLAGS_IF: u64 = 1 << 9;

/// What one vCPU keeps between [`fill`] and [`sync`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqState {
    /// V_TPR as filled (a change after the exit is the guest's CR8 write).
    vtpr: u8,
}

/// Right after VMRUN returns: EVENTINJ was consumed by the entry; an event whose
/// delivery the exit interrupted (a first touch of the IDT or the stack, say) is
/// in EXITINTINFO and is delivered again at the next entry.
pub fn after_exit(vmcb: &mut Vmcb) {
    let info = vmcb.u64(ctl::EXITINTINFO);
    let kind = (info >> EV_TYPE_SHIFT) & 7;
    let again = info & EV_VALID != 0 && matches!(kind, TYPE_INTR | TYPE_NMI | TYPE_EXCEPTION);
    vmcb.set_u64(ctl::EVENTINJ, if again { info } else { 0 });
}

/// Is an event queued in EVENTINJ for the next entry?
pub fn queued(vmcb: &Vmcb) -> bool {
    vmcb.u64(ctl::EVENTINJ) & EV_VALID != 0
}

/// Asks (or stops asking) for an exit once the guest can take an interrupt.
pub fn interrupt_window(vmcb: &mut Vmcb, on: bool) {
    let v = vmcb.u64(ctl::V_INTR) & !(V_IRQ | V_INTR_PRIO | V_IGN_TPR);
    let m1 = vmcb.u32(ctl::INTERCEPT_MISC1) & !misc1::VINTR;
    if on {
        vmcb.set_u64(ctl::V_INTR, v | V_IRQ | V_INTR_PRIO | V_IGN_TPR);
        vmcb.set_u32(ctl::INTERCEPT_MISC1, m1 | misc1::VINTR);
    } else {
        vmcb.set_u64(ctl::V_INTR, v);
        vmcb.set_u32(ctl::INTERCEPT_MISC1, m1);
    }
}

/// Before VMRUN: the timer polled, V_TPR from the model, then (unless an event is
/// queued already) a pending NMI, or the deliverable vector injected and in
/// service, or the interrupt window asked for. Returns the local APIC timer's
/// next deadline (guest TSC).
pub fn fill(vmcb: &mut Vmcb, apic: &mut X86Apic, index: usize, st: &mut IrqState) -> Option<u64> {
    let _ = apic.poll(index);
    let due = apic.timer_deadline(index);
    st.vtpr = (apic.tpr(index) >> 4) as u8;
    let v_intr = vmcb.u64(ctl::V_INTR) & !V_TPR;
    vmcb.set_u64(ctl::V_INTR, v_intr | u64::from(st.vtpr));
    if queued(vmcb) {
        return due;
    }
    if apic.take_nmi(index) {
        let nmi = EV_VALID | TYPE_NMI << EV_TYPE_SHIFT | VECTOR_NMI;
        vmcb.set_u64(ctl::EVENTINJ, nmi);
        return due;
    }
    let Some(vector) = apic.pending(index) else {
        interrupt_window(vmcb, false);
        return due;
    };
    let open = vmcb.u64(save::RFLAGS) & RFLAGS_IF != 0 && vmcb.u64(ctl::INTERRUPT_SHADOW) & 1 == 0;
    if open && apic.ack(index, vector) {
        interrupt_window(vmcb, false);
        vmcb.set_u64(ctl::EVENTINJ, u64::from(vector) | EV_VALID);
    } else {
        interrupt_window(vmcb, true);
    }
    due
}

/// After an exit: the guest's CR8 (V_TPR) into the model's TPR when it changed.
/// (An injected interrupt is in service from [`fill`] on; one cut short is
/// injected again by [`after_exit`].)
pub fn sync(vmcb: &Vmcb, apic: &mut X86Apic, index: usize, st: &mut IrqState) {
    let vtpr = (vmcb.u64(ctl::V_INTR) & V_TPR) as u8;
    if vtpr != st.vtpr {
        apic.set_tpr(index, u32::from(vtpr) << 4);
        st.vtpr = vtpr;
    }
}

/// A general-protection fault (error code 0) for the next entry: the answer to a
/// refused MSR access (the instruction is not stepped over).
pub fn gp_fault(vmcb: &mut Vmcb) {
    vmcb.set_u64(
        ctl::EVENTINJ,
        EV_VALID | EV_ERR | TYPE_EXCEPTION << EV_TYPE_SHIFT | VECTOR_GP,
    );
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

    /// A zeroed VMCB with V_INTR_MASKING and the guest's IF set, a chip with
    /// `cpus` software-enabled APICs.
    fn setup(cpus: usize) -> (Box<Vmcb>, X86Apic, IrqState) {
        let mut vmcb = Box::new(Vmcb::zeroed());
        vmcb.set_u64(ctl::V_INTR, 1 << 24);
        vmcb.set_u64(save::RFLAGS, 0x202);
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

    fn window(vmcb: &Vmcb) -> bool {
        vmcb.u32(ctl::INTERCEPT_MISC1) & misc1::VINTR != 0 && vmcb.u64(ctl::V_INTR) & V_IRQ != 0
    }

    #[test]
    fn the_highest_vector_is_injected_and_in_service() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        assert_eq!(fill(&mut vmcb, &mut apic, 0, &mut st), None);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0, "nothing pending");
        assert!(!window(&vmcb));
        self_ipi(&mut apic, 0, 0x41);
        self_ipi(&mut apic, 0, 0x62);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0062);
        assert_eq!(
            vmcb.u64(ctl::V_INTR) & (1 << 24),
            1 << 24,
            "V_INTR_MASKING kept"
        );
        // Delivered: the next exit finds EXITINTINFO empty.
        after_exit(&mut vmcb);
        sync(&vmcb, &mut apic, 0, &mut st);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0, "0x41 waits for the EOI of 0x62");
        lapic_write(&mut apic, 0, reg::EOI, 0);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0041);
    }

    #[test]
    fn a_closed_guest_gets_an_interrupt_window() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        self_ipi(&mut apic, 0, 0x51);
        vmcb.set_u64(save::RFLAGS, 0x2);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0, "IF clear");
        assert!(window(&vmcb));
        vmcb.set_u64(save::RFLAGS, 0x202);
        vmcb.set_u64(ctl::INTERRUPT_SHADOW, 1);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert!(window(&vmcb), "sti's shadow");
        vmcb.set_u64(ctl::INTERRUPT_SHADOW, 0);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert!(!window(&vmcb));
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0051);
        assert_eq!(apic.pending(0), None, "in service");
    }

    #[test]
    fn an_event_cut_short_is_injected_again_before_anything_else() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        self_ipi(&mut apic, 0, 0x41);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        self_ipi(&mut apic, 0, 0x71);
        vmcb.set_u64(ctl::EXITINTINFO, 0x8000_0041);
        after_exit(&mut vmcb);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0041, "0x71 waits");
        vmcb.set_u64(ctl::EXITINTINFO, 0);
        after_exit(&mut vmcb);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0071, "nests above 0x41");
        // A software interrupt runs its `int n` again instead.
        vmcb.set_u64(ctl::EXITINTINFO, 0x8000_0480);
        after_exit(&mut vmcb);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0);
    }

    #[test]
    fn nmis_first_and_a_gp_is_not_overwritten() {
        let (mut vmcb, mut apic, mut st) = setup(2);
        self_ipi(&mut apic, 0, 0x41);
        lapic_write(&mut apic, 1, reg::ICR_HI, 0);
        lapic_write(&mut apic, 1, reg::ICR_LO, 0x4400);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0202);
        after_exit(&mut vmcb);
        gp_fault(&mut vmcb);
        lapic_write(&mut apic, 1, reg::ICR_LO, 0x4400);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0b0d, "the #GP first");
        after_exit(&mut vmcb);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0202, "then the NMI");
        after_exit(&mut vmcb);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0041, "then the interrupt");
    }

    #[test]
    fn cr8_and_tpr_stay_in_step() {
        let (mut vmcb, mut apic, mut st) = setup(1);
        lapic_write(&mut apic, 0, reg::TPR, 0x50);
        self_ipi(&mut apic, 0, 0x45);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::V_INTR) & 0xf, 5);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0, "masked by TPR 0x50");
        // The guest writes CR8 = 2.
        let v = vmcb.u64(ctl::V_INTR);
        vmcb.set_u64(ctl::V_INTR, v & !0xf | 2);
        sync(&vmcb, &mut apic, 0, &mut st);
        assert_eq!(apic.tpr(0), 0x20);
        fill(&mut vmcb, &mut apic, 0, &mut st);
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_0045);
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
        assert_eq!(
            fill(&mut vmcb, &mut apic, 0, &mut st),
            None,
            "one-shot done"
        );
        assert_eq!(vmcb.u64(ctl::EVENTINJ), 0x8000_00ef);
    }
}
