//! Where registries and images are: an absolute location ([`Source`]: `http://`,
//! `https://`, `file://` or a path), a URL relative to the registry that names it,
//! or a built-in recipe (`recipe:<name>`). Fetching is [`crate::download`]'s.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::download::{self, Source};

/// The URL scheme of the built-in recipes in a registry (`recipe:linux-aarch64`).
pub const RECIPE_SCHEME: &str = "recipe:";

/// A resolved location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Something to download: a file or an `http(s)://` URL.
    Remote(Source),
    /// A built-in recipe, by name.
    Recipe(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Remote(src) => src.fmt(f),
            Location::Recipe(n) => write!(f, "{RECIPE_SCHEME}{n}"),
        }
    }
}

impl Location {
    /// A local file.
    pub fn file(path: impl Into<PathBuf>) -> Location {
        Location::Remote(Source::File(path.into()))
    }

    /// An `http(s)://` URL.
    pub fn http(url: impl Into<String>) -> Location {
        Location::Remote(Source::Http(url.into()))
    }

    /// Parses `url`; a relative one is taken relative to the registry at `base`.
    pub fn parse(url: &str, base: Option<&Location>) -> Result<Location> {
        let url = url.trim();
        if url.is_empty() {
            bail!("empty URL");
        }
        if let Some(name) = url.strip_prefix(RECIPE_SCHEME) {
            return Ok(Location::Recipe(name.to_string()));
        }
        if url.contains("://") || url.starts_with('/') {
            return Ok(Location::Remote(Source::parse(url)?));
        }
        Ok(match base {
            Some(Location::Remote(Source::File(p))) => {
                Location::file(p.parent().unwrap_or(Path::new(".")).join(url))
            }
            Some(Location::Remote(Source::Http(b))) => Location::http(join_url(b, url)),
            _ => Location::file(url),
        })
    }

    /// What to download from; a recipe is not a download.
    pub fn source(&self) -> Result<&Source> {
        match self {
            Location::Remote(src) => Ok(src),
            Location::Recipe(n) => {
                bail!("{RECIPE_SCHEME}{n} is a built-in recipe, not a download")
            }
        }
    }

    /// A key that names the same place the same way (for include-cycle detection).
    pub fn key(&self) -> String {
        match self {
            Location::Remote(Source::File(p)) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            other => other.to_string(),
        }
    }
}

/// `rel` relative to the directory of `base` (an http URL).
fn join_url(base: &str, rel: &str) -> String {
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let dir = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i + 1],
        None => return format!("{base}/{}", rel.trim_start_matches("./")),
    };
    format!("{dir}{}", rel.trim_start_matches("./"))
}

/// Reads a (small) text document such as a registry.
pub fn read_text(loc: &Location) -> Result<String> {
    download::read_text(loc.source()?)
}
