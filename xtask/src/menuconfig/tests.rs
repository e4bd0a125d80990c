//! Tests of the model (edit, check, save keeping comments) and of the views, drawn
//! with ratatui's `TestBackend`, driven by the same key events the terminal sends.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use toml_edit::Value;

use super::app::{App, Popup};
use super::doc::{EditDoc, Loc};
use super::model::{DocId, Model, SettingRef};
use super::rows::{Page, RowKind};
use super::schema::List;
use super::truth::{kernel_features, kernel_targets, vm_files, Truth};
use super::{board_file, view};
use crate::cmd::build::DEFAULT_BOARD;

const VM_A: &str = "configs/vms/testguest-aarch64-qemu-smp2-a.toml";
const VM_B: &str = "configs/vms/testguest-aarch64-qemu-smp2-b.toml";
const VM_FAULT: &str = "configs/vms/testguest-aarch64-qemu-smp2-fault.toml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the repository")
}

/// A scratch copy of the repository's configs, with `.build.toml` from the
/// default board.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("xtask-menuconfig-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["configs/board", "configs/vms"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
                std::fs::copy(e.path(), root.join(dir).join(e.file_name())).unwrap();
            }
        }
        board_file(&root, None).unwrap();
        Fixture { root }
    }

    fn build_toml(&self) -> PathBuf {
        self.root.join(".build.toml")
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap()
    }

    fn truth(&self) -> Truth {
        static REPO: OnceLock<(Vec<String>, Vec<String>, Vec<super::truth::Feature>)> =
            OnceLock::new();
        let (targets, unported, features) = REPO.get_or_init(|| {
            let (t, u) = kernel_targets(repo()).unwrap();
            (t, u, kernel_features(repo()).unwrap())
        });
        Truth {
            targets: targets.clone(),
            unported_targets: unported.clone(),
            features: features.clone(),
            vm_files: vm_files(&self.root),
            guest_crates: vec!["testguest".into()],
        }
    }

    fn model(&self) -> Model {
        let path = self.build_toml();
        let doc = EditDoc::open(&path, ".build.toml".into()).unwrap();
        Model::new(&self.root, self.truth(), doc)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn board_ref(m: &Model, loc: Loc) -> SettingRef {
    m.find(DocId::Board, loc).unwrap()
}

/// The lines that differ between two texts of the same number of lines.
fn changed_lines(before: &str, after: &str) -> Vec<(String, String)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(a.len(), b.len(), "line count changed:\n{after}");
    a.iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect()
}

#[test]
fn every_config_of_the_repo_round_trips_byte_for_byte() {
    for dir in ["configs/board", "configs/vms"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let doc = EditDoc::from_text(&e.path(), "x".into(), text.clone()).unwrap();
            assert_eq!(doc.text(), text, "{}", e.path().display());
            assert!(!doc.is_modified());
        }
    }
}

#[test]
fn editing_log_and_a_feature_changes_exactly_those_lines() {
    let f = Fixture::new();
    let before = f.read(".build.toml");
    let mut m = f.model();
    assert!(m.errors().next().is_none(), "{:?}", m.diags);
    m.apply_text(board_ref(&m, Loc::top("log")), "Debug")
        .unwrap();
    m.set_list(board_ref(&m, Loc::top("features")), &[]);
    assert!(m.is_modified());
    assert_eq!(m.save().unwrap(), vec![".build.toml".to_string()]);
    let after = f.read(".build.toml");
    assert_eq!(
        changed_lines(&before, &after),
        vec![
            (
                "features = [\"semihosting-exit\", \"s2-page-mappings\"]".into(),
                "features = []".into()
            ),
            ("log = \"Info\"".into(), "log = \"Debug\"".into()),
        ]
    );
    assert!(
        after.contains("# Exit QEMU with a status code"),
        "comments kept"
    );
    assert!(!m.is_modified());
}

#[test]
fn undoing_an_edit_restores_the_original_text() {
    let f = Fixture::new();
    let before = f.read(".build.toml");
    let mut m = f.model();
    let log = board_ref(&m, Loc::top("log"));
    m.apply_text(log, "Warn").unwrap();
    assert!(m.is_changed(log));
    m.apply_text(log, "Info").unwrap();
    assert!(!m.is_modified());
    // A multi-line list: remove an entry, then add it back.
    m.toggle_vm(VM_A);
    assert_eq!(m.selected_vms(), vec![VM_B.to_string()]);
    let text = m.board.text();
    assert!(
        text.contains(&format!("vm_configs = [\n    \"{VM_B}\",\n]")),
        "{text}"
    );
    m.toggle_vm(VM_A);
    assert_eq!(m.selected_vms(), vec![VM_B.to_string(), VM_A.to_string()]);
    m.toggle_vm(VM_A);
    m.toggle_vm(VM_B);
    m.toggle_vm(VM_A);
    m.toggle_vm(VM_B);
    assert_eq!(m.board.text(), before);
    assert!(!m.is_modified());
}

#[test]
fn added_entries_follow_the_list_style() {
    let f = Fixture::new();
    let mut m = f.model();
    m.toggle_vm(VM_FAULT);
    let text = m.board.text();
    assert!(
        text.contains(&format!("\"{VM_B}\",\n    \"{VM_FAULT}\",\n]")),
        "{text}"
    );
}

#[test]
fn comments_order_and_unknown_keys_survive_a_save() {
    let dir = std::env::temp_dir().join(format!("xtask-menuconfig-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.toml");
    let text = "# head\nzeta = 1 # why\nlog = \"Info\"  # level\nalpha = [1, 2]\n\n[custom]\nkeep = \"me\"\n";
    std::fs::write(&path, text).unwrap();
    let mut doc = EditDoc::open(&path, "x.toml".into()).unwrap();
    doc.set(Loc::top("log"), Some(Value::from("Trace")));
    doc.set(Loc::at("new", "key"), Some(Value::from(3)));
    doc.save().unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        saved,
        "# head\nzeta = 1 # why\nlog = \"Trace\"  # level\nalpha = [1, 2]\n\n[custom]\nkeep = \"me\"\n\n[new]\nkey = 3\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn type_and_range_are_checked_as_typed() {
    let f = Fixture::new();
    let mut m = f.model();
    let smp = board_ref(&m, Loc::top("smp"));
    assert!(m.apply_text(smp, "0").unwrap_err().contains("out of range"));
    assert!(m
        .apply_text(smp, "four")
        .unwrap_err()
        .contains("not an integer"));
    let log = board_ref(&m, Loc::top("log"));
    let err = m.apply_text(log, "Loud").unwrap_err();
    assert!(err.contains("Trace, Debug, Info, Warn, Error"), "{err}");
    assert!(!m.is_modified(), "refused input changes nothing");
}

#[test]
fn invalid_configs_are_not_saved_and_say_why() {
    let f = Fixture::new();
    let before = f.read(".build.toml");
    let mut m = f.model();
    m.apply_text(board_ref(&m, Loc::top("hv_load_addr")), "0x4020_1000")
        .unwrap();
    let r = board_ref(&m, Loc::top("hv_load_addr"));
    let diags = m.setting_diags(r);
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("not aligned to 2 MiB")),
        "{diags:?}"
    );
    let why = m.save().unwrap_err();
    assert!(
        why.contains("not saved") && why.contains("hv_load_addr"),
        "{why}"
    );
    assert_eq!(f.read(".build.toml"), before, "nothing written");
    // Fewer CPUs than the VMs need: the same cross-check as build.
    m.apply_text(r, "0x4020_0000").unwrap();
    m.apply_text(board_ref(&m, Loc::top("smp")), "3").unwrap();
    let why = m.save().unwrap_err();
    assert!(
        why.contains("cpu_mpidrs: lists 4 CPUs but smp = 3"),
        "{why}"
    );
    m.apply_text(board_ref(&m, Loc::top("cpu_mpidrs")), "[0, 1, 2]")
        .unwrap();
    let why = m.save().unwrap_err();
    assert!(why.contains("the VMs need 4 vCPUs"), "{why}");
}

#[test]
fn vm_configs_are_edited_with_the_checks_of_build() {
    let f = Fixture::new();
    let mut m = f.model();
    let vm = m.open_vm(VM_A).unwrap();
    let name = m.find(vm, Loc::at("base", "name")).unwrap();
    m.apply_text(name, "vm2").unwrap();
    // Reported, as by build, on the later of the two files.
    assert!(
        m.errors()
            .any(|d| d.message.contains("duplicate VM name \"vm2\"")),
        "{:?}",
        m.diags
    );
    m.apply_text(name, "").unwrap();
    assert!(m
        .setting_diags(name)
        .iter()
        .any(|d| d.message.contains("must be non-empty")));
    m.apply_text(name, "vm1").unwrap();
    assert!(!m.is_modified());
    let mode = m.find(vm, Loc::at("devices", "interrupt_mode")).unwrap();
    m.apply_text(mode, "no_irq").unwrap();
    // An overlapping region, then a good one.
    m.set_item(vm, List::Regions, 1, "[0x4080_0000, 0x100_0000, 0x7, 0]")
        .unwrap();
    let regions = super::model::key_of(List::Regions.loc());
    assert!(m
        .diags_for(vm, &regions)
        .iter()
        .any(|d| d.message.contains("overlaps")));
    assert!(m
        .set_item(vm, List::Regions, 1, "[1, 2]")
        .unwrap_err()
        .contains("4 non-negative"));
    m.remove_item(vm, List::Regions, 1);
    let saved = m.save().unwrap();
    assert_eq!(saved, vec![VM_A.to_string()]);
    let text = f.read(VM_A);
    assert!(text.contains("interrupt_mode = \"no_irq\""));
    assert!(text.contains("# Guest VM name: prefixes every line"));
}

#[test]
fn a_vm_only_looked_at_does_not_block_saving() {
    let f = Fixture::new();
    let mut m = f.model();
    // An RK3588 VM names MPIDRs the QEMU board does not have: an error, but the
    // file is neither bundled nor modified.
    let vm = m
        .open_vm("configs/vms/testguest-aarch64-rk3588-smp2-a.toml")
        .unwrap();
    assert!(m.errors().any(|d| d.file.ends_with("rk3588-smp2-a.toml")));
    assert!(m.blocking_errors().is_empty());
    m.apply_text(board_ref(&m, Loc::top("log")), "Warn")
        .unwrap();
    assert!(m.save().is_ok());
    // Once modified, its errors count.
    let id = m.find(vm, Loc::at("base", "id")).unwrap();
    m.apply_text(id, "7").unwrap();
    assert!(m.save().unwrap_err().contains("phys_cpu_ids"));
}

#[test]
fn vm_choices_follow_the_board_arch() {
    let f = Fixture::new();
    std::fs::write(
        f.root.join("configs/vms/linux-riscv64-qemu-smp1.toml"),
        "[base]\nname = \"r\"\n",
    )
    .unwrap();
    std::fs::write(
        f.root.join("configs/vms/mystery.toml"),
        "[base]\nname = \"m\"\n",
    )
    .unwrap();
    let m = f.model();
    let rels: Vec<String> = m.vm_choices().into_iter().map(|v| v.rel).collect();
    assert!(rels.contains(&VM_FAULT.to_string()));
    assert!(rels.contains(&"configs/vms/mystery.toml".to_string()));
    assert!(!rels.iter().any(|r| r.contains("riscv64")), "{rels:?}");
}

#[test]
fn build_toml_is_created_from_the_default_board_once() {
    let f = Fixture::new();
    std::fs::remove_file(f.build_toml()).unwrap();
    let (path, created) = board_file(&f.root, None).unwrap();
    assert_eq!(path, f.build_toml());
    assert_eq!(created.as_deref(), Some(DEFAULT_BOARD));
    assert_eq!(f.read(".build.toml"), f.read(DEFAULT_BOARD));
    assert_eq!(board_file(&f.root, None).unwrap().1, None);
    assert!(board_file(&f.root, Some(&f.root.join("nope.toml"))).is_err());
}

// ---- views and keys ----

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\x1b' => KeyCode::Esc,
            '^' => KeyCode::Up,
            'v' => KeyCode::Down,
            c => KeyCode::Char(c),
        };
        app.on_key(key(code));
    }
}

fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect()
}

fn has(lines: &[String], text: &str) -> bool {
    lines.iter().any(|l| l.contains(text))
}

#[test]
fn main_page_fits_80x24() {
    let f = Fixture::new();
    let app = App::new(f.model());
    let s = screen(&app, 80, 24);
    assert!(s[0].contains("menuconfig: .build.toml > Build"), "{}", s[0]);
    assert!(has(&s, "target") && has(&s, "aarch64-unknown-none-softfloat"));
    assert!(has(&s, "features") && has(&s, "semihosting-exit"));
    assert!(has(&s, "vm_configs") && has(&s, "2 selected --->"));
    assert!(has(&s, "Board hardware") && has(&s, "QEMU"));
    assert!(s[22].contains(".build.toml [saved]  valid"), "{}", s[22]);
    assert!(s[23].contains("q quit"), "{}", s[23]);
    assert!(s.iter().all(|l| l.chars().count() == 80));
}

#[test]
fn search_jump_and_choose_a_log_level() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "/log");
    assert!(has(&screen(&app, 80, 24), "1 setting matches"));
    press(&mut app, "\n");
    assert!(matches!(app.page().page, Page::Search { .. }));
    press(&mut app, "\n");
    assert_eq!(app.page().page, Page::Main);
    assert_eq!(app.page().cursor, 2);
    press(&mut app, "\n");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "(*) Info") && has(&s, "( ) Trace"), "{s:#?}");
    press(&mut app, "^\n");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "*  log             Debug"), "{s:#?}");
    assert!(s[22].contains("[modified]"), "{}", s[22]);
}

#[test]
fn features_are_a_checklist() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "j\n");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "[x] s2-page-mappings"), "{s:#?}");
    assert!(has(&s, "[x] semihosting-exit"), "{s:#?}");
    assert!(
        has(&s, "Map guest RAM with 4 KiB stage-2 pages"),
        "help of the option under the cursor: {s:#?}"
    );
    press(&mut app, " ");
    assert!(has(&screen(&app, 80, 24), "[ ] s2-page-mappings"));
    press(&mut app, "j");
    assert!(
        has(&screen(&app, 80, 24), "Exit QEMU through Arm semihosting"),
        "help follows the cursor"
    );
    press(&mut app, " ");
    assert!(has(&screen(&app, 80, 24), "[ ] semihosting-exit"));
    press(&mut app, "\n");
    assert!(has(&screen(&app, 80, 24), "features        (none)"));
    // Esc in the checklist keeps the value.
    press(&mut app, "\n \x1b");
    assert!(has(&screen(&app, 80, 24), "features        (none)"));
}

#[test]
fn quitting_with_changes_asks_first() {
    let f = Fixture::new();
    let before = f.read(".build.toml");
    let mut app = App::new(f.model());
    press(&mut app, "jjj\n");
    assert_eq!(
        app.model
            .board
            .get(Loc::top("to_bin"))
            .and_then(Value::as_bool),
        Some(false)
    );
    press(&mut app, "q");
    assert!(matches!(app.popup, Some(Popup::ConfirmQuit)));
    assert!(has(&screen(&app, 80, 24), "unsaved changes"));
    press(&mut app, "\x1b");
    assert!(!app.quit && app.popup.is_none());
    press(&mut app, "qn");
    assert!(app.quit);
    assert_eq!(f.read(".build.toml"), before);

    let mut app = App::new(f.model());
    press(&mut app, "jjj\nqy");
    assert!(app.quit);
    assert!(f.read(".build.toml").contains("to_bin = false"));
}

#[test]
fn quit_without_changes_does_not_ask() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "q");
    assert!(app.quit);
}

#[test]
fn help_shows_type_default_and_allowed_values() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "jj?");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "Help: log"), "{s:#?}");
    assert!(has(&s, "one of: Trace, Debug, Info, Warn, Error"));
    assert!(has(&s, "Allowed values:"));
    assert!(has(&s, "Default when left out: \"Info\""));
    press(&mut app, "x");
    assert!(app.popup.is_none());
}

#[test]
fn bad_input_keeps_the_editor_open_with_the_reason() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "Gk\n");
    assert_eq!(app.page().page, Page::Qemu);
    press(&mut app, "\x1b");
    press(&mut app, "k\n");
    assert_eq!(app.page().page, Page::Hardware);
    press(&mut app, "jj\n");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "0\n");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "0 is out of range"), "{s:#?}");
    app.on_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
    press(&mut app, "2\n");
    assert!(app.popup.is_none());
    let s = screen(&app, 80, 24);
    assert!(has(&s, "*  smp              2"), "{s:#?}");
    assert!(has(&s, " ! cpu_mpidrs"), "{s:#?}");
    assert!(s[22].contains("1 error: .build.toml: cpu_mpidrs: lists 4 CPUs but smp"));
}

#[test]
fn vm_editor_and_regions_from_the_list() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "jjjjj\n");
    assert_eq!(app.page().page, Page::VmList);
    // At VM a's row (the list is longer than the screen as configs/vms grows).
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_A.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    let s = screen(&app, 80, 24);
    assert!(has(&s, "[x] testguest-aarch64-qemu-smp2-a.toml"), "{s:#?}");
    assert!(has(&s, "vm1, 2 vCPUs, 16 MiB"));
    // Down to the fault VM, select it: 6 vCPUs on a 4-CPU board.
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_FAULT.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    press(&mut app, " ");
    assert!(has(
        &screen(&app, 80, 24),
        "[x] testguest-aarch64-qemu-smp2-fault.toml"
    ));
    assert!(app.model.errors().any(|d| d.message.contains("vCPUs")));
    press(&mut app, " ");
    // Open VM a, edit cpu_num, then its regions.
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_A.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    press(&mut app, "\n");
    assert!(matches!(app.page().page, Page::Vm(_)));
    let s = screen(&app, 80, 24);
    assert!(
        s[1].contains("VM config testguest-aarch64-qemu-smp2-a.toml"),
        "{}",
        s[1]
    );
    press(&mut app, "jjj\n");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "1\n");
    assert!(has(&screen(&app, 80, 24), "[modified (+1 VM file)]"));
    press(&mut app, "jjjjjjj\n");
    assert!(matches!(app.page().page, Page::List(_, List::Regions)));
    press(&mut app, "a");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "[0x41000000, 0x100_0000, 0x7, 0]"), "{s:#?}");
    press(&mut app, "\n");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "region 1") && has(&s, "0x41000000..0x42000000  16 MiB  RWX---  allocate"));
    press(&mut app, "d");
    let s = screen(&app, 80, 24);
    assert!(has(&s, "region 1 removed"));
    assert!(!has(&s, "0x41000000..0x42000000"), "{s:#?}");
    press(&mut app, "\x1b\x1b\x1b");
    assert_eq!(app.page().page, Page::Main);
}

#[test]
fn any_size_from_80x24_up_and_resize() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "jjjjj\n");
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    for (w, h) in [(80, 24), (132, 43), (200, 60), (80, 24)] {
        t.backend_mut().resize(w, h);
        t.autoresize().unwrap();
        t.draw(|f| view::draw(f, &app)).unwrap();
        let buf = t.backend().buffer();
        assert_eq!((buf.area.width, buf.area.height), (w, h));
        let last: String = (0..w)
            .map(|x| buf[(x, h - 1)].symbol().to_string())
            .collect();
        assert!(last.contains("Space select"), "{last}");
        let full: String = (0..w).map(|x| buf[(x, 3)].symbol().to_string()).collect();
        assert!(full.contains("-aarch64-qemu-"), "{full}");
    }
    let tiny = screen(&app, 30, 8);
    assert!(tiny.join("").contains("needs at least"), "{tiny:#?}");
}

#[test]
fn word_wrap_estimate_is_not_short() {
    assert_eq!(view::wrapped_lines("", 10), 1);
    assert_eq!(view::wrapped_lines("abc def", 7), 1);
    assert_eq!(view::wrapped_lines("abc defg", 7), 2);
    assert_eq!(view::wrapped_lines("abcdefghijklmno", 5), 3);
}

/// The row of setting `name` on the current page.
fn goto_setting(app: &mut App, name: &str) {
    let pos = app
        .rows()
        .iter()
        .position(|r| match &r.kind {
            RowKind::Setting(sr) => app.model.setting(*sr).is_some_and(|s| s.name() == name),
            _ => false,
        })
        .unwrap_or_else(|| panic!("no row {name}"));
    app.stack.last_mut().unwrap().cursor = pos;
}

fn open_vm_a(app: &mut App) {
    press(app, "gjjjjj\n");
    assert_eq!(app.page().page, Page::VmList);
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_A.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    press(app, "\n");
    assert!(matches!(app.page().page, Page::Vm(_)));
}

#[test]
fn the_vm_editor_covers_devices_cpu_sets_and_image_location() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    open_vm_a(&mut app);
    let s = screen(&app, 100, 40);
    assert!(has(&s, "phys_cpu_sets"), "{s:#?}");
    assert!(
        s.iter()
            .any(|l| l.contains("image_location")
                && l.trim_end_matches([' ', '│']).ends_with("memory")),
        "{s:#?}"
    );
    assert!(
        has(&s, "emu_devices") && has(&s, "gicd, gicr, uart --->"),
        "{s:#?}"
    );
    assert!(
        has(&s, "passthrough_devices") && has(&s, "(none) --->"),
        "{s:#?}"
    );
    // image_location is a choice of memory and fs.
    goto_setting(&mut app, "kernel.image_location");
    press(&mut app, "\n");
    let s = screen(&app, 100, 40);
    assert!(
        has(&s, "memory") && has(&s, "fs") && has(&s, "files on the boot card"),
        "{s:#?}"
    );
    press(&mut app, "\x1b");
    // phys_cpu_sets: one mask per vCPU.
    goto_setting(&mut app, "base.phys_cpu_sets");
    press(&mut app, "\n[0x1, 0x2]\n");
    assert!(app.popup.is_none());
    let doc = app.vm_context().unwrap();
    assert_eq!(
        compact_of(&app, doc, Loc::at("base", "phys_cpu_sets")),
        "[0x1, 0x2]"
    );
    // Emulated devices: listed one per row, described, edited one at a time.
    goto_setting(&mut app, "devices.emu_devices");
    press(&mut app, "\n");
    assert_eq!(app.page().page, Page::List(doc, List::EmuDevices));
    let s = screen(&app, 100, 40);
    assert!(has(&s, "uart  0x9000000+0x1000  irq 33  console"), "{s:#?}");
    assert!(has(&s, "<add a device>"), "{s:#?}");
    press(&mut app, "a");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "\"chan\", 0x0a00_0000, 0x1000, 0, 0x99, []\n");
    // The shape is right (the editor closes); emu_type 0x99 is refused by the
    // checks of build.
    assert!(app.popup.is_none(), "{:?}", app.popup);
    assert!(
        app.model
            .errors()
            .any(|d| d.message.contains("unknown emu_type 0x99")),
        "{:?}",
        app.model.diags
    );
    press(&mut app, "d");
    assert!(!app.model.errors().any(|d| d.message.contains("0x99")));
    press(&mut app, "\x1b");
    // Passthrough devices.
    goto_setting(&mut app, "devices.passthrough_devices");
    press(&mut app, "\na");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "\"rtc\", 0x0901_0000, 0x0901_0000, 0x1000, 34\n");
    assert!(app.popup.is_none(), "{:?}", app.popup);
    let s = screen(&app, 100, 40);
    assert!(
        has(&s, "rtc  0x9010000+0x1000 <- host 0x9010000  irq 34"),
        "{s:#?}"
    );
}

fn compact_of(app: &App, doc: DocId, loc: Loc) -> String {
    super::doc::compact(app.model.doc(doc).unwrap().get(loc).unwrap())
}

#[test]
fn typed_numbers_are_checked_as_they_are_typed() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "Gkk\n");
    assert_eq!(app.page().page, Page::Hardware);
    goto_setting(&mut app, "smp");
    press(&mut app, "\n");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "4");
    let error = |app: &App| match &app.popup {
        Some(Popup::Edit { error, .. }) => error.clone(),
        other => panic!("no edit window: {other:?}"),
    };
    assert_eq!(error(&app), None);
    press(&mut app, "x");
    let e = error(&app).expect("4x is refused while typing");
    assert!(e.contains("not an integer"), "{e}");
    assert!(
        has(&screen(&app, 80, 24), "not an integer"),
        "shown at once"
    );
    app.on_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
    assert_eq!(error(&app), None, "4 is fine again");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "0");
    assert!(error(&app).unwrap().contains("out of range"));
    // A region typed in its list window, too.
    press(&mut app, "\x1b\x1b");
    open_vm_a(&mut app);
    goto_setting(&mut app, "kernel.memory_regions");
    press(&mut app, "\na");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "0x4100_0000, 0x100_0000");
    assert!(error(&app)
        .unwrap()
        .contains("[gpa, size, flags, map_type]"));
    press(&mut app, ", 0x7, 0");
    assert_eq!(error(&app), None);
}

#[test]
fn features_of_another_architecture_are_not_offered() {
    let f = Fixture::new();
    let truth = f.truth();
    let arch = |n: &str| truth.features.iter().find(|x| x.name == n).unwrap().arch;
    assert_eq!(arch("semihosting-exit"), Some(crate::config::Arch::Aarch64));
    assert_eq!(arch("sifive-test-exit"), Some(crate::config::Arch::Riscv64));
    assert_eq!(arch("fs-vms"), None);
    assert_eq!(arch("s2-page-mappings"), None);
    let mut app = App::new(f.model());
    press(&mut app, "j\n");
    let s = screen(&app, 100, 30);
    assert!(has(&s, "semihosting-exit") && has(&s, "fs-vms"), "{s:#?}");
    assert!(!has(&s, "sifive-test-exit"), "riscv64 only: {s:#?}");
    press(&mut app, "\x1b");
    // On a riscv64 board it is the other way round.
    let r = board_ref(&app.model, Loc::top("target"));
    app.model
        .apply_text(r, "riscv64gc-unknown-none-elf")
        .unwrap();
    let r = board_ref(&app.model, Loc::top("arch"));
    app.model.set(r, None);
    press(&mut app, "gj\n");
    let s = screen(&app, 100, 30);
    assert!(has(&s, "sifive-test-exit"), "{s:#?}");
    // semihosting-exit is still set: it stays listed, marked as not allowed.
    assert!(has(&s, "not among the allowed values"), "{s:#?}");
}

#[test]
fn search_finds_settings_of_every_vm_file() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    assert!(app.model.vms.is_empty(), "no VM file opened yet");
    press(&mut app, "/cmdline\n");
    let rows = app.rows();
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert!(
        labels.contains(&"testguest-aarch64-qemu-smp2-a.toml > kernel.cmdline")
            && labels.contains(&"testguest-aarch64-qemu-smp2-b.toml > kernel.cmdline"),
        "{labels:?}"
    );
    // By value: VM b's name.
    press(&mut app, "\x1b/vm2\n");
    let labels: Vec<String> = app.rows().iter().map(|r| r.label.clone()).collect();
    assert!(
        labels.contains(&"testguest-aarch64-qemu-smp2-b.toml > base.name".to_string()),
        "{labels:?}"
    );
    press(&mut app, "\n");
    assert!(matches!(app.page().page, Page::Vm(_)));
}

#[test]
fn a_new_vm_config_from_a_template() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "jjjjj\n");
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_B.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    press(&mut app, "n");
    assert!(matches!(app.page().page, Page::Vm(_)));
    let new = "configs/vms/testguest-aarch64-qemu-smp2-b-new.toml";
    assert!(
        app.message.as_ref().unwrap().text.contains(new),
        "{:?}",
        app.message
    );
    assert!(app.model.selected_vms().contains(&new.to_string()));
    let doc = app.vm_context().unwrap();
    assert_eq!(compact_of(&app, doc, Loc::at("base", "id")), "3");
    assert_eq!(compact_of(&app, doc, Loc::at("base", "name")), "\"vm3\"");
    // Three VMs of 2 vCPUs on a 4-CPU board: the checks say so, nothing is saved.
    assert!(
        app.model.errors().any(|d| d.message.contains("vCPUs")),
        "{:?}",
        app.model.diags
    );
    assert!(!app.save());
    assert!(!f.root.join(new).exists());
    // One vCPU less for each is still too many; drop VM a from the board instead.
    press(&mut app, "\x1b");
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_A.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    press(&mut app, " ");
    assert!(app.save(), "{:?}", app.message);
    let text = f.read(new);
    assert!(
        text.contains("id = 3") && text.contains("name = \"vm3\""),
        "{text}"
    );
    assert!(f.read(".build.toml").contains(new));
    // The next one from the same template gets the next free name.
    let pos = app
        .rows()
        .iter()
        .position(|r| r.kind == RowKind::VmFile(VM_B.into()))
        .unwrap();
    app.stack.last_mut().unwrap().cursor = pos;
    press(&mut app, "n");
    let text = &app.message.as_ref().unwrap().text;
    assert!(
        text.starts_with("configs/vms/testguest-aarch64-qemu-smp2-b-new2.toml"),
        "{text}"
    );
    assert_eq!(
        compact_of(&app, app.vm_context().unwrap(), Loc::at("base", "id")),
        "4"
    );
}

/// Every key of every board file in the repository (and the test boards) is a
/// setting menuconfig shows (and so searches), but for the nested tables
/// `[image.bootloader]`, `[image.dtb]` and `[uboot.tftp]`.
#[test]
fn every_key_of_the_board_files_is_a_setting() {
    let settings = super::schema::board_settings(&Truth::default());
    let names: Vec<String> = settings.iter().map(|s| s.name()).collect();
    let nested = ["image.bootloader", "image.dtb", "uboot.tftp"];
    for dir in ["configs/board", "xtask/tests/data"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let doc: toml_edit::DocumentMut = text.parse().unwrap();
            if doc.get("target").is_none() {
                continue; // a VM config
            }
            for (k, item) in doc.iter() {
                match item.as_table() {
                    Some(t) => {
                        for (k2, _) in t.iter() {
                            let name = format!("{k}.{k2}");
                            assert!(
                                names.contains(&name) || nested.contains(&name.as_str()),
                                "{}: {name} is not a menuconfig setting",
                                e.path().display()
                            );
                        }
                    }
                    None => assert!(
                        names.contains(&k.to_string()),
                        "{}: {k} is not a menuconfig setting",
                        e.path().display()
                    ),
                }
            }
        }
    }
}

#[test]
fn search_and_edit_board_devices_and_image_settings() {
    let f = Fixture::new();
    let mut app = App::new(f.model());
    press(&mut app, "/gicd\n");
    let labels: Vec<String> = app.rows().iter().map(|r| r.label.clone()).collect();
    assert!(
        labels.contains(&"Hardware > devices.gicd".to_string()),
        "{labels:?}"
    );
    press(&mut app, "\n");
    assert_eq!(app.page().page, Page::Hardware);
    press(&mut app, "\n");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "[0x0800_0000]");
    let error = match &app.popup {
        Some(Popup::Edit { error, .. }) => error.clone(),
        other => panic!("{other:?}"),
    };
    assert!(error.unwrap().contains("[0x0900_0000, 0x1000]"));
    press(&mut app, "\x1b\x1b/uboot_dram_base\n\n");
    assert_eq!(app.page().page, Page::Image);
    press(&mut app, "\n0x4000_0000\n");
    assert!(app.popup.is_none());
    let r = board_ref(&app.model, Loc::at("image", "uboot_dram_base"));
    assert_eq!(
        app.model.value(r).and_then(|v| v.as_integer()),
        Some(0x4000_0000)
    );
}

/// Every key the VM configs of the repository use is a setting of the VM editor.
#[test]
fn every_key_of_the_vm_configs_is_a_setting() {
    let names: Vec<String> = super::schema::vm_settings()
        .iter()
        .map(|s| s.name())
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("configs/vms"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.push(repo().join("xtask/tests/data/fs-vm.toml"));
    for f in files {
        let doc: toml_edit::DocumentMut = std::fs::read_to_string(&f).unwrap().parse().unwrap();
        for (section, item) in doc.iter() {
            for (k, _) in item.as_table().unwrap().iter() {
                let name = format!("{section}.{k}");
                // Not a setting: `[[devices.channels]]` tables are rows of the VM's
                // page, edited as inline tables (`channels_are_shown_on_the_vm_page`,
                // `channels_are_edited_and_checked_on_the_vm_page`).
                if name == "devices.channels" {
                    continue;
                }
                assert!(names.contains(&name), "{}: {name}", f.display());
            }
        }
    }
}

/// A VM's `[[devices.channels]]` are rows of its page, one per channel with every
/// key as written.
#[test]
fn channels_are_shown_on_the_vm_page() {
    const IVC_A: &str = "configs/vms/testguest-aarch64-qemu-ivc-a.toml";
    let f = Fixture::new();
    let mut m = f.model();
    let vm = m.open_vm(IVC_A).unwrap();
    let rows = super::rows::rows(&m, &Page::Vm(vm));
    let shown: Vec<&super::rows::Row> = rows
        .iter()
        .filter(|r| matches!(r.kind, RowKind::Channel(..)))
        .collect();
    let doc: toml_edit::DocumentMut = f.read(IVC_A).parse().unwrap();
    let tables = doc["devices"]["channels"].as_array_of_tables().unwrap();
    assert!(!tables.is_empty(), "{IVC_A} has a channel");
    assert_eq!(shown.len(), tables.len());
    for (row, t) in shown.iter().zip(tables.iter()) {
        assert_eq!(
            row.label,
            format!("channel {}", t["name"].as_str().unwrap())
        );
        for (k, v) in t.iter() {
            let text = format!("{k} = {}", v.to_string().trim());
            assert!(row.value.contains(&text), "{text} not in {}", row.value);
        }
    }
    // A VM without channels has no such row.
    let plain = m.open_vm(VM_A).unwrap();
    assert!(!super::rows::rows(&m, &Page::Vm(plain))
        .iter()
        .any(|r| matches!(r.kind, RowKind::Channel(..))));
}

/// A VM's channels are edited on its page (Enter: an inline table; a: add; d:
/// delete); vmconfig's channel rules run after each change, the members together
/// too, and their problems show on the row with file, key and reason; saving keeps
/// the comment above the table.
#[test]
fn channels_are_edited_and_checked_on_the_vm_page() {
    const IVC_A: &str = "configs/vms/testguest-aarch64-qemu-ivc-a.toml";
    const IVC_B: &str = "configs/vms/testguest-aarch64-qemu-ivc-b.toml";
    let f = Fixture::new();
    let mut app = App::new(f.model());
    for rel in [VM_A, VM_B, IVC_A, IVC_B] {
        app.model.toggle_vm(rel);
    }
    let vm = app.model.open_vm(IVC_A).unwrap();
    app.stack.push(super::app::PageState {
        page: Page::Vm(vm),
        cursor: 0,
    });
    let chan_row = |app: &App, i: usize| {
        app.rows()
            .iter()
            .position(|r| r.kind == RowKind::Channel(vm, i))
    };
    assert!(
        !app.model
            .diags
            .iter()
            .any(|d| d.message.contains("channel")),
        "{:#?}",
        app.model.diags
    );
    // Enter on the channel: its table, to edit.
    app.stack.last_mut().unwrap().cursor = chan_row(&app, 0).unwrap();
    press(&mut app, "\n");
    let text = match &app.popup {
        Some(Popup::Edit { input, .. }) => input.text(),
        other => panic!("{other:?}"),
    };
    assert!(text.starts_with("{ name = \"link\""), "{text}");
    assert!(text.contains("gpa = 0x4100_0000"), "{text}");
    // Not a table: refused as typed.
    assert!(super::model::channel_table("[1, 2]")
        .unwrap_err()
        .contains("expected an inline table"));
    // Its region moved onto the VM's RAM: the row shows why, with file and key.
    app.popup = None;
    let moved = text.replace("gpa = 0x4100_0000", "gpa = 0x40ff_f000");
    app.model.set_channel(vm, 0, &moved).unwrap();
    let row = &app.rows()[chan_row(&app, 0).unwrap()];
    assert!(row.error && row.changed, "{row:?}");
    assert!(
        row.hint
            .starts_with("devices.channels[0].gpa: channel \"link\"'s region at 0x40fff000")
            && row.hint.contains("overlaps kernel.memory_regions[0]"),
        "{}",
        row.hint
    );
    assert!(app
        .model
        .diags
        .iter()
        .any(|d| d.file == IVC_A && d.key.to_string() == "devices.channels[0].gpa"));
    // A size its peer does not share: the members' rule speaks.
    let bigger = text.replace("size = 0x1_0000", "size = 0x2_0000");
    app.model.set_channel(vm, 0, &bigger).unwrap();
    assert!(
        app.model
            .diags
            .iter()
            .any(|d| d.message.contains("channel \"link\" has size 0x")),
        "{:#?}",
        app.model.diags
    );
    // Back as it was; a second channel added with `a`, then deleted with `d`.
    app.model.set_channel(vm, 0, &text).unwrap();
    assert!(!app
        .model
        .diags
        .iter()
        .any(|d| d.message.contains("channel")));
    press(&mut app, "a");
    let offered = match &app.popup {
        Some(Popup::Edit { input, .. }) => input.text(),
        other => panic!("{other:?}"),
    };
    assert!(offered.contains("vms = [\"ivc-a\", \"peer\"]"), "{offered}");
    let new = "{ name = \"side\", size = 0x1000, vms = [\"ivc-a\", \"ivc-b\"], gpa = 0x4200_0000 }";
    app.popup = None;
    app.model.set_channel(vm, 1, new).unwrap();
    let pos = chan_row(&app, 1).expect("a second channel row");
    assert_eq!(app.rows()[pos].label, "channel side");
    assert!(
        app.model.diags.iter().any(|d| d
            .message
            .contains("channel \"side\" is named by this VM only")),
        "{:#?}",
        app.model.diags
    );
    app.stack.last_mut().unwrap().cursor = pos;
    press(&mut app, "d");
    assert!(chan_row(&app, 1).is_none());
    assert!(!app
        .model
        .diags
        .iter()
        .any(|d| d.message.contains("channel")));
    // Saved: the file has the table, the comment above it kept.
    app.model
        .set_channel(vm, 0, &moved.replace("0x40ff_f000", "0x4180_0000"))
        .unwrap();
    assert!(app.save(), "{:#?}", app.model.diags);
    let saved = f.read(IVC_A);
    assert!(saved.contains("# An inter-VM channel"), "{saved}");
    let doc: toml_edit::DocumentMut = saved.parse().unwrap();
    let t = &doc["devices"]["channels"].as_array_of_tables().unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.get(0).unwrap()["gpa"].as_integer(), Some(0x4180_0000));
    assert_eq!(t.get(0).unwrap()["irq"].as_integer(), Some(40));
}
