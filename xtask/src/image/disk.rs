//! Writing a card image file: protective MBR and GPT (the `gpt` crate), the raw
//! bootloader, and a FAT32 boot partition formatted and filled with the `fatfs`
//! crate; and reading one back (partition table, bootloader bytes, FAT files).
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition_types;
use gpt::GptConfig;
use indicatif::{ProgressBar, ProgressStyle};

use super::layout::Layout;
use crate::config::image::SECTOR;
use crate::config::range::Range;

/// GPT attribute bit 2, "legacy BIOS bootable": U-Boot's distro boot scans the
/// partitions that have it (`part list -bootable`).
pub const LEGACY_BOOTABLE: u64 = 1 << 2;
/// The boot partition's GPT name and FAT volume label.
pub const PART_NAME: &str = "boot";
pub const VOLUME_LABEL: [u8; 11] = *b"HV-BOOT    ";

/// File times on the boot partition: now, in UTC (FAT has no time zone). Written here
/// rather than with fatfs's `chrono` feature, which would pull in `chrono` for this.
#[derive(Debug)]
pub struct UtcClock;

/// The clock of [`fs_options`].
pub static UTC_CLOCK: UtcClock = UtcClock;

impl fatfs::TimeProvider for UtcClock {
    fn get_current_date(&self) -> fatfs::Date {
        self.get_current_date_time().date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        fat_date_time(now.as_secs(), now.subsec_millis())
    }
}

/// A Unix time as a FAT date and time (UTC), clamped to FAT's years 1980..=2107.
pub fn fat_date_time(unix_secs: u64, millis: u32) -> fatfs::DateTime {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (year, month, day, secs) = match year {
        y if y < 1980 => (1980, 1, 1, 0),
        y if y > 2107 => (2107, 12, 31, 86_399),
        y => (y, month, day, secs),
    };
    fatfs::DateTime {
        date: fatfs::Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: fatfs::Time {
            hour: (secs / 3600) as u16,
            min: (secs / 60 % 60) as u16,
            sec: (secs % 60) as u16,
            millis: millis.min(999) as u16,
        },
    }
}

/// fatfs options: file times from [`UTC_CLOCK`].
fn fs_options() -> FsOptions {
    FsOptions::new().time_provider(&UTC_CLOCK)
}

/// A file for the boot partition: its path there (`/`-separated, no leading `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// Writes the whole image to `out` (replacing it).
pub fn write_image(
    out: &Path,
    layout: &Layout,
    bootloader: Option<&[u8]>,
    files: &[FatFile],
) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.set_len(layout.size)
        .with_context(|| format!("cannot size {}", out.display()))?;
    let mut file = write_gpt(file, layout)?;
    if let (Some(range), Some(data)) = (layout.bootloader, bootloader) {
        ensure!(
            data.len() as u64 == range.size,
            "bootloader size changed while writing"
        );
        write_with_progress(&mut file, range.base, data, "bootloader")?;
    }
    let slice = Slice::new(file, layout.boot)?;
    write_fat(slice, files)?;
    Ok(())
}

fn write_gpt(mut file: File, layout: &Layout) -> Result<File> {
    let lbas = layout.size / SECTOR;
    let mbr = ProtectiveMBR::with_lb_size(u32::try_from(lbas - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(&mut file)
        .context("cannot write the protective MBR")?;
    let mut disk = GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(file, None)
        .context("cannot create the GPT")?;
    let (first, last) = layout.boot_lbas();
    disk.add_partition_at(
        PART_NAME,
        1,
        first,
        last - first + 1,
        partition_types::BASIC,
        LEGACY_BOOTABLE,
    )
    .context("cannot add the boot partition to the GPT")?;
    let mut file = disk.write().context("cannot write the GPT")?;
    file.flush()?;
    Ok(file)
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "  {msg:<22} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn write_with_progress(file: &mut File, at: u64, data: &[u8], what: &str) -> Result<()> {
    let bar = progress(data.len() as u64, what);
    file.seek(SeekFrom::Start(at))?;
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)
            .with_context(|| format!("cannot write the {what}"))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn write_fat(mut slice: Slice, files: &[FatFile]) -> Result<()> {
    let opts = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .volume_label(VOLUME_LABEL);
    fatfs::format_volume(&mut slice, opts).context("cannot format the FAT32 boot partition")?;
    slice.seek(SeekFrom::Start(0))?;
    let fs = FileSystem::new(slice, fs_options()).context("cannot open the new FAT32 volume")?;
    let total: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    let bar = progress(total, "boot partition files");
    for f in files {
        put_file(&fs, &f.path, &f.data, &bar)
            .with_context(|| format!("cannot write {} to the boot partition", f.path))?;
    }
    bar.finish_and_clear();
    // Counts the free clusters so that unmount records them in the FSInfo sector
    // (left "unknown" otherwise, which fsck.fat reports).
    fs.stats().context("cannot count the free clusters")?;
    fs.unmount().context("cannot finish the FAT32 volume")?;
    Ok(())
}

fn put_file<T: fatfs::ReadWriteSeek>(
    fs: &FileSystem<T>,
    path: &str,
    data: &[u8],
    bar: &ProgressBar,
) -> io::Result<()> {
    let root = fs.root_dir();
    let mut dir = root.clone();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((name, dirs)) = parts.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    };
    for d in dirs {
        dir = match dir.open_dir(d) {
            Ok(sub) => sub,
            Err(_) => dir.create_dir(d)?,
        };
    }
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    for chunk in data.chunks(64 << 10) {
        file.write_all(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    file.flush()
}

/// Replaces (or adds) one file on the boot partition of an existing image, as a user
/// editing the card would.
#[cfg_attr(not(test), allow(dead_code))]
pub fn replace_file(image: &Path, path: &str, data: &[u8]) -> Result<()> {
    let (file, part) = open_boot_partition(image, true)?;
    let fs = FileSystem::new(Slice::new(file, part)?, fs_options())
        .context("cannot open the FAT32 boot partition")?;
    put_file(&fs, path, data, &ProgressBar::hidden())
        .with_context(|| format!("cannot write {path}"))?;
    fs.unmount()?;
    Ok(())
}

/// What an image holds, read back.
#[derive(Debug)]
pub struct Contents {
    /// Partitions: (number, name, first LBA, last LBA, attribute bits, type GUID).
    pub partitions: Vec<(u32, String, u64, u64, u64, String)>,
    pub fat_type: String,
    pub label: String,
    /// Files on the boot partition with their bytes, paths without leading `/`.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Contents {
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| d.as_slice())
    }
}

/// Reads an image's GPT and the files of partition 1.
pub fn read_image(image: &Path) -> Result<Contents> {
    let disk = GptConfig::new()
        .writable(false)
        .logical_block_size(LogicalBlockSize::Lb512)
        .open(image)
        .with_context(|| format!("cannot read the GPT of {}", image.display()))?;
    let partitions = disk
        .partitions()
        .iter()
        .map(|(n, p)| {
            (
                *n,
                p.name.clone(),
                p.first_lba,
                p.last_lba,
                p.flags,
                p.part_type_guid.guid.to_string(),
            )
        })
        .collect();
    let (file, part) = open_boot_partition(image, false)?;
    let fs = FileSystem::new(Slice::new(file, part)?, fs_options())
        .context("cannot open the FAT boot partition")?;
    let fat_type = format!("{:?}", fs.fat_type());
    let label = fs.volume_label().trim_end().to_string();
    let mut files = Vec::new();
    collect(&fs.root_dir(), "", &mut files)?;
    Ok(Contents {
        partitions,
        fat_type,
        label,
        files,
    })
}

fn collect<T: fatfs::ReadWriteSeek>(
    dir: &fatfs::Dir<'_, T>,
    prefix: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        let path = format!("{prefix}{name}");
        if entry.is_dir() {
            collect(&entry.to_dir(), &format!("{path}/"), out)?;
        } else {
            let mut data = Vec::new();
            entry.to_file().read_to_end(&mut data)?;
            out.push((path, data));
        }
    }
    Ok(())
}

/// Opens an image and finds GPT partition 1.
fn open_boot_partition(image: &Path, write: bool) -> Result<(File, Range)> {
    let disk = GptConfig::new()
        .writable(false)
        .logical_block_size(LogicalBlockSize::Lb512)
        .open(image)
        .with_context(|| format!("cannot read the GPT of {}", image.display()))?;
    let Some(p) = disk.partitions().get(&1) else {
        bail!("{} has no partition 1", image.display());
    };
    let range = Range::new(
        p.first_lba * SECTOR,
        (p.last_lba + 1 - p.first_lba) * SECTOR,
    );
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .open(image)
        .with_context(|| format!("cannot open {}", image.display()))?;
    Ok((file, range))
}

/// Bytes `[range)` of an image file, as a seekable stream for `fatfs`.
#[derive(Debug)]
pub struct Slice {
    file: File,
    range: Range,
    pos: u64,
}

impl Slice {
    pub fn new(file: File, range: Range) -> Result<Slice> {
        ensure!(range.end().is_some(), "partition range overflows");
        Ok(Slice {
            file,
            range,
            pos: 0,
        })
    }

    fn room(&self, want: usize) -> usize {
        (self.range.size.saturating_sub(self.pos)).min(want as u64) as usize
    }
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.file
            .seek(SeekFrom::Start(self.range.base + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Slice {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        self.file
            .seek(SeekFrom::Start(self.range.base + self.pos))?;
        let put = self.file.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.range.size as i128;
        let new = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => len + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 || new > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}
