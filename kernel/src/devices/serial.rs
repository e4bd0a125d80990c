//! The console UART on the bus: either model ([`Pl011`], [`Uart16550`]) behind
//! [`Device`] and [`Serial`]. The models stay pure state machines; this adapter only
//! forwards MMIO accesses, rebuilds the model on reset, and names its interrupt line.

use super::device::{Device, DeviceCtx, Serial};
use super::pl011::Pl011;
use super::uart16550::Uart16550;
use super::{MmioDevice, MmioError};

/// What the adapter needs of a UART model.
pub trait UartModel: MmioDevice + Send + 'static {
    /// The model in its reset state.
    fn power_on() -> Self;
    fn push_rx(&mut self, byte: u8) -> bool;
    fn drain_tx(&mut self, out: &mut dyn FnMut(u8));
    fn irq_level(&self) -> bool;
}

impl UartModel for Pl011 {
    fn power_on() -> Self {
        Pl011::new()
    }
    fn push_rx(&mut self, byte: u8) -> bool {
        Pl011::push_rx(self, byte)
    }
    fn drain_tx(&mut self, out: &mut dyn FnMut(u8)) {
        Pl011::drain_tx(self, out)
    }
    fn irq_level(&self) -> bool {
        Pl011::irq_level(self)
    }
}

impl UartModel for Uart16550 {
    fn power_on() -> Self {
        Uart16550::new()
    }
    fn push_rx(&mut self, byte: u8) -> bool {
        Uart16550::push_rx(self, byte)
    }
    fn drain_tx(&mut self, out: &mut dyn FnMut(u8)) {
        Uart16550::drain_tx(self, out)
    }
    fn irq_level(&self) -> bool {
        Uart16550::irq_level(self)
    }
}

/// A UART model wired to interrupt line `irq` (0 = none).
pub struct ConsoleUart<M> {
    uart: M,
    irq: u32,
}

impl<M: UartModel> ConsoleUart<M> {
    pub fn new(irq: u32) -> Self {
        Self {
            uart: M::power_on(),
            irq,
        }
    }
}

impl<M: UartModel> Device for ConsoleUart<M> {
    fn mmio_read(&mut self, _: &mut DeviceCtx, offset: u64, width: u8) -> Result<u64, MmioError> {
        self.uart.read(offset, width)
    }

    fn mmio_write(
        &mut self,
        _: &mut DeviceCtx,
        offset: u64,
        width: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        self.uart.write(offset, width, value)
    }

    fn reset(&mut self) {
        self.uart = M::power_on();
    }

    fn serial(&mut self) -> Option<&mut dyn Serial> {
        Some(self)
    }
}

impl<M: UartModel> Serial for ConsoleUart<M> {
    fn push_rx(&mut self, byte: u8) -> bool {
        self.uart.push_rx(byte)
    }
    fn drain_tx(&mut self, out: &mut dyn FnMut(u8)) {
        self.uart.drain_tx(out)
    }
    fn irq_level(&self) -> bool {
        self.uart.irq_level()
    }
    fn irq_line(&self) -> u32 {
        self.irq
    }
}
