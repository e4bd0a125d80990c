//! Structural check of a flattened device tree blob before the `fdt` crate reads it.
//!
//! The `fdt` crate trusts the blob and panics (slice indexing, `unwrap`, `assert`) on a
//! malformed one. This module walks the header, the memory reservation block and every
//! token of the structure block once, without allocating, and accepts only blobs the
//! crate can read without panicking: every length and offset in bounds, names and
//! property names NUL-terminated UTF-8, nodes balanced, properties before child nodes,
//! and `FDT_NOP` only right before an `FDT_END_NODE` (the crate mis-steps elsewhere).

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const TOKEN_BEGIN_NODE: u32 = 1;
const TOKEN_END_NODE: u32 = 2;
const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;
const TOKEN_END: u32 = 9;
/// Deepest node nesting accepted (the `fdt` crate's node iterator holds 63 levels).
pub const MAX_DEPTH: usize = 32;

/// Why a blob was refused; only for tests and diagnostics, callers see `BadDtb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    Header,
    ReserveMap,
    Structure(usize),
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some((u64::from(be32(b, at)?) << 32) | u64::from(be32(b, at + 4)?))
}

/// The validated block boundaries.
struct Layout {
    structure: core::ops::Range<usize>,
    strings: core::ops::Range<usize>,
}

fn block(total: usize, off: u32, size: u32) -> Option<core::ops::Range<usize>> {
    let start = off as usize;
    let end = start.checked_add(size as usize)?;
    (end <= total).then_some(start..end)
}

fn header(dtb: &[u8]) -> Result<Layout, CheckError> {
    let field = |i: usize| be32(dtb, i * 4).ok_or(CheckError::Header);
    if dtb.len() < HEADER_LEN || field(0)? != MAGIC {
        return Err(CheckError::Header);
    }
    let total = field(1)? as usize;
    // Version 17 is the first with `size_dt_struct`, which the `fdt` crate relies on.
    if total > dtb.len() || total < HEADER_LEN || field(5)? < 17 || field(6)? > 17 {
        return Err(CheckError::Header);
    }
    let structure = block(total, field(2)?, field(9)?).ok_or(CheckError::Header)?;
    let strings = block(total, field(3)?, field(8)?).ok_or(CheckError::Header)?;
    if !structure.start.is_multiple_of(4) {
        return Err(CheckError::Header);
    }
    check_reserve_map(&dtb[..total], field(4)? as usize)?;
    Ok(Layout { structure, strings })
}

fn check_reserve_map(dtb: &[u8], mut at: usize) -> Result<(), CheckError> {
    if !at.is_multiple_of(8) {
        return Err(CheckError::ReserveMap);
    }
    loop {
        let addr = be64(dtb, at).ok_or(CheckError::ReserveMap)?;
        let size = be64(dtb, at + 8).ok_or(CheckError::ReserveMap)?;
        if addr == 0 && size == 0 {
            return Ok(());
        }
        at += 16;
    }
}

/// A NUL-terminated UTF-8 string starting at `at`; returns its length without the NUL.
fn cstr_len(b: &[u8], at: usize) -> Option<usize> {
    let rest = b.get(at..)?;
    let len = rest.iter().position(|&c| c == 0)?;
    core::str::from_utf8(&rest[..len]).ok()?;
    Some(len)
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Token walker state.
struct Walk<'a> {
    s: &'a [u8],
    strings: &'a [u8],
    pos: usize,
    depth: usize,
    /// At the current depth, a child node has been seen (no more properties allowed).
    seen_child: [bool; MAX_DEPTH + 1],
}

impl Walk<'_> {
    fn fail<T>(&self) -> Result<T, CheckError> {
        Err(CheckError::Structure(self.pos))
    }

    fn token(&self, at: usize) -> Option<u32> {
        be32(self.s, at)
    }

    fn begin_node(&mut self) -> Result<(), CheckError> {
        let Some(len) = cstr_len(self.s, self.pos + 4) else {
            return self.fail();
        };
        if self.depth == MAX_DEPTH || (self.depth == 0 && self.seen_child[0]) {
            return self.fail();
        }
        self.seen_child[self.depth] = true;
        self.depth += 1;
        self.seen_child[self.depth] = false;
        self.pos += 4 + align4(len + 1);
        Ok(())
    }

    fn prop(&mut self) -> Result<(), CheckError> {
        let (Some(len), Some(name)) = (self.token(self.pos + 4), self.token(self.pos + 8)) else {
            return self.fail();
        };
        let value_end = (self.pos + 12).checked_add(len as usize);
        if self.depth == 0
            || self.seen_child[self.depth]
            || value_end.is_none_or(|e| e > self.s.len())
            || cstr_len(self.strings, name as usize).is_none()
        {
            return self.fail();
        }
        self.pos += 12 + align4(len as usize);
        Ok(())
    }

    /// A run of NOPs must be followed by END_NODE or END.
    fn nops(&mut self) -> Result<(), CheckError> {
        while self.token(self.pos) == Some(TOKEN_NOP) {
            self.pos += 4;
        }
        match self.token(self.pos) {
            Some(TOKEN_END_NODE) | Some(TOKEN_END) => Ok(()),
            _ => self.fail(),
        }
    }

    fn run(&mut self) -> Result<(), CheckError> {
        loop {
            let Some(token) = self.token(self.pos) else {
                return self.fail();
            };
            match token {
                TOKEN_BEGIN_NODE => self.begin_node()?,
                TOKEN_PROP => self.prop()?,
                TOKEN_NOP => self.nops()?,
                TOKEN_END_NODE if self.depth > 0 => {
                    self.depth -= 1;
                    self.pos += 4;
                }
                TOKEN_END if self.depth == 0 && self.seen_child[0] => return Ok(()),
                _ => return self.fail(),
            }
        }
    }
}

/// Checks that `dtb` is a well-formed v17 blob the `fdt` crate can read safely.
pub fn check(dtb: &[u8]) -> Result<(), CheckError> {
    let layout = header(dtb)?;
    let mut walk = Walk {
        s: &dtb[layout.structure],
        strings: &dtb[layout.strings],
        pos: 0,
        depth: 0,
        seen_child: [false; MAX_DEPTH + 1],
    };
    // The root node must come first (NOPs aside).
    while walk.token(walk.pos) == Some(TOKEN_NOP) {
        walk.pos += 4;
    }
    if walk.token(walk.pos) != Some(TOKEN_BEGIN_NODE) {
        return walk.fail();
    }
    walk.run()
}
