//! Reading a VM config from TOML text with the `toml` crate (no_std): the three
//! section passes of [`crate::schema`], then [`crate::check::check_vm`]. Parser and
//! type errors are located: the key path of the value the error is about, and its
//! byte offset (for a line number).
use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use crate::check::check_vm;
use crate::key::{KeyPath, Problem, Problems, Seg, Severity};
use crate::model::{ArchLimits, VmConfig};
use crate::schema::{BasePass, DevicesPass, KernelPass};

/// The outcome of reading one config.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The VM, when the config has no errors.
    pub vm: Option<VmConfig>,
    /// Everything found (errors and warnings).
    pub problems: Problems,
    /// `base.id` and `base.name` when they could be read, even from a bad config.
    pub id: Option<u64>,
    pub name: Option<String>,
}

/// Most arrays and inline tables a config may nest (real configs nest 2 or 3). The
/// parser and the checks recurse once per level, and the hypervisor parses card
/// configs on a fixed stack: deeper text is refused before any parsing.
pub const MAX_NESTING: usize = 16;

/// Parses and checks a VM config.
pub fn parse_vm(text: &str, arch: ArchLimits) -> Parsed {
    if let Some(p) = nesting_problem(text) {
        let mut problems = Problems::default();
        problems.items.push(p);
        return Parsed {
            problems,
            ..Parsed::default()
        };
    }
    let (id, name) = identify(text);
    let mut problems = Problems::default();
    let base = typed::<BasePass>(text, &mut problems).map(|p| p.base);
    let kernel = typed::<KernelPass>(text, &mut problems).map(|p| p.kernel);
    let devices = typed::<DevicesPass>(text, &mut problems).map(|p| p.devices);
    let vm = match (base, kernel, devices) {
        (Some(b), Some(k), Some(d)) => {
            check_vm(&b, &k, &d.unwrap_or_default(), arch, &mut problems)
        }
        _ => None,
    };
    let vm = vm.filter(|_| !problems.has_errors());
    Parsed {
        vm,
        problems,
        id,
        name,
    }
}

/// The error for text nested deeper than [`MAX_NESTING`] (xtask refuses every config
/// file with it, before its own parser runs).
pub fn nesting_problem(text: &str) -> Option<Problem> {
    too_deep(text).map(|offset| Problem {
        severity: Severity::Error,
        key: KeyPath::default(),
        message: alloc::format!("arrays or inline tables nested more than {MAX_NESTING} deep"),
        offset: Some(offset),
    })
}

/// The byte offset where `[` / `{` nesting first goes past [`MAX_NESTING`], if it
/// does. A small lexer: brackets inside strings and comments do not count.
pub fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => i = skip_until(b, i, b"\n", false),
            b'"' if b[i..].starts_with(b"\"\"\"") => i = skip_until(b, i + 3, b"\"\"\"", true),
            b'\'' if b[i..].starts_with(b"'''") => i = skip_until(b, i + 3, b"'''", false),
            b'"' => i = skip_string(b, i + 1, b'"', true),
            b'\'' => i = skip_string(b, i + 1, b'\'', false),
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The index after the first `end` at or after `i` (`escapes`: a backslash hides the
/// next byte); the text's end if there is none.
fn skip_until(b: &[u8], mut i: usize, end: &[u8], escapes: bool) -> usize {
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i..].starts_with(end) {
            return i + end.len();
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The index after a one-line string's closing `quote` (or its line's end).
fn skip_string(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    while i < b.len() && b[i] != b'\n' {
        if escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    i
}

/// One deserialization pass; an error becomes a located problem.
fn typed<T: DeserializeOwned>(text: &str, out: &mut Problems) -> Option<T> {
    match toml::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let offset = e.span().map(|s| s.start);
            let key = offset
                .and_then(|o| key_at(text, o))
                .map(KeyPath::from_segs)
                .unwrap_or_default();
            let syntax = DeTable::parse(text).is_err();
            let message = e.message().trim();
            let p = Problem {
                severity: Severity::Error,
                key,
                message: if syntax {
                    alloc::format!("TOML syntax error: {message}")
                } else {
                    message.to_owned()
                },
                offset,
            };
            // A syntax error fails every pass the same way: report it once.
            if !out.items.contains(&p) {
                out.items.push(p);
            }
            None
        }
    }
}

/// `base.id` and `base.name`, from whatever parses.
pub fn identify(text: &str) -> (Option<u64>, Option<String>) {
    let Ok(doc) = DeTable::parse(text) else {
        return (None, None);
    };
    let Some(DeValue::Table(base)) = doc.get_ref().get("base").map(|v| v.get_ref()) else {
        return (None, None);
    };
    let id = match base.get("id").map(|v| v.get_ref()) {
        Some(DeValue::Integer(i)) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    };
    let name = match base.get("name").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => Some(s.to_string()),
        _ => None,
    };
    (id, name)
}

/// The key path of the deepest key or value at byte `offset`.
pub fn key_at(text: &str, offset: usize) -> Option<Vec<Seg>> {
    let doc = DeTable::parse(text).ok()?;
    in_table(doc.get_ref(), offset)
}

fn contains(span: core::ops::Range<usize>, offset: usize) -> bool {
    if span.is_empty() {
        span.start == offset
    } else {
        span.contains(&offset)
    }
}

fn in_table(t: &DeTable<'_>, offset: usize) -> Option<Vec<Seg>> {
    for (k, v) in t.iter() {
        let seg = Seg::Key(k.get_ref().to_string());
        if contains(k.span(), offset) {
            return Some(alloc::vec![seg]);
        }
        if let Some(mut sub) = in_value(v.get_ref(), offset) {
            sub.insert(0, seg);
            return Some(sub);
        }
        if contains(v.span(), offset) {
            return Some(alloc::vec![seg]);
        }
    }
    None
}

fn in_value(v: &DeValue<'_>, offset: usize) -> Option<Vec<Seg>> {
    match v {
        DeValue::Table(t) => in_table(t, offset),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
            let mut sub = in_value(item.get_ref(), offset)
                .or_else(|| contains(item.span(), offset).then(Vec::new))?;
            sub.insert(0, Seg::Index(i));
            Some(sub)
        }),
        _ => None,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = match before.rfind('\n') {
        Some(nl) => before[nl + 1..].chars().count() + 1,
        None => before.chars().count() + 1,
    };
    (line, col)
}
