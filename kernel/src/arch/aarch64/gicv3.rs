//! Host GICv3 driver: distributor and redistributor setup, the EL2 CPU interface, the
//! virtual CPU interface control (ICH_*_EL2) and its list registers.

use super::regs::{dsb_sy, isb, read_sysreg, write_sysreg};
use crate::firmware::Range;
use core::ptr::{read_volatile, write_volatile};

const GICD_CTLR: u64 = 0x0;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICR_CTLR: u64 = 0x0;
const GICR_TYPER: u64 = 0x8;
const GICR_WAKER: u64 = 0x14;
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x80;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x100;
const GICR_ICENABLER0: u64 = SGI_BASE + 0x180;
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x400;

/// SGI the hypervisor uses to kick a CPU out of its guest.
pub const SGI_KICK: u32 = 8;
/// Maintenance interrupt PPI (GIC INTID) on every board we know.
pub const MAINTENANCE_IRQ: u32 = 25;
/// Priority the hypervisor gives its own SGIs/PPIs.
pub(super) const HV_PRIORITY: u8 = 0xa0;

fn rd32(addr: u64) -> u32 {
    // SAFETY: `addr` is a GIC register inside the distributor/redistributor region
    // the DTB describes, mapped as device memory in the EL2 identity map.
    unsafe { read_volatile(addr as *const u32) }
}

fn wr32(addr: u64, v: u32) {
    // SAFETY: as for `rd32`.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn rd64(addr: u64) -> u64 {
    // SAFETY: as for `rd32`.
    unsafe { read_volatile(addr as *const u64) }
}

/// Enables the distributor with affinity routing. Boot CPU only.
pub fn init_distributor(gicd: Range) {
    // ARE_NS | EnableGrp1A | EnableGrp1 (also ARE | Grp1 | Grp0 with one security state).
    wr32(gicd.base + GICD_CTLR, (1 << 4) | (1 << 1) | 1);
    while rd32(gicd.base + GICD_CTLR) & GICD_CTLR_RWP != 0 {}
}

const GICD_IGROUPR: u64 = 0x80;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_IROUTER: u64 = 0x6000;

/// Routes SPI `intid` (a device of the hypervisor's own, such as the console UART) to
/// the CPU `mpidr` and enables it.
pub fn enable_spi(gicd: Range, intid: u32, mpidr: u64) {
    if !(32..1020).contains(&intid) {
        return;
    }
    let (word, bit) = ((intid / 32) as u64 * 4, 1u32 << (intid % 32));
    wr32(
        gicd.base + GICD_IGROUPR + word,
        rd32(gicd.base + GICD_IGROUPR + word) | bit,
    );
    // SAFETY: byte-wide priority register of this SPI in the distributor.
    unsafe {
        write_volatile(
            (gicd.base + GICD_IPRIORITYR + intid as u64) as *mut u8,
            HV_PRIORITY,
        )
    };
    let aff = mpidr & 0xff_00ff_ffff;
    // SAFETY: 64-bit IROUTER register of this SPI in the distributor.
    unsafe {
        write_volatile(
            (gicd.base + GICD_IROUTER + intid as u64 * 8) as *mut u64,
            aff,
        )
    };
    wr32(gicd.base + GICD_ISENABLER + word, bit);
    while rd32(gicd.base + GICD_CTLR) & GICD_CTLR_RWP != 0 {}
}

/// Finds this CPU's redistributor by affinity, scanning the frames from `gicr`.
fn find_redistributor(gicr: Range, stride: u64, mpidr: u64) -> Option<u64> {
    let aff = ((mpidr >> 8) & 0xff00_0000) | (mpidr & 0xff_ffff);
    let mut rd = gicr.base;
    while rd + stride <= gicr.end() {
        let typer = rd64(rd + GICR_TYPER);
        if typer >> 32 == aff {
            return Some(rd);
        }
        if typer & (1 << 4) != 0 {
            break; // Last
        }
        rd += stride;
    }
    None
}

#[derive(Debug)]
pub struct NoRedistributor;

/// Wakes this CPU's redistributor, enables the hypervisor's own SGIs/PPIs and the
/// virtual-timer PPIs (forwarded to guests), and sets up the CPU interfaces.
pub fn init_cpu(gicr: Range, stride: u64, mpidr: u64, ppis: &[u32]) -> Result<(), NoRedistributor> {
    let rd = find_redistributor(gicr, stride, mpidr).ok_or(NoRedistributor)?;
    let waker = rd32(rd + GICR_WAKER) & !(1 << 1);
    wr32(rd + GICR_WAKER, waker);
    while rd32(rd + GICR_WAKER) & (1 << 2) != 0 {}
    let _ = rd32(rd + GICR_CTLR);
    wr32(rd + GICR_ICENABLER0, u32::MAX);
    wr32(rd + GICR_IGROUPR0, u32::MAX);
    let mut enable = 1 << SGI_KICK | 1 << MAINTENANCE_IRQ;
    for &p in ppis.iter().filter(|&&p| p < 32) {
        enable |= 1 << p;
    }
    for irq in 0..32u64 {
        // SAFETY: byte-wide priority register of this CPU's redistributor.
        unsafe { write_volatile((rd + GICR_IPRIORITYR + irq) as *mut u8, HV_PRIORITY) };
    }
    wr32(rd + GICR_ISENABLER0, enable);
    dsb_sy();

    // System-register interface at EL2 and for EL1 (SRE | DFB | DIB | Enable).
    write_sysreg!(icc_sre_el2, 0xf);
    isb();
    write_sysreg!(icc_pmr_el1, 0xff);
    write_sysreg!(icc_bpr1_el1, 0);
    // EOImode 1: priority drop and deactivation are separate, so an interrupt
    // forwarded to a guest stays active until the guest deactivates it.
    write_sysreg!(icc_ctlr_el1, 1 << 1);
    write_sysreg!(icc_igrpen1_el1, 1);
    // Virtual CPU interface: enabled, all list registers empty.
    for i in 0..num_lrs() {
        write_lr(i, 0);
    }
    write_sysreg!(ich_vmcr_el2, 0);
    write_sysreg!(ich_hcr_el2, 1);
    isb();
    Ok(())
}

/// Acknowledges the highest-priority pending interrupt: its INTID (1020..1023 = none).
pub fn ack() -> u32 {
    (read_sysreg!(icc_iar1_el1) & 0xff_ffff) as u32
}

/// Priority drop (EOImode 1: does not deactivate).
pub fn eoi(intid: u32) {
    write_sysreg!(icc_eoir1_el1, intid as u64);
}

/// Deactivates an interrupt the hypervisor handled itself.
pub fn deactivate(intid: u32) {
    write_sysreg!(icc_dir_el1, intid as u64);
}

/// Sends an SGI to the CPU with affinity `mpidr`.
pub fn send_sgi(mpidr: u64, sgi: u32) {
    let aff0 = mpidr & 0xff;
    let v = (1u64 << (aff0 & 0xf))
        | (((mpidr >> 8) & 0xff) << 16)
        | ((sgi as u64 & 0xf) << 24)
        | (((mpidr >> 16) & 0xff) << 32)
        | ((aff0 >> 4) << 44)
        | (((mpidr >> 32) & 0xff) << 48);
    dsb_sy();
    write_sysreg!(icc_sgi1r_el1, v);
    isb();
}

/// Number of list registers.
pub fn num_lrs() -> usize {
    ((read_sysreg!(ich_vtr_el2) & 0x1f) + 1) as usize
}

pub fn read_lr(i: usize) -> u64 {
    match i {
        0 => read_sysreg!(ich_lr0_el2),
        1 => read_sysreg!(ich_lr1_el2),
        2 => read_sysreg!(ich_lr2_el2),
        3 => read_sysreg!(ich_lr3_el2),
        4 => read_sysreg!(ich_lr4_el2),
        5 => read_sysreg!(ich_lr5_el2),
        6 => read_sysreg!(ich_lr6_el2),
        7 => read_sysreg!(ich_lr7_el2),
        8 => read_sysreg!(ich_lr8_el2),
        9 => read_sysreg!(ich_lr9_el2),
        10 => read_sysreg!(ich_lr10_el2),
        11 => read_sysreg!(ich_lr11_el2),
        12 => read_sysreg!(ich_lr12_el2),
        13 => read_sysreg!(ich_lr13_el2),
        14 => read_sysreg!(ich_lr14_el2),
        _ => read_sysreg!(ich_lr15_el2),
    }
}

pub fn write_lr(i: usize, v: u64) {
    match i {
        0 => write_sysreg!(ich_lr0_el2, v),
        1 => write_sysreg!(ich_lr1_el2, v),
        2 => write_sysreg!(ich_lr2_el2, v),
        3 => write_sysreg!(ich_lr3_el2, v),
        4 => write_sysreg!(ich_lr4_el2, v),
        5 => write_sysreg!(ich_lr5_el2, v),
        6 => write_sysreg!(ich_lr6_el2, v),
        7 => write_sysreg!(ich_lr7_el2, v),
        8 => write_sysreg!(ich_lr8_el2, v),
        9 => write_sysreg!(ich_lr9_el2, v),
        10 => write_sysreg!(ich_lr10_el2, v),
        11 => write_sysreg!(ich_lr11_el2, v),
        12 => write_sysreg!(ich_lr12_el2, v),
        13 => write_sysreg!(ich_lr13_el2, v),
        14 => write_sysreg!(ich_lr14_el2, v),
        _ => write_sysreg!(ich_lr15_el2, v),
    }
}

/// List register fields.
pub mod lr {
    pub const STATE_PENDING: u64 = 1 << 62;
    pub const STATE_ACTIVE: u64 = 2 << 62;
    pub const STATE_MASK: u64 = 3 << 62;
    pub const HW: u64 = 1 << 61;
    pub const GROUP1: u64 = 1 << 60;

    /// A pending group-1 virtual interrupt; `hw` links it to the same physical INTID.
    pub fn pending(intid: u32, priority: u8, hw: bool) -> u64 {
        let mut v = STATE_PENDING | GROUP1 | ((priority as u64) << 48) | intid as u64;
        if hw {
            v |= HW | ((intid as u64 & 0x1fff) << 32);
        }
        v
    }

    pub fn intid(v: u64) -> u32 {
        v as u32
    }

    /// The physical INTID a HW list register links to while it still holds the
    /// interrupt (pending or active): that physical interrupt is active until the
    /// guest deactivates the virtual one.
    pub fn hw_in_flight(v: u64) -> Option<u32> {
        (v & HW != 0 && v & STATE_MASK != 0).then_some(((v >> 32) & 0x1fff) as u32)
    }
}
