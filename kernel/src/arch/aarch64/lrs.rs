//! The list registers of one vCPU, kept in step with the virtual GIC model (GICv3;
//! a GICv2 host's are read and written in the same layout through [`super::hostgic`]).
//!
//! After each exit `sync` reports what every occupied list register
//! says to the model (the guest may have taken, finished or the model withdrawn an
//! interrupt); before each entry `fill` puts the next deliverable interrupts in the
//! free ones. When more are
//! waiting than there are list registers, the underflow maintenance interrupt brings
//! the CPU back to refill them.

use super::hostgic::{self as gic, lr};
use crate::devices::vgic::{Injection, LrAction, LrState, Vgic};

const MAX_LRS: usize = 16;
/// ICH_LR.EOI: maintenance interrupt when the guest deactivates (non-HW only).
const LR_EOI: u64 = 1 << 41;

/// Which INTID each list register carries.
#[derive(Default)]
pub struct ListRegs {
    owner: [Option<u32>; MAX_LRS],
}

fn state_of(v: u64) -> LrState {
    match v & lr::STATE_MASK {
        0 => LrState::Invalid,
        lr::STATE_PENDING => LrState::Pending,
        lr::STATE_ACTIVE => LrState::Active,
        _ => LrState::PendingActive,
    }
}

fn state_bits(s: LrState) -> u64 {
    match s {
        LrState::Invalid => 0,
        LrState::Pending => lr::STATE_PENDING,
        LrState::Active => lr::STATE_ACTIVE,
        LrState::PendingActive => lr::STATE_MASK,
    }
}

fn encode(inj: &Injection) -> u64 {
    let mut v = lr::pending(inj.intid, inj.priority, inj.hw);
    if !inj.group1 {
        v &= !lr::GROUP1;
    }
    if inj.level && !inj.hw {
        v |= LR_EOI;
    }
    v
}

impl ListRegs {
    /// Tells the model what the list registers say now. After every exit, before
    /// anything else touches the model, so a new edge of an interrupt the guest just
    /// finished is not mistaken for one still waiting in a list register.
    pub fn sync(&mut self, vgic: &mut Vgic, vcpu: usize) {
        for i in 0..gic::num_lrs().min(MAX_LRS) {
            if let Some(intid) = self.owner[i] {
                self.sync_one(vgic, vcpu, i, intid);
            }
        }
    }

    /// Fills free list registers with deliverable interrupts. Before every entry.
    pub fn fill(&mut self, vgic: &mut Vgic, vcpu: usize) {
        self.sync(vgic, vcpu);
        for i in 0..gic::num_lrs().min(MAX_LRS) {
            if self.owner[i].is_some() {
                continue;
            }
            let Some(inj) = vgic.next_to_inject(vcpu) else {
                break;
            };
            gic::write_lr(i, encode(&inj));
            self.owner[i] = Some(inj.intid);
        }
        gic::set_underflow_irq(vgic.has_deliverable(vcpu));
    }

    fn sync_one(&mut self, vgic: &mut Vgic, vcpu: usize, i: usize, intid: u32) {
        let v = gic::read_lr(i);
        let state = state_of(v);
        let keep = match vgic.lr_update(vcpu, intid, state) {
            Ok(LrAction::Keep) => state != LrState::Invalid,
            Ok(LrAction::Replace(s)) if s != LrState::Invalid => {
                gic::write_lr(i, (v & !lr::STATE_MASK) | state_bits(s));
                true
            }
            Ok(_) | Err(_) => false,
        };
        if !keep {
            if v & lr::HW != 0 && state != LrState::Invalid {
                // Withdrawn before the guest finished it: the physical interrupt
                // would otherwise stay active for good.
                gic::deactivate(intid);
            }
            gic::write_lr(i, 0);
            self.owner[i] = None;
        }
    }
}
