//! What x86 has instead of firmware calls: the project hypercalls through `vmmcall`
//! (EAX = 0xC600_0000 + n, arguments RBX, RCX, RDX, RSI, results RAX, RBX, RCX, RDX),
//! made only when CPUID 0x4000_0000 carries the hypervisor's signature (bare, a
//! `vmmcall` raises #UD, so the calls say undefined instead); secondary vCPUs started
//! with INIT-SIPI-SIPI through the local APIC; power-off through the ACPI PM1a control
//! register (port 0x604) and reset through port 0xCF9 (then the keyboard controller),
//! as on QEMU q35 and under the hypervisor alike.
//!
//! x86 has no firmware that tracks CPUs, so `cpu_state` reports what the guest saw:
//! off until started, on once the vCPU ran its entry, off once it stopped itself.

use core::arch::asm;

use super::{boot, lapic, port};
use crate::arch::{CallUndefined, CpuState, HvInfo};
use crate::console::println;
use crate::platform::MAX_CPUS;
use crate::shared::Shared;
use crate::why::{why, CheckResult};

/// Name of the firmware check on this architecture.
pub const CHECK_NAME: &str = "apic";

/// This architecture's own checks, run before `memory`.
pub const ARCH_CHECKS: &[crate::arch::ArchCheck] = &[
    ("cpuid", cpuid_check),
    ("console-irq", console_irq_check),
    ("fresh-state", fresh_state),
];

/// What the first boot leaves in the registers `fresh-state` looks at.
const MARK: u64 = 0x5eed_f00d_0000_0001;
/// MXCSR as a CPU comes out of reset (all exceptions masked).
const MXCSR_RESET: u32 = 0x1f80;
/// The mark left in MXCSR: flush-to-zero on.
const MXCSR_MARK: u32 = MXCSR_RESET | 1 << 15;

/// fresh-state: a VM's second boot finds nothing of its first in the registers the
/// world switch leaves in the CPU: the SSE register xmm15 and MXCSR (VMRUN switches
/// neither; SSE is enabled here for the check: this guest is soft-float and never
/// uses it otherwise). Every boot then leaves marks for the next.
fn fresh_state(_: &crate::platform::Platform) -> CheckResult {
    let mut mxcsr: u32 = 0;
    let mark_mxcsr = MXCSR_MARK;
    let xmm15: u64;
    // SAFETY: CR4.OSFXSR on and CR0.EM off only let SSE instructions run; xmm15 and
    // MXCSR are used by nothing else in this guest; the two memory operands are the
    // locals above.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr4",
            "or {t}, 0x200",
            "mov cr4, {t}",
            "mov {t}, cr0",
            "and {t}, ~4",
            "mov cr0, {t}",
            "movq {x}, xmm15",
            "stmxcsr [{out}]",
            "movq xmm15, {m}",
            "ldmxcsr [{mark}]",
            t = out(reg) _,
            x = out(reg) xmm15,
            out = in(reg) &raw mut mxcsr,
            mark = in(reg) &raw const mark_mxcsr,
            m = in(reg) MARK,
            options(nostack)
        )
    };
    if vm_boots().unwrap_or(0) < 2 {
        return Ok(());
    }
    if xmm15 != 0 {
        return Err(why!(
            "xmm15 reads {xmm15:#x} on this boot: state of the previous boot"
        ));
    }
    if mxcsr != MXCSR_RESET {
        return Err(why!(
            "MXCSR reads {mxcsr:#x} on this boot (reset value {MXCSR_RESET:#x}): state of the previous boot"
        ));
    }
    Ok(())
}

/// console-irq: the local APIC set up (see `irq::init`), COM1's interrupt comes
/// through the I/O APIC once (`ioapic`).
fn console_irq_check(platform: &crate::platform::Platform) -> CheckResult {
    super::irq::init(platform)?;
    super::ioapic::init_and_test()
}

/// The hypervisor's CPUID signature (leaf 0x4000_0000 EBX, ECX, EDX).
const SIGNATURE: &[u8; 12] = b"HVRustHVABI1";
const HV_LEAF: u32 = 0x4000_0000;

const HV_INFO: u32 = 0xC600_0000;
const VM_BOOTS: u32 = 0xC600_0001;
const UNKNOWN_FUNCTION: u32 = 0xC600_00FF;

/// The ACPI PM1a control register and its sleep bits (q35's, and every x86 VM's).
const PM1A_CNT: u16 = 0x604;
const SLP_EN: u16 = 1 << 13;
/// The reset control register and "reset CPU" + "full reset".
const RESET_CONTROL: u16 = 0xCF9;
const KBC_COMMAND: u16 = 0x64;

/// Delays of the INIT-SIPI-SIPI sequence (the Intel MP specification's, in µs).
const INIT_DELAY_US: u64 = 10_000;
const SIPI_DELAY_US: u64 = 200;

const STATE_OFF: u64 = 0;
const STATE_PENDING: u64 = 1;
const STATE_ON: u64 = 2;
/// What the guest saw of each vCPU, by APIC id (the boot vCPU is on).
static STATES: [Shared; MAX_CPUS] = {
    let mut states = [const { Shared::new(STATE_OFF) }; MAX_CPUS];
    states[0] = Shared::new(STATE_ON);
    states
};

/// Errors of `cpu_start` (the PSCI codes, for the arch-neutral attacks).
pub const ERR_INVALID_PARAM: i64 = -2;
pub const ERR_ALREADY_ON: i64 = -4;
pub const ERR_ON_PENDING: i64 = -5;
const ERR_NOT_DELIVERED: i64 = -9;

/// The highest hypervisor leaf, if CPUID 0x4000_0000 carries the project's signature
/// (0 if not: bare hardware or another hypervisor).
pub fn hypervisor_max_leaf() -> u32 {
    let [max, b, c, d] = port::cpuid(HV_LEAF, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&b.to_le_bytes());
    sig[4..8].copy_from_slice(&c.to_le_bytes());
    sig[8..].copy_from_slice(&d.to_le_bytes());
    if &sig == SIGNATURE {
        max
    } else {
        0
    }
}

/// Whether this project's hypervisor runs the guest (its CPUID signature).
pub fn under_hypervisor() -> bool {
    hypervisor_max_leaf() != 0
}

/// `vmmcall` with EAX = `number`, RBX, RCX, RDX = `args`; returns RAX, RBX, RCX, RDX.
pub fn vmmcall(number: u32, args: [u64; 3]) -> Result<[u64; 4], CallUndefined> {
    if !under_hypervisor() {
        return Err(CallUndefined);
    }
    let [mut b, mut c, mut d] = args;
    let mut a = u64::from(number);
    // SAFETY: a hypercall: the hypervisor changes only RAX, RBX, RCX, RDX (RBX,
    // reserved by the compiler, is swapped out and back) and no guest memory.
    unsafe {
        asm!("xchg {b}, rbx", "vmmcall", "xchg {b}, rbx",
            b = inout(reg) b, inout("rax") a, inout("rcx") c, inout("rdx") d, in("rsi") 0u64,
            options(nostack))
    };
    Ok([a, b, c, d])
}

/// The project hypercall HV_INFO.
pub fn hv_info() -> Result<HvInfo, CallUndefined> {
    vmmcall(HV_INFO, [0; 3])
}

/// The project hypercall VM_BOOTS: how many times this VM has started.
pub fn vm_boots() -> Result<u64, CallUndefined> {
    Ok(vmmcall(VM_BOOTS, [0; 3])?[1])
}

/// A call that must always be answered (HV_INFO); returns RAX.
pub fn probe() -> Result<u64, CallUndefined> {
    Ok(hv_info()?[0])
}

/// A hypercall number nothing implements; returns RAX.
pub fn unknown_call() -> Result<u64, CallUndefined> {
    Ok(vmmcall(UNKNOWN_FUNCTION, [0; 3])?[0])
}

/// Busy-waits `us` microseconds on the TSC.
fn delay_us(us: u64) {
    let ticks = super::timer::frequency().saturating_mul(us) / 1_000_000;
    let start = port::rdtsc();
    while port::rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Starts the vCPU with APIC id `hw_id` through INIT-SIPI-SIPI, on the stack of
/// `slot`.
pub fn cpu_start(hw_id: u64, slot: u64) -> Result<(), i64> {
    let Some(state) = STATES.get(hw_id as usize) else {
        return Err(ERR_INVALID_PARAM);
    };
    match state.get() {
        STATE_ON => return Err(ERR_ALREADY_ON),
        STATE_PENDING => return Err(ERR_ON_PENDING),
        _ => {}
    }
    if !boot::prepare_secondary(slot) {
        return Err(ERR_INVALID_PARAM);
    }
    state.set(STATE_PENDING);
    let dest = hw_id as u32;
    let mut sent = lapic::send_ipi(dest, lapic::ICR_INIT);
    delay_us(INIT_DELAY_US);
    for _ in 0..2 {
        sent &= lapic::send_ipi(dest, lapic::ICR_STARTUP | u32::from(boot::SIPI_VECTOR));
        delay_us(SIPI_DELAY_US);
    }
    if !sent {
        return Err(ERR_NOT_DELIVERED);
    }
    Ok(())
}

/// What the guest saw of the vCPU with APIC id `hw_id`.
pub fn cpu_state(hw_id: u64) -> CpuState {
    match STATES.get(hw_id as usize).map(Shared::get) {
        Some(STATE_ON) => CpuState::On,
        Some(STATE_PENDING) => CpuState::OnPending,
        Some(_) => CpuState::Off,
        None => CpuState::Error(ERR_INVALID_PARAM),
    }
}

/// From a secondary vCPU's entry: it runs.
pub fn secondary_started() {
    if let Some(state) = STATES.get(super::cpu_hw_id() as usize) {
        state.set(STATE_ON);
    }
}

/// Stops the calling vCPU for good (it says so first: x86 has no CPU_OFF).
pub fn cpu_stop() -> ! {
    if let Some(state) = STATES.get(super::cpu_hw_id() as usize) {
        state.set(STATE_OFF);
    }
    super::halt()
}

/// Powers the VM off (ACPI S5 through PM1a_CNT); if that returns, halts this vCPU.
pub fn system_off() -> ! {
    port::outw(PM1A_CNT, SLP_EN);
    super::halt()
}

/// Resets the VM (port 0xCF9, then the keyboard controller); if that returns, halts.
pub fn system_reset() -> ! {
    port::outb(RESET_CONTROL, 0x02);
    port::outb(RESET_CONTROL, 0x06);
    port::outb(KBC_COMMAND, 0xFE);
    super::halt()
}

/// apic: IA32_APIC_BASE holds the xAPIC window 0xFEE0_0000, enabled, with the BSP bit
/// on the boot vCPU; the ID register holds the APIC id CPUID reports; the version
/// register names an integrated APIC with at least the timer, LINT0, LINT1 and error
/// entries.
pub fn check() -> CheckResult {
    let base = port::rdmsr(0x1B);
    let want = lapic::BASE as u64 | 1 << 11 | 1 << 8;
    if base & !0xff != want {
        return Err(why!(
            "IA32_APIC_BASE of the boot vCPU is {base:#x}, expected {want:#x} (xAPIC, enabled, BSP)"
        ));
    }
    let (id, cpuid_id) = (lapic::id(), super::cpu_hw_id());
    if u64::from(id) != cpuid_id {
        return Err(why!(
            "APIC ID register says {id}, CPUID leaf 1 says {cpuid_id}"
        ));
    }
    let version = lapic::read(lapic::VERSION);
    let (ver, max_lvt) = (version & 0xff, (version >> 16) & 0xff);
    if !(0x10..=0x1f).contains(&ver) || max_lvt < 3 {
        return Err(why!(
            "APIC version register {version:#x}: not an integrated APIC with 4 LVT entries"
        ));
    }
    println!(
        "testguest: local APIC id {id}, version {ver:#x}, {} LVT entries, timer at {} Hz, TSC at {} Hz ({})",
        max_lvt + 1,
        super::timer::lapic_frequency(),
        super::timer::frequency(),
        super::timer::source()
    );
    Ok(())
}

/// cpuid: says whether the guest runs under this project's hypervisor (its signature
/// at CPUID 0x4000_0000) or bare; under it, the hypervisor-present bit is set and
/// SVM and VMX are hidden.
fn cpuid_check(_: &crate::platform::Platform) -> CheckResult {
    let max = hypervisor_max_leaf();
    if max == 0 {
        println!("testguest: cpuid: no hypervisor signature at 0x40000000: running bare (hypercalls skipped)");
        return Ok(());
    }
    println!("testguest: cpuid: hypervisor \"HVRustHVABI1\", leaves up to {max:#x}");
    let [_, _, ecx1, _] = port::cpuid(1, 0);
    if ecx1 & 1 << 31 == 0 {
        return Err(why!("CPUID 1 ECX {ecx1:#x}: hypervisor-present bit clear"));
    }
    if ecx1 & 1 << 5 != 0 {
        return Err(why!("CPUID 1 ECX {ecx1:#x}: VMX shown"));
    }
    let [_, _, ecx, _] = port::cpuid(0x8000_0001, 0);
    if ecx & 1 << 2 != 0 {
        return Err(why!("CPUID 0x80000001 ECX {ecx:#x}: SVM shown"));
    }
    Ok(())
}

/// An AxVisor hypercall (`ivc-axvisor`): `vmmcall` with EAX = `code` (AxVisor's
/// small numbers, which the hypervisor tells from the project's 0xC600_0000 + n),
/// RBX, RCX, RDX, RSI = `args`; its answer is RAX alone (0 done, -1 refused). Bare
/// (no hypervisor signature) the call is answered as refused without being made.
pub fn axvisor_call(code: u64, args: [u64; 4]) -> i64 {
    if !under_hypervisor() {
        return -1;
    }
    let [mut b, c, d, si] = args;
    let mut a = code;
    // SAFETY: a hypercall: the hypervisor answers in RAX and may write guest memory
    // the arguments point at (the asm is not `nomem`); RBX, reserved by the
    // compiler, is swapped out and back.
    unsafe {
        asm!("xchg {b}, rbx", "vmmcall", "xchg {b}, rbx",
            b = inout(reg) b, inout("rax") a, inout("rcx") c => _, inout("rdx") d => _,
            inout("rsi") si => _, options(nostack))
    };
    let _ = b;
    a as i64
}
