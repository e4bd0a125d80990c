//! The device-tree reader: one allocation-free walk over the boot DTB, for Arm and
//! RISC-V trees alike, that fills a [`BoardInfo`]: RAM, reserved ranges, CPUs (with
//! each hart's ISA on RISC-V), the console UART, the interrupt controller (GIC or
//! PLIC, [`intc`]), the timer (generic-timer PPIs or the timebase), PSCI and the
//! SiFive test device. Interrupt specifiers are decoded once the controller is known.
//!
//! The blob is checked structurally first ([`check`]), so a malformed DTB is an error
//! value, never a panic inside the `fdt` crate.

mod intc;
pub mod modules;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_riscv;

pub use intc::GICR_STRIDE;
// The device-tree helpers and the structural check live in vmconfig, which resolves
// device-tree passthrough paths with them (in xtask and here alike).
pub use modules::boot_modules;
pub use vmconfig::devtree::{check, dt, gic_intid};

use fdt::Fdt;

use super::{
    BoardInfo, DiscoveryError, Handover, IrqController, Isa, PsciMethod, Range, RangeList, Timer,
    Uart, UartKind, MAX_CPUS,
};
use dt::{Node, NodePath};
use intc::{GicSeen, Irqs, PlicSeen, NO_IRQS};

const PL011: &[&str] = &["arm,pl011"];
const NS16550: &[&str] = &["snps,dw-apb-uart", "ns16550a", "ns16550"];
const TIMER: &[&str] = &["arm,armv8-timer", "arm,armv7-timer"];
const SIFIVE_TEST: &[&str] = &["sifive,test0", "sifive,test1"];
const VIRTIO_MMIO: &[&str] = &["virtio,mmio"];
const CPU_INTC: &[&str] = &["riscv,cpu-intc"];
const RISCV_HART: &[&str] = &["riscv"];
/// MPIDR affinity fields Aff3 (39:32) and Aff2..Aff0 (23:0).
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// Reads what a device-tree boot protocol hands over (aarch64 `x0`, riscv64 `a1`):
/// the DTB at physical address `addr`, the board it describes and its boot modules.
pub fn handover(addr: u64) -> Result<Handover, DiscoveryError> {
    let blob = blob_at(addr).ok_or(DiscoveryError::NoHandover)?;
    let mut board = read(blob)?;
    board.device_tree = Some(blob);
    crate::entropy::init(rng_seed(blob).unwrap_or_default());
    Ok(Handover {
        board,
        modules: boot_modules(blob),
        occupies: Range {
            base: addr,
            size: blob.len() as u64,
        },
    })
}

/// The firmware's seed for the random number generator, `/chosen/rng-seed`.
pub fn rng_seed(dtb: &[u8]) -> Option<&[u8]> {
    let fdt = Fdt::new(dtb).ok()?;
    let chosen = dt::child(dt::root(&fdt)?, "chosen")?;
    dt::prop(chosen, "rng-seed")
}

/// The DTB at `addr`, as long as its header says, or `None` without a DTB header.
fn blob_at(addr: u64) -> Option<&'static [u8]> {
    if addr == 0 || !addr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot protocol hands over a DTB at `addr`: its 40-byte header is
    // readable and nothing writes it.
    let header = unsafe { crate::mm::phys::slice(addr, 40) };
    if header[..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return None;
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    // SAFETY: the header says the blob is `size` bytes; the boot sequence keeps it
    // out of the frame allocator (`Handover::occupies`), so it stays as it is.
    Some(unsafe { crate::mm::phys::slice(addr, u64::from(size)) })
}

/// Reads the board from the DTB `dtb`.
pub fn read(dtb: &[u8]) -> Result<BoardInfo, DiscoveryError> {
    read_with_ram(dtb, &[])
}

/// Like [`read`], but when the DTB has no usable `/memory` (a kernel-tree board DTB
/// that firmware did not fix up), RAM is taken from `fallback_ram` (board file hints).
pub fn read_with_ram(dtb: &[u8], fallback_ram: &[Range]) -> Result<BoardInfo, DiscoveryError> {
    check::check(dtb).map_err(|_| DiscoveryError::BadDtb)?;
    let fdt = Fdt::new(dtb).map_err(|_| DiscoveryError::BadDtb)?;
    let chosen = chosen(&fdt);
    let mut c = Collector::new(chosen.stdout);
    memreserve(&fdt, &mut c);
    dt::walk(&fdt, &mut |path| c.visit(path));
    if c.board.ram().is_empty() {
        fallback_ram.iter().for_each(|r| c.add_ram(*r));
    }
    if let Some(what) = c.overflow {
        return Err(DiscoveryError::TooMany(what));
    }
    c.finish(chosen.initrd)
}

/// A UART node seen during the walk.
#[derive(Clone, Copy)]
struct UartSeen<'a> {
    base: u64,
    size: u64,
    kind: UartKind,
    irqs: Irqs<'a>,
}

/// Everything collected by the walk: what is final goes straight into `board`.
struct Collector<'a> {
    stdout: Option<NodePath<'a>>,
    board: BoardInfo,
    /// Phandle of each hart's `riscv,cpu-intc` node, in the order of the CPUs.
    hart_intc: [Option<u32>; MAX_CPUS],
    timebase: Option<u64>,
    stdout_uart: Option<UartSeen<'a>>,
    first_uart: Option<UartSeen<'a>>,
    gic: Option<GicSeen<'a>>,
    plic: Option<PlicSeen<'a>>,
    arm_timer: Option<Irqs<'a>>,
    overflow: Option<&'static str>,
}

/// Appends a non-empty range that does not wrap around, remembering an overflow.
fn push(list: &mut RangeList, what: &'static str, overflow: &mut Option<&'static str>, r: Range) {
    if r.size != 0 && r.base.checked_add(r.size).is_some() && list.push(r).is_err() {
        *overflow = Some(what);
    }
}

/// Whether a `/cpus/cpu` node is a RISC-V hart (else its `reg` is an Arm MPIDR).
fn is_riscv_hart(node: Node<'_, '_>) -> bool {
    dt::prop(node, "riscv,isa").is_some()
        || dt::prop(node, "riscv,isa-extensions").is_some()
        || dt::compatible_with(node, RISCV_HART)
}

/// A hart's ISA: `riscv,isa-extensions` (with `riscv,isa-base`), else `riscv,isa`.
fn hart_isa(node: Node<'_, '_>) -> Option<Isa> {
    match dt::prop(node, "riscv,isa-extensions") {
        Some(list) => Isa::from_extensions(dt::prop_str(node, "riscv,isa-base"), dt::strings(list)),
        None => dt::prop_str(node, "riscv,isa").and_then(Isa::parse),
    }
}

impl<'a> Collector<'a> {
    fn new(stdout: Option<NodePath<'a>>) -> Self {
        Self {
            stdout,
            board: BoardInfo::new(),
            hart_intc: [None; MAX_CPUS],
            timebase: None,
            stdout_uart: None,
            first_uart: None,
            gic: None,
            plic: None,
            arm_timer: None,
            overflow: None,
        }
    }

    fn visit(&mut self, path: &[Node<'_, 'a>]) {
        let Some(&node) = path.last() else { return };
        if !dt::is_enabled(node) {
            return;
        }
        let parent = path.len().checked_sub(2).map(|i| dt::base_name(path[i]));
        let name = dt::base_name(node);
        match (path.len(), parent) {
            (2, _) if name == "memory" || dt::prop_str(node, "device_type") == Some("memory") => {
                self.memory(path)
            }
            (2, _) if name == "psci" => self.psci(node),
            (2, _) if name == "cpus" => {
                self.timebase = dt::prop_u64(node, "timebase-frequency");
            }
            (3, Some("reserved-memory")) => self.reserved_child(path),
            (3, Some("cpus")) if name == "cpu" => self.cpu(path),
            (4, Some("cpu")) if dt::compatible_with(node, CPU_INTC) => self.cpu_intc(path),
            _ => self.device(path),
        }
    }

    fn add_ram(&mut self, r: Range) {
        push(&mut self.board.ram, "memory ranges", &mut self.overflow, r);
    }

    fn add_reserved(&mut self, r: Range) {
        push(
            &mut self.board.reserved,
            "reserved ranges",
            &mut self.overflow,
            r,
        );
    }

    fn memory(&mut self, path: &[Node<'_, 'a>]) {
        for (base, size) in dt::regs(path) {
            self.add_ram(Range { base, size });
        }
    }

    fn reserved_child(&mut self, path: &[Node<'_, 'a>]) {
        for (base, size) in dt::regs(path) {
            self.add_reserved(Range { base, size });
        }
    }

    fn psci(&mut self, node: Node<'_, 'a>) {
        self.board.firmware.psci = match dt::prop_str(node, "method") {
            Some("smc") => Some(PsciMethod::Smc),
            Some("hvc") => Some(PsciMethod::Hvc),
            _ => self.board.firmware.psci,
        };
    }

    /// A CPU: its MPIDR affinity (Arm), or its hart id and ISA (RISC-V; harts without
    /// a 64-bit ISA, or with none given, cannot run this hypervisor and are left out).
    fn cpu(&mut self, path: &[Node<'_, 'a>]) {
        let [.., cpus, node] = path else { return };
        let cells = dt::child_cells(*cpus).addr;
        let Some(reg) = dt::prop(*node, "reg").and_then(|v| dt::read_cells(v, cells)) else {
            return;
        };
        let (id, isa) = if is_riscv_hart(*node) {
            let Some(isa) = hart_isa(*node) else { return };
            (reg, Some(isa))
        } else {
            (reg & MPIDR_AFF_MASK, None)
        };
        if self.board.cpus.push(id, isa).is_err() {
            self.overflow = Some("CPUs");
            return;
        }
        if self.timebase.is_none() {
            self.timebase = dt::prop_u64(*node, "timebase-frequency");
        }
    }

    /// The interrupt controller of the hart visited last (its child node).
    fn cpu_intc(&mut self, path: &[Node<'_, 'a>]) {
        let [.., cpus, cpu, node] = path else { return };
        let Some((&last_id, last)) = self.board.cpus().split_last() else {
            return;
        };
        let cells = dt::child_cells(*cpus).addr;
        let hartid = dt::prop(*cpu, "reg").and_then(|v| dt::read_cells(v, cells));
        if hartid == Some(last_id) {
            self.hart_intc[last.len()] = intc::phandle(*node);
        }
    }

    fn device(&mut self, path: &[Node<'_, 'a>]) {
        let Some(&node) = path.last() else { return };
        self.gic = self.gic.or_else(|| intc::gic_seen(path));
        self.plic = self.plic.or_else(|| intc::plic_seen(path));
        if self.arm_timer.is_none() && dt::compatible_with(node, TIMER) {
            self.arm_timer = intc::irqs_of(path).or(Some(NO_IRQS));
        }
        let psci = dt::prop(node, "compatible")
            .is_some_and(|c| dt::strings(c).any(|s| s.starts_with("arm,psci")));
        if self.board.firmware.psci.is_none() && psci {
            self.psci(node);
        }
        if self.board.firmware.sifive_test.is_none() && dt::compatible_with(node, SIFIVE_TEST) {
            self.board.firmware.sifive_test = dt::regs(path)
                .next()
                .map(|(base, size)| Range { base, size });
        }
        if dt::compatible_with(node, VIRTIO_MMIO) {
            if let Some((base, size)) = dt::regs(path).next() {
                // Extra transports are not needed (the disk is among the first).
                let _ = self.board.virtio_mmio.push(Range { base, size });
            }
        }
        if let Some(uart) = uart_seen(path) {
            if self.stdout.is_some_and(|p| p.matches(path)) {
                self.stdout_uart = Some(uart);
            }
            self.first_uart = self.first_uart.or(Some(uart));
        }
    }

    /// The description, once every node was seen: RAM and CPUs are required; the
    /// interrupt controller is the GIC, else the PLIC; interrupts are decoded
    /// against it.
    fn finish(mut self, initrd: Option<Range>) -> Result<BoardInfo, DiscoveryError> {
        if self.board.ram().is_empty() {
            return Err(DiscoveryError::NoMemory);
        }
        if self.board.cpus().is_empty() {
            return Err(DiscoveryError::NoCpus);
        }
        let gic = self.gic.filter(|g| g.to_gic().is_some());
        self.board.irq_controller = self.irq_controller(gic);
        self.board.timer = self.timer(gic);
        let uart = self.stdout_uart.or(self.first_uart);
        self.board.console = uart.map(|u| u.to_uart(gic, self.plic));
        self.board.initrd = initrd;
        Ok(self.board)
    }

    /// `gic`: the GIC seen, if it has its registers.
    fn irq_controller(&self, gic: Option<GicSeen<'_>>) -> Option<IrqController> {
        if let Some(g) = gic.and_then(GicSeen::to_gic) {
            return Some(IrqController::Gic(g));
        }
        let harts = self.board.cpus().len();
        let plic = self.plic?.to_plic(&self.hart_intc[..harts]);
        Some(IrqController::Plic(plic))
    }

    /// The generic timer if its interrupts decode on the GIC, else the timebase.
    fn timer(&self, gic: Option<GicSeen<'_>>) -> Option<Timer> {
        let generic = gic.zip(self.arm_timer).and_then(|(g, t)| g.timer(t));
        match (generic, self.timebase.filter(|&hz| hz != 0)) {
            (Some(t), _) => Some(Timer::Generic(t)),
            (None, Some(hz)) => Some(Timer::Timebase { hz }),
            (None, None) => None,
        }
    }
}

fn uart_seen<'a>(path: &[Node<'_, 'a>]) -> Option<UartSeen<'a>> {
    let node = *path.last()?;
    let kind = if dt::compatible_with(node, PL011) {
        UartKind::Pl011
    } else if dt::compatible_with(node, NS16550) {
        let shift = dt::prop_u32(node, "reg-shift").unwrap_or(0);
        let width = dt::prop_u32(node, "reg-io-width").unwrap_or(1);
        UartKind::Ns16550 {
            reg_shift: u8::try_from(shift).ok()?,
            reg_io_width: u8::try_from(width).ok()?,
        }
    } else {
        return None;
    };
    let (base, size) = dt::regs(path).next()?;
    let irqs = intc::irqs_of(path).unwrap_or(NO_IRQS);
    Some(UartSeen {
        base,
        size,
        kind,
        irqs,
    })
}

impl UartSeen<'_> {
    /// The UART, its interrupt numbered by the controller it is wired to.
    fn to_uart(self, gic: Option<GicSeen<'_>>, plic: Option<PlicSeen<'_>>) -> Uart {
        let irq = match (gic, plic) {
            (Some(g), _) => g.intid(self.irqs, 0),
            (None, Some(p)) => p.source(self.irqs),
            (None, None) => None,
        };
        Uart {
            base: self.base,
            size: self.size,
            kind: self.kind,
            irq,
        }
    }
}

/// `/chosen` facts read before the walk.
struct Chosen<'a> {
    stdout: Option<NodePath<'a>>,
    initrd: Option<Range>,
}

fn chosen<'a>(fdt: &Fdt<'a>) -> Chosen<'a> {
    let root = dt::root(fdt);
    let chosen = root.and_then(|r| dt::child(r, "chosen"));
    let aliases = root.and_then(|r| dt::child(r, "aliases"));
    let stdout = chosen
        .and_then(|c| {
            dt::prop_str(c, "stdout-path").or_else(|| dt::prop_str(c, "linux,stdout-path"))
        })
        .and_then(|s| dt::resolve_path(aliases, s));
    let initrd = chosen.and_then(|c| {
        let start = dt::prop_u64(c, "linux,initrd-start")?;
        let end = dt::prop_u64(c, "linux,initrd-end")?;
        (end > start).then_some(Range {
            base: start,
            size: end - start,
        })
    });
    Chosen { stdout, initrd }
}

fn memreserve(fdt: &Fdt<'_>, c: &mut Collector<'_>) {
    for r in fdt.memory_reservations() {
        c.add_reserved(Range {
            base: r.address() as u64,
            size: r.size() as u64,
        });
    }
}
