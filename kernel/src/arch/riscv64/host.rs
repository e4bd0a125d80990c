//! What the boot hart finds out about the machine (H extension, Sstc, ISA,
//! timebase) and sets up on every hart, and the device tree a VM gets from it.

use super::csr::{self, irq, set_csr, write_csr};
use super::guest_dtb::{self, GuestCpus};
use super::{board, boot, mmu, trap, vcpu};
use crate::devices::vplic;
use crate::firmware::{BoardInfo, Isa};
use alloc::string::String;
use alloc::vec::Vec;
use spin::Once;

/// What the boot hart found out about the machine, for vCPUs and guest DTBs.
pub struct HostInfo {
    /// Guests get the Sstc timer (vstimecmp); else SBI set_timer is emulated.
    pub sstc: bool,
    pub isa: Isa,
    pub timebase_hz: u64,
}

static HOST: Once<HostInfo> = Once::new();

pub fn host() -> Option<&'static HostInfo> {
    HOST.get()
}

/// Multi-letter extensions a guest may see (they need no hypervisor support).
const GUEST_EXTENSIONS: &[&str] = &[
    "zicsr",
    "zifencei",
    "zihintpause",
    "zba",
    "zbb",
    "zbc",
    "zbs",
];

/// Boot hart: console (needed to say why we stop), the HS-mode identity map with
/// the stacks' gaps, what the board must have, the H extension, Sstc, then
/// the hart's own set-up.
pub fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
    if let Some(u) = p.console {
        crate::console::init(u);
    }
    mmu::build(
        p.ram(),
        &boot::guard_pages(),
        crate::arch::stacks::GUARD_SIZE as u64,
    )
    .map_err(|e| match e {
        mmu::MapError::TooFragmented => "RAM map too fragmented for the HS-mode page tables",
        mmu::MapError::OutOfReach => {
            "the hypervisor's stacks lie beyond the 256 GiB its Sv39 map reaches"
        }
    })?;
    mmu::enable()?;
    board::check(p)?;
    if trap::probe_hstatus().is_none() {
        return Err(
            "this hart has no RISC-V H extension (hypervisor extension), so it \
             cannot run virtual machines (QEMU: -cpu rv64,h=true)",
        );
    }
    let isa = board::common_isa(p)?;
    let stce = isa.sstc()
        && trap::try_henvcfg(csr::HENVCFG_STCE).is_some_and(|v| v & csr::HENVCFG_STCE != 0);
    let timebase_hz = board::timebase_hz(p)?;
    HOST.call_once(|| HostInfo {
        sstc: stce,
        isa,
        timebase_hz,
    });
    let timer = if stce {
        "Sstc (vstimecmp)"
    } else {
        "SBI set_timer emulated with the host timer"
    };
    crate::info!("hv: RISC-V H extension present; guest timer: {timer}");
    init_cpu()?;
    if super::hostplic::init(p, boot::hartid()) {
        // Console input interrupts come to the boot hart.
        set_csr!(csr::SIE, irq::SEI);
    }
    Ok(())
}

/// Every hart: the HS-mode map, trap vector, delegation of what guests handle
/// themselves.
pub fn init_secondary(_p: &BoardInfo) -> Result<(), &'static str> {
    mmu::enable()?;
    if trap::probe_hstatus().is_none() {
        return Err("no H extension on this hart");
    }
    init_cpu()
}

fn init_cpu() -> Result<(), &'static str> {
    write_csr!(csr::STVEC, trap::vector());
    write_csr!(csr::SSCRATCH, 0);
    write_csr!(csr::HEDELEG, vcpu::HEDELEG);
    write_csr!(csr::HIDELEG, vcpu::HIDELEG);
    write_csr!(csr::HIE, 0);
    write_csr!(csr::HVIP, 0);
    // Only time readable in the guest: cycle and instret count the hypervisor's
    // own work too, so reading them traps and is emulated (`Vcpu`).
    write_csr!(csr::HCOUNTEREN, csr::HCOUNTEREN_TM);
    let stce = if vcpu::sstc() { csr::HENVCFG_STCE } else { 0 };
    let _ = trap::try_henvcfg(stce);
    // The guest's FP state lives in the hart; HS-level FS must not be Off.
    set_csr!(csr::SSTATUS, csr::sstatus::FS_DIRTY);
    // Host interrupts: kicks (software) and the emulated guest timer.
    write_csr!(csr::SIE, irq::SSI | irq::STI);
    Ok(())
}

/// The DTB a VM gets when its config names none (see `guest_dtb::for_vm`).
pub fn guest_dtb(spec: &crate::spec::VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
    let host = host().ok_or_else(|| String::from("host not initialised"))?;
    let mut isa = guest_dtb::guest_isa(host.isa, GUEST_EXTENSIONS);
    if host.sstc {
        isa.push_str("_sstc");
    }
    let cpus = GuestCpus {
        count: spec.cpu_num as usize,
        isa: &isa,
        timebase_hz: host.timebase_hz,
    };
    let seed = crate::entropy::guest_seed(u64::from(spec.id), vcpu::counter());
    guest_dtb::for_vm(
        spec,
        memory,
        cpus,
        vplic::NDEV,
        seed.as_ref().map(|s| &s[..]),
    )
}
