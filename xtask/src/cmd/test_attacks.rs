//! The attack suite (scenarios `attacks-aarch64`, `attacks-riscv64`,
//! `attacks-x86_64`): the test guest
//! with boot argument `attack=<kinds>` misbehaves in chosen ways (guests/testguest
//! `attack.rs` and `arch/<arch>/attack.rs`) next to a test VM that must pass.
//!
//! Grouped so that the suite costs few builds: one QEMU run holds the test VM (2
//! vCPUs), one *walker* VM (2 vCPUs) that goes through every kind whose outcome is an
//! answer, and one single-vCPU VM for each kind that stops its VM (on a board of 16
//! CPUs). Each run asserts from the console: the hypervisor survives (no `hv: BUG`,
//! every VM accounted for in `hv: all VMs stopped: <clean> clean, <faulted> faulted`,
//! so the run ends by itself), the test VM passes, each stopping kind's VM is stopped
//! with its named reason (or powered off, as specified), and the walker reports `ok`
//! for each of its kinds (it checks the answers itself) and powers off.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::test::{boot_with, check_summary, exit_status, failure, has_line, vm_lines};
use crate::config::Arch;
use crate::workspace::Workspace;

/// What a kind must lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The hypervisor stops the VM; its `stopped:` line holds this text.
    Stop(&'static str),
    /// The VM is powered off (clean); the hypervisor's line about it holds this text.
    PowerOff(&'static str),
    /// The call or access is answered as said; the guest checks the answer itself.
    Answer(&'static str),
    /// Stopped with the first text where the CPU model lets the hypervisor see the
    /// access, else answered as the second says (checked by the guest); a VM of its
    /// own.
    StopOr(&'static str, &'static str),
}

/// One attack kind.
pub struct Attack {
    pub kind: &'static str,
    pub arch: Arch,
    pub expect: Expect,
}

const fn a(kind: &'static str, arch: Arch, expect: Expect) -> Attack {
    Attack { kind, arch, expect }
}

use Arch::{Aarch64 as A64, Riscv64 as RV, X86_64 as X86};
use Expect::{Answer, PowerOff, Stop, StopOr};

const OUTSIDE: &str = "outside guest memory";
/// x86: what an MMIO instruction the decoder does not take stops its VM with.
const X86_MMIO_INSN: &str = "not supported yet: MMIO access by this instruction";
const X86_FETCH: &str = "instruction fetch outside guest RAM";
const X86_TRIPLE: &str = "shutdown (triple fault)";
const X86_STRING_IO: &str = "not supported yet: string I/O (ins/outs)";
const UD: &str = "#UD in the guest";

/// Every kind, per architecture, with the outcome it must have.
pub const ATTACKS: &[Attack] = &[
    // aarch64: accesses
    a("read-unmapped", A64, Stop(OUTSIDE)),
    a("write-unmapped", A64, Stop(OUTSIDE)),
    a("read-ram-end", A64, Stop(OUTSIDE)),
    a("write-below-ram", A64, Stop(OUTSIDE)),
    a("exec-unmapped", A64, Stop("instruction abort (executing outside guest memory)")),
    a("exec-device", A64, Stop("instruction abort (executing outside guest memory)")),
    // The stack's stores are pairs (stp): no syndrome, below RAM.
    a("stack-overflow", A64, Stop("without instruction syndrome (load/store pair or writeback: cannot emulate) at 0x3ffff")),
    a("mmio-ldp", A64, Stop("without instruction syndrome")),
    a("mmio-post-index", A64, Stop("without instruction syndrome")),
    a("mmio-ldxr", A64, Stop("without instruction syndrome")),
    a("mmio-stxr", A64, Answer("stxr to GICD without a monitor fails (status 1) without an access")),
    a("mmio-ldaxp", A64, Stop("without instruction syndrome")),
    a("mmio-ldar", A64, Answer("ldar of UARTFR (one register, with a syndrome) is emulated")),
    a("dc-ivac-mmio", A64, Answer("comes back: QEMU does no cache maintenance (on hardware the stage-2 abort stops the VM)")),
    a("dc-civac-unmapped", A64, Answer("comes back: QEMU does no cache maintenance (on hardware the stage-2 abort stops the VM)")),
    a("dc-zva-mmio", A64, Stop("without instruction syndrome")),
    a("gicd-width-8", A64, Stop("wrong width: 8-byte MMIO read at offset 0x0 of device gicd, which takes 4-byte accesses there")),
    a("gicd-width-1", A64, Stop("wrong width: 1-byte MMIO read at offset 0x4 of device gicd, which takes 4-byte accesses there")),
    a("gicr-width-2", A64, Stop("wrong width: 2-byte MMIO read at offset 0x0 of device gicr, which takes 4-byte accesses there")),
    a("uart-width-8", A64, Stop("wrong width: 8-byte MMIO read at offset 0x18 of device uart, which takes 1-, 2- or 4-byte accesses there")),
    a("gicd-sweep", A64, Answer("every GICD word read, enables/pending/priorities/routes all-ones: answered")),
    // aarch64: exceptions and system registers
    a("vbar-unmapped", A64, Stop("instruction abort (executing outside guest memory)")),
    a("vbar-ram-end", A64, Stop("instruction abort (executing outside guest memory)")),
    a("hvc-imm", A64, Stop("HVC with non-zero immediate")),
    a("sysreg-impdef", A64, StopOr("unhandled system register access", "QEMU 7.2 ignores HCR_EL2.TIDCP: CPUECTLR_EL1 reads 0")),
    a("sysreg-idreg-write", A64, Answer("MSR to ID_AA64PFR0_EL1: UNDEFINED in the guest")),
    a("sysreg-pauth-key", A64, Answer("UNDEFINED in the guest on a CPU without pointer authentication")),
    a("sysreg-el2", A64, Answer("HCR_EL2 from EL1: UNDEFINED in the guest")),
    a("sysreg-el3", A64, Answer("SCR_EL3 from EL1: UNDEFINED in the guest")),
    a("sysreg-ich-el2", A64, Answer("ICH_HCR_EL2 from EL1: UNDEFINED in the guest")),
    a("sysreg-ras", A64, Answer("ERRIDR_EL1 (RAS hidden): UNDEFINED in the guest")),
    a("sysreg-lor", A64, Answer("LORC_EL1 (LOR hidden): UNDEFINED in the guest")),
    a("sysreg-trace", A64, Answer("TRCPRGCTLR (no trace unit): UNDEFINED in the guest")),
    a("sysreg-pmu", A64, Answer("PMU registers written, read back 0 (inert PMU)")),
    a("sysreg-debug", A64, Answer("breakpoint/watchpoint enabled; read back 0 (inert debug)")),
    a("udf", A64, Answer("UNDEFINED in the guest")),
    // aarch64: firmware calls and hypercalls
    a("smc-psci", A64, Answer("smc #0 answered like hvc #0 (PSCI_VERSION 1.1) or UNDEFINED")),
    a("cpu-on-bad-id", A64, Answer("CPU_ON of an MPIDR no vCPU has: INVALID_PARAMETERS")),
    a("cpu-on-self", A64, Answer("CPU_ON of itself: ALREADY_ON")),
    a("cpu-state-bad-id", A64, Answer("AFFINITY_INFO of an MPIDR no vCPU has: INVALID_PARAMETERS")),
    a("psci-affinity-bad-level", A64, Answer("AFFINITY_INFO with lowest level 7: INVALID_PARAMETERS")),
    a("psci-features-bad", A64, Answer("PSCI_FEATURES of an unknown function: NOT_SUPPORTED")),
    a("psci-cpu-suspend", A64, Answer("CPU_SUSPEND with a wild state and entry: refused or returns")),
    a("psci-migrate", A64, Answer("MIGRATE: NOT_SUPPORTED")),
    a("psci-cpu-on-bad-entry", A64, Answer("CPU_ON with the entry outside RAM: INVALID_ADDRESS")),
    a("smccc-sweep", A64, Answer("every SMCCC range's first 32 ids with wild arguments: answered")),
    a("hv-sweep", A64, Answer("256 project hypercall ids with wild arguments: answered")),
    a("cpu-on-twice", A64, Answer("second CPU_ON of a starting vCPU: ALREADY_ON/ON_PENDING; it runs once")),
    a("cpu-off-last", A64, PowerOff("its last running vCPU turned itself off")),
    // aarch64: interrupts, waiting, races
    a("sgi-flood", A64, Answer("20,000 broadcast SGIs: answered, only its own VM")),
    a("sgi-wild-target", A64, Answer("SGIs to affinities no VM has: ignored")),
    a("timer-zero-storm", A64, Answer("2,000 timer interrupts armed at 0, each taken")),
    a("wfi-masked", A64, Answer("WFI with interrupts masked: woken by the pending timer")),
    a("wfe-masked", A64, Answer("WFE with interrupts masked: comes back")),
    a("masked-spin", A64, Answer("2 s spin with interrupts masked, timer pending: the other VMs go on")),
    a("reset-race", A64, Answer("SYSTEM_RESET while vCPU 1 calls CPU_ON in a loop: the VM boots again")),
    // riscv64: accesses
    a("read-unmapped", RV, Stop(OUTSIDE)),
    a("write-unmapped", RV, Stop(OUTSIDE)),
    a("read-ram-end", RV, Stop(OUTSIDE)),
    a("write-below-ram", RV, Stop(OUTSIDE)),
    a("exec-unmapped", RV, Stop("instruction guest-page fault (executing outside guest memory)")),
    a("exec-device", RV, Stop("instruction guest-page fault (executing outside guest memory)")),
    a("stack-overflow", RV, Stop(OUTSIDE)),
    a("mmio-amo", RV, Stop("atomic memory operation on MMIO (cannot emulate)")),
    a("mmio-lr", RV, Stop("atomic memory operation on MMIO (cannot emulate)")),
    a("mmio-sc", RV, Answer("sc.w to the PLIC without a reservation fails without an access")),
    a("mmio-misaligned", RV, Stop("unaligned: 4-byte MMIO read at offset 0x6 of device plic, which takes only accesses aligned to their width")),
    a("mmio-compressed", RV, Answer("c.lw of a PLIC priority is emulated")),
    a("cbo-clean-mmio", RV, Answer("illegal instruction in the guest (no Zicbom for guests)")),
    a("cbo-zero-mmio", RV, Answer("illegal instruction in the guest (no Zicboz for guests)")),
    a("uart-width-8", RV, Stop("wrong width: 8-byte MMIO read at offset 0x0 of device uart, which takes 1-, 2- or 4-byte accesses there")),
    a("plic-width-1", RV, Stop("wrong width: 1-byte MMIO read at offset 0x4 of device plic, which takes 4-byte accesses there")),
    a("plic-sweep", RV, Answer("PLIC words read, wild priorities/enables/thresholds/claims: answered")),
    // riscv64: CSRs, hypervisor instructions, translation, vectors
    a("csr-hstatus", RV, Stop("virtual instruction")),
    a("csr-hgatp", RV, Stop("virtual instruction")),
    a("csr-vsatp", RV, Stop("virtual instruction")),
    a("hfence-gvma", RV, Stop("virtual instruction")),
    a("hlv", RV, Stop("virtual instruction")),
    a("csr-mstatus", RV, Answer("mstatus from VS-mode: illegal instruction in the guest")),
    a("csr-illegal", RV, Answer("CSR 0x5ff: illegal instruction in the guest")),
    a("csr-cycle", RV, Answer("rdcycle emulated")),
    a("csr-hpmcounter", RV, Answer("hpmcounter3 emulated")),
    a("satp-wild", RV, Stop("guest page-table walk outside guest memory")),
    a("stvec-unmapped", RV, Stop("instruction guest-page fault (executing outside guest memory)")),
    a("stvec-ram-end", RV, Stop("instruction guest-page fault (executing outside guest memory)")),
    // riscv64: SBI and hypercalls
    a("cpu-on-bad-id", RV, Answer("hart_start of a hart no vCPU has: INVALID_PARAM")),
    a("cpu-on-self", RV, Answer("hart_start of itself: ALREADY_AVAILABLE")),
    a("cpu-state-bad-id", RV, Answer("hart_get_status of a hart no vCPU has: INVALID_PARAM")),
    a("sbi-hsm-bad-entry", RV, Answer("hart_start with the entry outside RAM: INVALID_ADDRESS")),
    a("sbi-ipi-bad-mask", RV, Answer("send_ipi to harts 1000..: INVALID_PARAM")),
    a("sbi-rfence-bad-mask", RV, Answer("remote_fence_i to harts from 2^40: INVALID_PARAM")),
    a("sbi-srst-bad-type", RV, Answer("system_reset of an unknown type: INVALID_PARAM")),
    a("sbi-dbcn-outside", RV, Answer("debug console write from outside RAM: INVALID_PARAM")),
    a("sbi-dbcn-huge", RV, Answer("debug console write of 2^40 bytes from the last 8 of RAM: refused or cut to those 8")),
    a("sbi-sweep", RV, Answer("unknown functions and extensions with wild arguments: NOT_SUPPORTED")),
    a("hv-sweep", RV, Answer("256 project hypercall ids with wild arguments: answered")),
    a("cpu-on-twice", RV, Answer("second hart_start of a starting hart: ALREADY_AVAILABLE/STARTED; it runs once")),
    a("cpu-off-last", RV, PowerOff("its last running vCPU turned itself off")),
    // riscv64: interrupts, waiting, races
    a("ipi-flood", RV, Answer("20,000 IPIs to its own harts: answered")),
    a("timer-zero-storm", RV, Answer("2,000 timer interrupts armed at 0, each taken")),
    a("wfi-masked", RV, Answer("WFI with interrupts masked: woken by the pending timer")),
    a("masked-spin", RV, Answer("2 s spin with interrupts masked, timer pending: the other VMs go on")),
    a("reset-race", RV, Answer("system_reset while hart 1 calls hart_start in a loop: the VM boots again")),
    // x86_64: accesses (RAM starts at 0: nothing below it, so no write-below-ram)
    a("read-unmapped", X86, Stop(OUTSIDE)),
    a("write-unmapped", X86, Stop(OUTSIDE)),
    a("read-ram-end", X86, Stop(OUTSIDE)),
    a("exec-unmapped", X86, Stop(X86_FETCH)),
    a("exec-device", X86, Stop(X86_FETCH)),
    // The stack runs down from 128 KiB past 0: #PF, #DF, shutdown.
    a("stack-overflow", X86, Stop(X86_TRIPLE)),
    a("lapic-width-8", X86, Stop("wrong width: 8-byte MMIO read at offset 0x30 of device lapic, which takes 4-byte accesses there")),
    a("ioapic-width-2", X86, Stop("wrong width: 2-byte MMIO read at offset 0x10 of device ioapic, which takes 4-byte accesses there")),
    a("lapic-unaligned", X86, Stop("unaligned: 4-byte MMIO read at offset 0x22 of device lapic")),
    a("mmio-page-cross", X86, Stop("unaligned: 4-byte MMIO read at offset 0xffe of device lapic")),
    a("mmio-movs", X86, Stop(X86_MMIO_INSN)),
    a("mmio-stos", X86, Stop(X86_MMIO_INSN)),
    a("mmio-cmpxchg", X86, Stop(X86_MMIO_INSN)),
    a("mmio-xadd", X86, Stop(X86_MMIO_INSN)),
    a("mmio-xchg", X86, Stop(X86_MMIO_INSN)),
    a("mmio-sse", X86, Stop(X86_MMIO_INSN)),
    a("mmio-push", X86, Stop(X86_MMIO_INSN)),
    a("mmio-add", X86, Stop(X86_MMIO_INSN)),
    a("mmio-addr32", X86, Answer("32-bit-addressed (0x67) read of the xAPIC version: emulated")),
    a("mmio-fs-override", X86, Answer("fs:[0x30] with FS based at the xAPIC page: emulated")),
    // x86_64: ports
    a("port-unknown-read", X86, Stop("port 0x510")),
    a("port-unknown-write", X86, Stop("port 0x510")),
    a("port-outs", X86, Stop(X86_STRING_IO)),
    a("port-ins", X86, Stop(X86_STRING_IO)),
    a("com1-width-4", X86, Answer("4-byte in from COM1: answered, the UART still works")),
    a("pci-config", X86, Answer("0xCF8/0xCFC: no PCI, all ones, writes go nowhere")),
    a("pm-timer-write", X86, Answer("PM timer write ignored, it counts on")),
    a("cf9-odd", X86, Answer("0xCF9 values without the reset bit: kept, no reset")),
    a("kbc-odd", X86, Answer("keyboard controller commands other than reset: ignored")),
    // x86_64: MSRs
    a("msr-unknown-read", X86, Answer("#GP in the guest")),
    a("msr-unknown-write", X86, Answer("#GP in the guest")),
    a("msr-efer-svme", X86, Answer("EFER.SVME hidden; setting it: #GP, EFER unchanged")),
    a("msr-vm-hsave", X86, Answer("VM_HSAVE_PA read and write: #GP")),
    a("msr-vm-cr-write", X86, Answer("VM_CR reads SVMDIS|LOCK; a write: #GP")),
    a("msr-syscfg-write", X86, Answer("SYSCFG with set bits: #GP")),
    a("msr-nb-cfg", X86, Answer("NB_CFG (0xc001001f): #GP (no northbridge; Linux reads it with rdmsr_safe)")),
    a("msr-tsc-write", X86, Answer("TSC written, read back from there")),
    a("msr-x2apic-in-xapic", X86, Answer("x2APIC MSRs in xAPIC mode: #GP")),
    a("x2apic-icr-reserved", X86, Answer("x2APIC ICR with reserved bits: #GP; x2APIC to xAPIC directly: #GP")),
    a("x2apic-eoi-read", X86, Answer("x2APIC EOI read, non-zero EOI: #GP")),
    a("msr-sweep", X86, Answer("MSRs 0-0x1fff, 0xc0000000-, 0xc0010000-0x...1fff read: each a value or #GP")),
    a("cpuid-sweep", X86, Answer("CPUID leaves swept; SVM hidden")),
    // x86_64: instructions
    a("svm-vmrun", X86, Answer(UD)),
    a("svm-vmload", X86, Answer(UD)),
    a("svm-vmsave", X86, Answer(UD)),
    a("svm-stgi", X86, Answer(UD)),
    a("svm-clgi", X86, Answer(UD)),
    a("svm-skinit", X86, Answer(UD)),
    a("svm-invlpga", X86, Answer(UD)),
    a("xsetbv", X86, Answer("#UD in the guest (XSAVE hidden)")),
    a("monitor", X86, Answer("#UD in the guest (MONITOR hidden)")),
    a("mwait", X86, Answer("#UD in the guest (MONITOR hidden)")),
    a("rdtscp", X86, Answer("the guest's TSC and the TSC_AUX it wrote")),
    a("rdpid", X86, Answer("#UD where CPUID lacks it, else the TSC_AUX written")),
    a("invd", X86, Answer("INVD done as WBINVD: memory kept")),
    a("int3-loop", X86, Answer("1000 #BP taken")),
    a("ud2-loop", X86, Answer("10,000 #UD taken")),
    a("cr0-cd", X86, Answer("CR0.CD set, read back and cleared")),
    // CR4.VMXE (reserved on AMD) and bit 40: QEMU's CPU takes them (a real one
    // raises #GP); the next VMRUN then refuses the guest state.
    a("cr4-reserved", X86, StopOr("VMRUN refused the guest state", "#GP in the guest")),
    a("dr-access", X86, Answer("DR0, DR3, DR7 written and read back")),
    a("triple-fault", X86, Stop(X86_TRIPLE)),
    a("idt-unmapped", X86, Stop("delivering an interrupt or exception through memory outside guest RAM")),
    // x86_64: interrupts, vCPUs, hypercalls
    a("self-ipi-storm", X86, Answer("20,000 self-IPIs: taken (coalesced)")),
    a("ipi-bad-dest", X86, Answer("fixed/NMI/INIT IPIs to APIC ids no vCPU has: ignored")),
    a("nmi-ipi", X86, Answer("200 NMIs to itself, each taken")),
    a("init-self", X86, Answer("INIT to itself (the boot vCPU): ignored")),
    a("sipi-storm", X86, Answer("1000 SIPIs to a running vCPU: ignored")),
    a("init-storm", X86, Answer("1000 INITs to vCPU 1 and to nobody; vCPU 1 then starts")),
    a("lapic-timer-periodic", X86, Answer("periodic timer, 1 ms, 200 ms: its ticks taken")),
    a("lapic-timer-1tick", X86, Answer("periodic timer at 1 tick: clamped to 100 µs periods, the vCPU comes back")),
    a("tsc-deadline-past", X86, Answer("1000 TSC deadlines in the past: each fires")),
    a("ioapic-low-vector", X86, Answer("I/O APIC pin to vector 5: not delivered, illegal-vector error")),
    a("ioapic-bad-dest", X86, Answer("I/O APIC pin to an APIC id nobody has: not delivered")),
    a("timer-zero-storm", X86, Answer("2,000 timer interrupts armed at 0, each taken")),
    a("masked-spin", X86, Answer("2 s spin with interrupts masked, timer pending: the other VMs go on")),
    a("vmmcall-sweep", X86, Answer("256 project hypercall ids with wild arguments: answered")),
    a("ivc-bad-pointers", X86, Answer("AxVisor IVC calls 3-6 with bad pointers: refused (-1)")),
    // HLT with interrupts masked on its only vCPU: nothing can ever wake it.
    a("cpu-off-last", X86, PowerOff("its last running vCPU turned itself off")),
    a("reset-race", X86, Answer("0xCF9 reset while vCPU 1 sends SIPIs and INITs at vCPU 0: the VM boots again")),
];

/// QEMU boards of 16 CPUs (the most the hypervisor supports) for the attack runs.
const BOARD_AARCH64: &str = "xtask/tests/data/qemu-aarch64-16cpu.toml";
const BOARD_RISCV64: &str = "xtask/tests/data/qemu-riscv64-16cpu.toml";
const BOARD_X86_64: &str = "xtask/tests/data/qemu-x86_64-16cpu.toml";
/// CPUs of those boards.
const CPUS: u32 = 16;
/// The test VM that must pass next to the attackers (2 vCPUs on CPUs 0 and 1).
const TEST_VM_AARCH64: &str = "configs/vms/testguest-aarch64-qemu-smp2-a.toml";
const TEST_VM_RISCV64: &str = "configs/vms/testguest-riscv64-qemu-smp2-a.toml";
const TEST_VM_X86_64: &str = "configs/vms/testguest-x86_64-qemu-smp2-a.toml";
/// The walker's VM name.
const WALKER: &str = "walker";

/// One attacker VM of a run.
struct Attacker {
    id: u32,
    name: String,
    cpus: Vec<u32>,
    kinds: Vec<&'static Attack>,
}

/// The kinds of `arch`.
pub fn kinds(arch: Arch) -> impl Iterator<Item = &'static Attack> {
    ATTACKS.iter().filter(move |x| x.arch == arch)
}

/// The QEMU runs for `arch`: the walker first, then one VM per stopping kind, 14
/// attacker CPUs per run.
fn plan_runs(arch: Arch) -> Vec<Vec<Attacker>> {
    let answers: Vec<&Attack> = kinds(arch)
        .filter(|x| matches!(x.expect, Answer(_)))
        // The reset race ends the walker's first boot: last.
        .filter(|x| x.kind != "reset-race")
        .chain(kinds(arch).filter(|x| x.kind == "reset-race"))
        .collect();
    let mut runs = vec![vec![Attacker {
        id: 2,
        name: WALKER.to_string(),
        cpus: vec![2, 3],
        kinds: answers,
    }]];
    let mut next_cpu = 4;
    for x in kinds(arch).filter(|x| !matches!(x.expect, Answer(_))) {
        if next_cpu >= CPUS {
            runs.push(Vec::new());
            next_cpu = 2;
        }
        let run = runs.last_mut().expect("one run at least");
        run.push(Attacker {
            id: next_cpu,
            name: x.kind.to_string(),
            cpus: vec![next_cpu],
            kinds: vec![x],
        });
        next_cpu += 1;
    }
    runs
}

/// A VM config of an attacker (the test guest, 16 MiB, all devices emulated), in
/// the layout of configs/vms/testguest-<arch>-qemu-smp2-a.toml.
fn vm_toml(arch: Arch, vm: &Attacker) -> String {
    let list: Vec<&str> = vm.kinds.iter().map(|x| x.kind).collect();
    let cpus: Vec<String> = vm.cpus.iter().map(|c| format!("{c:#x}")).collect();
    if arch == Arch::X86_64 {
        return x86_vm_toml(vm, &list.join(","), &cpus.join(", "));
    }
    let (ram, entry, devices) = match arch {
        Arch::Riscv64 => (
            0x8000_0000u64,
            0x8020_0000u64,
            r#"    ["plic", 0x0c00_0000, 0x60_0000, 0, 0x30, []],
    ["uart", 0x1000_0000, 0x100, 10, 0x2, []],"#,
        ),
        _ => (
            0x4000_0000,
            0x4008_0000,
            r#"    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],
    ["uart", 0x0900_0000, 0x1000, 33, 0x2, []],"#,
        ),
    };
    format!(
        r#"# Generated by `cargo xtask test` (attack suite): the test guest attacking.
[base]
id = {id}
name = "{name}"
vm_type = 1
cpu_num = {n}
phys_cpu_ids = [{cpus}]

[kernel]
entry_point = {entry:#x}
image_location = "memory"
kernel_path = "guest:testguest"
kernel_load_addr = {entry:#x}
cmdline = "attack={list}"
memory_regions = [[{ram:#x}, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [
{devices}
]
passthrough_devices = []
interrupt_mode = "emu"
"#,
        id = vm.id,
        name = vm.name,
        n = vm.cpus.len(),
        cpus = cpus.join(", "),
        list = list.join(","),
    )
}

/// An x86 attacker's config: the layout of configs/vms/testguest-x86_64-qemu-smp2-a.toml
/// (16 MiB of RAM at 0, the Multiboot image at 1 MiB).
fn x86_vm_toml(vm: &Attacker, list: &str, cpus: &str) -> String {
    format!(
        r#"# Generated by `cargo xtask test` (attack suite): the test guest attacking.
[base]
id = {id}
name = "{name}"
vm_type = 1
cpu_num = {n}
phys_cpu_ids = [{cpus}]

[kernel]
entry_point = 0x10_0020
image_location = "memory"
kernel_path = "guest:testguest"
kernel_load_addr = 0x10_0000
dtb_load_addr = 0x9000
cmdline = "attack={list}"
memory_regions = [[0x0, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [
    ["lapic", 0xfee0_0000, 0x1000, 0, 0x1, []],
    ["ioapic", 0xfec0_0000, 0x1000, 0, 0x1, []],
    ["uart", 0x3f8, 0x8, 4, 0x2, []],
]
passthrough_devices = []
interrupt_mode = "emu"
"#,
        id = vm.id,
        name = vm.name,
        n = vm.cpus.len(),
    )
}

/// The scenario `attacks-<arch>`: every run of [`plan_runs`]; prints the table of
/// kinds with what was seen.
pub fn attacks(ws: &Workspace, name: &str, arch: Arch) -> Result<()> {
    let (board, test_vm) = match arch {
        Arch::Riscv64 => (BOARD_RISCV64, TEST_VM_RISCV64),
        Arch::X86_64 => (BOARD_X86_64, TEST_VM_X86_64),
        _ => (BOARD_AARCH64, TEST_VM_AARCH64),
    };
    let dir = ws.target_dir.join("hv").join("attacks").join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut problems = Vec::new();
    let mut seen: Vec<(&'static str, String)> = Vec::new();
    let mut last_out = String::new();
    for (i, run) in plan_runs(arch).iter().enumerate() {
        let mut vms = vec![ws.root.join(test_vm)];
        for vm in run {
            let path = dir.join(format!("{}.toml", vm.name));
            std::fs::write(&path, vm_toml(arch, vm))
                .with_context(|| format!("cannot write {}", path.display()))?;
            vms.push(path);
        }
        let run_name = format!("{name}-{}", i + 1);
        let (outcome, out) = boot_with(ws, &run_name, board, &vms)?;
        let before = problems.len();
        check_run(run, &outcome, &out, &mut problems, &mut seen);
        if problems.len() > before {
            problems.push(format!(
                "(in run {run_name}; log in target/hv/test-logs/{run_name}.log)"
            ));
        }
        last_out = out;
    }
    println!("{}", table(arch, &seen));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(failure(&problems, &last_out))
    }
}

/// Checks one run's output; records what each kind led to in `seen`.
fn check_run(
    run: &[Attacker],
    outcome: &crate::qemu::Outcome,
    out: &str,
    problems: &mut Vec<String>,
    seen: &mut Vec<(&'static str, String)>,
) {
    // VMs stopped by the hypervisor (every Stop kind's, a StopOr kind's if it was).
    let stops = run
        .iter()
        .filter(|vm| has_line(out, &format!("hv: VM {} ({}) stopped: ", vm.id, vm.name)))
        .count();
    exit_status(outcome, stops == 0, problems);
    for l in out.lines().filter(|l| l.contains("hv: BUG")) {
        problems.push(format!("the hypervisor failed: {l}"));
    }
    check_summary(out, "vm1", problems);
    let clean = run.len() + 1 - stops;
    let all = format!("hv: all VMs stopped: {clean} clean, {stops} faulted");
    if !has_line(out, &all) {
        problems.push(format!("no `{all}` line"));
    }
    for vm in run {
        let lines = vm_lines(out, &vm.name);
        let stopped = format!("hv: VM {} ({}) stopped: ", vm.id, vm.name);
        let stop_line = out
            .lines()
            .find_map(|l| l.split_once(&stopped).map(|(_, r)| r));
        for x in &vm.kinds {
            match x.expect {
                Stop(reason) => {
                    let what = stop_line.unwrap_or("not stopped");
                    seen.push((x.kind, format!("stopped: {what}")));
                    if !stop_line.is_some_and(|r| r.contains(reason)) {
                        problems.push(format!(
                            "{}: expected a stop with `{reason}`, saw: {what}",
                            x.kind
                        ));
                    }
                }
                PowerOff(text) => {
                    let off = format!("hv: VM {} ({}) powered off", vm.id, vm.name);
                    let why = out.lines().find(|l| {
                        l.contains(&format!("hv: VM {} ({})", vm.id, vm.name)) && l.contains(text)
                    });
                    seen.push((
                        x.kind,
                        why.map_or("no such line".into(), |l| l.trim().to_string()),
                    ));
                    if why.is_none() || !has_line(out, &off) {
                        problems.push(format!(
                            "{}: expected `{off}` after a line with `{text}`",
                            x.kind
                        ));
                    }
                    if let Some(r) = stop_line {
                        problems.push(format!("{}: stopped instead: {r}", x.kind));
                    }
                }
                StopOr(reason, _) if stop_line.is_some() => {
                    let what = stop_line.unwrap_or_default();
                    seen.push((x.kind, format!("stopped: {what}")));
                    if !what.contains(reason) {
                        problems.push(format!(
                            "{}: expected a stop with `{reason}`, saw: {what}",
                            x.kind
                        ));
                    }
                }
                Answer(_) | StopOr(..) => {
                    let detail = format!("attack {}: ", x.kind);
                    let said = lines
                        .iter()
                        .filter_map(|l| {
                            l.strip_prefix("testguest: ")
                                .and_then(|l| l.strip_prefix(&detail))
                        })
                        .rfind(|d| *d != "go")
                        .unwrap_or("no answer line");
                    let ok = lines.contains(&format!("ok: {}", x.kind).as_str());
                    let fail = lines
                        .iter()
                        .find(|l| l.starts_with(&format!("FAIL: {}:", x.kind)));
                    seen.push((x.kind, fail.map_or(said.to_string(), |f| f.to_string())));
                    if !ok {
                        problems.push(format!(
                            "{}: no `[{}] ok: {}` line ({})",
                            x.kind,
                            vm.name,
                            x.kind,
                            fail.copied().unwrap_or("no FAIL line either")
                        ));
                    }
                }
            }
        }
        if vm.kinds.iter().all(|x| matches!(x.expect, Answer(_))) {
            check_summary(out, &vm.name, problems);
            if let Some(r) = stop_line {
                problems.push(format!("[{}] was stopped: {r}", vm.name));
            }
        }
        for l in lines.iter().filter(|l| l.contains("not stopped")) {
            problems.push(format!("[{}] {l}", vm.name));
        }
    }
}

/// The table of `arch`'s kinds: expected and (when `seen` has it) seen outcome.
pub fn table(arch: Arch, seen: &[(&'static str, String)]) -> String {
    let mut s = format!("attack kinds on {arch:?} (kind | expected | seen):\n");
    for x in kinds(arch) {
        let expected = match x.expect {
            Stop(r) => format!("VM stopped: ...{r}..."),
            PowerOff(r) => format!("VM powered off: ...{r}..."),
            Answer(r) => r.to_string(),
            StopOr(r, a) => format!("VM stopped: ...{r}...; or {a}"),
        };
        let got = seen
            .iter()
            .find(|(k, _)| *k == x.kind)
            .map_or("-", |(_, s)| s.as_str());
        let _ = writeln!(s, "  {:<24} | {expected} | {got}", x.kind);
    }
    s
}

/// Every architecture the suite runs on.
const ARCHES: [Arch; 3] = [Arch::Aarch64, Arch::Riscv64, Arch::X86_64];

/// `cargo xtask test --attacks`: the tables of every architecture (expected only).
pub fn print_tables() {
    for arch in ARCHES {
        println!("{}", table(arch, &[]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_the_guest_and_runs_once() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let guest =
            |p: &str| std::fs::read_to_string(root.join("guests/testguest/src").join(p)).unwrap();
        let common = guest("attack.rs");
        for arch in ARCHES {
            let own = guest(&format!(
                "arch/{}/attack.rs",
                match arch {
                    Arch::Aarch64 => "aarch64",
                    Arch::Riscv64 => "riscv64",
                    Arch::X86_64 => "x86_64",
                }
            ));
            let runs = plan_runs(arch);
            for x in kinds(arch) {
                let quoted = format!("(\"{}\",", x.kind);
                assert!(
                    common.contains(&quoted) || own.contains(&quoted),
                    "{} not in the guest",
                    x.kind
                );
                let n = runs
                    .iter()
                    .flatten()
                    .filter(|vm| vm.kinds.iter().any(|y| y.kind == x.kind))
                    .count();
                assert_eq!(n, 1, "{} runs {n} times", x.kind);
            }
            for run in &runs {
                let cpus: Vec<u32> = run.iter().flat_map(|vm| vm.cpus.clone()).collect();
                assert!(cpus.iter().all(|&c| (2..CPUS).contains(&c)), "{cpus:?}");
                let mut sorted = cpus.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len(), cpus.len(), "a CPU used twice: {cpus:?}");
            }
        }
    }

    #[test]
    fn at_least_40_kinds_per_architecture() {
        assert!(kinds(Arch::Aarch64).count() >= 40);
        assert!(kinds(Arch::Riscv64).count() >= 40);
        assert!(kinds(Arch::X86_64).count() >= 40);
    }
}
