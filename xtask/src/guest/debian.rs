//! Debian packages for the built-in recipes, fetched with apt-get into a PRIVATE apt
//! state (own source list, package lists, caches and empty dpkg status under the image
//! store), so the system's apt configuration is never changed. The mirrors are the
//! ones the host already uses (/etc/apt/sources.list.d/*.sources and *.list,
//! /etc/apt/sources.list), with the host's release codename replaced by the recipe's
//! (e.g. bookworm-security -> trixie-security). Packages are unpacked with
//! `dpkg-deb --fsys-tarfile` and the safe tar reader, keeping only the needed files.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::unpack::unpack_tar;

/// The host's apt configuration.
const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// The Debian archive keyring used when a source names none.
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One `deb` source of the host: a mirror URI, its suites and its keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub signed_by: Option<String>,
}

/// The host's `deb` sources.
pub fn host_sources() -> Vec<AptSource> {
    let mut out = Vec::new();
    if let Ok(text) = fs::read_to_string(SOURCES_LIST) {
        out.extend(parse_one_line(&text));
    }
    let mut files: Vec<PathBuf> = fs::read_dir(SOURCES_DIR)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(parse_deb822(&text)),
            Some("list") => out.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    out
}

/// Sources in the one-line format (`deb [opts] uri suite component...`).
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            rest = after.trim();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(AptSource {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
                signed_by,
            });
        }
    }
    out
}

/// Sources in the deb822 format (`Types:`, `URIs:`, `Suites:` stanzas separated by
/// blank lines).
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            out.extend(deb822_stanza(&fields));
            fields.clear();
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// The `deb` sources of one deb822 stanza.
fn deb822_stanza(fields: &[(String, String)]) -> Vec<AptSource> {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let is_deb = get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
    let enabled = get("enabled").is_none_or(|e| !e.eq_ignore_ascii_case("no"));
    if !is_deb || !enabled {
        return Vec::new();
    }
    // An inline key block (several lines) is not a path: fall back to the default.
    let signed_by = get("signed-by")
        .filter(|s| s.starts_with('/') && !s.contains(' '))
        .map(str::to_string);
    let suites: Vec<String> = get("suites")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    get("uris")
        .unwrap_or("")
        .split_whitespace()
        .map(|uri| AptSource {
            uri: uri.to_string(),
            suites: suites.clone(),
            signed_by: signed_by.clone(),
        })
        .collect()
}

/// The host's release codename (`VERSION_CODENAME` of /etc/os-release).
pub fn host_codename() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The private source list for `suite` on `arch`: every host source whose suite is the
/// host release (or one of its -updates/-security suites), moved to `suite`.
pub fn private_source_list(
    sources: &[AptSource],
    host: Option<&str>,
    suite: &str,
    arch: &str,
) -> Result<String> {
    let mut lines: Vec<String> = Vec::new();
    for src in sources {
        for s in &src.suites {
            let Some(mapped) = map_suite(s, host, suite) else {
                continue;
            };
            let key = src.signed_by.clone().or_else(|| {
                Path::new(DEFAULT_KEYRING)
                    .is_file()
                    .then(|| DEFAULT_KEYRING.into())
            });
            let opts = match key {
                Some(k) => format!("[arch={arch} signed-by={k}]"),
                None => format!("[arch={arch}]"),
            };
            let line = format!("deb {opts} {} {mapped} main", src.uri);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        bail!(
            "no Debian mirror found for `{suite}`: the recipe reuses the mirrors of the host's apt \
             configuration ({SOURCES_DIR}/*.sources, {SOURCES_LIST}), and none of them is a Debian \
             release mirror{}",
            host.map(|h| format!(" for the host release `{h}`")).unwrap_or_default()
        );
    }
    Ok(lines.join("\n") + "\n")
}

/// `s` (a host suite) moved to the target release, if it belongs to a release.
fn map_suite(s: &str, host: Option<&str>, target: &str) -> Option<String> {
    let rel = |base: &str| -> Option<String> {
        if s == base {
            Some(String::new())
        } else {
            s.strip_prefix(base)
                .filter(|r| r.starts_with('-'))
                .map(str::to_string)
        }
    };
    if let Some(suffix) = rel(target) {
        return Some(format!("{target}{suffix}"));
    }
    let suffix = rel(host?)?;
    // Backports of the host release have no meaning for another release.
    (suffix != "-backports").then(|| format!("{target}{suffix}"))
}

/// apt-get and apt-cache on a private state directory.
pub struct PrivateApt {
    dir: PathBuf,
    arch: String,
}

impl PrivateApt {
    /// Sets up (or reuses) the private state in `dir` with `source_list`.
    pub fn new(dir: &Path, arch: &str, source_list: &str) -> Result<PrivateApt> {
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "state",
            "etc/parts",
        ] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "")
                .with_context(|| format!("cannot create {}", status.display()))?;
        }
        let list = dir.join("etc/sources.list");
        fs::write(&list, source_list)
            .with_context(|| format!("cannot write {}", list.display()))?;
        Ok(PrivateApt {
            dir: dir.to_path_buf(),
            arch: arch.to_string(),
        })
    }

    /// The `-o` options that point apt at the private state.
    pub fn options(&self) -> Vec<String> {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let none = d("etc/parts");
        vec![
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures={}", self.arch),
            format!("Dir::State={}", d("state")),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::State::status={}", d("state/status")),
            format!("Dir::Cache={}", d("cache")),
            format!("Dir::Etc::SourceList={}", d("etc/sources.list")),
            format!("Dir::Etc::SourceParts={none}"),
            format!("Dir::Etc::Preferences={}", d("etc/preferences")),
            format!("Dir::Etc::PreferencesParts={none}"),
            "Acquire::Languages=none".into(),
            // Only the Packages indices: no AppStream metadata or icons.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(self.options())
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `apt-get update` of the private lists.
    pub fn update(&self) -> Result<()> {
        let status = self
            .command("apt-get")
            .args(["-q", "update"])
            .status()
            .context("cannot run apt-get (the recipe needs a Debian host with apt)")?;
        if status.success() {
            return Ok(());
        }
        // A mirror in the middle of a sync can fail some indices (e.g. -security)
        // while the release's main list is fine: go on with what was fetched.
        if self.has_lists() {
            eprintln!(
                "xtask: warning: apt-get update failed for some package lists ({status}); \
                 continuing with the lists it fetched"
            );
            return Ok(());
        }
        bail!(
            "apt-get update (private state in {}) failed ({status})",
            self.dir.display()
        )
    }

    /// Whether any package list was fetched.
    fn has_lists(&self) -> bool {
        fs::read_dir(self.dir.join("lists"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false)
    }

    /// `apt-cache ARGS`; `None` when it fails (e.g. no such package).
    pub fn cache(&self, args: &[&str]) -> Result<Option<String>> {
        let out = self
            .command("apt-cache")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .context("cannot run apt-cache")?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// The candidate version of `pkg`, if it exists.
    pub fn version(&self, pkg: &str) -> Result<Option<String>> {
        let show = self.cache(&["show", "--no-all-versions", pkg])?;
        Ok(show.and_then(|s| field(&s, "Version")))
    }

    /// `apt-get download PKGS` into `dir`.
    pub fn download(&self, pkgs: &[&str], dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let status = self
            .command("apt-get")
            .args(["-q", "download"])
            .args(pkgs)
            .current_dir(dir)
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get download {} failed ({status})", pkgs.join(" "));
        }
        Ok(())
    }
}

/// The value of `name:` in an apt-cache record.
pub fn field(record: &str, name: &str) -> Option<String> {
    record.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

/// The kernel package of `flavor` (e.g. `arm64`): the image the metapackage
/// `linux-image-<flavor>` depends on, i.e. the suite's current default kernel (its
/// newest ABI), as its `-unsigned` variant where one exists. Without the metapackage,
/// the newest `linux-image-<abi>-<flavor>[-unsigned]` by version.
pub fn kernel_package(apt: &PrivateApt, flavor: &str) -> Result<String> {
    let meta = format!("linux-image-{flavor}");
    let dep = apt
        .cache(&["depends", &meta])?
        .and_then(|text| metapackage_dependency(&text));
    let base = match dep {
        Some(d) => d,
        None => newest_kernel(apt, flavor)?,
    };
    let unsigned = format!("{base}-unsigned");
    if base.ends_with("-unsigned") || apt.version(&unsigned)?.is_none() {
        return Ok(base);
    }
    Ok(unsigned)
}

/// The first `linux-image-*` dependency in `apt-cache depends` output.
pub fn metapackage_dependency(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim().trim_start_matches('|');
        let dep = l.strip_prefix("Depends:")?.trim();
        let dep = dep.trim_start_matches('<').trim_end_matches('>');
        dep.starts_with("linux-image-").then(|| dep.to_string())
    })
}

fn newest_kernel(apt: &PrivateApt, flavor: &str) -> Result<String> {
    let names = apt
        .cache(&["pkgnames", "linux-image-"])?
        .unwrap_or_default();
    let best = newest_kernel_name(names.lines(), flavor);
    best.with_context(|| {
        format!(
            "no Debian kernel package linux-image-*-{flavor} found in the private package lists"
        )
    })
}

/// Among package names, the newest `linux-image-<abi>-<flavor>` (a `-unsigned` name
/// counts as its base name, which is returned). The ABI is numbers with an optional
/// `+debNN` suffix (6.1.0-56, 6.12.38+deb13), so other flavors (`-cloud-arm64`,
/// `-rt-arm64`) do not match.
pub fn newest_kernel_name<'a>(
    names: impl Iterator<Item = &'a str>,
    flavor: &str,
) -> Option<String> {
    let suffix = format!("-{flavor}");
    let mut best: Option<(Vec<u64>, String)> = None;
    for n in names {
        let n = n.trim();
        let base = n.strip_suffix("-unsigned").unwrap_or(n);
        let Some(abi) = base
            .strip_prefix("linux-image-")
            .and_then(|r| r.strip_suffix(&suffix))
        else {
            continue;
        };
        let plain = match abi.split_once("+deb") {
            Some((v, d)) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => v,
            Some(_) => continue,
            None => abi,
        };
        let numeric = plain.starts_with(|c: char| c.is_ascii_digit())
            && plain
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
        if !numeric {
            continue;
        }
        let key: Vec<u64> = abi
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok())
            .collect();
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, base.to_string()));
        }
    }
    best.map(|(_, n)| n)
}

/// Unpacks the files of the Debian package `deb` that `keep` accepts into `dest`.
pub fn extract_deb(deb: &Path, dest: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb (install the `dpkg` package)")?;
    let stdout = child.stdout.take().context("no output from dpkg-deb")?;
    let result = unpack_tar(std::io::BufReader::new(stdout), dest, keep);
    let status = child.wait().context("waiting for dpkg-deb")?;
    let written = result.with_context(|| format!("cannot unpack {}", deb.display()))?;
    if !status.success() {
        bail!(
            "dpkg-deb --fsys-tarfile {} failed ({status})",
            deb.display()
        );
    }
    Ok(written)
}

/// The `.deb` file of `pkg` that `apt-get download` left in `dir`.
pub fn downloaded_deb(dir: &Path, pkg: &str) -> Result<PathBuf> {
    let prefix = format!("{pkg}_");
    fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download left no {pkg}_*.deb in {}", dir.display()))
}
