//! `cargo xtask menuconfig`: a terminal UI (ratatui + crossterm) over the build
//! configuration `.build.toml` and the VM configs it bundles.
//!
//! Every setting has a type, a help text and, where it has them, allowed values read
//! from the repository ([`truth`]). Edits go through toml_edit ([`doc`]) so that
//! comments, key order and unknown keys survive and only changed values change;
//! after each edit the configuration is checked exactly as `cargo xtask build` checks
//! it ([`model`]), and nothing invalid is saved.
mod app;
mod doc;
mod model;
mod rows;
mod schema;
mod term;
mod truth;
mod view;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cmd::build::{absolute, DEFAULT_BOARD};
use crate::config::source::shown_path;
use crate::workspace::Workspace;

pub use app::App;
pub use doc::EditDoc;
pub use model::Model;
pub use truth::Truth;

/// Where menuconfig works.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The board file to edit (default `<root>/.build.toml`).
    pub config: Option<PathBuf>,
    /// The directory with `.build.toml` and `configs/` (default: the repository).
    pub root: Option<PathBuf>,
}

/// Runs menuconfig in the terminal.
pub fn menuconfig(ws: &Workspace, opts: &Options) -> Result<()> {
    let root = opts
        .root
        .as_deref()
        .map(absolute)
        .unwrap_or(ws.root.clone());
    let (path, created) = board_file(&root, opts.config.as_deref())?;
    let truth = Truth::load(&ws.root, &root, &ws.guest_crates)?;
    let doc = EditDoc::open(&path, shown_path(&path, &root)).with_context(|| {
        "menuconfig edits valid TOML only: fix the file, or start over with `cargo xtask defconfig <board>`"
    })?;
    let mut app = App::new(Model::new(&root, truth, doc));
    if let Some(from) = &created {
        app.say(
            format!(
                "{} did not exist: created it from {from}",
                app.model.board.shown
            ),
            false,
        );
    }
    term::run(&mut app)?;
    report(&app, created.as_deref());
    Ok(())
}

fn report(app: &App, created: Option<&str>) {
    let m = &app.model;
    if let Some(from) = created {
        println!("xtask: created {} from {from}", m.board.shown);
    }
    if m.is_modified() {
        println!("xtask: quit without saving: the changes were discarded");
    } else {
        println!("xtask: {}: no unsaved changes", m.board.shown);
    }
    let errors = m.errors().count();
    if errors > 0 {
        println!("xtask: {errors} problem(s) remain; `cargo xtask check` lists them");
    }
}

/// The board file to edit and, when it had to be created from the default board,
/// where from. `.build.toml` is created from `configs/board/qemu-aarch64.toml` when
/// missing; a file given with `--config` must exist.
pub fn board_file(root: &Path, config: Option<&Path>) -> Result<(PathBuf, Option<String>)> {
    if let Some(c) = config {
        let path = absolute(c);
        if !path.is_file() {
            bail!("no such board file: {}", path.display());
        }
        return Ok((path, None));
    }
    let path = root.join(".build.toml");
    if path.is_file() {
        return Ok((path, None));
    }
    let default = root.join(DEFAULT_BOARD);
    std::fs::copy(&default, &path).with_context(|| {
        format!(
            "cannot create {} from {}",
            path.display(),
            default.display()
        )
    })?;
    Ok((path, Some(DEFAULT_BOARD.to_string())))
}
