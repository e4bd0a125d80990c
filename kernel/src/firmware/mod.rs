//! What the board is, as the boot firmware described it: one neutral description,
//! [`BoardInfo`] (RAM, reserved ranges, CPU ids, console UART, interrupt controller,
//! timer, firmware interfaces, initrd), filled by a reader of whatever the firmware
//! handed over: the device tree ([`fdt`], for Arm and RISC-V trees alike), or on x86
//! the PVH start information ([`pvh`]: the memory map) and the ACPI tables it points
//! to ([`acpi`]: CPUs, local APIC, I/O APICs, power-off).
//!
//! A reader reports what it found and fails only when the description is unusable
//! for any architecture (malformed, no RAM, no CPU, more than the fixed capacity). It
//! does not judge whether *this* architecture can run there: the architecture reads
//! the fields it needs and refuses with a message when one is missing (no GIC on an
//! Arm board, no timebase on a RISC-V one).
//!
//! Readers run before the heap exists, so everything here is fixed-capacity and
//! allocation-free.

pub mod acpi;
pub mod fdt;
pub mod isa;
pub mod modules;
pub mod pvh;

pub use isa::Isa;

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

/// The usable CPUs, in firmware order, each with the ISA the firmware gave for it
/// (RISC-V harts; `None` where the firmware says nothing, as on Arm).
#[derive(Clone, Copy, Debug)]
pub struct CpuList {
    ids: [u64; MAX_CPUS],
    isa: [Option<Isa>; MAX_CPUS],
    len: usize,
}

impl Default for CpuList {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuList {
    pub const fn new() -> Self {
        Self {
            ids: [0; MAX_CPUS],
            isa: [None; MAX_CPUS],
            len: 0,
        }
    }
    /// Appends a CPU; `Err` when the list is full.
    pub fn push(&mut self, id: u64, isa: Option<Isa>) -> Result<(), u64> {
        if self.len == MAX_CPUS {
            return Err(id);
        }
        self.ids[self.len] = id;
        self.isa[self.len] = isa;
        self.len += 1;
        Ok(())
    }
    /// Firmware ids (MPIDR affinity, hart id, APIC id).
    pub fn ids(&self) -> &[u64] {
        &self.ids[..self.len]
    }
    /// The ISA of each CPU of [`CpuList::ids`].
    pub fn isas(&self) -> &[Option<Isa>] {
        &self.isa[..self.len]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (QEMU virt, Phytium).
    Pl011,
    /// 16550-compatible (Rockchip dw-apb-uart, QEMU riscv virt): registers
    /// `1 << reg_shift` apart, accessed `reg_io_width` bytes wide.
    Ns16550 { reg_shift: u8, reg_io_width: u8 },
    /// 16550 on the x86 I/O port bus: [`Uart::base`] is its first port (COM1:
    /// 0x3f8), its 8 registers one port apart, a byte wide.
    Port16550,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub base: u64,
    pub size: u64,
    pub kind: UartKind,
    /// The UART interrupt as the board's interrupt controller numbers it, if the
    /// firmware wires it there: the GIC INTID (SPI number + 32), the PLIC source.
    pub irq: Option<u32>,
}

/// An Arm generic interrupt controller.
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

/// The RISC-V platform-level interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plic {
    pub base: u64,
    pub size: u64,
    /// The highest interrupt source number.
    pub ndev: u32,
    /// Supervisor-mode context of each hart, in the order of [`BoardInfo::cpus`].
    pub s_context: [Option<u16>; MAX_CPUS],
}

/// The x86 advanced programmable interrupt controllers (ACPI MADT): every CPU's
/// local APIC (same physical address on each) and the first I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Apic {
    /// Physical address of the local APIC registers (xAPIC mode).
    pub lapic: u64,
    /// The first I/O APIC's registers and the first global interrupt it serves.
    pub ioapic: Option<(u64, u32)>,
}

/// Size of the local APIC and the I/O APIC register windows.
pub const LAPIC_SIZE: u64 = 0x1000;
pub const IOAPIC_SIZE: u64 = 0x1000;

/// The board's interrupt controller, as data: what the readers know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqController {
    Gic(Gic),
    Plic(Plic),
    Apic(Apic),
}

impl IrqController {
    /// Its name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            IrqController::Gic(Gic::V2 { .. }) => "GICv2",
            IrqController::Gic(Gic::V3 { .. }) => "GICv3",
            IrqController::Plic(_) => "PLIC",
            IrqController::Apic(_) => "APIC",
        }
    }
}

/// Arm generic timer PPIs as GIC INTIDs (PPI number + 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericTimer {
    pub sec_phys: u32,
    pub phys: u32,
    pub virt: u32,
    pub hyp_phys: u32,
}

/// The per-CPU timer the firmware describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The Arm generic timer and its interrupts.
    Generic(GenericTimer),
    /// A free-running counter of this rate (the RISC-V `time` CSR).
    Timebase { hz: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    Smc,
    Hvc,
}

/// ACPI fixed hardware (FADT) the hypervisor uses: power-off and the PM timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcpiFixed {
    /// I/O ports of the PM1a and PM1b control registers.
    pub pm1a_cnt: Option<u16>,
    pub pm1b_cnt: Option<u16>,
    /// SLP_TYPa / SLP_TYPb of the S5 (soft-off) state, from the DSDT's `\_S5`.
    pub s5: Option<(u16, u16)>,
    /// I/O port of the 3.579545 MHz PM timer, and whether it counts 32 bits (else 24).
    pub pm_timer: Option<(u16, bool)>,
}

/// Interfaces to the firmware and power devices the hypervisor calls to start CPUs
/// and end the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirmwareInterfaces {
    /// Arm PSCI and its conduit.
    pub psci: Option<PsciMethod>,
    /// The SiFive test device ("finisher") QEMU's RISC-V virt board has: writing it
    /// ends the run with an exit status.
    pub sifive_test: Option<Range>,
    /// x86: ACPI's power-off and PM timer.
    pub acpi: Option<AcpiFixed>,
}

/// The board, as the firmware described it.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoardInfo {
    /// Every RAM range, in firmware order.
    pub ram: RangeList,
    /// Ranges of RAM the firmware keeps (`/memreserve/`, `/reserved-memory`).
    pub reserved: RangeList,
    /// The usable CPUs; a CPU's index here is what VM configs place vCPUs on.
    pub cpus: CpuList,
    /// The hypervisor's console UART.
    pub console: Option<Uart>,
    pub irq_controller: Option<IrqController>,
    pub timer: Option<Timer>,
    pub firmware: FirmwareInterfaces,
    /// An initial ramdisk the boot loader placed, if it says so.
    pub initrd: Option<Range>,
    /// The firmware's device tree, when it handed one over: devices can be named by
    /// their path in it (passthrough of a node).
    pub device_tree: Option<&'static [u8]>,
    /// virtio-mmio transports (`virtio,mmio`; most empty on QEMU), where the
    /// hypervisor looks for the disk of fs VMs. Past [`MAX_RANGES`] they are ignored.
    pub virtio_mmio: RangeList,
    /// The transport of the disk the hypervisor reads (set once it is found): never
    /// given to a VM.
    pub disk: Option<Range>,
}

/// Everything the firmware handed over at boot, read by the reader the architecture
/// chose ([`crate::hal::Cpu::discover`]).
pub struct Handover {
    pub board: BoardInfo,
    /// Files the bootloader loaded for VMs read from the card.
    pub modules: modules::Modules<'static>,
    /// Memory the handed-over data itself occupies (the DTB): never handed out, as
    /// the board description and the modules point into it.
    pub occupies: Range,
}

impl BoardInfo {
    /// An empty description, for readers to fill.
    pub const fn new() -> Self {
        Self {
            ram: RangeList::new(),
            reserved: RangeList::new(),
            cpus: CpuList::new(),
            console: None,
            irq_controller: None,
            timer: None,
            firmware: FirmwareInterfaces {
                psci: None,
                sifive_test: None,
                acpi: None,
            },
            initrd: None,
            device_tree: None,
            virtio_mmio: RangeList::new(),
            disk: None,
        }
    }

    pub fn ram(&self) -> &[Range] {
        self.ram.as_slice()
    }

    pub fn reserved(&self) -> &[Range] {
        self.reserved.as_slice()
    }

    /// Firmware ids of the usable CPUs (MPIDR, hart id, APIC id), in firmware order.
    pub fn cpus(&self) -> &[u64] {
        self.cpus.ids()
    }

    pub fn console(&self) -> Option<Uart> {
        self.console
    }

    /// The ISA of the CPU with firmware id `id`, if the firmware gave one.
    pub fn isa_of(&self, id: u64) -> Option<Isa> {
        let i = self.cpus().iter().position(|&c| c == id)?;
        self.cpus.isas().get(i).copied().flatten()
    }

    /// What every CPU has; `None` unless the firmware gave every CPU's ISA.
    pub fn common_isa(&self) -> Option<Isa> {
        let isas = self.cpus.isas();
        if isas.is_empty() {
            return None;
        }
        isas.iter()
            .try_fold(u64::MAX, |acc, i| i.map(|i| acc & i.0))
            .map(Isa)
    }

    /// The host windows the hypervisor keeps (its interrupt controller's frames, its
    /// console, the power device it ends the machine with, the disk it reads): never passed through to
    /// a VM (`vmconfig::host`, the rule xtask checks against the board file).
    pub fn kept_windows(&self) -> alloc::vec::Vec<vmconfig::host::HostWindow> {
        use vmconfig::host::{self as h, HostWindow};
        let w = |what, r: Range| HostWindow::new(what, r.base, r.size);
        let mut out = alloc::vec::Vec::new();
        match self.irq_controller {
            Some(IrqController::Gic(Gic::V2 {
                gicd,
                gicc,
                gich,
                gicv,
                ..
            })) => {
                out.push(w(h::GICD, gicd));
                out.push(w(h::GICC, gicc));
                out.extend(gich.map(|r| w(h::GICH, r)));
                out.extend(gicv.map(|r| w(h::GICV, r)));
            }
            Some(IrqController::Gic(Gic::V3 { gicd, gicr, .. })) => {
                out.push(w(h::GICD, gicd));
                out.push(w(h::GICR, gicr));
            }
            Some(IrqController::Plic(p)) => out.push(HostWindow::new(h::PLIC, p.base, p.size)),
            Some(IrqController::Apic(a)) => {
                out.push(HostWindow::new(h::LAPIC, a.lapic, LAPIC_SIZE));
                out.extend(
                    a.ioapic
                        .map(|(base, _)| HostWindow::new(h::IOAPIC, base, IOAPIC_SIZE)),
                );
            }
            None => {}
        }
        // A console on the I/O port bus has no window in the physical address space.
        if let Some(u) = self.console.filter(|u| u.kind != UartKind::Port16550) {
            out.push(HostWindow::new(h::CONSOLE, u.base, u.size));
        }
        out.extend(self.firmware.sifive_test.map(|r| w(h::POWER, r)));
        out.extend(self.disk.map(|r| w(h::DISK, r)));
        out
    }

    pub fn gic(&self) -> Option<&Gic> {
        match &self.irq_controller {
            Some(IrqController::Gic(g)) => Some(g),
            _ => None,
        }
    }

    pub fn apic(&self) -> Option<&Apic> {
        match &self.irq_controller {
            Some(IrqController::Apic(a)) => Some(a),
            _ => None,
        }
    }

    pub fn plic(&self) -> Option<&Plic> {
        match &self.irq_controller {
            Some(IrqController::Plic(p)) => Some(p),
            _ => None,
        }
    }

    pub fn generic_timer(&self) -> Option<GenericTimer> {
        match self.timer {
            Some(Timer::Generic(t)) => Some(t),
            _ => None,
        }
    }

    /// The counter rate, when the firmware gives it (RISC-V timebase).
    pub fn timebase_hz(&self) -> Option<u64> {
        match self.timer {
            Some(Timer::Timebase { hz }) if hz != 0 => Some(hz),
            _ => None,
        }
    }
}

/// Why a reader could not describe the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// Nothing usable at the address the firmware handed over (for the FDT reader:
    /// no DTB header there).
    NoHandover,
    /// The blob is not valid (for the FDT reader: refused by `fdt::check`).
    BadDtb,
    /// The ACPI tables are missing or not valid (x86).
    BadAcpi(&'static str),
    NoMemory,
    NoCpus,
    /// More ranges or CPUs than the fixed capacity.
    TooMany(&'static str),
}
