//! Tests of the card image writer: boot script image and CRCs (cross-checked with
//! `mkimage` when installed), load-address planning, GPT layout and bootloader offset
//! for every board with an `[image]`, FAT contents read back, the fs-VM files, the
//! package file matching, and a whole orangepi-5-plus image read back (and checked with
//! `sfdisk` / `fsck.fat` when installed).
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::disk::{read_image, replace_file, write_image, FatFile, LEGACY_BOOTABLE};
use super::fsvm::{slot_for, vm_modules, ModuleFile};
use super::layout::{layout, Layout, MIN_BOOT_PARTITION};
use super::plan::{booti_address, place, Space, Want, UBOOT_TOP_RESERVE};
use super::script::{BootScript, Dtb, Module, ModuleKind};
use super::uimage::{self, script_image, script_text};
use super::*;
use crate::config::image::FileSource;
use crate::config::range::Range;
use crate::config::{load, Context as CfgContext, VmList};
use crate::host_tools::find_on_path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-image-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_plan_of(board: &str, vms: &[&str]) -> Plan {
    let g = vec!["testguest".to_string()];
    let list: Vec<PathBuf> = vms.iter().map(|v| root().join(v)).collect();
    let which = if list.is_empty() {
        VmList::FromBoard
    } else {
        VmList::Override(&list)
    };
    load(
        root(),
        &root().join(format!("configs/board/{board}.toml")),
        which,
        &CfgContext { guest_crates: &g },
    )
    .unwrap_or_else(|e| panic!("{board}: {e}"))
}

/// A fake hypervisor: an arm64 Image header (text_offset, image_size) and some bytes.
fn fake_hv(text_offset: u64, image_size: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0xa5u8; len];
    v[0..8].fill(0);
    v[8..16].copy_from_slice(&text_offset.to_le_bytes());
    v[16..24].copy_from_slice(&image_size.to_le_bytes());
    v[24..56].fill(0);
    v[24] = 0x2;
    v[56..60].copy_from_slice(b"ARM\x64");
    v[60..64].fill(0);
    v
}

const BOARDS_WITH_IMAGE: &[&str] = &[
    "qemu-aarch64-uboot",
    "orangepi-5-plus",
    "evm3588",
    "roc-rk3568-pc",
    "phytiumpi",
];

// ---- boot.scr (legacy image) ----

#[test]
fn script_image_header_and_crcs() {
    let img = script_image("echo hi\n", "boot script", 0x6000_0000).unwrap();
    assert_eq!(img.len(), 64 + 8 + 8);
    let h = uimage::parse(&img).unwrap();
    assert_eq!(h.time, 0x6000_0000);
    assert_eq!(h.data_size, 16);
    assert_eq!((h.os, h.arch, h.image_type, h.comp), (5, 22, 6, 0));
    assert_eq!((h.load, h.entry), (0, 0));
    assert_eq!(h.name, "boot script");
    assert_eq!(h.data_crc, crc32fast::hash(&img[64..]));
    assert_eq!(&img[64..72], &[0, 0, 0, 8, 0, 0, 0, 0]);
    assert_eq!(script_text(&img).unwrap(), "echo hi\n");
    // Any flipped bit is caught by one of the CRCs.
    for at in [5, 20, 40, 70, 75] {
        let mut bad = img.clone();
        bad[at] ^= 1;
        assert!(uimage::parse(&bad).is_err(), "flip at {at} not caught");
    }
    assert!(script_image("", "x", 0).is_err());
    let long = script_image("x", &"n".repeat(40), 0).unwrap();
    assert_eq!(uimage::parse(&long).unwrap().name.len(), 31);
}

#[test]
fn script_image_matches_mkimage() {
    let Some(mkimage) = find_on_path("mkimage") else {
        eprintln!("mkimage (u-boot-tools) not installed: cross-check skipped");
        return;
    };
    let dir = tmp("mkimage");
    let text = "echo one\nif true; then echo two; fi\n";
    let src = dir.join("boot.cmd");
    std::fs::write(&src, text).unwrap();
    let theirs = dir.join("theirs.scr");
    let st = Command::new(&mkimage)
        .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"])
        .args(["-a", "0", "-e", "0", "-n", "boot script", "-d"])
        .arg(&src)
        .arg(&theirs)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let ours = script_image(text, "boot script", 1_700_000_000).unwrap();
    assert_eq!(
        std::fs::read(&theirs).unwrap(),
        ours,
        "byte-for-byte as mkimage"
    );
    let ours_path = dir.join("ours.scr");
    std::fs::write(&ours_path, &ours).unwrap();
    let listed = Command::new(&mkimage)
        .arg("-l")
        .arg(&ours_path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{out}");
    assert!(out.contains("Image Name:   boot script"), "{out}");
    assert!(out.contains("AArch64 Linux Script (uncompressed)"), "{out}");
    assert!(
        out.contains(&format!("Data Size:    {} Bytes", ours.len() - 64)),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn boot_script_memory_only_uses_uboots_own_dtb() {
    let s = BootScript {
        board: "b".into(),
        hypervisor_file: "hypervisor.bin".into(),
        hypervisor_addr: 0x4020_0000,
        dtb: Dtb::Control,
        modules: vec![],
    }
    .render();
    assert!(s.contains(
        "if load ${devtype} ${devnum}:${distro_bootpart} 0x40200000 ${prefix}hypervisor.bin; then"
    ));
    assert!(s.contains("    booti 0x40200000 - ${fdtcontroladdr}\n"));
    assert!(!s.contains("fdt "), "{s}");
    assert_eq!(s.matches("\nfi\n").count(), 1);
}

#[test]
fn boot_script_with_board_dtb_and_modules() {
    let s = BootScript {
        board: "b".into(),
        hypervisor_file: "hypervisor.bin".into(),
        hypervisor_addr: 0x40_0000,
        dtb: Dtb::File {
            file: "rk.dtb".into(),
            addr: 0x60_0000,
            slot: 0x3_0000,
        },
        modules: vec![Module {
            file: "vms/vm3.toml".into(),
            kind: ModuleKind::VmConfig,
            addr: 0x1_2000_0000,
            slot: 0x1_0000,
        }],
    }
    .render();
    for want in [
        "if load ${devtype} ${devnum}:${distro_bootpart} 0x600000 ${prefix}rk.dtb 0x30000; then",
        "fdt addr 0x600000",
        "fdt resize 0x10000",
        "fdt mknode /chosen hv-modules",
        "fdt set /chosen/hv-modules \"#address-cells\" <2>",
        "fdt mknode /chosen/hv-modules module@120000000",
        "fdt set /chosen/hv-modules/module@120000000 compatible \"hv,vm-config\" \"hv,module\"",
        "fdt set /chosen/hv-modules/module@120000000 hv,file \"vms/vm3.toml\"",
        "fdt set /chosen/hv-modules/module@120000000 hv,slot <0x1 0x20000000 0x0 0x10000>",
        "0x120000000 ${prefix}vms/vm3.toml 0x10000; then",
        "fdt set /chosen/hv-modules/module@120000000 reg <0x1 0x20000000 0x0 0x${filesize}>",
        "fdt rsvmem add 0x120000000 0x10000",
        "booti 0x400000 - 0x600000",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    // Boots only when the DTB loaded; every if has its fi.
    assert!(s.contains("if test \"${hv_dtb_ok}\" = 1; then"));
    let ifs = s
        .lines()
        .filter(|l| l.trim_start().starts_with("if "))
        .count();
    let fis = s.lines().filter(|l| l.trim() == "fi").count();
    assert_eq!(ifs, fis, "{s}");
}

// ---- load-address planning ----

fn check_placements(space: &Space, placed: &[plan::Placed], wants: &[Want]) {
    assert_eq!(placed.len(), wants.len());
    for (p, w) in placed.iter().zip(wants) {
        assert_eq!(p.range.size, w.size);
        assert_eq!(p.range.base % w.align, 0, "{} misaligned", p.name);
        assert!(
            space.windows.iter().any(|win| win.contains_range(&p.range)),
            "{} at {} outside the windows",
            p.name,
            p.range
        );
        for (why, ex) in &space.excluded {
            assert!(!ex.overlaps(&p.range), "{} overlaps {why}", p.name);
        }
    }
    for (i, a) in placed.iter().enumerate() {
        for b in &placed[..i] {
            assert!(
                !a.range.overlaps(&b.range),
                "{} overlaps {}",
                a.name,
                b.name
            );
        }
    }
}

#[test]
fn booti_placement_rule() {
    assert_eq!(booti_address(0x4000_0000, 0x20_0000), Some(0x4020_0000));
    assert_eq!(booti_address(0x20_0000, 0x20_0000), Some(0x40_0000));
    assert_eq!(booti_address(0x8000_0000, 0x20_0000), Some(0x8020_0000));
    assert_eq!(booti_address(0x1000, 0x8_0000), Some(0x28_0000));
    assert_eq!(booti_address(u64::MAX, 0), None);
}

#[test]
fn placement_avoids_exclusions_and_is_aligned() {
    let space = Space {
        windows: vec![Range::new(0x1000_0000, 0x1000_0000)],
        excluded: vec![
            ("a".into(), Range::new(0x1000_0000, 0x30_0000)),
            ("b".into(), Range::new(0x1040_0000, 0x10_0000)),
        ],
    };
    let wants = vec![
        Want {
            name: "one".into(),
            size: 0x1_0000,
            align: 0x1_0000,
        },
        Want {
            name: "two".into(),
            size: 0x20_0000,
            align: 0x20_0000,
        },
        Want {
            name: "three".into(),
            size: 0x1_0000,
            align: 0x1_0000,
        },
    ];
    let placed = place(&space, &wants).unwrap();
    check_placements(&space, &placed, &wants);
    assert_eq!(placed[0].range.base, 0x1030_0000);
    assert_eq!(placed[1].range.base, 0x1060_0000);
    assert_eq!(placed[2].range.base, 0x1031_0000, "fills the gap");
    let huge = [Want {
        name: "huge".into(),
        size: 0x2000_0000,
        align: 0x1000,
    }];
    let err = place(&space, &huge).unwrap_err().to_string();
    assert!(err.contains("no room in RAM for huge"), "{err}");
}

#[test]
fn planning_on_every_board_keeps_off_the_hypervisor_and_uboot() {
    for name in BOARDS_WITH_IMAGE {
        let plan = load_plan_of(name, &[]);
        let b = &plan.board;
        let vms: Vec<&Vm> = plan.vms.iter().collect();
        let space = Space::for_board(b, 0x20_0000, 0x40_0000, &vms);
        let ram = b.ram.iter().find(|r| r.contains(b.hv_load_addr)).unwrap();
        let win = space.windows[0];
        assert_eq!(win.base, ram.base, "{name}");
        assert!(win.end().unwrap() <= ram.end().unwrap().min(1 << 32) - UBOOT_TOP_RESERVE);
        let wants: Vec<Want> = (0..6)
            .map(|i| Want {
                name: format!("f{i}"),
                size: if i % 2 == 0 { 0x1_0000 } else { 0x100_0000 },
                align: if i % 2 == 0 { 0x1_0000 } else { 0x20_0000 },
            })
            .collect();
        let placed = place(&space, &wants).unwrap();
        check_placements(&space, &placed, &wants);
        let hv = Range::new(b.hv_load_addr - 0x20_0000, 0x60_0000);
        assert!(placed.iter().all(|p| !p.range.overlaps(&hv)), "{name}");
        for r in &b.reserved {
            assert!(placed.iter().all(|p| !p.range.overlaps(r)), "{name}");
        }
    }
}

#[test]
fn identity_mapped_vm_memory_is_kept_free() {
    let plan = load_plan_of("qemu-aarch64-uboot", &[]);
    let mut vm_plan = load_plan_of("qemu-aarch64-uboot", &[]);
    let vm = &mut vm_plan.vms[0];
    vm.cfg.memory[0].map_type = 1;
    vm.cfg.memory[0].range = Range::new(0x4060_0000, 0x100_0000);
    let space = Space::for_board(&plan.board, 0x20_0000, 0x20_0000, &[&*vm]);
    let p = place(
        &space,
        &[Want {
            name: "x".into(),
            size: 0x40_0000,
            align: 0x20_0000,
        }],
    )
    .unwrap();
    // 0x4040_0000..0x4060_0000 is free but too small; the VM's memory is skipped.
    assert_eq!(p[0].range.base, 0x4160_0000);
}

// ---- GPT layout, bootloader offset, FAT contents ----

fn read_at(path: &Path, at: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut v = vec![0; len];
    f.read_exact(&mut v).unwrap();
    v
}

fn sample_files() -> Vec<FatFile> {
    vec![
        FatFile {
            path: "boot.scr".into(),
            data: script_image("echo x\n", "boot script", 1).unwrap(),
        },
        FatFile {
            path: "hypervisor.bin".into(),
            data: (0..300_000u32).map(|i| (i % 251) as u8).collect(),
        },
        FatFile {
            path: "vms/vm3.toml".into(),
            data: b"[base]\nid = 3\n".to_vec(),
        },
        FatFile {
            path: "vms/vm3/testguest.bin".into(),
            data: vec![7; 70_000],
        },
    ]
}

fn check_gpt_and_bootloader(img: &Path, l: &Layout, bootloader: Option<&[u8]>) {
    let mbr = read_at(img, 0, 512);
    assert_eq!(&mbr[510..512], &[0x55, 0xaa]);
    assert_eq!(mbr[446 + 4], 0xee, "protective MBR partition type");
    assert_eq!(&read_at(img, 512, 8), b"EFI PART");
    assert_eq!(
        &read_at(img, l.size - 512, 8),
        b"EFI PART",
        "backup GPT header"
    );
    let c = read_image(img).unwrap();
    assert_eq!(c.partitions.len(), 1);
    let (n, name, first, last, flags, ty) = &c.partitions[0];
    assert_eq!((*n, name.as_str()), (1, "boot"));
    assert_eq!(*first * 512, l.boot.base);
    assert_eq!((*last + 1) * 512, l.boot.end().unwrap());
    assert_eq!(*flags & LEGACY_BOOTABLE, LEGACY_BOOTABLE);
    assert_eq!(
        ty.to_ascii_uppercase(),
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
    );
    assert_eq!(c.fat_type, "Fat32");
    assert_eq!(c.label, "HV-BOOT");
    if let (Some(r), Some(data)) = (l.bootloader, bootloader) {
        assert_eq!(read_at(img, r.base, data.len()), data);
        // Nothing else was written between the GPT and the bootloader.
        assert!(read_at(img, 34 * 512, (r.base - 34 * 512) as usize)
            .iter()
            .all(|b| *b == 0));
    }
}

#[test]
fn gpt_layout_and_bootloader_offset_for_each_board() {
    let dir = tmp("boards");
    for name in BOARDS_WITH_IMAGE {
        let plan = load_plan_of(name, &[]);
        let cfg = plan.board.image.clone().unwrap();
        let bl: Option<Vec<u8>> = cfg
            .bootloader
            .as_ref()
            .map(|_| (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect());
        let l = layout(
            cfg.size,
            cfg.partition_offset,
            cfg.bootloader
                .as_ref()
                .zip(bl.as_ref())
                .map(|(b, d)| (b.offset, d.len() as u64)),
        )
        .unwrap();
        assert_eq!(l.boot.base, 16 << 20, "{name}");
        assert_eq!(l.boot.base % (1 << 20), 0);
        assert_eq!(l.boot.end().unwrap() % (1 << 20), 0);
        assert!(l.boot.end().unwrap() <= cfg.size - 33 * 512);
        let rockchip = cfg.bootloader.is_some();
        assert_eq!(rockchip, !name.contains("qemu") && *name != "phytiumpi");
        if let Some(b) = &cfg.bootloader {
            assert_eq!(
                b.offset,
                64 * 512,
                "{name}: Rockchip idbloader at sector 64"
            );
        }
        let img = dir.join(format!("{name}.img"));
        write_image(&img, &l, bl.as_deref(), &sample_files()).unwrap();
        check_gpt_and_bootloader(&img, &l, bl.as_deref());
        let _ = std::fs::remove_file(&img);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn layout_rejects_what_does_not_fit() {
    assert!(
        layout(48 << 20, 16 << 20, None).is_err(),
        "too small for FAT32"
    );
    let ok = layout(
        16 * 1024 * 1024 + MIN_BOOT_PARTITION + (1 << 20),
        16 << 20,
        None,
    );
    assert!(ok.is_ok());
    let e = layout(256 << 20, 16 << 20, Some((0x8000, 17 << 20)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("runs past the start of the boot partition"),
        "{e}"
    );
    assert!(
        layout(256 << 20, 16 << 20, Some((0x200, 10))).is_err(),
        "inside the GPT"
    );
    assert!(
        layout(256 << 20, 16 << 20, Some((0x8001, 10))).is_err(),
        "unaligned"
    );
    assert!(layout((256 << 20) + 1, 16 << 20, None).is_err());
}

#[test]
fn fat_contents_read_back_and_edit_in_place() {
    let dir = tmp("fat");
    let img = dir.join("fat.img");
    let l = layout(64 << 20, 4 << 20, None).unwrap();
    let files = sample_files();
    write_image(&img, &l, None, &files).unwrap();
    let c = read_image(&img).unwrap();
    assert_eq!(c.files.len(), files.len());
    for f in &files {
        assert_eq!(c.file(&f.path), Some(f.data.as_slice()), "{}", f.path);
    }
    replace_file(&img, "vms/vm3.toml", b"[base]\nid = 4\n").unwrap();
    replace_file(&img, "new.txt", b"added").unwrap();
    let c = read_image(&img).unwrap();
    assert_eq!(c.file("vms/vm3.toml"), Some(&b"[base]\nid = 4\n"[..]));
    assert_eq!(c.file("new.txt"), Some(&b"added"[..]));
    assert_eq!(c.file("hypervisor.bin"), Some(files[1].data.as_slice()));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- whole images ----

fn fs_modules(plan: &Plan) -> Vec<ModuleFile> {
    let data_of = |_: &ImageSpec| Ok(vec![0x5a; 45_000]);
    plan.vms
        .iter()
        .filter(|v| v.location == ImageLocation::Fs)
        .flat_map(|v| vm_modules(v, &plan.board.name, &data_of).unwrap())
        .collect()
}

#[test]
fn qemu_uboot_image_with_an_fs_vm() {
    let plan = load_plan_of(
        "qemu-aarch64-uboot",
        &[
            "configs/vms/testguest-aarch64-qemu-smp2-a.toml",
            "xtask/tests/data/fs-vm.toml",
        ],
    );
    let modules = fs_modules(&plan);
    assert_eq!(modules.len(), 2);
    let config = String::from_utf8(modules[0].file.data.clone()).unwrap();
    assert_eq!(modules[0].file.path, "vms/vm3.toml");
    assert!(
        config.contains("kernel_path = \"/vms/vm3/testguest.bin\""),
        "{config}"
    );
    assert!(config.contains("image_location = \"fs\""));
    assert!(
        config.contains("# A test-guest VM with image_location"),
        "comments kept"
    );
    assert_eq!(modules[1].file.path, "vms/vm3/testguest.bin");
    assert_eq!((modules[1].slot, modules[1].align), (16 << 20, 2 << 20));
    let b = &plan.board;
    let cfg = b.image.clone().unwrap();
    let hv = fake_hv(0x20_0000, 0x20_0000, 4096);
    let vms: Vec<&Vm> = plan.vms.iter().collect();
    let c = assemble(b, &cfg, cfg.size, &hv, &vms, None, None, modules).unwrap();
    let Dtb::ControlCopy { addr, size } = c.script.dtb else {
        panic!("modules need a copy of U-Boot's DTB: {:?}", c.script.dtb);
    };
    assert_eq!(size, CONTROL_DTB_SLOT);
    assert!(addr >= 0x4040_0000, "above the hypervisor");
    let text = c.script.render();
    assert!(text.contains(&format!(
        "    fdt addr ${{fdtcontroladdr}}\n    fdt move ${{fdtcontroladdr}} {addr:#x} 0x200000\n"
    )));
    assert!(text.contains(&format!("booti 0x40200000 - {addr:#x}")));
    assert_eq!(c.script.modules.len(), 2);
    let names: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "boot.scr",
            "boot.cmd",
            "hypervisor.bin",
            "vms/vm3.toml",
            "vms/vm3/testguest.bin"
        ]
    );
    let all: Vec<Range> = c.loads.iter().map(|(_, r)| *r).collect();
    for (i, a) in all.iter().enumerate() {
        assert!(b.ram[0].contains_range(a));
        for o in &all[..i] {
            assert!(!a.overlaps(o), "{a} overlaps {o}");
        }
    }
}

#[test]
fn booti_mismatch_is_refused() {
    let plan = load_plan_of("orangepi-5-plus", &[]);
    let mut cfg = plan.board.image.clone().unwrap();
    cfg.uboot_dram_base = 0;
    let hv = fake_hv(0x20_0000, 0x10_0000, 4096);
    let e = check_booti(&plan.board, &cfg, &hv).unwrap_err().to_string();
    assert!(
        e.contains("booti would run hypervisor.bin at 0x200000"),
        "{e}"
    );
    assert!(
        check_booti(&plan.board, &cfg, &[0; 64]).is_err(),
        "no header"
    );
    cfg.uboot_dram_base = 0x20_0000;
    assert_eq!(
        check_booti(&plan.board, &cfg, &hv).unwrap(),
        (0x20_0000, 0x10_0000)
    );
}

#[test]
fn orangepi_5_plus_image_read_back() {
    let plan = load_plan_of("orangepi-5-plus", &[]);
    let b = &plan.board;
    let cfg = b.image.clone().unwrap();
    let bl = cfg.bootloader.clone().unwrap();
    assert_eq!(bl.offset, 0x8000);
    // Stand-ins for the real bootloader and Debian's DTB (the same file as the
    // kernel's DTB fixture).
    let loader: Vec<u8> = (0..9_000_000u32).map(|i| (i % 253) as u8).collect();
    let dtb_path = root().join("kernel/tests/dtbs/rk3588-orangepi-5-plus.dtb");
    let dtb = std::fs::read(&dtb_path).unwrap_or_else(|_| {
        let mut d = vec![0xd0, 0x0d, 0xfe, 0xed];
        d.resize(90_000, 0);
        d
    });
    let hv = fake_hv(0x20_0000, 0x30_0000, 200_000);
    let vms: Vec<&Vm> = plan.vms.iter().collect();
    let c = assemble(
        b,
        &cfg,
        cfg.size,
        &hv,
        &vms,
        Some(("u-boot-rockchip.bin".into(), loader.clone())),
        Some(FatFile {
            path: "rk3588-orangepi-5-plus.dtb".into(),
            data: dtb.clone(),
        }),
        vec![],
    )
    .unwrap();
    let Dtb::File { addr, slot, .. } = &c.script.dtb else {
        panic!("{:?}", c.script.dtb)
    };
    assert!(
        *addr >= 0x60_0000
            && !Range::new(0x0840_0000, 0x200_0000).overlaps(&Range::new(*addr, *slot))
    );
    let text = c.script.render();
    assert!(
        text.contains(&format!("booti 0x400000 - {addr:#x}")),
        "{text}"
    );
    let dir = tmp("opi5");
    let img = dir.join("orangepi-5-plus.img");
    write(&img, &c).unwrap();
    check_gpt_and_bootloader(&img, &c.layout, Some(&loader));
    assert_eq!(
        c.layout.bootloader,
        Some(Range::new(0x8000, loader.len() as u64))
    );
    let back = read_image(&img).unwrap();
    assert_eq!(
        back.file("rk3588-orangepi-5-plus.dtb"),
        Some(dtb.as_slice())
    );
    assert_eq!(back.file("hypervisor.bin"), Some(hv.as_slice()));
    let scr = script_text(back.file("boot.scr").unwrap()).unwrap();
    assert_eq!(scr, text);
    if let Some(sfdisk) = find_on_path("sfdisk") {
        let out = Command::new(sfdisk).arg("-d").arg(&img).output().unwrap();
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("label: gpt"), "{t}");
        assert!(t.contains("first-lba: 34"), "{t}");
        let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("start= 32768, size= 489472, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"),
            "{t}"
        );
        assert!(t.contains("attrs=\"LegacyBIOSBootable\""), "{t}");
    } else {
        eprintln!("sfdisk not installed: check skipped");
    }
    if let Some(fsck) = find_on_path("fsck.fat") {
        let part = dir.join("part.img");
        let bytes = read_at(&img, c.layout.boot.base, c.layout.boot.size as usize);
        std::fs::write(&part, bytes).unwrap();
        let out = Command::new(fsck).arg("-n").arg(&part).output().unwrap();
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(!t.contains("uninitialized"), "{t}");
        assert!(
            out.status.success(),
            "fsck.fat -n: {t}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("fsck.fat not installed: check skipped");
    }
    // A failed write (here: the read-back check of boot.scr) leaves neither the
    // image's `.part` file nor a new image behind.
    let mut bad = c;
    if let Some(f) = bad.files.iter_mut().find(|f| f.path == "boot.scr") {
        f.data = b"not a U-Boot script image".to_vec();
    }
    let failed = dir.join("failed.img");
    let e = format!("{:#}", write(&failed, &bad).unwrap_err());
    assert!(e.contains("boot.scr"), "{e}");
    assert!(!failed.exists());
    assert!(
        !part_path(&failed).exists(),
        "the .part file was left behind"
    );
    assert_eq!(part_path(&failed), dir.join("failed.img.part"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_naming_a_directory_is_refused() {
    let dir = tmp("outdir");
    let e = check_output(&dir, &dir, "qemu-aarch64")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a directory"), "{e}");
    assert!(e.contains("qemu-aarch64.img"), "{e}");
    let slash = PathBuf::from("no-such-dir/");
    let e = check_output(&slash, &dir.join("no-such-dir"), "b").unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");
    let file = dir.join("card.img");
    assert!(check_output(&file, &file, "b").is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_bootloader_names_the_ways_to_provide_it() {
    let plan = load_plan_of("orangepi-5-plus", &[]);
    let mut cfg = plan.board.image.clone().unwrap();
    if let Some(b) = cfg.bootloader.as_mut() {
        b.source = FileSource::Path {
            path: root().join("firmware/no-such-dir/u-boot-rockchip.bin"),
            shown: "firmware/no-such-dir/u-boot-rockchip.bin".into(),
        };
    }
    let cache = Cache::under(&tmp("nobl"));
    let e = format!(
        "{:#}",
        bootloader_bytes(&plan.board, &cfg, None, &cache).unwrap_err()
    );
    for want in [
        "file not found: firmware/no-such-dir/u-boot-rockchip.bin",
        "--bootloader FILE",
        "[image.bootloader] path",
        "url = ",
        "sha256",
        "deb = ",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
}

#[test]
fn slots_leave_room_to_grow() {
    assert_eq!(slot_for(ModuleKind::VmConfig, 2000), (64 << 10, 64 << 10));
    assert_eq!(
        slot_for(ModuleKind::VmConfig, 50_000),
        (128 << 10, 64 << 10)
    );
    assert_eq!(slot_for(ModuleKind::VmImage, 45_000), (16 << 20, 2 << 20));
    assert_eq!(slot_for(ModuleKind::VmImage, 40 << 20), (80 << 20, 2 << 20));
}

// ---- fetching ----

#[test]
fn download_checks_the_sha256() {
    let dir = tmp("dl");
    let src = dir.join("u-boot.bin");
    std::fs::write(&src, b"bootloader bytes").unwrap();
    let sha = crate::download::sha256_file(&src).unwrap();
    assert_eq!(sha.len(), 64);
    let url = format!("file://{}", src.display());
    let got = fetch::download(&url, &sha, &dir.join("cache")).unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), b"bootloader bytes");
    let wrong = "0".repeat(64);
    let e = fetch::download(&url, &wrong, &dir.join("cache"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("checksum mismatch") && e.contains(&wrong), "{e}");
    assert_eq!(std::fs::read_dir(dir.join("cache")).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_are_found_in_packages_by_suffix() {
    let p = Path::new("usr/lib/linux-image-6.12.1/rockchip/rk3588-orangepi-5-plus.dtb");
    assert!(fetch::ends_with(p, "rockchip/rk3588-orangepi-5-plus.dtb"));
    assert!(fetch::ends_with(p, "/rk3588-orangepi-5-plus.dtb"));
    assert!(!fetch::ends_with(
        Path::new("x/other-rk3588-orangepi-5-plus.dtb"),
        "rk3588-orangepi-5-plus.dtb"
    ));
    assert!(!fetch::ends_with(p, "rk3588-evb1-v10.dtb"));
    assert!(!fetch::ends_with(p, ""));
}

// ---- config: [image], [qemu] boot, image_location = "fs" ----

fn board_errors(text: &str) -> String {
    let dir = tmp("cfg");
    let board = dir.join("b.toml");
    std::fs::write(&board, text).unwrap();
    let vm = root().join("configs/vms/testguest-aarch64-qemu-smp2-a.toml");
    let g = vec!["testguest".to_string()];
    let r = load(
        root(),
        &board,
        VmList::Override(&[vm]),
        &CfgContext { guest_crates: &g },
    );
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

fn uboot_board() -> String {
    std::fs::read_to_string(root().join("configs/board/qemu-aarch64-uboot.toml")).unwrap()
}

#[test]
fn image_section_is_checked() {
    assert_eq!(board_errors(&uboot_board()), "");
    let bad = uboot_board().replace(
        "size = \"128M\"",
        "size = \"12.5M\"\nbootloader = { path = \"x\", url = \"y\" }\ndtb = { url = \"https://z\", sha256 = \"00\" }\nfoo = 1",
    );
    let e = board_errors(&bad);
    assert!(e.contains("unknown field `foo`"), "{e}");
    let bad = bad.replace("\nfoo = 1", "");
    let e = board_errors(&bad);
    for want in [
        "image.size: cannot read",
        "image.bootloader: give exactly one of `path`",
        "image.dtb.sha256: a `url` needs `sha256`",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
    let inside_gpt = uboot_board().replace(
        "size = \"128M\"",
        "size = \"128M\"\nbootloader = { path = \"x\", offset = 0x200 }",
    );
    let e = board_errors(&inside_gpt);
    assert!(
        e.contains("image.bootloader.offset: offset 0x200 must be a multiple of 512 between"),
        "{e}"
    );
    let no_offset = uboot_board().replace(
        "size = \"128M\"",
        "size = \"128M\"\nbootloader = { deb = \"u-boot-rockchip\" }",
    );
    let e = board_errors(&no_offset);
    assert!(
        e.contains("image.bootloader.offset: missing `offset`"),
        "{e}"
    );
    assert!(
        e.contains("image.bootloader.file: a `deb` needs `file`"),
        "{e}"
    );
}

#[test]
fn qemu_image_boot_needs_image_and_bios() {
    let no_image = uboot_board().split("\n[image]").next().unwrap().to_string()
        + "\n[devices]\nuart = [0x0900_0000, 0x1000]\n";
    let e = board_errors(&no_image);
    assert!(
        e.contains("qemu.boot: boot = \"image\" needs an [image] section"),
        "{e}"
    );
    let no_bios = uboot_board().replace("bios = ", "# bios = ");
    assert!(board_errors(&no_bios).contains("needs `bios`"));
    let odd = uboot_board().replace("boot = \"image\"", "boot = \"pxe\"");
    assert!(board_errors(&odd).contains("unknown boot \"pxe\""));
}

#[test]
fn fs_vms_need_a_board_with_an_image_or_qemu_section() {
    let g = vec!["testguest".to_string()];
    let vms = [root().join("xtask/tests/data/fs-vm.toml")];
    // qemu-aarch64 without its [qemu] section: neither a card nor a QEMU disk.
    let text = std::fs::read_to_string(root().join("configs/board/qemu-aarch64.toml")).unwrap();
    let start = text.find("\n[qemu]").unwrap();
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |e| start + 1 + e);
    let bare = format!("{}{}", &text[..start], &text[end..]);
    let board = tmp("fs-no-qemu").join("bare.toml");
    std::fs::write(&board, bare).unwrap();
    let r = load(
        root(),
        &board,
        VmList::Override(&vms),
        &CfgContext { guest_crates: &g },
    );
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains(
            "kernel.image_location: image_location = \"fs\" needs a board with an [image] section"
        ) && e.contains("or a [qemu] section"),
        "{e}"
    );
    let plan = load_plan_of("qemu-aarch64-uboot", &["xtask/tests/data/fs-vm.toml"]);
    assert_eq!(plan.vms[0].location, ImageLocation::Fs);
    // QEMU boards run fs VMs from the disk `cargo xtask run` attaches.
    let plan = load_plan_of("qemu-aarch64", &["xtask/tests/data/fs-vm.toml"]);
    assert_eq!(plan.vms[0].location, ImageLocation::Fs);
}

#[test]
fn fat_times_are_utc_civil_dates() {
    use super::disk::fat_date_time;
    let d = fat_date_time(0, 0);
    // Before FAT's epoch: clamped to 1980-01-01 00:00:00.
    assert_eq!((d.date.year, d.date.month, d.date.day), (1980, 1, 1));
    assert_eq!((d.time.hour, d.time.min, d.time.sec), (0, 0, 0));
    // 2000-02-29 12:34:56 UTC = 951827696.
    let d = fat_date_time(951_827_696, 250);
    assert_eq!((d.date.year, d.date.month, d.date.day), (2000, 2, 29));
    assert_eq!(
        (d.time.hour, d.time.min, d.time.sec, d.time.millis),
        (12, 34, 56, 250)
    );
    // 2026-12-31 23:59:59 UTC = 1798761599.
    let d = fat_date_time(1_798_761_599, 0);
    assert_eq!((d.date.year, d.date.month, d.date.day), (2026, 12, 31));
    assert_eq!((d.time.hour, d.time.min, d.time.sec), (23, 59, 59));
    // After 2107: clamped to its last second.
    let d = fat_date_time(5_000_000_000, 0);
    assert_eq!((d.date.year, d.date.month, d.date.day), (2107, 12, 31));
}
