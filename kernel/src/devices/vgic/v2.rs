//! The GICv2 view of the virtual GIC: a GICv2 distributor (GICD_*, 4 KiB frame) over
//! the same interrupt state and injection API as the GICv3 model. The guest's CPU
//! interface is the host's GICv2 virtual CPU interface (hardware), fed from the same
//! list-register flow.
//!
//! Differences from the GICv3 distributor: no affinity routing, so the registers for
//! INTIDs 0-31 (group, enable, pending, active, priority, configuration) are banked
//! per vCPU here; SPIs are routed by GICD_ITARGETSR CPU masks (bit i = vCPU i; an SPI
//! targeting several vCPUs goes to the lowest one, no 1-of-N); guests send SGIs by
//! writing GICD_SGIR; one security state, every interrupt in group 0 at reset, as
//! Linux expects. The source CPU of an SGI is not tracked: SGIs read back (and
//! acknowledge) as sent by CPU 0.

use super::regs::{self, BitReg};
use super::{MmioDevice, MmioError, Vgic, VgicError, Widths, PRIVATE_IRQS};

const CTLR: u64 = 0x000;
const TYPER: u64 = 0x004;
const IIDR: u64 = 0x008;
const IPRIORITYR: u64 = 0x400;
const IPRIORITYR_END: u64 = 0x7ff;
const ITARGETSR: u64 = 0x800;
const ITARGETSR_END: u64 = 0xbff;
const ICFGR: u64 = 0xc00;
const ICFGR_END: u64 = 0xcff;
const SGIR: u64 = 0xf00;
const CPENDSGIR: u64 = 0xf10;
const CPENDSGIR_END: u64 = 0xf1f;
const SPENDSGIR: u64 = 0xf20;
const SPENDSGIR_END: u64 = 0xf2f;
/// Size of the GICv2 distributor frame; above it everything is RAZ/WI.
pub const GICD_V2_SIZE: u64 = 0x1000;

const CTLR_GRP0: u32 = 1 << 0;
const CTLR_GRP1: u32 = 1 << 1;
/// ICFGR0: SGIs are edge-triggered, read-only.
const ICFGR_SGIS: u32 = 0xaaaa_aaaa;
/// GICD_SGIR fields.
const SGIR_FILTER_SHIFT: u32 = 24;
const SGIR_TARGETS_SHIFT: u32 = 16;
const SGIR_INTID_MASK: u64 = 0xf;
/// The SGI source CPU reported for every pending SGI (GICD_SPENDSGIR bit per CPU).
const SGI_SOURCE_BITS: u64 = 0x01;

/// PIDR2 with architecture revision 2.
const PIDR2_V2: u32 = 0x2b;

/// ID registers at the end of the 4 KiB frame (0xFD0..0xFFC): those of the GICv3
/// model, with the GICv2 architecture revision.
fn id_register(offset: u64) -> Option<u32> {
    if offset == 0xfe8 {
        return Some(PIDR2_V2);
    }
    regs::id_register(offset + 0xf000)
}

/// The CPU mask a vCPU has in ITARGETSR / SGIR (0 for vCPUs beyond 8).
fn cpu_mask(vcpu: usize) -> u64 {
    if vcpu < 8 {
        1 << vcpu
    } else {
        0
    }
}

impl Vgic {
    /// A GICv2 for vCPUs with the given MPIDRs (vCPU i has CPU interface number i, so
    /// at most 8) and `nr_spis` SPIs. Everything is in group 0; SPIs target vCPU 0.
    pub fn new_v2(mpidrs: &[u64], nr_spis: u32) -> Result<Self, VgicError> {
        if mpidrs.len() > 8 {
            return Err(VgicError::BadConfig);
        }
        let mut gic = Self::new(mpidrs, nr_spis)?;
        gic.v2 = true;
        for cpu in &mut gic.cpus {
            cpu.private.iter_mut().for_each(|irq| irq.group1 = false);
        }
        gic.spis.iter_mut().for_each(|irq| irq.group1 = false);
        for i in 0..gic.spis.len() {
            gic.routes[i] = cpu_mask(0);
            gic.targets[i] = Some(0);
        }
        Ok(gic)
    }

    /// Whether this is a GICv2 (guests see it through [`Vgic::dist_v2`]).
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The GICv2 distributor as `vcpu` sees it (banked registers of INTIDs 0-31).
    pub fn dist_v2(&mut self, vcpu: usize) -> DistV2View<'_> {
        DistV2View(self, vcpu)
    }

    fn v2_ctlr(&self) -> u32 {
        (u32::from(self.grp0) * CTLR_GRP0) | (u32::from(self.grp1) * CTLR_GRP1)
    }

    fn v2_typer(&self) -> u32 {
        let lines = (self.nr_spis() + PRIVATE_IRQS).div_ceil(32) - 1;
        let cpus = (self.nr_vcpus().min(8) - 1) as u32;
        (cpus << 5) | lines
    }

    /// ITARGETSR byte of `intid` as `vcpu` reads it.
    fn target_byte(&self, vcpu: usize, intid: u32) -> u64 {
        if intid < PRIVATE_IRQS {
            return cpu_mask(vcpu);
        }
        let index = (intid - PRIVATE_IRQS) as usize;
        self.routes.get(index).map_or(0, |m| m & 0xff)
    }

    /// Sets the CPU mask of SPI `intid`; it goes to the lowest vCPU in the mask.
    fn set_target_mask(&mut self, intid: u32, mask: u8) {
        let Some(index) = intid.checked_sub(PRIVATE_IRQS).map(|i| i as usize) else {
            return;
        };
        if index >= self.routes.len() {
            return;
        }
        let n = self.nr_vcpus();
        self.routes[index] = u64::from(mask);
        self.targets[index] = (0..n.min(8)).find(|&v| mask & (1 << v) != 0);
        self.note(0, intid);
    }

    /// A guest write of GICD_SGIR by `from`.
    fn write_sgir(&mut self, from: usize, v: u64) {
        let intid = (v & SGIR_INTID_MASK) as u32;
        let all = (1u64 << self.nr_vcpus().min(8)) - 1;
        let targets = match (v >> SGIR_FILTER_SHIFT) & 3 {
            0 => (v >> SGIR_TARGETS_SHIFT) & 0xff,
            1 => all & !cpu_mask(from),
            2 => cpu_mask(from),
            _ => 0,
        } & all;
        for vcpu in (0..8).filter(|v| targets & (1 << v) != 0) {
            let _ = self.set_pending(intid, vcpu);
        }
    }

    /// GICD_SPENDSGIR / CPENDSGIR byte of SGI `intid` for `vcpu`.
    fn sgi_pending_byte(&self, vcpu: usize, intid: u32) -> u64 {
        if self
            .irq(vcpu, intid)
            .is_some_and(|irq| irq.visible_pending())
        {
            SGI_SOURCE_BITS
        } else {
            0
        }
    }
}

/// [`Vgic::dist_v2`].
pub struct DistV2View<'a>(&'a mut Vgic, usize);

impl MmioDevice for DistV2View<'_> {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        read(self.0, self.1, offset, width)
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        write(self.0, self.1, offset, width, value)
    }
}

fn byte_or_word(offset: u64, width: u8) -> Result<(), MmioError> {
    match width {
        1 | 4 => Ok(()),
        _ => Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::W1_4,
        }),
    }
}

/// `width` bytes, one per INTID from `first`, each from `byte`.
fn bytes(width: u8, first: u32, mut byte: impl FnMut(u32) -> u64) -> u64 {
    (0..u32::from(width)).fold(0, |acc, i| acc | (byte(first + i) & 0xff) << (8 * i))
}

fn read(gic: &mut Vgic, vcpu: usize, offset: u64, width: u8) -> Result<u64, MmioError> {
    regs::check_access(offset, width)?;
    if vcpu >= gic.nr_vcpus() || offset >= GICD_V2_SIZE {
        return Ok(0);
    }
    if let Some((reg, index)) = BitReg::decode(offset) {
        regs::need_width(offset, width, 4)?;
        return Ok(gic.read_bits(vcpu, reg, index * 32).into());
    }
    match offset {
        IPRIORITYR..=IPRIORITYR_END => {
            byte_or_word(offset, width)?;
            Ok(gic.read_priority(vcpu, (offset - IPRIORITYR) as u32, width))
        }
        ITARGETSR..=ITARGETSR_END => {
            byte_or_word(offset, width)?;
            let first = (offset - ITARGETSR) as u32;
            Ok(bytes(width, first, |intid| gic.target_byte(vcpu, intid)))
        }
        CPENDSGIR..=CPENDSGIR_END | SPENDSGIR..=SPENDSGIR_END => {
            byte_or_word(offset, width)?;
            let first = (offset & 0xf) as u32;
            Ok(bytes(width, first, |intid| {
                gic.sgi_pending_byte(vcpu, intid)
            }))
        }
        ICFGR..=ICFGR_END => {
            regs::need_width(offset, width, 4)?;
            Ok(match ((offset - ICFGR) / 4) as u32 {
                0 => ICFGR_SGIS,
                index => gic.read_config(vcpu, index * 16),
            }
            .into())
        }
        _ => {
            regs::need_width(offset, width, 4)?;
            Ok(u64::from(match offset {
                CTLR => gic.v2_ctlr(),
                TYPER => gic.v2_typer(),
                IIDR => regs::IIDR,
                _ => id_register(offset).unwrap_or(0),
            }))
        }
    }
}

fn write(gic: &mut Vgic, vcpu: usize, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
    regs::check_access(offset, width)?;
    if vcpu >= gic.nr_vcpus() || offset >= GICD_V2_SIZE {
        return Ok(());
    }
    if let Some((reg, index)) = BitReg::decode(offset) {
        regs::need_width(offset, width, 4)?;
        gic.write_bits(vcpu, reg, index * 32, value as u32);
        return Ok(());
    }
    match offset {
        IPRIORITYR..=IPRIORITYR_END => {
            byte_or_word(offset, width)?;
            gic.write_priority(vcpu, (offset - IPRIORITYR) as u32, width, value);
        }
        ITARGETSR..=ITARGETSR_END => {
            byte_or_word(offset, width)?;
            let first = (offset - ITARGETSR) as u32;
            // Read-only for SGIs and PPIs (set_target_mask ignores them).
            for i in 0..u32::from(width) {
                gic.set_target_mask(first + i, (value >> (8 * i)) as u8);
            }
        }
        CPENDSGIR..=CPENDSGIR_END | SPENDSGIR..=SPENDSGIR_END => {
            byte_or_word(offset, width)?;
            let reg = if offset >= SPENDSGIR {
                BitReg::SetPending
            } else {
                BitReg::ClearPending
            };
            let first = (offset & 0xf) as u32;
            let sgis = (0..u32::from(width))
                .filter(|i| (value >> (8 * i)) & 0xff != 0)
                .fold(0u32, |acc, i| acc | 1 << (first + i));
            gic.write_bits(vcpu, reg, 0, sgis);
        }
        ICFGR..=ICFGR_END => {
            regs::need_width(offset, width, 4)?;
            // ICFGR0 (SGIs) is read-only; PPIs and SPIs are configurable.
            match ((offset - ICFGR) / 4) as u32 {
                0 => {}
                index => gic.write_config(vcpu, index * 16, value as u32),
            }
        }
        SGIR => {
            regs::need_width(offset, width, 4)?;
            gic.write_sgir(vcpu, value);
        }
        CTLR => {
            regs::need_width(offset, width, 4)?;
            gic.write_ctlr(value as u32);
        }
        // TYPER, IIDR, ID registers: read-only; reserved space: WI.
        _ => regs::need_width(offset, width, 4)?,
    }
    Ok(())
}
