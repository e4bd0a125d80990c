//! Which virtual GIC a VM config asks for, read from its `emu_devices`:
//!
//! - GICv3: a distributor (emu_type 0x21) and a redistributor region (0x20).
//! - GICv2: a distributor (0x21) and a CPU interface window (0x1, AxVisor's
//!   "interrupt controller"); the CPU interface is the host's GICv2 virtual CPU
//!   interface (GICV) mapped at that guest-physical address, so it needs a GICv2 host.
//!
//! A config that mixes the two, or has a CPU interface without a distributor, is an
//! error that keeps the VM from starting.

use crate::devices::emu_type;
use crate::spec::EmuDevice;
use alloc::string::String;

/// Most vCPUs a GICv2 serves (8-bit CPU target masks).
pub const GICV2_MAX_VCPUS: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestGicVersion {
    /// No emulated GIC.
    None,
    V2,
    V3,
}

/// The GIC version `devices` describe; `cpu_num` is checked against the GICv2 limit.
pub fn version(devices: &[EmuDevice], cpu_num: u32) -> Result<GuestGicVersion, String> {
    let has = |t| devices.iter().any(|d| d.emu_type == t);
    let (dist, redist, cpu_if) = (
        has(emu_type::GIC_DIST),
        has(emu_type::GIC_REDIST),
        has(emu_type::GIC_CPU_IF),
    );
    match (dist, redist, cpu_if) {
        (_, true, true) => Err(String::from(
            "emu_devices mix a GICv3 redistributor (emu_type 0x20) and a GICv2 CPU interface (emu_type 0x1)",
        )),
        (false, _, true) => Err(String::from(
            "a GICv2 CPU interface (emu_type 0x1) needs a GIC distributor (emu_type 0x21)",
        )),
        (true, false, true) if cpu_num > GICV2_MAX_VCPUS => Err(alloc::format!(
            "a GICv2 serves at most {GICV2_MAX_VCPUS} vCPUs, this VM has {cpu_num}"
        )),
        (true, false, true) => Ok(GuestGicVersion::V2),
        (false, false, false) => Ok(GuestGicVersion::None),
        _ => Ok(GuestGicVersion::V3),
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
        assert_eq!(v(&[0x21], 2), Ok(GuestGicVersion::V3));
        assert!(v(&[0x21, 0x1], 9).unwrap_err().contains("at most 8 vCPUs"));
        assert!(v(&[0x21, 0x20, 0x1], 2).unwrap_err().contains("mix"));
        assert!(v(&[0x1], 2)
            .unwrap_err()
            .contains("needs a GIC distributor"));
    }
}
