//! Polled output on the board's console UART (PL011 or 16550-style, memory-mapped as
//! the DTB says, or on the x86 I/O port bus as COM1).

use crate::firmware::{Uart, UartKind};
use crate::hal::{Current, HostPorts};
use core::ptr::{read_volatile, write_volatile};

pub struct HostUart {
    uart: Uart,
}

const PL011_DR: u64 = 0x00;
const PL011_FR: u64 = 0x18;
const PL011_FR_TXFF: u32 = 1 << 5;
const NS16550_THR: u64 = 0;
const NS16550_LSR: u64 = 5;
const NS16550_LSR_THRE: u32 = 1 << 5;
const NS16550_LSR_DR: u32 = 1 << 0;
const NS16550_RBR: u64 = 0;
const NS16550_IER: u64 = 1;
const NS16550_IER_ERBFI: u32 = 1 << 0;
const PL011_FR_RXFE: u32 = 1 << 4;
const PL011_IMSC: u64 = 0x38;
/// Receive and receive-timeout interrupts.
const PL011_IMSC_RX: u32 = (1 << 4) | (1 << 6);

impl HostUart {
    pub const fn new(uart: Uart) -> Self {
        Self { uart }
    }

    fn reg_read(&self, reg: u64) -> u32 {
        if self.uart.kind == UartKind::Port16550 {
            return Current::port_read((self.uart.base + reg) as u16) as u32;
        }
        let (addr, width) = self.reg_addr(reg);
        // SAFETY: a register of the console UART the DTB describes, mapped as device
        // memory in the EL2 identity map.
        unsafe {
            match width {
                1 => read_volatile(addr as *const u8) as u32,
                _ => read_volatile(addr as *const u32),
            }
        }
    }

    fn reg_write(&self, reg: u64, v: u32) {
        if self.uart.kind == UartKind::Port16550 {
            return Current::port_write((self.uart.base + reg) as u16, v as u8);
        }
        let (addr, width) = self.reg_addr(reg);
        // SAFETY: as for `reg_read`.
        unsafe {
            match width {
                1 => write_volatile(addr as *mut u8, v as u8),
                _ => write_volatile(addr as *mut u32, v),
            }
        }
    }

    /// Address and access width of register `reg` (a byte offset for PL011, a
    /// register index for 16550).
    fn reg_addr(&self, reg: u64) -> (u64, u8) {
        match self.uart.kind {
            UartKind::Pl011 => (self.uart.base + reg, 4),
            UartKind::Port16550 => (self.uart.base + reg, 1),
            UartKind::Ns16550 {
                reg_shift,
                reg_io_width,
            } => (self.uart.base + (reg << reg_shift), reg_io_width),
        }
    }

    /// The next received byte, if any.
    pub fn getc(&self) -> Option<u8> {
        match self.uart.kind {
            UartKind::Pl011 => (self.reg_read(PL011_FR) & PL011_FR_RXFE == 0)
                .then(|| self.reg_read(PL011_DR) as u8),
            UartKind::Ns16550 { .. } | UartKind::Port16550 => {
                (self.reg_read(NS16550_LSR) & NS16550_LSR_DR != 0)
                    .then(|| self.reg_read(NS16550_RBR) as u8)
            }
        }
    }

    /// Raises the UART's interrupt when input arrives.
    pub fn enable_rx_interrupt(&self) {
        match self.uart.kind {
            UartKind::Pl011 => {
                self.reg_write(PL011_IMSC, self.reg_read(PL011_IMSC) | PL011_IMSC_RX)
            }
            UartKind::Ns16550 { .. } | UartKind::Port16550 => {
                self.reg_write(NS16550_IER, NS16550_IER_ERBFI)
            }
        }
    }

    pub fn putc(&self, c: u8) {
        match self.uart.kind {
            UartKind::Pl011 => {
                while self.reg_read(PL011_FR) & PL011_FR_TXFF != 0 {}
                self.reg_write(PL011_DR, c as u32);
            }
            UartKind::Ns16550 { .. } | UartKind::Port16550 => {
                while self.reg_read(NS16550_LSR) & NS16550_LSR_THRE == 0 {}
                self.reg_write(NS16550_THR, c as u32);
            }
        }
    }
}

impl core::fmt::Write for HostUart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.putc(b'\r');
            }
            self.putc(b);
        }
        Ok(())
    }
}
