//! SVM exits turned into the arch-neutral [`VmExit`]s, and the core's [`Reply`]
//! written back into the guest's registers. QEMU has no NRIP save: every
//! instruction the hypervisor completes is stepped over by its length (from its
//! bytes for `in`/`out` and MMIO, fixed for `rdmsr`/`wrmsr`/`cpuid` (2), `hlt` (1)
//! and `vmmcall` (3)). Pure (registers in, registers out); the vCPU that runs the
//! world switch feeds it. Tested per exit kind.
//!
//! Hypercalls: `vmmcall` with EAX = the arch-neutral number (0xC600_0000 + n, as
//! the other arches), arguments in RBX, RCX, RDX, RSI; results in RAX, RBX, RCX,
//! RDX.

use super::insn::{self, Access, Mode, Op};
use super::ioexit::{self, code};
use crate::hal::exit::{Fault, Reply, VmExit};

/// General-register numbers (the instruction encoding's order).
pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const RSI: usize = 6;

/// The guest's general registers (RAX and RSP copied from/to the VMCB) and RIP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub gpr: [u64; 16],
    pub rip: u64,
}

/// What an exit leaves to finish once the core answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Step over `len` bytes; nothing to write.
    Step(u8),
    /// `in`: the port's value goes to RAX (`width` bytes).
    PortIn { len: u8, width: u8 },
    /// `rdmsr`: EDX:EAX.
    MsrRead,
    /// `cpuid`: EAX, EBX, ECX, EDX.
    Cpuid,
    /// A load or store to MMIO.
    Mmio(Access),
    /// `vmmcall`: RAX, RBX, RCX, RDX.
    Hypercall,
    /// `hlt`: wait for an interrupt, then step over it.
    Halt,
    /// Nothing to finish (the VM stops, or the exit is the host's business).
    Nothing,
}

fn fault(what: &'static str, addr: Option<u64>, pc: u64, syndrome: u64) -> (VmExit, Pending) {
    (
        VmExit::Fault(Fault {
            what,
            addr,
            pc,
            syndrome,
        }),
        Pending::Nothing,
    )
}

fn mask(width: u8) -> u64 {
    match width {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// An exit other than a nested page fault (see [`mmio`]): `bytes` are the guest's
/// bytes at RIP (needed for `in`/`out` only; may be empty otherwise).
pub fn decode(exitcode: u64, info1: u64, r: &Regs, bytes: &[u8]) -> (VmExit, Pending) {
    let pc = r.rip;
    match exitcode {
        code::IOIO => {
            let Some(io) = ioexit::decode_io(info1) else {
                return fault("I/O intercept without an operand size", None, pc, info1);
            };
            if io.string {
                return fault(
                    "not supported yet: string I/O (ins/outs)",
                    Some(io.port as u64),
                    pc,
                    info1,
                );
            }
            let Some(len) = ioexit::io_insn_len(bytes) else {
                return fault("I/O intercept at bytes that are no in/out", None, pc, info1);
            };
            let write = (!io.input).then_some((r.gpr[RAX] & mask(io.width)) as u32);
            let exit = VmExit::PortIo {
                port: io.port,
                width: io.width,
                write,
                pc,
            };
            let pending = if io.input {
                Pending::PortIn {
                    len,
                    width: io.width,
                }
            } else {
                Pending::Step(len)
            };
            (exit, pending)
        }
        code::MSR => {
            let msr = r.gpr[RCX] as u32;
            if info1 & 1 == 0 {
                (VmExit::MsrRead { msr, pc }, Pending::MsrRead)
            } else {
                let value = (r.gpr[RDX] & 0xffff_ffff) << 32 | (r.gpr[RAX] & 0xffff_ffff);
                (VmExit::MsrWrite { msr, value, pc }, Pending::Step(2))
            }
        }
        code::CPUID => (
            VmExit::Cpuid {
                leaf: r.gpr[RAX] as u32,
                subleaf: r.gpr[RCX] as u32,
            },
            Pending::Cpuid,
        ),
        code::HLT => (VmExit::Idle, Pending::Halt),
        code::VMMCALL => (
            VmExit::Hypercall {
                code: r.gpr[RAX] & 0xffff_ffff,
                args: [r.gpr[RBX], r.gpr[RCX], r.gpr[RDX], r.gpr[RSI]],
            },
            Pending::Hypercall,
        ),
        code::SHUTDOWN => fault("shutdown (triple fault)", None, pc, exitcode),
        // QEMU reports VMEXIT_INVALID (-1) in 32 bits.
        code::INVALID | 0xffff_ffff => fault("VMRUN refused the guest state", None, pc, exitcode),
        _ => fault("unexpected SVM exit", None, pc, exitcode),
    }
}

/// Exits of instructions a guest must find undefined: the SVM instructions (SVM is
/// hidden in CPUID; the VMRUN intercept is mandatory and the others would run on the
/// host's SVM state), XSETBV (XSAVE hidden), MONITOR/MWAIT (hidden: the guest would
/// wait outside the hypervisor's view). The answer is #UD, the instruction not
/// stepped over, as on a CPU without them.
pub fn undefined(exitcode: u64) -> bool {
    matches!(
        exitcode,
        code::VMRUN
            | code::VMLOAD
            | code::VMSAVE
            | code::STGI
            | code::CLGI
            | code::SKINIT
            | code::INVLPGA
            | code::XSETBV
            | code::MONITOR
            | code::MWAIT
            | code::MWAIT_ARMED
    )
}

/// INVD (0F 08) and WBINVD (0F 09): INVD done as WBINVD, which a VM with no device
/// of the host's needs nothing for (its memory is the host's, cached alike; and it
/// must not flush the host's caches from a guest at will): stepped over. QEMU
/// reports INVD with the WBINVD exit code. The length, or None for another exit.
pub fn no_op_len(exitcode: u64) -> Option<u8> {
    matches!(exitcode, code::INVD | code::WBINVD).then_some(2)
}

/// RDTSCP (0F 01 F9): EDX:EAX the guest's TSC, ECX its TSC_AUX (the MSR the CPU
/// would read is the host's), stepped over.
pub fn rdtscp(r: &mut Regs, guest_tsc: u64, tsc_aux: u64) {
    r.gpr[RAX] = guest_tsc & 0xffff_ffff;
    r.gpr[RDX] = guest_tsc >> 32;
    r.gpr[RCX] = tsc_aux & 0xffff_ffff;
    r.rip = r.rip.wrapping_add(3);
}

/// A nested page fault at `gpa` (not guest RAM) taken while the CPU delivered an
/// event (`exitintinfo` valid): the IDT, a descriptor table or the stack lies
/// outside the VM's memory. The VM is stopped: nothing there can be emulated.
pub fn delivery_fault(gpa: u64, exitintinfo: u64, pc: u64) -> Option<(VmExit, Pending)> {
    (exitintinfo & 1 << 31 != 0).then(|| {
        fault(
            "delivering an interrupt or exception through memory outside guest RAM (IDT, GDT or stack)",
            Some(gpa),
            pc,
            exitintinfo,
        )
    })
}

/// A nested page fault at `gpa` that is not guest RAM: the MMIO access the
/// instruction at RIP (`bytes`, fetched through the guest's tables) makes.
pub fn mmio(gpa: u64, info1: u64, r: &Regs, bytes: &[u8], mode: Mode) -> (VmExit, Pending) {
    let pc = r.rip;
    let npf = ioexit::decode_npf(info1);
    if npf.fetch {
        return fault("instruction fetch outside guest RAM", Some(gpa), pc, info1);
    }
    let acc = match insn::decode(bytes, mode) {
        Ok(a) => a,
        Err(insn::DecodeError::Short) => {
            return fault(
                "MMIO access by an instruction cut short",
                Some(gpa),
                pc,
                info1,
            )
        }
        Err(insn::DecodeError::Unsupported) => {
            return fault(
                "not supported yet: MMIO access by this instruction",
                Some(gpa),
                pc,
                info1,
            )
        }
    };
    let write = match acc.op {
        Op::Load { .. } => None,
        Op::Store { reg, high_byte } => Some(if high_byte {
            r.gpr[reg as usize - 4] >> 8
        } else {
            r.gpr[reg as usize & 15]
        }),
        Op::StoreImm(v) => Some(v),
    }
    .map(|v| v & mask(acc.width));
    if write.is_some() != npf.write {
        return fault(
            "MMIO access the instruction does not make",
            Some(gpa),
            pc,
            info1,
        );
    }
    (
        VmExit::Mmio {
            gpa,
            width: acc.width,
            write,
            pc,
        },
        Pending::Mmio(acc),
    )
}

/// Writes the core's `reply` to an exit with `pending` into the registers and steps
/// over the instruction. A reply of the wrong kind leaves the registers as they
/// are and is reported (the instruction then runs again).
pub fn complete(pending: Pending, reply: Reply, r: &mut Regs) -> Result<(), &'static str> {
    let step = |r: &mut Regs, len: u8| r.rip = r.rip.wrapping_add(len as u64);
    match (pending, reply) {
        (Pending::Step(len), _) => step(r, len),
        (Pending::PortIn { len, width }, Reply::PortRead(v)) => {
            r.gpr[RAX] = insn::merge_load(r.gpr[RAX], v as u64, width);
            step(r, len)
        }
        (Pending::MsrRead, Reply::MsrRead(v)) => {
            r.gpr[RAX] = v & 0xffff_ffff;
            r.gpr[RDX] = v >> 32;
            step(r, 2)
        }
        (Pending::Cpuid, Reply::Cpuid(v)) => {
            for (reg, val) in [RAX, RBX, RCX, RDX].into_iter().zip(v) {
                r.gpr[reg] = val as u64;
            }
            step(r, 2)
        }
        (Pending::Mmio(acc), Reply::MmioRead(v)) => {
            if let Op::Load { reg, dst_width } = acc.op {
                let reg = reg as usize & 15;
                r.gpr[reg] = insn::merge_load(r.gpr[reg], v & mask(acc.width), dst_width);
            }
            step(r, acc.len)
        }
        (Pending::Mmio(acc), Reply::None) if !matches!(acc.op, Op::Load { .. }) => step(r, acc.len),
        (Pending::Hypercall, Reply::Hypercall(v)) => {
            for (reg, val) in [RAX, RBX, RCX, RDX].into_iter().zip(v) {
                r.gpr[reg] = val;
            }
            step(r, 3)
        }
        (Pending::Hypercall, Reply::Return(v)) => {
            r.gpr[RAX] = v;
            step(r, 3)
        }
        (Pending::Halt, _) => step(r, 1),
        (Pending::Nothing, _) => {}
        _ => return Err("the answer does not fit the exit"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> Regs {
        let mut r = Regs {
            rip: 0x10_0000,
            ..Regs::default()
        };
        for (i, g) in r.gpr.iter_mut().enumerate() {
            *g = 0x0101_0101_0000_0000 * (i as u64 + 1) + 0x100 + i as u64;
        }
        r
    }

    #[test]
    fn port_output_and_input() {
        let mut r = regs();
        r.gpr[RAX] = 0xdead_be41;
        // out dx, al to COM1
        let (e, p) = decode(code::IOIO, 0x03f8_0010, &r, &[0xee]);
        assert_eq!(
            e,
            VmExit::PortIo {
                port: 0x3f8,
                width: 1,
                write: Some(0x41),
                pc: 0x10_0000
            }
        );
        complete(p, Reply::None, &mut r).unwrap();
        assert_eq!(r.rip, 0x10_0001);
        // in al, 0x60: AL replaced, the rest of RAX kept.
        let (e, p) = decode(code::IOIO, 0x0060_0011, &r, &[0xe4, 0x60]);
        assert!(matches!(
            e,
            VmExit::PortIo {
                write: None,
                width: 1,
                port: 0x60,
                ..
            }
        ));
        complete(p, Reply::PortRead(0x7f), &mut r).unwrap();
        assert_eq!((r.gpr[RAX], r.rip), (0xdead_be7f, 0x10_0003));
        // rep outsb: refused with the reason.
        let (e, _) = decode(code::IOIO, 0x03f8_0000 | 1 << 4 | 1 << 2, &r, &[0xf3, 0x6e]);
        assert!(matches!(e, VmExit::Fault(f) if f.what.contains("string I/O")));
        // Bytes that are no in/out.
        let (e, _) = decode(code::IOIO, 0x03f8_0010, &r, &[0x90]);
        assert!(matches!(e, VmExit::Fault(_)));
    }

    #[test]
    fn msr_cpuid_and_hypercall() {
        let mut r = regs();
        r.gpr[RCX] = 0x1b;
        let (e, p) = decode(code::MSR, 0, &r, &[]);
        assert_eq!(
            e,
            VmExit::MsrRead {
                msr: 0x1b,
                pc: 0x10_0000
            }
        );
        complete(p, Reply::MsrRead(0x1234_5678_fee0_0900), &mut r).unwrap();
        assert_eq!(
            (r.gpr[RAX], r.gpr[RDX], r.rip),
            (0xfee0_0900, 0x1234_5678, 0x10_0002)
        );
        let (e, _) = decode(code::MSR, 1, &r, &[]);
        assert_eq!(
            e,
            VmExit::MsrWrite {
                msr: 0x1b,
                value: 0x1234_5678_fee0_0900,
                pc: 0x10_0002
            }
        );
        r.gpr[RAX] = 0x4000_0000;
        r.gpr[RCX] = 0;
        let (e, p) = decode(code::CPUID, 0, &r, &[]);
        assert_eq!(
            e,
            VmExit::Cpuid {
                leaf: 0x4000_0000,
                subleaf: 0
            }
        );
        complete(p, Reply::Cpuid([1, 2, 3, 4]), &mut r).unwrap();
        assert_eq!(&r.gpr[..4], &[1, 3, 4, 2]); // RAX, RCX, RDX, RBX
        r.gpr[RAX] = 0xffff_ffff_c600_0001;
        let (e, p) = decode(code::VMMCALL, 0, &r, &[]);
        assert_eq!(
            e,
            VmExit::Hypercall {
                code: 0xc600_0001,
                args: [r.gpr[RBX], r.gpr[RCX], r.gpr[RDX], r.gpr[RSI]]
            }
        );
        let rip = r.rip;
        complete(p, Reply::Hypercall([9, 8, 7, 6]), &mut r).unwrap();
        assert_eq!(
            (r.gpr[RAX], r.gpr[RBX], r.gpr[RCX], r.gpr[RDX]),
            (9, 8, 7, 6)
        );
        assert_eq!(r.rip, rip + 3);
        // A wrong answer changes nothing.
        let before = r;
        assert!(complete(Pending::Cpuid, Reply::None, &mut r).is_err());
        assert_eq!(r, before);
    }

    #[test]
    fn svm_instructions_xsetbv_and_monitor_are_undefined() {
        for c in [
            0x80, 0x82, 0x83, 0x84, 0x85, 0x86, 0x7a, 0x8d, 0x8a, 0x8b, 0x8c,
        ] {
            assert!(undefined(c), "{c:#x}");
        }
        for c in [
            code::VMMCALL,
            code::CPUID,
            code::HLT,
            code::INVD,
            code::RDTSCP,
        ] {
            assert!(!undefined(c), "{c:#x}");
        }
        assert_eq!(no_op_len(code::INVD), Some(2));
        assert_eq!(no_op_len(code::WBINVD), Some(2));
        assert_eq!(no_op_len(code::HLT), None);
    }

    #[test]
    fn rdtscp_gives_the_guest_tsc_and_its_tsc_aux() {
        let mut r = regs();
        rdtscp(&mut r, 0x1234_5678_9abc_def0, 0xffff_0000_0000_0007);
        assert_eq!(
            (r.gpr[RAX], r.gpr[RDX], r.gpr[RCX], r.rip),
            (0x9abc_def0, 0x1234_5678, 7, 0x10_0003)
        );
    }

    #[test]
    fn a_fault_while_delivering_an_event_stops_the_vm() {
        assert_eq!(delivery_fault(0xd000_0000, 0, 0x1000), None);
        let (e, p) = delivery_fault(0xd000_0030, 0x8000_0b0d, 0x1000).unwrap();
        assert!(
            matches!(e, VmExit::Fault(f) if f.what.contains("delivering") && f.addr == Some(0xd000_0030))
        );
        assert_eq!(p, Pending::Nothing);
    }

    #[test]
    fn halt_and_the_exits_that_stop_the_vm() {
        let mut r = regs();
        let (e, p) = decode(code::HLT, 0, &r, &[]);
        assert_eq!((e, p), (VmExit::Idle, Pending::Halt));
        complete(p, Reply::None, &mut r).unwrap();
        assert_eq!(r.rip, 0x10_0001);
        let (e, _) = decode(code::SHUTDOWN, 0, &r, &[]);
        assert!(matches!(e, VmExit::Fault(f) if f.what.contains("triple fault")));
        for invalid in [u64::MAX, 0xffff_ffff] {
            let (e, _) = decode(invalid, 0, &r, &[]);
            assert!(matches!(e, VmExit::Fault(f) if f.what.contains("refused the guest state")));
        }
        let (e, _) = decode(0x6e, 0, &r, &[]);
        assert!(matches!(e, VmExit::Fault(f) if f.syndrome == 0x6e));
    }

    #[test]
    fn mmio_loads_and_stores() {
        let mut r = regs();
        r.gpr[RBX] = 0xaabb_ccdd_1122_3344;
        // mov [eax], ebx: a 4-byte write of EBX.
        let (e, p) = mmio(0xfee0_00b0, 0x1_0000_0006, &r, &[0x89, 0x18], Mode::Prot32);
        assert_eq!(
            e,
            VmExit::Mmio {
                gpa: 0xfee0_00b0,
                width: 4,
                write: Some(0x1122_3344),
                pc: 0x10_0000
            }
        );
        complete(p, Reply::None, &mut r).unwrap();
        assert_eq!(r.rip, 0x10_0002);
        // mov [eax], bh: the high byte of RBX.
        let (e, _) = mmio(0x1000, 0x6, &r, &[0x88, 0x38], Mode::Prot32);
        assert!(matches!(
            e,
            VmExit::Mmio {
                write: Some(0x33),
                width: 1,
                ..
            }
        ));
        // movzx ecx, byte [edx]: RCX becomes the byte, upper bits cleared.
        let (e, p) = mmio(0x3000, 0x4, &r, &[0x0f, 0xb6, 0x0a], Mode::Prot32);
        assert!(matches!(
            e,
            VmExit::Mmio {
                write: None,
                width: 1,
                ..
            }
        ));
        complete(p, Reply::MmioRead(0x1ff), &mut r).unwrap();
        assert_eq!((r.gpr[RCX], r.rip), (0xff, 0x10_0005));
        // The fault says write, the instruction reads: refused.
        let (e, _) = mmio(0x3000, 0x6, &r, &[0x8b, 0x02], Mode::Prot32);
        assert!(matches!(e, VmExit::Fault(_)));
        // An instruction fetch from MMIO and an unknown instruction: refused.
        let (e, _) = mmio(0x3000, 0x14, &r, &[0x8b, 0x02], Mode::Prot32);
        assert!(matches!(e, VmExit::Fault(f) if f.what.contains("fetch")));
        let (e, _) = mmio(0x3000, 0x4, &r, &[0x03, 0x02], Mode::Prot32);
        assert!(matches!(e, VmExit::Fault(f) if f.what.contains("not supported yet")));
    }
}
