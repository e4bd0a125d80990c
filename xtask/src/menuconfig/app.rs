//! The state of the terminal UI and what each key does. No terminal here: keys go
//! in ([`App::on_key`]), state comes out, so all of it is testable.
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use toml_edit::Value;

use super::doc::{compact, same};
use super::model::{DocId, Model, SettingRef};
use super::rows::{help, rows, search, Page, Row, RowKind};
use super::schema::{Kind, List, Opt};

/// A page and the row under the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageState {
    pub page: Page,
    pub cursor: usize,
}

/// A one-line text field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineInput {
    pub chars: Vec<char>,
    /// Cursor position, in characters.
    pub pos: usize,
}

impl LineInput {
    pub fn new(text: &str) -> LineInput {
        let chars: Vec<char> = text.chars().collect();
        LineInput {
            pos: chars.len(),
            chars,
        }
    }

    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Handles an editing key (others are ignored).
    fn on_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                self.chars.clear();
                self.pos = 0;
            }
            KeyCode::Char(c) if !ctrl => {
                self.chars.insert(self.pos, c);
                self.pos += 1;
            }
            KeyCode::Backspace if self.pos > 0 => {
                self.pos -= 1;
                self.chars.remove(self.pos);
            }
            KeyCode::Delete if self.pos < self.chars.len() => {
                self.chars.remove(self.pos);
            }
            KeyCode::Left => self.pos = self.pos.saturating_sub(1),
            KeyCode::Right => self.pos = (self.pos + 1).min(self.chars.len()),
            KeyCode::Home => self.pos = 0,
            KeyCode::End => self.pos = self.chars.len(),
            _ => {}
        }
    }
}

/// What an edit window changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditTarget {
    Setting(SettingRef),
    /// Entry `index` of a VM's list (`index` = its length: a new one).
    Item(DocId, List, usize),
    /// `[[devices.channels]]` table `index` of a VM (`index` = their number: a new one).
    Channel(DocId, usize),
}

/// A window over the page.
#[derive(Clone, Debug)]
pub enum Popup {
    Edit {
        target: EditTarget,
        title: String,
        input: LineInput,
        /// Why the last input was refused.
        error: Option<String>,
        /// What to type, shown while there is no error.
        note: String,
    },
    /// Choose one option (`multi` false) or any (`multi` true).
    Pick {
        setting: SettingRef,
        options: Vec<Opt>,
        checked: Vec<bool>,
        cursor: usize,
        multi: bool,
    },
    Help {
        title: String,
        lines: Vec<String>,
        scroll: u16,
    },
    Search {
        input: LineInput,
    },
    ConfirmQuit,
}

/// A line of feedback under the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// The whole UI state.
pub struct App {
    pub model: Model,
    pub stack: Vec<PageState>,
    pub popup: Option<Popup>,
    pub message: Option<Message>,
    pub quit: bool,
}

impl App {
    pub fn new(model: Model) -> App {
        App {
            model,
            stack: vec![PageState {
                page: Page::Main,
                cursor: 0,
            }],
            popup: None,
            message: None,
            quit: false,
        }
    }

    pub fn page(&self) -> &PageState {
        match self.stack.last() {
            Some(p) => p,
            None => &ROOT,
        }
    }

    fn page_mut(&mut self) -> &mut PageState {
        if self.stack.is_empty() {
            self.stack.push(ROOT.clone());
        }
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// The VM config open on the page stack (searches include its settings).
    pub fn vm_context(&self) -> Option<DocId> {
        self.stack.iter().rev().find_map(|p| match p.page {
            Page::Vm(d) | Page::List(d, _) => Some(d),
            _ => None,
        })
    }

    /// The rows of the current page.
    pub fn rows(&self) -> Vec<Row> {
        rows(&self.model, &self.page().page)
    }

    /// The row under the cursor.
    pub fn current(&self) -> Option<Row> {
        self.rows().into_iter().nth(self.page().cursor)
    }

    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
        });
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.popup = None;
            self.request_quit();
            return;
        }
        self.message = None;
        match self.popup.take() {
            Some(p) => self.on_popup_key(p, key),
            None => self.on_page_key(key),
        }
        self.clamp_cursor();
    }

    fn clamp_cursor(&mut self) {
        let n = self.rows().len();
        let p = self.page_mut();
        p.cursor = p.cursor.min(n.saturating_sub(1));
    }

    fn move_cursor(&mut self, delta: isize) {
        let n = self.rows().len() as isize;
        let p = self.page_mut();
        p.cursor = (p.cursor as isize + delta).clamp(0, (n - 1).max(0)) as usize;
    }

    fn on_page_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-10),
            KeyCode::PageDown => self.move_cursor(10),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            KeyCode::Enter => self.activate(false),
            KeyCode::Char(' ') => self.activate(true),
            KeyCode::Right | KeyCode::Char('l') => self.open_only(),
            KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') | KeyCode::Backspace => self.back(),
            KeyCode::Char('/') => {
                self.popup = Some(Popup::Search {
                    input: LineInput::default(),
                })
            }
            KeyCode::Char('?') | KeyCode::F(1) => self.show_help(),
            KeyCode::Char('e') => self.show_problems(),
            KeyCode::Char('s') => {
                self.save();
            }
            KeyCode::Char('q') => self.request_quit(),
            KeyCode::Char('n') if self.page().page == Page::VmList => self.new_vm(),
            KeyCode::Char('a') => self.add_item(),
            KeyCode::Char('d') | KeyCode::Delete => self.delete_item(),
            _ => {}
        }
    }

    /// Esc: back to the previous page; on the first page, quit.
    fn back(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        } else {
            self.request_quit();
        }
    }

    fn push(&mut self, page: Page) {
        self.stack.push(PageState { page, cursor: 0 });
    }

    /// Right/l: opens submenus, leaves values alone.
    fn open_only(&mut self) {
        let Some(row) = self.current() else { return };
        let opens = match &row.kind {
            RowKind::Setting(r) => matches!(
                self.model.setting(*r).map(|s| &s.kind),
                Some(Kind::VmList | Kind::List(_))
            ),
            RowKind::Open(_) | RowKind::VmFile(_) => true,
            _ => false,
        };
        if opens {
            self.activate(false);
        }
    }

    /// Enter (or Space, which toggles instead of opening where it can).
    fn activate(&mut self, space: bool) {
        let Some(row) = self.current() else { return };
        match row.kind {
            RowKind::Setting(r) => self.activate_setting(r),
            RowKind::Open(p) => self.push(p),
            RowKind::VmFile(rel) if space => self.model.toggle_vm(&rel),
            RowKind::VmFile(rel) => match self.model.open_vm(&rel) {
                Ok(doc) => self.push(Page::Vm(doc)),
                Err(e) => self.say(format!("cannot open {rel}: {e:#}"), true),
            },
            RowKind::Item(vm, l, i) => self.edit_item(vm, l, i),
            RowKind::AddItem(..) => self.add_item(),
            RowKind::Channel(vm, i) => self.edit_channel(vm, i),
            RowKind::AddChannel(vm) => self.edit_channel(vm, self.channel_count(vm)),
        }
    }

    fn activate_setting(&mut self, r: SettingRef) {
        if matches!(self.page().page, Page::Search { .. }) {
            self.jump_to(r);
            return;
        }
        let Some(s) = self.model.setting(r).cloned() else {
            return;
        };
        let value = self.model.value(r).cloned();
        match &s.kind {
            Kind::Bool => {
                let now = value.as_ref().and_then(Value::as_bool);
                let default_on = s.default == Some("true");
                self.model
                    .set(r, Some(Value::from(!now.unwrap_or(default_on))));
            }
            Kind::Choice(opts) => self.pick(r, opts, value.as_ref(), false),
            Kind::Multi(opts) => {
                let opts = self.model.offered(r, opts);
                self.pick(r, &opts, value.as_ref(), true)
            }
            Kind::VmList => self.push(Page::VmList),
            Kind::List(l) => self.push(Page::List(r.doc, *l)),
            Kind::Int { .. } | Kind::Str | Kind::Toml(_) => {
                let text = match &value {
                    Some(v) if matches!(s.kind, Kind::Str) => {
                        v.as_str().unwrap_or_default().to_string()
                    }
                    Some(v) => compact(v),
                    None => String::new(),
                };
                let note = match (s.optional, s.default) {
                    (true, Some(d)) => format!("empty: leave it out (default {d})"),
                    (true, None) => "empty: leave it out".into(),
                    (false, _) => format!("{} (required)", s.kind.describe()),
                };
                self.popup = Some(Popup::Edit {
                    target: EditTarget::Setting(r),
                    title: format!("{} ({})", s.name(), s.kind.describe()),
                    input: LineInput::new(&text),
                    error: None,
                    note,
                });
            }
        }
    }

    /// Opens the choice window; the current value is ticked (and offered even when
    /// it is not among the allowed values, so that nothing is lost by looking).
    fn pick(&mut self, r: SettingRef, opts: &[Opt], value: Option<&Value>, multi: bool) {
        let mut options = opts.to_vec();
        let current: Vec<Value> = match (multi, value) {
            (true, Some(Value::Array(a))) => a.iter().cloned().collect(),
            (false, Some(v)) => vec![v.clone()],
            _ => Vec::new(),
        };
        for v in &current {
            if !options.iter().any(|o| same(&o.value, v)) {
                options.push(Opt {
                    value: v.clone(),
                    help: "(current value; not among the allowed values)".into(),
                });
            }
        }
        let checked: Vec<bool> = options
            .iter()
            .map(|o| current.iter().any(|v| same(v, &o.value)))
            .collect();
        let cursor = checked.iter().position(|c| *c).unwrap_or(0);
        self.popup = Some(Popup::Pick {
            setting: r,
            options,
            checked,
            cursor,
            multi,
        });
    }

    /// From a search result to the page the setting is on.
    fn jump_to(&mut self, r: SettingRef) {
        let Some(s) = self.model.setting(r) else {
            return;
        };
        let page = match (r.doc, s.group) {
            (DocId::Vm(_), _) => Page::Vm(r.doc),
            (_, super::schema::Group::Hardware) => Page::Hardware,
            (_, super::schema::Group::Qemu) => Page::Qemu,
            (_, super::schema::Group::Image) => Page::Image,
            _ => Page::Main,
        };
        match self.stack.iter().position(|p| p.page == page) {
            Some(i) => self.stack.truncate(i + 1),
            None => {
                self.stack.truncate(1);
                if page != Page::Main {
                    self.push(page);
                }
            }
        }
        let pos = self
            .rows()
            .iter()
            .position(|row| row.kind == RowKind::Setting(r));
        self.page_mut().cursor = pos.unwrap_or(0);
    }

    /// `n` on the VM list: a new VM config from the one under the cursor (or the
    /// first offered), opened for editing.
    fn new_vm(&mut self) {
        let template = match self.current().map(|r| r.kind) {
            Some(RowKind::VmFile(rel)) => Some(rel),
            _ => self.model.vm_choices().first().map(|f| f.rel.clone()),
        };
        let Some(template) = template else {
            self.say("no VM config to start from in configs/vms/", true);
            return;
        };
        match self.model.new_vm_from(&template) {
            Ok((rel, doc)) => {
                self.push(Page::Vm(doc));
                self.say(
                    format!("{rel}: a new VM config from {template}, in vm_configs (s writes it)"),
                    false,
                );
            }
            Err(e) => self.say(format!("{e:#}"), true),
        }
    }

    fn edit_item(&mut self, vm: DocId, list: List, i: usize) {
        let text = self
            .model
            .items(vm, list)
            .get(i)
            .map(compact)
            .unwrap_or_else(|| self.model.next_item(vm, list));
        self.popup = Some(Popup::Edit {
            target: EditTarget::Item(vm, list, i),
            title: format!("{} {i}: {}", list.item(), list.fields()),
            input: LineInput::new(&text),
            error: None,
            note: list.note(),
        });
    }

    fn add_item(&mut self) {
        match self.page().page {
            Page::List(vm, list) => {
                let n = self.model.items(vm, list).len();
                self.edit_item(vm, list, n);
            }
            Page::Vm(vm) => self.edit_channel(vm, self.channel_count(vm)),
            _ => {}
        }
    }

    fn delete_item(&mut self) {
        match self.current().map(|r| r.kind) {
            Some(RowKind::Item(vm, list, i)) => {
                self.model.remove_item(vm, list, i);
                self.say(
                    format!("{} {i} removed (not saved yet)", list.item()),
                    false,
                );
            }
            Some(RowKind::Channel(vm, i)) => {
                self.model.remove_channel(vm, i);
                self.say(format!("channel {i} removed (not saved yet)"), false);
            }
            _ => {}
        }
    }

    fn channel_count(&self, vm: DocId) -> usize {
        self.model.doc(vm).map_or(0, |d| d.channels().len())
    }

    fn edit_channel(&mut self, vm: DocId, i: usize) {
        self.popup = Some(Popup::Edit {
            target: EditTarget::Channel(vm, i),
            title: format!("channel {i}: {}", super::model::CHANNEL_FIELDS),
            input: LineInput::new(&self.model.channel_text(vm, i)),
            error: None,
            note: "an inline table; access \"rw\" or \"ro\"; doorbell and irq together or neither"
                .into(),
        });
    }

    fn show_help(&mut self) {
        let Some(row) = self.current() else { return };
        let (title, lines) = help(&self.model, &row);
        self.popup = Some(Popup::Help {
            title,
            lines,
            scroll: 0,
        });
    }

    fn show_problems(&mut self) {
        let mut lines: Vec<String> = self
            .model
            .diags
            .iter()
            .map(super::rows::short_diag)
            .collect();
        if lines.is_empty() {
            lines.push(
                "No problems: the configuration passes the checks of `cargo xtask build`.".into(),
            );
        }
        self.popup = Some(Popup::Help {
            title: "All problems".into(),
            lines,
            scroll: 0,
        });
    }

    /// `s`: saves every modified file, or says why not.
    pub fn save(&mut self) -> bool {
        if !self.model.is_modified() {
            self.say("nothing to save: no changes", false);
            return true;
        }
        match self.model.save() {
            Ok(files) => {
                self.say(format!("saved {}", files.join(", ")), false);
                true
            }
            Err(why) => {
                self.say(why, true);
                false
            }
        }
    }

    fn request_quit(&mut self) {
        if self.model.is_modified() {
            self.popup = Some(Popup::ConfirmQuit);
        } else {
            self.quit = true;
        }
    }

    fn on_popup_key(&mut self, mut popup: Popup, key: KeyEvent) {
        let keep = match &mut popup {
            Popup::Edit {
                input,
                target,
                error,
                ..
            } => match key.code {
                KeyCode::Esc => false,
                KeyCode::Enter => return self.finish_input(popup),
                _ => {
                    input.on_key(key);
                    *error = self.check_typed(target, &input.text());
                    true
                }
            },
            Popup::Search { input } => match key.code {
                KeyCode::Esc => false,
                KeyCode::Enter => return self.finish_input(popup),
                _ => {
                    input.on_key(key);
                    true
                }
            },
            Popup::Pick { .. } => return self.on_pick_key(popup, key),
            Popup::Help { scroll, .. } => match key.code {
                KeyCode::Down | KeyCode::Char('j') => {
                    *scroll = scroll.saturating_add(1);
                    true
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    *scroll = scroll.saturating_sub(1);
                    true
                }
                _ => false,
            },
            Popup::ConfirmQuit => match key.code {
                KeyCode::Char('y' | 'Y') => {
                    self.quit = self.save();
                    false
                }
                KeyCode::Char('n' | 'N') => {
                    self.quit = true;
                    false
                }
                KeyCode::Esc | KeyCode::Char('c' | 'C') => false,
                _ => true,
            },
        };
        if keep {
            self.popup = Some(popup);
        }
    }

    /// What is wrong with the text typed so far in an edit window (numbers and TOML
    /// values are checked as they are typed; strings when applied).
    pub fn check_typed(&self, target: &EditTarget, text: &str) -> Option<String> {
        match target {
            EditTarget::Setting(r) => {
                let s = self.model.setting(*r)?;
                match s.kind {
                    Kind::Int { .. } | Kind::Toml(_) => s.parse(text).err(),
                    _ => None,
                }
            }
            EditTarget::Item(_, list, _) => super::model::item_value(*list, text).err(),
            EditTarget::Channel(..) => super::model::channel_table(text).err(),
        }
    }

    /// Enter in a text field: apply the edit (the field stays open with the reason
    /// when the value is refused) or run the search.
    fn finish_input(&mut self, mut popup: Popup) {
        match &mut popup {
            Popup::Search { input } => self.finish_search(&input.text()),
            Popup::Edit {
                target,
                input,
                error,
                ..
            } => {
                let text = input.text();
                let result = match target {
                    EditTarget::Setting(r) => self.model.apply_text(*r, &text),
                    EditTarget::Item(vm, l, i) => self.model.set_item(*vm, *l, *i, &text),
                    EditTarget::Channel(vm, i) => self.model.set_channel(*vm, *i, &text),
                };
                match (result, target) {
                    (Err(e), _) => {
                        *error = Some(e);
                        self.popup = Some(popup);
                    }
                    (Ok(()), EditTarget::Item(_, _, i)) => self.page_mut().cursor = *i,
                    (Ok(()), EditTarget::Channel(vm, i)) => {
                        let (vm, i) = (*vm, *i);
                        let pos = self
                            .rows()
                            .iter()
                            .position(|r| r.kind == RowKind::Channel(vm, i));
                        self.page_mut().cursor = pos.unwrap_or(0);
                    }
                    (Ok(()), _) => {}
                }
            }
            _ => {}
        }
    }

    fn finish_search(&mut self, query: &str) {
        let query = query.trim();
        if query.is_empty() {
            return;
        }
        // Every VM config of the board is searched: open them (a file that cannot be
        // read is listed among the problems already).
        for rel in self.model.selected_vms() {
            let _ = self.model.open_vm(&rel);
        }
        let vm = self.vm_context();
        if search(&self.model, query, vm).is_empty() {
            self.say(format!("no setting matches \"{query}\""), true);
            return;
        }
        if let Some(PageState {
            page: Page::Search { .. },
            ..
        }) = self.stack.last()
        {
            self.stack.pop();
        }
        self.push(Page::Search {
            query: query.to_string(),
            vm,
        });
    }

    fn on_pick_key(&mut self, mut popup: Popup, key: KeyEvent) {
        let Popup::Pick {
            setting,
            options,
            checked,
            cursor,
            multi,
        } = &mut popup
        else {
            return;
        };
        let n = options.len();
        match key.code {
            KeyCode::Esc => return,
            KeyCode::Up | KeyCode::Char('k') => *cursor = cursor.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => *cursor = (*cursor + 1).min(n.saturating_sub(1)),
            KeyCode::Char(' ') if *multi => {
                if let Some(c) = checked.get_mut(*cursor) {
                    *c = !*c;
                }
            }
            KeyCode::Enter | KeyCode::Char(' ') => {
                let (r, multi, cursor) = (*setting, *multi, *cursor);
                self.finish_pick(r, options, checked, cursor, multi);
                return;
            }
            _ => {}
        }
        self.popup = Some(popup);
    }

    fn finish_pick(
        &mut self,
        r: SettingRef,
        options: &[Opt],
        checked: &[bool],
        cursor: usize,
        multi: bool,
    ) {
        if multi {
            let wanted: Vec<String> = options
                .iter()
                .zip(checked)
                .filter(|(_, c)| **c)
                .map(|(o, _)| o.label())
                .collect();
            self.model.set_list(r, &wanted);
        } else if let Some(o) = options.get(cursor) {
            self.model.set(r, Some(o.value.clone()));
        }
    }
}

static ROOT: PageState = PageState {
    page: Page::Main,
    cursor: 0,
};
