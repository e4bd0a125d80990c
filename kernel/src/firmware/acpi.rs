//! ACPI tables (x86): what the hypervisor needs of them, read with the `acpi` crate
//! (rust-osdev's table parser, no allocator): from the MADT the CPUs (their local
//! APIC ids, enabled or online-capable), the local APIC address and the first I/O
//! APIC; from the FADT the PM1 control registers and the PM timer; from the DSDT the
//! S5 sleep type (`\_S5`, read by [`s5`]: the crate leaves AML to a separate
//! interpreter, which one package constant does not justify).
//!
//! Tables are read where they lie (the hypervisor identity-maps the physical
//! address space it reads them in), before the heap exists.

use super::{AcpiFixed, Apic, CpuList, DiscoveryError};
use acpi::address::AddressSpace;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;

/// Tables are read through the identity map: a physical address is a pointer.
#[derive(Clone, Copy, Debug)]
struct Identity;

impl AcpiHandler for Identity {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        // The crate never asks for address 0 (it checks table pointers); a dangling
        // pointer is what it would get for one.
        let ptr = NonNull::new(pa as *mut T).unwrap_or(NonNull::dangling());
        // SAFETY: the identity map makes `pa` the address of the region, which the
        // caller of `read` guarantees readable.
        unsafe { PhysicalMapping::new(pa, ptr, size, size, *self) }
    }
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What the ACPI tables say about the board.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub cpus: CpuList,
    pub apic: Apic,
    pub fixed: AcpiFixed,
}

/// MADT local APIC flags: enabled, online capable.
const LAPIC_ENABLED: u32 = 1 << 0;
const LAPIC_ONLINE_CAPABLE: u32 = 1 << 1;

/// Reads the tables the RSDP at `rsdp` leads to (0: search the BIOS areas for it).
///
/// # Safety
/// The RSDP and every table it leads to must be readable through the identity map
/// and stay unchanged while they are read.
pub unsafe fn read(rsdp: u64) -> Result<Found, DiscoveryError> {
    let bad = DiscoveryError::BadAcpi;
    // SAFETY: guaranteed by the caller.
    let tables = unsafe {
        if rsdp == 0 {
            AcpiTables::search_for_rsdp_bios(Identity)
        } else {
            AcpiTables::from_rsdp(Identity, rsdp as usize)
        }
    }
    .map_err(|_| bad("no valid RSDP / RSDT / XSDT"))?;

    let madt = tables
        .find_table::<Madt>()
        .map_err(|_| bad("no valid MADT (APIC table)"))?;
    let mut apic = Apic {
        lapic: madt.get().local_apic_address as u64,
        ioapic: None,
    };
    let mut cpus = CpuList::new();
    let mut add_cpu = |id: u64, flags: u32| -> Result<(), DiscoveryError> {
        if flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAPABLE) == 0 || cpus.ids().contains(&id) {
            return Ok(());
        }
        cpus.push(id, None)
            .map(|_| ())
            .map_err(|_| DiscoveryError::TooMany("CPUs"))
    };
    for e in madt.get().entries() {
        match e {
            MadtEntry::LocalApic(l) => add_cpu(l.apic_id as u64, l.flags)?,
            MadtEntry::LocalX2Apic(l) => add_cpu(l.x2apic_id as u64, l.flags)?,
            MadtEntry::IoApic(io) if apic.ioapic.is_none() => {
                apic.ioapic = Some((io.io_apic_address as u64, io.global_system_interrupt_base))
            }
            MadtEntry::LocalApicAddressOverride(o) => apic.lapic = o.local_apic_address,
            _ => {}
        }
    }
    if cpus.ids().is_empty() {
        return Err(DiscoveryError::NoCpus);
    }

    let mut fixed = AcpiFixed::default();
    if let Ok(fadt) = tables.find_table::<acpi::fadt::Fadt>() {
        let io = |g: Option<acpi::address::GenericAddress>| {
            g.filter(|g| g.address_space == AddressSpace::SystemIo && g.address != 0)
                .and_then(|g| u16::try_from(g.address).ok())
        };
        fixed.pm1a_cnt = io(fadt.pm1a_control_block().ok());
        fixed.pm1b_cnt = io(fadt.pm1b_control_block().ok().flatten());
        let flags = fadt.flags;
        fixed.pm_timer =
            io(fadt.pm_timer_block().ok().flatten()).map(|p| (p, flags.pm_timer_is_32_bit()));
    }
    if let Ok(dsdt) = tables.dsdt() {
        // SAFETY: the DSDT lies where the FADT says (guaranteed by the caller).
        let aml =
            unsafe { core::slice::from_raw_parts(dsdt.address as *const u8, dsdt.length as usize) };
        fixed.s5 = s5(aml);
    }
    Ok(Found { cpus, apic, fixed })
}

const NAME_OP: u8 = 0x08;
const PACKAGE_OP: u8 = 0x12;
const ROOT_CHAR: u8 = b'\\';

/// SLP_TYPa and SLP_TYPb of the S5 state: the first two elements of the package
/// `Name (\_S5, Package () { a, b, ... })` in AML.
pub fn s5(aml: &[u8]) -> Option<(u16, u16)> {
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    let before = aml.get(..at)?;
    let named = matches!(before, [.., NAME_OP] | [.., NAME_OP, ROOT_CHAR]);
    if !named || aml.get(at + 4) != Some(&PACKAGE_OP) {
        return None;
    }
    // PkgLength: bits 7:6 of its lead byte count the bytes that follow it.
    let lead = *aml.get(at + 5)?;
    let mut p = at + 6 + (lead >> 6) as usize;
    let count = *aml.get(p)?;
    p += 1;
    if count < 2 {
        return None;
    }
    let mut next = || -> Option<u16> {
        let (v, len) = match *aml.get(p)? {
            0x00 => (0, 1),
            0x01 => (1, 1),
            0x0a => (*aml.get(p + 1)? as u16, 2),
            0x0b => (u16::from_le_bytes([*aml.get(p + 1)?, *aml.get(p + 2)?]), 3),
            _ => return None,
        };
        p += len;
        Some(v)
    };
    Some((next()?, next()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn s5_of_the_forms_firmware_writes() {
        // QEMU q35: Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let q35 = [
            0x10, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0,
        ];
        assert_eq!(s5(&q35), Some((0, 0)));
        // Name (\_S5, Package () { 0x05, 0x05 }) with byte prefixes.
        let bytes = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x02, 0x0a, 5, 0x0a, 7,
        ];
        assert_eq!(s5(&bytes), Some((5, 7)));
        // A two-byte PkgLength and word constants.
        let word = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x0b, 0x34, 0x12, 0x01,
        ];
        assert_eq!(s5(&word), Some((0x1234, 1)));
    }

    #[test]
    fn s5_not_named_or_not_a_package_is_none() {
        assert_eq!(s5(b"no sleep states here"), None);
        // A reference to _S5_ (no NameOp before it).
        assert_eq!(
            s5(&[0x70, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0, 0]),
            None
        );
        // Cut short.
        assert_eq!(
            s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0x0a]),
            None
        );
        // One element only.
        assert_eq!(
            s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x03, 0x01, 0x00]),
            None
        );
    }

    /// An ACPI table: header (signature, length, revision, checksum) + body.
    fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        let len = (36 + body.len()) as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[8] = revision;
        t[10..16].copy_from_slice(b"HVTEST");
        t.extend_from_slice(body);
        fix_checksum(&mut t, 9);
        t
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        t[at] = 0u8.wrapping_sub(sum);
    }

    /// Tables in one 8-byte-aligned buffer, so their addresses are stable.
    struct Tables {
        buf: Vec<u64>,
    }

    impl Tables {
        fn addr(&self) -> u64 {
            self.buf.as_ptr() as u64
        }
    }

    /// RSDP (revision 2) -> XSDT -> MADT, FADT -> DSDT, laid out in one buffer.
    fn board_tables(madt_entries: &[u8]) -> Tables {
        let mut buf = vec![0u64; 1024];
        let base = buf.as_mut_ptr() as u64;
        let (rsdp_at, xsdt_at, madt_at, fadt_at, dsdt_at) = (0, 64, 256, 1024, 2048);
        let dsdt = table(
            b"DSDT",
            2,
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x0a, 5, 0, 0, 0,
            ],
        );
        let mut madt_body = Vec::new();
        madt_body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&1u32.to_le_bytes());
        madt_body.extend_from_slice(madt_entries);
        let madt = table(b"APIC", 3, &madt_body);
        // FADT revision 6 (276 bytes): the DSDT in X_DSDT (a host address is 64-bit),
        // the PM registers in the legacy fields (the extended ones left zero).
        let mut f = vec![0u8; 276 - 36];
        let put32 = |f: &mut Vec<u8>, off: usize, v: u32| {
            f[off - 36..off - 32].copy_from_slice(&v.to_le_bytes())
        };
        f[140 - 36..148 - 36].copy_from_slice(&(base + dsdt_at as u64).to_le_bytes());
        put32(&mut f, 64, 0x604); // PM1a_CNT_BLK
        put32(&mut f, 76, 0x608); // PM_TMR_BLK
        f[89 - 36] = 2; // PM1_CNT_LEN
        f[91 - 36] = 4; // PM_TMR_LEN
        put32(&mut f, 112, 1 << 8); // flags: TMR_VAL_EXT
        let fadt = table(b"FACP", 6, &f);
        let mut xsdt_body = Vec::new();
        xsdt_body.extend_from_slice(&(base + madt_at as u64).to_le_bytes());
        xsdt_body.extend_from_slice(&(base + fadt_at as u64).to_le_bytes());
        let xsdt = table(b"XSDT", 1, &xsdt_body);
        let mut rsdp = vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[9..15].copy_from_slice(b"HVTEST");
        rsdp[15] = 2;
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&(base + xsdt_at as u64).to_le_bytes());
        fix_checksum(&mut rsdp[..20], 8);
        fix_checksum(&mut rsdp, 32);
        // SAFETY: viewing the u64 buffer as bytes, within its length.
        let bytes = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, 8 * 1024) };
        for (at, t) in [
            (rsdp_at, &rsdp),
            (xsdt_at, &xsdt),
            (madt_at, &madt),
            (fadt_at, &fadt),
            (dsdt_at, &dsdt),
        ] {
            bytes[at..at + t.len()].copy_from_slice(t);
        }
        Tables { buf }
    }

    fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
        let mut e = vec![0, 8, uid, id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    #[test]
    fn cpus_apics_and_power_off_from_qemu_like_tables() {
        let mut entries = Vec::new();
        for i in 0..4 {
            entries.extend(lapic(i, i, 1));
        }
        entries.extend(lapic(4, 4, 0)); // neither enabled nor online capable
        entries.extend([1, 12, 0, 0]); // I/O APIC 0 at 0xfec0_0000, GSI base 0
        entries.extend(0xfec0_0000u32.to_le_bytes());
        entries.extend(0u32.to_le_bytes());
        let t = board_tables(&entries);
        // SAFETY: the tables are a live host buffer.
        let found = unsafe { read(t.addr()) }.unwrap();
        assert_eq!(found.cpus.ids(), [0, 1, 2, 3]);
        assert_eq!(found.apic.lapic, 0xfee0_0000);
        assert_eq!(found.apic.ioapic, Some((0xfec0_0000, 0)));
        assert_eq!(found.fixed.pm1a_cnt, Some(0x604));
        assert_eq!(found.fixed.pm1b_cnt, None);
        assert_eq!(found.fixed.pm_timer, Some((0x608, true)));
        assert_eq!(found.fixed.s5, Some((5, 0)));
    }

    #[test]
    fn no_cpu_or_a_broken_rsdp_is_refused() {
        let t = board_tables(&lapic(0, 0, 0));
        // SAFETY: as above.
        assert_eq!(
            unsafe { read(t.addr()) }.err(),
            Some(DiscoveryError::NoCpus)
        );
        let mut t = board_tables(&lapic(0, 0, 1));
        t.buf[0] ^= 1; // the signature no longer matches
                       // SAFETY: as above.
        assert!(matches!(
            unsafe { read(t.addr()) },
            Err(DiscoveryError::BadAcpi(_))
        ));
    }
}
