//! Host tools xtask needs (QEMU): found on PATH, or installed from Debian packages
//! with apt-get when running as root or with password-less sudo (CI runners), or else
//! the exact command to run is printed.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::Arch;

/// Debian packages that provide `qemu-system-<arch>` (plus its firmware/data files).
pub fn qemu_packages(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Aarch64 => &["qemu-system-arm", "qemu-system-data", "u-boot-qemu"],
        Arch::Riscv64 => &["qemu-system-misc", "qemu-system-data"],
        Arch::X86_64 => &["qemu-system-x86", "qemu-system-data"],
    }
}

/// The command that installs QEMU for `arch`.
pub fn install_command(arch: Arch) -> String {
    format!(
        "apt-get install -y --no-install-recommends {}",
        qemu_packages(arch).join(" ")
    )
}

/// An executable called `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether apt has package lists (after `apt-get update`).
fn apt_lists_present() -> bool {
    std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
        })
        .unwrap_or(false)
}

/// How apt-get can be run as root: directly (we are root), through `sudo -n`
/// (password-less sudo), or not at all. Also None without apt-get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AsRoot {
    Direct,
    Sudo,
}

fn as_root() -> Option<AsRoot> {
    find_on_path("apt-get")?;
    if is_root() {
        return Some(AsRoot::Direct);
    }
    let sudo_ok = find_on_path("sudo").is_some()
        && Command::new("sudo")
            .args(["-n", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    sudo_ok.then_some(AsRoot::Sudo)
}

/// The command line that runs `apt-get ARGS` as root.
fn apt_command(how: AsRoot, args: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = match how {
        AsRoot::Direct => vec![],
        AsRoot::Sudo => vec![
            "sudo".into(),
            "-n".into(),
            "DEBIAN_FRONTEND=noninteractive".into(),
        ],
    };
    c.push("apt-get".into());
    c.extend(args.iter().map(|a| a.to_string()));
    c
}

fn apt(how: AsRoot, args: &[&str]) -> Result<()> {
    let cmd = apt_command(how, args);
    println!("xtask: running {}", cmd.join(" "));
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Makes sure `qemu-system-<arch>` can be run; installs it when we can.
pub fn ensure_qemu(arch: Arch) -> Result<PathBuf> {
    let binary = format!("qemu-system-{}", arch.name());
    if let Some(p) = find_on_path(&binary) {
        return Ok(p);
    }
    let cmd = install_command(arch);
    eprintln!(
        "xtask: {binary} is not installed. Install it with:\n    sudo apt-get update && sudo {cmd}"
    );
    let Some(how) = as_root() else {
        bail!("{binary} not found on PATH (install it with `{cmd}`)");
    };
    println!(
        "xtask: apt-get {}: installing {} now",
        match how {
            AsRoot::Direct => "as root",
            AsRoot::Sudo => "with password-less sudo",
        },
        qemu_packages(arch).join(" ")
    );
    let mut install: Vec<&str> = vec!["install", "-y", "--no-install-recommends"];
    install.extend(qemu_packages(arch));
    install_packages(how, &install)?;
    find_on_path(&binary).with_context(|| format!("{binary} still not found after installing"))
}

/// `apt-get install ...` (`install` holds the arguments), with an `apt-get update`
/// first when there are no package lists, and once more when the install fails.
fn install_packages(how: AsRoot, install: &[&str]) -> Result<()> {
    if !apt_lists_present() {
        apt(how, &["update"])?;
    }
    if apt(how, install).is_err() {
        apt(how, &["update"])?;
        apt(how, install)?;
    }
    Ok(())
}

/// Makes sure `file` exists, installing Debian package `package` (which ships it)
/// when we are root (or have password-less sudo) with apt-get; otherwise says how to
/// install it.
pub fn ensure_package_file(file: &Path, package: &str) -> Result<()> {
    if file.is_file() {
        return Ok(());
    }
    let cmd = format!("apt-get install -y --no-install-recommends {package}");
    let Some(how) = as_root() else {
        bail!(
            "{} not found: install it with `sudo apt-get update && sudo {cmd}`",
            file.display()
        );
    };
    println!(
        "xtask: {} is missing: installing {package} now",
        file.display()
    );
    install_packages(how, &["install", "-y", "--no-install-recommends", package])?;
    if !file.is_file() {
        bail!(
            "{} still missing after installing {package}",
            file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_command_names_the_packages() {
        assert_eq!(
            install_command(Arch::Aarch64),
            "apt-get install -y --no-install-recommends qemu-system-arm qemu-system-data u-boot-qemu"
        );
        assert!(install_command(Arch::Riscv64).contains("qemu-system-misc"));
        assert!(install_command(Arch::X86_64).contains("qemu-system-x86"));
    }

    #[test]
    fn apt_runs_as_root_directly_or_through_sudo() {
        assert_eq!(
            apt_command(AsRoot::Direct, &["install", "-y", "x"]).join(" "),
            "apt-get install -y x"
        );
        assert_eq!(
            apt_command(AsRoot::Sudo, &["update"]).join(" "),
            "sudo -n DEBIAN_FRONTEND=noninteractive apt-get update"
        );
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-no-such-program-xyz").is_none());
    }
}
