//! Register families the distributor and the redistributors share: one bit per
//! interrupt (group, enable, pending, active), one byte per interrupt (priority), two
//! bits per interrupt (configuration), and the identification registers.

use super::{MmioError, Vgic, Widths};

/// GICD_IIDR / GICR_IIDR: ProductID 'H', revision 0, implementer Arm (0x43B).
pub const IIDR: u32 = (0x48 << 24) | 0x43b;
/// PIDR2: architecture revision GICv3 (0x3 << 4), JEDEC-assigned JEP106 code of Arm.
pub const PIDR2: u32 = 0x3b;

/// ID registers at the end of both GICD and GICR RD_base frames (offset 0xFFD0..).
pub fn id_register(offset: u64) -> Option<u32> {
    Some(match offset {
        0xffd0 => 0x44, // PIDR4: 4 KiB count, JEP106 continuation code of Arm
        0xffe0 => 0x00, // PIDR0
        0xffe4 => 0xb0, // PIDR1: JEP106 identity code bits 3:0
        0xffe8 => PIDR2,
        0xffec => 0x00, // PIDR3
        0xfff0 => 0x0d, // CIDR0..3: 0xB105F00D
        0xfff4 => 0xf0,
        0xfff8 => 0x05,
        0xfffc => 0xb1,
        _ => return None,
    })
}

/// Any access must be 1, 2, 4 or 8 bytes wide and naturally aligned.
pub fn check_access(offset: u64, width: u8) -> Result<(), MmioError> {
    if !matches!(width, 1 | 2 | 4 | 8) {
        return Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::ANY,
        });
    }
    if !offset.is_multiple_of(u64::from(width)) {
        return Err(MmioError::Unaligned { offset, width });
    }
    Ok(())
}

/// The access must be exactly `width` bytes.
pub fn need_width(offset: u64, width: u8, wanted: u8) -> Result<(), MmioError> {
    if width == wanted {
        Ok(())
    } else {
        Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::exactly(wanted),
        })
    }
}

/// The one-bit-per-interrupt register families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitReg {
    /// The family at `offset` (relative to 0x80, the IGROUPR base) and the register
    /// index inside it.
    pub fn decode(offset: u64) -> Option<(BitReg, u32)> {
        let family = match offset {
            0x080..=0x0ff => BitReg::Group,
            0x100..=0x17f => BitReg::SetEnable,
            0x180..=0x1ff => BitReg::ClearEnable,
            0x200..=0x27f => BitReg::SetPending,
            0x280..=0x2ff => BitReg::ClearPending,
            0x300..=0x37f => BitReg::SetActive,
            0x380..=0x3ff => BitReg::ClearActive,
            _ => return None,
        };
        Some((family, ((offset & 0x7f) / 4) as u32))
    }
}

impl Vgic {
    /// Reads 32 bits of `reg` for INTIDs `first..first + 32` (private ones: `vcpu`'s).
    pub(super) fn read_bits(&self, vcpu: usize, reg: BitReg, first: u32) -> u32 {
        (0..32).fold(0, |acc, i| {
            let set = self.irq(vcpu, first + i).is_some_and(|irq| match reg {
                BitReg::Group => irq.group1,
                BitReg::SetEnable | BitReg::ClearEnable => irq.enabled,
                BitReg::SetPending | BitReg::ClearPending => irq.visible_pending(),
                BitReg::SetActive | BitReg::ClearActive => irq.visible_active(),
            });
            acc | (u32::from(set) << i)
        })
    }

    /// Writes 32 bits of `reg` for INTIDs `first..first + 32`.
    pub(super) fn write_bits(&mut self, vcpu: usize, reg: BitReg, first: u32, value: u32) {
        for i in 0..32 {
            let bit = value & (1 << i) != 0;
            if bit || reg == BitReg::Group {
                self.write_bit(vcpu, reg, first + i, bit);
            }
        }
    }

    fn write_bit(&mut self, vcpu: usize, reg: BitReg, intid: u32, bit: bool) {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        match reg {
            BitReg::Group => irq.group1 = bit,
            BitReg::SetEnable => irq.enabled = true,
            BitReg::ClearEnable => irq.enabled = false,
            BitReg::SetPending => irq.latch = true,
            BitReg::ClearPending => {
                irq.latch = false;
                irq.cancel_pending |= irq.lr.has_pending();
            }
            BitReg::SetActive => irq.active = true,
            BitReg::ClearActive => {
                irq.active = false;
                irq.cancel_active |= irq.lr.has_active();
            }
        }
        if matches!(
            reg,
            BitReg::Group | BitReg::SetEnable | BitReg::SetPending | BitReg::ClearActive
        ) {
            self.note(vcpu, intid);
        }
    }

    /// IPRIORITYR bytes: `width` bytes starting at INTID `first`.
    pub(super) fn read_priority(&self, vcpu: usize, first: u32, width: u8) -> u64 {
        (0..u32::from(width)).fold(0, |acc, i| {
            let p = self.irq(vcpu, first + i).map_or(0, |irq| irq.priority);
            acc | (u64::from(p) << (8 * i))
        })
    }

    pub(super) fn write_priority(&mut self, vcpu: usize, first: u32, width: u8, value: u64) {
        for i in 0..u32::from(width) {
            if let Some(irq) = self.irq_mut(vcpu, first + i) {
                irq.priority = (value >> (8 * i)) as u8;
            }
        }
    }

    /// ICFGR: 2 bits per interrupt, bit 1 of each = edge-triggered; INTIDs from `first`.
    pub(super) fn read_config(&self, vcpu: usize, first: u32) -> u32 {
        (0..16).fold(0, |acc, i| {
            let edge = self.irq(vcpu, first + i).is_some_and(|irq| irq.edge);
            acc | (u32::from(edge) << (2 * i + 1))
        })
    }

    pub(super) fn write_config(&mut self, vcpu: usize, first: u32, value: u32) {
        for i in 0..16 {
            if let Some(irq) = self.irq_mut(vcpu, first + i) {
                irq.edge = value & (1 << (2 * i + 1)) != 0;
            }
        }
    }
}
