//! Board discovery for riscv64 machines: RAM, reserved ranges (OpenSBI's own region
//! among them), harts with their ISA (`riscv,isa` or `riscv,isa-extensions`), the
//! timebase, the console UART, the PLIC (with the supervisor-mode context of every
//! hart) and the SiFive test device QEMU uses to end a run.
//!
//! Like the aarch64 discovery, one allocation-free walk over a blob that
//! [`super::check::check`] accepted; nothing here panics on a malformed tree.

use fdt::Fdt;

use super::dt::{self, Node};
use super::{check, DiscoveryError, Range, RangeList, Uart, UartKind, MAX_CPUS};

const PLIC: &[&str] = &["riscv,plic0", "sifive,plic-1.0.0"];
const NS16550: &[&str] = &["ns16550a", "ns16550", "snps,dw-apb-uart"];
const SIFIVE_TEST: &[&str] = &["sifive,test0", "sifive,test1"];
const CPU_INTC: &[&str] = &["riscv,cpu-intc"];
/// Local interrupt number of the supervisor external interrupt (SEIP).
const IRQ_S_EXT: u32 = 9;
/// Most PLIC contexts looked at (two per hart on QEMU virt).
const MAX_CONTEXTS: usize = 2 * MAX_CPUS;

/// ISA extensions, as a bit set: single-letter extensions at bits 0..26 ('a'..'z'),
/// the multi-letter ones of [`Isa::NAMED`] from bit 32 on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isa(pub u64);

impl Isa {
    /// Multi-letter extensions this code knows by name (bit 32 + index).
    pub const NAMED: &'static [&'static str] = &[
        "zicsr",
        "zifencei",
        "zihintpause",
        "zba",
        "zbb",
        "zbc",
        "zbs",
        "sstc",
        "svpbmt",
        "svinval",
        "svnapot",
        "zicbom",
        "zicboz",
        "zicntr",
        "zihpm",
    ];

    /// The bit of a single-letter extension.
    pub const fn letter(c: u8) -> Isa {
        Isa(1 << (c - b'a'))
    }

    /// The bit of a named extension, if it is known.
    pub fn named(name: &str) -> Option<Isa> {
        Self::NAMED
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| Isa(1 << (32 + i)))
    }

    pub fn has(self, other: Isa) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub fn has_letter(self, c: u8) -> bool {
        c.is_ascii_lowercase() && self.has(Self::letter(c))
    }

    pub fn has_named(self, name: &str) -> bool {
        Self::named(name).is_some_and(|b| self.has(b))
    }

    /// The hypervisor extension.
    pub fn h(self) -> bool {
        self.has_letter(b'h')
    }

    /// Supervisor-mode timer compare (stimecmp / vstimecmp).
    pub fn sstc(self) -> bool {
        self.has_named("sstc")
    }

    fn add_name(&mut self, name: &str) {
        let name = name.trim();
        match name.as_bytes() {
            [c] if c.is_ascii_alphabetic() => self.add_letter(c.to_ascii_lowercase()),
            _ => {
                if let Some(b) = Self::named(name) {
                    self.0 |= b.0;
                }
            }
        }
    }

    fn add_letter(&mut self, c: u8) {
        if c == b'g' {
            for l in *b"imafd" {
                self.0 |= Self::letter(l).0;
            }
            self.add_name("zicsr");
            self.add_name("zifencei");
        } else if c.is_ascii_lowercase() {
            self.0 |= Self::letter(c).0;
        }
    }

    /// Parses a `riscv,isa` string such as `rv64imafdch_zicsr_zifencei_sstc`.
    /// `None` unless it names a 64-bit base ISA.
    pub fn parse(s: &str) -> Option<Isa> {
        let lower = s.trim();
        let rest = lower
            .strip_prefix("rv64")
            .or_else(|| lower.strip_prefix("RV64"))?;
        let mut isa = Isa::default();
        let mut parts = rest.split('_');
        let first = parts.next().unwrap_or("");
        // Single letters up to the first multi-letter extension (z*, s*, x*).
        let split = first
            .bytes()
            .position(|c| matches!(c.to_ascii_lowercase(), b'z' | b's' | b'x'))
            .unwrap_or(first.len());
        for c in first[..split].bytes() {
            isa.add_letter(c.to_ascii_lowercase());
        }
        if split < first.len() {
            isa.add_name(&first[split..]);
        }
        for p in parts {
            isa.add_name(p);
        }
        Some(isa)
    }

    /// From `riscv,isa-base` and `riscv,isa-extensions` (a string list).
    fn from_extension_list(base: Option<&str>, list: &[u8]) -> Option<Isa> {
        if base.is_some_and(|b| !b.trim().to_ascii_lowercase().starts_with("rv64")) {
            return None;
        }
        let mut isa = Isa::default();
        for name in dt::strings(list) {
            isa.add_name(name);
        }
        Some(isa)
    }
}

/// The platform-level interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plic {
    pub base: u64,
    pub size: u64,
    /// `riscv,ndev`: the highest interrupt source number.
    pub ndev: u32,
    /// Supervisor-mode context of each hart, in the order of [`RiscvPlatform::cpus`].
    pub s_context: [Option<u16>; MAX_CPUS],
}

#[derive(Clone, Copy, Debug)]
pub struct RiscvPlatform {
    /// Every `/memory` range, in DTB order.
    pub ram: RangeList,
    /// `/memreserve/` entries and `/reserved-memory` children (OpenSBI's region).
    pub reserved: RangeList,
    /// Hart id of every enabled hart with a 64-bit ISA, in DTB order.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
    /// The ISA of each hart in `cpus`.
    pub isa: [Isa; MAX_CPUS],
    /// `timebase-frequency` of `/cpus` (or of the first hart): the `time` CSR rate.
    pub timebase_hz: u64,
    /// The console (`/chosen/stdout-path`, else the first 16550); its `irq` is the
    /// PLIC source number.
    pub uart: Option<Uart>,
    pub plic: Option<Plic>,
    /// The SiFive test device ("finisher") QEMU virt has: writing it ends the run.
    pub test_device: Option<Range>,
    /// `/chosen` `linux,initrd-start`/`-end` if present.
    pub initrd: Option<Range>,
}

impl RiscvPlatform {
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }

    /// What every hart has.
    pub fn common_isa(&self) -> Isa {
        Isa(self.isa[..self.cpu_count]
            .iter()
            .fold(u64::MAX, |acc, i| acc & i.0))
    }
}

/// A UART node seen during the walk.
#[derive(Clone, Copy)]
struct UartSeen {
    base: u64,
    size: u64,
    kind: UartKind,
    irq: Option<u32>,
    parent: Option<u32>,
}

/// The PLIC node seen during the walk; contexts are resolved once every hart's
/// interrupt controller phandle is known.
#[derive(Clone, Copy)]
struct PlicSeen<'a> {
    reg: Range,
    ndev: u32,
    phandle: Option<u32>,
    contexts: &'a [u8],
}

struct Collector<'a> {
    stdout: Option<dt::NodePath<'a>>,
    ram: RangeList,
    reserved: RangeList,
    cpus: [u64; MAX_CPUS],
    isa: [Isa; MAX_CPUS],
    /// Phandle of each hart's `riscv,cpu-intc` node.
    intc: [Option<u32>; MAX_CPUS],
    cpu_count: usize,
    timebase: Option<u64>,
    stdout_uart: Option<UartSeen>,
    first_uart: Option<UartSeen>,
    plic: Option<PlicSeen<'a>>,
    test_device: Option<Range>,
    overflow: Option<&'static str>,
}

fn phandle(node: Node<'_, '_>) -> Option<u32> {
    dt::prop_u32(node, "phandle").or_else(|| dt::prop_u32(node, "linux,phandle"))
}

impl<'a> Collector<'a> {
    fn add(
        list: &mut RangeList,
        overflow: &mut Option<&'static str>,
        what: &'static str,
        r: Range,
    ) {
        if r.size != 0 && list.push(r).is_err() {
            *overflow = Some(what);
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
                for (base, size) in dt::regs(path) {
                    Self::add(
                        &mut self.ram,
                        &mut self.overflow,
                        "memory ranges",
                        Range { base, size },
                    );
                }
            }
            (2, _) if name == "cpus" => {
                self.timebase = dt::prop_u64(node, "timebase-frequency");
            }
            (3, Some("reserved-memory")) => {
                for (base, size) in dt::regs(path) {
                    let r = Range { base, size };
                    Self::add(&mut self.reserved, &mut self.overflow, "reserved ranges", r);
                }
            }
            (3, Some("cpus")) if name == "cpu" => self.cpu(path),
            (4, Some("cpu")) if dt::compatible_with(node, CPU_INTC) => self.cpu_intc(path),
            _ => self.device(path),
        }
    }

    fn cpu(&mut self, path: &[Node<'_, 'a>]) {
        let [.., cpus, node] = path else { return };
        let cells = dt::child_cells(*cpus).addr;
        let Some(hartid) = dt::prop(*node, "reg").and_then(|v| dt::read_cells(v, cells)) else {
            return;
        };
        let isa = match dt::prop(*node, "riscv,isa-extensions") {
            Some(list) => Isa::from_extension_list(dt::prop_str(*node, "riscv,isa-base"), list),
            None => dt::prop_str(*node, "riscv,isa").and_then(Isa::parse),
        };
        // Harts without a 64-bit ISA (or with none given) cannot run this hypervisor.
        let Some(isa) = isa else { return };
        if self.cpu_count == MAX_CPUS {
            self.overflow = Some("CPUs");
            return;
        }
        self.cpus[self.cpu_count] = hartid;
        self.isa[self.cpu_count] = isa;
        self.cpu_count += 1;
        if self.timebase.is_none() {
            self.timebase = dt::prop_u64(*node, "timebase-frequency");
        }
    }

    /// The interrupt controller of the hart visited last (its child node).
    fn cpu_intc(&mut self, path: &[Node<'_, 'a>]) {
        let [.., cpu, node] = path else { return };
        let Some(last) = self.cpu_count.checked_sub(1) else {
            return;
        };
        let cells = dt::child_cells(path[path.len() - 3]).addr;
        let hartid = dt::prop(*cpu, "reg").and_then(|v| dt::read_cells(v, cells));
        if hartid == Some(self.cpus[last]) {
            self.intc[last] = phandle(*node);
        }
    }

    fn device(&mut self, path: &[Node<'_, 'a>]) {
        let Some(&node) = path.last() else { return };
        if self.plic.is_none() && dt::compatible_with(node, PLIC) {
            self.plic = plic_seen(path);
        }
        if self.test_device.is_none() && dt::compatible_with(node, SIFIVE_TEST) {
            self.test_device = dt::regs(path)
                .next()
                .map(|(base, size)| Range { base, size });
        }
        if let Some(uart) = uart_seen(path) {
            if self.stdout.is_some_and(|p| p.matches(path)) {
                self.stdout_uart = Some(uart);
            }
            self.first_uart = self.first_uart.or(Some(uart));
        }
    }

    /// The supervisor-mode context of every hart: context `k` is the `k`th
    /// (phandle, irq) pair of the PLIC's `interrupts-extended`.
    fn s_contexts(&self, plic: &PlicSeen<'_>) -> [Option<u16>; MAX_CPUS] {
        let mut out = [None; MAX_CPUS];
        for k in 0..MAX_CONTEXTS {
            let (Some(ph), Some(irq)) = (
                dt::be32_at(plic.contexts, 2 * k),
                dt::be32_at(plic.contexts, 2 * k + 1),
            ) else {
                break;
            };
            if irq != IRQ_S_EXT {
                continue;
            }
            let hart = self.intc[..self.cpu_count]
                .iter()
                .position(|&p| p == Some(ph));
            if let Some(h) = hart {
                out[h] = out[h].or(Some(k as u16));
            }
        }
        out
    }
}

fn plic_seen<'a>(path: &[Node<'_, 'a>]) -> Option<PlicSeen<'a>> {
    let node = *path.last()?;
    let (base, size) = dt::regs(path).next()?;
    Some(PlicSeen {
        reg: Range { base, size },
        ndev: dt::prop_u32(node, "riscv,ndev").unwrap_or(0),
        phandle: phandle(node),
        contexts: dt::prop(node, "interrupts-extended").unwrap_or(&[]),
    })
}

fn uart_seen(path: &[Node<'_, '_>]) -> Option<UartSeen> {
    let node = *path.last()?;
    if !dt::compatible_with(node, NS16550) {
        return None;
    }
    let shift = dt::prop_u32(node, "reg-shift").unwrap_or(0);
    let width = dt::prop_u32(node, "reg-io-width").unwrap_or(1);
    let kind = UartKind::Ns16550 {
        reg_shift: u8::try_from(shift).ok()?,
        reg_io_width: u8::try_from(width).ok()?,
    };
    let (base, size) = dt::regs(path).next()?;
    let parent = path
        .iter()
        .rev()
        .find_map(|n| dt::prop_u32(*n, "interrupt-parent"));
    Some(UartSeen {
        base,
        size,
        kind,
        irq: dt::prop(node, "interrupts").and_then(|v| dt::be32_at(v, 0)),
        parent,
    })
}

/// Parses a riscv64 machine's DTB.
pub fn discover(dtb: &[u8]) -> Result<RiscvPlatform, DiscoveryError> {
    check::check(dtb).map_err(|_| DiscoveryError::BadDtb)?;
    let fdt = Fdt::new(dtb).map_err(|_| DiscoveryError::BadDtb)?;
    let chosen = super::discover::chosen(&fdt);
    let mut c = Collector {
        stdout: chosen.stdout,
        ram: RangeList::new(),
        reserved: RangeList::new(),
        cpus: [0; MAX_CPUS],
        isa: [Isa::default(); MAX_CPUS],
        intc: [None; MAX_CPUS],
        cpu_count: 0,
        timebase: None,
        stdout_uart: None,
        first_uart: None,
        plic: None,
        test_device: None,
        overflow: None,
    };
    for r in fdt.memory_reservations() {
        let (base, size) = (r.address() as u64, r.size() as u64);
        if base.checked_add(size).is_some() {
            Collector::add(
                &mut c.reserved,
                &mut c.overflow,
                "reserved ranges",
                Range { base, size },
            );
        }
    }
    dt::walk(&fdt, &mut |path| c.visit(path));
    if let Some(what) = c.overflow {
        return Err(DiscoveryError::TooMany(what));
    }
    if c.ram.as_slice().is_empty() {
        return Err(DiscoveryError::NoMemory);
    }
    if c.cpu_count == 0 {
        return Err(DiscoveryError::NoCpus);
    }
    let timebase_hz = c
        .timebase
        .filter(|&t| t != 0)
        .ok_or(DiscoveryError::NoTimer)?;
    let plic = c.plic.map(|p| Plic {
        base: p.reg.base,
        size: p.reg.size,
        ndev: p.ndev,
        s_context: c.s_contexts(&p),
    });
    let plic_phandle = c.plic.and_then(|p| p.phandle);
    let uart = c.stdout_uart.or(c.first_uart).map(|u| Uart {
        base: u.base,
        size: u.size,
        kind: u.kind,
        // Only an interrupt wired to the PLIC means something to us.
        irq: u
            .irq
            .filter(|_| u.parent.is_some() && u.parent == plic_phandle),
    });
    Ok(RiscvPlatform {
        ram: c.ram,
        reserved: c.reserved,
        cpus: c.cpus,
        cpu_count: c.cpu_count,
        isa: c.isa,
        timebase_hz,
        uart,
        plic,
        test_device: c.test_device,
        initrd: chosen.initrd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::FdtWriter;
    use alloc::vec::Vec;

    const VIRT: &[u8] = include_bytes!("../../tests/dtbs/qemu-riscv64-virt.dtb");
    const VIRT_NO_H: &[u8] = include_bytes!("../../tests/dtbs/qemu-riscv64-virt-noh.dtb");

    fn r(base: u64, size: u64) -> Range {
        Range { base, size }
    }

    #[test]
    fn qemu_virt() {
        let p = discover(VIRT).unwrap();
        assert_eq!(p.ram.as_slice(), &[r(0x8000_0000, 0x4000_0000)]);
        assert_eq!(p.reserved.as_slice(), &[]);
        assert_eq!(p.cpus(), &[0, 1, 2, 3]);
        assert_eq!(p.timebase_hz, 10_000_000);
        assert_eq!(
            p.uart,
            Some(Uart {
                base: 0x1000_0000,
                size: 0x100,
                kind: UartKind::Ns16550 {
                    reg_shift: 0,
                    reg_io_width: 1
                },
                irq: Some(10),
            })
        );
        let plic = p.plic.unwrap();
        assert_eq!(
            (plic.base, plic.size, plic.ndev),
            (0x0c00_0000, 0x60_0000, 0x60)
        );
        // Contexts alternate M, S per hart: hart n's S-mode context is 2n + 1.
        assert_eq!(&plic.s_context[..4], &[Some(1), Some(3), Some(5), Some(7)]);
        assert_eq!(p.test_device, Some(r(0x10_0000, 0x1000)));
        let isa = p.common_isa();
        assert!(isa.h() && isa.sstc());
        for c in *b"imafdc" {
            assert!(isa.has_letter(c), "{}", c as char);
        }
        assert!(isa.has_named("zifencei") && isa.has_named("zbs"));
        assert!(!isa.has_letter(b'v'));
    }

    #[test]
    fn without_the_h_extension() {
        let p = discover(VIRT_NO_H).unwrap();
        assert!(!p.common_isa().h());
        assert!(p.common_isa().sstc());
        assert_eq!(p.cpus().len(), 4);
    }

    #[test]
    fn isa_strings() {
        let isa = Isa::parse("rv64gch_sstc").unwrap();
        assert!(isa.h() && isa.sstc() && isa.has_named("zicsr") && isa.has_letter(b'd'));
        let isa = Isa::parse("rv64imafdczicsr_zifencei").unwrap();
        assert!(!isa.h() && isa.has_named("zicsr") && isa.has_named("zifencei"));
        assert_eq!(Isa::parse("rv32imac"), None);
        assert_eq!(Isa::parse(""), None);
        assert!(!Isa::parse("rv64i_xtheadvendor").unwrap().h());
        let list = b"i\0m\0a\0h\0sstc\0zicsr\0";
        let isa = Isa::from_extension_list(Some("rv64i"), list).unwrap();
        assert!(isa.h() && isa.sstc() && isa.has_letter(b'm'));
        assert_eq!(Isa::from_extension_list(Some("rv32i"), list), None);
    }

    /// What OpenSBI hands over: the same tree with its own region reserved, a
    /// disabled hart and a hart without `riscv,isa`.
    #[test]
    fn firmware_reserved_memory_and_odd_harts() {
        let fdt = fdt::Fdt::new(VIRT).unwrap();
        let mut w = FdtWriter::new();
        let root = fdt.all_nodes().next().unwrap();
        w.begin_node("").unwrap();
        for p in root.properties() {
            w.property_bytes(p.name, p.value).unwrap();
        }
        w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_null("ranges").unwrap();
        w.begin_node("mmode_resv0@80000000").unwrap();
        w.property_cells("reg", &[0, 0x8000_0000, 0, 0x8_0000])
            .unwrap();
        w.property_null("no-map").unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        for c in root.children().filter(|c| c.name != "cpus") {
            copy(&mut w, c, &|_| true);
        }
        let cpus = root.children().find(|c| c.name == "cpus").unwrap();
        copy(&mut w, cpus, &|n| n.name != "cpu@2");
        w.end_node().unwrap();
        let blob = w.finish().unwrap();
        let p = discover(&blob).unwrap();
        assert_eq!(p.reserved.as_slice(), &[r(0x8000_0000, 0x8_0000)]);
        assert_eq!(p.cpus(), &[0, 1, 3]);
        assert_eq!(
            &p.plic.unwrap().s_context[..3],
            &[Some(1), Some(3), Some(7)]
        );
    }

    fn copy(
        w: &mut FdtWriter,
        n: fdt::node::FdtNode<'_, '_>,
        keep: &dyn Fn(&fdt::node::FdtNode) -> bool,
    ) {
        w.begin_node(n.name).unwrap();
        for p in n.properties() {
            w.property_bytes(p.name, p.value).unwrap();
        }
        for c in n.children().filter(|c| keep(c)) {
            copy(w, c, keep);
        }
        w.end_node().unwrap();
    }

    #[test]
    fn aarch64_discovery_refuses_a_riscv_tree_and_vice_versa() {
        assert_eq!(
            super::super::discover(VIRT).unwrap_err(),
            DiscoveryError::NoInterruptController
        );
        let arm = include_bytes!("../../tests/dtbs/qemu-virt-gicv3.dtb");
        assert_eq!(discover(arm).unwrap_err(), DiscoveryError::NoCpus);
    }

    #[test]
    fn corrupted_blobs_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut b: Vec<u8> = VIRT.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
            }
            let _ = discover(&b);
        }
        for len in (0..VIRT.len()).step_by(97) {
            let _ = discover(&VIRT[..len]);
        }
    }
}
