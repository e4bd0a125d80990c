//! cpio writer, initramfs and tar unpacking.
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::{parse_cpio, tar_gz};
use crate::guest::cpio::{CpioWriter, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};
use crate::guest::initramfs;
use crate::guest::unpack::{safe_relative, unpack_tar, unpack_tar_gz};

fn sample_cpio() -> Vec<u8> {
    let mut w = CpioWriter::new(Vec::new());
    w.dir("bin", 0o755).unwrap();
    w.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
    w.file("odd", 0o644, b"12345").unwrap();
    w.symlink("bin/sh", "hello").unwrap();
    w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
    w.finish().unwrap()
}

#[test]
fn cpio_round_trip() {
    let bytes = sample_cpio();
    assert_eq!(bytes.len() % 4, 0);
    let e = parse_cpio(&bytes);
    let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bin", "bin/hello", "odd", "bin/sh", "dev/console"]);
    assert_eq!(e[0].mode, S_IFDIR | 0o755);
    assert_eq!(e[1].mode, S_IFREG | 0o755);
    assert_eq!(e[1].data, b"#!/bin/sh\necho hi\n");
    assert_eq!(e[2].data, b"12345");
    assert_eq!(e[3].mode, S_IFLNK | 0o777);
    assert_eq!(e[3].data, b"hello");
    assert_eq!(e[4].mode, S_IFCHR | 0o600);
    assert_eq!(e[4].rdev, (5, 1));
}

#[test]
fn cpio_rejects_bad_names() {
    let mut w = CpioWriter::new(Vec::new());
    assert!(w.file("", 0o644, b"").is_err());
    assert!(w.file("TRAILER!!!", 0o644, b"").is_err());
    assert!(w.file("a\0b", 0o644, b"").is_err());
}

/// When GNU cpio is installed, it must list and extract our archive the same way.
#[test]
fn cpio_matches_gnu_cpio_when_installed() {
    if crate::host_tools::find_on_path("cpio").is_none() {
        eprintln!("cpio not installed: comparison skipped");
        return;
    }
    let mut child = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = sample_cpio();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&bytes).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names, ["bin", "bin/hello", "odd", "bin/sh", "dev/console"]);
}

fn fake_busybox(with_table: bool) -> Vec<u8> {
    let mut b = b"\x7fELF....padding....".to_vec();
    if with_table {
        b.extend_from_slice(b"[\0[[\0cat\0mount\0poweroff\0setsid\0sh\0../evil\0\0more");
    }
    b
}

fn initramfs_entries(busybox: &[u8]) -> Vec<super::CpioEntry> {
    let gz = initramfs::build(busybox).unwrap();
    let mut raw = Vec::new();
    GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
    parse_cpio(&raw)
}

#[test]
fn initramfs_has_busybox_applets_init_and_mountpoints() {
    let bb = fake_busybox(true);
    let e = initramfs_entries(&bb);
    let get = |n: &str| e.iter().find(|x| x.name == n);
    for d in ["dev", "proc", "sys", "bin", "tmp", "root"] {
        assert_eq!(get(d).map(|x| x.mode & 0o170000), Some(S_IFDIR), "{d}");
    }
    assert_eq!(get("bin/busybox").unwrap().data, bb);
    for a in ["sh", "mount", "poweroff", "setsid", "cat", "["] {
        let l = get(&format!("bin/{a}")).unwrap_or_else(|| panic!("bin/{a} missing"));
        assert_eq!(l.mode, S_IFLNK | 0o777);
        assert_eq!(l.data, b"busybox");
    }
    assert!(!e.iter().any(|x| x.name.contains("evil")));
    assert_eq!(get("sbin").unwrap().data, b"bin");
    assert_eq!(get("dev/console").unwrap().rdev, (5, 1));
    let init = get("init").unwrap();
    assert_eq!(init.mode, S_IFREG | 0o755);
    let script = String::from_utf8(init.data.clone()).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    for needle in [
        "guest-init: ready",
        "guest-init: cpus",
        "guest-init: done $status",
        "poweroff -f",
        "setsid cttyhack sh",
        "mount -t proc",
        "mount -t sysfs",
        "mount -t devtmpfs",
    ] {
        assert!(script.contains(needle), "init lacks {needle:?}");
    }
}

#[test]
fn initramfs_falls_back_to_a_fixed_applet_list() {
    let e = initramfs_entries(&fake_busybox(false));
    for a in ["sh", "mount", "poweroff", "setsid", "cttyhack", "nproc"] {
        assert!(e.iter().any(|x| x.name == format!("bin/{a}")), "{a}");
    }
}

/// The init script is valid shell and counts CPUs from a range list correctly.
#[test]
fn init_script_parses_and_counts_cpus() {
    let Some(sh) = crate::host_tools::find_on_path("sh") else {
        return;
    };
    let out = Command::new(&sh)
        .args(["-n", "-c", initramfs::INIT_SCRIPT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The counting function alone, fed sample lists.
    let start = initramfs::INIT_SCRIPT.find("online_cpus() {").unwrap();
    let end = initramfs::INIT_SCRIPT[start..].find("\n}\n").unwrap() + start + 3;
    let func = &initramfs::INIT_SCRIPT[start..end].replace(
        "cat /sys/devices/system/cpu/online 2>/dev/null",
        "echo \"$LIST\"",
    );
    for (list, n) in [("0", "1"), ("0-1", "2"), ("0-3", "4"), ("0-1,3,5-6", "5")] {
        let out = Command::new(&sh)
            .args(["-c", &format!("{func}\nonline_cpus")])
            .env("LIST", list)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), n, "{list}");
    }
}

/// The overlay keeps the pulled initramfs byte for byte, pads it to 4 bytes and
/// appends a gzip cpio whose only file is the current `/init`.
#[test]
fn current_init_is_appended_to_an_older_initramfs() {
    for base_len in [0usize, 5, 8, 13] {
        let base: Vec<u8> = (0..base_len as u8).map(|b| b | 0x80).collect();
        let out = initramfs::with_current_init(&base).unwrap();
        assert_eq!(&out[..base_len], &base[..]);
        let start = base_len.div_ceil(4) * 4;
        assert!(out[base_len..start].iter().all(|b| *b == 0), "{base_len}");
        let mut raw = Vec::new();
        GzDecoder::new(&out[start..]).read_to_end(&mut raw).unwrap();
        let e = parse_cpio(&raw);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "init");
        assert_eq!(e[0].mode, S_IFREG | 0o755);
        assert_eq!(e[0].data, initramfs::INIT_SCRIPT.as_bytes());
    }
}

/// The script's uptime lines, run by a host shell against the host's /proc/uptime,
/// print what the bench's parser reads, before `guest-init: ready`.
#[test]
fn init_script_prints_its_uptime_before_ready() {
    let Some(sh) = crate::host_tools::find_on_path("sh") else {
        return;
    };
    if !Path::new("/proc/uptime").exists() {
        return;
    }
    let s = initramfs::INIT_SCRIPT;
    let start = s.find("read -r up idle").unwrap();
    let ready = "echo \"guest-init: ready\"\n";
    let end = s.find(ready).unwrap() + ready.len();
    assert!(start < end);
    let out = Command::new(&sh)
        .args(["-c", &s[start..end]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"guest-init: ready"), "{text}");
    let up = crate::cmd::bench::parse::uptime(lines[0]).unwrap();
    assert!(up > 0.0, "{text}");
    // The nanosecond line comes when the host has /proc/timer_list, as Linux guests do.
    let timer_list = std::fs::read_to_string("/proc/timer_list").is_ok();
    assert_eq!(lines.len(), if timer_list { 3 } else { 2 }, "{text}");
    if timer_list {
        let ns = crate::cmd::bench::parse::monotonic(lines[1]).unwrap();
        assert!(ns > 0.0, "{text}");
    }
}

#[test]
fn unpacks_a_tar_gz() {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("a.tar.gz");
    fs::write(&archive, tar_gz(&[("d/x.txt", b"x"), ("./y", b"yy")])).unwrap();
    let dest = t.path().join("out");
    unpack_tar_gz(&archive, &dest).unwrap();
    assert_eq!(fs::read(dest.join("d/x.txt")).unwrap(), b"x");
    assert_eq!(fs::read(dest.join("y")).unwrap(), b"yy");
}

/// A tar header with a raw name (the builder refuses unsafe names itself).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tar_with(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        raw_entry(&mut b, name, *kind, link, data);
    }
    b.into_inner().unwrap()
}

fn unpack_err(bytes: &[u8], root: &Path) -> String {
    let dest = root.join("image");
    let err = unpack_tar(bytes, &dest, |_| true).unwrap_err();
    format!("{err:#}")
}

#[test]
fn unpack_refuses_paths_leaving_the_directory() {
    use tar::EntryType::{Link, Regular, Symlink};
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tar_with(&[("../evil", Regular, "", b"x")]), "`..`"),
        (tar_with(&[("a/../../evil", Regular, "", b"x")]), "`..`"),
        (
            tar_with(&[("/tmp/evil-abs", Regular, "", b"x")]),
            "absolute",
        ),
        (tar_with(&[("l", Symlink, "../..", b"")]), "outside"),
        (tar_with(&[("l", Symlink, "/etc", b"")]), "symbolic link"),
        (
            tar_with(&[("l", Symlink, "sub", b""), ("l/x", Regular, "", b"x")]),
            "through the symbolic link",
        ),
        (tar_with(&[("h", Link, "/etc/passwd", b"")]), "hard links"),
        (
            // A chain: a -> . then b -> a/a/.. resolves to the parent of the image.
            tar_with(&[("a", Symlink, ".", b""), ("b", Symlink, "a/a/..", b"")]),
            "outside",
        ),
    ];
    for (bytes, want) in cases {
        let msg = unpack_err(&bytes, root);
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    }
    assert!(!root.join("evil").exists());
    assert!(!Path::new("/tmp/evil-abs").exists());
    let b = root.join("image/b");
    assert!(
        fs::symlink_metadata(&b).is_err(),
        "escaping link left behind"
    );
}

#[test]
fn unpack_keeps_links_inside_and_filters() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let t = tempfile::tempdir().unwrap();
    let bytes = tar_with(&[
        ("./", Directory, "", b""),
        ("d/", Directory, "", b""),
        ("d/f", Regular, "", b"data"),
        ("d/l", Symlink, "f", b""),
        ("top", Symlink, "d/f", b""),
        ("skip/me", Regular, "", b"no"),
    ]);
    let dest = t.path().join("out");
    let written = unpack_tar(&bytes[..], &dest, |p| !p.starts_with("skip")).unwrap();
    assert_eq!(written.len(), 4);
    assert_eq!(fs::read(dest.join("d/l")).unwrap(), b"data");
    assert_eq!(fs::read(dest.join("top")).unwrap(), b"data");
    assert!(!dest.join("skip").exists());
}

#[test]
fn safe_relative_normalises() {
    assert_eq!(
        safe_relative(Path::new("./a/./b")).unwrap(),
        Some("a/b".into())
    );
    assert_eq!(safe_relative(Path::new("./")).unwrap(), None);
    assert!(safe_relative(Path::new("a/../b")).is_err());
    assert!(safe_relative(Path::new("/a")).is_err());
}

#[test]
fn gzip_of_our_archive_is_readable_by_flate2() {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut enc, &sample_cpio()).unwrap();
    let gz = enc.finish().unwrap();
    let mut raw = Vec::new();
    GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
    assert_eq!(parse_cpio(&raw).len(), 5);
}
