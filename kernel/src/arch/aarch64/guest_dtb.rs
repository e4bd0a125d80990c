//! The device tree a VM boots with on aarch64, generated from its configuration: a
//! `linux,dummy-virt` machine (the QEMU virt layout Linux and the test guest know) with
//! the VM's RAM, its vCPUs (started through PSCI over HVC), its GIC, the generic timer,
//! an optional PL011 console and `/chosen` (bootargs, stdout-path, initrd, rng-seed).

use super::smccc;
use crate::fdt::{FdtError, FdtWriter};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The guest's interrupt controller; each field is `(base, size)` in guest-physical space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestGic {
    /// GICv3: distributor and the redistributor region (0x20000 bytes per vCPU).
    V3 { gicd: (u64, u64), gicr: (u64, u64) },
    /// GICv2: distributor and CPU interface (the host's GICV frame mapped there).
    V2 { gicd: (u64, u64), gicc: (u64, u64) },
}

/// What the guest DTB describes.
#[derive(Clone, Copy, Debug)]
pub struct GuestDtbSpec<'a> {
    /// RAM regions `(base, size)`.
    pub memory: &'a [(u64, u64)],
    /// MPIDR (affinity) of each vCPU, vCPU 0 first.
    pub vcpu_mpidrs: &'a [u64],
    pub gic: GuestGic,
    /// PL011 console `(base, size, GIC INTID)`; the INTID must be an SPI (32..=1019).
    pub uart: Option<(u64, u64, u32)>,
    pub bootargs: &'a str,
    /// Initial ramdisk `(start, end)` guest-physical, end exclusive.
    pub initrd: Option<(u64, u64)>,
    /// Seed for the guest's random number generator (`/chosen/rng-seed`).
    pub rng_seed: Option<&'a [u8]>,
}

/// Why no DTB could be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestDtbError {
    NoMemory,
    /// A RAM region that is empty or wraps around.
    BadMemory(u64, u64),
    NoVcpus,
    /// GICv2 serves at most 8 CPUs.
    TooManyVcpus(usize),
    /// Two vCPUs with one MPIDR, or bits outside the affinity fields.
    BadMpidr(u64),
    /// The UART interrupt is not an SPI.
    BadUartIrq(u32),
    /// A channel doorbell's interrupt is not an SPI.
    BadDoorbellIrq(u32),
    /// initrd end before its start.
    BadInitrd(u64, u64),
    /// The writer refused something (a NUL byte in bootargs, for example).
    Fdt(FdtError),
}

impl From<FdtError> for GuestDtbError {
    fn from(e: FdtError) -> Self {
        GuestDtbError::Fdt(e)
    }
}

/// PSCI function IDs the `/psci` node lists for pre-0.2 parsers (CPU_OFF and CPU_ON
/// as the SMCCC decoder answers them; the other two are refused there).
const PSCI_CPU_SUSPEND: u32 = 0xc400_0001;
const PSCI_CPU_OFF: u32 = smccc::PSCI_CPU_OFF as u32;
const PSCI_CPU_ON: u32 = smccc::PSCI_CPU_ON as u32;
const PSCI_MIGRATE: u32 = 0xc400_0005;
/// Generic timer PPIs: secure physical, non-secure physical, virtual, hypervisor.
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const IRQ_LEVEL_HIGH: u32 = 4;
/// Fixed clock feeding the PL011 (QEMU virt's apb-pclk).
const UART_CLOCK_HZ: u32 = 24_000_000;
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;
const GICV2_MAX_CPUS: usize = 8;

/// `(base, size)` as two 2-cell numbers.
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
    let n = spec.vcpu_mpidrs.len();
    if n == 0 {
        return Err(GuestDtbError::NoVcpus);
    }
    if matches!(spec.gic, GuestGic::V2 { .. }) && n > GICV2_MAX_CPUS {
        return Err(GuestDtbError::TooManyVcpus(n));
    }
    for (i, &m) in spec.vcpu_mpidrs.iter().enumerate() {
        if m & !MPIDR_AFF_MASK != 0 || spec.vcpu_mpidrs[..i].contains(&m) {
            return Err(GuestDtbError::BadMpidr(m));
        }
    }
    if let Some((_, _, irq)) = spec.uart {
        if !(32..=1019).contains(&irq) {
            return Err(GuestDtbError::BadUartIrq(irq));
        }
    }
    match spec.initrd {
        Some((start, end)) if end < start => Err(GuestDtbError::BadInitrd(start, end)),
        _ => Ok(()),
    }
}

/// Builds the guest DTB for `spec`.
pub fn build(spec: &GuestDtbSpec<'_>) -> Result<Vec<u8>, GuestDtbError> {
    build_with(spec, &[])
}

/// [`build`], with the regions and doorbells of the VM's inter-VM `channels`
/// (`crate::fdt::ivc`; a doorbell's interrupt is an SPI, level-high).
pub fn build_with(
    spec: &GuestDtbSpec<'_>,
    channels: &[crate::spec::ChannelSpec],
) -> Result<Vec<u8>, GuestDtbError> {
    validate(spec)?;
    if let Some(&(_, irq)) = channels
        .iter()
        .filter_map(|c| c.doorbell.as_ref())
        .find(|(_, irq)| !(32..=1019).contains(irq))
    {
        return Err(GuestDtbError::BadDoorbellIrq(irq));
    }
    let mut w = FdtWriter::new();
    let gic_phandle = w.alloc_phandle();
    let clock_phandle = w.alloc_phandle();
    w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", "linux,dummy-virt")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", gic_phandle)?;
    chosen(&mut w, spec)?;
    memory(&mut w, spec.memory)?;
    cpus(&mut w, spec.vcpu_mpidrs)?;
    psci(&mut w)?;
    gic(&mut w, spec.gic, gic_phandle)?;
    timer(&mut w, spec.gic, spec.vcpu_mpidrs.len())?;
    if let Some(uart) = spec.uart {
        apb_clock(&mut w, clock_phandle)?;
        pl011(&mut w, uart, clock_phandle)?;
    }
    let regions = crate::fdt::ivc::regions(&mut w, channels)?;
    let spi = |irq: u32| alloc::vec![GIC_SPI, irq - 32, IRQ_LEVEL_HIGH];
    crate::fdt::ivc::doorbells(&mut w, channels, &regions, spi, None)?;
    w.end_node()?;
    Ok(w.finish()?)
}

fn uart_node_name(base: u64) -> String {
    format!("pl011@{base:x}")
}

fn chosen(w: &mut FdtWriter, spec: &GuestDtbSpec<'_>) -> Result<(), GuestDtbError> {
    let stdout = spec
        .uart
        .map(|(base, _, _)| format!("/{}", uart_node_name(base)));
    let c = crate::fdt::chosen::Chosen {
        bootargs: spec.bootargs,
        stdout_path: stdout.as_deref(),
        initrd: spec.initrd,
        rng_seed: spec.rng_seed,
    };
    Ok(crate::fdt::chosen::write(w, &c)?)
}

fn memory(w: &mut FdtWriter, regions: &[(u64, u64)]) -> Result<(), GuestDtbError> {
    for &(base, size) in regions {
        w.begin_node(&format!("memory@{base:x}"))?;
        w.property_string("device_type", "memory")?;
        w.property_cells("reg", &reg_cells(&[(base, size)]))?;
        w.end_node()?;
    }
    Ok(())
}

fn cpus(w: &mut FdtWriter, mpidrs: &[u64]) -> Result<(), GuestDtbError> {
    let wide = mpidrs.iter().any(|m| m >> 32 != 0);
    w.begin_node("cpus")?;
    w.property_u32("#address-cells", if wide { 2 } else { 1 })?;
    w.property_u32("#size-cells", 0)?;
    for &mpidr in mpidrs {
        w.begin_node(&format!("cpu@{mpidr:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,armv8")?;
        if wide {
            w.property_u64("reg", mpidr)?;
        } else {
            w.property_u32("reg", mpidr as u32)?;
        }
        w.property_string("enable-method", "psci")?;
        w.end_node()?;
    }
    w.end_node()?;
    Ok(())
}

fn psci(w: &mut FdtWriter) -> Result<(), GuestDtbError> {
    w.begin_node("psci")?;
    w.property_string_list("compatible", &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])?;
    w.property_string("method", "hvc")?;
    w.property_u32("cpu_suspend", PSCI_CPU_SUSPEND)?;
    w.property_u32("cpu_off", PSCI_CPU_OFF)?;
    w.property_u32("cpu_on", PSCI_CPU_ON)?;
    w.property_u32("migrate", PSCI_MIGRATE)?;
    w.end_node()?;
    Ok(())
}

fn gic(w: &mut FdtWriter, gic: GuestGic, phandle: u32) -> Result<(), GuestDtbError> {
    let (gicd, second, compat) = match gic {
        GuestGic::V3 { gicd, gicr } => (gicd, gicr, "arm,gic-v3"),
        GuestGic::V2 { gicd, gicc } => (gicd, gicc, "arm,cortex-a15-gic"),
    };
    w.begin_node(&format!("intc@{:x}", gicd.0))?;
    w.property_string("compatible", compat)?;
    w.property_cells("reg", &reg_cells(&[gicd, second]))?;
    if let GuestGic::V3 { .. } = gic {
        w.property_u32("#redistributor-regions", 1)?;
    }
    w.property_u32("#interrupt-cells", 3)?;
    // No children and no interrupt-map users: dtc wants the cell count said anyway.
    w.property_u32("#address-cells", 0)?;
    w.property_null("interrupt-controller")?;
    w.property_u32("phandle", phandle)?;
    w.end_node()?;
    Ok(())
}

/// Interrupt flags of a PPI: GICv2 specifiers also name the CPUs it goes to.
fn ppi_flags(gic: GuestGic, ncpus: usize) -> u32 {
    match gic {
        GuestGic::V3 { .. } => IRQ_LEVEL_HIGH,
        GuestGic::V2 { .. } => (((1u32 << ncpus.min(GICV2_MAX_CPUS)) - 1) << 8) | IRQ_LEVEL_HIGH,
    }
}

fn timer(w: &mut FdtWriter, gic: GuestGic, ncpus: usize) -> Result<(), GuestDtbError> {
    let flags = ppi_flags(gic, ncpus);
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, flags])
        .collect();
    w.begin_node("timer")?;
    w.property_string_list("compatible", &["arm,armv8-timer", "arm,armv7-timer"])?;
    w.property_cells("interrupts", &cells)?;
    w.property_null("always-on")?;
    w.end_node()?;
    Ok(())
}

fn apb_clock(w: &mut FdtWriter, phandle: u32) -> Result<(), GuestDtbError> {
    w.begin_node("apb-pclk")?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_u32("phandle", phandle)?;
    w.end_node()?;
    Ok(())
}

fn pl011(
    w: &mut FdtWriter,
    (base, size, intid): (u64, u64, u32),
    clock: u32,
) -> Result<(), GuestDtbError> {
    w.begin_node(&uart_node_name(base))?;
    w.property_string_list("compatible", &["arm,pl011", "arm,primecell"])?;
    w.property_cells("reg", &reg_cells(&[(base, size)]))?;
    w.property_cells("interrupts", &[GIC_SPI, intid - 32, IRQ_LEVEL_HIGH])?;
    w.property_cells("clocks", &[clock, clock])?;
    w.property_string_list("clock-names", &["uartclk", "apb_pclk"])?;
    w.end_node()?;
    Ok(())
}

/// The DTB a VM gets when its config names none: its RAM, its vCPUs (MPIDR = index),
/// the emulated GICv3 and console UART from its `emu_devices`, and its command line
/// and ramdisk, and `rng_seed` in `/chosen`.
pub fn for_vm(
    spec: &crate::spec::VmSpec,
    memory: &[(u64, u64)],
    rng_seed: Option<&[u8]>,
) -> Result<Vec<u8>, alloc::string::String> {
    use crate::devices::emu_type;
    let find = |t| spec.emu_devices.iter().find(|d| d.emu_type == t);
    let mpidrs: Vec<u64> = (0..spec.cpu_num as usize).map(super::vcpu_mpidr).collect();
    let cpu_if = find(emu_type::GIC_CPU_IF);
    let gic = match (find(emu_type::GIC_DIST), find(emu_type::GIC_REDIST), cpu_if) {
        (Some(d), Some(r), None) => GuestGic::V3 {
            gicd: (d.base_gpa, d.length),
            gicr: (r.base_gpa, r.length),
        },
        (Some(d), None, Some(c)) => GuestGic::V2 {
            gicd: (d.base_gpa, d.length),
            gicc: (c.base_gpa, c.length),
        },
        _ => {
            return Err(
                "a VM needs an emulated GICv3 (emu_type 0x21 and 0x20) or GICv2 (0x21 and 0x1)"
                    .into(),
            )
        }
    };
    let uart = find(emu_type::CONSOLE).map(|u| (u.base_gpa, u.length, u.irq));
    let initrd = spec
        .ramdisk
        .map(|r| (r.load_gpa, r.load_gpa + r.data.len() as u64));
    let dspec = GuestDtbSpec {
        memory,
        vcpu_mpidrs: &mpidrs,
        gic,
        uart,
        bootargs: &spec.cmdline,
        initrd,
        rng_seed,
    };
    build_with(&dspec, &spec.channels)
        .map_err(|e| alloc::format!("generating the guest DTB: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::fdt::{read, tests::SBSA_TIMER};
    use crate::firmware::{Gic, PsciMethod, Range, Uart, UartKind};

    const RAM: &[(u64, u64)] = &[(0x4000_0000, 0x100_0000)];

    /// The contract's test-guest VM: 16 MiB, 2 vCPUs, GICv3, PL011 at 0x0900_0000.
    fn contract_spec() -> GuestDtbSpec<'static> {
        GuestDtbSpec {
            memory: RAM,
            vcpu_mpidrs: &[0, 1],
            gic: GuestGic::V3 {
                gicd: (0x0800_0000, 0x1_0000),
                gicr: (0x080a_0000, 0x4_0000),
            },
            uart: Some((0x0900_0000, 0x1000, 33)),
            bootargs: "fault",
            initrd: None,
            rng_seed: None,
        }
    }

    fn cells(v: &[u8]) -> Vec<u32> {
        v.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn str_list(v: &[u8]) -> Vec<&str> {
        v.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| core::str::from_utf8(s).unwrap())
            .collect()
    }

    #[test]
    fn contract_layout_parses_back() {
        let blob = build(&contract_spec()).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let root = fdt.find_node("/").unwrap();
        assert_eq!(
            root.property("compatible").unwrap().as_str(),
            Some("linux,dummy-virt")
        );
        assert_eq!(root.property("#address-cells").unwrap().as_usize(), Some(2));
        let mem = fdt.find_node("/memory@40000000").unwrap();
        assert_eq!(
            cells(mem.property("reg").unwrap().value),
            [0, 0x4000_0000, 0, 0x100_0000]
        );
        assert_eq!(
            mem.property("device_type").unwrap().as_str(),
            Some("memory")
        );
        for (i, name) in ["/cpus/cpu@0", "/cpus/cpu@1"].iter().enumerate() {
            let cpu = fdt.find_node(name).unwrap();
            assert_eq!(cpu.property("reg").unwrap().as_usize(), Some(i));
            assert_eq!(
                cpu.property("enable-method").unwrap().as_str(),
                Some("psci")
            );
            assert_eq!(cpu.property("device_type").unwrap().as_str(), Some("cpu"));
        }
        let psci = fdt.find_node("/psci").unwrap();
        assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));
        let compat = str_list(psci.property("compatible").unwrap().value);
        assert_eq!(compat, ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]);
        let intc = fdt.find_node("/intc@8000000").unwrap();
        let reg = cells(intc.property("reg").unwrap().value);
        assert_eq!(
            reg,
            [0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0x4_0000]
        );
        assert_eq!(
            intc.property("#interrupt-cells").unwrap().as_usize(),
            Some(3)
        );
        assert!(intc.property("interrupt-controller").is_some());
        let gic_ph = intc.property("phandle").unwrap().as_usize().unwrap();
        assert_eq!(
            root.property("interrupt-parent").unwrap().as_usize(),
            Some(gic_ph)
        );
        let timer = fdt.find_node("/timer").unwrap();
        assert_eq!(
            cells(timer.property("interrupts").unwrap().value),
            [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
        );
        assert!(timer.property("always-on").is_some());
        let uart = fdt.find_node("/pl011@9000000").unwrap();
        assert_eq!(
            str_list(uart.property("compatible").unwrap().value),
            ["arm,pl011", "arm,primecell"]
        );
        assert_eq!(cells(uart.property("interrupts").unwrap().value), [0, 1, 4]);
        assert_eq!(
            str_list(uart.property("clock-names").unwrap().value),
            ["uartclk", "apb_pclk"]
        );
        let clk = cells(uart.property("clocks").unwrap().value);
        let pclk = fdt.find_phandle(clk[0]).unwrap();
        assert_eq!(pclk.name, "apb-pclk");
        assert_eq!(
            pclk.property("clock-frequency").unwrap().as_usize(),
            Some(24_000_000)
        );
        assert_eq!(clk[0], clk[1]);
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(chosen.property("bootargs").unwrap().as_str(), Some("fault"));
        assert_eq!(
            chosen.property("stdout-path").unwrap().as_str(),
            Some("/pl011@9000000")
        );
        assert!(chosen.property("linux,initrd-start").is_none());
    }

    /// The seed goes to `/chosen/rng-seed` as it is, where the host reader finds it;
    /// without one there is no property.
    #[test]
    fn rng_seed_in_chosen() {
        let blob = build(&contract_spec()).unwrap();
        assert_eq!(crate::firmware::fdt::rng_seed(&blob), None);
        let seed = [0xa5; 64];
        let spec = GuestDtbSpec {
            rng_seed: Some(&seed),
            ..contract_spec()
        };
        let blob = build(&spec).unwrap();
        assert_eq!(crate::firmware::fdt::rng_seed(&blob), Some(&seed[..]));
    }

    #[test]
    fn the_firmware_reader_reads_it_back() {
        let spec = GuestDtbSpec {
            initrd: Some((0x4080_0000, 0x40a0_0000)),
            ..contract_spec()
        };
        let p = read(&build(&spec).unwrap()).unwrap();
        assert_eq!(
            p.ram(),
            &[Range {
                base: 0x4000_0000,
                size: 0x100_0000
            }]
        );
        assert_eq!(p.cpus(), &[0, 1]);
        assert_eq!(p.firmware.psci, Some(PsciMethod::Hvc));
        let uart = Uart {
            base: 0x0900_0000,
            size: 0x1000,
            kind: UartKind::Pl011,
            irq: Some(33),
        };
        assert_eq!(p.console, Some(uart));
        assert_eq!(
            *p.gic().unwrap(),
            Gic::V3 {
                gicd: Range {
                    base: 0x0800_0000,
                    size: 0x1_0000
                },
                gicr: Range {
                    base: 0x080a_0000,
                    size: 0x4_0000
                },
                gicr_stride: 0x2_0000,
                maint_irq: None,
            }
        );
        assert_eq!(p.generic_timer().unwrap(), SBSA_TIMER);
        assert_eq!(
            p.initrd,
            Some(Range {
                base: 0x4080_0000,
                size: 0x20_0000
            })
        );
    }

    #[test]
    fn gicv2_guest() {
        let spec = GuestDtbSpec {
            gic: GuestGic::V2 {
                gicd: (0x0800_0000, 0x1_0000),
                gicc: (0x0801_0000, 0x2000),
            },
            vcpu_mpidrs: &[0, 1, 2],
            ..contract_spec()
        };
        let blob = build(&spec).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let intc = fdt.find_node("/intc@8000000").unwrap();
        assert_eq!(
            intc.property("compatible").unwrap().as_str(),
            Some("arm,cortex-a15-gic")
        );
        let timer = fdt.find_node("/timer").unwrap();
        assert_eq!(cells(timer.property("interrupts").unwrap().value)[2], 0x704);
        let p = read(&blob).unwrap();
        assert!(matches!(
            *p.gic().unwrap(),
            Gic::V2 {
                gicc: Range {
                    base: 0x0801_0000,
                    size: 0x2000
                },
                ..
            }
        ));
        assert_eq!(p.cpus(), &[0, 1, 2]);
    }

    #[test]
    fn no_uart_means_no_stdout_path_and_wide_mpidrs() {
        let spec = GuestDtbSpec {
            uart: None,
            vcpu_mpidrs: &[0x1_0000_0000, 0x100],
            ..contract_spec()
        };
        let blob = build(&spec).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert!(fdt
            .find_node("/chosen")
            .unwrap()
            .property("stdout-path")
            .is_none());
        assert!(fdt.find_node("/apb-pclk").is_none());
        assert_eq!(read(&blob).unwrap().cpus(), &[0x1_0000_0000, 0x100]);
    }

    #[test]
    fn bad_specs_are_errors() {
        let base = contract_spec();
        let e = |s: GuestDtbSpec<'_>| build(&s).unwrap_err();
        assert_eq!(
            e(GuestDtbSpec {
                memory: &[],
                ..base
            }),
            GuestDtbError::NoMemory
        );
        assert_eq!(
            e(GuestDtbSpec {
                memory: &[(u64::MAX, 2)],
                ..base
            }),
            GuestDtbError::BadMemory(u64::MAX, 2)
        );
        assert_eq!(
            e(GuestDtbSpec {
                memory: &[(0, 0)],
                ..base
            }),
            GuestDtbError::BadMemory(0, 0)
        );
        assert_eq!(
            e(GuestDtbSpec {
                vcpu_mpidrs: &[],
                ..base
            }),
            GuestDtbError::NoVcpus
        );
        assert_eq!(
            e(GuestDtbSpec {
                vcpu_mpidrs: &[1, 1],
                ..base
            }),
            GuestDtbError::BadMpidr(1)
        );
        assert_eq!(
            e(GuestDtbSpec {
                vcpu_mpidrs: &[1 << 31],
                ..base
            }),
            GuestDtbError::BadMpidr(1 << 31)
        );
        let v2 = GuestGic::V2 {
            gicd: (0, 0x1000),
            gicc: (0x1000, 0x2000),
        };
        assert_eq!(
            e(GuestDtbSpec {
                gic: v2,
                vcpu_mpidrs: &[0, 1, 2, 3, 4, 5, 6, 7, 8],
                ..base
            }),
            GuestDtbError::TooManyVcpus(9)
        );
        assert_eq!(
            e(GuestDtbSpec {
                uart: Some((0, 0x1000, 27)),
                ..base
            }),
            GuestDtbError::BadUartIrq(27)
        );
        assert_eq!(
            e(GuestDtbSpec {
                initrd: Some((2, 1)),
                ..base
            }),
            GuestDtbError::BadInitrd(2, 1)
        );
        assert_eq!(
            e(GuestDtbSpec {
                bootargs: "a\0b",
                ..base
            }),
            GuestDtbError::Fdt(FdtError::BadString)
        );
    }

    #[test]
    fn dtc_accepts_it_without_warnings() {
        let spec = GuestDtbSpec {
            initrd: Some((0x4080_0000, 0x40a0_0000)),
            ..contract_spec()
        };
        let Some((src, warnings)) = crate::fdt::tests::dtc_decompile(&build(&spec).unwrap()) else {
            std::eprintln!("dtc not installed: skipped");
            return;
        };
        assert!(warnings.is_empty(), "dtc warnings: {warnings}");
        assert!(
            src.contains("linux,initrd-start = <0x00 0x40800000>;"),
            "{src}"
        );
        assert!(src.contains("stdout-path = \"/pl011@9000000\";"), "{src}");
    }

    fn channels() -> Vec<crate::spec::ChannelSpec> {
        use alloc::borrow::Cow;
        alloc::vec![
            crate::spec::ChannelSpec {
                name: Cow::Borrowed("link"),
                size: 0x2000,
                vms: Cow::Borrowed(&[Cow::Borrowed("a"), Cow::Borrowed("b")]),
                gpa: 0x4100_0000,
                writable: true,
                doorbell: Some((0x0a00_0000, 40)),
            },
            crate::spec::ChannelSpec {
                name: Cow::Borrowed("log"),
                size: 0x1000,
                vms: Cow::Borrowed(&[Cow::Borrowed("a"), Cow::Borrowed("b")]),
                gpa: 0x4200_0000,
                writable: false,
                doorbell: None,
            },
        ]
    }

    #[test]
    fn channels_are_reserved_memory_and_doorbells() {
        let blob = build_with(&contract_spec(), &channels()).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let link = fdt.find_node("/reserved-memory/ivc@41000000").unwrap();
        assert_eq!(
            str_list(link.property("compatible").unwrap().value),
            ["hv,ivc-shmem"]
        );
        assert_eq!(
            cells(link.property("reg").unwrap().value),
            [0, 0x4100_0000, 0, 0x2000]
        );
        assert!(link.property("no-map").is_some());
        assert!(link.property("read-only").is_none());
        let log = fdt.find_node("/reserved-memory/ivc@42000000").unwrap();
        assert!(log.property("read-only").is_some());
        let bell = fdt.find_node("/ivc-doorbell@a000000").unwrap();
        assert_eq!(
            str_list(bell.property("compatible").unwrap().value),
            ["hv,ivc-doorbell"]
        );
        assert_eq!(
            cells(bell.property("reg").unwrap().value),
            [0, 0x0a00_0000, 0, 0x1000]
        );
        assert_eq!(cells(bell.property("interrupts").unwrap().value), [0, 8, 4]);
        let region = cells(bell.property("memory-region").unwrap().value)[0];
        assert_eq!(cells(link.property("phandle").unwrap().value), [region]);
        assert!(
            fdt.find_node("/ivc-doorbell@42000000").is_none(),
            "no doorbell: no node"
        );
        let mut bad = channels();
        bad[0].doorbell = Some((0x0a00_0000, 20));
        assert_eq!(
            build_with(&contract_spec(), &bad).unwrap_err(),
            GuestDtbError::BadDoorbellIrq(20)
        );
        if let Some((_, warnings)) = crate::fdt::tests::dtc_decompile(&blob) {
            assert!(warnings.is_empty(), "dtc warnings: {warnings}");
        }
    }
}
