//! The FAT32 disk of fs VMs: its FAT volume found (a GPT card as `cargo xtask image`
//! writes it, an MBR disk, or a volume filling the whole disk) and mounted with the
//! `embedded-sdmmc` crate, its files read by path. Generic over
//! [`BlockDevice`], so everything here runs on the host against disk images in
//! memory; nothing on the disk is trusted (a bad table or volume is an error value).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ops::ControlFlow;

use embedded_sdmmc::{
    Block, BlockCount, BlockIdx, ClusterId, LfnBuffer, Mode, RawDirectory, RawVolume,
    ShortFileName, TimeSource, Timestamp, VolumeIdx, VolumeManager,
};
use gpt_disk_types::{
    BlockSize, GptHeader, GptPartitionEntry, GptPartitionEntryArray, GptPartitionType,
};

use crate::drivers::block::{BlockDevice, BlockError, BLOCK};

/// Where the FAT volume lies on the disk, and how `embedded-sdmmc` (which reads MBR
/// partition tables only) is shown it: an MBR made up in block 0 with one FAT32
/// partition from block 1, which is the volume's first block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Volume {
    pub first: u64,
    pub blocks: u64,
}

/// The disk as `embedded-sdmmc` sees it: [`Volume`] behind a made-up MBR.
struct View<B: BlockDevice> {
    dev: RefCell<B>,
    vol: Volume,
    /// Block reads the current operation may still make: a FAT chain that loops
    /// (a hostile disk) ends in an error instead of a boot that never finishes.
    budget: Cell<u64>,
}

/// The largest cluster number a FAT32 entry holds (28 bits).
const MAX_CLUSTER: u32 = 0x0fff_ffff;

/// Why an operation stopped when it used up its block reads.
const BUDGET: &str =
    "far more block reads than the file or directory needs (a FAT chain that loops?)";

/// Block reads a directory walk may make: a FAT directory holds at most 65536
/// entries (4096 blocks), each block perhaps with a FAT block read to find it.
const DIR_READS: u64 = 4 * 4096;

impl<B: BlockDevice> View<B> {
    /// Block 0: an MBR with one FAT32 (LBA) partition at block 1.
    fn mbr(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let e = &mut b[446..462];
        e[4] = 0x0c;
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        let n = u32::try_from(self.vol.blocks).unwrap_or(u32::MAX);
        e[12..16].copy_from_slice(&n.to_le_bytes());
        b[510] = 0x55;
        b[511] = 0xaa;
        b
    }
}

impl<B: BlockDevice> embedded_sdmmc::BlockDevice for View<B> {
    type Error = BlockError;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), BlockError> {
        for (i, b) in blocks.iter_mut().enumerate() {
            let idx = u64::from(start.0) + i as u64;
            if idx == 0 {
                b.contents = self.mbr();
                continue;
            }
            if idx > self.vol.blocks {
                return Err(BlockError::OutOfRange {
                    lba: idx,
                    blocks: 1,
                });
            }
            let left = self.budget.get();
            if left == 0 {
                return Err(BlockError::Protocol(BUDGET));
            }
            self.budget.set(left - 1);
            let mut dev = self
                .dev
                .try_borrow_mut()
                .map_err(|_| BlockError::Protocol("busy"))?;
            dev.read(self.vol.first + idx - 1, &mut b.contents)?;
        }
        Ok(())
    }

    fn write(&self, _blocks: &[Block], _start: BlockIdx) -> Result<(), BlockError> {
        Err(BlockError::Unsupported)
    }

    fn num_blocks(&self) -> Result<BlockCount, BlockError> {
        Ok(BlockCount(
            u32::try_from(self.vol.blocks + 1).unwrap_or(u32::MAX),
        ))
    }
}

/// Files get no times: the disk is only read.
struct NoClock;

impl TimeSource for NoClock {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp::from_fat(0, 0)
    }
}

/// A mounted FAT volume.
pub struct FatDisk<B: BlockDevice> {
    mgr: VolumeManager<View<B>, NoClock, 4, 1, 1>,
    root: RawDirectory,
    _vol: RawVolume,
    pub volume: Volume,
}

/// The volume on `dev`: the first GPT partition marked legacy-BIOS-bootable (the
/// boot partition of a card), else the first basic-data one; the first FAT
/// partition of an MBR; or the whole disk when block 0 is a FAT32 boot sector.
pub fn find_volume(dev: &mut impl BlockDevice) -> Result<Volume, String> {
    let mut b0 = [0u8; BLOCK];
    dev.read(0, &mut b0).map_err(|e| format!("block 0: {e}"))?;
    if b0[510..] != [0x55, 0xaa] {
        return Err("block 0 has no MBR or boot-sector signature: not a FAT32 disk".into());
    }
    if &b0[82..90] == b"FAT32   " {
        return Ok(Volume {
            first: 0,
            blocks: dev.blocks(),
        });
    }
    let entry = |i: usize| &b0[446 + 16 * i..462 + 16 * i];
    if (0..4).any(|i| entry(i)[4] == 0xee) {
        return gpt_volume(dev);
    }
    for i in 0..4 {
        let e = entry(i);
        if matches!(e[4], 0x0b | 0x0c | 0x0e | 0x06) {
            let first = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
            let blocks = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
            return checked(dev, first, blocks);
        }
    }
    Err("the MBR lists no FAT partition".into())
}

fn checked(dev: &impl BlockDevice, first: u64, blocks: u64) -> Result<Volume, String> {
    let end = first.checked_add(blocks).filter(|&e| e <= dev.blocks());
    match end {
        Some(_) if first > 0 && blocks > 0 => Ok(Volume { first, blocks }),
        _ => Err(format!(
            "partition {first}+{blocks} does not fit the disk ({} blocks)",
            dev.blocks()
        )),
    }
}

/// The boot partition of a GPT disk (primary header, CRCs checked).
fn gpt_volume(dev: &mut impl BlockDevice) -> Result<Volume, String> {
    let mut b1 = [0u8; BLOCK];
    dev.read(1, &mut b1)
        .map_err(|e| format!("GPT header: {e}"))?;
    let size = core::mem::size_of::<GptHeader>();
    let header: GptHeader = bytemuck::pod_read_unaligned(&b1[..size]);
    if !header.is_signature_valid() {
        return Err("protective MBR but no GPT header signature in block 1".into());
    }
    if header.header_crc32 != header.calculate_header_crc32() {
        return Err("the GPT header's CRC does not match".into());
    }
    let layout = header
        .get_partition_entry_array_layout()
        .map_err(|e| format!("GPT: {e}"))?;
    let count = layout.num_entries;
    if count > 1024 {
        return Err(format!("GPT: {count} partition entries are more than 1024"));
    }
    let bytes = layout
        .num_bytes_rounded_to_block_as_usize(BlockSize::BS_512)
        .ok_or("GPT: the partition entries do not fit memory")?;
    let mut table = alloc::vec![0u8; bytes];
    dev.read(layout.start_lba.to_u64(), &mut table)
        .map_err(|e| format!("GPT partition entries: {e}"))?;
    let array = GptPartitionEntryArray::new(layout, BlockSize::BS_512, &mut table)
        .map_err(|e| format!("GPT: {e}"))?;
    if array.calculate_crc32() != header.partition_entry_array_crc32 {
        return Err("the GPT partition entries' CRC does not match".into());
    }
    let entries: Vec<GptPartitionEntry> = (0..count)
        .filter_map(|i| array.get_partition_entry(i).copied())
        .filter(|e| e.is_used())
        .collect();
    let basic = GptPartitionType::BASIC_DATA;
    let pick = entries
        .iter()
        .find(|e| e.attributes.legacy_bios_bootable())
        .or_else(|| {
            entries.iter().find(|e| {
                let t = e.partition_type_guid;
                t == basic
            })
        })
        .ok_or("GPT: no bootable or basic-data partition")?;
    let first = pick.starting_lba.to_u64();
    let last = pick.ending_lba.to_u64();
    if last < first {
        return Err(format!(
            "GPT: partition ends ({last}) before it starts ({first})"
        ));
    }
    checked(dev, first, last - first + 1)
}

/// The name of a directory entry: its long name, else its 8.3 name.
fn entry_name(short: &ShortFileName, long: Option<&str>) -> String {
    long.map_or_else(|| short.to_string(), ToString::to_string)
}

impl<B: BlockDevice> FatDisk<B> {
    /// Finds and mounts the FAT volume of `dev`.
    pub fn mount(mut dev: B) -> Result<Self, String> {
        let volume = find_volume(&mut dev)?;
        let mut boot = [0u8; BLOCK];
        dev.read(volume.first, &mut boot)
            .map_err(|e| format!("the FAT volume's boot sector: {e}"))?;
        let root = u32::from_le_bytes([boot[44], boot[45], boot[46], boot[47]]);
        if &boot[82..90] == b"FAT32   " && root > MAX_CLUSTER {
            // `embedded-sdmmc` would panic walking it.
            return Err(format!(
                "the FAT32 boot sector puts the root directory at cluster {root:#x}, which FAT32 has not"
            ));
        }
        let view = View {
            dev: RefCell::new(dev),
            vol: volume,
            budget: Cell::new(DIR_READS),
        };
        let mgr = VolumeManager::new_with_limits(view, NoClock, 0);
        let vol = mgr
            .open_raw_volume(VolumeIdx(0))
            .map_err(|e| format!("cannot mount the FAT volume: {e}"))?;
        let root = mgr
            .open_root_dir(vol)
            .map_err(|e| format!("cannot open the FAT volume's root: {e}"))?;
        Ok(Self {
            mgr,
            root,
            _vol: vol,
            volume,
        })
    }

    /// The entry named `name` (long or 8.3 name, ASCII case ignored) in `dir`:
    /// (its 8.3 name, is a directory, size).
    fn lookup(
        &self,
        dir: RawDirectory,
        name: &str,
    ) -> Result<Option<(ShortFileName, bool, u32)>, String> {
        let mut storage = [0u8; 256 * 3];
        let mut lfn = LfnBuffer::new(&mut storage);
        let mut found = None;
        self.mgr
            .iterate_dir_lfn(dir, &mut lfn, |e, long| {
                if entry_name(&e.name, long).eq_ignore_ascii_case(name)
                    || e.name.to_string().eq_ignore_ascii_case(name)
                {
                    found = Some((e.name, e.attributes.is_directory(), e.size, e.cluster));
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| format!("cannot read a directory: {e}"))?;
        match found {
            // `embedded-sdmmc` panics on a cluster number FAT32 cannot hold.
            Some((.., cluster)) if cluster > ClusterId::EMPTY + MAX_CLUSTER => Err(format!(
                "{name}: its directory entry names cluster {cluster:?}, which FAT32 has not"
            )),
            Some((short, dir, size, _)) => Ok(Some((short, dir, size))),
            None => Ok(None),
        }
    }

    /// Lets the next operation make `reads` block reads.
    fn allow(&self, reads: u64) {
        self.mgr.device(|v| v.budget.set(reads));
    }

    /// `got`, unless the operation used up its reads: `embedded-sdmmc` ends a
    /// directory walk quietly when the next cluster cannot be read, so a loop cut
    /// short by the budget is found here.
    fn within_budget<T>(&self, got: Result<T, String>) -> Result<T, String> {
        if self.mgr.device(|v| v.budget.get()) == 0 {
            return Err(BUDGET.into());
        }
        got
    }

    /// Runs `f` in the directory `path` (`/`-separated, from the root).
    fn in_dir<T>(
        &self,
        path: &[&str],
        f: &mut dyn FnMut(RawDirectory) -> Result<T, String>,
    ) -> Result<T, String> {
        let Some((first, rest)) = path.split_first() else {
            return f(self.root);
        };
        // Only one directory besides the root is open at a time: walk down from
        // the root, opening each level fresh.
        let mut dir = self.root;
        for part in core::iter::once(first).chain(rest) {
            let found = self.lookup(dir, part);
            let short = match found {
                Ok(Some((short, true, _))) => Ok(short),
                Ok(Some(_)) => Err(format!("{part} is a file, not a directory")),
                Ok(None) => Err("not on the disk".into()),
                Err(e) => Err(e),
            };
            let opened = short.and_then(|s| {
                self.mgr
                    .open_dir(dir, s)
                    .map_err(|e| format!("cannot open directory {part}: {e}"))
            });
            if dir != self.root {
                let _ = self.mgr.close_dir(dir);
            }
            dir = opened?;
        }
        let out = f(dir);
        let _ = self.mgr.close_dir(dir);
        out
    }

    /// The names of the files in directory `dir` ending in `suffix` (ASCII case
    /// ignored), sorted.
    pub fn list(&self, dir: &str, suffix: &str) -> Result<Vec<String>, String> {
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        let suffix = suffix.to_ascii_lowercase();
        self.allow(DIR_READS * (parts.len() as u64 + 2));
        let listed = self.in_dir(&parts, &mut |d| {
            let mut storage = [0u8; 256 * 3];
            let mut lfn = LfnBuffer::new(&mut storage);
            let mut out = Vec::new();
            self.mgr
                .iterate_dir_lfn(d, &mut lfn, |e, long| {
                    let name = entry_name(&e.name, long);
                    let lower = name.to_ascii_lowercase();
                    if !e.attributes.is_directory() && lower.ends_with(&suffix) {
                        out.push(name);
                    }
                    ControlFlow::Continue(())
                })
                .map_err(|e| format!("cannot read a directory: {e}"))?;
            Ok(out)
        });
        let mut names = self.within_budget(listed)?;
        names.sort();
        Ok(names)
    }

    /// The size of file `path`.
    pub fn size(&self, path: &str) -> Result<u64, String> {
        let (dirs, name) = split(path)?;
        self.allow(DIR_READS * (dirs.len() as u64 + 1));
        let got = self.in_dir(&dirs, &mut |d| match self.lookup(d, name)? {
            Some((_, false, size)) => Ok(u64::from(size)),
            Some(_) => Err("is a directory".into()),
            None => Err("not on the disk".into()),
        });
        self.within_budget(got)
    }

    /// Reads file `path` into `out`, which must be exactly its size.
    pub fn read(&self, path: &str, out: &mut [u8]) -> Result<(), String> {
        let (dirs, name) = split(path)?;
        // The directories, then each block of the file and of its FAT chain.
        let blocks = (out.len() / BLOCK) as u64 + 1;
        self.allow(DIR_READS * (dirs.len() as u64 + 1) + 2 * blocks);
        let got = self.in_dir(&dirs, &mut |d| {
            let Some((short, false, size)) = self.lookup(d, name)? else {
                return Err("not on the disk".into());
            };
            if u64::from(size) != out.len() as u64 {
                return Err(format!("is {size} bytes, not {}", out.len()));
            }
            let file = self
                .mgr
                .open_file_in_dir(d, short, Mode::ReadOnly)
                .map_err(|e| format!("cannot open: {e}"))?;
            let mut done = 0;
            let got = loop {
                match self.mgr.read(file, &mut out[done..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => done += n,
                    Err(e) => break Err(format!("cannot read: {e}")),
                }
            };
            let _ = self.mgr.close_file(file);
            got?;
            if done != out.len() {
                return Err(format!("ends after {done} of its {} bytes", out.len()));
            }
            Ok(())
        });
        self.within_budget(got)
    }
}

/// `path` as its directories and its file name.
fn split(path: &str) -> Result<(Vec<&str>, &str), String> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let name = parts.pop().ok_or("an empty path")?;
    Ok((parts, name))
}
