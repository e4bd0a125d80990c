//! passthrough (boot argument `pl031=<address>`): a PL031 real-time clock the VM
//! config passes through from the host (by device-tree path) answers at that
//! guest-physical address: its AMBA PrimeCell ID registers read 0xB105F00D with part
//! number 0x031 by ARM (designer 0x41), and its data register is readable. Without
//! the mapping the first read stops the VM instead.

use crate::console::println;
use crate::why::{why, CheckResult};

/// Offsets of the PrimeCell registers in the last 32 bytes of a 4 KiB window.
const PERIPH_ID0: usize = 0xfe0;
const CELL_ID0: usize = 0xff0;
/// RTCDR: the current time in seconds.
const RTCDR: usize = 0x000;

/// The address `pl031=<hex>` in the boot arguments gives, if any.
pub fn requested(bootargs: &str) -> Option<usize> {
    bootargs.split_ascii_whitespace().find_map(|w| {
        let hex = w.strip_prefix("pl031=")?;
        let hex = hex.strip_prefix("0x").unwrap_or(hex);
        usize::from_str_radix(hex, 16).ok()
    })
}

/// Four 8-bit ID registers (one per word) as one number, lowest first.
fn id(base: usize, first: usize) -> u32 {
    (0..4).fold(0, |acc, i| {
        // SAFETY: `base` is the device window the VM config passes through; ID
        // registers are read-only and reading them has no side effects.
        let b = unsafe { crate::mmio::read32(base + first + 4 * i) } & 0xff;
        acc | (b << (8 * i))
    })
}

/// Runs the check on the PL031 at `base`.
pub fn run(base: usize) -> CheckResult {
    let cell = id(base, CELL_ID0);
    if cell != 0xb105_f00d {
        return Err(why!(
            "PrimeCell id at {base:#x} is {cell:#x}, not 0xb105f00d"
        ));
    }
    let periph = id(base, PERIPH_ID0);
    let (part, designer) = (periph & 0xfff, (periph >> 12) & 0xff);
    if (part, designer) != (0x031, 0x41) {
        return Err(why!(
            "peripheral id {periph:#x} at {base:#x}: part {part:#x} designer {designer:#x}, not a PL031 (0x031, 0x41)"
        ));
    }
    // SAFETY: as in `id`; reading RTCDR has no side effects.
    let seconds = unsafe { crate::mmio::read32(base + RTCDR) };
    println!(
        "testguest: passthrough: PL031 at {base:#x}: part {part:#x}, designer {designer:#x}, RTC {seconds}"
    );
    Ok(())
}
