//! The one table of what a guest's `rdmsr` / `wrmsr` reach, and the MSRs the
//! hypervisor emulates. Pure: the vCPU hands in the VMCB-held values and the host
//! TSC, and applies what comes back. Three kinds:
//!
//! - **Passed** ([`PASSED`]): the CPU keeps them per guest in the VMCB (VMRUN and
//!   the world switch's VMLOAD/VMSAVE swap them): FS/GS bases, KernelGsBase, the
//!   SYSCALL and SYSENTER MSRs. Not intercepted.
//! - **Emulated** ([`Msrs::read`] / [`Msrs::write`]): EFER (the VMCB's, SVME kept set
//!   and hidden), TSC (through the VMCB's TSC offset), PAT (the VMCB's guest PAT),
//!   MTRR capabilities (none) and default type, MISC_ENABLE, TSC_AUX, and the AMD
//!   MSRs Linux reads at boot (SYSCFG, HWCR, VM_CR with SVM disabled, the patch
//!   level, the machine-check capability / status: all zero or fixed).
//! - **Interrupt chip**: APIC_BASE (0xFEE0_0000, enable, BSP on vCPU 0, x2APIC
//!   enable honoured), TSC_DEADLINE and the x2APIC range 0x800-0x8FF, to the core
//!   as `VmExit::MsrRead` / `MsrWrite` for the VM's local APIC
//!   (`devices/x86apic`, which answers or refuses them).
//!
//! Everything else, and a write of a value the MSR does not take, is answered
//! with #GP as a real CPU does for an MSR it lacks: never a crash, never the host's
//! value.

/// MSRs the CPU switches per guest itself (VMCB save area via VMRUN / VMLOAD).
pub const PASSED: [u32; 10] = [
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
];

pub const TSC: u32 = 0x10;
pub const APIC_BASE: u32 = 0x1b;
pub const TSC_DEADLINE: u32 = 0x6e0;
pub const PATCH_LEVEL: u32 = 0x8b;
pub const MTRR_CAP: u32 = 0xfe;
pub const MCG_CAP: u32 = 0x179;
pub const MCG_STATUS: u32 = 0x17a;
pub const MISC_ENABLE: u32 = 0x1a0;
pub const PAT: u32 = 0x277;
pub const MTRR_DEF_TYPE: u32 = 0x2ff;
pub const EFER: u32 = 0xc000_0080;
pub const TSC_AUX: u32 = 0xc000_0103;
pub const SYSCFG: u32 = 0xc001_0010;
pub const HWCR: u32 = 0xc001_0015;
pub const VM_CR: u32 = 0xc001_0114;
/// The x2APIC MSRs.
pub const X2APIC: core::ops::RangeInclusive<u32> = 0x800..=0x8ff;

const EFER_SVME: u64 = 1 << 12;
/// EFER bits a guest may set: SCE, LME, LMA (read-only in effect), NXE, FFXSR.
const EFER_GUEST: u64 = 1 | 1 << 8 | 1 << 10 | 1 << 11 | 1 << 14;
/// VM_CR: SVM disabled and locked (CPUID hides SVM too).
const VM_CR_LOCKED_OFF: u64 = 1 << 3 | 1 << 4;
/// MISC_ENABLE: fast string operations enabled (what firmware leaves set).
const MISC_FAST_STRINGS: u64 = 1;

/// Which way an MSR goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Passed,
    Emulated,
    /// The VM's interrupt chip (x2APIC).
    Chip,
    /// #GP.
    Refused,
}

pub fn kind(msr: u32) -> Kind {
    match msr {
        m if PASSED.contains(&m) => Kind::Passed,
        m if X2APIC.contains(&m) => Kind::Chip,
        APIC_BASE | TSC_DEADLINE => Kind::Chip,
        TSC | PATCH_LEVEL | MTRR_CAP | MCG_CAP | MCG_STATUS | MISC_ENABLE | PAT | MTRR_DEF_TYPE
        | EFER | TSC_AUX | SYSCFG | HWCR | VM_CR => Kind::Emulated,
        _ => Kind::Refused,
    }
}

/// The MSR values the VMCB holds, as the vCPU hands them in and takes them back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InVmcb {
    pub efer: u64,
    pub pat: u64,
    pub tsc_offset: u64,
}

/// A vCPU's emulated MSRs that live nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msrs {
    pub tsc_aux: u64,
    pub mtrr_def_type: u64,
}

impl Msrs {
    /// The power-on values of vCPU `index` (vCPU 0 is the bootstrap processor).
    pub fn new(_index: usize) -> Self {
        Self {
            tsc_aux: 0,
            mtrr_def_type: 0,
        }
    }

    /// `rdmsr` of an emulated MSR; None: #GP.
    pub fn read(&self, msr: u32, v: &InVmcb, host_tsc: u64) -> Option<u64> {
        Some(match msr {
            EFER => v.efer & !EFER_SVME,
            TSC => host_tsc.wrapping_add(v.tsc_offset),
            PAT => v.pat,
            TSC_AUX => self.tsc_aux,
            MTRR_DEF_TYPE => self.mtrr_def_type,
            MISC_ENABLE => MISC_FAST_STRINGS,
            VM_CR => VM_CR_LOCKED_OFF,
            PATCH_LEVEL | MTRR_CAP | MCG_CAP | MCG_STATUS | SYSCFG | HWCR => 0,
            _ => return None,
        })
    }

    /// `wrmsr` of an emulated MSR; false: #GP (nothing changed).
    pub fn write(&mut self, msr: u32, value: u64, v: &mut InVmcb, host_tsc: u64) -> bool {
        match msr {
            EFER if value & !EFER_GUEST == 0 => {
                // LMA is the CPU's to set; SVME must stay for VMRUN.
                const LMA: u64 = 1 << 10;
                v.efer = (value & !LMA) | (v.efer & LMA) | EFER_SVME;
            }
            TSC => v.tsc_offset = value.wrapping_sub(host_tsc),
            PAT if pat_valid(value) => v.pat = value,
            TSC_AUX if value >> 32 == 0 => self.tsc_aux = value,
            // Default type (bits 7:0: UC, WC, WT, WP, WB), fixed-range (10) and MTRR
            // (11) enables; no ranges to enable: the value is kept.
            MTRR_DEF_TYPE if value & !0xcff == 0 && pat_type(value as u8) => {
                self.mtrr_def_type = value
            }
            // Kept as they read: fast strings on, nothing else to change.
            MISC_ENABLE | MCG_STATUS | PATCH_LEVEL | SYSCFG | HWCR if value == 0 => {}
            MISC_ENABLE if value == MISC_FAST_STRINGS => {}
            _ => return false,
        }
        true
    }
}

/// A memory type PAT or the MTRRs may name (0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-).
fn pat_type(t: u8) -> bool {
    matches!(t, 0 | 1 | 4..=7)
}

fn pat_valid(v: u64) -> bool {
    v.to_le_bytes().into_iter().all(pat_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmcb() -> InVmcb {
        InVmcb {
            efer: EFER_SVME,
            pat: 0x0007_0406_0007_0406,
            tsc_offset: 0u64.wrapping_sub(1000),
        }
    }

    #[test]
    fn the_table_sorts_every_msr() {
        assert_eq!(kind(0xc000_0100), Kind::Passed);
        assert_eq!(kind(0x176), Kind::Passed);
        assert_eq!(kind(0x800), Kind::Chip);
        assert_eq!(kind(0x830), Kind::Chip);
        assert_eq!(kind(0x8ff), Kind::Chip);
        assert_eq!(kind(EFER), Kind::Emulated);
        assert_eq!(kind(APIC_BASE), Kind::Chip, "the local APIC's");
        assert_eq!(kind(TSC_DEADLINE), Kind::Chip);
        // The host's own SVM state and anything unknown: #GP.
        assert_eq!(kind(0xc001_0117), Kind::Refused);
        assert_eq!(kind(0x3a), Kind::Refused);
        assert_eq!(kind(0x900), Kind::Refused);
        // Every emulated MSR reads; every refused one does not.
        let m = Msrs::new(0);
        for msr in [0x10, 0x8b, 0xfe, 0x179, 0x17a, 0x1a0, 0x277, 0x2ff] {
            assert_eq!(kind(msr), Kind::Emulated);
            assert!(m.read(msr, &vmcb(), 0).is_some(), "{msr:#x}");
        }
        assert_eq!(m.read(0xc001_0117, &vmcb(), 0), None);
    }

    #[test]
    fn efer_hides_and_keeps_svme() {
        let mut m = Msrs::new(0);
        let mut v = vmcb();
        assert_eq!(m.read(EFER, &v, 0), Some(0));
        // SCE | LME | NXE.
        assert!(m.write(EFER, 0x901, &mut v, 0));
        assert_eq!(v.efer, 0x901 | EFER_SVME);
        assert_eq!(m.read(EFER, &v, 0), Some(0x901));
        // Setting SVME (or any bit outside the guest's) is refused, nothing changes.
        assert!(!m.write(EFER, 0x901 | EFER_SVME, &mut v, 0));
        assert!(!m.write(EFER, 1 << 20, &mut v, 0));
        assert_eq!(v.efer, 0x901 | EFER_SVME);
        // Clearing everything still leaves SVME for VMRUN.
        assert!(m.write(EFER, 0, &mut v, 0));
        assert_eq!(v.efer, EFER_SVME);
    }

    #[test]
    fn the_tsc_reads_and_writes_through_the_offset() {
        let mut m = Msrs::new(1);
        let mut v = vmcb();
        assert_eq!(m.read(TSC, &v, 5000), Some(4000));
        assert!(m.write(TSC, 100, &mut v, 7000));
        assert_eq!(m.read(TSC, &v, 7050), Some(150));
    }

    #[test]
    fn pat_mtrr_and_the_fixed_ones() {
        let mut m = Msrs::new(0);
        let mut v = vmcb();
        assert!(m.write(PAT, 0x0007_0406_0007_0106, &mut v, 0));
        assert_eq!(v.pat, 0x0007_0406_0007_0106);
        assert!(
            !m.write(PAT, 0x0207_0406_0007_0406, &mut v, 0),
            "type 2 is reserved"
        );
        assert_eq!(m.read(MTRR_CAP, &v, 0), Some(0));
        assert!(!m.write(MTRR_CAP, 0, &mut v, 0));
        assert!(m.write(MTRR_DEF_TYPE, 0xc06, &mut v, 0));
        assert_eq!(m.read(MTRR_DEF_TYPE, &v, 0), Some(0xc06));
        assert!(!m.write(MTRR_DEF_TYPE, 0x1006, &mut v, 0));
        assert!(!m.write(MTRR_DEF_TYPE, 0x02, &mut v, 0));
        assert_eq!(m.read(VM_CR, &v, 0), Some(0x18));
        assert!(!m.write(VM_CR, 0, &mut v, 0));
        assert!(m.write(TSC_AUX, 3, &mut v, 0));
        assert_eq!(m.read(TSC_AUX, &v, 0), Some(3));
        assert!(!m.write(TSC_AUX, 1 << 32, &mut v, 0));
        assert_eq!(m.read(MISC_ENABLE, &v, 0), Some(1));
        assert!(m.write(MISC_ENABLE, 1, &mut v, 0));
        assert!(!m.write(MISC_ENABLE, 1 << 22, &mut v, 0));
    }
}
