//! A VM's interrupt controller, behind one trait: the virtual GIC (v2 or v3) on
//! aarch64, the virtual PLIC on riscv64 (a vLAPIC / vIOAPIC pair on x86 later).
//! Devices raise lines through it, the core forwards inter-processor interrupts and
//! physical per-CPU interrupts to it, and the architecture's vCPU exchanges
//! interrupt state with the concrete model before entry and after exit (it reaches
//! the model through [`IrqChip::model`] and a downcast, so the core never names it).

use super::device::{Device, DeviceCtx};
use super::vgic::Vgic;
use super::vplic::Vplic;
use super::{emu_type, MmioDevice, MmioError};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;

pub trait IrqChip: Send {
    /// An access to one of the chip's MMIO windows; `window` is the `emu_type` the
    /// window was configured with (a GIC distributor, a PLIC, ...).
    fn mmio(
        &mut self,
        vcpu: usize,
        window: u32,
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
    /// Back to the power-on state (VM reset).
    fn reset(&mut self);
    /// The concrete model, for the architecture's vCPU to downcast.
    fn model(&mut self) -> &mut dyn Any;
}

/// One MMIO window of the VM's interrupt chip on its bus (a GIC distributor or
/// redistributor region, a GICv2 CPU interface, a PLIC): accesses go to the chip
/// with the window's `emu_type`. Without a chip the window reads as zero.
pub struct ChipWindow {
    window: u32,
}

impl ChipWindow {
    pub fn new(window: u32) -> Self {
        Self { window }
    }

    fn access(
        &self,
        ctx: &mut DeviceCtx,
        off: u64,
        width: u8,
        write: Option<u64>,
    ) -> Result<u64, MmioError> {
        let vcpu = ctx.vcpu;
        match ctx.chip() {
            Some(chip) => chip.mmio(vcpu, self.window, off, width, write),
            None => Ok(0),
        }
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
