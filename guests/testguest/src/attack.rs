//! The attack mode (boot argument `attack=<kind>[,<kind>...]`): instead of the checks,
//! the guest misbehaves in the chosen ways, one after the other, to show that the
//! hypervisor contains it (the scenarios `attacks-<arch>` run it next to a test VM;
//! `cargo xtask test attacks` lists every kind with the outcome it must have).
//!
//! A kind either *stops* the VM (the hypervisor names a reason on its console; if
//! the guest goes on it prints `FAIL: <kind>: not stopped ...`), or it is *answered*:
//! the guest checks the answer itself and prints `ok: <kind>` (with a
//! `testguest: attack <kind>: <detail>` line) or `FAIL: <kind>: <why>`. After the last
//! kind the guest prints the totals and powers its VM off, as in check mode.
//!
//! The kinds every architecture has are here; `arch::attack::KINDS` adds the
//! architecture's own (system registers, instructions, firmware calls).

use crate::arch::{self, CpuState};
use crate::checks;
use crate::console::println;
use crate::platform::Platform;
use crate::report;
use crate::shared::Shared;
use crate::time;
use crate::why::{why, Why};

/// What an attack returns: the answer it saw (when it is the specified one), or why
/// the hypervisor's answer was wrong.
pub type Outcome = Result<Why, Why>;

/// One attack: its name and what it does.
pub type Kind = (&'static str, fn(&Platform) -> Outcome);

/// The kinds of every architecture.
const COMMON: &[Kind] = &[
    ("read-unmapped", read_unmapped),
    ("write-unmapped", write_unmapped),
    ("read-ram-end", read_ram_end),
    ("write-below-ram", write_below_ram),
    ("exec-unmapped", exec_unmapped),
    ("exec-device", exec_device),
    ("stack-overflow", stack_overflow),
    ("cpu-off-last", cpu_off_last),
    ("cpu-on-bad-id", cpu_on_bad_id),
    ("cpu-on-self", cpu_on_self),
    ("cpu-on-twice", cpu_on_twice),
    ("cpu-state-bad-id", cpu_state_bad_id),
    ("timer-zero-storm", timer_zero_storm),
    ("wfi-masked", wfi_masked),
    ("masked-spin", masked_spin),
    ("reset-race", reset_race),
];

/// The value of `attack=` in the boot arguments, if any.
pub fn requested(bootargs: &str) -> Option<&str> {
    bootargs
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("attack="))
}

/// Runs the attacks of `list` (comma-separated kinds), prints the totals and powers
/// the VM off. On a VM's second boot (after `reset-race`) it only reports that boot.
pub fn run(platform: &Platform, list: &str) -> ! {
    let boots = arch::firmware::vm_boots().unwrap_or(0);
    if boots > 1 {
        println!("testguest: attack reset-race: boot {boots} of this VM: the reset went through");
        report::record("reset-race", Ok(()));
    } else {
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let found = COMMON
                .iter()
                .chain(arch::attack::KINDS)
                .find(|(n, _)| *n == name);
            match found {
                Some((_, attack)) => {
                    println!("testguest: attack {name}: go");
                    match attack(platform) {
                        Ok(detail) => {
                            println!("testguest: attack {name}: {detail}");
                            report::record(name, Ok(()));
                        }
                        Err(why) => report::record(name, Err(why)),
                    }
                }
                None => report::record(name, Err(why!("no such attack kind"))),
            }
        }
    }
    report::summary();
    arch::firmware::system_off()
}

/// Set while [`catch`] runs its closure: the exception handler then records the
/// exception's syndrome in `CAUGHT` ([`take_exception`]) and the guest goes on after
/// the faulting instruction.
static CATCHING: Shared = Shared::new(0);
static CAUGHT: Shared = Shared::new(0);

/// Runs `f`; returns the syndrome (ESR_EL1, scause) of the first synchronous
/// exception it raised (the faulting instruction is skipped), or None.
pub fn catch(f: impl FnOnce()) -> Option<u64> {
    CAUGHT.set(0);
    CATCHING.set(1);
    f();
    CATCHING.set(0);
    let syndrome = CAUGHT.get();
    (syndrome != 0).then_some(syndrome & !(1 << 63))
}

/// From the exception handler: whether [`catch`] takes this exception (then it is
/// recorded and the handler skips the faulting instruction).
pub fn take_exception(syndrome: u64) -> bool {
    if CATCHING.get() == 0 {
        return false;
    }
    CATCHING.set(0);
    CAUGHT.set(syndrome | 1 << 63);
    true
}

/// What a kind that must stop the VM says when it comes back.
pub fn not_stopped(what: &str) -> Outcome {
    Err(why!("not stopped: {what} came back"))
}

fn ram(platform: &Platform) -> Result<(u64, u64), Why> {
    let first = platform
        .memory()
        .first()
        .ok_or_else(|| why!("no RAM in the device tree"))?;
    let end = platform
        .ram_end()
        .ok_or_else(|| why!("no RAM in the device tree"))?;
    Ok((first.base, end))
}

fn read_unmapped(_: &Platform) -> Outcome {
    // SAFETY: deliberately outside everything the VM has; the hypervisor stops it.
    let v = unsafe { crate::mmio::read32(arch::attack::UNMAPPED) };
    not_stopped(why!("a read of {:#x} (got {v:#x})", arch::attack::UNMAPPED).as_str())
}

fn write_unmapped(_: &Platform) -> Outcome {
    // SAFETY: as in `read_unmapped`.
    unsafe { crate::mmio::write32(arch::attack::UNMAPPED, 0xdead_beef) };
    not_stopped("a write outside the VM")
}

fn read_ram_end(platform: &Platform) -> Outcome {
    let (_, end) = ram(platform)?;
    // SAFETY: the first byte past RAM; the hypervisor stops the VM.
    let v = unsafe { crate::mmio::read64(end as usize) };
    not_stopped(why!("a read at the end of RAM (got {v:#x})").as_str())
}

fn write_below_ram(platform: &Platform) -> Outcome {
    let (base, _) = ram(platform)?;
    // RAM at 0 (x86) has nothing below it.
    let below = base
        .checked_sub(8)
        .ok_or_else(|| why!("RAM starts at 0: nothing below it"))?;
    // SAFETY: the last word below RAM; the hypervisor stops the VM.
    unsafe { crate::mmio::write64(below as usize, 0x5a5a) };
    not_stopped("a write below RAM")
}

/// Jumps to `addr` as if it were code.
fn jump(addr: usize) {
    // SAFETY: deliberately executing where nothing executable is; the hypervisor
    // stops the VM at the first instruction fetch.
    let f: extern "C" fn() = unsafe { core::mem::transmute(addr) };
    f();
}

fn exec_unmapped(_: &Platform) -> Outcome {
    jump(arch::attack::UNMAPPED);
    not_stopped("a jump outside the VM")
}

fn exec_device(platform: &Platform) -> Outcome {
    jump(arch::attack::device_window(platform)?);
    not_stopped("a jump into a device's window")
}

/// Recurses with 4 KiB frames until the stack runs below RAM.
#[inline(never)]
fn dive(depth: u64) -> u64 {
    let mut frame = [0u64; 512];
    for (i, word) in frame.iter_mut().enumerate() {
        // SAFETY: a plain write into this frame's own array.
        unsafe { core::ptr::write_volatile(word, depth + i as u64) };
    }
    core::hint::black_box(&mut frame);
    dive(depth + 1) + frame[depth as usize % 512]
}

/// Where the stack overflow starts: this far above the start of RAM (past the
/// device tree, far below the guest's image, which the overflow must not reach).
const OVERFLOW_STACK_TOP: u64 = 0x2_0000;

extern "C" fn overflow() -> ! {
    let v = dive(0);
    println!("FAIL: stack-overflow: not stopped: a stack overflow came back ({v})");
    report::summary();
    arch::firmware::system_off()
}

fn stack_overflow(platform: &Platform) -> Outcome {
    let (base, _) = ram(platform)?;
    arch::attack::on_stack((base + OVERFLOW_STACK_TOP) as usize, overflow)
}

fn cpu_off_last(_: &Platform) -> Outcome {
    arch::firmware::cpu_stop()
}

fn cpu_on_bad_id(_: &Platform) -> Outcome {
    let bad = arch::attack::BAD_CPU_ID;
    match arch::firmware::cpu_start(bad, 1) {
        Err(e) if e == arch::attack::ERR_INVALID_PARAM => Ok(why!(
            "start of CPU {bad:#x} refused with {e} (invalid parameters)"
        )),
        Err(e) => Err(why!(
            "start of CPU {bad:#x} refused with {e}, expected {}",
            arch::attack::ERR_INVALID_PARAM
        )),
        Ok(()) => Err(why!("start of CPU {bad:#x} accepted")),
    }
}

fn cpu_on_self(_: &Platform) -> Outcome {
    match arch::firmware::cpu_start(arch::cpu_hw_id(), 0) {
        Err(e) if e == arch::attack::ERR_ALREADY_ON => Ok(why!("refused with {e} (already on)")),
        other => Err(why!("starting itself gave {other:?}")),
    }
}

fn cpu_state_bad_id(_: &Platform) -> Outcome {
    match arch::firmware::cpu_state(arch::attack::BAD_CPU_ID) {
        CpuState::Error(e) if e == arch::attack::ERR_INVALID_PARAM => {
            Ok(why!("state of a CPU that does not exist refused with {e}"))
        }
        other => Err(why!("state of a CPU that does not exist: {other:?}")),
    }
}

/// The second CPU of the device tree (the attacks that need one).
fn second_cpu(platform: &Platform) -> Result<u64, Why> {
    platform
        .cpus()
        .get(1)
        .copied()
        .ok_or_else(|| why!("needs a VM with 2 vCPUs"))
}

/// How the secondary vCPU behaves in attack mode (set before it is started).
static SECONDARY_MODE: Shared = Shared::new(0);
const MODE_REPORT: u64 = 0;
const MODE_HAMMER: u64 = 1;
const MODE_WAIT: u64 = 2;
/// Lets a waiting secondary go on.
static RELEASE: Shared = Shared::new(0);
/// How many calls the hammering secondary made.
static HAMMERED: Shared = Shared::new(0);

/// On a started secondary: returns at once (to the smp report) unless an attack
/// wants it to wait for [`RELEASE`] first, or to hammer: then it starts the boot vCPU
/// (hardware id 0, on: refused; on x86 start-up IPIs and INITs at it) again and
/// again, for good.
pub fn secondary() {
    match SECONDARY_MODE.get() {
        MODE_HAMMER => loop {
            arch::attack::hammer_once();
            HAMMERED.increment();
        },
        MODE_WAIT => {
            while RELEASE.get() == 0 {
                core::hint::spin_loop();
            }
        }
        _ => {}
    }
}

fn cpu_on_twice(platform: &Platform) -> Outcome {
    let cpu = second_cpu(platform)?;
    // The secondary waits until both calls are made, so it is surely on (or
    // starting) at the second.
    RELEASE.set(0);
    SECONDARY_MODE.set(MODE_WAIT);
    arch::barrier();
    let first = arch::firmware::cpu_start(cpu, 1);
    let second = arch::firmware::cpu_start(cpu, 1);
    RELEASE.set(1);
    arch::barrier();
    if first.is_err() {
        return Err(why!("the first start of CPU {cpu:#x} failed: {first:?}"));
    }
    let mailbox = &checks::smp::MAILBOXES[1];
    let done = time::wait_until(10_000, || mailbox.hv_info().is_some());
    let off = time::wait_until(5_000, || arch::firmware::cpu_state(cpu) == CpuState::Off);
    SECONDARY_MODE.set(MODE_REPORT);
    match second {
        Err(e)
            if (e == arch::attack::ERR_ALREADY_ON || e == arch::attack::ERR_ON_PENDING)
                && done
                && off =>
        {
            Ok(why!(
                "the second start was refused with {e}; the vCPU ran once and is off"
            ))
        }
        _ => Err(why!("second start {second:?}, reported {done}, off {off}")),
    }
}

/// Whether the interrupt controller was set up (once per boot).
static IRQ_READY: Shared = Shared::new(0);

fn irq_init(platform: &Platform) -> Result<(), Why> {
    if IRQ_READY.get() == 0 {
        arch::irq::init(platform)?;
        IRQ_READY.set(1);
    }
    Ok(())
}

fn timer_zero_storm(platform: &Platform) -> Outcome {
    const ROUNDS: u64 = 2_000;
    irq_init(platform)?;
    let before = checks::timer::ticks();
    arch::irq::enable();
    let start = arch::timer::now();
    for _ in 0..ROUNDS {
        let seen = checks::timer::ticks();
        arch::timer::arm(0);
        if !time::wait_until(1_000, || checks::timer::ticks() != seen) {
            arch::irq::disable();
            return Err(why!("a timer armed at 0 did not interrupt within 1 s"));
        }
    }
    arch::irq::disable();
    arch::timer::disarm();
    let took = (arch::timer::now() - start) * 1000 / arch::timer::frequency().max(1);
    Ok(why!(
        "{} timer interrupts at 0 ticks taken in {took} ms",
        checks::timer::ticks() - before
    ))
}

fn wfi_masked(platform: &Platform) -> Outcome {
    irq_init(platform)?;
    arch::irq::disable();
    let start = arch::timer::now();
    arch::timer::arm(time::ms_to_ticks(20));
    arch::wait_for_interrupt();
    let woke = arch::timer::now();
    arch::timer::disarm();
    let ms = (woke - start) * 1000 / arch::timer::frequency().max(1);
    if ms > 5_000 {
        return Err(why!("WFI with interrupts masked woke after {ms} ms"));
    }
    Ok(why!(
        "WFI with interrupts masked woke by the pending timer after {ms} ms"
    ))
}

fn masked_spin(platform: &Platform) -> Outcome {
    irq_init(platform)?;
    arch::irq::disable();
    arch::timer::arm(0);
    let start = arch::timer::now();
    let end = start + time::ms_to_ticks(2_000);
    let mut spins = 0u64;
    while arch::timer::now() < end {
        spins += 1;
    }
    arch::timer::disarm();
    Ok(why!(
        "spun 2 s with interrupts masked and the timer pending ({spins} turns)"
    ))
}

fn reset_race(platform: &Platform) -> Outcome {
    let cpu = second_cpu(platform)?;
    SECONDARY_MODE.set(MODE_HAMMER);
    arch::barrier();
    arch::firmware::cpu_start(cpu, 1).map_err(|e| why!("start of CPU {cpu:#x}: {e}"))?;
    if !time::wait_until(10_000, || HAMMERED.get() > 100) {
        return Err(why!("the secondary did not start hammering"));
    }
    println!("testguest: attack reset-race: resetting while vCPU 1 calls CPU_ON on vCPU 0");
    arch::firmware::system_reset()
}
