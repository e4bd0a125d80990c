//! A VM's emulated devices and the dispatch of its MMIO accesses to them, from the
//! `emu_devices` of its config. The console UART's output is collected into lines
//! for the hypervisor console.

use super::config::{EmuDevice, VmSpec};
use crate::console::{self, LineBuffer};
use crate::devices::pl011::Pl011;
use crate::devices::{MmioDevice, MmioError};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// AxVisor `emu_type` codes this hypervisor emulates.
pub mod emu_type {
    pub const DUMMY: u32 = 0x0;
    pub const CONSOLE: u32 = 0x2;
    pub const GIC_REDIST: u32 = 0x20;
    pub const GIC_DIST: u32 = 0x21;
}

enum Model {
    Console(Pl011),
    Dummy,
    GicDist,
    GicRedist,
}

struct Window {
    base: u64,
    len: u64,
    model: Model,
}

pub struct VmDevices {
    name: &'static str,
    windows: Vec<Window>,
    line: Box<LineBuffer>,
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
        let windows = spec
            .emu_devices
            .iter()
            .map(model_for)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: spec.name,
            windows,
            line: Box::new(LineBuffer::new()),
        })
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
        let _ = vcpu;
        let r = match &mut w.model {
            Model::Console(uart) => access(uart, off, width, write),
            Model::Dummy | Model::GicDist | Model::GicRedist => Ok(0),
        };
        if let Model::Console(uart) = &mut w.model {
            let (name, line) = (self.name, &mut self.line);
            uart.drain_tx(|b| {
                if let Some(l) = line.push(b) {
                    console::vm_line(name, l);
                }
            });
        }
        match r {
            Ok(v) => MmioResult::Done(v),
            Err(e) => MmioResult::Error(e),
        }
    }

    /// Back to power-on state (VM reset): fresh device models, console line flushed.
    pub fn reset(&mut self) {
        self.flush_console();
        for w in &mut self.windows {
            if let Model::Console(u) = &mut w.model {
                *u = Pl011::new();
            }
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

fn model_for(d: &EmuDevice) -> Result<Window, String> {
    let model = match d.emu_type {
        emu_type::CONSOLE => Model::Console(Pl011::new()),
        emu_type::DUMMY => Model::Dummy,
        emu_type::GIC_DIST => Model::GicDist,
        emu_type::GIC_REDIST => Model::GicRedist,
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
        model,
    })
}
