//! The SBI a guest sees (its calls trap to the hypervisor as `ecall` from VS-mode),
//! decoded from the argument registers into what to do. Pure: the world switch reads
//! a0..a7, [`decode`] says whether the call is answered at once or needs the VMM (or
//! the vCPU's own CSRs), and [`Ret`] says what goes back in a0/a1.
//!
//! Extensions: legacy (set_timer, console_putchar/getchar, clear_ipi, shutdown), BASE,
//! TIME, IPI, RFENCE, HSM, SRST, DBCN, and the project's own [`HV_EID`]. Anything
//! else returns `SBI_ERR_NOT_SUPPORTED`.

pub const SUCCESS: i64 = 0;
pub const ERR_FAILED: i64 = -1;
pub const ERR_NOT_SUPPORTED: i64 = -2;
pub const ERR_INVALID_PARAM: i64 = -3;
pub const ERR_DENIED: i64 = -4;
pub const ERR_INVALID_ADDRESS: i64 = -5;
pub const ERR_ALREADY_AVAILABLE: i64 = -6;

pub const EID_LEGACY_SET_TIMER: u64 = 0x00;
pub const EID_LEGACY_PUTCHAR: u64 = 0x01;
pub const EID_LEGACY_GETCHAR: u64 = 0x02;
pub const EID_LEGACY_CLEAR_IPI: u64 = 0x03;
pub const EID_LEGACY_SHUTDOWN: u64 = 0x08;
pub const EID_BASE: u64 = 0x10;
pub const EID_TIME: u64 = 0x5449_4D45;
pub const EID_IPI: u64 = 0x0073_5049;
pub const EID_RFENCE: u64 = 0x5246_4E43;
pub const EID_HSM: u64 = 0x0048_534D;
pub const EID_SRST: u64 = 0x5352_5354;
pub const EID_DBCN: u64 = 0x4442_434E;
/// The project's hypercalls: an extension id in the SBI firmware-specific range
/// (0x0A00_0000..=0x0AFF_FFFF), "HV" in its middle bytes. FID 0 is HV_INFO.
pub const HV_EID: u64 = 0x0A48_5600;
/// AxVisor's hypercall extension ("HVC"): FID = AxVisor's hypercall number (the
/// inter-VM channel calls 3..=6, `vmm::axivc`), arguments in a0.., answer in a0.
pub const AXVISOR_EID: u64 = 0x48_5643;
/// Where FID `n` of [`HV_EID`] lands in the arch-neutral hypercall numbers
/// (`vmm::run::HC_HV_INFO` is base + 0, the aarch64 SMCCC function id).
pub const HV_CALL_BASE: u64 = 0xC600_0000;

/// SBI specification version implemented: 2.0.
pub const SPEC_VERSION: u64 = 2 << 24;
/// SBI implementation id reported to guests ("HV"; not one of the assigned ids).
pub const IMPL_ID: u64 = 0x4856;
pub const IMPL_VERSION: u64 = 1;

/// Extensions `probe_extension` reports as available.
const AVAILABLE: &[u64] = &[
    EID_LEGACY_SET_TIMER,
    EID_LEGACY_PUTCHAR,
    EID_LEGACY_GETCHAR,
    EID_LEGACY_CLEAR_IPI,
    EID_LEGACY_SHUTDOWN,
    EID_BASE,
    EID_TIME,
    EID_IPI,
    EID_RFENCE,
    EID_HSM,
    EID_SRST,
    EID_DBCN,
    HV_EID,
    AXVISOR_EID,
];

/// HSM hart states.
pub const HART_STARTED: u64 = 0;
pub const HART_STOPPED: u64 = 1;
pub const HART_START_PENDING: u64 = 2;

/// What goes back to the guest: a0 = error, a1 = value. Legacy calls return only a0
/// (see [`is_legacy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ret {
    pub error: i64,
    pub value: u64,
}

impl Ret {
    pub const fn ok(value: u64) -> Self {
        Self {
            error: SUCCESS,
            value,
        }
    }
    pub const fn err(error: i64) -> Self {
        Self { error, value: 0 }
    }
}

/// Remote fence kinds (RFENCE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// FENCE.I on the targets.
    Instruction,
    /// SFENCE.VMA on the targets (all addresses and ASIDs of the VM).
    Vma,
}

/// A decoded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Answered from the arguments alone.
    Answer(Ret),
    /// Program the vCPU's timer (guest `time` value); answer 0.
    SetTimer(u64),
    /// Clear the vCPU's pending software interrupt (legacy clear_ipi).
    ClearIpi,
    /// Console output: `len` bytes in guest-physical memory at `addr` (DBCN write;
    /// answer the count written).
    ConsoleWrite {
        addr: u64,
        len: u64,
    },
    /// One console byte (legacy putchar / DBCN write_byte); `legacy` answers a0 only.
    ConsoleByte {
        byte: u8,
        legacy: bool,
    },
    /// Software interrupt to the vCPUs in `mask` (bit i = hart id i).
    Ipi {
        mask: u64,
    },
    /// A fence on the vCPUs in `mask`.
    RemoteFence {
        mask: u64,
        fence: Fence,
    },
    HartStart {
        hart: u64,
        entry: u64,
        opaque: u64,
    },
    HartStop,
    HartStatus {
        hart: u64,
    },
    Shutdown,
    Reboot,
    /// A project hypercall (arch-neutral number, arguments a0..a3).
    Hypercall {
        code: u64,
        args: [u64; 4],
    },
}

/// The vCPUs a (hart_mask, hart_mask_base) pair names, as a mask of hart ids.
pub fn hart_mask(mask: u64, base: u64) -> Result<u64, i64> {
    if base == u64::MAX {
        return Ok(u64::MAX);
    }
    if base >= 64 || (base > 0 && mask >> (64 - base) != 0) {
        return Err(ERR_INVALID_PARAM);
    }
    Ok(mask << base)
}

fn with_mask(mask: u64, base: u64, make: impl FnOnce(u64) -> Call) -> Call {
    match hart_mask(mask, base) {
        Ok(m) => make(m),
        Err(e) => Call::Answer(Ret::err(e)),
    }
}

const NOT_SUPPORTED: Call = Call::Answer(Ret::err(ERR_NOT_SUPPORTED));

/// Whether `eid` is a legacy extension (0x00..=0x0F, SBI v0.1). Their calls return
/// in a0 alone and keep every other register, a1 included.
pub fn is_legacy(eid: u64) -> bool {
    eid < EID_BASE
}

/// The registers an answer writes: (a0, Some(a1)), or (a0, None) for a legacy call,
/// which leaves a1 as the guest had it.
pub fn answer_regs(eid: u64, r: Ret) -> (u64, Option<u64>) {
    (r.error as u64, (!is_legacy(eid)).then_some(r.value))
}

/// Decodes the call in `a` (a0..a7: arguments in a0..a5, FID in a6, EID in a7).
pub fn decode(a: [u64; 8]) -> Call {
    let (eid, fid) = (a[7], a[6]);
    match eid {
        EID_LEGACY_SET_TIMER => Call::SetTimer(a[0]),
        EID_LEGACY_PUTCHAR => Call::ConsoleByte {
            byte: a[0] as u8,
            legacy: true,
        },
        // No input: -1.
        EID_LEGACY_GETCHAR => Call::Answer(Ret::err(-1)),
        EID_LEGACY_CLEAR_IPI => Call::ClearIpi,
        EID_LEGACY_SHUTDOWN => Call::Shutdown,
        EID_BASE => base(fid, a[0]),
        EID_TIME if fid == 0 => Call::SetTimer(a[0]),
        EID_IPI if fid == 0 => with_mask(a[0], a[1], |mask| Call::Ipi { mask }),
        EID_RFENCE => rfence(fid, a[0], a[1]),
        EID_HSM => hsm(fid, a),
        EID_SRST if fid == 0 => match a[0] {
            0 => Call::Shutdown,
            1 | 2 => Call::Reboot,
            _ => Call::Answer(Ret::err(ERR_INVALID_PARAM)),
        },
        EID_DBCN => match fid {
            0 if a[2] != 0 => Call::Answer(Ret::err(ERR_INVALID_PARAM)),
            0 => Call::ConsoleWrite {
                addr: a[1],
                len: a[0],
            },
            // console_read: no input, 0 bytes.
            1 => Call::Answer(Ret::ok(0)),
            2 => Call::ConsoleByte {
                byte: a[0] as u8,
                legacy: false,
            },
            _ => NOT_SUPPORTED,
        },
        HV_EID if fid < 0x1_0000 => Call::Hypercall {
            code: HV_CALL_BASE + fid,
            args: [a[0], a[1], a[2], a[3]],
        },
        // AxVisor's numbers are small: they reach the VMM as they are.
        AXVISOR_EID if fid < 0x100 => Call::Hypercall {
            code: fid,
            args: [a[0], a[1], a[2], a[3]],
        },
        _ => NOT_SUPPORTED,
    }
}

fn base(fid: u64, arg: u64) -> Call {
    let value = match fid {
        0 => SPEC_VERSION,
        1 => IMPL_ID,
        2 => IMPL_VERSION,
        3 => u64::from(AVAILABLE.contains(&arg)),
        // mvendorid, marchid, mimpid: not passed through.
        4..=6 => 0,
        _ => return NOT_SUPPORTED,
    };
    Call::Answer(Ret::ok(value))
}

fn rfence(fid: u64, mask: u64, base: u64) -> Call {
    let fence = match fid {
        0 => Fence::Instruction,
        1 | 2 => Fence::Vma,
        // HFENCE.* for nested hypervisors: the guest has no H extension.
        _ => return NOT_SUPPORTED,
    };
    with_mask(mask, base, |mask| Call::RemoteFence { mask, fence })
}

fn hsm(fid: u64, a: [u64; 8]) -> Call {
    match fid {
        0 => Call::HartStart {
            hart: a[0],
            entry: a[1],
            opaque: a[2],
        },
        1 => Call::HartStop,
        2 => Call::HartStatus { hart: a[0] },
        // hart_suspend: not offered (guests then use WFI).
        _ => NOT_SUPPORTED,
    }
}

/// The answer to a project hypercall from the VMM's four result registers: the
/// VMM's status -1 ("not supported") becomes SBI_ERR_NOT_SUPPORTED.
pub fn hypercall_ret(r: [u64; 4]) -> [u64; 4] {
    let status = if r[0] == u64::MAX {
        ERR_NOT_SUPPORTED as u64
    } else {
        r[0]
    };
    [status, r[1], r[2], r[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(eid: u64, fid: u64, args: &[u64]) -> Call {
        let mut a = [0u64; 8];
        a[..args.len()].copy_from_slice(args);
        a[6] = fid;
        a[7] = eid;
        decode(a)
    }

    #[test]
    fn base_extension() {
        assert_eq!(call(EID_BASE, 0, &[]), Call::Answer(Ret::ok(2 << 24)));
        assert_eq!(call(EID_BASE, 3, &[EID_HSM]), Call::Answer(Ret::ok(1)));
        assert_eq!(call(EID_BASE, 3, &[HV_EID]), Call::Answer(Ret::ok(1)));
        assert_eq!(
            call(EID_BASE, 3, &[0x504D55]),
            Call::Answer(Ret::ok(0)),
            "PMU"
        );
        assert_eq!(call(EID_BASE, 9, &[]), NOT_SUPPORTED);
    }

    #[test]
    fn timer_ipi_and_fences() {
        assert_eq!(call(EID_TIME, 0, &[1234]), Call::SetTimer(1234));
        assert_eq!(call(EID_LEGACY_SET_TIMER, 0, &[99]), Call::SetTimer(99));
        assert_eq!(call(EID_IPI, 0, &[0b10, 0]), Call::Ipi { mask: 0b10 });
        assert_eq!(call(EID_IPI, 0, &[0b1, 3]), Call::Ipi { mask: 0b1000 });
        assert_eq!(
            call(EID_IPI, 0, &[0, u64::MAX]),
            Call::Ipi { mask: u64::MAX }
        );
        assert_eq!(
            call(EID_IPI, 0, &[1, 64]),
            Call::Answer(Ret::err(ERR_INVALID_PARAM))
        );
        assert_eq!(
            call(EID_IPI, 0, &[1 << 63, 1]),
            Call::Answer(Ret::err(ERR_INVALID_PARAM)),
            "hart 64 does not exist"
        );
        assert_eq!(
            call(EID_RFENCE, 1, &[0b11, 0, 0, u64::MAX]),
            Call::RemoteFence {
                mask: 0b11,
                fence: Fence::Vma
            }
        );
        assert_eq!(
            call(EID_RFENCE, 0, &[1, 1]),
            Call::RemoteFence {
                mask: 0b10,
                fence: Fence::Instruction
            }
        );
        assert_eq!(call(EID_RFENCE, 3, &[1, 0]), NOT_SUPPORTED, "hfence.gvma");
    }

    #[test]
    fn hsm_and_reset() {
        assert_eq!(
            call(EID_HSM, 0, &[1, 0x8020_0000, 7]),
            Call::HartStart {
                hart: 1,
                entry: 0x8020_0000,
                opaque: 7
            }
        );
        assert_eq!(call(EID_HSM, 1, &[]), Call::HartStop);
        assert_eq!(call(EID_HSM, 2, &[3]), Call::HartStatus { hart: 3 });
        assert_eq!(call(EID_HSM, 3, &[]), NOT_SUPPORTED, "suspend");
        assert_eq!(call(EID_SRST, 0, &[0, 0]), Call::Shutdown);
        assert_eq!(call(EID_SRST, 0, &[1, 0]), Call::Reboot);
        assert_eq!(call(EID_SRST, 0, &[2, 1]), Call::Reboot);
        assert_eq!(
            call(EID_SRST, 0, &[7, 0]),
            Call::Answer(Ret::err(ERR_INVALID_PARAM))
        );
        assert_eq!(call(EID_LEGACY_SHUTDOWN, 0, &[]), Call::Shutdown);
    }

    #[test]
    fn console() {
        assert_eq!(
            call(EID_DBCN, 0, &[5, 0x8000_1000, 0]),
            Call::ConsoleWrite {
                addr: 0x8000_1000,
                len: 5
            }
        );
        assert_eq!(
            call(EID_DBCN, 0, &[5, 0, 1]),
            Call::Answer(Ret::err(ERR_INVALID_PARAM)),
            "above 64 bits"
        );
        assert_eq!(call(EID_DBCN, 1, &[5, 0, 0]), Call::Answer(Ret::ok(0)));
        assert_eq!(
            call(EID_DBCN, 2, &[0x141]),
            Call::ConsoleByte {
                byte: 0x41,
                legacy: false
            }
        );
        assert_eq!(
            call(EID_LEGACY_PUTCHAR, 0, &[b'x' as u64]),
            Call::ConsoleByte {
                byte: b'x',
                legacy: true
            }
        );
        assert_eq!(call(EID_LEGACY_GETCHAR, 0, &[]), Call::Answer(Ret::err(-1)));
    }

    #[test]
    fn legacy_calls_answer_in_a0_only() {
        for eid in [
            EID_LEGACY_SET_TIMER,
            EID_LEGACY_PUTCHAR,
            EID_LEGACY_GETCHAR,
            EID_LEGACY_CLEAR_IPI,
            EID_LEGACY_SHUTDOWN,
            0x0F,
        ] {
            assert!(is_legacy(eid), "{eid:#x}");
            assert_eq!(answer_regs(eid, Ret::ok(7)), (0, None), "{eid:#x}");
        }
        assert_eq!(
            answer_regs(EID_LEGACY_GETCHAR, Ret::err(-1)),
            (u64::MAX, None)
        );
        for eid in [EID_BASE, EID_TIME, EID_IPI, EID_HSM, EID_DBCN, HV_EID] {
            assert!(!is_legacy(eid), "{eid:#x}");
            assert_eq!(answer_regs(eid, Ret::ok(7)), (0, Some(7)), "{eid:#x}");
        }
    }

    #[test]
    fn hypercalls_and_unknown_calls() {
        assert_eq!(
            call(HV_EID, 0, &[1, 2, 3, 4]),
            Call::Hypercall {
                code: 0xC600_0000,
                args: [1, 2, 3, 4]
            }
        );
        assert_eq!(
            call(HV_EID, 0xff, &[]),
            Call::Hypercall {
                code: 0xC600_00FF,
                args: [0; 4]
            }
        );
        assert_eq!(call(HV_EID, 0x1_0000, &[]), NOT_SUPPORTED);
        assert_eq!(
            call(AXVISOR_EID, 4, &[2, 0xfeed, 0x4000_1000, 0x4000_1008]),
            Call::Hypercall {
                code: 4,
                args: [2, 0xfeed, 0x4000_1000, 0x4000_1008]
            }
        );
        assert_eq!(call(AXVISOR_EID, 0x100, &[]), NOT_SUPPORTED);
        assert_eq!(call(0x0A00_0000, 0, &[]), NOT_SUPPORTED);
        assert_eq!(call(0x504D55, 0, &[]), NOT_SUPPORTED, "PMU");
        assert_eq!(
            call(EID_LEGACY_PUTCHAR + 4, 0, &[]),
            NOT_SUPPORTED,
            "legacy send_ipi"
        );
        assert_eq!(
            hypercall_ret([u64::MAX, 0, 0, 0]),
            [ERR_NOT_SUPPORTED as u64, 0, 0, 0]
        );
        assert_eq!(
            hypercall_ret([0, 0x4856_0001, 2, 1]),
            [0, 0x4856_0001, 2, 1]
        );
    }
}
