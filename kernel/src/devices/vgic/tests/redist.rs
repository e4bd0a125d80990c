//! Redistributor registers.

use super::*;

const TYPER: u64 = 0x8;
const WAKER: u64 = 0x14;

#[test]
fn typer_affinity_processor_number_last() {
    let mut g = Vgic::new(&[0, 0x1, 0x0102_0304 & 0xff_ffff, 0x7f_0000_0100], 32).unwrap();
    let t = |g: &mut Vgic, v| g.redist_read(v, TYPER, 8).unwrap();
    assert_eq!(t(&mut g, 0), 0);
    assert_eq!(t(&mut g, 1), (1 << 32) | (1 << 8));
    assert_eq!(t(&mut g, 2), (0x02_0304 << 32) | (2 << 8));
    assert_eq!(
        t(&mut g, 3),
        (0x7f00_0100 << 32) | (3 << 8) | (1 << 4),
        "Aff3 in 63:56, Last"
    );
    assert_eq!(rr(&mut g, 3, TYPER), (3 << 8) | (1 << 4));
    assert_eq!(rr(&mut g, 3, TYPER + 4), 0x7f00_0100);
    assert_eq!(
        g.redist_read(3, TYPER, 2),
        Err(MmioError::BadWidth {
            offset: TYPER,
            width: 2,
            accepts: Widths::W4,
        })
    );
}

#[test]
fn identification_and_control() {
    let mut g = gic4();
    assert_eq!(
        rr(&mut g, 1, 0xffe8),
        0x3b,
        "GICR_PIDR2 (Linux checks it per frame)"
    );
    assert_eq!(rr(&mut g, 1, 0x4), 0x4800_043b);
    rw(&mut g, 1, 0x0, u32::MAX);
    assert_eq!(rr(&mut g, 1, 0x0), 0, "no LPIs: CTLR RAZ/WI");
    assert_eq!(g.redist_read(1, 0x70, 8), Ok(0), "PROPBASER");
    g.redist_write(1, 0x78, 8, u64::MAX).unwrap();
    assert_eq!(g.redist_read(1, 0x78, 8), Ok(0), "PENDBASER");
}

#[test]
fn waker_sleep_handshake() {
    let mut g = gic4();
    assert_eq!(rr(&mut g, 2, WAKER), 0b110, "asleep out of reset");
    rw(&mut g, 2, WAKER, 0);
    assert_eq!(
        rr(&mut g, 2, WAKER),
        0,
        "ChildrenAsleep follows ProcessorSleep"
    );
    assert_eq!(rr(&mut g, 1, WAKER), 0b110, "per vCPU");
    rw(&mut g, 2, WAKER, 0b100);
    assert_eq!(rr(&mut g, 2, WAKER), 0, "ChildrenAsleep is read-only");
    rw(&mut g, 2, WAKER, 0b010);
    assert_eq!(rr(&mut g, 2, WAKER), 0b110);
}

#[test]
fn sgi_ppi_bit_registers_per_vcpu() {
    let mut g = gic4();
    assert_eq!(rr(&mut g, 0, SGI + IGROUPR), u32::MAX);
    for (set, clear) in [
        (ISENABLER, ICENABLER),
        (ISPENDR, ICPENDR),
        (ISACTIVER, ICACTIVER),
    ] {
        rw(&mut g, 1, SGI + set, 0x0800_0002);
        assert_eq!(rr(&mut g, 1, SGI + set), 0x0800_0002, "{set:#x}");
        assert_eq!(rr(&mut g, 1, SGI + clear), 0x0800_0002);
        assert_eq!(rr(&mut g, 0, SGI + set), 0, "other vCPUs untouched");
        rw(&mut g, 1, SGI + clear, 0x2);
        assert_eq!(rr(&mut g, 1, SGI + set), 0x0800_0000);
        // Only register 0 exists (no extended PPIs).
        rw(&mut g, 1, SGI + set + 4, u32::MAX);
        assert_eq!(rr(&mut g, 1, SGI + set + 4), 0);
    }
    rw(&mut g, 3, SGI + IGROUPR, 0xffff);
    assert_eq!(rr(&mut g, 3, SGI + IGROUPR), 0xffff);
}

#[test]
fn sgi_ppi_priority_and_config() {
    let mut g = gic4();
    g.redist_write(2, SGI + IPRIORITYR + 27, 1, 0x80).unwrap();
    rw(&mut g, 2, SGI + IPRIORITYR, 0x1122_3344);
    assert_eq!(rr(&mut g, 2, SGI + IPRIORITYR + 24), 0x8000_0000);
    assert_eq!(g.redist_read(2, SGI + IPRIORITYR + 1, 1), Ok(0x33));
    assert_eq!(g.redist_read(1, SGI + IPRIORITYR + 27, 1), Ok(0));
    assert_eq!(
        rr(&mut g, 2, SGI + 0xc00),
        0xaaaa_aaaa,
        "SGIs edge, read-only"
    );
    rw(&mut g, 2, SGI + 0xc00, 0);
    assert_eq!(rr(&mut g, 2, SGI + 0xc00), 0xaaaa_aaaa);
    assert_eq!(rr(&mut g, 2, SGI + 0xc04), 0, "PPIs reset level");
    rw(&mut g, 2, SGI + 0xc04, 0x0080_0000);
    assert_eq!(rr(&mut g, 2, SGI + 0xc04), 0x0080_0000, "PPI 27 edge");
    rw(&mut g, 2, SGI + 0xd00, u32::MAX);
    assert_eq!(rr(&mut g, 2, SGI + 0xd00), 0, "IGRPMODR0 RAZ/WI");
}

#[test]
fn missing_vcpus_and_bad_accesses() {
    let mut g = gic4();
    assert_eq!(g.redist_read(4, TYPER, 8), Ok(0));
    assert_eq!(g.redist_write(usize::MAX, WAKER, 4, 0), Ok(()));
    assert_eq!(
        g.redist_read(0, 0x3, 4),
        Err(MmioError::Unaligned {
            offset: 3,
            width: 4
        })
    );
    assert_eq!(
        g.redist_read(0, WAKER, 8),
        Err(MmioError::Unaligned {
            offset: WAKER,
            width: 8
        })
    );
    assert_eq!(
        g.redist_read(0, 0x10, 8),
        Err(MmioError::BadWidth {
            offset: 0x10,
            width: 8,
            accepts: Widths::W4,
        })
    );
    assert_eq!(
        g.redist_read(0, SGI + IPRIORITYR, 2),
        Err(MmioError::BadWidth {
            offset: SGI + IPRIORITYR,
            width: 2,
            accepts: Widths::W1_4,
        })
    );
    for off in (0..GICR_STRIDE).step_by(4) {
        for w in [1u8, 2, 4, 8] {
            let _ = g.redist_read(0, off, w);
            let _ = g.redist_write(3, off, w, u64::MAX);
        }
    }
    assert_eq!(g.redist_read(0, u64::MAX - 3, 4), Ok(0));
}

/// What Linux's gic_populate_rdist() does: walk the region until GICR_TYPER.Last,
/// matching its own MPIDR, after checking PIDR2.
#[test]
fn linux_redistributor_discovery_over_the_region() {
    let mut g = Vgic::new(&[0, 1, 2], 32).unwrap();
    let mut region = g.redist_region();
    let mut found = alloc::vec::Vec::new();
    let mut base = 0;
    loop {
        assert_eq!(region.read(base + 0xffe8, 4).unwrap() & 0xf0, 0x30);
        let typer = region.read(base + TYPER, 8).unwrap();
        found.push(typer >> 32);
        if typer & (1 << 4) != 0 {
            break;
        }
        base += GICR_STRIDE;
    }
    assert_eq!(found, [0, 1, 2]);
    region.write(GICR_STRIDE + WAKER, 4, 0).unwrap();
    assert_eq!(region.read(GICR_STRIDE + WAKER, 4), Ok(0));
    assert_eq!(
        region.read(3 * GICR_STRIDE + TYPER, 8),
        Ok(0),
        "no fourth redistributor"
    );
    assert_eq!(region.read(u64::MAX - 7, 8), Ok(0));
    assert_eq!(
        region.read(GICR_STRIDE + 2, 4),
        Err(MmioError::Unaligned {
            offset: GICR_STRIDE + 2,
            width: 4
        })
    );
    let mut one = g.redist(2);
    assert_eq!(one.read(TYPER, 8), Ok((2 << 32) | (2 << 8) | (1 << 4)));
}
