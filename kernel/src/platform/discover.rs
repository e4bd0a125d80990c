//! Board discovery from the boot DTB: one allocation-free walk over the tree that
//! collects RAM, reserved ranges, CPUs, UART candidates, the GIC, the timer and PSCI,
//! then interrupt specifiers decoded against the GIC's `#interrupt-cells`.

use fdt::Fdt;

use super::dt::{self, Node, NodePath};
use super::{
    check, DiscoveryError, Gic, Platform, PsciMethod, Range, RangeList, Timer, Uart, UartKind,
    MAX_CPUS,
};

const GIC_V3: &[&str] = &["arm,gic-v3"];
const GIC_V2: &[&str] = &[
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a7-gic",
    "arm,cortex-a9-gic",
    "qcom,msm-qgic2",
];
const PL011: &[&str] = &["arm,pl011"];
const NS16550: &[&str] = &["snps,dw-apb-uart", "ns16550a", "ns16550"];
const TIMER: &[&str] = &["arm,armv8-timer", "arm,armv7-timer"];
/// Default GICv3 redistributor stride (RD_base + SGI_base frames, no VLPI frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// MPIDR affinity fields Aff3 (39:32) and Aff2..Aff0 (23:0).
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// An `interrupts` (or `interrupts-extended`) property kept raw until the GIC's cell
/// count is known.
#[derive(Clone, Copy)]
struct Irqs<'a> {
    value: &'a [u8],
    /// `interrupt-parent` of the node or its nearest ancestor.
    parent: Option<u32>,
    /// `interrupts-extended`: every specifier starts with its controller's phandle.
    extended: bool,
}

const NO_IRQS: Irqs<'static> = Irqs {
    value: &[],
    parent: None,
    extended: false,
};

/// A UART node seen during the walk.
#[derive(Clone, Copy)]
struct UartSeen<'a> {
    base: u64,
    size: u64,
    kind: UartKind,
    irqs: Irqs<'a>,
}

#[derive(Clone, Copy)]
struct GicSeen<'a> {
    compat_v3: bool,
    regs: [Option<Range>; 4],
    stride: Option<u64>,
    phandle: Option<u32>,
    irq_cells: usize,
    irqs: Irqs<'a>,
}

/// Everything collected by the walk.
struct Collector<'a> {
    stdout: Option<NodePath<'a>>,
    ram: RangeList,
    reserved: RangeList,
    cpus: [u64; MAX_CPUS],
    cpu_count: usize,
    stdout_uart: Option<UartSeen<'a>>,
    first_uart: Option<UartSeen<'a>>,
    gic: Option<GicSeen<'a>>,
    timer: Option<Irqs<'a>>,
    psci: Option<PsciMethod>,
    overflow: Option<&'static str>,
}

/// Appends a non-empty range that does not wrap around, remembering an overflow.
fn push(list: &mut RangeList, what: &'static str, overflow: &mut Option<&'static str>, r: Range) {
    if r.size != 0 && r.base.checked_add(r.size).is_some() && list.push(r).is_err() {
        *overflow = Some(what);
    }
}

fn interrupt_parent(path: &[Node<'_, '_>]) -> Option<u32> {
    path.iter()
        .rev()
        .find_map(|n| dt::prop_u32(*n, "interrupt-parent"))
}

fn irqs_of<'a>(path: &[Node<'_, 'a>]) -> Option<Irqs<'a>> {
    let node = *path.last()?;
    if let Some(value) = dt::prop(node, "interrupts-extended") {
        return Some(Irqs {
            value,
            parent: None,
            extended: true,
        });
    }
    let value = dt::prop(node, "interrupts")?;
    Some(Irqs {
        value,
        parent: interrupt_parent(path),
        extended: false,
    })
}

impl<'a> Collector<'a> {
    fn new(stdout: Option<NodePath<'a>>) -> Self {
        Self {
            stdout,
            ram: RangeList::new(),
            reserved: RangeList::new(),
            cpus: [0; MAX_CPUS],
            cpu_count: 0,
            stdout_uart: None,
            first_uart: None,
            gic: None,
            timer: None,
            psci: None,
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
            (3, Some("reserved-memory")) => self.reserved_child(path),
            (3, Some("cpus")) if name == "cpu" => self.cpu(path),
            _ => self.device(path),
        }
    }

    fn add_ram(&mut self, r: Range) {
        push(&mut self.ram, "memory ranges", &mut self.overflow, r);
    }

    fn add_reserved(&mut self, r: Range) {
        push(&mut self.reserved, "reserved ranges", &mut self.overflow, r);
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
        self.psci = match dt::prop_str(node, "method") {
            Some("smc") => Some(PsciMethod::Smc),
            Some("hvc") => Some(PsciMethod::Hvc),
            _ => self.psci,
        };
    }

    fn cpu(&mut self, path: &[Node<'_, 'a>]) {
        let [.., cpus, node] = path else { return };
        let cells = dt::child_cells(*cpus).addr;
        let Some(reg) = dt::prop(*node, "reg").and_then(|v| dt::read_cells(v, cells)) else {
            return;
        };
        if self.cpu_count == MAX_CPUS {
            self.overflow = Some("CPUs");
            return;
        }
        self.cpus[self.cpu_count] = reg & MPIDR_AFF_MASK;
        self.cpu_count += 1;
    }

    fn device(&mut self, path: &[Node<'_, 'a>]) {
        let Some(&node) = path.last() else { return };
        if self.gic.is_none() {
            self.gic = gic_seen(path);
        }
        if self.timer.is_none() && dt::compatible_with(node, TIMER) {
            self.timer = irqs_of(path).or(Some(NO_IRQS));
        }
        if self.psci.is_none()
            && dt::prop(node, "compatible")
                .is_some_and(|c| dt::strings(c).any(|s| s.starts_with("arm,psci")))
        {
            self.psci(node);
        }
        if let Some(uart) = uart_seen(path) {
            if self.stdout.is_some_and(|p| p.matches(path)) {
                self.stdout_uart = Some(uart);
            }
            self.first_uart = self.first_uart.or(Some(uart));
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
    let irqs = irqs_of(path).unwrap_or(NO_IRQS);
    Some(UartSeen {
        base,
        size,
        kind,
        irqs,
    })
}

fn gic_seen<'a>(path: &[Node<'_, 'a>]) -> Option<GicSeen<'a>> {
    let node = *path.last()?;
    let compat_v3 = dt::compatible_with(node, GIC_V3);
    if !compat_v3 && !dt::compatible_with(node, GIC_V2) {
        return None;
    }
    let mut regs = [None; 4];
    for (slot, (base, size)) in regs.iter_mut().zip(dt::regs(path)) {
        *slot = Some(Range { base, size });
    }
    Some(GicSeen {
        compat_v3,
        regs,
        stride: dt::prop_u64(node, "redistributor-stride"),
        phandle: dt::prop_u32(node, "phandle").or_else(|| dt::prop_u32(node, "linux,phandle")),
        irq_cells: dt::prop_u32(node, "#interrupt-cells").map_or(3, |c| c as usize),
        irqs: irqs_of(path).unwrap_or(NO_IRQS),
    })
}

/// Decodes one GIC interrupt specifier (type, number, flags[, ...]) into an INTID.
pub fn gic_intid(kind: u32, number: u32) -> Option<u32> {
    match kind {
        0 if number < 988 => Some(number + 32),
        1 if number < 16 => Some(number + 16),
        // GICv3.1 extended SPI and PPI ranges.
        2 if number < 1024 => Some(number + 4096),
        3 if number < 64 => Some(number + 1056),
        _ => None,
    }
}

impl GicSeen<'_> {
    /// The `index`th interrupt of `irqs`, if it is wired to this GIC.
    fn intid(&self, irqs: Irqs<'_>, index: usize) -> Option<u32> {
        let cells = self.irq_cells;
        if cells < 2 {
            return None;
        }
        if irqs.extended {
            return self.extended_intid(irqs.value, index);
        }
        if let (Some(parent), Some(me)) = (irqs.parent, self.phandle) {
            if parent != me {
                return None;
            }
        }
        let first = index.checked_mul(cells)?;
        gic_intid(
            dt::be32_at(irqs.value, first)?,
            dt::be32_at(irqs.value, first + 1)?,
        )
    }

    /// `interrupts-extended`: `<phandle cells...>` entries. Entries for another
    /// controller have a size we do not know, so decoding stops at the first one.
    fn extended_intid(&self, value: &[u8], index: usize) -> Option<u32> {
        let stride = self.irq_cells + 1;
        for i in 0..=index {
            let at = i.checked_mul(stride)?;
            if Some(dt::be32_at(value, at)?) != self.phandle {
                return None;
            }
            if i == index {
                return gic_intid(dt::be32_at(value, at + 1)?, dt::be32_at(value, at + 2)?);
            }
        }
        None
    }

    fn to_gic(self) -> Result<Gic, DiscoveryError> {
        let maint_irq = self.intid(self.irqs, 0);
        let [Some(gicd), second, third, fourth] = self.regs else {
            return Err(DiscoveryError::NoInterruptController);
        };
        let second = second.ok_or(DiscoveryError::NoInterruptController)?;
        Ok(if self.compat_v3 {
            Gic::V3 {
                gicd,
                gicr: second,
                gicr_stride: self.stride.unwrap_or(GICR_STRIDE),
                maint_irq,
            }
        } else {
            Gic::V2 {
                gicd,
                gicc: second,
                gich: third,
                gicv: fourth,
                maint_irq,
            }
        })
    }

    fn timer(&self, irqs: Irqs<'_>) -> Result<Timer, DiscoveryError> {
        let get = |i| self.intid(irqs, i).ok_or(DiscoveryError::NoTimer);
        Ok(Timer {
            sec_phys: get(0)?,
            phys: get(1)?,
            virt: get(2)?,
            hyp_phys: get(3)?,
        })
    }
}

impl UartSeen<'_> {
    fn to_uart(self, gic: &GicSeen<'_>) -> Uart {
        Uart {
            base: self.base,
            size: self.size,
            kind: self.kind,
            irq: gic.intid(self.irqs, 0),
        }
    }
}

/// `/chosen` facts read before the walk.
pub(super) struct Chosen<'a> {
    pub(super) stdout: Option<NodePath<'a>>,
    pub(super) initrd: Option<Range>,
}

pub(super) fn chosen<'a>(fdt: &Fdt<'a>) -> Chosen<'a> {
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

/// Parses the DTB; see [`super::discover`].
pub fn discover(dtb: &[u8]) -> Result<Platform, DiscoveryError> {
    discover_with_ram(dtb, &[])
}

/// Like [`discover`], but when the DTB has no usable `/memory` (a kernel-tree board DTB
/// that firmware did not fix up), RAM is taken from `fallback_ram` (board file hints).
pub fn discover_with_ram(dtb: &[u8], fallback_ram: &[Range]) -> Result<Platform, DiscoveryError> {
    check::check(dtb).map_err(|_| DiscoveryError::BadDtb)?;
    let fdt = Fdt::new(dtb).map_err(|_| DiscoveryError::BadDtb)?;
    let chosen = chosen(&fdt);
    let mut c = Collector::new(chosen.stdout);
    memreserve(&fdt, &mut c);
    dt::walk(&fdt, &mut |path| c.visit(path));
    if c.ram.as_slice().is_empty() {
        fallback_ram.iter().for_each(|r| c.add_ram(*r));
    }
    if let Some(what) = c.overflow {
        return Err(DiscoveryError::TooMany(what));
    }
    finish(c, chosen.initrd)
}

fn finish(c: Collector<'_>, initrd: Option<Range>) -> Result<Platform, DiscoveryError> {
    if c.ram.as_slice().is_empty() {
        return Err(DiscoveryError::NoMemory);
    }
    if c.cpu_count == 0 {
        return Err(DiscoveryError::NoCpus);
    }
    let gic_seen = c.gic.ok_or(DiscoveryError::NoInterruptController)?;
    let gic = gic_seen.to_gic()?;
    let timer = gic_seen.timer(c.timer.ok_or(DiscoveryError::NoTimer)?)?;
    let uart = c.stdout_uart.or(c.first_uart).map(|u| u.to_uart(&gic_seen));
    Ok(Platform {
        ram: c.ram,
        reserved: c.reserved,
        cpus: c.cpus,
        cpu_count: c.cpu_count,
        uart,
        gic,
        timer,
        psci: c.psci,
        initrd,
    })
}
