//! A VM's virtual GIC against the host's: a GICv3 VM needs a GICv3 host (the guest
//! uses the ICC system registers of the virtual CPU interface), a GICv2 VM a GICv2 host
//! whose virtual CPU interface (GICV) becomes the guest's GICC, mapped by stage 2 at
//! the guest-physical address of the VM's CPU interface window.

use super::hostgic;
use crate::devices::emu_type;
use crate::devices::vgic::guest_version::{self, GuestGicVersion};
use crate::firmware::BoardInfo;
use crate::hal::DirectWindow;
use crate::spec::VmSpec;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The windows of `spec` that go straight to hardware; Err if the VM's GIC version is
/// not the host's, or the CPU interface window does not fit the host's GICV frame.
pub fn direct_windows(spec: &VmSpec, _p: &BoardInfo) -> Result<Vec<DirectWindow>, String> {
    let version = guest_version::version(&spec.emu_devices, spec.cpu_num)?;
    let host_v2 = hostgic::is_gicv2();
    match version {
        GuestGicVersion::None => Ok(Vec::new()),
        GuestGicVersion::V3 if host_v2 => Err(String::from(
            "this VM has a virtual GICv3 (emu_type 0x20/0x21) but the host's GIC is a GICv2: \
             give it a GICv2 (emu_type 0x21 distributor and 0x1 CPU interface)",
        )),
        GuestGicVersion::V3 => Ok(Vec::new()),
        GuestGicVersion::V2 if !host_v2 => Err(String::from(
            "this VM has a virtual GICv2 (emu_type 0x1 CPU interface) but the host's GIC is \
             a GICv3: a GICv2 guest needs a GICv2 host; give it a GICv3 (emu_type 0x21 and 0x20)",
        )),
        GuestGicVersion::V2 => gicv2_cpu_interface(spec).map(|w| alloc::vec![w]),
    }
}

fn gicv2_cpu_interface(spec: &VmSpec) -> Result<DirectWindow, String> {
    let (Some(gicv), Some(win)) = (
        hostgic::gicv2_virtual_cpu_interface(),
        spec.emu_devices
            .iter()
            .find(|d| d.emu_type == emu_type::GIC_CPU_IF),
    ) else {
        return Err(String::from("no GICv2 virtual CPU interface on this host"));
    };
    let page_aligned = (win.base_gpa | win.length) & 0xfff == 0;
    if !page_aligned || win.length < hostgic::GICV2_CPU_IF_SIZE || win.length > gicv.size {
        return Err(format!(
            "GICv2 CPU interface window \"{}\" at {:#x} size {:#x}: needs a 4 KiB aligned \
             size from {:#x} to the host GICV frame's {:#x}",
            win.name,
            win.base_gpa,
            win.length,
            hostgic::GICV2_CPU_IF_SIZE,
            gicv.size
        ));
    }
    Ok(DirectWindow {
        gpa: win.base_gpa,
        hpa: gicv.base,
        size: win.length,
        what: "GICv2 virtual CPU interface",
    })
}
