//! Private apt: Debian packages of any architecture and release, fetched with apt-get
//! into a PRIVATE apt state (own source list, package lists, caches and empty dpkg
//! status in a directory of ours), so the system's apt configuration is never
//! changed. The mirrors and keyrings are the ones the host already uses
//! (/etc/apt/sources.list.d/*.sources and *.list, /etc/apt/sources.list), with the
//! host's release codename replaced by the wanted one (bookworm-security becomes
//! trixie-security). apt checks the archive signatures and package hashes; apt's own
//! output is replaced by a progress bar (on a terminal) fed from `APT::Status-Fd`.
//! Packages are unpacked with `dpkg-deb --fsys-tarfile` and the safe tar reader,
//! keeping only the files asked for. Used by the guest recipes and by `image`.
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::guest::unpack::unpack_tar;

#[cfg(test)]
mod tests;

/// The host's apt configuration.
const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// The Debian archive keyring used when a source names none.
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Marks when the package lists were last fetched.
const UPDATED_STAMP: &str = "updated";

/// One `deb` source of the host: a mirror URI, its suites, components and keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
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
    text.lines().filter_map(one_line_source).collect()
}

fn one_line_source(line: &str) -> Option<AptSource> {
    let line = line.split('#').next().unwrap_or("").trim();
    let rest = line
        .strip_prefix("deb ")
        .or_else(|| line.strip_prefix("deb\t"))?;
    let mut rest = rest.trim();
    let mut signed_by = None;
    if let Some(opts) = rest.strip_prefix('[') {
        let (opts, after) = opts.split_once(']')?;
        signed_by = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by="))
            .map(str::to_string);
        rest = after.trim();
    }
    let mut words = rest.split_whitespace().map(str::to_string);
    let (uri, suite) = (words.next()?, words.next()?);
    Some(AptSource {
        uri,
        suites: vec![suite],
        components: words.collect(),
        signed_by,
    })
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
    let words = |k: &str| -> Vec<String> {
        get(k)
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let is_deb = words("types").iter().any(|t| t == "deb");
    let enabled = get("enabled").is_none_or(|e| !e.eq_ignore_ascii_case("no"));
    if !is_deb || !enabled {
        return Vec::new();
    }
    // An inline key block (several lines) is not a path: fall back to the default.
    let signed_by = get("signed-by")
        .filter(|s| s.starts_with('/') && !s.contains(' '))
        .map(str::to_string);
    words("uris")
        .into_iter()
        .map(|uri| AptSource {
            uri,
            suites: words("suites"),
            components: words("components"),
            signed_by: signed_by.clone(),
        })
        .collect()
}

/// The host's release codename: `VERSION_CODENAME` of /etc/os-release, else the first
/// plain suite (no `-` suffix) of its sources.
pub fn host_codename(sources: &[AptSource]) -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let from_os = text
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty());
    from_os.or_else(|| {
        sources
            .iter()
            .flat_map(|s| s.suites.iter())
            .find(|s| !s.contains('-') && !s.contains('/'))
            .cloned()
    })
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
            let line = source_line(src, &mapped, arch);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        bail!(
            "no Debian mirror found for `{suite}`: the private apt state reuses the mirrors of \
             the host's apt configuration ({SOURCES_DIR}/*.sources, {SOURCES_LIST}), and none \
             of them is a Debian release mirror{}",
            host.map(|h| format!(" for the host release `{h}`"))
                .unwrap_or_default()
        );
    }
    Ok(lines.join("\n") + "\n")
}

/// One `deb` line of the private list.
fn source_line(src: &AptSource, suite: &str, arch: &str) -> String {
    let key = src.signed_by.clone().or_else(|| {
        Path::new(DEFAULT_KEYRING)
            .is_file()
            .then(|| DEFAULT_KEYRING.into())
    });
    let opts = match key {
        Some(k) => format!("[arch={arch} signed-by={k}]"),
        None => format!("[arch={arch}]"),
    };
    let components = match src.components.is_empty() {
        true => "main".to_string(),
        false => src.components.join(" "),
    };
    format!("deb {opts} {} {suite} {components}", src.uri)
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
    /// The private state in `dir` for Debian `suite` (default: the host's release) on
    /// `arch`, with the host's mirrors.
    pub fn open(dir: &Path, arch: &str, suite: Option<&str>) -> Result<PrivateApt> {
        let sources = host_sources();
        let host = host_codename(&sources);
        let Some(suite) = suite.or(host.as_deref()) else {
            bail!("cannot tell the host's Debian release (no VERSION_CODENAME in /etc/os-release): name a suite");
        };
        let list = private_source_list(&sources, host.as_deref(), suite, arch)?;
        PrivateApt::new(dir, arch, &list)
    }

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
        if fs::read_to_string(&list).ok().as_deref() != Some(source_list) {
            fs::write(&list, source_list)
                .with_context(|| format!("cannot write {}", list.display()))?;
            let _ = fs::remove_file(dir.join(UPDATED_STAMP));
        }
        Ok(PrivateApt {
            dir: dir.to_path_buf(),
            arch: arch.to_string(),
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// `apt-get update` of the private lists, unless they were fetched less than
    /// `max_age` ago (`Duration::ZERO`: always).
    pub fn update(&self, max_age: Duration) -> Result<()> {
        let stamp = self.dir.join(UPDATED_STAMP);
        if is_younger_than(&stamp, max_age) {
            return Ok(());
        }
        println!(
            "xtask: apt-get update: Debian {} package lists (private state in {})",
            self.arch,
            self.dir.display()
        );
        let mut cmd = self.command("apt-get");
        cmd.args(["-q", "update"]);
        let (status, log) = run_with_progress(cmd, "apt-get update")
            .context("cannot run apt-get (this needs a Debian host with apt)")?;
        if status.success() {
            return fs::write(&stamp, "")
                .with_context(|| format!("cannot write {}", stamp.display()));
        }
        // A mirror in the middle of a sync can fail some indices (e.g. -security)
        // while the release's main list is fine: go on with what was fetched.
        if self.has_lists() {
            eprintln!(
                "xtask: warning: apt-get update failed for some package lists ({status}); \
                 continuing with the lists it fetched:\n{}",
                log.trim_end()
            );
            return Ok(());
        }
        bail!(
            "apt-get update (private state in {}) failed ({status}):\n{}",
            self.dir.display(),
            log.trim_end()
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

    /// The record of the candidate version of `pkg`, if it exists.
    pub fn show(&self, pkg: &str) -> Result<Option<String>> {
        self.cache(&["show", "--no-all-versions", pkg])
    }

    /// The candidate version of `pkg`, if it exists.
    pub fn version(&self, pkg: &str) -> Result<Option<String>> {
        Ok(self.show(pkg)?.and_then(|s| field(&s, "Version")))
    }

    /// `apt-get download PKGS` (each `name=version` or a name) into `dir`.
    pub fn download(&self, pkgs: &[&str], dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut cmd = self.command("apt-get");
        cmd.args(["-q", "download"]).args(pkgs).current_dir(dir);
        let (status, log) = run_with_progress(cmd, "apt-get download")
            .context("cannot run apt-get (this needs a Debian host with apt)")?;
        if !status.success() {
            bail!(
                "apt-get download {} failed ({status}):\n{}",
                pkgs.join(" "),
                log.trim_end()
            );
        }
        Ok(())
    }
}

fn is_younger_than(path: &Path, max_age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < max_age)
}

/// Runs an apt-get command with its progress (`APT::Status-Fd` on stdout) shown as a
/// bar; returns its exit status and the rest of what it printed (for errors).
fn run_with_progress(mut cmd: Command, what: &str) -> Result<(ExitStatus, String)> {
    cmd.args(["-o", "APT::Status-Fd=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().context("no stderr from apt-get")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().context("no output from apt-get")?;
    let bar = percent_bar(what);
    let mut log = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        match parse_status(&line) {
            Some((pct, msg)) => {
                bar.set_position(pct);
                bar.set_message(format!("{what}: {msg}"));
            }
            None => log.extend([line.as_str(), "\n"]),
        }
    }
    bar.finish_and_clear();
    let status = child.wait().context("waiting for apt-get")?;
    log.push_str(&errors.join().unwrap_or_default());
    Ok((status, log))
}

/// The percentage and text of an apt `dlstatus:N:PERCENT:TEXT` status line.
pub fn parse_status(line: &str) -> Option<(u64, String)> {
    let rest = line.strip_prefix("dlstatus:")?;
    let mut parts = rest.splitn(3, ':');
    let _item = parts.next()?;
    let pct: f64 = parts.next()?.trim().parse().ok()?;
    let msg = parts.next().unwrap_or("").trim().to_string();
    Some((pct.clamp(0.0, 100.0) as u64, msg))
}

fn percent_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(100);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos:>3}%")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// The value of `name:` in an apt-cache record.
pub fn field(record: &str, name: &str) -> Option<String> {
    record.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

/// The first package named in a `Depends` field (metapackages point at the real one).
pub fn first_dependency(depends: &str) -> Option<String> {
    let first = depends.split(',').next()?.split('|').next()?.trim();
    let name = first.split([' ', '(', ':']).next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
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
    let result = unpack_tar(BufReader::new(stdout), dest, keep);
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

/// The `.deb` file of `pkg` at `version` that `apt-get download` left in `dir`
/// (apt writes `<pkg>_<version, ':' as %3a>_<arch>.deb`).
pub fn downloaded_deb(dir: &Path, pkg: &str, version: &str) -> Result<PathBuf> {
    let prefix = format!("{pkg}_{}_", version.replace(':', "%3a"));
    fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .with_context(|| {
            format!(
                "apt-get download left no {prefix}*.deb in {}",
                dir.display()
            )
        })
}
