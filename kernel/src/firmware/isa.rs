//! RISC-V ISA extensions as the firmware states them per hart: a `riscv,isa` string
//! (`rv64imafdch_zicsr_sstc`, also what ACPI's RHCT carries) or a list of
//! extension names (`riscv,isa-extensions`). Pure parsing, allocation-free.

/// ISA extensions, as a bit set: single-letter extensions at bits 0..26 ('a'..'z'),
/// the multi-letter ones of [`Isa::NAMED`] from bit 32 on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isa(pub u64);

impl Isa {
    /// Multi-letter extensions this code knows by name (bit 32 + index).
    pub const NAMED: &'static [&'static str] = &[
        "zicsr",
        "zifencei",
        "zihintpause",
        "zba",
        "zbb",
        "zbc",
        "zbs",
        "sstc",
        "svpbmt",
        "svinval",
        "svnapot",
        "zicbom",
        "zicboz",
        "zicntr",
        "zihpm",
    ];

    /// The bit of a single-letter extension.
    pub const fn letter(c: u8) -> Isa {
        Isa(1 << (c - b'a'))
    }

    /// The bit of a named extension, if it is known.
    pub fn named(name: &str) -> Option<Isa> {
        Self::NAMED
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| Isa(1 << (32 + i)))
    }

    pub fn has(self, other: Isa) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub fn has_letter(self, c: u8) -> bool {
        c.is_ascii_lowercase() && self.has(Self::letter(c))
    }

    pub fn has_named(self, name: &str) -> bool {
        Self::named(name).is_some_and(|b| self.has(b))
    }

    /// The hypervisor extension.
    pub fn h(self) -> bool {
        self.has_letter(b'h')
    }

    /// Supervisor-mode timer compare (stimecmp / vstimecmp).
    pub fn sstc(self) -> bool {
        self.has_named("sstc")
    }

    fn add_name(&mut self, name: &str) {
        let name = name.trim();
        match name.as_bytes() {
            [c] if c.is_ascii_alphabetic() => self.add_letter(c.to_ascii_lowercase()),
            _ => {
                if let Some(b) = Self::named(name) {
                    self.0 |= b.0;
                }
            }
        }
    }

    fn add_letter(&mut self, c: u8) {
        if c == b'g' {
            for l in *b"imafd" {
                self.0 |= Self::letter(l).0;
            }
            self.add_name("zicsr");
            self.add_name("zifencei");
        } else if c.is_ascii_lowercase() {
            self.0 |= Self::letter(c).0;
        }
    }

    /// Parses a `riscv,isa` string such as `rv64imafdch_zicsr_zifencei_sstc`.
    /// `None` unless it names a 64-bit base ISA.
    pub fn parse(s: &str) -> Option<Isa> {
        let rest = strip_rv64(s)?;
        let mut isa = Isa::default();
        let mut parts = rest.split('_');
        let first = parts.next().unwrap_or("");
        // Single letters up to the first multi-letter extension (z*, s*, x*).
        let split = first
            .bytes()
            .position(|c| matches!(c.to_ascii_lowercase(), b'z' | b's' | b'x'))
            .unwrap_or(first.len());
        for c in first[..split].bytes() {
            isa.add_letter(c.to_ascii_lowercase());
        }
        if split < first.len() {
            isa.add_name(&first[split..]);
        }
        for p in parts {
            isa.add_name(p);
        }
        Some(isa)
    }

    /// From a base ISA (`riscv,isa-base`, say `rv64i`) and extension names
    /// (`riscv,isa-extensions`). `None` unless the base is 64-bit.
    pub fn from_extensions<'a>(
        base: Option<&str>,
        names: impl Iterator<Item = &'a str>,
    ) -> Option<Isa> {
        if base.is_some_and(|b| strip_rv64(b).is_none()) {
            return None;
        }
        let mut isa = Isa::default();
        for name in names {
            isa.add_name(name);
        }
        Some(isa)
    }
}

/// What follows the `rv64` of a base ISA name, in any case. (No
/// `to_ascii_lowercase`: that allocates, and readers run before the heap.)
fn strip_rv64(s: &str) -> Option<&str> {
    let s = s.trim();
    s.get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("rv64"))
        .then(|| &s[4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_strings() {
        let isa = Isa::parse("rv64gch_sstc").unwrap();
        assert!(isa.h() && isa.sstc() && isa.has_named("zicsr") && isa.has_letter(b'd'));
        let isa = Isa::parse("rv64imafdczicsr_zifencei").unwrap();
        assert!(!isa.h() && isa.has_named("zicsr") && isa.has_named("zifencei"));
        assert_eq!(Isa::parse("rv32imac"), None);
        assert_eq!(Isa::parse(""), None);
        assert!(!Isa::parse("rv64i_xtheadvendor").unwrap().h());
        let list = "i m a h sstc zicsr";
        let names = |l: &'static str| l.split(' ');
        let isa = Isa::from_extensions(Some("rv64i"), names(list)).unwrap();
        assert!(isa.h() && isa.sstc() && isa.has_letter(b'm'));
        assert_eq!(Isa::from_extensions(Some("rv32i"), names(list)), None);
        assert!(Isa::from_extensions(Some("RV64I"), names(list)).is_some());
    }
}
