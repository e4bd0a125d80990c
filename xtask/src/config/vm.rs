//! VM configs (`configs/vms/*.toml`) in AxVisor's format: typed parsing, then the
//! checks that need only the VM itself (and the board's architecture).
//!
//! The rules live in the shared `vmconfig` crate, which the hypervisor also uses for
//! the configs it reads from a card (`image_location = "fs"`); this module puts each
//! problem at its file, line and column, and adds what needs the host: image files on
//! disk, guest crates and pulled guest images.
//!
//! Project extension: `kernel_path = "guest:<crate>"` names the in-repo guest crate
//! `guests/<crate>`, which `cargo xtask build` builds and turns into a raw binary.
//! `kernel_path`, `ramdisk_path` and `dtb_path` may also be `"image:<name>/<file>"`,
//! a file of a guest image pulled with `cargo xtask guest pull <name>`.
use std::path::{Path, PathBuf};

use vmconfig::paths::FileKind;
use vmconfig::schema::{BasePass, DevicesPass, KernelPass};
use vmconfig::{ImageRef, Problems, Severity, VmConfig};

use super::board::Arch;
use super::diag::{KeyPath, Report};
use super::source::{Overrides, Source};

pub use vmconfig::{EmuDevice, ImageLocation, IrqMode, MemRegion};

/// The hypervisor's cargo feature that reads `image_location = "fs"` VMs from the
/// card at boot (and brings in the TOML parser); `cargo xtask image` turns it on when
/// the card carries such VMs, no other build has it unless the board lists it.
pub const FS_VMS_FEATURE: &str = "fs-vms";

/// Where a VM image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// A file (absolute path).
    File(PathBuf),
    /// An in-repo guest crate under `guests/`, built by xtask.
    Guest(String),
}

/// An image bundled into the hypervisor and copied to `load` (a GPA) before boot.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub source: ImageSource,
    pub load: u64,
    /// The config key that names the image (for messages).
    pub key: KeyPath,
    /// The config key of its load address.
    pub load_key: KeyPath,
}

/// A VM config that passed its own checks: the shared crate's model with the images
/// resolved on the host, plus what only xtask knows. The model's fields are reached
/// through `Deref` (`vm.name`, `vm.memory`), so they are declared once, in `vmconfig`.
pub struct Vm {
    pub src: Source,
    pub cfg: VmConfig<ImageSpec>,
    /// Physical CPU index of each vCPU (filled in by the CPU placement).
    pub pcpus: Vec<u32>,
    /// The windows of its device-tree passthrough entries as the board's device
    /// tree resolves them (filled in by `devtree::check`; empty when it could not
    /// be read). Only for checks: the hypervisor resolves the paths itself at boot.
    pub dt_windows: Vec<vmconfig::PassDevice>,
}

impl std::ops::Deref for Vm {
    type Target = VmConfig<ImageSpec>;

    fn deref(&self) -> &Self::Target {
        &self.cfg
    }
}

/// Parses and checks one VM config. Returns the VM when it has no errors.
#[allow(dead_code)] // the one-file form of `load_vm_with`, for callers without edits
pub fn load_vm(path: &Path, root: &Path, arch: Arch, report: &mut Report) -> Option<Vm> {
    load_vm_with(path, root, arch, &Overrides::new(), report)
}

/// [`load_vm`] with the text of `path` taken from `overrides` when it is there.
pub fn load_vm_with(
    path: &Path,
    root: &Path,
    arch: Arch,
    overrides: &Overrides,
    report: &mut Report,
) -> Option<Vm> {
    let src = match Source::load_with(path, root, overrides) {
        Ok(s) => s,
        Err(d) => {
            report.push(d);
            return None;
        }
    };
    let before = report.error_count();
    let base = src.typed::<BasePass>().map_err(|d| report.push(d)).ok();
    let kernel = src.typed::<KernelPass>().map_err(|d| report.push(d)).ok();
    let devices = src.typed::<DevicesPass>().map_err(|d| report.push(d)).ok();
    let (base, kernel, devices) = (base?.base, kernel?.kernel, devices?.devices);
    let mut problems = Problems::default();
    let checked = vmconfig::check_vm(
        &base,
        &kernel,
        &devices.unwrap_or_default(),
        limits(arch),
        &mut problems,
    );
    let images = checked.as_ref().map(|c| host_images(&src, root, c, report));
    if let (Some(c), Some(Some(images))) = (&checked, &images) {
        check_file_images(c, images, arch, &mut problems);
    }
    for p in &problems.items {
        report.push(match p.severity {
            Severity::Error => src.error(&p.key, p.message.clone()),
            Severity::Warning => src.warning(&p.key, p.message.clone()),
        });
    }
    let (cfg, images) = (checked?, images??);
    (report.error_count() == before).then(|| from_config(src, cfg, images))
}

/// The shared crate's limits for an architecture.
pub fn limits(arch: Arch) -> vmconfig::ArchLimits {
    match arch {
        Arch::Aarch64 => vmconfig::AARCH64,
        Arch::Riscv64 => vmconfig::RISCV64,
        Arch::X86_64 => vmconfig::X86_64,
    }
}

/// The kernel image, DTB and ramdisk resolved on the host.
type HostImages = (ImageSpec, Option<ImageSpec>, Option<ImageSpec>);

/// Resolves every image the config names; `None` after reporting one that cannot be.
fn host_images(src: &Source, root: &Path, c: &VmConfig, report: &mut Report) -> Option<HostImages> {
    let kernel = image_spec(src, root, &c.kernel, true, report);
    let dtb = c
        .dtb
        .as_ref()
        .map(|i| image_spec(src, root, i, false, report));
    let ramdisk = c
        .ramdisk
        .as_ref()
        .map(|i| image_spec(src, root, i, false, report));
    Some((
        kernel?,
        dtb.map_or(Some(None), |d| d.map(Some))?,
        ramdisk.map_or(Some(None), |r| r.map(Some))?,
    ))
}

fn from_config(src: Source, c: VmConfig, images: HostImages) -> Vm {
    let (kernel, dtb, ramdisk) = images;
    Vm {
        src,
        cfg: c.with_images(kernel, dtb, ramdisk),
        pcpus: Vec::new(),
        dt_windows: Vec::new(),
    }
}

/// Resolves an image path on the host: `guest:<crate>` (kernel only), `image:...`
/// in the guest store, else a file relative to the config.
fn image_spec(
    src: &Source,
    root: &Path,
    img: &ImageRef,
    allow_guest: bool,
    report: &mut Report,
) -> Option<ImageSpec> {
    let (path, k) = (img.path.as_str(), &img.key);
    let source = if let Some(krate) = path.strip_prefix("guest:") {
        let valid = !krate.is_empty()
            && krate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !allow_guest || !valid {
            let why = if allow_guest {
                "a crate name"
            } else {
                "a file (\"guest:\" is only for kernel_path)"
            };
            report.push(src.error(k, format!("{path:?}: expected {why}")));
            return None;
        }
        ImageSource::Guest(krate.to_string())
    } else if path.starts_with(crate::guest::CONFIG_PREFIX) {
        // "image:<name>/<file>": a file of a pulled guest image (`cargo xtask guest`).
        match crate::guest::resolve_config_path(path) {
            Ok(Some(file)) => ImageSource::File(file),
            Ok(None) => return None,
            Err(why) => {
                report.push(src.error(k, why));
                return None;
            }
        }
    } else {
        let dir = src.path.parent().unwrap_or(Path::new("."));
        let file = dir.join(path);
        if !file.exists() {
            report.push(src.error(k, format!("image file not found: {}", file.display())));
            return None;
        }
        let kind = match k.segs().last() {
            Some(vmconfig::Seg::Key(f)) if f == "dtb_path" => FileKind::Dtb,
            Some(vmconfig::Seg::Key(f)) if f == "ramdisk_path" => FileKind::Ramdisk,
            _ => FileKind::Kernel,
        };
        if let Some(why) = host_file_problem(path, &file, kind, &[root, dir]) {
            report.push(src.error(k, why));
            return None;
        }
        ImageSource::File(file)
    };
    Some(ImageSpec {
        source,
        load: img.load,
        key: img.key.clone(),
        load_key: img.load_key.clone(),
    })
}

/// Checks that an image of `size` bytes at its load address lies inside one RAM
/// region.
pub fn image_fits(img: &ImageSpec, size: u64, mem: &[MemRegion]) -> Result<(), String> {
    vmconfig::image_fits(img.load, size, mem)
}

impl vmconfig::image::Placed for ImageSpec {
    fn key(&self) -> &KeyPath {
        &self.key
    }
    fn load_key(&self) -> &KeyPath {
        &self.load_key
    }
    fn load(&self) -> u64 {
        self.load
    }
}

/// Why the file at `file` (written `shown`) may not be the `kind` file a config
/// names: the shared rule `vmconfig::paths`, with where the path really leads
/// (links and `..` resolved) found out here. `known` are the directories whose
/// files are taken as they are (the repository, the config's directory).
pub fn host_file_problem(
    shown: &str,
    file: &Path,
    kind: vmconfig::paths::FileKind,
    known: &[&Path],
) -> Option<String> {
    let regular = std::fs::metadata(file).is_ok_and(|m| m.is_file());
    let real = std::fs::canonicalize(file).ok();
    let inside_known = real.as_ref().is_some_and(|r| {
        known
            .iter()
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .any(|d| r.starts_with(d))
    });
    let found = vmconfig::paths::Found {
        regular,
        inside_known,
    };
    vmconfig::paths::file_problem(shown, kind, found)
}

/// The first bytes and the length of an image file (`None` when it cannot be read).
pub fn file_facts(path: &Path) -> Option<(Vec<u8>, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut head = Vec::with_capacity(vmconfig::image::HEAD_LEN);
    f.by_ref()
        .take(vmconfig::image::HEAD_LEN as u64)
        .read_to_end(&mut head)
        .ok()?;
    Some((head, len))
}

/// [`file_facts`] as the shared checks take them.
pub fn loaded(f: &Option<(Vec<u8>, u64)>) -> Option<vmconfig::Loaded<'_>> {
    f.as_ref()
        .map(|(head, len)| vmconfig::Loaded { head, len: *len })
}

/// The shared image checks (architecture, boot protocol, placement and overlaps,
/// the generated DTB's estimate) for the images that are files; a guest crate's
/// kernel is checked with them again once built.
fn check_file_images(c: &VmConfig, images: &HostImages, arch: Arch, out: &mut Problems) {
    let (kernel, dtb, ramdisk) = images;
    let facts = |spec: &ImageSpec| match &spec.source {
        ImageSource::File(p) => file_facts(p),
        ImageSource::Guest(_) => None,
    };
    let (k, d, r) = (
        facts(kernel),
        dtb.as_ref().and_then(facts),
        ramdisk.as_ref().and_then(facts),
    );
    vmconfig::check_images(c, loaded(&k), loaded(&d), loaded(&r), limits(arch), out);
}
