//! Linux's x86 32-bit boot protocol (Documentation/arch/x86/boot.rst) for a VM whose
//! kernel is a bzImage ([`vmconfig::bzimage`]): the protected-mode kernel (the file
//! after its setup sectors) at `kernel_load_addr`, and the boot description the core
//! loads at `dtb_load_addr`: the zero page (`struct boot_params`: the image's setup
//! header copied, the e820 map of the VM's RAM, the command line, the initrd, the
//! ACPI tables' RSDP in `acpi_rsdp_addr`), the command line, then the VM's ACPI
//! tables ([`super::acpi_guest`]). vCPU 0 starts in flat 32-bit protected mode with
//! paging and interrupts off at the kernel's first byte, ESI = the zero page, EAX,
//! EBX, EBP, EDI = 0, CS = __BOOT_CS (0x10), DS/ES/SS = __BOOT_DS (0x18).
//!
//! The hypervisor adds `tsc_early_khz=<the TSC's rate>` to the command line (unless
//! it names one): the VM has no PIT, HPET or CPUID leaf Linux would calibrate the TSC
//! with, and with the rate known Linux needs no timer but the local APIC's.
//!
//! Pure: bytes for guest-physical addresses.

use super::acpi_guest::{self, Platform};
use super::vmcb::{save, Setup, Vmcb, ATTR_CODE32, ATTR_DATA32};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use vmconfig::bzimage::{self, SetupHeader, HEADER_AT};

/// The zero page's size and the offsets of the fields the hypervisor writes.
pub const ZERO_PAGE: usize = 0x1000;
const ACPI_RSDP_ADDR: usize = 0x070;
const EXT_RAMDISK_IMAGE: usize = 0x0c0;
const EXT_RAMDISK_SIZE: usize = 0x0c4;
const EXT_CMD_LINE_PTR: usize = 0x0c8;
const E820_ENTRIES: usize = 0x1e8;
const TYPE_OF_LOADER: usize = 0x210;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21c;
const CMD_LINE_PTR: usize = 0x228;
const E820_TABLE: usize = 0x2d0;
const E820_MAX: usize = 128;
/// "Undefined" boot loader id.
const LOADER_UNDEFINED: u8 = 0xff;

/// e820 types.
pub const E820_RAM: u32 = 1;
pub const E820_ACPI: u32 = 3;

/// Segment selectors of the 32-bit boot protocol.
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;

/// Bit 63 of vCPU 0's start argument: the description at the rest of it is a zero
/// page, start with the Linux 32-bit protocol (no GPA reaches bit 63).
pub const LINUX_START: u64 = 1 << 63;

/// The e820 map: the VM's RAM as usable, with `reserved` ((GPA, size): the boot
/// description with the ACPI tables) cut out of it as ACPI data, sorted by address.
pub fn e820(memory: &[(u64, u64)], reserved: (u64, u64)) -> Vec<(u64, u64, u32)> {
    let (rs, re) = (reserved.0, reserved.0.saturating_add(reserved.1));
    let mut out = Vec::new();
    for &(base, size) in memory {
        let end = base.saturating_add(size);
        if re <= base || end <= rs {
            out.push((base, size, E820_RAM));
            continue;
        }
        if base < rs {
            out.push((base, rs - base, E820_RAM));
        }
        let (cs, ce) = (rs.max(base), re.min(end));
        out.push((cs, ce - cs, E820_ACPI));
        if re < end {
            out.push((re, end - re, E820_RAM));
        }
    }
    out.sort_by_key(|e| e.0);
    out
}

/// What a zero page is made of.
pub struct BootParams<'a> {
    /// The bzImage (its first [`bzimage::HEADER_END`] bytes at least).
    pub image: &'a [u8],
    pub cmdline_gpa: u64,
    pub initrd: Option<(u64, u64)>,
    pub e820: &'a [(u64, u64, u32)],
    pub rsdp: u64,
}

fn put(z: &mut [u8], at: usize, v: &[u8]) {
    z[at..at + v.len()].copy_from_slice(v);
}

/// The zero page.
pub fn zero_page(h: &SetupHeader, p: &BootParams<'_>) -> Result<Vec<u8>, String> {
    if p.e820.len() > E820_MAX {
        return Err(format!(
            "{} e820 entries; the zero page holds {E820_MAX}",
            p.e820.len()
        ));
    }
    let mut z = alloc::vec![0u8; ZERO_PAGE];
    z[HEADER_AT..h.header_end].copy_from_slice(&p.image[HEADER_AT..h.header_end]);
    z[TYPE_OF_LOADER] = LOADER_UNDEFINED;
    let lo = |v: u64| (v as u32).to_le_bytes();
    let hi = |v: u64| ((v >> 32) as u32).to_le_bytes();
    put(&mut z, CMD_LINE_PTR, &lo(p.cmdline_gpa));
    put(&mut z, EXT_CMD_LINE_PTR, &hi(p.cmdline_gpa));
    if let Some((at, len)) = p.initrd {
        put(&mut z, RAMDISK_IMAGE, &lo(at));
        put(&mut z, EXT_RAMDISK_IMAGE, &hi(at));
        put(&mut z, RAMDISK_SIZE, &lo(len));
        put(&mut z, EXT_RAMDISK_SIZE, &hi(len));
    }
    put(&mut z, ACPI_RSDP_ADDR, &p.rsdp.to_le_bytes());
    z[E820_ENTRIES] = p.e820.len() as u8;
    for (i, &(base, size, ty)) in p.e820.iter().enumerate() {
        let at = E820_TABLE + 20 * i;
        put(&mut z, at, &base.to_le_bytes());
        put(&mut z, at + 8, &size.to_le_bytes());
        put(&mut z, at + 16, &ty.to_le_bytes());
    }
    Ok(z)
}

/// The command line Linux gets: the VM's, with `tsc_early_khz=` added unless it
/// names one (or the rate is unknown).
pub fn cmdline(vm: &str, tsc_khz: u64) -> String {
    if tsc_khz == 0
        || vm
            .split_whitespace()
            .any(|w| w.starts_with("tsc_early_khz="))
    {
        return String::from(vm);
    }
    if vm.is_empty() {
        return format!("tsc_early_khz={tsc_khz}");
    }
    format!("{vm} tsc_early_khz={tsc_khz}")
}

/// What the boot description of a Linux VM is made of.
pub struct Vm<'a> {
    pub image: &'a [u8],
    pub cmdline: &'a str,
    /// (GPA, size) of the VM's RAM.
    pub memory: &'a [(u64, u64)],
    pub initrd: Option<(u64, u64)>,
    pub platform: &'a Platform,
    pub tsc_khz: u64,
}

/// Where the command line starts in the description (after the zero page).
const CMDLINE_OFF: usize = ZERO_PAGE;

/// The boot description for guest-physical `at` (a multiple of 64): the zero page,
/// the command line (NUL-terminated), the ACPI tables.
pub fn description(vm: &Vm<'_>, at: u64) -> Result<Vec<u8>, String> {
    let h = bzimage::parse(vm.image)?
        .ok_or_else(|| String::from("the kernel image is not a bzImage"))?;
    let line = cmdline(vm.cmdline, vm.tsc_khz);
    h.check_boot_data(vm.initrd, line.len())?;
    let tables_off = (CMDLINE_OFF + line.len() + 1).div_ceil(64) * 64;
    let tables = acpi_guest::tables(vm.platform, at + tables_off as u64)?;
    let size = tables_off + tables.len();
    let map = e820(vm.memory, (at, size as u64));
    let zp = zero_page(
        &h,
        &BootParams {
            image: vm.image,
            cmdline_gpa: at + CMDLINE_OFF as u64,
            initrd: vm.initrd,
            e820: &map,
            rsdp: at + tables_off as u64,
        },
    )?;
    let mut out = zp;
    out.extend_from_slice(line.as_bytes());
    out.resize(tables_off, 0);
    out.extend_from_slice(&tables);
    Ok(out)
}

/// vCPU 0 of a Linux VM: the Multiboot state's flat 32-bit segments, paging and
/// interrupts off, with the boot protocol's selectors, at `entry`; EAX = 0 (the
/// caller puts the zero page in ESI and zero in EBX).
pub fn start_state(v: &mut Vmcb, s: &Setup, entry: u32) {
    v.multiboot(s, entry);
    v.set_segment(save::CS, BOOT_CS, ATTR_CODE32, u32::MAX, 0);
    for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
        v.set_segment(seg, BOOT_DS, ATTR_DATA32, u32::MAX, 0);
    }
    v.set_u64(save::RAX, 0);
}

/// vCPU 0's start argument: the description's GPA, and whether it is a zero page.
pub fn split_arg(arg: u64) -> (bool, u64) {
    (arg & LINUX_START != 0, arg & !LINUX_START)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::acpi_guest::Serial;
    use vmconfig::bzimage::example as image;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn e820_cuts_the_description_out_of_ram() {
        let m = e820(&[(0, 0x2000_0000)], (0x8_0000, 0x2100));
        assert_eq!(
            m,
            [
                (0, 0x8_0000, E820_RAM),
                (0x8_0000, 0x2100, E820_ACPI),
                (0x8_2100, 0x2000_0000 - 0x8_2100, E820_RAM)
            ]
        );
        // Outside every region: RAM unchanged; at a region's start: no empty entry.
        assert_eq!(
            e820(&[(0x10_0000, 0x10_0000), (0, 0x1000)], (0x30_0000, 0x1000)),
            [(0, 0x1000, E820_RAM), (0x10_0000, 0x10_0000, E820_RAM)]
        );
        assert_eq!(
            e820(&[(0, 0x10_0000)], (0, 0x1000)),
            [(0, 0x1000, E820_ACPI), (0x1000, 0xf_f000, E820_RAM)]
        );
    }

    fn vm_platform() -> Platform {
        Platform {
            vcpus: 2,
            serials: alloc::vec![Serial {
                port: 0x3f8,
                len: 8,
                gsi: 4
            }],
            channels: alloc::vec::Vec::new(),
        }
    }

    #[test]
    fn the_zero_page_has_the_header_cmdline_initrd_e820_and_rsdp() {
        let img = image(0x020f, 0x1000);
        let p = vm_platform();
        let vm = Vm {
            image: &img,
            cmdline: "console=ttyS0 quiet",
            memory: &[(0, 0x2000_0000)],
            initrd: Some((0x1000_0000, 0x12_3456)),
            platform: &p,
            tsc_khz: 2_500_000,
        };
        let at = 0x8_0000;
        let d = description(&vm, at).unwrap();
        // The setup header is copied (magic, version, pref_address), the loader set.
        assert_eq!(&d[0x202..0x206], b"HdrS");
        // Copied as it is but for the fields the loader writes.
        assert_eq!(
            &d[HEADER_AT..TYPE_OF_LOADER],
            &img[HEADER_AT..TYPE_OF_LOADER]
        );
        assert_eq!(d[TYPE_OF_LOADER], 0xff);
        assert_eq!(&d[0x22c..0x26c], &img[0x22c..0x26c]);
        assert_eq!(u64_at(&d, 0x258), 0x100_0000);
        // The command line follows the zero page, with the TSC rate added.
        assert_eq!(u32_at(&d, CMD_LINE_PTR), 0x8_1000);
        assert_eq!(u32_at(&d, EXT_CMD_LINE_PTR), 0);
        let line = b"console=ttyS0 quiet tsc_early_khz=2500000\0";
        assert_eq!(&d[0x1000..0x1000 + line.len()], line);
        // The initrd.
        assert_eq!(u32_at(&d, RAMDISK_IMAGE), 0x1000_0000);
        assert_eq!(u32_at(&d, RAMDISK_SIZE), 0x12_3456);
        // The RSDP where acpi_rsdp_addr says, 64-byte aligned, inside the blob.
        let rsdp = u64_at(&d, ACPI_RSDP_ADDR);
        assert_eq!(rsdp % 64, 0);
        assert_eq!(&d[(rsdp - at) as usize..][..8], b"RSD PTR ");
        // e820: RAM around the description, which is ACPI data.
        assert_eq!(d[E820_ENTRIES], 3);
        let e = |i: usize| {
            let o = E820_TABLE + 20 * i;
            (u64_at(&d, o), u64_at(&d, o + 8), u32_at(&d, o + 16))
        };
        assert_eq!(e(0), (0, 0x8_0000, E820_RAM));
        assert_eq!(e(1), (0x8_0000, d.len() as u64, E820_ACPI));
        assert_eq!(e(2).0, 0x8_0000 + d.len() as u64);
        // The sentinel stays 0 (else Linux clears what the loader wrote).
        assert_eq!(d[0x1ef], 0);
        // The generated description fits what the checks placed for it.
        let est = 0x1000 + 0x200 * 2 + 0x100 * 3 + 0x40 + ((vm.cmdline.len() as u64 + 8) & !7);
        assert!((d.len() as u64) <= (est + 0xfff) & !0xfff, "{:#x}", d.len());
    }

    #[test]
    fn the_command_line_gets_the_tsc_rate_once_and_within_cmdline_size() {
        assert_eq!(cmdline("", 1000), "tsc_early_khz=1000");
        assert_eq!(cmdline("a b", 1000), "a b tsc_early_khz=1000");
        assert_eq!(cmdline("a tsc_early_khz=5 b", 1000), "a tsc_early_khz=5 b");
        assert_eq!(cmdline("a", 0), "a");
        let img = image(0x020f, 0);
        let p = vm_platform();
        let long = "x".repeat(0x7f0);
        let vm = Vm {
            image: &img,
            cmdline: &long,
            memory: &[(0, 0x2000_0000)],
            initrd: None,
            platform: &p,
            tsc_khz: 2_500_000,
        };
        let e = description(&vm, 0x8_0000).unwrap_err();
        assert!(e.contains("cmdline_size"), "{e}");
        let old = image(0x020c, 0);
        let e = description(&Vm { image: &old, ..vm }, 0x8_0000).unwrap_err();
        assert!(e.contains("2.12"), "{e}");
    }

    #[test]
    fn vcpu0_starts_flat_32_bit_with_the_boot_selectors() {
        let mut v = alloc::boxed::Box::new(Vmcb::zeroed());
        let s = Setup {
            asid: 1,
            ncr3: 0x5000,
            iopm_pa: 0x20_0000,
            msrpm_pa: 0x20_3000,
        };
        start_state(&mut v, &s, 0x100_0000);
        assert_eq!(v.u64(save::RIP), 0x100_0000);
        assert_eq!(v.u64(save::RAX), 0);
        assert_eq!(v.u16(save::CS), 0x10);
        assert_eq!(v.u16(save::CS + 2), ATTR_CODE32);
        assert_eq!(v.u32(save::CS + 4), u32::MAX);
        for seg in [save::DS, save::ES, save::SS] {
            assert_eq!(v.u16(seg), 0x18);
            assert_eq!(v.u16(seg + 2), ATTR_DATA32);
        }
        // Paging off, protection on, interrupts off.
        assert_eq!(v.u64(save::CR0) & 0x8000_0001, 1);
        assert_eq!(v.u64(save::RFLAGS) & 1 << 9, 0);
        assert_eq!(split_arg(0x8_0000 | LINUX_START), (true, 0x8_0000));
        assert_eq!(split_arg(0x8_0000), (false, 0x8_0000));
    }
}
