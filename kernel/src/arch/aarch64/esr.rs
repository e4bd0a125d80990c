//! Decoding of ESR_EL2 (exception syndrome) into what the hypervisor needs to act on.
//! Pure functions: unit-tested on the host.

/// Exception classes the hypervisor handles (ESR_EL2.EC, bits [31:26]).
pub mod ec {
    pub const UNKNOWN: u32 = 0x00;
    pub const WFX: u32 = 0x01;
    /// A pointer authentication instruction with HCR_EL2.API clear.
    pub const PAC: u32 = 0x09;
    pub const HVC64: u32 = 0x16;
    pub const SMC64: u32 = 0x17;
    pub const SYSREG: u32 = 0x18;
    /// SVE with CPTR_EL2.TZ set.
    pub const SVE: u32 = 0x19;
    /// SME with CPTR_EL2.TSM set.
    pub const SME: u32 = 0x1d;
    pub const IABT_LOWER: u32 = 0x20;
    pub const DABT_LOWER: u32 = 0x24;
}

pub fn class(esr: u64) -> u32 {
    ((esr >> 26) & 0x3f) as u32
}

/// Instruction length: 4 bytes when IL is set (always for AArch64 guests).
pub fn instr_len(esr: u64) -> u64 {
    if esr & (1 << 25) != 0 {
        4
    } else {
        2
    }
}

/// A data abort with a valid instruction syndrome: a single load or store of a
/// general-purpose register that the hypervisor can emulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAccess {
    pub write: bool,
    /// Access width in bytes: 1, 2, 4, 8.
    pub width: u8,
    /// Register number, 31 = XZR/WZR.
    pub reg: u8,
    /// Sign-extend the loaded value to the register width.
    pub sign_extend: bool,
    /// Destination register is 64-bit (X) rather than 32-bit (W).
    pub reg64: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAbort {
    /// ISV = 1: emulatable access.
    Access(DataAccess),
    /// ISV = 0: the instruction (load/store pair, post-index with writeback, SIMD...)
    /// cannot be emulated from the syndrome alone. `write` from WnR.
    NoSyndrome { write: bool },
}

/// Decodes the ISS of a data abort from a lower EL (EC 0x24).
pub fn data_abort(esr: u64) -> DataAbort {
    let iss = esr & 0x1ff_ffff;
    let write = iss & (1 << 6) != 0;
    if iss & (1 << 24) == 0 {
        return DataAbort::NoSyndrome { write };
    }
    DataAbort::Access(DataAccess {
        write,
        width: 1 << ((iss >> 22) & 3),
        reg: ((iss >> 16) & 0x1f) as u8,
        sign_extend: iss & (1 << 21) != 0,
        reg64: iss & (1 << 15) != 0,
    })
}

/// Data / instruction fault status code (DFSC/IFSC) in words, for stop reasons.
pub fn fault_status(esr: u64) -> &'static str {
    match esr & 0x3f {
        0x04..=0x07 => "translation fault",
        0x08..=0x0b => "access flag fault",
        0x0c..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict",
        _ => "fault",
    }
}

/// Is this abort a translation fault (an invalid stage-2 entry)?
pub fn is_translation_fault(esr: u64) -> bool {
    matches!(esr & 0x3f, 0x04..=0x07)
}

/// Did the aborted data access write? A stage-1 table walk (S1PTW) counts as a read:
/// the walker only needs to read the guest's tables.
pub fn is_data_write(esr: u64) -> bool {
    esr & (1 << 7) == 0 && esr & (1 << 6) != 0
}

/// Level of the stage-2 walk at which a translation/permission fault happened.
pub fn fault_level(esr: u64) -> u8 {
    (esr & 3) as u8
}

/// A trapped MSR/MRS (EC 0x18), named by its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
    pub reg: u8,
    /// MRS (read) when true, MSR (write) when false.
    pub read: bool,
}

impl SysRegAccess {
    /// The register as (op0, op1, CRn, CRm, op2).
    pub fn encoding(&self) -> (u8, u8, u8, u8, u8) {
        (self.op0, self.op1, self.crn, self.crm, self.op2)
    }
}

pub fn sysreg(esr: u64) -> SysRegAccess {
    let iss = esr & 0x1ff_ffff;
    SysRegAccess {
        op0: ((iss >> 20) & 3) as u8,
        op2: ((iss >> 17) & 7) as u8,
        op1: ((iss >> 14) & 7) as u8,
        crn: ((iss >> 10) & 0xf) as u8,
        reg: ((iss >> 5) & 0x1f) as u8,
        crm: ((iss >> 1) & 0xf) as u8,
        read: iss & 1 != 0,
    }
}

/// ICC_SGI1R_EL1: op0 3, op1 0, CRn 12, CRm 11, op2 5.
pub const ICC_SGI1R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 5);
/// ICC_ASGI1R_EL1 (op2 6) and ICC_SGI0R_EL1 (op2 7).
pub const ICC_ASGI1R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 6);
pub const ICC_SGI0R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 7);

/// The SGI generation registers (trapped while HCR_EL2.IMO/FMO are set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiRegister {
    Sgi1r,
    Asgi1r,
    Sgi0r,
}

impl SgiRegister {
    /// Whether a write generates only Group 0 SGIs: ICC_SGI0R_EL1, and with one
    /// security state (the virtual GIC's GICD_CTLR.DS = 1) ICC_ASGI1R_EL1 too.
    pub fn group0_only(self) -> bool {
        self != Self::Sgi1r
    }
}

/// Which SGI register (op0, op1, CRn, CRm, op2) names, if any.
pub fn sgi_register(enc: (u8, u8, u8, u8, u8)) -> Option<SgiRegister> {
    match enc {
        ICC_SGI1R_EL1 => Some(SgiRegister::Sgi1r),
        ICC_ASGI1R_EL1 => Some(SgiRegister::Asgi1r),
        ICC_SGI0R_EL1 => Some(SgiRegister::Sgi0r),
        _ => None,
    }
}

/// Whether (op0, op1, CRn, CRm, op2) is a pointer authentication key register
/// (APIAKeyLo_EL1 .. APGAKeyHi_EL1: op0 3, op1 0, CRn 2, CRm 1..3), which traps
/// while HCR_EL2.APK is clear.
pub fn is_pauth_key(enc: (u8, u8, u8, u8, u8)) -> bool {
    let (op0, op1, crn, crm, op2) = enc;
    op0 == 3 && op1 == 0 && crn == 2 && (1..=3).contains(&crm) && (crm < 3 || op2 < 2)
}

/// WFI (false) or WFE (true) for EC 0x01.
pub fn is_wfe(esr: u64) -> bool {
    esr & 1 != 0
}

/// Guest-physical address of a stage-2 abort: HPFAR_EL2.FIPA holds bits [47:12]
/// (in its bits [43:4]); FAR_EL2 gives the offset within the page.
pub fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & 0x0fff_ffff_fff0) << 8) | (far & 0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_word_store_from_w1() {
        // str w1, [x0]: EC 0x24, IL, ISV, SAS=2 (word), SRT=1, WnR, DFSC=translation L3.
        let esr = (0x24u64 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (1 << 16) | (1 << 6) | 7;
        assert_eq!(class(esr), ec::DABT_LOWER);
        assert_eq!(instr_len(esr), 4);
        assert_eq!(
            data_abort(esr),
            DataAbort::Access(DataAccess {
                write: true,
                width: 4,
                reg: 1,
                sign_extend: false,
                reg64: false
            })
        );
        assert_eq!(fault_status(esr), "translation fault");
        assert_eq!(fault_level(esr), 3);
    }

    #[test]
    fn decodes_signed_byte_load_into_x30() {
        // ldrsb x30, [x2]: SAS=0, SSE, SRT=30, SF.
        let esr = (0x24u64 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (30 << 16) | (1 << 15) | 6;
        assert_eq!(
            data_abort(esr),
            DataAbort::Access(DataAccess {
                write: false,
                width: 1,
                reg: 30,
                sign_extend: true,
                reg64: true
            })
        );
    }

    #[test]
    fn no_syndrome_is_reported_not_guessed() {
        // ldp: ISV clear.
        let esr = (0x24u64 << 26) | (1 << 25) | (1 << 6) | 5;
        assert_eq!(data_abort(esr), DataAbort::NoSyndrome { write: true });
    }

    #[test]
    fn decodes_sgi1r_write() {
        // msr ICC_SGI1R_EL1, x3
        let esr =
            (0x18u64 << 26) | (1 << 25) | (3 << 20) | (5 << 17) | (12 << 10) | (3 << 5) | (11 << 1);
        let a = sysreg(esr);
        assert_eq!(a.encoding(), ICC_SGI1R_EL1);
        assert_eq!(a.reg, 3);
        assert!(!a.read);
    }

    #[test]
    fn decodes_the_other_sgi_registers() {
        // msr ICC_SGI0R_EL1, x7 / msr ICC_ASGI1R_EL1, x7
        let base = (0x18u64 << 26) | (1 << 25) | (3 << 20) | (12 << 10) | (7 << 5) | (11 << 1);
        let sgi0r = sysreg(base | (7 << 17));
        assert_eq!(sgi_register(sgi0r.encoding()), Some(SgiRegister::Sgi0r));
        assert_eq!(sgi0r.reg, 7);
        let asgi1r = sysreg(base | (6 << 17));
        assert_eq!(sgi_register(asgi1r.encoding()), Some(SgiRegister::Asgi1r));
        assert_eq!(
            sgi_register(sysreg(base | (5 << 17)).encoding()),
            Some(SgiRegister::Sgi1r)
        );
        assert!(SgiRegister::Sgi0r.group0_only());
        assert!(SgiRegister::Asgi1r.group0_only());
        assert!(!SgiRegister::Sgi1r.group0_only());
        // ICC_CTLR_EL1 (CRm 12, op2 4) and ICC_EOIR1_EL1 (CRm 12, op2 1): not SGIs.
        assert_eq!(sgi_register((3, 0, 12, 12, 4)), None);
        assert_eq!(sgi_register((3, 0, 12, 12, 1)), None);
    }

    #[test]
    fn pauth_key_registers() {
        // APIAKeyLo_EL1 (the one Linux writes first), APDBKeyHi_EL1, APGAKeyHi_EL1.
        for enc in [(3, 0, 2, 1, 0), (3, 0, 2, 2, 3), (3, 0, 2, 3, 1)] {
            assert!(is_pauth_key(enc), "{enc:?}");
        }
        // TTBR0_EL1 (CRm 0), TCR_EL1 (CRm 0, op2 2), reserved CRm 3 op2 2.
        for enc in [(3, 0, 2, 0, 0), (3, 0, 2, 0, 2), (3, 0, 2, 3, 2)] {
            assert!(!is_pauth_key(enc), "{enc:?}");
        }
    }

    #[test]
    fn wfe_and_wfi() {
        assert!(!is_wfe(0x01 << 26));
        assert!(is_wfe((0x01 << 26) | 1));
    }

    #[test]
    fn ipa_from_hpfar_and_far() {
        // IPA 0x4100_0123: HPFAR.FIPA = IPA >> 12 placed at bit 4.
        let hpfar = (0x4100_0123u64 >> 12) << 4;
        assert_eq!(fault_ipa(hpfar, 0xffff_0000_0000_0123), 0x4100_0123);
    }

    #[test]
    fn translation_faults_and_walk_reads() {
        // DABT, translation fault level 2, WnR.
        let esr = (0x24 << 26) | (1 << 6) | 0x06;
        assert!(is_translation_fault(esr));
        assert!(is_data_write(esr));
        // The same from a stage-1 table walk: a read.
        assert!(!is_data_write(esr | (1 << 7)));
        // Permission fault level 3.
        assert!(!is_translation_fault((0x24 << 26) | 0x0f));
    }

    #[test]
    fn unknown_fault_status_is_named_generically() {
        assert_eq!(fault_status(0x3f), "fault");
        assert_eq!(fault_status(0x0d), "permission fault");
    }
}
