//! Checks across VMs and against the board: unique ids and names, guest crates that
//! exist, identity/reserved regions inside the board's RAM and not shared, enough
//! RAM for everyone, and the vCPU placement.
use super::board::Board;
use super::diag::{KeyPath, Report};
use super::range::{covered_by, human_size, Range};
use super::vm::{ImageLocation, ImageSource, Vm, FS_VMS_FEATURE};

/// What the checks need to know about the workspace.
pub struct Context<'a> {
    /// Guest crates available under `guests/` (package names).
    pub guest_crates: &'a [String],
}

pub fn cross_checks(board: &Board, vms: &mut [Vm], ctx: &Context, report: &mut Report) {
    check_unique(vms, report);
    check_channels(vms, report);
    check_guest_crates(vms, ctx, report);
    check_host_regions(board, vms, report);
    super::devtree::check(board, vms, report);
    check_passthrough(board, vms, report);
    check_ram_total(board, vms, report);
    super::gic::check_gics(board, vms, report);
    check_fs_vms(board, vms, report);
    super::cpus::place_vcpus(board, vms, report);
}

fn check_unique(vms: &[Vm], report: &mut Report) {
    for (i, vm) in vms.iter().enumerate() {
        if let Some(other) = vms[..i].iter().find(|o| o.id == vm.id) {
            report.push(vm.src.error(
                &KeyPath::new("base").key("id"),
                format!("duplicate VM id {}: {} uses it too", vm.id, other.src.shown),
            ));
        }
        if let Some(other) = vms[..i].iter().find(|o| o.name == vm.name) {
            report.push(vm.src.error(
                &KeyPath::new("base").key("name"),
                format!(
                    "duplicate VM name {:?}: {} uses it too",
                    vm.name, other.src.shown
                ),
            ));
        }
    }
}

/// Channels across the VMs of the build (`vmconfig::channel::check_members`, the rule
/// the hypervisor applies to VMs it reads from a card).
fn check_channels(vms: &[Vm], report: &mut Report) {
    let members: Vec<vmconfig::channel::Member<'_>> = vms
        .iter()
        .map(|v| vmconfig::channel::Member {
            shown: &v.src.shown,
            channels: &v.channels,
        })
        .collect();
    for (i, key, why) in vmconfig::channel::check_members(&members) {
        report.push(vms[i].src.error(&key, why));
    }
}

fn check_guest_crates(vms: &[Vm], ctx: &Context, report: &mut Report) {
    for vm in vms {
        for img in vm.images() {
            let ImageSource::Guest(krate) = &img.source else {
                continue;
            };
            if !ctx.guest_crates.contains(krate) {
                report.push(vm.src.error(
                    &img.key,
                    format!(
                        "no guest crate `{krate}` in guests/ (known: {})",
                        if ctx.guest_crates.is_empty() {
                            "none".to_string()
                        } else {
                            ctx.guest_crates.join(", ")
                        }
                    ),
                ));
            }
        }
    }
}

/// Identity (1) and reserved (2) regions use fixed host memory: it must exist and
/// belong to one VM only.
fn check_host_regions(board: &Board, vms: &[Vm], report: &mut Report) {
    let mut taken: Vec<(String, Range)> = Vec::new();
    for vm in vms {
        for (i, m) in vm.memory.iter().enumerate() {
            if m.map_type == 0 {
                continue;
            }
            let key = KeyPath::new("kernel").key("memory_regions").index(i);
            let r = m.range;
            let kind = if m.map_type == 1 {
                "identity"
            } else {
                "reserved"
            };
            if !covered_by(&r, &board.ram) && m.is_ram() {
                report.push(vm.src.error(
                    &key,
                    format!(
                        "{kind} region {r} is outside board {}'s RAM ({})",
                        board.name,
                        list(&board.ram)
                    ),
                ));
            }
            if m.map_type == 1 {
                if let Some(res) = board.reserved.iter().find(|res| res.overlaps(&r)) {
                    report.push(vm.src.error(
                        &key,
                        format!("identity region {r} overlaps the board's reserved range {res}"),
                    ));
                }
            }
            if r.contains(board.hv_load_addr) {
                report.push(vm.src.error(
                    &key,
                    format!(
                        "{kind} region {r} contains the hypervisor's load address {:#x}",
                        board.hv_load_addr
                    ),
                ));
            }
            if let Some((owner, or)) = taken.iter().find(|(_, or)| or.overlaps(&r)) {
                report.push(vm.src.error(
                    &key,
                    format!("{kind} region {r} overlaps host memory {or} already given to {owner}"),
                ));
            }
            taken.push((format!("{} ({})", vm.name, vm.src.shown), r));
        }
    }
}

/// Passthrough windows give a VM host physical addresses: never RAM (that is what
/// identity/reserved memory regions are for), never what the hypervisor keeps (the
/// shared rule `vmconfig::host`, which the hypervisor applies at boot against what
/// its firmware describes) and never a device another VM has.
fn check_passthrough(board: &Board, vms: &[Vm], report: &mut Report) {
    let mut taken: Vec<(String, Range)> = Vec::new();
    let (kept, from) = match &board.kept {
        Some((k, from)) => (k.as_slice(), from.as_str()),
        None => (&[][..], ""),
    };
    for vm in vms {
        for (windows, ram, said) in [(kept, &[][..], from), (&[][..], &board.ram[..], "")] {
            let mut problems = vmconfig::Problems::default();
            vmconfig::host::check_passthrough(&vm.passthrough, windows, ram, &mut problems);
            vmconfig::host::check_passthrough(&vm.dt_windows, windows, ram, &mut problems);
            for p in problems.errors() {
                let why = match said {
                    "" => p.message.clone(),
                    from => format!("{} (as {from} says)", p.message),
                };
                report.push(vm.src.error(&p.key, why));
            }
        }
        if board.kept.is_none() && !(vm.passthrough.is_empty() && vm.dt_windows.is_empty()) {
            report.push(vm.src.warning(
                &KeyPath::new("devices").key("passthrough_devices"),
                format!("checked against board {}'s RAM only: the board file has no [devices] (uart, gicd, gicr, ...) and is not a QEMU virt board, so the hypervisor's own devices are not known here (the hypervisor still refuses them at boot)", board.name),
            ));
        }
        for d in vm.passthrough.iter().chain(&vm.dt_windows) {
            let host = Range::new(d.hpa, d.len);
            if let Some((owner, or)) = taken.iter().find(|(_, or)| or.overlaps(&host)) {
                report.push(vm.src.error(
                    &d.key,
                    format!("passthrough device {} at host {host} overlaps {or}, already given to {owner}", d.name),
                ));
            }
            taken.push((format!("{} ({})", vm.name, vm.src.shown), host));
        }
    }
}

fn list(ranges: &[Range]) -> String {
    let parts: Vec<String> = ranges.iter().map(Range::to_string).collect();
    parts.join(", ")
}

fn check_ram_total(board: &Board, vms: &[Vm], report: &mut Report) {
    let need: u64 = vms.iter().map(|v| v.ram_size()).sum();
    let have = board
        .total_ram()
        .saturating_sub(board.reserved.iter().map(|r| r.size).sum());
    if need > have {
        if let Some(last) = vms.last() {
            report.push(last.src.error(
                &KeyPath::new("kernel").key("memory_regions"),
                format!(
                    "the VMs need {} of RAM together but board {} has {}",
                    human_size(need),
                    board.name,
                    human_size(have)
                ),
            ));
        }
    }
}

/// VMs with `image_location = "fs"` live on the boot partition of a card image, or
/// on the disk `cargo xtask run` attaches in QEMU, so their board must say how to
/// write a card or be run by QEMU.
fn check_fs_vms(board: &Board, vms: &[Vm], report: &mut Report) {
    if board.image.is_some() || board.qemu.is_some() {
        return;
    }
    for vm in vms.iter().filter(|v| v.location == ImageLocation::Fs) {
        report.push(vm.src.error(
            &KeyPath::new("kernel").key("image_location"),
            format!(
                "image_location = \"fs\" needs a board with an [image] section (the VM's files go on the boot partition written by `cargo xtask image`, whose hypervisor gets feature {FS_VMS_FEATURE} to read them) or a [qemu] section (`cargo xtask run` puts them on a disk it attaches); board {} has neither, so its hypervisor cannot start this VM",
                board.name
            ),
        ));
    }
}
