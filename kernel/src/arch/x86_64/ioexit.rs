//! SVM exit codes and the decoding of an I/O intercept (AMD APM vol. 2, 15.10.2).
//! QEMU's SVM has no NRIP save, so the instruction's length comes from its bytes
//! ([`io_insn_len`], the `in`/`out` forms guests use). Pure, tested per form.

/// VMCB EXITCODE values the hypervisor handles.
pub mod code {
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    pub const VINTR: u64 = 0x64;
    pub const CPUID: u64 = 0x72;
    pub const INVD: u64 = 0x76;
    pub const HLT: u64 = 0x78;
    pub const INVLPGA: u64 = 0x7a;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const VMLOAD: u64 = 0x82;
    pub const VMSAVE: u64 = 0x83;
    pub const STGI: u64 = 0x84;
    pub const CLGI: u64 = 0x85;
    pub const SKINIT: u64 = 0x86;
    pub const RDTSCP: u64 = 0x87;
    pub const WBINVD: u64 = 0x89;
    pub const MONITOR: u64 = 0x8a;
    pub const MWAIT: u64 = 0x8b;
    pub const MWAIT_ARMED: u64 = 0x8c;
    pub const XSETBV: u64 = 0x8d;
    pub const NPF: u64 = 0x400;
    pub const INVALID: u64 = u64::MAX;
}

/// An I/O intercept, from EXITINFO1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Io {
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub width: u8,
    /// `in` (else `out`).
    pub input: bool,
    /// `ins` / `outs` (string forms, with or without `rep`).
    pub string: bool,
}

const TYPE_IN: u64 = 1 << 0;
const STR: u64 = 1 << 2;
const SZ8: u64 = 1 << 4;
const SZ16: u64 = 1 << 5;
const SZ32: u64 = 1 << 6;

/// EXITINFO1 of an IOIO exit; None when it names no operand size.
pub fn decode_io(info1: u64) -> Option<Io> {
    let width = if info1 & SZ8 != 0 {
        1
    } else if info1 & SZ16 != 0 {
        2
    } else if info1 & SZ32 != 0 {
        4
    } else {
        return None;
    };
    Some(Io {
        port: (info1 >> 16) as u16,
        width,
        input: info1 & TYPE_IN != 0,
        string: info1 & STR != 0,
    })
}

/// Length of the `in`/`out` instruction starting at `bytes` (prefixes: operand size,
/// segment, `rep`, address size); None when it is not one.
pub fn io_insn_len(bytes: &[u8]) -> Option<u8> {
    let mut n = 0usize;
    while let Some(&b) = bytes.get(n) {
        match b {
            0x66 | 0x67 | 0xf2 | 0xf3 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 if n < 4 => n += 1,
            _ => break,
        }
    }
    let len = match *bytes.get(n)? {
        // in al/ax/eax, imm8; out imm8, al/ax/eax
        0xe4..=0xe7 => n + 2,
        // in al/ax/eax, dx; out dx, al/ax/eax; ins; outs
        0xec..=0xef | 0x6c..=0x6f => n + 1,
        _ => return None,
    };
    (len <= bytes.len()).then_some(len as u8)
}

/// What a nested page fault's EXITINFO1 says the guest did: a write, an
/// instruction fetch, or (neither bit) a read; whether the GPA had a present entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Npf {
    pub write: bool,
    pub fetch: bool,
    pub present: bool,
}

const NPF_PRESENT: u64 = 1 << 0;
const NPF_WRITE: u64 = 1 << 1;
const NPF_FETCH: u64 = 1 << 4;

pub fn decode_npf(info1: u64) -> Npf {
    Npf {
        write: info1 & NPF_WRITE != 0,
        fetch: info1 & NPF_FETCH != 0,
        present: info1 & NPF_PRESENT != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exitinfo1_names_port_width_and_direction() {
        // out dx, al to 0x3f8: port in 31:16, SZ8.
        assert_eq!(
            decode_io(0x03f8_0010),
            Some(Io {
                port: 0x3f8,
                width: 1,
                input: false,
                string: false
            })
        );
        // in eax, dx from 0xcfc.
        assert_eq!(
            decode_io(0x0cfc_0041),
            Some(Io {
                port: 0xcfc,
                width: 4,
                input: true,
                string: false
            })
        );
        // rep insw from 0x1f0.
        let ins = decode_io(0x01f0_0000 | SZ16 | STR | TYPE_IN | 1 << 3).unwrap();
        assert_eq!((ins.width, ins.input, ins.string), (2, true, true));
        assert_eq!(decode_io(0x0080_0000), None);
    }

    #[test]
    fn nested_page_faults_name_the_access() {
        // What QEMU 7.2 reports for `mov eax, [unmapped]` in a 32-bit guest: the
        // final GPA translation (bit 32), user (bit 2), read of a missing entry.
        assert_eq!(
            decode_npf(0x1_0000_0004),
            Npf {
                write: false,
                fetch: false,
                present: false
            }
        );
        assert!(decode_npf(0x1_0000_0006).write);
        assert!(decode_npf(0x1_0000_0014).fetch);
        assert!(decode_npf(0x1_0000_0007).present);
    }

    #[test]
    fn each_in_out_form_has_its_length() {
        assert_eq!(io_insn_len(&[0xee]), Some(1)); // out dx, al
        assert_eq!(io_insn_len(&[0xef]), Some(1)); // out dx, eax
        assert_eq!(io_insn_len(&[0x66, 0xef]), Some(2)); // out dx, ax
        assert_eq!(io_insn_len(&[0xec]), Some(1)); // in al, dx
        assert_eq!(io_insn_len(&[0xed]), Some(1)); // in eax, dx
        assert_eq!(io_insn_len(&[0xe6, 0x80]), Some(2)); // out 0x80, al
        assert_eq!(io_insn_len(&[0xe4, 0x60]), Some(2)); // in al, 0x60
        assert_eq!(io_insn_len(&[0x66, 0xe5, 0x60]), Some(3)); // in ax, 0x60
        assert_eq!(io_insn_len(&[0xf3, 0x6e]), Some(2)); // rep outsb
        assert_eq!(io_insn_len(&[0xf3, 0x66, 0x6d]), Some(3)); // rep insw
    }

    #[test]
    fn other_bytes_or_cut_short_are_not_io() {
        assert_eq!(io_insn_len(&[0x90]), None);
        assert_eq!(io_insn_len(&[0xe6]), None); // imm8 missing
        assert_eq!(io_insn_len(&[0x66]), None);
        assert_eq!(io_insn_len(&[]), None);
        assert_eq!(io_insn_len(&[0x66, 0x66, 0x66, 0x66, 0x66, 0xee]), None);
    }
}
