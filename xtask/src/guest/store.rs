//! The local guest-image store: one directory per image with its files and a
//! `manifest.toml` (name, version, sha256, source and which file is what).
//!
//! Location: `--store DIR`, else `$HV_GUEST_STORE`, else
//! `$XDG_CACHE_HOME/hypervisor-guests`, else `~/.cache/hypervisor-guests`.
//! Images are assembled in `<store>/.tmp/` and moved into place when complete, so an
//! interrupted pull never leaves a half image behind. The built-in recipes keep their
//! private apt state in `<store>/.apt/`.
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The environment variable that overrides the default store directory.
pub const STORE_ENV: &str = "HV_GUEST_STORE";
/// The manifest file in each image directory.
pub const MANIFEST: &str = "manifest.toml";

/// What the store knows about a pulled image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// SHA-256 of what was fetched: the registry archive, or for a recipe the kernel
    /// package.
    pub sha256: String,
    /// Where it came from: a URL, or `recipe:<name>` and the packages used.
    pub source: String,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub description: String,
    /// Unix time of the pull.
    #[serde(default)]
    pub pulled_at: u64,
    /// The kernel image, relative to the image directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The initramfs, relative to the image directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<String>,
    /// The directory of the kernel package's device trees, relative to the image
    /// directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtbs: Option<String>,
    /// Packages a recipe used, as `name version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

/// A store directory.
#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

/// Checks an image name: letters, digits, `-`, `_`, `.`; not starting with `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad image name {name:?} (use letters, digits, '-', '_' and '.'; not starting with '.')"
        ))
    }
}

/// The default store directory (without `--store`).
pub fn default_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os(STORE_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from) {
        if d.is_absolute() {
            return Ok(d.join("hypervisor-guests"));
        }
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("hypervisor-guests")),
        None => bail!("no image store: set {STORE_ENV} (or HOME), or pass --store DIR"),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// The store at `explicit`, or the default one.
    pub fn open(explicit: Option<&Path>) -> Result<Store> {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => default_root()?,
        };
        Ok(Store { root })
    }

    pub fn image_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Private apt state of a recipe (kept between pulls).
    pub fn apt_dir(&self, key: &str) -> PathBuf {
        self.root.join(".apt").join(key)
    }

    /// The manifest of a pulled image, or `None` when it is not pulled.
    pub fn manifest(&self, name: &str) -> Result<Option<Manifest>> {
        check_name(name).map_err(anyhow::Error::msg)?;
        let path = self.image_dir(name).join(MANIFEST);
        if !path.is_file() {
            return Ok(None);
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let m = toml_edit::de::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Some(m))
    }

    /// Every pulled image, by name.
    pub fn pulled(&self) -> Result<Vec<Manifest>> {
        let Ok(dir) = fs::read_dir(&self.root) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_err() {
                continue;
            }
            if let Ok(Some(m)) = self.manifest(&name) {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a pulled image.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name).map_err(anyhow::Error::msg)?;
        let dir = self.image_dir(name);
        if !dir.join(MANIFEST).is_file() {
            let names: Vec<String> = self.pulled()?.into_iter().map(|m| m.name).collect();
            let list = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            bail!(
                "guest image `{name}` is not pulled in {} (pulled: {list})",
                self.root.display()
            );
        }
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
    }

    /// A fresh work directory in which the image `name` is assembled.
    pub fn staging(&self, name: &str) -> Result<Staging> {
        check_name(name).map_err(anyhow::Error::msg)?;
        let dir = self
            .root
            .join(".tmp")
            .join(format!("{name}.{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot clean {}", dir.display()))?;
        }
        let image = dir.join("image");
        fs::create_dir_all(&image).with_context(|| format!("cannot create {}", image.display()))?;
        Ok(Staging {
            dir,
            image,
            target: self.image_dir(name),
            committed: false,
        })
    }

    /// The file `file` of the pulled image `name`, for `image:<name>/<file>` in a VM
    /// config. The message of the error says how to get the image.
    pub fn resolve(&self, name: &str, file: &str) -> Result<PathBuf, String> {
        check_name(name)?;
        let rel = Path::new(file);
        let bad = file.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if bad {
            return Err(format!(
                "bad file {file:?} in guest image `{name}` (a path inside the image)"
            ));
        }
        let dir = self.image_dir(name);
        let path = dir.join(rel);
        if !dir.join(MANIFEST).is_file() {
            return Err(format!(
                "guest image `{name}` is not pulled (no {} in the store {}): run `cargo xtask guest pull {name}`",
                path.display(),
                self.root.display()
            ));
        }
        if !path.is_file() {
            return Err(format!(
                "guest image `{name}` has no file {file} ({} not found; its files are listed by `ls {}`; `cargo xtask guest pull --force {name}` fetches it again)",
                path.display(),
                dir.display()
            ));
        }
        Ok(path)
    }
}

/// An image being assembled; removed again unless committed.
pub struct Staging {
    /// The work directory (downloads, unpacked packages).
    pub dir: PathBuf,
    /// What becomes the image directory.
    pub image: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    /// Writes the manifest and moves the image into the store (replacing an old one).
    pub fn commit(mut self, mut manifest: Manifest) -> Result<PathBuf> {
        manifest.pulled_at = unix_now();
        let text = toml_edit::ser::to_string_pretty(&manifest)
            .context("cannot write the image manifest")?;
        let path = self.image.join(MANIFEST);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if self.target.exists() {
            fs::remove_dir_all(&self.target)
                .with_context(|| format!("cannot replace {}", self.target.display()))?;
        }
        fs::rename(&self.image, &self.target).with_context(|| {
            format!(
                "cannot move {} to {}",
                self.image.display(),
                self.target.display()
            )
        })?;
        self.committed = true;
        let _ = fs::remove_dir_all(&self.dir);
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
