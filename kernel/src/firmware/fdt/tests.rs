//! The reader against real Arm DTBs (kernel/tests/dtbs, see the README there) and against
//! blobs derived from them, plus robustness against truncated and corrupted blobs.

use super::{read, read_with_ram};
use crate::fdt::FdtWriter;
use crate::firmware::{
    BoardInfo, DiscoveryError, GenericTimer, Gic, PsciMethod, Range, Uart, UartKind, MAX_CPUS,
    MAX_RANGES,
};
use alloc::vec::Vec;

pub(super) const QEMU_V3: &[u8] = include_bytes!("../../../tests/dtbs/qemu-virt-gicv3.dtb");
pub(super) const QEMU_V2: &[u8] = include_bytes!("../../../tests/dtbs/qemu-virt-gicv2.dtb");
const OPI5P: &[u8] = include_bytes!("../../../tests/dtbs/rk3588-orangepi-5-plus.dtb");
const EVB1: &[u8] = include_bytes!("../../../tests/dtbs/rk3588-evb1-v10.dtb");
const ROC_PC: &[u8] = include_bytes!("../../../tests/dtbs/rk3568-roc-pc.dtb");

pub(super) fn r(base: u64, size: u64) -> Range {
    Range { base, size }
}

/// The generic timer's INTIDs on every board here (the PPIs SBSA recommends:
/// 13, 14, 11, 10), and in the guest DTBs the hypervisor writes.
pub(crate) const SBSA_TIMER: GenericTimer = GenericTimer {
    sec_phys: 29,
    phys: 30,
    virt: 27,
    hyp_phys: 26,
};

/// What U-Boot does before starting us: the same tree, with `/memory` filled in.
/// `skip` names root children to leave out.
fn rewrite(dtb: &[u8], memory: &[(u64, u64)], skip: &[&str]) -> Vec<u8> {
    rewrite_with(dtb, memory, skip, &[])
}

/// [`rewrite`] with extra `/memreserve/` entries.
fn rewrite_with(
    dtb: &[u8],
    memory: &[(u64, u64)],
    skip: &[&str],
    reserve: &[(u64, u64)],
) -> Vec<u8> {
    let fdt = fdt::Fdt::new(dtb).unwrap();
    let mut w = FdtWriter::new();
    for rsv in fdt.memory_reservations() {
        w.add_mem_reserve(rsv.address() as u64, rsv.size() as u64);
    }
    for &(addr, size) in reserve {
        w.add_mem_reserve(addr, size);
    }
    let root = fdt.all_nodes().next().unwrap();
    w.begin_node("").unwrap();
    for p in root.properties() {
        w.property_bytes(p.name, p.value).unwrap();
    }
    for &(base, size) in memory {
        w.begin_node(&alloc::format!("memory@{base:x}")).unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_cells(
            "reg",
            &[
                (base >> 32) as u32,
                base as u32,
                (size >> 32) as u32,
                size as u32,
            ],
        )
        .unwrap();
        w.end_node().unwrap();
    }
    for c in root.children().filter(|c| !skip.contains(&c.name)) {
        copy_node(&mut w, c, &|_| true);
    }
    w.end_node().unwrap();
    w.finish().unwrap()
}

/// Copies `n` and the descendants `keep` accepts.
pub(super) fn copy_node(
    w: &mut FdtWriter,
    n: fdt::node::FdtNode<'_, '_>,
    keep: &dyn Fn(&fdt::node::FdtNode) -> bool,
) {
    w.begin_node(n.name).unwrap();
    for p in n.properties() {
        w.property_bytes(p.name, p.value).unwrap();
    }
    for c in n.children().filter(|c| keep(c)) {
        copy_node(w, c, keep);
    }
    w.end_node().unwrap();
}

fn rk3588_cpus() -> [u64; 8] {
    [0x0, 0x100, 0x200, 0x300, 0x400, 0x500, 0x600, 0x700]
}

/// A 16 GiB Orange Pi 5 Plus as U-Boot describes it.
const OPI5P_RAM: &[(u64, u64)] = &[
    (0x20_0000, 0xefe0_0000),
    (0x1_0000_0000, 0x3_0000_0000),
    (0x4_f000_0000, 0x1000_0000),
];

#[test]
fn qemu_virt_gicv3() {
    let p = read(QEMU_V3).unwrap();
    assert_eq!(p.ram(), &[r(0x4000_0000, 0x4000_0000)]);
    assert_eq!(p.reserved(), &[]);
    assert_eq!(p.cpus(), &[0, 1, 2, 3]);
    assert_eq!(
        p.console,
        Some(Uart {
            base: 0x0900_0000,
            size: 0x1000,
            kind: UartKind::Pl011,
            irq: Some(33)
        })
    );
    assert_eq!(
        *p.gic().unwrap(),
        Gic::V3 {
            gicd: r(0x0800_0000, 0x1_0000),
            gicr: r(0x080a_0000, 0xf6_0000),
            gicr_stride: 0x2_0000,
            maint_irq: Some(25),
        }
    );
    assert_eq!(p.generic_timer().unwrap(), SBSA_TIMER);
    assert_eq!(p.firmware.psci, Some(PsciMethod::Smc));
    assert_eq!(p.initrd, None);
    // QEMU's 32 virtio-mmio transports, 0x200 apart: where the disk is looked for.
    let virtio = p.virtio_mmio.as_slice();
    assert_eq!(virtio.len(), 32);
    assert!(virtio.contains(&r(0x0a00_0000, 0x200)));
    assert!(virtio.contains(&r(0x0a00_3e00, 0x200)));
    // The disk's window is kept from VMs only once the hypervisor uses it.
    let kept = |p: &BoardInfo| {
        p.kept_windows()
            .iter()
            .any(|w| w.what == vmconfig::host::DISK)
    };
    assert!(!kept(&p));
    let mut with_disk = p;
    with_disk.disk = Some(r(0x0a00_3000, 0x1000));
    assert!(kept(&with_disk));
}

#[test]
fn the_handover_is_the_dtb_at_the_address_passed() {
    // An 8-byte aligned copy, as a boot loader would leave it in RAM.
    let mut words = vec![0u64; QEMU_V3.len().div_ceil(8)];
    // SAFETY: `words` has room for every byte of the blob.
    let bytes =
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), QEMU_V3.len()) };
    bytes.copy_from_slice(QEMU_V3);
    let addr = words.as_ptr() as u64;
    let h = super::handover(addr).unwrap();
    assert_eq!(h.board.cpus(), &[0, 1, 2, 3]);
    assert_eq!(h.occupies, r(addr, QEMU_V3.len() as u64));
    assert_eq!(h.board.device_tree, Some(QEMU_V3));
    assert!(h.modules.is_empty());
    // Nothing there, a misaligned address, or no DTB header: no handover.
    for bad in [0, addr + 4] {
        assert!(matches!(
            super::handover(bad),
            Err(DiscoveryError::NoHandover)
        ));
    }
    words[0] = 0;
    assert!(matches!(
        super::handover(addr),
        Err(DiscoveryError::NoHandover)
    ));
}

#[test]
fn qemu_virt_gicv2() {
    let p = read(QEMU_V2).unwrap();
    assert_eq!(
        *p.gic().unwrap(),
        Gic::V2 {
            gicd: r(0x0800_0000, 0x1_0000),
            gicc: r(0x0801_0000, 0x1_0000),
            gich: Some(r(0x0803_0000, 0x1_0000)),
            gicv: Some(r(0x0804_0000, 0x1_0000)),
            maint_irq: Some(25),
        }
    );
    // GICv2 timer flags carry a CPU mask (0xf04): the INTIDs are unaffected.
    assert_eq!(p.generic_timer().unwrap(), SBSA_TIMER);
    assert_eq!(p.cpus(), &[0, 1, 2, 3]);
}

#[test]
fn kernel_tree_board_dtbs_have_no_memory() {
    for dtb in [OPI5P, EVB1, ROC_PC] {
        assert_eq!(read(dtb).unwrap_err(), DiscoveryError::NoMemory);
    }
}

fn check_rk3588(p: &BoardInfo) {
    assert_eq!(p.cpus(), &rk3588_cpus());
    let uart2 = Uart {
        base: 0xfeb5_0000,
        size: 0x100,
        kind: UartKind::Ns16550 {
            reg_shift: 2,
            reg_io_width: 4,
        },
        irq: Some(333 + 32),
    };
    assert_eq!(p.console, Some(uart2));
    assert_eq!(
        *p.gic().unwrap(),
        Gic::V3 {
            gicd: r(0xfe60_0000, 0x1_0000),
            gicr: r(0xfe68_0000, 0x10_0000),
            gicr_stride: 0x2_0000,
            maint_irq: Some(25),
        }
    );
    // Five timer interrupts (hyp-virt too), GIC with 4 interrupt cells.
    assert_eq!(p.generic_timer().unwrap(), SBSA_TIMER);
    assert_eq!(p.firmware.psci, Some(PsciMethod::Smc));
    assert_eq!(p.reserved(), &[r(0x10_f000, 0x100)], "SCMI shared memory");
}

#[test]
fn orangepi_5_plus_after_firmware_fixup() {
    let p = read(&rewrite(OPI5P, OPI5P_RAM, &[])).unwrap();
    let ram: Vec<_> = OPI5P_RAM.iter().map(|&(b, s)| r(b, s)).collect();
    assert_eq!(p.ram(), ram.as_slice());
    check_rk3588(&p);
}

#[test]
fn board_ram_hints_are_sanitised() {
    let hints = [r(0, 0), r(u64::MAX, 2), r(0x20_0000, 0x1000)];
    let p = read_with_ram(OPI5P, &hints).unwrap();
    assert_eq!(p.ram(), &[r(0x20_0000, 0x1000)]);
    assert_eq!(
        read_with_ram(OPI5P, &hints[..2]).unwrap_err(),
        DiscoveryError::NoMemory
    );
}

#[test]
fn orangepi_5_plus_with_board_ram_hint() {
    let p = read_with_ram(OPI5P, &[r(0x20_0000, 0xefe0_0000)]).unwrap();
    assert_eq!(p.ram(), &[r(0x20_0000, 0xefe0_0000)]);
    check_rk3588(&p);
}

#[test]
fn rk3588_evb1() {
    let p = read_with_ram(EVB1, &[r(0x20_0000, 0xefe0_0000)]).unwrap();
    check_rk3588(&p);
}

#[test]
fn rk3568_roc_pc() {
    let p = read(&rewrite(ROC_PC, &[(0x20_0000, 0x7fe0_0000)], &[])).unwrap();
    assert_eq!(p.ram(), &[r(0x20_0000, 0x7fe0_0000)]);
    // `/cpus` has #address-cells = 2 here.
    assert_eq!(p.cpus(), &[0x0, 0x100, 0x200, 0x300]);
    assert_eq!(
        p.console,
        Some(Uart {
            base: 0xfe66_0000,
            size: 0x100,
            kind: UartKind::Ns16550 {
                reg_shift: 2,
                reg_io_width: 4
            },
            irq: Some(118 + 32),
        })
    );
    assert_eq!(
        *p.gic().unwrap(),
        Gic::V3 {
            gicd: r(0xfd40_0000, 0x1_0000),
            gicr: r(0xfd46_0000, 0x8_0000),
            gicr_stride: 0x2_0000,
            maint_irq: Some(25),
        }
    );
    assert_eq!(p.generic_timer().unwrap(), SBSA_TIMER);
    assert_eq!(p.reserved(), &[]);
}

#[test]
fn placeholder_memory_node_is_no_memory() {
    // Some board DTBs carry `memory { reg = <0 0 0 0>; }` for the firmware to fill.
    let dtb = rewrite(OPI5P, &[(0, 0)], &[]);
    assert_eq!(read(&dtb).unwrap_err(), DiscoveryError::NoMemory);
}

#[test]
fn without_stdout_path_the_first_enabled_serial_is_used() {
    let dtb = rewrite(OPI5P, OPI5P_RAM, &["chosen"]);
    let p = read(&dtb).unwrap();
    // uart0 (fd890000) and uart1 are disabled on this board; uart2 is the first okay one.
    assert_eq!(p.console.map(|u| u.base), Some(0xfeb5_0000));
}

#[test]
fn memreserve_entries_are_reserved() {
    let dtb = rewrite_with(QEMU_V3, &[], &[], &[(0x4800_0000, 0x10_0000)]);
    let p = read(&dtb).unwrap();
    assert_eq!(p.reserved(), &[r(0x4800_0000, 0x10_0000)]);
}

/// A small synthetic tree for the cases real DTBs do not cover.
fn synthetic(f: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    let mut w = FdtWriter::new();
    w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_u32("interrupt-parent", 1).unwrap();
    f(&mut w);
    w.end_node().unwrap();
    w.finish().unwrap()
}

fn gic_and_timer(w: &mut FdtWriter) {
    w.begin_node("intc@8000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_cells(
        "reg",
        &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0x4_0000],
    )
    .unwrap();
    w.property_u64("redistributor-stride", 0x4_0000).unwrap();
    w.property_u32("#interrupt-cells", 3).unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("phandle", 1).unwrap();
    w.end_node().unwrap();
    w.begin_node("timer").unwrap();
    w.property_string("compatible", "arm,armv8-timer").unwrap();
    w.property_cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
        .unwrap();
    w.end_node().unwrap();
}

fn cpus(w: &mut FdtWriter, regs: &[(u32, &str)]) {
    w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for (i, &(reg, status)) in regs.iter().enumerate() {
        w.begin_node(&alloc::format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("reg", reg).unwrap();
        w.property_string("status", status).unwrap();
        w.end_node().unwrap();
    }
    w.begin_node("cpu-map").unwrap();
    w.end_node().unwrap();
    w.end_node().unwrap();
}

fn memory(w: &mut FdtWriter, cells: &[u32]) {
    w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_cells("reg", cells).unwrap();
    w.end_node().unwrap();
}

#[test]
fn synthetic_multi_range_memory_cpus_status_initrd_hvc() {
    let dtb = synthetic(|w| {
        memory(w, &[0, 0x4000_0000, 0, 0x1000_0000, 0x1, 0, 0, 0x2000_0000]);
        cpus(w, &[(0, "okay"), (1, "disabled"), (0x101, "okay")]);
        gic_and_timer(w);
        w.begin_node("psci").unwrap();
        w.property_string_list("compatible", &["arm,psci-1.0", "arm,psci-0.2"])
            .unwrap();
        w.property_string("method", "hvc").unwrap();
        w.end_node().unwrap();
        w.begin_node("chosen").unwrap();
        w.property_u64("linux,initrd-start", 0x4800_0000).unwrap();
        w.property_u32("linux,initrd-end", 0x4810_0000).unwrap();
        w.end_node().unwrap();
    });
    let p = read(&dtb).unwrap();
    assert_eq!(
        p.ram(),
        &[r(0x4000_0000, 0x1000_0000), r(0x1_0000_0000, 0x2000_0000)]
    );
    assert_eq!(p.cpus(), &[0, 0x101]);
    assert_eq!(p.firmware.psci, Some(PsciMethod::Hvc));
    assert_eq!(p.initrd, Some(r(0x4800_0000, 0x10_0000)));
    assert!(matches!(
        *p.gic().unwrap(),
        Gic::V3 {
            gicr_stride: 0x4_0000,
            maint_irq: None,
            ..
        }
    ));
    assert_eq!(p.console, None);
}

#[test]
fn stdout_alias_with_options_and_bus_translation() {
    let dtb = synthetic(|w| {
        memory(w, &[0, 0x4000_0000, 0, 0x1000_0000]);
        cpus(w, &[(0, "okay")]);
        gic_and_timer(w);
        w.begin_node("aliases").unwrap();
        w.property_string("serial0", "/soc/serial@1000").unwrap();
        w.end_node().unwrap();
        w.begin_node("chosen").unwrap();
        w.property_string("stdout-path", "serial0:115200n8")
            .unwrap();
        w.end_node().unwrap();
        w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        // child 0x0 .. 0x10_0000 -> parent 0x2800_0000
        w.property_cells("ranges", &[0, 0, 0x2800_0000, 0x10_0000])
            .unwrap();
        for (name, compat) in [("serial@0", "arm,pl011"), ("serial@1000", "ns16550a")] {
            w.begin_node(name).unwrap();
            w.property_string("compatible", compat).unwrap();
            let base = if name == "serial@0" { 0 } else { 0x1000 };
            w.property_cells("reg", &[base, 0x1000]).unwrap();
            w.property_cells("interrupts", &[0, 5, 4]).unwrap();
            w.end_node().unwrap();
        }
        w.end_node().unwrap();
    });
    let p = read(&dtb).unwrap();
    let expected = Uart {
        base: 0x2800_1000,
        size: 0x1000,
        kind: UartKind::Ns16550 {
            reg_shift: 0,
            reg_io_width: 1,
        },
        irq: Some(37),
    };
    assert_eq!(p.console, Some(expected));
}

#[test]
fn missing_pieces_are_errors() {
    let no_cpus = synthetic(|w| {
        memory(w, &[0, 0x4000_0000, 0, 0x1000_0000]);
        gic_and_timer(w);
    });
    assert_eq!(read(&no_cpus).unwrap_err(), DiscoveryError::NoCpus);
    // The reader reports what is there; aarch64 refuses a board without a GIC or
    // without the generic timer, with a message.
    let no_gic = synthetic(|w| {
        memory(w, &[0, 0x4000_0000, 0, 0x1000_0000]);
        cpus(w, &[(0, "okay")]);
    });
    let p = read(&no_gic).unwrap();
    assert_eq!((p.irq_controller, p.timer), (None, None));
    let e = crate::arch::aarch64::board::check(&p).unwrap_err();
    assert!(e.contains("no GIC"), "{e}");
    let p = read(&rewrite(QEMU_V3, &[], &["timer"])).unwrap();
    assert!(p.gic().is_some() && p.timer.is_none());
    let e = crate::arch::aarch64::board::check(&p).unwrap_err();
    assert!(e.contains("generic timer"), "{e}");
}

#[test]
fn too_many_cpus_and_ranges() {
    let many: Vec<(u32, &str)> = (0..MAX_CPUS as u32 + 1).map(|i| (i, "okay")).collect();
    let dtb = synthetic(|w| {
        memory(w, &[0, 0x4000_0000, 0, 0x1000_0000]);
        cpus(w, &many);
        gic_and_timer(w);
    });
    assert_eq!(read(&dtb).unwrap_err(), DiscoveryError::TooMany("CPUs"));
    let cells: Vec<u32> = (0..MAX_RANGES as u32 + 1)
        .flat_map(|i| [0, i << 20, 0, 0x1000])
        .collect();
    let dtb = synthetic(|w| {
        memory(w, &cells);
        cpus(w, &[(0, "okay")]);
        gic_and_timer(w);
    });
    assert_eq!(
        read(&dtb).unwrap_err(),
        DiscoveryError::TooMany("memory ranges")
    );
}

#[test]
fn garbage_is_bad_dtb() {
    assert_eq!(read(&[]).unwrap_err(), DiscoveryError::BadDtb);
    assert_eq!(read(&[0u8; 64]).unwrap_err(), DiscoveryError::BadDtb);
    let mut wrong_version = QEMU_V3.to_vec();
    wrong_version[20..24].copy_from_slice(&16u32.to_be_bytes());
    assert_eq!(read(&wrong_version).unwrap_err(), DiscoveryError::BadDtb);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for len in 0..QEMU_V3.len() {
        let mut b = QEMU_V3[..len].to_vec();
        assert!(read(&b).is_err(), "len {len}");
        // Also with the header claiming the shorter size.
        if b.len() >= 8 {
            b[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            let _ = read(&b);
        }
    }
}

/// xorshift64*: deterministic pseudo-random bytes for corruption tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_corruption_never_panics() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for (base, rounds) in [(QEMU_V3, 400), (QEMU_V2, 400), (ROC_PC, 100)] {
        for _ in 0..rounds {
            let mut b = base.to_vec();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % b.len();
                b[at] = match rng.next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => b[at] ^ (1 << (rng.next() % 8)),
                    _ => rng.next() as u8,
                };
            }
            let _ = read(&b);
        }
    }
}

#[test]
fn nop_tokens_before_end_node_are_accepted() {
    // libfdt leaves NOPs where it removed something; one before the root's END_NODE.
    let fdt_blob = QEMU_V3.to_vec();
    let word = |i: usize| u32::from_be_bytes(fdt_blob[i * 4..i * 4 + 4].try_into().unwrap());
    let (off, size) = (word(2) as usize, word(9) as usize);
    // Structure ends with END_NODE (2) then END (9).
    let end_node_at = off + size - 8;
    assert_eq!(
        &fdt_blob[end_node_at..end_node_at + 8],
        &[0, 0, 0, 2, 0, 0, 0, 9]
    );
    let mut b = fdt_blob[..end_node_at].to_vec();
    b.extend_from_slice(&[0, 0, 0, 4]);
    b.extend_from_slice(&fdt_blob[end_node_at..]);
    let grow = |b: &mut Vec<u8>, field: usize| {
        let v = u32::from_be_bytes(b[field * 4..field * 4 + 4].try_into().unwrap()) + 4;
        b[field * 4..field * 4 + 4].copy_from_slice(&v.to_be_bytes());
    };
    grow(&mut b, 1); // totalsize
    grow(&mut b, 3); // strings offset
    grow(&mut b, 9); // structure size
    assert!(read(&b).is_ok());
}

#[test]
fn interrupts_extended_and_armv7_timer_compatible() {
    let dtb = synthetic(|w| {
        memory(w, &[0, 0x4000_0000, 0, 0x1000_0000]);
        cpus(w, &[(0, "okay")]);
        w.begin_node("intc@8000000").unwrap();
        w.property_string("compatible", "arm,gic-400").unwrap();
        let reg = [0, 0x0800_0000, 0, 0x1000, 0, 0x0801_0000, 0, 0x2000];
        w.property_cells("reg", &reg).unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.property_u32("phandle", 1).unwrap();
        w.end_node().unwrap();
        w.begin_node("timer").unwrap();
        w.property_string("compatible", "arm,armv7-timer").unwrap();
        let cells = [
            1, 1, 13, 0xf08, 1, 1, 14, 0xf08, 1, 1, 11, 0xf08, 1, 1, 10, 0xf08,
        ];
        w.property_cells("interrupts-extended", &cells).unwrap();
        w.end_node().unwrap();
        w.begin_node("serial@9000000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.property_cells("reg", &[0, 0x0900_0000, 0, 0x1000])
            .unwrap();
        // Wired to another controller (phandle 7): no GIC INTID.
        w.property_cells("interrupts-extended", &[7, 3, 4]).unwrap();
        w.end_node().unwrap();
    });
    let p = read(&dtb).unwrap();
    assert_eq!(p.generic_timer().unwrap(), SBSA_TIMER);
    assert!(matches!(
        *p.gic().unwrap(),
        Gic::V2 {
            gich: None,
            gicv: None,
            maint_irq: None,
            ..
        }
    ));
    assert_eq!(
        p.console.map(|u| (u.base, u.irq)),
        Some((0x0900_0000, None))
    );
}
