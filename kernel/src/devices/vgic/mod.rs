//! Virtual GICv3 of one VM, as pure state: the distributor, one redistributor per
//! vCPU, and the bookkeeping between the model and the list registers the arch code
//! owns. The same state can instead be seen as a GICv2 distributor ([`Vgic::new_v2`],
//! [`Vgic::dist_v2`], see `v2.rs`).
//!
//! The guest sees a GICv3 with a single security state (GICD_CTLR.DS = 1), affinity
//! routing always on (ARE = 1), no LPIs/ITS, `nr_spis` SPIs and 1-of-N routing not
//! supported (GICD_TYPER.No1N = 1). Register accesses come through [`Vgic::dist_read`]
//! and friends or the [`MmioDevice`] views ([`Vgic::dist`], [`Vgic::redist`],
//! [`Vgic::redist_region`]).
//!
//! Injection flow for the arch code, per vCPU:
//! 1. Devices and the VMM raise interrupts: [`Vgic::set_pending`] (edge),
//!    [`Vgic::set_level`] / [`Vgic::set_private_level`] (level), [`Vgic::sgi`]
//!    (trapped ICC_SGI1R_EL1, ICC_SGI0R_EL1, ICC_ASGI1R_EL1). They return which vCPUs got work; [`Vgic::take_kicks`]
//!    also collects vCPUs that guest register writes gave work (enables, pends).
//! 2. Before entering the guest, fill free list registers with [`Vgic::next_to_inject`]
//!    (highest priority first; each result is in flight until reported back). With
//!    more pending than list registers, request the underflow maintenance interrupt
//!    or refill on the next exit.
//! 3. After an exit, report every used list register with [`Vgic::lr_update`] and do
//!    what the returned [`LrAction`] says; [`Vgic::unqueue`] takes back a pending one
//!    (to make room for a higher priority interrupt).

mod dist;
pub mod guest_version;
mod inject;
mod irq;
mod redist;
mod regs;
mod v2;

pub use inject::{sgi_request, SGI_GROUP0_ONLY};
pub use irq::{Injection, LrAction, LrState};
pub use v2::{DistV2View, GICD_V2_SIZE};

use super::{MmioDevice, MmioError, Widths};
use alloc::vec;
use alloc::vec::Vec;
use irq::Irq;

/// SGIs + PPIs: the interrupts private to each vCPU.
pub const PRIVATE_IRQS: u32 = 32;
/// Most SPIs (INTIDs 32..=1019).
pub const MAX_SPIS: u32 = 988;
/// Most vCPUs (vCPU sets are `u64` bitmasks).
pub const MAX_VCPUS: usize = 64;
/// Size of one redistributor (RD_base + SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Size of the distributor frame.
pub const GICD_SIZE: u64 = 0x1_0000;
/// Affinity fields of an MPIDR (Aff3 39:32, Aff2..Aff0 23:0).
pub const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// Errors of the injection API (guest register accesses have their own [`MmioError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// No such interrupt (or the wrong kind for the call).
    BadIntid(u32),
    BadVcpu(usize),
    /// `lr_update`/`unqueue` for an interrupt not in that vCPU's list registers.
    NotInFlight(u32),
    /// Construction: no vCPUs, more than [`MAX_VCPUS`], duplicate MPIDRs, or more
    /// than [`MAX_SPIS`].
    BadConfig,
}

/// Per-vCPU state: its private interrupts and its redistributor.
#[derive(Clone, Debug)]
struct Cpu {
    mpidr: u64,
    private: [Irq; PRIVATE_IRQS as usize],
    /// GICR_WAKER.ProcessorSleep.
    asleep: bool,
}

/// The virtual GICv3; see the module documentation.
#[derive(Clone, Debug)]
pub struct Vgic {
    cpus: Vec<Cpu>,
    spis: Vec<Irq>,
    /// GICD_IROUTER<n> per SPI (affinity fields only).
    routes: Vec<u64>,
    /// vCPU each SPI is routed to (cached from `routes`).
    targets: Vec<Option<usize>>,
    /// GICD_CTLR.EnableGrp0 / EnableGrp1.
    grp0: bool,
    grp1: bool,
    kicks: u64,
    /// Seen as a GICv2 (`routes` then holds GICD_ITARGETSR CPU masks).
    v2: bool,
}

impl Vgic {
    /// A GIC for vCPUs with the given MPIDRs (vCPU i = `mpidrs[i]`) and `nr_spis` SPIs
    /// (INTIDs 32..32 + nr_spis).
    pub fn new(mpidrs: &[u64], nr_spis: u32) -> Result<Self, VgicError> {
        let bad_mpidr = mpidrs
            .iter()
            .enumerate()
            .any(|(i, m)| mpidrs[..i].contains(m));
        if mpidrs.is_empty() || mpidrs.len() > MAX_VCPUS || bad_mpidr || nr_spis > MAX_SPIS {
            return Err(VgicError::BadConfig);
        }
        let cpus = mpidrs
            .iter()
            .map(|&m| Cpu::new(m & MPIDR_AFF_MASK))
            .collect();
        let spis = vec![
            Irq {
                group1: true,
                ..Irq::default()
            };
            nr_spis as usize
        ];
        let mut gic = Self {
            cpus,
            spis,
            routes: vec![0; nr_spis as usize],
            targets: vec![None; nr_spis as usize],
            grp0: false,
            grp1: false,
            kicks: 0,
            v2: false,
        };
        for i in 0..nr_spis as usize {
            gic.targets[i] = gic.vcpu_of_mpidr(0);
        }
        Ok(gic)
    }

    pub fn nr_vcpus(&self) -> usize {
        self.cpus.len()
    }

    pub fn nr_spis(&self) -> u32 {
        self.spis.len() as u32
    }

    /// The vCPU whose MPIDR affinity is `mpidr`.
    pub fn vcpu_of_mpidr(&self, mpidr: u64) -> Option<usize> {
        self.cpus
            .iter()
            .position(|c| c.mpidr == mpidr & MPIDR_AFF_MASK)
    }

    /// vCPUs that may have new deliverable interrupts since the last call (bit i =
    /// vCPU i); the VMM kicks those running elsewhere.
    pub fn take_kicks(&mut self) -> u64 {
        core::mem::take(&mut self.kicks)
    }

    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        if intid < PRIVATE_IRQS {
            self.cpus.get(vcpu)?.private.get(intid as usize)
        } else {
            self.spis.get((intid - PRIVATE_IRQS) as usize)
        }
    }

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        if intid < PRIVATE_IRQS {
            self.cpus.get_mut(vcpu)?.private.get_mut(intid as usize)
        } else {
            self.spis.get_mut((intid - PRIVATE_IRQS) as usize)
        }
    }

    /// The vCPU an interrupt is delivered to (`vcpu` itself for private ones).
    fn target(&self, vcpu: usize, intid: u32) -> Option<usize> {
        if intid < PRIVATE_IRQS {
            (vcpu < self.cpus.len()).then_some(vcpu)
        } else {
            *self.targets.get((intid - PRIVATE_IRQS) as usize)?
        }
    }

    fn group_enabled(&self, irq: &Irq) -> bool {
        if irq.group1 {
            self.grp1
        } else {
            self.grp0
        }
    }

    /// Whether `intid` (private ones: of `vcpu`) can go into a list register now.
    fn deliverable(&self, vcpu: usize, intid: u32) -> bool {
        let spi_gate = |irq: &Irq| intid < PRIVATE_IRQS || self.group_enabled(irq);
        self.irq(vcpu, intid)
            .is_some_and(|irq| irq.ready() && spi_gate(irq))
    }

    /// Records a kick for the target of `intid` if it became deliverable, or if it is
    /// pending again while a list register of the target may still hold it (the
    /// target must exit so the list register is read back and the interrupt
    /// re-delivered); returns the target when deliverable.
    fn note(&mut self, vcpu: usize, intid: u32) -> Option<usize> {
        let target = self.target(vcpu, intid)?;
        let ready = self.deliverable(vcpu, intid);
        let waiting_on_lr = self
            .irq(vcpu, intid)
            .is_some_and(|i| i.enabled && i.pending() && i.lr != LrState::Invalid);
        if ready || waiting_on_lr {
            self.kicks |= 1 << target;
        }
        ready.then_some(target)
    }

    /// Distributor register read (`offset` within the 64 KiB GICD frame).
    pub fn dist_read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        dist::read(self, offset, width)
    }

    pub fn dist_write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        dist::write(self, offset, width, value)
    }

    /// Register read in `vcpu`'s redistributor (`offset` within its 128 KiB: RD_base,
    /// then SGI_base at +0x10000). A vCPU that does not exist reads as zero.
    pub fn redist_read(&mut self, vcpu: usize, offset: u64, width: u8) -> Result<u64, MmioError> {
        redist::read(self, vcpu, offset, width)
    }

    pub fn redist_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        width: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        redist::write(self, vcpu, offset, width, value)
    }

    /// The distributor as an MMIO device.
    pub fn dist(&mut self) -> DistView<'_> {
        DistView(self)
    }

    /// `vcpu`'s redistributor as an MMIO device.
    pub fn redist(&mut self, vcpu: usize) -> RedistView<'_> {
        RedistView(self, vcpu)
    }

    /// The whole redistributor region (vCPU i at i * [`GICR_STRIDE`]).
    pub fn redist_region(&mut self) -> RedistRegionView<'_> {
        RedistRegionView(self)
    }
}

impl Cpu {
    fn new(mpidr: u64) -> Self {
        let mut private = [Irq {
            group1: true,
            ..Irq::default()
        }; PRIVATE_IRQS as usize];
        for sgi in &mut private[..16] {
            sgi.edge = true;
        }
        Self {
            mpidr,
            private,
            asleep: true,
        }
    }
}

/// [`Vgic::dist`].
pub struct DistView<'a>(&'a mut Vgic);
/// [`Vgic::redist`].
pub struct RedistView<'a>(&'a mut Vgic, usize);
/// [`Vgic::redist_region`].
pub struct RedistRegionView<'a>(&'a mut Vgic);

impl MmioDevice for DistView<'_> {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        self.0.dist_read(offset, width)
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        self.0.dist_write(offset, width, value)
    }
}

impl MmioDevice for RedistView<'_> {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        self.0.redist_read(self.1, offset, width)
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        self.0.redist_write(self.1, offset, width, value)
    }
}

fn split_region(offset: u64) -> (usize, u64) {
    let vcpu = usize::try_from(offset / GICR_STRIDE).unwrap_or(usize::MAX);
    (vcpu, offset % GICR_STRIDE)
}

impl MmioDevice for RedistRegionView<'_> {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        let (vcpu, off) = split_region(offset);
        regs::check_access(offset, width)?;
        self.0.redist_read(vcpu, off, width)
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        let (vcpu, off) = split_region(offset);
        regs::check_access(offset, width)?;
        self.0.redist_write(vcpu, off, width, value)
    }
}

#[cfg(test)]
mod tests;
