//! The real terminal: raw mode and the alternate screen while the UI runs, and the
//! terminal given back as it was on every way out — a normal quit, an error
//! (a guard's `Drop`) and a panic (a panic hook that restores before the message).
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{bail, Context, Result};
use crossterm::event::{self, Event, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use super::app::App;
use super::view::draw;

/// When set, the UI panics right after its first frame: the end-to-end test uses it
/// to check that a panic gives the terminal back.
pub const TEST_PANIC_ENV: &str = "XTASK_MENUCONFIG_TEST_PANIC";

/// Whether the terminal is in UI mode (so restoring twice does nothing).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Puts the terminal back: leaves the alternate screen, shows the cursor, ends raw
/// mode. Safe to call at any time and more than once.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

/// Restores the terminal when dropped (on return and on `?`).
struct Guard;

impl Guard {
    fn enter() -> Result<Guard> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = Guard;
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        // Cleared with a plain escape sequence: ratatui's `clear` asks the terminal
        // for the cursor position, which not every terminal answers.
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            terminal::Clear(terminal::ClearType::All),
            cursor::Hide
        )
        .context("cannot switch to the alternate screen")?;
        Ok(guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Fails unless stdin and stdout are a terminal.
pub fn require_terminal() -> Result<()> {
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        bail!("menuconfig needs a terminal (stdin and stdout must be a TTY)");
    }
    Ok(())
}

/// Runs the UI until the user quits.
pub fn run(app: &mut App) -> Result<()> {
    require_terminal()?;
    let _guard = Guard::enter()?;
    let mut term =
        Terminal::new(CrosstermBackend::new(io::stdout())).context("cannot set up the terminal")?;
    let test_panic = std::env::var_os(TEST_PANIC_ENV).is_some();
    while !app.quit {
        term.draw(|f| draw(f, app))?;
        if test_panic {
            panic!("{TEST_PANIC_ENV} is set: a deliberate panic, to test the panic hook");
        }
        match event::read().context("cannot read from the terminal")? {
            Event::Key(k) if k.kind != KeyEventKind::Release => app.on_key(k),
            Event::Resize(..) => term.autoresize()?,
            _ => {}
        }
    }
    Ok(())
}
