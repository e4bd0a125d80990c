//! What the board is, discovered from the flattened device tree it was booted with:
//! RAM, reserved ranges, CPUs, the console UART, the interrupt controller, the timer.
//!
//! Runs before the heap exists, so everything here is fixed-capacity and allocation-free.
//! The blob is checked structurally first (`check`), so a malformed DTB is an error
//! value, never a panic inside the `fdt` crate.

pub mod check;
mod discover;
pub mod dt;
pub mod modules;
pub mod riscv;
#[cfg(test)]
mod tests;

pub use discover::{discover_with_ram, gic_intid, GICR_STRIDE};

// The description of the machine the kernel itself runs on: `Platform` (GIC, PSCI)
// for Arm boards, `riscv::RiscvPlatform` (harts, PLIC) for RISC-V ones. The core sees
// either through `hal::Board`; the architecture says which it reads (`hal::Cpu`).

impl crate::hal::Board for Platform {
    fn ram(&self) -> &[Range] {
        self.ram.as_slice()
    }
    fn reserved(&self) -> &[Range] {
        self.reserved.as_slice()
    }
    fn cpus(&self) -> &[u64] {
        Platform::cpus(self)
    }
    fn console(&self) -> Option<Uart> {
        self.uart
    }
}

impl crate::hal::Board for riscv::RiscvPlatform {
    fn ram(&self) -> &[Range] {
        self.ram.as_slice()
    }
    fn reserved(&self) -> &[Range] {
        self.reserved.as_slice()
    }
    fn cpus(&self) -> &[u64] {
        riscv::RiscvPlatform::cpus(self)
    }
    fn console(&self) -> Option<Uart> {
        self.uart
    }
}

/// Most memory / reserved ranges kept; extra ones are reported as an error.
pub const MAX_RANGES: usize = 32;
/// Most CPUs the hypervisor manages.
pub const MAX_CPUS: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// A fixed-capacity list of physical ranges.
#[derive(Clone, Copy, Debug)]
pub struct RangeList {
    items: [Range; MAX_RANGES],
    len: usize,
}

impl Default for RangeList {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeList {
    pub const fn new() -> Self {
        Self {
            items: [Range { base: 0, size: 0 }; MAX_RANGES],
            len: 0,
        }
    }
    /// Appends a range; `Err` when the list is full.
    pub fn push(&mut self, r: Range) -> Result<(), Range> {
        if self.len == MAX_RANGES {
            return Err(r);
        }
        self.items[self.len] = r;
        self.len += 1;
        Ok(())
    }
    pub fn as_slice(&self) -> &[Range] {
        &self.items[..self.len]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (QEMU virt, Phytium).
    Pl011,
    /// 16550-compatible (Rockchip dw-apb-uart): registers `1 << reg_shift` apart,
    /// accessed `reg_io_width` bytes wide.
    Ns16550 { reg_shift: u8, reg_io_width: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub base: u64,
    pub size: u64,
    pub kind: UartKind,
    /// The UART interrupt as its controller numbers it, if the DTB gives one: the GIC
    /// INTID (SPI number + 32) on aarch64, the PLIC source on riscv64.
    pub irq: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    V2 {
        gicd: Range,
        gicc: Range,
        gich: Option<Range>,
        gicv: Option<Range>,
        maint_irq: Option<u32>,
    },
    /// `gicr` is the first redistributor region; each redistributor is
    /// `gicr_stride` bytes (0x20000 for GICv3 without VLPI).
    V3 {
        gicd: Range,
        gicr: Range,
        gicr_stride: u64,
        maint_irq: Option<u32>,
    },
}

/// Arm generic timer PPIs as GIC INTIDs (PPI number + 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub sec_phys: u32,
    pub phys: u32,
    pub virt: u32,
    pub hyp_phys: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    Smc,
    Hvc,
}

#[derive(Clone, Copy, Debug)]
pub struct Platform {
    /// Every `/memory` range, in DTB order.
    pub ram: RangeList,
    /// `/memreserve/` entries and `/reserved-memory` children with a `reg`.
    pub reserved: RangeList,
    /// MPIDR (affinity bits of `reg`) of every enabled `/cpus/cpu@*`, in DTB order.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
    /// The console: `/chosen` `stdout-path` (aliases resolved, `:options` cut), else
    /// the first enabled serial node the code knows.
    pub uart: Option<Uart>,
    pub gic: Gic,
    pub timer: Timer,
    pub psci: Option<PsciMethod>,
    /// `/chosen` `linux,initrd-start`/`-end` if present.
    pub initrd: Option<Range>,
}

impl Platform {
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The blob is not a valid FDT.
    BadDtb,
    NoMemory,
    NoCpus,
    /// No GICv2/GICv3 node found.
    NoInterruptController,
    NoTimer,
    /// More ranges or CPUs than the fixed capacity.
    TooMany(&'static str),
}

/// Parses the DTB at `dtb`. Implemented in `discover.rs`.
pub fn discover(dtb: &[u8]) -> Result<Platform, DiscoveryError> {
    discover::discover(dtb)
}
