//! Device-tree passthrough at VM creation: a VM whose config names devices by path
//! (`passthrough_devices = [["/pl031@9010000"]]`, AxVisor's form) gets the `reg`
//! windows and interrupts of those nodes in the DTB the hypervisor booted with,
//! resolved by the rule xtask checked them with (`vmconfig::devtree`), as ordinary
//! passthrough devices mapped at their host addresses. A path that does not
//! resolve, or a window that collides with the VM's memory or devices or with host
//! RAM, keeps the VM from starting with a message; the others are unaffected.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vmconfig::devtree::{DtWindow, Tree};
use vmconfig::Range;

use crate::firmware::BoardInfo;
use crate::spec::{PassthroughDevice, VmSpec};

/// `spec` with its device-tree paths resolved into passthrough devices (`spec`
/// itself when it has none). The resolved spec is owned by the VM (freed with it).
pub fn resolve(spec: Cow<'static, VmSpec>, p: &BoardInfo) -> Result<Cow<'static, VmSpec>, String> {
    let Some(dt) = &spec.dt_passthrough else {
        return Ok(spec);
    };
    let blob = p.device_tree.ok_or_else(|| {
        String::from("device-tree passthrough: the hypervisor has no device tree")
    })?;
    let tree = Tree::new(blob).map_err(|e| format!("device-tree passthrough: {e}"))?;
    let excluded: Vec<&str> = dt.excluded.iter().map(|e| &**e).collect();
    let mut devices: Vec<PassthroughDevice> = spec.passthrough_devices.to_vec();
    for path in dt.paths.iter() {
        let windows = tree
            .passthrough(path, &excluded)
            .map_err(|e| format!("passthrough_devices {path:?}: {e}"))?;
        for w in windows {
            check(&spec, p, &devices, &w)?;
            crate::info!(
                "hv: VM {} ({}): passthrough {} at {}, {}",
                spec.id,
                spec.name,
                w.node,
                w.range,
                match w.irq {
                    Some(irq) => format!("interrupt {irq}"),
                    None => String::from("no interrupt"),
                }
            );
            devices.push(PassthroughDevice {
                name: Cow::Owned(w.node),
                base_gpa: w.range.base,
                base_hpa: w.range.base,
                length: w.range.size,
                irq: w.irq.unwrap_or(0),
            });
        }
    }
    Ok(Cow::Owned(VmSpec {
        passthrough_devices: Cow::Owned(devices),
        dt_passthrough: None,
        ..spec.into_owned()
    }))
}

/// What the window `w` (mapped at its host address) must not collide with.
fn check(
    spec: &VmSpec,
    p: &BoardInfo,
    devices: &[PassthroughDevice],
    w: &DtWindow,
) -> Result<(), String> {
    let r = w.range;
    let what = format!("passthrough {} at {r}", w.node);
    if let Some(ram) = p
        .ram()
        .iter()
        .find(|m| Range::new(m.base, m.size).overlaps(&r))
    {
        return Err(format!(
            "{what} overlaps host RAM {}",
            Range::new(ram.base, ram.size)
        ));
    }
    let taken = spec
        .memory_regions
        .iter()
        .map(|m| ("a memory region", Range::new(m.gpa, m.size)))
        .chain(
            spec.emu_devices
                .iter()
                .map(|d| (&*d.name, Range::new(d.base_gpa, d.length))),
        )
        .chain(
            devices
                .iter()
                .map(|d| (&*d.name, Range::new(d.base_gpa, d.length))),
        );
    for (name, other) in taken {
        if other.overlaps(&r) {
            return Err(format!("{what} overlaps {name} at {other}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::fdt::read;
    use crate::spec::DtPassthrough;
    use crate::spec::{EmuDevice, MapType, MemRegion, TEST_SPEC};

    const QEMU_V3: &[u8] = include_bytes!("../../tests/dtbs/qemu-virt-gicv3.dtb");

    fn board() -> BoardInfo {
        let mut p = read(QEMU_V3).unwrap();
        p.device_tree = Some(QEMU_V3);
        p
    }

    fn spec(paths: &[&'static str], excluded: &[&'static str]) -> Cow<'static, VmSpec> {
        let list = |l: &[&'static str]| l.iter().map(|&p| Cow::Borrowed(p)).collect();
        Cow::Owned(VmSpec {
            memory_regions: Cow::Borrowed(&[MemRegion {
                gpa: 0x8000_0000,
                size: 0x100_0000,
                flags: 0xf,
                map_type: MapType::Identity,
            }]),
            emu_devices: Cow::Borrowed(&[UART]),
            dt_passthrough: Some(DtPassthrough {
                paths: list(paths),
                excluded: list(excluded),
            }),
            ..TEST_SPEC
        })
    }

    const UART: EmuDevice = EmuDevice {
        name: Cow::Borrowed("uart"),
        base_gpa: 0x0900_0000,
        length: 0x1000,
        irq: 33,
        emu_type: 0x2,
        cfg: Cow::Borrowed(&[]),
    };

    #[test]
    fn paths_become_passthrough_devices() {
        let s = resolve(spec(&["/pl031@9010000", "/pl061"], &[]), &board()).unwrap();
        assert!(s.dt_passthrough.is_none());
        let d: Vec<(&str, u64, u64, u64, u32)> = s
            .passthrough_devices
            .iter()
            .map(|d| (&*d.name, d.base_gpa, d.base_hpa, d.length, d.irq))
            .collect();
        assert_eq!(
            d,
            [
                ("/pl031@9010000", 0x0901_0000, 0x0901_0000, 0x1000, 34),
                ("/pl061@9030000", 0x0903_0000, 0x0903_0000, 0x1000, 39)
            ]
        );
        // A spec without paths is returned as it is.
        static PLAIN: VmSpec = TEST_SPEC;
        let same = resolve(Cow::Borrowed(&PLAIN), &board()).unwrap();
        assert!(matches!(same, Cow::Borrowed(s) if core::ptr::eq(s, &PLAIN)));
    }

    #[test]
    fn refusals_name_the_path_and_reason() {
        let e = resolve(spec(&["/pl011@9000000"], &[]), &board()).unwrap_err();
        assert!(
            e.starts_with("passthrough_devices \"/pl011@9000000\": "),
            "{e}"
        );
        assert!(e.contains("hypervisor's console"), "{e}");
        let e = resolve(spec(&["/nope"], &[]), &board()).unwrap_err();
        assert!(e.contains("no node /nope"), "{e}");
        // The whole tree with the GIC excluded but not the console UART.
        let e = resolve(spec(&["/"], &["/intc@8000000", "/pcie@10000000"]), &board()).unwrap_err();
        assert!(e.contains("hypervisor's console"), "{e}");
        let e = resolve(
            spec(&["/fw-cfg@9020000"], &[]),
            &BoardInfo {
                device_tree: None,
                ..board()
            },
        )
        .unwrap_err();
        assert!(e.contains("has no device tree"), "{e}");
    }

    #[test]
    fn windows_must_not_collide() {
        // The VM's own emulated UART window at the RTC's address.
        let mut s = spec(&["/pl031@9010000"], &[]).into_owned();
        s.emu_devices = Cow::Owned(alloc::vec![EmuDevice {
            base_gpa: 0x0901_0000,
            ..UART
        }]);
        let e = resolve(Cow::Owned(s), &board()).unwrap_err();
        assert_eq!(
            e,
            "passthrough /pl031@9010000 at 0x9010000..0x9011000 overlaps uart at 0x9010000..0x9011000"
        );
        // Host RAM: a board whose RAM covers the device (a made-up map).
        let mut b = board();
        b.ram = crate::firmware::RangeList::new();
        let _ = b.ram.push(crate::firmware::Range {
            base: 0x0900_0000,
            size: 0x10_0000,
        });
        let e = resolve(spec(&["/pl031@9010000"], &[]), &b).unwrap_err();
        assert!(e.contains("overlaps host RAM 0x9000000..0x9100000"), "{e}");
    }
}
