//! Getting the files a board's `[image]` names (bootloader, DTB) onto this machine:
//! a local path, a download checked against its SHA-256 (cached by hash under
//! `target/hv/downloads/`, see [`crate::download`]), or a file inside a Debian arm64
//! package (a private apt state under `target/hv/apt/`, see [`crate::apt`]).
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::apt::{downloaded_deb, extract_deb, field, first_dependency, PrivateApt};
use crate::config::image::FileSource;
use crate::download::{self, sha256_file, Source};

/// Package lists older than this are refreshed.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The Debian architecture of the boards' files.
const DEB_ARCH: &str = "arm64";

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
    let dest = dir.join(format!(
        "{}-{}",
        &sha256[..16.min(sha256.len())],
        url_file_name(url)
    ));
    if dest.is_file() && sha256_file(&dest)? == sha256 {
        return Ok(dest);
    }
    download::download(&Source::parse(url)?, &dest, Some(sha256))?;
    Ok(dest)
}

/// The file ending in `file` inside Debian package `package` (arm64); a metapackage
/// without it is followed to the package it depends on (twice at most).
pub fn from_deb(package: &str, file: &str, suite: Option<&str>, apt_dir: &Path) -> Result<PathBuf> {
    let state = match suite {
        Some(s) => apt_dir.join(format!("{DEB_ARCH}-{s}")),
        None => apt_dir.join(DEB_ARCH),
    };
    let apt = PrivateApt::open(&state, DEB_ARCH, suite)?;
    apt.update(LISTS_MAX_AGE)?;
    let mut name = package.to_string();
    for _ in 0..3 {
        let record = apt.show(&name)?.with_context(|| {
            format!(
                "Debian package {name} is not available for {DEB_ARCH} from the configured mirrors (suite wrong or name changed?)"
            )
        })?;
        let version = field(&record, "Version")
            .with_context(|| format!("apt-cache shows no version of {name}"))?;
        if let Some(hit) = file_in_package(&apt, &name, &version, file)? {
            return Ok(hit);
        }
        match field(&record, "Depends")
            .as_deref()
            .and_then(first_dependency)
        {
            Some(dep) => name = dep,
            None => break,
        }
    }
    bail!("Debian package {package} has no file ending in {file}")
}

/// The file ending in `file` in `pkg` at `version` (downloaded once, kept in the
/// state's `debs/`), unpacked under the state's `unpacked/`.
fn file_in_package(
    apt: &PrivateApt,
    pkg: &str,
    version: &str,
    file: &str,
) -> Result<Option<PathBuf>> {
    let debs = apt.dir().join("debs");
    let deb = match downloaded_deb(&debs, pkg, version) {
        Ok(deb) => deb,
        Err(_) => {
            println!("xtask: downloading Debian package {pkg} {version} ({DEB_ARCH})");
            apt.download(&[&format!("{pkg}={version}")], &debs)?;
            downloaded_deb(&debs, pkg, version)?
        }
    };
    let tree = apt
        .dir()
        .join("unpacked")
        .join(format!("{pkg}_{}", version.replace(':', "%3a")))
        .join(file.replace('/', "_"));
    let _ = std::fs::remove_dir_all(&tree);
    let mut hits: Vec<PathBuf> = extract_deb(&deb, &tree, |p| ends_with(p, file))?
        .into_iter()
        .map(|p| tree.join(p))
        .filter(|p| p.is_file())
        .collect();
    hits.sort();
    if hits.len() > 1 {
        println!(
            "xtask: {} files in {pkg} end in {file}; using {}",
            hits.len(),
            hits[hits.len() - 1].display()
        );
    }
    Ok(hits.pop())
}

/// Whether `path` ends with the (whole) components of `suffix`.
pub fn ends_with(path: &Path, suffix: &str) -> bool {
    let want: Vec<&str> = suffix.split('/').filter(|s| !s.is_empty()).collect();
    let comps: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    !want.is_empty() && comps.len() >= want.len() && comps[comps.len() - want.len()..] == want[..]
}
