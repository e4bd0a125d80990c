//! Virtual Arm PL011 UART (the console of aarch64 guests), as a state machine.
//!
//! Transmit: every byte the guest writes to UARTDR is "sent" at once into a small
//! buffer the VMM empties with [`Pl011::drain_tx`] after each access; the guest sees
//! TXFE/BUSY/TXFF from that buffer, so it only waits when the VMM falls behind.
//! Receive: the VMM feeds input with [`Pl011::push_rx`] into a 32-entry FIFO (one entry
//! while the guest has the FIFOs off, LCR_H.FEN = 0, as on the real part).
//!
//! Interrupts follow the PL011 TRM where Linux's amba-pl011 driver depends on them:
//! RXIS at the IFLS trigger level, RTIS (receive timeout) as soon as data sits below
//! the trigger level, TXIS each time a byte is accepted, UARTICR clearing, MIS = RIS &
//! IMSC; [`Pl011::irq_level`] is the line the VMM forwards to the guest's GIC.
//! Accesses may be 8, 16 or 32 bits wide (Linux uses 16-bit accesses on this UART).
//! Not modelled: baud timing, modem lines, DMA, IrDA; UARTEN/TXE/RXE are stored but do
//! not gate data (as in QEMU), loopback (CR.LBE) is honoured.

use super::ring::Ring;
use super::{MmioDevice, MmioError, Widths};

const DR: u64 = 0x000;
const RSR_ECR: u64 = 0x004;
const FR: u64 = 0x018;
const ILPR: u64 = 0x020;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;
const ID_BASE: u64 = 0xfe0;
const WINDOW: u64 = 0x1000;

/// UARTPeriphID0-3 then UARTPCellID0-3: part 0x011, designer Arm, revision 0;
/// PrimeCell ID 0xB105F00D.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

pub const FR_BUSY: u32 = 1 << 3;
pub const FR_RXFE: u32 = 1 << 4;
pub const FR_TXFF: u32 = 1 << 5;
pub const FR_RXFF: u32 = 1 << 6;
pub const FR_TXFE: u32 = 1 << 7;

pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
const INT_ALL: u32 = 0x7ff;

const LCR_H_FEN: u32 = 1 << 4;
const CR_LBE: u32 = 1 << 7;
const CR_RESET: u32 = 0x0300;
const IFLS_RESET: u32 = 0x12;

/// Receive FIFO depth with the FIFOs on.
pub const RX_FIFO: usize = 32;
/// Transmit bytes held until the VMM drains them.
pub const TX_BUFFER: usize = 64;

/// The emulated UART; see the module documentation.
#[derive(Clone, Debug)]
pub struct Pl011 {
    rx: Ring<RX_FIFO>,
    tx: Ring<TX_BUFFER>,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// Latched interrupt bits (TX and the unused error/modem bits).
    latched: u32,
    /// RX/RT bits the guest cleared through UARTICR; they come back with the next
    /// received byte or UARTDR read (the receive timeout restarting).
    rx_acked: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A UART in its reset state.
    pub const fn new() -> Self {
        Self {
            rx: Ring::new(),
            tx: Ring::new(),
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            latched: 0,
            rx_acked: 0,
        }
    }

    /// Hands every transmitted byte, oldest first, to `f` and empties the buffer.
    pub fn drain_tx(&mut self, mut f: impl FnMut(u8)) {
        while let Some(b) = self.tx.pop() {
            f(b);
        }
    }

    fn fifo_on(&self) -> bool {
        self.lcr_h & LCR_H_FEN != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_on() {
            RX_FIFO
        } else {
            1
        }
    }

    /// How many more bytes [`Pl011::push_rx`] accepts now.
    pub fn rx_space(&self) -> usize {
        self.rx_capacity().saturating_sub(self.rx.len())
    }

    /// Queues one received byte; `false` (byte not taken) when the FIFO is full.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.rx_space() == 0 || !self.rx.push(byte) {
            return false;
        }
        self.rx_acked = 0;
        true
    }

    /// Whether the UART's interrupt line is asserted (UARTMIS != 0).
    pub fn irq_level(&self) -> bool {
        self.mis() != 0
    }

    /// Receive trigger level in bytes (IFLS.RXIFLSEL; 1 with the FIFOs off).
    fn rx_trigger(&self) -> usize {
        if !self.fifo_on() {
            return 1;
        }
        match (self.ifls >> 3) & 7 {
            0 => 4,
            1 => 8,
            2 => 16,
            3 => 24,
            _ => 28,
        }
    }

    fn ris(&self) -> u32 {
        let level = self.rx.len();
        let rx = match level {
            0 => 0,
            l if l >= self.rx_trigger() => INT_RX,
            _ => INT_RT,
        };
        self.latched | (rx & !self.rx_acked)
    }

    fn mis(&self) -> u32 {
        self.ris() & self.imsc
    }

    fn flags(&self) -> u32 {
        let mut fr = 0;
        if self.tx.is_empty() {
            fr |= FR_TXFE;
        } else {
            fr |= FR_BUSY;
        }
        if self.tx.len() == TX_BUFFER {
            fr |= FR_TXFF;
        }
        if self.rx.is_empty() {
            fr |= FR_RXFE;
        }
        if self.rx.len() >= self.rx_capacity() {
            fr |= FR_RXFF;
        }
        fr
    }

    fn read_dr(&mut self) -> u32 {
        self.rx_acked = 0;
        self.rx.pop().map_or(0, u32::from)
    }

    fn write_dr(&mut self, value: u32) {
        let byte = value as u8;
        let taken = if self.cr & CR_LBE != 0 {
            self.push_rx(byte)
        } else {
            self.tx.push(byte)
        };
        if taken {
            self.latched |= INT_TX;
        }
    }

    /// The 32-bit register at `reg` (4-byte aligned); reads of UARTDR pop the FIFO.
    fn read_reg(&mut self, reg: u64) -> u32 {
        match reg {
            DR => self.read_dr(),
            RSR_ECR => 0,
            FR => self.flags(),
            ILPR => self.ilpr,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.ris(),
            MIS => self.mis(),
            DMACR => self.dmacr,
            ID_BASE..WINDOW => ID_BYTES[((reg - ID_BASE) / 4) as usize].into(),
            _ => 0,
        }
    }

    fn write_reg(&mut self, reg: u64, v: u32) {
        match reg {
            DR => self.write_dr(v),
            ILPR => self.ilpr = v & 0xff,
            IBRD => self.ibrd = v & 0xffff,
            FBRD => self.fbrd = v & 0x3f,
            LCR_H => self.lcr_h = v & 0xff,
            CR => self.cr = v & 0xff87,
            IFLS => self.ifls = v & 0x3f,
            IMSC => self.imsc = v & INT_ALL,
            ICR => {
                self.latched &= !v;
                self.rx_acked |= v & (INT_RX | INT_RT);
            }
            DMACR => self.dmacr = v & 0x7,
            // RSR/ECR write clears error flags (none are raised); the rest is RO/reserved.
            _ => {}
        }
    }
}

/// Checks width and alignment; returns the register offset and the byte shift in it.
fn decode(offset: u64, width: u8) -> Result<(u64, u32), MmioError> {
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
    Ok((offset & !3, ((offset & 3) * 8) as u32))
}

fn width_mask(width: u8) -> u64 {
    (1u64 << (u32::from(width) * 8)) - 1
}

impl MmioDevice for Pl011 {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError> {
        let (reg, shift) = decode(offset, width)?;
        if reg >= WINDOW {
            return Ok(0);
        }
        // Only an access that includes bit 0 of UARTDR pops the FIFO.
        if reg == DR && shift != 0 {
            return Ok(0);
        }
        Ok((u64::from(self.read_reg(reg)) >> shift) & width_mask(width))
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError> {
        let (reg, shift) = decode(offset, width)?;
        // The upper halves of the (at most 16-bit) registers are reserved.
        if reg < WINDOW && shift == 0 {
            self.write_reg(reg, (value & width_mask(width)) as u32);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
