//! The devices a VM config can name, keyed by `emu_type`, and the building of a
//! VM's bus from its `emu_devices`.
//!
//! Adding a device is one file plus one registry line: write `devices/<name>.rs`
//! with the model (a pure state machine, unit-tested there), its [`Device`] impl
//! (MMIO and/or port-I/O accesses; it gets the VM's interrupt chip, a bounds-checked
//! handle on guest memory and a VM event sink through [`DeviceCtx`]) and a
//! constructor `fn(&EmuDevice, &VmFacts) -> Result<Created, String>` that says where
//! the device sits ([`Created::at_window`] for the window the config gives). Then
//! declare the module in `devices/mod.rs`, give its code a name in
//! [`super::emu_type`], and add its line to [`REGISTRY`]. Nothing in `vmm` changes.
//!
//! [`DeviceCtx`]: super::device::DeviceCtx

use super::bus::{Bus, Window};
use super::device::Device;
use super::dummy::Dummy;
use super::irqchip::ChipWindow;
use super::pl011::Pl011;
use super::serial::ConsoleUart;
use super::uart16550::Uart16550;
use super::{emu_type, ConsoleKind};
use crate::spec::EmuDevice;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// What a device constructor may need to know about its VM.
#[derive(Clone, Copy, Debug)]
pub struct VmFacts {
    /// The UART model this architecture's guests expect as their console.
    pub console: ConsoleKind,
    /// vCPUs of the VM.
    pub cpus: usize,
}

/// A device made from its config, and where it sits on the bus.
pub struct Created {
    pub device: Box<dyn Device>,
    pub windows: Vec<Window>,
}

impl Created {
    /// `device` at the MMIO window its config gives.
    pub fn at_window(d: &EmuDevice, device: impl Device + 'static) -> Self {
        Self {
            device: Box::new(device),
            windows: vec![Window::mmio(d.base_gpa, d.length)],
        }
    }
}

pub type Constructor = fn(&EmuDevice, &VmFacts) -> Result<Created, String>;

/// One kind of device a config can name.
pub struct Entry {
    pub emu_type: u32,
    /// What it is, for messages.
    pub name: &'static str,
    pub create: Constructor,
}

/// Every device this hypervisor emulates.
pub static REGISTRY: &[Entry] = &[
    entry(emu_type::DUMMY, "dummy", dummy),
    entry(emu_type::GIC_CPU_IF, "GICv2 CPU interface", chip_window),
    entry(emu_type::CONSOLE, "console UART", console),
    entry(emu_type::GIC_REDIST, "GIC redistributors", chip_window),
    entry(emu_type::GIC_DIST, "GIC distributor", chip_window),
    entry(emu_type::PLIC, "PLIC", chip_window),
];

const fn entry(emu_type: u32, name: &'static str, create: Constructor) -> Entry {
    Entry {
        emu_type,
        name,
        create,
    }
}

/// The registry entry for `emu_type`.
pub fn lookup(emu_type: u32) -> Option<&'static Entry> {
    REGISTRY.iter().find(|e| e.emu_type == emu_type)
}

/// Creates one device from its config.
pub fn create(d: &EmuDevice, vm: &VmFacts) -> Result<Created, String> {
    let e = lookup(d.emu_type).ok_or_else(|| {
        format!(
            "not supported yet: emulated device \"{}\" with emu_type {:#x}",
            d.name, d.emu_type
        )
    })?;
    (e.create)(d, vm).map_err(|why| format!("emulated device \"{}\" ({}): {why}", d.name, e.name))
}

/// A VM's bus with every device of `devices` on it.
pub fn build(devices: &[EmuDevice], vm: &VmFacts) -> Result<Bus, String> {
    let mut bus = Bus::default();
    // An IVC window is guest-physical space the VMM maps channels into
    // (`vmm::axivc`), not a device: what is not mapped there faults like any address.
    for d in devices.iter().filter(|d| d.emu_type != emu_type::IVC) {
        let c = create(d, vm)?;
        bus.add(d.name.clone(), c.device, &c.windows)?;
    }
    Ok(bus)
}

fn dummy(d: &EmuDevice, _: &VmFacts) -> Result<Created, String> {
    Ok(Created::at_window(d, Dummy))
}

/// The console UART: the model the platform's guests expect.
fn console(d: &EmuDevice, vm: &VmFacts) -> Result<Created, String> {
    Ok(match vm.console {
        ConsoleKind::Pl011 => Created::at_window(d, ConsoleUart::<Pl011>::new(d.irq)),
        ConsoleKind::Uart16550 => Created::at_window(d, ConsoleUart::<Uart16550>::new(d.irq)),
        ConsoleKind::Uart16550Ports => {
            let (Ok(base), Ok(len)) = (u16::try_from(d.base_gpa), u16::try_from(d.length)) else {
                return Err(format!(
                    "ports {:#x} (+{:#x}) are not in the 64 KiB I/O port space",
                    d.base_gpa, d.length
                ));
            };
            Created {
                device: Box::new(ConsoleUart::<Uart16550>::new(d.irq)),
                windows: vec![Window::ports(base, len)],
            }
        }
    })
}

/// A window of the VM's interrupt chip.
fn chip_window(d: &EmuDevice, _: &VmFacts) -> Result<Created, String> {
    Ok(Created::at_window(
        d,
        ChipWindow::new(d.emu_type, d.base_gpa),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::Cow;

    fn dev(emu_type: u32) -> EmuDevice {
        EmuDevice {
            name: Cow::Borrowed("d"),
            base_gpa: 0x1000,
            length: 0x100,
            irq: 33,
            emu_type,
            cfg: Cow::Borrowed(&[]),
        }
    }

    const FACTS: VmFacts = VmFacts {
        console: ConsoleKind::Uart16550,
        cpus: 1,
    };

    #[test]
    fn one_entry_per_emu_type() {
        for (i, e) in REGISTRY.iter().enumerate() {
            assert!(
                REGISTRY[i + 1..].iter().all(|o| o.emu_type != e.emu_type),
                "{}",
                e.name
            );
            let c = create(&dev(e.emu_type), &FACTS).unwrap();
            assert_eq!(c.windows, [Window::mmio(0x1000, 0x100)], "{}", e.name);
        }
    }

    #[test]
    fn the_console_is_the_architecture_s_uart_and_a_serial_port() {
        let mut c = create(&dev(emu_type::CONSOLE), &FACTS).unwrap();
        let serial = c.device.serial().expect("a serial port");
        assert_eq!(serial.irq_line(), 33);
        let mut ctx_less = create(&dev(emu_type::DUMMY), &FACTS).unwrap();
        assert!(ctx_less.device.serial().is_none());
    }

    #[test]
    fn a_port_console_sits_at_its_ports_and_answers_there() {
        let facts = VmFacts {
            console: ConsoleKind::Uart16550Ports,
            cpus: 1,
        };
        let mut d = dev(emu_type::CONSOLE);
        d.base_gpa = 0x3f8;
        d.length = 8;
        let mut c = create(&d, &facts).unwrap();
        assert_eq!(c.windows, [Window::ports(0x3f8, 8)]);
        let ram = crate::mm::guest::GuestRam::default();
        let mut events = Vec::new();
        let memory = crate::mm::guest::GuestMemory::new(&ram, None);
        let mut ctx = super::super::device::DeviceCtx::new(0, None, memory, &mut events);
        // LSR (port offset 5): transmitter empty; a byte out at offset 0.
        assert_ne!(c.device.pio_read(&mut ctx, 5, 1).unwrap() & 0x20, 0);
        c.device.pio_write(&mut ctx, 0, 1, u32::from(b'x')).unwrap();
        let mut out = Vec::new();
        c.device.serial().unwrap().drain_tx(&mut |b| out.push(b));
        assert_eq!(out, b"x");
        d.base_gpa = 0x1_0000;
        assert!(create(&d, &facts).err().unwrap().contains("I/O port space"));
    }

    #[test]
    fn unknown_emu_types_are_not_supported_yet() {
        let e = create(&dev(0x99), &FACTS).err().unwrap();
        assert_eq!(
            e,
            "not supported yet: emulated device \"d\" with emu_type 0x99"
        );
    }
}
