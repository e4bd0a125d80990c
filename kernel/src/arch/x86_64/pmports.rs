//! The ACPI-style power ports every x86 VM has (QEMU q35's own addresses, so a guest
//! powers off the same way bare and in a VM), decoded in the arch as PSCI is on
//! aarch64: PM1a event block 0x600 (status 0x600, enable 0x602), PM1a control 0x604
//! (SLP_EN with SLP_TYP 0, the VM's `_S5`, powers it off), the PM timer 0x608 (24
//! bits at 3.579545 MHz from the guest's TSC; writes ignored), the reset control register 0xCF9
//! (a write with bit 2 set resets the VM) and the keyboard controller's reset
//! command (0xFE written to port 0x64; other commands ignored). Pure.

pub const PM1A_EVT: u16 = 0x600;
pub const PM1A_CNT: u16 = 0x604;
pub const PM_TMR: u16 = 0x608;
pub const RESET_CTL: u16 = 0xcf9;
pub const KBC_CMD: u16 = 0x64;

/// The PM timer's rate.
pub const PM_TIMER_HZ: u64 = 3_579_545;
const SLP_EN: u32 = 1 << 13;
const SLP_TYP: u32 = 7 << 10;
/// PM1 control: SCI_EN (the VM is in ACPI mode from the start: no SMI_CMD).
const SCI_EN: u32 = 1;
const RESET_CPU: u32 = 1 << 2;
const KBC_RESET: u32 = 0xfe;

/// What an access to a port does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Done; the value for an `in` (ignored for an `out`).
    Done(u32),
    PowerOff,
    Reset,
    /// Not one of these ports (or not at that width): the VM's device bus decides.
    NotMine,
}

/// The registers' state of one VM (kept per vCPU: the registers hold nothing a
/// guest reads back but the enable bits and the reset control value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pm {
    enable: u16,
    control: u16,
    reset_ctl: u8,
}

impl Pm {
    /// An `in` (`write` None) or `out` of `width` bytes at `port`; `guest_tsc` and
    /// `tsc_hz` give the PM timer.
    pub fn access(
        &mut self,
        port: u16,
        width: u8,
        write: Option<u32>,
        guest_tsc: u64,
        tsc_hz: u64,
    ) -> Action {
        match (port, width, write) {
            // Status: nothing raises an event; write-one-to-clear clears nothing.
            (PM1A_EVT, 2, None) => Action::Done(0),
            (PM1A_EVT, 2, Some(_)) => Action::Done(0),
            (p, 2, None) if p == PM1A_EVT + 2 => Action::Done(self.enable.into()),
            (p, 2, Some(v)) if p == PM1A_EVT + 2 => {
                self.enable = v as u16;
                Action::Done(0)
            }
            (PM1A_CNT, 2, None) => Action::Done(u32::from(self.control) | SCI_EN),
            (PM1A_CNT, 2, Some(v)) => {
                if v & SLP_EN != 0 && v & SLP_TYP == 0 {
                    return Action::PowerOff;
                }
                // Other sleep states do not exist in the VM's DSDT: nothing happens.
                self.control = (v & !SLP_EN) as u16;
                Action::Done(0)
            }
            (PM_TMR, 4, None) => {
                let ticks = (guest_tsc as u128 * PM_TIMER_HZ as u128) / tsc_hz.max(1) as u128;
                Action::Done((ticks as u32) & 0xff_ffff)
            }
            (RESET_CTL, 1, None) => Action::Done(self.reset_ctl.into()),
            (RESET_CTL, 1, Some(v)) if v & RESET_CPU != 0 => Action::Reset,
            (RESET_CTL, 1, Some(v)) => {
                self.reset_ctl = v as u8;
                Action::Done(0)
            }
            // The PM timer is read-only: a write changes nothing (ACPI).
            (PM_TMR, 4, Some(_)) => Action::Done(0),
            (KBC_CMD, 1, Some(KBC_RESET)) => Action::Reset,
            // The VM's keyboard controller knows only the reset pulse; any other
            // command goes nowhere, as to a chip that is not there.
            (KBC_CMD, 1, Some(_)) => Action::Done(0),
            _ => Action::NotMine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_powers_off_and_other_writes_do_not() {
        let mut pm = Pm::default();
        assert_eq!(pm.access(PM1A_CNT, 2, None, 0, 1), Action::Done(1));
        // SLP_TYP 5 with SLP_EN: no such state, kept as a plain write.
        assert_eq!(
            pm.access(PM1A_CNT, 2, Some(5 << 10 | SLP_EN), 0, 1),
            Action::Done(0)
        );
        assert_eq!(
            pm.access(PM1A_CNT, 2, None, 0, 1),
            Action::Done(5 << 10 | 1)
        );
        assert_eq!(pm.access(PM1A_CNT, 2, Some(SLP_EN), 0, 1), Action::PowerOff);
        // A byte write is not the control register's.
        assert_eq!(pm.access(PM1A_CNT, 1, Some(0x20), 0, 1), Action::NotMine);
    }

    #[test]
    fn the_event_block_keeps_the_enable_bits() {
        let mut pm = Pm::default();
        assert_eq!(pm.access(0x602, 2, Some(0x120), 0, 1), Action::Done(0));
        assert_eq!(pm.access(0x602, 2, None, 0, 1), Action::Done(0x120));
        assert_eq!(pm.access(0x600, 2, Some(0xffff), 0, 1), Action::Done(0));
        assert_eq!(pm.access(0x600, 2, None, 0, 1), Action::Done(0));
    }

    #[test]
    fn the_pm_timer_counts_at_its_rate_in_24_bits() {
        let mut pm = Pm::default();
        let hz = 2_000_000_000;
        assert_eq!(pm.access(PM_TMR, 4, None, hz, hz), Action::Done(3_579_545));
        let wrapped = 5 * hz; // 17_897_725 ticks, past 2^24
        assert_eq!(
            pm.access(PM_TMR, 4, None, wrapped, hz),
            Action::Done(17_897_725 & 0xff_ffff)
        );
        assert_eq!(pm.access(PM_TMR, 2, None, 0, hz), Action::NotMine);
        assert_eq!(
            pm.access(PM_TMR, 4, Some(5), 0, hz),
            Action::Done(0),
            "read-only"
        );
    }

    #[test]
    fn resets_by_0xcf9_and_the_keyboard_controller() {
        let mut pm = Pm::default();
        assert_eq!(pm.access(RESET_CTL, 1, Some(0x02), 0, 1), Action::Done(0));
        assert_eq!(pm.access(RESET_CTL, 1, None, 0, 1), Action::Done(2));
        assert_eq!(pm.access(RESET_CTL, 1, Some(0x06), 0, 1), Action::Reset);
        assert_eq!(pm.access(KBC_CMD, 1, Some(0xfe), 0, 1), Action::Reset);
        assert_eq!(
            pm.access(KBC_CMD, 1, Some(0xd1), 0, 1),
            Action::Done(0),
            "ignored"
        );
        assert_eq!(pm.access(KBC_CMD, 1, None, 0, 1), Action::NotMine);
        assert_eq!(pm.access(0x3f8, 1, Some(0x41), 0, 1), Action::NotMine);
    }
}
