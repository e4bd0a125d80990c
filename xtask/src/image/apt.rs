//! Files from Debian packages of another architecture, fetched without touching the
//! system's apt configuration: a private apt state (its own source list, package
//! lists, cache and an empty dpkg status) under `target/hv/apt/`, with the mirror
//! URIs and keyrings read from the system's `/etc/apt/sources.list.d/*.sources`
//! (and `/etc/apt/sources.list`). `apt-get download` fetches the package (apt checks
//! the archive signatures and the package hashes) and `dpkg-deb -x` unpacks it.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

/// Package lists older than this are refreshed.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One apt source: mirror URIs, suites, components and the keyring to check with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// Parses deb822 `.sources` text (paragraphs of `Key: value`, `#` comments,
/// continuation lines); keeps the `Types: deb` entries that are not `Enabled: no`.
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in para.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
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
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let words = |k: &str| -> Vec<String> {
            get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if !words("types").iter().any(|t| t == "deb") || get("enabled") == Some("no") {
            continue;
        }
        let src = AptSource {
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            signed_by: get("signed-by")
                .filter(|s| s.starts_with('/'))
                .map(str::to_string),
        };
        if !src.uris.is_empty() && !src.suites.is_empty() {
            out.push(src);
        }
    }
    out
}

/// Parses one-line `sources.list` entries (`deb [opts] uri suite comp...`).
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
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
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 2 {
            continue;
        }
        out.push(AptSource {
            uris: vec![words[0].to_string()],
            suites: vec![words[1].to_string()],
            components: words[2..].iter().map(|w| w.to_string()).collect(),
            signed_by,
        });
    }
    out
}

/// The system's apt sources.
pub fn system_sources() -> Vec<AptSource> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            match p.extension().and_then(|e| e.to_str()) {
                Some("sources") => out.extend(parse_deb822(&text)),
                Some("list") => out.extend(parse_one_line(&text)),
                _ => {}
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        out.extend(parse_one_line(&text));
    }
    out
}

/// The system's release codename: the first suite without a `-` suffix.
fn system_codename(sources: &[AptSource]) -> Option<String> {
    sources
        .iter()
        .flat_map(|s| s.suites.iter())
        .find(|s| !s.contains('-') && !s.contains('/'))
        .cloned()
}

/// The private source list for `arch`: the system's sources, with the release
/// codename replaced by `suite` when one is asked for (`bookworm-security` becomes
/// `trixie-security`). The system's own suites stay in too.
pub fn source_list(sources: &[AptSource], arch: &str, suite: Option<&str>) -> String {
    let codename = system_codename(sources);
    let mut lines = Vec::new();
    for s in sources {
        let opts = match &s.signed_by {
            Some(k) => format!("[arch={arch} signed-by={k}]"),
            None => format!("[arch={arch}]"),
        };
        let mut suites: Vec<String> = s.suites.clone();
        if let (Some(new), Some(old)) = (suite, codename.as_deref()) {
            for su in &s.suites {
                if let Some(rest) = su.strip_prefix(old) {
                    suites.push(format!("{new}{rest}"));
                }
            }
        }
        for uri in &s.uris {
            for su in &suites {
                let line = format!("deb {opts} {uri} {su} {}", s.components.join(" "));
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A private apt state for one architecture (and optional extra suite).
pub struct AptState {
    dir: PathBuf,
    arch: String,
}

impl AptState {
    /// Prepares `base/<arch>[-<suite>]/` with the source list.
    pub fn new(base: &Path, arch: &str, suite: Option<&str>) -> Result<AptState> {
        let name = match suite {
            Some(s) => format!("{arch}-{s}"),
            None => arch.to_string(),
        };
        let dir = base.join(name);
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "parts",
            "debs",
            "unpacked",
        ] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        let sources = system_sources();
        if sources.is_empty() {
            bail!("no apt sources found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (they give the Debian mirror to download from)");
        }
        let list = source_list(&sources, arch, suite);
        let list_path = dir.join("sources.list");
        let old = std::fs::read_to_string(&list_path).unwrap_or_default();
        if old != list {
            std::fs::write(&list_path, &list)
                .with_context(|| format!("cannot write {}", list_path.display()))?;
            let _ = std::fs::remove_file(dir.join("updated"));
        }
        let status = dir.join("status");
        if !status.exists() {
            std::fs::write(&status, "")?;
        }
        Ok(AptState {
            dir,
            arch: arch.to_string(),
        })
    }

    /// The `-o` options that make apt use only this state.
    pub fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures={}", self.arch),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::Etc::SourceList={d}/sources.list"),
            format!("Dir::Etc::SourceParts={d}/parts"),
            "Debug::NoLocking=1".into(),
            "APT::Sandbox::User=root".into(),
        ]
    }

    fn run(&self, program: &str, args: &[&str], cwd: &Path) -> Result<String> {
        let mut cmd = Command::new(program);
        for o in self.options() {
            cmd.arg("-o").arg(o);
        }
        let out =
            cmd.args(args).current_dir(cwd).output().with_context(|| {
                format!("cannot run {program} (is this a Debian system with apt?)")
            })?;
        if !out.status.success() {
            bail!(
                "{program} {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `apt-get update` when the lists are missing or older than a day.
    pub fn update(&self) -> Result<()> {
        let stamp = self.dir.join("updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < LISTS_MAX_AGE);
        if fresh {
            return Ok(());
        }
        println!(
            "xtask: apt-get update (private state in {}, {} packages)",
            self.dir.display(),
            self.arch
        );
        self.run("apt-get", &["-q", "update"], &self.dir)?;
        std::fs::write(&stamp, "")?;
        Ok(())
    }

    /// The candidate version of `package`, if apt knows it.
    fn version(&self, package: &str) -> Result<Option<String>> {
        let out = self.run("apt-cache", &["policy", package], &self.dir)?;
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_string())
            .filter(|v| v != "(none)"))
    }

    /// Downloads and unpacks `package`; returns the unpacked tree.
    pub fn unpack(&self, package: &str) -> Result<PathBuf> {
        let Some(version) = self.version(package)? else {
            bail!(
                "Debian package {package} is not available for {} from the configured mirrors (suite wrong or name changed? try `apt-cache search` with the same options)",
                self.arch
            );
        };
        let tree = self
            .dir
            .join("unpacked")
            .join(format!("{package}_{}", version.replace(':', "%3a")));
        if tree.join(".complete").exists() {
            return Ok(tree);
        }
        let debs = self.dir.join("debs");
        println!(
            "xtask: downloading Debian package {package} {version} ({})",
            self.arch
        );
        self.run(
            "apt-get",
            &["-q", "download", &format!("{package}={version}")],
            &debs,
        )?;
        let deb = find_deb(&debs, package)?;
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree)?;
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&tree)
            .status()
            .context("cannot run dpkg-deb")?;
        if !status.success() {
            bail!("dpkg-deb -x {} failed ({status})", deb.display());
        }
        let depends = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Depends")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        std::fs::write(tree.join(".depends"), depends)?;
        std::fs::write(tree.join(".complete"), "")?;
        Ok(tree)
    }
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    let mut found: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(&prefix) && n.ends_with(".deb")
        })
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (t, e.path())
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).with_context(|| {
        format!(
            "apt-get download left no {package}_*.deb in {}",
            dir.display()
        )
    })
}

/// Files under `tree` whose path ends with `suffix` (whole components).
pub fn find_in_tree(tree: &Path, suffix: &str) -> Vec<PathBuf> {
    let want: Vec<&str> = suffix.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    walk(tree, &mut |p| {
        let comps: Vec<String> = p
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if comps.len() >= want.len() && comps[comps.len() - want.len()..] == want[..] {
            out.push(p.to_path_buf());
        }
    });
    out.sort();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, f),
            Ok(t) if t.is_file() => f(&p),
            _ => {}
        }
    }
}

/// The first package named in a `Depends` field (metapackages point at the real one).
pub fn first_dependency(depends: &str) -> Option<String> {
    let first = depends.split(',').next()?.split('|').next()?.trim();
    let name = first.split([' ', '(', ':']).next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}
