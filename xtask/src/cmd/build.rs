//! `cargo xtask build`: validate the board and VM configs, build the guests that come
//! from `guests/`, generate the kernel's VM table, build the kernel and write its ELF
//! and raw binary to `target/hv/<board>/`.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::config::diag::{KeyPath, Report};
use crate::config::range::human_size;
use crate::config::vm::{file_facts, loaded, ImageLocation, ImageSource, ImageSpec};
use crate::config::{self, ConfigError, Plan, VmList};
use crate::elf::{arm64_image_header, elf_to_raw, RawImage};
use crate::gen::{generate, GuestImages};
use crate::workspace::{cargo_build, Workspace};

/// The board used when there is no `.build.toml` and no `--config`.
pub const DEFAULT_BOARD: &str = "configs/board/qemu-aarch64.toml";

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Board file (`--config`); default `.build.toml`, else the default board.
    pub config: Option<PathBuf>,
    /// VM configs replacing the board's `vm_configs` (`--vm`).
    pub vms: Vec<PathBuf>,
    /// Write the raw binary even if the board says `to_bin = false`.
    pub force_bin: bool,
}

/// What a build produced.
pub struct BuildOutput {
    pub plan: Plan,
    pub bin: Option<PathBuf>,
    /// The hypervisor ELF (target/hv/<board>/hypervisor.elf).
    pub elf: PathBuf,
}

impl BuildOutput {
    /// What QEMU's `-kernel` boots: the raw binary, or on x86_64 the ELF (QEMU starts
    /// it through its PVH entry note).
    pub fn qemu_kernel(&self) -> Result<PathBuf> {
        if self.plan.board.arch == config::Arch::X86_64 {
            return Ok(self.elf.clone());
        }
        self.bin.clone().context("no raw binary was written")
    }
}

/// The board file to use.
pub fn board_file(ws: &Workspace, opts: &BuildOptions) -> PathBuf {
    match &opts.config {
        Some(p) => absolute(p),
        None => {
            let dot = ws.root.join(".build.toml");
            if dot.is_file() {
                dot
            } else {
                ws.root.join(DEFAULT_BOARD)
            }
        }
    }
}

/// A command-line path made absolute against the current directory.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Loads and validates everything, after pulling the guest images the VM configs
/// name and the store lacks (set-up for a build); nothing is built.
pub fn load_plan(ws: &Workspace, opts: &BuildOptions) -> Result<Plan> {
    load(ws, opts, true)
}

/// Only validates (`cargo xtask check`): a missing guest image is an error naming
/// file, key and the pull command, as any other config error.
pub fn check_plan(ws: &Workspace, opts: &BuildOptions) -> Result<Plan> {
    load(ws, opts, false)
}

fn load(ws: &Workspace, opts: &BuildOptions, pull: bool) -> Result<Plan> {
    let board = board_file(ws, opts);
    println!(
        "xtask: board file {}",
        config::source::shown_path(&board, &ws.root)
    );
    let vms: Vec<PathBuf> = opts.vms.iter().map(|p| absolute(p)).collect();
    let list = if vms.is_empty() {
        VmList::FromBoard
    } else {
        VmList::Override(&vms)
    };
    if pull {
        crate::guest::pull_referenced(&ws.root, &board, &vms)?;
    }
    let ctx = config::Context {
        guest_crates: &ws.guest_crates,
    };
    let plan = config::load(&ws.root, &board, list, &ctx)?;
    for w in plan.warnings.warnings() {
        eprintln!("{w}");
    }
    Ok(plan)
}

/// Validates, then builds.
pub fn build(ws: &Workspace, opts: &BuildOptions) -> Result<BuildOutput> {
    let plan = load_plan(ws, opts)?;
    build_plan(ws, plan, opts.force_bin)
}

/// Builds a validated plan.
pub fn build_plan(ws: &Workspace, plan: Plan, force_bin: bool) -> Result<BuildOutput> {
    if let Some(vm) = plan.vms.iter().find(|v| v.location == ImageLocation::Fs) {
        anyhow::bail!(
            "{}: VM {} has image_location = \"fs\": it is not bundled into the hypervisor but \
             loaded from the boot partition; make a card image with `cargo xtask image`",
            vm.src.shown,
            vm.name
        );
    }
    let started = Instant::now();
    let out_dir = ws.board_dir(&plan.board.name);
    std::fs::create_dir_all(out_dir.join("guests"))
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let guests = build_guests(ws, &plan, &out_dir)?;
    let gen_rs = out_dir.join("gen.rs");
    write_if_changed(&gen_rs, generate(&plan, &guests.0)?.as_bytes())?;
    let kernel_elf = build_kernel(ws, &plan, &gen_rs)?;
    let elf = out_dir.join("hypervisor.elf");
    let bytes = std::fs::read(&kernel_elf)
        .with_context(|| format!("cannot read {}", kernel_elf.display()))?;
    // Before the ELF is written: a kernel that fails the check is never booted.
    let frames =
        crate::frames::check_elf(&bytes).with_context(|| format!("{}", kernel_elf.display()))?;
    std::fs::copy(&kernel_elf, &elf)
        .with_context(|| format!("cannot copy {} to {}", kernel_elf.display(), elf.display()))?;
    let raw = elf_to_raw(&bytes).with_context(|| format!("{}", elf.display()))?;
    anyhow::ensure!(
        raw.base == plan.board.hv_load_addr,
        "the hypervisor ELF starts at {:#x}, not at hv_load_addr {:#x}: the kernel's linker script ignored HV_LOAD_ADDR",
        raw.base,
        plan.board.hv_load_addr
    );
    let bin = if plan.board.to_bin || force_bin {
        let p = out_dir.join("hypervisor.bin");
        std::fs::write(&p, &raw.data).with_context(|| format!("cannot write {}", p.display()))?;
        Some(p)
    } else {
        None
    };
    print_summary(
        &plan,
        &elf,
        bytes.len() as u64,
        bin.as_deref(),
        &raw,
        &guests.1,
    );
    println!(
        "  stack {} KiB unmapped below each stack; largest {} {} bytes ({}), at most {} allowed",
        frames.gap >> 10,
        frames.what,
        frames.largest,
        frames.largest_name,
        frames.limit
    );
    println!("xtask: build took {:.1} s", started.elapsed().as_secs_f64());
    Ok(BuildOutput { plan, bin, elf })
}

/// Writes `data` unless the file already holds exactly that, so that an unchanged
/// VM table or guest image does not make cargo rebuild the kernel.
fn write_if_changed(path: &Path, data: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
}

/// Built guest images and their sizes.
type Guests = (GuestImages, Vec<(String, u64)>);

fn build_guests(ws: &Workspace, plan: &Plan, out_dir: &Path) -> Result<Guests> {
    let mut images = GuestImages::new();
    let mut raws: Vec<(String, RawImage)> = Vec::new();
    for vm in &plan.vms {
        for img in vm.images() {
            let ImageSource::Guest(krate) = &img.source else {
                continue;
            };
            if images.contains_key(krate) {
                continue;
            }
            let args = vec![
                "-p".to_string(),
                krate.clone(),
                "--release".into(),
                "--target".into(),
                plan.board.target.clone(),
            ];
            println!("xtask: building guest {krate} for {}", plan.board.target);
            let exe = cargo_build(&ws.root, &args, &[], krate)?;
            let elf =
                std::fs::read(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
            let raw =
                elf_to_raw(&elf).with_context(|| format!("guest {krate}: {}", exe.display()))?;
            let bin = out_dir.join("guests").join(format!("{krate}.bin"));
            write_if_changed(&bin, &raw.data)?;
            images.insert(krate.clone(), bin);
            raws.push((krate.clone(), raw));
        }
    }
    check_guest_images(plan, &raws)?;
    let sizes = raws
        .iter()
        .map(|(k, r)| (k.clone(), r.data.len() as u64))
        .collect();
    Ok((images, sizes))
}

/// Checks that need the built guest images: they are linked where the configs load
/// them, enter where the configs say, and fit in the VMs' memory.
fn check_guest_images(plan: &Plan, raws: &[(String, RawImage)]) -> Result<()> {
    let mut report = Report::default();
    for vm in &plan.vms {
        let img = &vm.kernel;
        let ImageSource::Guest(krate) = &img.source else {
            continue;
        };
        let Some((_, raw)) = raws.iter().find(|(k, _)| k == krate) else {
            continue;
        };
        if raw.base != img.load {
            report.push(vm.src.error(
                &img.load_key,
                format!(
                    "guest {krate} is linked at {:#x}, but is loaded at {:#x}",
                    raw.base, img.load
                ),
            ));
        }
        if raw.entry != vm.entry_point {
            report.push(vm.src.error(
                &KeyPath::new("kernel").key("entry_point"),
                format!(
                    "guest {krate} starts at {:#x} (its ELF entry), not at {:#x}",
                    raw.entry, vm.entry_point
                ),
            ));
        }
        // The shared image checks, now that the kernel's size is known.
        let facts = |i: &Option<ImageSpec>| match i.as_ref().map(|i| &i.source) {
            Some(ImageSource::File(p)) => file_facts(p),
            _ => None,
        };
        let (dtb, ramdisk) = (facts(&vm.dtb), facts(&vm.ramdisk));
        let kernel = vmconfig::Loaded {
            head: &raw.data[..raw.data.len().min(vmconfig::image::HEAD_LEN)],
            len: raw.data.len() as u64,
        };
        let mut problems = vmconfig::Problems::default();
        let arch = config::vm::limits(plan.board.arch);
        vmconfig::check_images(
            &vm.cfg,
            Some(kernel),
            loaded(&dtb),
            loaded(&ramdisk),
            arch,
            &mut problems,
        );
        for p in problems.errors() {
            report.push(
                vm.src
                    .error(&p.key, format!("guest {krate}: {}", p.message)),
            );
        }
    }
    if report.has_errors() {
        return Err(ConfigError(report).into());
    }
    Ok(())
}

fn build_kernel(ws: &Workspace, plan: &Plan, gen_rs: &Path) -> Result<PathBuf> {
    let b = &plan.board;
    let mut args = vec![
        "-p".to_string(),
        "hypervisor".into(),
        "--release".into(),
        "--target".into(),
        b.target.clone(),
    ];
    if !b.features.is_empty() {
        args.push("--features".into());
        args.push(b.features.join(","));
    }
    args.extend(b.cargo_args.iter().cloned());
    let gen = gen_rs
        .to_str()
        .context("target directory path is not UTF-8")?
        .to_string();
    let envs = [
        ("HV_GEN_RS", gen),
        ("HV_LOAD_ADDR", format!("{:#x}", b.hv_load_addr)),
    ];
    println!(
        "xtask: building the hypervisor for {} ({})",
        b.name, b.target
    );
    cargo_build(&ws.root, &args, &envs, "hypervisor")
}

fn print_summary(
    plan: &Plan,
    elf: &Path,
    elf_size: u64,
    bin: Option<&Path>,
    raw: &RawImage,
    guests: &[(String, u64)],
) {
    let b = &plan.board;
    println!(
        "hypervisor for board {} ({}, {})",
        b.name,
        b.arch.name(),
        b.target
    );
    println!("  ELF   {} ({})", elf.display(), human_size(elf_size));
    match bin {
        Some(p) => println!(
            "  bin   {} ({}, loads at {:#x})",
            p.display(),
            human_size(raw.data.len() as u64),
            raw.base
        ),
        None => println!("  bin   not written (to_bin = false)"),
    }
    println!("  entry {:#x}", raw.entry);
    if b.arch == config::Arch::Aarch64 {
        match arm64_image_header(&raw.data) {
            Some((off, size)) => println!(
                "  arm64 Image header: text_offset {off:#x}, image_size {}",
                human_size(size)
            ),
            None => println!("  arm64 Image header: none"),
        }
    }
    println!("  VMs bundled: {}", plan.vms.len());
    for vm in &plan.vms {
        let pcpus: Vec<String> = vm.pcpus.iter().map(u32::to_string).collect();
        let image = match &vm.kernel.source {
            ImageSource::Guest(k) => {
                let size = guests
                    .iter()
                    .find(|(g, _)| g == k)
                    .map(|(_, s)| *s)
                    .unwrap_or(0);
                format!("guest {k} ({})", human_size(size))
            }
            ImageSource::File(p) => p.display().to_string(),
        };
        println!(
            "    {} (id {}): {} vCPUs on CPUs [{}], memory {}, {}",
            vm.name,
            vm.id,
            vm.cpu_num,
            pcpus.join(", "),
            human_size(vm.ram_size()),
            image
        );
    }
}
