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

/// Parses and checks a VM config.
pub fn parse_vm(text: &str, arch: ArchLimits) -> Parsed {
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
