//! The PC's legacy ports an x86 VM does NOT have, answered the way a PC answers a
//! port no chip decodes: a read gives all ones, a write goes nowhere. Linux probes
//! these to find out what is there, and must not have its VM stopped for asking
//! (every other unknown port still stops the VM). What it concludes, port by port:
//! - 0x20-0x21, 0xA0-0xA1, the 8259 pair: the mask it writes does not read back,
//!   so no PIC ("Using NULL legacy PIC"); interrupts go through the I/O APIC, and the
//!   MADT says so (PCAT_COMPAT clear).
//! - 0x40-0x43 and 0x61, the PIT and port B: its quick TSC calibration sees no
//!   counter and gives up at once; the TSC rate comes from `tsc_early_khz=` instead
//!   (`linux.rs`) and the local APIC is its timer.
//! - 0x70-0x71, the CMOS clock: its one early read of the time finds the update
//!   flag always set and gives up (bounded); the FADT says there is no CMOS RTC, so
//!   no RTC driver is bound to it.
//! - 0x80, the POST port Linux writes for I/O delays (`outb_p`), and the rest of
//!   the ISA DMA controllers (0x00-0x1F, 0x81-0x8F page registers, 0xC0-0xDF):
//!   Linux reads a DMA page register while it unpacks the initramfs.
//! - 0x2F8-0x2FF, 0x3E8-0x3EF, 0x2E8-0x2EF, COM2-COM4: the serial driver's probe
//!   finds no UART (scratch register and FIFO read all ones).
//! - 0x2E-0x2F and 0x4E-0x4F, Super I/O configuration ports: the serial driver
//!   looks for a Fintek Super I/O's UARTs there and finds no chip.
//! - 0xCF8 and 0xCFA-0xCFF, PCI configuration mechanisms #1 and #2: the address
//!   written to 0xCF8 does not read back, so no PCI ("No config space access
//!   function found"); 0xCF9 is the reset control register (`pmports`).
//!
//! Pure.

/// The absent ports, as inclusive ranges.
pub const ABSENT: &[(u16, u16, &str)] = &[
    (0x20, 0x21, "8259 PIC (master)"),
    (0xa0, 0xa1, "8259 PIC (slave)"),
    (0x2e, 0x2f, "Super I/O configuration"),
    (0x40, 0x43, "8254 PIT"),
    (0x4e, 0x4f, "Super I/O configuration"),
    (0x61, 0x61, "port B (PIT gate, speaker)"),
    (0x70, 0x71, "CMOS RTC"),
    (0x00, 0x1f, "8237 DMA controller 1"),
    (0x80, 0x80, "POST / I/O delay"),
    (0x81, 0x8f, "DMA page registers"),
    (0xc0, 0xdf, "8237 DMA controller 2"),
    (0x2e8, 0x2ef, "COM4"),
    (0x2f8, 0x2ff, "COM2"),
    (0x3e8, 0x3ef, "COM3"),
    (0xcf8, 0xcf8, "PCI configuration address"),
    (0xcfa, 0xcff, "PCI configuration data"),
];

/// The answer to an `in` (`write` None) or `out` of `width` bytes at `port` when no
/// chip is there: Some(all ones of the width) for a read, Some(0) for a write;
/// None when the access touches a port that is not listed (the device bus decides).
pub fn access(port: u16, width: u8, write: Option<u32>) -> Option<u32> {
    if !matches!(width, 1 | 2 | 4) {
        return None;
    }
    let last = port.checked_add(u16::from(width) - 1)?;
    // Every byte of the access must be an absent port (a dword at 0xCF8 spans
    // 0xCF9, which is the reset register: 0xCF8 is the one exception, as PCI
    // mechanism #1 is always accessed as a dword there).
    let absent = |p: u16| ABSENT.iter().any(|&(a, b, _)| (a..=b).contains(&p));
    let ok = absent(port) && (port == 0xcf8 || (port..=last).all(absent));
    if !ok {
        return None;
    }
    Some(match write {
        Some(_) => 0,
        None => match width {
            1 => 0xff,
            2 => 0xffff,
            _ => u32::MAX,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_chips_read_all_ones_and_ignore_writes() {
        // The 8259 probe: the mask written does not read back.
        assert_eq!(access(0x21, 1, Some(0xfb)), Some(0));
        assert_eq!(access(0x21, 1, None), Some(0xff));
        assert_eq!(access(0xa1, 1, None), Some(0xff));
        // PIT channel 2 and port B, CMOS, POST.
        assert_eq!(access(0x42, 1, None), Some(0xff));
        assert_eq!(access(0x61, 1, None), Some(0xff));
        assert_eq!(access(0x70, 1, Some(0x0a)), Some(0));
        assert_eq!(access(0x71, 1, None), Some(0xff));
        assert_eq!(access(0x80, 1, Some(0)), Some(0));
        // The DMA page register Linux reads while it unpacks its initramfs.
        assert_eq!(access(0x87, 1, None), Some(0xff));
        // The serial driver's Super I/O probe.
        assert_eq!(access(0x4e, 1, Some(0x87)), Some(0));
        assert_eq!(access(0x2f, 1, None), Some(0xff));
        // COM2's scratch register; a word across two absent ports.
        assert_eq!(access(0x2ff, 1, None), Some(0xff));
        assert_eq!(access(0x2f8, 2, None), Some(0xffff));
        // PCI mechanism #1: the address does not read back.
        assert_eq!(access(0xcf8, 4, Some(0x8000_0000)), Some(0));
        assert_eq!(access(0xcf8, 4, None), Some(u32::MAX));
        assert_eq!(access(0xcfc, 4, None), Some(u32::MAX));
    }

    #[test]
    fn other_ports_are_not_answered_here() {
        // The console, the PM block, the reset register, the keyboard controller.
        for p in [0x3f8, 0x600, 0x604, 0xcf9, 0x64, 0x60, 0x92, 0x3e0] {
            assert_eq!(access(p, 1, None), None, "port {p:#x}");
        }
        // An access reaching past an absent range.
        assert_eq!(access(0x43, 2, None), None);
        assert_eq!(access(0x8f, 2, None), None);
        assert_eq!(access(0xffff, 2, None), None);
        // Odd widths.
        assert_eq!(access(0x80, 3, None), None);
    }
}
