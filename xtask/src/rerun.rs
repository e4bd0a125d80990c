//! The commands that need one of xtask's default features (see xtask/Cargo.toml),
//! which `cargo xtask` builds without: build xtask with them and run the same
//! command line there.
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Result};

/// Set for the xtask started by [`with_feature`], so that it can never start another.
const RERUN_ENV: &str = "XTASK_RERUN";

/// Builds xtask with its default features (`cargo build -p xtask`: compiled on first
/// use, quick once current) and replaces this process with it, running the same
/// arguments. Returns only on failure.
pub fn with_feature(root: &Path, feature: &str, what: &str) -> Result<bool> {
    if std::env::var_os(RERUN_ENV).is_some() {
        bail!("this xtask was built without feature `{feature}` ({what}), which `cargo build -p xtask` should have enabled");
    }
    // On stderr: the command's own output (a schema) may be going to a file.
    eprintln!(
        "xtask: {what} needs xtask's feature `{feature}`, which `cargo xtask` leaves out \
         to build faster; building xtask with it (compiled on first use): cargo build -p xtask"
    );
    let exe = crate::workspace::cargo_build(root, &["-p".into(), "xtask".into()], &[], "xtask")?;
    let err = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(RERUN_ENV, "1")
        .exec();
    Err(anyhow!("cannot run {}: {err}", exe.display()))
}
