//! What a device on a VM's bus is ([`Device`]) and what it is handed on every access
//! ([`DeviceCtx`]): the VM's interrupt chip to drive its lines, a bounds-checked
//! handle on the VM's RAM, and a sink for VM events (power off, reset, start a
//! vCPU) that the VMM acts on once the access is done. Work that finishes outside an
//! access raises the device's [`Signal`]; the device then gets the same context in
//! [`Device::service`].

use super::irqchip::IrqChip;
use super::signal::Signal;
use super::MmioError;
use crate::mm::guest::GuestMemory;
use alloc::vec::Vec;

/// Something a device asks of its VM; the VMM acts on it after the access, on the
/// same paths a guest's firmware call takes (system off, system reset, CPU on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEvent {
    /// Power the VM off (a clean stop).
    PowerOff,
    /// Reset the VM.
    Reset,
    /// Start vCPU `index` (of this VM) at `entry` with `arg`.
    StartVcpu { index: usize, entry: u64, arg: u64 },
}

/// What a device is handed for one access.
pub struct DeviceCtx<'a> {
    /// The vCPU making the access (its index in the VM).
    pub vcpu: usize,
    /// The VM's RAM.
    pub memory: GuestMemory<'a>,
    chip: Option<&'a mut dyn IrqChip>,
    events: &'a mut Vec<VmEvent>,
}

impl<'a> DeviceCtx<'a> {
    pub fn new(
        vcpu: usize,
        chip: Option<&'a mut dyn IrqChip>,
        memory: GuestMemory<'a>,
        events: &'a mut Vec<VmEvent>,
    ) -> Self {
        Self {
            vcpu,
            memory,
            chip,
            events,
        }
    }

    /// Drives interrupt line `line` (as the VM config numbers it) to `level`; a VM
    /// without an interrupt chip has no lines.
    pub fn set_irq(&mut self, line: u32, level: bool) {
        if let Some(chip) = self.chip.as_deref_mut() {
            chip.set_level(line, level);
        }
    }

    /// The VM's interrupt chip, if it has one (for the chip's own windows).
    pub fn chip(&mut self) -> Option<&mut (dyn IrqChip + 'a)> {
        self.chip.as_deref_mut()
    }

    /// Asks for `event`; the VMM acts on it when the access is done.
    pub fn post(&mut self, event: VmEvent) {
        self.events.push(event);
    }
}

/// A device on a VM's bus. Offsets are relative to the start of the window or port
/// range the access hit; widths are 1, 2, 4 (or 8 for MMIO) bytes. Each access
/// kind the device does not take is refused by default (the VM is then stopped
/// with the reason).
pub trait Device: Send {
    fn mmio_read(
        &mut self,
        _ctx: &mut DeviceCtx,
        offset: u64,
        width: u8,
    ) -> Result<u64, MmioError> {
        Err(MmioError::Refused { offset, width })
    }

    fn mmio_write(
        &mut self,
        _ctx: &mut DeviceCtx,
        offset: u64,
        width: u8,
        _value: u64,
    ) -> Result<(), MmioError> {
        Err(MmioError::Refused { offset, width })
    }

    fn pio_read(&mut self, _ctx: &mut DeviceCtx, offset: u16, width: u8) -> Result<u32, MmioError> {
        Err(MmioError::Refused {
            offset: offset.into(),
            width,
        })
    }

    fn pio_write(
        &mut self,
        _ctx: &mut DeviceCtx,
        offset: u16,
        width: u8,
        _value: u32,
    ) -> Result<(), MmioError> {
        Err(MmioError::Refused {
            offset: offset.into(),
            width,
        })
    }

    /// Back to the power-on state (VM reset).
    fn reset(&mut self);

    /// Handed once, when the device is put on a bus: its way to ask for
    /// [`Device::service`] outside an access, kept across resets. Devices whose work
    /// all happens during accesses ignore it.
    fn connect(&mut self, _signal: Signal) {}

    /// Called on a vCPU of the VM, before it next enters the guest, after the
    /// device's signal was raised: with the same context an access gets.
    fn service(&mut self, _ctx: &mut DeviceCtx) {}

    /// The device as a serial console, if it is one: the hypervisor console feeds
    /// it typed input and collects its output.
    fn serial(&mut self) -> Option<&mut dyn Serial> {
        None
    }
}

/// A serial port the hypervisor console is attached to.
pub trait Serial {
    /// Offers one typed byte to the receive FIFO; false when it is full.
    fn push_rx(&mut self, byte: u8) -> bool;
    /// Hands what the guest transmitted to `out`, oldest first.
    fn drain_tx(&mut self, out: &mut dyn FnMut(u8));
    /// The level of its interrupt output now.
    fn irq_level(&self) -> bool;
    /// The interrupt line it drives (as the VM config numbers it; 0 = none).
    fn irq_line(&self) -> u32;
}
