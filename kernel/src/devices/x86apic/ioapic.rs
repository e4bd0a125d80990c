//! The virtual I/O APIC, as pure state: IOREGSEL / IOWIN, the ID, version and
//! arbitration registers, 24 redirection entries (GSI n = pin n), edge and level
//! triggering with remote IRR, the EOI register of version 0x20 and the EOI
//! broadcast of the local APICs, masks.
//!
//! Pin levels are logical (asserted or not, as the device models drive their
//! lines); the polarity bit is kept for the guest but changes nothing. What a pin
//! sends comes back as a [`Message`] for the chip to deliver to local APICs.

use super::lapic::{Delivery, Dest, Message};

/// The window's guest-physical base (the platform's fixed address).
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
pub const PINS: usize = 24;
/// Version 0x20 (with the EOI register), 24 entries (max entry 23).
pub const VERSION: u32 = 0x0017_0020;

/// Window offsets.
pub const IOREGSEL: u64 = 0x00;
pub const IOWIN: u64 = 0x10;
pub const IOEOI: u64 = 0x40;

const MASKED: u64 = 1 << 16;
const REMOTE_IRR: u64 = 1 << 14;
const LEVEL: u64 = 1 << 15;
const DELIVERY_STATUS: u64 = 1 << 12;
/// Bits of an entry the guest writes: vector, delivery mode, destination mode,
/// polarity, trigger, mask, destination (63:56).
const WRITABLE: u64 = 0xff00_0000_0001_afff;

#[derive(Clone, Debug)]
pub struct IoApic {
    id: u32,
    sel: u32,
    redir: [u64; PINS],
    level: [bool; PINS],
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new()
    }
}

impl IoApic {
    pub fn new() -> Self {
        Self {
            id: 0,
            sel: 0,
            redir: [MASKED; PINS],
            level: [false; PINS],
        }
    }

    /// A window read (4 bytes; the chip refuses other widths).
    pub fn read(&self, off: u64) -> u32 {
        match off {
            IOREGSEL => self.sel,
            IOWIN => self.reg_read(self.sel),
            _ => 0,
        }
    }

    /// A window write; the messages it sends (an unmasked level pin still asserted,
    /// a remote IRR cleared by the EOI register) go to `send`.
    pub fn write(&mut self, off: u64, v: u32, send: &mut dyn FnMut(Message)) {
        match off {
            IOREGSEL => self.sel = v & 0xff,
            IOWIN => self.reg_write(self.sel, v, send),
            IOEOI => self.eoi(v as u8, send),
            _ => {}
        }
    }

    fn reg_read(&self, sel: u32) -> u32 {
        match sel {
            0 => self.id << 24,
            1 => VERSION,
            2 => self.id << 24,
            0x10..=0x3f => {
                let e = self.redir[(sel as usize - 0x10) / 2];
                if sel & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn reg_write(&mut self, sel: u32, v: u32, send: &mut dyn FnMut(Message)) {
        match sel {
            0 => self.id = (v >> 24) & 0xf,
            0x10..=0x3f => {
                let pin = (sel as usize - 0x10) / 2;
                let e = &mut self.redir[pin];
                let new = if sel & 1 == 0 {
                    (*e & !0xffff_ffff) | u64::from(v)
                } else {
                    (*e & 0xffff_ffff) | (u64::from(v) << 32)
                };
                *e = (*e & (REMOTE_IRR | DELIVERY_STATUS)) | (new & WRITABLE);
                if *e & LEVEL == 0 {
                    *e &= !REMOTE_IRR;
                }
                self.service(pin, send);
            }
            _ => {}
        }
    }

    /// Redirection entry `pin` (for tests and the chip).
    pub fn entry(&self, pin: usize) -> u64 {
        self.redir.get(pin).copied().unwrap_or(0)
    }

    /// Drives pin `pin` to `level` (pins past 23 do not exist). An edge entry sends
    /// on the rising edge; a level entry whenever the pin is asserted and no
    /// delivery is in service (remote IRR clear).
    pub fn set_level(&mut self, pin: usize, level: bool, send: &mut dyn FnMut(Message)) {
        if pin >= PINS {
            return;
        }
        let was = core::mem::replace(&mut self.level[pin], level);
        let e = self.redir[pin];
        if e & LEVEL == 0 {
            if level && !was && e & MASKED == 0 {
                send(message(e));
            }
        } else {
            self.service(pin, send);
        }
    }

    /// Sends a level entry's interrupt if its pin is asserted, unmasked and not in
    /// service.
    fn service(&mut self, pin: usize, send: &mut dyn FnMut(Message)) {
        let e = self.redir[pin];
        if e & LEVEL != 0 && e & MASKED == 0 && e & REMOTE_IRR == 0 && self.level[pin] {
            self.redir[pin] |= REMOTE_IRR;
            send(message(e));
        }
    }

    /// The end of level-triggered `vector` (a local APIC's EOI broadcast or the EOI
    /// register): remote IRR cleared on its entries, which send again while their
    /// pin stays asserted.
    pub fn eoi(&mut self, vector: u8, send: &mut dyn FnMut(Message)) {
        for pin in 0..PINS {
            let e = self.redir[pin];
            if e & REMOTE_IRR != 0 && e as u8 == vector {
                self.redir[pin] &= !REMOTE_IRR;
                self.service(pin, send);
            }
        }
    }
}

/// The message redirection entry `e` sends.
fn message(e: u64) -> Message {
    let delivery = match (e >> 8) & 7 {
        0 => Delivery::Fixed { lowest: false },
        1 => Delivery::Fixed { lowest: true },
        2 => Delivery::Smi,
        4 => Delivery::Nmi,
        5 => Delivery::Init { assert: true },
        _ => Delivery::ExtInt,
    };
    let field = (e >> 56) as u32;
    Message {
        vector: e as u8,
        delivery,
        dest: if e & (1 << 11) != 0 {
            Dest::Logical(field)
        } else {
            Dest::Physical(field)
        },
        level: e & LEVEL != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn io() -> IoApic {
        IoApic::new()
    }

    fn reg(a: &mut IoApic, sel: u32) -> u32 {
        a.write(IOREGSEL, sel, &mut |_| {});
        a.read(IOWIN)
    }

    fn set(a: &mut IoApic, sel: u32, v: u32) -> Vec<Message> {
        let mut out = Vec::new();
        a.write(IOREGSEL, sel, &mut |_| {});
        a.write(IOWIN, v, &mut |m| out.push(m));
        out
    }

    fn pin(a: &mut IoApic, p: usize, level: bool) -> Vec<Message> {
        let mut out = Vec::new();
        a.set_level(p, level, &mut |m| out.push(m));
        out
    }

    fn eoi(a: &mut IoApic, v: u8) -> Vec<Message> {
        let mut out = Vec::new();
        a.eoi(v, &mut |m| out.push(m));
        out
    }

    fn fixed(vector: u8, dest: u32, level: bool) -> Message {
        Message {
            vector,
            delivery: Delivery::Fixed { lowest: false },
            dest: Dest::Physical(dest),
            level,
        }
    }

    #[test]
    fn registers_and_power_on_values() {
        let mut a = io();
        assert_eq!(reg(&mut a, 0), 0);
        assert_eq!(reg(&mut a, 1), 0x0017_0020);
        assert_eq!(reg(&mut a, 2), 0);
        for sel in (0x10..0x40).step_by(2) {
            assert_eq!(reg(&mut a, sel), 0x1_0000, "entry {sel:#x} masked");
            assert_eq!(reg(&mut a, sel + 1), 0);
        }
        set(&mut a, 0, 0xffff_ffff);
        assert_eq!(reg(&mut a, 0), 0x0f00_0000);
        assert_eq!(reg(&mut a, 2), 0x0f00_0000, "arbitration follows the ID");
        set(&mut a, 1, 0);
        assert_eq!(reg(&mut a, 1), VERSION, "read-only");
        set(&mut a, 0x10, 0xffff_ffff);
        assert_eq!(
            reg(&mut a, 0x10),
            0x1_afff,
            "status and remote IRR read-only"
        );
        set(&mut a, 0x11, 0xffff_ffff);
        assert_eq!(reg(&mut a, 0x11), 0xff00_0000);
        assert_eq!(reg(&mut a, 0x40), 0, "past the entries");
        assert_eq!(reg(&mut a, 0xff), 0);
        a.write(IOREGSEL, 0x1234, &mut |_| {});
        assert_eq!(a.read(IOREGSEL), 0x34);
        assert_eq!(a.read(0x20), 0, "reserved offsets");
    }

    #[test]
    fn console_pin_4_edge_to_a_vcpu_vector() {
        let mut a = io();
        assert!(pin(&mut a, 4, true).is_empty(), "masked");
        pin(&mut a, 4, false);
        set(&mut a, 0x11 + 8, 0x0100_0000);
        assert!(
            set(&mut a, 0x10 + 8, 0x24).is_empty(),
            "edge: no send on unmask"
        );
        assert_eq!(pin(&mut a, 4, true), [fixed(0x24, 1, false)]);
        assert!(pin(&mut a, 4, true).is_empty(), "no new edge");
        pin(&mut a, 4, false);
        assert_eq!(pin(&mut a, 4, true), [fixed(0x24, 1, false)]);
        assert!(pin(&mut a, 24, true).is_empty(), "no pin 24");
    }

    #[test]
    fn level_pins_remote_irr_and_eoi() {
        let mut a = io();
        set(&mut a, 0x10 + 2 * 9, 0x1_8031);
        assert!(pin(&mut a, 9, true).is_empty(), "masked");
        assert_eq!(
            set(&mut a, 0x10 + 2 * 9, 0x8031),
            [fixed(0x31, 0, true)],
            "unmask sends"
        );
        assert_ne!(a.entry(9) & REMOTE_IRR, 0);
        assert!(pin(&mut a, 9, true).is_empty(), "in service");
        assert!(eoi(&mut a, 0x30).is_empty(), "another vector");
        assert_eq!(eoi(&mut a, 0x31), [fixed(0x31, 0, true)], "still asserted");
        pin(&mut a, 9, false);
        assert!(eoi(&mut a, 0x31).is_empty());
        assert_eq!(a.entry(9) & REMOTE_IRR, 0);
        assert_eq!(pin(&mut a, 9, true), [fixed(0x31, 0, true)]);
        let mut out = Vec::new();
        pin(&mut a, 9, false);
        a.write(IOEOI, 0x31, &mut |m| out.push(m));
        assert!(out.is_empty());
        assert_eq!(a.entry(9) & REMOTE_IRR, 0, "the EOI register");
    }

    #[test]
    fn logical_and_nmi_entries() {
        let mut a = io();
        set(&mut a, 0x11, 0x0300_0000);
        set(&mut a, 0x10, 0x0c40);
        let m = pin(&mut a, 0, true);
        assert_eq!(m[0].dest, Dest::Logical(3));
        assert_eq!(m[0].delivery, Delivery::Nmi);
    }
}
