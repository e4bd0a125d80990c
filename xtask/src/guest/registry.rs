//! Guest-image registries in AxVisor's TOML format:
//!
//! ```toml
//! [[images]]
//! name = "linux-aarch64"
//! version = "bookworm"
//! released_at = "2026-11-21"
//! description = "..."
//! sha256 = "<64 hex digits of the .tar.gz>"
//! arch = "aarch64"
//! url = "https://.../linux-aarch64.tar.gz"   # or file:///..., or relative
//!
//! [[includes]]
//! url = "other-registry.toml"
//! ```
//!
//! Includes are merged depth-first after the including registry's own images; the first
//! definition of a name and version wins, and the first version listed of a name is
//! the one `pull NAME` takes; an include cycle is an error. Relative URLs (images and
//! includes) are relative to the registry that names them. Project extension: `url =
//! "recipe:<name>"` names a built-in recipe (built on this machine, so no sha256).
use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::location::{read_text, Location};
use super::store::check_name;

/// How deep includes may nest.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Deserialize)]
struct RegistryToml {
    #[serde(default)]
    images: Vec<ImageToml>,
    #[serde(default)]
    includes: Vec<IncludeToml>,
}

#[derive(Debug, Deserialize)]
struct ImageToml {
    name: String,
    #[serde(default)]
    version: String,
    released_at: Option<Released>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    arch: String,
    url: String,
}

/// `released_at` as a string or a TOML date.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Released {
    Text(String),
    Date(toml_edit::Datetime),
}

#[derive(Debug, Deserialize)]
struct IncludeToml {
    url: String,
}

/// One image a registry offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    pub name: String,
    pub version: String,
    pub released_at: String,
    pub description: String,
    /// Lowercase hex; empty for recipes.
    pub sha256: String,
    pub arch: String,
    pub url: String,
    /// `url` resolved against the registry that lists it.
    pub location: Location,
    /// The registry that lists it.
    pub registry: String,
}

/// A registry with its includes merged.
#[derive(Debug, Default)]
pub struct Registry {
    pub images: Vec<ImageEntry>,
}

impl Registry {
    /// The first entry of `name` (a registry lists its preferred version first).
    pub fn find(&self, name: &str) -> Option<&ImageEntry> {
        self.images.iter().find(|i| i.name == name)
    }

    /// The entry of `name` at `version`.
    pub fn find_version(&self, name: &str, version: &str) -> Option<&ImageEntry> {
        self.images
            .iter()
            .find(|i| i.name == name && i.version == version)
    }

    /// The versions of `name` the registry lists.
    pub fn versions(&self, name: &str) -> Vec<&str> {
        self.images
            .iter()
            .filter(|i| i.name == name)
            .map(|i| i.version.as_str())
            .collect()
    }
}

/// A cache of remote registry documents (`guest sync` refreshes it): `http(s)://`
/// registries are read from it when they are there, so `list` and `pull` work
/// offline and see the same registry until the next sync. Local files are always
/// read as they are.
pub struct Cache {
    pub dir: std::path::PathBuf,
    /// Fetch every remote document again (and rewrite the cache).
    pub refresh: bool,
}

impl Cache {
    /// The cache file of a remote document.
    pub fn file(&self, loc: &Location) -> std::path::PathBuf {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(loc.to_string().as_bytes());
        let hex = crate::download::hex(&digest);
        self.dir.join(format!("{}.toml", &hex[..16]))
    }

    fn read(&self, loc: &Location) -> Result<String> {
        let remote = matches!(loc, Location::Remote(crate::download::Source::Http(_)));
        if !remote {
            return read_text(loc);
        }
        let file = self.file(loc);
        if !self.refresh {
            if let Ok(text) = std::fs::read_to_string(&file) {
                return Ok(text);
            }
        }
        let text = read_text(loc)?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        std::fs::write(&file, &text).with_context(|| format!("cannot write {}", file.display()))?;
        Ok(text)
    }
}

/// Loads the registry at `loc` and everything it includes (no cache).
#[cfg(test)]
pub fn load(loc: &Location) -> Result<Registry> {
    load_with(loc, None)
}

/// [`load`], remote documents through `cache`.
pub fn load_with(loc: &Location, cache: Option<&Cache>) -> Result<Registry> {
    let mut reg = Registry::default();
    let mut stack = Vec::new();
    let mut done = HashSet::new();
    load_into(loc, &mut stack, &mut done, &mut reg, cache)?;
    Ok(reg)
}

/// Parses one registry document (without following its includes).
pub fn parse(text: &str, loc: &Location) -> Result<(Vec<ImageEntry>, Vec<Location>)> {
    let doc: RegistryToml =
        toml_edit::de::from_str(text).map_err(|e| anyhow::anyhow!("registry {loc}: {e}"))?;
    let mut images = Vec::new();
    for (i, img) in doc.images.into_iter().enumerate() {
        let entry =
            image_entry(img, loc).with_context(|| format!("registry {loc}: images[{i}]"))?;
        images.push(entry);
    }
    let includes = doc
        .includes
        .iter()
        .enumerate()
        .map(|(i, inc)| {
            Location::parse(&inc.url, Some(loc))
                .with_context(|| format!("registry {loc}: includes[{i}]"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((images, includes))
}

fn image_entry(img: ImageToml, loc: &Location) -> Result<ImageEntry> {
    check_name(&img.name).map_err(|e| anyhow::anyhow!("name: {e}"))?;
    let location = Location::parse(&img.url, Some(loc)).context("url")?;
    let sha = img.sha256.trim().to_ascii_lowercase();
    let is_recipe = matches!(location, Location::Recipe(_));
    if !is_recipe && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit())) {
        bail!(
            "image {:?}: sha256 must be 64 hex digits (the SHA-256 of the archive), not {:?}",
            img.name,
            img.sha256
        );
    }
    let released_at = match img.released_at {
        Some(Released::Text(t)) => t,
        Some(Released::Date(d)) => d.to_string(),
        None => String::new(),
    };
    Ok(ImageEntry {
        name: img.name,
        version: img.version,
        released_at,
        description: img.description,
        sha256: sha,
        arch: img.arch,
        url: img.url,
        location,
        registry: loc.to_string(),
    })
}

fn load_into(
    loc: &Location,
    stack: &mut Vec<(String, String)>,
    done: &mut HashSet<String>,
    reg: &mut Registry,
    cache: Option<&Cache>,
) -> Result<()> {
    let key = loc.key();
    if stack.iter().any(|(k, _)| *k == key) {
        let mut chain: Vec<&str> = stack.iter().map(|(_, shown)| shown.as_str()).collect();
        let shown = loc.to_string();
        chain.push(&shown);
        bail!("registry include cycle: {}", chain.join(" -> "));
    }
    if !done.insert(key.clone()) {
        return Ok(()); // included twice (not a cycle): its images are there already
    }
    if stack.len() >= MAX_DEPTH {
        bail!("registry {loc}: includes nest deeper than {MAX_DEPTH} levels");
    }
    if matches!(loc, Location::Recipe(_)) {
        bail!("{loc}: a recipe is not a registry");
    }
    let text = match cache {
        Some(c) => c.read(loc),
        None => read_text(loc),
    }
    .with_context(|| format!("cannot load the registry {loc}"))?;
    let (images, includes) = parse(&text, loc)?;
    for img in images {
        if reg.find_version(&img.name, &img.version).is_none() {
            reg.images.push(img);
        }
    }
    stack.push((key, loc.to_string()));
    for inc in &includes {
        load_into(inc, stack, done, reg, cache)?;
    }
    stack.pop();
    Ok(())
}
