//! Host tests of the device-tree reader, on blobs built here (with NOPs, aliases,
//! different cell sizes) and on malformed ones.

use super::*;

/// Builds a device tree blob token by token.
#[derive(Default)]
struct Builder {
    structs: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn word(&mut self, value: u32) -> &mut Self {
        self.structs.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
    }

    fn begin(&mut self, name: &str) -> &mut Self {
        self.word(TOKEN_BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self
    }

    fn end(&mut self) -> &mut Self {
        self.word(TOKEN_END_NODE)
    }

    fn nop(&mut self) -> &mut Self {
        self.word(TOKEN_NOP)
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.word(TOKEN_PROP).word(value.len() as u32).word(offset);
        self.structs.extend_from_slice(value);
        self.pad();
        self
    }

    fn prop_str(&mut self, name: &str, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.prop(name, &bytes)
    }

    fn prop_cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes)
    }

    /// The finished blob, at a 4-byte aligned address that lives for the test run.
    fn finish(&mut self) -> usize {
        self.word(TOKEN_END);
        let structs_at = HEADER_SIZE + 16; // header, then an empty reservation map
        let strings_at = structs_at + self.structs.len();
        let total = strings_at + self.strings.len();
        let header = [
            MAGIC,
            total as u32,
            structs_at as u32,
            strings_at as u32,
            HEADER_SIZE as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ];
        let mut blob: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        blob.extend_from_slice(&[0; 16]);
        blob.extend_from_slice(&self.structs);
        blob.extend_from_slice(&self.strings);
        leak_aligned(blob)
    }
}

fn leak_aligned(blob: Vec<u8>) -> usize {
    let words: Vec<u32> = blob
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_ne_bytes(w)
        })
        .collect();
    Box::leak(words.into_boxed_slice()).as_ptr() as usize
}

/// A tree shaped like the one the hypervisor gives a test VM, with NOPs sprinkled in.
fn vm_tree() -> usize {
    let mut b = Builder::default();
    b.begin("")
        .prop_cells("#address-cells", &[2])
        .nop()
        .prop_cells("#size-cells", &[2])
        .begin("aliases")
        .prop_str("serial0", "/pl011@9000000")
        .end()
        .begin("memory@40000000")
        .nop()
        .nop()
        .prop_str("device_type", "memory")
        .prop_cells("reg", &[0, 0x4000_0000, 0, 0x100_0000])
        .end()
        .nop()
        .begin("cpus")
        .prop_cells("#address-cells", &[1])
        .prop_cells("#size-cells", &[0])
        .begin("cpu@0")
        .prop_cells("reg", &[0])
        .end()
        .begin("cpu-map")
        .begin("cluster0")
        .end()
        .end()
        .begin("cpu@1")
        .prop_cells("reg", &[1])
        .prop_str("enable-method", "psci")
        .end()
        .end()
        .begin("pl011@9000000")
        .prop("compatible", b"arm,pl011\0arm,primecell\0")
        .prop_cells("reg", &[0, 0x900_0000, 0, 0x1000])
        .end()
        .begin("chosen")
        .prop_str("bootargs", "fault quiet")
        .prop_str("stdout-path", "serial0:115200n8")
        .end()
        .end();
    b.finish()
}

/// Reads the blob at `addr`, which must come from `finish` or `leak_aligned`.
fn try_parse(addr: usize) -> Result<Fdt, Why> {
    // SAFETY: every caller passes 0 (rejected before any read) or a leaked, 4-byte
    // aligned buffer at least a header long that is never freed or changed.
    unsafe { Fdt::from_addr(addr) }
}

fn parse(addr: usize) -> Fdt {
    match try_parse(addr) {
        Ok(fdt) => fdt,
        Err(why) => panic!("{why}"),
    }
}

#[test]
fn finds_nodes_by_path_with_and_without_unit_address() {
    let fdt = parse(vm_tree());
    assert_eq!(fdt.find("/memory").map(|n| n.name), Some("memory@40000000"));
    assert_eq!(
        fdt.find("/memory@40000000").map(|n| n.name),
        Some("memory@40000000")
    );
    assert_eq!(fdt.find("/cpus/cpu@1").map(|n| n.name), Some("cpu@1"));
    assert!(fdt.find("/memory@50000000").is_none());
    assert!(fdt.find("/nothing").is_none());
    assert_eq!(fdt.find("/").map(|n| n.name), Some(""));
}

#[test]
fn resolves_aliases() {
    let fdt = parse(vm_tree());
    assert_eq!(fdt.find("serial0").map(|n| n.name), Some("pl011@9000000"));
    assert!(fdt.find("serial1").is_none());
}

#[test]
fn reads_properties_across_nops() {
    let fdt = parse(vm_tree());
    let chosen = fdt.find("/chosen").expect("chosen");
    assert_eq!(chosen.prop_str("bootargs"), Some("fault quiet"));
    assert_eq!(chosen.prop_str("stdout-path"), Some("serial0:115200n8"));
    let memory = fdt.find("/memory").expect("memory");
    assert_eq!(memory.prop_str("device_type"), Some("memory"));
    assert!(memory.prop("status").is_none());
}

#[test]
fn reg_uses_the_parent_cells() {
    let fdt = parse(vm_tree());
    let memory = fdt.find("/memory").expect("memory");
    assert_eq!(
        memory.reg().collect::<Vec<_>>(),
        [(0x4000_0000, 0x100_0000)]
    );
    let cpu = fdt.find("/cpus/cpu@1").expect("cpu@1");
    assert_eq!(cpu.reg().collect::<Vec<_>>(), [(1, 0)]);
}

#[test]
fn children_skip_grandchildren() {
    let fdt = parse(vm_tree());
    let cpus = fdt.find("/cpus").expect("cpus");
    let names: Vec<_> = cpus.children().map(|n| n.name).collect();
    assert_eq!(names, ["cpu@0", "cpu-map", "cpu@1"]);
}

#[test]
fn all_nodes_in_order_with_cells() {
    let fdt = parse(vm_tree());
    let names: Vec<_> = fdt.nodes().map(|n| n.name).collect();
    assert_eq!(
        names,
        [
            "",
            "aliases",
            "memory@40000000",
            "cpus",
            "cpu@0",
            "cpu-map",
            "cluster0",
            "cpu@1",
            "pl011@9000000",
            "chosen"
        ]
    );
    let uart = fdt
        .nodes()
        .find(|n| n.name == "pl011@9000000")
        .expect("uart");
    assert_eq!(uart.reg().next(), Some((0x900_0000, 0x1000)));
    let cpu = fdt.nodes().find(|n| n.name == "cpu@1").expect("cpu");
    assert_eq!(cpu.reg().next(), Some((1, 0)));
}

#[test]
fn compatible_lists() {
    let fdt = parse(vm_tree());
    let uart = fdt.find_compatible(&["arm,primecell"]).expect("uart");
    assert!(uart.is_compatible("arm,pl011"));
    assert!(!uart.is_compatible("arm,pl01"));
    assert!(fdt.find_compatible(&["arm,gic-v3"]).is_none());
}

#[test]
fn rejects_bad_headers() {
    assert!(try_parse(leak_aligned(vec![0; 64])).is_err());
    assert!(try_parse(0).is_err());
    let mut blob = vec![0u8; 64];
    blob[..4].copy_from_slice(&MAGIC.to_be_bytes());
    blob[4..8].copy_from_slice(&64u32.to_be_bytes());
    blob[8..12].copy_from_slice(&1000u32.to_be_bytes()); // structs beyond the blob
    assert!(try_parse(leak_aligned(blob)).is_err());
}

#[test]
fn malformed_structure_gives_nothing_instead_of_panicking() {
    let mut b = Builder::default();
    b.begin("").begin("a").word(0x77).end().end();
    let fdt = parse(b.finish());
    assert!(fdt.find("/a/b").is_none());
    assert_eq!(fdt.nodes().count(), 2);

    // A property whose length runs past the block.
    let mut b = Builder::default();
    b.begin("").word(TOKEN_PROP).word(0x1000).word(0);
    let fdt = parse(b.finish());
    assert!(fdt.find("/").is_some_and(|root| root.prop("x").is_none()));

    // Unbalanced END_NODE tokens.
    let mut b = Builder::default();
    b.end().end();
    let fdt = parse(b.finish());
    assert!(fdt.root().is_none());
    assert_eq!(fdt.nodes().count(), 0);
}

#[test]
fn deep_nesting_stops_quietly() {
    let mut b = Builder::default();
    for _ in 0..40 {
        b.begin("n");
    }
    for _ in 0..40 {
        b.end();
    }
    let fdt = parse(b.finish());
    assert_eq!(fdt.nodes().count(), MAX_DEPTH);
}
