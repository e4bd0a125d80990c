//! `cargo xtask guest` end to end, through the xtask binary: list, pull and rm against
//! a registry on disk (`file://`) and on a loopback HTTP server run by the test, and
//! VM configs naming files as `image:<name>/<file>` (resolved in the store named by
//! HV_GUEST_STORE, or a config error that says how to pull the image). No internet.
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// The board the config checks use (not the developer's .build.toml).
const BOARD: &str = "configs/board/qemu-aarch64.toml";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cargo xtask ARGS` (the built binary) with HV_GUEST_STORE = `store`.
fn xtask(store: &Path, args: &[&str]) -> (bool, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo_root())
        .env("HV_GUEST_STORE", store)
        .env_remove("HV_GUEST_REGISTRY")
        .output()
        .expect("cannot run xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A registry directory with image `linux-test` (Image + initramfs.cpio.gz).
fn registry_dir(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, data) in [
        ("Image", &b"kernel"[..]),
        ("initramfs.cpio.gz", &b"initramfs"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    }
    let archive = b.into_inner().unwrap().finish().unwrap();
    fs::write(dir.join("images.tar.gz"), &archive).unwrap();
    let reg = dir.join("registry.toml");
    fs::write(
        &reg,
        format!(
            "[[images]]\nname = \"linux-test\"\nversion = \"1.0\"\nreleased_at = \"2026-01-01\"\n\
             description = \"test image\"\nsha256 = \"{}\"\narch = \"aarch64\"\n\
             url = \"images.tar.gz\"\n",
            sha256_hex(&archive)
        ),
    )
    .unwrap();
    reg
}

/// A VM config (the test-guest layout) whose kernel and ramdisk are `kernel`, `ramdisk`.
fn vm_config(dir: &Path, kernel: &str, ramdisk: &str) -> PathBuf {
    let text = format!(
        r#"[base]
id = 1
name = "linux"
vm_type = 2
cpu_num = 2
phys_cpu_ids = [0x0, 0x1]

[kernel]
entry_point = 0x4020_0000
image_location = "memory"
kernel_path = "{kernel}"
kernel_load_addr = 0x4020_0000
ramdisk_path = "{ramdisk}"
ramdisk_load_addr = 0x4800_0000
cmdline = "console=ttyAMA0"
memory_regions = [[0x4000_0000, 0x2000_0000, 0x7, 0]]

[devices]
emu_devices = [
    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],
    ["uart", 0x0900_0000, 0x1000, 33, 0x2, []],
]
passthrough_devices = []
interrupt_mode = "emu"
"#
    );
    let p = dir.join("linux-vm.toml");
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn list_pull_rm_with_a_file_registry() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let reg = registry_dir(&t.path().join("reg"));
    let url = format!("file://{}", reg.display());
    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("xtask: store {}", store.display())),
        "{out}"
    );
    let line = out.lines().find(|l| l.starts_with("linux-test")).unwrap();
    assert!(
        line.contains(" no ") && line.contains("test image"),
        "{line}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("linux-aarch64 ")),
        "{out}"
    );

    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "pull", "linux-test"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("kernel_path = \"image:linux-test/Image\""),
        "{out}"
    );
    assert_eq!(fs::read(store.join("linux-test/Image")).unwrap(), b"kernel");
    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "pull", "linux-test"]);
    assert!(ok && out.contains("already pulled"), "{out}");
    let (_, out) = xtask(&store, &["guest", "--registry", &url, "list"]);
    let line = out.lines().find(|l| l.starts_with("linux-test")).unwrap();
    assert!(line.contains("yes (1.0)"), "{line}");

    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "pull", "nosuch"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("unknown guest image `nosuch` (known: linux-test, linux-aarch64"),
        "{out}"
    );

    let (ok, out) = xtask(&store, &["guest", "rm", "linux-test"]);
    assert!(ok, "{out}");
    assert!(!store.join("linux-test").exists());
    let (ok, out) = xtask(&store, &["guest", "rm", "linux-test"]);
    assert!(!ok && out.contains("is not pulled"), "{out}");
}

/// Serves `dir` on a loopback port for at most `max` connections.
fn serve_dir(dir: &Path, max: usize) -> String {
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
            let req = String::from_utf8_lossy(&head).into_owned();
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
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
                Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = s.write_all(&reply);
        }
    });
    format!("http://{addr}")
}

#[test]
fn pull_from_a_loopback_http_registry_and_checksum_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let www = t.path().join("www");
    registry_dir(&www);
    let base = serve_dir(&www, 16);
    let url = format!("{base}/registry.toml");
    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "pull", "linux-test"]);
    assert!(ok, "{out}");
    assert!(store.join("linux-test/manifest.toml").is_file());
    let manifest = fs::read_to_string(store.join("linux-test/manifest.toml")).unwrap();
    assert!(
        manifest.contains(&format!("source = \"{base}/images.tar.gz\"")),
        "{manifest}"
    );

    // The same registry with a wrong checksum: nothing is stored.
    let text = fs::read_to_string(www.join("registry.toml")).unwrap();
    let i = text.find("sha256 = \"").unwrap() + 10;
    let bad = format!("{}{}{}", &text[..i], "0".repeat(64), &text[i + 64..]);
    fs::write(www.join("registry.toml"), bad).unwrap();
    // The registry is cached in the store since the first pull: `guest sync` fetches
    // the changed one.
    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "sync"]);
    assert!(ok && out.contains("cached in"), "{out}");
    let (ok, out) = xtask(
        &store,
        &["guest", "--registry", &url, "pull", "--force", "linux-test"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(
        out.contains(&format!("expected sha256 {}", "0".repeat(64))),
        "{out}"
    );

    // A registry URL nobody serves: the error names it.
    let gone = format!("{base}/missing.toml");
    let (ok, out) = xtask(
        &store,
        &["guest", "--registry", &gone, "pull", "linux-test2"],
    );
    assert!(!ok && out.contains(&gone), "{out}");
}

#[test]
fn vm_configs_name_files_of_guest_images() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let vm = vm_config(
        t.path(),
        "image:linux-aarch64/Image",
        "image:linux-aarch64/initramfs.cpio.gz",
    );
    let vm_arg = vm.display().to_string();
    let (ok, out) = xtask(&store, &["check", "--config", BOARD, "--vm", &vm_arg]);
    assert!(!ok, "{out}");
    assert!(out.contains("linux-vm.toml"), "{out}");
    assert!(out.contains("kernel.kernel_path"), "{out}");
    assert!(out.contains("kernel.ramdisk_path"), "{out}");
    assert!(out.contains("linux-aarch64/Image"), "{out}");
    assert!(
        out.contains("cargo xtask guest pull linux-aarch64"),
        "{out}"
    );

    // Once the image is in the store, the same config is valid.
    let reg = registry_dir(&t.path().join("reg"));
    let url = format!("file://{}", reg.display());
    let (ok, out) = xtask(&store, &["guest", "--registry", &url, "pull", "linux-test"]);
    assert!(ok, "{out}");
    let vm = vm_config(
        t.path(),
        "image:linux-test/Image",
        "image:linux-test/initramfs.cpio.gz",
    );
    let vm_arg = vm.display().to_string();
    let (ok, out) = xtask(&store, &["check", "--config", BOARD, "--vm", &vm_arg]);
    assert!(ok, "{out}");
    let vm = vm_config(t.path(), "image:linux-test/nope", "image:linux-test");
    let vm_arg = vm.display().to_string();
    let (ok, out) = xtask(&store, &["check", "--config", BOARD, "--vm", &vm_arg]);
    assert!(!ok, "{out}");
    assert!(out.contains("has no file nope"), "{out}");
    assert!(
        out.contains("expected \\\"image:<image>/<file>\\\"")
            || out.contains("image:<image>/<file>"),
        "{out}"
    );
}

#[test]
fn list_pattern_verbose_pull_version_output_dir_and_sync() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let reg = registry_dir(&t.path().join("reg"));
    let url = format!("file://{}", reg.display());
    let g = |args: &[&str]| {
        let mut all = vec!["guest", "--registry", url.as_str()];
        all.extend_from_slice(args);
        xtask(&store, &all)
    };
    let (ok, out) = g(&["list", "TEST"]);
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("linux-test ")), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("linux-aarch64 ")),
        "filtered: {out}"
    );
    let (ok, out) = g(&["list", "-v", "linux-test"]);
    assert!(ok, "{out}");
    assert!(out.contains("released     2026-01-01"), "{out}");
    assert!(out.contains("url          file://"), "{out}");
    let (ok, out) = g(&["list", "nothing-like-this"]);
    assert!(ok && out.contains("no guest image matches"), "{out}");

    let (ok, out) = g(&["pull", "linux-test:9.9"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("has no version \"9.9\"") && out.contains("versions: 1.0"),
        "{out}"
    );
    let dest = t.path().join("out");
    let (ok, out) = g(&["pull", "linux-test:1.0", "-o", dest.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(fs::read(dest.join("Image")).unwrap(), b"kernel");
    assert_eq!(
        fs::read(dest.join("initramfs.cpio.gz")).unwrap(),
        b"initramfs"
    );
    assert!(!dest.join("manifest.toml").exists());
    assert_eq!(fs::read(store.join("linux-test/Image")).unwrap(), b"kernel");

    let (ok, out) = g(&["sync"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 image(s) (a local file"), "{out}");
}
