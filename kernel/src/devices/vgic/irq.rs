//! The state of one virtual interrupt and its life in a list register.

/// What a list register says about an interrupt (ICH_LR<n>_EL2.State).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrState {
    /// Not in a list register (or the guest finished with it).
    #[default]
    Invalid,
    Pending,
    Active,
    PendingActive,
}

impl LrState {
    pub fn has_pending(self) -> bool {
        matches!(self, LrState::Pending | LrState::PendingActive)
    }

    pub fn has_active(self) -> bool {
        matches!(self, LrState::Active | LrState::PendingActive)
    }

    fn from_parts(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => LrState::Invalid,
            (true, false) => LrState::Pending,
            (false, true) => LrState::Active,
            (true, true) => LrState::PendingActive,
        }
    }
}

/// What the arch code must do to the list register after [`super::Vgic::lr_update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrAction {
    /// Leave it as it is.
    Keep,
    /// Clear the list register (the interrupt was withdrawn, or lost its pending
    /// state, while the guest had not taken it yet).
    Remove,
    /// Rewrite the list register's state to this.
    Replace(LrState),
}

/// One interrupt handed to the arch code for a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    pub intid: u32,
    pub priority: u8,
    /// Group 1 (ICH_LR.Group); Linux puts everything in group 1.
    pub group1: bool,
    /// Hardware interrupt: ICH_LR.HW with pINTID = `intid` (the guest's deactivation
    /// deactivates the physical interrupt).
    pub hw: bool,
    /// Level-sensitive: ask for a maintenance interrupt on EOI (ICH_LR.EOI, when not
    /// `hw`) so a line that is still high is injected again promptly.
    pub level: bool,
}

/// Per-interrupt state. "Pending" and "active" outside a list register live here;
/// while the interrupt is in a list register (`lr != Invalid`) the LR holds them and
/// the `cancel_*` flags record what the guest withdrew through the distributor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Irq {
    pub enabled: bool,
    /// Edge latch or software pending (GICD_ISPENDR).
    pub latch: bool,
    /// Input line level (level-sensitive interrupts).
    pub line: bool,
    /// Active outside a list register (GICD_ISACTIVER).
    pub active: bool,
    pub group1: bool,
    pub edge: bool,
    pub hw: bool,
    pub priority: u8,
    pub lr: LrState,
    /// The LR's pending state came from `latch` (restored if it is taken back).
    pub lr_latch: bool,
    /// vCPU whose list register holds it.
    pub lr_vcpu: usize,
    pub cancel_pending: bool,
    pub cancel_active: bool,
}

impl Irq {
    pub fn pending(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }

    /// Pending as the guest reads GICD_ISPENDR.
    pub fn visible_pending(&self) -> bool {
        self.pending() || (self.lr.has_pending() && !self.cancel_pending)
    }

    pub fn visible_active(&self) -> bool {
        self.active || (self.lr.has_active() && !self.cancel_active)
    }

    /// Can go into a list register now (group enables are checked by the caller).
    pub fn ready(&self) -> bool {
        self.enabled && self.pending() && self.lr == LrState::Invalid && !self.active
    }

    /// Marks the interrupt as placed in `vcpu`'s list register, pending.
    pub fn inject(&mut self, vcpu: usize) {
        self.lr = LrState::Pending;
        self.lr_latch = self.latch;
        self.latch = false;
        self.lr_vcpu = vcpu;
        self.cancel_pending = false;
        self.cancel_active = false;
    }

    /// Whether a pending state held in a list register is still wanted.
    fn lr_pending_wanted(&self) -> bool {
        self.enabled && !self.cancel_pending && (self.edge || self.lr_latch || self.line)
    }

    /// Folds what the list register says back into the model.
    pub fn update_from_lr(&mut self, state: LrState) -> LrAction {
        let mut pending = state.has_pending() && self.lr_pending_wanted();
        let active = state.has_active() && !self.cancel_active;
        if state.has_pending() && !pending && !self.enabled && !self.cancel_pending {
            // Disabled while pending: the pending state waits in the model.
            self.latch |= self.lr_latch;
        }
        if active && !pending && self.latch && self.enabled && !self.hw {
            // A new edge while the guest handles the last one: pending and active in
            // the list register, so the guest takes it as soon as it finishes the
            // first (an edge interrupt's end causes no exit that would refill).
            pending = true;
            self.latch = false;
            self.lr_latch = true;
        }
        let wanted = LrState::from_parts(pending, active);
        self.lr = wanted;
        self.cancel_pending = false;
        self.cancel_active = false;
        match wanted {
            w if w == state => LrAction::Keep,
            LrState::Invalid => LrAction::Remove,
            w => LrAction::Replace(w),
        }
    }

    /// The arch code took a still-pending interrupt (LR state Pending) out of a list
    /// register: the pending state goes back to the model.
    pub fn unqueue(&mut self) {
        if !self.cancel_pending {
            self.latch |= self.lr_latch;
        }
        self.lr = LrState::Invalid;
        self.cancel_pending = false;
        self.cancel_active = false;
    }
}
