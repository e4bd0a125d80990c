//! Device-tree passthrough resolved against real board DTBs: QEMU virt (aarch64
//! GICv3 and riscv64), as QEMU 7.2 generates them, and the Orange Pi 5 Plus (RK3588)
//! from Linux's tree. The blobs are the kernel's firmware-reader fixtures.
use alloc::string::String;
use alloc::vec::Vec;

use super::*;

const QEMU_V3: &[u8] = include_bytes!("../../../kernel/tests/dtbs/qemu-virt-gicv3.dtb");
const QEMU_RV: &[u8] = include_bytes!("../../../kernel/tests/dtbs/qemu-riscv64-virt.dtb");
const OPI5P: &[u8] = include_bytes!("../../../kernel/tests/dtbs/rk3588-orangepi-5-plus.dtb");

fn one(dtb: &[u8], path: &str) -> DtWindow {
    let w = Tree::new(dtb).unwrap().passthrough(path, &[]).unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    w.into_iter().next().unwrap()
}

fn err(dtb: &[u8], path: &str, excluded: &[&str]) -> String {
    Tree::new(dtb)
        .unwrap()
        .passthrough(path, excluded)
        .unwrap_err()
}

#[test]
fn qemu_virt_aarch64() {
    // pl031 RTC: reg <0 0x9010000 0 0x1000>, interrupts <0 2 4> (SPI 2).
    let rtc = one(QEMU_V3, "/pl031@9010000");
    assert_eq!(rtc.node, "/pl031@9010000");
    assert_eq!(rtc.range, Range::new(0x0901_0000, 0x1000));
    assert_eq!(rtc.irq, Some(34));
    // Without the unit address, as in stdout-path.
    assert_eq!(one(QEMU_V3, "/pl031").range.base, 0x0901_0000);
    // pl061 GPIO, SPI 7.
    let gpio = one(QEMU_V3, "/pl061@9030000");
    assert_eq!(
        (gpio.range, gpio.irq),
        (Range::new(0x0903_0000, 0x1000), Some(39))
    );
    // The only non-secure UART is the hypervisor's console.
    let e = err(QEMU_V3, "/pl011@9000000", &[]);
    assert!(
        e.contains("/pl011@9000000 is the hypervisor's console"),
        "{e}"
    );
    let e = err(QEMU_V3, "/intc@8000000", &[]);
    assert!(e.contains("is an interrupt controller"), "{e}");
    let e = err(QEMU_V3, "/intc@8000000/its@8080000", &[]);
    assert!(e.contains("is an interrupt controller"), "{e}");
    let e = err(QEMU_V3, "/uart@9040000", &[]);
    assert_eq!(e, "no node /uart@9040000 in the host device tree");
    let e = err(QEMU_V3, "pl031@9010000", &[]);
    assert!(e.contains("must start with '/'"), "{e}");
    // Excluded: the node itself, so nothing is left.
    let e = err(QEMU_V3, "/pl031@9010000", &["/pl031@9010000"]);
    assert!(e.contains("nothing with MMIO registers"), "{e}");
}

/// AxVisor's whole-tree form: `["/"]` with the host's own devices excluded gives
/// every other device, and no RAM, CPU or firmware node.
#[test]
fn whole_tree_with_exclusions() {
    let tree = Tree::new(QEMU_V3).unwrap();
    let e = tree.passthrough("/", &[]).unwrap_err();
    assert!(
        e.contains("is an interrupt controller") || e.contains("console"),
        "{e}"
    );
    let w = tree
        .passthrough("/", &["/intc@8000000", "/pl011@9000000", "/pcie@10000000"])
        .unwrap();
    let nodes: Vec<&str> = w.iter().map(|w| w.node.as_str()).collect();
    assert!(nodes.contains(&"/pl031@9010000"), "{nodes:?}");
    assert!(nodes.contains(&"/pl061@9030000"), "{nodes:?}");
    assert!(
        nodes.iter().any(|n| n.starts_with("/virtio_mmio@")),
        "{nodes:?}"
    );
    // QEMU's 32 virtio-mmio transports sit 0x200 apart: one window per page, the
    // first transport of the page naming it; no two windows overlap.
    let virtio: Vec<&DtWindow> = w
        .iter()
        .filter(|w| w.node.starts_with("/virtio_mmio@"))
        .collect();
    assert_eq!(virtio.len(), 4, "{virtio:?}");
    assert_eq!(virtio[0].node, "/virtio_mmio@a000000");
    assert_eq!(virtio[0].range, Range::new(0x0a00_0000, 0x1000));
    for pair in w.windows(2) {
        assert!(!pair[0].range.overlaps(&pair[1].range), "{pair:?}");
    }
    // Two windows of the flash node (two reg entries).
    assert_eq!(nodes.iter().filter(|n| **n == "/flash@0").count(), 2);
    for n in &nodes {
        assert!(
            !n.starts_with("/memory") && !n.starts_with("/cpus") && !n.starts_with("/intc"),
            "{n}"
        );
    }
}

#[test]
fn qemu_virt_riscv64() {
    // goldfish RTC: PLIC source 11.
    let rtc = one(QEMU_RV, "/soc/rtc@101000");
    assert_eq!(
        (rtc.range, rtc.irq),
        (Range::new(0x10_1000, 0x1000), Some(11))
    );
    let e = err(QEMU_RV, "/soc/serial@10000000", &[]);
    assert!(e.contains("is the hypervisor's console"), "{e}");
    let e = err(QEMU_RV, "/soc/plic@c000000", &[]);
    assert!(e.contains("is an interrupt controller"), "{e}");
}

#[test]
fn rk3588_orange_pi_5_plus() {
    // uart9: reg <0 0xfebc0000 0 0x100>, interrupts <0 0x154 4 0> (4 cells, SPI 340),
    // widened to its page.
    let uart9 = one(OPI5P, "/serial@febc0000");
    assert_eq!(uart9.range, Range::new(0xfebc_0000, 0x1000));
    assert_eq!(uart9.irq, Some(340 + 32));
    // uart2 is the console through the alias in stdout-path ("serial2:1500000n8").
    let e = err(OPI5P, "/serial@feb50000", &[]);
    assert!(e.contains("is the hypervisor's console"), "{e}");
    let e = err(OPI5P, "/serial@feb60000", &[]);
    assert_eq!(
        e,
        "/serial@feb60000 is disabled in the host device tree (status \"disabled\")"
    );
    let e = err(
        OPI5P,
        "/interrupt-controller@fe600000/msi-controller@fe640000",
        &[],
    );
    assert!(e.contains("is an interrupt controller"), "{e}");
}

#[test]
fn malformed_blobs_are_errors() {
    assert!(Tree::new(&QEMU_V3[..64]).is_err());
    assert!(Tree::new(&[0u8; 8]).is_err());
    let mut bad = QEMU_V3.to_vec();
    bad[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(Tree::new(&bad).is_err());
}
