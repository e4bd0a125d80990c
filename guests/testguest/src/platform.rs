//! What the guest learns about its VM from the device tree it was booted with: RAM,
//! CPUs, the console UART and the boot arguments. Architecture-specific nodes (interrupt
//! controller, timer, firmware) are read by `arch` from [`Platform::fdt`].
//!
//! The device tree comes from the hypervisor under test, so nothing here trusts it:
//! missing or odd pieces become `None`/empty, which the checks then report.

use fdt::node::FdtNode;
use fdt::Fdt;

use crate::console::{Uart, UartKind};
use crate::why::{why, Why};

/// Most memory regions recorded.
pub const MAX_REGIONS: usize = 8;
/// Most CPUs the guest handles (one stack each); more in the device tree are ignored.
pub const MAX_CPUS: usize = 8;
/// Largest device tree accepted (the limit Linux uses too).
const MAX_DTB_SIZE: u32 = 2 << 20;
const FDT_MAGIC: u32 = 0xd00d_feed;

/// A range of guest-physical addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    /// First address after the region.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether the two regions share at least one byte.
    pub fn overlaps(&self, other: &Region) -> bool {
        self.base < other.end() && other.base < self.end()
    }
}

/// The VM as its device tree describes it.
pub struct Platform {
    /// The parsed device tree (it stays where the hypervisor put it).
    pub fdt: Fdt<'static>,
    /// Where the device tree blob lies.
    pub dtb: Region,
    /// `/chosen/bootargs` (empty if absent).
    pub bootargs: &'static str,
    memory: [Region; MAX_REGIONS],
    memory_count: usize,
    cpus: [u64; MAX_CPUS],
    cpu_count: usize,
    /// CPU nodes in the device tree, including any beyond [`MAX_CPUS`].
    pub cpus_in_dtb: usize,
    /// The UART `/chosen/stdout-path` names, if the guest can drive it.
    pub uart: Option<Uart>,
}

impl Platform {
    /// RAM regions from the `/memory` node(s), in device-tree order.
    pub fn memory(&self) -> &[Region] {
        &self.memory[..self.memory_count]
    }

    /// Hardware ids (`reg`) of the CPU nodes, in device-tree order.
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }

    /// End of the highest RAM region.
    pub fn ram_end(&self) -> Option<u64> {
        self.memory().iter().map(Region::end).max()
    }
}

/// Reads the device tree at `addr`.
pub fn parse(addr: usize) -> Result<Platform, Why> {
    let size = check_header(addr)?;
    // SAFETY: `check_header` read a valid header at `addr` whose totalsize is sane; the
    // blob stays in place (the memory check skips it) for the life of the guest.
    let fdt = unsafe { Fdt::from_ptr(addr as *const u8) }
        .map_err(|err| why!("device tree at {addr:#x} does not parse: {err:?}"))?;
    let mut platform = Platform {
        fdt,
        dtb: Region {
            base: addr as u64,
            size: u64::from(size),
        },
        bootargs: "",
        memory: [Region::default(); MAX_REGIONS],
        memory_count: 0,
        cpus: [0; MAX_CPUS],
        cpu_count: 0,
        cpus_in_dtb: 0,
        uart: None,
    };
    read_chosen(&mut platform);
    read_memory(&mut platform);
    read_cpus(&mut platform);
    Ok(platform)
}

/// Checks the header of the blob at `addr`; returns its total size.
fn check_header(addr: usize) -> Result<u32, Why> {
    if addr == 0 || !addr.is_multiple_of(4) {
        return Err(why!("no device tree: boot register holds {addr:#x}"));
    }
    // SAFETY: the boot protocol hands over the device tree address in a register; the
    // first two words of the header are read to validate it before anything else.
    let (magic, size) = unsafe {
        (
            u32::from_be(crate::mmio::read32(addr)),
            u32::from_be(crate::mmio::read32(addr + 4)),
        )
    };
    if magic != FDT_MAGIC {
        return Err(why!("no device tree at {addr:#x} (magic {magic:#x})"));
    }
    if !(40..=MAX_DTB_SIZE).contains(&size) {
        return Err(why!("device tree at {addr:#x} has totalsize {size:#x}"));
    }
    Ok(size)
}

/// A string property without its terminating NUL.
pub fn prop_str<'a>(node: &FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
    let value = node.property(name)?.value;
    let text = value.strip_suffix(&[0]).unwrap_or(value);
    core::str::from_utf8(text).ok()
}

/// Whether `node`'s `compatible` list contains `want`.
pub fn is_compatible(node: &FdtNode<'_, '_>, want: &str) -> bool {
    node.compatible()
        .is_some_and(|list| list.all().any(|c| c == want))
}

/// The first `reg` entry of `node`, if it has one with a size.
pub fn first_reg(node: &FdtNode<'_, '_>) -> Option<Region> {
    let reg = node.reg()?.next()?;
    Some(Region {
        base: reg.starting_address as u64,
        size: reg.size? as u64,
    })
}

fn read_chosen(platform: &mut Platform) {
    let Some(chosen) = platform.fdt.find_node("/chosen") else {
        return;
    };
    platform.bootargs = prop_str(&chosen, "bootargs").unwrap_or("");
    let Some(path) = prop_str(&chosen, "stdout-path") else {
        return;
    };
    // "path:options" — the options (baud rate etc.) do not matter to a polled UART.
    let path = path.split(':').next().unwrap_or(path);
    if let Some(node) = platform.fdt.find_node(path) {
        platform.uart = uart_of(&node);
    }
}

/// The UART `node` describes, if the console can drive it.
fn uart_of(node: &FdtNode<'_, '_>) -> Option<Uart> {
    let base = first_reg(node)?.base;
    if is_compatible(node, "arm,pl011") {
        return Some(Uart {
            kind: UartKind::Pl011,
            base,
            reg_shift: 0,
        });
    }
    if is_compatible(node, "ns16550a") || is_compatible(node, "ns16550") {
        let reg_shift = node
            .property("reg-shift")
            .and_then(|p| p.as_usize())
            .unwrap_or(0);
        return Some(Uart {
            kind: UartKind::Ns16550,
            base,
            reg_shift: reg_shift.min(4) as u32,
        });
    }
    None
}

fn read_memory(platform: &mut Platform) {
    let mut count = 0;
    for node in platform.fdt.all_nodes() {
        if prop_str(&node, "device_type") != Some("memory") {
            continue;
        }
        let Some(regs) = node.reg() else {
            continue;
        };
        for reg in regs {
            let size = reg.size.unwrap_or(0) as u64;
            if count < MAX_REGIONS && size > 0 {
                platform.memory[count] = Region {
                    base: reg.starting_address as u64,
                    size,
                };
                count += 1;
            }
        }
    }
    platform.memory_count = count;
}

fn read_cpus(platform: &mut Platform) {
    let Some(cpus) = platform.fdt.find_node("/cpus") else {
        return;
    };
    let mut count = 0;
    let mut total = 0;
    for node in cpus.children() {
        if node.name.split('@').next() != Some("cpu") {
            continue;
        }
        let Some(id) = node.reg().and_then(|mut r| r.next()) else {
            continue;
        };
        total += 1;
        if count < MAX_CPUS {
            platform.cpus[count] = id.starting_address as u64;
            count += 1;
        }
    }
    platform.cpu_count = count;
    platform.cpus_in_dtb = total;
}
