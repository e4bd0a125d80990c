//! riscv64 support: the hypervisor runs in HS-mode (RISC-V H extension), started by
//! OpenSBI; guests run in VS-mode behind a G-stage translation.
//!
//! `board`, `gstage`, `image`, `insn`, `sbi` and `guest_dtb` are pure and build
//! everywhere (host unit tests); the rest runs only on the bare-metal target.
pub mod board;
pub mod gstage;
pub mod guest_dtb;
pub mod image;
pub mod insn;
pub mod sbi;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod csr;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod hal_impl;
#[cfg(target_os = "none")]
mod hostplic;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod vcpu;

#[cfg(target_os = "none")]
pub use hal_impl::Riscv64;
#[cfg(target_os = "none")]
pub(crate) use target::host;

#[cfg(target_os = "none")]
mod target {
    use super::csr::{self, irq, set_csr, write_csr};
    use super::guest_dtb::{self, GuestCpus};
    use super::{board, boot, firmware, trap, vcpu};
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

    /// Boot hart: console (needed to say why we stop), what the board must have,
    /// the H extension, Sstc, then the hart's own set-up.
    pub fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
        if let Some(u) = p.console {
            crate::console::init(u);
        }
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

    /// Every hart: trap vector, delegation of what guests handle themselves.
    pub fn init_secondary(_p: &BoardInfo) -> Result<(), &'static str> {
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
        write_csr!(csr::HCOUNTEREN, 0b010);
        let stce = if vcpu::sstc() { csr::HENVCFG_STCE } else { 0 };
        let _ = trap::try_henvcfg(stce);
        // The guest's FP state lives in the hart; HS-level FS must not be Off.
        set_csr!(csr::SSTATUS, csr::sstatus::FS_DIRTY);
        // Host interrupts: kicks (software) and the emulated guest timer.
        write_csr!(csr::SIE, irq::SSI | irq::STI);
        Ok(())
    }

    /// No physical address size register: G-stage tables are Sv39x4 (41 bits).
    pub fn pa_bits() -> u32 {
        56
    }

    /// The vCPU a guest means by a hart id (the guest DTB gives vCPU i hart id i).
    pub fn vcpu_index(hartid: u64) -> Option<usize> {
        usize::try_from(hartid).ok()
    }

    /// Hart id of the hart running this code.
    pub fn this_cpu() -> u64 {
        boot::hartid()
    }

    /// Starts hart `hartid` at the secondary entry with its stack slot.
    pub fn start_cpu(p: &BoardInfo, hartid: u64, slot: usize) -> Result<(), i64> {
        if !board::can_run_vcpus(p, hartid) {
            // Not started: it could not run a vCPU.
            return Err(super::sbi::ERR_NOT_SUPPORTED);
        }
        let entry = boot::secondary_entry as *const () as u64;
        // Test only: start the first secondary at `_start`, as OpenSBI 1.1 sometimes
        // does (see `boot`); it must find its way to the secondary path.
        #[cfg(feature = "test-reenter-start")]
        let entry = if slot == 1 {
            boot::image_entry()
        } else {
            entry
        };
        boot::expect_hart(slot, hartid);
        match firmware::hart_start(hartid, entry, slot as u64) {
            0 => Ok(()),
            e => {
                boot::forget_hart(slot);
                Err(e)
            }
        }
    }

    /// Interrupts hart `hartid` so it leaves its guest and looks at its VM's state.
    pub fn kick(hartid: u64) {
        firmware::send_ipi(1, hartid);
    }

    /// Waits for an interrupt on a hart not running a guest (interrupts stay masked in
    /// HS-mode) and handles what arrived: kicks end the wait, interrupts of the
    /// hypervisor's own devices (the console UART, through the host PLIC) go to
    /// `host`, a stale timer of a vCPU that is not running is dropped.
    pub fn idle(host: &mut dyn FnMut(u32)) {
        csr::wfi();
        super::csr::clear_csr!(csr::SIP, irq::SSI);
        while let Some(source) = super::hostplic::claim() {
            host(source);
            super::hostplic::complete(source);
        }
        if super::csr::read_csr!(csr::SIP) & irq::STI != 0 {
            firmware::set_timer(u64::MAX);
        }
    }

    /// Ends the machine: the SiFive test device when enabled and present (exit status
    /// 0 or 1), else SBI system reset.
    pub fn power_off(p: &BoardInfo, success: bool) -> ! {
        if cfg!(feature = "sifive-test-exit") {
            if let Some(t) = p.firmware.sifive_test {
                firmware::sifive_test_exit(t.base, if success { 0 } else { 1 });
            }
        }
        firmware::shutdown(success);
        loop {
            csr::wfi();
        }
    }

    /// Zeroes guest RAM at `[hpa, hpa + len)`.
    ///
    /// # Safety
    /// The range must be RAM the caller owns (a VM's, with no vCPU using it).
    pub unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        // SAFETY: guaranteed by the caller.
        unsafe { core::ptr::write_bytes(hpa as *mut u8, 0, len as usize) };
    }

    /// Makes what the hypervisor wrote to guest memory visible to instruction fetch
    /// (data caches are coherent on RISC-V); each vCPU's hart also fences at start.
    pub fn clean_for_guest(_hpa: u64, _len: u64) {
        csr::fence_i();
    }

    /// A G-stage PTE of `gpa` went from invalid to valid: this hart may hold the old
    /// (invalid) translation, so it drops it. Other harts that do fault again and
    /// come here too.
    pub fn stage2_mapped(gpa: u64) {
        csr::hfence_gvma_addr(gpa);
    }

    /// G-stage PTEs of the VM whose vCPU runs on this hart became invalid, while its
    /// other vCPUs are off (they fence when they start).
    pub fn stage2_unmapped() {
        csr::hfence_all();
    }

    /// The DTB a VM gets when its config names none (see `guest_dtb::for_vm`).
    pub fn guest_dtb(spec: &crate::spec::VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
        use crate::devices::emu_type;
        let host = host().ok_or_else(|| String::from("host not initialised"))?;
        if !spec
            .emu_devices
            .iter()
            .any(|d| d.emu_type == emu_type::PLIC)
        {
            return Err(
                "not supported yet: a riscv64 VM without an emulated PLIC (emu_type 0x30)".into(),
            );
        }
        let mut isa = guest_dtb::guest_isa(host.isa, GUEST_EXTENSIONS);
        if host.sstc {
            isa.push_str("_sstc");
        }
        let cpus = GuestCpus {
            count: spec.cpu_num as usize,
            isa: &isa,
            timebase_hz: host.timebase_hz,
        };
        guest_dtb::for_vm(spec, memory, cpus, vplic::NDEV)
    }
}
