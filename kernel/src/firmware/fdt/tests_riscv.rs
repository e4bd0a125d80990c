//! The reader against RISC-V trees (kernel/tests/dtbs, see the README there): QEMU's
//! virt board with and without the H extension, what OpenSBI hands over, and
//! robustness against corrupted blobs.

use super::read;
use super::tests::{copy_node, r, QEMU_V2, QEMU_V3};
use crate::fdt::FdtWriter;
use crate::firmware::{Uart, UartKind};

const VIRT: &[u8] = include_bytes!("../../../tests/dtbs/qemu-riscv64-virt.dtb");
const VIRT_NO_H: &[u8] = include_bytes!("../../../tests/dtbs/qemu-riscv64-virt-noh.dtb");

#[test]
fn qemu_virt() {
    let p = read(VIRT).unwrap();
    assert_eq!(p.ram(), &[r(0x8000_0000, 0x4000_0000)]);
    assert_eq!(p.reserved(), &[]);
    assert_eq!(p.cpus(), &[0, 1, 2, 3]);
    assert_eq!(p.timebase_hz(), Some(10_000_000));
    assert_eq!(
        p.console,
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
    let plic = *p.plic().unwrap();
    assert_eq!(
        (plic.base, plic.size, plic.ndev),
        (0x0c00_0000, 0x60_0000, 0x60)
    );
    // Contexts alternate M, S per hart: hart n's S-mode context is 2n + 1.
    assert_eq!(&plic.s_context[..4], &[Some(1), Some(3), Some(5), Some(7)]);
    assert_eq!(p.firmware.sifive_test, Some(r(0x10_0000, 0x1000)));
    let isa = p.common_isa().unwrap();
    assert!(isa.h() && isa.sstc());
    for c in *b"imafdc" {
        assert!(isa.has_letter(c), "{}", c as char);
    }
    assert!(isa.has_named("zifencei") && isa.has_named("zbs"));
    assert!(!isa.has_letter(b'v'));
}

#[test]
fn without_the_h_extension() {
    let p = read(VIRT_NO_H).unwrap();
    assert!(!p.common_isa().unwrap().h());
    assert!(p.common_isa().unwrap().sstc());
    assert_eq!(p.cpus().len(), 4);
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
        copy_node(&mut w, c, &|_| true);
    }
    let cpus = root.children().find(|c| c.name == "cpus").unwrap();
    copy_node(&mut w, cpus, &|n| n.name != "cpu@2");
    w.end_node().unwrap();
    let blob = w.finish().unwrap();
    let p = read(&blob).unwrap();
    assert_eq!(p.reserved(), &[r(0x8000_0000, 0x8_0000)]);
    assert_eq!(p.cpus(), &[0, 1, 3]);
    assert_eq!(
        &p.plic().unwrap().s_context[..3],
        &[Some(1), Some(3), Some(7)]
    );
}

/// One reader for both trees: each gives its own interrupt controller and timer,
/// and each architecture's requirements refuse the other's board with a message.
#[test]
fn arm_and_riscv_trees_give_their_own_interrupt_controller() {
    use crate::firmware::{Gic, IrqController, Timer};
    let arm = read(QEMU_V3).unwrap();
    assert!(matches!(
        arm.irq_controller,
        Some(IrqController::Gic(Gic::V3 { .. }))
    ));
    assert!(matches!(arm.timer, Some(Timer::Generic(_))));
    assert_eq!(arm.common_isa(), None, "Arm CPUs carry no ISA in the tree");
    let gicv2 = read(QEMU_V2).unwrap();
    assert_eq!(gicv2.irq_controller.map(|c| c.name()), Some("GICv2"));
    let riscv = read(VIRT).unwrap();
    assert!(matches!(riscv.irq_controller, Some(IrqController::Plic(_))));
    assert_eq!(riscv.irq_controller.map(|c| c.name()), Some("PLIC"));
    assert_eq!(riscv.timer, Some(Timer::Timebase { hz: 10_000_000 }));
    assert!(riscv.firmware.psci.is_none() && arm.firmware.sifive_test.is_none());

    use crate::arch::{aarch64, riscv64};
    assert!(aarch64::board::check(&arm).is_ok());
    assert!(riscv64::board::check(&riscv).is_ok());
    let e = aarch64::board::check(&riscv).unwrap_err();
    assert!(e.contains("GIC") && e.contains("PLIC"), "{e}");
    let e = riscv64::board::check(&arm).unwrap_err();
    assert!(e.contains("riscv,isa"), "{e}");
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
        let mut b = VIRT.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % b.len();
            b[at] = next() as u8;
        }
        let _ = read(&b);
    }
    for len in (0..VIRT.len()).step_by(97) {
        let _ = read(&VIRT[..len]);
    }
}

/// A small RISC-V tree as newer QEMU and firmware write it: `riscv,isa-base` and
/// `riscv,isa-extensions` instead of `riscv,isa`, the timebase on the hart, the UART
/// on `interrupts-extended`; plus an rv32 hart and one without the H extension.
fn synthetic_riscv() -> alloc::vec::Vec<u8> {
    let mut w = FdtWriter::new();
    w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_cells("reg", &[0, 0x8000_0000, 0, 0x1000_0000])
        .unwrap();
    w.end_node().unwrap();
    w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    let harts: [(u32, &str, &[&str]); 3] = [
        (0, "rv64i", &["i", "m", "a", "h", "sstc"]),
        (1, "rv32i", &["i", "m", "a", "h"]),
        (2, "RV64I", &["i", "m", "a"]),
    ];
    for (id, base, exts) in harts {
        w.begin_node(&alloc::format!("cpu@{id}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_string("compatible", "riscv").unwrap();
        w.property_u32("reg", id).unwrap();
        w.property_u32("timebase-frequency", 25_000_000).unwrap();
        w.property_string("riscv,isa-base", base).unwrap();
        w.property_string_list("riscv,isa-extensions", exts)
            .unwrap();
        w.begin_node("interrupt-controller").unwrap();
        w.property_string("compatible", "riscv,cpu-intc").unwrap();
        w.property_u32("phandle", 10 + id).unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
    }
    w.end_node().unwrap();
    w.begin_node("plic@c000000").unwrap();
    w.property_string("compatible", "sifive,plic-1.0.0")
        .unwrap();
    w.property_cells("reg", &[0, 0x0c00_0000, 0, 0x60_0000])
        .unwrap();
    w.property_u32("riscv,ndev", 31).unwrap();
    w.property_u32("phandle", 3).unwrap();
    w.property_cells("interrupts-extended", &[10, 11, 10, 9, 12, 11, 12, 9])
        .unwrap();
    w.end_node().unwrap();
    w.begin_node("serial@10000000").unwrap();
    w.property_string("compatible", "ns16550a").unwrap();
    w.property_cells("reg", &[0, 0x1000_0000, 0, 0x100])
        .unwrap();
    w.property_cells("interrupts-extended", &[3, 7]).unwrap();
    w.end_node().unwrap();
    w.end_node().unwrap();
    w.finish().unwrap()
}

#[test]
fn isa_extension_lists_rv32_harts_and_extended_uart_interrupts() {
    let p = read(&synthetic_riscv()).unwrap();
    assert_eq!(p.cpus(), &[0, 2], "the rv32 hart is left out");
    assert!(p.isa_of(0).unwrap().h() && p.isa_of(0).unwrap().sstc());
    assert!(!p.isa_of(2).unwrap().h());
    assert!(!p.common_isa().unwrap().h());
    assert_eq!(p.timebase_hz(), Some(25_000_000));
    assert_eq!(
        &p.plic().unwrap().s_context[..2],
        &[Some(1), Some(3)],
        "hart 2 is the second CPU; hart 1's contexts are not its"
    );
    assert_eq!(p.console.and_then(|u| u.irq), Some(7));
}

#[test]
fn riscv64_requirements() {
    use crate::arch::riscv64::board;
    let p = read(&synthetic_riscv()).unwrap();
    assert!(board::check(&p).is_ok());
    assert!(board::can_run_vcpus(&p, 0));
    assert!(!board::can_run_vcpus(&p, 2), "no H extension: not started");
    assert!(
        board::can_run_vcpus(&p, 9),
        "unknown to the firmware: tried"
    );
    let mut no_timebase = p;
    no_timebase.timer = None;
    let e = board::check(&no_timebase).unwrap_err();
    assert!(e.contains("timebase-frequency"), "{e}");
}
