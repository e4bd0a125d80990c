//! The x86 Linux boot protocol's setup header (Documentation/arch/x86/boot.rst), as
//! the hypervisor needs it to start a `bzImage` with the 32-bit boot protocol: the
//! real-mode setup code is left out, the protected-mode kernel after it goes to
//! `kernel_load_addr` (its `pref_address`, or for a relocatable kernel any multiple
//! of its `kernel_alignment` above that), the vCPU enters it there with ESI = the
//! zero page, whose first part is this header copied.
//!
//! Pure: xtask's checks read it from the file's first [`crate::image::HEAD_LEN`]
//! bytes, the hypervisor from the whole image. A bzImage older than protocol
//! [`MIN_VERSION`] is refused (the hypervisor hands over the ACPI tables by the zero
//! page's `acpi_rsdp_addr`, which Linux reads since 2.14, Linux 5.0), and so is a
//! zImage (`loadflags` without LOADED_HIGH: its kernel lives below 1 MiB).
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Where the setup header starts in the file (and in the zero page).
pub const HEADER_AT: usize = 0x1f1;
/// The magic "HdrS" and where it is.
pub const MAGIC_AT: usize = 0x202;
pub const MAGIC: [u8; 4] = *b"HdrS";
/// The boot sector's signature 0xAA55 at 0x1fe.
const BOOT_FLAG_AT: usize = 0x1fe;
/// The bytes a header of protocol 2.15 takes (up to `kernel_info_offset`); what a
/// parse needs of the file.
pub const HEADER_END: usize = 0x26c;
/// The oldest boot protocol the hypervisor starts: 2.14.
pub const MIN_VERSION: u16 = 0x020e;
/// loadflags bit 0: the protected-mode kernel is loaded at 1 MiB or above.
const LOADED_HIGH: u8 = 1 << 0;

/// The setup header fields the hypervisor uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// 512-byte sectors of real-mode setup code after the boot sector (0 means 4).
    pub setup_sects: u8,
    /// The boot protocol version (0x020f = 2.15).
    pub version: u16,
    pub loadflags: u8,
    /// The highest address the initrd may end at (inclusive).
    pub initrd_addr_max: u32,
    /// The alignment a relocatable kernel needs.
    pub kernel_alignment: u32,
    pub relocatable: bool,
    pub xloadflags: u16,
    /// The longest command line, without its NUL.
    pub cmdline_size: u32,
    /// Where the kernel wants to be (LOAD_PHYSICAL_ADDR).
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address while it decompresses and
    /// starts (its whole footprint before it sets up its own memory).
    pub init_size: u32,
    /// The header's end: 0x202 + the jump's offset byte at 0x201.
    pub header_end: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

/// Whether `head` (an image's first bytes) is an x86 Linux boot image: the "HdrS"
/// magic and the boot sector's 0xAA55.
pub fn is_bzimage(head: &[u8]) -> bool {
    head.len() >= MAGIC_AT + 4
        && head[MAGIC_AT..MAGIC_AT + 4] == MAGIC
        && u16_at(head, BOOT_FLAG_AT) == 0xaa55
}

/// The version as the documentation writes it: 0x020f -> "2.15".
pub fn version_text(v: u16) -> String {
    format!("{}.{:02}", v >> 8, v & 0xff)
}

/// The setup header of `head` (an image's first [`HEADER_END`] bytes or more): None
/// when it is not an x86 Linux boot image, Err (the reason) when it is one the
/// hypervisor cannot start.
pub fn parse(head: &[u8]) -> Result<Option<SetupHeader>, String> {
    if !is_bzimage(head) {
        return Ok(None);
    }
    let version = u16_at(head, 0x206);
    if version < MIN_VERSION {
        return Err(format!(
            "the bzImage's boot protocol is {} (older than Linux 5.0); the hypervisor needs {} or later (it passes the ACPI tables in the zero page's acpi_rsdp_addr)",
            version_text(version),
            version_text(MIN_VERSION)
        ));
    }
    if head.len() < HEADER_END {
        return Err(format!(
            "the bzImage is cut short: {} bytes, its setup header needs {HEADER_END}",
            head.len()
        ));
    }
    let loadflags = head[0x211];
    if loadflags & LOADED_HIGH == 0 {
        return Err(String::from(
            "the image is a zImage (loadflags without LOADED_HIGH: its kernel lives below 1 MiB); the hypervisor starts bzImages",
        ));
    }
    let h = SetupHeader {
        setup_sects: head[HEADER_AT],
        version,
        loadflags,
        initrd_addr_max: u32_at(head, 0x22c),
        kernel_alignment: u32_at(head, 0x230),
        relocatable: head[0x234] != 0,
        xloadflags: u16_at(head, 0x236),
        cmdline_size: u32_at(head, 0x238),
        pref_address: u64_at(head, 0x258),
        init_size: u32_at(head, 0x260),
        header_end: 0x202 + usize::from(head[0x201]),
    };
    // Protocol 2.14's header runs to handover_offset (0x268), 2.15's one field more.
    if h.header_end < 0x268 || h.header_end > 0x400 {
        return Err(format!(
            "the bzImage's setup header ends at {:#x} (the jump at 0x200), not where protocol {} puts it",
            h.header_end,
            version_text(version)
        ));
    }
    if h.relocatable && !h.kernel_alignment.is_power_of_two() {
        return Err(format!(
            "the bzImage's kernel_alignment {:#x} is not a power of two",
            h.kernel_alignment
        ));
    }
    if h.init_size == 0 || h.pref_address < 0x10_0000 {
        return Err(format!(
            "the bzImage's setup header gives init_size {:#x} and pref_address {:#x}: not a kernel the 32-bit protocol loads",
            h.init_size, h.pref_address
        ));
    }
    Ok(Some(h))
}

impl SetupHeader {
    /// Bytes of the file before the protected-mode kernel: the boot sector and
    /// the setup sectors.
    pub fn setup_len(&self) -> usize {
        let sects = if self.setup_sects == 0 {
            4
        } else {
            usize::from(self.setup_sects)
        };
        (sects + 1) * 512
    }

    /// Checks where a config loads the kernel: the protected-mode kernel at `load`
    /// (its pref_address, or for a relocatable kernel a multiple of its
    /// kernel_alignment at or above it), with its init_size (or its file, if
    /// longer) free of `others` (name, start, end). `file_len` is the whole
    /// bzImage's length. Returns the footprint.
    pub fn check_placement(
        &self,
        file_len: u64,
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<(u64, u64), String> {
        let pref = self.pref_address;
        if self.relocatable {
            let align = u64::from(self.kernel_alignment);
            if load < pref || !load.is_multiple_of(align) {
                return Err(format!(
                    "kernel_load_addr {load:#x} breaks the x86 boot protocol: the bzImage's protected-mode kernel goes to its pref_address {pref:#x} or a multiple of its kernel_alignment {align:#x} above it"
                ));
            }
        } else if load != pref {
            return Err(format!(
                "kernel_load_addr {load:#x} breaks the x86 boot protocol: the bzImage is not relocatable, its protected-mode kernel goes to its pref_address {pref:#x}"
            ));
        }
        let payload = file_len.saturating_sub(self.setup_len() as u64);
        let size = u64::from(self.init_size).max(payload);
        crate::image::kernel_clear_of(load, size, "the bzImage's init_size", others)
    }

    /// The 32-bit boot protocol enters the protected-mode kernel at its first byte.
    pub fn check_entry(&self, load: u64, entry: u64) -> Result<(), String> {
        if entry != load {
            return Err(format!(
                "entry_point {entry:#x}: the 32-bit boot protocol enters a bzImage at its protected-mode kernel's first byte, kernel_load_addr {load:#x}"
            ));
        }
        Ok(())
    }

    /// Checks the initrd and command line against the header: the initrd must end
    /// at or below initrd_addr_max, the command line fit cmdline_size.
    pub fn check_boot_data(
        &self,
        initrd: Option<(u64, u64)>,
        cmdline_len: usize,
    ) -> Result<(), String> {
        if let Some((at, len)) = initrd {
            let last = at.saturating_add(len.max(1)) - 1;
            if last > u64::from(self.initrd_addr_max) {
                return Err(format!(
                    "the ramdisk at {at:#x}..{:#x} ends above the bzImage's initrd_addr_max {:#x}",
                    at.saturating_add(len),
                    self.initrd_addr_max
                ));
            }
        }
        if cmdline_len > self.cmdline_size as usize {
            return Err(format!(
                "the command line is {cmdline_len} bytes; the bzImage takes {} at most (cmdline_size)",
                self.cmdline_size
            ));
        }
        Ok(())
    }
}

/// An example bzImage (for tests): a header of protocol `version` as Debian's 6.1
/// amd64 kernel has it (39 setup sectors, relocatable, 2 MiB alignment,
/// pref_address 16 MiB, init_size 63.6 MiB), followed by `payload` bytes of kernel.
pub fn example(version: u16, payload: usize) -> Vec<u8> {
    let setup = 40 * 512;
    let mut b = alloc::vec![0u8; setup + payload];
    b[HEADER_AT] = 39;
    b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    b[0x200] = 0xeb;
    b[0x201] = 0x6a;
    b[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(&MAGIC);
    b[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    b[0x211] = LOADED_HIGH;
    b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
    b[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    b[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    b[0x234] = 1;
    b[0x235] = 21;
    b[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
    b[0x238..0x23c].copy_from_slice(&0x7ffu32.to_le_bytes());
    b[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
    b[0x260..0x264].copy_from_slice(&0x3f9_8000u32.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use example as image;

    #[test]
    fn debians_header_is_read() {
        let b = image(0x020f, 0x1000);
        let h = parse(&b).unwrap().unwrap();
        assert_eq!(h.version, 0x020f);
        assert_eq!(h.setup_len(), 40 * 512);
        assert_eq!(h.pref_address, 0x100_0000);
        assert_eq!(h.init_size, 0x3f9_8000);
        assert_eq!(h.kernel_alignment, 0x20_0000);
        assert!(h.relocatable);
        assert_eq!(h.cmdline_size, 0x7ff);
        assert_eq!(h.initrd_addr_max, 0x7fff_ffff);
        assert_eq!(h.header_end, 0x26c);
        // Only the first HEADER_END bytes are needed.
        assert_eq!(parse(&b[..HEADER_END]).unwrap(), Some(h));
        // setup_sects 0 means 4.
        let mut z = b.clone();
        z[HEADER_AT] = 0;
        assert_eq!(parse(&z).unwrap().unwrap().setup_len(), 5 * 512);
    }

    #[test]
    fn other_images_are_not_bzimages() {
        assert_eq!(parse(&[0u8; 0x400]), Ok(None));
        assert_eq!(parse(b"short"), Ok(None));
        let mut b = image(0x020f, 0);
        b[0x1fe] = 0;
        assert_eq!(parse(&b), Ok(None), "no 0xAA55");
    }

    #[test]
    fn old_protocols_zimages_and_cut_headers_are_refused() {
        let e = parse(&image(0x020d, 0)).unwrap_err();
        assert_eq!(e, "the bzImage's boot protocol is 2.13 (older than Linux 5.0); the hypervisor needs 2.14 or later (it passes the ACPI tables in the zero page's acpi_rsdp_addr)");
        assert!(parse(&image(0x020e, 0)).unwrap().is_some());
        let mut z = image(0x020f, 0);
        z[0x211] = 0;
        assert!(parse(&z).unwrap_err().contains("zImage"));
        let e = parse(&image(0x020f, 0)[..0x240]).unwrap_err();
        assert!(e.contains("cut short"), "{e}");
        let mut odd = image(0x020f, 0);
        odd[0x230..0x234].copy_from_slice(&0x30_0000u32.to_le_bytes());
        assert!(parse(&odd).unwrap_err().contains("power of two"));
        let mut nosize = image(0x020f, 0);
        nosize[0x260..0x264].fill(0);
        assert!(parse(&nosize).unwrap_err().contains("init_size 0x0"));
    }

    #[test]
    fn placement_follows_pref_address_and_alignment() {
        let b = image(0x020f, 0x10_0000);
        let h = parse(&b).unwrap().unwrap();
        let len = b.len() as u64;
        assert_eq!(
            h.check_placement(len, 0x100_0000, &[]),
            Ok((0x100_0000, 0x100_0000 + 0x3f9_8000))
        );
        // Relocatable: a 2 MiB multiple above pref_address is fine, below or
        // unaligned is not.
        assert!(h.check_placement(len, 0x120_0000, &[]).is_ok());
        let e = h.check_placement(len, 0x20_0000, &[]).unwrap_err();
        assert!(e.contains("pref_address 0x1000000"), "{e}");
        assert!(h.check_placement(len, 0x110_0000, &[]).is_err());
        // Not relocatable: pref_address only.
        let mut fixed = h;
        fixed.relocatable = false;
        assert!(fixed
            .check_placement(len, 0x120_0000, &[])
            .unwrap_err()
            .contains("not relocatable"));
        // The entry is the load address.
        let e = h.check_entry(0x100_0000, 0x100_0200).unwrap_err();
        assert!(e.starts_with("entry_point 0x1000200"), "{e}");
        assert!(h.check_entry(0x100_0000, 0x100_0000).is_ok());
        // init_size covers the initrd.
        let e = h
            .check_placement(len, 0x100_0000, &[("initramfs", 0x200_0000, 0x210_0000)])
            .unwrap_err();
        assert_eq!(e, "the kernel needs 0x1000000..0x4f98000 (the bzImage's init_size) but the initramfs is at 0x2000000..0x2100000");
    }

    #[test]
    fn initrd_and_cmdline_limits() {
        let h = parse(&image(0x020f, 0)).unwrap().unwrap();
        assert!(h
            .check_boot_data(Some((0x1000_0000, 0x10_0000)), 100)
            .is_ok());
        assert!(h
            .check_boot_data(Some((0x7fff_f000, 0x2000)), 0)
            .unwrap_err()
            .contains("initrd_addr_max 0x7fffffff"));
        assert!(h
            .check_boot_data(None, 0x800)
            .unwrap_err()
            .contains("2047 at most"));
        assert!(h.check_boot_data(None, 0x7ff).is_ok());
    }
}
