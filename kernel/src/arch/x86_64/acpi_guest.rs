//! A VM's own ACPI tables, for guests (Linux) that find their CPUs, interrupt
//! controllers, power-off and console through ACPI: RSDP (revision 2) -> XSDT ->
//! FADT (-> FACS, DSDT) and MADT, built with rust-vmm's `acpi_tables` crate
//! (`no_std` + alloc; its AML builder writes the DSDT). Pure: bytes for a
//! guest-physical address.
//!
//! What they say is the platform every x86 VM has (`pmports`, the APICs):
//! - MADT: one enabled local APIC per vCPU (APIC id = vCPU index) at 0xFEE0_0000, the
//!   I/O APIC (id 0, GSI base 0) at 0xFEC0_0000; PCAT_COMPAT clear: there is no 8259
//!   pair, so Linux routes every interrupt through the I/O APIC. No interrupt source
//!   override: no PIT on pin 2, and Linux gives the SCI (GSI 9) its level / active-low
//!   default itself.
//! - FADT: PM1a event block 0x600 (4 bytes), PM1a control 0x604 (2 bytes), the 24-bit
//!   PM timer 0x608, SCI 9, no SMI command port (the VM is in ACPI mode from the
//!   start), the reset register 0xCF9 (value 6); IAPC_BOOT_ARCH: no 8042, no VGA, no
//!   CMOS RTC, so Linux probes none of them; power and sleep buttons are not fixed
//!   features.
//! - DSDT: `\_S5` = {0, 0} (SLP_TYP 0 powers the VM off) and each 16550 of the VM as
//!   a `PNP0501` device under `\_SB` with its ports and its interrupt: without an
//!   8259 pair Linux sets up no ISA interrupts by itself, and the serial driver takes
//!   the console's interrupt from here.
//! - DSDT: each inter-VM channel the VM maps as a device `\_SB.IVnn` (nn = its
//!   position in the config, hex) with `_HID` "HVSC0001" (an ACPI id of our own:
//!   vendor prefix "HVSC", "hypervisor shared channel", device 0001; no PNP id names
//!   such a device), `_UID` nn, `_STR` the channel's name (Linux shows it as the
//!   device's `description`) and `_CRS`: the region (Memory32Fixed, or QWordMemory
//!   above 4 GiB; read-only when the VM's access is), the doorbell window
//!   (Memory32Fixed, 4 KiB, read-write) and the doorbell's interrupt (its GSI, level,
//!   active high, exclusive). The doorbell's registers are `devices::doorbell`'s.
use acpi_tables::aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use alloc::string::String;
use alloc::vec::Vec;

use super::pmports::{PM1A_CNT, PM1A_EVT, PM_TMR, RESET_CTL};

pub const OEM_ID: [u8; 6] = *b"HVRUST";
const OEM_TABLE_ID: [u8; 8] = *b"HVRUSTVM";
/// The local APICs' and the I/O APIC's windows (x86common).
pub const LAPIC_BASE: u32 = 0xfee0_0000;
pub const IOAPIC_BASE: u32 = 0xfec0_0000;
/// The SCI's GSI (as on PCs).
pub const SCI_GSI: u16 = 9;
/// IAPC_BOOT_ARCH bits: VGA not present, CMOS RTC not present (8042 and legacy
/// devices: their bits left clear).
const BOOT_ARCH_NO_VGA: u16 = 1 << 2;
const BOOT_ARCH_NO_CMOS_RTC: u16 = 1 << 5;
/// The reset register's value: a hard reset through 0xCF9.
const RESET_VALUE: u8 = 0x06;
/// FACS must be 64-byte aligned; the other tables are placed on 16 bytes.
const FACS_ALIGN: usize = 64;
const ALIGN: usize = 16;

/// A 16550 the VM has: its first port, how many, its interrupt (GSI = I/O APIC pin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serial {
    pub port: u16,
    pub len: u8,
    pub gsi: u32,
}

/// An inter-VM channel as the VM sees it: its name, region, access and doorbell
/// (window GPA, GSI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub gpa: u64,
    pub size: u64,
    pub writable: bool,
    pub doorbell: Option<(u64, u32)>,
}

/// The ACPI id of a channel device.
pub const CHANNEL_HID: &str = "HVSC0001";

/// What the tables describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub vcpus: u32,
    pub serials: Vec<Serial>,
    pub channels: Vec<Channel>,
}

fn bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// Appends `t` to `out` at the next multiple of `align`; its offset.
fn place(out: &mut Vec<u8>, t: &[u8], align: usize) -> usize {
    let at = out.len().div_ceil(align) * align;
    out.resize(at, 0);
    out.extend_from_slice(t);
    at
}

/// The DSDT's AML: `\_S5` and the serial ports.
pub fn dsdt_aml(p: &Platform) -> Vec<u8> {
    let mut out = Vec::new();
    let s5 = aml::Package::new(alloc::vec![&aml::ZERO, &aml::ZERO]);
    aml::Name::new("_S5_".into(), &s5).to_aml_bytes(&mut out);
    let hid = aml::EISAName::new("PNP0501");
    for (i, s) in p.serials.iter().enumerate() {
        // COM1..COM9; a VM has one console, the rest is for completeness.
        let name = alloc::format!("_SB_.COM{}", (i + 1).min(9));
        let uid = (i + 1) as u8;
        let io = aml::IO::new(s.port, s.port, 1, s.len);
        let irq = aml::Interrupt::new(true, true, false, false, s.gsi);
        let crs = aml::ResourceTemplate::new(alloc::vec![&io, &irq]);
        let n_hid = aml::Name::new("_HID".into(), &hid);
        let n_uid = aml::Name::new("_UID".into(), &uid);
        let n_crs = aml::Name::new("_CRS".into(), &crs);
        aml::Device::new(name.as_str().into(), alloc::vec![&n_hid, &n_uid, &n_crs])
            .to_aml_bytes(&mut out);
    }
    for (i, c) in p.channels.iter().enumerate() {
        channel_device(i, c, &mut out);
    }
    out
}

/// `\_SB.IVnn`: channel `c`, the VM's `i`th (see the module doc).
fn channel_device(i: usize, c: &Channel, out: &mut Vec<u8>) {
    let name = alloc::format!("_SB_.IV{:02X}", i.min(0xff));
    let hid: &'static str = CHANNEL_HID;
    let uid = i.min(0xff) as u8;
    // _STR is a Unicode (UTF-16LE) buffer, NUL-terminated.
    let text: Vec<u8> = c
        .name
        .encode_utf16()
        .chain(core::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect();
    let text = aml::BufferData::new(text);
    let end = c.gpa.saturating_add(c.size);
    let low =
        (end <= 1 << 32).then(|| aml::Memory32Fixed::new(c.writable, c.gpa as u32, c.size as u32));
    let high = aml::AddressSpace::<u64>::new_memory(
        aml::AddressSpaceCacheable::Cacheable,
        c.writable,
        c.gpa,
        end.saturating_sub(1),
        None,
    );
    let region: &dyn Aml = match &low {
        Some(l) => l,
        None => &high,
    };
    let bell = c.doorbell.map(|(gpa, gsi)| {
        (
            aml::Memory32Fixed::new(true, gpa as u32, vmconfig::channel::DOORBELL_SIZE as u32),
            aml::Interrupt::new(true, false, false, false, gsi),
        )
    });
    let mut res: Vec<&dyn Aml> = alloc::vec![region];
    if let Some((w, irq)) = &bell {
        res.push(w);
        res.push(irq);
    }
    let crs = aml::ResourceTemplate::new(res);
    let n_hid = aml::Name::new("_HID".into(), &hid);
    let n_uid = aml::Name::new("_UID".into(), &uid);
    let n_str = aml::Name::new("_STR".into(), &text);
    let n_crs = aml::Name::new("_CRS".into(), &crs);
    aml::Device::new(
        name.as_str().into(),
        alloc::vec![&n_hid, &n_uid, &n_str, &n_crs],
    )
    .to_aml_bytes(out);
}

/// The tables, to be placed at guest-physical `at` (a multiple of 64): the RSDP
/// first (the address the zero page's `acpi_rsdp_addr` gives), then FACS, XSDT,
/// FADT, DSDT and MADT.
pub fn tables(p: &Platform, at: u64) -> Result<Vec<u8>, String> {
    if !at.is_multiple_of(FACS_ALIGN as u64) {
        return Err(alloc::format!(
            "the ACPI tables' address {at:#x} is not a multiple of 64"
        ));
    }
    if p.vcpus == 0 || p.vcpus > 255 {
        return Err(alloc::format!(
            "{} vCPUs do not fit the MADT's 8-bit APIC ids",
            p.vcpus
        ));
    }
    let mut out = alloc::vec![0u8; Rsdp::len()];
    let facs_at = place(&mut out, &bytes(&FACS::new()), FACS_ALIGN);

    let mut dsdt = Sdt::new(*b"DSDT", 36, 2, OEM_ID, OEM_TABLE_ID, 1);
    dsdt.append_slice(&dsdt_aml(p));
    let dsdt_at = place(&mut out, dsdt.as_slice(), ALIGN);

    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        1,
        LocalInterruptController::Address(LAPIC_BASE),
    );
    for i in 0..p.vcpus {
        madt.add_structure(ProcessorLocalApic::new(
            i as u8,
            i as u8,
            EnabledStatus::Enabled,
        ));
    }
    madt.add_structure(IoApic::new(0, IOAPIC_BASE, 0));
    let madt_at = place(&mut out, &bytes(&madt), ALIGN);

    let base = |off: usize| at + off as u64;
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, 1)
        .dsdt_64(base(dsdt_at))
        .firmware_ctrl_64(base(facs_at))
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .flag(Flags::ResetRegSup);
    f.sci_int = SCI_GSI.into();
    f.pm1a_evt_blk = u32::from(PM1A_EVT).into();
    f.pm1a_cnt_blk = u32::from(PM1A_CNT).into();
    f.pm_tmr_blk = u32::from(PM_TMR).into();
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    f.iapc_boot_arch = (BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS_RTC).into();
    f.reset_reg = GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(RESET_CTL),
    );
    f.reset_value = RESET_VALUE;
    let fadt_at = place(&mut out, &bytes(&f.finalize()), ALIGN);

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, 1);
    xsdt.add_entry(base(fadt_at));
    xsdt.add_entry(base(madt_at));
    let xsdt_at = place(&mut out, &bytes(&xsdt), ALIGN);

    let rsdp = bytes(&Rsdp::new(OEM_ID, base(xsdt_at)));
    out[..rsdp.len()].copy_from_slice(&rsdp);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::acpi;

    fn linux_vm(vcpus: u32) -> Platform {
        Platform {
            vcpus,
            serials: alloc::vec![Serial {
                port: 0x3f8,
                len: 8,
                gsi: 4
            }],
            channels: Vec::new(),
        }
    }

    /// The tables built for the host address of a buffer, read back with the
    /// hypervisor's own ACPI reader (the `acpi` crate): checksums, the RSDP -> XSDT
    /// chain, MADT entries, FADT ports, `\_S5`.
    fn read_back(p: &Platform) -> (acpi::Found, Vec<u64>) {
        // A buffer whose address is 64-byte aligned: the tables go there.
        let mut buf: Vec<u64> = alloc::vec![0; 1024];
        let at = (buf.as_ptr() as u64).div_ceil(64) * 64;
        let t = tables(p, at).unwrap();
        let off = (at - buf.as_ptr() as u64) as usize;
        assert!(off + t.len() <= 8 * 1024);
        // SAFETY: viewing the u64 buffer as bytes, within its length.
        let b = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, 8 * 1024) };
        b[off..off + t.len()].copy_from_slice(&t);
        // SAFETY: the tables are a live host buffer at `at`.
        let found = unsafe { acpi::read(at) }.expect("tables read back");
        (found, buf)
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn the_hypervisors_reader_finds_cpus_apics_ports_and_s5() {
        let (f, _keep) = read_back(&linux_vm(2));
        assert_eq!(f.cpus.ids(), [0, 1]);
        assert_eq!(f.apic.lapic, 0xfee0_0000);
        assert_eq!(f.apic.ioapic, Some((0xfec0_0000, 0)));
        assert_eq!(f.fixed.pm1a_cnt, Some(0x604));
        assert_eq!(f.fixed.pm1b_cnt, None);
        // 24 bits: TMR_VAL_EXT is clear.
        assert_eq!(f.fixed.pm_timer, Some((0x608, false)));
        assert_eq!(f.fixed.s5, Some((0, 0)));
        let (f, _keep) = read_back(&linux_vm(8));
        assert_eq!(f.cpus.ids(), [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    /// The table at `off` in `t` (its signature and length), checksum checked.
    fn table_at(t: &[u8], off: usize) -> &[u8] {
        let len = u32::from_le_bytes(t[off + 4..off + 8].try_into().unwrap()) as usize;
        let tbl = &t[off..off + len];
        assert_eq!(
            sum(tbl),
            0,
            "checksum of {:?}",
            core::str::from_utf8(&tbl[..4])
        );
        tbl
    }

    #[test]
    fn every_table_sums_to_zero_and_the_fadt_has_the_platforms_fields() {
        let at = 0x9_0000;
        let t = tables(&linux_vm(2), at).unwrap();
        assert_eq!(&t[..8], b"RSD PTR ");
        assert_eq!(sum(&t[..20]), 0);
        assert_eq!(sum(&t[..36]), 0);
        let xsdt = (u64::from_le_bytes(t[24..32].try_into().unwrap()) - at) as usize;
        let x = table_at(&t, xsdt);
        assert_eq!(&x[..4], b"XSDT");
        let entries: Vec<usize> = x[36..]
            .chunks(8)
            .map(|c| (u64::from_le_bytes(c.try_into().unwrap()) - at) as usize)
            .collect();
        assert_eq!(entries.len(), 2);
        let fadt = table_at(&t, entries[0]);
        assert_eq!(&fadt[..4], b"FACP");
        let madt = table_at(&t, entries[1]);
        assert_eq!(&madt[..4], b"APIC");
        // MADT flags 0: no PCAT_COMPAT (no 8259s).
        assert_eq!(&madt[40..44], &[0; 4]);
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
        assert_eq!(u16_at(fadt, 46), 9, "SCI_INT");
        assert_eq!(u32_at(fadt, 48), 0, "no SMI_CMD");
        assert_eq!(u32_at(fadt, 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(fadt, 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!(u32_at(fadt, 76), 0x608, "PM_TMR_BLK");
        assert_eq!((fadt[88], fadt[89], fadt[91]), (4, 2, 4), "lengths");
        assert_eq!(
            u16_at(fadt, 109),
            0x24,
            "IAPC_BOOT_ARCH: no VGA, no CMOS RTC, no 8042"
        );
        assert_ne!(u32_at(fadt, 112) & 1 << 10, 0, "RESET_REG_SUP");
        assert_eq!(
            (fadt[116], u32_at(fadt, 120), fadt[128]),
            (1, 0xcf9, 6),
            "reset 0xCF9 <- 6"
        );
        // FACS (X_FIRMWARE_CTRL) 64-byte aligned, DSDT (X_DSDT) in the blob.
        let facs = u64::from_le_bytes(fadt[132..140].try_into().unwrap());
        assert_eq!(facs % 64, 0);
        assert_eq!(&t[(facs - at) as usize..][..4], b"FACS");
        let dsdt = (u64::from_le_bytes(fadt[140..148].try_into().unwrap()) - at) as usize;
        let d = table_at(&t, dsdt);
        assert_eq!(&d[..4], b"DSDT");
        assert_eq!(acpi::s5(&d[36..]), Some((0, 0)));
        assert!(tables(&linux_vm(2), 0x9_0010).is_err());
        assert!(tables(&linux_vm(0), at).is_err());
    }

    #[test]
    fn the_console_is_a_pnp0501_device_with_its_ports_and_interrupt() {
        let a = dsdt_aml(&linux_vm(1));
        let find = |needle: &[u8]| a.windows(needle.len()).position(|w| w == needle);
        // Device (\_SB.COM1): ExtOp DeviceOp, then the dual name _SB_ COM1.
        let dev = find(b"\x2e_SB_COM1").expect("the device's name");
        assert_eq!(&a[dev - 3..dev - 1], &[0x5b, 0x82]);
        // _HID EISAID("PNP0501") = 0x0105d041.
        assert!(find(b"_HID\x0c\x41\xd0\x05\x01").is_some());
        // IO (Decode16, 0x3F8, 0x3F8, 1, 8).
        assert!(find(&[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]).is_some());
        // Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 }.
        assert!(find(&[0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0, 0, 0]).is_some());
        // No serial: no device.
        let none = dsdt_aml(&Platform {
            vcpus: 1,
            serials: Vec::new(),
            channels: Vec::new(),
        });
        assert!(!none.windows(4).any(|w| w == b"COM1"));
        assert_eq!(acpi::s5(&none), Some((0, 0)));
    }

    #[test]
    fn each_channel_is_a_device_with_its_region_doorbell_and_gsi() {
        let mut p = linux_vm(1);
        p.channels = alloc::vec![
            Channel {
                name: "link".into(),
                gpa: 0x1800_0000,
                size: 0x1_0000,
                writable: true,
                doorbell: Some((0xfe00_0000, 10)),
            },
            Channel {
                name: "log".into(),
                gpa: 0x1_0000_0000,
                size: 0x2000,
                writable: false,
                doorbell: None,
            },
        ];
        let a = dsdt_aml(&p);
        let find = |needle: &[u8]| a.windows(needle.len()).position(|w| w == needle);
        let dev = find(b"\x2e_SB_IV00").expect("channel 0's device");
        // ExtOp DeviceOp, then a package length of 1 to 4 bytes.
        assert!(a[dev - 6..dev].windows(2).any(|w| w == [0x5b, 0x82]));
        assert!(find(b"\x2e_SB_IV01").is_some(), "channel 1's device");
        // _HID "HVSC0001" as a string.
        assert!(find(b"_HID\x0dHVSC0001\x00").is_some());
        // _STR: "link" in UTF-16LE.
        assert!(find(b"l\0i\0n\0k\0\0\0").is_some());
        // Memory32Fixed (ReadWrite, 0x18000000, 0x10000).
        let mut m = alloc::vec![0x86, 9, 0, 1];
        m.extend_from_slice(&0x1800_0000u32.to_le_bytes());
        m.extend_from_slice(&0x1_0000u32.to_le_bytes());
        assert!(find(&m).is_some(), "the region");
        // Memory32Fixed (ReadWrite, 0xFE000000, 0x1000): the doorbell.
        let mut d = alloc::vec![0x86, 9, 0, 1];
        d.extend_from_slice(&0xfe00_0000u32.to_le_bytes());
        d.extend_from_slice(&0x1000u32.to_le_bytes());
        assert!(find(&d).is_some(), "the doorbell");
        // Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { 10 }.
        assert!(find(&[0x89, 0x06, 0x00, 0x01, 0x01, 10, 0, 0, 0]).is_some());
        // Above 4 GiB and read-only: QWordMemory with the read-write bit clear.
        let q = find(&[0x8a, 0x2b, 0x00, 0x00]).expect("a QWordMemory");
        assert_eq!(a[q + 5] & 1, 0, "read-only");
        assert_eq!(&a[q + 14..q + 22], &0x1_0000_0000u64.to_le_bytes());
        assert_eq!(&a[q + 22..q + 30], &0x1_0000_1fffu64.to_le_bytes());
        // The read-back of the whole tables still works with channels.
        let (f, _keep) = read_back(&p);
        assert_eq!(f.fixed.s5, Some((0, 0)));
    }
}
