//! The files of `image_location = "fs"` VMs on the boot partition: for VM `<name>`,
//! its images under `vms/<name>/` and its config as `vms/<name>.toml`, rewritten so
//! that `kernel_path`, `dtb_path` and `ramdisk_path` name those files (paths on the
//! boot partition, from its root). Comments and everything else stay as written.
use anyhow::{Context, Result};
use toml_edit::{value, DocumentMut};

use super::disk::FatFile;
use super::script::ModuleKind;
use crate::config::vm::{ImageSource, ImageSpec, Vm};

/// Config slots: at least this, and twice the config's size, so it can be edited.
pub const CONFIG_SLOT_MIN: u64 = 64 << 10;
pub const CONFIG_ALIGN: u64 = 64 << 10;
/// Image slots: at least this, and twice the image's size, so a larger image can
/// replace it on the card without a new boot script.
pub const IMAGE_SLOT_MIN: u64 = 16 << 20;
pub const IMAGE_ALIGN: u64 = 2 << 20;

/// A file for the boot partition that U-Boot loads as a boot module.
#[derive(Clone, Debug)]
pub struct ModuleFile {
    pub file: FatFile,
    pub kind: ModuleKind,
    /// Bytes reserved for it in RAM.
    pub slot: u64,
    pub align: u64,
}

/// The slot for a file of `size` bytes.
pub fn slot_for(kind: ModuleKind, size: u64) -> (u64, u64) {
    let (min, align) = match kind {
        ModuleKind::VmConfig => (CONFIG_SLOT_MIN, CONFIG_ALIGN),
        ModuleKind::VmImage => (IMAGE_SLOT_MIN, IMAGE_ALIGN),
    };
    let twice = size.saturating_mul(2).next_multiple_of(align);
    (twice.max(min), align)
}

/// The name an image gets under `vms/<vm>/`.
fn image_name(img: &ImageSpec) -> String {
    match &img.source {
        ImageSource::Guest(krate) => format!("{krate}.bin"),
        ImageSource::File(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into()),
    }
}

/// The boot modules of one fs VM; `data_of` gives an image's bytes.
pub fn vm_modules(
    vm: &Vm,
    board: &str,
    data_of: &dyn Fn(&ImageSpec) -> Result<Vec<u8>>,
) -> Result<Vec<ModuleFile>> {
    let mut doc: DocumentMut = vm
        .src
        .text
        .parse()
        .with_context(|| format!("cannot re-read {}", vm.src.shown))?;
    let slots = [
        (Some(&vm.kernel), "kernel_path"),
        (vm.dtb.as_ref(), "dtb_path"),
        (vm.ramdisk.as_ref(), "ramdisk_path"),
    ];
    let mut out = Vec::new();
    let mut used: Vec<String> = Vec::new();
    for (img, key) in slots {
        let Some(img) = img else { continue };
        let mut name = image_name(img);
        if used.contains(&name) {
            name = format!("{}-{name}", key.trim_end_matches("_path"));
        }
        used.push(name.clone());
        let path = format!("vms/{}/{name}", vm.name);
        doc["kernel"][key] = value(format!("/{path}"));
        let data = data_of(img)?;
        let (slot, align) = slot_for(ModuleKind::VmImage, data.len() as u64);
        out.push(ModuleFile {
            file: FatFile { path, data },
            kind: ModuleKind::VmImage,
            slot,
            align,
        });
    }
    let text = format!(
        "# VM config on the boot partition of a card made by `cargo xtask image` for board {board}\n\
         # (from {}). Paths name files on this partition. Edit it, or replace the files it\n\
         # names, and reboot: nothing needs rebuilding. Files may grow to twice their size.\n{}",
        vm.src.shown, doc
    );
    let data = text.into_bytes();
    let (slot, align) = slot_for(ModuleKind::VmConfig, data.len() as u64);
    out.insert(
        0,
        ModuleFile {
            file: FatFile {
                path: format!("vms/{}.toml", vm.name),
                data,
            },
            kind: ModuleKind::VmConfig,
            slot,
            align,
        },
    );
    Ok(out)
}
