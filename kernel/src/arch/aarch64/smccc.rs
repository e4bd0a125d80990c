//! The SMC calling convention as the guest uses it (HVC or trapped SMC): which PSCI
//! function or project hypercall a call is, from the guest's x0..x4. Pure, so it is
//! unit-tested on the host.
//!
//! SMCCC fast calls (bit 31 of the function id set) carry their function id in W0:
//! the upper 32 bits of x0 mean nothing. A 32-bit call (SMC32/HVC32, bit 30 clear)
//! also passes its arguments in W1..W3, so their upper halves are ignored as well.

use crate::hal::exit::VmExit;

pub const PSCI_VERSION: u64 = 0x8400_0000;
pub const PSCI_CPU_SUSPEND_32: u64 = 0x8400_0001;
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
pub const PSCI_CPU_ON_32: u64 = 0x8400_0003;
pub const PSCI_CPU_ON: u64 = 0xC400_0003;
pub const PSCI_AFFINITY_INFO_32: u64 = 0x8400_0004;
pub const PSCI_AFFINITY_INFO: u64 = 0xC400_0004;
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
pub const PSCI_FEATURES: u64 = 0x8400_000A;
pub const SMCCC_VERSION: u64 = 0x8000_0000;
pub const PSCI_SUCCESS: i64 = 0;
pub const PSCI_NOT_SUPPORTED: i64 = -1;
pub const PSCI_INVALID_PARAMS: i64 = -2;
pub const PSCI_DENIED: i64 = -3;
pub const PSCI_ALREADY_ON: i64 = -4;
pub const PSCI_INVALID_ADDRESS: i64 = -9;
/// PSCI 1.1.
const PSCI_VERSION_1_1: i64 = 0x0001_0001;
/// SMCCC 1.1.
const SMCCC_VERSION_1_1: i64 = 0x0001_0001;

/// Project hypercalls live in the SMCCC "standard hypervisor service" range;
/// AxVisor's small hypercall numbers (x0 < 0x100) are passed through as they are.
const HV_SERVICE_BASE: u64 = 0xC600_0000;

/// SMCCC function id bits: fast call, and the 64-bit convention.
const FAST_CALL: u64 = 1 << 31;
const SMC64: u64 = 1 << 30;

/// What a call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smccc {
    /// Answered at once: x0 = this value.
    Return(i64),
    /// For the VMM.
    Exit(VmExit),
}

/// The function id and arguments of a call with registers x0..x4, as the convention
/// defines them: a fast call's id is W0; a 32-bit fast call's arguments are W1..W3.
/// Anything else (AxVisor's small hypercall numbers) is taken as it is.
pub fn function(x: [u64; 5]) -> (u64, [u64; 4]) {
    let args = [x[1], x[2], x[3], x[4]];
    let w0 = x[0] & 0xffff_ffff;
    if w0 & FAST_CALL == 0 {
        return (x[0], args);
    }
    if w0 & SMC64 == 0 {
        return (w0, args.map(|a| a & 0xffff_ffff));
    }
    (w0, args)
}

/// Decodes a call with registers x0..x4.
pub fn decode(x: [u64; 5]) -> Smccc {
    let (f, [a1, a2, a3, a4]) = function(x);
    match f {
        PSCI_VERSION => Smccc::Return(PSCI_VERSION_1_1),
        SMCCC_VERSION => Smccc::Return(SMCCC_VERSION_1_1),
        PSCI_FEATURES => {
            // The queried id is a function id too: W1.
            let supported = matches!(
                a1 & 0xffff_ffff,
                PSCI_VERSION
                    | PSCI_CPU_OFF
                    | PSCI_CPU_ON
                    | PSCI_CPU_ON_32
                    | PSCI_AFFINITY_INFO
                    | PSCI_AFFINITY_INFO_32
                    | PSCI_SYSTEM_OFF
                    | PSCI_SYSTEM_RESET
                    | PSCI_FEATURES
            );
            Smccc::Return(if supported {
                PSCI_SUCCESS
            } else {
                PSCI_NOT_SUPPORTED
            })
        }
        PSCI_CPU_ON | PSCI_CPU_ON_32 => Smccc::Exit(VmExit::VcpuOn {
            target: a1,
            entry: a2,
            arg: a3,
        }),
        PSCI_AFFINITY_INFO | PSCI_AFFINITY_INFO_32 => {
            if a2 != 0 {
                return Smccc::Return(PSCI_INVALID_PARAMS);
            }
            Smccc::Exit(VmExit::VcpuStatus { target: a1 })
        }
        PSCI_CPU_OFF => Smccc::Exit(VmExit::VcpuOff),
        PSCI_SYSTEM_OFF => Smccc::Exit(VmExit::SystemOff),
        PSCI_SYSTEM_RESET => Smccc::Exit(VmExit::SystemReset),
        PSCI_CPU_SUSPEND_32 => Smccc::Return(PSCI_NOT_SUPPORTED),
        _ if f < 0x100 || (f & 0xffff_0000) == HV_SERVICE_BASE => Smccc::Exit(VmExit::Hypercall {
            code: f,
            args: [a1, a2, a3, a4],
        }),
        _ => Smccc::Return(PSCI_NOT_SUPPORTED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNK: u64 = 0xdead_beef_0000_0000;

    #[test]
    fn smc32_function_ids_come_from_w0() {
        assert_eq!(
            decode([PSCI_VERSION | JUNK, 0, 0, 0, 0]),
            Smccc::Return(0x1_0001)
        );
        assert_eq!(
            decode([SMCCC_VERSION | JUNK, 0, 0, 0, 0]),
            Smccc::Return(0x1_0001)
        );
        assert_eq!(
            decode([PSCI_SYSTEM_OFF | JUNK, 0, 0, 0, 0]),
            Smccc::Exit(VmExit::SystemOff)
        );
        assert_eq!(
            decode([PSCI_FEATURES | JUNK, PSCI_CPU_ON_32 | JUNK, 0, 0, 0]),
            Smccc::Return(PSCI_SUCCESS)
        );
    }

    #[test]
    fn smc32_arguments_come_from_w1_to_w3() {
        assert_eq!(
            decode([
                PSCI_CPU_ON_32 | JUNK,
                1 | JUNK,
                0x4008_0000 | JUNK,
                7 | JUNK,
                0
            ]),
            Smccc::Exit(VmExit::VcpuOn {
                target: 1,
                entry: 0x4008_0000,
                arg: 7
            })
        );
        assert_eq!(
            decode([PSCI_AFFINITY_INFO_32, 2 | JUNK, JUNK, 0, 0]),
            Smccc::Exit(VmExit::VcpuStatus { target: 2 })
        );
    }

    #[test]
    fn smc64_calls_keep_64_bit_arguments() {
        assert_eq!(
            decode([PSCI_CPU_ON | JUNK, 1, 0x1_4008_0000, 1 << 40, 0]),
            Smccc::Exit(VmExit::VcpuOn {
                target: 1,
                entry: 0x1_4008_0000,
                arg: 1 << 40
            })
        );
        assert_eq!(
            decode([0xC600_0001 | JUNK, 1 << 33, 2, 3, 4]),
            Smccc::Exit(VmExit::Hypercall {
                code: 0xC600_0001,
                args: [1 << 33, 2, 3, 4]
            })
        );
    }

    #[test]
    fn unknown_and_legacy_calls() {
        assert_eq!(
            decode([0xC600_00FF, 0, 0, 0, 0]),
            Smccc::Exit(VmExit::Hypercall {
                code: 0xC600_00FF,
                args: [0; 4]
            })
        );
        assert_eq!(
            decode([0x8400_0077 | JUNK, 0, 0, 0, 0]),
            Smccc::Return(PSCI_NOT_SUPPORTED)
        );
        // AxVisor's small hypercall numbers are not SMCCC fast calls: x0 as it is.
        assert_eq!(
            decode([3, 1, 2, 3, 4]),
            Smccc::Exit(VmExit::Hypercall {
                code: 3,
                args: [1, 2, 3, 4]
            })
        );
        assert_eq!(
            decode([3 | JUNK, 0, 0, 0, 0]),
            Smccc::Return(PSCI_NOT_SUPPORTED)
        );
    }
}
