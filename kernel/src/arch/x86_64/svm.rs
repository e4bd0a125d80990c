//! Whether this CPU can run the hypervisor: AMD SVM (CPUID 0x8000_0001 ECX bit 2),
//! not disabled by the firmware (VM_CR.SVMDIS), with nested paging (CPUID
//! 0x8000_000A EDX bit 0). Pure: the CPUID words come from the caller, so every
//! refusal is unit-tested on the host.

/// CPUID 0x8000_0001 ECX: SVM.
pub const EXT_ECX_SVM: u32 = 1 << 2;
/// CPUID 0x8000_000A EDX: nested paging.
pub const SVM_EDX_NP: u32 = 1 << 0;
/// VM_CR MSR (0xC001_0114): SVM disabled by the firmware.
pub const VM_CR_SVMDIS: u64 = 1 << 4;

/// What CPUID (and VM_CR, where SVM exists) says.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// Highest extended CPUID leaf (CPUID 0x8000_0000 EAX).
    pub max_ext_leaf: u32,
    /// CPUID 0x8000_0001 ECX.
    pub ext_ecx: u32,
    /// CPUID 0x8000_000A EDX (0 when the leaf does not exist).
    pub svm_edx: u32,
    /// CPUID 0x8000_000A EBX: the number of ASIDs.
    pub asids: u32,
    /// The VM_CR MSR (read only when SVM exists).
    pub vm_cr: u64,
}

/// Ok when the hypervisor can run here; why not, in words for the console.
pub fn check(f: &Features) -> Result<(), &'static str> {
    if f.max_ext_leaf < 0x8000_0001 || f.ext_ecx & EXT_ECX_SVM == 0 {
        return Err(
            "this CPU has no AMD SVM (CPUID 0x8000_0001 ECX bit 2): the x86_64 \
                    hypervisor needs AMD-V with nested paging (QEMU: -cpu EPYC or -cpu max)",
        );
    }
    if f.vm_cr & VM_CR_SVMDIS != 0 {
        return Err(
            "SVM is disabled by the firmware (VM_CR.SVMDIS): enable virtualization \
                    in the firmware settings",
        );
    }
    if f.max_ext_leaf < 0x8000_000a || f.svm_edx & SVM_EDX_NP == 0 {
        return Err(
            "this CPU's SVM has no nested paging (CPUID 0x8000_000A EDX bit 0): the \
                    x86_64 hypervisor needs it (QEMU: -cpu EPYC or -cpu max)",
        );
    }
    if f.asids < 2 {
        return Err("this CPU's SVM offers no ASID for guests (CPUID 0x8000_000A EBX)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's -cpu EPYC.
    fn epyc() -> Features {
        Features {
            max_ext_leaf: 0x8000_001f,
            ext_ecx: 0x0040_35f7,
            svm_edx: 0x10010001,
            asids: 16,
            vm_cr: 0,
        }
    }

    #[test]
    fn epyc_runs() {
        assert_eq!(check(&epyc()), Ok(()));
    }

    #[test]
    fn no_svm_no_nested_paging_or_disabled_svm_is_refused_with_the_reason() {
        let no_svm = Features {
            ext_ecx: epyc().ext_ecx & !EXT_ECX_SVM,
            ..epyc()
        };
        assert!(check(&no_svm).unwrap_err().contains("no AMD SVM"));
        let old = Features {
            max_ext_leaf: 0x8000_0000,
            ..epyc()
        };
        assert!(check(&old).unwrap_err().contains("no AMD SVM"));
        let no_np = Features {
            svm_edx: 0,
            ..epyc()
        };
        assert!(check(&no_np).unwrap_err().contains("no nested paging"));
        let off = Features {
            vm_cr: VM_CR_SVMDIS,
            ..epyc()
        };
        assert!(check(&off)
            .unwrap_err()
            .contains("disabled by the firmware"));
        let one_asid = Features { asids: 1, ..epyc() };
        assert!(check(&one_asid).unwrap_err().contains("ASID"));
    }
}
