//! A VM's device bus: which device answers which MMIO window and which port-I/O
//! range. Windows of one address space never overlap (refused when a device is
//! added); an access is looked up and handed to its device with the offset into the
//! window it hit.

use super::device::{Device, DeviceCtx};
use super::MmioError;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::signal::{Signal, SignalBoard};

use crate::spec::Str;

/// The two address spaces a device can occupy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Guest-physical memory.
    Mmio,
    /// I/O ports (x86).
    Port,
}

impl Space {
    fn what(self) -> &'static str {
        match self {
            Space::Mmio => "MMIO window",
            Space::Port => "port range",
        }
    }
}

/// A range of one address space a device occupies: `[base, base + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub space: Space,
    pub base: u64,
    pub len: u64,
}

impl Window {
    pub fn mmio(base: u64, len: u64) -> Self {
        Self {
            space: Space::Mmio,
            base,
            len,
        }
    }

    pub fn ports(base: u16, len: u16) -> Self {
        Self {
            space: Space::Port,
            base: base.into(),
            len: len.into(),
        }
    }

    fn contains(&self, space: Space, addr: u64) -> bool {
        self.space == space && self.base <= addr && addr - self.base < self.len
    }

    fn overlaps(&self, other: &Window) -> bool {
        self.space == other.space
            && self.base < other.base.saturating_add(other.len)
            && other.base < self.base.saturating_add(self.len)
    }
}

impl core::fmt::Display for Window {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let end = self.base.saturating_add(self.len);
        write!(f, "{} {:#x}..{:#x}", self.space.what(), self.base, end)
    }
}

/// Index of a device on its bus.
pub type DeviceId = usize;

struct Slot {
    name: Str,
    device: Box<dyn Device>,
}

/// What an access found.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// No device there.
    Unmapped,
    /// Device `device` answered (a read's value; 0 for a write).
    Done {
        device: DeviceId,
        result: Result<u64, MmioError>,
    },
}

#[derive(Default)]
pub struct Bus {
    devices: Vec<Slot>,
    windows: Vec<(Window, DeviceId)>,
    /// The signals of its devices (see [`super::signal`]).
    signals: Arc<SignalBoard>,
}

impl Bus {
    /// Adds `device` (called `name` in messages) at `windows`. Refused when a
    /// window is empty, wraps around, or overlaps one already on the bus.
    pub fn add(
        &mut self,
        name: impl Into<Str>,
        device: Box<dyn Device>,
        windows: &[Window],
    ) -> Result<DeviceId, String> {
        let name = name.into();
        for (i, w) in windows.iter().enumerate() {
            self.check(&name, w, &windows[..i])?;
        }
        let id = self.devices.len();
        let mut device = device;
        if let Some(s) = Signal::new(&self.signals, id) {
            device.connect(s);
        }
        self.devices.push(Slot { name, device });
        self.windows.extend(windows.iter().map(|&w| (w, id)));
        Ok(id)
    }

    fn check(&self, name: &str, w: &Window, earlier: &[Window]) -> Result<(), String> {
        if w.len == 0 || w.base.checked_add(w.len).is_none() {
            return Err(format!("emulated device \"{name}\": {w} is empty or wraps"));
        }
        if w.space == Space::Port && w.base + w.len > 0x1_0000 {
            return Err(format!(
                "emulated device \"{name}\": {w} goes beyond port 0xffff"
            ));
        }
        if let Some(o) = earlier.iter().find(|o| o.overlaps(w)) {
            return Err(format!("emulated device \"{name}\": {w} overlaps its {o}"));
        }
        match self.windows.iter().find(|(o, _)| o.overlaps(w)) {
            Some((o, id)) => Err(format!(
                "emulated device \"{name}\": {w} overlaps {o} of \"{}\"",
                self.devices[*id].name
            )),
            None => Ok(()),
        }
    }

    /// The device at `addr` of `space` and the offset into its window.
    pub fn lookup(&self, space: Space, addr: u64) -> Option<(DeviceId, u64)> {
        self.windows
            .iter()
            .find(|(w, _)| w.contains(space, addr))
            .map(|(w, id)| (*id, addr - w.base))
    }

    pub fn device(&mut self, id: DeviceId) -> Option<&mut dyn Device> {
        Some(self.devices.get_mut(id)?.device.as_mut())
    }

    /// The board its devices' signals are raised on.
    pub fn signals(&self) -> &Arc<SignalBoard> {
        &self.signals
    }

    /// The signal of device `id` (to hand to whoever finishes its work).
    pub fn signal(&self, id: DeviceId) -> Option<Signal> {
        self.devices.get(id)?;
        Signal::new(&self.signals, id)
    }

    pub fn name(&self, id: DeviceId) -> Option<&str> {
        Some(&self.devices.get(id)?.name)
    }

    /// The devices, in the order they were added.
    pub fn devices(&mut self) -> impl Iterator<Item = &mut dyn Device> + '_ {
        self.devices
            .iter_mut()
            .map(|s| s.device.as_mut() as &mut dyn Device)
    }

    /// Hands one access (`write` is None for a read) to the device at `addr`.
    pub fn dispatch(
        &mut self,
        ctx: &mut DeviceCtx,
        space: Space,
        addr: u64,
        width: u8,
        write: Option<u64>,
    ) -> Dispatch {
        let Some((id, off)) = self.lookup(space, addr) else {
            return Dispatch::Unmapped;
        };
        let dev = self.devices[id].device.as_mut();
        // Port windows end at 0xffff (checked when added), so a port offset fits.
        let result = match (space, write) {
            (Space::Mmio, None) => dev.mmio_read(ctx, off, width),
            (Space::Mmio, Some(v)) => dev.mmio_write(ctx, off, width, v).map(|_| 0),
            (Space::Port, None) => dev.pio_read(ctx, off as u16, width).map(u64::from),
            (Space::Port, Some(v)) => dev.pio_write(ctx, off as u16, width, v as u32).map(|_| 0),
        };
        Dispatch::Done { device: id, result }
    }

    /// Every device back to its power-on state.
    pub fn reset(&mut self) {
        self.devices().for_each(|d| d.reset());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::device::VmEvent;
    use crate::devices::irqchip::ChipWindow;
    use crate::devices::testdev::{RecordingChip, TestDevice, DMA_BYTES};
    use crate::devices::{dummy::Dummy, emu_type};
    use crate::mm::guest::{GuestMemError, GuestMemory, GuestRam, RamMapping};
    use crate::spec::mem_flags;

    const RAM: u64 = 0x4000_0000;
    const DEV: u64 = 0x1000_0000;

    /// A bus with the test device at MMIO 0x1000_0000 (4 KiB) and ports
    /// 0x3f8..0x400, line 42, and a dummy after it.
    fn bus() -> Bus {
        let mut bus = Bus::default();
        let w = [Window::mmio(DEV, 0x1000), Window::ports(0x3f8, 8)];
        assert_eq!(bus.add("probe", Box::new(TestDevice::new(42)), &w), Ok(0));
        let d = [Window::mmio(DEV + 0x1000, 0x1000)];
        assert_eq!(bus.add("dummy", Box::new(Dummy), &d), Ok(1));
        bus
    }

    /// Runs `f` with a context over a 4 KiB RAM at 0x4000_0000 (a host buffer),
    /// a recording chip, and an event list, and returns them.
    fn with_ctx(f: impl FnOnce(&mut DeviceCtx)) -> (Vec<u8>, RecordingChip, Vec<VmEvent>) {
        let mut buf = alloc::vec![0u8; 0x1000];
        let mut ram = GuestRam::default();
        ram.regions.push(RamMapping {
            gpa: RAM,
            hpa: buf.as_mut_ptr() as u64,
            size: 0x1000,
            flags: mem_flags::READ | mem_flags::WRITE,
        });
        let (mut chip, mut events) = (RecordingChip::default(), Vec::new());
        let memory = GuestMemory::new(&ram, None);
        f(&mut DeviceCtx::new(0, Some(&mut chip), memory, &mut events));
        (buf, chip, events)
    }

    fn done(result: Result<u64, MmioError>) -> Dispatch {
        Dispatch::Done { device: 0, result }
    }

    #[test]
    fn looks_up_windows_by_space() {
        let b = bus();
        assert_eq!(b.lookup(Space::Mmio, DEV), Some((0, 0)));
        assert_eq!(b.lookup(Space::Mmio, DEV + 0xfff), Some((0, 0xfff)));
        assert_eq!(b.lookup(Space::Mmio, DEV + 0x1008), Some((1, 8)));
        assert_eq!(b.lookup(Space::Mmio, DEV + 0x2000), None);
        assert_eq!(b.lookup(Space::Mmio, 0x3f8), None, "ports are not MMIO");
        assert_eq!(b.lookup(Space::Port, 0x3fc), Some((0, 4)));
        assert_eq!(b.lookup(Space::Port, 0x400), None);
        assert_eq!(b.name(1), Some("dummy"));
    }

    #[test]
    fn refuses_overlapping_and_empty_windows() {
        let mut b = bus();
        let add = |b: &mut Bus, w: &[Window]| b.add("new", Box::new(Dummy), w);
        assert_eq!(
            add(&mut b, &[Window::mmio(DEV + 0x1800, 0x1000)]),
            Err(String::from(
                "emulated device \"new\": MMIO window 0x10001800..0x10002800 overlaps \
                 MMIO window 0x10001000..0x10002000 of \"dummy\""
            ))
        );
        assert_eq!(
            add(&mut b, &[Window::ports(0x3ff, 2)]),
            Err(String::from(
                "emulated device \"new\": port range 0x3ff..0x401 overlaps \
                 port range 0x3f8..0x400 of \"probe\""
            ))
        );
        let own = [Window::mmio(0, 0x100), Window::mmio(0x80, 0x100)];
        assert!(add(&mut b, &own)
            .unwrap_err()
            .contains("overlaps its MMIO window 0x0..0x100"));
        assert!(add(&mut b, &[Window::mmio(0, 0)])
            .unwrap_err()
            .contains("is empty"));
        assert!(add(&mut b, &[Window::mmio(u64::MAX, 2)]).is_err(), "wraps");
        let high = Window {
            space: Space::Port,
            base: 0xfff0,
            len: 0x20,
        };
        assert!(add(&mut b, &[high])
            .unwrap_err()
            .contains("beyond port 0xffff"));
        assert_eq!(
            b.lookup(Space::Mmio, 0),
            None,
            "a refused device is not added"
        );
        assert_eq!(
            add(&mut b, &[Window::ports(0x400, 1)]),
            Ok(2),
            "adjacent is fine"
        );
    }

    #[test]
    fn dispatches_port_io_and_refuses_what_a_device_does_not_take() {
        let mut b = bus();
        with_ctx(|ctx| {
            assert_eq!(
                b.dispatch(ctx, Space::Port, 0x3f8, 4, Some(0xabcd)),
                done(Ok(0))
            );
            assert_eq!(
                b.dispatch(ctx, Space::Port, 0x3f8, 2, None),
                done(Ok(0xabcd))
            );
            let bad = MmioError::BadWidth {
                offset: 1,
                width: 1,
                accepts: crate::devices::Widths::W4,
            };
            assert_eq!(b.dispatch(ctx, Space::Port, 0x3f9, 1, None), done(Err(bad)));
            assert_eq!(
                b.dispatch(ctx, Space::Port, 0x60, 1, None),
                Dispatch::Unmapped
            );
            let mut ports = Bus::default();
            ports
                .add("d", Box::new(Dummy), &[Window::ports(0x80, 1)])
                .unwrap();
            let refused = MmioError::Refused {
                offset: 0,
                width: 8,
            };
            let r = ports.dispatch(ctx, Space::Port, 0x80, 8, None);
            assert_eq!(r, done(Err(refused)), "the dummy takes MMIO only");
        });
    }

    #[test]
    fn a_device_raises_its_line_through_the_chip() {
        let mut b = bus();
        let (_, chip, _) = with_ctx(|ctx| {
            b.dispatch(ctx, Space::Mmio, DEV, 4, Some(1));
            b.dispatch(ctx, Space::Mmio, DEV, 4, Some(0));
        });
        assert_eq!(chip.levels, [(42, true), (42, false)]);
    }

    #[test]
    fn a_device_reaches_guest_memory_within_bounds_only() {
        let mut b = bus();
        let (ram, _, _) = with_ctx(|ctx| {
            assert_eq!(
                b.dispatch(ctx, Space::Mmio, DEV + 8, 8, Some(RAM + 0x10)),
                done(Ok(0))
            );
            assert_eq!(b.dispatch(ctx, Space::Mmio, DEV + 8, 8, None), done(Ok(0)));
            b.dispatch(ctx, Space::Mmio, DEV + 0x10, 8, Some(RAM + 0x10));
            let got = u32::from_le_bytes(*DMA_BYTES).into();
            assert_eq!(
                b.dispatch(ctx, Space::Mmio, DEV + 0x18, 8, None),
                done(Ok(got))
            );
            // Past the end of RAM, and straddling it: refused, nothing moves.
            b.dispatch(ctx, Space::Mmio, DEV + 8, 8, Some(RAM + 0xffe));
            assert_eq!(b.dispatch(ctx, Space::Mmio, DEV + 8, 8, None), done(Ok(1)));
            b.dispatch(ctx, Space::Mmio, DEV + 0x10, 8, Some(0));
            assert_eq!(b.dispatch(ctx, Space::Mmio, DEV + 8, 8, None), done(Ok(1)));
            let e = ctx.memory.write(RAM + 0x1000, b"x");
            assert_eq!(
                e,
                Err(GuestMemError::OutOfBounds {
                    gpa: RAM + 0x1000,
                    len: 1
                })
            );
        });
        assert_eq!(&ram[0x10..0x14], DMA_BYTES);
        assert_eq!(&ram[0xffe..], &[0, 0]);
    }

    #[test]
    fn a_device_posts_vm_events() {
        let mut b = bus();
        let (_, _, events) = with_ctx(|ctx| {
            b.dispatch(ctx, Space::Mmio, DEV + 0x28, 8, Some(RAM));
            for e in [1, 2, 3] {
                b.dispatch(ctx, Space::Mmio, DEV + 0x20, 8, Some(e));
            }
        });
        let start = VmEvent::StartVcpu {
            index: 1,
            entry: RAM,
            arg: 7,
        };
        assert_eq!(events, [VmEvent::PowerOff, VmEvent::Reset, start]);
    }

    #[test]
    fn chip_windows_go_to_the_chip_with_their_emu_type() {
        let mut b = Bus::default();
        let w = ChipWindow::new(emu_type::GIC_DIST, 0x0800_0000);
        b.add("gicd", Box::new(w), &[Window::mmio(0x0800_0000, 0x1_0000)])
            .unwrap();
        with_ctx(|ctx| {
            let r = b.dispatch(ctx, Space::Mmio, 0x0800_0104, 4, None);
            assert_eq!(r, done(Ok(0x21_0000_0104)));
            assert_eq!(ctx.chip().map(|c| c.take_kicks()), Some(0));
        });
    }

    #[test]
    fn reset_reaches_every_device() {
        let mut b = bus();
        with_ctx(|ctx| {
            b.dispatch(ctx, Space::Port, 0x3f8, 4, Some(5));
            b.reset();
            assert_eq!(b.dispatch(ctx, Space::Port, 0x3f8, 4, None), done(Ok(0)));
        });
    }
}
