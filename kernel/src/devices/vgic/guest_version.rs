//! Which virtual GIC a VM config asks for, read from its `emu_devices`:
//!
//! - GICv3: a distributor (emu_type 0x21) and a redistributor region (0x20).
//! - GICv2: a distributor (0x21) and a CPU interface window (0x1, AxVisor's
//!   "interrupt controller"); the CPU interface is the host's GICv2 virtual CPU
//!   interface (GICV) mapped at that guest-physical address, so it needs a GICv2 host.
//!
//! A config that mixes the two, or has a CPU interface or redistributors without a
//! distributor, is an error that keeps the VM from starting (the rule is
//! `vmconfig::irq::gic_kind`, which the config checks apply first).

use crate::spec::EmuDevice;
use alloc::string::String;
use vmconfig::irq::GicKind;

/// Most vCPUs a GICv2 serves (8-bit CPU target masks).
pub const GICV2_MAX_VCPUS: u32 = vmconfig::irq::GICV2_MAX_VCPUS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestGicVersion {
    /// No emulated GIC.
    None,
    V2,
    V3,
}

/// The GIC version `devices` describe; `cpu_num` is checked against the GICv2 limit.
/// The rule is `vmconfig::irq::gic_kind`, the one the config checks report with.
pub fn version(devices: &[EmuDevice], cpu_num: u32) -> Result<GuestGicVersion, String> {
    let types: alloc::vec::Vec<u32> = devices.iter().map(|d| d.emu_type).collect();
    match vmconfig::irq::gic_kind(&types, cpu_num) {
        Ok(GicKind::None) => Ok(GuestGicVersion::None),
        Ok(GicKind::V2) => Ok(GuestGicVersion::V2),
        Ok(GicKind::V3) => Ok(GuestGicVersion::V3),
        Err((_, why)) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::Cow;

    fn dev(emu_type: u32) -> EmuDevice {
        EmuDevice {
            name: Cow::Borrowed("x"),
            base_gpa: 0x0800_0000,
            length: 0x1000,
            irq: 0,
            emu_type,
            cfg: Cow::Borrowed(&[]),
        }
    }

    #[test]
    fn versions_from_emu_types() {
        let v = |types: &[u32], cpus| {
            let devs: alloc::vec::Vec<EmuDevice> = types.iter().map(|&t| dev(t)).collect();
            version(&devs, cpus)
        };
        assert_eq!(v(&[0x21, 0x20, 0x2], 2), Ok(GuestGicVersion::V3));
        assert_eq!(v(&[0x21, 0x1, 0x2], 2), Ok(GuestGicVersion::V2));
        assert_eq!(v(&[0x21, 0x1], 8), Ok(GuestGicVersion::V2));
        assert_eq!(v(&[0x2], 2), Ok(GuestGicVersion::None));
        assert!(v(&[0x21], 2)
            .unwrap_err()
            .contains("alone is not a whole GIC"));
        assert!(v(&[0x21, 0x1], 9).unwrap_err().contains("at most 8 vCPUs"));
        assert!(v(&[0x21, 0x20, 0x1], 2).unwrap_err().contains("choose one"));
        assert!(v(&[0x20, 0x2], 2)
            .unwrap_err()
            .contains("redistributor region (emu_type 0x20) needs a GIC distributor"));
        assert!(v(&[0x1], 2)
            .unwrap_err()
            .contains("needs a GIC distributor"));
    }
}
