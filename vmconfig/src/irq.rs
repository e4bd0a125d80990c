//! The rules on a VM's interrupt controller and device interrupts: which `emu_type`s
//! exist on which architecture, which virtual GIC a VM describes (the hypervisor
//! builds its vGIC from the same answer), and which interrupt numbers a device may
//! have on the architecture's controller.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::key::{KeyPath, Problems};
use crate::model::*;

/// Most vCPUs a GICv2 serves (8-bit CPU target masks).
pub const GICV2_MAX_VCPUS: u32 = 8;
/// Smallest GICv2 CPU interface window (GICC_DIR is at 0x1000).
pub const GICV2_CPU_IF_MIN: u64 = 0x2000;
/// One GICv3 redistributor (RD_base + SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// GIC INTIDs: SGIs 0-15, PPIs 16-31, SPIs 32 and up.
pub const GIC_FIRST_PPI: u32 = 16;
pub const GIC_FIRST_SPI: u32 = 32;
/// x86: the pins of every VM's I/O APIC (GSI n = pin n).
pub const IOAPIC_PINS: u32 = 24;
/// x86: the ACPI SCI's GSI, which every VM's FADT names (as on PCs).
pub const SCI_GSI: u32 = 9;

/// The name of an `emu_type` (for messages).
pub fn emu_type_name(emu_type: u32) -> &'static str {
    EMU_TYPES
        .iter()
        .find(|(c, _)| *c == emu_type)
        .map_or("unknown", |(_, n)| n)
}

/// Why a known `emu_type` cannot be a device of `arch` (a GIC part on a PLIC
/// machine, a PLIC on a GIC machine).
pub fn emu_type_arch_problem(emu_type: u32, arch: ArchLimits) -> Option<String> {
    let gic_part = EMU_GIC_PARTS.contains(&emu_type);
    let plic = emu_type == EMU_PLIC;
    match arch.irq_chip {
        IrqChip::Gic if plic => Some(format!(
            "emu_type {emu_type:#x} ({}) is a riscv64 device: {} VMs have a GIC (emu_type 0x21 with 0x20 for GICv3, or 0x21 with 0x1 for GICv2)",
            emu_type_name(emu_type),
            arch.name
        )),
        IrqChip::Plic if gic_part => Some(format!(
            "emu_type {emu_type:#x} ({}) is an aarch64 device: {} VMs have a PLIC (emu_type 0x30)",
            emu_type_name(emu_type),
            arch.name
        )),
        // 0x1 names the local APIC and I/O APIC windows on x86 (checked by base).
        IrqChip::Apic if (gic_part && emu_type != EMU_GIC_CPU_IF) || plic => Some(format!(
            "emu_type {emu_type:#x} ({}) is not a device of {}",
            emu_type_name(emu_type),
            arch.name
        )),
        _ => None,
    }
}

/// The virtual GIC a VM describes with its `emu_devices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicKind {
    /// No emulated GIC.
    None,
    V2,
    V3,
}

/// What a GIC problem is about: a device of that `emu_type`, or `base.cpu_num`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicBlame {
    Device(u32),
    CpuNum,
}

/// Which GIC `emu_types` (the VM's devices' types) describe, for a VM of `cpu_num`
/// vCPUs: a GICv3 is a distributor (0x21) and a redistributor region (0x20), a GICv2
/// a distributor and a CPU interface window (0x1). The hypervisor builds the vGIC
/// from this answer and the checks report its errors.
pub fn gic_kind(emu_types: &[u32], cpu_num: u32) -> Result<GicKind, (GicBlame, String)> {
    let has = |t| emu_types.contains(&t);
    let (dist, redist, cpu_if, its) = (
        has(EMU_GIC_DIST),
        has(EMU_GIC_REDIST),
        has(EMU_GIC_CPU_IF),
        has(EMU_GIC_ITS),
    );
    match (dist, redist, cpu_if) {
        (_, true, true) => Err((
            GicBlame::Device(EMU_GIC_CPU_IF),
            "a GICv2 CPU interface (emu_type 0x1) and a GICv3 redistributor (emu_type 0x20) in one VM: choose one GIC version".into(),
        )),
        (false, _, true) => Err((
            GicBlame::Device(EMU_GIC_CPU_IF),
            "a GICv2 CPU interface (emu_type 0x1) needs a GIC distributor (emu_type 0x21)".into(),
        )),
        (false, true, false) => Err((
            GicBlame::Device(EMU_GIC_REDIST),
            "a GICv3 redistributor region (emu_type 0x20) needs a GIC distributor (emu_type 0x21): a GICv3 VM has both".into(),
        )),
        (false, false, false) if its => Err((
            GicBlame::Device(EMU_GIC_ITS),
            "a GIC ITS (emu_type 0x22) needs a GIC distributor (emu_type 0x21) and redistributors (emu_type 0x20)".into(),
        )),
        (true, false, true) if cpu_num > GICV2_MAX_VCPUS => Err((
            GicBlame::CpuNum,
            format!("a VM with a GICv2 (emu_type 0x1) has at most {GICV2_MAX_VCPUS} vCPUs, not {cpu_num}"),
        )),
        (true, false, true) => Ok(GicKind::V2),
        // A distributor alone gives the guest no way to take an interrupt: the
        // redistributors (GICv3) or the CPU interface (GICv2) are where it acknowledges.
        (true, false, false) => Err((
            GicBlame::Device(EMU_GIC_DIST),
            "a GIC distributor (emu_type 0x21) alone is not a whole GIC: add a redistributor region (emu_type 0x20) for a GICv3 or a CPU interface window (emu_type 0x1) for a GICv2".into(),
        )),
        (false, false, false) => Ok(GicKind::None),
        (true, true, false) => Ok(GicKind::V3),
    }
}

/// The VM's GIC on its own (GIC architectures): one version, a distributor for its
/// other parts, a CPU interface window the host's GICV frame can back, a
/// redistributor per vCPU.
pub fn check_gic(emu: &[EmuDevice], cpu_num: u32, out: &mut Problems) {
    let types: Vec<u32> = emu.iter().map(|d| d.emu_type).collect();
    let find = |t: u32| emu.iter().find(|d| d.emu_type == t);
    match gic_kind(&types, cpu_num) {
        Err((blame, why)) => {
            let key = match blame {
                GicBlame::Device(t) => find(t).map(|d| d.key.index(4)),
                GicBlame::CpuNum => None,
            };
            let key = key.unwrap_or_else(|| KeyPath::new("base").key("cpu_num"));
            out.error(&key, why);
        }
        Ok(GicKind::V2) => {
            if let Some(c) = find(EMU_GIC_CPU_IF) {
                let r = c.range;
                if r.size < GICV2_CPU_IF_MIN || (r.base | r.size) % 0x1000 != 0 {
                    out.error(
                        &c.key.index(2),
                        format!("the GICv2 CPU interface window {r} must be 4 KiB aligned and at least 8 KiB (GICC_DIR is at 0x1000)"),
                    );
                }
            }
        }
        Ok(GicKind::V3) => {
            if let Some(r) = find(EMU_GIC_REDIST) {
                let need = u64::from(cpu_num) * GICR_STRIDE;
                if r.range.size < need {
                    out.error(
                        &r.key.index(2),
                        format!(
                            "the GICv3 redistributor region {} holds {} redistributors (0x20000 each) but the VM has {cpu_num} vCPUs: it needs {need:#x} bytes",
                            r.range,
                            r.range.size / GICR_STRIDE
                        ),
                    );
                }
            }
        }
        Ok(GicKind::None) => {}
    }
}

/// Whether an emulated device of `emu_type` raises the interrupt in its `irq_id`
/// even when it is 0 (a console or virtio device always has one; for the others 0
/// means none).
fn always_interrupts(emu_type: u32) -> bool {
    matches!(emu_type, EMU_CONSOLE | 0xE1..=0xE3)
}

/// Why `irq` cannot be a device's interrupt on the architecture's controller (on
/// riscv64: a source of the VM's emulated PLIC; on x86_64: a pin of the VM's I/O
/// APIC other than the PC timer's and the ACPI SCI's).
pub fn irq_problem(irq: u32, arch: ArchLimits) -> Option<String> {
    match arch.irq_chip {
        IrqChip::Gic if irq < GIC_FIRST_PPI => Some(format!(
            "irq_id {irq} is an SGI (INTID 0-15, the software interrupts between CPUs): a device interrupt on the GIC is an SPI (32..={})",
            arch.max_irq
        )),
        IrqChip::Gic if irq < GIC_FIRST_SPI => Some(format!(
            "irq_id {irq} is a PPI (INTID 16-31, private to each CPU: its timers): a device interrupt on the GIC is an SPI (32..={})",
            arch.max_irq
        )),
        IrqChip::Plic => {
            let sources = arch.plic_sources.unwrap_or(arch.max_irq as u32);
            (irq == 0 || irq > sources).then(|| {
                format!("irq_id {irq} is not a source of the VM's PLIC (1..={sources})")
            })
        }
        IrqChip::Apic => apic_pin_problem(irq),
        _ => None,
    }
    .or_else(|| {
        (u64::from(irq) > arch.max_irq).then(|| {
            format!(
                "irq_id {irq} is above {}, the largest on {}",
                arch.max_irq, arch.name
            )
        })
    })
}

/// x86_64: a device interrupt is an I/O APIC pin (GSI); 0 is the PC timer's (ISA
/// IRQ 0, which Linux routes itself) and 9 the SCI every VM's FADT names.
fn apic_pin_problem(irq: u32) -> Option<String> {
    let pins = IOAPIC_PINS - 1;
    match irq {
        0 => Some(format!(
            "irq_id 0 is the PC timer's GSI (ISA IRQ 0): a device interrupt on x86_64 is an I/O APIC pin 1..={pins} (not {SCI_GSI}, the ACPI SCI)"
        )),
        SCI_GSI => Some(format!(
            "irq_id {SCI_GSI} is the ACPI SCI every x86_64 VM's FADT names: a device interrupt is an I/O APIC pin 1..={pins} other than {SCI_GSI}"
        )),
        i if i >= IOAPIC_PINS => Some(format!(
            "irq_id {i} is not a pin of the VM's I/O APIC (GSI 1..={pins}, not {SCI_GSI})"
        )),
        _ => None,
    }
}

/// Every device interrupt valid for the architecture's controller and used by one
/// device only (no device the hypervisor emulates or passes through shares its
/// interrupt line).
pub fn check_irqs(emu: &[EmuDevice], pass: &[PassDevice], arch: ArchLimits, out: &mut Problems) {
    let mut users: Vec<(KeyPath, &str, u32)> = Vec::new();
    for d in emu {
        let controller = EMU_GIC_PARTS.contains(&d.emu_type) || d.emu_type == EMU_PLIC;
        // An IVC window has no interrupt (`channel::check_ivc_windows` says so).
        if controller || d.emu_type == EMU_IVC || (d.irq == 0 && !always_interrupts(d.emu_type)) {
            continue;
        }
        // riscv64 consoles have their own rule (they need the emulated PLIC).
        if !(arch.irq_chip == IrqChip::Plic && d.emu_type == EMU_CONSOLE) {
            if let Some(why) = irq_problem(d.irq, arch) {
                out.error(&d.key.index(3), why);
                continue;
            }
        }
        users.push((d.key.index(3), &d.name, d.irq));
    }
    for d in pass.iter().filter(|d| d.irq != 0) {
        // passthrough_addresses ([gpa, length]) have no interrupt field.
        let key = d.key.index(4);
        if let Some(why) = irq_problem(d.irq, arch) {
            out.error(&key, why);
            continue;
        }
        users.push((key, &d.name, d.irq));
    }
    for (i, (key, name, irq)) in users.iter().enumerate() {
        if let Some((other, oname, _)) = users[..i].iter().find(|(_, _, o)| o == irq) {
            let parent = KeyPath::from_segs(other.segs()[..other.segs().len() - 1].to_vec());
            out.error(
                key,
                format!(
                    "irq_id {irq} of {name:?} is also the interrupt of {parent} ({oname:?}): a device here does not share its interrupt"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Range;
    use alloc::string::ToString;

    fn emu(i: usize, name: &str, irq: u32, emu_type: u32) -> EmuDevice {
        EmuDevice {
            key: KeyPath::new("devices").key("emu_devices").index(i),
            name: name.into(),
            range: Range::new(0x0900_0000 + i as u64 * 0x1000, 0x1000),
            irq,
            emu_type,
            cfg: Vec::new(),
        }
    }

    fn pass(i: usize, irq: u32) -> PassDevice {
        PassDevice {
            key: KeyPath::new("devices").key("passthrough_devices").index(i),
            name: format!("p{i}"),
            gpa: 0x1000_0000,
            hpa: 0x1000_0000,
            len: 0x1000,
            irq,
        }
    }

    fn errors(emu_devs: &[EmuDevice], p: &[PassDevice], arch: ArchLimits) -> Vec<String> {
        let mut out = Problems::default();
        check_irqs(emu_devs, p, arch, &mut out);
        out.errors().map(|e| e.to_string()).collect()
    }

    #[test]
    fn gic_devices_need_spis() {
        let e = errors(&[emu(0, "uart", 5, EMU_CONSOLE)], &[], AARCH64);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("devices.emu_devices[0][3]: irq_id 5 is an SGI"),
            "{e:?}"
        );
        let e = errors(&[], &[pass(0, 27)], AARCH64);
        assert!(
            e[0].starts_with("devices.passthrough_devices[0][4]: irq_id 27 is a PPI"),
            "{e:?}"
        );
        let e = errors(&[emu(0, "uart", 0, EMU_CONSOLE)], &[], AARCH64);
        assert!(
            e[0].contains("irq_id 0 is an SGI"),
            "a console always interrupts: {e:?}"
        );
        let e = errors(&[], &[pass(0, 1020)], AARCH64);
        assert!(e[0].contains("above 1019"), "{e:?}");
        // Passthrough irq 0 = no interrupt; the GIC's own parts have none.
        let ok = [
            emu(0, "gicd", 0, EMU_GIC_DIST),
            emu(1, "uart", 33, EMU_CONSOLE),
        ];
        assert!(errors(&ok, &[pass(0, 0), pass(1, 34)], AARCH64).is_empty());
    }

    #[test]
    fn no_two_devices_on_one_interrupt() {
        let devs = [
            emu(0, "uart0", 33, EMU_CONSOLE),
            emu(1, "uart1", 33, EMU_CONSOLE),
        ];
        let e = errors(&devs, &[pass(0, 33)], AARCH64);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("devices.emu_devices[1][3]: irq_id 33 of \"uart1\" is also the interrupt of devices.emu_devices[0] (\"uart0\")"), "{e:?}");
        assert!(
            e[1].starts_with("devices.passthrough_devices[0][4]: irq_id 33"),
            "{e:?}"
        );
        let devs = [
            emu(0, "uart0", 10, EMU_CONSOLE),
            emu(1, "plic", 0, EMU_PLIC),
        ];
        let e = errors(&devs, &[pass(0, 10)], RISCV64);
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn plic_sources() {
        let e = errors(&[], &[pass(0, 96)], RISCV64);
        assert!(
            e[0].contains("not a source of the VM's PLIC (1..=95)"),
            "{e:?}"
        );
        assert!(errors(&[], &[pass(0, 95)], RISCV64).is_empty());
    }

    #[test]
    fn devices_of_the_other_architecture() {
        assert!(emu_type_arch_problem(EMU_PLIC, AARCH64)
            .unwrap()
            .contains("is a riscv64 device"));
        assert!(emu_type_arch_problem(EMU_GIC_DIST, RISCV64)
            .unwrap()
            .contains("is an aarch64 device"));
        assert_eq!(emu_type_arch_problem(EMU_CONSOLE, RISCV64), None);
        assert_eq!(emu_type_arch_problem(EMU_GIC_REDIST, AARCH64), None);
        assert_eq!(
            emu_type_arch_problem(EMU_GIC_CPU_IF, X86_64),
            None,
            "APIC windows"
        );
        assert!(emu_type_arch_problem(EMU_GIC_DIST, X86_64).is_some());
    }

    #[test]
    fn gic_kinds() {
        let k = |t: &[u32], n| gic_kind(t, n);
        assert_eq!(k(&[0x21, 0x20, 0x2], 2), Ok(GicKind::V3));
        assert_eq!(k(&[0x21, 0x1, 0x2], 2), Ok(GicKind::V2));
        assert_eq!(k(&[0x2], 2), Ok(GicKind::None));
        let (blame, why) = k(&[0x21, 0x2], 2).unwrap_err();
        assert_eq!(blame, GicBlame::Device(0x21));
        assert!(why.contains("alone is not a whole GIC"), "{why}");
        let (blame, why) = k(&[0x20, 0x2], 2).unwrap_err();
        assert_eq!(blame, GicBlame::Device(0x20));
        assert!(why.contains("needs a GIC distributor"), "{why}");
        assert_eq!(k(&[0x21, 0x1], 9).unwrap_err().0, GicBlame::CpuNum);
        assert!(k(&[0x21, 0x20, 0x1], 2)
            .unwrap_err()
            .1
            .contains("choose one"));
        assert_eq!(k(&[0x22], 2).unwrap_err().0, GicBlame::Device(0x22));
    }
}
