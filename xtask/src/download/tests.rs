//! The downloader against a loopback HTTP server run by each test: hash check,
//! HTTP errors, cut transfers, and that no `.part` or destination file is left on
//! failure.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{download, hex, Source};

const BODY: &[u8] = b"the bytes of a bootloader";

/// Serves one HTTP request with `status` and `body`, announcing `length` bytes;
/// returns the URL of `/file.bin`.
fn serve_once(status: &'static str, body: &'static [u8], length: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        // The request: lines up to the empty one.
        let mut request = BufReader::new(&s);
        let mut line = String::new();
        while request.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let head =
            format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body);
    });
    format!("http://{addr}/file.bin")
}

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The names of the files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn downloads_and_checks_the_sha256() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("out.bin");
    let url = serve_once("200 OK", BODY, BODY.len());
    let got = download(&Source::parse(&url).unwrap(), &dest, Some(&sha(BODY))).unwrap();
    assert_eq!(got, sha(BODY));
    assert_eq!(std::fs::read(&dest).unwrap(), BODY);
    assert_eq!(files(t.path()), ["out.bin"]);
}

#[test]
fn a_wrong_sha256_names_both_and_leaves_no_file() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("out.bin");
    let url = serve_once("200 OK", BODY, BODY.len());
    let wrong = "ab".repeat(32);
    let e = download(&Source::parse(&url).unwrap(), &dest, Some(&wrong)).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("checksum mismatch"), "{e}");
    assert!(e.contains(&wrong) && e.contains(&sha(BODY)), "{e}");
    assert!(files(t.path()).is_empty(), "{:?}", files(t.path()));
}

#[test]
fn http_404_is_a_clear_error_and_leaves_no_file() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("out.bin");
    let url = serve_once("404 Not Found", b"", 0);
    let e = download(&Source::parse(&url).unwrap(), &dest, None).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("HTTP 404") && e.contains(&url), "{e}");
    assert!(files(t.path()).is_empty(), "{:?}", files(t.path()));
}

#[test]
fn a_cut_transfer_is_an_error_and_leaves_no_file() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("out.bin");
    let url = serve_once("200 OK", BODY, BODY.len() + 100);
    let e = download(&Source::parse(&url).unwrap(), &dest, None).unwrap_err();
    assert!(format!("{e:#}").contains("cannot fetch"), "{e:#}");
    assert!(files(t.path()).is_empty(), "{:?}", files(t.path()));
}

#[test]
fn file_urls_and_paths() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("a b.bin");
    std::fs::write(&src, BODY).unwrap();
    let url = format!("file://{}", src.display()).replace(' ', "%20");
    assert_eq!(Source::parse(&url).unwrap(), Source::File(src.clone()));
    let dest = t.path().join("sub/copy.bin");
    download(&Source::parse(&url).unwrap(), &dest, Some(&sha(BODY))).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), BODY);
    assert!(Source::parse("ftp://x/y").is_err());
    assert!(Source::parse("file://relative").is_err());
    assert!(Source::parse("relative/path").is_err());
}
