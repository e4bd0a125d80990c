//! The virtual GIC a VM asks for (aarch64) against the board's GIC. The VM's own
//! GIC rules (one version, a distributor, window sizes, the GICv2 vCPU limit) are
//! `vmconfig::irq`, which the hypervisor applies too.
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
use vmconfig::irq::GicKind;
use vmconfig::{EMU_GIC_CPU_IF, EMU_GIC_REDIST};

/// GIC versions a board's `[devices] gic_version` may give.
pub const BOARD_GIC_VERSIONS: [u32; 2] = [2, 3];

fn find(vm: &Vm, emu_type: u32) -> Option<&EmuDevice> {
    vm.emu_devices.iter().find(|d| d.emu_type == emu_type)
}

/// Every aarch64 VM's GIC on its own and against the board's `gic_version`.
pub fn check_gics(board: &Board, vms: &[Vm], report: &mut Report) {
    if board.arch != Arch::Aarch64 {
        return;
    }
    for vm in vms {
        // The VM's own GIC rules are `vmconfig::irq::check_gic` (already passed).
        let types: Vec<u32> = vm.emu_devices.iter().map(|d| d.emu_type).collect();
        let Ok(gic) = vmconfig::irq::gic_kind(&types, vm.cpu_num) else {
            continue;
        };
        if gic == GicKind::None {
            continue;
        }
        let Some((version, from)) = &board.gic else {
            report.push(vm.src.warning(
                &KeyPath::new("devices").key("emu_devices"),
                format!(
                    "not checked: whether this VM's GIC version is the host's (board {} gives no [devices] gic_version and is not a QEMU virt board with a known GIC)",
                    board.name
                ),
            ));
            continue;
        };
        match (gic, version) {
            (GicKind::V2, 3) => {
                let key = find(vm, EMU_GIC_CPU_IF).map_or_else(
                    || KeyPath::new("devices").key("emu_devices"),
                    |d| d.key.index(4),
                );
                report.push(vm.src.error(
                    &key,
                    format!(
                        "this VM has a GICv2 (CPU interface, emu_type 0x1) but board {} has a GICv3 ({from}): a GICv2 VM needs a GICv2 board; give it a GICv3 (emu_type 0x21 and 0x20) instead",
                        board.name
                    ),
                ))
            }
            (GicKind::V3, 2) => {
                let key = find(vm, EMU_GIC_REDIST).map_or_else(
                    || KeyPath::new("devices").key("emu_devices"),
                    |r| r.key.index(4),
                );
                report.push(vm.src.error(
                    &key,
                    format!(
                        "this VM has a GICv3 (emu_type 0x21/0x20) but board {} has a GICv2 ({from}): give it a GICv2 distributor (0x21) and CPU interface (0x1) instead",
                        board.name
                    ),
                ))
            }
            (GicKind::V2, 2) => {
                if let Some(cpu_if) = find(vm, EMU_GIC_CPU_IF) {
                    check_against_gicv(board, vm, cpu_if, report);
                }
            }
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
