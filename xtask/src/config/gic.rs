//! The virtual GIC a VM asks for (aarch64), checked on its own and against the
//! board's GIC.
//!
//! A VM config names its GIC with `emu_devices`:
//! - GICv3: a distributor (emu_type 0x21) and a redistributor region (0x20);
//! - GICv2: a distributor (0x21) and a CPU interface window (0x1, AxVisor's
//!   "interrupt controller"), where the hypervisor maps the host's GICv2 virtual CPU
//!   interface (GICV). At least 8 KiB (GICC_DIR is at 0x1000), 4 KiB aligned.
//!
//! The guest's GIC version must be the host's: a GICv3 guest uses the GICv3 CPU
//! interface system registers, a GICv2 guest the host's GICV frame. The board says
//! which it has with `[devices] gic_version`.
use super::board::{Arch, Board};
use super::diag::{KeyPath, Report};
use super::vm::{EmuDevice, Vm};

pub const EMU_GIC_CPU_IF: u32 = 0x1;
pub const EMU_GIC_REDIST: u32 = 0x20;
pub const EMU_GIC_DIST: u32 = 0x21;
/// Most vCPUs of a GICv2 VM (8-bit CPU target masks).
pub const GICV2_MAX_VCPUS: u32 = 8;
/// Smallest GICv2 CPU interface window.
pub const GICV2_CPU_IF_MIN: u64 = 0x2000;
/// One GICv3 redistributor (RD_base + SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;

/// GIC versions a board's `[devices] gic_version` may give.
pub const BOARD_GIC_VERSIONS: [u32; 2] = [2, 3];

/// Which GIC a VM has, with the device that says so.
#[derive(Debug, PartialEq, Eq)]
pub enum VmGic<'a> {
    None,
    V2 { cpu_if: &'a EmuDevice },
    V3 { redist: Option<&'a EmuDevice> },
}

fn find(vm: &Vm, emu_type: u32) -> Option<&EmuDevice> {
    vm.emu_devices.iter().find(|d| d.emu_type == emu_type)
}

/// The VM's GIC, and its own problems reported.
pub fn vm_gic<'a>(vm: &'a Vm, report: &mut Report) -> VmGic<'a> {
    let dist = find(vm, EMU_GIC_DIST);
    let redist = find(vm, EMU_GIC_REDIST);
    let Some(cpu_if) = find(vm, EMU_GIC_CPU_IF) else {
        if let Some(r) = redist {
            check_redistributors(vm, r, report);
        }
        return if dist.is_some() || redist.is_some() {
            VmGic::V3 { redist }
        } else {
            VmGic::None
        };
    };
    if let Some(r) = redist {
        report.push(vm.src.error(
            &cpu_if.key.index(4),
            format!(
                "a GICv2 CPU interface (emu_type 0x1) and a GICv3 redistributor (emu_type 0x20, {}) in one VM: choose one GIC version",
                r.key
            ),
        ));
    }
    if dist.is_none() {
        report.push(vm.src.error(
            &cpu_if.key.index(4),
            "a GICv2 CPU interface (emu_type 0x1) needs a GIC distributor (emu_type 0x21)",
        ));
    }
    if vm.cpu_num > GICV2_MAX_VCPUS {
        report.push(vm.src.error(
            &KeyPath::new("base").key("cpu_num"),
            format!(
                "a VM with a GICv2 (emu_type 0x1 at {}) has at most {GICV2_MAX_VCPUS} vCPUs, not {}",
                cpu_if.key, vm.cpu_num
            ),
        ));
    }
    let r = cpu_if.range;
    if r.size < GICV2_CPU_IF_MIN || (r.base | r.size) % 0x1000 != 0 {
        report.push(vm.src.error(
            &cpu_if.key.index(2),
            format!(
                "the GICv2 CPU interface window {r} must be 4 KiB aligned and at least 8 KiB (GICC_DIR is at 0x1000)"
            ),
        ));
    }
    VmGic::V2 { cpu_if }
}

/// A GICv3 redistributor region must hold one redistributor per vCPU (a guest finds
/// its own by scanning the region).
fn check_redistributors(vm: &Vm, redist: &EmuDevice, report: &mut Report) {
    let need = u64::from(vm.cpu_num) * GICR_STRIDE;
    if redist.range.size < need {
        report.push(vm.src.error(
            &redist.key.index(2),
            format!(
                "the GICv3 redistributor region {} holds {} redistributors (0x20000 each) but the VM has {} vCPUs: it needs {need:#x} bytes",
                redist.range,
                redist.range.size / GICR_STRIDE,
                vm.cpu_num
            ),
        ));
    }
}

/// Every aarch64 VM's GIC on its own and against the board's `gic_version`.
pub fn check_gics(board: &Board, vms: &[Vm], report: &mut Report) {
    if board.arch != Arch::Aarch64 {
        return;
    }
    for vm in vms {
        let gic = vm_gic(vm, report);
        match (gic, board.gic_version) {
            (VmGic::V2 { cpu_if }, Some(3)) => report.push(vm.src.error(
                &cpu_if.key.index(4),
                format!(
                    "this VM has a GICv2 (CPU interface, emu_type 0x1) but board {} has a GICv3 ([devices] gic_version = 3): a GICv2 VM needs a GICv2 board; give it a GICv3 (emu_type 0x21 and 0x20) instead",
                    board.name
                ),
            )),
            (VmGic::V3 { redist }, Some(2)) => {
                let key = redist.map_or_else(|| KeyPath::new("devices").key("emu_devices"), |r| r.key.index(4));
                report.push(vm.src.error(
                    &key,
                    format!(
                        "this VM has a GICv3 (emu_type 0x21/0x20) but board {} has a GICv2 ([devices] gic_version = 2): give it a GICv2 distributor (0x21) and CPU interface (0x1) instead",
                        board.name
                    ),
                ))
            }
            (VmGic::V2 { cpu_if }, Some(2)) => check_against_gicv(board, vm, cpu_if, report),
            _ => {}
        }
    }
}

/// The CPU interface window must fit in the board's GICV frame, if the board gives it.
fn check_against_gicv(board: &Board, vm: &Vm, cpu_if: &EmuDevice, report: &mut Report) {
    let Some(gicv) = board.gicv else {
        return;
    };
    if cpu_if.range.size > gicv.size {
        report.push(vm.src.error(
            &cpu_if.key.index(2),
            format!(
                "the GICv2 CPU interface window {} is larger than board {}'s GICV frame {gicv}",
                cpu_if.range, board.name
            ),
        ));
    }
}
