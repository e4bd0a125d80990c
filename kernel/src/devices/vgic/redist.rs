//! GICv3 redistributor registers of one vCPU: the RD_base frame (control, identity,
//! wake-up) and the SGI_base frame at +0x10000 (SGIs and PPIs of that vCPU).

use super::regs::{self, BitReg};
use super::{MmioError, Vgic, Widths};

const SGI_BASE: u64 = 0x1_0000;
const CTLR: u64 = 0x0000;
const IIDR: u64 = 0x0004;
const TYPER: u64 = 0x0008;
const TYPER_HI: u64 = 0x000c;
const WAKER: u64 = 0x0014;
const PROPBASER: u64 = 0x0070;
const PENDBASER: u64 = 0x0078;
/// In the SGI_base frame.
const IPRIORITYR: u64 = 0x0400;
const IPRIORITYR_END: u64 = 0x041f;
const ICFGR0: u64 = 0x0c00;
const ICFGR1: u64 = 0x0c04;

const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const TYPER_LAST: u64 = 1 << 4;

impl Vgic {
    /// GICR_TYPER: affinity of the vCPU (bits 63:32), processor number, Last.
    fn redist_typer(&self, vcpu: usize) -> u64 {
        let m = self.cpus[vcpu].mpidr;
        let affinity = ((m >> 32) & 0xff) << 24 | (m & 0xff_ffff);
        let last = if vcpu + 1 == self.nr_vcpus() {
            TYPER_LAST
        } else {
            0
        };
        (affinity << 32) | ((vcpu as u64 & 0xffff) << 8) | last
    }

    fn waker(&self, vcpu: usize) -> u32 {
        if self.cpus[vcpu].asleep {
            WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
        } else {
            0
        }
    }
}

pub fn read(gic: &mut Vgic, vcpu: usize, offset: u64, width: u8) -> Result<u64, MmioError> {
    regs::check_access(offset, width)?;
    if vcpu >= gic.nr_vcpus() {
        return Ok(0);
    }
    if offset >= SGI_BASE {
        return read_sgi_frame(gic, vcpu, offset, width);
    }
    match offset {
        TYPER if width == 8 => Ok(gic.redist_typer(vcpu)),
        PROPBASER | PENDBASER if width == 8 => Ok(0),
        _ => {
            regs::need_width(offset, width, 4)?;
            Ok(match offset {
                TYPER => gic.redist_typer(vcpu) & 0xffff_ffff,
                TYPER_HI => gic.redist_typer(vcpu) >> 32,
                IIDR => regs::IIDR.into(),
                WAKER => gic.waker(vcpu).into(),
                // No LPIs; RWP and UWP never set.
                CTLR => 0,
                // STATUSR, the LPI table registers and reserved space: RAZ.
                _ => regs::id_register(offset).unwrap_or(0).into(),
            })
        }
    }
}

pub fn write(
    gic: &mut Vgic,
    vcpu: usize,
    offset: u64,
    width: u8,
    value: u64,
) -> Result<(), MmioError> {
    regs::check_access(offset, width)?;
    if vcpu >= gic.nr_vcpus() {
        return Ok(());
    }
    if offset >= SGI_BASE {
        return write_sgi_frame(gic, vcpu, offset, width, value);
    }
    match offset {
        PROPBASER | PENDBASER if width == 8 => Ok(()),
        WAKER => {
            regs::need_width(offset, width, 4)?;
            gic.cpus[vcpu].asleep = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
            Ok(())
        }
        _ => regs::need_width(offset, width, 4),
    }
}

fn read_sgi_frame(gic: &Vgic, vcpu: usize, offset: u64, width: u8) -> Result<u64, MmioError> {
    let off = offset - SGI_BASE;
    if (IPRIORITYR..=IPRIORITYR_END).contains(&off) {
        priority_width(offset, width)?;
        return Ok(gic.read_priority(vcpu, (off - IPRIORITYR) as u32, width));
    }
    regs::need_width(offset, width, 4)?;
    Ok(u64::from(match (off, BitReg::decode(off)) {
        (_, Some((reg, 0))) => gic.read_bits(vcpu, reg, 0),
        (ICFGR0, _) => gic.read_config(vcpu, 0),
        (ICFGR1, _) => gic.read_config(vcpu, 16),
        // IGRPMODR0 and NSACR are RAZ/WI with one security state.
        _ => 0,
    }))
}

fn write_sgi_frame(
    gic: &mut Vgic,
    vcpu: usize,
    offset: u64,
    width: u8,
    value: u64,
) -> Result<(), MmioError> {
    let off = offset - SGI_BASE;
    if (IPRIORITYR..=IPRIORITYR_END).contains(&off) {
        priority_width(offset, width)?;
        gic.write_priority(vcpu, (off - IPRIORITYR) as u32, width, value);
        return Ok(());
    }
    regs::need_width(offset, width, 4)?;
    match (off, BitReg::decode(off)) {
        (_, Some((reg, 0))) => gic.write_bits(vcpu, reg, 0, value as u32),
        // SGIs are always edge-triggered (ICFGR0 is read-only); PPIs are configurable.
        (ICFGR1, _) => gic.write_config(vcpu, 16, value as u32),
        _ => {}
    }
    Ok(())
}

fn priority_width(offset: u64, width: u8) -> Result<(), MmioError> {
    match width {
        1 | 4 => Ok(()),
        _ => Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::W1_4,
        }),
    }
}
