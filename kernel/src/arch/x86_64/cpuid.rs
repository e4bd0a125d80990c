//! What a guest's CPUID says: the one table of the CPU features an x86 guest sees,
//! as `arch/aarch64/idregs.rs` is for aarch64. Host values pass through except:
//! SVM and the other host-only virtualization bits are hidden, the hypervisor-present
//! bit is set, the APIC id is the vCPU's, and the hypervisor leaves at 0x4000_0000
//! carry the project's signature; leaf 0x4000_0010 gives the TSC and local APIC
//! timer rates in kHz (EAX, EBX: the timer counts the TSC), as VMware / KVM guests
//! read them. Pure: the host's answer comes from the caller.

/// The hypervisor leaves' signature (EBX, ECX, EDX of leaf 0x4000_0000).
pub const SIGNATURE: &[u8; 12] = b"HVRustHVABI1";
/// The highest hypervisor leaf.
pub const HV_MAX_LEAF: u32 = 0x4000_0010;
/// The timing leaf.
pub const HV_TIMING_LEAF: u32 = 0x4000_0010;

/// Leaf 1 ECX: VMX, MONITOR/MWAIT (the guest would wait outside the hypervisor's
/// view), hypervisor present.
const L1_ECX_VMX: u32 = 1 << 5;
const L1_ECX_MONITOR: u32 = 1 << 3;
const L1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX: XSAVE, OSXSAVE and AVX: hidden (XSETBV would reach the host's XCR0,
/// which VMRUN does not switch; leaf 0xD says nothing).
const L1_ECX_XSAVE: u32 = 1 << 26 | 1 << 27 | 1 << 28;
/// Leaf 0x8000_0001 ECX: SVM, SKINIT.
const E1_ECX_SVM: u32 = 1 << 2;
const E1_ECX_SKINIT: u32 = 1 << 12;
/// Leaf 0x8000_0007 EDX: invariant TSC.
const E7_EDX_INVARIANT_TSC: u32 = 1 << 8;

/// What a guest's CPUID depends on besides the leaf: its vCPU's APIC id, the VM's
/// vCPU count, the TSC rate in kHz.
#[derive(Clone, Copy, Debug)]
pub struct Vcpu {
    pub apic_id: u32,
    pub vcpus: u32,
    pub tsc_khz: u32,
}

/// Guest CPUID `leaf`.`sub` of vCPU `v`, from the host's answer `host` [EAX, EBX,
/// ECX, EDX].
pub fn guest(leaf: u32, sub: u32, host: [u32; 4], v: Vcpu) -> [u32; 4] {
    let Vcpu {
        apic_id,
        vcpus,
        tsc_khz,
    } = v;
    let [a, mut b, mut c, d] = host;
    match leaf {
        1 => {
            c &= !(L1_ECX_VMX | L1_ECX_MONITOR | L1_ECX_XSAVE);
            c |= L1_ECX_HYPERVISOR;
            // EBX: initial APIC id in 31:24, logical processor count in 23:16.
            b = (b & 0xffff) | (apic_id.min(255) << 24) | (vcpus.min(255) << 16);
        }
        // Thermal/power management and the MONITOR leaf: nothing to offer.
        5 | 6 | 0xd => return [0; 4],
        0xb | 0x1f => {
            // x2APIC topology: one thread per core, the vCPU's id.
            if sub == 0 {
                return [0, 1, 0x100, apic_id];
            }
            return [0, 0, sub & 0xff, apic_id];
        }
        0x4000_0000 => {
            let w = |i: usize| {
                u32::from_le_bytes([
                    SIGNATURE[i],
                    SIGNATURE[i + 1],
                    SIGNATURE[i + 2],
                    SIGNATURE[i + 3],
                ])
            };
            return [HV_MAX_LEAF, w(0), w(4), w(8)];
        }
        HV_TIMING_LEAF => return [tsc_khz, tsc_khz, 0, 0],
        0x4000_0001..=0x4fff_ffff => return [0; 4],
        0x8000_0001 => c &= !(E1_ECX_SVM | E1_ECX_SKINIT),
        // Invariant TSC: a guest's TSC is the host's plus an offset, constant in rate
        // and never stopped (Linux then takes a secondary CPU's delay-loop rate
        // from the first instead of calibrating it against jiffies).
        0x8000_0007 => return [a, b, c, d | E7_EDX_INVARIANT_TSC],
        // SVM features, and what only makes sense with SVM.
        0x8000_000a => return [0; 4],
        _ => {}
    }
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(leaf: u32, sub: u32, host: [u32; 4], apic_id: u32, vcpus: u32) -> [u32; 4] {
        super::guest(
            leaf,
            sub,
            host,
            Vcpu {
                apic_id,
                vcpus,
                tsc_khz: 2_000_000,
            },
        )
    }

    #[test]
    fn svm_vmx_and_monitor_are_hidden_and_the_hypervisor_bit_set() {
        let host1 = [
            0x00830f10,
            0x0008_0800,
            0xfff8_3229 | L1_ECX_VMX | L1_ECX_XSAVE,
            0x178b_fbff,
        ];
        let g = guest(1, 0, host1, 3, 2);
        assert_eq!(g[2] & (L1_ECX_VMX | L1_ECX_MONITOR | L1_ECX_XSAVE), 0);
        assert_eq!(guest(0xd, 0, [7; 4], 0, 1), [0; 4]);
        assert_ne!(g[2] & L1_ECX_HYPERVISOR, 0);
        assert_eq!(g[1] >> 24, 3, "the vCPU's APIC id");
        assert_eq!(g[1] >> 16 & 0xff, 2, "the VM's vCPU count");
        assert_eq!(g[1] & 0xffff, 0x0800, "CLFLUSH size and brand kept");
        assert_eq!((g[0], g[3]), (host1[0], host1[3]));
        let e1 = guest(0x8000_0001, 0, [0, 0, 0x0040_35f7, 0], 0, 1);
        assert_eq!(e1[2] & (E1_ECX_SVM | E1_ECX_SKINIT), 0);
        assert_eq!(e1[2], 0x0040_35f7 & !(E1_ECX_SVM | E1_ECX_SKINIT));
        assert_eq!(guest(0x8000_000a, 0, [1, 16, 0, 0x1001_0001], 0, 1), [0; 4]);
        assert_eq!(
            guest(0x8000_0007, 0, [0, 0, 0, 0x10], 0, 1),
            [0, 0, 0, 0x110]
        );
    }

    #[test]
    fn the_hypervisor_leaf_carries_the_signature() {
        let [max, b, c, d] = guest(0x4000_0000, 0, [0; 4], 0, 1);
        assert_eq!(max, HV_MAX_LEAF);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&b.to_le_bytes());
        sig[4..8].copy_from_slice(&c.to_le_bytes());
        sig[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(&sig, SIGNATURE);
        assert_eq!(guest(0x4000_0001, 0, [7; 4], 0, 1), [0; 4]);
        // The timing leaf: TSC and APIC timer kHz.
        assert_eq!(
            guest(0x4000_0010, 0, [7; 4], 0, 1),
            [2_000_000, 2_000_000, 0, 0]
        );
        assert_eq!(guest(0x4000_0011, 0, [7; 4], 0, 1), [0; 4]);
    }

    #[test]
    fn other_leaves_pass_through() {
        let v = [0x12, 0x34, 0x56, 0x78];
        assert_eq!(guest(0, 0, v, 1, 2), v);
        assert_eq!(guest(7, 0, v, 1, 2), v);
        assert_eq!(guest(0x8000_0008, 0, v, 1, 2), v);
    }

    #[test]
    fn topology_leaves_name_the_vcpu() {
        assert_eq!(guest(0xb, 0, [9; 4], 5, 2)[3], 5);
        assert_eq!(guest(0xb, 1, [9; 4], 5, 2), [0, 0, 1, 5]);
    }
}
