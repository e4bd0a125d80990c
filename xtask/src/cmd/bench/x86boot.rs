//! The bare side of an x86_64 `linux-boot`: bare QEMU boots Linux with the very boot
//! description the hypervisor gives the VM (zero page, command line and ACPI tables,
//! captured from its console like a DTB, see `vmconfig::dtbdump`), at the same
//! guest-physical addresses, and starts it the way the hypervisor starts vCPU 0.
//!
//! QEMU's own x86 boot (SeaBIOS, then its Linux option ROM) would hand Linux QEMU's
//! ACPI tables, its PCI host, HPET, PIT and RTC, and spend its own time in firmware:
//! not like for like. Instead the images go in with QEMU's generic loader
//! (`-device loader`) and the firmware is [`boot_rom`]: 64 KiB whose reset vector
//! turns on the q35 chipset's ACPI power-management block at the ports the VM's FADT
//! names (PM1a at 0x600, the PM timer at 0x608, as the hypervisor emulates them),
//! enters flat 32-bit protected mode with the boot protocol's selectors (CS 0x10,
//! DS/ES/SS 0x18) and jumps to the kernel with ESI = the zero page, as
//! `kernel/src/arch/x86_64/linux.rs` starts vCPU 0. The other CPUs wait for Linux's
//! INIT-SIPI-SIPI as QEMU's application processors do.

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

/// Flat 4 GiB descriptors: null, null, code (0x10), data (0x18).
const GDT_ENTRIES: [u64; 4] = [0, 0, 0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF];
const BOOT_CS: u16 = 0x10;
const BOOT_DS: u16 = 0x18;

/// The 64 KiB boot ROM that starts the kernel at `entry` (32-bit, paging off) with
/// ESI = `zero_page`, EAX = EBX = EBP = EDI = 0.
pub fn boot_rom(zero_page: u32, entry: u32) -> Vec<u8> {
    let mut rom = vec![0xF4u8; ROM_SIZE]; // hlt everywhere else
    for (i, e) in GDT_ENTRIES.iter().enumerate() {
        put(&mut rom, GDT + 8 * i, &e.to_le_bytes());
    }
    let limit = (GDT_ENTRIES.len() * 8 - 1) as u16;
    put(&mut rom, GDT_DESC, &limit.to_le_bytes());
    put(
        &mut rom,
        GDT_DESC + 2,
        &(ROM_BASE + GDT as u32).to_le_bytes(),
    );
    put(&mut rom, CODE16, &real_mode());
    put(&mut rom, CODE32, &protected_mode(zero_page, entry));
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
/// far jump to the 32-bit code.
fn real_mode() -> Vec<u8> {
    let mut c = vec![0xFA, 0xFC]; // cli; cld
                                  // PMBASE = 0x600 | 1 (I/O space), then ACPI_EN.
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
    c.extend([0x0F, 0x20, 0xC0, 0x0C, 0x01, 0x0F, 0x22, 0xC0]); // cr0 |= PE
                                                                // jmp far BOOT_CS:ROM_BASE + CODE32 (ptr16:32).
    c.extend([0x66, 0xEA]);
    c.extend_from_slice(&(ROM_BASE + CODE32 as u32).to_le_bytes());
    c.extend_from_slice(&BOOT_CS.to_le_bytes());
    c
}

/// `mov eax, address; mov dx, 0xcf8; out dx, eax` (16-bit code).
fn out_config(c: &mut Vec<u8>, address: u32) {
    c.extend([0x66, 0xB8]);
    c.extend_from_slice(&address.to_le_bytes());
    c.extend([0xBA, 0xF8, 0x0C, 0x66, 0xEF]);
}

/// 32-bit code: the data selectors, the boot protocol's registers, the jump.
fn protected_mode(zero_page: u32, entry: u32) -> Vec<u8> {
    let mut c = vec![0xB8]; // mov eax, BOOT_DS
    c.extend_from_slice(&u32::from(BOOT_DS).to_le_bytes());
    for sreg in [0xD8, 0xC0, 0xD0, 0xE0, 0xE8] {
        c.extend([0x8E, sreg]); // mov ds/es/ss/fs/gs, ax
    }
    c.push(0xBE); // mov esi, zero_page
    c.extend_from_slice(&zero_page.to_le_bytes());
    c.extend([0x31, 0xC0, 0x31, 0xDB, 0x31, 0xED, 0x31, 0xFF]); // eax, ebx, ebp, edi = 0
    c.push(0xB9); // mov ecx, entry; jmp ecx
    c.extend_from_slice(&entry.to_le_bytes());
    c.extend([0xFF, 0xE1]);
    c
}

/// Where a bzImage's protected-mode kernel starts in the file.
pub fn protected_mode_offset(image: &[u8]) -> Result<usize> {
    let h = vmconfig::bzimage::parse(image)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the kernel is not a bzImage")?;
    let off = h.setup_len();
    ensure!(off < image.len(), "the bzImage ends in its setup sectors");
    Ok(off)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn the_reset_vector_jumps_to_the_real_mode_code() {
        let rom = boot_rom(0x8_0000, 0x100_0000);
        assert_eq!(rom.len(), ROM_SIZE);
        assert_eq!(&rom[RESET..RESET + 5], &[0xEA, 0x40, 0x00, 0x00, 0xF0]);
        assert_eq!(rom[CODE16], 0xFA, "cli first");
    }

    #[test]
    fn the_gdt_is_flat_with_the_boot_selectors() {
        let rom = boot_rom(0x8_0000, 0x100_0000);
        let code = u64::from_le_bytes(rom[GDT + 0x10..GDT + 0x18].try_into().unwrap());
        let data = u64::from_le_bytes(rom[GDT + 0x18..GDT + 0x20].try_into().unwrap());
        // Base 0, limit 0xFFFFF pages, present, DPL 0; code execute/read, data read/write,
        // 32-bit, 4 KiB granularity.
        assert_eq!(code, 0x00CF_9A00_0000_FFFF);
        assert_eq!(data, 0x00CF_9200_0000_FFFF);
        assert_eq!(&rom[GDT_DESC..GDT_DESC + 2], &[0x1F, 0x00]);
        assert_eq!(u32_at(&rom, GDT_DESC + 2), 0xF_0000);
    }

    #[test]
    fn protected_mode_code_gets_the_zero_page_and_entry() {
        let rom = boot_rom(0x8_0000, 0x100_0000);
        let c = &rom[CODE32..];
        let esi = c.iter().position(|&b| b == 0xBE).unwrap();
        assert_eq!(u32_at(c, esi + 1), 0x8_0000);
        let ecx = c.iter().position(|&b| b == 0xB9).unwrap();
        assert_eq!(u32_at(c, ecx + 1), 0x100_0000);
        assert_eq!(&c[ecx + 5..ecx + 7], &[0xFF, 0xE1], "jmp ecx");
        // The far jump of the real-mode code lands here, with CS = 0x10.
        let r = real_mode();
        let far = r.len() - 8;
        assert_eq!(&r[far..far + 2], &[0x66, 0xEA]);
        assert_eq!(u32_at(&r, far + 2), 0xF_0000 + CODE32 as u32);
        assert_eq!(&r[far + 6..], &[0x10, 0x00]);
    }

    #[test]
    fn the_parts_do_not_overlap() {
        const { assert!(GDT + GDT_ENTRIES.len() * 8 <= GDT_DESC) };
        const { assert!(GDT_DESC + 6 <= CODE16) };
        assert!(CODE16 + real_mode().len() <= CODE32);
        assert!(CODE32 + protected_mode(0, 0).len() <= RESET);
    }

    #[test]
    fn the_pm_block_goes_where_the_fadt_says() {
        let r = real_mode();
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
        assert_eq!(protected_mode_offset(&image).unwrap(), h.setup_len());
        assert!(protected_mode_offset(&[0u8; 600]).is_err());
    }
}
