//! Safe unpacking of tar streams (a registry image's `.tar.gz`, a Debian package's
//! data): nothing is written outside the destination directory. Entries with absolute
//! paths or `..` are refused, symbolic links may only point inside the tree, hard
//! links, device nodes and FIFOs are refused, and no file is written through a
//! symbolic link.
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use tar::{Archive, EntryType};

/// Unpacks a gzip-compressed tar file into `dest` (created if needed).
pub fn unpack_tar_gz(archive: &Path, dest: &Path) -> Result<()> {
    let f =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    unpack_tar(GzDecoder::new(io::BufReader::new(f)), dest, |_| true)
        .with_context(|| format!("cannot unpack {}", archive.display()))?;
    Ok(())
}

/// Unpacks the entries of a tar stream whose (relative, normalised) path `keep`
/// accepts into `dest`. Returns the relative paths written.
pub fn unpack_tar<R: Read>(
    input: R,
    dest: &Path,
    keep: impl Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut archive = Archive::new(input);
    let mut written = Vec::new();
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("bad tar entry")?;
        let raw = entry
            .path()
            .context("bad path in the archive")?
            .into_owned();
        let Some(rel) = safe_relative(&raw)? else {
            continue; // "." or "./"
        };
        if !keep(&rel) {
            continue;
        }
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        let target = dest.join(&rel);
        check_parents(dest, &rel)?;
        match kind {
            EntryType::Directory => {
                fs::create_dir_all(&target)
                    .with_context(|| format!("cannot create {}", target.display()))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                write_file(&mut entry, &target, mode)?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .context("bad link target")?
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                write_symlink(&rel, &link, &target)?;
            }
            EntryType::Link => bail!("{}: hard links are not accepted", raw.display()),
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            other => bail!(
                "{}: entries of type {other:?} (devices, FIFOs, ...) are not accepted",
                raw.display()
            ),
        }
        written.push(rel);
    }
    check_links_inside(dest, &written)?;
    Ok(written)
}

/// Resolves every symbolic link written and refuses those that lead outside `dest`
/// (for instance through a chain of links).
fn check_links_inside(dest: &Path, written: &[PathBuf]) -> Result<()> {
    let root =
        fs::canonicalize(dest).with_context(|| format!("cannot resolve {}", dest.display()))?;
    for rel in written {
        let p = dest.join(rel);
        let is_link = fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            continue;
        }
        if let Ok(real) = fs::canonicalize(&p) {
            if !real.starts_with(&root) {
                let _ = fs::remove_file(&p);
                bail!("{}: symbolic link leads outside the image", rel.display());
            }
        }
    }
    Ok(())
}

/// `raw` as a path relative to the destination, or an error if it would leave it.
/// `None` for the archive's root (`.`).
pub fn safe_relative(raw: &Path) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                bail!("{}: `..` in an archive path is not accepted", raw.display())
            }
            Component::RootDir | Component::Prefix(_) => {
                bail!("{}: absolute archive paths are not accepted", raw.display())
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Refuses to write below a symbolic link (one that an earlier entry made).
fn check_parents(dest: &Path, rel: &Path) -> Result<()> {
    let mut cur = dest.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        cur.push(c);
        if let Ok(m) = fs::symlink_metadata(&cur) {
            if m.file_type().is_symlink() {
                bail!(
                    "{}: writing through the symbolic link {} is not accepted",
                    rel.display(),
                    cur.display()
                );
            }
        }
    }
    Ok(())
}

fn write_file(input: &mut impl Read, target: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if fs::symlink_metadata(target).is_ok() {
        fs::remove_file(target).with_context(|| format!("cannot replace {}", target.display()))?;
    }
    let mut out =
        fs::File::create(target).with_context(|| format!("cannot create {}", target.display()))?;
    io::copy(input, &mut out).with_context(|| format!("cannot write {}", target.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    fs::set_permissions(target, fs::Permissions::from_mode(perm))
        .with_context(|| format!("cannot set the mode of {}", target.display()))?;
    Ok(())
}

/// A symbolic link at `rel` to `link`, which must stay inside the tree.
fn write_symlink(rel: &Path, link: &Path, target: &Path) -> Result<()> {
    if link.as_os_str().is_empty() || link.is_absolute() {
        bail!(
            "{}: symbolic link to {:?} is not accepted (only relative links inside the image)",
            rel.display(),
            link
        );
    }
    // Depth below the destination while walking the link from the link's directory.
    let mut depth = rel.components().count() as i64 - 1;
    for c in link.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            bail!(
                "{}: symbolic link to {} points outside the image",
                rel.display(),
                link.display()
            );
        }
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if fs::symlink_metadata(target).is_ok() {
        fs::remove_file(target).with_context(|| format!("cannot replace {}", target.display()))?;
    }
    std::os::unix::fs::symlink(link, target)
        .with_context(|| format!("cannot create the link {}", target.display()))
}
