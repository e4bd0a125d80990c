//! x86_64's part of the attack mode (see `crate::attack`): the constants the
//! arch-neutral kinds use, and x86's own kinds (`cargo xtask test --attacks` lists
//! each with its outcome):
//!
//! - MSRs: unknown ones, EFER.SVME, the host's SVM MSRs, x2APIC MSRs in xAPIC mode
//!   and misused in x2APIC mode, SYSCFG, the TSC, a sweep of three ranges, NB_CFG.
//! - Instructions: every SVM instruction, RDTSCP/RDPID, MONITOR/MWAIT, XSETBV,
//!   INVD, `int3` and `ud2` loops, control and debug registers, a triple fault, an
//!   IDT outside the VM.
//! - MMIO the decoder does not take (string, locked, exchanging, SSE, stack and
//!   arithmetic forms), wrong widths and alignments, and the prefixed forms it does
//!   take (address size, segment override).
//! - Ports: unknown ones, string I/O, COM1 read 4 bytes wide, PCI configuration,
//!   the PM timer, 0xCF9 and the keyboard controller.
//! - Interrupts: self-IPI and NMI storms, IPIs to nobody, INIT and SIPIs to a
//!   running vCPU, the local APIC timer periodic (also at 1 tick) and in TSC-deadline
//!   mode, I/O APIC entries with illegal vectors or absent destinations.
//! - Hypercalls: a sweep of the project's numbers, AxVisor's IVC calls with bad
//!   pointers.
//!
//! An exception a kind provokes is caught (`crate::attack::catch`): the trap
//! handler resumes at the label after the instruction ([`take_resume`]).

use core::arch::asm;

use super::{firmware, ioapic, lapic, port};
use crate::arch::CpuState;
use crate::attack::{catch, not_stopped, Kind, Outcome};
use crate::platform::Platform;
use crate::shared::Shared;
use crate::time;
use crate::why::{why, Why};

/// An address where the VM has neither RAM nor a device (below 4 GiB: mapped by the
/// guest's page tables).
pub const UNMAPPED: usize = 0xD000_0000;
/// An APIC id no VM of the guest has.
pub const BAD_CPU_ID: u64 = 0xff;
pub use super::firmware::{ERR_ALREADY_ON, ERR_INVALID_PARAM, ERR_ON_PENDING};

/// x86's own kinds.
pub const KINDS: &[Kind] = &[
    // MSRs
    ("msr-unknown-read", msr_unknown_read),
    ("msr-unknown-write", msr_unknown_write),
    ("msr-efer-svme", msr_efer_svme),
    ("msr-vm-hsave", msr_vm_hsave),
    ("msr-vm-cr-write", msr_vm_cr_write),
    ("msr-syscfg-write", msr_syscfg_write),
    ("msr-nb-cfg", msr_nb_cfg),
    ("msr-tsc-write", msr_tsc_write),
    ("msr-x2apic-in-xapic", msr_x2apic_in_xapic),
    ("x2apic-icr-reserved", x2apic_icr_reserved),
    ("x2apic-eoi-read", x2apic_eoi_read),
    ("msr-sweep", msr_sweep),
    ("cpuid-sweep", cpuid_sweep),
    // instructions
    ("svm-vmrun", svm_vmrun),
    ("svm-vmload", svm_vmload),
    ("svm-vmsave", svm_vmsave),
    ("svm-stgi", svm_stgi),
    ("svm-clgi", svm_clgi),
    ("svm-skinit", svm_skinit),
    ("svm-invlpga", svm_invlpga),
    ("xsetbv", xsetbv),
    ("monitor", monitor),
    ("mwait", mwait),
    ("rdtscp", rdtscp),
    ("rdpid", rdpid),
    ("invd", invd),
    ("int3-loop", int3_loop),
    ("ud2-loop", ud2_loop),
    ("cr0-cd", cr0_cd),
    ("cr4-reserved", cr4_reserved),
    ("dr-access", dr_access),
    ("triple-fault", triple_fault),
    ("idt-unmapped", idt_unmapped),
    // MMIO
    ("lapic-width-8", lapic_width_8),
    ("ioapic-width-2", ioapic_width_2),
    ("lapic-unaligned", lapic_unaligned),
    ("mmio-page-cross", mmio_page_cross),
    ("mmio-movs", mmio_movs),
    ("mmio-stos", mmio_stos),
    ("mmio-cmpxchg", mmio_cmpxchg),
    ("mmio-xadd", mmio_xadd),
    ("mmio-xchg", mmio_xchg),
    ("mmio-sse", mmio_sse),
    ("mmio-push", mmio_push),
    ("mmio-add", mmio_add),
    ("mmio-addr32", mmio_addr32),
    ("mmio-fs-override", mmio_fs_override),
    // ports
    ("port-unknown-read", port_unknown_read),
    ("port-unknown-write", port_unknown_write),
    ("port-outs", port_outs),
    ("port-ins", port_ins),
    ("com1-width-4", com1_width_4),
    ("pci-config", pci_config),
    ("pm-timer-write", pm_timer_write),
    ("cf9-odd", cf9_odd),
    ("kbc-odd", kbc_odd),
    // interrupts and vCPUs
    ("self-ipi-storm", self_ipi_storm),
    ("ipi-bad-dest", ipi_bad_dest),
    ("nmi-ipi", nmi_ipi),
    ("init-self", init_self),
    ("sipi-storm", sipi_storm),
    ("init-storm", init_storm),
    ("lapic-timer-periodic", lapic_timer_periodic),
    ("lapic-timer-1tick", lapic_timer_1tick),
    ("tsc-deadline-past", tsc_deadline_past),
    ("ioapic-low-vector", ioapic_low_vector),
    ("ioapic-bad-dest", ioapic_bad_dest),
    // hypercalls
    ("vmmcall-sweep", vmmcall_sweep),
    ("ivc-bad-pointers", ivc_bad_pointers),
];

/// Where a caught exception resumes; set by the instruction sequences of [`trap!`]
/// (every x86 kind that catches uses them).
static RESUME: Shared = Shared::new(0);

/// From the exception handler: where to resume after a caught exception at `rip`
/// (at `rip` again if no label was set, which no caller does).
pub fn take_resume(rip: u64) -> u64 {
    let r = RESUME.get();
    RESUME.set(0);
    if r != 0 {
        r
    } else {
        rip
    }
}

/// Runs the instructions (asm template lines, then operands) so that an exception
/// they raise resumes after them; the vector it raised, if any.
macro_rules! trap {
    ($($insn:literal),+ ; $($ops:tt)*) => {
        catch_vector(|| {
            // SAFETY: each caller's SAFETY line says why its instructions are harmless;
            // the prologue stores the resume label's address in RESUME.
            unsafe {
                asm!(
                    "lea {resume_r}, [rip + 77f]",
                    "mov qword ptr [{resume_p}], {resume_r}",
                    $($insn,)+
                    "77:",
                    resume_r = out(reg) _,
                    resume_p = in(reg) RESUME.as_ptr(),
                    $($ops)*
                )
            }
        })
    };
}

/// [`catch`] giving the vector of the exception.
fn catch_vector(f: impl FnOnce()) -> Option<u64> {
    let v = catch(f).map(|syndrome| syndrome & 0xff);
    RESUME.set(0);
    v
}

/// An MSR index no CPU and no hypervisor implements.
const NO_SUCH_MSR: u32 = 0xC0DE_0000;
/// #UD, #GP.
const UD: u64 = 6;
const GP: u64 = 13;

fn expect(vector: u64, name: &str, what: &str, got: Option<u64>) -> Outcome {
    match got {
        Some(v) if v == vector => Ok(why!("{what} raised {name}")),
        Some(v) => Err(why!("{what} raised vector {v}, not {name}")),
        None => Err(why!("{what} completed, expected {name}")),
    }
}

fn expect_gp(what: &str, got: Option<u64>) -> Outcome {
    expect(GP, "#GP", what, got)
}

fn expect_ud(what: &str, got: Option<u64>) -> Outcome {
    expect(UD, "#UD", what, got)
}

/// RDMSR that may fault: the value or the vector.
fn rdmsr(msr: u32) -> Result<u64, u64> {
    let (mut lo, mut hi) = (0u32, 0u32);
    // SAFETY: RDMSR only reads; a #GP is caught.
    let v = trap!("rdmsr"; in("ecx") msr, inout("eax") lo, inout("edx") hi);
    match v {
        Some(v) => Err(v),
        None => Ok(u64::from(hi) << 32 | u64::from(lo)),
    }
}

/// WRMSR that may fault: the vector if it did.
fn wrmsr(msr: u32, value: u64) -> Option<u64> {
    // SAFETY: the callers write MSRs that are the guest's own (or refused).
    trap!("wrmsr"; in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32)
}

fn msr_unknown_read(_: &Platform) -> Outcome {
    expect_gp(
        why!("rdmsr {NO_SUCH_MSR:#x}").as_str(),
        rdmsr(NO_SUCH_MSR).err(),
    )
}

fn msr_unknown_write(_: &Platform) -> Outcome {
    expect_gp(
        why!("wrmsr {NO_SUCH_MSR:#x}").as_str(),
        wrmsr(NO_SUCH_MSR, u64::MAX),
    )
}

const EFER: u32 = 0xC000_0080;
const EFER_SVME: u64 = 1 << 12;

fn msr_efer_svme(_: &Platform) -> Outcome {
    let efer = rdmsr(EFER).map_err(|v| why!("rdmsr EFER raised {v}"))?;
    if efer & EFER_SVME != 0 {
        return Err(why!("EFER reads {efer:#x}: SVME shown"));
    }
    expect_gp("wrmsr EFER with SVME", wrmsr(EFER, efer | EFER_SVME))?;
    let after = rdmsr(EFER).map_err(|v| why!("rdmsr EFER raised {v}"))?;
    if after != efer {
        return Err(why!("EFER {efer:#x} became {after:#x}"));
    }
    Ok(why!(
        "EFER {efer:#x} | SVME refused with #GP, EFER unchanged"
    ))
}

fn msr_vm_hsave(_: &Platform) -> Outcome {
    const VM_HSAVE_PA: u32 = 0xC001_0117;
    expect_gp("rdmsr VM_HSAVE_PA", rdmsr(VM_HSAVE_PA).err())?;
    expect_gp("wrmsr VM_HSAVE_PA", wrmsr(VM_HSAVE_PA, 0x10_0000))?;
    Ok(why!("VM_HSAVE_PA read and write raised #GP"))
}

fn msr_vm_cr_write(_: &Platform) -> Outcome {
    const VM_CR: u32 = 0xC001_0114;
    let v = rdmsr(VM_CR).map_err(|v| why!("rdmsr VM_CR raised {v}"))?;
    if v & 0x18 != 0x18 {
        return Err(why!("VM_CR reads {v:#x}: SVM not disabled and locked"));
    }
    expect_gp("wrmsr VM_CR 0 (enable SVM)", wrmsr(VM_CR, 0))?;
    Ok(why!(
        "VM_CR reads {v:#x} (SVMDIS, LOCK); writing 0 raised #GP"
    ))
}

fn msr_syscfg_write(_: &Platform) -> Outcome {
    const SYSCFG: u32 = 0xC001_0010;
    let v = rdmsr(SYSCFG).map_err(|v| why!("rdmsr SYSCFG raised {v}"))?;
    // MtrrFixDramModEn, MtrrVarDramEn, the memory-encryption enable.
    expect_gp(
        "wrmsr SYSCFG with MtrrVarDramEn | SMEE",
        wrmsr(SYSCFG, 1 << 20 | 1 << 23),
    )?;
    Ok(why!("SYSCFG reads {v:#x}; a write of set bits raised #GP"))
}

fn msr_nb_cfg(_: &Platform) -> Outcome {
    // Decided: #GP. The VM has no northbridge; Linux reads NB_CFG with rdmsr_safe
    // (only on families before 0x17) and takes the fault as "not there".
    expect_gp("rdmsr NB_CFG (0xc001001f)", rdmsr(0xC001_001F).err())
}

fn msr_tsc_write(_: &Platform) -> Outcome {
    const TSC: u32 = 0x10;
    const SET: u64 = 1 << 44;
    let before = port::rdtsc();
    if let Some(v) = wrmsr(TSC, SET) {
        return Err(why!("wrmsr TSC raised {v}"));
    }
    let now = port::rdtsc();
    // Back to where it was (plus a little), so later deadlines stay sane.
    let _ = wrmsr(TSC, before + 1000);
    let hz = super::timer::frequency().max(1);
    if now < SET || now - SET > 10 * hz {
        return Err(why!("after wrmsr TSC {SET:#x} the TSC reads {now:#x}"));
    }
    Ok(why!(
        "TSC written {SET:#x}, read {now:#x} right after, then set back"
    ))
}

const APIC_BASE: u32 = 0x1B;
const BASE_EN: u64 = 1 << 11;
const BASE_EXTD: u64 = 1 << 10;

fn msr_x2apic_in_xapic(_: &Platform) -> Outcome {
    expect_gp("rdmsr x2APIC ID (0x802) in xAPIC mode", rdmsr(0x802).err())?;
    expect_gp(
        "wrmsr x2APIC ICR (0x830) in xAPIC mode",
        wrmsr(0x830, 0x4_0040),
    )?;
    Ok(why!("x2APIC MSRs in xAPIC mode raised #GP"))
}

/// Runs `f` with the local APIC in x2APIC mode, then goes back to xAPIC mode (through
/// disabled, as the architecture wants) and sets the local APIC up again.
fn in_x2apic(f: impl FnOnce() -> Outcome) -> Outcome {
    let base = rdmsr(APIC_BASE).map_err(|v| why!("rdmsr APIC_BASE raised {v}"))?;
    if let Some(v) = wrmsr(APIC_BASE, base | BASE_EN | BASE_EXTD) {
        return Err(why!("enabling x2APIC raised {v}"));
    }
    let r = f();
    let back_refused = wrmsr(APIC_BASE, base & !BASE_EXTD);
    let off = wrmsr(APIC_BASE, base & !(BASE_EN | BASE_EXTD));
    let on = wrmsr(APIC_BASE, base);
    lapic::enable();
    if back_refused != Some(GP) || off.is_some() || on.is_some() {
        return Err(why!(
            "x2APIC to xAPIC directly: {back_refused:?} (expected #GP); disable {off:?}, enable {on:?}"
        ));
    }
    r
}

fn x2apic_icr_reserved(_: &Platform) -> Outcome {
    in_x2apic(|| {
        // Fixed IPI to itself with reserved bits 12 (delivery status) and 20-31 set.
        let id = rdmsr(0x802).map_err(|v| why!("rdmsr x2APIC ID raised {v}"))?;
        expect_gp(
            "wrmsr x2APIC ICR with reserved bits",
            wrmsr(0x830, id << 32 | 0xfff0_1040),
        )?;
        Ok(why!(
            "x2APIC ICR with reserved bits raised #GP; back to xAPIC"
        ))
    })
}

fn x2apic_eoi_read(_: &Platform) -> Outcome {
    in_x2apic(|| {
        expect_gp("rdmsr x2APIC EOI (write-only)", rdmsr(0x80B).err())?;
        expect_gp("wrmsr x2APIC EOI of 1", wrmsr(0x80B, 1))?;
        Ok(why!(
            "x2APIC EOI read and a non-zero EOI raised #GP; back to xAPIC"
        ))
    })
}

fn msr_sweep(_: &Platform) -> Outcome {
    let ranges = [
        (0u32, 0x2000u32),
        (0xC000_0000, 0xC000_2000),
        (0xC001_0000, 0xC001_2000),
    ];
    let (mut read, mut refused) = (0u32, 0u32);
    for (first, end) in ranges {
        for msr in first..end {
            match rdmsr(msr) {
                Ok(_) => read += 1,
                Err(GP) => refused += 1,
                Err(v) => return Err(why!("rdmsr {msr:#x} raised vector {v}")),
            }
        }
    }
    if read == 0 {
        return Err(why!("no MSR answered (EFER at least must)"));
    }
    Ok(why!(
        "{} MSRs read: {read} answered, {refused} #GP",
        read + refused
    ))
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

/// Where the SVM instructions point (RAX): the start of the VM's RAM.
const SOME_RAM: u64 = 0x1000;

fn svm_vmrun(_: &Platform) -> Outcome {
    // SAFETY: VMRUN with SVM hidden: #UD, caught.
    expect_ud("vmrun", trap!("vmrun"; in("rax") SOME_RAM))
}

fn svm_vmload(_: &Platform) -> Outcome {
    // SAFETY: as in `svm_vmrun`.
    expect_ud("vmload", trap!("vmload"; in("rax") SOME_RAM))
}

fn svm_vmsave(_: &Platform) -> Outcome {
    // SAFETY: as in `svm_vmrun`.
    expect_ud("vmsave", trap!("vmsave"; in("rax") SOME_RAM))
}

fn svm_stgi(_: &Platform) -> Outcome {
    // SAFETY: as in `svm_vmrun`.
    expect_ud("stgi", trap!("stgi";))
}

fn svm_clgi(_: &Platform) -> Outcome {
    // SAFETY: as in `svm_vmrun`; CLGI would block the host's interrupts.
    expect_ud("clgi", trap!("clgi";))
}

fn svm_skinit(_: &Platform) -> Outcome {
    // SAFETY: as in `svm_vmrun`.
    expect_ud("skinit", trap!("skinit"; in("eax") SOME_RAM as u32))
}

fn svm_invlpga(_: &Platform) -> Outcome {
    // SAFETY: INVLPGA of ASID 1 (another VM's): #UD, caught.
    expect_ud(
        "invlpga (ASID 1)",
        trap!("invlpga rax, ecx"; in("rax") SOME_RAM, in("ecx") 1u32),
    )
}

fn xsetbv(_: &Platform) -> Outcome {
    // SAFETY: XSETBV with XSAVE hidden: #UD, caught.
    expect_ud(
        "xsetbv XCR0 = x87|SSE|AVX",
        trap!("xsetbv"; in("ecx") 0u32, in("eax") 7u32, in("edx") 0u32),
    )
}

fn monitor(_: &Platform) -> Outcome {
    // SAFETY: MONITOR hidden: #UD, caught.
    expect_ud(
        "monitor",
        trap!("monitor"; in("rax") SOME_RAM, in("ecx") 0u32, in("edx") 0u32),
    )
}

fn mwait(_: &Platform) -> Outcome {
    // SAFETY: MWAIT hidden: #UD, caught.
    expect_ud("mwait", trap!("mwait"; in("eax") 0u32, in("ecx") 0u32))
}

const TSC_AUX: u32 = 0xC000_0103;

fn rdtscp(_: &Platform) -> Outcome {
    const AUX: u64 = 0x5a5;
    if let Some(v) = wrmsr(TSC_AUX, AUX) {
        return Err(why!("wrmsr TSC_AUX raised {v}"));
    }
    let (mut lo, mut hi, mut aux) = (0u32, 0u32, 0u32);
    // SAFETY: RDTSCP only reads; a #UD is caught.
    let v = trap!("rdtscp"; inout("eax") lo, inout("edx") hi, inout("ecx") aux);
    if let Some(v) = v {
        return Err(why!("rdtscp raised {v} (CPUID shows it)"));
    }
    let tsc = u64::from(hi) << 32 | u64::from(lo);
    let now = port::rdtsc();
    if u64::from(aux) != AUX || tsc > now {
        return Err(why!(
            "rdtscp: TSC {tsc:#x} (now {now:#x}), TSC_AUX {aux:#x}, expected {AUX:#x}"
        ));
    }
    Ok(why!(
        "rdtscp gave the TSC and the TSC_AUX written ({AUX:#x})"
    ))
}

fn rdpid(_: &Platform) -> Outcome {
    const AUX: u64 = 0x3c3;
    let shown = port::cpuid(7, 0)[2] & 1 << 22 != 0;
    if let Some(v) = wrmsr(TSC_AUX, AUX) {
        return Err(why!("wrmsr TSC_AUX raised {v}"));
    }
    let mut got = 0u64;
    // SAFETY: RDPID only reads; a #UD is caught.
    let v = trap!("rdpid {v}"; v = inout(reg) got);
    match (shown, v) {
        (false, Some(UD)) => Ok(why!("rdpid (not in CPUID) raised #UD")),
        (true, None) if got == AUX => Ok(why!("rdpid gave the TSC_AUX written")),
        _ => Err(why!(
            "rdpid (CPUID says {shown}): vector {v:?}, value {got:#x}"
        )),
    }
}

fn invd(_: &Platform) -> Outcome {
    let cell = Shared::new(0);
    cell.set(0x1d1d);
    // SAFETY: INVD: done as WBINVD by the hypervisor (nothing is lost).
    let v = trap!("invd";);
    if v.is_some() || cell.get() != 0x1d1d {
        return Err(why!(
            "invd: vector {v:?}, a written word reads {:#x}",
            cell.get()
        ));
    }
    // SAFETY: WBINVD writes caches back; harmless.
    let w = trap!("wbinvd";);
    if w.is_some() {
        return Err(why!("wbinvd raised {w:?}"));
    }
    Ok(why!("invd and wbinvd completed, memory kept"))
}

fn int3_loop(_: &Platform) -> Outcome {
    for i in 0..1000 {
        // SAFETY: #BP, caught (a trap: RIP is already past it).
        let v = trap!("int3";);
        if v != Some(3) {
            return Err(why!("int3 number {i} gave {v:?}, not #BP"));
        }
    }
    Ok(why!("1000 int3: each #BP taken"))
}

fn ud2_loop(_: &Platform) -> Outcome {
    for i in 0..10_000 {
        // SAFETY: #UD, caught.
        let v = trap!("ud2";);
        if v != Some(UD) {
            return Err(why!("ud2 number {i} gave {v:?}, not #UD"));
        }
    }
    Ok(why!("10,000 ud2: each #UD taken"))
}

fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

fn cr0_cd(_: &Platform) -> Outcome {
    const CD: u64 = 1 << 30;
    let cr0 = read_cr0();
    // SAFETY: caches off, then on again; only this VM's speed changes.
    let v = trap!("mov cr0, {v}"; v = in(reg) cr0 | CD);
    let with_cd = read_cr0();
    // SAFETY: as above.
    let back = trap!("mov cr0, {v}"; v = in(reg) cr0);
    if v.is_some() || back.is_some() || with_cd & CD == 0 || read_cr0() != cr0 {
        return Err(why!(
            "CR0.CD: {v:?}/{back:?}, read {with_cd:#x}, now {:#x}",
            read_cr0()
        ));
    }
    // Not tried: NW without CD, which must raise #GP; QEMU's CPU takes it, and the
    // next VMRUN then refuses the guest state (the VM is stopped, no one else).
    Ok(why!("CR0.CD set and read back, cleared"))
}

fn cr4_reserved(_: &Platform) -> Outcome {
    let cr4 = read_cr4();
    // SAFETY: VMXE, reserved on an AMD CPU: #GP, caught (or, where the CPU takes
    // it, the hypervisor stops the VM).
    expect_gp("CR4.VMXE", trap!("mov cr4, {v}"; v = in(reg) cr4 | 1 << 13))?;
    // SAFETY: a reserved bit: as above.
    expect_gp(
        "CR4 bit 40 (reserved)",
        trap!("mov cr4, {v}"; v = in(reg) cr4 | 1 << 40),
    )
}

fn dr_access(_: &Platform) -> Outcome {
    let (a, b) = (0xdead_0000u64, 0xbeef_0000u64);
    let (mut ra, mut rb, mut r7) = (0u64, 0u64, 0u64);
    // SAFETY: debug registers of the guest: a breakpoint on an address nothing
    // executes (DR7.L0, execute), read back, then disabled.
    let v = trap!(
        "mov dr0, {a}", "mov dr3, {b}", "mov dr7, {c}",
        "mov {ra}, dr0", "mov {rb}, dr3", "mov {r7}, dr7",
        "mov {z}, 0x400", "mov dr7, {z}";
        a = in(reg) a, b = in(reg) b, c = in(reg) 0x401u64,
        ra = inout(reg) ra, rb = inout(reg) rb, r7 = inout(reg) r7, z = out(reg) _
    );
    if v.is_some() || ra != a || rb != b || r7 & 0x1 == 0 {
        return Err(why!(
            "DR0/DR3/DR7: vector {v:?}, read {ra:#x} {rb:#x} {r7:#x}"
        ));
    }
    Ok(why!("DR0, DR3 and DR7 written and read back; DR7 cleared"))
}

#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

fn triple_fault(_: &Platform) -> Outcome {
    let empty = TablePointer { limit: 0, base: 0 };
    // SAFETY: an empty IDT, then a breakpoint: #GP, #DF, shutdown: the hypervisor
    // stops the VM.
    unsafe { asm!("lidt [{}]", "int3", in(reg) &empty, options(nostack)) };
    not_stopped("int3 with an empty IDT")
}

fn idt_unmapped(_: &Platform) -> Outcome {
    let idt = TablePointer {
        limit: 0xfff,
        base: UNMAPPED as u64,
    };
    // SAFETY: an IDT outside the VM, then a breakpoint: the CPU's read of the gate
    // faults in the nested tables; the hypervisor stops the VM.
    unsafe { asm!("lidt [{}]", "int3", in(reg) &idt, options(nostack)) };
    not_stopped("int3 with the IDT outside the VM")
}

const LAPIC: usize = lapic::BASE;
const IOAPIC: usize = 0xFEC0_0000;

fn lapic_width_8(_: &Platform) -> Outcome {
    // SAFETY: an 8-byte read of the version register; the hypervisor stops the VM.
    let v = unsafe { crate::mmio::read64(LAPIC + 0x30) };
    not_stopped(why!("an 8-byte read of the xAPIC page ({v:#x})").as_str())
}

fn ioapic_width_2(_: &Platform) -> Outcome {
    let v: u16;
    // SAFETY: a 2-byte read of IOWIN; the hypervisor stops the VM.
    unsafe {
        asm!("mov {v:x}, word ptr [{p}]", p = in(reg) IOAPIC + 0x10, v = out(reg) v,
            options(nostack, readonly))
    };
    not_stopped(why!("a 2-byte read of IOWIN ({v:#x})").as_str())
}

fn lapic_unaligned(_: &Platform) -> Outcome {
    // SAFETY: a 4-byte read at offset 0x22; the hypervisor stops the VM.
    let v = unsafe { crate::mmio::read32(LAPIC + 0x22) };
    not_stopped(why!("an unaligned read of the xAPIC page ({v:#x})").as_str())
}

fn mmio_page_cross(_: &Platform) -> Outcome {
    // SAFETY: a 4-byte read over the end of the xAPIC page; the hypervisor stops
    // the VM.
    let v = unsafe { crate::mmio::read32(LAPIC + 0xffe) };
    not_stopped(why!("a read across the xAPIC page's end ({v:#x})").as_str())
}

/// Runs MMIO instructions that must stop the VM; `what` names them.
fn must_stop(what: &str, f: impl FnOnce()) -> Outcome {
    f();
    not_stopped(what)
}

fn mmio_movs(_: &Platform) -> Outcome {
    let mut buf = [0u32; 4];
    must_stop("rep movsd from the xAPIC page", || {
        // SAFETY: a string copy from the local APIC into `buf`; the hypervisor stops
        // the VM at the first read.
        unsafe {
            asm!("rep movsd", inout("rsi") LAPIC + 0x20 => _, inout("rdi") buf.as_mut_ptr() => _,
                inout("rcx") 4usize => _, options(nostack))
        };
    })
}

fn mmio_stos(_: &Platform) -> Outcome {
    must_stop("rep stosd to the xAPIC page", || {
        // SAFETY: a string store to the local APIC's TPR; the VM is stopped.
        unsafe {
            asm!("rep stosd", inout("rdi") LAPIC + 0x80 => _, inout("rcx") 1usize => _,
                in("eax") 0u32, options(nostack))
        };
    })
}

fn mmio_cmpxchg(_: &Platform) -> Outcome {
    must_stop("lock cmpxchg on the xAPIC page", || {
        // SAFETY: a locked compare-exchange on the TPR; the VM is stopped.
        unsafe {
            asm!("lock cmpxchg dword ptr [{p}], {n:e}", p = in(reg) LAPIC + 0x80,
                n = in(reg) 0x10u32, inout("eax") 0u32 => _, options(nostack))
        };
    })
}

fn mmio_xadd(_: &Platform) -> Outcome {
    must_stop("lock xadd on the xAPIC page", || {
        // SAFETY: a locked exchange-add on the TPR; the VM is stopped.
        unsafe {
            asm!("lock xadd dword ptr [{p}], {n:e}", p = in(reg) LAPIC + 0x80,
                n = inout(reg) 0x10u32 => _, options(nostack))
        };
    })
}

fn mmio_xchg(_: &Platform) -> Outcome {
    must_stop("xchg with the xAPIC page", || {
        // SAFETY: an exchange with the TPR; the VM is stopped.
        unsafe {
            asm!("xchg dword ptr [{p}], {n:e}", p = in(reg) LAPIC + 0x80,
                n = inout(reg) 0x10u32 => _, options(nostack))
        };
    })
}

fn mmio_sse(_: &Platform) -> Outcome {
    const OSFXSR: u64 = 1 << 9;
    let cr4 = read_cr4();
    must_stop("movdqa from the xAPIC page", || {
        // SAFETY: SSE on (OSFXSR; CR0.EM is clear), then a 16-byte load from the
        // local APIC; the VM is stopped.
        unsafe {
            asm!("mov cr4, {c}", "movdqa xmm0, [{p}]", c = in(reg) cr4 | OSFXSR,
                p = in(reg) LAPIC + 0x20, out("xmm0") _, options(nostack))
        };
    })
}

fn mmio_push(_: &Platform) -> Outcome {
    must_stop("push of an xAPIC register", || {
        // SAFETY: pushes the ID register and pops it again; the VM is stopped at the
        // push.
        unsafe { asm!("push qword ptr [{p}]", "add rsp, 8", p = in(reg) LAPIC + 0x20) };
    })
}

fn mmio_add(_: &Platform) -> Outcome {
    must_stop("add to an xAPIC register", || {
        // SAFETY: adds to the TPR; the VM is stopped.
        unsafe {
            asm!("add dword ptr [{p}], {n:e}", p = in(reg) LAPIC + 0x80, n = in(reg) 0x10u32,
                options(nostack))
        };
    })
}

fn mmio_addr32(_: &Platform) -> Outcome {
    let got: u32;
    // SAFETY: a 4-byte read of the version register with a 32-bit address (0x67).
    unsafe {
        asm!("mov eax, dword ptr [esi]", in("esi") (LAPIC + lapic::VERSION) as u32,
            out("eax") got, options(nostack, readonly))
    };
    let want = lapic::read(lapic::VERSION);
    if got != want {
        return Err(why!(
            "with 0x67 the version register read {got:#x}, not {want:#x}"
        ));
    }
    Ok(why!(
        "a 32-bit-addressed read (0x67) of the xAPIC version emulated: {got:#x}"
    ))
}

fn mmio_fs_override(_: &Platform) -> Outcome {
    const FS_BASE: u32 = 0xC000_0100;
    if let Some(v) = wrmsr(FS_BASE, LAPIC as u64) {
        return Err(why!("wrmsr FS_BASE raised {v}"));
    }
    let got: u32;
    // SAFETY: fs:[0x30] is the version register with FS based at the xAPIC page.
    unsafe { asm!("mov eax, dword ptr fs:[0x30]", out("eax") got, options(nostack, readonly)) };
    let _ = wrmsr(FS_BASE, 0);
    let want = lapic::read(lapic::VERSION);
    if got != want {
        return Err(why!(
            "fs:[0x30] with FS at the xAPIC page read {got:#x}, not {want:#x}"
        ));
    }
    Ok(why!(
        "fs:[0x30] with FS based at the xAPIC page emulated: {got:#x}"
    ))
}

/// A port no device of the VM and no absent legacy chip has (QEMU's fw_cfg).
const NO_SUCH_PORT: u16 = 0x510;

fn port_unknown_read(_: &Platform) -> Outcome {
    let v = port::inb(NO_SUCH_PORT);
    not_stopped(why!("in from port {NO_SUCH_PORT:#x} ({v:#x})").as_str())
}

fn port_unknown_write(_: &Platform) -> Outcome {
    port::outb(NO_SUCH_PORT, 0x5a);
    not_stopped(why!("out to port {NO_SUCH_PORT:#x}").as_str())
}

const COM1: u16 = 0x3F8;

fn port_outs(_: &Platform) -> Outcome {
    let text = b"outs\n";
    // SAFETY: rep outsb of a few bytes to COM1; the hypervisor stops the VM.
    unsafe {
        asm!("rep outsb", in("dx") COM1, inout("rsi") text.as_ptr() => _,
            inout("rcx") text.len() => _, options(nostack, readonly))
    };
    not_stopped("rep outsb to COM1")
}

fn port_ins(_: &Platform) -> Outcome {
    let mut buf = [0u8; 4];
    // SAFETY: insb from COM1's scratch register into `buf`; the VM is stopped.
    unsafe {
        asm!("insb", in("dx") COM1 + 7, inout("rdi") buf.as_mut_ptr() => _, options(nostack))
    };
    not_stopped("insb from COM1")
}

fn com1_width_4(_: &Platform) -> Outcome {
    // The scratch register: no side effect on the console.
    port::outb(COM1 + 7, 0x42);
    let v = port::inl(COM1 + 7 - 3);
    let scratch = port::inb(COM1 + 7);
    if scratch != 0x42 {
        return Err(why!(
            "the scratch register reads {scratch:#x} after a 4-byte in"
        ));
    }
    Ok(why!(
        "a 4-byte in from COM1+4 answered ({v:#x}); the UART still works"
    ))
}

fn pci_config(_: &Platform) -> Outcome {
    port::outl(0xCF8, 0x8000_0000);
    let addr = port::inl(0xCF8);
    let data = port::inl(0xCFC);
    port::outl(0xCFC, 0x1234_5678);
    let again = port::inl(0xCFC);
    if addr == 0x8000_0000 || data != u32::MAX || again != u32::MAX {
        return Err(why!(
            "PCI config: 0xCF8 reads {addr:#x}, 0xCFC {data:#x} then {again:#x}"
        ));
    }
    Ok(why!(
        "0xCF8/0xCFC: no PCI (address not kept, data all ones), writes go nowhere"
    ))
}

fn pm_timer_write(_: &Platform) -> Outcome {
    const PM_TIMER: u16 = 0x608;
    port::outl(PM_TIMER, 0);
    let a = port::inl(PM_TIMER) & 0xff_ffff;
    let moved = time::wait_until(100, || port::inl(PM_TIMER) & 0xff_ffff != a);
    if !moved {
        return Err(why!("the PM timer stopped at {a:#x} after a write"));
    }
    Ok(why!("a write to the PM timer ignored; it counts on"))
}

fn cf9_odd(_: &Platform) -> Outcome {
    const CF9: u16 = 0xCF9;
    for v in [0x02u8, 0x08, 0xf0, 0x00] {
        port::outb(CF9, v);
        let r = port::inb(CF9);
        if r != v {
            return Err(why!("0xCF9 written {v:#x} reads {r:#x}"));
        }
    }
    Ok(why!(
        "0xCF9 written 0x02, 0x08, 0xf0, 0 (no reset bit): kept, no reset"
    ))
}

fn kbc_odd(_: &Platform) -> Outcome {
    for cmd in [0xd1u8, 0xaa, 0xad, 0x20, 0xff] {
        port::outb(0x64, cmd);
    }
    Ok(why!(
        "keyboard controller commands 0xd1, 0xaa, 0xad, 0x20, 0xff ignored"
    ))
}

/// The vector the IPI kinds use, and the periodic and TSC-deadline timers'.
pub const IPI_VECTOR: u8 = 0x40;
pub const PERIODIC_VECTOR: u8 = 0x41;
pub const DEADLINE_VECTOR: u8 = 0x42;
/// Interrupts taken per vector 0x40..=0x42, and NMIs.
static TAKEN: [Shared; 3] = [Shared::new(0), Shared::new(0), Shared::new(0)];
static NMIS: Shared = Shared::new(0);
/// Set while NMIs are expected.
static NMI_EXPECTED: Shared = Shared::new(0);

/// From the interrupt handler: counts the attack vectors; false for others.
pub fn on_vector(vector: u8) -> bool {
    match vector.checked_sub(IPI_VECTOR).map(usize::from) {
        Some(i) if i < TAKEN.len() => {
            TAKEN[i].increment();
            true
        }
        _ => false,
    }
}

/// From the exception handler: an NMI while [`nmi_ipi`] expects them.
pub fn on_nmi() -> bool {
    if NMI_EXPECTED.get() == 0 {
        return false;
    }
    NMIS.increment();
    true
}

fn taken(vector: u8) -> u64 {
    TAKEN[usize::from(vector - IPI_VECTOR)].get()
}

/// ICR: fixed, NMI, INIT and start-up delivery; the self shorthand.
const ICR_FIXED: u32 = 0x4000;
const ICR_NMI: u32 = 0x4400;
const ICR_SELF: u32 = 1 << 18;

fn with_irqs(platform: &Platform) -> Result<(), Why> {
    super::irq::init(platform)
}

fn self_ipi_storm(platform: &Platform) -> Outcome {
    const N: u64 = 20_000;
    with_irqs(platform)?;
    let before = taken(IPI_VECTOR);
    super::irq::enable();
    for i in 0..N {
        if !lapic::send_ipi(0, ICR_FIXED | ICR_SELF | u32::from(IPI_VECTOR)) {
            super::irq::disable();
            return Err(why!("self-IPI {i} stayed pending"));
        }
    }
    let all = time::wait_until(1_000, || taken(IPI_VECTOR) - before >= N);
    super::irq::disable();
    let got = taken(IPI_VECTOR) - before;
    // Fixed IPIs of one vector coalesce in IRR while one waits: at most N, at least one.
    if !all && got == 0 {
        return Err(why!("none of {N} self-IPIs arrived"));
    }
    Ok(why!("{N} self-IPIs sent, {got} taken (the rest coalesced)"))
}

fn ipi_bad_dest(platform: &Platform) -> Outcome {
    with_irqs(platform)?;
    let before = taken(IPI_VECTOR);
    super::irq::enable();
    for dest in [0x55u32, 0x7e, 0xfe] {
        for kind in [ICR_FIXED | u32::from(IPI_VECTOR), ICR_NMI, lapic::ICR_INIT] {
            if !lapic::send_ipi(dest, kind) {
                super::irq::disable();
                return Err(why!("an IPI {kind:#x} to APIC id {dest:#x} stayed pending"));
            }
        }
    }
    time::delay_ms(20);
    super::irq::disable();
    if taken(IPI_VECTOR) != before {
        return Err(why!("an IPI to nobody arrived here"));
    }
    Ok(why!(
        "fixed, NMI and INIT IPIs to APIC ids 0x55, 0x7e, 0xfe: sent, nobody got them"
    ))
}

fn nmi_ipi(_: &Platform) -> Outcome {
    const N: u64 = 200;
    lapic::enable();
    let me = lapic::id();
    NMI_EXPECTED.set(1);
    let before = NMIS.get();
    for i in 0..N {
        let seen = NMIS.get();
        if !lapic::send_ipi(me, ICR_NMI) || !time::wait_until(1_000, || NMIS.get() != seen) {
            NMI_EXPECTED.set(0);
            return Err(why!("NMI {i} to itself did not arrive"));
        }
    }
    NMI_EXPECTED.set(0);
    Ok(why!(
        "{} NMIs sent to itself, each taken",
        NMIS.get() - before
    ))
}

fn init_self(_: &Platform) -> Outcome {
    lapic::enable();
    let me = lapic::id();
    if !lapic::send_ipi(me, lapic::ICR_INIT) {
        return Err(why!("INIT to itself stayed pending"));
    }
    // Still running, and still this vCPU.
    if lapic::id() != me {
        return Err(why!("after INIT to itself the APIC id changed"));
    }
    Ok(why!("INIT to itself (the boot vCPU): ignored, it runs on"))
}

fn sipi_storm(_: &Platform) -> Outcome {
    lapic::enable();
    let me = lapic::id();
    for i in 0..1000 {
        if !lapic::send_ipi(me, lapic::ICR_STARTUP | 0x01) {
            return Err(why!("SIPI {i} to itself stayed pending"));
        }
    }
    Ok(why!("1000 start-up IPIs to itself while running: ignored"))
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

/// The local APIC timer in periodic mode every `count` ticks for `ms`; ticks taken.
fn periodic(count: u32, ms: u64) -> u64 {
    let before = taken(PERIODIC_VECTOR);
    lapic::timer_periodic(PERIODIC_VECTOR, count);
    super::irq::enable();
    time::delay_ms(ms);
    super::irq::disable();
    lapic::timer_stop();
    taken(PERIODIC_VECTOR) - before
}

fn lapic_timer_periodic(platform: &Platform) -> Outcome {
    with_irqs(platform)?;
    let hz = super::timer::lapic_frequency();
    // A 1 ms period for 200 ms: about 200 ticks; a twentieth of that at least (a
    // loaded TCG host), more than a one-shot timer could give.
    let ticks = periodic((hz / 1000).max(1) as u32, 200);
    if !(10..=400).contains(&ticks) {
        return Err(why!("periodic 1 ms timer over 200 ms: {ticks} ticks"));
    }
    Ok(why!("periodic timer, 1 ms period, 200 ms: {ticks} ticks"))
}

fn lapic_timer_1tick(platform: &Platform) -> Outcome {
    with_irqs(platform)?;
    // The hypervisor's floor is 100 µs: at most about 1000 ticks in 100 ms (a
    // vCPU drowned in interrupts would not get here at all).
    let ticks = periodic(1, 100);
    if ticks == 0 || ticks > 1500 {
        return Err(why!("periodic timer at 1 tick for 100 ms: {ticks} ticks"));
    }
    Ok(why!(
        "periodic timer at 1 tick for 100 ms: {ticks} ticks (clamped), the vCPU came back"
    ))
}

fn tsc_deadline_past(platform: &Platform) -> Outcome {
    const TSC_DEADLINE: u32 = 0x6E0;
    const ROUNDS: u64 = 1000;
    with_irqs(platform)?;
    lapic::timer_tsc_deadline(DEADLINE_VECTOR);
    let before = taken(DEADLINE_VECTOR);
    super::irq::enable();
    for i in 0..ROUNDS {
        let seen = taken(DEADLINE_VECTOR);
        let past = port::rdtsc().saturating_sub(1000 + i);
        if let Some(v) = wrmsr(TSC_DEADLINE, past) {
            super::irq::disable();
            return Err(why!("wrmsr TSC_DEADLINE raised {v}"));
        }
        if !time::wait_until(1_000, || taken(DEADLINE_VECTOR) != seen) {
            super::irq::disable();
            return Err(why!("a TSC deadline in the past (round {i}) did not fire"));
        }
    }
    super::irq::disable();
    let _ = wrmsr(TSC_DEADLINE, 0);
    lapic::timer_stop();
    Ok(why!(
        "{} TSC-deadline interrupts for deadlines in the past, each taken",
        taken(DEADLINE_VECTOR) - before
    ))
}

/// COM1's pin and registers, for the I/O APIC kinds.
const UART_PIN: u32 = 4;
const UART_IER: u16 = 1;
const UART_IIR: u16 = 2;
const UART_MCR: u16 = 4;

/// Routes COM1's pin as `route` says, raises its "THR empty" interrupt for 50 ms and
/// puts everything back; interrupts of the attack vector taken meanwhile.
fn raise_uart(vector: u8, dest: u32) -> u64 {
    let before = taken(IPI_VECTOR);
    port::outb(COM1 + UART_IER, 0);
    let _ = port::inb(COM1 + UART_IIR);
    ioapic::route(UART_PIN, vector, dest, false);
    port::outb(COM1 + UART_MCR, port::inb(COM1 + UART_MCR) | 1 << 3);
    super::irq::enable();
    port::outb(COM1 + UART_IER, 1 << 1);
    time::delay_ms(50);
    super::irq::disable();
    port::outb(COM1 + UART_IER, 0);
    let _ = port::inb(COM1 + UART_IIR);
    ioapic::route(UART_PIN, vector, dest, true);
    taken(IPI_VECTOR) - before
}

fn ioapic_low_vector(platform: &Platform) -> Outcome {
    const ESR: usize = 0x280;
    const RECEIVE_ILLEGAL: u32 = 1 << 6;
    with_irqs(platform)?;
    lapic::write(ESR, 0);
    // Vector 5 (#BR's): an interrupt there would reach the exception handler as an
    // unexpected exception and fail the guest.
    raise_uart(5, lapic::id());
    lapic::write(ESR, 0);
    let esr = lapic::read(ESR);
    if esr & RECEIVE_ILLEGAL == 0 {
        return Err(why!("ESR {esr:#x}: no receive-illegal-vector error"));
    }
    Ok(why!(
        "COM1's pin routed to vector 5: not delivered, ESR {esr:#x} (illegal vector received)"
    ))
}

fn ioapic_bad_dest(platform: &Platform) -> Outcome {
    with_irqs(platform)?;
    let got = raise_uart(IPI_VECTOR, 0x55);
    if got != 0 {
        return Err(why!(
            "COM1's interrupt to APIC id 0x55 arrived here {got} times"
        ));
    }
    Ok(why!(
        "COM1's pin routed to APIC id 0x55 (nobody): nothing delivered"
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

fn ivc_bad_pointers(_: &Platform) -> Outcome {
    if !firmware::under_hypervisor() {
        return Err(why!("no hypervisor signature: vmmcall would raise #UD"));
    }
    let bad = UNMAPPED as u64;
    for code in 3..=6u32 {
        for args in [
            [0x1, bad, bad],
            [u64::MAX, u64::MAX - 7, 0],
            [0x2, 0xff8, bad],
        ] {
            let r =
                firmware::vmmcall(code, args).map_err(|_| why!("AxVisor call {code} undefined"))?;
            if r[0] != u64::MAX {
                return Err(why!(
                    "AxVisor call {code} with pointers {args:x?}: {:#x}, expected -1",
                    r[0]
                ));
            }
        }
    }
    Ok(why!(
        "AxVisor IVC calls 3-6 with pointers outside RAM or at its end: refused (-1)"
    ))
}

/// The reset race's second vCPU: start-up IPIs and INITs at the boot vCPU.
pub fn hammer_once() {
    lapic::send_ipi(0, lapic::ICR_STARTUP | 0x01);
    lapic::send_ipi(0, lapic::ICR_INIT);
}

/// The address `exec-device` jumps to: the local APIC's window.
pub fn device_window(_: &Platform) -> Result<usize, Why> {
    Ok(LAPIC)
}

/// Runs `f` on the stack whose top is `top`.
pub fn on_stack(top: usize, f: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is in the guest's RAM; `f` never returns, so nothing of the old
    // stack is needed again.
    unsafe { asm!("mov rsp, {t}", "jmp {f}", t = in(reg) top, f = in(reg) f, options(noreturn)) }
}
