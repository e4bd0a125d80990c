//! A VM's devices as the VMM holds them: its bus (built from the `emu_devices` of
//! its config through the device registry), its interrupt chip, and the plumbing
//! between its console UART and the hypervisor console: output streamed while the VM
//! has the keyboard, else filtered and collected into lines (see `console`), typed
//! input queued beyond the UART's FIFO.

use crate::console::{self, LineBuffer, Sanitizer};
use crate::devices::bus::{Bus, DeviceId, Dispatch, Space};
use crate::devices::device::{DeviceCtx, VmEvent};
use crate::devices::irqchip::{self, IrqChip};
use crate::devices::registry::{self, Created, VmFacts};
use crate::devices::ring::Ring;
use crate::devices::signal::{Signal, MAX_SIGNALLED};
use crate::devices::MmioError;
use crate::hal::{Arch, Current, HostTimer};
use crate::mm::guest::GuestMemory;
use crate::spec::{Str, VmSpec};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

pub struct VmDevices {
    /// The VM's id and name, for its console lines.
    id: u32,
    name: Str,
    bus: Bus,
    /// The console UART: the first device that is a serial port.
    console: Option<DeviceId>,
    /// Output while the VM does not have the keyboard: filtered, then whole lines.
    out: Box<LineOutput>,
    /// The VM's interrupt controller (virtual GIC or PLIC) behind its windows.
    chip: Option<Box<dyn IrqChip>>,
    /// This VM has the keyboard: its console output is streamed as it comes (prompts,
    /// echo, colours), not line-buffered.
    focused: bool,
    /// Typed bytes the console UART's receive FIFO had no room for yet: they move in
    /// as the guest reads the FIFO, so pasted text is not cut at the FIFO's depth.
    input: Box<Ring<INPUT_QUEUE>>,
}

/// Typed bytes held for a VM beyond its UART's FIFO (a pasted screenful).
pub const INPUT_QUEUE: usize = 4096;

/// Moves bytes from `input` to a UART FIFO (`push`) while it takes them.
fn refill(input: &mut Ring<INPUT_QUEUE>, mut push: impl FnMut(u8) -> bool) {
    while let Some(b) = input.peek() {
        if !push(b) {
            break;
        }
        input.pop();
    }
}

/// What an MMIO or port-I/O access hit.
#[derive(Debug, PartialEq, Eq)]
pub enum MmioResult {
    Done(u64),
    /// No device at that address.
    Unmapped,
    /// The device there (its name in the VM config) refused the access.
    Error(MmioError, String),
}

/// Where one access comes from and what it may touch.
pub struct Access<'a> {
    /// The vCPU making it (its index in the VM).
    pub vcpu: usize,
    /// The VM's RAM, for devices that reach it.
    pub memory: GuestMemory<'a>,
    /// Where devices post VM events; the caller acts on them.
    pub events: &'a mut Vec<VmEvent>,
}

impl VmDevices {
    /// Devices of `spec`; an emu_type this hypervisor cannot emulate, or windows
    /// that overlap, are an error that keeps the VM from starting.
    pub fn new(spec: &VmSpec) -> Result<Self, String> {
        let facts = VmFacts {
            console: Current::CONSOLE,
            cpus: spec.cpu_num as usize,
        };
        let mut bus = registry::build(&spec.emu_devices, &facts)?;
        let console = bus_console(&mut bus);
        Ok(Self {
            id: spec.id,
            name: spec.name.clone(),
            bus,
            console,
            out: Box::default(),
            chip: irqchip::for_vm(
                spec,
                vcpu_ids(spec),
                Current::PERCPU_HW_IRQS,
                Current::LIMITS.irq_chip,
                Current::counter,
            )?,
            focused: false,
            input: Box::new(Ring::new()),
        })
    }

    /// Puts one more device on the bus (named `name` in messages).
    pub fn attach(&mut self, name: impl Into<Str>, created: Created) -> Result<DeviceId, String> {
        let id = self.bus.add(name, created.device, &created.windows)?;
        if self.console.is_none() {
            self.console = bus_console(&mut self.bus);
        }
        Ok(id)
    }

    /// Replaces the VM's interrupt controller (tests of another architecture's chip).
    #[cfg(test)]
    pub fn set_chip(&mut self, chip: Box<dyn IrqChip>) {
        self.chip = Some(chip);
    }

    /// The VM's interrupt controller, if it has one.
    pub fn irq_chip(&mut self) -> Option<&mut dyn IrqChip> {
        self.chip.as_mut().map(|c| c.as_mut() as _)
    }

    /// vCPUs that may have new interrupts to take since the last call (bit i = vCPU i).
    pub fn take_kicks(&mut self) -> u64 {
        self.chip.as_mut().map_or(0, |c| c.take_kicks())
    }

    /// An inter-processor interrupt from vCPU `vcpu`, `value` in the interrupt
    /// chip's encoding (see [`IrqChip::ipi`]).
    pub fn ipi(&mut self, vcpu: usize, value: u64) {
        if let Some(chip) = self.chip.as_mut() {
            chip.ipi(vcpu, value);
        }
    }

    /// A physical per-CPU interrupt for vCPU `vcpu` (a guest timer).
    pub fn inject(&mut self, vcpu: usize, line: u32) {
        if let Some(chip) = self.chip.as_mut() {
            chip.inject(vcpu, line);
        }
    }

    /// Console output the guest sent through its firmware (SBI debug console), not
    /// through its UART: the same lines, the same prefix.
    pub fn console_write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            output((self.id, &self.name), &mut self.out, self.focused, b);
        }
    }

    /// Has a device raised its signal since the last [`Self::serve_signals`]?
    pub fn signalled(&self) -> bool {
        self.bus.signals().any()
    }

    /// The signal of device `id` (to hand to whoever finishes its work elsewhere).
    pub fn signal(&self, id: DeviceId) -> Option<Signal> {
        self.bus.signal(id)
    }

    /// Sets how a raised signal wakes the VM: `wake(target)`.
    pub fn set_waker(&self, wake: fn(u64), target: u64) {
        self.bus.signals().set_waker(wake, target);
    }

    /// Serves every device whose signal was raised, on the vCPU of `a`, with the
    /// context an access gets; serial ports are then served as after an access.
    pub fn serve_signals(&mut self, a: Access) {
        let pending = self.bus.signals().take();
        for id in (0..MAX_SIGNALLED).filter(|i| pending & (1 << i) != 0) {
            let chip = self.chip.as_mut().map(|c| c.as_mut() as &mut dyn IrqChip);
            let mut ctx = DeviceCtx::new(a.vcpu, chip, a.memory, &mut *a.events);
            if let Some(d) = self.bus.device(id) {
                d.service(&mut ctx);
            }
            self.serve_serial(id);
        }
    }

    /// Emulates one MMIO access at `gpa`. `write` is None for loads.
    pub fn mmio(&mut self, a: Access, gpa: u64, width: u8, write: Option<u64>) -> MmioResult {
        self.access(a, Space::Mmio, gpa, width, write)
    }

    /// Emulates one `in` (`write` None) or `out` at `port`.
    pub fn pio(&mut self, a: Access, port: u16, width: u8, write: Option<u32>) -> MmioResult {
        self.access(a, Space::Port, port.into(), width, write.map(u64::from))
    }

    fn access(
        &mut self,
        a: Access,
        space: Space,
        addr: u64,
        width: u8,
        write: Option<u64>,
    ) -> MmioResult {
        let chip = self.chip.as_mut().map(|c| c.as_mut() as &mut dyn IrqChip);
        let mut ctx = DeviceCtx::new(a.vcpu, chip, a.memory, a.events);
        match self.bus.dispatch(&mut ctx, space, addr, width, write) {
            Dispatch::Unmapped => MmioResult::Unmapped,
            Dispatch::Done { device, result } => {
                self.serve_serial(device);
                match result {
                    Ok(v) => MmioResult::Done(v),
                    Err(e) => {
                        let name = self.bus.name(device).unwrap_or("?");
                        MmioResult::Error(e, String::from(name))
                    }
                }
            }
        }
    }

    /// Serial port `id` after an access or typed input: what it transmitted goes to
    /// the console; if it is the console UART, queued input moves into the room its
    /// receive FIFO has; then its interrupt line follows its level.
    fn serve_serial(&mut self, id: DeviceId) {
        let Some(serial) = self.bus.device(id).and_then(|d| d.serial()) else {
            return;
        };
        let (who, out, focused) = ((self.id, &*self.name), &mut self.out, self.focused);
        serial.drain_tx(&mut |b| output(who, out, focused, b));
        if Some(id) == self.console {
            refill(&mut self.input, |b| serial.push_rx(b));
        }
        let (irq, level) = (serial.irq_line(), serial.irq_level());
        self.set_line(irq, level);
    }

    /// Drives the guest interrupt line `irq` (as the VM config numbers it) to `level`.
    fn set_line(&mut self, irq: u32, level: bool) {
        if let Some(chip) = self.chip.as_mut() {
            chip.set_level(irq, level);
        }
    }

    /// Gives this VM the keyboard (its output streamed from now on; what it left of
    /// a line so far starts the stream) or takes it away (whole filtered lines again).
    pub fn set_focus(&mut self, focused: bool) {
        if focused && !self.focused {
            let pending = self.out.line.take();
            if !pending.is_empty() {
                console::vm_stream(self.id, &self.name, pending);
            }
        }
        // A sequence half-parsed in one mode is not finished in the other.
        self.out.sanitizer = Sanitizer::new();
        self.focused = focused;
    }

    /// Keyboard input for the VM's console UART. Queued behind what the UART's
    /// receive FIFO does not take yet; false if even the queue is full (the byte is
    /// dropped, as a real UART overruns).
    pub fn console_input(&mut self, byte: u8) -> bool {
        let queued = self.input.push(byte);
        if let Some(id) = self.console {
            self.serve_serial(id);
        }
        queued
    }

    /// Back to power-on state (VM reset): fresh device models, console line flushed.
    pub fn reset(&mut self) {
        self.flush_console();
        self.input.clear();
        self.bus.reset();
        if let Some(chip) = self.chip.as_mut() {
            chip.reset();
        }
    }

    /// Prints what the VM left without a final newline.
    pub fn flush_console(&mut self) {
        let l = self.out.line.take();
        if !l.is_empty() {
            console::vm_line(&self.name, l);
        }
    }
}

/// The architecture's names of the vCPUs of `spec` (MPIDRs on aarch64).
fn vcpu_ids(spec: &VmSpec) -> Vec<u64> {
    (0..spec.cpu_num as usize).map(Current::vcpu_id).collect()
}

/// The first device on `bus` that is a serial port.
fn bus_console(bus: &mut Bus) -> Option<DeviceId> {
    bus.devices().position(|d| d.serial().is_some())
}

/// The way to whole lines of a VM without the keyboard: its filter and line buffer.
#[derive(Default)]
struct LineOutput {
    sanitizer: Sanitizer,
    line: LineBuffer,
}

/// One byte of the VM's console output: streamed when the VM has the keyboard, else
/// filtered and collected into lines.
fn output((id, name): (u32, &str), out: &mut LineOutput, focused: bool, b: u8) {
    if focused {
        console::vm_stream(id, name, &[b]);
        return;
    }
    let line = &mut out.line;
    out.sanitizer.push(b, &mut |piece| {
        line.push(piece, &mut |l| console::vm_line(name, l))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EmuDevice, TEST_SPEC};
    use alloc::borrow::Cow;

    const UART: EmuDevice = EmuDevice {
        name: Cow::Borrowed("uart"),
        base_gpa: 0x0900_0000,
        length: 0x1000,
        irq: 0,
        emu_type: 0x2,
        cfg: Cow::Borrowed(&[]),
    };

    const UART_ONLY: VmSpec = VmSpec {
        emu_devices: Cow::Borrowed(&[UART]),
        ..TEST_SPEC
    };

    /// One 32-bit access by vCPU 0 of a VM without RAM.
    fn access(d: &mut VmDevices, gpa: u64, write: Option<u64>) -> MmioResult {
        let ram = crate::mm::guest::GuestRam::default();
        let mut events = Vec::new();
        let a = Access {
            vcpu: 0,
            memory: GuestMemory::new(&ram, None),
            events: &mut events,
        };
        let r = d.mmio(a, gpa, 4, write);
        assert!(events.is_empty(), "a UART posts no VM events");
        r
    }

    /// Reads the PL011 data register until the receive FIFO is empty (FR.RXFE).
    fn read_all(d: &mut VmDevices) -> alloc::vec::Vec<u8> {
        let mut got = alloc::vec::Vec::new();
        loop {
            let MmioResult::Done(fr) = access(d, 0x0900_0018, None) else {
                panic!("FR read failed")
            };
            if fr & (1 << 4) != 0 {
                return got;
            }
            let MmioResult::Done(dr) = access(d, 0x0900_0000, None) else {
                panic!("DR read failed")
            };
            got.push(dr as u8);
        }
    }

    #[test]
    fn pasted_input_longer_than_the_fifo_arrives_whole() {
        let mut d = VmDevices::new(&UART_ONLY).unwrap();
        let text: alloc::vec::Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        for &b in &text {
            assert!(d.console_input(b), "queued");
        }
        assert_eq!(read_all(&mut d), text);
        for _ in 0..INPUT_QUEUE + crate::devices::pl011::RX_FIFO {
            d.console_input(b'x');
        }
        assert!(!d.console_input(b'y'), "beyond FIFO and queue: dropped");
    }

    #[test]
    fn output_is_streamed_while_focused_and_filtered_lines_otherwise() {
        let mut d = VmDevices::new(&UART_ONLY).unwrap();
        for &b in b"ab\ncd\x1b[2J\x1b[32me" {
            assert_eq!(
                access(&mut d, 0x0900_0000, Some(b.into())),
                MmioResult::Done(0)
            );
        }
        assert_eq!(
            d.out.line.as_bytes(),
            b"cd\x1b[32me",
            "a whole line went out, the rest waits, filtered (the SGR kept)"
        );
        d.set_focus(true);
        assert!(
            d.out.line.as_bytes().is_empty(),
            "the pending part was streamed at once, nobody typed"
        );
        access(&mut d, 0x0900_0000, Some(b'>'.into()));
        assert!(d.out.line.as_bytes().is_empty(), "streamed as it comes");
        d.console_input(b'x');
        d.set_focus(false);
        access(&mut d, 0x0900_0000, Some(b'f'.into()));
        assert_eq!(d.out.line.as_bytes(), b"f");
    }

    #[test]
    fn reset_empties_the_input_queue_and_the_uart() {
        let mut d = VmDevices::new(&UART_ONLY).unwrap();
        for &b in b"queued" {
            d.console_input(b);
        }
        d.reset();
        assert!(read_all(&mut d).is_empty());
    }

    #[test]
    fn unknown_devices_and_overlaps_keep_the_vm_from_starting() {
        const MYSTERY: EmuDevice = EmuDevice {
            name: Cow::Borrowed("mystery"),
            base_gpa: 0x0900_0800,
            length: 0x1000,
            irq: 0,
            emu_type: 0x77,
            cfg: Cow::Borrowed(&[]),
        };
        const UNKNOWN: VmSpec = VmSpec {
            emu_devices: Cow::Borrowed(&[UART, MYSTERY]),
            ..UART_ONLY
        };
        const OVERLAP: VmSpec = VmSpec {
            emu_devices: Cow::Borrowed(&[
                UART,
                EmuDevice {
                    emu_type: 0x0,
                    ..MYSTERY
                },
            ]),
            ..UART_ONLY
        };
        let err = |s| VmDevices::new(s).err().unwrap();
        assert_eq!(
            err(&UNKNOWN),
            "not supported yet: emulated device \"mystery\" with emu_type 0x77"
        );
        assert_eq!(
            err(&OVERLAP),
            "emulated device \"mystery\": MMIO window 0x9000800..0x9001800 overlaps \
             MMIO window 0x9000000..0x9001000 of \"uart\""
        );
    }
}
