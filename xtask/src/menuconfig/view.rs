//! Drawing the UI with ratatui: a title line, the page's rows in a box, a help line,
//! the status line (file, modified, problems), the keys line, and windows over the
//! page for editing, choosing, help, search and the quit question. Everything is
//! laid out from the frame's size, so any terminal from 80x24 up works and a resize
//! is just the next draw.
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, LineInput, Popup};
use super::rows::{one_line, search, short_title, title, Page, Row, RowKind};
use super::schema::Opt;

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

const CURSOR: Style = Style::new().add_modifier(Modifier::REVERSED);
const ERROR: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const GOOD: Style = Style::new().fg(Color::Green);
const DIM: Style = Style::new().add_modifier(Modifier::DIM);
const CHANGED: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "menuconfig needs at least {MIN_WIDTH}x{MIN_HEIGHT} (now {}x{}); q quits",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [header, body, hint, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let rows = app.rows();
    draw_header(f, header, app);
    draw_rows(f, body, app, &rows);
    draw_hint(f, hint, app, rows.get(app.page().cursor));
    draw_status(f, status, app);
    f.render_widget(Paragraph::new(keys_line(app)).style(DIM), keys);
    if let Some(p) = &app.popup {
        draw_popup(f, area, app, p);
    }
}

fn draw_header(f: &mut Frame, area: Rect, app: &App) {
    let path: Vec<String> = app
        .stack
        .iter()
        .map(|p| short_title(&app.model, &p.page))
        .collect();
    let text = format!(
        " menuconfig: {} > {}",
        app.model.board.shown,
        path.join(" > ")
    );
    let style = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
    f.render_widget(Paragraph::new(text).style(style), area);
}

fn draw_rows(f: &mut Frame, area: Rect, app: &App, rows: &[Row]) {
    let cursor = app.page().cursor;
    let page_title = title(&app.model, &app.page().page);
    let mut block = Block::bordered().title(format!(" {page_title} "));
    if !rows.is_empty() {
        block = block.title_bottom(format!(" {}/{} ", cursor + 1, rows.len()));
    }
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height as usize;
    let offset = (cursor + 1).saturating_sub(height);
    let name_w = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(inner.width as usize * 3 / 5);
    let lines: Vec<Line> = rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, r)| row_line(r, name_w, i == cursor))
        .collect();
    if lines.is_empty() {
        f.render_widget(Paragraph::new("  (nothing here)").style(DIM), inner);
    } else {
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn row_line(r: &Row, name_w: usize, selected: bool) -> Line<'static> {
    let changed = if r.changed {
        Span::styled("*", CHANGED)
    } else {
        Span::raw(" ")
    };
    let problem = match (r.error, r.warning) {
        (true, _) => Span::styled("!", ERROR),
        (_, true) => Span::styled("?", CHANGED),
        _ => Span::raw(" "),
    };
    let label: String = r.label.chars().take(name_w).collect();
    let text = format!(" {label:<name_w$}  {}", r.value);
    let body = if selected {
        Span::styled(text, CURSOR)
    } else if matches!(r.kind, RowKind::Open(_)) {
        Span::styled(text, Style::new().add_modifier(Modifier::BOLD))
    } else {
        Span::raw(text)
    };
    Line::from(vec![changed, problem, body])
}

fn draw_hint(f: &mut Frame, area: Rect, app: &App, row: Option<&Row>) {
    let line = match (&app.message, row) {
        (Some(m), _) => Span::styled(m.text.clone(), if m.error { ERROR } else { GOOD }),
        (None, Some(r)) if r.error => Span::styled(r.hint.clone(), ERROR),
        (None, Some(r)) => Span::raw(r.hint.clone()),
        (None, None) => Span::raw(""),
    };
    f.render_widget(Paragraph::new(Line::from(vec![Span::raw(" "), line])), area);
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let m = &app.model;
    let mut spans = vec![Span::raw(format!(" {} ", m.board.shown))];
    let open_vms = m.vms.iter().filter(|d| d.is_modified()).count();
    if m.is_modified() {
        let extra = match open_vms {
            0 => String::new(),
            n => format!(" (+{n} VM file{})", if n == 1 { "" } else { "s" }),
        };
        spans.push(Span::styled(format!("[modified{extra}]"), CHANGED));
    } else {
        spans.push(Span::styled("[saved]", GOOD));
    }
    let errors: Vec<_> = m.errors().collect();
    match errors.first() {
        None => spans.push(Span::styled("  valid", GOOD)),
        Some(first) => {
            let n = errors.len();
            spans.push(Span::styled(
                format!("  {n} error{}: ", if n == 1 { "" } else { "s" }),
                ERROR,
            ));
            spans.push(Span::raw(one_line(first)));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn keys_line(app: &App) -> String {
    let common = "/ search  ? help  s save  q quit";
    match (&app.popup, &app.page().page) {
        (Some(Popup::Edit { .. }), _) => " Enter apply  Esc cancel  Ctrl-U clear".into(),
        (Some(Popup::Pick { multi: true, .. }), _) => {
            " Up/Down move  Space toggle  Enter apply  Esc cancel".into()
        }
        (Some(Popup::Pick { .. }), _) => " Up/Down move  Enter choose  Esc cancel".into(),
        (Some(Popup::Help { .. }), _) => " Up/Down scroll  any other key closes".into(),
        (Some(Popup::Search { .. }), _) => " type a word  Enter search  Esc cancel".into(),
        (Some(Popup::ConfirmQuit), _) => " y save and quit  n quit without saving  Esc stay".into(),
        (None, Page::VmList) => format!(" Space select  Enter open  n new  Esc back  {common}"),
        (None, Page::List(..)) => {
            " Enter edit  a add  d delete  Esc back  ? help  s save  q quit".into()
        }
        (None, Page::Search { .. }) => format!(" Enter go to  Esc back  {common}"),
        (None, _) => {
            " j/k move  Enter edit  Esc back  / search  ? help  e problems  s save  q quit".into()
        }
    }
}

/// How many lines `text` takes when word-wrapped to `width` columns.
pub fn wrapped_lines(text: &str, width: usize) -> usize {
    let width = width.max(1);
    let mut lines = 1;
    let mut used = 0;
    for word in text.split(' ') {
        let len = word.chars().count();
        if used > 0 && used + 1 + len <= width {
            used += 1 + len;
            continue;
        }
        if used > 0 {
            lines += 1;
        }
        // A word longer than the line is cut over several lines.
        lines += len.saturating_sub(1) / width;
        used = if len == 0 { 0 } else { (len - 1) % width + 1 };
    }
    lines
}

/// A rectangle of `w` x `h` centred in `area` (clipped to it).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width.saturating_sub(2));
    let h = h.min(area.height.saturating_sub(2));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_popup(f: &mut Frame, area: Rect, app: &App, popup: &Popup) {
    let width = area.width.saturating_sub(6).min(76);
    match popup {
        Popup::Edit {
            title,
            input,
            error,
            note,
            ..
        } => {
            let lines = vec![
                input_line(input, width.saturating_sub(4) as usize),
                Line::raw(""),
                match error {
                    Some(e) => Line::styled(e.clone(), ERROR),
                    None => Line::styled(note.clone(), DIM),
                },
            ];
            boxed(f, area, width, title, lines);
        }
        Popup::Pick { .. } => draw_pick(f, area, app, popup, width),
        Popup::Help {
            title,
            lines,
            scroll,
        } => draw_help(f, area, width, title, lines, *scroll),
        Popup::Search { input } => {
            let n = search(&app.model, input.text().trim(), app.vm_context()).len();
            let (s, es) = if n == 1 { ("", "es") } else { ("s", "") };
            let lines = vec![
                input_line(input, width.saturating_sub(4) as usize),
                Line::styled(format!("{n} setting{s} match{es} (name or help text)"), DIM),
            ];
            boxed(f, area, width, "Search settings", lines);
        }
        Popup::ConfirmQuit => {
            let lines = vec![
                Line::raw("There are unsaved changes. Save them before quitting?"),
                Line::raw(""),
                Line::raw("  y    save and quit"),
                Line::raw("  n    quit without saving"),
                Line::raw("  Esc  go back"),
            ];
            boxed(f, area, width.min(60), "Quit", lines);
        }
    }
}

fn draw_help(f: &mut Frame, area: Rect, width: u16, title: &str, lines: &[String], scroll: u16) {
    let text_w = width.saturating_sub(2).max(1) as usize;
    let needed: usize = lines.iter().map(|l| wrapped_lines(l, text_w)).sum();
    let h = (needed as u16 + 2).min(area.height.saturating_sub(4));
    let r = centered(area, width, h);
    let text: Vec<Line> = lines.iter().map(|l| Line::raw(l.clone())).collect();
    let block = Block::bordered()
        .title(format!(" Help: {title} "))
        .title_bottom(" any key closes ");
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        r,
    );
}

/// A window with a title and lines (wrapped; as tall as they need).
fn boxed(f: &mut Frame, area: Rect, width: u16, title: &str, lines: Vec<Line>) {
    let text_w = width.saturating_sub(2).max(1) as usize;
    let needed: usize = lines
        .iter()
        .map(|l| {
            let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            wrapped_lines(&text, text_w)
        })
        .sum();
    let r = centered(area, width, needed as u16 + 2);
    let p = Paragraph::new(lines)
        .block(Block::bordered().title(format!(" {title} ")))
        .wrap(Wrap { trim: false });
    f.render_widget(Clear, r);
    f.render_widget(p, r);
}

/// The text of an input field with the cursor shown, scrolled to keep it visible.
fn input_line(input: &LineInput, width: usize) -> Line<'static> {
    let width = width.max(2);
    let start = (input.pos + 1).saturating_sub(width);
    let visible: Vec<char> = input
        .chars
        .iter()
        .skip(start)
        .take(width)
        .copied()
        .collect();
    let at = input.pos - start;
    let before: String = visible.iter().take(at).collect();
    let under: String = visible.get(at).map(|c| c.to_string()).unwrap_or(" ".into());
    let after: String = visible.iter().skip(at + 1).collect();
    Line::from(vec![
        Span::raw(before),
        Span::styled(under, CURSOR),
        Span::raw(after),
    ])
}

fn draw_pick(f: &mut Frame, area: Rect, app: &App, popup: &Popup, width: u16) {
    let Popup::Pick {
        setting,
        options,
        checked,
        cursor,
        multi,
    } = popup
    else {
        return;
    };
    let name = app
        .model
        .setting(*setting)
        .map(|s| s.name())
        .unwrap_or_default();
    // Options, then a rule and up to three lines of the option's full help.
    let help_h: u16 = 4;
    let h = (options.len() as u16 + 2 + help_h).min(area.height.saturating_sub(4));
    let r = centered(area, width, h);
    let block = Block::bordered().title(format!(" {name} "));
    let inner = block.inner(r);
    f.render_widget(Clear, r);
    f.render_widget(block, r);
    let [list_area, help_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(help_h)]).areas(inner);
    let lines = pick_lines(options, checked, *cursor, *multi, list_area.height as usize);
    f.render_widget(Paragraph::new(lines), list_area);
    let help = options
        .get(*cursor)
        .map(|o| o.help.clone())
        .unwrap_or_default();
    let rule = "-".repeat(help_area.width as usize);
    f.render_widget(
        Paragraph::new(vec![Line::styled(rule, DIM), Line::raw(help)]).wrap(Wrap { trim: true }),
        help_area,
    );
}

/// The visible options of a choice window, scrolled to keep the cursor in view.
fn pick_lines(
    options: &[Opt],
    checked: &[bool],
    cursor: usize,
    multi: bool,
    visible: usize,
) -> Vec<Line<'static>> {
    let offset = (cursor + 1).saturating_sub(visible);
    let label_w = options.iter().map(|o| o.label().len()).max().unwrap_or(0);
    options
        .iter()
        .zip(checked)
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, (o, on))| {
            let mark = match (multi, on) {
                (true, true) => "[x]",
                (true, false) => "[ ]",
                (false, true) => "(*)",
                (false, false) => "( )",
            };
            let text = format!(" {mark} {:<label_w$}  {}", o.label(), o.help);
            if i == cursor {
                Line::styled(text, CURSOR)
            } else {
                Line::raw(text)
            }
        })
        .collect()
}
