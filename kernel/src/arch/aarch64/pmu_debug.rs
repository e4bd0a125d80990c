//! The PMU and the debug registers from a guest's point of view: trapped to EL2
//! (MDCR_EL2) and emulated as an inert PMU and debug unit (reads as zero, writes
//! ignored). So a guest cannot count cycles or events at EL2 (PMCCFILTR_EL0.NSH,
//! PMEVTYPER<n>_EL0.NSH), and no PMU or debug state of one boot (counters, filters,
//! breakpoints, MDSCR_EL1) reaches the next boot or another VM. Pure, so it is
//! unit-tested on the host.

/// MDCR_EL2 fields.
const HPMN_MASK: u64 = 0x1f;
const TPMCR: u64 = 1 << 5;
const TPM: u64 = 1 << 6;
const TDA: u64 = 1 << 9;
const TDOSA: u64 = 1 << 10;
const TDRA: u64 = 1 << 11;
/// PMUv3p1: event counters do not count at EL2.
const HPMD: u64 = 1 << 17;
/// PMUv3p5: the cycle counter does not count at EL2.
const HCCD: u64 = 1 << 23;

/// ID_AA64DFR0_EL1.PMUVer.
fn pmu_version(id_aa64dfr0: u64) -> u64 {
    (id_aa64dfr0 >> 8) & 0xf
}

/// Whether the CPU has a PMUv3 (PMCR_EL0 and the rest exist).
pub fn has_pmu(id_aa64dfr0: u64) -> bool {
    !matches!(pmu_version(id_aa64dfr0), 0 | 0xf)
}

/// MDCR_EL2 for a vCPU: every PMU and debug register access trapped, all event
/// counters in the guest's range (HPMN = PMCR_EL0.N, as they are inert anyway), and
/// where the PMU can, counting at EL2 prohibited. `pmcr` is PMCR_EL0 (0 without PMU).
pub fn mdcr_el2(id_aa64dfr0: u64, pmcr: u64) -> u64 {
    let mut v = TPMCR | TPM | TDA | TDOSA | TDRA;
    if has_pmu(id_aa64dfr0) {
        v |= (pmcr >> 11) & HPMN_MASK;
        let version = pmu_version(id_aa64dfr0);
        if version >= 4 {
            v |= HPMD;
        }
        if version >= 6 {
            v |= HCCD;
        }
    }
    v
}

/// Whether a trapped MSR/MRS (op0, op1, CRn, CRm, op2) is a PMU or debug register
/// access, to be emulated as read-as-zero / write-ignored.
pub fn is_pmu_or_debug(enc: (u8, u8, u8, u8, u8)) -> bool {
    let (op0, op1, crn, crm, _) = enc;
    // op0 = 2: the debug registers (MDSCR_EL1, OSLAR_EL1, DBGB*/DBGW*, MDCCSR_EL0, ...).
    // op0 = 3, CRn 9, CRm 12..14: PMCR_EL0 .. PMOVSSET_EL0, PMINTEN*_EL1, PMMIR_EL1.
    // op0 = 3, op1 3, CRn 14, CRm 8..15: PMEVCNTR<n>_EL0, PMEVTYPER<n>_EL0, PMCCFILTR_EL0.
    op0 == 2
        || (op0 == 3 && crn == 9 && (12..=14).contains(&crm))
        || (op0 == 3 && op1 == 3 && crn == 14 && crm >= 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmu_and_debug_registers_are_recognised() {
        let pmccfiltr = (3, 3, 14, 15, 7);
        let pmcr = (3, 3, 9, 12, 0);
        let pmccntr = (3, 3, 9, 13, 0);
        let pmuserenr = (3, 3, 9, 14, 0);
        let pmintenset = (3, 0, 9, 14, 1);
        let pmevtyper0 = (3, 3, 14, 12, 0);
        let mdscr = (2, 0, 0, 2, 2);
        let oslar = (2, 0, 1, 0, 4);
        let dbgbcr0 = (2, 0, 0, 0, 5);
        for r in [
            pmccfiltr, pmcr, pmccntr, pmuserenr, pmintenset, pmevtyper0, mdscr, oslar, dbgbcr0,
        ] {
            assert!(is_pmu_or_debug(r), "{r:?}");
        }
        let cntv_ctl = (3, 3, 14, 3, 1);
        let icc_sgi1r = (3, 0, 12, 11, 5);
        let pmscr_spe = (3, 0, 9, 9, 0);
        let sctlr = (3, 0, 1, 0, 0);
        for r in [cntv_ctl, icc_sgi1r, pmscr_spe, sctlr] {
            assert!(!is_pmu_or_debug(r), "{r:?}");
        }
    }

    #[test]
    fn mdcr_traps_everything_and_keeps_el2_out_of_the_counts() {
        let traps = TPMCR | TPM | TDA | TDOSA | TDRA;
        // No PMU: traps only.
        assert_eq!(mdcr_el2(0, 0), traps);
        assert_eq!(mdcr_el2(0xf << 8, 0), traps);
        // PMUv3 (Cortex-A72): 6 counters, no HPMD/HCCD yet.
        assert_eq!(mdcr_el2(1 << 8, 6 << 11), traps | 6);
        // PMUv3p1 adds HPMD, PMUv3p5 HCCD.
        assert_eq!(mdcr_el2(4 << 8, 6 << 11), traps | 6 | HPMD);
        assert_eq!(mdcr_el2(6 << 8, 31 << 11), traps | 31 | HPMD | HCCD);
    }
}
