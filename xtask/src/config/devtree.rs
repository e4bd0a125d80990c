//! Device-tree passthrough (`passthrough_devices = [["/pl031@9010000"]]`) checked on
//! the host: the paths are resolved against the board's device tree with the rule the
//! hypervisor applies at boot (`vmconfig::devtree`), and the windows they give must
//! not overlap the VM's memory or devices (here), the board's RAM or another VM's
//! passthrough (`check::check_passthrough`).
//!
//! The board's device tree: `host_dtb` in the board file, else for a QEMU board the
//! one QEMU generates (`-machine <machine>,dumpdtb=FILE`), else `[image.dtb]` when it
//! is a local file. Without one the paths are not checked here (a warning says so);
//! the hypervisor still refuses a VM whose paths do not resolve.
use std::path::PathBuf;
use std::process::{Command, Stdio};

use vmconfig::devtree::Tree;
use vmconfig::PassDevice;

use super::board::Board;
use super::diag::{KeyPath, Report};
use super::image::FileSource;
use super::range::Range;
use super::vm::Vm;

/// Resolves every VM's device-tree paths and checks the windows against the VM.
pub fn check(board: &Board, vms: &mut [Vm], report: &mut Report) {
    if vms.iter().all(|v| v.dt_passthrough.is_empty()) {
        return;
    }
    let blob = match board_dtb(board) {
        Ok(b) => b,
        Err(why) => {
            for vm in vms.iter() {
                for p in &vm.dt_passthrough {
                    report.push(vm.src.warning(
                        &p.key,
                        format!(
                            "{} not checked on the host: {why}; the hypervisor resolves it at boot",
                            p.path
                        ),
                    ));
                }
            }
            return;
        }
    };
    let tree = match Tree::new(&blob) {
        Ok(t) => t,
        Err(why) => {
            if let Some(vm) = vms.iter().find(|v| !v.dt_passthrough.is_empty()) {
                report.push(vm.src.error(
                    &KeyPath::new("devices").key("passthrough_devices"),
                    format!("board {}'s device tree: {why}", board.name),
                ));
            }
            return;
        }
    };
    for vm in vms.iter_mut() {
        vm.dt_windows = resolve(&tree, vm, report);
    }
}

/// The windows of `vm`'s paths; every problem reported at its entry.
pub fn resolve(tree: &Tree<'_>, vm: &Vm, report: &mut Report) -> Vec<PassDevice> {
    let excluded: Vec<&str> = vm.excluded.iter().map(|e| e.path.as_str()).collect();
    let mut out = Vec::new();
    for p in &vm.dt_passthrough {
        let windows = match tree.passthrough(&p.path, &excluded) {
            Ok(w) => w,
            Err(why) => {
                report.push(vm.src.error(&p.key, why));
                continue;
            }
        };
        for w in windows {
            let dev = PassDevice {
                key: p.key.clone(),
                name: w.node,
                gpa: w.range.base,
                hpa: w.range.base,
                len: w.range.size,
                irq: w.irq.unwrap_or(0),
            };
            if let Some(why) = conflict(vm, &dev, &out) {
                report.push(vm.src.error(&p.key, why));
            }
            out.push(dev);
        }
    }
    out
}

/// What a resolved window (mapped at its host address) collides with in its VM.
fn conflict(vm: &Vm, d: &PassDevice, earlier: &[PassDevice]) -> Option<String> {
    let w = Range::new(d.gpa, d.len);
    let what = format!("device-tree passthrough {} at {w}", d.name);
    if let Some((i, m)) = vm
        .memory
        .iter()
        .enumerate()
        .find(|(_, m)| m.range.overlaps(&w))
    {
        return Some(format!(
            "{what} overlaps kernel.memory_regions[{i}] ({})",
            m.range
        ));
    }
    if let Some(e) = vm.emu_devices.iter().find(|e| e.range.overlaps(&w)) {
        return Some(format!(
            "{what} overlaps {} ({} at {})",
            e.key, e.name, e.range
        ));
    }
    let others = vm.passthrough.iter().chain(earlier);
    if let Some(p) = others
        .into_iter()
        .find(|p| Range::new(p.gpa, p.len).overlaps(&w))
    {
        return Some(format!(
            "{what} overlaps {} ({} at {})",
            p.key,
            p.name,
            Range::new(p.gpa, p.len)
        ));
    }
    None
}

/// The board's device tree, or why there is none to check against.
fn board_dtb(board: &Board) -> Result<Vec<u8>, String> {
    if let Some(p) = &board.host_dtb {
        return std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    }
    if board.qemu.is_some() {
        return qemu_dtb(board);
    }
    match board.image.as_ref().and_then(|i| i.dtb.as_ref()) {
        Some(FileSource::Path { path, .. }) if path.is_file() => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        _ => Err(format!(
            "no device tree for board {} (give one with host_dtb = \"FILE\" in the board file)",
            board.name
        )),
    }
}

/// The device tree QEMU generates for the board's machine, CPUs and RAM.
fn qemu_dtb(board: &Board) -> Result<Vec<u8>, String> {
    let Some(q) = &board.qemu else {
        return Err("no [qemu] section".into());
    };
    let file: PathBuf =
        std::env::temp_dir().join(format!("xtask-{}-{}.dtb", board.name, std::process::id()));
    let program = crate::qemu::qemu_binary(board);
    let mut args = vec![
        "-machine".to_string(),
        format!("{},dumpdtb={}", q.machine, file.display()),
    ];
    if let Some(cpu) = &q.cpu {
        args.extend(["-cpu".into(), cpu.clone()]);
    }
    args.extend(["-smp".into(), board.smp.to_string()]);
    if let Some(mem) = &q.memory {
        args.extend(["-m".into(), mem.clone()]);
    }
    args.extend(
        [
            "-nic", "none", "-display", "none", "-serial", "null", "-monitor", "none",
        ]
        .map(String::from),
    );
    let out = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program} to get the board's device tree ({e})"))?;
    let blob = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    match blob {
        Ok(b) if out.status.success() => Ok(b),
        _ => Err(format!(
            "{program} {} did not write the device tree: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
