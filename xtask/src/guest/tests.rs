//! Tests of the guest-image store, registry, fetching, unpacking and initramfs. No
//! test needs the internet: registries and images are served from temporary
//! directories, as `file://` URLs or by a loopback HTTP server run by the test.
mod archive;
mod debian;
mod registry;
mod store;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// A parsed newc cpio entry (the reader used to check the writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    pub name: String,
    pub mode: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Parses a newc archive up to its trailer, checking magic and alignment.
pub fn parse_cpio(bytes: &[u8]) -> Vec<CpioEntry> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        assert_eq!(pos % 4, 0, "entry not 4-byte aligned");
        let head = &bytes[pos..pos + 110];
        assert_eq!(&head[..6], b"070701", "bad magic at {pos}");
        let field = |i: usize| {
            let s = std::str::from_utf8(&head[6 + i * 8..14 + i * 8]).unwrap();
            u32::from_str_radix(s, 16).unwrap()
        };
        let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
        let rdev = (field(9), field(10));
        let name_start = pos + 110;
        let name = &bytes[name_start..name_start + namesize - 1];
        assert_eq!(
            bytes[name_start + namesize - 1],
            0,
            "name not NUL-terminated"
        );
        let name = String::from_utf8(name.to_vec()).unwrap();
        let data_start = (name_start + namesize).div_ceil(4) * 4;
        let data = bytes[data_start..data_start + size].to_vec();
        pos = (data_start + size).div_ceil(4) * 4;
        if name == super::cpio::TRAILER {
            assert_eq!(pos, bytes.len(), "data after the trailer");
            return out;
        }
        out.push(CpioEntry {
            name,
            mode,
            rdev,
            data,
        });
    }
}

/// A gzip-compressed tar archive of `(path, contents)` files.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    crate::download::hex(&Sha256::digest(data))
}

/// A tiny image archive: `<top>/Image` and `<top>/initramfs.cpio.gz`.
pub fn image_archive() -> Vec<u8> {
    tar_gz(&[
        ("linux-test/Image", b"kernel bytes"),
        ("linux-test/initramfs.cpio.gz", b"initramfs bytes"),
    ])
}

/// Writes `registry.toml` (listing `archive` as image `linux-test`) and
/// `linux-test.tar.gz` into `dir`; the URL is relative or `url` when given.
pub fn write_registry(dir: &Path, archive: &[u8], sha: &str, url: Option<&str>) -> PathBuf {
    fs::write(dir.join("linux-test.tar.gz"), archive).unwrap();
    let reg = dir.join("registry.toml");
    let text = format!(
        "[[images]]\nname = \"linux-test\"\nversion = \"1.0\"\nreleased_at = \"2026-01-01\"\n\
         description = \"a test image\"\nsha256 = \"{sha}\"\narch = \"aarch64\"\nurl = \"{}\"\n",
        url.unwrap_or("linux-test.tar.gz")
    );
    fs::write(&reg, text).unwrap();
    reg
}

/// Serves the files of `dir` over HTTP on a loopback port, for at most `max`
/// connections; returns the base URL (`http://127.0.0.1:PORT`).
pub fn serve_dir(dir: &Path, max: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
            let reply = match fs::read(dir.join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                }
                Err(_) => {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                }
            };
            let _ = s.write_all(&reply);
        }
    });
    format!("http://{addr}")
}

#[test]
fn image_references_of_a_vm_config_and_a_board() {
    let vm = r#"
[kernel]
kernel_path = "image:linux-riscv64/Image"
ramdisk_path = "image:linux-riscv64/initramfs.cpio.gz"
dtb_path = "image:other/x.dtb"
# a comment "image:commented/x" is not a value
[devices]
emu_devices = [["uart", 0x1000, 0x100, 1, 2, ["image:nested/y"]]]
plain = "guest:testguest"
"#;
    assert_eq!(
        super::referenced_images(vm),
        ["linux-riscv64", "other", "nested"]
    );
    assert!(super::referenced_images("kernel_path = \"image:/x\"").is_empty());
    assert!(super::referenced_images("not [ toml").is_empty());
    let board = "arch = \"riscv64\"\nvm_configs = [\"configs/vms/a.toml\", \"b.toml\"]\n";
    assert_eq!(
        super::board_vm_configs(board),
        ["configs/vms/a.toml", "b.toml"]
    );
    assert!(super::board_vm_configs("vm_configs = 3").is_empty());
}
