//! Conversion between the GICv2 list register format (GICH_LR<n>, 32 bits) and the
//! GICv3 one (ICH_LR<n>_EL2, 64 bits) that the list-register code uses for both, and
//! the software stand-in for the HW bit ([`software_hw`], [`with_hw`]). Pure, so it is
//! unit-tested on the host.

/// GICH_LR fields.
mod lr2 {
    pub const HW: u32 = 1 << 31;
    pub const GROUP1: u32 = 1 << 30;
    pub const STATE_SHIFT: u32 = 28;
    pub const PRIORITY_SHIFT: u32 = 23;
    pub const PHYS_SHIFT: u32 = 10;
    pub const EOI: u32 = 1 << 19;
    pub const ID_MASK: u32 = 0x3ff;
}

/// ICH_LR fields used in the conversion.
mod lr3 {
    pub const STATE_SHIFT: u32 = 62;
    pub const HW: u64 = 1 << 61;
    pub const GROUP1: u64 = 1 << 60;
    pub const PRIORITY_SHIFT: u32 = 48;
    pub const PHYS_SHIFT: u32 = 32;
    pub const EOI: u64 = 1 << 41;
}

/// ICH_LR<n>_EL2 layout -> GICH_LR<n>. The GICv2 keeps priority bits [7:3].
pub fn from_v3(v: u64) -> u32 {
    let state = ((v >> lr3::STATE_SHIFT) & 3) as u32;
    let priority = ((v >> lr3::PRIORITY_SHIFT) & 0xff) as u32 >> 3;
    let mut out =
        (state << lr2::STATE_SHIFT) | (priority << lr2::PRIORITY_SHIFT) | (v as u32 & lr2::ID_MASK);
    if v & lr3::GROUP1 != 0 {
        out |= lr2::GROUP1;
    }
    if v & lr3::HW != 0 {
        let phys = (v >> lr3::PHYS_SHIFT) as u32 & lr2::ID_MASK;
        out |= lr2::HW | (phys << lr2::PHYS_SHIFT);
    } else if v & lr3::EOI != 0 {
        out |= lr2::EOI;
    }
    out
}

/// GICH_LR<n> -> ICH_LR<n>_EL2 layout (the inverse of [`from_v3`]).
pub fn to_v3(v: u32) -> u64 {
    let state = u64::from((v >> lr2::STATE_SHIFT) & 3);
    let priority = u64::from((v >> lr2::PRIORITY_SHIFT) & 0x1f) << 3;
    let mut out = (state << lr3::STATE_SHIFT)
        | (priority << lr3::PRIORITY_SHIFT)
        | u64::from(v & lr2::ID_MASK);
    if v & lr2::GROUP1 != 0 {
        out |= lr3::GROUP1;
    }
    if v & lr2::HW != 0 {
        let phys = u64::from((v >> lr2::PHYS_SHIFT) & lr2::ID_MASK);
        out |= lr3::HW | (phys << lr3::PHYS_SHIFT);
    } else if v & lr2::EOI != 0 {
        out |= lr3::EOI;
    }
    out
}

/// A forwarded interrupt (HW bit: the guest's deactivation deactivates the physical
/// INTID) as a software list register instead: HW cleared, EOI maintenance requested.
/// Returns the GICH_LR value and the physical INTID the hypervisor must deactivate
/// once the list register is empty again (None when `v` has no HW bit).
///
/// Why: QEMU's GICv2 (7.2) deactivates the physical interrupt when the guest finishes
/// a HW list register, but does not re-evaluate the physical CPU interface then; a
/// level interrupt still asserted (a timer that expired again) is then never signalled,
/// and a CPU waiting in WFI sleeps for good. The maintenance interrupt brings the CPU
/// back, and the hypervisor's own GICC_DIR write makes the GIC look again.
pub fn software_hw(v: u64) -> (u32, Option<u32>) {
    if v & lr3::HW == 0 {
        return (from_v3(v), None);
    }
    let phys = (v >> lr3::PHYS_SHIFT) as u32 & lr2::ID_MASK;
    (
        from_v3((v & !lr3::HW & !(0x1fff << lr3::PHYS_SHIFT)) | lr3::EOI),
        Some(phys),
    )
}

/// The ICH_LR layout of a list register written by [`software_hw`] for physical INTID
/// `phys`: as if it had the HW bit.
pub fn with_hw(lr: u32, phys: u32) -> u64 {
    let v = to_v3(lr) & !lr3::EOI;
    v | lr3::HW | (u64::from(phys & lr2::ID_MASK) << lr3::PHYS_SHIFT)
}

/// Whether a GICH_LR value holds nothing (the guest finished the interrupt).
pub fn is_empty(lr: u32) -> bool {
    (lr >> lr2::STATE_SHIFT) & 3 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ICH_LR value: state, HW, group 1, priority, physical INTID / EOI, virtual INTID.
    fn v3(state: u64, hw: bool, g1: bool, prio: u8, phys_or_eoi: u64, vid: u64) -> u64 {
        (state << 62)
            | (u64::from(hw) << 61)
            | (u64::from(g1) << 60)
            | (u64::from(prio) << 48)
            | phys_or_eoi
            | vid
    }

    #[test]
    fn hardware_timer_interrupt() {
        let v = v3(1, true, true, 0xa0, 27 << 32, 27);
        let v2 = from_v3(v);
        assert_eq!(
            v2,
            (1 << 31) | (1 << 30) | (1 << 28) | (0x14 << 23) | (27 << 10) | 27
        );
        assert_eq!(to_v3(v2), v);
    }

    #[test]
    fn level_interrupt_with_eoi_maintenance_in_group_0() {
        let v = v3(1, false, false, 0x80, 1 << 41, 33);
        let v2 = from_v3(v);
        assert_eq!(v2, (1 << 28) | (0x10 << 23) | (1 << 19) | 33);
        assert_eq!(to_v3(v2), v);
    }

    #[test]
    fn states_round_trip_and_low_priority_bits_are_dropped() {
        for state in 0..4 {
            let v = v3(state, false, true, 0xff, 0, 1);
            assert_eq!((from_v3(v) >> 28) & 3, state as u32);
            assert_eq!(to_v3(from_v3(v)), v3(state, false, true, 0xf8, 0, 1));
        }
        assert_eq!(from_v3(0), 0);
        assert_eq!(to_v3(0), 0);
    }

    #[test]
    fn hw_bit_stood_in_for_by_eoi_maintenance() {
        let v = v3(1, true, true, 0xa0, 27 << 32, 27);
        let (lr, phys) = software_hw(v);
        assert_eq!(phys, Some(27));
        assert_eq!(lr, (1 << 30) | (1 << 28) | (0x14 << 23) | (1 << 19) | 27);
        assert_eq!(
            with_hw(lr, 27),
            v,
            "reads back as the HW list register it stands for"
        );
        let active = (lr & !(3 << 28)) | (2 << 28);
        assert_eq!(with_hw(active, 27), v3(2, true, true, 0xa0, 27 << 32, 27));
        assert!(!is_empty(lr));
        assert!(is_empty(lr & !(3 << 28)));
        let soft = v3(1, false, true, 0x80, 1 << 41, 33);
        assert_eq!(software_hw(soft), (from_v3(soft), None));
    }

    #[test]
    fn interrupt_ids_are_ten_bits() {
        let v = v3(1, true, true, 0, 0x1fff << 32, 0x1fff);
        assert_eq!(from_v3(v) & 0x3ff, 0x3ff);
        assert_eq!((from_v3(v) >> 10) & 0x3ff, 0x3ff);
    }
}
