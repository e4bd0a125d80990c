//! The one downloader of xtask: `http://` and `https://` through `xtask-fetch`
//! (reqwest with rustls, no system OpenSSL; a binary of its own, built on first use),
//! `file://` URLs and plain paths straight from disk. Each download is written to a
//! `.<name>.part` file next to its destination, hashed with SHA-256 on the way,
//! checked against the expected hash and only then renamed into place; on every
//! error, and on Ctrl-C or SIGTERM, the `.part` file is removed. A progress bar shows on a terminal only
//! (indicatif draws nothing when stderr is not one), so logs get one plain line.
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

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
        Source::Http(url) => {
            let mut text = String::new();
            http_get(url)?
                .read_to_string(&mut text)
                .map_err(|e| anyhow!("cannot fetch {url}: {e}"))?;
            Ok(text)
        }
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
    /// Removes the file on Ctrl-C or SIGTERM too.
    _on_signal: crate::cleanup::OnSignal,
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
        let on_signal = crate::cleanup::remove_on_signal(&path)?;
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(PartFile {
            path,
            file: Some(file),
            _on_signal: on_signal,
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
            .map_err(|e| anyhow!("cannot fetch {src}: {e}"))?;
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
            let body = http_get(url)?;
            let len = body.len;
            (Box::new(body), len)
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

/// The body of an HTTP(S) GET, read from `xtask-fetch` (see [`fetch_exe`]): its
/// stdout after the header line. Reading it to the end fails when `xtask-fetch`
/// failed (its message). Dropped early, it ends `xtask-fetch`.
struct HttpBody {
    url: String,
    child: Child,
    out: BufReader<ChildStdout>,
    len: Option<u64>,
    done: bool,
}

impl HttpBody {
    /// The failure `xtask-fetch` reported, once it has exited, or `None` when it
    /// succeeded.
    fn failure(&mut self) -> Option<String> {
        let status = self.child.wait();
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        self.done = true;
        match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(match text.trim() {
                "" => format!("xtask-fetch failed ({s})"),
                t => t.to_string(),
            }),
            Err(e) => Some(format!("waiting for xtask-fetch: {e}")),
        }
    }
}

impl Read for HttpBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.out.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            if let Some(e) = self.failure() {
                return Err(std::io::Error::other(e));
            }
        }
        Ok(n)
    }
}

impl Drop for HttpBody {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `xtask-fetch`, the HTTP(S) client (reqwest with rustls) in a binary of its own
/// (`xtask/fetch/`), so that the commands that download nothing do not compile an
/// HTTP and TLS stack. Built with `cargo build -p xtask-fetch` on first use (and
/// checked to be current once per xtask run).
fn fetch_exe() -> Result<PathBuf> {
    static EXE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        crate::workspace::build_helper(&root, "xtask-fetch", "the HTTP(S) downloader")
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn http_get(url: &str) -> Result<HttpBody> {
    let exe = fetch_exe()?;
    let mut child = Command::new(&exe)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let stdout = child.stdout.take().context("no stdout from xtask-fetch")?;
    let mut body = HttpBody {
        url: url.to_string(),
        child,
        out: BufReader::new(stdout),
        len: None,
        done: false,
    };
    let mut head = String::new();
    let _ = body.out.read_line(&mut head);
    let Some(len) = head.trim_end().strip_prefix("xtask-fetch ") else {
        let why = body
            .failure()
            .unwrap_or_else(|| format!("unexpected answer from xtask-fetch: {head:?}"));
        bail!("cannot fetch {}: {why}", body.url);
    };
    body.len = len.parse().ok();
    Ok(body)
}
