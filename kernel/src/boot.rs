//! The boot sequence, arch-neutral: read the board from what the firmware handed over
//! (the architecture picks the reader: a DTB today), bring up the MMU, console,
//! memory and interrupt controller, build every VM from the table `cargo xtask build`
//! generated, start the other CPUs, and run.

use crate::firmware;
use crate::firmware::BoardInfo;
use crate::hal::{Cpu, Current, HostIrq, HostTimer};
use crate::mm::frames::FrameAllocator;
use crate::println;
use crate::spec::{VmSpec, BUILD, VMS};
use crate::vmm::fs;
use crate::vmm::machine::{self, Machine};
use crate::vmm::run;
use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Heap for the hypervisor's own data structures.
const HEAP_SIZE: u64 = 8 << 20;

/// Secondary stack slot -> CPU index (DTB order); written before the CPU is started.
static SLOT_CPU: [AtomicUsize; firmware::MAX_CPUS] =
    [const { AtomicUsize::new(0) }; firmware::MAX_CPUS];

/// The boot CPU's way from the architecture's entry (`handover`: the address the
/// boot protocol passed, read by [`Cpu::discover`]) to running VMs.
pub fn primary_main(handover: u64) -> ! {
    // Without a board description there is no console to tell: stop quietly.
    let Ok(firmware::Handover {
        board: mut p,
        modules,
        occupies,
    }) = Current::discover(handover)
    else {
        halt()
    };
    if let Err(why) = Current::init_primary(&p) {
        refuse(&p, why);
    }
    if let Some(u) = p.console() {
        crate::console::init(u);
    }
    crate::info!(
        "hv: hypervisor {} on board {} ({} CPUs)",
        env!("CARGO_PKG_VERSION"),
        BUILD.board,
        p.cpus().len()
    );
    for r in p.ram() {
        crate::info!("hv: RAM {:#x}..{:#x}", r.base, r.end());
    }

    let hv_and_dtb = [crate::mm::phys::image_range(), occupies];
    let mut excl = firmware::RangeList::new();
    for r in hv_and_dtb {
        let _ = excl.push(r);
    }
    for r in p.reserved() {
        let _ = excl.push(*r);
    }
    // Files the bootloader loaded for fs VMs: never handed out.
    let modules_safe = fs::start::protect_modules(&modules, &mut excl);
    let Ok(mut frames) = FrameAllocator::new(p.ram(), excl.as_slice()) else {
        fatal(&p, "too many RAM/reserved ranges");
    };
    let Ok(heap) = frames.alloc(HEAP_SIZE, 4096) else {
        fatal(&p, "no RAM for the heap")
    };
    crate::mm::heap::init(heap, HEAP_SIZE);

    let fs = fs::start::load(
        &mut p,
        &modules,
        modules_safe,
        &hv_and_dtb,
        VMS,
        &mut frames,
    );
    let machine = Machine::new(p, frames);
    for _ in 0..fs.refused {
        machine.note_failed();
    }
    for spec in VMS {
        build_vm(&machine, Cow::Borrowed(spec), Vec::new(), "");
    }
    for vm in fs.vms {
        build_vm(&machine, Cow::Owned(vm.spec), vm.frames, &vm.file);
    }
    crate::info!("hv: {} MiB of RAM left free", machine.free_bytes() >> 20);
    let m = machine::publish(machine);
    let vms = m.vms();
    if vms.is_empty() {
        if fs.refused == 0 && VMS.is_empty() {
            println!("hv: no VMs configured");
        }
        // Nothing will ever run: end now with the right status.
        m.finish();
        halt();
    }
    for vm in &vms {
        m.start(vm);
    }
    crate::vmm::input::announce(m);
    start_secondaries(m);
    run::cpu_loop(m, cpu_index(m))
}

/// Builds the VM of `spec` (`frames`: where its files were read to, which it keeps;
/// `file`: its config file on the card, for messages).
fn build_vm(m: &Machine, spec: Cow<'static, VmSpec>, frames: Vec<(u64, u64)>, file: &str) {
    let start = Current::counter();
    let (id, name) = (spec.id, spec.name.clone());
    match m.create_holding(spec, frames) {
        Ok(vm) => {
            crate::info!("hv: VM {} ({}): {}", vm.id(), vm.name(), vm.summary());
            let ms = (Current::counter() - start) * 1000 / Current::counter_hz().max(1);
            crate::debug!("hv: VM {} ({}) built in {ms} ms", vm.id(), vm.name());
        }
        Err(why) => {
            m.note_failed();
            println!("hv: VM {id} ({name}) not started: {file}{why}");
        }
    }
}

pub fn secondary_main(slot: usize) -> ! {
    let Some(m) = machine::machine() else { halt() };
    if let Err(e) = Current::init_secondary(&m.platform) {
        println!("hv: CPU {:#x}: {e}", Current::this_cpu());
        halt();
    }
    #[cfg(feature = "test-stack-overflow")]
    if slot == 1 || (cfg!(feature = "test-two-overflows") && slot == 2) {
        overflow_stack(0);
    }
    #[cfg(feature = "test-big-frame")]
    if slot == usize::MAX {
        big_frame(slot as u64);
    }
    let cpu = SLOT_CPU[slot].load(Ordering::Acquire);
    run::cpu_loop(m, cpu)
}

fn cpu_index(m: &Machine) -> usize {
    let me = Current::this_cpu();
    m.platform.cpus().iter().position(|&c| c == me).unwrap_or(0)
}

fn start_secondaries(m: &'static Machine) {
    let me = Current::this_cpu();
    let mut slot = 1;
    for (i, &mpidr) in m.platform.cpus().iter().enumerate() {
        if mpidr == me || slot >= firmware::MAX_CPUS {
            continue;
        }
        SLOT_CPU[slot].store(i, Ordering::Release);
        if let Err(e) = Current::start_cpu(&m.platform, mpidr, slot) {
            println!("hv: CPU {mpidr:#x} did not start (firmware error {e})");
        }
        slot += 1;
    }
}

/// The architecture cannot run on this board: say why on its console, if it has one.
fn refuse(p: &BoardInfo, why: &str) -> ! {
    if let Some(u) = p.console() {
        crate::console::init(u);
    }
    println!("hv: cannot start: {why}");
    Current::power_off(p, false)
}

fn fatal(p: &BoardInfo, why: &str) -> ! {
    println!("hv: cannot continue: {why}");
    Current::power_off(p, false)
}

fn halt() -> ! {
    loop {
        Current::idle(&mut |_| {});
    }
}

/// Test only: recurses until this CPU's stack runs into its gap, with frames of
/// 24 KiB, so that the gap (not just its first page) is what catches it.
#[cfg(feature = "test-stack-overflow")]
#[inline(never)]
fn overflow_stack(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 1536]);
    if depth == u64::MAX {
        return 0;
    }
    frame[0] + overflow_stack(depth + 1) + frame[1535]
}

/// Test only: a 40 KiB frame, which `cargo xtask build`'s frame check must refuse.
#[cfg(feature = "test-big-frame")]
#[inline(never)]
fn big_frame(x: u64) -> u64 {
    let frame = core::hint::black_box([x; 5120]);
    frame[0] + frame[5119]
}

/// CPUs between the start and the end of their [`fatal_bug`] report.
static REPORTING: AtomicUsize = AtomicUsize::new(0);
/// CPUs that started a [`fatal_bug`] report (feature `test-two-overflows`).
#[cfg(feature = "test-two-overflows")]
static REPORTED: AtomicUsize = AtomicUsize::new(0);

/// A hypervisor bug (a panic, a fault or stack overflow at EL2 / in HS-mode): said on
/// the console and the machine ends with a failure, so a run never hangs on it.
pub fn fatal_bug(what: core::fmt::Arguments) -> ! {
    REPORTING.fetch_add(1, Ordering::SeqCst);
    #[cfg(feature = "test-two-overflows")]
    REPORTED.fetch_add(1, Ordering::SeqCst);
    crate::console::print_emergency(format_args!("hv: BUG: {what}; the machine stops\n"));
    REPORTING.fetch_sub(1, Ordering::SeqCst);
    // Test only: the other overflowing CPU must get here too (bounded: if it never
    // does, one report comes out and the scenario fails on it).
    #[cfg(feature = "test-two-overflows")]
    for _ in 0..500_000_000u64 {
        if REPORTED.load(Ordering::SeqCst) >= 2 {
            break;
        }
        core::hint::spin_loop();
    }
    // Another CPU that faulted at the same moment is reporting too (each on its own
    // emergency stack): let its line out before the machine ends. Bounded, since a
    // CPU may have stopped in the middle of its report.
    for _ in 0..50_000_000 {
        if REPORTING.load(Ordering::SeqCst) == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    match machine::machine() {
        Some(m) => Current::power_off(&m.platform, false),
        None => halt(),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fatal_bug(format_args!("{info}"))
}
