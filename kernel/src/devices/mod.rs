//! Emulated devices. The models are pure state machines behind one MMIO interface
//! ([`MmioDevice`]), with no knowledge of how accesses arrive (trap decoding is arch
//! code) and no arch code; every register is unit-tested on the host. Small adapters
//! put them on a VM's [`bus`] as [`device::Device`]s, created from the VM config
//! through the [`registry`].

/// Which UART model a guest's console is: the one its architecture's guests expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleKind {
    Pl011,
    Uart16550,
    /// A 16550 in the I/O port space (x86's COM ports): the config's `base_gpa` is
    /// its first port, `length` its port count.
    Uart16550Ports,
}

/// AxVisor `emu_type` codes of the devices this hypervisor emulates.
pub mod emu_type {
    pub const DUMMY: u32 = 0x0;
    /// GICv2 CPU interface: the host's GICV frame, mapped (not trapped).
    pub const GIC_CPU_IF: u32 = 0x1;
    pub const CONSOLE: u32 = 0x2;
    pub const GIC_REDIST: u32 = 0x20;
    pub const GIC_DIST: u32 = 0x21;
    /// RISC-V PLIC.
    pub const PLIC: u32 = 0x30;
    /// AxVisor's inter-VM channel device.
    pub const IVC: u32 = 0xA;
}

pub mod bus;
pub mod device;
pub mod doorbell;
pub mod dummy;
pub mod irqchip;
pub mod pl011;
pub mod registry;
pub mod ring;
pub mod serial;
pub mod signal;
#[cfg(any(test, feature = "fuzz"))]
pub mod testdev;
pub mod uart16550;
pub mod vgic;
pub mod vplic;
pub mod x86apic;

/// Why an MMIO access could not be served; the VM that made it is stopped with this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// Access width the register does not support.
    BadWidth { offset: u64, width: u8 },
    /// Offset not aligned to the access width.
    Unaligned { offset: u64, width: u8 },
    /// A kind of access the device does not take (port I/O to an MMIO device).
    Refused { offset: u64, width: u8 },
}

/// An emulated device occupying a window of guest-physical space. `offset` is relative
/// to the window base; `width` is 1, 2, 4 or 8 bytes. Unknown registers read as zero
/// and ignore writes (as real hardware's reserved space does).
pub trait MmioDevice {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError>;
    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError>;
}
