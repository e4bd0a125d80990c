//! The busybox initramfs of the built-in Linux recipes: a gzip-compressed newc cpio
//! archive with a static busybox, one symlink per applet, the usual mount points, the
//! console device node and an `/init` script.
//!
//! What `/init` does (the contract scenario tests and benchmarks match on):
//! 1. mounts proc, sysfs and devtmpfs (and devpts);
//! 2. prints `guest-init: uptime <seconds>` (the guest's own clock, the first field
//!    of /proc/uptime, read by the shell without starting a process) and, when
//!    /proc/timer_list has it, `guest-init: monotonic-ns <ns>` (CLOCK_MONOTONIC), then
//!    `guest-init: ready` and `guest-init: cpus <N>` (CPUs online, from
//!    /sys/devices/system/cpu/online, else `nproc`);
//! 3. if the kernel command line has `run=<cmd>` (quote it when it has spaces:
//!    `run="echo hello"`; the kernel hands it to init as the environment variable
//!    `run`), runs it with `sh -c`, prints `guest-init: done <exit status>` and powers
//!    off with `poweroff -f`;
//! 4. otherwise prints `guest-init: shell` and starts an interactive shell on the
//!    console (`setsid cttyhack sh`); leaving that shell powers the guest off.
use std::io::Write;

use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::cpio::CpioWriter;

/// The `/init` script.
pub const INIT_SCRIPT: &str = r#"#!/bin/sh
# /init of the busybox initramfs built by `cargo xtask guest pull`.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null
hostname guest 2>/dev/null

# CPUs online: count the ranges of a list such as "0-1,3".
online_cpus() {
    list=$(cat /sys/devices/system/cpu/online 2>/dev/null) || { nproc; return; }
    n=0
    for r in $(echo "$list" | tr ',' ' '); do
        case "$r" in
            *-*) n=$((n + ${r#*-} - ${r%-*} + 1)) ;;
            *) n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}

# The guest's time to here, for `cargo xtask bench` (`read` is a shell builtin): in
# 10 ms steps from /proc/uptime, in ns from /proc/timer_list (`now at <ns> nsecs`).
read -r up idle < /proc/uptime
now=
if [ -r /proc/timer_list ]; then
    while read -r a b c rest; do
        if [ "$a $b" = "now at" ]; then now=$c; break; fi
    done < /proc/timer_list
fi
echo "guest-init: uptime $up"
[ -n "$now" ] && echo "guest-init: monotonic-ns $now"
echo "guest-init: ready"
echo "guest-init: cpus $(online_cpus)"

if [ -n "${run:-}" ]; then
    echo "guest-init: run: $run"
    sh -c "$run"
    status=$?
    echo "guest-init: done $status"
    sync
    poweroff -f
fi

echo "guest-init: shell"
export PS1='guest:\w# '
cd /root
setsid cttyhack sh -l
echo "guest-init: shell exited, powering off"
sync
poweroff -f
"#;

/// `base` (an initramfs as the kernel takes it: cpio archives, compressed or not,
/// one after another) followed by a gzip-compressed cpio archive holding only `/init`
/// = [`INIT_SCRIPT`]. The kernel unpacks the archives in order and a later file
/// replaces an earlier one of the same name, so an initramfs pulled with an older
/// `/init` runs the current one. The appended archive starts on a 4-byte boundary
/// (the kernel skips the zero padding between archives).
pub fn with_current_init(base: &[u8]) -> Result<Vec<u8>> {
    let mut out = base.to_vec();
    out.resize(base.len().div_ceil(4) * 4, 0);
    let mut w = CpioWriter::new(GzEncoder::new(out, Compression::best()));
    w.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    let gz = w.finish().context("cannot write the /init archive")?;
    Ok(gz.finish()?)
}

/// Applets linked when the applet table cannot be found in the busybox binary.
const FALLBACK_APPLETS: &[&str] = &[
    "sh", "ash", "cat", "cp", "cttyhack", "dmesg", "echo", "grep", "halt", "hostname", "ls",
    "mdev", "mkdir", "mount", "mv", "nproc", "poweroff", "ps", "reboot", "rm", "setsid", "sleep",
    "sync", "tr", "umount", "uname",
];

/// Builds the gzip-compressed initramfs around `busybox` (a static binary).
pub fn build(busybox: &[u8]) -> Result<Vec<u8>> {
    let applets = applets(busybox);
    let gz = GzEncoder::new(Vec::new(), Compression::best());
    let mut w = CpioWriter::new(gz);
    for dir in [
        "bin", "dev", "etc", "proc", "root", "sys", "tmp", "mnt", "run", "var",
    ] {
        w.dir(dir, 0o755)?;
    }
    for link in ["sbin", "usr"] {
        w.symlink(link, if link == "usr" { "." } else { "bin" })?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.char_dev("dev/null", 0o666, 1, 3)?;
    w.file("bin/busybox", 0o755, busybox)?;
    for a in &applets {
        w.symlink(&format!("bin/{a}"), "busybox")?;
    }
    w.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    w.file("etc/hostname", 0o644, b"guest\n")?;
    w.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    w.file("etc/group", 0o644, b"root:x:0:\n")?;
    let mut gz = w.finish().context("cannot write the initramfs")?;
    gz.flush()?;
    Ok(gz.finish()?)
}

/// The applet names of a busybox binary, read from its packed name table (names in
/// alphabetical order, NUL-separated, starting with `[` and `[[`), or a fixed list.
pub fn applets(busybox: &[u8]) -> Vec<String> {
    table_applets(busybox)
        .unwrap_or_else(|| FALLBACK_APPLETS.iter().map(|s| s.to_string()).collect())
}

fn table_applets(bin: &[u8]) -> Option<Vec<String>> {
    let start = find(bin, b"[\0[[\0")?;
    let rest = &bin[start..];
    let end = find(rest, b"\0\0")?;
    let names: Vec<String> = rest[..end]
        .split(|b| *b == 0)
        .filter(|n| valid_applet(n))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let has = |a: &str| names.iter().any(|n| n == a);
    (has("sh") && has("mount") && has("poweroff")).then_some(names)
}

/// A name that is safe as a file name in `bin/` (and not busybox itself).
fn valid_applet(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != b"busybox"
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"[-_.".contains(b))
        && name != b"."
        && name != b".."
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
