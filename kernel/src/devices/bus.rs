//! A VM's device bus: which device answers which MMIO window and which port-I/O
//! range. Windows of one address space never overlap (refused when a device is
//! added); an access is looked up and handed to its device with the offset into the
//! window it hit.

use super::device::{Device, DeviceCtx};
use super::MmioError;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

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
    name: &'static str,
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
}

impl Bus {
    /// Adds `device` (called `name` in messages) at `windows`. Refused when a
    /// window is empty, wraps around, or overlaps one already on the bus.
    pub fn add(
        &mut self,
        name: &'static str,
        device: Box<dyn Device>,
        windows: &[Window],
    ) -> Result<DeviceId, String> {
        for (i, w) in windows.iter().enumerate() {
            self.check(name, w, &windows[..i])?;
        }
        let id = self.devices.len();
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

    pub fn name(&self, id: DeviceId) -> Option<&'static str> {
        Some(self.devices.get(id)?.name)
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
        let result = match space {
            Space::Mmio => mmio(dev, ctx, off, width, write),
            Space::Port => port(dev, ctx, off, width, write),
        };
        Dispatch::Done { device: id, result }
    }

    /// Every device back to its power-on state.
    pub fn reset(&mut self) {
        self.devices().for_each(|d| d.reset());
    }
}

fn mmio(
    dev: &mut dyn Device,
    ctx: &mut DeviceCtx,
    off: u64,
    width: u8,
    write: Option<u64>,
) -> Result<u64, MmioError> {
    match write {
        Some(v) => dev.mmio_write(ctx, off, width, v).map(|_| 0),
        None => dev.mmio_read(ctx, off, width),
    }
}

fn port(
    dev: &mut dyn Device,
    ctx: &mut DeviceCtx,
    off: u64,
    width: u8,
    write: Option<u64>,
) -> Result<u64, MmioError> {
    // Port windows are at most 16 bits long, so the offset fits.
    let off = off as u16;
    match write {
        Some(v) => dev.pio_write(ctx, off, width, v as u32).map(|_| 0),
        None => dev.pio_read(ctx, off, width).map(u64::from),
    }
}
