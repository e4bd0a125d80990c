//! x86_64's part of the attack mode (see `crate::attack`): the constants the
//! arch-neutral kinds use, and x86's own kinds: MSRs nothing implements (the
//! hypervisor must answer with #GP, which the guest catches), a CPUID sweep over the
//! standard, hypervisor and extended ranges (SVM stays hidden), a sweep of the 256
//! project hypercall numbers, and an INIT storm on the second vCPU before it is
//! started as usual.

use core::arch::asm;

use super::{firmware, lapic, port};
use crate::arch::CpuState;
use crate::attack::{catch, Kind, Outcome};
use crate::platform::Platform;
use crate::shared::Shared;
use crate::time;
use crate::why::why;

/// An address where the VM has neither RAM nor a device (below 4 GiB: mapped by the
/// guest's page tables).
pub const UNMAPPED: usize = 0xD000_0000;
/// An APIC id no VM of the guest has.
pub const BAD_CPU_ID: u64 = 0xff;
pub use super::firmware::{ERR_ALREADY_ON, ERR_INVALID_PARAM, ERR_ON_PENDING};

/// x86's own kinds.
pub const KINDS: &[Kind] = &[
    ("msr-unknown-read", msr_unknown_read),
    ("msr-unknown-write", msr_unknown_write),
    ("cpuid-sweep", cpuid_sweep),
    ("vmmcall-sweep", vmmcall_sweep),
    ("init-storm", init_storm),
];

/// Bytes to step over when [`catch`] takes an exception (the length of the one
/// instruction the caught closure runs).
static SKIP: Shared = Shared::new(0);

/// From the exception handler: the bytes to step over for a caught exception.
pub fn skip_len() -> u64 {
    SKIP.get()
}

/// [`catch`] for a closure whose one faulting instruction is `len` bytes long;
/// returns the vector of the exception it raised.
fn catch_insn(len: u64, f: impl FnOnce()) -> Option<u64> {
    SKIP.set(len);
    catch(f).map(|syndrome| syndrome & 0xff)
}

/// An MSR index no CPU and no hypervisor implements.
const NO_SUCH_MSR: u32 = 0xC0DE_0000;
/// #GP.
const GP: u64 = 13;

fn expect_gp(what: &str, vector: Option<u64>) -> Outcome {
    match vector {
        Some(GP) => Ok(why!("{what} raised #GP")),
        Some(v) => Err(why!("{what} raised vector {v}, not #GP")),
        None => Err(why!("{what} was answered, not refused with #GP")),
    }
}

fn msr_unknown_read(_: &Platform) -> Outcome {
    let vector = catch_insn(2, || {
        // SAFETY: rdmsr of an MSR nothing implements: #GP, caught and stepped over.
        unsafe {
            asm!("rdmsr", in("ecx") NO_SUCH_MSR, out("eax") _, out("edx") _, options(nostack))
        };
    });
    expect_gp(why!("rdmsr {NO_SUCH_MSR:#x}").as_str(), vector)
}

fn msr_unknown_write(_: &Platform) -> Outcome {
    let vector = catch_insn(2, || {
        // SAFETY: wrmsr of an MSR nothing implements: #GP, caught and stepped over.
        unsafe {
            asm!("wrmsr", in("ecx") NO_SUCH_MSR, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack))
        };
    });
    expect_gp(why!("wrmsr {NO_SUCH_MSR:#x}").as_str(), vector)
}

fn cpuid_sweep(_: &Platform) -> Outcome {
    let ranges = [
        (0u32, 0x24u32),
        (0x4000_0000, 0x4000_0020),
        (0x8000_0000, 0x8000_0030),
        (0xC000_0000, 0xC000_0004),
        (0xFFFF_FFF0, 0xFFFF_FFFF),
    ];
    let mut leaves = 0;
    for (first, last) in ranges {
        for leaf in first..=last {
            for sub in [0, 1, 2, 7, 0xFFFF_FFFF] {
                core::hint::black_box(port::cpuid(leaf, sub));
                leaves += 1;
            }
        }
    }
    if firmware::under_hypervisor() {
        let [_, _, ecx, _] = port::cpuid(0x8000_0001, 0);
        if ecx & 1 << 2 != 0 {
            return Err(why!("after the sweep CPUID 0x80000001 shows SVM"));
        }
        let svm = port::cpuid(0x8000_000A, 0);
        if svm != [0; 4] {
            return Err(why!("CPUID 0x8000000a (SVM features) reads {svm:x?}"));
        }
    }
    Ok(why!(
        "{leaves} CPUID leaf/subleaf pairs answered; SVM hidden"
    ))
}

fn vmmcall_sweep(_: &Platform) -> Outcome {
    if !firmware::under_hypervisor() {
        return Err(why!("no hypervisor signature: vmmcall would raise #UD"));
    }
    let mut not_supported = 0;
    for n in 0..0x100u32 {
        let answer = firmware::vmmcall(0xC600_0000 + n, [u64::MAX; 3])
            .map_err(|_| why!("hypercall {n:#x} undefined"))?;
        not_supported += u64::from(answer[0] == u64::MAX);
    }
    firmware::probe().map_err(|_| why!("calls stopped working after the sweep"))?;
    Ok(why!(
        "256 hypercalls answered, {not_supported} of them NOT_SUPPORTED"
    ))
}

/// INITs sent to the second vCPU and to an APIC id nobody has.
const INITS: u32 = 1000;
const NOBODY: u32 = 0x7E;

fn init_storm(platform: &Platform) -> Outcome {
    let cpu = *platform
        .cpus()
        .get(1)
        .ok_or_else(|| why!("needs a VM with 2 vCPUs"))?;
    lapic::enable();
    for _ in 0..INITS {
        for dest in [cpu as u32, NOBODY] {
            if !lapic::send_ipi(dest, lapic::ICR_INIT) {
                return Err(why!("an INIT to APIC id {dest} stayed pending"));
            }
        }
    }
    firmware::cpu_start(cpu, 1).map_err(|e| why!("start of vCPU {cpu} after the storm: {e}"))?;
    let mut state = CpuState::OnPending;
    if !time::wait_until(10_000, || {
        state = firmware::cpu_state(cpu);
        state == CpuState::Off
    }) {
        return Err(why!(
            "vCPU {cpu} did not run and stop after the storm (state {state:?})"
        ));
    }
    Ok(why!(
        "{INITS} INITs each to vCPU {cpu} and APIC id {NOBODY:#x}; vCPU {cpu} then started, ran and stopped"
    ))
}

/// Runs `f` on the stack whose top is `top`.
pub fn on_stack(top: usize, f: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is in the guest's RAM; `f` never returns, so nothing of the old
    // stack is needed again.
    unsafe { asm!("mov rsp, {t}", "jmp {f}", t = in(reg) top, f = in(reg) f, options(noreturn)) }
}
