//! What the guest learns about its VM from the device tree it was booted with: RAM,
//! CPUs, the console UART and the boot arguments. Architecture-specific nodes (interrupt
//! controller, timer, firmware) are read by `arch` from [`Platform::fdt`].
//!
//! The device tree comes from the hypervisor under test, so nothing here trusts it:
//! missing or odd pieces become `None`/empty, which the checks then report.

use crate::console::{Uart, UartKind};
use crate::fdt::{Fdt, Node};
use crate::why::Why;

/// Most memory regions recorded.
pub const MAX_REGIONS: usize = 8;
/// Most CPUs the guest handles (one stack each); more in the device tree are ignored.
pub const MAX_CPUS: usize = 8;

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
    /// The device tree (it stays where the hypervisor put it).
    pub fdt: Fdt,
    /// Where the device tree blob lies.
    pub dtb: Region,
    /// `/chosen/bootargs` (empty if absent).
    pub bootargs: &'static str,
    memory: [Region; MAX_REGIONS],
    memory_count: usize,
    /// `/reserved-memory` children with a `reg` (firmware's own memory, such as
    /// OpenSBI's on plain QEMU riscv64): RAM the guest must not touch.
    reserved: [Region; MAX_REGIONS],
    reserved_count: usize,
    cpus: [u64; MAX_CPUS],
    cpu_count: usize,
    /// CPU nodes in the device tree, including any beyond [`MAX_CPUS`].
    pub cpus_in_dtb: usize,
    /// The UART `/chosen/stdout-path` names, if the guest can drive it.
    pub uart: Option<Uart>,
}

impl Platform {
    /// RAM regions from the memory nodes, in device-tree order.
    pub fn memory(&self) -> &[Region] {
        &self.memory[..self.memory_count]
    }

    /// Reserved RAM regions, in device-tree order.
    pub fn reserved(&self) -> &[Region] {
        &self.reserved[..self.reserved_count]
    }

    /// Hardware ids (`reg`) of the CPU nodes, in device-tree order.
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }

    /// End of the highest RAM region.
    pub fn ram_end(&self) -> Option<u64> {
        self.memory().iter().map(Region::end).max()
    }

    /// A VM described by firmware that hands over no device tree (x86's Multiboot):
    /// no regions or CPUs yet (see [`Self::add_memory`], [`Self::add_reserved`],
    /// [`Self::add_cpu`]); its device tree has no nodes.
    pub fn without_dtb(bootargs: &'static str, uart: Option<Uart>) -> Self {
        Self {
            fdt: Fdt::empty(),
            dtb: Region::default(),
            bootargs,
            memory: [Region::default(); MAX_REGIONS],
            memory_count: 0,
            reserved: [Region::default(); MAX_REGIONS],
            reserved_count: 0,
            cpus: [0; MAX_CPUS],
            cpu_count: 0,
            cpus_in_dtb: 0,
            uart,
        }
    }

    /// One more RAM region (false if there is no room left for it).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn add_memory(&mut self, region: Region) -> bool {
        push(&mut self.memory, &mut self.memory_count, region)
    }

    /// One more region of RAM not to touch (false if there is no room left for it).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn add_reserved(&mut self, region: Region) -> bool {
        push(&mut self.reserved, &mut self.reserved_count, region)
    }

    /// One more CPU by hardware id (counted even beyond [`MAX_CPUS`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn add_cpu(&mut self, id: u64) {
        self.cpus_in_dtb += 1;
        if self.cpu_count < MAX_CPUS {
            self.cpus[self.cpu_count] = id;
            self.cpu_count += 1;
        }
    }
}

fn push(list: &mut [Region; MAX_REGIONS], count: &mut usize, region: Region) -> bool {
    if *count >= MAX_REGIONS || region.size == 0 {
        return false;
    }
    list[*count] = region;
    *count += 1;
    true
}

/// Reads the device tree at `addr`.
pub fn parse(addr: usize) -> Result<Platform, Why> {
    // SAFETY: the boot protocol hands the device tree's address over in a register; the
    // blob is only read, and stays in place (the memory check skips it) for good.
    let fdt = unsafe { Fdt::from_addr(addr) }?;
    let (base, size) = fdt.extent();
    let mut platform = Platform {
        fdt,
        dtb: Region {
            base: base as u64,
            size: size as u64,
        },
        ..Platform::without_dtb("", None)
    };
    read_chosen(&mut platform);
    read_memory(&mut platform);
    read_reserved(&mut platform);
    read_cpus(&mut platform);
    Ok(platform)
}

/// Whether `node` is a CPU node (`cpu@<id>` under `/cpus`).
pub fn is_cpu_node(node: &Node) -> bool {
    node.name.split('@').next() == Some("cpu")
}

fn read_chosen(platform: &mut Platform) {
    let Some(chosen) = platform.fdt.find("/chosen") else {
        return;
    };
    platform.bootargs = chosen.prop_str("bootargs").unwrap_or("");
    let Some(path) = chosen.prop_str("stdout-path") else {
        return;
    };
    // "path:options" — the options (baud rate etc.) do not matter to a polled UART.
    let path = path.split(':').next().unwrap_or(path);
    if let Some(node) = platform.fdt.find(path) {
        platform.uart = uart_of(&node);
    }
}

/// The UART `node` describes, if the console can drive it.
fn uart_of(node: &Node) -> Option<Uart> {
    let (base, _) = node.reg().next()?;
    if node.is_compatible("arm,pl011") {
        return Some(Uart {
            kind: UartKind::Pl011,
            base,
            reg_shift: 0,
        });
    }
    if node.is_compatible("ns16550a") || node.is_compatible("ns16550") {
        return Some(Uart {
            kind: UartKind::Ns16550,
            base,
            reg_shift: node.prop_u32("reg-shift").unwrap_or(0).min(4),
        });
    }
    None
}

fn read_reserved(platform: &mut Platform) {
    let Some(node) = platform.fdt.find("/reserved-memory") else {
        return;
    };
    let mut count = 0;
    for child in node.children() {
        for (base, size) in child.reg() {
            if count < MAX_REGIONS && size > 0 {
                platform.reserved[count] = Region { base, size };
                count += 1;
            }
        }
    }
    platform.reserved_count = count;
}

fn read_memory(platform: &mut Platform) {
    let mut count = 0;
    let memory_nodes = platform
        .fdt
        .nodes()
        .filter(|node| node.prop_str("device_type") == Some("memory"));
    for node in memory_nodes {
        for (base, size) in node.reg() {
            if count < MAX_REGIONS && size > 0 {
                platform.memory[count] = Region { base, size };
                count += 1;
            }
        }
    }
    platform.memory_count = count;
}

fn read_cpus(platform: &mut Platform) {
    let Some(cpus) = platform.fdt.find("/cpus") else {
        return;
    };
    let mut count = 0;
    let mut total = 0;
    for node in cpus.children().filter(is_cpu_node) {
        let Some((id, _)) = node.reg().next() else {
            continue;
        };
        total += 1;
        if count < MAX_CPUS {
            platform.cpus[count] = id;
            count += 1;
        }
    }
    platform.cpu_count = count;
    platform.cpus_in_dtb = total;
}
