//! Booting a card image in QEMU the way a board boots its card: firmware (Debian's
//! U-Boot for QEMU) as `-bios`, the image as a virtio disk, no `-kernel`.
use std::path::Path;

use anyhow::{bail, Result};

use super::{image_plan, ImageOptions};
use crate::cmd::build::BuildOptions;
use crate::config::board::QemuToml;
use crate::config::{Board, Plan};
use crate::host_tools;
use crate::workspace::Workspace;

/// Makes the card image of a board whose `[qemu]` has boot = "image" and returns the
/// QEMU arguments that boot it.
pub fn prepare(
    ws: &Workspace,
    plan: Plan,
    build: &BuildOptions,
    q: &QemuToml,
) -> Result<Vec<String>> {
    ensure_bios(q)?;
    let opts = ImageOptions {
        build: build.clone(),
        ..ImageOptions::default()
    };
    let out = image_plan(ws, plan, &opts)?;
    Ok(image_args(&out.board, q, &out.path))
}

/// The QEMU arguments that boot `image` on `board` through `q.bios`.
pub fn image_args(board: &Board, q: &QemuToml, image: &Path) -> Vec<String> {
    let mut args = vec!["-machine".to_string(), q.machine.clone()];
    if let Some(cpu) = &q.cpu {
        args.extend(["-cpu".into(), cpu.clone()]);
    }
    args.extend(["-smp".into(), board.smp.to_string()]);
    if let Some(mem) = &q.memory {
        args.extend(["-m".into(), mem.clone()]);
    }
    args.extend(crate::qemu::console_args(board));
    args.extend(q.args.iter().cloned());
    if let Some(bios) = &q.bios {
        args.extend(["-bios".into(), bios.clone()]);
    }
    args.extend(disk_args(image));
    args
}

/// The QEMU arguments that attach `image` as a virtio-blk disk (on virtio-mmio).
pub fn disk_args(image: &Path) -> [String; 4] {
    [
        "-drive".into(),
        format!("if=none,file={},format=raw,id=hd0", image.display()),
        "-device".into(),
        "virtio-blk-device,drive=hd0".into(),
    ]
}

/// The Debian package that ships a firmware file, for the ones we know.
pub fn bios_package(bios: &str) -> Option<&'static str> {
    bios.starts_with("/usr/lib/u-boot/qemu")
        .then_some("u-boot-qemu")
}

/// Makes sure the `bios` firmware file exists, installing its package when we can.
pub fn ensure_bios(q: &QemuToml) -> Result<()> {
    let Some(bios) = &q.bios else {
        bail!("[qemu] has boot = \"image\" but no `bios` firmware to boot it");
    };
    if Path::new(bios).is_file() {
        return Ok(());
    }
    match bios_package(bios) {
        Some(pkg) => host_tools::ensure_package_file(Path::new(bios), pkg),
        None => bail!("QEMU firmware {bios} not found ([qemu] bios in the board file)"),
    }
}
