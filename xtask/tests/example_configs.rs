//! The AxVisor-style example VM configs in `configs/vms/` pass `cargo xtask check`
//! (the built xtask binary) on their boards, next to the test VM they boot with in
//! their scenarios; a broken variant of each is refused with file, key and reason.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cargo xtask check --config BOARD --vm ...`: (success, output).
fn check(board: &str, vms: &[&Path]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["check", "--config", board])
        .current_dir(repo_root());
    for vm in vms {
        cmd.arg("--vm").arg(vm);
    }
    let out = cmd.output().expect("cannot run xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn qemu_present(arch: &str) -> bool {
    Command::new(format!("qemu-system-{arch}"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A copy of `config` with `from` replaced by `to`, in the temporary directory (the
/// examples name no files, only `guest:` crates); removed when dropped.
struct Variant(PathBuf);

impl Variant {
    fn new(config: &str, from: &str, to: &str) -> Self {
        let src = repo_root().join(config);
        let text = std::fs::read_to_string(&src).unwrap();
        assert!(text.contains(from), "{config} has no {from:?}");
        let path = std::env::temp_dir().join(format!(
            "tmp-{}-{}",
            std::process::id(),
            src.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&path, text.replace(from, to)).unwrap();
        Variant(path)
    }
}

impl Drop for Variant {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn riscv64_sbi_only_vm() {
    let root = repo_root();
    let sbi = root.join("configs/vms/testguest-riscv64-qemu-smp2-sbi.toml");
    let b = root.join("configs/vms/testguest-riscv64-qemu-smp2-b.toml");
    let (ok, out) = check("configs/board/qemu-riscv64.toml", &[&sbi, &b]);
    assert!(ok, "{out}");
    assert!(out.contains("2 VM config(s) are valid"), "{out}");
    assert!(!out.contains("warning"), "{out}");
    // A console without the PLIC its interrupt needs is refused, as at boot.
    let bad = Variant::new(
        "configs/vms/testguest-riscv64-qemu-smp2-sbi.toml",
        "emu_devices = []",
        "emu_devices = [[\"uart\", 0x1000_0000, 0x100, 10, 0x2, []]]",
    );
    let (ok, out) = check("configs/board/qemu-riscv64.toml", &[&bad.0]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("devices.emu_devices[0]: console \"uart\" needs an emulated PLIC"),
        "{out}"
    );
}

#[test]
fn aarch64_device_tree_passthrough_vm() {
    let root = repo_root();
    let dt = root.join("configs/vms/testguest-aarch64-qemu-smp2-dtpass.toml");
    let b = root.join("configs/vms/testguest-aarch64-qemu-smp2-b.toml");
    let (ok, out) = check("configs/board/qemu-aarch64.toml", &[&dt, &b]);
    assert!(ok, "{out}");
    assert!(out.contains("2 VM config(s) are valid"), "{out}");
    let bad = Variant::new(
        "configs/vms/testguest-aarch64-qemu-smp2-dtpass.toml",
        "[\"/pl031@9010000\"],",
        "[\"/pl011@9000000\"],",
    );
    let (ok, out) = check("configs/board/qemu-aarch64.toml", &[&bad.0]);
    if qemu_present("aarch64") {
        // Resolved in the device tree QEMU generates for the board.
        assert!(!out.contains("not checked on the host"), "{out}");
        assert!(!ok, "{out}");
        assert!(
            out.contains(
                "devices.passthrough_devices[0]: /pl011@9000000 is the hypervisor's console"
            ),
            "{out}"
        );
    } else {
        // Without QEMU the board has no device tree to check against: a warning
        // says so, and the hypervisor resolves the path at boot.
        assert!(ok, "{out}");
        assert!(out.contains("not checked on the host"), "{out}");
    }
}

#[test]
fn aarch64_ivc_vms() {
    let root = repo_root();
    let vm = |s: &str| root.join(format!("configs/vms/testguest-aarch64-qemu-ivc-{s}.toml"));
    let board = "configs/board/qemu-aarch64.toml";
    let (ok, out) = check(board, &[&vm("a"), &vm("b"), &vm("c")]);
    assert!(ok, "{out}");
    assert!(out.contains("3 VM config(s) are valid"), "{out}");
    // One member alone: the channel is named by one VM only.
    let (ok, out) = check(board, &[&vm("a")]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("devices.channels[0].name: channel \"link\" is named by this VM only"),
        "{out}"
    );
    // Members that disagree on the size.
    let bigger = Variant::new(
        "configs/vms/testguest-aarch64-qemu-ivc-b.toml",
        "size = 0x1_0000",
        "size = 0x2_0000",
    );
    let (ok, out) = check(board, &[&vm("a"), &bigger.0]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "devices.channels[0].size: channel \"link\" has size 0x20000 here but 0x10000 in"
        ),
        "{out}"
    );
}
