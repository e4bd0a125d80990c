//! Host tools xtask needs (QEMU): found on PATH, or installed from Debian packages
//! when running as root with apt-get, or else the exact command to run is printed.
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

fn apt(args: &[&str]) -> Result<()> {
    println!("xtask: running apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
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
    if !is_root() || find_on_path("apt-get").is_none() {
        bail!("{binary} not found on PATH (install it with `{cmd}`)");
    }
    println!(
        "xtask: running as root with apt-get: installing {} now",
        qemu_packages(arch).join(" ")
    );
    let mut install: Vec<&str> = vec!["install", "-y", "--no-install-recommends"];
    install.extend(qemu_packages(arch));
    if !apt_lists_present() {
        apt(&["update"])?;
    }
    if apt(&install).is_err() {
        apt(&["update"])?;
        apt(&install)?;
    }
    find_on_path(&binary).with_context(|| format!("{binary} still not found after installing"))
}

/// Makes sure `file` exists, installing Debian package `package` (which ships it)
/// when we are root with apt-get; otherwise says how to install it.
pub fn ensure_package_file(file: &Path, package: &str) -> Result<()> {
    if file.is_file() {
        return Ok(());
    }
    let cmd = format!("apt-get install -y --no-install-recommends {package}");
    if !is_root() || find_on_path("apt-get").is_none() {
        bail!(
            "{} not found: install it with `sudo apt-get update && sudo {cmd}`",
            file.display()
        );
    }
    println!(
        "xtask: {} is missing: installing {package} now",
        file.display()
    );
    let install = ["install", "-y", "--no-install-recommends", package];
    if !apt_lists_present() {
        apt(&["update"])?;
    }
    if apt(&install).is_err() {
        apt(&["update"])?;
        apt(&install)?;
    }
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
    fn finds_programs_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-no-such-program-xyz").is_none());
    }
}
