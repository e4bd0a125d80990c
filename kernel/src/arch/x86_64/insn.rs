//! Decoding the instruction behind a nested page fault on MMIO, so the VMM can
//! emulate it. QEMU's SVM has no decode assists and no NRIP save: the bytes are
//! fetched from the guest (through its page tables and the nested tables) and the
//! length comes from here. Only the `mov` forms guests use on device registers are
//! accepted (load/store of a general register, store of an immediate, `movzx`);
//! anything else is refused with a reason. Pure, tested per form.
//!
//! Written here rather than taken from `iced-x86`: the forms are few and the full
//! decoder's tables would add far more code to the hypervisor than this file.

/// What the instruction does with the device register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Load into general register `reg` (0 = RAX .. 15 = R15), whose low
    /// `dst_width` bytes it writes (wider than the access for `movzx`: the data
    /// zero-extended); see [`merge_load`].
    Load { reg: u8, dst_width: u8 },
    /// Store of general register `reg`; `high_byte`: AH/CH/DH/BH (no REX, byte
    /// form, reg 4..7).
    Store { reg: u8, high_byte: bool },
    /// Store of an immediate.
    StoreImm(u64),
}

/// One decoded access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Bytes of the instruction: how far to step RIP.
    pub len: u8,
    /// Bytes the device sees: 1, 2, 4 or 8.
    pub width: u8,
    pub op: Op,
}

/// The CPU mode the instruction runs in (decides default sizes and REX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 32-bit protected mode (CS.D = 1).
    Prot32,
    /// 64-bit mode (EFER.LMA and CS.L).
    Long64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does.
    Short,
    /// Not a form the hypervisor emulates on MMIO.
    Unsupported,
}

/// Decodes the instruction at the start of `bytes`.
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Access, DecodeError> {
    let at = |i: usize| bytes.get(i).copied().ok_or(DecodeError::Short);
    let mut n = 0usize;
    let mut opsize16 = false;
    let mut addr_override = false;
    // Legacy prefixes (at most four; more is not a form guests use).
    loop {
        match at(n)? {
            0x66 => opsize16 = true,
            0x67 => addr_override = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            _ => break,
        }
        n += 1;
        if n > 4 {
            return Err(DecodeError::Unsupported);
        }
    }
    let mut rex = 0u8;
    if mode == Mode::Long64 && at(n)? & 0xf0 == 0x40 {
        rex = at(n)?;
        n += 1;
    }
    let rex_w = rex & 8 != 0;
    let rex_r = (rex >> 2) & 1;
    // 16-bit addressing (0x67 in 32-bit mode) is not a form flat guests use.
    if mode == Mode::Prot32 && addr_override {
        return Err(DecodeError::Unsupported);
    }
    let full: usize = if rex_w {
        8
    } else if opsize16 {
        2
    } else {
        4
    };
    let opcode = at(n)?;
    n += 1;
    let (width, kind, imm_len, two_byte_dst): (usize, char, usize, usize) = match opcode {
        0x88 => (1, 's', 0, 0),
        0x89 => (full, 's', 0, 0),
        0x8a => (1, 'l', 0, 0),
        0x8b => (full, 'l', 0, 0),
        0xc6 => (1, 'i', 1, 0),
        0xc7 => (full, 'i', full.min(4), 0),
        0x0f => {
            let op2 = at(n)?;
            n += 1;
            match op2 {
                // movzx r, r/m8 | r/m16
                0xb6 => (1, 'z', 0, full),
                0xb7 => (2, 'z', 0, full),
                _ => return Err(DecodeError::Unsupported),
            }
        }
        _ => return Err(DecodeError::Unsupported),
    };
    let modrm = at(n)?;
    n += 1;
    let md = modrm >> 6;
    let reg = ((modrm >> 3) & 7) | rex_r << 3;
    let rm = modrm & 7;
    if md == 3 {
        // A register operand cannot have faulted on memory.
        return Err(DecodeError::Unsupported);
    }
    if kind == 'i' && (modrm >> 3) & 7 != 0 {
        return Err(DecodeError::Unsupported);
    }
    // SIB and displacement.
    let mut disp = match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = at(n)?;
        n += 1;
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        // disp32 (RIP-relative in 64-bit mode).
        disp = 4;
    }
    n += disp;
    let op = match kind {
        's' => Op::Store {
            reg,
            high_byte: width == 1 && rex == 0 && (4..8).contains(&reg),
        },
        'l' => {
            if width == 1 && rex == 0 && (4..8).contains(&reg) {
                // mov ah..bh, [mem]: a partial-register write guests do not use.
                return Err(DecodeError::Unsupported);
            }
            Op::Load {
                reg,
                dst_width: width as u8,
            }
        }
        'z' => Op::Load {
            reg,
            dst_width: two_byte_dst as u8,
        },
        _ => {
            let mut v = 0u64;
            for i in 0..imm_len {
                v |= (at(n + i)? as u64) << (8 * i);
            }
            n += imm_len;
            // imm32 is sign-extended to 64 bits under REX.W.
            if width == 8 {
                v = v as u32 as i32 as i64 as u64;
            }
            Op::StoreImm(v)
        }
    };
    if n > 15 {
        return Err(DecodeError::Unsupported);
    }
    at(n - 1)?;
    Ok(Access {
        len: n as u8,
        width: width as u8,
        op,
    })
}

/// The value a load of `data` (`width` bytes from the device) leaves in a register
/// that held `old`: the bytes the load does not write are kept, except that a
/// 32-bit destination (and wider) clears the upper half.
pub fn merge_load(old: u64, data: u64, dst_width: u8) -> u64 {
    match dst_width {
        1 => (old & !0xff) | (data & 0xff),
        2 => (old & !0xffff) | (data & 0xffff),
        4 => data & 0xffff_ffff,
        _ => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;

    fn ok(bytes: &[u8], mode: Mode) -> Access {
        decode(bytes, mode).unwrap()
    }

    #[test]
    fn stores_of_a_register() {
        // mov [eax], bl
        assert_eq!(
            ok(&[0x88, 0x18], Prot32),
            Access {
                len: 2,
                width: 1,
                op: Op::Store {
                    reg: 3,
                    high_byte: false
                }
            }
        );
        // mov [edx+0x10], ecx
        assert_eq!(
            ok(&[0x89, 0x4a, 0x10], Prot32),
            Access {
                len: 3,
                width: 4,
                op: Op::Store {
                    reg: 1,
                    high_byte: false
                }
            }
        );
        // mov [ebx+0xfee000b0], ax
        let a = ok(&[0x66, 0x89, 0x83, 0xb0, 0x00, 0xe0, 0xfe], Prot32);
        assert_eq!((a.len, a.width), (7, 2));
        // mov [eax], ah: the high byte of RAX.
        assert_eq!(
            ok(&[0x88, 0x20], Prot32).op,
            Op::Store {
                reg: 4,
                high_byte: true
            }
        );
        // mov [rax], spl (REX): register 4 itself.
        assert_eq!(
            ok(&[0x40, 0x88, 0x20], Long64).op,
            Op::Store {
                reg: 4,
                high_byte: false
            }
        );
        // mov [rdi], r9 (REX.WR)
        assert_eq!(
            ok(&[0x4c, 0x89, 0x0f], Long64),
            Access {
                len: 3,
                width: 8,
                op: Op::Store {
                    reg: 9,
                    high_byte: false
                }
            }
        );
    }

    #[test]
    fn loads_into_a_register() {
        // mov eax, [0xfee00030] (disp32, no base)
        assert_eq!(
            ok(&[0x8b, 0x05, 0x30, 0x00, 0xe0, 0xfe], Prot32),
            Access {
                len: 6,
                width: 4,
                op: Op::Load {
                    reg: 0,
                    dst_width: 4
                }
            }
        );
        // mov al, [edx]
        assert_eq!(
            ok(&[0x8a, 0x02], Prot32).op,
            Op::Load {
                reg: 0,
                dst_width: 1
            }
        );
        // mov ah, [edx]: refused.
        assert_eq!(decode(&[0x8a, 0x22], Prot32), Err(DecodeError::Unsupported));
        // mov esi, [esp+8] (SIB, disp8)
        assert_eq!(ok(&[0x8b, 0x74, 0x24, 0x08], Prot32).len, 4);
        // mov ecx, [eax*4+0x1000] (SIB with no base: disp32)
        assert_eq!(
            ok(&[0x8b, 0x0c, 0x85, 0x00, 0x10, 0x00, 0x00], Prot32).len,
            7
        );
        // mov rax, [rip+0x100] (64-bit, REX.W)
        assert_eq!(
            ok(&[0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00], Long64),
            Access {
                len: 7,
                width: 8,
                op: Op::Load {
                    reg: 0,
                    dst_width: 8
                }
            }
        );
        // mov ax, fs:[ebx] (segment and operand-size prefixes)
        let a = ok(&[0x64, 0x66, 0x8b, 0x03], Prot32);
        assert_eq!((a.len, a.width), (4, 2));
    }

    #[test]
    fn zero_extending_loads() {
        // movzx eax, byte [ecx]
        assert_eq!(
            ok(&[0x0f, 0xb6, 0x01], Prot32),
            Access {
                len: 3,
                width: 1,
                op: Op::Load {
                    reg: 0,
                    dst_width: 4
                }
            }
        );
        // movzx edx, word [eax+0x20]
        assert_eq!(
            ok(&[0x0f, 0xb7, 0x50, 0x20], Prot32),
            Access {
                len: 4,
                width: 2,
                op: Op::Load {
                    reg: 2,
                    dst_width: 4
                }
            }
        );
    }

    #[test]
    fn stores_of_an_immediate() {
        // mov byte [eax], 0x41
        assert_eq!(
            ok(&[0xc6, 0x00, 0x41], Prot32),
            Access {
                len: 3,
                width: 1,
                op: Op::StoreImm(0x41)
            }
        );
        // mov dword [0xfee000b0], 0
        assert_eq!(
            ok(&[0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0, 0, 0, 0], Prot32),
            Access {
                len: 10,
                width: 4,
                op: Op::StoreImm(0)
            }
        );
        // mov word [ebx], 0x1234
        assert_eq!(
            ok(&[0x66, 0xc7, 0x03, 0x34, 0x12], Prot32),
            Access {
                len: 5,
                width: 2,
                op: Op::StoreImm(0x1234)
            }
        );
        // mov qword [rax], -1 (imm32 sign-extended)
        assert_eq!(
            ok(&[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], Long64),
            Access {
                len: 7,
                width: 8,
                op: Op::StoreImm(u64::MAX)
            }
        );
    }

    #[test]
    fn other_instructions_and_cut_bytes_are_refused() {
        assert_eq!(decode(&[0x90], Prot32), Err(DecodeError::Unsupported));
        // add [eax], ebx
        assert_eq!(decode(&[0x01, 0x18], Prot32), Err(DecodeError::Unsupported));
        // mov eax, ebx (register form)
        assert_eq!(decode(&[0x8b, 0xc3], Prot32), Err(DecodeError::Unsupported));
        // c7 /1 is not a mov
        assert_eq!(
            decode(&[0xc7, 0x08, 0, 0, 0, 0], Prot32),
            Err(DecodeError::Unsupported)
        );
        // 16-bit addressing in a 32-bit guest
        assert_eq!(
            decode(&[0x67, 0x8b, 0x07], Prot32),
            Err(DecodeError::Unsupported)
        );
        // 0x48 is `dec eax` in 32-bit mode, not REX.
        assert_eq!(
            decode(&[0x48, 0x8b, 0x00], Prot32),
            Err(DecodeError::Unsupported)
        );
        assert_eq!(decode(&[], Prot32), Err(DecodeError::Short));
        assert_eq!(decode(&[0x8b, 0x05, 0x30], Prot32), Err(DecodeError::Short));
        assert_eq!(decode(&[0xc7, 0x00, 0x01], Prot32), Err(DecodeError::Short));
        assert_eq!(decode(&[0x66; 8], Prot32), Err(DecodeError::Unsupported));
    }

    #[test]
    fn loads_merge_into_the_register() {
        let old = 0x1122_3344_5566_7788;
        assert_eq!(merge_load(old, 0xab, 1), 0x1122_3344_5566_77ab);
        assert_eq!(merge_load(old, 0xabcd, 2), 0x1122_3344_5566_abcd);
        assert_eq!(merge_load(old, 0xdead_beef, 4), 0xdead_beef);
        assert_eq!(merge_load(old, u64::MAX, 8), u64::MAX);
    }
}
