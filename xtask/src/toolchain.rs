//! The Rust toolchain the build uses: before the first `cargo build`, xtask checks that
//! the active toolchain has the targets and components `rust-toolchain.toml` lists
//! (rustup installs a pinned toolchain with them only when it installs the toolchain
//! itself, not when that toolchain was already there without them). Missing ones are
//! added with `rustup`; without rustup the exact command is printed.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use crate::host_tools::find_on_path;

/// What `rust-toolchain.toml` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Required {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

/// Reads `[toolchain] targets` and `components` of a `rust-toolchain.toml`.
pub fn parse_required(text: &str, file: &Path) -> Result<Required> {
    let doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", file.display()))?;
    let list = |key: &str| -> Result<Vec<String>> {
        let Some(item) = doc.get("toolchain").and_then(|t| t.get(key)) else {
            return Ok(Vec::new());
        };
        let Some(arr) = item.as_array() else {
            bail!(
                "{}: toolchain.{key}: not an array of strings",
                file.display()
            );
        };
        arr.iter()
            .map(|v| {
                v.as_str().map(str::to_string).with_context(|| {
                    format!(
                        "{}: toolchain.{key}: not an array of strings",
                        file.display()
                    )
                })
            })
            .collect()
    };
    Ok(Required {
        targets: list("targets")?,
        components: list("components")?,
    })
}

/// What the active toolchain lacks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.components.is_empty()
    }

    /// The rustup commands that add what is missing (`toolchain`: `--toolchain NAME`).
    pub fn commands(&self, toolchain: Option<&str>) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for (kind, names) in [("target", &self.targets), ("component", &self.components)] {
            if names.is_empty() {
                continue;
            }
            let mut c: Vec<String> = vec!["rustup".into(), kind.into(), "add".into()];
            if let Some(t) = toolchain {
                c.extend(["--toolchain".into(), t.into()]);
            }
            c.extend(names.iter().cloned());
            out.push(c);
        }
        out
    }
}

/// Whether component `name` is present in `sysroot` (of a toolchain for `host`), by
/// the files it installs. Components this does not know are taken as present.
fn has_component(sysroot: &Path, host: &str, name: &str) -> bool {
    let rustlib = sysroot.join("lib/rustlib");
    match name.trim_end_matches("-preview") {
        "rust-src" => rustlib.join("src/rust/library/core/src/lib.rs").is_file(),
        "llvm-tools" => rustlib.join(host).join("bin/llvm-objcopy").is_file(),
        "rustfmt" => sysroot.join("bin/rustfmt").is_file(),
        "clippy" => sysroot.join("bin/cargo-clippy").is_file(),
        "rust-std" => rustlib.join(host).join("lib").is_dir(),
        "rust-docs" => sysroot.join("share/doc/rust/html").is_dir(),
        "rust-analyzer" => sysroot.join("bin/rust-analyzer").is_file(),
        "miri" => sysroot.join("bin/miri").is_file(),
        _ => true,
    }
}

/// Whether `sysroot` has the standard library for `target`.
fn has_target(sysroot: &Path, target: &str) -> bool {
    let lib = sysroot.join("lib/rustlib").join(target).join("lib");
    std::fs::read_dir(&lib)
        .map(|d| {
            d.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("libcore-") && n.ends_with(".rlib")
            })
        })
        .unwrap_or(false)
}

/// What of `req` (plus `extra_targets`) `sysroot` lacks.
pub fn missing(sysroot: &Path, host: &str, req: &Required, extra_targets: &[&str]) -> Missing {
    let mut targets: Vec<String> = Vec::new();
    let wanted = req
        .targets
        .iter()
        .map(String::as_str)
        .chain(extra_targets.iter().copied());
    for t in wanted {
        if t != host && !has_target(sysroot, t) && !targets.iter().any(|x| x == t) {
            targets.push(t.to_string());
        }
    }
    let components = req
        .components
        .iter()
        .filter(|c| !has_component(sysroot, host, c))
        .cloned()
        .collect();
    Missing {
        targets,
        components,
    }
}

/// The active toolchain as rustc in `root` reports it: sysroot and host triple.
fn active_toolchain(root: &Path) -> Result<(PathBuf, String)> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new(&rustc)
            .args(args)
            .current_dir(root)
            .output()
            .with_context(|| format!("cannot run rustc {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "rustc {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?.trim());
    let host = run(&["-vV"])?
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .context("rustc -vV names no host")?;
    Ok((sysroot, host))
}

/// The rustup name of the toolchain at `sysroot` (`.../toolchains/<name>`), if rustup's.
pub fn rustup_toolchain_name(sysroot: &Path) -> Option<String> {
    let parent = sysroot.parent()?;
    (parent.file_name()? == "toolchains")
        .then(|| sysroot.file_name()?.to_str().map(str::to_string))
        .flatten()
}

/// Targets already checked in this process (each build checks its own target once).
static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes sure the active toolchain has what `rust-toolchain.toml` lists and `target`;
/// adds what is missing with rustup (saying what it runs), or fails with the command.
pub fn ensure(root: &Path, target: Option<&str>) -> Result<()> {
    let key = target.unwrap_or("").to_string();
    if let Ok(done) = CHECKED.lock() {
        if done.contains(&key) {
            return Ok(());
        }
    }
    let file = root.join("rust-toolchain.toml");
    let req = match std::fs::read_to_string(&file) {
        Ok(text) => parse_required(&text, &file)?,
        Err(_) => Required::default(),
    };
    let (sysroot, host) = active_toolchain(root)?;
    let extra: Vec<&str> = target.into_iter().collect();
    let miss = missing(&sysroot, &host, &req, &extra);
    if !miss.is_empty() {
        add_missing(root, &sysroot, &miss)?;
        let still = missing(&sysroot, &host, &req, &extra);
        if !still.is_empty() {
            bail!(
                "the toolchain at {} still lacks {} after rustup; add them with:\n    {}",
                sysroot.display(),
                describe(&still),
                shown_commands(&still, rustup_toolchain_name(&sysroot).as_deref())
            );
        }
    }
    if let Ok(mut done) = CHECKED.lock() {
        done.push(key);
    }
    Ok(())
}

fn describe(m: &Missing) -> String {
    let mut parts = Vec::new();
    if !m.targets.is_empty() {
        parts.push(format!("target(s) {}", m.targets.join(", ")));
    }
    if !m.components.is_empty() {
        parts.push(format!("component(s) {}", m.components.join(", ")));
    }
    parts.join(" and ")
}

fn shown_commands(m: &Missing, toolchain: Option<&str>) -> String {
    m.commands(toolchain)
        .iter()
        .map(|c| c.join(" "))
        .collect::<Vec<_>>()
        .join("\n    ")
}

fn add_missing(root: &Path, sysroot: &Path, miss: &Missing) -> Result<()> {
    let name = rustup_toolchain_name(sysroot);
    let rustup = match (&name, find_on_path("rustup")) {
        (Some(_), Some(r)) => r,
        _ => bail!(
            "the Rust toolchain at {} lacks {} that rust-toolchain.toml lists and the build \
             needs, and rustup (which adds them) is not {}; add them with:\n    {}",
            sysroot.display(),
            describe(miss),
            if name.is_none() {
                "what installed this toolchain"
            } else {
                "on PATH"
            },
            shown_commands(miss, name.as_deref())
        ),
    };
    println!(
        "xtask: the Rust toolchain {} lacks {} (rust-toolchain.toml lists them)",
        name.as_deref().unwrap_or("?"),
        describe(miss)
    );
    for c in miss.commands(name.as_deref()) {
        println!("xtask: running {}", c.join(" "));
        let status = Command::new(&rustup)
            .args(&c[1..])
            .current_dir(root)
            .status()
            .context("cannot run rustup")?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}; rustup said why above). The build needs what \
                 rust-toolchain.toml lists; once rustup can add it (e.g. with its \
                 download server reachable), run:\n    {}",
                c.join(" "),
                shown_commands(miss, name.as_deref())
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    fn sysroot(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("xtask-toolchain-{tag}-{}", std::process::id()))
            .join("toolchains/1.95.0-x86_64-unknown-linux-gnu");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("lib/rustlib").join(HOST).join("lib")).unwrap();
        std::fs::write(
            dir.join("lib/rustlib")
                .join(HOST)
                .join("lib/libcore-1234.rlib"),
            "",
        )
        .unwrap();
        dir
    }

    fn add_target(sysroot: &Path, t: &str) {
        let lib = sysroot.join("lib/rustlib").join(t).join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libcore-abcd.rlib"), "").unwrap();
    }

    fn req() -> Required {
        let text = r#"
[toolchain]
channel = "1.95.0"
components = ["rust-src", "llvm-tools", "rustfmt", "clippy"]
targets = ["aarch64-unknown-none-softfloat", "riscv64gc-unknown-none-elf"]
"#;
        parse_required(text, Path::new("rust-toolchain.toml")).unwrap()
    }

    #[test]
    fn parses_the_repositorys_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let file = root.join("rust-toolchain.toml");
        let r = parse_required(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
        assert!(r
            .targets
            .iter()
            .any(|t| t == "aarch64-unknown-none-softfloat"));
        assert!(r.components.iter().any(|c| c == "rust-src"));
        let bad = parse_required("[toolchain]\ntargets = \"x\"\n", Path::new("f.toml"));
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("f.toml: toolchain.targets"));
    }

    #[test]
    fn a_bare_toolchain_lacks_everything_listed() {
        let s = sysroot("bare");
        let m = missing(&s, HOST, &req(), &["x86_64-unknown-none"]);
        assert_eq!(
            m.targets,
            [
                "aarch64-unknown-none-softfloat",
                "riscv64gc-unknown-none-elf",
                "x86_64-unknown-none"
            ]
        );
        assert_eq!(
            m.components,
            ["rust-src", "llvm-tools", "rustfmt", "clippy"]
        );
        assert_eq!(
            m.commands(Some("1.95.0-x86_64-unknown-linux-gnu")),
            [
                "rustup target add --toolchain 1.95.0-x86_64-unknown-linux-gnu \
                 aarch64-unknown-none-softfloat riscv64gc-unknown-none-elf x86_64-unknown-none"
                    .split(' ')
                    .collect::<Vec<_>>(),
                "rustup component add --toolchain 1.95.0-x86_64-unknown-linux-gnu \
                 rust-src llvm-tools rustfmt clippy"
                    .split(' ')
                    .collect::<Vec<_>>(),
            ]
        );
        assert_eq!(
            rustup_toolchain_name(&s).as_deref(),
            Some("1.95.0-x86_64-unknown-linux-gnu")
        );
        assert_eq!(rustup_toolchain_name(Path::new("/usr")), None);
    }

    #[test]
    fn installed_parts_are_not_missing() {
        let s = sysroot("full");
        add_target(&s, "aarch64-unknown-none-softfloat");
        // A target directory without its standard library does not count.
        std::fs::create_dir_all(s.join("lib/rustlib/riscv64gc-unknown-none-elf/lib")).unwrap();
        // Directories left behind without the files do not count.
        std::fs::create_dir_all(s.join("lib/rustlib/src/rust/library/core/src")).unwrap();
        let m = missing(&s, HOST, &req(), &[]);
        assert!(m.components.iter().any(|c| c == "rust-src"), "{m:?}");
        std::fs::write(s.join("lib/rustlib/src/rust/library/core/src/lib.rs"), "").unwrap();
        std::fs::write(s.join("bin/rustfmt"), "").unwrap();
        let m = missing(&s, HOST, &req(), &["aarch64-unknown-none-softfloat", HOST]);
        assert_eq!(m.targets, ["riscv64gc-unknown-none-elf"]);
        assert_eq!(m.components, ["llvm-tools", "clippy"]);
        add_target(&s, "riscv64gc-unknown-none-elf");
        let bin = s.join("lib/rustlib").join(HOST).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("llvm-objcopy"), "").unwrap();
        std::fs::write(s.join("bin/cargo-clippy"), "").unwrap();
        let m = missing(&s, HOST, &req(), &[]);
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(m.commands(None), Vec::<Vec<String>>::new());
    }

    #[test]
    fn the_active_toolchain_has_its_host_std() {
        // The toolchain running these tests is the one the build uses.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let (sysroot, host) = active_toolchain(root).unwrap();
        assert!(has_target(&sysroot, &host), "{}", sysroot.display());
        assert!(!has_target(&sysroot, "no-such-target-none"));
    }
}
