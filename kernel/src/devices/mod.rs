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

/// The access widths (in bytes) a register takes: the set of 1, 2, 4 and 8, each
/// width its own bit (`Widths(1 | 4)`: bytes and words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Widths(pub u8);

impl Widths {
    pub const W4: Self = Self(4);
    pub const W1_4: Self = Self(1 | 4);
    pub const W4_8: Self = Self(4 | 8);
    pub const W1_2_4: Self = Self(1 | 2 | 4);
    pub const ANY: Self = Self(1 | 2 | 4 | 8);

    /// Only `width` bytes.
    pub const fn exactly(width: u8) -> Self {
        Self(width)
    }
}

/// "4-byte", "1- or 4-byte", "1-, 2- or 4-byte".
impl core::fmt::Display for Widths {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let all: alloc::vec::Vec<u8> = [1u8, 2, 4, 8]
            .into_iter()
            .filter(|w| self.0 & w != 0)
            .collect();
        match all.split_last() {
            None => f.write_str("no"),
            Some((last, [])) => write!(f, "{last}-byte"),
            Some((last, rest)) => {
                let rest: alloc::vec::Vec<alloc::string::String> =
                    rest.iter().map(|w| alloc::format!("{w}-")).collect();
                write!(f, "{} or {last}-byte", rest.join(", "))
            }
        }
    }
}

/// Why an MMIO access could not be served; the VM that made it is stopped with this
/// ([`MmioError::describe`] says it as a sentence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// Access width the register does not support; it takes `accepts`.
    BadWidth {
        offset: u64,
        width: u8,
        accepts: Widths,
    },
    /// Offset not aligned to the access width.
    Unaligned { offset: u64, width: u8 },
    /// A kind of access the device does not take (port I/O to an MMIO device).
    Refused { offset: u64, width: u8 },
}

impl MmioError {
    /// The refusal as a sentence: `width`-byte `write`/read at which offset of
    /// `device` (its name in the VM config), and what the device takes instead;
    /// `space` is what the access was ("MMIO", "port I/O").
    pub fn describe(&self, device: &str, space: &str, write: bool) -> alloc::string::String {
        let dir = if write { "write" } else { "read" };
        match *self {
            Self::BadWidth {
                offset,
                width,
                accepts,
            } => alloc::format!(
                "wrong width: {width}-byte {space} {dir} at offset {offset:#x} of device {device}, which takes {accepts} accesses there"
            ),
            Self::Unaligned { offset, width } => alloc::format!(
                "unaligned: {width}-byte {space} {dir} at offset {offset:#x} of device {device}, which takes only accesses aligned to their width"
            ),
            Self::Refused { offset, width } => alloc::format!(
                "refused: {width}-byte {space} {dir} at offset {offset:#x} of device {device}, which takes no {space}"
            ),
        }
    }
}

/// An emulated device occupying a window of guest-physical space. `offset` is relative
/// to the window base; `width` is 1, 2, 4 or 8 bytes. Unknown registers read as zero
/// and ignore writes (as real hardware's reserved space does).
pub trait MmioDevice {
    fn read(&mut self, offset: u64, width: u8) -> Result<u64, MmioError>;
    fn write(&mut self, offset: u64, width: u8, value: u64) -> Result<(), MmioError>;
}

#[cfg(test)]
mod tests {
    use super::{MmioError, Widths};

    #[test]
    fn widths_read_as_words() {
        assert_eq!(Widths::W4.to_string(), "4-byte");
        assert_eq!(Widths::W1_4.to_string(), "1- or 4-byte");
        assert_eq!(Widths::W1_2_4.to_string(), "1-, 2- or 4-byte");
        assert_eq!(Widths::ANY.to_string(), "1-, 2-, 4- or 8-byte");
        assert_eq!(Widths::exactly(8).to_string(), "8-byte");
    }

    #[test]
    fn refusals_are_sentences_naming_device_offset_width_and_what_it_takes() {
        let bad = MmioError::BadWidth {
            offset: 0x18,
            width: 8,
            accepts: Widths::W1_2_4,
        };
        assert_eq!(
            bad.describe("uart", "MMIO", false),
            "wrong width: 8-byte MMIO read at offset 0x18 of device uart, which takes 1-, 2- or 4-byte accesses there"
        );
        let unaligned = MmioError::Unaligned {
            offset: 6,
            width: 4,
        };
        assert_eq!(
            unaligned.describe("plic", "MMIO", true),
            "unaligned: 4-byte MMIO write at offset 0x6 of device plic, which takes only accesses aligned to their width"
        );
        let refused = MmioError::Refused {
            offset: 0,
            width: 1,
        };
        assert_eq!(
            refused.describe("gicd", "port I/O", false),
            "refused: 1-byte port I/O read at offset 0x0 of device gicd, which takes no port I/O"
        );
    }
}
