//! Decoding the load or store that caused a guest-page fault, so the VMM can emulate
//! it: either from `htinst` (the "transformed instruction" the hart may report) or
//! from the instruction itself read from guest memory (32-bit or compressed).
//!
//! Only integer loads and stores can be emulated; floating-point accesses and AMOs to
//! MMIO are refused with a reason.

/// One emulatable access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Bytes of the instruction (2 compressed, 4 otherwise): how far to step sepc.
    pub len: u8,
    /// Access width in bytes: 1, 2, 4 or 8.
    pub width: u8,
    pub write: bool,
    /// The register loaded (rd) or stored (rs2); x0 reads as zero and ignores loads.
    pub reg: u8,
    /// Loads narrower than 64 bits are sign-extended (LB, LH, LW, C.LW).
    pub sign_extend: bool,
}

/// What `htinst` says about a guest-page fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Htinst {
    /// Nothing: the instruction must be read from guest memory.
    None,
    /// The trapping instruction in transformed form, with its original length.
    Transformed { insn: u32, len: u8 },
    /// A pseudo-instruction: the fault came from an implicit access of the guest's own
    /// page-table walk (VS-stage tables outside guest memory).
    Implicit,
}

pub fn htinst(value: u64) -> Htinst {
    let v = value as u32;
    match (v, v & 1) {
        (0, _) => Htinst::None,
        (_, 1) => Htinst::Transformed {
            // Bit 1 clear marks a compressed original; decode it as the 32-bit form.
            insn: v | 0b10,
            len: if v & 0b10 != 0 { 4 } else { 2 },
        },
        _ => Htinst::Implicit,
    }
}

/// Length of the instruction whose first halfword is `low`.
pub fn insn_len(low: u16) -> u8 {
    if low & 0b11 == 0b11 {
        4
    } else {
        2
    }
}

const OP_LOAD: u32 = 0x03;
const OP_LOAD_FP: u32 = 0x07;
const OP_STORE: u32 = 0x23;
const OP_STORE_FP: u32 = 0x27;
const OP_AMO: u32 = 0x2f;

/// Decodes a 32-bit instruction of `len` bytes (4, or 2 for a transformed compressed
/// one).
pub fn decode32(insn: u32, len: u8) -> Result<Access, &'static str> {
    let funct3 = (insn >> 12) & 7;
    let rd = ((insn >> 7) & 0x1f) as u8;
    let rs2 = ((insn >> 20) & 0x1f) as u8;
    match insn & 0x7f {
        OP_LOAD => {
            let (width, sign_extend) = match funct3 {
                0 => (1, true),
                1 => (2, true),
                2 => (4, true),
                3 => (8, false),
                4 => (1, false),
                5 => (2, false),
                6 => (4, false),
                _ => return Err("undefined load instruction"),
            };
            Ok(Access {
                len,
                width,
                write: false,
                reg: rd,
                sign_extend,
            })
        }
        OP_STORE if funct3 < 4 => Ok(Access {
            len,
            width: 1 << funct3,
            write: true,
            reg: rs2,
            sign_extend: false,
        }),
        OP_STORE => Err("undefined store instruction"),
        OP_LOAD_FP | OP_STORE_FP => Err("floating-point load/store to MMIO (cannot emulate)"),
        OP_AMO => Err("atomic memory operation on MMIO (cannot emulate)"),
        _ => Err("not a load or store instruction"),
    }
}

/// Decodes a compressed (16-bit) instruction.
pub fn decode16(insn: u16) -> Result<Access, &'static str> {
    let funct3 = (insn >> 13) & 7;
    let prime = |at: u16| (((insn >> at) & 7) + 8) as u8;
    let full = |at: u16| ((insn >> at) & 0x1f) as u8;
    let access = |width, write, reg, sign_extend| {
        Ok(Access {
            len: 2,
            width,
            write,
            reg,
            sign_extend,
        })
    };
    match (insn & 3, funct3) {
        // C.LW, C.LD, C.SW, C.SD: rd'/rs2' in bits 4:2.
        (0, 2) => access(4, false, prime(2), true),
        (0, 3) => access(8, false, prime(2), false),
        (0, 6) => access(4, true, prime(2), false),
        (0, 7) => access(8, true, prime(2), false),
        // C.LWSP, C.LDSP (rd in 11:7), C.SWSP, C.SDSP (rs2 in 6:2).
        (2, 2) if full(7) != 0 => access(4, false, full(7), true),
        (2, 3) if full(7) != 0 => access(8, false, full(7), false),
        (2, 6) => access(4, true, full(2), false),
        (2, 7) => access(8, true, full(2), false),
        (0 | 2, 1 | 5) => Err("floating-point load/store to MMIO (cannot emulate)"),
        _ => Err("not a load or store instruction"),
    }
}

/// Decodes the instruction whose halfwords are `low` and (for a 32-bit one) `high`.
pub fn decode(low: u16, high: u16) -> Result<Access, &'static str> {
    if insn_len(low) == 4 {
        decode32(u32::from(low) | (u32::from(high) << 16), 4)
    } else {
        decode16(low)
    }
}

/// The value a load of `width` bytes leaves in its destination register.
pub fn load_value(raw: u64, width: u8, sign_extend: bool) -> u64 {
    if width >= 8 {
        return raw;
    }
    let bits = u32::from(width) * 8;
    let v = raw & ((1u64 << bits) - 1);
    if sign_extend {
        let shift = 64 - bits;
        (((v << shift) as i64) >> shift) as u64
    } else {
        v
    }
}

/// The bytes a store of `width` bytes writes from a register value.
pub fn store_value(reg: u64, width: u8) -> u64 {
    if width >= 8 {
        reg
    } else {
        reg & ((1u64 << (u32::from(width) * 8)) - 1)
    }
}

/// Counter CSRs: cycle, instret, hpmcounter3..31 (time is not trapped).
const CSR_CYCLE: u16 = 0xc00;
const CSR_INSTRET: u16 = 0xc02;
const CSR_HPMCOUNTER31: u16 = 0xc1f;

/// A read-only access to a counter CSR other than `time` (`csrr rd, cycle`: CSRRS or
/// CSRRC with rs1 = x0, or their immediate forms with 0), which trapped as a virtual
/// instruction: (rd, CSR number).
pub fn counter_read(insn: u32) -> Option<(u8, u16)> {
    if insn & 0x7f != 0x73 {
        return None;
    }
    let funct3 = (insn >> 12) & 7;
    let rs1 = (insn >> 15) & 0x1f;
    let csr = (insn >> 20) as u16;
    let rd = ((insn >> 7) & 0x1f) as u8;
    let read_only = matches!(funct3, 2 | 3 | 6 | 7) && rs1 == 0;
    let counter = csr == CSR_CYCLE || (CSR_INSTRET..=CSR_HPMCOUNTER31).contains(&csr);
    (read_only && counter).then_some((rd, csr))
}

/// The value a guest reads from counter `csr`: cycle and instret follow the guest's
/// time (`guest_time`), the hpmcounters read as zero.
pub fn counter_value(csr: u16, guest_time: u64) -> u64 {
    match csr {
        CSR_CYCLE | CSR_INSTRET => guest_time,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(len: u8, width: u8, write: bool, reg: u8, sign_extend: bool) -> Access {
        Access {
            len,
            width,
            write,
            reg,
            sign_extend,
        }
    }

    #[test]
    fn standard_loads_and_stores() {
        // lw a0, 0(a1) = 0x0005a503; lbu t0, 5(s0) = 0x00544283; ld s1, 8(sp) = 0x00813483
        assert_eq!(decode32(0x0005_a503, 4), Ok(acc(4, 4, false, 10, true)));
        assert_eq!(decode32(0x0054_4283, 4), Ok(acc(4, 1, false, 5, false)));
        assert_eq!(decode32(0x0081_3483, 4), Ok(acc(4, 8, false, 9, false)));
        // lwu a5, 0(a0) = 0x00056783; lh a2, 2(a3) = 0x00269603
        assert_eq!(decode32(0x0005_6783, 4), Ok(acc(4, 4, false, 15, false)));
        assert_eq!(decode32(0x0026_9603, 4), Ok(acc(4, 2, false, 12, true)));
        // sb a1, 0(a0) = 0x00b50023; sw a1, 4(a0) = 0x00b52223; sd t1, 0(t0) = 0x0062b023
        assert_eq!(decode32(0x00b5_0023, 4), Ok(acc(4, 1, true, 11, false)));
        assert_eq!(decode32(0x00b5_2223, 4), Ok(acc(4, 4, true, 11, false)));
        assert_eq!(decode32(0x0062_b023, 4), Ok(acc(4, 8, true, 6, false)));
        assert_eq!(decode(0xa503, 0x0005), Ok(acc(4, 4, false, 10, true)));
    }

    #[test]
    fn compressed_loads_and_stores() {
        // c.lw a0, 0(a1) = 0x4188; c.sd a5, 8(a0) = 0xe51c; c.ld s1, 0(a2) = 0x6204
        assert_eq!(decode16(0x4188), Ok(acc(2, 4, false, 10, true)));
        assert_eq!(decode16(0xe51c), Ok(acc(2, 8, true, 15, false)));
        assert_eq!(decode16(0x6204), Ok(acc(2, 8, false, 9, false)));
        // c.sw a4, 0(a5) = 0xc398
        assert_eq!(decode16(0xc398), Ok(acc(2, 4, true, 14, false)));
        // c.lwsp a0, 4(sp) = 0x4512; c.sdsp ra, 8(sp) = 0xe406
        assert_eq!(decode16(0x4512), Ok(acc(2, 4, false, 10, true)));
        assert_eq!(decode16(0xe406), Ok(acc(2, 8, true, 1, false)));
        assert_eq!(decode(0x4188, 0xffff), Ok(acc(2, 4, false, 10, true)));
    }

    #[test]
    fn what_cannot_be_emulated() {
        // fld fa0, 0(a0) = 0x00053507; amoadd.w a0, a1, (a2) = 0x00b6252f; c.fld = 0x2108
        assert!(decode32(0x0005_3507, 4)
            .unwrap_err()
            .contains("floating-point"));
        assert!(decode32(0x00b6_252f, 4).unwrap_err().contains("atomic"));
        assert!(decode16(0x2108).unwrap_err().contains("floating-point"));
        // addi a0, a0, 1 = 0x00150513; c.addi a0, 1 = 0x0505; c.lwsp x0 is reserved
        assert!(decode32(0x0015_0513, 4).is_err());
        assert!(decode16(0x0505).is_err());
        assert!(decode16(0x4002).is_err());
        assert!(decode32(0x0000_7003, 4).is_err(), "load funct3 7");
        assert!(decode32(0x0000_4023, 4).is_err(), "store funct3 4");
    }

    #[test]
    fn transformed_instructions() {
        // A compressed c.lw transformed: the 32-bit lw with rs1 = 0 and bit 1 clear.
        assert_eq!(
            htinst(0x0000_2501),
            Htinst::Transformed {
                insn: 0x0000_2503,
                len: 2
            }
        );
        let Htinst::Transformed { insn, len } = htinst(0x0000_2503) else {
            panic!()
        };
        assert_eq!(decode32(insn, len), Ok(acc(4, 4, false, 10, true)));
        let Htinst::Transformed { insn, len } = htinst(0x0000_2501) else {
            panic!()
        };
        assert_eq!(decode32(insn, len), Ok(acc(2, 4, false, 10, true)));
        assert_eq!(htinst(0), Htinst::None);
        assert_eq!(htinst(0x0000_3000), Htinst::Implicit, "64-bit PTE read");
        assert_eq!(htinst(0x0000_2020), Htinst::Implicit);
    }

    #[test]
    fn register_values() {
        assert_eq!(load_value(0x80, 1, true), u64::MAX - 0x7f);
        assert_eq!(load_value(0x1_80, 1, false), 0x80);
        assert_eq!(load_value(0xffff_ffff, 4, true), u64::MAX);
        assert_eq!(load_value(0xffff_ffff, 4, false), 0xffff_ffff);
        assert_eq!(load_value(0x1234, 8, true), 0x1234);
        assert_eq!(store_value(0x1122_3344_5566_7788, 2), 0x7788);
        assert_eq!(store_value(u64::MAX, 8), u64::MAX);
    }

    #[test]
    fn counter_reads_are_recognised() {
        // csrr a0, cycle = csrrs x10, 0xc00, x0
        let rdcycle = (0xc00 << 20) | (2 << 12) | (10 << 7) | 0x73;
        assert_eq!(counter_read(rdcycle), Some((10, 0xc00)));
        // csrr t0, instret
        let rdinstret = (0xc02 << 20) | (2 << 12) | (5 << 7) | 0x73;
        assert_eq!(counter_read(rdinstret), Some((5, 0xc02)));
        // csrrci a1, hpmcounter3, 0
        let hpm3 = (0xc03 << 20) | (7 << 12) | (11 << 7) | 0x73;
        assert_eq!(counter_read(hpm3), Some((11, 0xc03)));
        // csrrs a0, cycle, a1 (a write attempt), csrrw, and other CSRs are not.
        assert_eq!(counter_read(rdcycle | (11 << 15)), None);
        assert_eq!(
            counter_read((0xc00 << 20) | (1 << 12) | (10 << 7) | 0x73),
            None
        );
        assert_eq!(
            counter_read((0x106 << 20) | (2 << 12) | (10 << 7) | 0x73),
            None
        );
        assert_eq!(
            counter_read((0xc20 << 20) | (2 << 12) | (10 << 7) | 0x73),
            None
        );
        assert_eq!(counter_read(rdcycle & !0x7f | 0x33), None);
        assert_eq!(counter_value(0xc00, 77), 77);
        assert_eq!(counter_value(0xc02, 77), 77);
        assert_eq!(counter_value(0xc03, 77), 0);
    }
}
