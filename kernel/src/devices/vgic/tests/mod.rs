//! vGIC tests: every distributor and redistributor register, and the injection flow
//! as the arch code drives it (list registers simulated by the tests).

mod dist;
mod inject;
mod redist;
mod v2;

use super::*;

/// GICD register offsets used by the tests.
pub const CTLR: u64 = 0x0;
pub const IGROUPR: u64 = 0x80;
pub const ISENABLER: u64 = 0x100;
pub const ICENABLER: u64 = 0x180;
pub const ISPENDR: u64 = 0x200;
pub const ICPENDR: u64 = 0x280;
pub const ISACTIVER: u64 = 0x300;
pub const ICACTIVER: u64 = 0x380;
pub const IPRIORITYR: u64 = 0x400;
pub const ICFGR: u64 = 0xc00;
pub const IROUTER: u64 = 0x6000;
/// SGI_base frame of a redistributor.
pub const SGI: u64 = 0x1_0000;

/// Four vCPUs (MPIDR 0..3) and 64 SPIs.
pub fn gic4() -> Vgic {
    Vgic::new(&[0, 1, 2, 3], 64).unwrap()
}

pub fn dr(g: &mut Vgic, off: u64) -> u32 {
    g.dist_read(off, 4).unwrap() as u32
}

pub fn dw(g: &mut Vgic, off: u64, v: u32) {
    g.dist_write(off, 4, u64::from(v)).unwrap();
}

pub fn rr(g: &mut Vgic, vcpu: usize, off: u64) -> u32 {
    g.redist_read(vcpu, off, 4).unwrap() as u32
}

pub fn rw(g: &mut Vgic, vcpu: usize, off: u64, v: u32) {
    g.redist_write(vcpu, off, 4, u64::from(v)).unwrap();
}

/// Bit of `intid` in its 32-bit register, and that register's offset from `base`.
pub fn bit(base: u64, intid: u32) -> (u64, u32) {
    (base + u64::from(intid / 32) * 4, 1 << (intid % 32))
}

/// Enables the distributor's group 1 and SPI `intid` with `priority`.
pub fn enable_spi(g: &mut Vgic, intid: u32, priority: u8) {
    dw(g, CTLR, 0x12);
    let (off, b) = bit(ISENABLER, intid);
    dw(g, off, b);
    g.dist_write(IPRIORITYR + u64::from(intid), 1, u64::from(priority))
        .unwrap();
}

/// Enables private `intid` on `vcpu` with `priority`.
pub fn enable_private(g: &mut Vgic, vcpu: usize, intid: u32, priority: u8) {
    rw(g, vcpu, SGI + ISENABLER, 1 << intid);
    g.redist_write(
        vcpu,
        SGI + IPRIORITYR + u64::from(intid),
        1,
        u64::from(priority),
    )
    .unwrap();
}

#[test]
fn bad_configurations() {
    assert_eq!(Vgic::new(&[], 32).unwrap_err(), VgicError::BadConfig);
    assert_eq!(Vgic::new(&[0, 1, 0], 32).unwrap_err(), VgicError::BadConfig);
    let many: alloc::vec::Vec<u64> = (0..65).collect();
    assert_eq!(Vgic::new(&many, 32).unwrap_err(), VgicError::BadConfig);
    assert_eq!(Vgic::new(&[0], 989).unwrap_err(), VgicError::BadConfig);
    let g = Vgic::new(&many[..64], 988).unwrap();
    assert_eq!((g.nr_vcpus(), g.nr_spis()), (64, 988));
}
