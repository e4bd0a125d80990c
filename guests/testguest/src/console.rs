//! The guest's console: a polled PL011 or 16550-compatible UART, found through
//! `/chosen/stdout-path`, and the [`println!`] macro that writes one line to it.
//!
//! There is no lock (the MMU is off, so no atomics): vCPUs avoid printing at the same
//! time by protocol instead (secondaries print only while the boot vCPU waits for them).
//! Before the device tree is read, and if it names no usable UART, output goes to the
//! architecture's fallback UART (the one the contract puts in every VM).

use core::fmt;

use crate::arch;
use crate::mmio;
use crate::shared::Shared;

/// Register layouts the console can drive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UartKind {
    /// ARM PrimeCell PL011.
    Pl011,
    /// 16550-compatible (registers `1 << reg_shift` bytes apart, byte accesses).
    Ns16550,
    /// 16550-compatible in I/O port space (x86's COM1 at port 0x3F8): `base` is the
    /// first port, registers one port apart.
    #[cfg(target_arch = "x86_64")]
    Ns16550Port,
}

/// A UART the console can use.
#[derive(Clone, Copy, Debug)]
pub struct Uart {
    pub kind: UartKind,
    pub base: u64,
    pub reg_shift: u32,
}

/// Polls of the "transmitter full" flag before writing a byte anyway.
const MAX_POLLS: u32 = 100_000;

const KIND_NONE: u64 = 0;
const KIND_PL011: u64 = 1;
const KIND_NS16550: u64 = 2;
#[cfg(target_arch = "x86_64")]
const KIND_NS16550_PORT: u64 = 4;
/// The firmware's console (`arch::FIRMWARE_CONSOLE`): no UART at all.
const KIND_FIRMWARE: u64 = 3;

static KIND: Shared = Shared::new(KIND_NONE);
static BASE: Shared = Shared::new(0);
static REG_SHIFT: Shared = Shared::new(0);

/// Sends console output to `uart` from now on (all vCPUs).
pub fn init(uart: Uart) {
    BASE.set(uart.base);
    REG_SHIFT.set(u64::from(uart.reg_shift));
    KIND.set(match uart.kind {
        UartKind::Pl011 => KIND_PL011,
        UartKind::Ns16550 => KIND_NS16550,
        #[cfg(target_arch = "x86_64")]
        UartKind::Ns16550Port => KIND_NS16550_PORT,
    });
}

/// Sends console output to the firmware's console from now on (all vCPUs), if the
/// architecture has one (riscv64: the SBI's legacy console_putchar). False if not.
pub fn init_firmware() -> bool {
    if arch::FIRMWARE_CONSOLE.is_none() {
        return false;
    }
    KIND.set(KIND_FIRMWARE);
    true
}

/// The UART in use: the one given to [`init`], else the fallback.
fn current() -> Uart {
    let kind = match KIND.get() {
        KIND_PL011 => UartKind::Pl011,
        KIND_NS16550 => UartKind::Ns16550,
        #[cfg(target_arch = "x86_64")]
        KIND_NS16550_PORT => UartKind::Ns16550Port,
        _ => return arch::FALLBACK_UART,
    };
    Uart {
        kind,
        base: BASE.get(),
        reg_shift: REG_SHIFT.get() as u32,
    }
}

fn put_pl011(base: usize, byte: u8) {
    const DR: usize = 0x00;
    const FR: usize = 0x18;
    const FR_TXFF: u32 = 1 << 5;
    for _ in 0..MAX_POLLS {
        // SAFETY: `base` is the PL011 the device tree (or the contract) names; FR is a
        // read-only status register.
        if unsafe { mmio::read32(base + FR) } & FR_TXFF == 0 {
            break;
        }
    }
    // SAFETY: as above; writing DR transmits one byte.
    unsafe { mmio::write32(base + DR, u32::from(byte)) };
}

/// Reads the 16550 register `reg` of `uart`.
fn ns16550_read(uart: &Uart, reg: usize) -> u8 {
    #[cfg(target_arch = "x86_64")]
    if uart.kind == UartKind::Ns16550Port {
        return arch::port::inb(uart.base as u16 + reg as u16);
    }
    // SAFETY: `base` is the 16550 the device tree names; the callers read status
    // registers or the receive buffer.
    unsafe { mmio::read8(uart.base as usize + (reg << uart.reg_shift)) }
}

/// Writes the 16550 register `reg` of `uart`.
fn ns16550_write(uart: &Uart, reg: usize, value: u8) {
    #[cfg(target_arch = "x86_64")]
    if uart.kind == UartKind::Ns16550Port {
        arch::port::outb(uart.base as u16 + reg as u16, value);
        return;
    }
    // SAFETY: as in `ns16550_read`; the callers write the transmit register.
    unsafe { mmio::write8(uart.base as usize + (reg << uart.reg_shift), value) };
}

fn put_ns16550(uart: &Uart, byte: u8) {
    const THR: usize = 0;
    const LSR: usize = 5;
    const LSR_THRE: u8 = 1 << 5;
    for _ in 0..MAX_POLLS {
        if ns16550_read(uart, LSR) & LSR_THRE != 0 {
            break;
        }
    }
    ns16550_write(uart, THR, byte);
}

fn put_byte(uart: &Uart, byte: u8) {
    if KIND.get() == KIND_FIRMWARE {
        if let Some(put) = arch::FIRMWARE_CONSOLE {
            put(byte);
            return;
        }
    }
    let base = uart.base as usize;
    match uart.kind {
        UartKind::Pl011 => put_pl011(base, byte),
        _ => put_ns16550(uart, byte),
    }
}

/// A [`fmt::Write`] sink that sends text to the console.
struct Writer(Uart);

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            put_byte(&self.0, byte);
        }
        Ok(())
    }
}

/// Prints `args` and a line end (used by [`println!`]).
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut writer = Writer(current());
    // The writer never fails; a formatting error of an argument just cuts the line.
    let _ = fmt::write(&mut writer, args);
    let _ = fmt::Write::write_str(&mut writer, "\r\n");
}

/// Prints `text` with no line end (a prompt).
pub fn print_str(text: &str) {
    let _ = fmt::Write::write_str(&mut Writer(current()), text);
}

/// The next received byte, if one is waiting.
pub fn try_getc() -> Option<u8> {
    let uart = current();
    let base = uart.base as usize;
    match uart.kind {
        UartKind::Pl011 => {
            const DR: usize = 0x00;
            const FR: usize = 0x18;
            const FR_RXFE: u32 = 1 << 4;
            // SAFETY: the PL011 the device tree names; FR is a status register and a
            // read of DR takes the byte the FIFO holds.
            unsafe {
                (mmio::read32(base + FR) & FR_RXFE == 0).then(|| mmio::read32(base + DR) as u8)
            }
        }
        _ => {
            const RBR: usize = 0;
            const LSR: usize = 5;
            const LSR_DR: u8 = 1;
            (ns16550_read(&uart, LSR) & LSR_DR != 0).then(|| ns16550_read(&uart, RBR))
        }
    }
}

/// Prints one line on the console, like `std::println!`.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print_line(format_args!($($arg)*))
    };
}
pub(crate) use println;
