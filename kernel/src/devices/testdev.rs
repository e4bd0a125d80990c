//! A device for host tests of the bus and the VMM (not built into the kernel): it
//! uses everything a device is handed. MMIO registers (8 bytes each):
//! - 0x00: write: drives its interrupt line to `value != 0`.
//! - 0x08: write: copies the 4 bytes "dma!" to GPA `value`; read: 0 if the last copy
//!   worked, 1 if guest memory refused it.
//! - 0x10: write: reads 8 bytes at GPA `value` into 0x18; read 0x18: those bytes.
//! - 0x20: write: posts a VM event: 1 power off, 2 reset, 3 start vCPU 1 at the
//!   entry in 0x28 with argument 7.
//! - 0x28: the entry for event 3.
//! - 0x30: the GPA [`Device::service`] writes "served" to (after its signal was
//!   raised, see [`crate::devices::signal`]); service also raises its line.
//!
//! Port I/O: one scratch register at offset 0, any width; a read of offset 1 is
//! refused.

use super::device::{Device, DeviceCtx, VmEvent};
use super::signal::Signal;
use super::{MmioError, Widths};

pub const DMA_BYTES: &[u8; 4] = b"dma!";
pub const SERVED: &[u8; 6] = b"served";

#[derive(Default)]
pub struct TestDevice {
    pub irq: u32,
    dma_failed: bool,
    fetched: u64,
    entry: u64,
    scratch: u32,
    service_gpa: u64,
    pub resets: usize,
    pub signal: Option<Signal>,
}

impl TestDevice {
    pub fn new(irq: u32) -> Self {
        Self {
            irq,
            ..Self::default()
        }
    }
}

impl Device for TestDevice {
    fn mmio_read(&mut self, _: &mut DeviceCtx, offset: u64, _: u8) -> Result<u64, MmioError> {
        Ok(match offset {
            0x08 => self.dma_failed.into(),
            0x18 => self.fetched,
            0x28 => self.entry,
            _ => 0,
        })
    }

    fn mmio_write(
        &mut self,
        ctx: &mut DeviceCtx,
        offset: u64,
        _: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        match offset {
            0x00 => ctx.set_irq(self.irq, value != 0),
            0x08 => self.dma_failed = ctx.memory.write(value, DMA_BYTES).is_err(),
            0x10 => {
                let mut b = [0u8; 8];
                self.dma_failed = ctx.memory.read(value, &mut b).is_err();
                self.fetched = u64::from_le_bytes(b);
            }
            0x20 => match value {
                1 => ctx.post(VmEvent::PowerOff),
                2 => ctx.post(VmEvent::Reset),
                3 => ctx.post(VmEvent::StartVcpu {
                    index: 1,
                    entry: self.entry,
                    arg: 7,
                }),
                _ => {}
            },
            0x28 => self.entry = value,
            0x30 => self.service_gpa = value,
            _ => {}
        }
        Ok(())
    }

    fn pio_read(&mut self, _: &mut DeviceCtx, offset: u16, width: u8) -> Result<u32, MmioError> {
        match offset {
            0 => Ok(self.scratch),
            _ => Err(MmioError::BadWidth {
                offset: offset.into(),
                width,
                accepts: Widths::W4,
            }),
        }
    }

    fn pio_write(&mut self, _: &mut DeviceCtx, _: u16, _: u8, value: u32) -> Result<(), MmioError> {
        self.scratch = value;
        Ok(())
    }

    fn reset(&mut self) {
        *self = Self {
            irq: self.irq,
            resets: self.resets + 1,
            signal: self.signal.take(),
            ..Self::default()
        };
    }

    fn connect(&mut self, signal: Signal) {
        self.signal = Some(signal);
    }

    fn service(&mut self, ctx: &mut DeviceCtx) {
        self.dma_failed = ctx.memory.write(self.service_gpa, SERVED).is_err();
        ctx.set_irq(self.irq, true);
    }
}

/// An interrupt chip that records the lines driven through it.
#[derive(Default)]
pub struct RecordingChip {
    pub levels: alloc::vec::Vec<(u32, bool)>,
}

impl super::irqchip::IrqChip for RecordingChip {
    fn mmio(
        &mut self,
        _: usize,
        w: u32,
        _: u64,
        off: u64,
        _: u8,
        _: Option<u64>,
    ) -> Result<u64, MmioError> {
        Ok(u64::from(w) << 32 | off)
    }
    fn set_level(&mut self, line: u32, level: bool) {
        self.levels.push((line, level));
    }
    fn ipi(&mut self, _: usize, _: u64) {}
    fn inject(&mut self, _: usize, _: u32) {}
    fn take_kicks(&mut self) -> u64 {
        0
    }
    fn reset(&mut self) {
        self.levels.clear();
    }
    fn model(&mut self) -> &mut dyn core::any::Any {
        self
    }
}
