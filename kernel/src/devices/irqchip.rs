//! A VM's interrupt controller, behind one trait: the virtual GIC (v2 or v3) on
//! aarch64, the virtual PLIC on riscv64, local APICs + an I/O APIC on x86_64.
//! Devices raise lines through it, the core forwards inter-processor interrupts and
//! physical per-CPU interrupts to it, and the architecture's vCPU exchanges
//! interrupt state with the concrete model before entry and after exit (it reaches
//! the model through [`IrqChip::model`] and a downcast, so the core never names it).
//! [`for_vm`] chooses and sizes the chip a VM config describes.

use super::device::{Device, DeviceCtx, VmEvent};
use super::vgic::guest_version::{self, GuestGicVersion};
use super::vgic::Vgic;
use super::vplic::Vplic;
use super::x86apic::{Clock, X86Apic};
use super::{emu_type, MmioDevice, MmioError};
use crate::spec::VmSpec;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;

/// The chip's answer to an MSR access ([`IrqChip::msr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAnswer {
    /// Not one of the chip's registers.
    NotMine,
    /// The value read (0 for a write that was taken).
    Value(u64),
    /// The chip's register, but the access is refused: the vCPU takes the
    /// architecture's fault (#GP on x86).
    Refused,
}

pub trait IrqChip: Send {
    /// An access to one of the chip's MMIO windows; `window` is the `emu_type` the
    /// window was configured with (a GIC distributor, a PLIC, ...), `base` its
    /// guest-physical address (x86 names both of its windows with one `emu_type`).
    fn mmio(
        &mut self,
        vcpu: usize,
        window: u32,
        base: u64,
        offset: u64,
        width: u8,
        write: Option<u64>,
    ) -> Result<u64, MmioError>;
    /// Drives device interrupt line `line` (the number the VM config gives the
    /// device) to `level`. Lines the chip does not have are ignored.
    fn set_level(&mut self, line: u32, level: bool);
    /// An inter-processor interrupt from vCPU `from`, `value` in the chip's own
    /// encoding (the guest wrote it to the chip's interface). Requests that name no
    /// vCPU are dropped, as hardware does.
    fn ipi(&mut self, from: usize, value: u64);
    /// A physical per-CPU interrupt (a guest timer) fired for vCPU `vcpu`.
    fn inject(&mut self, vcpu: usize, line: u32);
    /// vCPUs that may have new interrupts to take since the last call (bit i = vCPU i).
    fn take_kicks(&mut self) -> u64;
    /// A model-specific register access of vCPU `vcpu` (`write` None for a read):
    /// the x86 chip's APIC MSRs; every other chip has none.
    fn msr(&mut self, _vcpu: usize, _msr: u32, _write: Option<u64>) -> MsrAnswer {
        MsrAnswer::NotMine
    }
    /// VM events the chip's registers asked for since the last call (an x86
    /// start-up IPI starts a vCPU), moved to `out`.
    fn take_events(&mut self, _out: &mut Vec<VmEvent>) {}
    /// Back to the power-on state (VM reset).
    fn reset(&mut self);
    /// The concrete model, for the architecture's vCPU to downcast.
    fn model(&mut self) -> &mut dyn Any;
}

/// The interrupt controller `spec` describes: a virtual GIC when its devices
/// describe one, a virtual PLIC when it has a PLIC window, else none; both at once
/// is refused. A GIC is built for the vCPUs named `vcpu_ids` (their MPIDRs), with
/// `hw_lines` its per-CPU interrupts backed by physical ones (see [`GicChip::new`]).
///
/// `arch` is the architecture's kind of interrupt controller. A PLIC architecture
/// (riscv64): its VMs always get the virtual PLIC, which also carries the harts'
/// software lines (SBI IPIs and remote fences): a VM without a PLIC window (a guest
/// of the SBI console and timer only) has no way to its registers but still its
/// IPIs. An APIC architecture (x86_64): every VM gets its local APICs and I/O APIC
/// (reading time from `clock`), whatever windows its config names.
pub fn for_vm(
    spec: &VmSpec,
    vcpu_ids: Vec<u64>,
    hw_lines: &'static [u32],
    arch: vmconfig::IrqChip,
    clock: Clock,
) -> Result<Option<Box<dyn IrqChip>>, String> {
    if arch == vmconfig::IrqChip::Apic {
        let apic =
            X86Apic::new(spec.cpu_num as usize, clock).map_err(|e| format!("virtual APIC: {e}"))?;
        return Ok(Some(Box::new(apic)));
    }
    let plic_arch = arch == vmconfig::IrqChip::Plic;
    let plic = spec
        .emu_devices
        .iter()
        .any(|d| d.emu_type == emu_type::PLIC);
    let v2 = match guest_version::version(&spec.emu_devices, spec.cpu_num)? {
        GuestGicVersion::None if plic || plic_arch => {
            let plic =
                Vplic::new(spec.cpu_num as usize).map_err(|e| format!("virtual PLIC: {e:?}"))?;
            return Ok(Some(Box::new(plic)));
        }
        GuestGicVersion::None => return Ok(None),
        _ if plic => {
            return Err(String::from(
                "emu_devices describe both a GIC and a PLIC: a VM has one interrupt controller",
            ))
        }
        GuestGicVersion::V3 => false,
        GuestGicVersion::V2 => true,
    };
    let gic = GicChip::new(vcpu_ids, spi_count(spec), v2, hw_lines)?;
    Ok(Some(Box::new(gic)))
}

/// SPIs of a virtual GIC: enough for every configured device interrupt, in whole
/// groups of 32 (GICD_TYPER.ITLinesNumber granularity), at least 64.
fn spi_count(spec: &VmSpec) -> u32 {
    let max = spec
        .emu_devices
        .iter()
        .map(|d| d.irq)
        .chain(spec.passthrough_devices.iter().map(|d| d.irq))
        .max();
    let needed = max.unwrap_or(0).saturating_sub(31);
    needed.div_ceil(32).max(2) * 32
}

/// One MMIO window of the VM's interrupt chip on its bus (a GIC distributor or
/// redistributor region, a GICv2 CPU interface, a PLIC, an x86 local APIC or I/O
/// APIC): accesses go to the chip with the window's `emu_type` and base, and the
/// VM events the chip asks for go to the VM. Without a chip the window reads as
/// zero.
pub struct ChipWindow {
    window: u32,
    base: u64,
}

impl ChipWindow {
    pub fn new(window: u32, base: u64) -> Self {
        Self { window, base }
    }

    fn access(
        &self,
        ctx: &mut DeviceCtx,
        off: u64,
        width: u8,
        write: Option<u64>,
    ) -> Result<u64, MmioError> {
        let vcpu = ctx.vcpu;
        let mut events = Vec::new();
        let r = match ctx.chip() {
            Some(chip) => {
                let r = chip.mmio(vcpu, self.window, self.base, off, width, write);
                chip.take_events(&mut events);
                r
            }
            None => Ok(0),
        };
        for e in events {
            ctx.post(e);
        }
        r
    }
}

impl Device for ChipWindow {
    fn mmio_read(&mut self, ctx: &mut DeviceCtx, off: u64, width: u8) -> Result<u64, MmioError> {
        self.access(ctx, off, width, None)
    }

    fn mmio_write(
        &mut self,
        ctx: &mut DeviceCtx,
        off: u64,
        width: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        self.access(ctx, off, width, Some(value)).map(|_| ())
    }

    /// The chip itself is reset by its VM.
    fn reset(&mut self) {}
}

/// A VM's virtual GIC and what it was built from (to rebuild it on reset).
pub struct GicChip {
    gic: Vgic,
    vcpu_ids: Vec<u64>,
    hw_lines: &'static [u32],
}

impl GicChip {
    /// A power-on GIC (v2 if `v2`) for vCPUs named by `vcpu_ids` (their MPIDRs) with
    /// `spis` shared interrupts; `hw_lines` are per-CPU interrupts backed by the
    /// physical ones (list-register HW bit).
    pub fn new(
        vcpu_ids: Vec<u64>,
        spis: u32,
        v2: bool,
        hw_lines: &'static [u32],
    ) -> Result<Self, String> {
        let gic = build_gic(&vcpu_ids, spis, v2, hw_lines)?;
        Ok(Self {
            gic,
            vcpu_ids,
            hw_lines,
        })
    }
}

fn build_gic(ids: &[u64], spis: u32, v2: bool, hw: &[u32]) -> Result<Vgic, String> {
    let err = |e| format!("virtual GIC: {e:?}");
    let mut gic = if v2 {
        Vgic::new_v2(ids, spis)
    } else {
        Vgic::new(ids, spis)
    }
    .map_err(err)?;
    for v in 0..ids.len() {
        for &line in hw {
            gic.set_hw(v, line, true).map_err(err)?;
        }
    }
    Ok(gic)
}

fn access(
    dev: &mut dyn MmioDevice,
    off: u64,
    width: u8,
    write: Option<u64>,
) -> Result<u64, MmioError> {
    match write {
        Some(v) => dev.write(off, width, v).map(|_| 0),
        None => dev.read(off, width),
    }
}

impl IrqChip for GicChip {
    fn mmio(
        &mut self,
        vcpu: usize,
        window: u32,
        _base: u64,
        off: u64,
        width: u8,
        write: Option<u64>,
    ) -> Result<u64, MmioError> {
        let gic = &mut self.gic;
        match window {
            emu_type::GIC_DIST if gic.is_v2() => access(&mut gic.dist_v2(vcpu), off, width, write),
            emu_type::GIC_DIST => access(&mut gic.dist(), off, width, write),
            emu_type::GIC_REDIST => access(&mut gic.redist_region(), off, width, write),
            _ => Ok(0),
        }
    }

    fn set_level(&mut self, line: u32, level: bool) {
        // Devices raise SPIs only; an INTID the GIC lacks was refused at creation.
        if line >= 32 {
            let _ = self.gic.set_level(line, level);
        }
    }

    fn ipi(&mut self, from: usize, value: u64) {
        let _ = self.gic.sgi(from, value);
    }

    fn inject(&mut self, vcpu: usize, line: u32) {
        let _ = self.gic.set_pending(line, vcpu);
    }

    fn take_kicks(&mut self) -> u64 {
        self.gic.take_kicks()
    }

    fn reset(&mut self) {
        let (spis, v2) = (self.gic.nr_spis(), self.gic.is_v2());
        if let Ok(fresh) = build_gic(&self.vcpu_ids, spis, v2, self.hw_lines) {
            self.gic = fresh;
        }
    }

    fn model(&mut self) -> &mut dyn Any {
        &mut self.gic
    }
}

impl IrqChip for Vplic {
    fn mmio(
        &mut self,
        _vcpu: usize,
        _window: u32,
        _base: u64,
        off: u64,
        width: u8,
        write: Option<u64>,
    ) -> Result<u64, MmioError> {
        access(self, off, width, write)
    }

    fn set_level(&mut self, line: u32, level: bool) {
        Vplic::set_level(self, line, level);
    }

    fn ipi(&mut self, _from: usize, value: u64) {
        self.post(value);
    }

    fn inject(&mut self, _vcpu: usize, _line: u32) {}

    fn take_kicks(&mut self) -> u64 {
        Vplic::take_kicks(self)
    }

    fn reset(&mut self) {
        if let Ok(fresh) = Vplic::new(self.harts()) {
            *self = fresh;
        }
    }

    fn model(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EmuDevice, InterruptMode, PassthroughDevice, TEST_SPEC};
    use alloc::borrow::Cow;
    use vmconfig::IrqChip::{Apic as APIC, Gic as GIC, Plic as PLIC};

    fn no_clock() -> u64 {
        0
    }

    fn dev(emu_type: u32, irq: u32) -> EmuDevice {
        EmuDevice {
            name: Cow::Borrowed("d"),
            base_gpa: 0x0800_0000,
            length: 0x1000,
            irq,
            emu_type,
            cfg: Cow::Borrowed(&[]),
        }
    }

    /// A two-vCPU VM with `devices`.
    fn spec(devices: &[EmuDevice], passthrough: &[PassthroughDevice]) -> VmSpec {
        VmSpec {
            cpu_num: 2,
            pcpu_of_vcpu: Cow::Borrowed(&[0, 1]),
            emu_devices: Cow::Owned(devices.to_vec()),
            passthrough_devices: Cow::Owned(passthrough.to_vec()),
            interrupt_mode: InterruptMode::Emulated,
            ..TEST_SPEC
        }
    }

    fn chip(devices: &[EmuDevice]) -> Result<Option<Box<dyn IrqChip>>, String> {
        for_vm(&spec(devices, &[]), alloc::vec![0, 1], &[27], GIC, no_clock)
    }

    /// The virtual GIC behind `chip`: (SPIs, v2).
    fn gic(chip: &mut Option<Box<dyn IrqChip>>) -> (u32, bool) {
        let gic = chip.as_mut().unwrap().model().downcast_mut::<Vgic>();
        let gic = gic.expect("a virtual GIC");
        (gic.nr_spis(), gic.is_v2())
    }

    #[test]
    fn the_chip_the_config_describes() {
        let (dist, redist, cpu_if) = (
            emu_type::GIC_DIST,
            emu_type::GIC_REDIST,
            emu_type::GIC_CPU_IF,
        );
        assert_eq!(
            gic(&mut chip(&[dev(dist, 0), dev(redist, 0)]).unwrap()),
            (64, false)
        );
        assert_eq!(
            gic(&mut chip(&[dev(dist, 0), dev(cpu_if, 0)]).unwrap()),
            (64, true)
        );
        let mut plic = chip(&[dev(emu_type::PLIC, 0)]).unwrap();
        let plic = plic.as_mut().unwrap().model().downcast_mut::<Vplic>();
        assert_eq!(plic.map(|p| p.harts()), Some(2));
        assert!(chip(&[dev(emu_type::CONSOLE, 33)]).unwrap().is_none());
        // A PLIC architecture: the vPLIC even without a window (SBI IPIs, fences).
        let mut bare = for_vm(&spec(&[], &[]), alloc::vec![0, 1], &[], PLIC, no_clock).unwrap();
        let bare = bare.as_mut().unwrap().model().downcast_mut::<Vplic>();
        assert_eq!(bare.map(|p| p.harts()), Some(2));
        assert_eq!(
            chip(&[dev(dist, 0), dev(redist, 0), dev(emu_type::PLIC, 0)]).err(),
            Some(String::from(
                "emu_devices describe both a GIC and a PLIC: a VM has one interrupt controller"
            ))
        );
        assert!(
            chip(&[dev(cpu_if, 0)]).is_err(),
            "the GIC version's own checks"
        );
        assert!(chip(&[dev(dist, 0)]).is_err(), "a distributor alone");
        // An APIC architecture: local APICs and an I/O APIC for every VM.
        let mut x86 = for_vm(&spec(&[], &[]), alloc::vec![0, 1], &[], APIC, no_clock).unwrap();
        let x86 = x86.as_mut().unwrap().model().downcast_mut::<X86Apic>();
        assert_eq!(x86.map(|c| c.vcpus()), Some(2));
    }

    #[test]
    fn a_gic_has_spis_for_every_configured_line_in_groups_of_32() {
        let dist = dev(emu_type::GIC_DIST, 0);
        let redist = dev(emu_type::GIC_REDIST, 0);
        let spis = |irq| {
            let devs = [dist.clone(), redist.clone(), dev(emu_type::CONSOLE, irq)];
            gic(&mut chip(&devs).unwrap()).0
        };
        assert_eq!(spis(33), 64, "at least 64");
        assert_eq!(spis(95), 64);
        assert_eq!(spis(96), 96);
        assert_eq!(spis(200), 192);
        let pt = PassthroughDevice {
            name: Cow::Borrowed("p"),
            base_gpa: 0x0a00_0000,
            base_hpa: 0x0a00_0000,
            length: 0x1000,
            irq: 130,
        };
        let mut c = for_vm(
            &spec(&[dist, redist], &[pt]),
            alloc::vec![0, 1],
            &[],
            GIC,
            no_clock,
        )
        .unwrap();
        assert_eq!(gic(&mut c).0, 128, "passthrough lines count too");
    }
}
