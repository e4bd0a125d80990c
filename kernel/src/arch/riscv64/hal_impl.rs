//! riscv64's implementation of the hardware interface (`crate::hal`): hart
//! bring-up (set-up in `host.rs`), kicks and idling through SBI and the host PLIC,
//! fences, and the vCPU (whose work is in `vcpu.rs`).

use super::csr::{self, irq};
use super::{board, boot, firmware, host, hostplic};
use crate::firmware::{BoardInfo, DiscoveryError, Handover};
use crate::hal::{Arch, Cpu, DirectWindow, GuestBoot, HostIrq, HostPorts, HostTimer, MemoryOps};
use crate::spec::VmSpec;
use alloc::string::String;
use alloc::vec::Vec;

/// The riscv64 architecture (HS-mode with the H extension).
pub struct Riscv64;

impl Cpu for Riscv64 {
    /// The device tree the boot loader passed in a1.
    fn discover(handover: u64) -> Result<Handover, DiscoveryError> {
        crate::firmware::fdt::handover(handover)
    }
    fn init_primary(p: &BoardInfo) -> Result<(), &'static str> {
        host::init_primary(p)
    }
    fn init_secondary(p: &BoardInfo) -> Result<(), &'static str> {
        host::init_secondary(p)
    }

    /// The hart id of the hart running this code.
    fn this_cpu() -> u64 {
        boot::hartid()
    }

    /// Starts hart `hartid` at the secondary entry with its stack slot (SBI HSM).
    fn start_cpu(p: &BoardInfo, hartid: u64, slot: usize) -> Result<(), i64> {
        if !board::can_run_vcpus(p, hartid) {
            // Not started: it could not run a vCPU.
            return Err(super::sbi::ERR_NOT_SUPPORTED);
        }
        let entry = boot::secondary_entry as *const () as u64;
        let opaque = slot as u64;
        // Test only, what OpenSBI 1.1 sometimes does (see `boot`): the first
        // secondary starts at `_start`, the second with a stale a1 (the DTB address
        // the cold boot had); both must find their slot.
        #[cfg(feature = "test-reenter-start")]
        let (entry, opaque) = match slot {
            1 => (boot::image_entry(), opaque),
            // Where QEMU virt's OpenSBI puts the DTB of a 1 GiB machine.
            2 => (entry, 0xbfe0_0000),
            _ => (entry, opaque),
        };
        boot::expect_hart(slot, hartid);
        match firmware::hart_start(hartid, entry, opaque) {
            0 => Ok(()),
            e => {
                boot::forget_hart(slot);
                Err(e)
            }
        }
    }

    /// Ends the machine: the SiFive test device when enabled and present (exit
    /// status 0 or 1), else SBI system reset.
    fn power_off(p: &BoardInfo, success: bool) -> ! {
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

    /// SBI system reset (cold reboot).
    fn reboot(_: &BoardInfo) -> ! {
        firmware::reboot();
        loop {
            csr::wfi();
        }
    }
}

impl HostIrq for Riscv64 {
    /// A kick is an SBI IPI: the hart leaves its guest and looks at its VM's state.
    fn kick(hartid: u64) {
        firmware::send_ipi(1, hartid);
    }

    /// Waits with interrupts masked in HS-mode and handles what arrived: kicks end
    /// the wait, interrupts of the hypervisor's own devices (the console UART,
    /// through the host PLIC) go to `host`, a stale timer of a vCPU that is not
    /// running is dropped.
    fn idle(host: &mut dyn FnMut(u32)) {
        csr::wfi();
        csr::clear_csr!(csr::SIP, irq::SSI);
        while let Some(source) = hostplic::claim() {
            host(source);
            hostplic::complete(source);
        }
        if csr::read_csr!(csr::SIP) & irq::STI != 0 {
            firmware::set_timer(u64::MAX);
        }
    }
}

impl HostTimer for Riscv64 {
    fn counter() -> u64 {
        super::vcpu::counter()
    }
    fn counter_hz() -> u64 {
        super::vcpu::counter_hz()
    }
}

/// No I/O port space: reads are all ones, writes go nowhere.
impl HostPorts for Riscv64 {
    fn port_read(_port: u16) -> u8 {
        0xff
    }
    fn port_write(_port: u16, _value: u8) {}
}

impl MemoryOps for Riscv64 {
    /// HFENCE.GVMA fences this hart only.
    const STAGE2_UNMAP_ALL_CPUS: bool = false;
    /// This hart may hold the old (invalid) translation of `gpa`, so it drops it.
    /// Other harts that do fault again and come here too.
    fn stage2_mapped(gpa: u64) {
        csr::hfence_gvma_addr(gpa);
    }

    /// The VM's other vCPUs are off when this happens (they fence when they start).
    fn stage2_unmapped() {
        csr::hfence_all();
    }

    /// 64 bytes per loop round (eight stores of the zero register) where `hpa` and
    /// `len` allow it: the fill of a first-touch block is guest time, and the
    /// generic `memset` spends nearly three instructions per 8 bytes.
    unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        if len == 0 || !hpa.is_multiple_of(64) || !len.is_multiple_of(64) {
            // SAFETY: guaranteed by the caller (see the trait); the identity map
            // makes `hpa` a pointer.
            unsafe { core::ptr::write_bytes(hpa as *mut u8, 0, len as usize) };
            return;
        }
        // SAFETY: as above, [hpa, hpa + len) is writable guest RAM nothing else uses
        // now; the loop stores only inside it (len is a non-zero multiple of 64) and
        // touches no other memory or register than the two it is given.
        unsafe {
            core::arch::asm!(
                "1:",
                "sd zero, 0({p})",
                "sd zero, 8({p})",
                "sd zero, 16({p})",
                "sd zero, 24({p})",
                "sd zero, 32({p})",
                "sd zero, 40({p})",
                "sd zero, 48({p})",
                "sd zero, 56({p})",
                "addi {p}, {p}, 64",
                "bltu {p}, {end}, 1b",
                p = inout(reg) hpa => _,
                end = in(reg) hpa + len,
                options(nostack),
            )
        };
    }

    /// 64 bytes per turn when both sides are 8-byte aligned: under QEMU's TCG the
    /// compiler's `memcpy` (8 bytes per turn, each turn a loop test) is slow for a
    /// 31 MiB Linux image, which a bare boot gets from QEMU's loader for free; the
    /// tail and unaligned copies go through `memcpy`.
    unsafe fn copy_to_guest_ram(hpa: u64, data: &[u8]) {
        let src = data.as_ptr() as u64;
        let bulk = if hpa.is_multiple_of(8) && src.is_multiple_of(8) {
            data.len() as u64 & !63
        } else {
            0
        };
        if bulk != 0 {
            // SAFETY: the caller owns [hpa, hpa + len) and it does not overlap `data`;
            // the loop reads only [src, src + bulk) and writes only [hpa, hpa + bulk),
            // both 8-byte aligned (bulk is a non-zero multiple of 64), and touches no
            // other register than those it is given.
            unsafe {
                core::arch::asm!(
                    "1:",
                    "ld t0, 0({s})",
                    "ld t1, 8({s})",
                    "ld t2, 16({s})",
                    "ld t3, 24({s})",
                    "sd t0, 0({d})",
                    "sd t1, 8({d})",
                    "sd t2, 16({d})",
                    "sd t3, 24({d})",
                    "ld t0, 32({s})",
                    "ld t1, 40({s})",
                    "ld t2, 48({s})",
                    "ld t3, 56({s})",
                    "sd t0, 32({d})",
                    "sd t1, 40({d})",
                    "sd t2, 48({d})",
                    "sd t3, 56({d})",
                    "addi {s}, {s}, 64",
                    "addi {d}, {d}, 64",
                    "bltu {d}, {end}, 1b",
                    s = inout(reg) src => _,
                    d = inout(reg) hpa => _,
                    end = in(reg) hpa + bulk,
                    out("t0") _,
                    out("t1") _,
                    out("t2") _,
                    out("t3") _,
                    options(nostack),
                )
            };
        }
        let rest = &data[bulk as usize..];
        // SAFETY: the rest of the caller's range, as above.
        unsafe {
            core::ptr::copy_nonoverlapping(rest.as_ptr(), (hpa + bulk) as *mut u8, rest.len())
        };
    }

    /// Data caches are coherent on RISC-V: only instruction fetch needs a fence
    /// (each vCPU's hart also fences at start).
    fn clean_for_guest(_hpa: u64, _len: u64) {
        csr::fence_i();
    }
}

impl GuestBoot for Riscv64 {
    fn guest_description(spec: &VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
        host::guest_dtb(spec, memory)
    }
    fn kernel_footprint(
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        super::image::FORMAT.kernel_footprint(image, load, others)
    }
    /// riscv64 VMs have none: every device they see is emulated or passed through.
    fn direct_windows(_spec: &VmSpec, _p: &BoardInfo) -> Result<Vec<DirectWindow>, String> {
        Ok(Vec::new())
    }
}

impl Arch for Riscv64 {
    type Vcpu = super::vcpu::Vcpu;
    type Stage2Regs = super::vcpu::Stage2Regs;
    type Stage2 = super::gstage::Stage2;
    const MAX_IPA_BITS: u32 = super::gstage::MAX_IPA_BITS;
    /// hgatp.VMID holds up to 14 bits; a hart may implement fewer, which is
    /// harmless here: a hart only ever runs one VM and fences its whole G-stage TLB
    /// when a vCPU starts (`vcpu::activate`).
    const MAX_VMID: u16 = 255;
    const CONSOLE: crate::devices::ConsoleKind = crate::devices::ConsoleKind::Uart16550;
    const LIMITS: vmconfig::ArchLimits = vmconfig::RISCV64;
    /// No interrupt is forwarded from a physical one through the PLIC.
    const PERCPU_HW_IRQS: &'static [u32] = &[];
    /// No physical-address-size register: the Sv39/Sv48 PTE's 56-bit addresses.
    fn pa_bits() -> u32 {
        56
    }
    fn stage2_regs(s2: &Self::Stage2, vmid: u16) -> Self::Stage2Regs {
        s2.regs(vmid)
    }
    /// The guest DTB gives vCPU i hart id i.
    fn vcpu_id(index: usize) -> u64 {
        index as u64
    }
    fn vcpu_index(id: u64) -> Option<usize> {
        usize::try_from(id).ok()
    }
}
