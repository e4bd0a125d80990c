//! Inter-VM channels on x86: Multiboot hands over no device description, so the
//! hypervisor appends one word per channel to the command line (read by
//! `crate::hvchannel`). The first channel with a doorbell is the one the `ivc` checks
//! use.
//!
//! The doorbell's interrupt is an I/O APIC pin. It is routed here to this vCPU's
//! local APIC as a level-triggered [`VECTOR`] and left unmasked while the vCPU runs
//! with interrupts masked (IF clear): a ring then shows as the vector's bit in the
//! local APIC's IRR, the pending bit the arch-neutral check polls. Once the receiver
//! has cleared the doorbell's STATUS (the line drops), [`take`] lets the interrupt in:
//! its handler masks the pin and ends it (EOI), as an OS does with a level interrupt
//! whose device it serves later; [`take`] then unmasks the pin with interrupts masked
//! again. The vector's IRR bit must stay clear: a line still asserted would make the
//! I/O APIC send again at the unmask (and a stuck line cannot livelock the guest in
//! its handler).

use super::{ioapic, irq, lapic};
use crate::checks::ivc::View;
use crate::hvchannel::{Channel, Problem::*, WORD};
use crate::shared::Shared;
use crate::why::{why, Why};

/// The doorbell interrupt's vector.
pub const VECTOR: u8 = 0x32;
/// The local APIC's IRR: 8 registers of 32 vectors, 0x10 apart.
const IRR: usize = 0x200;

/// Doorbell interrupts taken by the handler.
static TAKEN: Shared = Shared::new(0);
/// The doorbell's I/O APIC pin (set before the interrupt is let in).
static PIN: Shared = Shared::new(0);

/// The first channel with a doorbell on the command line.
fn from_cmdline(bootargs: &str) -> Result<Channel<'_>, Why> {
    crate::hvchannel::first_with_doorbell(bootargs).map_err(|e| match e {
        Unreadable(w) => why!("unreadable {WORD}{w} on the command line"),
        NoDoorbell => why!("no {WORD}... word with a doorbell on the command line"),
    })
}

/// The channel the command line describes, its doorbell's pin routed to this vCPU
/// (see the module doc). Prints what it found.
pub fn channel(platform: &crate::platform::Platform) -> Option<Result<View, Why>> {
    Some(from_cmdline(platform.bootargs).and_then(|c| {
        let Some((doorbell, gsi)) = c.doorbell else {
            return Err(why!("channel {} has no doorbell", c.name));
        };
        irq::init(platform)?;
        irq::disable();
        PIN.set(u64::from(gsi));
        ioapic::route_level(gsi, VECTOR, lapic::id())?;
        crate::console::println!(
            "testguest: ivc: channel {} at {:#x} ({:#x} bytes, {}), doorbell at {doorbell:#x} on GSI {gsi} (from the command line)",
            c.name,
            c.region,
            c.size,
            if c.writable { "rw" } else { "ro" }
        );
        Ok(View {
            region: c.region as usize,
            size: c.size,
            doorbell: doorbell as usize,
            pending: (
                lapic::BASE + IRR + 0x10 * usize::from(VECTOR / 32),
                1 << (VECTOR % 32),
            ),
        })
    }))
}

/// After STATUS was cleared: lets the pending doorbell interrupt in (its handler
/// masks the pin and ends it), masks interrupts again and unmasks the pin. False if
/// it did not come within 1 s or the pin could not be routed again.
pub fn take() -> bool {
    let before = TAKEN.get();
    irq::enable();
    let came = crate::time::wait_until(1000, || TAKEN.get() != before);
    irq::disable();
    came && ioapic::route_level(PIN.get() as u32, VECTOR, lapic::id()).is_ok()
}

/// The doorbell interrupt's handler: masks the pin, counts the interrupt and ends it.
pub fn handle() {
    ioapic::mask_level(PIN.get() as u32, VECTOR);
    TAKEN.increment();
    lapic::eoi();
}
