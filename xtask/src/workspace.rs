//! The repository as cargo sees it (via `cargo metadata`), and how xtask runs cargo.
use std::ffi::OsString;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use cargo_metadata::{Message, MetadataCommand};

/// What xtask needs to know about the workspace.
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// Guest crates: packages at `guests/<name>/Cargo.toml` whose name is `<name>`.
    pub guest_crates: Vec<String>,
}

/// The cargo that runs us (`$CARGO`), so nested builds use the same toolchain.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

impl Workspace {
    /// Reads the workspace this xtask belongs to.
    pub fn load() -> Result<Workspace> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let meta = MetadataCommand::new()
            .cargo_path(cargo())
            .manifest_path(&manifest)
            .no_deps()
            .exec()
            .context("`cargo metadata` failed")?;
        let root: PathBuf = meta.workspace_root.clone().into();
        let guests_dir = root.join("guests");
        let mut guest_crates: Vec<String> = meta
            .packages
            .iter()
            .filter(|p| {
                let dir = p.manifest_path.parent().map(|d| d.as_std_path());
                dir == Some(guests_dir.join(p.name.as_str()).as_path())
            })
            .map(|p| p.name.to_string())
            .collect();
        guest_crates.sort();
        Ok(Workspace {
            target_dir: meta.target_directory.clone().into(),
            root,
            guest_crates,
        })
    }

    /// Where `cargo xtask build` puts the outputs for a board.
    pub fn board_dir(&self, board: &str) -> PathBuf {
        self.target_dir.join("hv").join(board)
    }
}

/// Runs `cargo build` with JSON messages and returns the executable of binary `bin`.
/// Compiler output goes to the terminal as usual. The toolchain is checked first (its
/// targets and components, see [`crate::toolchain::ensure`]).
pub fn cargo_build(
    root: &Path,
    args: &[String],
    envs: &[(&str, String)],
    bin: &str,
) -> Result<PathBuf> {
    let target = args
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    crate::toolchain::ensure(root, target)?;
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let shown = format!("cargo build {}", args.join(" "));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let stdout = child.stdout.take().context("no stdout from cargo")?;
    let mut exe = None;
    for msg in Message::parse_stream(BufReader::new(stdout)) {
        if let Ok(Message::CompilerArtifact(a)) = msg {
            if a.target.name == bin {
                if let Some(path) = a.executable {
                    exe = Some(PathBuf::from(path));
                }
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    exe.with_context(|| format!("`{shown}` produced no executable named {bin}"))
}

/// Builds `package`'s binary of the same name in the host's dev profile and returns
/// its path: a part of xtask that most commands do not need, so that `cargo xtask
/// run` does not compile it (`what` says what it is). The first build says so on a
/// line of its own; later ones are quiet and quick (cargo finds it current).
pub fn build_helper(root: &Path, package: &str, what: &str) -> Result<PathBuf> {
    let ws = Workspace::load()?;
    let mut args = vec!["-p".to_string(), package.to_string()];
    if ws.target_dir.join("debug").join(package).exists() {
        args.push("--quiet".to_string());
    } else {
        println!("xtask: building {package}, {what}, on first use: cargo build -p {package}");
    }
    cargo_build(root, &args, &[], package)
}
