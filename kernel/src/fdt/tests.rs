//! Host tests of the DTB writer: output parsed back with the `fdt` crate, checked with
//! the boot-time structure validator, and decompiled with `dtc` when it is installed.

use super::{FdtError, FdtWriter};
use alloc::vec::Vec;

fn sample() -> Vec<u8> {
    let mut w = FdtWriter::new();
    w.add_mem_reserve(0x4000_0000, 0x1000);
    w.set_boot_cpuid(0);
    let intc = w.alloc_phandle();
    w.begin_node("").unwrap();
    w.property_string("compatible", "test,board").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_u32("interrupt-parent", intc).unwrap();
    w.begin_node("intc@8000000").unwrap();
    w.property_string_list("compatible", &["arm,gic-v3", "x,y"])
        .unwrap();
    w.property_cells("reg", &[0, 0x0800_0000, 0, 0x1_0000])
        .unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("phandle", intc).unwrap();
    w.end_node().unwrap();
    w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "console=ttyAMA0 quiet")
        .unwrap();
    w.property_u64("linux,initrd-start", 0x4800_0000).unwrap();
    w.property_bytes("blob", &[1, 2, 3]).unwrap();
    w.end_node().unwrap();
    w.end_node().unwrap();
    w.finish().unwrap()
}

#[test]
fn header_and_layout() {
    let b = sample();
    let word = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(0), 0xd00d_feed);
    assert_eq!(word(1) as usize, b.len());
    assert_eq!(word(5), 17);
    assert_eq!(word(6), 16);
    assert_eq!(word(4) % 8, 0);
    assert_eq!(word(2) % 4, 0);
    assert_eq!(word(2) + word(9), word(3), "strings right after structure");
    assert_eq!(crate::firmware::fdt::check::check(&b), Ok(()));
}

#[test]
fn parses_back_with_fdt_crate() {
    let b = sample();
    let fdt = fdt::Fdt::new(&b).unwrap();
    let intc = fdt.find_node("/intc@8000000").unwrap();
    let compat: Vec<_> = intc.compatible().unwrap().all().collect();
    assert_eq!(compat, ["arm,gic-v3", "x,y"]);
    let reg = intc.property("reg").unwrap().value;
    assert_eq!(reg, &[0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(
        intc.property("interrupt-controller").unwrap().value.len(),
        0
    );
    let phandle = intc.property("phandle").unwrap().as_usize().unwrap() as u32;
    assert_eq!(fdt.find_phandle(phandle).unwrap().name, "intc@8000000");
    let chosen = fdt.find_node("/chosen").unwrap();
    assert_eq!(
        chosen.property("bootargs").unwrap().as_str(),
        Some("console=ttyAMA0 quiet")
    );
    assert_eq!(
        chosen.property("linux,initrd-start").unwrap().as_usize(),
        Some(0x4800_0000)
    );
    assert_eq!(chosen.property("blob").unwrap().value, &[1, 2, 3]);
    let rsv: Vec<_> = fdt
        .memory_reservations()
        .map(|r| (r.address() as u64, r.size()))
        .collect();
    assert_eq!(rsv, [(0x4000_0000, 0x1000)]);
}

#[test]
fn strings_are_deduplicated() {
    let b = sample();
    let fdt = fdt::Fdt::new(&b).unwrap();
    let names: Vec<_> = fdt.strings().collect();
    assert_eq!(names.iter().filter(|s| **s == "compatible").count(), 1);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
}

#[test]
fn misuse_is_an_error_value() {
    let mut w = FdtWriter::new();
    assert_eq!(w.property_u32("x", 1), Err(FdtError::PropertyOutsideNode));
    assert_eq!(w.end_node(), Err(FdtError::UnbalancedEnd));
    assert_eq!(w.begin_node("notroot"), Err(FdtError::BadRoot));
    w.begin_node("").unwrap();
    assert_eq!(w.begin_node(""), Err(FdtError::BadName));
    assert_eq!(w.begin_node("a\0b"), Err(FdtError::BadName));
    assert_eq!(w.property_u32("", 1), Err(FdtError::BadName));
    assert_eq!(w.property_string("s", "a\0"), Err(FdtError::BadString));
    w.property_u32("x", 1).unwrap();
    assert_eq!(
        w.property_u32("x", 2),
        Err(FdtError::DuplicateProperty("x".into()))
    );
    w.begin_node("child").unwrap();
    w.property_u32("x", 3).unwrap();
    w.end_node().unwrap();
    assert_eq!(w.property_u32("y", 1), Err(FdtError::PropertyAfterChild));
    w.begin_node("open").unwrap();
    let mut w2 = FdtWriter::new();
    w2.begin_node("").unwrap();
    w2.end_node().unwrap();
    assert_eq!(w2.begin_node(""), Err(FdtError::BadRoot));
    assert!(w2.finish().is_ok());
    assert_eq!(w.finish(), Err(FdtError::UnclosedNodes(2)));
    assert_eq!(FdtWriter::new().finish(), Err(FdtError::BadRoot));
}

#[test]
fn phandles_count_up() {
    let mut w = FdtWriter::new();
    assert_eq!((w.alloc_phandle(), w.alloc_phandle()), (1, 2));
}

/// Runs `dtc` on a blob if it is installed; returns the decompiled source and the
/// warnings dtc printed.
pub fn dtc_decompile(blob: &[u8]) -> Option<(std::string::String, std::string::String)> {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir();
    let path = dir.join(std::format!(
        "hv-fdt-test-{}-{:p}.dtb",
        std::process::id(),
        blob
    ));
    std::fs::write(&path, blob).ok()?;
    let out = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(&path)
        .stderr(Stdio::piped())
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.ok()?;
    assert!(
        out.status.success(),
        "dtc failed: {}",
        std::string::String::from_utf8_lossy(&out.stderr)
    );
    let text = |b: &[u8]| std::string::String::from_utf8_lossy(b).into_owned();
    Some((text(&out.stdout), text(&out.stderr)))
}

#[test]
fn dtc_accepts_output() {
    let Some((src, _)) = dtc_decompile(&sample()) else {
        std::eprintln!("dtc not installed: skipped");
        return;
    };
    assert!(
        src.contains("/memreserve/\t0x0000000040000000 0x0000000000001000;"),
        "{src}"
    );
    assert!(src.contains("compatible = \"arm,gic-v3\\0x,y\";"), "{src}");
    assert!(
        src.contains("reg = <0x00 0x8000000 0x00 0x10000>;"),
        "{src}"
    );
    assert!(src.contains("blob = [01 02 03];"), "{src}");
    assert!(
        src.contains("bootargs = \"console=ttyAMA0 quiet\";"),
        "{src}"
    );
    assert!(src.contains("interrupt-controller;"), "{src}");
}
