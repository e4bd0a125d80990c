//! Host GICv2 driver: the distributor (GICD), the physical CPU interface (GICC) and
//! the virtual interface control (GICH) with its 32-bit list registers.
//!
//! The list registers are presented in the GICv3 ICH_LR<n>_EL2 layout ([`super::gicv3::lr`])
//! so that the list-register code is the same for both GIC versions: [`read_lr`] and
//! [`write_lr`] convert ([`super::gicv2_lr`]).
//!
//! A GICv2 routes SPIs and SGIs by CPU interface number, not by MPIDR: each CPU reads
//! its own from the banked GICD_ITARGETSR0 when it initialises and records it here.
//!
//! List registers with the HW bit are written as software ones with EOI maintenance
//! and the physical interrupt is deactivated here once the guest finished it (see
//! [`gicv2_lr::software_hw`] for the QEMU behaviour this avoids).

use super::gicv2_lr;
use super::gicv3::{HV_PRIORITY, MAINTENANCE_IRQ, SGI_KICK};
use super::regs::{dsb_sy, mpidr};
use crate::firmware::MAX_CPUS;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const GICD_CTLR: u64 = 0x000;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_SGIR: u64 = 0xf00;

const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_BPR: u64 = 0x08;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;
const GICC_DIR: u64 = 0x1000;
/// GICC_CTLR: Enable (group 0 without Security Extensions, group 1 in the
/// Non-secure view) and EOImode (bit 9: EOImodeNS in the Non-secure view, EOImodeS
/// without Security Extensions): priority drop and deactivation are separate writes.
const GICC_CTLR_ENABLE_EOIMODE: u32 = 1 | (1 << 9);

const GICH_HCR: u64 = 0x00;
const GICH_VTR: u64 = 0x04;
const GICH_VMCR: u64 = 0x08;
const GICH_APR: u64 = 0xf0;
const GICH_LR: u64 = 0x100;
/// GICH_HCR: En, UIE.
const GICH_HCR_EN: u32 = 1 << 0;
const GICH_HCR_UIE: u32 = 1 << 1;

/// GICv2 addresses of this machine.
#[derive(Clone, Copy, Debug)]
pub struct Regs {
    pub gicd: u64,
    pub gicc: u64,
    pub gich: u64,
}

fn rd32(addr: u64) -> u32 {
    // SAFETY: `addr` is a register of the GICD/GICC/GICH frames the DTB describes,
    // mapped as device memory in the EL2 identity map.
    unsafe { read_volatile(addr as *const u32) }
}

fn wr32(addr: u64, v: u32) {
    // SAFETY: as for `rd32`.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn wr8(addr: u64, v: u8) {
    // SAFETY: as for `rd32`; IPRIORITYR and ITARGETSR are byte-accessible.
    unsafe { write_volatile(addr as *mut u8, v) }
}

/// No CPU recorded in a slot.
const EMPTY: u64 = u64::MAX;
/// MPIDR of each CPU that initialised its GICv2 interface, and its CPU interface mask
/// (one bit, from GICD_ITARGETSR0) at the same index.
static CPU_MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(EMPTY) }; MAX_CPUS];
static CPU_MASK: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// The last SGI each CPU acknowledged, as GICC_IAR gave it (with the source CPU
/// field, which its EOI and deactivation must repeat).
static LAST_SGI: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Most list registers a GICv2 has (GICH_VTR.ListRegs is 6 bits).
const MAX_LRS: usize = 64;
/// Per CPU and list register: the physical INTID + 1 a software list register stands
/// in a HW one for (0 = none); deactivated when the list register is found empty.
static HW_PHYS: [[AtomicU32; MAX_LRS]; MAX_CPUS] =
    [const { [const { AtomicU32::new(0) }; MAX_LRS] }; MAX_CPUS];

fn slot_of(mpidr: u64) -> Option<usize> {
    CPU_MPIDR
        .iter()
        .position(|m| m.load(Ordering::SeqCst) == mpidr)
}

/// Records this CPU's interface mask; Err if every slot is taken.
fn register(mpidr: u64, mask: u32) -> Result<(), ()> {
    let slot = match slot_of(mpidr) {
        Some(s) => s,
        None => CPU_MPIDR
            .iter()
            .position(|m| {
                m.compare_exchange(EMPTY, mpidr, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            })
            .ok_or(())?,
    };
    CPU_MASK[slot].store(mask, Ordering::SeqCst);
    Ok(())
}

/// This CPU's interface mask as the banked GICD_ITARGETSR0 reports it.
fn own_mask(r: &Regs) -> u32 {
    rd32(r.gicd + GICD_ITARGETSR) & 0xff
}

/// Enables the distributor (what Linux writes: group 0 without Security Extensions,
/// group 1 in the Non-secure view of one with them). Boot CPU only.
pub fn init_distributor(r: &Regs) {
    wr32(r.gicd + GICD_CTLR, 1);
}

/// Sends SPI `intid` (a device of the hypervisor's own) to the calling CPU and
/// enables it.
pub fn enable_spi(r: &Regs, intid: u32) {
    if !(32..1020).contains(&intid) {
        return;
    }
    let (word, bit) = ((intid / 32) as u64 * 4, 1u32 << (intid % 32));
    wr8(r.gicd + GICD_IPRIORITYR + intid as u64, HV_PRIORITY);
    wr8(r.gicd + GICD_ITARGETSR + intid as u64, own_mask(r) as u8);
    wr32(r.gicd + GICD_ISENABLER + word, bit);
}

#[derive(Debug)]
pub enum CpuInitError {
    /// GICD_ITARGETSR0 reads as zero (not a multiprocessor GIC view).
    NoInterfaceNumber,
    TooManyCpus,
}

/// Records this CPU's interface number, enables the hypervisor's own SGI/PPIs and
/// `ppis` (forwarded to guests), the CPU interface with split priority drop and
/// deactivation, and the virtual interface control with empty list registers.
pub fn init_cpu(r: &Regs, ppis: &[u32]) -> Result<(), CpuInitError> {
    let mask = own_mask(r);
    if mask == 0 {
        return Err(CpuInitError::NoInterfaceNumber);
    }
    register(mpidr(), mask).map_err(|_| CpuInitError::TooManyCpus)?;
    wr32(r.gicd + GICD_ICENABLER, u32::MAX);
    let mut enable = 1 << SGI_KICK | 1 << MAINTENANCE_IRQ;
    for &p in ppis.iter().filter(|&&p| p < 32) {
        enable |= 1 << p;
    }
    for irq in 0..32u64 {
        wr8(r.gicd + GICD_IPRIORITYR + irq, HV_PRIORITY);
    }
    wr32(r.gicd + GICD_ISENABLER, enable);
    wr32(r.gicc + GICC_PMR, 0xff);
    wr32(r.gicc + GICC_BPR, 0);
    wr32(r.gicc + GICC_CTLR, GICC_CTLR_ENABLE_EOIMODE);
    reset_virtual_interface(r);
    wr32(r.gich + GICH_HCR, GICH_HCR_EN);
    dsb_sy();
    Ok(())
}

/// Empties the list registers and resets the virtual CPU interface state (GICH_VMCR,
/// active priorities) for a vCPU that starts afresh.
pub fn reset_virtual_interface(r: &Regs) {
    for i in 0..num_lrs(r) {
        if let Some(phys) = take_hw_phys(i) {
            wr32(r.gicc + GICC_DIR, phys);
        }
        wr32(r.gich + GICH_LR + 4 * i as u64, 0);
    }
    wr32(r.gich + GICH_VMCR, 0);
    wr32(r.gich + GICH_APR, 0);
}

/// Acknowledges the highest-priority pending interrupt: its INTID (1020..1023 = none).
pub fn ack(r: &Regs) -> u32 {
    let iar = rd32(r.gicc + GICC_IAR);
    let intid = iar & 0x3ff;
    if intid < 16 {
        if let Some(s) = slot_of(mpidr()) {
            LAST_SGI[s].store(iar, Ordering::Relaxed);
        }
    }
    intid
}

/// What EOIR/DIR must be given for `intid`: for an SGI, the value GICC_IAR returned.
fn completion_value(intid: u32) -> u32 {
    if intid >= 16 {
        return intid;
    }
    let last = slot_of(mpidr()).map_or(intid, |s| LAST_SGI[s].load(Ordering::Relaxed));
    if last & 0x3ff == intid {
        last
    } else {
        intid
    }
}

/// Priority drop (EOImode 1: does not deactivate).
pub fn eoi(r: &Regs, intid: u32) {
    wr32(r.gicc + GICC_EOIR, completion_value(intid));
}

/// Deactivates an interrupt the hypervisor handled itself.
pub fn deactivate(r: &Regs, intid: u32) {
    wr32(r.gicc + GICC_DIR, completion_value(intid));
}

/// Sends SGI `sgi` to the CPU `mpidr`. A CPU that has not initialised its interface
/// yet is not sent anything: it has not started waiting either.
pub fn send_sgi(r: &Regs, target: u64, sgi: u32) {
    let Some(slot) = slot_of(target) else {
        return;
    };
    let mask = CPU_MASK[slot].load(Ordering::SeqCst) & 0xff;
    dsb_sy();
    wr32(r.gicd + GICD_SGIR, (mask << 16) | (sgi & 0xf));
}

/// Number of list registers (GICH_VTR.ListRegs + 1).
pub fn num_lrs(r: &Regs) -> usize {
    ((rd32(r.gich + GICH_VTR) & 0x3f) + 1) as usize
}

/// This CPU's record of the physical INTID list register `i` stands for.
fn hw_phys_slot(i: usize) -> Option<&'static AtomicU32> {
    HW_PHYS.get(slot_of(mpidr())?)?.get(i)
}

/// Takes the physical INTID list register `i` stands for, if any.
fn take_hw_phys(i: usize) -> Option<u32> {
    let p = hw_phys_slot(i)?.swap(0, Ordering::Relaxed);
    p.checked_sub(1)
}

/// List register `i`, converted to the ICH_LR<n>_EL2 layout. A list register standing
/// for a HW one reads as that; once the guest finished it, its physical interrupt is
/// deactivated (as the HW bit would have done) and it reads as an empty HW one.
pub fn read_lr(r: &Regs, i: usize) -> u64 {
    let lr = rd32(r.gich + GICH_LR + 4 * i as u64);
    let phys = hw_phys_slot(i).map_or(0, |p| p.load(Ordering::Relaxed));
    let Some(phys) = phys.checked_sub(1) else {
        return gicv2_lr::to_v3(lr);
    };
    if gicv2_lr::is_empty(lr) {
        let _ = take_hw_phys(i);
        wr32(r.gicc + GICC_DIR, phys);
    }
    gicv2_lr::with_hw(lr, phys)
}

/// Writes list register `i` from a value in the ICH_LR<n>_EL2 layout (a HW one as a
/// software one with EOI maintenance, its physical INTID recorded).
pub fn write_lr(r: &Regs, i: usize, v: u64) {
    let (lr, phys) = gicv2_lr::software_hw(v);
    if let Some(slot) = hw_phys_slot(i) {
        slot.store(phys.map_or(0, |p| p + 1), Ordering::Relaxed);
    }
    wr32(r.gich + GICH_LR + 4 * i as u64, lr);
}

/// GICH_HCR: enabled, with the underflow maintenance interrupt if `uie`.
pub fn set_hcr(r: &Regs, uie: bool) {
    let v = GICH_HCR_EN | if uie { GICH_HCR_UIE } else { 0 };
    wr32(r.gich + GICH_HCR, v);
}
