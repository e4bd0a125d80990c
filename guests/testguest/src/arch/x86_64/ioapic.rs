//! The I/O APIC at 0xFEC0_0000 (IOREGSEL/IOWIN) and the `console-irq` check (as
//! riscv64's timer check starts with its PLIC): COM1's interrupt (ISA IRQ 4 = pin 4) routed
//! to this vCPU, set up as Linux does it (fixed delivery, physical destination, edge,
//! active high), must arrive once when the UART's "THR empty" interrupt is enabled.

use super::{lapic, port};
use crate::shared::Shared;
use crate::time;
use crate::why::{why, CheckResult};

/// The I/O APIC window.
const BASE: usize = 0xFEC0_0000;
const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;
/// Redirection entry: masked.
const MASKED: u32 = 1 << 16;

/// COM1's pin and the vector it is routed to.
const UART_PIN: u32 = 4;
pub const UART_VECTOR: u8 = 0x31;
/// COM1's registers.
const UART_IER: u16 = 1;
const UART_IIR: u16 = 2;
const UART_MCR: u16 = 4;
const IER_THRI: u8 = 1 << 1;
const MCR_OUT2: u8 = 1 << 3;
const DEADLINE_MS: u64 = 1000;

/// UART interrupts taken.
static UART_INTERRUPTS: Shared = Shared::new(0);

fn read(reg: u32) -> u32 {
    // SAFETY: the I/O APIC window (identity-mapped, uncached): select, then read.
    unsafe {
        crate::mmio::write32(BASE + IOREGSEL, reg);
        crate::mmio::read32(BASE + IOWIN)
    }
}

fn write(reg: u32, value: u32) {
    // SAFETY: as in `read`; the callers write redirection entries.
    unsafe {
        crate::mmio::write32(BASE + IOREGSEL, reg);
        crate::mmio::write32(BASE + IOWIN, value);
    }
}

/// Routes `pin` to `vector` on the APIC id `dest` (unmasked) or masks it.
pub(super) fn route(pin: u32, vector: u8, dest: u32, masked: bool) {
    let low = REG_REDIRECTION + 2 * pin;
    write(low, MASKED);
    write(low + 1, dest << 24);
    if !masked {
        write(low, u32::from(vector));
    }
}

/// Redirection entry: level-triggered.
const LEVEL: u32 = 1 << 15;

/// Routes `pin` (GSI) to `vector` on APIC id `dest`, level-triggered, active high,
/// unmasked (an inter-VM channel's doorbell, `super::ivc`).
pub fn route_level(pin: u32, vector: u8, dest: u32) -> CheckResult {
    let max_entry = (read(REG_VERSION) >> 16) & 0xff;
    if pin > max_entry {
        return Err(why!(
            "GSI {pin} is past the I/O APIC's last pin {max_entry}"
        ));
    }
    let low = REG_REDIRECTION + 2 * pin;
    write(low, MASKED);
    write(low + 1, dest << 24);
    write(low, LEVEL | u32::from(vector));
    Ok(())
}

/// Masks level-triggered `pin` (its vector kept).
pub fn mask_level(pin: u32, vector: u8) {
    write(
        REG_REDIRECTION + 2 * pin,
        MASKED | LEVEL | u32::from(vector),
    );
}

/// Checks the I/O APIC's version register and raises COM1's interrupt once through
/// it.
pub fn init_and_test() -> CheckResult {
    let version = read(REG_VERSION);
    let (ver, max_entry) = (version & 0xff, (version >> 16) & 0xff);
    if ver != 0x20 || max_entry < UART_PIN {
        return Err(why!(
            "I/O APIC version register {version:#x}: not version 0x20 with pin {UART_PIN}"
        ));
    }
    let com1 = super::multiboot::COM1.base as u16;
    port::outb(com1 + UART_IER, 0);
    let _ = port::inb(com1 + UART_IIR);
    route(UART_PIN, UART_VECTOR, lapic::id(), false);
    port::outb(com1 + UART_MCR, port::inb(com1 + UART_MCR) | MCR_OUT2);
    let before = UART_INTERRUPTS.get();
    super::irq::enable();
    // THR is empty, so this raises the "THR empty" interrupt.
    port::outb(com1 + UART_IER, IER_THRI);
    let arrived = time::wait_until(DEADLINE_MS, || UART_INTERRUPTS.get() != before);
    super::irq::disable();
    // What the way shows when nothing came: the UART's interrupt identification, the
    // pin's redirection entry and the vector's bit in the local APIC's IRR.
    let (iir, entry) = (
        port::inb(com1 + UART_IIR),
        read(REG_REDIRECTION + 2 * UART_PIN),
    );
    let irr = lapic::read(0x200 + 0x10 * usize::from(UART_VECTOR / 32));
    port::outb(com1 + UART_IER, 0);
    route(UART_PIN, UART_VECTOR, lapic::id(), true);
    if !arrived {
        return Err(why!(
            "COM1's interrupt (I/O APIC pin {UART_PIN}, vector {UART_VECTOR:#x}) did not arrive within {DEADLINE_MS} ms (IIR {iir:#x}, entry {entry:#x}, IRR bit {})",
            irr >> (UART_VECTOR % 32) & 1
        ));
    }
    crate::console::println!(
        "testguest: I/O APIC version {ver:#x}, {} pins: COM1's interrupt came through pin {UART_PIN}",
        max_entry + 1
    );
    Ok(())
}

/// COM1's interrupt: reading IIR acknowledges "THR empty", IER = 0 keeps it from
/// coming back.
pub fn handle_uart() {
    let com1 = super::multiboot::COM1.base as u16;
    let _ = port::inb(com1 + UART_IIR);
    port::outb(com1 + UART_IER, 0);
    UART_INTERRUPTS.increment();
}
