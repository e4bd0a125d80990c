//! fs VMs from a FAT32 disk held in host memory, the disk written as xtask writes
//! cards (fatfs, gpt): the volume found on GPT, MBR and whole-disk layouts, bad
//! tables and volumes refused, and each way a file on the disk stops only its VM.

use std::io::{Cursor, Seek, SeekFrom, Write};
use std::string::String;
use std::vec::Vec;

use super::disk::{find_volume, FatDisk, Volume};
use super::disk_source::{DiskSource, FileMemory, Held};
use super::tests::{builtin, with_test_host, GUEST, VM3};
use super::{vms_from, FsVms};
use crate::drivers::block::{BlockDevice, BlockError, BLOCK};

/// A disk in memory.
struct MemDisk(Vec<u8>);

impl BlockDevice for MemDisk {
    fn blocks(&self) -> u64 {
        (self.0.len() / BLOCK) as u64
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let from = lba as usize * BLOCK;
        let src = self
            .0
            .get(from..from + buf.len())
            .ok_or(BlockError::OutOfRange {
                lba,
                blocks: (buf.len() / BLOCK) as u64,
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A FAT32 volume of 40 MiB (the smallest xtask writes) holding `files`.
fn volume(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut img = Cursor::new(vec![0u8; 40 << 20]);
    let opts = fatfs::FormatVolumeOptions::new().fat_type(fatfs::FatType::Fat32);
    fatfs::format_volume(&mut img, opts).unwrap();
    {
        let fs = fatfs::FileSystem::new(&mut img, fatfs::FsOptions::new()).unwrap();
        for (path, data) in files {
            let parts: Vec<&str> = path.split('/').collect();
            let (name, dirs) = parts.split_last().unwrap();
            let mut dir = fs.root_dir();
            for d in dirs {
                dir = dir.open_dir(d).or_else(|_| dir.create_dir(d)).unwrap();
            }
            dir.create_file(name).unwrap().write_all(data).unwrap();
        }
    }
    img.into_inner()
}

/// `vol` as partition 1 (at 1 MiB) of a GPT disk, marked legacy-BIOS-bootable as a
/// card's boot partition is.
fn gpt_disk(vol: &[u8]) -> Vec<u8> {
    let size = vol.len() + (2 << 20);
    let mut disk = Cursor::new(vec![0u8; size]);
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size((size / BLOCK - 1) as u32);
    mbr.overwrite_lba0(&mut disk).unwrap();
    let mut g = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(disk, None)
        .unwrap();
    let blocks = (vol.len() / BLOCK) as u64;
    g.add_partition_at("boot", 1, 2048, blocks, gpt::partition_types::BASIC, 1 << 2)
        .unwrap();
    let mut disk = g.write().unwrap();
    disk.seek(SeekFrom::Start(2048 * BLOCK as u64)).unwrap();
    disk.write_all(vol).unwrap();
    disk.into_inner()
}

/// `vol` as the first partition (type 0x0c) of an MBR disk, at block 2048.
fn mbr_disk(vol: &[u8]) -> Vec<u8> {
    let mut disk = vec![0u8; 2048 * BLOCK];
    let e = &mut disk[446..462];
    e[4] = 0x0c;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&((vol.len() / BLOCK) as u32).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk.extend_from_slice(vol);
    disk
}

/// Reads the fs VMs of `disk` (files allocated from `budget` bytes).
fn run(disk: Vec<u8>, budget: u64) -> Result<FsVms, String> {
    let fat = FatDisk::mount(MemDisk(disk))?;
    let mut mem = Budget { left: budget };
    let mut src = DiskSource::new(&fat, &mut mem);
    Ok(with_test_host(&[], &|_| None, |host| {
        vms_from(&mut src, host, &builtin())
    }))
}

/// File memory from the host heap, at most `left` bytes (never given back here).
struct Budget {
    left: u64,
}

impl FileMemory for Budget {
    fn alloc(&mut self, size: u64) -> Option<Held> {
        self.left = self.left.checked_sub(size)?;
        let bytes = Vec::leak(vec![0u8; size as usize]);
        Some(Held {
            base: 0,
            held: 0,
            bytes,
        })
    }

    fn free(&mut self, _base: u64, _held: u64) {}
}

const PLENTY: u64 = 64 << 20;

#[test]
fn the_volume_is_found_on_a_card_an_mbr_disk_and_a_bare_volume() {
    let vol = volume(&[("vms/a.txt", b"hello")]);
    let blocks = (vol.len() / BLOCK) as u64;
    let gpt = gpt_disk(&vol);
    assert_eq!(
        find_volume(&mut MemDisk(gpt.clone())),
        Ok(Volume {
            first: 2048,
            blocks
        })
    );
    assert_eq!(
        find_volume(&mut MemDisk(mbr_disk(&vol))),
        Ok(Volume {
            first: 2048,
            blocks
        })
    );
    assert_eq!(
        find_volume(&mut MemDisk(vol.clone())),
        Ok(Volume { first: 0, blocks })
    );
    for disk in [gpt, mbr_disk(&vol), vol] {
        let fat = FatDisk::mount(MemDisk(disk)).unwrap();
        assert_eq!(fat.list("vms", ".txt").unwrap(), ["a.txt"]);
        assert_eq!(fat.list("/VMS/", ".TXT").unwrap(), ["a.txt"]);
        let mut five = [0u8; 5];
        fat.read("vms/a.txt", &mut five).unwrap();
        assert_eq!(&five, b"hello");
        assert_eq!(fat.size("vms/nope.txt"), Err("not on the disk".into()));
        assert_eq!(fat.size("nodir/a.txt"), Err("not on the disk".into()));
        assert!(fat.size("vms/a.txt/x").unwrap_err().contains("is a file"));
    }
}

#[test]
fn bad_tables_and_volumes_are_errors_not_panics() {
    let blank = MemDisk(vec![0u8; 64 * BLOCK]);
    let e = FatDisk::mount(blank).err().unwrap();
    assert!(e.contains("no MBR or boot-sector signature"), "{e}");
    let vol = volume(&[]);
    // A GPT whose header was changed after its CRC was computed.
    let mut gpt = gpt_disk(&vol);
    gpt[BLOCK + 0x48] ^= 1;
    let e = find_volume(&mut MemDisk(gpt)).unwrap_err();
    assert!(e.contains("GPT header's CRC"), "{e}");
    // An entry array that does not match its CRC.
    let mut gpt = gpt_disk(&vol);
    gpt[2 * BLOCK + 40] ^= 1;
    let e = find_volume(&mut MemDisk(gpt)).unwrap_err();
    assert!(e.contains("partition entries' CRC"), "{e}");
    // An MBR partition past the end of the disk.
    let mut mbr = mbr_disk(&vol);
    mbr[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = find_volume(&mut MemDisk(mbr)).unwrap_err();
    assert!(e.contains("does not fit the disk"), "{e}");
    // An MBR with no FAT partition.
    let mut mbr = mbr_disk(&vol);
    mbr[446 + 4] = 0x83;
    let e = find_volume(&mut MemDisk(mbr)).unwrap_err();
    assert!(e.contains("no FAT partition"), "{e}");
    // A partition whose boot sector is garbage.
    let mut mbr = mbr_disk(&vol);
    mbr[2048 * BLOCK..2049 * BLOCK].fill(0xa5);
    let e = FatDisk::mount(MemDisk(mbr)).err().unwrap();
    assert!(e.contains("cannot mount the FAT volume"), "{e}");
    // Cut short: the volume's blocks are not all there.
    let mut cut = gpt_disk(&vol);
    cut.truncate(4 << 20);
    let e = find_volume(&mut MemDisk(cut)).unwrap_err();
    assert!(
        e.contains("does not fit the disk") || e.contains("outside"),
        "{e}"
    );
}

#[test]
fn a_vm_whose_files_are_on_the_disk_becomes_a_spec() {
    // Long names in a long-named directory: read through their 8.3 aliases.
    let cfg = VM3.replace(
        "/vms/vm3/testguest.bin",
        "guest-images/testguest-long-name.bin",
    );
    let vol = volume(&[
        ("vms/vm3.toml", cfg.as_bytes()),
        ("vms/guest-images/testguest-long-name.bin", GUEST),
        ("vms/notes.txt", b"not a config"),
    ]);
    let out = run(gpt_disk(&vol), PLENTY).unwrap();
    assert_eq!((out.vms.len(), out.refused), (1, 0), "{:?}", out.lines);
    let vm = &out.vms[0];
    assert_eq!((vm.spec.id, &*vm.spec.name), (3, "vm3"));
    assert_eq!(vm.spec.kernel.data, GUEST);
    assert_eq!(vm.file, "vms/vm3.toml: ");
}

#[test]
fn each_bad_file_on_the_disk_stops_only_its_vm() {
    let vm = |id: u32, name: &str| {
        VM3.replace("id = 3", &std::format!("id = {id}"))
            .replace("\"vm3\"", &std::format!("\"{name}\""))
            .replace("/vms/vm3/", &std::format!("/vms/{name}/"))
    };
    let good = vm(3, "vm3");
    let missing = vm(4, "vm4");
    let bad = vm(5, "vm5").replace("[base]", "[base]\nbogus = 1");
    // 17 MiB: more than vm6's 16 MiB of memory, so it is not even read.
    let big = vec![0u8; 17 << 20];
    let oversized = vm(6, "vm6");
    let binary = [0xffu8, 0xfe, 0x00];
    let vol = volume(&[
        ("vms/vm3.toml", good.as_bytes()),
        ("vms/vm3/testguest.bin", GUEST),
        ("vms/vm4.toml", missing.as_bytes()),
        ("vms/vm5.toml", bad.as_bytes()),
        ("vms/vm5/testguest.bin", GUEST),
        ("vms/vm6.toml", oversized.as_bytes()),
        ("vms/vm6/testguest.bin", &big),
        ("vms/vm7.toml", &binary),
    ]);
    let out = run(gpt_disk(&vol), PLENTY).unwrap();
    assert_eq!((out.vms.len(), out.refused), (1, 4), "{:#?}", out.lines);
    assert_eq!(&*out.vms[0].spec.name, "vm3");
    let wanted = [
        "VM 4 (vm4) not started: vms/vm4.toml: kernel.kernel_path: vms/vm4/testguest.bin: not on the disk",
        "VM 5 (vm5) not started: vms/vm5.toml: base.bogus: unknown field `bogus`",
        "VM 6 (vm6) not started: vms/vm6.toml: kernel.kernel_path: vms/vm6/testguest.bin: is 17825792 bytes, more than the 16777216 bytes it may have",
        "vms/vm7.toml: not UTF-8 text (byte 0)",
    ];
    for w in wanted {
        assert!(
            out.lines.iter().any(|l| l.starts_with(w)),
            "no line starting {w:?} in {:#?}",
            out.lines
        );
    }
}

#[test]
fn no_memory_for_a_file_stops_its_vm() {
    let vol = volume(&[
        ("vms/vm3.toml", VM3.as_bytes()),
        ("vms/vm3/testguest.bin", GUEST),
    ]);
    // Room for the config, not for the image.
    let out = run(gpt_disk(&vol), VM3.len() as u64 + 16).unwrap();
    assert_eq!((out.vms.len(), out.refused), (0, 1));
    assert!(
        out.lines[0].ends_with(
            "kernel.kernel_path: vms/vm3/testguest.bin: no free memory for its 8192 bytes"
        ),
        "{:?}",
        out.lines
    );
}

#[test]
fn a_disk_without_vms_lists_nothing_and_says_so() {
    let out = run(gpt_disk(&volume(&[("other.txt", b"x")])), PLENTY).unwrap();
    assert_eq!((out.vms.len(), out.refused), (0, 0));
    assert_eq!(
        out.lines,
        ["disk: vms/: not on the disk; no VM is read from the disk"]
    );
}

/// Where things are in a FAT32 volume, from its boot sector.
struct Geometry {
    per_cluster: usize,
    reserved: usize,
    fats: usize,
    fat_len: usize,
}

impl Geometry {
    fn of(vol: &[u8]) -> Self {
        let u16_at = |o: usize| usize::from(u16::from_le_bytes([vol[o], vol[o + 1]]));
        Self {
            per_cluster: usize::from(vol[13]) * BLOCK,
            reserved: u16_at(14) * BLOCK,
            fats: usize::from(vol[16]),
            fat_len: u32::from_le_bytes(vol[36..40].try_into().unwrap()) as usize * BLOCK,
        }
    }

    /// The byte offset of cluster `c`.
    fn cluster(&self, c: usize) -> usize {
        self.reserved + self.fats * self.fat_len + (c - 2) * self.per_cluster
    }
}

/// Makes directory `name` (in the root) of FAT32 volume `vol` loop: its first
/// cluster is its own successor, and no entry in it marks the directory's end.
fn loop_dir(vol: &mut [u8], name: &[u8; 11]) {
    let (_, first) = root_entry(vol, name);
    let g = Geometry::of(vol);
    for f in 0..g.fats {
        let at = g.reserved + f * g.fat_len + 4 * first;
        vol[at..at + 4].copy_from_slice(&(first as u32).to_le_bytes());
    }
    let dir = g.cluster(first);
    for e in (dir..dir + g.per_cluster).step_by(32) {
        if vol[e] == 0 {
            vol[e] = 0xe5;
        }
    }
}

/// The offset of directory entry `name` in the root of FAT32 volume `vol`, and
/// its first cluster.
fn root_entry(vol: &[u8], name: &[u8; 11]) -> (usize, usize) {
    let g = Geometry::of(vol);
    let root = g.cluster(u32::from_le_bytes(vol[44..48].try_into().unwrap()) as usize);
    let entry = (root..root + g.per_cluster)
        .step_by(32)
        .find(|&e| &vol[e..e + 11] == name)
        .expect("the entry is in the root directory");
    let half = |o: usize| usize::from(u16::from_le_bytes([vol[o], vol[o + 1]]));
    (entry, (half(entry + 20) << 16) | half(entry + 26))
}

#[test]
fn a_directory_whose_fat_chain_loops_is_an_error_not_a_hang() {
    let mut vol = volume(&[("vms/vm3.toml", VM3.as_bytes())]);
    loop_dir(&mut vol, b"VMS        ");
    let out = run(gpt_disk(&vol), PLENTY).unwrap();
    assert_eq!((out.vms.len(), out.refused), (0, 0));
    assert_eq!(out.lines.len(), 1, "{:?}", out.lines);
    assert!(
        out.lines[0].contains("a FAT chain that loops?"),
        "{:?}",
        out.lines
    );
}

#[test]
fn cluster_numbers_fat32_cannot_hold_are_errors_not_panics() {
    // A directory entry naming cluster 0xffff_xxxx.
    let mut vol = volume(&[("vms/vm3.toml", VM3.as_bytes())]);
    let (entry, _) = root_entry(&vol, b"VMS        ");
    vol[entry + 20..entry + 22].copy_from_slice(&[0xff, 0xff]);
    let out = run(gpt_disk(&vol), PLENTY).unwrap();
    assert_eq!(out.lines.len(), 1, "{:?}", out.lines);
    assert!(
        out.lines[0].contains("which FAT32 has not"),
        "{:?}",
        out.lines
    );
    // A boot sector putting the root directory there.
    let mut vol = volume(&[]);
    vol[44..48].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let e = run(gpt_disk(&vol), PLENTY).err().unwrap();
    assert!(e.contains("root directory at cluster 0xfffffff0"), "{e}");
}

/// A machine on the fake architecture: four CPUs, 64 MiB of host memory as its RAM,
/// staying up (in the shell) when its last VM stops.
fn machine() -> crate::vmm::machine::Machine {
    let size = 64usize << 20;
    let layout = std::alloc::Layout::from_size_align(size, 2 << 20).unwrap();
    // SAFETY: a non-zero size; the memory is leaked: the test's "physical RAM".
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null());
    let ram = crate::firmware::Range {
        base: p as u64,
        size: size as u64,
    };
    let board = crate::hal::fake::board(&[ram], 4);
    let frames = crate::mm::frames::FrameAllocator::new(&[ram], &[]).unwrap();
    let mut m = crate::vmm::machine::Machine::new(board, frames);
    m.on_last_stop = crate::spec::OnLastStop::Shell;
    m
}

#[test]
fn a_disk_vms_files_are_freed_with_it_and_read_again_on_create() {
    use crate::vmm::fs::disk_source::Frames;
    use crate::vmm::shell::{execute, parse::parse};
    let bad = VM3
        .replace("id = 3", "id = 5")
        .replace("\"vm3\"", "\"vm5\"")
        .replace("[base]", "[base]\nbogus = 1");
    let vol = volume(&[
        ("vms/vm3.toml", VM3.as_bytes()),
        ("vms/vm3/testguest.bin", GUEST),
        ("vms/vm5.toml", bad.as_bytes()),
    ]);
    let fat = FatDisk::mount(MemDisk(gpt_disk(&vol))).unwrap();
    let m = machine();
    let reads = core::cell::Cell::new(0);
    let create = |path: &str, existing: &[crate::spec::VmSpec]| {
        reads.set(reads.get() + 1);
        m.with_frames(|frames| {
            let mut mem = Frames(frames);
            let mut src = DiskSource::new(&fat, &mut mem);
            with_test_host(&[], &|_| None, |host| {
                super::create_one(&mut src, path, host, existing)
            })
        })
    };
    let sh = |line: &str| {
        let mut out = String::new();
        execute(&m, parse(line).unwrap(), &mut out, &create).map(|_| out)
    };
    let before = m.frames();
    for round in 1..=10 {
        let out = sh("vm create vms/vm3.toml").unwrap();
        assert!(out.contains("VM 3 (vm3) created"), "round {round}: {out}");
        assert_eq!(reads.get(), round, "each create reads the disk again");
        let vm = m.vm(3).unwrap();
        assert_eq!(vm.spec.kernel.data, GUEST);
        // The VM holds the frames of its kernel file (2 of them) besides its RAM.
        assert!(
            vm.owned.lock().iter().any(|&(_, size)| size == 0x2000),
            "{:?}",
            vm.owned.lock()
        );
        assert!(m.frames().0 > before.0 + (16 << 20) / 4096);
        let out = sh("vm delete 3").unwrap();
        assert!(out.contains("VM 3 (vm3) deleted"), "{out}");
        assert_eq!(m.frames(), before, "round {round}: every frame back");
    }
    // A refused config gives back what was read for it (its own file).
    let mut out = String::new();
    let e = execute(
        &m,
        parse("vm create vms/vm5.toml").unwrap(),
        &mut out,
        &create,
    );
    assert_eq!(e, Err("vm create vms/vm5.toml: refused".into()));
    assert!(
        out.contains("VM 5 (vm5) not started: vms/vm5.toml: base.bogus: unknown field"),
        "{out}"
    );
    assert_eq!(m.frames(), before);
    // So does one whose VM cannot be built (its CPUs taken by a VM built meanwhile).
    sh("vm create vms/vm3.toml").unwrap();
    let used = m.frames();
    let e = execute(
        &m,
        parse("vm create vms/vm3.toml").unwrap(),
        &mut out,
        &create,
    );
    assert!(e.is_err());
    assert_eq!(m.frames(), used);
}
