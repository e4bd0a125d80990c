//! The stack frame check `cargo xtask build` runs over every hypervisor ELF it
//! builds: no function may move the stack pointer so far that an overflow steps over
//! the unmapped gap below a hypervisor stack without touching it.
//!
//! The kernel says how large the gap is through its symbol `HV_STACK_GAP` (a u64).
//! Each function's frame is read from its code (decoding only the few instructions
//! that move the stack pointer down):
//! - riscv64 has no stack probes, so a function's frame (the sum of its `addi sp, sp,
//!   -imm`, `c.addi16sp` and `sub sp, sp, rs` with `rs` from `lui`/`addi(w)`/`li`)
//!   must be at most half the gap: then the first access below a stack is at most a
//!   caller's frame plus a callee's frame below it, inside the gap (the reasoning is
//!   in kernel/src/arch/stacks.rs).
//! - aarch64 is held to the same rule (`sub sp, sp, #imm{, lsl #12}`, `sub sp, sp,
//!   xN` with `xN` from `movz`/`movk`, pre-indexed stores to `[sp, #-imm]!`, and the
//!   `sub xN, sp, #imm` that bounds a stack probe loop), though its target also has
//!   inline stack probes.
//! - x86_64-unknown-none has inline stack probes (a frame above a page is allocated a
//!   page at a time, each page touched), so the rule there is that no single
//!   `sub rsp, imm` of a prologue is larger than the gap: a larger one means the
//!   probes are gone.
//!
//! A stack pointer decrement whose size the check cannot read fails the check too.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// The symbol that holds the gap below each stack.
pub const GAP_SYMBOL: &str = "HV_STACK_GAP";

/// The instruction sets the check reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Aarch64,
    Riscv64,
    X86_64,
}

/// A function of the ELF: its name, address and code.
pub struct Function<'a> {
    pub name: String,
    pub addr: u64,
    pub code: &'a [u8],
}

/// What the check found wrong in one function.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// The frame (or, on x86_64, one allocation step) is larger than allowed.
    TooLarge { bytes: u64 },
    /// The stack pointer moves down by an amount the check cannot read (at `addr`).
    Unreadable { addr: u64 },
}

/// What the check saw: the gap, the limit and the function closest to it.
#[derive(Debug)]
pub struct Summary {
    /// What is weighed: "frame", or on x86_64 "allocation step".
    pub what: &'static str,
    pub gap: u64,
    pub limit: u64,
    pub largest: u64,
    pub largest_name: String,
}

/// Checks the hypervisor ELF `file`; the error names every function at fault.
pub fn check_elf(file: &[u8]) -> Result<Summary> {
    let obj = object::File::parse(file).context("not an ELF file")?;
    let isa = match obj.architecture() {
        object::Architecture::Aarch64 => Isa::Aarch64,
        object::Architecture::Riscv64 => Isa::Riscv64,
        object::Architecture::X86_64 => Isa::X86_64,
        other => bail!("stack frame check: no decoder for {other:?}"),
    };
    let gap = read_gap(&obj)?;
    let limit = limit(isa, gap);
    let mut summary = Summary {
        what: if isa == Isa::X86_64 {
            "allocation step"
        } else {
            "frame"
        },
        gap,
        limit,
        largest: 0,
        largest_name: String::new(),
    };
    let mut bad = Vec::new();
    for f in functions(&obj)? {
        match check_function(isa, &f, limit) {
            Ok(bytes) if bytes > summary.largest => {
                summary.largest = bytes;
                summary.largest_name = f.name.clone();
            }
            Ok(_) => {}
            Err(p) => bad.push(describe(&f, &p)),
        }
    }
    if !bad.is_empty() {
        bail!(
            "stack frame check ({isa:?}, {gap} bytes unmapped below each hypervisor stack, \
             so at most {limit} bytes {}):\n  {}\n\
             shrink these frames (move large locals to the heap or a static), or make the \
             gap larger (kernel/src/arch/stacks.rs)",
            if isa == Isa::X86_64 {
                "per unprobed stack allocation"
            } else {
                "per stack frame"
            },
            bad.join("\n  ")
        );
    }
    Ok(summary)
}

/// The most a function may allocate: half the gap where nothing probes the stack,
/// the gap itself per step where the compiler probes every page.
pub fn limit(isa: Isa, gap: u64) -> u64 {
    match isa {
        Isa::X86_64 => gap,
        Isa::Aarch64 | Isa::Riscv64 => gap / 2,
    }
}

/// `a::b::c` for a legacy-mangled Rust name (`_ZN1a1b1c17h<hash>E`); any other
/// name as it is.
pub fn readable(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts = Vec::new();
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&d| d > 0) {
        let Ok(len) = rest[..digits].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(digits..digits + len) else {
            break;
        };
        parts.push(part);
        rest = &rest[digits + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.starts_with('h') && p.len() == 17)
    {
        parts.pop();
    }
    if parts.is_empty() || rest != "E" {
        return name.to_string();
    }
    parts.join("::")
}

fn describe(f: &Function, p: &Problem) -> String {
    match p {
        Problem::TooLarge { bytes } => {
            format!("{} at {:#x}: {bytes} bytes of stack", f.name, f.addr)
        }
        Problem::Unreadable { addr } => format!(
            "{} at {:#x}: moves the stack pointer by an amount the check cannot read (at {addr:#x})",
            f.name, f.addr
        ),
    }
}

/// Checks one function against `limit`: what it weighs (see [`frame`]).
pub fn check_function(isa: Isa, f: &Function, limit: u64) -> Result<u64, Problem> {
    let bytes = frame(isa, f)?;
    if bytes > limit {
        return Err(Problem::TooLarge { bytes });
    }
    Ok(bytes)
}

/// What the check weighs of a function: its frame (riscv64, aarch64) or its largest
/// allocation step (x86_64).
fn frame(isa: Isa, f: &Function) -> Result<u64, Problem> {
    let steps = match isa {
        Isa::Aarch64 => aarch64_steps(f.code, f.addr)?,
        Isa::Riscv64 => riscv_steps(f.code, f.addr)?,
        Isa::X86_64 => x86_prologue_steps(f.code),
    };
    Ok(match isa {
        Isa::X86_64 => steps.iter().copied().max().unwrap_or(0),
        _ => steps.iter().sum(),
    })
}

fn read_gap(obj: &object::File) -> Result<u64> {
    let sym = obj
        .symbols()
        .find(|s| s.name() == Ok(GAP_SYMBOL))
        .with_context(|| {
            format!("the hypervisor ELF has no symbol {GAP_SYMBOL} (the gap below its stacks)")
        })?;
    let section = sym
        .section_index()
        .and_then(|i| obj.section_by_index(i).ok())
        .with_context(|| format!("{GAP_SYMBOL} is in no section"))?;
    let data = section
        .data()
        .context("cannot read the section of HV_STACK_GAP")?;
    let off = sym.address().wrapping_sub(section.address()) as usize;
    let bytes = data
        .get(off..off + 8)
        .with_context(|| format!("{GAP_SYMBOL} lies outside its section"))?;
    let gap = if obj.is_little_endian() {
        u64::from_le_bytes(bytes.try_into()?)
    } else {
        u64::from_be_bytes(bytes.try_into()?)
    };
    anyhow::ensure!(
        gap > 0,
        "{GAP_SYMBOL} is 0: the stacks have no gap below them"
    );
    Ok(gap)
}

/// Every function of the code sections: function symbols with their size, and the
/// other symbols there (assembly labels) up to the next symbol.
fn functions<'a>(obj: &'a object::File<'a>) -> Result<Vec<Function<'a>>> {
    let mut out = Vec::new();
    for section in obj.sections().filter(|s| s.kind() == SectionKind::Text) {
        let data = section.data().context("cannot read a code section")?;
        let (start, end) = (section.address(), section.address() + data.len() as u64);
        let mut syms: Vec<(u64, u64, String)> = obj
            .symbols()
            .filter(|s| s.section_index() == Some(section.index()))
            .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Unknown))
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .filter(|(_, _, n)| !n.is_empty() && !n.starts_with('$') && !n.starts_with(".L"))
            .collect();
        syms.sort();
        syms.dedup_by_key(|s| s.0);
        for (i, (addr, size, name)) in syms.iter().enumerate() {
            let next = syms.get(i + 1).map_or(end, |s| s.0);
            let stop = if *size > 0 { addr + size } else { next }.min(end);
            let (a, b) = ((addr - start) as usize, (stop.max(*addr) - start) as usize);
            out.push(Function {
                name: readable(name),
                addr: *addr,
                code: &data[a..b],
            });
        }
    }
    Ok(out)
}

fn sext(value: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((value << shift) as i64) >> shift
}

/// The page a stack probe loop steps by (LLVM's default probe size).
const PROBE_STEP: u64 = 4096;

/// aarch64: the stack pointer decrements of `code` (at `addr`).
pub fn aarch64_steps(code: &[u8], addr: u64) -> Result<Vec<u64>, Problem> {
    const SP: u32 = 31;
    let mut regs: HashMap<u32, u64> = HashMap::new();
    let mut steps = Vec::new();
    // After `sub xN, sp, #bound` (a probe loop's bound, counted whole), the loop's
    // own `sub sp, sp, #page` is part of it.
    let mut in_probe_loop = false;
    for (i, w) in code.chunks_exact(4).enumerate() {
        let insn = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let (rd, rn) = (insn & 31, (insn >> 5) & 31);
        if insn & 0xFF80_0000 == 0xD100_0000 && rn == SP {
            // SUB (immediate, 64-bit) from sp: a frame, or a probe loop's bound.
            let imm = ((insn >> 10) & 0xfff) as u64;
            let imm = if insn & (1 << 22) != 0 {
                imm << 12
            } else {
                imm
            };
            if rd != SP {
                in_probe_loop = true;
                steps.push(imm);
            } else if std::mem::take(&mut in_probe_loop) && imm == PROBE_STEP {
                // the loop's step, inside the bound
            } else {
                steps.push(imm);
            }
        } else if insn & 0xFFE0_0000 == 0xCB20_0000 && rd == SP && rn == SP {
            // SUB (extended register) sp, sp, xM.
            let rm = (insn >> 16) & 31;
            let at = addr + 4 * i as u64;
            steps.push(*regs.get(&rm).ok_or(Problem::Unreadable { addr: at })?);
        } else if insn & 0x3B20_0C00 == 0x3800_0C00 && rn == SP {
            // Load/store register, pre-indexed, on sp: [sp, #imm9]!
            let imm = sext(((insn >> 12) & 0x1ff) as u64, 9);
            steps.extend((imm < 0).then_some(imm.unsigned_abs()));
        } else if insn & 0x3B80_0000 == 0x2980_0000 && rn == SP {
            // Load/store pair, pre-indexed, on sp: [sp, #imm7 * scale]!
            let (opc, simd) = (insn >> 30, insn & (1 << 26) != 0);
            let scale = if simd { 4 << opc } else { 4 << (opc >> 1) };
            let imm = sext(((insn >> 15) & 0x7f) as u64, 7) * scale;
            steps.extend((imm < 0).then_some(imm.unsigned_abs()));
        }
        // Constants for `sub sp, sp, xM`: MOVZ, MOVN, MOVK (64-bit).
        let (hw, imm16) = ((insn >> 21) & 3, ((insn >> 5) & 0xffff) as u64);
        match insn & 0xFF80_0000 {
            0xD280_0000 => {
                regs.insert(rd, imm16 << (16 * hw));
            }
            0x9280_0000 => {
                regs.insert(rd, !(imm16 << (16 * hw)));
            }
            0xF280_0000 => {
                if let Some(v) = regs.get_mut(&rd) {
                    *v = (*v & !(0xffff << (16 * hw))) | (imm16 << (16 * hw));
                }
            }
            _ => {
                regs.remove(&rd);
            }
        }
    }
    Ok(steps)
}

/// riscv64 (RV64GC): the stack pointer decrements of `code` (at `addr`).
pub fn riscv_steps(code: &[u8], addr: u64) -> Result<Vec<u64>, Problem> {
    const SP: u32 = 2;
    let mut regs: HashMap<u32, i64> = HashMap::new();
    let mut steps = Vec::new();
    let mut at = 0;
    while at + 2 <= code.len() {
        let low = u16::from_le_bytes([code[at], code[at + 1]]) as u32;
        let pc = addr + at as u64;
        if low & 3 != 3 {
            riscv_compressed(low, &mut regs, &mut steps, pc)?;
            at += 2;
            continue;
        }
        let Some(w) = code.get(at..at + 4) else { break };
        let insn = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        at += 4;
        let (opcode, rd, f3) = (insn & 0x7f, (insn >> 7) & 31, (insn >> 12) & 7);
        let (rs1, rs2, f7) = ((insn >> 15) & 31, (insn >> 20) & 31, insn >> 25);
        let imm_i = (insn as i32 >> 20) as i64;
        let src = |r: u32| {
            if r == 0 {
                Some(0)
            } else {
                regs.get(&r).copied()
            }
        };
        let value = match (opcode, f3, f7) {
            (0x13, 0, _) if rd == SP && rs1 == SP => {
                steps.extend((imm_i < 0).then_some(imm_i.unsigned_abs()));
                None
            }
            (0x13, 0, _) => src(rs1).map(|v| v.wrapping_add(imm_i)),
            (0x1b, 0, _) => src(rs1).map(|v| v.wrapping_add(imm_i) as i32 as i64),
            (0x37, _, _) => Some((insn & 0xffff_f000) as i32 as i64),
            (0x33, 0, 0x20) | (0x33, 0, 0) if rd == SP && rs1 == SP => {
                let v = src(rs2).ok_or(Problem::Unreadable { addr: pc })?;
                let down = if f7 == 0x20 { v } else { -v };
                steps.extend((down > 0).then_some(down as u64));
                None
            }
            _ => None,
        };
        match opcode {
            // Calls clobber the temporaries.
            0x6f | 0x67 => regs.clear(),
            // Stores and branches write no register.
            0x23 | 0x27 | 0x63 => {}
            _ => match value {
                Some(v) if rd != 0 => {
                    regs.insert(rd, v);
                }
                _ => {
                    regs.remove(&rd);
                }
            },
        }
    }
    Ok(steps)
}

/// One compressed instruction: the stack pointer decrements and the constants.
fn riscv_compressed(
    c: u32,
    regs: &mut HashMap<u32, i64>,
    steps: &mut Vec<u64>,
    pc: u64,
) -> Result<(), Problem> {
    let (quadrant, f3, rd) = (c & 3, c >> 13, (c >> 7) & 31);
    let imm6 = sext((((c >> 12) & 1) << 5 | ((c >> 2) & 31)) as u64, 6);
    match (quadrant, f3) {
        (1, 3) if rd == 2 => {
            // C.ADDI16SP
            let raw = ((c >> 12) & 1) << 9
                | ((c >> 6) & 1) << 4
                | ((c >> 5) & 1) << 6
                | ((c >> 3) & 3) << 7
                | ((c >> 2) & 1) << 5;
            let imm = sext(raw as u64, 10);
            steps.extend((imm < 0).then_some(imm.unsigned_abs()));
        }
        (1, 0) if rd == 2 => steps.extend((imm6 < 0).then_some(imm6.unsigned_abs())),
        (1, 0) => {
            let v = regs.get(&rd).map(|v| v.wrapping_add(imm6));
            set(regs, rd, v);
        }
        (1, 1) => {
            let v = regs.get(&rd).map(|v| v.wrapping_add(imm6) as i32 as i64);
            set(regs, rd, v);
        }
        (1, 2) => set(regs, rd, Some(imm6)),
        (1, 3) => set(regs, rd, Some(imm6 << 12)),
        (1, 4) => {
            regs.remove(&(8 + ((c >> 7) & 7)));
        }
        (1, 5) => regs.clear(), // C.J: leaves the block
        (2, 4) => {
            let (rs2, add) = ((c >> 2) & 31, c & (1 << 12) != 0);
            if rs2 == 0 {
                regs.clear(); // C.JR / C.JALR
            } else if rd == 2 && add {
                let v = regs.get(&rs2).ok_or(Problem::Unreadable { addr: pc })?;
                steps.extend((*v < 0).then_some(v.unsigned_abs()));
            } else if add {
                let v = regs
                    .get(&rd)
                    .zip(regs.get(&rs2))
                    .map(|(a, b)| a.wrapping_add(*b));
                set(regs, rd, v);
            } else {
                let v = regs.get(&rs2).copied();
                set(regs, rd, v);
            }
        }
        (2, 0..=3) => {
            regs.remove(&rd);
        }
        (0, 0..=3) => {
            regs.remove(&(8 + ((c >> 2) & 7)));
        }
        _ => {}
    }
    Ok(())
}

fn set(regs: &mut HashMap<u32, i64>, rd: u32, v: Option<i64>) {
    match v {
        Some(v) if rd != 0 => {
            regs.insert(rd, v);
        }
        _ => {
            regs.remove(&rd);
        }
    }
}

/// x86_64: the `sub rsp, imm` steps of the prologue of `code` (pushes, `mov rbp,
/// rsp`, stack probes), up to its first other instruction.
pub fn x86_prologue_steps(code: &[u8]) -> Vec<u64> {
    let mut steps = Vec::new();
    let mut at = 0;
    loop {
        let rest = &code[at.min(code.len())..];
        let len = match rest {
            [0x50..=0x57, ..] => 1,
            [0x41, 0x50..=0x57, ..] => 2,
            [0x48, 0x89, 0xe5, ..] => 3,
            [0x48, 0x83, 0xec, imm, ..] => {
                steps.push(u64::from(*imm));
                4
            }
            [0x48, 0x81, 0xec, a, b, c, d, ..] => {
                steps.push(u64::from(u32::from_le_bytes([*a, *b, *c, *d])));
                7
            }
            // mov qword ptr [rsp], 0: a probe.
            [0x48, 0xc7, 0x04, 0x24, 0, 0, 0, 0, ..] => 8,
            _ => break,
        };
        at += len;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn f(code: &[u8]) -> Function<'_> {
        Function {
            name: "f".into(),
            addr: 0x1000,
            code,
        }
    }

    #[test]
    fn aarch64_frames_are_read_from_every_prologue_form() {
        // stp x29, x30, [sp, #-96]!; sub sp, sp, #1, lsl #12; sub sp, sp, #720
        let code = words(&[0xA9BA7BFD, 0xD14007FF, 0xD10B43FF]);
        assert_eq!(aarch64_steps(&code, 0), Ok(vec![96, 4096, 720]));
        // str x30, [sp, #-16]!; sub x9, sp, #7, lsl #12 (a probe loop's bound);
        // sub sp, sp, #1, lsl #12 (the loop's step); sub sp, sp, #720
        let code = words(&[0xF81F0FFE, 0xD1401FE9, 0xD14007FF, 0xD10B43FF]);
        assert_eq!(aarch64_steps(&code, 0), Ok(vec![16, 28672, 720]));
        // sub x8, sp, #16 (not a loop bound: counted), then sub sp, sp, #720 (counted)
        let code = words(&[0xD10043E8, 0xD10B43FF]);
        assert_eq!(aarch64_steps(&code, 0), Ok(vec![16, 720]));
        // mov x9, #0x1234, lsl #16; movk x9, #0x10; sub sp, sp, x9
        let code = words(&[0xD2A24689, 0xF2800209, 0xCB2963FF]);
        assert_eq!(aarch64_steps(&code, 0), Ok(vec![0x1234_0010]));
        // ldp x29, x30, [sp], #16; add sp, sp, #720: no decrement
        let code = words(&[0xA8C17BFD, 0x910B43FF]);
        assert_eq!(aarch64_steps(&code, 0), Ok(vec![]));
    }

    #[test]
    fn aarch64_sub_by_an_unknown_register_is_refused() {
        // sub sp, sp, x9 with x9 from a load
        let code = words(&[0xF9400009, 0xCB2963FF]);
        assert_eq!(
            aarch64_steps(&code, 0x40),
            Err(Problem::Unreadable { addr: 0x44 })
        );
    }

    #[test]
    fn riscv_frames_are_read_from_every_prologue_form() {
        // addi sp, sp, -2032; lui a1, 7; addi a1, a1, 368; sub sp, sp, a1
        let code = words(&[0x81010113, 0x000075B7, 0x17058593, 0x40B10133]);
        assert_eq!(riscv_steps(&code, 0), Ok(vec![2032, 7 * 4096 + 368]));
        // c.addi16sp sp, -64; c.lui t0, 2; addiw t0, t0, -16; sub sp, sp, t0
        let mut code = vec![];
        code.extend(0x7139u16.to_le_bytes());
        code.extend(0x6289u16.to_le_bytes());
        code.extend(words(&[0xFF02829B, 0x40510133]));
        assert_eq!(riscv_steps(&code, 0), Ok(vec![64, 8192 - 16]));
        // addi sp, sp, 2032 (epilogue); c.addi16sp sp, 64: no decrement
        let mut code = words(&[0x7F010113]);
        code.extend(0x6121u16.to_le_bytes());
        assert_eq!(riscv_steps(&code, 0), Ok(vec![]));
    }

    #[test]
    fn riscv_sub_by_an_unknown_register_is_refused() {
        // ld a1, 0(a0); sub sp, sp, a1
        let code = words(&[0x00053583, 0x40B10133]);
        assert_eq!(
            riscv_steps(&code, 0x80),
            Err(Problem::Unreadable { addr: 0x84 })
        );
        // a constant does not survive a call: lui a1, 7; call; sub sp, sp, a1
        let code = words(&[0x000075B7, 0x000000EF, 0x40B10133]);
        assert!(riscv_steps(&code, 0).is_err());
    }

    #[test]
    fn a_frame_larger_than_half_the_gap_is_caught() {
        let gap = 0x10000;
        let rv = limit(Isa::Riscv64, gap);
        // lui t0, 8; sub sp, sp, t0: 32 KiB, at the limit
        let ok = words(&[0x000082B7, 0x40510133]);
        assert_eq!(check_function(Isa::Riscv64, &f(&ok), rv), Ok(32768));
        // addi sp, sp, -16 more: over it
        let big = words(&[0xFF010113, 0x000082B7, 0x40510133]);
        assert_eq!(
            check_function(Isa::Riscv64, &f(&big), rv),
            Err(Problem::TooLarge { bytes: 32784 })
        );
        // aarch64: stp x29, x30, [sp, #-96]!; sub sp, sp, #8, lsl #12
        let big = words(&[0xA9BA7BFD, 0xD14023FF]);
        assert_eq!(
            check_function(Isa::Aarch64, &f(&big), limit(Isa::Aarch64, gap)),
            Err(Problem::TooLarge { bytes: 32864 })
        );
    }

    #[test]
    fn legacy_names_are_made_readable() {
        assert_eq!(
            readable("_ZN10hypervisor4boot12primary_main17hc31e21f9b66a7abcE"),
            "hypervisor::boot::primary_main"
        );
        assert_eq!(readable("hv_trap_vector"), "hv_trap_vector");
        assert_eq!(readable("_ZN3foo"), "_ZN3foo", "cut short: left as it is");
    }

    #[test]
    fn x86_steps_must_be_probed_pages() {
        // push rbp; push r15; mov rbp, rsp; sub rsp, 4096; mov [rsp], 0; sub rsp, 0x2d0
        let probed = [
            0x55, 0x41, 0x57, 0x48, 0x89, 0xe5, 0x48, 0x81, 0xec, 0x00, 0x10, 0, 0, 0x48, 0xc7,
            0x04, 0x24, 0, 0, 0, 0, 0x48, 0x81, 0xec, 0xd0, 0x02, 0, 0, 0x48, 0x89, 0xfb,
        ];
        assert_eq!(x86_prologue_steps(&probed), vec![4096, 0x2d0]);
        assert_eq!(check_function(Isa::X86_64, &f(&probed), 4096), Ok(4096));
        // push rbx; sub rsp, 0x3000: one unprobed step over the gap
        let unprobed = [0x53, 0x48, 0x81, 0xec, 0x00, 0x30, 0, 0, 0xc3];
        assert_eq!(
            check_function(Isa::X86_64, &f(&unprobed), 4096),
            Err(Problem::TooLarge { bytes: 0x3000 })
        );
    }
}
