//! The configuration being edited: the board file and the VM configs opened from it,
//! their settings, and the diagnostics of the last check. The check is the one
//! `cargo xtask build` runs ([`crate::config::load_with`]), on the unsaved texts.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::Value;

use super::doc::{push_like_last, remove_keeping_style, EditDoc, Loc};
use super::schema::{board_settings, vm_settings, Kind, List, Setting};
use super::truth::{infer_arch, Truth, VmFile};
use crate::config::diag::{Diagnostic, KeyPath, Seg, Severity};
use crate::config::source::shown_path;
use crate::config::{self, Arch, Overrides, VmList};

/// Which file a setting belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocId {
    Board,
    /// An opened VM config (index into [`Model::vms`]).
    Vm(usize),
}

/// A setting of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingRef {
    pub doc: DocId,
    /// Index into the file's settings.
    pub index: usize,
}

/// The `vm_configs` key of the board.
pub const VM_CONFIGS: Loc = Loc::top("vm_configs");

/// Everything being edited.
pub struct Model {
    /// The directory holding `configs/` (paths in `vm_configs` are relative to it).
    pub root: PathBuf,
    pub truth: Truth,
    pub board: EditDoc,
    pub board_settings: Vec<Setting>,
    pub vms: Vec<EditDoc>,
    pub vm_settings: Vec<Setting>,
    /// Diagnostics of the last check.
    pub diags: Vec<Diagnostic>,
}

impl Model {
    /// A model over an opened board file; checks it at once.
    pub fn new(root: &Path, truth: Truth, board: EditDoc) -> Model {
        let mut m = Model {
            root: root.to_path_buf(),
            board_settings: board_settings(&truth),
            vm_settings: vm_settings(),
            truth,
            board,
            vms: Vec::new(),
            diags: Vec::new(),
        };
        m.validate();
        m
    }

    pub fn doc(&self, id: DocId) -> Option<&EditDoc> {
        match id {
            DocId::Board => Some(&self.board),
            DocId::Vm(i) => self.vms.get(i),
        }
    }

    fn doc_mut(&mut self, id: DocId) -> Option<&mut EditDoc> {
        match id {
            DocId::Board => Some(&mut self.board),
            DocId::Vm(i) => self.vms.get_mut(i),
        }
    }

    pub fn settings(&self, id: DocId) -> &[Setting] {
        match id {
            DocId::Board => &self.board_settings,
            DocId::Vm(_) => &self.vm_settings,
        }
    }

    pub fn setting(&self, r: SettingRef) -> Option<&Setting> {
        self.settings(r.doc).get(r.index)
    }

    /// The setting at `loc` of a file.
    pub fn find(&self, doc: DocId, loc: Loc) -> Option<SettingRef> {
        let index = self.settings(doc).iter().position(|s| s.loc == loc)?;
        Some(SettingRef { doc, index })
    }

    pub fn value(&self, r: SettingRef) -> Option<&Value> {
        let s = self.setting(r)?;
        self.doc(r.doc)?.get(s.loc)
    }

    pub fn is_changed(&self, r: SettingRef) -> bool {
        match (self.setting(r), self.doc(r.doc)) {
            (Some(s), Some(d)) => d.changed(s.loc),
            _ => false,
        }
    }

    /// Whether any file has unsaved changes.
    pub fn is_modified(&self) -> bool {
        self.board.is_modified() || self.vms.iter().any(EditDoc::is_modified)
    }

    /// Sets a setting from text typed by the user (type and range checked), then
    /// checks everything again.
    pub fn apply_text(&mut self, r: SettingRef, input: &str) -> Result<(), String> {
        let s = self.setting(r).ok_or("no such setting")?;
        let value = s.parse(input)?;
        self.set(r, value);
        Ok(())
    }

    /// Sets (or removes) the value of a setting, then checks everything again.
    pub fn set(&mut self, r: SettingRef, value: Option<Value>) {
        let Some(loc) = self.setting(r).map(|s| s.loc) else {
            return;
        };
        if let Some(doc) = self.doc_mut(r.doc) {
            doc.set(loc, value);
        }
        self.validate();
    }

    /// Sets a list of strings (a multi-select), editing the array in place so that
    /// the entries kept keep their formatting.
    pub fn set_list(&mut self, r: SettingRef, wanted: &[String]) {
        let Some(loc) = self.setting(r).map(|s| s.loc) else {
            return;
        };
        if let Some(doc) = self.doc_mut(r.doc) {
            doc.edit_array(loc, |arr| {
                let mut i = 0;
                while i < arr.len() {
                    let keep = arr
                        .get(i)
                        .and_then(Value::as_str)
                        .is_some_and(|s| wanted.iter().any(|w| w == s));
                    if keep {
                        i += 1;
                    } else {
                        remove_keeping_style(arr, i);
                    }
                }
                for w in wanted {
                    if !arr.iter().any(|v| v.as_str() == Some(w.as_str())) {
                        push_like_last(arr, Value::from(w.as_str()));
                    }
                }
            });
        }
        self.validate();
    }

    /// The architecture of the board (its `arch`, else its target's).
    pub fn board_arch(&self) -> Option<Arch> {
        let named = self.board.get(Loc::top("arch")).and_then(Value::as_str);
        match named {
            Some(a) => [Arch::Aarch64, Arch::Riscv64, Arch::X86_64]
                .into_iter()
                .find(|x| x.name() == a),
            None => self
                .board
                .get(Loc::top("target"))
                .and_then(Value::as_str)
                .and_then(Arch::of_target),
        }
    }

    /// `vm_configs` as written.
    pub fn selected_vms(&self) -> Vec<String> {
        self.board
            .get(VM_CONFIGS)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The VM configs offered: those in configs/vms/ whose architecture is the
    /// board's (or cannot be told), then those `vm_configs` names that are not
    /// among them (so they can be removed).
    pub fn vm_choices(&self) -> Vec<VmFile> {
        let arch = self.board_arch();
        let mut out: Vec<VmFile> = self
            .truth
            .vm_files
            .iter()
            .filter(|f| f.arch.is_none() || arch.is_none() || f.arch == arch)
            .cloned()
            .collect();
        for rel in self.selected_vms() {
            if !out.iter().any(|f| f.rel == rel) {
                let path = self.root.join(&rel);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push(VmFile {
                    arch: infer_arch(&path, &text),
                    rel,
                    path,
                });
            }
        }
        out
    }

    /// Adds a VM config to `vm_configs`, or removes it.
    pub fn toggle_vm(&mut self, rel: &str) {
        let mut list = self.selected_vms();
        match list.iter().position(|r| r == rel) {
            Some(i) => {
                list.remove(i);
            }
            None => list.push(rel.to_string()),
        }
        if let Some(r) = self.find(DocId::Board, VM_CONFIGS) {
            self.set_list(r, &list);
        }
    }

    /// Opens a VM config for editing (once); returns its document id.
    pub fn open_vm(&mut self, rel: &str) -> Result<DocId> {
        let path = self.root.join(rel);
        if let Some(i) = self.vms.iter().position(|d| d.path == path) {
            return Ok(DocId::Vm(i));
        }
        let doc = EditDoc::open(&path, shown_path(&path, &self.root))?;
        self.vms.push(doc);
        self.validate();
        Ok(DocId::Vm(self.vms.len() - 1))
    }

    /// A new VM config made from the VM config `template` (a path like those in
    /// `vm_configs`): `<template stem>-new[N].toml` next to it, with a free id, the
    /// name `vm<id>` and no pinned CPUs (`phys_cpu_ids`/`phys_cpu_sets` removed: the
    /// next free ones), added to `vm_configs` and opened. Written by the next save.
    /// Returns its path (as in `vm_configs`) and document.
    pub fn new_vm_from(&mut self, template: &str) -> Result<(String, DocId)> {
        let from = self.root.join(template);
        let text = std::fs::read_to_string(&from)
            .with_context(|| format!("cannot read the template {template}"))?;
        let (dir, stem) = match template.rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f.trim_end_matches(".toml").to_string()),
            None => (
                String::new(),
                template.trim_end_matches(".toml").to_string(),
            ),
        };
        let taken = |rel: &str| {
            let p = self.root.join(rel);
            p.exists() || self.vms.iter().any(|d| d.path == p)
        };
        let rel = (1..)
            .map(|n| match n {
                1 => format!("{dir}{stem}-new.toml"),
                n => format!("{dir}{stem}-new{n}.toml"),
            })
            .find(|r| !taken(r))
            .unwrap_or_default();
        let path = self.root.join(&rel);
        let mut doc = EditDoc::new_file(&path, shown_path(&path, &self.root), &text)?;
        let id = self.free_vm_id();
        doc.set(Loc::at("base", "id"), Some(Value::from(id)));
        doc.set(
            Loc::at("base", "name"),
            Some(Value::from(format!("vm{id}"))),
        );
        // The template's CPUs are taken: the new VM gets the next free ones.
        doc.set(Loc::at("base", "phys_cpu_ids"), None);
        doc.set(Loc::at("base", "phys_cpu_sets"), None);
        self.vms.push(doc);
        self.truth.vm_files.push(VmFile {
            arch: infer_arch(&path, &text),
            rel: rel.clone(),
            path,
        });
        self.toggle_vm(&rel);
        self.validate();
        Ok((rel, DocId::Vm(self.vms.len() - 1)))
    }

    /// An id no VM config of `vm_configs` nor any opened one has.
    fn free_vm_id(&self) -> i64 {
        let mut ids: Vec<i64> = self
            .vms
            .iter()
            .filter_map(|d| d.get(Loc::at("base", "id")).and_then(Value::as_integer))
            .collect();
        for rel in self.selected_vms() {
            let text = std::fs::read_to_string(self.root.join(&rel)).unwrap_or_default();
            if let Ok(doc) = text.parse::<toml_edit::DocumentMut>() {
                ids.extend(
                    doc.get("base")
                        .and_then(|b| b.get("id"))
                        .and_then(|i| i.as_integer()),
                );
            }
        }
        ids.into_iter().max().map_or(1, |m| m + 1)
    }

    /// The options of a choice setting that fit the board: kernel features of
    /// another architecture than the board's are left out.
    pub fn offered(&self, r: SettingRef, opts: &[super::schema::Opt]) -> Vec<super::schema::Opt> {
        let is_features = r.doc == DocId::Board
            && self
                .setting(r)
                .is_some_and(|s| s.loc == Loc::top("features"));
        let arch = self.board_arch();
        opts.iter()
            .filter(|o| {
                !is_features
                    || self
                        .truth
                        .features
                        .iter()
                        .find(|f| o.value.as_str() == Some(f.name.as_str()))
                        .and_then(|f| f.arch)
                        .is_none_or(|fa| Some(fa) == arch)
            })
            .cloned()
            .collect()
    }

    /// The entries of a VM's list.
    pub fn items(&self, vm: DocId, list: List) -> Vec<Value> {
        self.doc(vm)
            .and_then(|d| d.get(list.loc()))
            .and_then(Value::as_array)
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Replaces entry `i` of a list (`i` = its length: adds one) with typed text.
    pub fn set_item(&mut self, vm: DocId, list: List, i: usize, input: &str) -> Result<(), String> {
        let v = item_value(list, input)?;
        if let Some(doc) = self.doc_mut(vm) {
            if doc.get(list.loc()).is_none() {
                doc.set(list.loc(), Some(Value::Array(toml_edit::Array::new())));
            }
            doc.edit_array(list.loc(), |arr| {
                if i < arr.len() {
                    arr.replace(i, v);
                } else {
                    push_like_last(arr, v);
                }
            });
        }
        self.validate();
        Ok(())
    }

    /// Removes entry `i` of a list.
    pub fn remove_item(&mut self, vm: DocId, list: List, i: usize) {
        if let Some(doc) = self.doc_mut(vm) {
            doc.edit_array(list.loc(), |arr| remove_keeping_style(arr, i));
        }
        self.validate();
    }

    /// `[[devices.channels]]` table `i` of a VM as an inline table to edit, or a new
    /// one (this VM and a peer on it) when there is no such table.
    pub fn channel_text(&self, vm: DocId, i: usize) -> String {
        let Some(doc) = self.doc(vm) else {
            return String::new();
        };
        doc.channel_text(i).unwrap_or_else(|| {
            let me = doc
                .get(super::doc::Loc::at("base", "name"))
                .and_then(Value::as_str)
                .unwrap_or("this-vm");
            format!(
                "{{ name = \"link\", size = 0x1_0000, vms = [\"{me}\", \"peer\"], gpa = 0x0, access = \"rw\" }}"
            )
        })
    }

    /// Replaces (`i` = their number: adds) a VM's channel `i` with the typed inline
    /// table; the checks (vmconfig's channel rules, across the VMs too) run again.
    pub fn set_channel(&mut self, vm: DocId, i: usize, input: &str) -> Result<(), String> {
        let table = channel_table(input)?;
        if let Some(doc) = self.doc_mut(vm) {
            doc.set_channel(i, table);
        }
        self.validate();
        Ok(())
    }

    /// Removes a VM's channel `i`.
    pub fn remove_channel(&mut self, vm: DocId, i: usize) {
        if let Some(doc) = self.doc_mut(vm) {
            doc.remove_channel(i);
        }
        self.validate();
    }

    /// A new entry to offer: a region right after the last one (16 MiB of RWX RAM),
    /// or the shape's example.
    pub fn next_item(&self, vm: DocId, list: List) -> String {
        if list != List::Regions {
            return list.shape().example().to_string();
        }
        let end = self
            .items(vm, list)
            .iter()
            .filter_map(|r| {
                let a = r.as_array()?;
                Some(a.get(0)?.as_integer()? + a.get(1)?.as_integer()?)
            })
            .max()
            .unwrap_or(0x4000_0000);
        format!("[{end:#x}, 0x100_0000, 0x7, 0]")
    }

    /// Checks the board and its VMs (with unsaved edits) as `cargo xtask build`
    /// does, and an opened VM config that is not in `vm_configs` against the board.
    pub fn validate(&mut self) {
        let mut overrides = Overrides::new();
        overrides.insert(self.board.path.clone(), self.board.text());
        for d in &self.vms {
            overrides.insert(d.path.clone(), d.text());
        }
        let ctx = config::Context {
            guest_crates: &self.truth.guest_crates,
        };
        let mut diags = report_of(config::load_with(
            &self.root,
            &self.board.path,
            VmList::FromBoard,
            &ctx,
            &overrides,
        ));
        let selected: Vec<PathBuf> = self
            .selected_vms()
            .iter()
            .map(|r| self.root.join(r))
            .collect();
        for d in self.vms.iter().filter(|d| !selected.contains(&d.path)) {
            let one = [d.path.clone()];
            let own = report_of(config::load_with(
                &self.root,
                &self.board.path,
                VmList::Override(&one),
                &ctx,
                &overrides,
            ));
            diags.extend(own.into_iter().filter(|x| x.file == d.shown));
        }
        let mut unique: Vec<Diagnostic> = Vec::new();
        for d in diags {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        self.diags = unique;
    }

    /// The errors and warnings of a file about `key` or anything inside it.
    pub fn diags_for(&self, doc: DocId, key: &KeyPath) -> Vec<&Diagnostic> {
        let Some(d) = self.doc(doc) else {
            return Vec::new();
        };
        self.diags
            .iter()
            .filter(|x| x.file == d.shown && starts_with(&x.key, key))
            .collect()
    }

    /// The diagnostics of a setting.
    pub fn setting_diags(&self, r: SettingRef) -> Vec<&Diagnostic> {
        match self.setting(r) {
            Some(s) => self.diags_for(r.doc, &key_of(s.loc)),
            None => Vec::new(),
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diags.iter().filter(|d| d.severity == Severity::Error)
    }

    /// The errors that stop a save: those of the board and the VMs it bundles (what
    /// `cargo xtask build` would reject) and those of any other modified VM config.
    /// A VM config that was only looked at does not stop a save.
    pub fn blocking_errors(&self) -> Vec<&Diagnostic> {
        let mut files: Vec<String> = vec![self.board.shown.clone()];
        files.extend(
            self.selected_vms()
                .iter()
                .map(|r| shown_path(&self.root.join(r), &self.root)),
        );
        files.extend(
            self.vms
                .iter()
                .filter(|d| d.is_modified())
                .map(|d| d.shown.clone()),
        );
        self.errors().filter(|d| files.contains(&d.file)).collect()
    }

    /// Saves every modified file, unless a check fails: then nothing is written and
    /// the reason is returned. Returns the files written.
    pub fn save(&mut self) -> Result<Vec<String>, String> {
        self.validate();
        let errors = self.blocking_errors();
        if let Some(first) = errors.first() {
            return Err(format!(
                "not saved, {} error{} (e lists them): {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                super::rows::one_line(first)
            ));
        }
        let mut written = Vec::new();
        let docs = std::iter::once(&mut self.board).chain(self.vms.iter_mut());
        for d in docs.filter(|d| d.is_modified()) {
            d.save().map_err(|e| format!("not saved: {e:#}"))?;
            written.push(d.shown.clone());
        }
        Ok(written)
    }
}

/// The key path of a setting, as diagnostics name it.
pub fn key_of(loc: Loc) -> KeyPath {
    match loc.section {
        Some(s) => KeyPath::new(s).key(loc.key),
        None => KeyPath::new(loc.key),
    }
}

fn starts_with(key: &KeyPath, prefix: &KeyPath) -> bool {
    let (k, p): (&[Seg], &[Seg]) = (key.segs(), prefix.segs());
    k.len() >= p.len() && k[..p.len()] == *p
}

/// Every diagnostic of a check: all problems, or the warnings of a good config.
fn report_of(r: Result<config::Plan, config::ConfigError>) -> Vec<Diagnostic> {
    match r {
        Ok(plan) => plan.warnings.items,
        Err(e) => e.0.items,
    }
}

/// An entry of `list` as typed (outer brackets optional), checked for its shape.
pub fn item_value(list: List, input: &str) -> Result<Value, String> {
    let t = input.trim();
    let shape = list.shape();
    let wrapped = format!("[{t}]");
    for text in [t, wrapped.as_str()] {
        if let Ok(v) = text.parse::<Value>() {
            if shape.check(&v).is_ok() {
                return Ok(v);
            }
        }
    }
    let text = if t.starts_with('[') {
        t
    } else {
        wrapped.as_str()
    };
    let v: Value = text
        .parse()
        .map_err(|_| format!("expected {}, e.g. {}", list.fields(), shape.example()))?;
    shape.check(&v)?;
    Ok(v)
}

/// How a setting's value reads in a list row.
pub fn show_value(s: &Setting, v: Option<&Value>) -> String {
    use super::doc::compact;
    match (v, &s.kind) {
        (None, _) => match s.default {
            Some(d) => format!("({d})"),
            None => "(unset)".into(),
        },
        (Some(v), Kind::Bool) => match v.as_bool() {
            Some(true) => "[x]".into(),
            Some(false) => "[ ]".into(),
            None => compact(v),
        },
        (Some(v), Kind::Choice(_) | Kind::Str) if v.is_str() => match v.as_str() {
            Some("") | None => "\"\"".into(),
            Some(s) => s.to_string(),
        },
        (Some(v), Kind::Multi(_)) => {
            let items: Vec<&str> = v
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if items.is_empty() {
                "(none)".into()
            } else {
                items.join(", ")
            }
        }
        (Some(v), Kind::Choice(opts)) => {
            let help = opts
                .iter()
                .find(|o| super::doc::same(&o.value, v))
                .map(|o| format!(" ({})", o.help))
                .unwrap_or_default();
            format!("{}{help}", compact(v))
        }
        (Some(v), _) => compact(v),
    }
}

/// The keys of a channel, for messages.
pub const CHANNEL_FIELDS: &str = "{ name, size, vms, gpa, access, doorbell, irq }";

/// A typed `[[devices.channels]]` table: an inline table (its keys are checked with
/// the rest of the config).
pub fn channel_table(input: &str) -> Result<toml_edit::Table, String> {
    let t = input.trim();
    let bad = || {
        format!(
            "expected an inline table {CHANNEL_FIELDS}, e.g. {{ name = \"link\", size = 0x1_0000, vms = [\"a\", \"b\"], gpa = 0x4100_0000 }}"
        )
    };
    match t.parse::<Value>() {
        Ok(Value::InlineTable(it)) => {
            let mut table = it.into_table();
            table.set_implicit(false);
            table.fmt();
            Ok(table)
        }
        _ => Err(bad()),
    }
}
