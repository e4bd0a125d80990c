//! Time: the counter is the TSC; the timer is the local APIC's one-shot timer. Their
//! rates come from the hypervisor's CPUID leaf 0x4000_0010 (EAX: TSC kHz, EBX: local
//! APIC timer kHz, as VMware and KVM guests read them); without it (bare hardware, or
//! a hypervisor that does not offer the leaf) both are measured against the ACPI PM
//! timer (port 0x608, 3.579545 MHz, 24 bits) over 50 ms.

use super::{lapic, port};
use crate::shared::Shared;

/// The vector of the local APIC timer.
pub const VECTOR: u8 = 0x30;
/// The ACPI PM timer port (q35's PM1a block at 0x600) and its rate.
const PM_TIMER: u16 = 0x608;
const PM_TIMER_HZ: u64 = 3_579_545;
/// PM timer ticks to measure over (50 ms).
const CALIBRATION_TICKS: u64 = PM_TIMER_HZ / 20;
/// The hypervisor's timing leaf.
const TIMING_LEAF: u32 = 0x4000_0010;

/// TSC and local APIC timer rates in Hz (0: not known yet).
static TSC_HZ: Shared = Shared::new(0);
static LAPIC_HZ: Shared = Shared::new(0);
/// Where the rates came from: 1 the hypervisor's leaf, 2 the PM timer.
static SOURCE: Shared = Shared::new(0);
/// When the armed timer is due (TSC).
static DEADLINE: Shared = Shared::new(u64::MAX);

/// The TSC rate in Hz (0 if it could not be found).
pub fn frequency() -> u64 {
    if TSC_HZ.get() == 0 {
        find_rates();
    }
    TSC_HZ.get()
}

/// The local APIC timer rate in Hz (divide by 1).
pub fn lapic_frequency() -> u64 {
    if LAPIC_HZ.get() == 0 {
        find_rates();
    }
    LAPIC_HZ.get()
}

/// Where the rates came from, for the report.
pub fn source() -> &'static str {
    match SOURCE.get() {
        1 => "CPUID 0x40000010",
        2 => "measured against the ACPI PM timer",
        _ => "unknown",
    }
}

fn find_rates() {
    if super::firmware::hypervisor_max_leaf() >= TIMING_LEAF {
        let [tsc_khz, lapic_khz, _, _] = port::cpuid(TIMING_LEAF, 0);
        if tsc_khz != 0 && lapic_khz != 0 {
            LAPIC_HZ.set(u64::from(lapic_khz) * 1000);
            TSC_HZ.set(u64::from(tsc_khz) * 1000);
            SOURCE.set(1);
            return;
        }
    }
    if let Some((tsc, lapic)) = measure() {
        LAPIC_HZ.set(lapic);
        TSC_HZ.set(tsc);
        SOURCE.set(2);
    }
}

/// The PM timer's 24-bit count.
fn pm_timer() -> u64 {
    u64::from(port::inl(PM_TIMER) & 0xff_ffff)
}

/// TSC and local APIC timer rates measured over [`CALIBRATION_TICKS`] of the PM timer;
/// None if the PM timer does not count.
fn measure() -> Option<(u64, u64)> {
    // Start on a PM timer edge.
    let first = pm_timer();
    let mut spins = 0u64;
    let mut start = pm_timer();
    while start == first {
        spins += 1;
        if spins > 10_000_000 {
            return None;
        }
        start = pm_timer();
    }
    lapic::enable();
    lapic::timer_count_from(u32::MAX);
    let lapic0 = lapic::timer_current();
    let tsc0 = port::rdtsc();
    let mut elapsed;
    loop {
        elapsed = pm_timer().wrapping_sub(start) & 0xff_ffff;
        if elapsed >= CALIBRATION_TICKS {
            break;
        }
    }
    let tsc1 = port::rdtsc();
    let lapic1 = lapic::timer_current();
    lapic::timer_stop();
    let scale =
        |delta: u64| (u128::from(delta) * u128::from(PM_TIMER_HZ) / u128::from(elapsed)) as u64;
    Some((
        scale(tsc1.wrapping_sub(tsc0)),
        scale(u64::from(lapic0.wrapping_sub(lapic1))),
    ))
}

/// The TSC.
pub fn now() -> u64 {
    port::rdtsc()
}

/// Makes the timer interrupt come once `ticks` TSC ticks from now. The local APIC
/// count is rounded up, with 1/64 more for the error of a measured rate, so the
/// interrupt cannot come before the deadline by the TSC.
pub fn arm(ticks: u64) {
    let due = now().saturating_add(ticks);
    let (tsc, lapic) = (frequency().max(1), lapic_frequency().max(1));
    let count = (u128::from(ticks) * u128::from(lapic)).div_ceil(u128::from(tsc)) as u64;
    let count = count
        .saturating_add(count / 64 + 1)
        .min(u64::from(u32::MAX)) as u32;
    DEADLINE.set(due);
    lapic::timer_one_shot(VECTOR, count);
}

/// Stops the timer.
pub fn disarm() {
    lapic::timer_stop();
    DEADLINE.set(u64::MAX);
}

/// In the interrupt handler: whether the timer was due when its interrupt came (the
/// one-shot timer stops by itself).
pub fn mask_and_check_fired() -> bool {
    let fired = now() >= DEADLINE.get();
    DEADLINE.set(u64::MAX);
    fired
}

/// Whether the timer is armed and its interrupt not yet taken.
pub fn armed() -> bool {
    DEADLINE.get() != u64::MAX
}
