//! The configuration model: board files and VM configs, parsed into typed structures
//! and checked before anything is built. Every problem becomes a diagnostic that names
//! the file, the key and the reason; all of them are reported together.
pub mod board;
pub mod check;
pub mod cpus;
pub mod devtree;
pub mod diag;
pub mod gic;
pub mod image;
pub mod range;
pub mod source;
pub mod vm;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use board::{Arch, Board};
pub use check::Context;
pub use diag::{ConfigError, Report};
pub use source::Overrides;
pub use vm::Vm;

use diag::KeyPath;

/// A board and its VMs, validated and with vCPUs placed.
pub struct Plan {
    pub board: Board,
    pub vms: Vec<Vm>,
    /// Warnings found on the way (no errors: those make `load` fail).
    pub warnings: Report,
}

/// Where the VM configs come from.
pub enum VmList<'a> {
    /// The board's `vm_configs`.
    FromBoard,
    /// Paths given on the command line (`--vm`), replacing the board's list.
    Override(&'a [PathBuf]),
    /// No VMs at all: the hypervisor alone (scenarios about the host's own start).
    HostOnly,
}

/// Loads and checks a board and its VMs.
pub fn load(
    root: &Path,
    board_path: &Path,
    vms: VmList,
    ctx: &Context,
) -> Result<Plan, ConfigError> {
    load_with(root, board_path, vms, ctx, &Overrides::new())
}

/// [`load`] with the text of any file in `overrides` taken from there instead of
/// from disk (menuconfig checks unsaved edits this way, with the same checks).
pub fn load_with(
    root: &Path,
    board_path: &Path,
    vms: VmList,
    ctx: &Context,
    overrides: &Overrides,
) -> Result<Plan, ConfigError> {
    let (board, mut report) = board::load_board_with(board_path, root, overrides);
    let Some(board) = board else {
        return Err(ConfigError(report));
    };
    let paths = vm_paths(&board, vms, overrides, &mut report);
    let mut loaded = Vec::new();
    for path in &paths {
        if let Some(vm) = vm::load_vm_with(path, root, board.arch, overrides, &mut report) {
            loaded.push(vm);
        }
    }
    // Cross-checks run on the VMs that loaded, so their problems show up together
    // with those of the VMs that did not.
    check::cross_checks(&board, &mut loaded, ctx, &mut report);
    if report.has_errors() {
        return Err(ConfigError(report));
    }
    Ok(Plan {
        board,
        vms: loaded,
        warnings: report,
    })
}

fn vm_paths(
    board: &Board,
    vms: VmList,
    overrides: &Overrides,
    report: &mut Report,
) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = match vms {
        VmList::HostOnly => return Vec::new(),
        VmList::Override(list) => list.to_vec(),
        VmList::FromBoard => {
            for (i, (shown, abs)) in board.vm_configs.iter().enumerate() {
                if !abs.is_file() && !overrides.contains_key(abs) {
                    report.push(diag::Diagnostic {
                        severity: diag::Severity::Error,
                        file: board.shown.clone(),
                        line_col: board.vm_configs_at.get(i).copied().flatten(),
                        key: KeyPath::new("vm_configs").index(i),
                        message: format!("VM config not found: {shown} (paths are relative to the repository root)"),
                    });
                }
            }
            board
                .vm_configs
                .iter()
                .map(|(_, abs)| abs.clone())
                .collect()
        }
    };
    if paths.is_empty() {
        let message = "no VMs to run: the board lists no vm_configs (add some, or pass --vm FILE)";
        report.push(diag::Diagnostic {
            severity: diag::Severity::Error,
            file: board.shown.clone(),
            line_col: None,
            key: KeyPath::new("vm_configs"),
            message: message.into(),
        });
    }
    paths
}
