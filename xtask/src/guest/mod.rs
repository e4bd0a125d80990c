//! `cargo xtask guest list|pull|sync|rm`: guest images (kernels, initramfs, device
//! trees) in a local store, from a registry in AxVisor's format or from a built-in
//! recipe. Remote registries are cached in the store (`registry-cache/`); `sync`
//! refreshes the cache.
//!
//! - Store: see [`store`] (`--store DIR`, `$HV_GUEST_STORE`, else the user's cache
//!   directory `hypervisor-guests`).
//! - Registry: `--registry URL`, else `$HV_GUEST_REGISTRY`, else the repository's
//!   `configs/guest-images.toml` (lists the built-in recipes). See [`registry`].
//! - Built-in recipes (`linux-aarch64`, `linux-riscv64`, `linux-x86_64`): see [`recipe`].
//! - VM configs name image files as `image:<name>/<file>` (see [`resolve_config_path`]).
pub mod cpio;
pub mod debian;
pub mod initramfs;
pub mod location;
pub mod recipe;
pub mod registry;
pub mod store;
pub mod unpack;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::download::download;
use location::Location;
use registry::{ImageEntry, Registry};
use store::{Manifest, Store};

/// The environment variable that overrides the default registry.
pub const REGISTRY_ENV: &str = "HV_GUEST_REGISTRY";
/// The default registry, relative to the repository root.
pub const DEFAULT_REGISTRY: &str = "configs/guest-images.toml";
/// The prefix of guest-image file names in VM configs.
pub const CONFIG_PREFIX: &str = "image:";

/// `cargo xtask guest ...`
#[derive(Args, Debug)]
pub struct GuestArgs {
    /// Image store directory [default: $HV_GUEST_STORE, else
    /// $XDG_CACHE_HOME/hypervisor-guests, else ~/.cache/hypervisor-guests].
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Registry TOML (http(s)://, file:// URL or path) [default: $HV_GUEST_REGISTRY,
    /// else configs/guest-images.toml].
    #[arg(long, global = true, value_name = "URL")]
    pub registry: Option<String>,
    #[command(subcommand)]
    pub cmd: GuestCmd,
}

#[derive(Subcommand, Debug)]
pub enum GuestCmd {
    /// List the registry's images and the built-in recipes, and which are pulled.
    #[command(visible_alias = "ls")]
    List {
        /// Also show each image's release date, SHA-256, URL, registry and where it
        /// is pulled.
        #[arg(short, long)]
        verbose: bool,
        /// Only images whose name contains this (case-insensitive).
        pattern: Option<String>,
    },
    /// Fetch (registry image) or build (built-in recipe) an image into the store.
    #[command(visible_alias = "download")]
    Pull {
        /// Image name, e.g. linux-aarch64, or NAME:VERSION for a version the registry
        /// lists (default: the first one it lists).
        name: String,
        /// Fetch again even if the image is already pulled.
        #[arg(long)]
        force: bool,
        /// Also copy the image's files into this directory.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// Fetch the registry (and its includes) again into the store's registry cache.
    Sync,
    /// Remove a pulled image from the store.
    Rm {
        /// Image name.
        name: String,
    },
}

/// Runs a `guest` subcommand; `root` is the repository root.
pub fn run(root: &Path, args: &GuestArgs) -> Result<()> {
    let store = Store::open(args.store.as_deref())?;
    let reg_loc = registry_location(root, args.registry.as_deref())?;
    match &args.cmd {
        GuestCmd::List { verbose, pattern } => list(&store, &reg_loc, *verbose, pattern.as_deref()),
        GuestCmd::Pull {
            name,
            force,
            output,
        } => {
            let (name, version) = split_version(name);
            pull(&store, &reg_loc, name, version, *force)?;
            if let Some(dir) = output {
                copy_out(&store, name, dir)?;
            }
            Ok(())
        }
        GuestCmd::Sync => sync(&store, &reg_loc),
        GuestCmd::Rm { name } => {
            store.remove(name)?;
            println!(
                "xtask: removed guest image {name} from {}",
                store.root.display()
            );
            Ok(())
        }
    }
}

/// Pulls guest image `name` into the default store (`$HV_GUEST_STORE` or the user's
/// cache) unless it is there already.
pub fn ensure_pulled(root: &Path, name: &str) -> Result<()> {
    let store = Store::open(None)?;
    if store.manifest(name)?.is_some() {
        return Ok(());
    }
    println!("xtask: guest image {name} is not pulled yet: pulling it");
    let reg_loc = registry_location(root, None)?;
    pull(&store, &reg_loc, name, None, false)
}

/// The images a board's VMs name as `image:<name>/<file>` (the board file's
/// `vm_configs`, or `vms` when given instead), pulled first when the project knows
/// how to make them and they are not in the store yet: set-up, as QEMU and the
/// rustup targets are, so `cargo xtask run` with a Linux VM works on a fresh clone.
/// Unreadable files and unknown names are left to the config checks, which name
/// file and key.
pub fn pull_referenced(root: &Path, board: &Path, vms: &[PathBuf]) -> Result<()> {
    let files: Vec<PathBuf> = if vms.is_empty() {
        let text = fs::read_to_string(board).unwrap_or_default();
        board_vm_configs(&text)
            .into_iter()
            .map(|p| root.join(p))
            .collect()
    } else {
        vms.to_vec()
    };
    let mut names: Vec<String> = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap_or_default();
        for n in referenced_images(&text) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    for n in names.iter().filter(|n| recipe::find(n).is_some()) {
        ensure_pulled(root, n)?;
    }
    Ok(())
}

/// The `vm_configs` entries of a board file's text (none if it does not parse).
fn board_vm_configs(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Vec::new();
    };
    doc.get("vm_configs")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The image names of the `image:<name>/<file>` strings in a VM config's text (none
/// if it does not parse).
fn referenced_images(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_images(doc.as_item(), &mut out, 0);
    out
}

/// Walks a parsed config for image references; `depth` bounds the walk (a config's
/// tables are at most a few levels deep).
fn collect_images(item: &toml_edit::Item, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    match item {
        toml_edit::Item::Value(v) => collect_value(v, out, depth),
        toml_edit::Item::Table(t) => {
            for (_, i) in t.iter() {
                collect_images(i, out, depth + 1);
            }
        }
        toml_edit::Item::ArrayOfTables(a) => {
            for t in a.iter() {
                for (_, i) in t.iter() {
                    collect_images(i, out, depth + 1);
                }
            }
        }
        toml_edit::Item::None => {}
    }
}

fn collect_value(v: &toml_edit::Value, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    match v {
        toml_edit::Value::String(s) => {
            let name = s
                .value()
                .strip_prefix(CONFIG_PREFIX)
                .and_then(|r| r.split_once('/'))
                .map(|(n, _)| n);
            if let Some(n) = name.filter(|n| !n.is_empty() && !out.iter().any(|o| o == n)) {
                out.push(n.to_string());
            }
        }
        toml_edit::Value::Array(a) => {
            for x in a.iter() {
                collect_value(x, out, depth + 1);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (_, x) in t.iter() {
                collect_value(x, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// `NAME:VERSION` -> (NAME, Some(VERSION)); `NAME` -> (NAME, None).
pub fn split_version(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once(':') {
        Some((n, v)) if !v.is_empty() => (n, Some(v)),
        Some((n, _)) => (n, None),
        None => (arg, None),
    }
}

/// The registry cache of `store`.
fn cache(store: &Store, refresh: bool) -> registry::Cache {
    registry::Cache {
        dir: store.root.join("registry-cache"),
        refresh,
    }
}

fn load_registry(store: &Store, reg_loc: &Location) -> Result<Registry> {
    registry::load_with(reg_loc, Some(&cache(store, false)))
}

/// `guest sync`: fetches the registry and its includes again.
fn sync(store: &Store, reg_loc: &Location) -> Result<()> {
    let c = cache(store, true);
    let reg = registry::load_with(reg_loc, Some(&c))?;
    let remote = matches!(reg_loc, Location::Remote(crate::download::Source::Http(_)));
    println!(
        "xtask: registry {reg_loc}: {} image(s){}",
        reg.images.len(),
        if remote {
            format!(", cached in {}", c.dir.display())
        } else {
            " (a local file: read as it is each time, nothing to cache)".to_string()
        }
    );
    Ok(())
}

/// Copies the pulled image `name` into `dir`.
fn copy_out(store: &Store, name: &str, dir: &Path) -> Result<()> {
    let from = store.image_dir(name);
    let n = copy_tree(&from, dir)?;
    println!(
        "xtask: copied {n} file(s) of guest image {name} to {}",
        dir.display()
    );
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<usize> {
    if to.exists() && !to.is_dir() {
        bail!("{} exists and is not a directory", to.display());
    }
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut n = 0;
    for e in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let e = e.with_context(|| format!("cannot read {}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else if e.file_name() != store::MANIFEST {
            fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The registry to use.
pub fn registry_location(root: &Path, explicit: Option<&str>) -> Result<Location> {
    let env = std::env::var(REGISTRY_ENV).ok().filter(|v| !v.is_empty());
    match explicit.map(str::to_string).or(env) {
        Some(url) => Location::parse(&url, None),
        None => Ok(Location::file(root.join(DEFAULT_REGISTRY))),
    }
}

/// An image `list` shows.
struct Row {
    name: String,
    version: String,
    arch: String,
    pulled: String,
    what: String,
    /// For `list -v`: (label, value).
    details: Vec<(&'static str, String)>,
}

fn list(store: &Store, reg_loc: &Location, verbose: bool, pattern: Option<&str>) -> Result<()> {
    println!("xtask: store {}", store.root.display());
    println!("xtask: registry {reg_loc}");
    let reg = load_registry(store, reg_loc).unwrap_or_else(|e| {
        eprintln!("xtask: warning: {e:#} (showing built-in recipes and pulled images only)");
        Registry::default()
    });
    let pulled = store.pulled()?;
    let rows = filter_rows(rows(store, &reg, &pulled), pattern);
    if rows.is_empty() {
        println!(
            "xtask: no guest image matches {:?}",
            pattern.unwrap_or_default()
        );
        return Ok(());
    }
    let w = |f: fn(&Row) -> &str, min: usize| rows.iter().map(|r| f(r).len()).fold(min, usize::max);
    let (wn, wv, wa, wp) = (
        w(|r| &r.name, 4),
        w(|r| &r.version, 7),
        w(|r| &r.arch, 4),
        w(|r| &r.pulled, 6),
    );
    println!(
        "{:wn$}  {:wv$}  {:wa$}  {:wp$}  DESCRIPTION",
        "NAME", "VERSION", "ARCH", "PULLED"
    );
    for r in &rows {
        println!(
            "{:wn$}  {:wv$}  {:wa$}  {:wp$}  {}",
            r.name, r.version, r.arch, r.pulled, r.what
        );
        if verbose {
            for (k, v) in &r.details {
                if !v.is_empty() {
                    println!("    {k:<12} {v}");
                }
            }
        }
    }
    Ok(())
}

/// The rows whose name contains `pattern` (case-insensitive).
fn filter_rows(rows: Vec<Row>, pattern: Option<&str>) -> Vec<Row> {
    let Some(p) = pattern.map(str::to_lowercase) else {
        return rows;
    };
    rows.into_iter()
        .filter(|r| r.name.to_lowercase().contains(&p))
        .collect()
}

/// Registry images, then recipes the registry does not list, then other pulled images.
fn rows(store: &Store, reg: &Registry, pulled: &[Manifest]) -> Vec<Row> {
    let pulled_as = |name: &str, version: &str| {
        pulled
            .iter()
            .find(|m| m.name == name)
            .map_or("no".to_string(), |m| {
                if m.version == version || version.is_empty() {
                    format!("yes ({})", m.version)
                } else {
                    format!("other ({})", m.version)
                }
            })
    };
    let local = |name: &str| {
        pulled
            .iter()
            .find(|m| m.name == name)
            .map(|m| {
                format!(
                    "{} ({} {}, sha256 {})",
                    store.image_dir(name).display(),
                    m.name,
                    m.version,
                    m.sha256
                )
            })
            .unwrap_or_default()
    };
    let mut rows: Vec<Row> = reg
        .images
        .iter()
        .map(|i| Row {
            name: i.name.clone(),
            version: i.version.clone(),
            arch: i.arch.clone(),
            pulled: pulled_as(&i.name, &i.version),
            what: i.description.clone(),
            details: vec![
                ("released", i.released_at.clone()),
                ("sha256", i.sha256.clone()),
                ("url", i.location.to_string()),
                ("registry", i.registry.clone()),
                ("pulled into", local(&i.name)),
            ],
        })
        .collect();
    for r in recipe::RECIPES {
        if reg.find(r.name).is_none() {
            rows.push(Row {
                name: r.name.into(),
                version: r.suite.into(),
                arch: r.arch.into(),
                pulled: pulled_as(r.name, r.suite),
                what: r.description.into(),
                details: vec![
                    ("url", format!("{}{}", location::RECIPE_SCHEME, r.name)),
                    ("pulled into", local(r.name)),
                ],
            });
        }
    }
    for m in pulled {
        if !rows.iter().any(|r| r.name == m.name) {
            rows.push(Row {
                name: m.name.clone(),
                version: m.version.clone(),
                arch: m.arch.clone(),
                pulled: format!("yes ({})", m.version),
                what: format!(
                    "{} (from {}; not in this registry)",
                    m.description, m.source
                ),
                details: vec![("pulled into", local(&m.name))],
            });
        }
    }
    rows
}

/// Every name `pull` knows, for messages.
fn known_names(reg: &Registry) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for i in &reg.images {
        if !names.contains(&i.name) {
            names.push(i.name.clone());
        }
    }
    for r in recipe::RECIPES {
        if !names.iter().any(|n| n == r.name) {
            names.push(r.name.to_string());
        }
    }
    names
}

fn pull(
    store: &Store,
    reg_loc: &Location,
    name: &str,
    version: Option<&str>,
    force: bool,
) -> Result<()> {
    store::check_name(name).map_err(anyhow::Error::msg)?;
    if let Some(m) = store.manifest(name)? {
        let same = version.is_none_or(|v| v == m.version);
        if same && !force {
            println!(
                "xtask: guest image {name} {} is already pulled in {} (use --force to fetch it again)",
                m.version,
                store.image_dir(name).display()
            );
            return Ok(());
        }
    }
    let reg = match load_registry(store, reg_loc) {
        Ok(r) => r,
        Err(e) if recipe::find(name).is_some() => {
            eprintln!("xtask: warning: {e:#} (using the built-in recipe {name})");
            Registry::default()
        }
        Err(e) => return Err(e),
    };
    let entry = match version {
        Some(v) => reg.find_version(name, v),
        None => reg.find(name),
    };
    let dir = match entry {
        Some(entry) => pull_entry(store, entry)?,
        None => match recipe::find(name) {
            Some(r) if version.is_none_or(|v| v == r.suite) => recipe::pull(r, store)?,
            Some(r) => bail!(
                "guest image {name} has no version {:?} (the built-in recipe builds {})",
                version.unwrap_or_default(),
                r.suite
            ),
            None if !reg.versions(name).is_empty() => bail!(
                "guest image {name} has no version {:?} in registry {reg_loc} (versions: {}; \
                 `cargo xtask guest sync` fetches the registry again)",
                version.unwrap_or_default(),
                reg.versions(name).join(", ")
            ),
            None => bail!(
                "unknown guest image `{name}` (known: {}; registry {reg_loc})",
                known_names(&reg).join(", ")
            ),
        },
    };
    report_pulled(store, name, &dir)
}

fn pull_entry(store: &Store, entry: &ImageEntry) -> Result<PathBuf> {
    match &entry.location {
        Location::Recipe(r) => {
            let recipe = recipe::find(r).with_context(|| {
                let names: Vec<&str> = recipe::RECIPES.iter().map(|r| r.name).collect();
                format!(
                    "registry {} names the unknown recipe `{r}` for image {} (built-in recipes: {})",
                    entry.registry,
                    entry.name,
                    names.join(", ")
                )
            })?;
            recipe::pull(recipe, store)
        }
        _ => pull_archive(store, entry),
    }
}

/// Downloads a registry image (a `.tar.gz`), checks it and unpacks it into the store.
pub fn pull_archive(store: &Store, entry: &ImageEntry) -> Result<PathBuf> {
    let staging = store.staging(&entry.name)?;
    let archive = staging.dir.join("download.tar.gz");
    let got = download(entry.location.source()?, &archive, Some(&entry.sha256))?;
    unpack::unpack_tar_gz(&archive, &staging.image)?;
    strip_single_top_dir(&staging.image)?;
    let has = |f: &str| staging.image.join(f).is_file().then(|| f.to_string());
    let manifest = Manifest {
        name: entry.name.clone(),
        version: entry.version.clone(),
        sha256: got,
        source: entry.location.to_string(),
        arch: entry.arch.clone(),
        description: entry.description.clone(),
        pulled_at: 0,
        kernel: has("Image").or_else(|| has("bzImage")),
        initramfs: has("initramfs.cpio.gz"),
        dtbs: staging.image.join("dtbs").is_dir().then(|| "dtbs".into()),
        packages: Vec::new(),
    };
    staging.commit(manifest)
}

/// An archive whose entries all lie in one top-level directory is moved up a level, so
/// that `image:<name>/<file>` names the same file either way.
fn strip_single_top_dir(dir: &Path) -> Result<()> {
    let entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let [only] = entries.as_slice() else {
        return Ok(());
    };
    let is_dir = fs::symlink_metadata(only).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Ok(());
    }
    let tmp = dir.with_extension("strip");
    fs::rename(only, &tmp).context("cannot reorganise the unpacked image")?;
    fs::remove_dir(dir).context("cannot reorganise the unpacked image")?;
    fs::rename(&tmp, dir).context("cannot reorganise the unpacked image")?;
    Ok(())
}

fn report_pulled(store: &Store, name: &str, dir: &Path) -> Result<()> {
    let m = store
        .manifest(name)?
        .with_context(|| format!("{} has no manifest after the pull", dir.display()))?;
    let mut files: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        n + "/"
                    } else {
                        n
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    println!(
        "xtask: pulled guest image {name} {} into {}: {}",
        m.version,
        dir.display(),
        files.join(", ")
    );
    if let Some(k) = &m.kernel {
        println!("xtask: in a VM config: kernel_path = \"{CONFIG_PREFIX}{name}/{k}\"");
    }
    if let Some(i) = &m.initramfs {
        println!("xtask: in a VM config: ramdisk_path = \"{CONFIG_PREFIX}{name}/{i}\"");
    }
    if let (Some(r), Some(k), Some(i)) = (recipe::find(name), &m.kernel, &m.initramfs) {
        println!(
            "xtask: on plain QEMU: {} -kernel {} -initrd {} -append 'console={} run=\"echo hello\"'",
            r.qemu,
            dir.join(k).display(),
            dir.join(i).display(),
            r.console
        );
    }
    Ok(())
}

/// For VM configs: `image:<name>/<file>` becomes the file in the default store.
/// `Ok(None)` when `path` does not use the prefix; `Err(message)` when the image or
/// file is missing (the message says which file and how to pull the image).
pub fn resolve_config_path(path: &str) -> Result<Option<PathBuf>, String> {
    let Some(rest) = path.strip_prefix(CONFIG_PREFIX) else {
        return Ok(None);
    };
    let Some((name, file)) = rest.split_once('/') else {
        return Err(format!(
            "{path:?}: expected \"{CONFIG_PREFIX}<image>/<file>\", e.g. \"{CONFIG_PREFIX}linux-aarch64/Image\""
        ));
    };
    let store = Store::open(None).map_err(|e| format!("{e:#}"))?;
    store.resolve(name, file).map(Some)
}
