//! What each page lists: its rows (label, value, markers) and the help text of a row.
//! Pure functions of the model, shared by the key handling and the views.
use toml_edit::Value;

use super::doc::compact;
use super::model::{key_of, show_value, DocId, Model, SettingRef};
use super::schema::{Group, Kind, List};
use crate::config::diag::{Diagnostic, KeyPath, Severity};
use crate::config::range::human_size;

/// A screen of the menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// The board's build settings (the root).
    Main,
    Hardware,
    Qemu,
    /// `[image]` and `[uboot]`.
    Image,
    /// The VM configs that can be bundled.
    VmList,
    /// The main fields of one VM config.
    Vm(DocId),
    /// A list of one VM config (memory regions, devices).
    List(DocId, List),
    /// Settings matching a search, in the context of an open VM config (if any).
    Search {
        query: String,
        vm: Option<DocId>,
    },
}

/// What a row stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowKind {
    Setting(SettingRef),
    Open(Page),
    VmFile(String),
    /// Entry `usize` of a VM's list.
    Item(DocId, List, usize),
    AddItem(DocId, List),
    /// Entry `usize` of a VM's `[[devices.channels]]`.
    Channel(DocId, usize),
    /// A new `[[devices.channels]]` table for the VM.
    AddChannel(DocId),
}

/// One line of a page.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: RowKind,
    pub label: String,
    pub value: String,
    pub error: bool,
    pub warning: bool,
    /// Differs from the file on disk.
    pub changed: bool,
    /// One line of help, shown under the list.
    pub hint: String,
}

impl Row {
    fn plain(kind: RowKind, label: &str, value: String, hint: &str) -> Row {
        Row {
            kind,
            label: label.to_string(),
            value,
            error: false,
            warning: false,
            changed: false,
            hint: hint.to_string(),
        }
    }

    fn marked(mut self, diags: &[&Diagnostic]) -> Row {
        self.error = diags.iter().any(|d| d.severity == Severity::Error);
        self.warning = !self.error && !diags.is_empty();
        if let Some(d) = diags.first() {
            self.hint = format!("{}: {}", d.key, d.message);
        }
        self
    }
}

/// The title of a page.
pub fn title(model: &Model, page: &Page) -> String {
    let shown = |d: &DocId| model.doc(*d).map(|d| d.shown.clone()).unwrap_or_default();
    match page {
        Page::Main => "Build configuration".into(),
        Page::Hardware => "Board hardware".into(),
        Page::Qemu => "QEMU (cargo xtask run)".into(),
        Page::Image => "Card image and U-Boot (cargo xtask image, uboot)".into(),
        Page::VmList => match model.board_arch() {
            Some(a) => format!("VM configs for {}", a.name()),
            None => "VM configs".into(),
        },
        Page::Vm(d) => format!("VM config {}", file_name(&shown(d))),
        Page::List(d, l) => format!("{} of {}", l.title(), file_name(&shown(d))),
        Page::Search { query, .. } => format!("Settings matching \"{query}\""),
    }
}

/// A page's name in the title line's path.
pub fn short_title(model: &Model, page: &Page) -> String {
    let stem = |d: &DocId| {
        let name = model
            .doc(*d)
            .map(|d| file_name(&d.shown))
            .unwrap_or_default();
        name.trim_end_matches(".toml").to_string()
    };
    match page {
        Page::Main => "Build".into(),
        Page::Hardware => "Hardware".into(),
        Page::Qemu => "QEMU".into(),
        Page::Image => "Image".into(),
        Page::VmList => "VMs".into(),
        Page::Vm(d) => stem(d),
        Page::List(_, l) => l.short().into(),
        Page::Search { .. } => "search".into(),
    }
}

/// The last part of a path.
pub fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The rows of a page.
pub fn rows(model: &Model, page: &Page) -> Vec<Row> {
    match page {
        Page::Main => {
            let mut out = group_rows(model, Group::Build);
            out.push(submenu_row(
                model,
                Group::Hardware,
                "Board hardware",
                "CPUs, RAM and load address of the board",
            ));
            out.push(submenu_row(
                model,
                Group::Qemu,
                "QEMU",
                "How `cargo xtask run` starts QEMU for this board",
            ));
            out.push(submenu_row(
                model,
                Group::Image,
                "Card image",
                "How `cargo xtask image` lays out the card and `cargo xtask uboot` reaches U-Boot",
            ));
            out
        }
        Page::Hardware => group_rows(model, Group::Hardware),
        Page::Qemu => group_rows(model, Group::Qemu),
        Page::Image => group_rows(model, Group::Image),
        Page::VmList => vm_file_rows(model),
        Page::Vm(d) => {
            let mut out: Vec<Row> = (0..model.vm_settings.len())
                .map(|index| setting_row(model, SettingRef { doc: *d, index }, false))
                .collect();
            out.extend(channel_rows(model, *d));
            out
        }
        Page::List(d, l) => item_rows(model, *d, *l),
        Page::Search { query, vm } => search(model, query, *vm)
            .into_iter()
            .map(|r| setting_row(model, r, true))
            .collect(),
    }
}

/// Hint of a channel row.
const CHANNEL_HINT: &str = "Inter-VM channel ([[devices.channels]]): Enter: edit as an inline \
                            table { name, size, vms, gpa, access, doorbell, irq }; d: delete";

/// One row per `[[devices.channels]]` table of a VM, marked with the problems the
/// checks report on it (vmconfig's channel rules, the VMs together included), and a
/// row to add one.
fn channel_rows(model: &Model, vm: DocId) -> Vec<Row> {
    let Some(doc) = model.doc(vm) else {
        return Vec::new();
    };
    let changed = doc.channels_changed();
    let key = KeyPath::new("devices").key("channels");
    let mut out: Vec<Row> = doc
        .channels()
        .into_iter()
        .enumerate()
        .map(|(i, (name, value))| {
            let diags = model.diags_for(vm, &key.index(i));
            let label = format!("channel {name}");
            let mut row = Row::plain(RowKind::Channel(vm, i), &label, value, CHANNEL_HINT);
            row.changed = changed;
            row.marked(&diags)
        })
        .collect();
    out.push(Row::plain(
        RowKind::AddChannel(vm),
        "<add a channel>",
        String::new(),
        "Enter or a: add an inter-VM channel ([[devices.channels]])",
    ));
    out
}

/// A row that opens the page of a group of board settings, marked with their
/// problems.
fn submenu_row(model: &Model, group: Group, label: &str, hint: &str) -> Row {
    let page = match group {
        Group::Hardware => Page::Hardware,
        Group::Image => Page::Image,
        _ => Page::Qemu,
    };
    let diags: Vec<&Diagnostic> = model
        .board_settings
        .iter()
        .filter(|s| s.group == group)
        .flat_map(|s| model.diags_for(DocId::Board, &key_of(s.loc)))
        .collect();
    Row::plain(RowKind::Open(page), label, "--->".into(), hint).marked(&diags)
}

fn group_rows(model: &Model, group: Group) -> Vec<Row> {
    model
        .board_settings
        .iter()
        .enumerate()
        .filter(|(_, s)| s.group == group)
        .map(|(index, _)| {
            let r = SettingRef {
                doc: DocId::Board,
                index,
            };
            setting_row(model, r, false)
        })
        .collect()
}

fn setting_row(model: &Model, r: SettingRef, with_page: bool) -> Row {
    let Some(s) = model.setting(r) else {
        return Row::plain(RowKind::Setting(r), "?", String::new(), "");
    };
    let mut label = match s.loc.section {
        Some("memory") => s.loc.dotted(),
        _ => s.loc.key.to_string(),
    };
    if with_page {
        let vm_file = model
            .doc(r.doc)
            .map(|d| file_name(&d.shown))
            .unwrap_or_default();
        let page = match (r.doc, s.group) {
            (DocId::Vm(_), _) => vm_file.as_str(),
            (_, Group::Hardware) => "Hardware",
            (_, Group::Qemu) => "QEMU",
            (_, Group::Image) => "Image",
            _ => "Build",
        };
        label = format!("{page} > {}", s.loc.dotted());
    }
    let value = match s.kind {
        Kind::VmList => format!("{} selected --->", model.selected_vms().len()),
        Kind::List(List::Regions) => regions_summary(&model.items(r.doc, List::Regions)),
        Kind::List(l) => devices_summary(&model.items(r.doc, l)),
        _ => show_value(s, model.value(r)),
    };
    let hint = first_sentence(&s.help);
    let mut row = Row::plain(RowKind::Setting(r), &label, value, &hint);
    row.changed = model.is_changed(r);
    row.marked(&model.setting_diags(r))
}

fn regions_summary(regions: &[Value]) -> String {
    let total: i64 = regions
        .iter()
        .filter_map(|r| r.as_array()?.get(1)?.as_integer())
        .sum();
    let n = regions.len();
    format!(
        "{n} region{}, {} --->",
        if n == 1 { "" } else { "s" },
        human_size(total.max(0) as u64)
    )
}

/// The text up to the first full stop that ends a sentence (not that of "e.g.").
fn first_sentence(text: &str) -> String {
    let end = text
        .match_indices(". ")
        .map(|(i, _)| i)
        .find(|&i| !text[..i].ends_with("e.g") && !text[..i].ends_with("i.e"));
    match end {
        Some(i) => text[..=i].to_string(),
        None => text.to_string(),
    }
}

fn vm_file_rows(model: &Model) -> Vec<Row> {
    let selected = model.selected_vms();
    model
        .vm_choices()
        .into_iter()
        .map(|f| {
            let on = selected.contains(&f.rel);
            let name = f.rel.rsplit('/').next().unwrap_or(&f.rel).to_string();
            let label = format!("[{}] {name}", if on { "x" } else { " " });
            let text = vm_text(model, &f.rel);
            let mut value = vm_summary(&text);
            if f.arch.is_none() {
                value.push_str(" (arch unknown)");
            } else if f.arch != model.board_arch() {
                value.push_str(&format!(
                    " (for {})",
                    f.arch.map(|a| a.name()).unwrap_or("?")
                ));
            }
            if !f.path.is_file() {
                value = "(file not found)".into();
            }
            let diags: Vec<&Diagnostic> = model.diags.iter().filter(|d| d.file == f.rel).collect();
            let row = Row::plain(
                RowKind::VmFile(f.rel.clone()),
                &label,
                value,
                "Space: bundle it or not; Enter: edit it",
            );
            row.marked(&diags)
        })
        .collect()
}

/// The text of a VM config: the edited one when it is open.
fn vm_text(model: &Model, rel: &str) -> String {
    let path = model.root.join(rel);
    match model.vms.iter().find(|d| d.path == path) {
        Some(d) => d.text(),
        None => std::fs::read_to_string(path).unwrap_or_default(),
    }
}

/// `vm1, 2 vCPUs, 16 MiB` from a VM config's text.
pub fn vm_summary(text: &str) -> String {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return "(not valid TOML)".into();
    };
    let name = doc
        .get("base")
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("?");
    let cpus = doc
        .get("base")
        .and_then(|b| b.get("cpu_num"))
        .and_then(|n| n.as_integer())
        .unwrap_or(0);
    let mem: i64 = doc
        .get("kernel")
        .and_then(|k| k.get("memory_regions"))
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_array()?.get(1)?.as_integer())
                .sum()
        })
        .unwrap_or(0);
    format!(
        "{name}, {cpus} vCPU{}, {}",
        if cpus == 1 { "" } else { "s" },
        human_size(mem.max(0) as u64)
    )
}

fn devices_summary(devices: &[Value]) -> String {
    let names: Vec<String> = devices
        .iter()
        .filter_map(|d| d.as_array()?.get(0)?.as_str().map(str::to_string))
        .collect();
    if names.is_empty() {
        "(none) --->".into()
    } else {
        format!("{} --->", names.join(", "))
    }
}

fn item_rows(model: &Model, vm: DocId, list: List) -> Vec<Row> {
    let changed = model.doc(vm).is_some_and(|d| d.changed(list.loc()));
    let item = list.item();
    let mut out: Vec<Row> = model
        .items(vm, list)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let key = key_of(list.loc()).index(i);
            let mut row = Row::plain(
                RowKind::Item(vm, list, i),
                &format!("{item} {i}"),
                describe_item(list, v),
                &format!("Enter: edit as {}; d: delete", list.fields()),
            );
            row.changed = changed;
            row.marked(&model.diags_for(vm, &key))
        })
        .collect();
    let whole: Vec<&Diagnostic> = model
        .diags_for(vm, &key_of(list.loc()))
        .into_iter()
        .filter(|d| d.key == key_of(list.loc()))
        .collect();
    out.push(
        Row::plain(
            RowKind::AddItem(vm, list),
            &format!("<add a {item}>"),
            String::new(),
            &format!("Enter or a: add a {item}"),
        )
        .marked(&whole),
    );
    out
}

/// How an entry of a list reads in its row.
pub fn describe_item(list: List, v: &Value) -> String {
    match list {
        List::Regions => describe_region(v),
        _ => describe_device(list, v),
    }
}

/// `uart  0x9000000+0x1000  irq 33  console` (emulated) or
/// `rtc  0x9010000+0x1000 <- host 0x9010000  irq 34` (passthrough).
pub fn describe_device(list: List, v: &Value) -> String {
    let Some(a) = v.as_array() else {
        return compact(v);
    };
    let name = a.get(0).and_then(Value::as_str).unwrap_or("?");
    let int = |i: usize| a.get(i).and_then(Value::as_integer).unwrap_or(-1);
    match list {
        List::EmuDevices => {
            let t = int(4);
            let what = vmconfig::EMU_TYPES
                .iter()
                .find(|(c, _)| i64::from(*c) == t)
                .map_or("unknown emu_type", |(_, n)| n);
            format!(
                "{name}  {:#x}+{:#x}  irq {}  {what}",
                int(1),
                int(2),
                int(3)
            )
        }
        _ => format!(
            "{name}  {:#x}+{:#x} <- host {:#x}  irq {}",
            int(1),
            int(3),
            int(2),
            int(4)
        ),
    }
}

/// `0x40000000..0x41000000  16 MiB  RWX---  allocate` for `[gpa, size, flags, map_type]`
/// (flags R W X, U user, D device, C uncached).
pub fn describe_region(v: &Value) -> String {
    let ints: Vec<i64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_integer).collect())
        .unwrap_or_default();
    let [gpa, size, flags, map] = ints[..] else {
        return compact(v);
    };
    let bits = [
        (1, 'R'),
        (2, 'W'),
        (4, 'X'),
        (8, 'U'),
        (0x10, 'D'),
        (0x20, 'C'),
    ];
    let f: String = bits
        .iter()
        .map(|(b, c)| if flags & b != 0 { *c } else { '-' })
        .collect();
    let map = match map {
        0 => "allocate",
        1 => "identity",
        2 => "reserved",
        _ => "map_type?",
    };
    format!(
        "{:#x}..{:#x}  {}  {f}  {map}",
        gpa,
        gpa.saturating_add(size),
        human_size(size.max(0) as u64)
    )
}

/// Settings whose name, help or value contains `query` (any case): the board's and
/// those of every opened VM config (the app opens the board's VM configs first), the
/// VM config `vm` (the one being edited, if any) first.
pub fn search(model: &Model, query: &str, vm: Option<DocId>) -> Vec<SettingRef> {
    let q = query.to_lowercase();
    let hit = |doc: DocId, index: usize, s: &super::schema::Setting| {
        let value = model
            .value(SettingRef { doc, index })
            .map(|v| compact(v).to_lowercase())
            .unwrap_or_default();
        s.name().to_lowercase().contains(&q)
            || s.help.to_lowercase().contains(&q)
            || value.contains(&q)
    };
    let mut docs = vec![DocId::Board];
    docs.extend(vm);
    docs.extend(
        (0..model.vms.len())
            .map(DocId::Vm)
            .filter(|d| Some(*d) != vm),
    );
    docs.into_iter()
        .flat_map(|doc| {
            model
                .settings(doc)
                .iter()
                .enumerate()
                .filter(move |(index, s)| hit(doc, *index, s))
                .map(move |(index, _)| SettingRef { doc, index })
        })
        .collect()
}

/// The full help of a row, for the `?` window.
pub fn help(model: &Model, row: &Row) -> (String, Vec<String>) {
    match &row.kind {
        RowKind::Setting(r) => setting_help(model, *r),
        RowKind::Open(p) => (title(model, p), vec![row.hint.clone()]),
        RowKind::VmFile(rel) => vm_file_help(model, rel),
        RowKind::Item(vm, l, i) => item_help(model, *vm, *l, Some(*i)),
        RowKind::AddItem(vm, l) => item_help(model, *vm, *l, None),
        RowKind::Channel(..) | RowKind::AddChannel(_) => channel_help(row),
    }
}

fn channel_help(row: &Row) -> (String, Vec<String>) {
    let mut lines = vec![
        row.value.clone(),
        String::new(),
        "An inter-VM channel is an inline table here, a [[devices.channels]] table in the file:"
            .into(),
        "  name      the channel's name, the same in every member's config".into(),
        "  size      bytes of shared memory (4 KiB multiples), the same for every member".into(),
        "  vms       the member VMs by name, this one included, in the same order everywhere"
            .into(),
        "  gpa       where this VM sees the region".into(),
        "  access    \"rw\" (default) or \"ro\"".into(),
        "  doorbell  optional: this VM's doorbell window (4 KiB), with irq".into(),
        "  irq       the interrupt a peer's ring raises in this VM".into(),
        "The checks run again after each change: every member must name the channel alike.".into(),
    ];
    if !row.hint.starts_with("Inter-VM") && !row.hint.starts_with("Enter or a") {
        lines.push(String::new());
        lines.push(format!("Problem: {}", row.hint));
    }
    (row.label.clone(), lines)
}

fn setting_help(model: &Model, r: SettingRef) -> (String, Vec<String>) {
    let (Some(s), Some(doc)) = (model.setting(r), model.doc(r.doc)) else {
        return (String::new(), Vec::new());
    };
    let mut lines = vec![
        format!("File:  {}", doc.shown),
        format!(
            "Type:  {}{}",
            s.kind.describe(),
            if s.optional { " (optional)" } else { "" }
        ),
    ];
    if let Some(d) = s.default {
        lines.push(format!("Default when left out: {d}"));
    }
    lines.push(format!("Value: {}", show_value(s, model.value(r))));
    lines.push(String::new());
    lines.push(s.help.clone());
    if let Kind::Choice(opts) | Kind::Multi(opts) = &s.kind {
        lines.push(String::new());
        lines.push("Allowed values:".into());
        for o in opts {
            lines.push(format!("  {}  {}", o.label(), o.help));
        }
    }
    push_problems(&mut lines, &model.setting_diags(r));
    (s.name(), lines)
}

fn vm_file_help(model: &Model, rel: &str) -> (String, Vec<String>) {
    let on = model.selected_vms().iter().any(|r| r == rel);
    let mut lines = vec![
        format!("{} ({})", vm_summary(&vm_text(model, rel)), rel),
        format!(
            "{} in vm_configs: Space changes that, Enter opens the file.",
            if on { "Listed" } else { "Not listed" }
        ),
    ];
    let diags: Vec<&Diagnostic> = model.diags.iter().filter(|d| d.file == rel).collect();
    push_problems(&mut lines, &diags);
    (rel.to_string(), lines)
}

fn item_help(model: &Model, vm: DocId, list: List, i: Option<usize>) -> (String, Vec<String>) {
    let mut lines = list.help();
    let key = match i {
        Some(i) => key_of(list.loc()).index(i),
        None => key_of(list.loc()),
    };
    if let (Some(i), Some(v)) = (i, i.and_then(|i| model.items(vm, list).get(i).cloned())) {
        lines.insert(
            0,
            format!("{} {i}: {}", list.item(), describe_item(list, &v)),
        );
    }
    push_problems(&mut lines, &model.diags_for(vm, &key));
    (key.to_string(), lines)
}

fn push_problems(lines: &mut Vec<String>, diags: &[&Diagnostic]) {
    if diags.is_empty() {
        return;
    }
    lines.push(String::new());
    lines.push("Problems:".into());
    for d in diags {
        lines.push(format!("  {}", short_diag(d)));
    }
}

/// A diagnostic, short, for the status line: `file name: key: message`.
pub fn one_line(d: &Diagnostic) -> String {
    if d.key == KeyPath::default() {
        format!("{}: {}", file_name(&d.file), d.message)
    } else {
        format!("{}: {}: {}", file_name(&d.file), d.key, d.message)
    }
}

/// A diagnostic on one line: `error: file: key: message`.
pub fn short_diag(d: &Diagnostic) -> String {
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    if d.key == KeyPath::default() {
        format!("{kind}: {}: {}", d.file, d.message)
    } else {
        format!("{kind}: {}: {}: {}", d.file, d.key, d.message)
    }
}
