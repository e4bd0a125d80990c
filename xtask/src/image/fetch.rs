//! Getting the files a board's `[image]` names (bootloader, DTB) onto this machine:
//! a local path, a download checked against its SHA-256 (cached by hash under
//! `target/hv/downloads/`), or a file inside a Debian package (see `apt`).
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::apt::{find_in_tree, first_dependency, AptState};
use crate::config::image::FileSource;

/// Where fetched files are kept between runs.
pub struct Cache {
    pub downloads: PathBuf,
    pub apt: PathBuf,
}

impl Cache {
    pub fn under(dir: &Path) -> Cache {
        Cache {
            downloads: dir.join("downloads"),
            apt: dir.join("apt"),
        }
    }
}

/// The local file for `src`, fetching it when needed.
pub fn fetch(src: &FileSource, cache: &Cache) -> Result<PathBuf> {
    match src {
        FileSource::Path { path, shown } => {
            if path.is_file() {
                Ok(path.clone())
            } else {
                bail!("file not found: {shown} ({})", path.display())
            }
        }
        FileSource::Url { url, sha256 } => download(url, sha256, &cache.downloads),
        FileSource::Deb {
            package,
            file,
            suite,
        } => from_deb(package, file, suite.as_deref(), &cache.apt),
    }
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file name a URL ends in (for the cache).
fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("");
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if clean.is_empty() {
        "download".into()
    } else {
        clean
    }
}

/// Downloads `url` (http, https or file) into the cache unless a file with the
/// same SHA-256 is already there; fails when the hash differs.
pub fn download(url: &str, sha256: &str, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(format!(
        "{}-{}",
        &sha256[..16.min(sha256.len())],
        url_file_name(url)
    ));
    if dest.is_file() && sha256_file(&dest)? == sha256 {
        return Ok(dest);
    }
    let part = dest.with_extension("part");
    println!("xtask: downloading {url}");
    if let Some(local) = url.strip_prefix("file://") {
        std::fs::copy(local, &part).with_context(|| format!("cannot copy {local}"))?;
    } else {
        http_get(url, &part)?;
    }
    let got = sha256_file(&part)?;
    if got != sha256 {
        let _ = std::fs::remove_file(&part);
        bail!("{url}: SHA-256 is {got}, but the board file says {sha256}");
    }
    std::fs::rename(&part, &dest)?;
    Ok(dest)
}

fn http_get(url: &str, to: &Path) -> Result<()> {
    let mut resp = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()?
        .get(url)
        .send()
        .with_context(|| format!("cannot download {url}"))?
        .error_for_status()
        .with_context(|| format!("cannot download {url}"))?;
    let bar = match resp.content_length() {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "  download [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut out = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = resp.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The file ending in `file` inside Debian package `package` (arm64); a metapackage
/// without it is followed to the package it depends on (twice at most).
pub fn from_deb(package: &str, file: &str, suite: Option<&str>, apt_dir: &Path) -> Result<PathBuf> {
    let apt = AptState::new(apt_dir, "arm64", suite)?;
    apt.update()?;
    let mut name = package.to_string();
    for _ in 0..3 {
        let tree = apt.unpack(&name)?;
        let hits = find_in_tree(&tree, file);
        if let Some(last) = hits.last() {
            if hits.len() > 1 {
                println!(
                    "xtask: {} files in {name} end in {file}; using {}",
                    hits.len(),
                    last.display()
                );
            }
            return Ok(last.clone());
        }
        let depends = std::fs::read_to_string(tree.join(".depends")).unwrap_or_default();
        match first_dependency(&depends) {
            Some(dep) => name = dep,
            None => break,
        }
    }
    bail!("Debian package {package} has no file ending in {file}")
}
