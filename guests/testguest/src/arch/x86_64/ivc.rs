//! Inter-VM channels on x86: Multiboot hands over no device description, so the
//! hypervisor appends one word per channel to the command line:
//! `hv.channel=<name>,<region gpa>,<size>,<rw|ro>[,<doorbell gpa>,<gsi>]` (hex
//! addresses and size, decimal GSI). The first channel with a doorbell is the one the
//! `ivc` checks use.
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
use crate::shared::Shared;
use crate::why::{why, Why};

/// The doorbell interrupt's vector.
pub const VECTOR: u8 = 0x32;
/// The local APIC's IRR: 8 registers of 32 vectors, 0x10 apart.
const IRR: usize = 0x200;
/// The word the hypervisor puts on the command line per channel.
const WORD: &str = "hv.channel=";

/// Doorbell interrupts taken by the handler.
static TAKEN: Shared = Shared::new(0);
/// The doorbell's I/O APIC pin (set before the interrupt is let in).
static PIN: Shared = Shared::new(0);

/// One channel as the command line gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel<'a> {
    pub name: &'a str,
    pub region: u64,
    pub size: u64,
    pub writable: bool,
    pub doorbell: Option<(u64, u32)>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// `<name>,<gpa>,<size>,<rw|ro>[,<doorbell>,<gsi>]` (what follows `hv.channel=`).
pub fn parse(v: &str) -> Option<Channel<'_>> {
    let mut f = v.split(',');
    let name = f.next().filter(|n| !n.is_empty())?;
    let region = hex(f.next()?)?;
    let size = hex(f.next()?)?;
    let writable = match f.next()? {
        "rw" => true,
        "ro" => false,
        _ => return None,
    };
    let doorbell = match (f.next(), f.next()) {
        (Some(d), Some(g)) => Some((hex(d)?, g.parse().ok()?)),
        (None, None) => None,
        _ => return None,
    };
    f.next().is_none().then_some(Channel {
        name,
        region,
        size,
        writable,
        doorbell,
    })
}

/// The first channel with a doorbell on the command line.
fn from_cmdline(bootargs: &str) -> Result<Channel<'_>, Why> {
    let mut words = bootargs
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(WORD));
    for w in words.by_ref() {
        match parse(w) {
            Some(c) if c.doorbell.is_some() => return Ok(c),
            Some(_) => continue,
            None => return Err(why!("unreadable {WORD}{w} on the command line")),
        }
    }
    Err(why!(
        "no {WORD}... word with a doorbell on the command line"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_read_and_bad_ones_refused() {
        assert_eq!(
            parse("link,0x1000000,0x10000,rw,0xfe000000,10"),
            Some(Channel {
                name: "link",
                region: 0x100_0000,
                size: 0x1_0000,
                writable: true,
                doorbell: Some((0xfe00_0000, 10)),
            })
        );
        assert_eq!(
            parse("log,0x2000,0x1000,ro").map(|c| (c.writable, c.doorbell)),
            Some((false, None))
        );
        for bad in [
            "",
            "link",
            "link,0x1000",
            "link,1000,0x1000,rw",
            "link,0x1000,0x1000,wr",
            "link,0x1000,0x1000,rw,0xfe000000",
            "link,0x1000,0x1000,rw,0xfe000000,10,1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(from_cmdline("ivc hv.channel=log,0x2000,0x1000,ro").is_err());
        assert_eq!(
            from_cmdline(
                "ivc hv.channel=log,0x2000,0x1000,ro hv.channel=l,0x3000,0x1000,rw,0xfe001000,11"
            )
            .map(|c| c.name)
            .ok(),
            Some("l")
        );
    }
}
