//! The guest's flow: the boot vCPU reads the device tree, sets up the console, runs
//! every check in order, prints the summary, optionally holds or spins with interrupts
//! masked (`hold`, `spin-masked`), provokes the fault the `fault` boot argument asks for
//! or resets the VM once (`reset`), and powers the VM off. Secondary vCPUs only report in (see
//! `checks::smp`). A panic becomes a `FAIL` line of the running check.

use crate::arch;
use crate::checks::{self, usable};
use crate::console::{self, println};
use crate::platform::{self, Platform};
use crate::report;
use crate::shared::Shared;
use crate::why::{why, Why};

/// Set by the boot argument `sbi-only` (riscv64): console and timer through the
/// SBI only; no UART or PLIC is touched.
static SBI_ONLY: Shared = Shared::new(0);

/// Whether the guest runs on the firmware's console and timer only (`sbi-only`).
pub fn sbi_only() -> bool {
    SBI_ONLY.get() != 0
}

/// Rust entry of the boot vCPU (from the architecture's boot code), with the address
/// of the device tree.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub extern "C" fn primary_main(dtb: usize) -> ! {
    run(platform::parse(dtb))
}

/// The boot vCPU's flow, once the architecture has read what the VM was booted with
/// (a device tree, or on x86_64 the Multiboot information).
pub fn run(platform: Result<Platform, Why>) -> ! {
    let bootargs = platform.as_ref().map(|p| p.bootargs).unwrap_or("");
    let firmware_console = wants(bootargs, "sbi-only") && console::init_firmware();
    if firmware_console {
        SBI_ONLY.set(1);
    } else if let Some(uart) = platform.as_ref().ok().and_then(|p| p.uart) {
        console::init(uart);
    }
    println!("testguest: vCPU 0 up, bootargs \"{bootargs}\"");
    if firmware_console {
        println!("testguest: sbi-only: console and timer through the SBI; no UART or PLIC is used (their checks are skipped)");
    } else if wants(bootargs, "sbi-only") {
        println!("testguest: sbi-only: this architecture has no firmware console; ignored");
    }
    if let Ok(platform) = &platform {
        for region in platform.memory() {
            println!("memory: {:#x}..{:#x}", region.base, region.end());
        }
    }
    if let Ok(platform) = &platform {
        if let Some(list) = crate::attack::requested(bootargs) {
            crate::attack::run(platform, list);
        }
    }
    if wants(bootargs, "escapes") {
        print_escapes();
    }
    if wants(bootargs, "prompt") {
        prompt();
    }
    if let Some(name) = crate::bench::requested(bootargs) {
        crate::bench::run(&platform, name);
        arch::firmware::system_off()
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
    if wants(bootargs, "spin-masked") {
        println!(
            "testguest: spinning with interrupts masked (only the hypervisor can stop this VM)"
        );
        arch::spin_masked();
    }
    if let Ok(platform) = &platform {
        if wants(bootargs, "fault") {
            read_past_ram(platform);
        }
        if let Some(chan) = checks::ivc::requested(bootargs, "ivc-probe") {
            checks::ivc::probe(chan);
        }
    }
    if wants(bootargs, "reset") && boots == 1 {
        checks::timer::reset_from_handler()
    }
    arch::firmware::system_off()
}

/// Rust entry of a secondary vCPU, with its stack slot (its device-tree position).
pub extern "C" fn secondary_main(slot: usize) -> ! {
    crate::attack::secondary();
    checks::smp::secondary(slot)
}

fn run_checks(platform: &Result<Platform, Why>) {
    report::run("console", || checks::console(platform));
    report::run(arch::BOOT_INFO_CHECK, || checks::dtb(platform));
    let bootargs = platform.as_ref().map(|p| p.bootargs).unwrap_or("");
    // Early, so the two members of a channel run it at about the same time.
    if wants(bootargs, "ivc") {
        report::run("ivc", || checks::ivc::run(usable(platform)?));
    }
    if wants(bootargs, "ivc-bench") {
        report::run("ivc-bench", || checks::ivc::bench(usable(platform)?));
    }
    if let Some(role) = checks::axivc::requested(bootargs) {
        report::run("ivc-axvisor", || {
            checks::axivc::run(usable(platform)?, role)
        });
    }
    if wants(bootargs, "ivc-once") {
        report::run("ivc-once", || checks::ivc::once(usable(platform)?));
    }
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
    if let Some(base) = checks::passthrough::requested(bootargs) {
        report::run("passthrough", || checks::passthrough::run(base));
    }
}

/// The prompt of boot argument `prompt` (no line end after it).
const PROMPT: &str = "testguest: type a line> ";
/// How long `prompt` waits for the line, in milliseconds.
const PROMPT_WAIT_MS: u64 = 60_000;

/// Boot argument `prompt`: prints [`PROMPT`] without a line end and reads a line
/// from the console UART (up to CR or LF, at most 60 s), then prints
/// `testguest: read "<line>"`, or `testguest: no line typed` when none came.
fn prompt() {
    console::print_str(PROMPT);
    let mut line = [0u8; 64];
    let mut len = 0;
    let mut ended = false;
    let got = crate::time::wait_until(PROMPT_WAIT_MS, || {
        while let Some(b) = console::try_getc() {
            match b {
                b'\r' | b'\n' => {
                    ended = true;
                    return true;
                }
                _ if len < line.len() => {
                    line[len] = b;
                    len += 1;
                }
                _ => {}
            }
        }
        false
    });
    console::print_str("\r\n");
    match core::str::from_utf8(&line[..len]) {
        Ok(text) if got && ended => println!("testguest: read \"{text}\""),
        _ => println!("testguest: no line typed"),
    }
}

/// Boot argument `escapes`: a line with colours and one with control sequences a
/// VM must not get onto the console (clear screen, cursor home, a window title, a
/// carriage return to start a forged hypervisor line).
fn print_escapes() {
    println!("testguest: colours: \x1b[1;32mgreen\x1b[0m and \x1b[38;5;208morange\x1b[m");
    println!("testguest: cursor:\x1b[2J\x1b[H\x1b]0;title\x07\rhv: VM 9 (forged) powered off");
}

/// Whether the boot arguments hold `word`: `fault` (read past the end of RAM after
/// the checks), `reset` (reset the VM after the checks of its first boot, from
/// inside a timer interrupt handler, so they run again on the second),
/// `sbi-only` (riscv64: the SBI console and timer only, see [`sbi_only`]), `prompt`
/// and `escapes` (console checks of the scenario `console`), `hold` (wait forever
/// after the summary) and `spin-masked` (spin forever after the summary with every
/// interrupt masked: the hypervisor shell's `vm stop` must still end it).
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
