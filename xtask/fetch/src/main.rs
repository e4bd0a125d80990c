//! `xtask-fetch URL`: GETs one `http://` or `https://` URL for xtask's downloader
//! (`xtask/src/download.rs`), which checks, hashes and stores what it reads. It is a
//! binary of its own so that the commands that download nothing (`cargo xtask run`,
//! `build`, `test`) do not compile an HTTP and TLS stack; xtask builds it on first use.
//!
//! On success stdout gets one header line, `xtask-fetch <length>` (`-` when the
//! server gave none), then the body, and the exit status is 0. On failure stderr
//! gets one line (the error with its causes) and the exit status is 1; a body cut
//! short fails too.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url] = args.as_slice() else {
        eprintln!("usage: xtask-fetch URL (run by cargo xtask)");
        return ExitCode::from(2);
    };
    match fetch(url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(url: &str) -> Result<(), String> {
    let mut b = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .user_agent(concat!("hypervisor-xtask/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        b = b.no_proxy();
    }
    let client = b
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
    let mut resp = client.get(url).send().map_err(|e| error_chain(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("the server answered HTTP {status}"));
    }
    let len = resp
        .content_length()
        .map_or_else(|| "-".to_string(), |l| l.to_string());
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "xtask-fetch {len}")
        .and_then(|()| match resp.copy_to(&mut out) {
            Ok(_) => Ok(()),
            Err(e) => Err(std::io::Error::other(error_chain(&e))),
        })
        .and_then(|()| out.flush());
    written.map_err(|e| e.to_string())
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
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
