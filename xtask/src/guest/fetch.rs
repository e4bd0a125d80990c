//! Where registries and images come from, and fetching them: `http://` and `https://`
//! with reqwest (rustls, no system OpenSSL), `file://` URLs and plain paths straight
//! from disk. Downloads show an indicatif progress bar (on a terminal) and are hashed
//! with SHA-256 on the way.
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// The URL scheme of the built-in recipes in a registry (`recipe:linux-aarch64`).
pub const RECIPE_SCHEME: &str = "recipe:";

/// A resolved location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local file (from `file://` or a plain path).
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Http(String),
    /// A built-in recipe, by name.
    Recipe(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => write!(f, "file://{}", p.display()),
            Location::Http(u) => f.write_str(u),
            Location::Recipe(n) => write!(f, "{RECIPE_SCHEME}{n}"),
        }
    }
}

impl Location {
    /// Parses `url`; a relative one is taken relative to the registry at `base`.
    pub fn parse(url: &str, base: Option<&Location>) -> Result<Location> {
        let url = url.trim();
        if url.is_empty() {
            bail!("empty URL");
        }
        if let Some(name) = url.strip_prefix(RECIPE_SCHEME) {
            return Ok(Location::Recipe(name.to_string()));
        }
        if let Some(rest) = url.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                bail!("{url}: a file:// URL needs an absolute path (file:///dir/file)");
            }
            return Ok(Location::File(PathBuf::from(percent_decode(path))));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Location::Http(url.to_string()));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            bail!("{url}: unsupported URL scheme `{scheme}` (use http, https or file)");
        }
        if url.starts_with('/') {
            return Ok(Location::File(PathBuf::from(url)));
        }
        Ok(match base {
            Some(Location::File(p)) => {
                Location::File(p.parent().unwrap_or(Path::new(".")).join(url))
            }
            Some(Location::Http(b)) => Location::Http(join_url(b, url)),
            _ => Location::File(PathBuf::from(url)),
        })
    }

    /// A key that names the same place the same way (for include-cycle detection).
    pub fn key(&self) -> String {
        match self {
            Location::File(p) => std::fs::canonicalize(p)
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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Checks a SHA-256 (hex, any case) against the expected one.
pub fn check_sha256(what: &str, expected: &str, got: &str) -> Result<()> {
    if expected.trim().eq_ignore_ascii_case(got) {
        return Ok(());
    }
    bail!(
        "checksum mismatch for {what}: expected sha256 {}, got {got}",
        expected.trim().to_ascii_lowercase()
    )
}

fn client(url: &str) -> Result<reqwest::blocking::Client> {
    let mut b = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .user_agent(concat!("hypervisor-xtask/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        b = b.no_proxy();
    }
    b.build().context("cannot set up the HTTP client")
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}

fn http_get(url: &str) -> Result<reqwest::blocking::Response> {
    let resp = client(url)?
        .get(url)
        .send()
        .map_err(|e| anyhow!("cannot fetch {url}: {}", error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("cannot fetch {url}: the server answered HTTP {status}");
    }
    Ok(resp)
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = c.source();
    }
    text
}

/// Reads a (small) text document such as a registry.
pub fn read_text(loc: &Location) -> Result<String> {
    match loc {
        Location::File(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read {loc} ({})", p.display())),
        Location::Http(url) => http_get(url)?
            .text()
            .map_err(|e| anyhow!("cannot fetch {url}: {}", error_chain(&e))),
        Location::Recipe(_) => bail!("{loc} is a built-in recipe, not a document"),
    }
}

/// Copies what `loc` names to `dest`, with a progress bar; returns its SHA-256.
pub fn download(loc: &Location, dest: &Path) -> Result<String> {
    let mut out =
        File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let (mut input, len): (Box<dyn Read>, Option<u64>) = match loc {
        Location::File(p) => {
            let f = File::open(p).with_context(|| format!("cannot read {loc}"))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        Location::Http(url) => {
            let resp = http_get(url)?;
            let len = resp.content_length();
            (Box::new(resp), len)
        }
        Location::Recipe(_) => bail!("{loc} is a built-in recipe, not a download"),
    };
    let bar = progress_bar(len, &loc.to_string());
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| anyhow!("cannot fetch {loc}: {}", error_chain(&e)))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", dest.display()))?;
        total += n as u64;
        bar.set_position(total);
    }
    bar.finish_and_clear();
    if let Some(len) = len.filter(|l| *l != total) {
        bail!("cannot fetch {loc}: got {total} of {len} bytes");
    }
    out.flush()?;
    Ok(hex(&h.finalize()))
}

fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    let short = what.rsplit('/').next().unwrap_or(what).to_string();
    bar.set_message(short);
    bar
}
