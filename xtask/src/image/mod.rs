//! `cargo xtask image`: builds the hypervisor for a board, then writes one card image
//! (GPT, the board's bootloader raw before the first partition, a FAT32 boot
//! partition with the hypervisor, the board DTB, the files of `image_location = "fs"`
//! VMs and a generated U-Boot `boot.scr`) that U-Boot's distro boot starts by itself.
pub mod disk;
pub mod fetch;
pub mod fsvm;
pub mod layout;
pub mod plan;
pub mod qemu;
pub mod script;
pub mod uimage;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};

use crate::cmd::build::{absolute, build_plan, load_plan, BuildOptions};
use crate::config::image::{FileSource, ImageConfig};
use crate::config::range::{human_size, Range};
use crate::config::vm::{image_fits, ImageLocation, ImageSource, ImageSpec, Vm, FS_VMS_FEATURE};
use crate::config::{Arch, Board, Plan};
use crate::elf::{arm64_image_header, elf_to_raw};
use crate::workspace::{cargo_build, Workspace};
use disk::FatFile;
use fetch::Cache;
use fsvm::ModuleFile;
use layout::Layout;
use plan::{booti_address, Placed, Space, Want};
use script::{BootScript, Dtb, Module, DTB_EXTRA};

/// The hypervisor's file name on the boot partition.
pub const HV_FILE: &str = "hypervisor.bin";
/// The boot script U-Boot's distro boot looks for, and its readable source.
pub const SCRIPT_FILE: &str = "boot.scr";
pub const SCRIPT_SOURCE_FILE: &str = "boot.cmd";
/// Room for U-Boot's own DTB when the script copies it to add `/chosen` nodes.
pub const CONTROL_DTB_SLOT: u64 = 2 << 20;

/// What to make.
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    pub build: BuildOptions,
    /// Output file (`-o`); default `target/hv/<board>/<board>.img`.
    pub out: Option<PathBuf>,
    /// Total size (`--size`), replacing the board's `[image] size`.
    pub size: Option<String>,
    /// A bootloader file replacing the board's `[image.bootloader]` source.
    pub bootloader: Option<PathBuf>,
}

/// What was made.
pub struct ImageOutput {
    pub path: PathBuf,
    pub board: Board,
}

/// Everything that goes into an image, resolved, before anything is written.
pub struct Contents {
    pub layout: Layout,
    pub bootloader: Option<(String, Vec<u8>)>,
    pub files: Vec<FatFile>,
    /// Load addresses: (file, range of bytes it may occupy).
    pub loads: Vec<(String, Range)>,
    pub script: BootScript,
}

/// `cargo xtask image`.
pub fn image(ws: &Workspace, opts: &ImageOptions) -> Result<ImageOutput> {
    let plan = load_plan(ws, &opts.build)?;
    image_plan(ws, plan, opts)
}

/// Builds a validated plan and writes its card image.
pub fn image_plan(ws: &Workspace, plan: Plan, opts: &ImageOptions) -> Result<ImageOutput> {
    let out = opts.out.as_deref().map(absolute).unwrap_or_else(|| {
        ws.board_dir(&plan.board.name)
            .join(format!("{}.img", plan.board.name))
    });
    if let Some(given) = &opts.out {
        check_output(given, &out, &plan.board.name)?;
    }
    let (board, contents) = contents(ws, plan, opts, true)?;
    write(&out, &contents)?;
    print_summary(&board, &out, &contents);
    Ok(ImageOutput { path: out, board })
}

/// Builds a validated plan and works out what its card carries: the boot-partition
/// files, where U-Boot loads each and the boot script. With `with_bootloader` false
/// (`cargo xtask uboot`: U-Boot is already running) the board's bootloader is not
/// fetched.
pub fn contents(
    ws: &Workspace,
    plan: Plan,
    opts: &ImageOptions,
    with_bootloader: bool,
) -> Result<(Board, Contents)> {
    let board = plan.board.clone();
    let cfg = image_config(&board)?;
    let size = match &opts.size {
        Some(s) => config_size(s)?,
        None => cfg.size,
    };
    let cache = Cache::under(&ws.target_dir.join("hv"));
    // Fetch first: a missing bootloader should not cost a build.
    let bootloader = if with_bootloader {
        bootloader_bytes(&board, &cfg, opts.bootloader.as_deref(), &cache)?
    } else {
        None
    };
    let dtb = match &cfg.dtb {
        Some(src) => Some(dtb_file(src, &cache)?),
        None => None,
    };
    let (hv, memory, fs) = build_hypervisor(ws, plan)?;
    let modules = fs_vm_modules(ws, &board, &fs)?;
    let fixed: Vec<&Vm> = memory.iter().chain(fs.iter()).collect();
    let contents = assemble(&board, &cfg, size, &hv, &fixed, bootloader, dtb, modules)?;
    Ok((board, contents))
}

/// Builds the hypervisor with the VMs bundled into it (`image_location = "memory"`);
/// returns its raw image, those VMs and the fs VMs. With fs VMs the hypervisor gets
/// kernel feature [`FS_VMS_FEATURE`] (the TOML parser that reads them at boot).
fn build_hypervisor(ws: &Workspace, plan: Plan) -> Result<(Vec<u8>, Vec<Vm>, Vec<Vm>)> {
    let Plan {
        mut board,
        vms,
        warnings,
    } = plan;
    let (memory, fs): (Vec<Vm>, Vec<Vm>) = vms
        .into_iter()
        .partition(|v| v.location == ImageLocation::Memory);
    if !fs.is_empty() && !board.features.iter().any(|f| f == FS_VMS_FEATURE) {
        println!(
            "xtask: {} VM(s) with image_location = \"fs\": building the hypervisor with feature {FS_VMS_FEATURE}",
            fs.len()
        );
        board.features.push(FS_VMS_FEATURE.to_string());
    }
    let vms = memory;
    let built = build_plan(
        ws,
        Plan {
            board,
            vms,
            warnings,
        },
        true,
    )?;
    let bin = built.bin.context("no raw hypervisor binary was written")?;
    let hv = std::fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    Ok((hv, built.plan.vms, fs))
}

/// What `cargo xtask run` boots on a QEMU board whose VMs include fs VMs: the
/// hypervisor (memory VMs bundled, feature [`FS_VMS_FEATURE`]) and a disk image with
/// the fs VMs' files (`vms/<name>.toml`, `vms/<name>/...`) on a FAT32 partition,
/// written like a card's boot partition; the hypervisor finds the disk and reads
/// them at boot.
pub struct RunDisk {
    pub bin: PathBuf,
    pub disk: PathBuf,
}

/// Builds for [`RunDisk`]; `extra` files go on the disk too (scenarios add broken
/// ones).
pub fn run_disk(ws: &Workspace, plan: Plan, extra: &[FatFile]) -> Result<RunDisk> {
    let board = plan.board.clone();
    let (_, _, fs) = build_hypervisor(ws, plan)?;
    let dir = ws.board_dir(&board.name);
    let mut files: Vec<FatFile> = fs_vm_modules(ws, &board, &fs)?
        .into_iter()
        .map(|m| m.file)
        .collect();
    files.extend(extra.iter().cloned());
    let bytes: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    let size = (layout::MIN_BOOT_PARTITION + 2 * layout::PART_ALIGN + bytes + bytes / 4)
        .next_multiple_of(layout::PART_ALIGN);
    let lay = layout::layout(size, layout::PART_ALIGN, None)?;
    let disk_path = dir.join("disk.img");
    disk::write_image(&disk_path, &lay, None, &files)?;
    println!(
        "xtask: disk {} ({}): {} fs VM(s) under vms/ on its FAT32 partition",
        disk_path.display(),
        human_size(size),
        fs.len()
    );
    Ok(RunDisk {
        bin: dir.join(HV_FILE),
        disk: disk_path,
    })
}

/// The boot-partition files of the fs VMs (their guest crates built here).
fn fs_vm_modules(ws: &Workspace, board: &Board, fs: &[Vm]) -> Result<Vec<ModuleFile>> {
    let guests = build_fs_guests(ws, board, fs)?;
    let data_of = |img: &ImageSpec| image_bytes(img, &guests);
    let mut modules = Vec::new();
    for vm in fs {
        modules.extend(fsvm::vm_modules(vm, &board.name, &data_of)?);
    }
    Ok(modules)
}

fn image_config(board: &Board) -> Result<ImageConfig> {
    let Some(cfg) = board.image.clone() else {
        bail!(
            "board {} has no [image] section, so there is no card layout for it (see the \
             Images section of README.md; e.g. configs/board/orangepi-5-plus.toml)",
            board.name
        );
    };
    ensure!(
        board.arch == Arch::Aarch64,
        "cargo xtask image writes U-Boot (booti) images for aarch64 boards; board {} is {}",
        board.name,
        board.arch.name()
    );
    Ok(cfg)
}

fn config_size(s: &str) -> Result<u64> {
    crate::config::image::parse_size(s)
        .with_context(|| format!("--size {s:?}: not a size (e.g. 256M, 1G)"))
}

/// The ways to give a board its bootloader, for error messages.
fn bootloader_help(board: &Board) -> String {
    format!(
        "Give board {} its bootloader in one of these ways:\n\
         \x20 - pass it on the command line: cargo xtask image --bootloader FILE\n\
         \x20 - [image.bootloader] path = \"FILE\" in the board file (relative to the repository root)\n\
         \x20 - [image.bootloader] url = \"https://...\" and sha256 = \"<64 hex digits>\"\n\
         \x20 - [image.bootloader] deb = \"<Debian package>\" and file = \"<path inside it>\" \
         (trixie's u-boot-rockchip, suite = \"trixie\", ships usr/lib/u-boot/<board>/u-boot-rockchip.bin \
         for the RK3328/RK3399 boards it supports; RK3568/RK3588 need Rockchip's DDR init blob, \
         which Debian does not ship)",
        board.name
    )
}

fn bootloader_bytes(
    board: &Board,
    cfg: &ImageConfig,
    given: Option<&Path>,
    cache: &Cache,
) -> Result<Option<(String, Vec<u8>)>> {
    let Some(bl) = &cfg.bootloader else {
        if let Some(p) = given {
            bail!(
                "--bootloader {}: board {} has no [image.bootloader] (no offset to write it at)",
                p.display(),
                board.name
            );
        }
        return Ok(None);
    };
    let path = match given {
        Some(p) => {
            let p = absolute(p);
            ensure!(p.is_file(), "--bootloader {}: no such file", p.display());
            p
        }
        None => fetch::fetch(&bl.source, cache).map_err(|e| {
            anyhow::anyhow!(
                "bootloader of board {}: {e:#}\n{}",
                board.name,
                bootloader_help(board)
            )
        })?,
    };
    let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some((path.display().to_string(), data)))
}

fn dtb_file(src: &FileSource, cache: &Cache) -> Result<FatFile> {
    let path = fetch::fetch(src, cache).context("board DTB ([image.dtb])")?;
    let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        data.get(..4) == Some(&[0xd0, 0x0d, 0xfe, 0xed][..]),
        "{} is not a device tree blob (no FDT magic)",
        path.display()
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "board.dtb".into());
    Ok(FatFile { path: name, data })
}

/// Builds the guest crates fs VMs name; returns crate -> raw image.
fn build_fs_guests(ws: &Workspace, board: &Board, fs: &[Vm]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for vm in fs {
        for img in vm.images() {
            let ImageSource::Guest(krate) = &img.source else {
                continue;
            };
            if !out.contains_key(krate) {
                let args = vec![
                    "-p".to_string(),
                    krate.clone(),
                    "--release".into(),
                    "--target".into(),
                    board.target.clone(),
                ];
                println!("xtask: building guest {krate} for {}", board.target);
                let exe = cargo_build(&ws.root, &args, &[], krate)?;
                let elf = std::fs::read(&exe)
                    .with_context(|| format!("cannot read {}", exe.display()))?;
                let raw = elf_to_raw(&elf).with_context(|| format!("guest {krate}"))?;
                ensure!(
                    raw.base == img.load && raw.entry == vm.entry_point,
                    "{}: guest {krate} is linked at {:#x} (entry {:#x}), but the config loads it at {:#x} (entry {:#x})",
                    vm.src.shown,
                    raw.base,
                    raw.entry,
                    img.load,
                    vm.entry_point
                );
                out.insert(krate.clone(), raw.data);
            }
            if let Some(data) = out.get(krate) {
                image_fits(img, data.len() as u64, &vm.memory)
                    .map_err(|why| anyhow::anyhow!("{}: guest {krate}: {why}", vm.src.shown))?;
            }
        }
    }
    Ok(out)
}

fn image_bytes(img: &ImageSpec, guests: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>> {
    match &img.source {
        ImageSource::Guest(k) => guests
            .get(k)
            .cloned()
            .with_context(|| format!("guest {k} was not built")),
        ImageSource::File(p) => {
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
        }
    }
}

/// Checks that `booti` runs the hypervisor where it is linked; returns its
/// (text_offset, image_size).
pub fn check_booti(board: &Board, cfg: &ImageConfig, hv: &[u8]) -> Result<(u64, u64)> {
    let Some((text_offset, image_size)) = arm64_image_header(hv) else {
        bail!("{HV_FILE} has no arm64 Image header: U-Boot's booti cannot start it");
    };
    ensure!(
        image_size >= hv.len() as u64,
        "{HV_FILE}: the Image header's image_size {image_size:#x} is smaller than the file"
    );
    let at = booti_address(cfg.uboot_dram_base, text_offset);
    ensure!(
        at == Some(board.hv_load_addr),
        "booti would run {HV_FILE} at {} (U-Boot's RAM base {:#x} rounded up to 2 MiB + text_offset {text_offset:#x}), \
         but it is linked at hv_load_addr {:#x}: fix hv_load_addr or [image] uboot_dram_base",
        at.map(|a| format!("{a:#x}")).unwrap_or_else(|| "an overflowing address".into()),
        cfg.uboot_dram_base,
        board.hv_load_addr
    );
    Ok((text_offset, image_size))
}

/// Plans the layout, the load addresses and the boot script.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    board: &Board,
    cfg: &ImageConfig,
    size: u64,
    hv: &[u8],
    vms: &[&Vm],
    bootloader: Option<(String, Vec<u8>)>,
    dtb: Option<FatFile>,
    modules: Vec<ModuleFile>,
) -> Result<Contents> {
    let (text_offset, image_size) = check_booti(board, cfg, hv)?;
    let space = Space::for_board(board, text_offset, image_size, vms);
    let mut wants = Vec::new();
    if let Some(d) = &dtb {
        // Twice its size, so a larger DTB can replace it on the card, plus the room
        // `fdt resize` adds.
        let slot = (2 * d.data.len() as u64 + DTB_EXTRA + 0x1000).next_multiple_of(0x1_0000);
        wants.push(Want {
            name: d.path.clone(),
            size: slot,
            align: 0x1_0000,
        });
    } else if !modules.is_empty() {
        wants.push(Want {
            name: "U-Boot's device tree (copy)".into(),
            size: CONTROL_DTB_SLOT,
            align: 0x1_0000,
        });
    }
    for m in &modules {
        wants.push(Want {
            name: m.file.path.clone(),
            size: m.slot,
            align: m.align,
        });
    }
    let placed = plan::place(&space, &wants)?;
    let script = boot_script(board, &dtb, &modules, &placed);
    let mut loads = vec![(
        HV_FILE.to_string(),
        Range::new(board.hv_load_addr, image_size),
    )];
    loads.extend(placed.iter().map(|p| (p.name.clone(), p.range)));
    let files = partition_files(&script, hv, dtb, modules)?;
    let layout = layout::layout(
        size,
        cfg.partition_offset,
        cfg.bootloader
            .as_ref()
            .zip(bootloader.as_ref())
            .map(|(b, (_, data))| (b.offset, data.len() as u64)),
    )?;
    let used: u64 = files.iter().map(|f| f.data.len() as u64 + 4096).sum();
    ensure!(
        used + (8 << 20) < layout.boot.size,
        "the files ({}) do not fit in the {} boot partition: give a larger --size",
        human_size(used),
        human_size(layout.boot.size)
    );
    Ok(Contents {
        layout,
        bootloader,
        files,
        loads,
        script,
    })
}

fn boot_script(
    board: &Board,
    dtb: &Option<FatFile>,
    modules: &[ModuleFile],
    placed: &[Placed],
) -> BootScript {
    let mut placed = placed.iter();
    let dtb = match dtb {
        Some(d) => match placed.next() {
            Some(p) => Dtb::File {
                file: d.path.clone(),
                addr: p.range.base,
                slot: p.range.size,
            },
            None => Dtb::Control,
        },
        None if !modules.is_empty() => match placed.next() {
            Some(p) => Dtb::ControlCopy {
                addr: p.range.base,
                size: p.range.size,
            },
            None => Dtb::Control,
        },
        None => Dtb::Control,
    };
    let modules = modules
        .iter()
        .zip(placed)
        .map(|(m, p)| Module {
            file: m.file.path.clone(),
            kind: m.kind,
            addr: p.range.base,
            slot: p.range.size,
        })
        .collect();
    BootScript {
        board: board.name.clone(),
        hypervisor_file: HV_FILE.into(),
        hypervisor_addr: board.hv_load_addr,
        dtb,
        modules,
    }
}

/// The script's timestamp: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn script_time() -> u32 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(0)
        })
}

fn partition_files(
    script: &BootScript,
    hv: &[u8],
    dtb: Option<FatFile>,
    modules: Vec<ModuleFile>,
) -> Result<Vec<FatFile>> {
    let text = script.render();
    let scr = uimage::script_image(&text, "boot script", script_time())?;
    let mut files = vec![
        FatFile {
            path: SCRIPT_FILE.into(),
            data: scr,
        },
        FatFile {
            path: SCRIPT_SOURCE_FILE.into(),
            data: text.into_bytes(),
        },
        FatFile {
            path: HV_FILE.into(),
            data: hv.to_vec(),
        },
    ];
    files.extend(dtb);
    files.extend(modules.into_iter().map(|m| m.file));
    Ok(files)
}

/// Refuses an `-o` that names a directory (or ends in `/`): the image is one file.
pub fn check_output(given: &Path, out: &Path, board: &str) -> Result<()> {
    let trailing_slash = given.as_os_str().to_string_lossy().ends_with('/');
    if out.is_dir() || trailing_slash {
        bail!(
            "-o {}: is a directory; -o names the image file, e.g. -o {}",
            given.display(),
            Path::new(given).join(format!("{board}.img")).display()
        );
    }
    Ok(())
}

/// A temporary file that is removed when dropped, unless kept.
struct TempFile<'a> {
    path: &'a Path,
    keep: bool,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// Writes the image and reads it back to check every file. The image is written to
/// `<out>.part` and renamed into place only when all checks pass; on any failure, and
/// on Ctrl-C or SIGTERM, the `.part` file is removed.
pub fn write(out: &Path, c: &Contents) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!("xtask: writing {}", out.display());
    let tmp = part_path(out);
    let mut guard = TempFile {
        path: &tmp,
        keep: false,
    };
    let _on_signal = crate::cleanup::remove_on_signal(&tmp)?;
    write_checked(&tmp, c)?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    guard.keep = true;
    Ok(())
}

/// `<out>.part`, next to the output.
pub fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

fn write_checked(tmp: &Path, c: &Contents) -> Result<()> {
    disk::write_image(
        tmp,
        &c.layout,
        c.bootloader.as_ref().map(|(_, d)| d.as_slice()),
        &c.files,
    )?;
    let back = disk::read_image(tmp)?;
    let (first, last) = c.layout.boot_lbas();
    ensure!(
        back.fat_type == "Fat32"
            && back.label == "HV-BOOT"
            && back.partitions.iter().any(|p| p.0 == 1 && p.2 == first && p.3 == last),
        "read-back check failed: partition 1 is not the FAT32 boot partition at sectors {first}..={last}"
    );
    let scr = back.file(SCRIPT_FILE).unwrap_or_default();
    uimage::script_text(scr).context("read-back check failed: boot.scr")?;
    for f in &c.files {
        ensure!(
            back.file(&f.path) == Some(f.data.as_slice()),
            "read-back check failed: {} differs on the written boot partition",
            f.path
        );
    }
    Ok(())
}

fn print_summary(board: &Board, out: &Path, c: &Contents) {
    let l = &c.layout;
    println!(
        "card image for board {} ({})",
        board.name,
        human_size(l.size)
    );
    println!("  file      {}", out.display());
    let (first, last) = l.boot_lbas();
    println!(
        "  GPT       partition 1 \"{}\": FAT32, sectors {first}..={last} ({} at {}), legacy-BIOS-bootable",
        disk::PART_NAME,
        human_size(l.boot.size),
        human_size(l.boot.base)
    );
    match (&c.bootloader, l.bootloader) {
        (Some((from, _)), Some(r)) => println!(
            "  bootloader {} at byte {:#x} (sector {}), {}",
            from,
            r.base,
            r.base / 512,
            human_size(r.size)
        ),
        _ => println!(
            "  bootloader none on the card (the board's firmware, or QEMU -bios, is U-Boot)"
        ),
    }
    println!("  boot partition files:");
    for f in &c.files {
        let load = c
            .loads
            .iter()
            .find(|(n, _)| n == &f.path)
            .map(|(_, r)| format!("  loaded at {r}"))
            .unwrap_or_default();
        println!(
            "    {:<28} {:>10}{load}",
            f.path,
            human_size(f.data.len() as u64)
        );
    }
    if let Dtb::ControlCopy { addr, size } = &c.script.dtb {
        println!(
            "    (U-Boot's device tree is copied to {} for /chosen/hv-modules)",
            Range::new(*addr, *size)
        );
    }
    println!(
        "  U-Boot's distro boot finds boot.scr on partition 1 and runs: booti {:#x} - <dtb>",
        board.hv_load_addr
    );
    println!("Write it to a card (all data on the card is lost; find the card with `lsblk`):");
    println!(
        "  sudo dd if={} of=/dev/sdX bs=4M conv=fsync status=progress",
        out.display()
    );
}
