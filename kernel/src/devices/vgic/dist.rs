//! GICv3 distributor registers (GICD_*), affinity routing on, single security state.
//! With ARE = 1 the registers for INTIDs 0-31 are RAZ/WI here (they live in the
//! redistributors), and so are GICD_ITARGETSR, GICD_SGIR and the SGI pend registers.

use super::regs::{self, BitReg};
use super::{MmioError, Vgic, Widths, MPIDR_AFF_MASK, PRIVATE_IRQS};

const CTLR: u64 = 0x0000;
const TYPER: u64 = 0x0004;
const IIDR: u64 = 0x0008;
const TYPER2: u64 = 0x000c;
const IPRIORITYR: u64 = 0x0400;
const IPRIORITYR_END: u64 = 0x07ff;
const ITARGETSR: u64 = 0x0800;
const ITARGETSR_END: u64 = 0x0bff;
const ICFGR: u64 = 0x0c00;
const ICFGR_END: u64 = 0x0cff;
const IROUTER: u64 = 0x6000;
const IROUTER_END: u64 = 0x7fdf;

const CTLR_GRP0: u32 = 1 << 0;
const CTLR_GRP1: u32 = 1 << 1;
/// ARE and DS read as one and ignore writes.
const CTLR_ARE: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;
/// GICD_TYPER: 10 INTID bits, Aff3 supported (A3V), no 1-of-N routing (No1N).
const TYPER_IDBITS: u32 = 9 << 19;
const TYPER_A3V: u32 = 1 << 24;
const TYPER_NO1N: u32 = 1 << 25;

impl Vgic {
    fn ctlr(&self) -> u32 {
        let mut v = CTLR_ARE | CTLR_DS;
        if self.grp0 {
            v |= CTLR_GRP0;
        }
        if self.grp1 {
            v |= CTLR_GRP1;
        }
        v
    }

    fn typer(&self) -> u32 {
        let lines = (self.nr_spis() + PRIVATE_IRQS).div_ceil(32) - 1;
        let cpus = (self.nr_vcpus().min(8) - 1) as u32;
        TYPER_NO1N | TYPER_A3V | TYPER_IDBITS | (cpus << 5) | lines
    }

    pub(super) fn write_ctlr(&mut self, v: u32) {
        let (was0, was1) = (self.grp0, self.grp1);
        self.grp0 = v & CTLR_GRP0 != 0;
        self.grp1 = v & CTLR_GRP1 != 0;
        if (self.grp0 && !was0) || (self.grp1 && !was1) {
            for intid in PRIVATE_IRQS..PRIVATE_IRQS + self.nr_spis() {
                self.note(0, intid);
            }
        }
    }

    /// GICD_IROUTER<n> for SPI `intid`; 0 for anything else.
    fn route(&self, intid: u32) -> u64 {
        let index = intid.wrapping_sub(PRIVATE_IRQS) as usize;
        self.routes.get(index).copied().unwrap_or(0)
    }

    fn set_route(&mut self, intid: u32, value: u64) {
        let Some(index) = intid.checked_sub(PRIVATE_IRQS).map(|i| i as usize) else {
            return;
        };
        if index >= self.routes.len() {
            return;
        }
        // IRM is RAZ/WI (No1N); only the affinity fields are kept.
        let value = value & MPIDR_AFF_MASK;
        self.routes[index] = value;
        self.targets[index] = self.vcpu_of_mpidr(value);
        self.note(0, intid);
    }
}

/// Shared INTID of a bit-register index; `None` for the private range (RAZ/WI).
fn spi_base(index: u32, per_reg: u32) -> Option<u32> {
    let first = index * per_reg;
    (first >= PRIVATE_IRQS).then_some(first)
}

pub fn read(gic: &mut Vgic, offset: u64, width: u8) -> Result<u64, MmioError> {
    regs::check_access(offset, width)?;
    if let Some((reg, index)) = BitReg::decode(offset) {
        regs::need_width(offset, width, 4)?;
        return Ok(spi_base(index, 32)
            .map_or(0, |first| gic.read_bits(0, reg, first))
            .into());
    }
    match offset {
        IPRIORITYR..=IPRIORITYR_END => {
            byte_or_word(offset, width)?;
            let first = (offset - IPRIORITYR) as u32;
            Ok(if first < PRIVATE_IRQS {
                0
            } else {
                gic.read_priority(0, first, width)
            })
        }
        ITARGETSR..=ITARGETSR_END => byte_or_word(offset, width).map(|_| 0),
        ICFGR..=ICFGR_END => {
            regs::need_width(offset, width, 4)?;
            let index = ((offset - ICFGR) / 4) as u32;
            Ok(spi_base(index, 16)
                .map_or(0, |first| gic.read_config(0, first))
                .into())
        }
        IROUTER..=IROUTER_END => read_router(gic, offset, width),
        _ => {
            regs::need_width(offset, width, 4)?;
            Ok(u64::from(match offset {
                CTLR => gic.ctlr(),
                TYPER => gic.typer(),
                IIDR => regs::IIDR,
                TYPER2 => 0,
                _ => regs::id_register(offset).unwrap_or(0),
            }))
        }
    }
}

pub fn write(gic: &mut Vgic, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
    regs::check_access(offset, width)?;
    if let Some((reg, index)) = BitReg::decode(offset) {
        regs::need_width(offset, width, 4)?;
        if let Some(first) = spi_base(index, 32) {
            gic.write_bits(0, reg, first, value as u32);
        }
        return Ok(());
    }
    match offset {
        IPRIORITYR..=IPRIORITYR_END => {
            byte_or_word(offset, width)?;
            let first = (offset - IPRIORITYR) as u32;
            if first >= PRIVATE_IRQS {
                gic.write_priority(0, first, width, value);
            }
        }
        ITARGETSR..=ITARGETSR_END => byte_or_word(offset, width)?,
        ICFGR..=ICFGR_END => {
            regs::need_width(offset, width, 4)?;
            if let Some(first) = spi_base(((offset - ICFGR) / 4) as u32, 16) {
                gic.write_config(0, first, value as u32);
            }
        }
        IROUTER..=IROUTER_END => write_router(gic, offset, width, value)?,
        CTLR => {
            regs::need_width(offset, width, 4)?;
            gic.write_ctlr(value as u32);
        }
        // Everything else is read-only, RAZ/WI or reserved.
        _ => regs::need_width(offset, width, 4)?,
    }
    Ok(())
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

/// IROUTER is 64 bits; 32-bit accesses reach either half.
fn router_slot(offset: u64, width: u8) -> Result<(u32, u32), MmioError> {
    if width != 4 && width != 8 {
        return Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::W4_8,
        });
    }
    let intid = ((offset - IROUTER) / 8) as u32;
    let shift = if offset % 8 == 4 { 32 } else { 0 };
    Ok((intid, shift))
}

fn read_router(gic: &Vgic, offset: u64, width: u8) -> Result<u64, MmioError> {
    let (intid, shift) = router_slot(offset, width)?;
    let v = gic.route(intid) >> shift;
    Ok(if width == 4 { v & 0xffff_ffff } else { v })
}

fn write_router(gic: &mut Vgic, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
    let (intid, shift) = router_slot(offset, width)?;
    let new = if width == 8 {
        value
    } else {
        let keep = gic.route(intid) & !(0xffff_ffff << shift);
        keep | ((value & 0xffff_ffff) << shift)
    };
    gic.set_route(intid, new);
    Ok(())
}
