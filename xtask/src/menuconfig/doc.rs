//! One TOML file being edited, through toml_edit: comments, key order, number
//! spellings and unknown keys are kept, and only the values that were changed are
//! written differently. A value edited back to what is on disk gets its original
//! spelling back, so an undone change leaves the file byte for byte as it was.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// Where a value lives: a top-level key, or a key of a `[section]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub section: Option<&'static str>,
    pub key: &'static str,
}

impl Loc {
    pub const fn top(key: &'static str) -> Loc {
        Loc { section: None, key }
    }

    pub const fn at(section: &'static str, key: &'static str) -> Loc {
        Loc {
            section: Some(section),
            key,
        }
    }

    /// `section.key` or `key`, as in diagnostics.
    pub fn dotted(&self) -> String {
        match self.section {
            Some(s) => format!("{s}.{}", self.key),
            None => self.key.to_string(),
        }
    }
}

/// A file being edited.
#[derive(Clone, Debug)]
pub struct EditDoc {
    pub path: PathBuf,
    /// The path as shown (and as diagnostics name it).
    pub shown: String,
    saved_text: String,
    saved: DocumentMut,
    doc: DocumentMut,
}

impl EditDoc {
    /// Reads and parses a file.
    pub fn open(path: &Path, shown: String) -> Result<EditDoc> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
        EditDoc::from_text(path, shown, text)
    }

    /// A document whose on-disk text is `text`.
    pub fn from_text(path: &Path, shown: String, text: String) -> Result<EditDoc> {
        let doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| anyhow::anyhow!("{shown}: {e}"))?;
        Ok(EditDoc {
            path: path.to_path_buf(),
            shown,
            saved_text: text,
            saved: doc.clone(),
            doc,
        })
    }

    /// A file that does not exist yet, to be written with `text` on save.
    pub fn new_file(path: &Path, shown: String, text: &str) -> Result<EditDoc> {
        let mut d = EditDoc::from_text(path, shown, String::new())?;
        d.doc = text
            .parse()
            .map_err(|e: toml_edit::TomlError| anyhow::anyhow!("{}: {e}", d.shown))?;
        Ok(d)
    }

    /// The text as it would be saved.
    pub fn text(&self) -> String {
        self.doc.to_string()
    }

    pub fn is_modified(&self) -> bool {
        self.text() != self.saved_text
    }

    pub fn get(&self, loc: Loc) -> Option<&Value> {
        value_in(&self.doc, loc)
    }

    /// Each `[[devices.channels]]` table as `(name, "key = value, ...")` with every
    /// key as written.
    pub fn channels(&self) -> Vec<(String, String)> {
        let Some(tables) = channel_tables(&self.doc) else {
            return Vec::new();
        };
        tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let name = t
                    .get("name")
                    .and_then(Item::as_str)
                    .map_or_else(|| format!("#{i}"), str::to_string);
                let keys: Vec<String> = t
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", v.to_string().trim()))
                    .collect();
                (name, keys.join(", "))
            })
            .collect()
    }

    /// `[[devices.channels]]` table `i` as an inline table, as the editor offers it.
    pub fn channel_text(&self, i: usize) -> Option<String> {
        let t = channel_tables(&self.doc)?.get(i)?;
        let keys: Vec<String> = t
            .iter()
            .map(|(k, v)| format!("{k} = {}", v.to_string().trim()))
            .collect();
        Some(format!("{{ {} }}", keys.join(", ")))
    }

    /// Replaces `[[devices.channels]]` table `i` (`i` = their number: adds one) with
    /// `table`. A replaced table keeps the comments above it.
    pub fn set_channel(&mut self, i: usize, table: Table) {
        let Some(devices) = table_mut(&mut self.doc, Some("devices")) else {
            return;
        };
        let item = devices
            .entry("channels")
            .or_insert(Item::ArrayOfTables(Default::default()));
        let Some(tables) = item.as_array_of_tables_mut() else {
            return;
        };
        match tables.get_mut(i) {
            Some(old) => {
                let decor = old.decor().clone();
                *old = table;
                *old.decor_mut() = decor;
            }
            None => tables.push(table),
        }
    }

    /// Removes `[[devices.channels]]` table `i` (the key goes with the last one).
    pub fn remove_channel(&mut self, i: usize) {
        let Some(devices) = table_mut(&mut self.doc, Some("devices")) else {
            return;
        };
        let Some(tables) = devices
            .get_mut("channels")
            .and_then(Item::as_array_of_tables_mut)
        else {
            return;
        };
        if i < tables.len() {
            tables.remove(i);
        }
        if tables.is_empty() {
            devices.remove("channels");
        }
    }

    /// Whether the `[[devices.channels]]` tables differ from those on disk.
    pub fn channels_changed(&self) -> bool {
        let shown = |d: &DocumentMut| {
            channel_tables(d).map(|t| {
                t.iter()
                    .map(|t| {
                        t.iter()
                            .map(|(k, v)| format!("{k}={}", v.to_string().trim()))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
        };
        shown(&self.doc) != shown(&self.saved)
    }

    /// Whether the value at `loc` differs from the one on disk.
    pub fn changed(&self, loc: Loc) -> bool {
        match (value_in(&self.doc, loc), value_in(&self.saved, loc)) {
            (Some(a), Some(b)) => !same(a, b),
            (None, None) => false,
            _ => true,
        }
    }

    /// Sets (or with `None` removes) the value at `loc`. The decor of a replaced
    /// value (e.g. a comment after it) is kept.
    pub fn set(&mut self, loc: Loc, value: Option<Value>) {
        match value {
            Some(v) => {
                let Some(table) = table_mut(&mut self.doc, loc.section) else {
                    return;
                };
                match table.get_mut(loc.key).and_then(Item::as_value_mut) {
                    Some(old) => {
                        let decor = old.decor().clone();
                        *old = v;
                        *old.decor_mut() = decor;
                    }
                    None => {
                        table.insert(loc.key, Item::Value(v));
                    }
                }
            }
            None => {
                if let Some(t) = self.table_opt_mut(loc.section) {
                    t.remove(loc.key);
                }
            }
        }
        self.settle();
    }

    /// Edits the array at `loc` in place (created empty when missing), so that the
    /// elements not touched keep their formatting.
    pub fn edit_array(&mut self, loc: Loc, edit: impl FnOnce(&mut Array)) {
        let Some(table) = table_mut(&mut self.doc, loc.section) else {
            return;
        };
        if table
            .get(loc.key)
            .and_then(Item::as_value)
            .and_then(Value::as_array)
            .is_none()
        {
            table.insert(loc.key, Item::Value(Value::Array(Array::new())));
        }
        if let Some(arr) = table
            .get_mut(loc.key)
            .and_then(Item::as_value_mut)
            .and_then(Value::as_array_mut)
        {
            edit(arr);
        }
        self.settle();
    }

    /// Writes the file (through a temporary file in the same directory, renamed over
    /// it) and makes the written text the new on-disk state.
    pub fn save(&mut self) -> Result<()> {
        let text = self.text();
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config.toml");
        let tmp = self.path.with_file_name(format!(".{name}.menuconfig-tmp"));
        std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.shown))?;
        self.saved_text = text;
        self.saved = self.doc.clone();
        Ok(())
    }

    /// After an edit: when the document means the same as the one on disk again,
    /// go back to the on-disk one exactly (spelling, order, comments).
    fn settle(&mut self) {
        if same_table(self.doc.as_table(), self.saved.as_table()) {
            self.doc = self.saved.clone();
        }
    }

    fn table_opt_mut(&mut self, section: Option<&str>) -> Option<&mut Table> {
        match section {
            None => Some(self.doc.as_table_mut()),
            Some(s) => self.doc.get_mut(s).and_then(Item::as_table_mut),
        }
    }
}

fn value_in(doc: &DocumentMut, loc: Loc) -> Option<&Value> {
    let table = match loc.section {
        None => doc.as_table(),
        Some(s) => doc.get(s)?.as_table()?,
    };
    table.get(loc.key)?.as_value()
}

/// The table for `section`, created (as a `[section]` table) when missing.
fn table_mut<'a>(doc: &'a mut DocumentMut, section: Option<&str>) -> Option<&'a mut Table> {
    let Some(s) = section else {
        return Some(doc.as_table_mut());
    };
    let root = doc.as_table_mut();
    if !root.get(s).is_some_and(Item::is_table) {
        root.insert(s, Item::Table(Table::new()));
    }
    root.get_mut(s).and_then(Item::as_table_mut)
}

/// Whether two values mean the same (whatever their spelling and formatting).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.value() == y.value(),
        (Value::Integer(x), Value::Integer(y)) => x.value() == y.value(),
        (Value::Float(x), Value::Float(y)) => x.value().to_bits() == y.value().to_bits(),
        (Value::Boolean(x), Value::Boolean(y)) => x.value() == y.value(),
        (Value::Datetime(x), Value::Datetime(y)) => x.value() == y.value(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        (Value::InlineTable(x), Value::InlineTable(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

fn same_item(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::None, Item::None) => true,
        (Item::Value(x), Item::Value(y)) => same(x, y),
        (Item::Table(x), Item::Table(y)) => same_table(x, y),
        (Item::ArrayOfTables(x), Item::ArrayOfTables(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_table(p, q))
        }
        _ => false,
    }
}

fn same_table(a: &Table, b: &Table) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| same_item(v, w)))
}

/// A value on one line, as a user would type it: `["a", "b"]`, `0x4000_0000`.
pub fn compact(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(compact).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::InlineTable(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", compact(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => {
            let mut c = other.clone();
            c.decor_mut().clear();
            c.to_string()
        }
    }
}

/// Appends `v` to a (possibly multi-line) array in the style of its last element.
pub fn push_like_last(arr: &mut Array, v: Value) {
    let decor = arr.iter().last().map(|last| last.decor().clone());
    match decor {
        Some(d) => {
            let mut v = v;
            *v.decor_mut() = d;
            arr.push_formatted(v);
        }
        None => arr.push(v),
    }
}

/// Removes element `i`; when it was the first one, the new first one takes its
/// decor (so `[a, b]` becomes `[b]`, not `[ b]`).
pub fn remove_keeping_style(arr: &mut Array, i: usize) {
    if i >= arr.len() {
        return;
    }
    let removed = arr.remove(i);
    if i == 0 {
        if let Some(first) = arr.get_mut(0) {
            *first.decor_mut() = removed.decor().clone();
        }
    }
}

/// The `[[devices.channels]]` tables of `doc`.
fn channel_tables(doc: &DocumentMut) -> Option<&toml_edit::ArrayOfTables> {
    doc.get("devices")
        .and_then(Item::as_table)
        .and_then(|t| t.get("channels"))
        .and_then(Item::as_array_of_tables)
}
