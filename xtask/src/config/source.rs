//! A TOML config file as read from disk: its text, its parsed document (with spans),
//! and the helpers that turn a byte offset or a key path into `file:line:col` for
//! diagnostics.
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml_edit::{Document, Item, Table, Value};

use super::diag::{Diagnostic, KeyPath, Seg, Severity};

/// Texts that stand in for files on disk (unsaved edits, e.g. in menuconfig), by the
/// absolute path they will be saved to.
pub type Overrides = HashMap<PathBuf, String>;

/// One config file, parsed.
pub struct Source {
    /// Absolute path.
    pub path: PathBuf,
    /// Path as shown in messages.
    pub shown: String,
    pub text: String,
    doc: Document<String>,
}

/// Shows `path` relative to `root` when it is inside it.
pub fn shown_path(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

impl Source {
    /// Reads and parses a file; a missing file or a TOML syntax error is a diagnostic.
    pub fn load(path: &Path, root: &Path) -> Result<Source, Diagnostic> {
        let shown = shown_path(path, root);
        let text = std::fs::read_to_string(path).map_err(|e| Diagnostic {
            severity: Severity::Error,
            file: shown.clone(),
            line_col: None,
            key: KeyPath::default(),
            message: format!("cannot read file: {e}"),
        })?;
        Self::parse(path, shown, text)
    }

    /// Like [`Source::load`], but takes the text from `overrides` when it has `path`.
    pub fn load_with(
        path: &Path,
        root: &Path,
        overrides: &Overrides,
    ) -> Result<Source, Diagnostic> {
        match overrides.get(path) {
            Some(text) => Self::parse(path, shown_path(path, root), text.clone()),
            None => Self::load(path, root),
        }
    }

    /// Parses text that claims to come from `path`.
    pub fn parse(path: &Path, shown: String, text: String) -> Result<Source, Diagnostic> {
        // The hypervisor refuses such text before parsing (fixed stack): so do we.
        if let Some(p) = vmconfig::parse::nesting_problem(&text) {
            return Err(Diagnostic {
                severity: Severity::Error,
                line_col: p.offset.map(|o| line_col(&text, o)),
                file: shown,
                key: KeyPath::default(),
                message: p.message,
            });
        }
        match Document::parse(text.clone()) {
            Ok(doc) => Ok(Source {
                path: path.to_path_buf(),
                shown,
                text,
                doc,
            }),
            Err(e) => Err(Diagnostic {
                severity: Severity::Error,
                line_col: e.span().map(|s| line_col(&text, s.start)),
                file: shown,
                key: KeyPath::default(),
                message: format!("TOML syntax error: {}", e.message().trim()),
            }),
        }
    }

    /// Deserializes the whole file into `T`; a type error names the key it is at.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        toml_edit::de::from_str::<T>(&self.text).map_err(|e| {
            let span = e.span();
            let key = span
                .as_ref()
                .and_then(|s| path_in_item(self.doc.as_item(), s.start))
                .map(KeyPath::from_segs)
                .unwrap_or_default();
            Diagnostic {
                severity: Severity::Error,
                file: self.shown.clone(),
                line_col: span.map(|s| line_col(&self.text, s.start)),
                key,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// An error about `key` in this file, located when the key exists.
    pub fn error(&self, key: &KeyPath, message: impl Into<String>) -> Diagnostic {
        self.diag(Severity::Error, key, message)
    }

    /// A warning about `key` in this file.
    pub fn warning(&self, key: &KeyPath, message: impl Into<String>) -> Diagnostic {
        self.diag(Severity::Warning, key, message)
    }

    fn diag(&self, severity: Severity, key: &KeyPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.shown.clone(),
            line_col: self.locate(key),
            key: key.clone(),
            message: message.into(),
        }
    }

    /// Line and column of `key` (of the deepest part of it that exists).
    pub fn locate(&self, key: &KeyPath) -> Option<(usize, usize)> {
        locate_in(self.doc.as_item(), key.segs()).map(|span| line_col(&self.text, span.start))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub use vmconfig::parse::line_col;

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    match span {
        Some(s) if s.is_empty() => s.start == offset,
        Some(s) => s.contains(&offset),
        None => false,
    }
}

/// The key path of the deepest value whose span contains `offset`.
fn path_in_item(item: &Item, offset: usize) -> Option<Vec<Seg>> {
    match item {
        Item::Table(t) => path_in_table(t, offset),
        Item::Value(v) => path_in_value(v, offset),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                if let Some(mut sub) = path_in_table(t, offset) {
                    sub.insert(0, Seg::Index(i));
                    return Some(sub);
                }
            }
            contains(a.span(), offset).then(Vec::new)
        }
        Item::None => None,
    }
}

fn path_in_table(t: &Table, offset: usize) -> Option<Vec<Seg>> {
    for (k, v) in t.iter() {
        let key_span = t.key(k).and_then(|key| key.span());
        if contains(key_span, offset) {
            return Some(vec![Seg::Key(k.to_string())]);
        }
        if let Some(mut sub) = path_in_item(v, offset) {
            sub.insert(0, Seg::Key(k.to_string()));
            return Some(sub);
        }
    }
    contains(t.span(), offset).then(Vec::new)
}

fn path_in_value(v: &Value, offset: usize) -> Option<Vec<Seg>> {
    match v {
        Value::Array(a) => {
            for (i, elem) in a.iter().enumerate() {
                if let Some(mut sub) = path_in_value(elem, offset) {
                    sub.insert(0, Seg::Index(i));
                    return Some(sub);
                }
            }
            contains(a.span(), offset).then(Vec::new)
        }
        Value::InlineTable(t) => {
            for (k, elem) in t.iter() {
                let key_span = t.key(k).and_then(|key| key.span());
                if contains(key_span, offset) {
                    return Some(vec![Seg::Key(k.to_string())]);
                }
                if let Some(mut sub) = path_in_value(elem, offset) {
                    sub.insert(0, Seg::Key(k.to_string()));
                    return Some(sub);
                }
            }
            contains(t.span(), offset).then(Vec::new)
        }
        other => contains(other.span(), offset).then(Vec::new),
    }
}

/// The span of the value at `segs` (or of the deepest existing part of the path).
fn locate_in(item: &Item, segs: &[Seg]) -> Option<Range<usize>> {
    let Some((first, rest)) = segs.split_first() else {
        return item.span();
    };
    let found = match (item, first) {
        (Item::Table(t), Seg::Key(k)) => t
            .get_key_value(k)
            .map(|(key, child)| (key.span(), Some(child))),
        (Item::Value(Value::InlineTable(t)), Seg::Key(k)) => t
            .get_key_value(k)
            .map(|(key, child)| (key.span(), Some(child))),
        (Item::Value(Value::Array(a)), Seg::Index(i)) => {
            return match a.get(*i) {
                Some(v) => {
                    let child = Item::Value(v.clone());
                    locate_in(&child, rest).or_else(|| v.span())
                }
                None => a.span(),
            }
        }
        (Item::ArrayOfTables(a), Seg::Index(i)) => {
            return match a.get(*i) {
                Some(t) => locate_in(&Item::Table(t.clone()), rest).or_else(|| t.span()),
                None => a.span(),
            }
        }
        _ => None,
    };
    match found {
        Some((key_span, Some(child))) if rest.is_empty() => key_span.or_else(|| child.span()),
        Some((key_span, Some(child))) => locate_in(child, rest).or(key_span),
        _ => item.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use vmconfig::schema::Raw;

    fn src(text: &str) -> Source {
        Source::parse(Path::new("/x/f.toml"), "f.toml".into(), text.into()).unwrap()
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = Source::parse(Path::new("/x"), "x.toml".into(), "a = 1\nb = [1,\n".into())
            .err()
            .unwrap();
        assert_eq!(e.file, "x.toml");
        let (line, _) = e.line_col.unwrap();
        assert!(line >= 2, "{e}");
        assert!(e.message.starts_with("TOML syntax error"), "{e}");
    }

    #[test]
    fn nesting_deeper_than_the_hypervisor_takes_is_refused() {
        let text = format!("a = 1\nb = {}{}\n", "[".repeat(80), "]".repeat(80));
        let e = Source::parse(Path::new("/x"), "x.toml".into(), text)
            .err()
            .unwrap();
        assert_eq!(e.line_col, Some((2, 21)), "{e}");
        assert!(e.message.contains("nested more than 16 deep"), "{e}");
    }

    #[test]
    fn locate_finds_keys_and_array_elements() {
        let s = src("[kernel]\nentry = 1\nregions = [\n  [1, 2],\n  [3, 4],\n]\n");
        let k = KeyPath::new("kernel").key("entry");
        assert_eq!(s.locate(&k), Some((2, 1)));
        let r = KeyPath::new("kernel").key("regions").index(1);
        assert_eq!(s.locate(&r), Some((5, 3)));
        // A missing key falls back to its parent.
        let missing = KeyPath::new("kernel").key("nope");
        assert!(s.locate(&missing).is_some());
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct K {
        entry: u64,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct F {
        kernel: K,
    }

    #[test]
    fn typed_error_names_key_and_position() {
        let s = src("[kernel]\nentry = \"x\"\n");
        let e = s.typed::<F>().unwrap_err();
        assert_eq!(e.key.to_string(), "kernel.entry");
        assert_eq!(e.line_col.map(|l| l.0), Some(2));

        let s = src("[kernel]\nentry = 1\nbogus = 2\n");
        let e = s.typed::<F>().unwrap_err();
        assert_eq!(e.key.to_string(), "kernel.bogus");
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn raw_values_keep_their_types() {
        #[derive(Deserialize)]
        struct L {
            l: Vec<Raw>,
        }
        let l: L = toml_edit::de::from_str("l = [\"a\", 0x10, [1], true]").unwrap();
        assert_eq!(l.l[0], Raw::Str("a".into()));
        assert_eq!(l.l[1], Raw::Int(16));
        assert_eq!(l.l[2], Raw::List(vec![Raw::Int(1)]));
        assert_eq!(l.l[3].kind(), "a boolean");
    }
}
