//! A VM's emulated devices and the dispatch of its MMIO accesses to them, from the
//! `emu_devices` of its config. The console UART's output is collected into lines
//! for the hypervisor console. The console is the platform's own kind of UART: a
//! PL011 on aarch64, a 16550 on riscv64 (wired to the VM's PLIC when it has one).

use crate::console::{self, LineBuffer};
use crate::devices::irqchip::{GicChip, IrqChip};
use crate::devices::pl011::Pl011;
use crate::devices::ring::Ring;
use crate::devices::uart16550::Uart16550;
use crate::devices::vgic::guest_version::{self, GuestGicVersion};
use crate::devices::vplic::Vplic;
use crate::devices::{emu_type, ConsoleKind, MmioDevice, MmioError};
use crate::hal::{Arch, Current};
use crate::spec::{EmuDevice, VmSpec};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

enum Model {
    Console(Pl011),
    Console16550(Uart16550),
    Dummy,
    GicCpuIf,
    GicDist,
    GicRedist,
    Plic,
}

struct Window {
    base: u64,
    len: u64,
    /// Interrupt the device raises in the guest (GIC INTID on aarch64, PLIC source on
    /// riscv64), 0 = none.
    irq: u32,
    model: Model,
}

pub struct VmDevices {
    name: &'static str,
    windows: Vec<Window>,
    line: Box<LineBuffer>,
    /// The VM's interrupt controller (virtual GIC or PLIC) behind its windows.
    chip: Option<alloc::boxed::Box<dyn IrqChip>>,
    /// This VM has the keyboard.
    focused: bool,
    /// It has the keyboard and was typed to: its console output is streamed (prompts,
    /// echo), not line-buffered. Until someone types, output stays in whole lines, so
    /// a run without input (a test) never sees the lines of two VMs cut into each other.
    streaming: bool,
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

/// What an MMIO access hit.
#[derive(Debug, PartialEq, Eq)]
pub enum MmioResult {
    Done(u64),
    /// No device at that address.
    Unmapped,
    Error(MmioError),
}

impl VmDevices {
    /// Devices of `spec`; an emu_type this hypervisor cannot emulate is an error that
    /// keeps the VM from starting.
    pub fn new(spec: &'static VmSpec) -> Result<Self, String> {
        let windows: Vec<Window> = spec
            .emu_devices
            .iter()
            .map(model_for)
            .collect::<Result<_, _>>()?;
        let chip = irq_chip(spec, &windows)?;
        Ok(Self {
            name: spec.name,
            windows,
            line: Box::new(LineBuffer::new()),
            chip,
            focused: false,
            streaming: false,
            input: Box::new(Ring::new()),
        })
    }

    /// The VM's interrupt controller, if it has one.
    pub fn irq_chip(&mut self) -> Option<&mut dyn IrqChip> {
        match self.chip.as_mut() {
            Some(c) => Some(c.as_mut()),
            None => None,
        }
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
            output(self.name, &mut self.line, self.streaming, b);
        }
    }

    /// Emulates one access by vCPU `vcpu`. `write` is None for loads.
    pub fn mmio(&mut self, vcpu: usize, gpa: u64, width: u8, write: Option<u64>) -> MmioResult {
        let Some(w) = self
            .windows
            .iter_mut()
            .find(|w| w.base <= gpa && gpa - w.base < w.len)
        else {
            return MmioResult::Unmapped;
        };
        let off = gpa - w.base;
        let r = match (&mut w.model, self.chip.as_mut()) {
            (Model::Console(uart), _) => access(uart, off, width, write),
            (Model::Console16550(uart), _) => access(uart, off, width, write),
            (Model::GicDist, Some(chip)) => chip.mmio(vcpu, emu_type::GIC_DIST, off, width, write),
            (Model::GicRedist, Some(chip)) => {
                chip.mmio(vcpu, emu_type::GIC_REDIST, off, width, write)
            }
            (Model::Plic, Some(chip)) => chip.mmio(vcpu, emu_type::PLIC, off, width, write),
            (
                Model::Dummy | Model::GicCpuIf | Model::GicDist | Model::GicRedist | Model::Plic,
                _,
            ) => Ok(0),
        };
        let (name, line, streaming) = (self.name, &mut self.line, self.streaming);
        let mut out = |b| output(name, line, streaming, b);
        let level = match &mut w.model {
            Model::Console(uart) => {
                uart.drain_tx(&mut out);
                Some(uart.irq_level())
            }
            Model::Console16550(uart) => {
                uart.drain_tx(&mut out);
                Some(uart.irq_level())
            }
            _ => None,
        };
        if let Some(level) = level {
            let irq = w.irq;
            self.set_line(irq, level);
            // A read may have made room in the receive FIFO for queued input.
            if !self.input.is_empty() {
                self.feed_input();
            }
        }
        match r {
            Ok(v) => MmioResult::Done(v),
            Err(e) => MmioResult::Error(e),
        }
    }

    /// Drives the guest interrupt line `irq` (a GIC SPI, or a PLIC source) to `level`.
    fn set_line(&mut self, irq: u32, level: bool) {
        if let Some(chip) = self.chip.as_mut() {
            chip.set_level(irq, level);
        }
    }

    /// Gives this VM the keyboard (its output streamed once typed to) or takes it away.
    pub fn set_focus(&mut self, focused: bool) {
        self.focused = focused;
        if !focused {
            self.streaming = false;
        }
    }

    /// From now on the VM's output is shown as it comes.
    fn start_streaming(&mut self) {
        if self.streaming || !self.focused {
            return;
        }
        // What was buffered so far becomes the start of the streamed line.
        let pending = self.line.take();
        if !pending.is_empty() {
            console::vm_stream(self.name, pending);
        }
        self.streaming = true;
    }

    /// Keyboard input for the VM's console UART. Queued behind what the UART's
    /// receive FIFO does not take yet; false if even the queue is full (the byte is
    /// dropped, as a real UART overruns).
    pub fn console_input(&mut self, byte: u8) -> bool {
        self.start_streaming();
        let queued = self.input.push(byte);
        self.feed_input();
        queued
    }

    /// Moves queued input into the console UART's receive FIFO while it has room,
    /// and updates its interrupt line.
    fn feed_input(&mut self) {
        let input = &mut self.input;
        let found = self.windows.iter_mut().find_map(|w| match &mut w.model {
            Model::Console(uart) => {
                refill(input, |b| uart.push_rx(b));
                Some((w.irq, uart.irq_level()))
            }
            Model::Console16550(uart) => {
                refill(input, |b| uart.push_rx(b));
                Some((w.irq, uart.irq_level()))
            }
            _ => None,
        });
        if let Some((irq, level)) = found {
            self.set_line(irq, level);
        }
    }

    /// Back to power-on state (VM reset): fresh device models, console line flushed.
    pub fn reset(&mut self) {
        self.flush_console();
        self.input.clear();
        for w in &mut self.windows {
            match &mut w.model {
                Model::Console(u) => *u = Pl011::new(),
                Model::Console16550(u) => *u = Uart16550::new(),
                _ => {}
            }
        }
        if let Some(chip) = self.chip.as_mut() {
            chip.reset();
        }
    }

    /// Prints what the VM left without a final newline.
    pub fn flush_console(&mut self) {
        let l = self.line.take();
        if !l.is_empty() {
            console::vm_line(self.name, l);
        }
    }
}

/// One byte of the VM's console output: streamed when the VM has the keyboard and was
/// typed to, else collected into lines.
fn output(name: &'static str, line: &mut LineBuffer, streaming: bool, b: u8) {
    if streaming {
        console::vm_stream(name, &[b]);
    } else if let Some(l) = line.push(b) {
        console::vm_line(name, l);
    }
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

/// The VM's interrupt controller: a virtual GIC when its devices describe one, a
/// virtual PLIC when it has a PLIC window, else none. Both at once is refused.
fn irq_chip(spec: &VmSpec, windows: &[Window]) -> Result<Option<Box<dyn IrqChip>>, String> {
    let plic = windows.iter().any(|w| matches!(w.model, Model::Plic));
    let v2 = match guest_version::version(spec.emu_devices, spec.cpu_num)? {
        GuestGicVersion::None if plic => {
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
    let ids = (0..spec.cpu_num as usize).map(Current::vcpu_id).collect();
    let gic = GicChip::new(ids, spi_count(spec), v2, Current::PERCPU_HW_IRQS)?;
    Ok(Some(Box::new(gic)))
}

/// The console UART model: the one the platform's guests expect.
fn console_model() -> Model {
    match Current::CONSOLE {
        ConsoleKind::Pl011 => Model::Console(Pl011::new()),
        ConsoleKind::Uart16550 => Model::Console16550(Uart16550::new()),
    }
}

fn model_for(d: &EmuDevice) -> Result<Window, String> {
    let model = match d.emu_type {
        emu_type::CONSOLE => console_model(),
        emu_type::DUMMY => Model::Dummy,
        emu_type::GIC_CPU_IF => Model::GicCpuIf,
        emu_type::GIC_DIST => Model::GicDist,
        emu_type::GIC_REDIST => Model::GicRedist,
        emu_type::PLIC => Model::Plic,
        t => {
            return Err(format!(
                "not supported yet: emulated device \"{}\" with emu_type {t:#x}",
                d.name
            ))
        }
    };
    Ok(Window {
        base: d.base_gpa,
        len: d.length,
        irq: d.irq,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Image, InterruptMode};

    static UART_ONLY: VmSpec = VmSpec {
        id: 1,
        name: "vm1",
        vm_type: 1,
        cpu_num: 1,
        pcpu_of_vcpu: &[0],
        entry_point: 0x4008_0000,
        kernel: Image {
            load_gpa: 0x4008_0000,
            data: &[],
        },
        dtb: None,
        ramdisk: None,
        dtb_load_gpa: None,
        cmdline: "",
        memory_regions: &[],
        emu_devices: &[EmuDevice {
            name: "uart",
            base_gpa: 0x0900_0000,
            length: 0x1000,
            irq: 0,
            emu_type: 0x2,
            cfg: &[],
        }],
        passthrough_devices: &[],
        interrupt_mode: InterruptMode::NoIrq,
    };

    /// Reads the PL011 data register until the receive FIFO is empty (FR.RXFE).
    fn read_all(d: &mut VmDevices) -> alloc::vec::Vec<u8> {
        let mut got = alloc::vec::Vec::new();
        loop {
            let MmioResult::Done(fr) = d.mmio(0, 0x0900_0018, 4, None) else {
                panic!("FR read failed")
            };
            if fr & (1 << 4) != 0 {
                return got;
            }
            let MmioResult::Done(dr) = d.mmio(0, 0x0900_0000, 4, None) else {
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
}
