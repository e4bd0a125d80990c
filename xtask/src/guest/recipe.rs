//! Built-in recipes: Linux guest images made on this machine from Debian packages, so
//! no release server is needed. Each takes Debian's kernel package of one release and
//! architecture (the suite's default kernel, newest ABI) and `busybox-static`, keeps
//! the kernel `Image`, its config and its device trees, and builds the busybox
//! initramfs of [`super::initramfs`].
//!
//! Image layout: `Image` (x86_64: `bzImage`), `initramfs.cpio.gz`, `config` (the
//! kernel's .config), `dtbs/` (the package's device trees; none on x86_64),
//! `manifest.toml`.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::debian;
use super::initramfs;
use super::store::{Manifest, Store};
use crate::apt::{downloaded_deb, extract_deb, PrivateApt};
use crate::download::sha256_file;

/// A built-in recipe.
#[derive(Debug)]
pub struct Recipe {
    pub name: &'static str,
    /// The project's architecture name.
    pub arch: &'static str,
    pub debian_arch: &'static str,
    /// The Debian release the packages come from.
    pub suite: &'static str,
    /// Kernel flavor: the metapackage is `linux-image-<flavor>`.
    pub kernel_flavor: &'static str,
    /// Prefix of the kernel image in the package (`boot/vmlinuz-`).
    pub kernel_prefix: &'static str,
    /// The file name of the kernel in the image (`Image`, x86's `bzImage`).
    pub kernel_file: &'static str,
    /// The magic of the kernel's boot header: 4 bytes at this offset (the `Image`
    /// header's at 0x38, the x86 setup header's "HdrS" at 0x202).
    pub magic_at: usize,
    pub image_magic: [u8; 4],
    /// Console device of the matching QEMU machine.
    pub console: &'static str,
    /// How to boot the image on plain QEMU (append `-kernel`, `-initrd`, `-append`).
    pub qemu: &'static str,
    pub description: &'static str,
}

/// The built-in recipes.
pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "linux-aarch64",
        arch: "aarch64",
        debian_arch: "arm64",
        suite: "bookworm",
        kernel_flavor: "arm64",
        kernel_prefix: "boot/vmlinuz-",
        kernel_file: "Image",
        magic_at: 0x38,
        image_magic: *b"ARM\x64",
        console: "ttyAMA0",
        qemu: "qemu-system-aarch64 -machine virt -cpu cortex-a72 -smp 2 -m 512M -nographic -no-reboot -nic none",
        description: "Debian bookworm arm64 kernel + busybox initramfs (built-in recipe)",
    },
    Recipe {
        name: "linux-riscv64",
        arch: "riscv64",
        debian_arch: "riscv64",
        suite: "trixie",
        kernel_flavor: "riscv64",
        kernel_prefix: "boot/vmlinux-",
        kernel_file: "Image",
        magic_at: 0x38,
        image_magic: *b"RSC\x05",
        console: "ttyS0",
        qemu: "qemu-system-riscv64 -machine virt -smp 2 -m 512M -nographic -no-reboot -nic none -bios default",
        description: "Debian trixie riscv64 kernel + busybox initramfs (built-in recipe)",
    },
    Recipe {
        name: "linux-x86_64",
        arch: "x86_64",
        debian_arch: "amd64",
        suite: "bookworm",
        kernel_flavor: "amd64",
        // A bzImage (x86 boot protocol, XZ-compressed kernel inside).
        kernel_prefix: "boot/vmlinuz-",
        kernel_file: "bzImage",
        magic_at: 0x202,
        image_magic: *b"HdrS",
        console: "ttyS0",
        qemu: "qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m 512M -nographic -no-reboot -nic none",
        description: "Debian bookworm amd64 kernel (bzImage) + busybox initramfs (built-in recipe)",
    },
];

/// The recipe called `name`.
pub fn find(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name)
}

/// The Debian packages a pull uses, with their versions.
struct Packages {
    kernel: String,
    kernel_version: String,
    busybox: String,
    busybox_version: String,
}

/// Makes the image of `recipe` in `store`; returns the image directory.
pub fn pull(recipe: &Recipe, store: &Store) -> Result<PathBuf> {
    let say = |m: &str| println!("xtask: guest {}: {m}", recipe.name);
    let staging = store.staging(recipe.name)?;
    let apt_dir = store.apt_dir(&format!("{}-{}", recipe.suite, recipe.debian_arch));
    let apt = PrivateApt::open(&apt_dir, recipe.debian_arch, Some(recipe.suite))?;
    apt.update(Duration::ZERO)?;
    let pk = choose_packages(&apt, recipe)?;
    say(&format!(
        "downloading {} {} and {} {}",
        pk.kernel, pk.kernel_version, pk.busybox, pk.busybox_version
    ));
    let debs = staging.dir.join("debs");
    let kernel = format!("{}={}", pk.kernel, pk.kernel_version);
    let busybox = format!("{}={}", pk.busybox, pk.busybox_version);
    apt.download(&[&kernel, &busybox], &debs)?;
    let kernel_deb = downloaded_deb(&debs, &pk.kernel, &pk.kernel_version)?;
    let busybox_deb = downloaded_deb(&debs, &pk.busybox, &pk.busybox_version)?;
    say("unpacking the kernel package");
    install_kernel(
        recipe,
        &kernel_deb,
        &staging.dir.join("kernel"),
        &staging.image,
    )?;
    say("building initramfs.cpio.gz around busybox");
    install_initramfs(&busybox_deb, &staging.dir.join("busybox"), &staging.image)?;
    let manifest = Manifest {
        name: recipe.name.to_string(),
        version: pk.kernel_version.clone(),
        sha256: sha256_file(&kernel_deb)?,
        source: format!(
            "recipe:{} (Debian {} {})",
            recipe.name, recipe.suite, recipe.debian_arch
        ),
        arch: recipe.arch.to_string(),
        description: recipe.description.to_string(),
        pulled_at: 0,
        kernel: Some(recipe.kernel_file.into()),
        initramfs: Some("initramfs.cpio.gz".into()),
        dtbs: staging.image.join("dtbs").is_dir().then(|| "dtbs".into()),
        packages: vec![
            format!("{} {}", pk.kernel, pk.kernel_version),
            format!("{} {}", pk.busybox, pk.busybox_version),
        ],
    };
    staging.commit(manifest)
}

fn choose_packages(apt: &PrivateApt, recipe: &Recipe) -> Result<Packages> {
    let kernel = debian::kernel_package(apt, recipe.kernel_flavor)?;
    let version = |p: &str| -> Result<String> {
        apt.version(p)?.with_context(|| {
            format!(
                "package {p} not found for Debian {} {}",
                recipe.suite, recipe.debian_arch
            )
        })
    };
    Ok(Packages {
        kernel_version: version(&kernel)?,
        kernel,
        busybox_version: version("busybox-static")?,
        busybox: "busybox-static".into(),
    })
}

/// Takes the kernel, config and device trees out of the kernel package.
fn install_kernel(recipe: &Recipe, deb: &Path, work: &Path, image: &Path) -> Result<()> {
    let prefix = recipe.kernel_prefix;
    let written = extract_deb(deb, work, |p| {
        let s = p.to_string_lossy();
        s.starts_with(prefix)
            || s.starts_with("boot/config-")
            || s.starts_with("usr/lib/linux-image-")
    })?;
    let find = |pre: &str| {
        written
            .iter()
            .find(|p| p.to_string_lossy().starts_with(pre) && work.join(p).is_file())
    };
    let kernel = find(prefix)
        .with_context(|| format!("{} has no /{prefix}* kernel image", deb.display()))?;
    let bytes = read_kernel(&work.join(kernel))?;
    check_image(recipe, &bytes, kernel)?;
    write(&image.join(recipe.kernel_file), &bytes)?;
    if let Some(cfg) = find("boot/config-") {
        fs::copy(work.join(cfg), image.join("config")).context("cannot copy the kernel config")?;
    }
    if let Some(dtbs) = first_dir(&work.join("usr/lib"), "linux-image-") {
        fs::rename(&dtbs, image.join("dtbs")).context("cannot move the device trees")?;
    }
    Ok(())
}

/// The kernel image, gunzipped if the package compressed it.
fn read_kernel(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("cannot gunzip {}", path.display()))?;
        return Ok(out);
    }
    Ok(raw)
}

/// Checks the Linux boot header magic of `recipe`'s architecture.
pub fn check_image(recipe: &Recipe, bytes: &[u8], shown: &Path) -> Result<()> {
    let at = recipe.magic_at;
    if bytes.get(at..at + 4) != Some(&recipe.image_magic[..]) {
        bail!(
            "{} is not a {} Linux {} (no {} header magic at offset {at:#x})",
            shown.display(),
            recipe.arch,
            recipe.kernel_file,
            recipe.kernel_file
        );
    }
    Ok(())
}

fn first_dir(parent: &Path, prefix: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(parent)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// Builds `initramfs.cpio.gz` from the busybox of the `busybox-static` package.
fn install_initramfs(deb: &Path, work: &Path, image: &Path) -> Result<()> {
    let written = extract_deb(deb, work, |p| {
        p == Path::new("bin/busybox") || p == Path::new("usr/bin/busybox")
    })?;
    let bin = written
        .iter()
        .map(|p| work.join(p))
        .find(|p| p.is_file())
        .with_context(|| format!("{} has no busybox binary", deb.display()))?;
    let busybox = fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let cpio = initramfs::build(&busybox)?;
    write(&image.join("initramfs.cpio.gz"), &cpio)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
