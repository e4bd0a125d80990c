//! Boot modules in the device tree: files the bootloader loaded into RAM for us and
//! described in the DTB (`boot.scr` of a card made by `cargo xtask image`):
//!
//! ```text
//! /chosen/hv-modules {
//!     compatible = "hv,boot-modules"; #address-cells = <2>; #size-cells = <2>;
//!     module@<addr> {
//!         compatible = "hv,vm-config", "hv,module";   // or "hv,vm-image", "hv,module"
//!         hv,file = "vms/vm3.toml";                   // path on the boot partition
//!         hv,slot = <addr slot-size>;                 // the RAM set aside for it
//!         reg = <addr bytes-loaded>;                  // absent: the file was not loaded
//!     };
//! };
//! ```
//!
//! Read before the heap exists, so allocation-free (see [`crate::firmware::modules`]).

use fdt::Fdt;

use super::dt;
use crate::firmware::modules::{BootModule, ModuleKind, Modules};
use crate::firmware::Range;

/// The boot modules of `/chosen/hv-modules`; none when the node is absent.
pub fn boot_modules(dtb: &[u8]) -> Modules<'_> {
    let mut out = Modules::new();
    if super::check::check(dtb).is_err() {
        return out;
    }
    let Ok(fdt) = Fdt::new(dtb) else { return out };
    let node = dt::root(&fdt)
        .and_then(|r| dt::child(r, "chosen"))
        .and_then(|c| dt::child(c, "hv-modules"));
    let Some(node) = node else { return out };
    let cells = dt::child_cells(node);
    for m in node.children() {
        let Some(kind) = kind_of(m) else { continue };
        let Some(file) = dt::prop_str(m, "hv,file") else {
            continue;
        };
        let range = |name| {
            let (base, size) = dt::pairs(dt::prop(m, name)?, cells).next()?;
            base.checked_add(size)?;
            Some(Range { base, size })
        };
        out.push(BootModule {
            kind,
            file: file.trim_start_matches('/'),
            slot: range("hv,slot"),
            loaded: range("reg"),
        });
    }
    out
}

fn kind_of(node: dt::Node<'_, '_>) -> Option<ModuleKind> {
    let compat = dt::prop(node, "compatible")?;
    let mut kind = None;
    for c in dt::strings(compat) {
        match c {
            "hv,vm-config" => return Some(ModuleKind::VmConfig),
            "hv,vm-image" => return Some(ModuleKind::VmImage),
            "hv,module" => kind = Some(ModuleKind::Other),
            _ => {}
        }
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::FdtWriter;
    use crate::firmware::modules::MAX_MODULES;
    use alloc::vec::Vec;

    /// (compatible, file, slot, reg) of a module node.
    type Node<'a> = (&'a [&'a str], &'a str, (u64, u64), Option<(u64, u64)>);

    /// A DTB with `/chosen/hv-modules` holding these modules.
    fn dtb(modules: &[Node<'_>]) -> Vec<u8> {
        let cells = |(a, s): (u64, u64)| [(a >> 32) as u32, a as u32, (s >> 32) as u32, s as u32];
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.begin_node("chosen").unwrap();
        w.begin_node("hv-modules").unwrap();
        w.property_string("compatible", "hv,boot-modules").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        for (compat, file, slot, reg) in modules {
            w.begin_node(&alloc::format!("module@{:x}", slot.0))
                .unwrap();
            w.property_string_list("compatible", compat).unwrap();
            w.property_string("hv,file", file).unwrap();
            w.property_cells("hv,slot", &cells(*slot)).unwrap();
            if let Some(reg) = reg {
                w.property_cells("reg", &cells(*reg)).unwrap();
            }
            w.end_node().unwrap();
        }
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn modules_are_read_with_their_slots_and_loaded_sizes() {
        let blob = dtb(&[
            (
                &["hv,vm-config", "hv,module"],
                "vms/vm3.toml",
                (0x4800_0000, 0x1_0000),
                Some((0x4800_0000, 0x5a3)),
            ),
            (
                &["hv,vm-image", "hv,module"],
                "/vms/vm3/testguest.bin",
                (0x1_4820_0000, 0x100_0000),
                None,
            ),
            (&["hv,module"], "other", (0x4900_0000, 0x1000), None),
            (&["vendor,thing"], "ignored", (0x4a00_0000, 0x1000), None),
        ]);
        let m = boot_modules(&blob);
        let all: Vec<_> = m.iter().copied().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].kind, ModuleKind::VmConfig);
        assert_eq!(all[0].file, "vms/vm3.toml");
        assert_eq!(
            all[0].slot,
            Some(Range {
                base: 0x4800_0000,
                size: 0x1_0000
            })
        );
        assert_eq!(
            all[0].loaded,
            Some(Range {
                base: 0x4800_0000,
                size: 0x5a3
            })
        );
        assert_eq!(all[1].kind, ModuleKind::VmImage);
        assert_eq!(all[1].file, "vms/vm3/testguest.bin", "leading '/' cut");
        assert_eq!(all[1].slot.map(|s| s.base), Some(0x1_4820_0000));
        assert_eq!(all[1].loaded, None);
        assert_eq!(all[2].kind, ModuleKind::Other);
        assert!(m.find("vms/vm3/testguest.bin").is_some());
        assert!(m.find("nothing").is_none());
    }

    #[test]
    fn no_node_no_modules_and_garbage_is_harmless() {
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.end_node().unwrap();
        assert!(boot_modules(&w.finish().unwrap()).is_empty());
        assert!(boot_modules(b"not a dtb").is_empty());
        let mut blob = dtb(&[(&["hv,vm-config"], "a", (0x1000, 0x1000), None)]);
        blob.truncate(blob.len() - 8);
        assert!(boot_modules(&blob).is_empty());
    }

    #[test]
    fn too_many_modules_overflow() {
        let many: Vec<_> = (0..MAX_MODULES as u64 + 1)
            .map(|i| (&["hv,vm-image"][..], "f", (0x1000 * (i + 1), 0x1000), None))
            .collect();
        let blob = dtb(&many);
        let m = boot_modules(&blob);
        assert_eq!(m.iter().count(), MAX_MODULES);
        assert!(m.overflow);
    }
}
