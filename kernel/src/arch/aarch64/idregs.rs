//! The CPU features a guest sees. Every read of the AArch64 ID register space
//! (op0 3, op1 0, CRn 0, CRm 1..7: ID_AA64PFR0_EL1 .. ID_AA64MMFR4_EL1 and the AArch32
//! ID registers) traps to EL2 (HCR_EL2.TID3) and is answered here: the host's value,
//! field by field as [`TABLE`] decides.
//!
//! The rule behind the table: a guest sees a feature only if it can use it as on
//! bare hardware, i.e. its state lives in registers the guest owns (a vCPU has its
//! physical CPU to itself, so EL1 system registers, FP/SIMD registers and PSTATE
//! stay in the CPU across exits) and the hypervisor neither traps nor has to switch
//! it. Everything else reads as "not implemented":
//! - pointer authentication (APA, API, GPA, GPI, APA3, GPA3, PAC_frac): hidden. Its
//!   keys are EL1 registers the hypervisor would have to give the guest (HCR_EL2.APK,
//!   API) and clear on reset; with the ID fields at zero Linux never enables a key,
//!   its PACIASP/AUTIASP stay NOPs, and a guest that writes a key anyway is stopped
//!   (trapped key access, or EC 0x09 for a PAC instruction with a key enabled).
//! - SVE and SME (and their ZFR0/SMFR0, FPMR's FPFR0): hidden, and trapped by
//!   CPTR_EL2.TZ/TSM (the Z/P/ZA state would need ZCR_EL2 and a save/restore).
//! - MTE, RAS, AMU, MPAM, SPE, trace, TRBE, BRBE, TME, LOR, GCS, S1PIE/S1POE and the
//!   rest of ID_AA64MMFR3/4, NMI, MOPS, LS64: hidden (state or controls the
//!   hypervisor does not switch or set up).
//! - the PMU (PMUVer): hidden; its registers are trapped and inert (`pmu_debug`).
//! - AArch32 at any EL: hidden (EL0..EL3 capped at "AArch64 only"); an exception
//!   from AArch32 state stops the VM, so the AArch32 ID registers read as zero.
//! - EL2 features (VH, NV, FGT, HCX, XNX, TWED, VMIDBits, FWB, EVT, ECV's EL2 part):
//!   hidden; a guest has no EL2 of its own.
//! - big-endian data (BigEnd, BigEndEL0): hidden; trapped MMIO is emulated
//!   little-endian.
//! - PARange: capped at the VM's IPA size.
//!
//! Registers and fields the table does not name read as zero, so a CPU newer than
//! this table shows a guest nothing unknown. Pure: unit-tested on the host.

/// What a guest sees of one ID register field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The host's value.
    Keep,
    /// Zero: not implemented.
    Hide,
    /// The host's value, at most this (an unsigned field).
    Cap(u8),
    /// ID_AA64MMFR0_EL1.PARange: at most the VM's IPA size.
    PaRange,
}

/// One 4-bit field: its lowest bit, its name, what the guest sees.
pub type Field = (u8, &'static str, Rule);

use Rule::{Cap, Hide, Keep, PaRange};

/// ID_AA64PFR0_EL1.
const PFR0: &[Field] = &[
    (0, "EL0", Cap(1)),
    (4, "EL1", Cap(1)),
    (8, "EL2", Cap(1)),
    (12, "EL3", Cap(1)),
    (16, "FP", Keep),
    (20, "AdvSIMD", Keep),
    (24, "GIC", Keep),
    (28, "RAS", Hide),
    (32, "SVE", Hide),
    (36, "SEL2", Hide),
    (40, "MPAM", Hide),
    (44, "AMU", Hide),
    (48, "DIT", Keep),
    (52, "RME", Hide),
    // CSV2 = 2 would promise SCXTNUM_ELx, which HCR_EL2.EnSCXT leaves trapped.
    (56, "CSV2", Cap(1)),
    (60, "CSV3", Keep),
];

/// ID_AA64PFR1_EL1.
const PFR1: &[Field] = &[
    (0, "BT", Keep),
    (4, "SSBS", Keep),
    (8, "MTE", Hide),
    (12, "RAS_frac", Hide),
    (16, "MPAM_frac", Hide),
    (20, "RES0", Hide),
    (24, "SME", Hide),
    (28, "RNDR_trap", Hide),
    (32, "CSV2_frac", Keep),
    (36, "NMI", Hide),
    (40, "MTE_frac", Hide),
    (44, "GCS", Hide),
    (48, "THE", Hide),
    (52, "MTEX", Hide),
    (56, "DF2", Hide),
    (60, "PFAR", Hide),
];

/// ID_AA64DFR0_EL1. The debug registers are trapped and inert (`pmu_debug`); their
/// counts are shown as the hardware has them.
const DFR0: &[Field] = &[
    (0, "DebugVer", Keep),
    (4, "TraceVer", Hide),
    (8, "PMUVer", Hide),
    (12, "BRPs", Keep),
    (16, "PMSS", Hide),
    (20, "WRPs", Keep),
    (24, "SEBEP", Hide),
    (28, "CTX_CMPs", Keep),
    (32, "PMSVer", Hide),
    (36, "DoubleLock", Keep),
    (40, "TraceFilt", Hide),
    (44, "TraceBuffer", Hide),
    (48, "MTPMU", Hide),
    (52, "BRBE", Hide),
    (56, "ExtTrcBuff", Hide),
    (60, "HPMN0", Hide),
];

/// ID_AA64ISAR0_EL1: instructions without state of their own.
const ISAR0: &[Field] = &[
    (0, "RES0", Hide),
    (4, "AES", Keep),
    (8, "SHA1", Keep),
    (12, "SHA2", Keep),
    (16, "CRC32", Keep),
    (20, "Atomic", Keep),
    (24, "TME", Hide),
    (28, "RDM", Keep),
    (32, "SHA3", Keep),
    (36, "SM3", Keep),
    (40, "SM4", Keep),
    (44, "DP", Keep),
    (48, "FHM", Keep),
    (52, "TS", Keep),
    (56, "TLB", Keep),
    (60, "RNDR", Keep),
];

/// ID_AA64ISAR1_EL1.
const ISAR1: &[Field] = &[
    (0, "DPB", Keep),
    (4, "APA", Hide),
    (8, "API", Hide),
    (12, "JSCVT", Keep),
    (16, "FCMA", Keep),
    (20, "LRCPC", Keep),
    (24, "GPA", Hide),
    (28, "GPI", Hide),
    (32, "FRINTTS", Keep),
    (36, "SB", Keep),
    (40, "SPECRES", Keep),
    (44, "BF16", Keep),
    (48, "DGH", Keep),
    (52, "I8MM", Keep),
    (56, "XS", Keep),
    (60, "LS64", Hide),
];

/// ID_AA64ISAR2_EL1.
const ISAR2: &[Field] = &[
    (0, "WFxT", Keep),
    (4, "RPRES", Keep),
    (8, "GPA3", Hide),
    (12, "APA3", Hide),
    (16, "MOPS", Hide),
    (20, "BC", Keep),
    (24, "PAC_frac", Hide),
    (28, "CLRBHB", Keep),
    (32, "SYSREG_128", Hide),
    (36, "SYSINSTR_128", Hide),
    (40, "PRFMSLC", Keep),
    (44, "PCDPHINT", Hide),
    (48, "RPRFM", Keep),
    (52, "CSSC", Keep),
    (56, "LUT", Hide),
    (60, "ATS1A", Hide),
];

/// ID_AA64MMFR0_EL1.
const MMFR0: &[Field] = &[
    (0, "PARange", PaRange),
    (4, "ASIDBits", Keep),
    (8, "BigEnd", Hide),
    (12, "SNSMem", Keep),
    (16, "BigEndEL0", Hide),
    (20, "TGran16", Keep),
    (24, "TGran64", Keep),
    (28, "TGran4", Keep),
    // Stage-2 granules: 0 means "as for stage 1", which no guest EL2 uses anyway.
    (32, "TGran16_2", Hide),
    (36, "TGran64_2", Hide),
    (40, "TGran4_2", Hide),
    (44, "ExS", Keep),
    (48, "RES0", Hide),
    (52, "RES0", Hide),
    (56, "FGT", Hide),
    // Self-synchronised counter views are the guest's; CNTPOFF (ECV 2) is EL2's.
    (60, "ECV", Cap(1)),
];

/// ID_AA64MMFR1_EL1.
const MMFR1: &[Field] = &[
    (0, "HAFDBS", Keep),
    (4, "VMIDBits", Hide),
    (8, "VH", Hide),
    (12, "HPDS", Keep),
    (16, "LO", Hide),
    (20, "PAN", Keep),
    (24, "SpecSEI", Keep),
    (28, "XNX", Hide),
    (32, "TWED", Hide),
    (36, "ETS", Keep),
    (40, "HCX", Hide),
    (44, "AFP", Keep),
    (48, "nTLBPA", Keep),
    (52, "TIDCP1", Hide),
    (56, "CMOW", Hide),
    (60, "ECBHB", Keep),
];

/// ID_AA64MMFR2_EL1.
const MMFR2: &[Field] = &[
    (0, "CnP", Keep),
    (4, "UAO", Keep),
    (8, "LSM", Keep),
    (12, "IESB", Keep),
    (16, "VARange", Keep),
    (20, "CCIDX", Keep),
    (24, "NV", Hide),
    (28, "ST", Keep),
    (32, "AT", Keep),
    (36, "IDS", Keep),
    (40, "FWB", Hide),
    (44, "RES0", Hide),
    (48, "TTL", Keep),
    (52, "BBM", Keep),
    (56, "EVT", Hide),
    (60, "E0PD", Keep),
];

/// An ID register the guest sees something of, by (CRm, op2) in the ID space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdReg {
    Pfr0,
    Pfr1,
    Dfr0,
    Isar0,
    Isar1,
    Isar2,
    Mmfr0,
    Mmfr1,
    Mmfr2,
}

/// A register with a field table.
pub struct Register {
    pub reg: IdReg,
    pub name: &'static str,
    /// (CRm, op2) in the ID space.
    pub at: (u8, u8),
    pub fields: &'static [Field],
}

const fn r(reg: IdReg, name: &'static str, at: (u8, u8), fields: &'static [Field]) -> Register {
    Register {
        reg,
        name,
        at,
        fields,
    }
}

/// Every register the guest sees something of.
pub const TABLE: &[Register] = &[
    r(IdReg::Pfr0, "ID_AA64PFR0_EL1", (4, 0), PFR0),
    r(IdReg::Pfr1, "ID_AA64PFR1_EL1", (4, 1), PFR1),
    r(IdReg::Dfr0, "ID_AA64DFR0_EL1", (5, 0), DFR0),
    r(IdReg::Isar0, "ID_AA64ISAR0_EL1", (6, 0), ISAR0),
    r(IdReg::Isar1, "ID_AA64ISAR1_EL1", (6, 1), ISAR1),
    r(IdReg::Isar2, "ID_AA64ISAR2_EL1", (6, 2), ISAR2),
    r(IdReg::Mmfr0, "ID_AA64MMFR0_EL1", (7, 0), MMFR0),
    r(IdReg::Mmfr1, "ID_AA64MMFR1_EL1", (7, 1), MMFR1),
    r(IdReg::Mmfr2, "ID_AA64MMFR2_EL1", (7, 2), MMFR2),
];

/// What a trapped MRS of the ID space reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRead {
    /// The host's value of this register, sanitised with [`guest_value`].
    Sanitised(IdReg),
    /// Zero: a register of a hidden feature, an AArch32 one, or a reserved encoding.
    Zero,
}

/// Whether (op0, op1, CRn, CRm, op2) is in the ID space HCR_EL2.TID3 traps, and if
/// so what the guest reads. Writes to it are the guest's error (the registers are
/// read-only).
pub fn classify(enc: (u8, u8, u8, u8, u8)) -> Option<IdRead> {
    let (op0, op1, crn, crm, op2) = enc;
    if op0 != 3 || op1 != 0 || crn != 0 || !(1..=7).contains(&crm) {
        return None;
    }
    Some(
        TABLE
            .iter()
            .find(|t| t.at == (crm, op2))
            .map_or(IdRead::Zero, |t| IdRead::Sanitised(t.reg)),
    )
}

/// The fields of `reg`.
fn fields(reg: IdReg) -> &'static [Field] {
    TABLE
        .iter()
        .find(|t| t.reg == reg)
        .map_or(&[], |t| t.fields)
}

/// PARange encodings and their sizes in bits.
const PA_RANGES: [u8; 7] = [32, 36, 40, 42, 44, 48, 52];

/// The largest PARange encoding of at most `ipa_bits` bits (0 = 32 bits).
pub fn pa_range_for(ipa_bits: u32) -> u64 {
    PA_RANGES
        .iter()
        .rposition(|&b| u32::from(b) <= ipa_bits)
        .unwrap_or(0) as u64
}

/// What the guest reads from `reg` when the host has `host`; `ipa_bits` is the
/// VM's IPA size.
pub fn guest_value(reg: IdReg, host: u64, ipa_bits: u32) -> u64 {
    fields(reg).iter().fold(0, |acc, &(lsb, _, rule)| {
        let v = (host >> lsb) & 0xf;
        let v = match rule {
            Keep => v,
            Hide => 0,
            Cap(max) => v.min(u64::from(max)),
            PaRange => v.min(pa_range_for(ipa_bits)),
        };
        acc | (v << lsb)
    })
}

/// CPTR_EL2 (without VHE) for a vCPU: FP/SIMD not trapped (the hypervisor never
/// touches FP state, so the guest's stays in the CPU), SVE (TZ) and SME (TSM, RES1
/// without SME) trapped, and the activity monitors (TAM) trapped where they exist.
pub fn cptr_el2(id_aa64pfr0: u64) -> u64 {
    /// RES1 bits 7:0, 9, 12 (TSM) and 13, plus TZ (bit 8).
    const BASE: u64 = 0x33ff;
    const TAM: u64 = 1 << 30;
    let amu = (id_aa64pfr0 >> 44) & 0xf != 0;
    BASE | if amu { TAM } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: u64, lsb: u8) -> u64 {
        (v >> lsb) & 0xf
    }

    fn lsb_of(reg: IdReg, name: &str) -> u8 {
        fields(reg)
            .iter()
            .find(|f| f.1 == name)
            .unwrap_or_else(|| panic!("{reg:?} has no field {name}"))
            .0
    }

    #[test]
    fn every_field_of_every_register_is_decided_once() {
        for t in TABLE {
            let lsbs: Vec<u8> = t.fields.iter().map(|f| f.0).collect();
            let want: Vec<u8> = (0..16).map(|i| i * 4).collect();
            assert_eq!(lsbs, want, "{} ({:?}): 16 fields in order", t.name, t.reg);
        }
        let mut places: Vec<(u8, u8)> = TABLE.iter().map(|t| t.at).collect();
        places.sort();
        places.dedup();
        assert_eq!(places.len(), TABLE.len(), "one register per encoding");
    }

    #[test]
    fn the_id_space_is_recognised_and_unknown_registers_read_zero() {
        assert_eq!(
            classify((3, 0, 0, 4, 0)),
            Some(IdRead::Sanitised(IdReg::Pfr0))
        );
        assert_eq!(
            classify((3, 0, 0, 7, 2)),
            Some(IdRead::Sanitised(IdReg::Mmfr2))
        );
        // ID_AA64ZFR0_EL1 (SVE), ID_AA64SMFR0_EL1 (SME), ID_AA64MMFR3_EL1, ID_PFR0_EL1
        // (AArch32), ID_AA64AFR0_EL1 and a reserved encoding: zero.
        for enc in [
            (3, 0, 0, 4, 4),
            (3, 0, 0, 4, 5),
            (3, 0, 0, 7, 3),
            (3, 0, 0, 1, 0),
            (3, 0, 0, 5, 4),
            (3, 0, 0, 7, 7),
        ] {
            assert_eq!(classify(enc), Some(IdRead::Zero), "{enc:?}");
        }
        // MIDR_EL1 (CRm 0), CTR_EL0 (op1 3), CCSIDR_EL1 (op1 1), SCTLR_EL1: not ID space.
        for enc in [
            (3, 0, 0, 0, 0),
            (3, 3, 0, 0, 1),
            (3, 1, 0, 0, 0),
            (3, 0, 1, 0, 0),
        ] {
            assert_eq!(classify(enc), None, "{enc:?}");
        }
    }

    /// ID registers of QEMU 7.2 `-cpu max` as the hypervisor reads them at EL2
    /// (virt, virtualization=on, mte off): SVE, SME, PAuth, RAS 2, PMUv3p7, SEL2, LOR,
    /// VHE, AArch32 at EL0..EL2, 52-bit PA.
    const MAX_PFR0: u64 = 0x1201_0011_2111_0222;
    const MAX_PFR1: u64 = 0x0100_0021;
    const MAX_DFR0: u64 = 0x1030_5609;
    const MAX_ISAR0: u64 = 0x1221_1111_1021_2120;
    const MAX_ISAR1: u64 = 0x0011_1111_0121_1012;
    const MAX_MMFR0: u64 = 0x0323_1020_1126;
    const MAX_MMFR1: u64 = 0x0110_1021_1122;
    const MAX_MMFR2: u64 = 0x1021_0110_1001_1011;

    #[test]
    fn qemu_max_cpu_as_a_guest_sees_it() {
        let g = |reg, host| guest_value(reg, host, 40);
        // EL0..EL2 AArch64 only, EL3 absent stays absent; RAS, SVE, SEL2 hidden;
        // CSV2 2 -> 1; FP, AdvSIMD, GIC, DIT, CSV3 kept.
        assert_eq!(g(IdReg::Pfr0, MAX_PFR0), 0x1101_0000_0111_0111);
        // BT and SSBS kept, SME hidden.
        assert_eq!(g(IdReg::Pfr1, MAX_PFR1), 0x21);
        // PMUVer hidden; DebugVer, BRPs, WRPs, CTX_CMPs kept.
        assert_eq!(g(IdReg::Dfr0, MAX_DFR0), 0x1030_5009);
        // Nothing of ISAR0 is hidden on this CPU (no TME).
        assert_eq!(g(IdReg::Isar0, MAX_ISAR0), MAX_ISAR0);
        // APA and GPA (pointer authentication) hidden.
        assert_eq!(g(IdReg::Isar1, MAX_ISAR1), 0x0011_1111_0021_1002);
        // PARange 52 -> 40 bits, BigEnd and the stage-2 granules hidden.
        assert_eq!(g(IdReg::Mmfr0, MAX_MMFR0), 0x1020_1022);
        // VMIDBits, VH, LO, XNX, HCX hidden; HAFDBS, HPDS, PAN, ETS kept.
        assert_eq!(g(IdReg::Mmfr1, MAX_MMFR1), 0x0010_0020_1002);
        // FWB hidden.
        assert_eq!(g(IdReg::Mmfr2, MAX_MMFR2), 0x1021_0010_1001_1011);
        for name in ["SVE", "RAS", "AMU", "MPAM"] {
            let v = g(IdReg::Pfr0, MAX_PFR0);
            assert_eq!(field(v, lsb_of(IdReg::Pfr0, name)), 0, "PFR0.{name}");
        }
    }

    #[test]
    fn cortex_a76_and_a53_as_a_guest_sees_them() {
        // QEMU 7.2 cortex-a76: AArch32 at EL0, RAS 1, CSV2, CSV3.
        let a76_pfr0 = 0x1100_0000_1111_0112;
        assert_eq!(
            guest_value(IdReg::Pfr0, a76_pfr0, 40),
            0x1100_0000_0111_0111
        );
        // HAFDBS 2, VMIDBits 2, VH, HPDS 2, LO, PAN 2, XNX.
        assert_eq!(guest_value(IdReg::Mmfr1, 0x1021_2122, 40), 0x20_2002);
        // QEMU 7.2 cortex-a53: AArch32 at EL0..EL2, PMUv3, nothing else to hide.
        let a53_pfr0 = 0x0100_0222;
        assert_eq!(guest_value(IdReg::Pfr0, a53_pfr0, 40), 0x0100_0111);
        assert_eq!(guest_value(IdReg::Dfr0, 0x1030_5106, 40), 0x1030_5006);
        assert_eq!(guest_value(IdReg::Isar0, 0x1_1120, 40), 0x1_1120);
    }

    #[test]
    fn pauth_of_the_qarma3_kind_is_hidden_too() {
        // APA3 = 3, GPA3 = 1, PAC_frac = 1, WFxT = 2, BC = 1.
        let host = (1 << 24) | (3 << 12) | (1 << 8) | (1 << 20) | 2;
        let v = guest_value(IdReg::Isar2, host, 48);
        assert_eq!(v, (1 << 20) | 2);
    }

    #[test]
    fn pa_range_is_capped_at_the_vms_ipa_size() {
        assert_eq!(pa_range_for(32), 0);
        assert_eq!(pa_range_for(39), 1);
        assert_eq!(pa_range_for(40), 2);
        assert_eq!(pa_range_for(44), 4);
        assert_eq!(pa_range_for(48), 5);
        assert_eq!(pa_range_for(52), 6);
        assert_eq!(pa_range_for(12), 0, "nothing below 32 bits");
        // Cortex-A72: PARange 44 bits (4), 16-bit ASIDs, mixed endian, SNSMem.
        let a72 = 0x0000_0000_0000_1124;
        assert_eq!(guest_value(IdReg::Mmfr0, a72, 40), 0x1022, "BigEnd hidden");
        assert_eq!(guest_value(IdReg::Mmfr0, a72, 48), 0x1024, "never raised");
        // BigEnd and BigEndEL0 hidden; TGran4 "not implemented" (0xf) kept.
        let be = (0xf << 28) | (1 << 16) | (1 << 8) | 5;
        assert_eq!(guest_value(IdReg::Mmfr0, be, 48), (0xf << 28) | 5);
    }

    #[test]
    fn el2_features_and_lor_are_hidden() {
        // Cortex-A76-like MMFR1: VH 1, HPDS 2, LO 1, PAN 2, VMIDBits 2, HAFDBS 2.
        let host = (2 << 20) | (1 << 16) | (2 << 12) | (1 << 8) | (2 << 4) | 2;
        assert_eq!(
            guest_value(IdReg::Mmfr1, host, 40),
            (2 << 20) | (2 << 12) | 2
        );
        // MMFR2: NV 2, FWB 1, EVT 2 hidden; UAO, CnP kept.
        let host = (2u64 << 56) | (1 << 40) | (2 << 24) | (1 << 4) | 1;
        assert_eq!(guest_value(IdReg::Mmfr2, host, 40), (1 << 4) | 1);
    }

    #[test]
    fn caps_lower_and_never_raise() {
        // CSV2 = 2 (SCXTNUM) capped to 1; EL0 = 1 (AArch64 only) stays 1.
        let host = (2u64 << 56) | 1;
        assert_eq!(guest_value(IdReg::Pfr0, host, 40), (1 << 56) | 1);
        assert_eq!(guest_value(IdReg::Pfr0, 0, 40), 0);
        // ECV 2 capped to 1.
        assert_eq!(guest_value(IdReg::Mmfr0, 2 << 60, 32), 1 << 60);
    }

    #[test]
    fn cptr_traps_sve_sme_and_the_activity_monitors() {
        assert_eq!(cptr_el2(0), 0x33ff);
        assert_eq!(cptr_el2(1 << 44), 0x33ff | (1 << 30));
        assert_ne!(cptr_el2(0) & (1 << 8), 0, "TZ");
        assert_eq!(cptr_el2(0) & (1 << 10), 0, "FP/SIMD not trapped");
    }
}
