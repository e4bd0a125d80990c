//! Virtual 16550A UART (the console of riscv64 guests, as on QEMU virt), as a state
//! machine. Registers are one byte apart (`reg-shift` 0); accesses of 1, 2 or 4 bytes
//! read or write the register at the access's offset.
//!
//! Transmit: every byte written to THR is "sent" at once into a buffer the VMM empties
//! with [`Uart16550::drain_tx`] after each access, so THR is always empty again (LSR
//! THRE and TEMT set). Receive: the VMM feeds input with [`Uart16550::push_rx`] into a
//! 16-byte FIFO. Loopback (MCR bit 4) sends written bytes to the receiver.
//!
//! Interrupts as Linux's 8250 driver relies on them: received data available (IER
//! bit 0) while the receive FIFO holds data; THR empty (IER bit 1) raised when THR
//! empties (after every write, and when the interrupt is enabled with THR empty),
//! cleared by reading IIR while it reports it or by writing THR. [`Uart16550::irq_level`]
//! is the line the VMM forwards to the guest's interrupt controller.
//! Not modelled: baud timing, line status errors, modem status changes, OUT2 gating.

use super::ring::Ring;
use super::{MmioDevice, MmioError, Widths};

const RBR_THR_DLL: u64 = 0;
const IER_DLM: u64 = 1;
const IIR_FCR: u64 = 2;
const LCR: u64 = 3;
const MCR: u64 = 4;
const LSR: u64 = 5;
const MSR: u64 = 6;
const SCR: u64 = 7;

pub const IER_RDI: u8 = 1 << 0;
pub const IER_THRI: u8 = 1 << 1;
const IER_MASK: u8 = 0x0f;

pub const IIR_NO_INT: u8 = 0x01;
pub const IIR_THRI: u8 = 0x02;
pub const IIR_RDI: u8 = 0x04;
const IIR_FIFO_ON: u8 = 0xc0;

const FCR_ENABLE: u8 = 1 << 0;
const FCR_CLEAR_RX: u8 = 1 << 1;

const LCR_DLAB: u8 = 1 << 7;
const MCR_LOOP: u8 = 1 << 4;
const MCR_MASK: u8 = 0x1f;

pub const LSR_DR: u8 = 1 << 0;
pub const LSR_THRE: u8 = 1 << 5;
pub const LSR_TEMT: u8 = 1 << 6;

/// DCD, DSR and CTS asserted: a terminal is always there.
const MSR_CONNECTED: u8 = 0xb0;

/// Receive FIFO depth.
pub const RX_FIFO: usize = 16;
/// Transmit bytes held until the VMM drains them.
pub const TX_BUFFER: usize = 64;

#[derive(Clone, Debug)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    fifo_on: bool,
    /// THR empty interrupt latched (until IIR reports it or THR is written).
    thre: bool,
    rx: Ring<RX_FIFO>,
    tx: Ring<TX_BUFFER>,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// The reset state: interrupts off, FIFOs off, 8N1 not yet programmed.
    pub const fn new() -> Self {
        Self {
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            dll: 0,
            dlm: 0,
            fifo_on: false,
            thre: false,
            rx: Ring::new(),
            tx: Ring::new(),
        }
    }

    /// Hands every transmitted byte to `f`, oldest first.
    pub fn drain_tx(&mut self, mut f: impl FnMut(u8)) {
        while let Some(b) = self.tx.pop() {
            f(b);
        }
    }

    /// Input for the guest; false when the receive FIFO is full.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        self.rx.push(byte)
    }

    /// The interrupt being signalled, as IIR encodes it.
    fn pending(&self) -> u8 {
        if self.ier & IER_RDI != 0 && !self.rx.is_empty() {
            IIR_RDI
        } else if self.ier & IER_THRI != 0 && self.thre {
            IIR_THRI
        } else {
            IIR_NO_INT
        }
    }

    /// The interrupt line.
    pub fn irq_level(&self) -> bool {
        self.pending() != IIR_NO_INT
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    fn read_reg(&mut self, reg: u64) -> u8 {
        match reg {
            RBR_THR_DLL if self.dlab() => self.dll,
            RBR_THR_DLL => self.rx.pop().unwrap_or(0),
            IER_DLM if self.dlab() => self.dlm,
            IER_DLM => self.ier,
            IIR_FCR => {
                let iir = self.pending();
                if iir == IIR_THRI {
                    self.thre = false;
                }
                iir | if self.fifo_on { IIR_FIFO_ON } else { 0 }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => LSR_THRE | LSR_TEMT | if !self.rx.is_empty() { LSR_DR } else { 0 },
            MSR if self.mcr & MCR_LOOP != 0 => {
                // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                let m = self.mcr;
                ((m & 1) << 5) | ((m & 2) << 3) | ((m & 4) << 4) | ((m & 8) << 4)
            }
            MSR => MSR_CONNECTED,
            SCR => self.scr,
            _ => 0,
        }
    }

    fn write_reg(&mut self, reg: u64, v: u8) {
        match reg {
            RBR_THR_DLL if self.dlab() => self.dll = v,
            RBR_THR_DLL => {
                if self.mcr & MCR_LOOP != 0 {
                    self.rx.push(v);
                } else {
                    // A full buffer (the VMM fell behind) drops the byte.
                    self.tx.push(v);
                }
                // Sent at once: THR is empty again.
                self.thre = true;
            }
            IER_DLM if self.dlab() => self.dlm = v,
            IER_DLM => {
                let was = self.ier;
                self.ier = v & IER_MASK;
                if was & IER_THRI == 0 && self.ier & IER_THRI != 0 {
                    self.thre = true;
                }
            }
            IIR_FCR => {
                self.fifo_on = v & FCR_ENABLE != 0;
                if v & FCR_CLEAR_RX != 0 {
                    self.rx.clear();
                }
            }
            LCR => self.lcr = v,
            MCR => self.mcr = v & MCR_MASK,
            SCR => self.scr = v,
            _ => {}
        }
    }
}

fn check(offset: u64, width: u8) -> Result<(), MmioError> {
    if !matches!(width, 1 | 2 | 4) {
        return Err(MmioError::BadWidth {
            offset,
            width,
            accepts: Widths::W1_2_4,
        });
    }
    if !offset.is_multiple_of(u64::from(width)) {
        return Err(MmioError::Unaligned { offset, width });
    }
    Ok(())
}

impl MmioDevice for Uart16550 {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        check(offset, width)?;
        Ok(u64::from(self.read_reg(offset)))
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        check(offset, width)?;
        self.write_reg(offset, value as u8);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn rd(u: &mut Uart16550, reg: u64) -> u8 {
        u.read(reg, 1).unwrap() as u8
    }
    fn wr(u: &mut Uart16550, reg: u64, v: u8) {
        u.write(reg, 1, u64::from(v)).unwrap();
    }
    fn sent(u: &mut Uart16550) -> Vec<u8> {
        let mut out = Vec::new();
        u.drain_tx(|b| out.push(b));
        out
    }

    /// Linux 8250 probe and console set-up: scratch test, divisor, 8N1, FIFOs.
    #[test]
    fn linux_style_setup_and_polled_output() {
        let mut u = Uart16550::new();
        wr(&mut u, SCR, 0xa5);
        assert_eq!(rd(&mut u, SCR), 0xa5);
        wr(&mut u, LCR, LCR_DLAB);
        wr(&mut u, RBR_THR_DLL, 0x02);
        wr(&mut u, IER_DLM, 0x00);
        assert_eq!((rd(&mut u, RBR_THR_DLL), rd(&mut u, IER_DLM)), (2, 0));
        wr(&mut u, LCR, 0x03);
        assert_eq!(sent(&mut u), b"", "divisor writes send nothing");
        wr(&mut u, IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
        assert_eq!(rd(&mut u, IIR_FCR), IIR_FIFO_ON | IIR_NO_INT);
        for &b in b"ok\n" {
            assert_ne!(rd(&mut u, LSR) & LSR_THRE, 0);
            wr(&mut u, RBR_THR_DLL, b);
        }
        assert_eq!(rd(&mut u, LSR), LSR_THRE | LSR_TEMT);
        assert_eq!(sent(&mut u), b"ok\n");
        assert!(!u.irq_level(), "no interrupts enabled");
        assert_eq!(rd(&mut u, MSR), MSR_CONNECTED);
    }

    #[test]
    fn thr_empty_interrupt() {
        let mut u = Uart16550::new();
        wr(&mut u, IER_DLM, IER_THRI);
        assert!(u.irq_level(), "enabling it with THR empty raises it");
        assert_eq!(rd(&mut u, IIR_FCR), IIR_THRI);
        assert!(!u.irq_level(), "reading IIR cleared it");
        assert_eq!(rd(&mut u, IIR_FCR), IIR_NO_INT);
        wr(&mut u, RBR_THR_DLL, b'x');
        assert!(u.irq_level(), "THR emptied again after the write");
        wr(&mut u, IER_DLM, 0);
        assert!(!u.irq_level());
        wr(&mut u, IER_DLM, IER_THRI);
        assert!(u.irq_level(), "re-enabling raises it again");
        assert_eq!(sent(&mut u), b"x");
    }

    #[test]
    fn receive_and_loopback() {
        let mut u = Uart16550::new();
        assert!(u.push_rx(b'a'));
        assert_eq!(rd(&mut u, LSR) & LSR_DR, LSR_DR);
        assert!(!u.irq_level());
        wr(&mut u, IER_DLM, IER_RDI | IER_THRI);
        assert_eq!(rd(&mut u, IIR_FCR), IIR_RDI, "received data outranks THRE");
        assert_eq!(rd(&mut u, RBR_THR_DLL), b'a');
        assert_eq!(rd(&mut u, IIR_FCR), IIR_THRI);
        assert_eq!(rd(&mut u, RBR_THR_DLL), 0, "empty FIFO reads 0");
        for i in 0..RX_FIFO {
            assert!(u.push_rx(i as u8));
        }
        assert!(!u.push_rx(0xff), "FIFO full");
        wr(&mut u, IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
        assert_eq!(rd(&mut u, LSR) & LSR_DR, 0);
        wr(&mut u, MCR, MCR_LOOP | 0x0f);
        assert_eq!(rd(&mut u, MSR), 0xf0);
        wr(&mut u, RBR_THR_DLL, b'z');
        assert_eq!(sent(&mut u), b"", "loopback: nothing leaves");
        assert_eq!(rd(&mut u, RBR_THR_DLL), b'z');
    }

    #[test]
    fn access_sizes() {
        let mut u = Uart16550::new();
        u.write(SCR, 1, 0x1234).unwrap();
        assert_eq!(u.read(4, 4).unwrap(), 0, "MCR through a 32-bit read");
        assert_eq!(rd(&mut u, SCR), 0x34);
        assert_eq!(u.read(0x40, 1).unwrap(), 0, "beyond the registers");
        assert_eq!(
            u.read(0, 8),
            Err(MmioError::BadWidth {
                offset: 0,
                width: 8,
                accepts: Widths::W1_2_4,
            })
        );
        assert_eq!(
            u.write(1, 2, 0),
            Err(MmioError::Unaligned {
                offset: 1,
                width: 2
            })
        );
    }
}
