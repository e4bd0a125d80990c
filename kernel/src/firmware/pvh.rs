//! The x86 PVH boot protocol's hand-over: QEMU `-kernel` (and Xen) start an ELF with
//! a `XEN_ELFNOTE_PHYS32_ENTRY` note in 32-bit protected mode with EBX = the
//! physical address of an `hvm_start_info` (Xen's `start_info.h`): the memory map
//! (version 1 and later) and the ACPI RSDP. This reader turns it into a
//! [`Handover`]: RAM from the memory map, everything else from ACPI ([`super::acpi`]),
//! the console from what the entry code found in the BIOS data area.
//!
//! RAM below 1 MiB (the real-mode area: BIOS data, the secondary CPUs' start code)
//! is never handed out.

use super::{acpi, BoardInfo, DiscoveryError, Handover, Range, Uart, UartKind};

/// `hvm_start_info.magic` ("xEn3" with the top bit set).
pub const MAGIC: u32 = 0x336e_c578;
/// E820 type of usable RAM.
const E820_RAM: u32 = 1;
/// RAM below this is left alone.
const LOW_LIMIT: u64 = 0x10_0000;
const PAGE: u64 = 4096;

/// `struct hvm_start_info` (version 1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StartInfo {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}

/// `struct hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    pub reserved: u32,
}

/// The usable RAM of a PVH memory map: type-1 entries, page-aligned inwards, above
/// 1 MiB.
pub fn ram(map: &[MemmapEntry], board: &mut BoardInfo) -> Result<(), DiscoveryError> {
    for e in map.iter().filter(|e| e.kind == E820_RAM) {
        let start = e.addr.max(LOW_LIMIT).next_multiple_of(PAGE);
        let end = e.addr.saturating_add(e.size) & !(PAGE - 1);
        if end > start {
            board
                .ram
                .push(Range {
                    base: start,
                    size: end - start,
                })
                .map_err(|_| DiscoveryError::TooMany("RAM ranges"))?;
        }
    }
    if board.ram().is_empty() {
        return Err(DiscoveryError::NoMemory);
    }
    Ok(())
}

/// The board the PVH start info at `start_info` describes; `com1` is the first
/// serial port's I/O base from the BIOS data area, if the BIOS set one.
///
/// # Safety
/// `start_info`, its memory map and the ACPI tables it points to must be readable
/// through the identity map and stay unchanged.
pub unsafe fn handover(start_info: u64, com1: Option<u16>) -> Result<Handover, DiscoveryError> {
    if start_info == 0 || !start_info.is_multiple_of(8) {
        return Err(DiscoveryError::NoHandover);
    }
    // SAFETY: guaranteed by the caller.
    let info = unsafe { core::ptr::read(start_info as *const StartInfo) };
    if info.magic != MAGIC {
        return Err(DiscoveryError::NoHandover);
    }
    if info.version < 1 || info.memmap_paddr == 0 || info.memmap_entries == 0 {
        // Version 0 has no memory map: nothing says where RAM is.
        return Err(DiscoveryError::NoMemory);
    }
    // SAFETY: guaranteed by the caller (the map is part of the hand-over).
    let map = unsafe {
        core::slice::from_raw_parts(
            info.memmap_paddr as *const MemmapEntry,
            info.memmap_entries as usize,
        )
    };
    let mut board = BoardInfo::new();
    ram(map, &mut board)?;
    // SAFETY: guaranteed by the caller.
    let found = unsafe { acpi::read(info.rsdp_paddr) }?;
    board.cpus = found.cpus;
    board.irq_controller = Some(super::IrqController::Apic(found.apic));
    board.firmware.acpi = Some(found.fixed);
    board.console = com1.filter(|&p| p != 0).map(|port| Uart {
        base: port as u64,
        size: 8,
        kind: UartKind::Port16550,
        irq: None,
    });
    Ok(Handover {
        board,
        modules: super::modules::Modules::default(),
        // Everything handed over lies below 1 MiB or outside usable RAM.
        occupies: Range { base: 0, size: 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(addr: u64, size: u64, kind: u32) -> MemmapEntry {
        MemmapEntry {
            addr,
            size,
            kind,
            reserved: 0,
        }
    }

    #[test]
    fn ram_is_the_type_1_entries_above_1_mib_page_aligned() {
        // QEMU q35 with 1 GiB: low RAM, the BIOS area, RAM from 1 MiB, reserved tail.
        let map = [
            e(0, 0x9fc00, 1),
            e(0x9fc00, 0x400, 2),
            e(0xf0000, 0x10000, 2),
            e(0x10_0000, 0x3fee_0000 + 0x123, 1),
            e(0xfeff_c000, 0x4000, 2),
            e(0x1_0000_0000, 0x4000_0000, 1),
        ];
        let mut b = BoardInfo::new();
        ram(&map, &mut b).unwrap();
        assert_eq!(
            b.ram(),
            [
                Range {
                    base: 0x10_0000,
                    size: 0x3fee_0000
                },
                Range {
                    base: 0x1_0000_0000,
                    size: 0x4000_0000
                }
            ]
        );
    }

    #[test]
    fn a_map_without_ram_above_1_mib_is_refused() {
        let mut b = BoardInfo::new();
        assert_eq!(
            ram(&[e(0, 0x9fc00, 1), e(0x10_0000, 0x1000, 2)], &mut b),
            Err(DiscoveryError::NoMemory)
        );
    }

    #[test]
    fn no_start_info_or_a_wrong_magic_is_no_handover() {
        // SAFETY: address 0 is refused before anything is read.
        assert_eq!(
            unsafe { handover(0, None) }.err(),
            Some(DiscoveryError::NoHandover)
        );
        let info = StartInfo {
            magic: 0x1234,
            ..Default::default()
        };
        // SAFETY: a live local read as the start info.
        let r = unsafe { handover(&info as *const StartInfo as u64, None) };
        assert_eq!(r.err(), Some(DiscoveryError::NoHandover));
        let v0 = StartInfo {
            magic: MAGIC,
            ..Default::default()
        };
        // SAFETY: as above.
        let r = unsafe { handover(&v0 as *const StartInfo as u64, None) };
        assert_eq!(r.err(), Some(DiscoveryError::NoMemory));
    }
}
