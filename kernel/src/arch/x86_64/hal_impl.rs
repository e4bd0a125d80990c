//! x86_64's implementation of the hardware interface (`crate::hal`): the board from
//! PVH + ACPI, SVM and nested paging checked on every CPU, the local APIC for kicks
//! and starting CPUs, the TSC as the counter (its rate measured against the ACPI PM
//! timer), power-off through ACPI (or QEMU's isa-debug-exit for a failure).
//!
//! VMs boot as Multiboot (v1) kernels: loaded by their header
//! ([`vmconfig::multiboot`]), started with the information block
//! ([`super::multiboot`]) at EBX; or, when the kernel is a bzImage
//! ([`vmconfig::bzimage`]), with Linux's 32-bit boot protocol: the zero page with
//! the VM's ACPI tables ([`super::linux`], [`super::acpi_guest`]) at ESI.

use super::{boot, lapic, port, svm};
use crate::firmware::{BoardInfo, DiscoveryError, Handover};
use crate::hal::{Arch, Cpu, DirectWindow, GuestBoot, HostIrq, HostPorts, HostTimer, MemoryOps};
use crate::spec::VmSpec;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// The x86_64 architecture (AMD SVM with nested paging).
pub struct X86_64;

/// TSC ticks per second, measured by the boot CPU.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// The BIOS data area's word with COM1's I/O base.
const BDA_COM1: u64 = 0x400;
/// The ACPI PM timer's rate.
const PM_TIMER_HZ: u64 = 3_579_545;
/// isa-debug-exit's port (the board's `-device isa-debug-exit,iobase=0xf4`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// PM1 control: sleep enable; SLP_TYP at bits 12:10.
const SLP_EN: u16 = 1 << 13;
/// EFER and its SVM enable bit.
const MSR_EFER: u32 = 0xc000_0080;
const EFER_SVME: u64 = 1 << 12;
const MSR_VM_CR: u32 = 0xc001_0114;

/// What CPUID (and VM_CR) say about SVM on this CPU.
fn features() -> svm::Features {
    let max_ext_leaf = port::cpuid(0x8000_0000, 0)[0];
    let ext_ecx = if max_ext_leaf >= 0x8000_0001 {
        port::cpuid(0x8000_0001, 0)[2]
    } else {
        0
    };
    let (asids, svm_edx) = if max_ext_leaf >= 0x8000_000a && ext_ecx & svm::EXT_ECX_SVM != 0 {
        let r = port::cpuid(0x8000_000a, 0);
        (r[1], r[3])
    } else {
        (0, 0)
    };
    let vm_cr = if ext_ecx & svm::EXT_ECX_SVM != 0 {
        port::rdmsr(MSR_VM_CR)
    } else {
        0
    };
    svm::Features {
        max_ext_leaf,
        ext_ecx,
        svm_edx,
        asids,
        vm_cr,
    }
}

/// Checks SVM + nested paging and turns SVM on (EFER.SVME) on this CPU.
fn enable_svm() -> Result<(), &'static str> {
    svm::check(&features())?;
    // SAFETY: SVM exists and is not disabled (checked above); SVME only makes the
    // SVM instructions usable.
    unsafe { port::wrmsr(MSR_EFER, port::rdmsr(MSR_EFER) | EFER_SVME) };
    super::world::init_cpu(boot::current_slot());
    Ok(())
}

/// Measures the TSC against the ACPI PM timer over about 10 ms.
fn measure_tsc(b: &BoardInfo) -> Result<u64, &'static str> {
    let (pm, wide) = b
        .firmware
        .acpi
        .and_then(|a| a.pm_timer)
        .ok_or("no ACPI PM timer (FADT) to measure the TSC rate against")?;
    let mask: u32 = if wide { u32::MAX } else { 0xff_ffff };
    let ticks = (PM_TIMER_HZ / 100) as u32;
    let t0 = port::inl(pm) & mask;
    let c0 = port::rdtsc();
    let mut spins: u64 = 0;
    loop {
        let d = (port::inl(pm) & mask).wrapping_sub(t0) & mask;
        if d >= ticks {
            let c1 = port::rdtsc();
            return Ok((c1 - c0) * PM_TIMER_HZ / d as u64);
        }
        spins += 1;
        if spins > 100_000_000 {
            return Err("the ACPI PM timer does not count");
        }
    }
}

fn lapic_base(b: &BoardInfo) -> Result<u64, &'static str> {
    b.apic()
        .map(|a| a.lapic)
        .ok_or("no local APIC in the board description (ACPI MADT)")
}

impl Cpu for X86_64 {
    /// The PVH start info QEMU passed in EBX; COM1 from the BIOS data area. RAM above
    /// 4 GiB is mapped with 1 GiB pages (up to 512 GiB); RAM the map cannot reach (no
    /// 1 GiB pages) is left out.
    fn discover(start_info: u64) -> Result<Handover, DiscoveryError> {
        // SAFETY: the BIOS data area (physical 0x400) is identity-mapped; reading a
        // word there has no side effect.
        let com1 = unsafe { core::ptr::read_volatile(BDA_COM1 as *const u16) };
        // SAFETY: the start info, its memory map and the ACPI tables lie in the first
        // 4 GiB, identity-mapped, and nothing writes them.
        let mut h = unsafe { crate::firmware::pvh::handover(start_info, Some(com1)) }?;
        let top = h.board.ram().iter().map(|r| r.end()).max().unwrap_or(0);
        let mapped = boot::map_high(top);
        let mut ram = crate::firmware::RangeList::new();
        for r in h.board.ram().iter().filter(|r| r.base < mapped) {
            let end = r.end().min(mapped);
            let _ = ram.push(crate::firmware::Range {
                base: r.base,
                size: end - r.base,
            });
        }
        h.board.ram = ram;
        Ok(h)
    }

    fn init_primary(b: &BoardInfo) -> Result<(), &'static str> {
        // The legacy PICs masked: device interrupts go through the I/O APIC.
        port::outb(0x21, 0xff);
        port::outb(0xa1, 0xff);
        enable_svm()?;
        lapic::init(lapic_base(b)?);
        TSC_HZ.store(measure_tsc(b)?, Ordering::Relaxed);
        Ok(())
    }

    fn init_secondary(b: &BoardInfo) -> Result<(), &'static str> {
        enable_svm()?;
        lapic::init(lapic_base(b)?);
        Ok(())
    }

    /// The initial APIC id of this CPU (CPUID 1 EBX[31:24]).
    fn this_cpu() -> u64 {
        (port::cpuid(1, 0)[1] >> 24) as u64
    }

    fn start_cpu(_b: &BoardInfo, id: u64, slot: usize) -> Result<(), i64> {
        boot::start_ap(id, slot, TSC_HZ.load(Ordering::Relaxed))
    }

    /// A failure ends QEMU through isa-debug-exit (feature `isa-debug-exit`: QEMU
    /// exits with status 3); otherwise ACPI S5 (QEMU exits 0).
    fn power_off(b: &BoardInfo, success: bool) -> ! {
        if !success && cfg!(feature = "isa-debug-exit") {
            port::outl(DEBUG_EXIT_PORT, 1);
        }
        if let Some(a) = b.firmware.acpi {
            if let (Some(cnt), Some((typ_a, typ_b))) = (a.pm1a_cnt, a.s5) {
                port::outw(cnt, (typ_a & 7) << 10 | SLP_EN);
                if let Some(cnt_b) = a.pm1b_cnt {
                    port::outw(cnt_b, (typ_b & 7) << 10 | SLP_EN);
                }
            }
        }
        port::halt_forever()
    }

    /// The PC's reset control register (0xCF9: a hard reset, as q35 and real
    /// chipsets have it), then the keyboard controller's reset line as a fallback.
    fn reboot(_b: &BoardInfo) -> ! {
        port::outb(0xcf9, 0x02);
        port::outb(0xcf9, 0x06);
        port::outb(0x64, 0xfe);
        port::halt_forever()
    }
}

impl HostIrq for X86_64 {
    /// A fixed IPI on the kick vector.
    fn kick(id: u64) {
        lapic::ipi(id, lapic::KICK_VECTOR);
    }

    /// Waits with interrupts on for one to arrive (the kick handler acknowledges
    /// it). No host device interrupts yet: the console is polled.
    fn idle(_host: &mut dyn FnMut(u32)) {
        port::wait_interrupt();
    }
}

impl HostTimer for X86_64 {
    fn counter() -> u64 {
        port::rdtsc()
    }
    fn counter_hz() -> u64 {
        TSC_HZ.load(Ordering::Relaxed).max(1)
    }
}

impl HostPorts for X86_64 {
    fn port_read(p: u16) -> u8 {
        port::inb(p)
    }
    fn port_write(p: u16, v: u8) {
        port::outb(p, v)
    }
}

impl MemoryOps for X86_64 {
    /// Each VMRUN flushes the VM's ASID, but a vCPU running on another CPU keeps
    /// its entries until its next VMRUN: an unmap does not reach it at once.
    const STAGE2_UNMAP_ALL_CPUS: bool = false;
    /// Nothing: every VMRUN flushes the VM's ASID (TLB_CONTROL), so a changed
    /// nested entry is never used stale by a vCPU that enters afterwards.
    fn stage2_mapped(_gpa: u64) {}
    fn stage2_unmapped() {}

    unsafe fn zero_guest_ram(hpa: u64, len: u64) {
        // SAFETY: guaranteed by the caller (see the trait); the identity map makes
        // `hpa` a pointer.
        unsafe { core::ptr::write_bytes(hpa as *mut u8, 0, len as usize) };
    }

    /// Caches are coherent on x86, instruction fetch included.
    fn clean_for_guest(_hpa: u64, _len: u64) {}
}

/// Where the Multiboot information block goes: the config's `dtb_load_addr`, else
/// the start of the VM's first memory region (the core loads the boot description
/// there and hands its address to vCPU 0, here in EBX).
fn info_gpa(spec: &VmSpec, memory: &[(u64, u64)]) -> u64 {
    spec.dtb_load_gpa
        .or_else(|| spec.memory_regions.first().map(|r| r.gpa))
        .or_else(|| memory.first().map(|m| m.0))
        .unwrap_or(0)
}

/// The kernel's Multiboot layout, refused when the config loads it elsewhere than
/// its header says.
fn multiboot_layout(image: &[u8], load: u64) -> Result<vmconfig::multiboot::Layout, String> {
    let l =
        vmconfig::multiboot::layout(image).map_err(|e| alloc::format!("the kernel image: {e}"))?;
    if l.load_addr != load {
        return Err(alloc::format!(
            "the kernel image's Multiboot header loads it at {:#x}, the config (kernel_load_addr) at {load:#x}",
            l.load_addr
        ));
    }
    Ok(l)
}

/// The bzImage's setup header when the kernel is one (a Linux VM: the 32-bit boot
/// protocol, `super::linux`); None for a Multiboot kernel.
fn bzimage(image: &[u8]) -> Result<Option<vmconfig::bzimage::SetupHeader>, String> {
    vmconfig::bzimage::parse(image).map_err(|e| alloc::format!("the kernel image: {e}"))
}

/// What a Linux VM's ACPI tables describe: its vCPUs and its 16550s (emu_type 0x2
/// at an I/O port, their `irq` an I/O APIC pin).
fn platform(spec: &VmSpec) -> super::acpi_guest::Platform {
    let serials = spec
        .emu_devices
        .iter()
        .filter(|d| d.emu_type == 0x2)
        .filter_map(|d| {
            Some(super::acpi_guest::Serial {
                port: u16::try_from(d.base_gpa).ok()?,
                len: u8::try_from(d.length).ok()?,
                gsi: d.irq,
            })
        })
        .collect();
    let channels = spec
        .channels
        .iter()
        .map(|c| super::acpi_guest::Channel {
            name: String::from(&*c.name),
            gpa: c.gpa,
            size: c.size,
            writable: c.writable,
            doorbell: c.doorbell,
        })
        .collect();
    super::acpi_guest::Platform {
        vcpus: spec.cpu_num,
        serials,
        channels,
    }
}

impl GuestBoot for X86_64 {
    /// A bzImage's zero page, command line and ACPI tables (`super::linux`), else
    /// the Multiboot (v1) information block: the VM's RAM and command line (with
    /// its channels, `super::multiboot::cmdline_with_channels`).
    fn guest_description(spec: &VmSpec, memory: &[(u64, u64)]) -> Result<Vec<u8>, String> {
        let at = info_gpa(spec, memory);
        if bzimage(spec.kernel.data)?.is_some() {
            let p = platform(spec);
            let vm = super::linux::Vm {
                image: spec.kernel.data,
                cmdline: &spec.cmdline,
                memory,
                initrd: spec.ramdisk.map(|r| (r.load_gpa, r.data.len() as u64)),
                platform: &p,
                tsc_khz: Self::counter_hz() / 1000,
            };
            return super::linux::description(&vm, at);
        }
        let cmdline = super::multiboot::cmdline_with_channels(&spec.cmdline, &spec.channels);
        Ok(super::multiboot::info(memory, &cmdline, at))
    }
    /// The kernel with its bss: from the bzImage's init_size or the Multiboot
    /// header.
    fn kernel_footprint(
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        if let Some(h) = bzimage(image)? {
            return h
                .check_placement(image.len() as u64, load, others)
                .map(Some);
        }
        let l = multiboot_layout(image, load)?;
        Ok(Some((l.load_addr, l.end)))
    }
    /// A bzImage's protected-mode kernel (the file after its setup sectors), or
    /// the part of the file the Multiboot header names (an ELF's headers and
    /// symbols are left out).
    fn kernel_load(image: &'static [u8], load: u64) -> Result<(u64, &'static [u8]), String> {
        if let Some(h) = bzimage(image)? {
            let body = image
                .get(h.setup_len()..)
                .ok_or("the kernel image: the bzImage ends inside its setup sectors")?;
            return Ok((load, body));
        }
        let l = multiboot_layout(image, load)?;
        Ok((l.load_addr, &image[l.file_start..l.file_end]))
    }
    /// A Linux VM's vCPU 0 gets its zero page with [`super::linux::LINUX_START`].
    fn start_arg(spec: &VmSpec, description: u64) -> u64 {
        match bzimage(spec.kernel.data) {
            Ok(Some(_)) => description | super::linux::LINUX_START,
            _ => description,
        }
    }
    /// Nothing of the host goes to an x86 VM: its devices are emulated.
    fn direct_windows(spec: &VmSpec, _b: &BoardInfo) -> Result<Vec<DirectWindow>, String> {
        if spec.dtb.is_some() {
            return Err(String::from(
                "an x86_64 VM boots with a Multiboot information block or a Linux zero page, not a device tree (dtb_path)",
            ));
        }
        if let Some(d) = spec.passthrough_devices.first() {
            return Err(alloc::format!(
                "not supported yet: passthrough device \"{}\" on x86_64",
                d.name
            ));
        }
        Ok(Vec::new())
    }
}

impl Arch for X86_64 {
    type Vcpu = super::vcpu::Vcpu;
    type Stage2Regs = super::vcpu::Stage2Regs;
    type Stage2 = super::npt::Stage2;
    const MAX_IPA_BITS: u32 = super::npt::MAX_IPA_BITS;
    /// ASIDs: QEMU offers 16 per CPU; a CPU runs one VM at a time.
    const MAX_VMID: u16 = 15;
    const CONSOLE: crate::devices::ConsoleKind = crate::devices::ConsoleKind::Uart16550Ports;
    const LIMITS: vmconfig::ArchLimits = vmconfig::X86_64;
    const PERCPU_HW_IRQS: &'static [u32] = &[];
    /// CPUID 0x8000_0008 EAX[7:0].
    fn pa_bits() -> u32 {
        port::cpuid(0x8000_0008, 0)[0] & 0xff
    }
    fn stage2_regs(s2: &Self::Stage2, vmid: u16) -> Self::Stage2Regs {
        s2.regs(vmid)
    }
    /// vCPU i has APIC id i.
    fn vcpu_id(index: usize) -> u64 {
        index as u64
    }
    fn vcpu_index(id: u64) -> Option<usize> {
        usize::try_from(id).ok()
    }
}
