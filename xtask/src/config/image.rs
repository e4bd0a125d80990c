//! The `[image]` section of a board file: how `cargo xtask image` lays out a bootable
//! card image for the board (size, where the boot partition starts, the bootloader
//! written before it, the board DTB, and what U-Boot's `booti` takes as RAM base).
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vmconfig::paths::FileKind;

use super::board::parse_qemu_size;
use super::diag::{KeyPath, Report};
use super::range::{human_size, Range};
use super::source::Source;

/// Bytes per sector of the images we write.
pub const SECTOR: u64 = 512;
/// End of the primary GPT (protective MBR, header, 128 entries of 128 bytes).
pub const GPT_PRIMARY_END: u64 = 34 * SECTOR;
/// Default total image size.
pub const DEFAULT_SIZE: u64 = 256 << 20;
/// Default start of the boot partition.
pub const DEFAULT_PARTITION_OFFSET: u64 = 16 << 20;

#[derive(Debug, Deserialize)]
pub(super) struct ImageSection {
    pub image: Option<ImageToml>,
}

/// A size: bytes as an integer, or a string with a K/M/G suffix ("16M").
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SizeToml {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImageToml {
    size: Option<SizeToml>,
    partition_offset: Option<SizeToml>,
    uboot_dram_base: Option<u64>,
    bootloader: Option<FileToml>,
    dtb: Option<FileToml>,
}

/// Where a file comes from: exactly one of `path`, `url` (+ `sha256`) or `deb`
/// (+ `file`, optional `suite`). `offset` only for the bootloader.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileToml {
    path: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
    deb: Option<String>,
    file: Option<String>,
    suite: Option<String>,
    offset: Option<u64>,
}

/// Where a bootloader or DTB comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// A file; `shown` is the path as written in the board file.
    Path { path: PathBuf, shown: String },
    /// Downloaded, checked against a SHA-256 (lower-case hex).
    Url { url: String, sha256: String },
    /// A file inside a Debian package (for arm64), fetched with a private apt state.
    /// `file` is matched against the end of the paths in the package.
    Deb {
        package: String,
        file: String,
        suite: Option<String>,
    },
}

/// The bootloader written raw before the first partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootloader {
    /// Byte offset in the image (Rockchip: sector 64 = 0x8000).
    pub offset: u64,
    pub source: FileSource,
}

/// A validated `[image]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Total image size in bytes (a multiple of 1 MiB).
    pub size: u64,
    /// Start of the FAT32 boot partition in bytes (a multiple of 1 MiB).
    pub partition_offset: u64,
    /// The RAM base U-Boot's `booti` places the arm64 Image relative to (its first
    /// DRAM bank): the image runs at align_up(base, 2 MiB) + text_offset.
    pub uboot_dram_base: u64,
    pub bootloader: Option<Bootloader>,
    /// The board DTB; `None` = the DTB U-Boot itself runs with (`$fdtcontroladdr`).
    pub dtb: Option<FileSource>,
}

/// Parses a size: an integer is bytes; a string is a number with an optional K/M/G/T
/// suffix (no suffix: MiB), as QEMU's `-m`.
pub fn parse_size(s: &str) -> Option<u64> {
    parse_qemu_size(s)
}

fn size_value(v: &SizeToml) -> Option<u64> {
    match v {
        SizeToml::Bytes(b) => Some(*b),
        SizeToml::Text(t) => parse_size(t),
    }
}

/// Checks `[image]`; `None` when the board has none (or it has errors, reported).
pub(super) fn check_image(
    src: &Source,
    root: &Path,
    toml: &ImageToml,
    ram: &[Range],
    report: &mut Report,
) -> Option<ImageConfig> {
    let key = KeyPath::new("image");
    let before = report.error_count();
    let size = mib_multiple(
        src,
        &key.key("size"),
        toml.size.as_ref(),
        DEFAULT_SIZE,
        report,
    );
    let offset = mib_multiple(
        src,
        &key.key("partition_offset"),
        toml.partition_offset.as_ref(),
        DEFAULT_PARTITION_OFFSET,
        report,
    );
    if offset < (1 << 20) {
        report.push(src.error(
            &key.key("partition_offset"),
            "the boot partition must start at 1 MiB or later",
        ));
    }
    let uboot_dram_base = match (toml.uboot_dram_base, ram.first()) {
        (Some(b), _) => {
            if !ram.iter().any(|r| r.contains(b)) {
                report.push(src.error(
                    &key.key("uboot_dram_base"),
                    format!("{b:#x} is not inside the board's RAM"),
                ));
            }
            b
        }
        (None, Some(r)) => r.base,
        (None, None) => 0,
    };
    let bootloader = toml
        .bootloader
        .as_ref()
        .and_then(|b| check_bootloader(src, root, &key.key("bootloader"), b, offset, report));
    let dtb = toml.dtb.as_ref().and_then(|d| {
        let k = key.key("dtb");
        if d.offset.is_some() {
            report.push(src.error(&k.key("offset"), "only the bootloader has an offset"));
        }
        file_source(src, root, &k, FileKind::Dtb, d, report)
    });
    if report.error_count() != before {
        return None;
    }
    Some(ImageConfig {
        size,
        partition_offset: offset,
        uboot_dram_base,
        bootloader,
        dtb,
    })
}

fn mib_multiple(
    src: &Source,
    key: &KeyPath,
    value: Option<&SizeToml>,
    default: u64,
    report: &mut Report,
) -> u64 {
    let Some(v) = value else { return default };
    match size_value(v) {
        Some(b) if b > 0 && b % (1 << 20) == 0 => b,
        Some(b) => {
            report.push(src.error(key, format!("{b:#x} is not a positive multiple of 1 MiB")));
            default
        }
        None => {
            report.push(src.error(
                key,
                format!("cannot read {v:?} as a size (e.g. \"256M\", \"1G\")"),
            ));
            default
        }
    }
}

fn check_bootloader(
    src: &Source,
    root: &Path,
    key: &KeyPath,
    b: &FileToml,
    partition_offset: u64,
    report: &mut Report,
) -> Option<Bootloader> {
    let source = file_source(src, root, key, FileKind::Bootloader, b, report);
    let Some(offset) = b.offset else {
        report.push(src.error(
            &key.key("offset"),
            "missing `offset`: the byte offset the boot ROM reads the bootloader from (Rockchip: 0x8000, sector 64)",
        ));
        return None;
    };
    if offset % SECTOR != 0 || offset < GPT_PRIMARY_END || offset >= partition_offset {
        report.push(src.error(
            &key.key("offset"),
            format!(
                "offset {offset:#x} must be a multiple of 512 between the end of the GPT ({GPT_PRIMARY_END:#x}) and the boot partition ({})",
                human_size(partition_offset)
            ),
        ));
        return None;
    }
    Some(Bootloader {
        offset,
        source: source?,
    })
}

fn file_source(
    src: &Source,
    root: &Path,
    key: &KeyPath,
    kind: FileKind,
    f: &FileToml,
    report: &mut Report,
) -> Option<FileSource> {
    let given = [f.path.is_some(), f.url.is_some(), f.deb.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        report.push(src.error(
            key,
            "give exactly one of `path` (a file, relative to the repository root), `url` (with `sha256`) or `deb` (a Debian package, with `file`)",
        ));
        return None;
    }
    let stray = [
        ("sha256", f.sha256.is_some() && f.url.is_none(), "url"),
        ("file", f.file.is_some() && f.deb.is_none(), "deb"),
        ("suite", f.suite.is_some() && f.deb.is_none(), "deb"),
    ];
    for (name, bad, with) in stray {
        if bad {
            report.push(src.error(&key.key(name), format!("`{name}` only goes with `{with}`")));
        }
    }
    if let Some(p) = &f.path {
        let path = root.join(p);
        // A file that is not there yet (built later) is reported where it is read.
        if path.exists() {
            let board_dir = src.path.parent().unwrap_or(root);
            if let Some(why) = super::vm::host_file_problem(p, &path, kind, &[root, board_dir]) {
                report.push(src.error(&key.key("path"), why));
                return None;
            }
        }
        return Some(FileSource::Path {
            path,
            shown: p.clone(),
        });
    }
    if let Some(url) = &f.url {
        let Some(sha) = f.sha256.as_ref().filter(|s| is_sha256(s)) else {
            report.push(src.error(
                &key.key("sha256"),
                "a `url` needs `sha256` = the file's SHA-256 as 64 hex digits",
            ));
            return None;
        };
        return Some(FileSource::Url {
            url: url.clone(),
            sha256: sha.to_ascii_lowercase(),
        });
    }
    let package = f.deb.clone()?;
    let Some(file) = f.file.clone().filter(|s| !s.is_empty()) else {
        report.push(src.error(
            &key.key("file"),
            "a `deb` needs `file` = the file's path (or its last components) inside the package",
        ));
        return None;
    };
    Some(FileSource::Deb {
        package,
        file,
        suite: f.suite.clone(),
    })
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}
