//! The console UART on the bus: either model ([`Pl011`], [`Uart16550`]) behind
//! [`Device`] and [`Serial`]. The models stay pure state machines; this adapter only
//! forwards MMIO accesses, rebuilds the model on reset, and names its interrupt line.

use super::device::{Device, DeviceCtx, Serial};
use super::pl011::Pl011;
use super::uart16550::Uart16550;
use super::{MmioDevice, MmioError};

/// What the adapter needs of a UART model: its power-on state (`Default`) and the
/// console side of it.
pub trait UartModel: MmioDevice + Default + Send + 'static {
    fn push_rx(&mut self, byte: u8) -> bool;
    fn drain_tx(&mut self, out: &mut dyn FnMut(u8));
    fn irq_level(&self) -> bool;
}

/// Both models have the console side as inherent methods of the same names.
macro_rules! uart_model {
    ($($model:ty),*) => {$(
        impl UartModel for $model {
            fn push_rx(&mut self, byte: u8) -> bool {
                <$model>::push_rx(self, byte)
            }
            fn drain_tx(&mut self, out: &mut dyn FnMut(u8)) {
                <$model>::drain_tx(self, out)
            }
            fn irq_level(&self) -> bool {
                <$model>::irq_level(self)
            }
        }
    )*};
}

uart_model!(Pl011, Uart16550);

/// A UART model wired to interrupt line `irq` (0 = none).
pub struct ConsoleUart<M> {
    uart: M,
    irq: u32,
}

impl<M: UartModel> ConsoleUart<M> {
    pub fn new(irq: u32) -> Self {
        Self {
            uart: M::default(),
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

    /// On the I/O port space (x86 COM ports), the same registers by port offset.
    fn pio_read(&mut self, _: &mut DeviceCtx, offset: u16, width: u8) -> Result<u32, MmioError> {
        self.uart.read(offset.into(), width).map(|v| v as u32)
    }

    fn pio_write(
        &mut self,
        _: &mut DeviceCtx,
        offset: u16,
        width: u8,
        value: u32,
    ) -> Result<(), MmioError> {
        self.uart.write(offset.into(), width, value.into())
    }

    fn reset(&mut self) {
        self.uart = M::default();
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
