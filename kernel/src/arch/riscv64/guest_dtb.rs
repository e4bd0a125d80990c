//! The device tree a VM boots with on riscv64, generated from its configuration: a
//! `riscv-virtio` machine laid out like QEMU virt (what Linux and the test guest
//! know) with the VM's RAM, its harts (hart id = vCPU index, started through SBI HSM)
//! with their local interrupt controllers, the timebase, a PLIC with two contexts per
//! hart (M-mode, never delivered, and S-mode, delivered as VSEIP), an optional 16550
//! console, and `/chosen` (bootargs, stdout-path, initrd).

use crate::fdt::{FdtError, FdtWriter};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Local interrupt numbers a PLIC context is wired to.
const IRQ_M_EXT: u32 = 11;
const IRQ_S_EXT: u32 = 9;
/// Input clock of the 16550 (QEMU virt's value).
const UART_CLOCK_HZ: u32 = 3_686_400;

/// What the guest's harts are.
#[derive(Clone, Copy, Debug)]
pub struct GuestCpus<'a> {
    pub count: usize,
    /// `riscv,isa` of every hart.
    pub isa: &'a str,
    /// `time` CSR frequency.
    pub timebase_hz: u64,
}

/// What the guest DTB describes.
#[derive(Clone, Copy, Debug)]
pub struct GuestDtbSpec<'a> {
    /// RAM regions `(base, size)`.
    pub memory: &'a [(u64, u64)],
    pub cpus: GuestCpus<'a>,
    /// PLIC `(base, size, ndev)`.
    pub plic: Option<(u64, u64, u32)>,
    /// 16550 console `(base, size, PLIC source)`; the source needs a PLIC.
    pub uart: Option<(u64, u64, u32)>,
    pub bootargs: &'a str,
    /// Initial ramdisk `(start, end)` guest-physical, end exclusive.
    pub initrd: Option<(u64, u64)>,
    /// Seed for the guest's random number generator (`/chosen/rng-seed`).
    pub rng_seed: Option<&'a [u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestDtbError {
    NoMemory,
    BadMemory(u64, u64),
    NoVcpus,
    /// The console's interrupt is not a PLIC source (1..=ndev) or there is no PLIC.
    BadUartIrq(u32),
    /// A channel doorbell's interrupt is not a PLIC source (1..=ndev) or there is no PLIC.
    BadDoorbellIrq(u32),
    BadInitrd(u64, u64),
    Fdt(FdtError),
}

impl From<FdtError> for GuestDtbError {
    fn from(e: FdtError) -> Self {
        GuestDtbError::Fdt(e)
    }
}

fn reg_cells(regions: &[(u64, u64)]) -> Vec<u32> {
    let split = |v: u64| [(v >> 32) as u32, v as u32];
    regions
        .iter()
        .flat_map(|&(b, s)| split(b).into_iter().chain(split(s)))
        .collect()
}

fn validate(spec: &GuestDtbSpec<'_>) -> Result<(), GuestDtbError> {
    if spec.memory.is_empty() {
        return Err(GuestDtbError::NoMemory);
    }
    if let Some(&(b, s)) = spec
        .memory
        .iter()
        .find(|(b, s)| *s == 0 || b.checked_add(*s).is_none())
    {
        return Err(GuestDtbError::BadMemory(b, s));
    }
    if spec.cpus.count == 0 {
        return Err(GuestDtbError::NoVcpus);
    }
    if let Some((_, _, irq)) = spec.uart {
        let ndev = spec.plic.map_or(0, |p| p.2);
        if irq == 0 || irq > ndev {
            return Err(GuestDtbError::BadUartIrq(irq));
        }
    }
    match spec.initrd {
        Some((start, end)) if end < start => Err(GuestDtbError::BadInitrd(start, end)),
        _ => Ok(()),
    }
}

fn uart_path(base: u64) -> String {
    format!("/soc/serial@{base:x}")
}

/// Builds the guest DTB for `spec`.
pub fn build(spec: &GuestDtbSpec<'_>) -> Result<Vec<u8>, GuestDtbError> {
    build_with(spec, &[])
}

/// [`build`], with the regions and doorbells of the VM's inter-VM `channels`
/// (`crate::fdt::ivc`; a doorbell's interrupt is a source of the PLIC, which the
/// VM must have).
pub fn build_with(
    spec: &GuestDtbSpec<'_>,
    channels: &[crate::spec::ChannelSpec],
) -> Result<Vec<u8>, GuestDtbError> {
    validate(spec)?;
    let ndev = spec.plic.map_or(0, |p| p.2);
    if let Some(&(_, irq)) = channels
        .iter()
        .filter_map(|c| c.doorbell.as_ref())
        .find(|(_, irq)| *irq == 0 || *irq > ndev)
    {
        return Err(GuestDtbError::BadDoorbellIrq(irq));
    }
    let mut w = FdtWriter::new();
    let intc: Vec<u32> = (0..spec.cpus.count).map(|_| w.alloc_phandle()).collect();
    let plic_phandle = spec.plic.map(|_| w.alloc_phandle());
    w.begin_node("")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_string("compatible", "riscv-virtio")?;
    w.property_string("model", "riscv-virtio,qemu")?;
    chosen(&mut w, spec)?;
    for &(base, size) in spec.memory {
        w.begin_node(&format!("memory@{base:x}"))?;
        w.property_string("device_type", "memory")?;
        w.property_cells("reg", &reg_cells(&[(base, size)]))?;
        w.end_node()?;
    }
    cpus(&mut w, &spec.cpus, &intc)?;
    w.begin_node("soc")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_string("compatible", "simple-bus")?;
    w.property_null("ranges")?;
    if let (Some(plic), Some(phandle)) = (spec.plic, plic_phandle) {
        plic_node(&mut w, plic, &intc, phandle)?;
    }
    // `validate` refused a console without a PLIC.
    if let (Some(uart), Some(phandle)) = (spec.uart, plic_phandle) {
        uart_node(&mut w, uart, phandle)?;
    }
    w.end_node()?;
    let regions = crate::fdt::ivc::regions(&mut w, channels)?;
    let source = |irq: u32| alloc::vec![irq];
    crate::fdt::ivc::doorbells(&mut w, channels, &regions, source, plic_phandle)?;
    w.end_node()?;
    Ok(w.finish()?)
}

fn chosen(w: &mut FdtWriter, spec: &GuestDtbSpec<'_>) -> Result<(), GuestDtbError> {
    let stdout = spec.uart.map(|(base, _, _)| uart_path(base));
    let c = crate::fdt::chosen::Chosen {
        bootargs: spec.bootargs,
        stdout_path: stdout.as_deref(),
        initrd: spec.initrd,
        rng_seed: spec.rng_seed,
    };
    Ok(crate::fdt::chosen::write(w, &c)?)
}

fn cpus(w: &mut FdtWriter, cpus: &GuestCpus<'_>, intc: &[u32]) -> Result<(), GuestDtbError> {
    w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    match u32::try_from(cpus.timebase_hz) {
        Ok(hz) => w.property_u32("timebase-frequency", hz)?,
        Err(_) => w.property_u64("timebase-frequency", cpus.timebase_hz)?,
    }
    for (i, &ph) in intc.iter().enumerate() {
        w.begin_node(&format!("cpu@{i:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_u32("reg", i as u32)?;
        w.property_string("status", "okay")?;
        w.property_string("compatible", "riscv")?;
        w.property_string("riscv,isa", cpus.isa)?;
        w.property_string("mmu-type", "riscv,sv39")?;
        w.begin_node("interrupt-controller")?;
        w.property_u32("#interrupt-cells", 1)?;
        // No children: dtc wants the cell count said anyway.
        w.property_u32("#address-cells", 0)?;
        w.property_null("interrupt-controller")?;
        w.property_string("compatible", "riscv,cpu-intc")?;
        w.property_u32("phandle", ph)?;
        w.end_node()?;
        w.end_node()?;
    }
    w.end_node()?;
    Ok(())
}

fn plic_node(
    w: &mut FdtWriter,
    (base, size, ndev): (u64, u64, u32),
    intc: &[u32],
    phandle: u32,
) -> Result<(), GuestDtbError> {
    let contexts: Vec<u32> = intc
        .iter()
        .flat_map(|&ph| [ph, IRQ_M_EXT, ph, IRQ_S_EXT])
        .collect();
    w.begin_node(&format!("plic@{base:x}"))?;
    w.property_string_list("compatible", &["sifive,plic-1.0.0", "riscv,plic0"])?;
    w.property_cells("reg", &reg_cells(&[(base, size)]))?;
    w.property_cells("interrupts-extended", &contexts)?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 1)?;
    w.property_u32("#address-cells", 0)?;
    w.property_u32("riscv,ndev", ndev)?;
    w.property_u32("phandle", phandle)?;
    w.end_node()?;
    Ok(())
}

fn uart_node(
    w: &mut FdtWriter,
    (base, size, irq): (u64, u64, u32),
    plic: u32,
) -> Result<(), GuestDtbError> {
    w.begin_node(&format!("serial@{base:x}"))?;
    w.property_string("compatible", "ns16550a")?;
    w.property_cells("reg", &reg_cells(&[(base, size)]))?;
    w.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    w.property_u32("interrupts", irq)?;
    w.property_u32("interrupt-parent", plic)?;
    w.end_node()?;
    Ok(())
}

/// The `riscv,isa` string of the guest's harts: the host's single-letter extensions a
/// guest may use (no `h`: no nested virtualization; no vector state handling), plus
/// the multi-letter ones in `extensions` the host has.
pub fn guest_isa(host: crate::firmware::Isa, extensions: &[&str]) -> String {
    let mut s = String::from("rv64");
    for c in *b"imafdc" {
        if host.has_letter(c) {
            s.push(c as char);
        }
    }
    for e in extensions.iter().filter(|e| host.has_named(e)) {
        s.push('_');
        s.push_str(e);
    }
    s
}

/// The DTB a VM gets when its config names none: its RAM, `cpus` harts, and the PLIC
/// (emu_type 0x30) and console (emu_type 0x2) of its `emu_devices`.
pub fn for_vm(
    spec: &crate::spec::VmSpec,
    memory: &[(u64, u64)],
    cpus: GuestCpus<'_>,
    plic_ndev: u32,
    rng_seed: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    use crate::devices::emu_type;
    let find = |t| spec.emu_devices.iter().find(|d| d.emu_type == t);
    let plic = find(emu_type::PLIC).map(|p| (p.base_gpa, p.length, plic_ndev));
    let uart = find(emu_type::CONSOLE).map(|u| (u.base_gpa, u.length, u.irq));
    let initrd = spec
        .ramdisk
        .map(|r| (r.load_gpa, r.load_gpa + r.data.len() as u64));
    let dspec = GuestDtbSpec {
        memory,
        cpus,
        plic,
        uart,
        bootargs: &spec.cmdline,
        initrd,
        rng_seed,
    };
    build_with(&dspec, &spec.channels).map_err(|e| format!("generating the guest DTB: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::{fdt::read, Isa};

    fn spec() -> GuestDtbSpec<'static> {
        GuestDtbSpec {
            memory: &[(0x8000_0000, 0x100_0000)],
            cpus: GuestCpus {
                count: 2,
                isa: "rv64imafdc_zicsr_zifencei_sstc",
                timebase_hz: 10_000_000,
            },
            plic: Some((0x0c00_0000, 0x60_0000, 95)),
            uart: Some((0x1000_0000, 0x100, 10)),
            bootargs: "fault",
            initrd: None,
            rng_seed: None,
        }
    }

    #[test]
    fn host_discovery_reads_it_back() {
        let blob = build(&spec()).unwrap();
        let p = read(&blob).unwrap();
        assert_eq!(p.ram().len(), 1);
        assert_eq!(p.ram()[0].base, 0x8000_0000);
        assert_eq!(p.cpus(), &[0, 1]);
        assert_eq!(p.timebase_hz(), Some(10_000_000));
        let isa = p.common_isa().unwrap();
        assert!(!isa.h() && isa.sstc() && isa.has_letter(b'c'));
        let uart = p.console.unwrap();
        assert_eq!((uart.base, uart.irq), (0x1000_0000, Some(10)));
        let plic = *p.plic().unwrap();
        assert_eq!((plic.base, plic.ndev), (0x0c00_0000, 95));
        assert_eq!(&plic.s_context[..2], &[Some(1), Some(3)]);
    }

    #[test]
    fn chosen_and_dtc_clean() {
        let mut s = spec();
        s.initrd = Some((0x8080_0000, 0x8090_0000));
        let blob = build(&s).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(chosen.property("bootargs").unwrap().as_str(), Some("fault"));
        assert_eq!(
            chosen.property("stdout-path").unwrap().as_str(),
            Some("/soc/serial@10000000")
        );
        assert!(fdt.find_node("/soc/serial@10000000").is_some());
        if let Some((src, warnings)) = crate::fdt::tests::dtc_decompile(&blob) {
            assert!(warnings.is_empty(), "dtc warnings: {warnings}");
            assert!(src.contains("riscv,ndev = <0x5f>;"), "{src}");
        }
    }

    /// The seed goes to `/chosen/rng-seed` as it is, where the host reader finds it;
    /// without one there is no property.
    #[test]
    fn rng_seed_in_chosen() {
        let mut s = spec();
        let blob = build(&s).unwrap();
        assert_eq!(crate::firmware::fdt::rng_seed(&blob), None);
        let seed = [0x5a; 64];
        s.rng_seed = Some(&seed);
        let blob = build(&s).unwrap();
        assert_eq!(crate::firmware::fdt::rng_seed(&blob), Some(&seed[..]));
    }

    /// A VM of the SBI console and timer only: no PLIC node, no console, nothing
    /// that points at an interrupt parent; the host reader finds RAM, harts and
    /// timebase and no interrupt controller.
    #[test]
    fn no_plic_no_console() {
        let mut s = spec();
        s.plic = None;
        s.uart = None;
        let blob = build(&s).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        for node in fdt.all_nodes() {
            assert!(!node.name.starts_with("plic"), "{}", node.name);
            assert!(!node.name.starts_with("serial"), "{}", node.name);
            for p in node.properties() {
                assert!(
                    !matches!(p.name, "interrupt-parent" | "interrupts" | "stdout-path"),
                    "{} in {}",
                    p.name,
                    node.name
                );
            }
        }
        let p = read(&blob).unwrap();
        assert_eq!(p.cpus(), &[0, 1]);
        assert_eq!(p.timebase_hz(), Some(10_000_000));
        assert!(p.plic().is_none() && p.console.is_none());
        if let Some((src, warnings)) = crate::fdt::tests::dtc_decompile(&blob) {
            assert!(warnings.is_empty(), "dtc warnings: {warnings}\n{src}");
        }
    }

    #[test]
    fn refused_specs() {
        let mut s = spec();
        s.uart = Some((0x1000_0000, 0x100, 0));
        assert_eq!(build(&s), Err(GuestDtbError::BadUartIrq(0)));
        s.plic = None;
        s.uart = Some((0x1000_0000, 0x100, 10));
        assert_eq!(build(&s), Err(GuestDtbError::BadUartIrq(10)));
        let mut s = spec();
        s.cpus.count = 0;
        assert_eq!(build(&s), Err(GuestDtbError::NoVcpus));
        let mut s = spec();
        s.memory = &[];
        assert_eq!(build(&s), Err(GuestDtbError::NoMemory));
    }

    #[test]
    fn guest_isa_drops_h() {
        let host = Isa::parse("rv64imafdch_zicsr_zifencei_zba_sstc").unwrap();
        assert_eq!(
            guest_isa(host, &["zicsr", "zifencei", "zbb", "sstc"]),
            "rv64imafdc_zicsr_zifencei_sstc"
        );
    }

    #[test]
    fn channel_doorbells_are_plic_sources() {
        use alloc::borrow::Cow;
        let chans = alloc::vec![crate::spec::ChannelSpec {
            name: Cow::Borrowed("link"),
            size: 0x1000,
            vms: Cow::Borrowed(&[Cow::Borrowed("a"), Cow::Borrowed("b")]),
            gpa: 0x8100_0000,
            writable: true,
            doorbell: Some((0x1100_0000, 12)),
        }];
        let blob = build_with(&spec(), &chans).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert!(fdt.find_node("/reserved-memory/ivc@81000000").is_some());
        let bell = fdt.find_node("/ivc-doorbell@11000000").unwrap();
        let v = bell.property("interrupts").unwrap().value;
        assert_eq!(v, 12u32.to_be_bytes());
        let plic = fdt.find_node("/soc/plic@c000000").unwrap();
        let parent = bell.property("interrupt-parent").unwrap().value;
        assert_eq!(Some(parent), plic.property("phandle").map(|p| p.value));
        let mut bad = chans.clone();
        bad[0].doorbell = Some((0x1100_0000, 0));
        assert_eq!(
            build_with(&spec(), &bad).unwrap_err(),
            GuestDtbError::BadDoorbellIrq(0)
        );
    }
}
