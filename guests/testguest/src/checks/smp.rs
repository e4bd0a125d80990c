//! smp: every other CPU in the device tree starts through the firmware (PSCI CPU_ON on
//! aarch64), runs the guest's secondary code on its own stack, reports back, turns
//! itself off, and the firmware then reports it off (AFFINITY_INFO = OFF).
//!
//! Secondaries report through a [`Mailbox`] each. They print their one line while
//! the boot vCPU only polls (it prints nothing until the secondary says it is done),
//! so lines of different vCPUs do not interleave without needing a lock.

use crate::arch::{self, CpuState, HvInfo};
use crate::console::println;
use crate::platform::{Platform, MAX_CPUS};
use crate::shared::Shared;
use crate::time;
use crate::why::{why, CheckResult};

/// How long a started CPU has to report, in milliseconds.
const START_DEADLINE_MS: u64 = 10_000;
/// How long a CPU has to be reported off after saying it is done, in milliseconds.
const OFF_DEADLINE_MS: u64 = 5_000;

const STATE_IDLE: u64 = 0;
const STATE_DONE: u64 = 2;

/// What one secondary reports.
pub struct Mailbox {
    state: Shared,
    hw_id: Shared,
    hv: [Shared; 4],
    hv_undefined: Shared,
}

impl Mailbox {
    const fn new() -> Self {
        Self {
            state: Shared::new(STATE_IDLE),
            hw_id: Shared::new(0),
            hv: [const { Shared::new(0) }; 4],
            hv_undefined: Shared::new(0),
        }
    }

    /// The HV_INFO result the secondary got, once it is done (None: not done or the
    /// call was undefined).
    pub fn hv_info(&self) -> Option<HvInfo> {
        if self.state.get() != STATE_DONE || self.hv_undefined.get() != 0 {
            return None;
        }
        Some([0, 1, 2, 3].map(|i| self.hv[i].get()))
    }
}

/// One mailbox per stack slot (position in the device tree).
pub static MAILBOXES: [Mailbox; MAX_CPUS] = [const { Mailbox::new() }; MAX_CPUS];

/// Runs on a secondary CPU: reports in its mailbox, then turns the CPU off.
pub fn secondary(slot: usize) -> ! {
    let Some(mailbox) = MAILBOXES.get(slot) else {
        arch::halt();
    };
    println!("testguest: vCPU {slot} up");
    mailbox.hw_id.set(arch::cpu_hw_id());
    match arch::firmware::hv_info() {
        Ok(info) => {
            for (cell, value) in mailbox.hv.iter().zip(info) {
                cell.set(value);
            }
        }
        Err(_) => mailbox.hv_undefined.set(1),
    }
    mailbox.state.set(STATE_DONE);
    arch::firmware::cpu_stop()
}

/// Starts the CPU at device-tree position `slot` and follows it until it is off.
fn start_one(slot: usize, hw_id: u64) -> CheckResult {
    let mailbox = &MAILBOXES[slot];
    mailbox.state.set(STATE_IDLE);
    arch::firmware::cpu_start(hw_id, slot as u64)
        .map_err(|err| why!("starting CPU {hw_id:#x} failed with error {err}"))?;
    if !time::wait_until(START_DEADLINE_MS, || mailbox.state.get() == STATE_DONE) {
        return Err(why!(
            "vCPU {slot} (CPU {hw_id:#x}) did not report within {START_DEADLINE_MS} ms"
        ));
    }
    let reported = mailbox.hw_id.get();
    if reported != hw_id {
        return Err(why!(
            "vCPU {slot} runs with CPU id {reported:#x}, the device tree says {hw_id:#x}"
        ));
    }
    let mut state = CpuState::On;
    if !time::wait_until(OFF_DEADLINE_MS, || {
        state = arch::firmware::cpu_state(hw_id);
        state == CpuState::Off
    }) {
        return Err(why!(
            "CPU {hw_id:#x} still {state:?} {OFF_DEADLINE_MS} ms after turning off"
        ));
    }
    Ok(())
}

/// Runs the check.
pub fn run(platform: &Platform) -> CheckResult {
    let me = arch::cpu_hw_id();
    let cpus = platform.cpus();
    // The boot CPU is the first one under a hypervisor; firmware may pick another
    // (OpenSBI on plain QEMU riscv64 boots whichever hart wins its lottery).
    let Some(boot) = cpus.iter().position(|&c| c == me) else {
        return Err(why!(
            "the boot CPU's id {me:#x} is not among the CPUs of the device tree"
        ));
    };
    if platform.cpus_in_dtb > cpus.len() {
        println!(
            "testguest: the device tree lists {} CPUs, testing the first {}",
            platform.cpus_in_dtb,
            cpus.len()
        );
    }
    if cpus.len() == 1 {
        println!("testguest: only one CPU in the device tree");
    }
    let mut result = Ok(());
    for (position, &hw_id) in cpus.iter().enumerate().filter(|&(p, _)| p != boot) {
        // Stack slot 0 is the boot CPU's: the CPU at position 0 takes the boot
        // CPU's position instead when that is not 0.
        let slot = if position == 0 { boot } else { position };
        if let Err(why) = start_one(slot, hw_id) {
            result = result.and(Err(why));
        }
    }
    result
}
