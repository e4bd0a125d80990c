//! The GICv2 distributor view.

use super::*;

const ITARGETSR: u64 = 0x800;
const SGIR: u64 = 0xf00;
const CPENDSGIR: u64 = 0xf10;
const SPENDSGIR: u64 = 0xf20;

/// Four vCPUs and 64 SPIs, seen as a GICv2.
fn v2gic() -> Vgic {
    Vgic::new_v2(&[0, 1, 2, 3], 64).unwrap()
}

fn r(g: &mut Vgic, vcpu: usize, off: u64) -> u32 {
    g.dist_v2(vcpu).read(off, 4).unwrap() as u32
}

fn w(g: &mut Vgic, vcpu: usize, off: u64, v: u32) {
    g.dist_v2(vcpu).write(off, 4, u64::from(v)).unwrap();
}

fn rb(g: &mut Vgic, vcpu: usize, off: u64) -> u8 {
    g.dist_v2(vcpu).read(off, 1).unwrap() as u8
}

fn wb(g: &mut Vgic, vcpu: usize, off: u64, v: u8) {
    g.dist_v2(vcpu).write(off, 1, u64::from(v)).unwrap();
}

#[test]
fn construction() {
    let g = v2gic();
    assert!(g.is_v2());
    assert!(!gic4().is_v2());
    let nine: alloc::vec::Vec<u64> = (0..9).collect();
    assert_eq!(
        Vgic::new_v2(&nine, 32).unwrap_err(),
        VgicError::BadConfig,
        "a GICv2 has at most 8 CPU interfaces"
    );
    assert!(Vgic::new_v2(&nine[..8], 32).is_ok());
}

#[test]
fn identification_and_control() {
    let mut g = v2gic();
    assert_eq!(
        r(&mut g, 0, 0x4),
        (3 << 5) | 2,
        "4 CPUs, 96 INTIDs, no Security Extensions"
    );
    assert_eq!(r(&mut g, 0, 0x8), 0x4800_043b);
    assert_eq!(r(&mut g, 0, 0xfe8), 0x2b, "PIDR2: architecture revision 2");
    let cidr: alloc::vec::Vec<u32> = (0..4).map(|i| r(&mut g, 0, 0xff0 + 4 * i)).collect();
    assert_eq!(cidr, [0x0d, 0xf0, 0x05, 0xb1]);
    assert_eq!(r(&mut g, 0, CTLR), 0, "disabled, no ARE/DS bits");
    w(&mut g, 0, CTLR, 1);
    assert_eq!(r(&mut g, 2, CTLR), 1, "group 0 enabled, seen by every vCPU");
    w(&mut g, 0, CTLR, 3);
    assert_eq!(r(&mut g, 0, CTLR), 3);
    assert_eq!(
        r(&mut g, 0, 0xffe8),
        0,
        "the frame is 4 KiB: GICv3 ID offsets are RAZ"
    );
    assert_eq!(
        g.dist_v2(0).read(CTLR, 2),
        Err(MmioError::BadWidth {
            offset: 0,
            width: 2,
            accepts: Widths::W4,
        })
    );
}

#[test]
fn everything_starts_in_group_0() {
    let mut g = v2gic();
    assert_eq!(r(&mut g, 0, IGROUPR), 0);
    assert_eq!(r(&mut g, 1, IGROUPR + 4), 0);
    // Enable an SPI like Linux does (group 0, distributor enable bit 0): deliverable.
    w(&mut g, 0, CTLR, 1);
    let (off, b) = bit(ISENABLER, 40);
    w(&mut g, 0, off, b);
    g.set_pending(40, 0).unwrap();
    let inj = g.next_to_inject(0).unwrap();
    assert_eq!((inj.intid, inj.group1), (40, false));
}

#[test]
fn private_registers_are_banked_per_vcpu() {
    let mut g = v2gic();
    w(&mut g, 1, ISENABLER, 1 << 27);
    assert_eq!(r(&mut g, 1, ISENABLER), 1 << 27);
    assert_eq!(r(&mut g, 0, ISENABLER), 0);
    wb(&mut g, 2, IPRIORITYR + 27, 0xa0);
    assert_eq!(rb(&mut g, 2, IPRIORITYR + 27), 0xa0);
    assert_eq!(rb(&mut g, 0, IPRIORITYR + 27), 0);
    assert_eq!(r(&mut g, 2, IPRIORITYR + 24), 0xa0_00_00_00);
    // The same state the injection API uses.
    g.set_private_level(1, 27, true).unwrap();
    assert_eq!(g.next_to_inject(1).map(|i| i.intid), Some(27));
    assert_eq!(g.next_to_inject(0), None);
}

#[test]
fn itargetsr_private_bytes_name_the_reader() {
    let mut g = v2gic();
    for vcpu in 0..4 {
        let mask = 1u32 << vcpu;
        let word = mask * 0x0101_0101;
        assert_eq!(r(&mut g, vcpu, ITARGETSR), word, "vCPU {vcpu}");
        assert_eq!(r(&mut g, vcpu, ITARGETSR + 28), word);
        assert_eq!(rb(&mut g, vcpu, ITARGETSR + 31), mask as u8);
    }
    w(&mut g, 0, ITARGETSR, 0xffff_ffff);
    assert_eq!(r(&mut g, 0, ITARGETSR), 0x0101_0101, "read-only");
}

#[test]
fn spi_targets_route_to_the_lowest_vcpu_in_the_mask() {
    let mut g = v2gic();
    assert_eq!(rb(&mut g, 0, ITARGETSR + 33), 1, "SPIs start on vCPU 0");
    w(&mut g, 0, CTLR, 1);
    let (off, b) = bit(ISENABLER, 33);
    w(&mut g, 0, off, b);
    wb(&mut g, 0, ITARGETSR + 33, 0b1100);
    assert_eq!(rb(&mut g, 3, ITARGETSR + 33), 0b1100);
    assert_eq!(g.set_level(33, true), Ok(Some(2)));
    assert_eq!(g.next_to_inject(2).map(|i| i.intid), Some(33));
    // Word access: four SPIs at once.
    w(&mut g, 0, ITARGETSR + 36, 0x0802_0401);
    assert_eq!(r(&mut g, 1, ITARGETSR + 36), 0x0802_0401);
    // A mask naming no existing vCPU: the SPI goes nowhere.
    wb(&mut g, 0, ITARGETSR + 40, 0x80);
    let (off, b) = bit(ISENABLER, 40);
    w(&mut g, 0, off, b);
    assert_eq!(g.set_pending(40, 0), Ok(None));
}

#[test]
fn sgir_target_list_filters() {
    let mut g = v2gic();
    for v in 0..4 {
        w(&mut g, v, ISENABLER, 0xffff);
    }
    g.take_kicks();
    // Filter 0: the target list (vCPUs 1 and 3; bit 5 names no vCPU).
    w(&mut g, 0, SGIR, (0b10_1010 << 16) | 5);
    assert_eq!(g.take_kicks(), 0b1010);
    assert_eq!(g.next_to_inject(1).map(|i| i.intid), Some(5));
    assert_eq!(g.next_to_inject(3).map(|i| i.intid), Some(5));
    // Filter 1: everyone but the sender.
    w(&mut g, 2, SGIR, (1 << 24) | 7);
    assert_eq!(g.take_kicks(), 0b1011);
    // Filter 2: only the sender.
    w(&mut g, 2, SGIR, (2 << 24) | 9);
    assert_eq!(g.take_kicks(), 0b0100);
    assert_eq!(g.next_to_inject(2).map(|i| i.intid), Some(9));
    // Filter 3 is reserved: nothing.
    w(&mut g, 0, SGIR, (3 << 24) | (0xff << 16) | 1);
    assert_eq!(g.take_kicks(), 0);
    assert_eq!(r(&mut g, 0, SGIR), 0, "write-only");
}

#[test]
fn sgi_pending_registers() {
    let mut g = v2gic();
    wb(&mut g, 1, SPENDSGIR + 3, 0x04);
    assert_eq!(
        rb(&mut g, 1, SPENDSGIR + 3),
        1,
        "pending, reported from CPU 0"
    );
    assert_eq!(rb(&mut g, 1, CPENDSGIR + 3), 1);
    assert_eq!(r(&mut g, 1, SPENDSGIR), 0x0100_0000);
    assert_eq!(rb(&mut g, 0, SPENDSGIR + 3), 0, "banked per vCPU");
    assert_eq!(r(&mut g, 1, ISPENDR) & (1 << 3), 1 << 3);
    wb(&mut g, 1, CPENDSGIR + 3, 0xff);
    assert_eq!(rb(&mut g, 1, SPENDSGIR + 3), 0);
    // Word write: SGIs 12 and 15 on vCPU 0.
    w(&mut g, 0, SPENDSGIR + 12, 0x0100_0001);
    assert_eq!(r(&mut g, 0, ISPENDR) & 0xffff, (1 << 12) | (1 << 15));
}

#[test]
fn icfgr_sgis_fixed_ppis_and_spis_configurable() {
    let mut g = v2gic();
    assert_eq!(r(&mut g, 0, ICFGR), 0xaaaa_aaaa);
    w(&mut g, 0, ICFGR, 0);
    assert_eq!(r(&mut g, 0, ICFGR), 0xaaaa_aaaa);
    w(&mut g, 1, ICFGR + 4, 0x8000_0000);
    assert_eq!(r(&mut g, 1, ICFGR + 4), 0x8000_0000);
    assert_eq!(r(&mut g, 0, ICFGR + 4), 0, "PPI configuration is banked");
    w(&mut g, 0, ICFGR + 8, 0x2);
    assert_eq!(r(&mut g, 3, ICFGR + 8), 0x2, "SPIs are shared");
}

#[test]
fn out_of_range_vcpu_and_offsets_are_raz_wi() {
    let mut g = v2gic();
    assert_eq!(r(&mut g, 7, ISENABLER), 0);
    w(&mut g, 7, ISENABLER, u32::MAX);
    assert_eq!(r(&mut g, 0, 0x1000), 0);
    w(&mut g, 0, 0x1000, u32::MAX);
    assert_eq!(
        g.dist_v2(0).read(0x101, 4),
        Err(MmioError::Unaligned {
            offset: 0x101,
            width: 4
        })
    );
}
