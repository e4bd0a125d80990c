//! The one downloader of xtask: `http://` and `https://` with reqwest (rustls, no
//! system OpenSSL), `file://` URLs and plain paths straight from disk. Each download
//! is written to a `.<name>.part` file next to its destination, hashed with SHA-256 on
//! the way, checked against the expected hash and only then renamed into place; on
//! every error the `.part` file is removed. A progress bar shows on a terminal only
//! (indicatif draws nothing when stderr is not one), so logs get one plain line.
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// Where a download comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local file (from `file://` or an absolute path).
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Http(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "file://{}", p.display()),
            Source::Http(u) => f.write_str(u),
        }
    }
}

impl Source {
    /// Parses an absolute location: an `http(s)://` or `file://` URL or an absolute
    /// path.
    pub fn parse(url: &str) -> Result<Source> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                bail!("{url}: a file:// URL needs an absolute path (file:///dir/file)");
            }
            return Ok(Source::File(PathBuf::from(percent_decode(path))));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Source::Http(url.to_string()));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            bail!("{url}: unsupported URL scheme `{scheme}` (use http, https or file)");
        }
        if url.starts_with('/') {
            return Ok(Source::File(PathBuf::from(url)));
        }
        bail!("{url}: not an http(s):// or file:// URL or an absolute path")
    }
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

/// Reads a small text document (a registry) from `src`.
pub fn read_text(src: &Source) -> Result<String> {
    match src {
        Source::File(p) => {
            fs::read_to_string(p).with_context(|| format!("cannot read {src} ({})", p.display()))
        }
        Source::Http(url) => http_get(url)?
            .text()
            .map_err(|e| anyhow!("cannot fetch {url}: {}", error_chain(&e))),
    }
}

/// Copies what `src` names to `dest` with a progress bar and returns its SHA-256.
/// With `expected`, a different hash is an error naming both. `dest` appears only
/// when everything succeeded; nothing is left behind otherwise.
pub fn download(src: &Source, dest: &Path, expected: Option<&str>) -> Result<String> {
    let mut part = PartFile::create(dest)?;
    println!("xtask: downloading {src}");
    let got = copy_hashed(src, &mut part)?;
    if let Some(want) = expected {
        check_sha256(&src.to_string(), want, &got)?;
    }
    part.persist(dest)?;
    Ok(got)
}

/// A `.<name>.part` file next to a destination; removed when dropped unless
/// persisted.
struct PartFile {
    path: PathBuf,
    file: Option<File>,
}

impl PartFile {
    fn create(dest: &Path) -> Result<PartFile> {
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file name", dest.display()))?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let path = dir.join(format!(".{}.part", name.to_string_lossy()));
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(PartFile {
            path,
            file: Some(file),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let f = self.file.as_mut().context("download file already closed")?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Flushes, closes and renames the file to `dest`.
    fn persist(mut self, dest: &Path) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        fs::rename(&self.path, dest).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.path.display(),
                dest.display()
            )
        })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.path);
    }
}

/// Copies `src` into `part`, hashing on the way; checks the length the server gave.
fn copy_hashed(src: &Source, part: &mut PartFile) -> Result<String> {
    let (mut input, len) = open(src)?;
    let bar = bytes_bar(len, &src.to_string());
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| anyhow!("cannot fetch {src}: {}", error_chain(&e)))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        part.write(&buf[..n])?;
        total += n as u64;
        bar.set_position(total);
    }
    bar.finish_and_clear();
    if let Some(len) = len.filter(|l| *l != total) {
        bail!("cannot fetch {src}: got {total} of {len} bytes (transfer cut short)");
    }
    Ok(hex(&h.finalize()))
}

/// A reader for `src` and its length when known.
fn open(src: &Source) -> Result<(Box<dyn Read>, Option<u64>)> {
    Ok(match src {
        Source::File(p) => {
            let f = File::open(p).with_context(|| format!("cannot read {src}"))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        Source::Http(url) => {
            let resp = http_get(url)?;
            let len = resp.content_length();
            (Box::new(resp), len)
        }
    })
}

/// A byte-counting progress bar labelled with the last part of `what`.
fn bytes_bar(len: Option<u64>, what: &str) -> ProgressBar {
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
    bar.set_message(what.rsplit('/').next().unwrap_or(what).to_string());
    bar
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
