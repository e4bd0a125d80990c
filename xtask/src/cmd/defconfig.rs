//! `cargo xtask defconfig <board>`: make `configs/board/<board>.toml` the build
//! configuration `.build.toml`, keeping a timestamped backup of the previous one.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::config::{board::load_board, ConfigError};

/// Names of the boards in `configs/board/`, sorted.
pub fn known_boards(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("configs/board"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
                .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Copies the board file to `.build.toml`; returns the backup made, if any. An
/// existing `.build.toml` that already holds exactly the board file is left alone (no
/// backup). The new file replaces `.build.toml` itself: a symlink there (dangling or
/// not) is backed up as the link, never written through.
pub fn defconfig(root: &Path, board: &str) -> Result<Option<PathBuf>> {
    let known = known_boards(root);
    if !known.iter().any(|b| b == board) {
        bail!(
            "unknown board `{board}`; known boards: {}",
            known.join(", ")
        );
    }
    let src = root.join("configs/board").join(format!("{board}.toml"));
    let (_, report) = load_board(&src, root);
    if report.has_errors() {
        return Err(ConfigError(report).into());
    }
    let data = std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
    let dest = root.join(".build.toml");
    let meta = std::fs::symlink_metadata(&dest).ok();
    let is_link = meta.as_ref().is_some_and(|m| m.file_type().is_symlink());
    if !is_link && std::fs::read(&dest).is_ok_and(|old| old == data) {
        return Ok(None);
    }
    let backup = match meta {
        Some(_) => Some(backup(root, &dest)?),
        None => None,
    };
    let tmp = root.join(".build.toml.part");
    let _ = std::fs::remove_file(&tmp);
    std::fs::write(&tmp, &data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(backup)
}

fn backup(root: &Path, dest: &Path) -> Result<PathBuf> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut path = root.join(format!(".build.toml.backup_{now}"));
    let mut n = 1;
    while path.exists() {
        path = root.join(format!(".build.toml.backup_{now}_{n}"));
        n += 1;
    }
    std::fs::rename(dest, &path)
        .with_context(|| format!("cannot back up {} to {}", dest.display(), path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-defconfig-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("configs/board")).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for b in ["qemu-aarch64", "orangepi-5-plus"] {
            let f = format!("configs/board/{b}.toml");
            std::fs::copy(repo.join(&f), dir.join(&f)).unwrap();
        }
        dir
    }

    #[test]
    fn copies_and_backs_up() {
        let dir = scratch("copy");
        assert_eq!(known_boards(&dir), ["orangepi-5-plus", "qemu-aarch64"]);
        assert_eq!(defconfig(&dir, "qemu-aarch64").unwrap(), None);
        let first = std::fs::read_to_string(dir.join(".build.toml")).unwrap();
        assert!(first.contains("board = \"qemu-aarch64\""));
        let backup = defconfig(&dir, "orangepi-5-plus").unwrap().unwrap();
        let name = backup.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(".build.toml.backup_"), "{name}");
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), first);
        let now = std::fs::read_to_string(dir.join(".build.toml")).unwrap();
        assert!(now.contains("board = \"orangepi-5-plus\""));
        // A second backup in the same second gets its own name.
        let again = defconfig(&dir, "qemu-aarch64").unwrap().unwrap();
        assert_ne!(again, backup);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unchanged_file_gets_no_backup() {
        let dir = scratch("same");
        assert_eq!(defconfig(&dir, "qemu-aarch64").unwrap(), None);
        assert_eq!(defconfig(&dir, "qemu-aarch64").unwrap(), None);
        let backups = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("backup"))
            .count();
        assert_eq!(backups, 0);
        // A changed file is backed up.
        std::fs::write(dir.join(".build.toml"), "# mine\n").unwrap();
        let b = defconfig(&dir, "qemu-aarch64").unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(b).unwrap(), "# mine\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_is_replaced_not_written_through() {
        use std::os::unix::fs::symlink;
        let dir = scratch("link");
        // Dangling: nothing may appear where it points.
        let target = dir.join("elsewhere.toml");
        symlink(&target, dir.join(".build.toml")).unwrap();
        let b = defconfig(&dir, "qemu-aarch64").unwrap().unwrap();
        assert!(!target.exists(), "wrote through the dangling symlink");
        assert!(std::fs::symlink_metadata(&b)
            .unwrap()
            .file_type()
            .is_symlink());
        let meta = std::fs::symlink_metadata(dir.join(".build.toml")).unwrap();
        assert!(meta.file_type().is_file());
        // Pointing at a board file: that file stays as it was.
        let board = dir.join("configs/board/orangepi-5-plus.toml");
        let before = std::fs::read(&board).unwrap();
        std::fs::remove_file(dir.join(".build.toml")).unwrap();
        symlink(&board, dir.join(".build.toml")).unwrap();
        defconfig(&dir, "qemu-aarch64").unwrap().unwrap();
        assert_eq!(std::fs::read(&board).unwrap(), before);
        let now = std::fs::read_to_string(dir.join(".build.toml")).unwrap();
        assert!(now.contains("board = \"qemu-aarch64\""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_board_lists_the_known_ones() {
        let dir = scratch("unknown");
        let err = defconfig(&dir, "pc-xt").unwrap_err().to_string();
        assert!(err.contains("unknown board `pc-xt`"), "{err}");
        assert!(err.contains("orangepi-5-plus, qemu-aarch64"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
