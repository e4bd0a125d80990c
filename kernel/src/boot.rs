//! The boot sequence, arch-neutral: read the board from what the firmware handed over
//! (the architecture picks the reader: a DTB today), bring up the MMU, console,
//! memory and interrupt controller, build every VM from the table `cargo xtask build`
//! generated, start the other CPUs, and run.

use crate::firmware::BoardInfo;
use crate::firmware::{self, Range};
use crate::hal::{Cpu, Current, HostIrq, HostTimer};
use crate::mm::frames::FrameAllocator;
use crate::println;
use crate::spec::{VmSpec, BUILD, VMS};
use crate::vmm::fs;
use crate::vmm::machine::{self, Machine};
use crate::vmm::run;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Heap for the hypervisor's own data structures.
const HEAP_SIZE: u64 = 8 << 20;

/// Secondary stack slot -> CPU index (DTB order); written before the CPU is started.
static SLOT_CPU: [AtomicUsize; firmware::MAX_CPUS] =
    [const { AtomicUsize::new(0) }; firmware::MAX_CPUS];

/// Reads the DTB's total size from its header (big-endian word at offset 4).
fn dtb_slice(dtb: usize) -> Option<&'static [u8]> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot loader passes the DTB address in x0; the header is 40 bytes.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 40) };
    if header[..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return None;
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    // SAFETY: the header says the blob is `size` bytes; it stays in place (the frame
    // allocator excludes it).
    Some(unsafe { core::slice::from_raw_parts(dtb as *const u8, size) })
}

pub fn primary_main(dtb: usize) -> ! {
    let Some(blob) = dtb_slice(dtb) else { halt() };
    // Without a console there is no one to tell: stop quietly.
    let Ok(mut p) = Current::discover(blob) else {
        halt()
    };
    p.dtb = Some(blob);
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

    let hv_and_dtb = [
        crate::mm::phys::image_range(),
        Range {
            base: dtb as u64,
            size: blob.len() as u64,
        },
    ];
    let mut excl = firmware::RangeList::new();
    for r in hv_and_dtb {
        let _ = excl.push(r);
    }
    for r in p.reserved() {
        let _ = excl.push(*r);
    }
    // Files the bootloader loaded for fs VMs: never handed out.
    let modules = firmware::fdt::boot_modules(blob);
    let modules_safe = fs::start::protect_modules(&modules, &mut excl);
    let Ok(mut frames) = FrameAllocator::new(p.ram(), excl.as_slice()) else {
        fatal(&p, "too many RAM/reserved ranges");
    };
    let Ok(heap) = frames.alloc(HEAP_SIZE, 4096) else {
        fatal(&p, "no RAM for the heap")
    };
    crate::mm::heap::init(heap, HEAP_SIZE);

    let fs = fs::start::load(&p, &modules, modules_safe, &hv_and_dtb, VMS);
    let specs: Vec<&'static VmSpec> = VMS.iter().chain(fs.specs.iter().copied()).collect();
    let machine = Machine::new(p, frames);
    for _ in 0..fs.refused {
        machine.note_failed();
    }
    for spec in specs {
        build_vm(&machine, spec, fs.file_of(spec).unwrap_or(""));
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

/// Builds the VM of `spec` (`file`: its config file on the card, for messages).
fn build_vm(m: &Machine, spec: &'static VmSpec, file: &str) {
    let start = Current::counter();
    match m.create(spec) {
        Ok(vm) => {
            crate::info!("hv: VM {} ({}): {}", vm.id(), vm.name(), vm.summary());
            let ms = (Current::counter() - start) * 1000 / Current::counter_hz().max(1);
            crate::debug!("hv: VM {} ({}) built in {ms} ms", vm.id(), vm.name());
        }
        Err(why) => {
            m.note_failed();
            println!(
                "hv: VM {} ({}) not started: {file}{why}",
                spec.id, spec.name
            );
        }
    }
}

pub fn secondary_main(slot: usize) -> ! {
    let Some(m) = machine::machine() else { halt() };
    if let Err(e) = Current::init_secondary(&m.platform) {
        println!("hv: CPU {:#x}: {e}", Current::this_cpu());
        halt();
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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("hv: BUG: {info}");
    halt()
}
