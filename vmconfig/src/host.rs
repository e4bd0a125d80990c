//! What a VM may take of the host: passthrough windows never reach the hypervisor's
//! own devices (its interrupt controller, console UART, timer, power device) or host
//! RAM. xtask checks against the board file's `[devices]` (or the known layout of
//! QEMU's `virt` machine), the hypervisor at boot against what its firmware
//! described ([`HostWindow`]s built from its board description).
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::key::Problems;
use crate::model::PassDevice;
use crate::range::Range;

/// A window of host physical memory the hypervisor keeps for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostWindow {
    /// What it is ("GIC distributor (GICD)", "console UART").
    pub what: &'static str,
    pub range: Range,
}

impl HostWindow {
    pub const fn new(what: &'static str, base: u64, size: u64) -> Self {
        Self {
            what,
            range: Range { base, size },
        }
    }
}

pub const GICD: &str = "GIC distributor (GICD)";
pub const GICR: &str = "GIC redistributors (GICR)";
pub const GICC: &str = "GIC CPU interface (GICC)";
pub const GICH: &str = "GIC virtual interface control (GICH)";
pub const GICV: &str = "GIC virtual CPU interface (GICV)";
pub const GITS: &str = "GIC ITS";
pub const PLIC: &str = "PLIC";
pub const CONSOLE: &str = "console UART";
pub const LAPIC: &str = "local APIC";
pub const IOAPIC: &str = "I/O APIC";
pub const CLINT: &str = "CLINT (timer and software interrupts)";
pub const POWER: &str = "power/reset device (sifive_test)";
pub const DISK: &str = "disk (virtio-blk) of fs VMs";

/// QEMU `virt` (aarch64) as its memory map places the devices the hypervisor
/// keeps: every GIC frame of either version, and UART0.
pub fn qemu_virt_aarch64() -> Vec<HostWindow> {
    vec![
        HostWindow::new(GICD, 0x0800_0000, 0x1_0000),
        HostWindow::new(GICC, 0x0801_0000, 0x1_0000),
        HostWindow::new(GICH, 0x0803_0000, 0x1_0000),
        HostWindow::new(GICV, 0x0804_0000, 0x1_0000),
        HostWindow::new(GITS, 0x0808_0000, 0x2_0000),
        HostWindow::new(GICR, 0x080a_0000, 0xf6_0000),
        HostWindow::new(CONSOLE, 0x0900_0000, 0x1000),
    ]
}

/// QEMU `virt` (riscv64): the power device, CLINT, PLIC and UART0.
pub fn qemu_virt_riscv64() -> Vec<HostWindow> {
    vec![
        HostWindow::new(POWER, 0x10_0000, 0x1000),
        HostWindow::new(CLINT, 0x0200_0000, 0x1_0000),
        HostWindow::new(PLIC, 0x0c00_0000, 0x60_0000),
        HostWindow::new(CONSOLE, 0x1000_0000, 0x100),
    ]
}

/// Why a passthrough window at host `range` may not be given to a VM: it overlaps a
/// window the hypervisor keeps, or host RAM.
pub fn passthrough_problem(range: Range, kept: &[HostWindow], ram: &[Range]) -> Option<String> {
    if let Some(w) = kept.iter().find(|w| w.range.overlaps(&range)) {
        return Some(format!(
            "host {range} overlaps the hypervisor's {} at {}: its interrupt controller, console, timer and RAM are never given to a VM",
            w.what, w.range
        ));
    }
    ram.iter().find(|r| r.overlaps(&range)).map(|r| {
        format!("host {range} overlaps host RAM {r}: RAM is given to a VM as a memory region (map_type 1 or 2), never as a device")
    })
}

/// Every passthrough window of a VM against what the host keeps.
pub fn check_passthrough(
    pass: &[PassDevice],
    kept: &[HostWindow],
    ram: &[Range],
    out: &mut Problems,
) {
    for d in pass {
        if let Some(why) = passthrough_problem(Range::new(d.hpa, d.len), kept, ram) {
            out.error(&d.key, format!("passthrough device {}: {why}", d.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyPath;
    use alloc::string::ToString;

    fn dev(hpa: u64) -> PassDevice {
        PassDevice {
            key: KeyPath::new("devices").key("passthrough_devices").index(0),
            name: "d".into(),
            gpa: hpa,
            hpa,
            len: 0x1000,
            irq: 0,
        }
    }

    fn errors(hpa: u64, kept: &[HostWindow]) -> Vec<String> {
        let mut out = Problems::default();
        let ram = [Range::new(0x4000_0000, 0x4000_0000)];
        check_passthrough(&[dev(hpa)], kept, &ram, &mut out);
        out.errors().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_hypervisors_devices_are_never_passed_through() {
        let virt = qemu_virt_aarch64();
        let e = errors(0x0800_0000, &virt);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("devices.passthrough_devices[0]: passthrough device d: host 0x8000000..0x8001000 overlaps the hypervisor's GIC distributor (GICD)"), "{e:?}");
        assert!(errors(0x0900_0000, &virt)[0].contains("console UART"));
        assert!(errors(0x0c00_0000, &qemu_virt_riscv64())[0].contains("PLIC"));
        assert!(errors(0x4100_0000, &virt)[0].contains("overlaps host RAM"));
        // The RTC next to the UART is the board's to give.
        assert!(errors(0x0901_0000, &virt).is_empty());
    }
}
