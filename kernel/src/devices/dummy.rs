//! A window that reads as zero and ignores writes (`emu_type` 0x0): a device the
//! guest probes but this hypervisor has nothing behind.

use super::device::{Device, DeviceCtx};
use super::MmioError;

pub struct Dummy;

impl Device for Dummy {
    fn mmio_read(&mut self, _: &mut DeviceCtx, _: u64, _: u8) -> Result<u64, MmioError> {
        Ok(0)
    }

    fn mmio_write(&mut self, _: &mut DeviceCtx, _: u64, _: u8, _: u64) -> Result<(), MmioError> {
        Ok(())
    }

    fn reset(&mut self) {}
}
