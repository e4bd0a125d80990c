//! The bare side of an x86_64 bench: bare QEMU boots the guest with the very boot
//! description the hypervisor gives the VM (captured from its console like a DTB, see
//! `vmconfig::dtbdump`), at the same guest-physical addresses, and starts it the way
//! the hypervisor starts vCPU 0. The description is what the hypervisor writes for
//! the VM's kernel: a Linux zero page with its command line and ACPI tables
//! (`linux-boot`), or a Multiboot information block (memory map and command line)
//! for a Multiboot kernel such as the test guest (`tiny-boot` and the guest benches).
//!
//! QEMU's own x86 boot (SeaBIOS, then its Linux or Multiboot option ROM) would hand
//! the guest QEMU's ACPI tables and memory map, its PCI host, HPET, PIT and RTC, and
//! spend its own time in firmware: not like for like. Instead the images go in with
//! QEMU's generic loader (`-device loader`) and the firmware is [`boot_rom`]: 64 KiB
//! whose reset vector turns on the q35 chipset's ACPI power-management block at the
//! ports the hypervisor emulates it at (PM1a at 0x600, the PM timer at 0x608: Linux
//! finds them in the VM's FADT, the test guest calibrates its clocks against the PM
//! timer when bare), enters flat 32-bit protected mode with the boot protocol's
//! selectors and registers ([`Protocol`]) and jumps to the kernel's entry, as
//! `kernel/src/arch/x86_64/linux.rs` and `vmcb.rs` (`Vmcb::multiboot`) start vCPU 0.
//! The other CPUs wait for the guest's INIT-SIPI-SIPI as QEMU's application
//! processors do.

use std::path::Path;

use anyhow::{ensure, Context, Result};

/// The ROM's size (QEMU wants a multiple of 64 KiB); it is mapped below 4 GiB and its
/// last 64 KiB at 0xF_0000 (segment 0xF000 in real mode).
pub const ROM_SIZE: usize = 0x1_0000;
/// Where the ROM's real-mode segment starts, physically.
const ROM_BASE: u32 = 0xF_0000;
/// The reset vector's offset in the ROM (physical 0xFFFF_FFF0 and 0xF_FFF0).
const RESET: usize = 0xFFF0;
/// Offsets of the ROM's parts.
const GDT: usize = 0x0;
const GDT_DESC: usize = 0x20;
const CODE16: usize = 0x40;
const CODE32: usize = 0x100;

/// The q35 chipset's ACPI power-management block: LPC bridge 00:1f.0 config
/// registers PMBASE (0x40) and ACPI_CNTL (0x44, bit 7 ACPI_EN), written through the
/// PCI configuration ports; PM1a control at PMBASE + 4 (SCI_EN: ACPI mode on, as the
/// hypervisor's PM1a control reads).
const PM_BASE: u16 = 0x600;
const LPC_PMBASE: u32 = 0x8000_F840;
const LPC_ACPI_CNTL: u32 = 0x8000_F844;
const ACPI_EN: u8 = 0x80;
const SCI_EN: u16 = 1;

/// Flat 4 GiB code and data descriptors (base 0, limit 0xFFFFF pages, present,
/// DPL 0, 32-bit, 4 KiB granularity).
const FLAT_CODE: u64 = 0x00CF_9A00_0000_FFFF;
const FLAT_DATA: u64 = 0x00CF_9200_0000_FFFF;
/// Descriptors in the GDT (the null one and three more).
const GDT_LEN: usize = 4;
/// The Multiboot magic a Multiboot kernel finds in EAX.
pub const MULTIBOOT_MAGIC: u32 = 0x2BAD_B002;

/// How the kernel is entered: the boot protocol and its description's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Linux's 32-bit boot protocol: CS 0x10, DS/ES/SS 0x18, ESI = the zero page,
    /// EAX = EBX = EBP = EDI = 0 (`kernel/src/arch/x86_64/linux.rs`).
    Linux { zero_page: u32 },
    /// Multiboot v1 as the hypervisor enters it (`Vmcb::multiboot`): CS 0x08, the
    /// data selectors 0x10, EAX = 0x2BADB002, EBX = the information block, ESI =
    /// EBP = EDI = 0.
    Multiboot { info: u32 },
}

impl Protocol {
    /// The GDT (by selector / 8), the code and the data selector.
    fn segments(self) -> ([u64; GDT_LEN], u16, u16) {
        match self {
            Protocol::Linux { .. } => ([0, 0, FLAT_CODE, FLAT_DATA], 0x10, 0x18),
            Protocol::Multiboot { .. } => ([0, FLAT_CODE, FLAT_DATA, 0], 0x08, 0x10),
        }
    }

    /// EAX, EBX and ESI at the kernel's entry.
    fn registers(self) -> [u32; 3] {
        match self {
            Protocol::Linux { zero_page } => [0, 0, zero_page],
            Protocol::Multiboot { info } => [MULTIBOOT_MAGIC, info, 0],
        }
    }
}

/// The 64 KiB boot ROM that starts the kernel at `entry` (32-bit, paging off) as
/// `protocol` says.
pub fn boot_rom(protocol: Protocol, entry: u32) -> Vec<u8> {
    let mut rom = vec![0xF4u8; ROM_SIZE]; // hlt everywhere else
    let (gdt, cs, ds) = protocol.segments();
    for (i, e) in gdt.iter().enumerate() {
        put(&mut rom, GDT + 8 * i, &e.to_le_bytes());
    }
    let limit = (GDT_LEN * 8 - 1) as u16;
    put(&mut rom, GDT_DESC, &limit.to_le_bytes());
    put(
        &mut rom,
        GDT_DESC + 2,
        &(ROM_BASE + GDT as u32).to_le_bytes(),
    );
    put(&mut rom, CODE16, &real_mode(cs));
    put(&mut rom, CODE32, &protected_mode(protocol, ds, entry));
    // jmp far 0xF000:CODE16 (reloads CS with the low alias's base, 0xF_0000).
    let mut jmp = vec![0xEA];
    jmp.extend_from_slice(&(CODE16 as u16).to_le_bytes());
    jmp.extend_from_slice(&((ROM_BASE >> 4) as u16).to_le_bytes());
    put(&mut rom, RESET, &jmp);
    rom
}

fn put(rom: &mut [u8], at: usize, bytes: &[u8]) {
    rom[at..at + bytes.len()].copy_from_slice(bytes);
}

/// 16-bit code: interrupts off, the PM block on, the GDT loaded, protection on, a
/// far jump to the 32-bit code with CS = `cs`.
fn real_mode(cs: u16) -> Vec<u8> {
    // cli; cld; then PMBASE = 0x600 | 1 (I/O space) and ACPI_EN.
    let mut c = vec![0xFA, 0xFC];
    out_config(&mut c, LPC_PMBASE);
    c.extend([0x66, 0xB8]); // mov eax, imm32
    c.extend_from_slice(&u32::from(PM_BASE | 1).to_le_bytes());
    c.extend([0xBA, 0xFC, 0x0C, 0x66, 0xEF]); // mov dx, 0xcfc; out dx, eax
    out_config(&mut c, LPC_ACPI_CNTL);
    c.extend([0xB0, ACPI_EN]); // mov al, ACPI_EN
    c.extend([0xBA, 0xFC, 0x0C, 0xEE]); // mov dx, 0xcfc; out dx, al
    c.push(0xBA); // mov dx, PM1a control
    c.extend_from_slice(&(PM_BASE + 4).to_le_bytes());
    c.push(0xB8); // mov ax, SCI_EN
    c.extend_from_slice(&SCI_EN.to_le_bytes());
    c.push(0xEF); // out dx, ax

    // lgdt cs:[GDT_DESC] with a 32-bit base (operand-size prefix).
    c.extend([0x2E, 0x66, 0x0F, 0x01, 0x16]);
    c.extend_from_slice(&(GDT_DESC as u16).to_le_bytes());
    // cr0 |= PE
    c.extend([0x0F, 0x20, 0xC0, 0x0C, 0x01, 0x0F, 0x22, 0xC0]);
    // jmp far cs:ROM_BASE + CODE32 (ptr16:32).
    c.extend([0x66, 0xEA]);
    c.extend_from_slice(&(ROM_BASE + CODE32 as u32).to_le_bytes());
    c.extend_from_slice(&cs.to_le_bytes());
    c
}

/// `mov eax, address; mov dx, 0xcf8; out dx, eax` (16-bit code).
fn out_config(c: &mut Vec<u8>, address: u32) {
    c.extend([0x66, 0xB8]);
    c.extend_from_slice(&address.to_le_bytes());
    c.extend([0xBA, 0xF8, 0x0C, 0x66, 0xEF]);
}

/// 32-bit code: the data selectors `ds`, the boot protocol's registers, the jump.
fn protected_mode(protocol: Protocol, ds: u16, entry: u32) -> Vec<u8> {
    let mut c = vec![0xB8]; // mov eax, ds
    c.extend_from_slice(&u32::from(ds).to_le_bytes());
    for sreg in [0xD8, 0xC0, 0xD0, 0xE0, 0xE8] {
        c.extend([0x8E, sreg]); // mov ds/es/ss/fs/gs, ax
    }
    let [eax, ebx, esi] = protocol.registers();
    c.push(0xBE); // mov esi, imm32
    c.extend_from_slice(&esi.to_le_bytes());
    c.push(0xBB); // mov ebx, imm32
    c.extend_from_slice(&ebx.to_le_bytes());
    c.extend([0x31, 0xED, 0x31, 0xFF]); // ebp, edi = 0
    c.push(0xB9); // mov ecx, entry
    c.extend_from_slice(&entry.to_le_bytes());
    c.push(0xB8); // mov eax, imm32 (last: it held the selector)
    c.extend_from_slice(&eax.to_le_bytes());
    c.extend([0xFF, 0xE1]); // jmp ecx
    c
}

/// How `image` is entered and what of it the hypervisor loads, where: a bzImage's
/// protected-mode kernel (after its setup sectors) at `linux_load`, entered by the
/// Linux protocol with the zero page at `desc_at`; else what its Multiboot header
/// names, at the header's address, with the information block at `desc_at`.
pub fn kernel_part(image: &[u8], desc_at: u32, linux_load: u64) -> Result<(Protocol, u64, &[u8])> {
    if let Some(h) = vmconfig::bzimage::parse(image).map_err(|e| anyhow::anyhow!("{e}"))? {
        let off = h.setup_len();
        ensure!(off < image.len(), "the bzImage ends in its setup sectors");
        let linux = Protocol::Linux { zero_page: desc_at };
        return Ok((linux, linux_load, &image[off..]));
    }
    let (load, part) = multiboot_part(image).context("neither a bzImage nor a Multiboot kernel")?;
    Ok((Protocol::Multiboot { info: desc_at }, load, part))
}

/// The part of a Multiboot image the hypervisor loads (by its header's a.out-kludge
/// addresses, `vmconfig::multiboot`), and where it goes.
pub fn multiboot_part(image: &[u8]) -> Result<(u64, &[u8])> {
    let l = vmconfig::multiboot::layout(image).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((l.load_addr, &image[l.file_start..l.file_end]))
}

/// `-device loader` for `file` at guest-physical `addr`, loaded as raw bytes.
pub fn loader(file: &Path, addr: u64) -> [String; 2] {
    [
        "-device".into(),
        format!("loader,file={},addr={addr:#x},force-raw=on", file.display()),
    ]
}

/// The bare CPU: the board's model with what the hypervisor hides from its guests
/// hidden too (`kernel/src/arch/x86_64/cpuid.rs`: SVM, SKINIT, VMX, MONITOR, XSAVE)
/// and the hypervisor bit set, so Linux takes the same paths on both sides.
pub fn bare_cpu(model: &str) -> String {
    format!("{model},-svm,-skinit,-vmx,-monitor,-xsave,+hypervisor")
}

/// The bare machine: the board's, without the legacy chips a VM does not have
/// (`kernel/src/arch/x86_64/legacy.rs`: the 8254 PIT, the 8259 PICs, and no HPET),
/// so bare Linux does not probe or use them (with a PIT it checks the 8254 timer
/// through the I/O APIC). The CMOS clock stays: q35 cannot drop it.
pub fn bare_machine(machine: &str) -> String {
    format!("{machine},pit=off,pic=off,hpet=off")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    const LINUX: Protocol = Protocol::Linux {
        zero_page: 0x8_0000,
    };
    const MULTIBOOT: Protocol = Protocol::Multiboot { info: 0x9000 };

    #[test]
    fn the_bare_machine_lacks_the_legacy_timers_and_pics() {
        assert_eq!(bare_machine("q35"), "q35,pit=off,pic=off,hpet=off");
        assert!(bare_cpu("EPYC").starts_with("EPYC,-svm"));
    }

    #[test]
    fn the_reset_vector_jumps_to_the_real_mode_code() {
        for p in [LINUX, MULTIBOOT] {
            let rom = boot_rom(p, 0x100_0000);
            assert_eq!(rom.len(), ROM_SIZE);
            assert_eq!(&rom[RESET..RESET + 5], &[0xEA, 0x40, 0x00, 0x00, 0xF0]);
            assert_eq!(rom[CODE16], 0xFA, "cli first");
        }
    }

    fn gdt(rom: &[u8]) -> Vec<u64> {
        (0..GDT_LEN)
            .map(|i| u64::from_le_bytes(rom[GDT + 8 * i..GDT + 8 * i + 8].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn the_gdt_is_flat_with_the_protocols_selectors() {
        // Base 0, limit 0xFFFFF pages, present, DPL 0; code execute/read, data
        // read/write, 32-bit, 4 KiB granularity.
        let (code, data) = (0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF);
        let rom = boot_rom(LINUX, 0x100_0000);
        assert_eq!(gdt(&rom), [0, 0, code, data], "Linux: CS 0x10, DS 0x18");
        assert_eq!(&rom[GDT_DESC..GDT_DESC + 2], &[0x1F, 0x00]);
        assert_eq!(u32_at(&rom, GDT_DESC + 2), 0xF_0000);
        let rom = boot_rom(MULTIBOOT, 0x10_0020);
        assert_eq!(gdt(&rom), [0, code, data, 0], "Multiboot: CS 0x08, DS 0x10");
        assert_eq!(&rom[GDT_DESC..GDT_DESC + 2], &[0x1F, 0x00]);
    }

    /// The 32-bit code of `rom`, byte by byte: data selector `ds`, ESI, EBX, entry, EAX.
    fn expected_code32(ds: u8, esi: u32, ebx: u32, entry: u32, eax: u32) -> Vec<u8> {
        let mut c = vec![0xB8, ds, 0, 0, 0];
        c.extend([0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0, 0x8E, 0xE0, 0x8E, 0xE8]);
        c.push(0xBE);
        c.extend(esi.to_le_bytes());
        c.push(0xBB);
        c.extend(ebx.to_le_bytes());
        c.extend([0x31, 0xED, 0x31, 0xFF]);
        c.push(0xB9);
        c.extend(entry.to_le_bytes());
        c.push(0xB8);
        c.extend(eax.to_le_bytes());
        c.extend([0xFF, 0xE1]);
        c
    }

    #[test]
    fn linux_gets_the_zero_page_in_esi() {
        let rom = boot_rom(LINUX, 0x100_0000);
        let want = expected_code32(0x18, 0x8_0000, 0, 0x100_0000, 0);
        assert_eq!(&rom[CODE32..CODE32 + want.len()], &want[..]);
        assert_eq!(rom[CODE32 + want.len()], 0xF4, "hlt after the jump");
        // The far jump of the real-mode code lands there, with CS = 0x10.
        let r = &rom[CODE16..CODE16 + real_mode(0x10).len()];
        let far = r.len() - 8;
        assert_eq!(&r[far..far + 2], &[0x66, 0xEA]);
        assert_eq!(u32_at(r, far + 2), 0xF_0000 + CODE32 as u32);
        assert_eq!(&r[far + 6..], &[0x10, 0x00]);
    }

    #[test]
    fn multiboot_gets_the_magic_in_eax_and_the_information_in_ebx() {
        let rom = boot_rom(MULTIBOOT, 0x10_0020);
        let want = expected_code32(0x10, 0, 0x9000, 0x10_0020, 0x2BAD_B002);
        assert_eq!(&rom[CODE32..CODE32 + want.len()], &want[..]);
        let r = &rom[CODE16..CODE16 + real_mode(0x08).len()];
        assert_eq!(&r[r.len() - 2..], &[0x08, 0x00], "CS 0x08");
        assert_eq!(u32_at(r, r.len() - 6), 0xF_0000 + CODE32 as u32);
    }

    #[test]
    fn the_parts_do_not_overlap() {
        const { assert!(GDT + GDT_LEN * 8 <= GDT_DESC) };
        const { assert!(GDT_DESC + 6 <= CODE16) };
        assert!(CODE16 + real_mode(0x10).len() <= CODE32);
        for p in [LINUX, MULTIBOOT] {
            assert!(CODE32 + protected_mode(p, 0x10, 0).len() <= RESET);
        }
    }

    #[test]
    fn the_pm_block_goes_where_the_fadt_says() {
        let r = real_mode(0x10);
        let find = |v: u32| r.windows(4).any(|w| w == v.to_le_bytes());
        assert!(find(0x8000_F840) && find(0x8000_F844) && find(0x601));
        assert!(
            r.windows(3).any(|w| w == [0xBA, 0x04, 0x06]),
            "PM1a control at 0x604"
        );
    }

    #[test]
    fn the_protected_mode_kernel_follows_the_setup_sectors() {
        let image = vmconfig::bzimage::example(0x20f, 0x4000);
        let h = vmconfig::bzimage::parse(&image).unwrap().unwrap();
        let (p, load, part) = kernel_part(&image, 0x8_0000, 0x100_0000).unwrap();
        assert_eq!(image.len() - part.len(), h.setup_len());
        assert_eq!((p, load), (LINUX, 0x100_0000));
        assert!(kernel_part(&[0u8; 600], 0x8_0000, 0x100_0000).is_err());
    }

    /// An image whose Multiboot header (at 0x40) says: file from 0x20 loaded at
    /// 1 MiB + 0x20 ... header at 1 MiB + 0x40, to the file's end.
    fn multiboot_image() -> Vec<u8> {
        let mut image = vec![0xAAu8; 0x200];
        let flags = vmconfig::multiboot::FLAG_AOUT_KLUDGE;
        let sum = 0u32
            .wrapping_sub(vmconfig::multiboot::MAGIC)
            .wrapping_sub(flags);
        let words = [
            vmconfig::multiboot::MAGIC,
            flags,
            sum,
            0x10_0040,
            0x10_0020,
            0,
            0,
            0x10_0060,
        ];
        for (i, w) in words.iter().enumerate() {
            put(&mut image, 0x40 + 4 * i, &w.to_le_bytes());
        }
        image
    }

    #[test]
    fn the_multiboot_part_is_what_the_header_names() {
        let image = multiboot_image();
        let (load, part) = multiboot_part(&image).unwrap();
        assert_eq!(load, 0x10_0020);
        assert_eq!(part, &image[0x20..]);
        assert!(multiboot_part(&[0u8; 0x200]).is_err(), "no header");
    }
}
