//! The `cargo xtask test` scenarios of `image_location = "fs"` VMs: board
//! qemu-aarch64-uboot boots a card image through U-Boot with `vm1` built into the
//! hypervisor and `vm3` (xtask/tests/data/fs-vm.toml) as files on the card. The
//! hypervisor reads vm3's config and image from the boot modules U-Boot loaded.
//!
//! - `uboot-fs-vm`: both VMs pass.
//! - `uboot-edit-config`: `vms/vm3.toml` is edited inside the image file (through
//!   the FAT crate, as a user edits the card) to `cmdline = "fault"`, and QEMU boots
//!   the edited image with no build in between: vm3 is stopped for reading outside
//!   its memory, vm1 still passes.
//! - `uboot-bad-fs-config`: an unknown key in `vms/vm3.toml` on the card stops only
//!   vm3, with a message naming the file and the key; vm1 passes.
//!
//! And without U-Boot:
//!
//! - `disk-vm`: board qemu-aarch64 (`-kernel`) with vm1 built in and vm3 only on the
//!   FAT32 disk `cargo xtask run` attaches (virtio-blk), next to vm4 (its kernel
//!   missing on the disk) and vm5 (an unknown key): the hypervisor drives the disk
//!   itself; vm3 and vm1 pass, vm4 and vm5 are named as not started.
//! - `riscv64-disk-vm`: the same on board qemu-riscv64
//!   (xtask/tests/data/fs-vm-riscv64.toml as vm3), with QEMU's modern virtio-mmio
//!   (version 2; `disk-vm` has its default, legacy version 1).
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::build::BuildOptions;
use super::test::{check_summary, exit_status, has_line, log_path, verdict, QEMU_TIMEOUT};
use crate::config::board::QemuToml;
use crate::config::{Arch, Board, Plan, VmList};
use crate::host_tools::ensure_qemu;
use crate::image::{disk, image_plan, qemu as card, run_disk, ImageOptions};
use crate::output::clean;
use crate::qemu::{qemu_args, qemu_binary, run_captured, Outcome};
use crate::workspace::Workspace;

/// The board whose QEMU boots the card image through U-Boot.
const UBOOT_BOARD: &str = "configs/board/qemu-aarch64-uboot.toml";
/// vm1, built into the hypervisor.
const VM1: &str = "configs/vms/testguest-aarch64-qemu-smp2-a.toml";
/// vm3, image_location = "fs".
const FS_VM: &str = "xtask/tests/data/fs-vm.toml";
/// Where the card holds vm3's config.
const FS_CONFIG: &str = "vms/vm3.toml";

/// A card image with its VMs (bundled, or files on the card), ready to boot.
pub(super) struct Card {
    pub plan: Plan,
    pub image: PathBuf,
    pub qemu: QemuToml,
}

/// `vms` on `board`.
pub(super) fn load_vms(ws: &Workspace, board: &str, vms: &[&str]) -> Result<Plan> {
    let ctx = crate::config::Context {
        guest_crates: &ws.guest_crates,
    };
    let vms: Vec<PathBuf> = vms.iter().map(|v| ws.root.join(v)).collect();
    Ok(crate::config::load(
        &ws.root,
        &ws.root.join(board),
        VmList::Override(&vms),
        &ctx,
    )?)
}

/// Builds the hypervisor and writes the card image (`cargo xtask image`): vm1
/// bundled, vm3 on the card.
fn make_card(ws: &Workspace) -> Result<Card> {
    make_card_with(ws, UBOOT_BOARD, &[VM1, FS_VM])
}

/// [`make_card`] for a U-Boot `board` with `vms`.
pub(super) fn make_card_with(ws: &Workspace, board: &str, vms: &[&str]) -> Result<Card> {
    ensure_qemu(Arch::Aarch64)?;
    let plan = load_vms(ws, board, vms)?;
    let qemu = plan.board.qemu.clone().context("no [qemu] section")?;
    card::ensure_bios(&qemu)?;
    let opts = ImageOptions {
        build: BuildOptions {
            config: Some(ws.root.join(board)),
            vms: vms.iter().map(|v| ws.root.join(v)).collect(),
            force_bin: true,
        },
        ..ImageOptions::default()
    };
    let out = image_plan(ws, plan, &opts)?;
    Ok(Card {
        plan: load_vms(ws, board, vms)?,
        image: out.path,
        qemu,
    })
}

/// Boots `image` through U-Boot; returns how QEMU ended and its cleaned output.
fn boot(
    ws: &Workspace,
    board: &Board,
    q: &QemuToml,
    image: &Path,
    name: &str,
) -> Result<(Outcome, String)> {
    let args = card::image_args(board, q, image);
    let log = log_path(ws, name)?;
    let program = qemu_binary(board);
    println!(
        "xtask: {program} {} (output in {})",
        args.join(" "),
        log.display()
    );
    let (outcome, text) = run_captured(&program, &args, QEMU_TIMEOUT, &log)?;
    Ok((outcome, clean(&text)))
}

fn lines_present(out: &str, wanted: &[&str], problems: &mut Vec<String>) {
    for w in wanted {
        if !has_line(out, w) {
            problems.push(format!("no `{w}` line"));
        }
    }
}

/// `uboot-fs-vm`.
pub fn fs_vm(ws: &Workspace) -> Result<()> {
    let c = make_card(ws)?;
    let (outcome, out) = boot(ws, &c.plan.board, &c.qemu, &c.image, "uboot-fs-vm")?;
    let mut problems = Vec::new();
    exit_status(&outcome, true, &mut problems);
    lines_present(
        &out,
        &[
            "Found U-Boot script /boot.scr",
            "hv: VM 3 (vm3): 2 vCPU(s) on CPU(s) [2, 3]",
            "hv: all VMs stopped: 2 clean, 0 faulted",
        ],
        &mut problems,
    );
    for vm in &c.plan.vms {
        check_summary(&out, &vm.name, &mut problems);
    }
    verdict(&problems, &out)
}

/// The card image copied for one scenario, so the others keep theirs.
fn scenario_copy(c: &Card, name: &str) -> Result<PathBuf> {
    let copy = c.image.with_file_name(format!("{name}.img"));
    std::fs::copy(&c.image, &copy)
        .with_context(|| format!("cannot copy {} to {}", c.image.display(), copy.display()))?;
    Ok(copy)
}

/// Edits `vms/vm3.toml` inside the image file with `edit` (on its parsed text).
fn edit_config(image: &Path, edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> Result<String> {
    let contents = disk::read_image(image)?;
    let text = contents
        .file(FS_CONFIG)
        .with_context(|| format!("no {FS_CONFIG} on the card"))?;
    let text = std::str::from_utf8(text).with_context(|| format!("{FS_CONFIG} is not UTF-8"))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{FS_CONFIG} on the card"))?;
    edit(&mut doc);
    let new = doc.to_string();
    disk::replace_file(image, FS_CONFIG, new.as_bytes())?;
    Ok(new)
}

/// When the built hypervisor files last changed (to show no build ran).
fn build_stamps(ws: &Workspace, board: &Board) -> Vec<(PathBuf, Option<SystemTime>)> {
    let dir = ws.board_dir(&board.name);
    ["hypervisor.elf", "hypervisor.bin"]
        .iter()
        .map(|f| {
            let p = dir.join(f);
            let t = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, t)
        })
        .collect()
}

/// Edits the card's vm3 config, boots the edited image without building anything.
fn boot_edited(
    ws: &Workspace,
    name: &str,
    edit: impl FnOnce(&mut toml_edit::DocumentMut),
) -> Result<(Plan, Outcome, String, Vec<String>)> {
    let c = make_card(ws)?;
    let image = scenario_copy(&c, name)?;
    let before = build_stamps(ws, &c.plan.board);
    let text = edit_config(&image, edit)?;
    println!(
        "xtask: {FS_CONFIG} edited inside {}:\n{text}",
        image.display()
    );
    let (outcome, out) = boot(ws, &c.plan.board, &c.qemu, &image, name)?;
    let mut problems = Vec::new();
    if build_stamps(ws, &c.plan.board) != before {
        problems.push("the hypervisor was rebuilt between the edit and the boot".into());
    }
    Ok((c.plan, outcome, out, problems))
}

/// `uboot-edit-config`.
pub fn edit_config_scenario(ws: &Workspace) -> Result<()> {
    let (plan, outcome, out, mut problems) = boot_edited(ws, "uboot-edit-config", |doc| {
        doc["kernel"]["cmdline"] = toml_edit::value("fault");
    })?;
    exit_status(&outcome, false, &mut problems);
    match out.lines().find(|l| l.contains("hv: VM 3 (vm3) stopped:")) {
        Some(l) if l.contains("outside guest memory") => {}
        Some(l) => problems.push(format!(
            "vm3 stopped, but not for `outside guest memory`: {l}"
        )),
        None => problems.push("no `hv: VM 3 (vm3) stopped: ... outside guest memory` line".into()),
    }
    lines_present(
        &out,
        &["hv: all VMs stopped: 1 clean, 1 faulted"],
        &mut problems,
    );
    for vm in plan.vms.iter().filter(|v| v.name != "vm3") {
        check_summary(&out, &vm.name, &mut problems);
    }
    verdict(&problems, &out)
}

/// `uboot-bad-fs-config`.
pub fn bad_config(ws: &Workspace) -> Result<()> {
    let (plan, outcome, out, mut problems) = boot_edited(ws, "uboot-bad-fs-config", |doc| {
        doc["base"]["bogus"] = toml_edit::value(1);
    })?;
    exit_status(&outcome, false, &mut problems);
    let wanted =
        format!("hv: VM 3 (vm3) not started: {FS_CONFIG}: base.bogus: unknown field `bogus`");
    if !out.lines().any(|l| l.starts_with(&wanted)) {
        problems.push(format!("no line starting `{wanted}`"));
    }
    if out.lines().any(|l| l.starts_with("[vm3]")) {
        problems.push("vm3 ran although its config is bad".into());
    }
    lines_present(
        &out,
        &["hv: all VMs stopped: 1 clean, 1 faulted"],
        &mut problems,
    );
    for vm in plan.vms.iter().filter(|v| v.name != "vm3") {
        check_summary(&out, &vm.name, &mut problems);
    }
    verdict(&problems, &out)
}

/// What `disk-vm` runs (QEMU loads the hypervisor with `-kernel`, no U-Boot): the
/// board, the built-in vm1 and the fs VM vm3.
pub struct DiskVm {
    pub name: &'static str,
    pub board: &'static str,
    pub vm1: &'static str,
    pub fs_vm: &'static str,
    pub arch: Arch,
    /// The virtio-mmio version QEMU offers: 1 (legacy, its default) or 2 (modern,
    /// `-global virtio-mmio.force-legacy=false`).
    pub virtio: u32,
}

pub const DISK_VM: DiskVm = DiskVm {
    name: "disk-vm",
    board: "configs/board/qemu-aarch64.toml",
    vm1: VM1,
    fs_vm: FS_VM,
    arch: Arch::Aarch64,
    virtio: 1,
};

pub const RISCV64_DISK_VM: DiskVm = DiskVm {
    name: "riscv64-disk-vm",
    board: "configs/board/qemu-riscv64.toml",
    vm1: "configs/vms/testguest-riscv64-qemu-smp2-a.toml",
    fs_vm: "xtask/tests/data/fs-vm-riscv64.toml",
    arch: Arch::Riscv64,
    virtio: 2,
};

/// The fs VM's config (`fs_vm`) as another VM (`id`, `name`) on the disk, changed by
/// `edit`.
pub(super) fn disk_config(
    ws: &Workspace,
    fs_vm: &str,
    id: i64,
    name: &str,
    edit: impl FnOnce(&mut toml_edit::DocumentMut),
) -> Result<disk::FatFile> {
    let path = ws.root.join(fs_vm);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}", path.display()))?;
    doc["base"]["id"] = toml_edit::value(id);
    doc["base"]["name"] = toml_edit::value(name);
    edit(&mut doc);
    Ok(disk::FatFile {
        path: format!("vms/{name}.toml"),
        data: doc.to_string().into_bytes(),
    })
}

/// `disk-vm` and `riscv64-disk-vm`.
pub fn disk_vm(ws: &Workspace, s: &DiskVm) -> Result<()> {
    ensure_qemu(s.arch)?;
    let plan = load_vms(ws, s.board, &[s.vm1, s.fs_vm])?;
    let board = plan.board.clone();
    let q = board.qemu.clone().context("no [qemu] section")?;
    let extra = [
        disk_config(ws, s.fs_vm, 4, "vm4", |doc| {
            doc["kernel"]["kernel_path"] = toml_edit::value("/vms/vm4/missing.bin");
        })?,
        disk_config(ws, s.fs_vm, 5, "vm5", |doc| {
            doc["base"]["bogus"] = toml_edit::value(1);
        })?,
    ];
    let run = run_disk(ws, plan, &extra)?;
    let mut problems = Vec::new();
    // vm3 lives only on the disk: the table built into the hypervisor lacks it.
    let gen = ws.board_dir(&board.name).join("gen.rs");
    let table = std::fs::read_to_string(&gen).with_context(|| format!("{}", gen.display()))?;
    if table.contains("\"vm3\"") {
        problems.push(format!(
            "vm3 is built into the hypervisor ({})",
            gen.display()
        ));
    }
    let mut args = qemu_args(&board, &q, &run.bin);
    args.extend(card::disk_args(&run.disk));
    if s.virtio == 2 {
        args.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
    }
    let log = log_path(ws, s.name)?;
    let program = qemu_binary(&board);
    println!(
        "xtask: {program} {} (output in {})",
        args.join(" "),
        log.display()
    );
    let (outcome, text) = run_captured(&program, &args, QEMU_TIMEOUT, &log)?;
    let out = clean(&text);
    exit_status(&outcome, false, &mut problems);
    let disk = format!("(virtio-mmio version {})", s.virtio);
    lines_present(
        &out,
        &[
            &disk,
            "hv: VM 3 (vm3): 2 vCPU(s) on CPU(s) [2, 3]",
            "hv: all VMs stopped: 2 clean, 2 faulted",
        ],
        &mut problems,
    );
    for wanted in [
        "hv: VM 4 (vm4) not started: vms/vm4.toml: kernel.kernel_path: vms/vm4/missing.bin: not on the disk",
        "hv: VM 5 (vm5) not started: vms/vm5.toml: base.bogus: unknown field `bogus`",
    ] {
        if !out.lines().any(|l| l.starts_with(wanted)) {
            problems.push(format!("no line starting `{wanted}`"));
        }
    }
    for stopped in ["vm4", "vm5"] {
        if out.lines().any(|l| l.starts_with(&format!("[{stopped}]"))) {
            problems.push(format!("{stopped} ran although it is broken"));
        }
    }
    for vm in ["vm1", "vm3"] {
        check_summary(&out, vm, &mut problems);
    }
    verdict(&problems, &out)
}
