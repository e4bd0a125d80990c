//! The device-tree nodes of a VM's inter-VM channels, the same on every
//! architecture but for the interrupt specifier: each region is a child of
//! `/reserved-memory` (`no-map`: the guest's allocator never uses it), each doorbell
//! a device node pointing at its region with `memory-region`.
//!
//! ```text
//! reserved-memory { ranges; ivc@50000000 { compatible = "hv,ivc-shmem";
//!     reg = <...>; no-map; label = "link"; [read-only;] phandle = <..>; }; };
//! ivc-doorbell@a000000 { compatible = "hv,ivc-doorbell"; reg = <... 0x1000>;
//!     interrupts = <...>; memory-region = <&region>; label = "link"; };
//! ```

use super::{FdtError, FdtWriter};
use crate::spec::ChannelSpec;
use alloc::format;
use alloc::vec::Vec;

/// `compatible` of a channel's region.
pub const SHMEM_COMPATIBLE: &str = "hv,ivc-shmem";
/// `compatible` of a channel's doorbell.
pub const DOORBELL_COMPATIBLE: &str = "hv,ivc-doorbell";

fn reg(base: u64, size: u64) -> [u32; 4] {
    [
        (base >> 32) as u32,
        base as u32,
        (size >> 32) as u32,
        size as u32,
    ]
}

/// `/reserved-memory` with one child per channel (nothing when there are none);
/// returns the phandle of each region, in order. The parent's cells are 2 + 2.
pub fn regions(w: &mut FdtWriter, channels: &[ChannelSpec]) -> Result<Vec<u32>, FdtError> {
    if channels.is_empty() {
        return Ok(Vec::new());
    }
    let phandles: Vec<u32> = channels.iter().map(|_| w.alloc_phandle()).collect();
    w.begin_node("reserved-memory")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_null("ranges")?;
    for (c, &ph) in channels.iter().zip(&phandles) {
        w.begin_node(&format!("ivc@{:x}", c.gpa))?;
        w.property_string("compatible", SHMEM_COMPATIBLE)?;
        w.property_cells("reg", &reg(c.gpa, c.size))?;
        w.property_null("no-map")?;
        w.property_string("label", &c.name)?;
        if !c.writable {
            w.property_null("read-only")?;
        }
        w.property_u32("phandle", ph)?;
        w.end_node()?;
    }
    w.end_node()?;
    Ok(phandles)
}

/// One node per doorbell; `interrupts(irq)` is the architecture's interrupt
/// specifier, under `interrupt_parent` when given.
pub fn doorbells(
    w: &mut FdtWriter,
    channels: &[ChannelSpec],
    regions: &[u32],
    interrupts: impl Fn(u32) -> Vec<u32>,
    interrupt_parent: Option<u32>,
) -> Result<(), FdtError> {
    for (c, &region) in channels.iter().zip(regions) {
        let Some((gpa, irq)) = c.doorbell else {
            continue;
        };
        w.begin_node(&format!("ivc-doorbell@{gpa:x}"))?;
        w.property_string("compatible", DOORBELL_COMPATIBLE)?;
        w.property_cells("reg", &reg(gpa, vmconfig::channel::DOORBELL_SIZE))?;
        w.property_cells("interrupts", &interrupts(irq))?;
        if let Some(p) = interrupt_parent {
            w.property_u32("interrupt-parent", p)?;
        }
        w.property_u32("memory-region", region)?;
        w.property_string("label", &c.name)?;
        w.end_node()?;
    }
    Ok(())
}
