//! Where menuconfig's allowed values come from: the repository itself, never a list
//! kept by hand. Targets are the bare-metal targets of `rust-toolchain.toml` whose
//! architecture has a kernel port (`kernel/src/arch/<arch>`), features are the kernel
//! crate's Cargo features (read with `cargo metadata`, help from the comments in its
//! Cargo.toml), and VM configs are the files in `configs/vms/`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::MetadataCommand;
use toml_edit::DocumentMut;

use crate::config::Arch;
use crate::workspace::cargo;

/// The kernel crate whose features are offered.
pub const KERNEL_CRATE: &str = "hypervisor";

/// Every architecture the config model knows.
pub const ARCHES: [Arch; 3] = [Arch::Aarch64, Arch::Riscv64, Arch::X86_64];

/// A Cargo feature of the kernel crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    /// The comment above the feature in the kernel's Cargo.toml.
    pub help: String,
    /// The architecture it is for: every `feature = "<name>"` in the kernel's source
    /// is under `kernel/src/arch/<arch>/`. None: it is for every architecture.
    pub arch: Option<Arch>,
}

/// A VM config file in `configs/vms/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmFile {
    /// Path as written in `vm_configs` (relative to the config root).
    pub rel: String,
    pub path: PathBuf,
    /// The architecture it is for, when it can be told.
    pub arch: Option<Arch>,
}

/// The allowed values, read once at start.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    /// Targets the kernel can be built for.
    pub targets: Vec<String>,
    /// Bare-metal targets of the toolchain without a kernel port (named in help).
    pub unported_targets: Vec<String>,
    pub features: Vec<Feature>,
    pub vm_files: Vec<VmFile>,
    /// Guest crates under `guests/` (for `kernel_path = "guest:<crate>"`).
    pub guest_crates: Vec<String>,
}

impl Truth {
    /// Reads everything: `repo` is the workspace (toolchain, kernel), `config_root`
    /// the directory with `configs/` (usually the same).
    pub fn load(repo: &Path, config_root: &Path, guest_crates: &[String]) -> Result<Truth> {
        let (targets, unported_targets) = kernel_targets(repo)?;
        Ok(Truth {
            targets,
            unported_targets,
            features: kernel_features(repo)?,
            vm_files: vm_files(config_root),
            guest_crates: guest_crates.to_vec(),
        })
    }

    /// Architectures with a kernel port (those of the supported targets).
    pub fn arches(&self) -> Vec<Arch> {
        ARCHES
            .into_iter()
            .filter(|a| self.targets.iter().any(|t| Arch::of_target(t) == Some(*a)))
            .collect()
    }
}

/// The bare-metal targets of `rust-toolchain.toml`, split into those whose
/// architecture has a kernel port and those without one.
pub fn kernel_targets(repo: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let file = repo.join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", file.display()))?;
    let listed: Vec<String> = doc
        .get("toolchain")
        .and_then(|t| t.get("targets"))
        .and_then(|t| t.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).map(str::to_string))
        .into_iter()
        .flatten()
        .filter(|t| t.contains("-none"))
        .collect();
    let arch_dir = repo.join("kernel/src/arch");
    Ok(listed
        .into_iter()
        .partition(|t| Arch::of_target(t).is_some_and(|a| arch_dir.join(a.name()).is_dir())))
}

/// The kernel crate's features (without `default`), with the comment above each in
/// its Cargo.toml as help.
pub fn kernel_features(repo: &Path) -> Result<Vec<Feature>> {
    let meta = MetadataCommand::new()
        .cargo_path(cargo())
        .manifest_path(repo.join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("`cargo metadata` failed")?;
    let pkg = meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == KERNEL_CRATE)
        .with_context(|| format!("no crate `{KERNEL_CRATE}` in the workspace"))?;
    let manifest = std::fs::read_to_string(&pkg.manifest_path).unwrap_or_default();
    let comments = feature_comments(&manifest);
    let src = repo.join("kernel/src");
    let mut sources = Vec::new();
    rust_sources(&src, &mut sources);
    Ok(pkg
        .features
        .keys()
        .filter(|f| f.as_str() != "default")
        .map(|name| Feature {
            help: comments
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, h)| h.clone())
                .unwrap_or_default(),
            arch: feature_arch(name, &src, &sources),
            name: name.clone(),
        })
        .collect())
}

/// Every `.rs` file under `dir`, with its text.
fn rust_sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                out.push((p, text));
            }
        }
    }
}

/// The architecture whose directory `src/arch/<arch>/` holds every use of feature
/// `name` in `sources` (files under `src`); None when it is used elsewhere or nowhere.
pub fn feature_arch(name: &str, src: &Path, sources: &[(PathBuf, String)]) -> Option<Arch> {
    let needle = format!("feature = \"{name}\"");
    let mut arch = None;
    for (path, _) in sources.iter().filter(|(_, t)| t.contains(&needle)) {
        let rel = path.strip_prefix(src).ok()?;
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        let here = match (parts.next().as_deref(), parts.next()) {
            (Some("arch"), Some(a)) => ARCHES.into_iter().find(|x| x.name() == a)?,
            _ => return None,
        };
        if arch.is_some_and(|a| a != here) {
            return None;
        }
        arch = Some(here);
    }
    arch
}

/// The comment lines above each key of `[features]` in a Cargo.toml.
pub fn feature_comments(manifest: &str) -> Vec<(String, String)> {
    let Ok(doc) = manifest.parse::<DocumentMut>() else {
        return Vec::new();
    };
    let Some(table) = doc.get("features").and_then(|f| f.as_table()) else {
        return Vec::new();
    };
    table
        .iter()
        .map(|(name, _)| {
            let prefix = table
                .key(name)
                .and_then(|k| k.leaf_decor().prefix())
                .and_then(|p| p.as_str())
                .unwrap_or("");
            (name.to_string(), comment_text(prefix))
        })
        .collect()
}

/// The text of `#` comment lines, joined into one paragraph.
fn comment_text(raw: &str) -> String {
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix('#'))
        .map(str::trim)
        .collect();
    lines.join(" ").trim().to_string()
}

/// The VM configs in `<config_root>/configs/vms/`, sorted by name.
pub fn vm_files(config_root: &Path) -> Vec<VmFile> {
    let dir = config_root.join("configs/vms");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            VmFile {
                rel: format!("configs/vms/{name}"),
                arch: infer_arch(&path, &text),
                path,
            }
        })
        .collect()
}

/// The architecture of a VM config: from its file name
/// (`<os>-<arch>-<board_or_cpu>-smp<N>.toml`), else from its kernel image's header,
/// else from the emulated devices only one architecture has.
pub fn infer_arch(path: &Path, text: &str) -> Option<Arch> {
    if let Some(a) = arch_of_name(path) {
        return Some(a);
    }
    let doc: DocumentMut = text.parse().ok()?;
    let kernel = doc.get("kernel")?;
    let from_image = kernel
        .get("kernel_path")
        .and_then(|p| p.as_str())
        .filter(|p| !p.starts_with("guest:"))
        .and_then(|p| {
            let file = path.parent().unwrap_or(Path::new(".")).join(p);
            arch_of_image(&read_head(&file)?)
        });
    from_image.or_else(|| arch_of_devices(&doc))
}

fn arch_of_name(path: &Path) -> Option<Arch> {
    let stem = path.file_stem()?.to_str()?;
    stem.split('-').find_map(|part| match part {
        "aarch64" | "arm64" => Some(Arch::Aarch64),
        "riscv64" => Some(Arch::Riscv64),
        "x86_64" | "x86" | "amd64" => Some(Arch::X86_64),
        _ => None,
    })
}

fn read_head(file: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(file)
        .ok()?
        .take(0x400)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
}

/// The architecture an ELF file, arm64/RISC-V Image or x86 bzImage is for.
pub fn arch_of_image(head: &[u8]) -> Option<Arch> {
    if head.starts_with(b"\x7fELF") {
        let machine = u16::from_le_bytes([*head.get(18)?, *head.get(19)?]);
        return match machine {
            183 => Some(Arch::Aarch64),
            243 => Some(Arch::Riscv64),
            62 => Some(Arch::X86_64),
            _ => None,
        };
    }
    match head.get(56..60) {
        Some(b"ARM\x64") => return Some(Arch::Aarch64),
        Some(b"RSC\x05") => return Some(Arch::Riscv64),
        _ => {}
    }
    (head.get(0x202..0x206) == Some(b"HdrS")).then_some(Arch::X86_64)
}

/// GIC partial-passthrough devices mean aarch64, a PLIC one riscv64.
fn arch_of_devices(doc: &DocumentMut) -> Option<Arch> {
    let devices = doc.get("devices")?.get("emu_devices")?.as_array()?;
    devices
        .iter()
        .find_map(|d| match d.as_array()?.get(4)?.as_integer()? {
            0x20..=0x22 => Some(Arch::Aarch64),
            0x30 => Some(Arch::Riscv64),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    #[test]
    fn targets_are_those_with_a_kernel_port() {
        let (ported, unported) = kernel_targets(repo()).unwrap();
        assert!(ported.contains(&"aarch64-unknown-none-softfloat".to_string()));
        for t in &ported {
            let arch = Arch::of_target(t).unwrap();
            assert!(repo().join("kernel/src/arch").join(arch.name()).is_dir());
        }
        for t in &unported {
            let dir = Arch::of_target(t).map(|a| repo().join("kernel/src/arch").join(a.name()));
            assert!(!dir.is_some_and(|d| d.is_dir()), "{t}");
        }
    }

    #[test]
    fn features_come_from_the_kernel_crate() {
        let features = kernel_features(repo()).unwrap();
        let semi = features.iter().find(|f| f.name == "semihosting-exit");
        let semi = semi.expect("the kernel has a semihosting-exit feature");
        assert!(semi.help.contains("semihosting"), "{}", semi.help);
        assert!(features.iter().all(|f| f.name != "default"));
    }

    #[test]
    fn feature_comments_are_read() {
        let m = "[features]\ndefault = []\n# Line one\n# line two.\nfoo = []\nbar = []\n";
        let c = feature_comments(m);
        assert_eq!(c[1], ("foo".into(), "Line one line two.".into()));
        assert_eq!(c[2], ("bar".into(), String::new()));
    }

    #[test]
    fn arch_from_name_image_or_devices() {
        let p = Path::new("/nowhere/linux-riscv64-qemu-smp1.toml");
        assert_eq!(infer_arch(p, ""), Some(Arch::Riscv64));
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18] = 183;
        assert_eq!(arch_of_image(&elf), Some(Arch::Aarch64));
        let mut image = vec![0u8; 64];
        image[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(arch_of_image(&image), Some(Arch::Aarch64));
        assert_eq!(arch_of_image(b"junk"), None);
        let text = "[kernel]\nkernel_path = \"guest:x\"\n[devices]\nemu_devices = [[\"p\", 0, 1, 0, 0x30, []]]\n";
        assert_eq!(
            infer_arch(Path::new("/x/myvm.toml"), text),
            Some(Arch::Riscv64)
        );
        assert_eq!(infer_arch(Path::new("/x/myvm.toml"), "x = 1"), None);
    }

    #[test]
    fn vm_files_of_the_repo() {
        let files = vm_files(repo());
        let a = files
            .iter()
            .find(|f| f.rel == "configs/vms/testguest-aarch64-qemu-smp2-a.toml")
            .unwrap();
        assert_eq!(a.arch, Some(Arch::Aarch64));
        assert!(a.path.is_file());
    }
}
