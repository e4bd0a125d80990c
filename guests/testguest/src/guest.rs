//! The guest's flow: the boot vCPU reads the device tree, sets up the console, runs
//! every check in order, prints the summary, optionally provokes the fault the `fault`
//! boot argument asks for or resets the VM once (`reset`), and powers the VM off. Secondary vCPUs only report in (see
//! `checks::smp`). A panic becomes a `FAIL` line of the running check.

use crate::arch;
use crate::checks::{self, usable};
use crate::console::{self, println};
use crate::platform::{self, Platform};
use crate::report;
use crate::why::{why, Why};

/// Rust entry of the boot vCPU (from the architecture's boot code), with the address
/// of the device tree.
pub extern "C" fn primary_main(dtb: usize) -> ! {
    let platform = platform::parse(dtb);
    if let Some(uart) = platform.as_ref().ok().and_then(|p| p.uart) {
        console::init(uart);
    }
    let bootargs = platform.as_ref().map(|p| p.bootargs).unwrap_or("");
    println!("testguest: vCPU 0 up, bootargs \"{bootargs}\"");
    if let Ok(platform) = &platform {
        for region in platform.memory() {
            println!("memory: {:#x}..{:#x}", region.base, region.end());
        }
    }
    let boots = arch::firmware::vm_boots().unwrap_or(0);
    if boots > 1 {
        println!("testguest: boot {boots} of this VM");
    }
    run_checks(&platform);
    report::summary();
    if wants(bootargs, "hold") {
        println!("testguest: holding (this VM does not stop; the host ends QEMU)");
        arch::halt();
    }
    if let Ok(platform) = &platform {
        if wants(bootargs, "fault") {
            read_past_ram(platform);
        }
    }
    if wants(bootargs, "reset") && boots == 1 {
        checks::timer::reset_from_handler()
    }
    arch::firmware::system_off()
}

/// Rust entry of a secondary vCPU, with its stack slot (its device-tree position).
pub extern "C" fn secondary_main(slot: usize) -> ! {
    checks::smp::secondary(slot)
}

fn run_checks(platform: &Result<Platform, Why>) {
    report::run("console", || checks::console(platform));
    report::run("dtb", || checks::dtb(platform));
    for &(name, check) in arch::firmware::ARCH_CHECKS {
        report::run(name, || check(usable(platform)?));
    }
    report::run("memory", || checks::memory::run(usable(platform)?));
    report::run("timer", || checks::timer::run(usable(platform)?));
    report::run(arch::firmware::CHECK_NAME, arch::firmware::check);
    report::run("smp", || checks::smp::run(usable(platform)?));
    report::run("hypercall", || {
        checks::hypercall::run(platform.as_ref().ok())
    });
    report::run("unknown-call", checks::unknown_call);
}

/// Whether the boot arguments hold `word`: `fault` (read past the end of RAM after
/// the checks) or `reset` (reset the VM after the checks of its first boot, from
/// inside a timer interrupt handler, so they run again on the second).
fn wants(bootargs: &str, word: &str) -> bool {
    bootargs.split_ascii_whitespace().any(|w| w == word)
}

/// Reads the word just past the end of RAM: the hypervisor must stop the VM there.
fn read_past_ram(platform: &Platform) {
    let Some(end) = platform.ram_end() else {
        return;
    };
    println!("testguest: reading past the end of RAM at {end:#x}");
    // SAFETY: deliberately outside the guest's memory; the hypervisor is expected to
    // stop the VM. If the read returns, only the value read is used.
    let value = unsafe { crate::mmio::read64(end as usize) };
    println!("FAIL: access outside memory was allowed");
    println!("testguest: read {value:#x} at {end:#x}");
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let check = report::current().unwrap_or("guest");
    let message = why!("{}", info.message());
    match info.location() {
        Some(at) => report::fatal(format_args!(
            "FAIL: {check}: panic at {}:{}: {message}",
            at.file(),
            at.line()
        )),
        None => report::fatal(format_args!("FAIL: {check}: panic: {message}")),
    }
}
