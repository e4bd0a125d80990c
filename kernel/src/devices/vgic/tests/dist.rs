//! Distributor registers.

use super::*;

#[test]
fn ctlr_enables_groups_with_are_and_ds_fixed() {
    let mut g = gic4();
    assert_eq!(dr(&mut g, CTLR), 0x50, "ARE and DS read as one");
    dw(&mut g, CTLR, 0x13);
    assert_eq!(dr(&mut g, CTLR), 0x53);
    dw(&mut g, CTLR, 0x8000_0000);
    assert_eq!(
        dr(&mut g, CTLR),
        0x50,
        "RWP never set, ARE cannot be cleared"
    );
}

#[test]
fn identification_registers() {
    let mut g = gic4();
    let typer = (1 << 25) | (1 << 24) | (9 << 19) | (3 << 5) | 2;
    assert_eq!(
        dr(&mut g, 0x4),
        typer,
        "No1N, A3V, 10 ID bits, 4 CPUs, 96 INTIDs"
    );
    assert_eq!(dr(&mut g, 0x8), 0x4800_043b);
    assert_eq!(dr(&mut g, 0xc), 0, "TYPER2");
    assert_eq!(dr(&mut g, 0xffe8), 0x3b, "PIDR2: GICv3");
    let cidr: alloc::vec::Vec<u32> = (0..4).map(|i| dr(&mut g, 0xfff0 + 4 * i)).collect();
    assert_eq!(cidr, [0x0d, 0xf0, 0x05, 0xb1]);
    // Read-only: writes are ignored.
    dw(&mut g, 0x4, 0);
    assert_eq!(dr(&mut g, 0x4), typer);
    let mut big = Vgic::new(&[0], 988).unwrap();
    assert_eq!(dr(&mut big, 0x4) & 0xff, 31, "ITLinesNumber for 988 SPIs");
    let mut none = Vgic::new(&[0], 0).unwrap();
    assert_eq!(dr(&mut none, 0x4) & 0xff, 0);
}

#[test]
fn private_range_is_raz_wi_in_the_distributor() {
    let mut g = gic4();
    for base in [IGROUPR, ISENABLER, ISPENDR, ISACTIVER] {
        dw(&mut g, base, u32::MAX);
        assert_eq!(dr(&mut g, base), 0, "{base:#x}");
    }
    dw(&mut g, ICFGR, u32::MAX);
    dw(&mut g, ICFGR + 4, u32::MAX);
    assert_eq!((dr(&mut g, ICFGR), dr(&mut g, ICFGR + 4)), (0, 0));
    g.dist_write(IPRIORITYR + 5, 1, 0xff).unwrap();
    assert_eq!(g.dist_read(IPRIORITYR + 4, 4), Ok(0));
    assert_eq!(
        rr(&mut g, 0, SGI + ISENABLER),
        0,
        "the redistributor is untouched"
    );
}

#[test]
fn group_enable_pending_active_bits() {
    let mut g = gic4();
    assert_eq!(dr(&mut g, IGROUPR + 4), u32::MAX, "SPIs reset to group 1");
    dw(&mut g, IGROUPR + 4, 0x0000_ffff);
    assert_eq!(dr(&mut g, IGROUPR + 4), 0x0000_ffff);
    for (set, clear) in [
        (ISENABLER, ICENABLER),
        (ISPENDR, ICPENDR),
        (ISACTIVER, ICACTIVER),
    ] {
        dw(&mut g, set + 4, 0x8000_0003);
        assert_eq!(dr(&mut g, set + 4), 0x8000_0003, "{set:#x}");
        assert_eq!(
            dr(&mut g, clear + 4),
            0x8000_0003,
            "{clear:#x} reads the same state"
        );
        dw(&mut g, set + 8, 0x10);
        dw(&mut g, clear + 4, 0x1);
        assert_eq!(dr(&mut g, set + 4), 0x8000_0002);
        assert_eq!(dr(&mut g, set + 8), 0x10);
        // Beyond the 64 SPIs: RAZ/WI.
        dw(&mut g, set + 12, u32::MAX);
        assert_eq!(dr(&mut g, set + 12), 0);
        assert_eq!(dr(&mut g, set + 0x7c), 0);
    }
}

#[test]
fn priorities_by_byte_and_word() {
    let mut g = gic4();
    g.dist_write(IPRIORITYR + 33, 1, 0xa0).unwrap();
    dw(&mut g, IPRIORITYR + 36, 0x4030_2010);
    assert_eq!(dr(&mut g, IPRIORITYR + 32), 0x0000_a000);
    assert_eq!(g.dist_read(IPRIORITYR + 38, 1), Ok(0x30));
    assert_eq!(dr(&mut g, IPRIORITYR + 36), 0x4030_2010);
    assert_eq!(
        g.dist_read(IPRIORITYR + 32, 2),
        Err(MmioError::BadWidth {
            offset: IPRIORITYR + 32,
            width: 2,
            accepts: Widths::W1_4,
        })
    );
    g.dist_write(IPRIORITYR + 96, 1, 0xff).unwrap();
    assert_eq!(
        g.dist_read(IPRIORITYR + 96, 1),
        Ok(0),
        "INTID 96 does not exist"
    );
    assert_eq!(g.dist_read(0x7fc, 4), Ok(0));
}

#[test]
fn configuration_edge_bits() {
    let mut g = gic4();
    assert_eq!(dr(&mut g, ICFGR + 8), 0, "SPIs reset level-sensitive");
    dw(&mut g, ICFGR + 8, 0xffff_ffff);
    assert_eq!(
        dr(&mut g, ICFGR + 8),
        0xaaaa_aaaa,
        "only the edge bits exist"
    );
    dw(&mut g, ICFGR + 12, 0x8);
    assert_eq!(dr(&mut g, ICFGR + 12), 0x8);
    dw(&mut g, ICFGR + 20, u32::MAX);
    assert_eq!(dr(&mut g, ICFGR + 20), 0xaaaa_aaaa, "INTIDs 80..95");
    dw(&mut g, ICFGR + 24, u32::MAX);
    assert_eq!(dr(&mut g, ICFGR + 24), 0, "INTID 96.. does not exist");
}

#[test]
fn irouter_64_and_32_bit() {
    let mut g = Vgic::new(&[0, 1, 0x100, 0x1_0000_0000], 32).unwrap();
    let r33 = IROUTER + 33 * 8;
    assert_eq!(g.dist_read(r33, 8), Ok(0));
    g.dist_write(r33, 8, 0x100 | (1 << 31)).unwrap();
    assert_eq!(g.dist_read(r33, 8), Ok(0x100), "IRM is RAZ/WI (No1N)");
    g.dist_write(r33 + 4, 4, 1).unwrap();
    assert_eq!(g.dist_read(r33, 8), Ok(0x1_0000_0100));
    g.dist_write(r33, 4, 0).unwrap();
    assert_eq!(g.dist_read(r33, 8), Ok(0x1_0000_0000));
    assert_eq!(g.dist_read(r33 + 4, 4), Ok(1));
    assert_eq!(g.dist_read(r33, 4), Ok(0));
    assert_eq!(
        g.dist_read(r33, 2),
        Err(MmioError::BadWidth {
            offset: r33,
            width: 2,
            accepts: Widths::W4_8,
        })
    );
    // IROUTER<0..31> and beyond the SPIs are RAZ/WI.
    g.dist_write(IROUTER + 8, 8, 1).unwrap();
    assert_eq!(g.dist_read(IROUTER + 8, 8), Ok(0));
    g.dist_write(IROUTER + 64 * 8, 8, 1).unwrap();
    assert_eq!(g.dist_read(IROUTER + 64 * 8, 8), Ok(0));
    assert_eq!(g.dist_read(0x7fd8, 8), Ok(0), "IROUTER1019");
}

#[test]
fn itargetsr_sgir_and_secure_registers_are_raz_wi() {
    let mut g = gic4();
    for off in [0x820, 0xd04, 0xe08, 0xf00, 0xf10, 0xf20, 0x10, 0x40, 0x48] {
        dw(&mut g, off, u32::MAX);
        assert_eq!(dr(&mut g, off), 0, "{off:#x}");
    }
    g.dist_write(0x821, 1, 0xff).unwrap();
    assert_eq!(g.dist_read(0x821, 1), Ok(0));
}

#[test]
fn bad_accesses_are_errors_not_panics() {
    let mut g = gic4();
    assert_eq!(
        g.dist_read(CTLR, 1),
        Err(MmioError::BadWidth {
            offset: 0,
            width: 1,
            accepts: Widths::W4,
        })
    );
    assert_eq!(
        g.dist_read(CTLR, 8),
        Err(MmioError::BadWidth {
            offset: 0,
            width: 8,
            accepts: Widths::W4,
        })
    );
    assert_eq!(
        g.dist_read(CTLR, 3),
        Err(MmioError::BadWidth {
            offset: 0,
            width: 3,
            accepts: Widths::ANY,
        })
    );
    assert_eq!(
        g.dist_write(ISENABLER + 4, 2, 1),
        Err(MmioError::BadWidth {
            offset: 0x104,
            width: 2,
            accepts: Widths::W4,
        })
    );
    assert_eq!(
        g.dist_read(0x6, 4),
        Err(MmioError::Unaligned {
            offset: 6,
            width: 4
        })
    );
    assert_eq!(g.dist_read(u64::MAX - 3, 4), Ok(0));
    assert_eq!(
        g.dist_write(u64::MAX - 7, 8, 1),
        Err(MmioError::BadWidth {
            offset: u64::MAX - 7,
            width: 8,
            accepts: Widths::W4,
        })
    );
    assert_eq!(g.dist_read(0x1_0000, 4), Ok(0), "past the frame");
    // Every offset of the frame at every width: no panic.
    for off in (0..0x1_0000u64).step_by(4) {
        for w in [1u8, 2, 4, 8] {
            let _ = g.dist_read(off, w);
            let _ = g.dist_write(off, w, u64::MAX);
        }
    }
}

#[test]
fn mmio_view_matches_methods() {
    let mut g = gic4();
    let mut d = g.dist();
    d.write(CTLR, 4, 2).unwrap();
    assert_eq!(d.read(CTLR, 4), Ok(0x52));
}
