//! The shared rules on whole configs, through the no_std parser.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::cpus::pinned_cpu;
use crate::parse::{key_at, line_col, parse_vm};
use crate::*;

const GOOD: &str = r#"
[base]
id = 3
name = "vm3"
cpu_num = 2
phys_cpu_ids = [0x2, 0x3]

[kernel]
entry_point = 0x4008_0000
image_location = "fs"
kernel_path = "/vms/vm3/testguest.bin"
kernel_load_addr = 0x4008_0000
cmdline = "fault"
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [
    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["uart", 0x0900_0000, 0x1000, 33, 0x2, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],
]
"#;

/// `key: message` of every error.
fn errors(text: &str) -> Vec<String> {
    let p = parse_vm(text, AARCH64);
    assert!(p.vm.is_none(), "accepted:\n{text}");
    p.problems.errors().map(|e| e.to_string()).collect()
}

fn expect(errs: &[String], key: &str, reason: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{key}: ")) && e.contains(reason)),
        "no error {key}: ...{reason}... in {errs:#?}"
    );
}

#[test]
fn good_config_becomes_a_vm() {
    let p = parse_vm(GOOD, AARCH64);
    assert!(p.problems.items.is_empty(), "{:?}", p.problems);
    let vm = p.vm.unwrap();
    assert_eq!((vm.id, vm.name.as_str(), vm.cpu_num), (3, "vm3", 2));
    assert_eq!(vm.location, ImageLocation::Fs);
    assert_eq!(vm.kernel.path, "/vms/vm3/testguest.bin");
    assert_eq!(vm.kernel.load, 0x4008_0000);
    assert_eq!(vm.dtb_load_gpa, 0x4000_0000);
    assert_eq!(vm.cmdline, "fault");
    assert_eq!(vm.phys_cpu_ids.as_deref(), Some(&[2, 3][..]));
    assert_eq!(vm.emu_devices[1].irq, 33);
    assert_eq!(vm.interrupt_mode, IrqMode::Emulated);
    assert_eq!((p.id, p.name.as_deref()), (Some(3), Some("vm3")));
}

#[test]
fn unknown_keys_are_located() {
    let text = GOOD.replace("cpu_num = 2", "cpu_num = 2\nbogus = 1");
    let p = parse_vm(&text, AARCH64);
    let e = p.problems.errors().next().unwrap();
    assert_eq!(e.key.to_string(), "base.bogus");
    assert!(e.message.contains("unknown field `bogus`"), "{e}");
    let (line, _) = line_col(&text, e.offset.unwrap());
    assert_eq!(line, 6);
    // id and name are still known for the message.
    assert_eq!((p.id, p.name.as_deref()), (Some(3), Some("vm3")));
    // Every section is checked: an error in [kernel] too.
    let text = text.replace("cmdline = \"fault\"", "cmdline = 5");
    let errs = errors(&text);
    expect(&errs, "base.bogus", "unknown field");
    expect(&errs, "kernel.cmdline", "");
}

#[test]
fn syntax_errors_are_reported_once() {
    let p = parse_vm("[base]\nid = \n", AARCH64);
    let errs: Vec<_> = p.problems.errors().collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.starts_with("TOML syntax error"));
    assert_eq!(line_col("[base]\nid = \n", errs[0].offset.unwrap()).0, 2);
    assert_eq!((p.id, p.name), (None, None));
}

#[test]
fn key_at_finds_nested_values() {
    let segs = key_at(GOOD, GOOD.find("0x1000, 33").unwrap()).unwrap();
    assert_eq!(
        KeyPath::from_segs(segs).to_string(),
        "devices.emu_devices[1][2]"
    );
}

#[test]
fn regions_overlapping_unaligned_and_empty() {
    let text = GOOD.replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0], [0x4080_0000, 0x100_0000, 0x7, 0], [0x5000_0800, 0x1000, 0x7, 0], [0x6000_0000, 0, 0x7, 0], [0x7000_0000, 0x1000, 0x47, 5], [0x7100_0000, 0x1000, 0x8, 0]]",
    );
    let errs = errors(&text);
    expect(
        &errs,
        "kernel.memory_regions[1]",
        "overlaps kernel.memory_regions[0]",
    );
    expect(&errs, "kernel.memory_regions[2]", "not 4 KiB aligned");
    expect(&errs, "kernel.memory_regions[3]", "region size is 0");
    expect(&errs, "kernel.memory_regions[4][2]", "flags 0x47");
    // User only: memory the guest may not read, write or execute.
    expect(&errs, "kernel.memory_regions[5][2]", "flags 0x8");
    expect(&errs, "kernel.memory_regions[4][3]", "unknown map_type 5");
}

#[test]
fn cpu_lists_must_match_cpu_num() {
    let text = GOOD.replace(
        "phys_cpu_ids = [0x2, 0x3]",
        "phys_cpu_ids = [0x2]\nphys_cpu_sets = [1, 2, 4]",
    );
    let errs = errors(&text);
    expect(&errs, "base.phys_cpu_ids", "has 1 entries but cpu_num = 2");
    expect(&errs, "base.phys_cpu_sets", "has 3 entries but cpu_num = 2");
    let errs = errors(&GOOD.replace("cpu_num = 2", "cpu_num = 0"));
    expect(&errs, "base.cpu_num", "between 1 and 512");
    let errs = errors(&GOOD.replace("name = \"vm3\"", "name = \"vm 3\""));
    expect(&errs, "base.name", "must be non-empty");
}

#[test]
fn vm_names_are_plain_file_names() {
    let long = "v".repeat(MAX_NAME_LEN + 1);
    for bad in [
        "..",
        ".",
        ".hidden",
        "a/b",
        "../x",
        "a\\b",
        "",
        long.as_str(),
    ] {
        assert!(!valid_name(bad), "{bad:?} accepted");
        let errs = errors(&GOOD.replace("name = \"vm3\"", &format!("name = {bad:?}")));
        expect(&errs, "base.name", "not start with '.'");
    }
    let longest = "v".repeat(MAX_NAME_LEN);
    for good in ["vm3", "linux-6.12", "a.b_c", "x..y", longest.as_str()] {
        assert!(valid_name(good), "{good:?} refused");
        let text = GOOD.replace("name = \"vm3\"", &format!("name = {good:?}"));
        assert!(parse_vm(&text, AARCH64).vm.is_some(), "{good:?} refused");
    }
}

#[test]
fn addresses_outside_ram() {
    let text = GOOD
        .replace("entry_point = 0x4008_0000", "entry_point = 0x5000_0000")
        .replace(
            "kernel_load_addr = 0x4008_0000",
            "kernel_load_addr = 0x3000_0000\ndtb_load_addr = 0x10",
        );
    let errs = errors(&text);
    expect(
        &errs,
        "kernel.entry_point",
        "0x50000000 is outside the VM's memory",
    );
    expect(&errs, "kernel.kernel_load_addr", "outside the VM's memory");
    expect(
        &errs,
        "kernel.dtb_load_addr",
        "generated DTB would go to 0x10",
    );
}

#[test]
fn images_must_fit_and_not_overlap() {
    let p = parse_vm(
        &GOOD.replace(
            "cmdline",
            "ramdisk_path = \"rd\"\nramdisk_load_addr = 0x4010_0000\ncmdline",
        ),
        AARCH64,
    );
    let vm = p.vm.unwrap();
    let sized = |len| Some(Loaded { head: &[], len });
    let mut out = Problems::default();
    check_images(&vm, sized(0x1000), None, sized(0x1000), AARCH64, &mut out);
    assert!(!out.has_errors(), "{out:?}");
    check_images(
        &vm,
        sized(0x10_0000),
        None,
        sized(0x1000),
        AARCH64,
        &mut out,
    );
    let errs: Vec<String> = out.errors().map(|e| e.to_string()).collect();
    expect(
        &errs,
        "kernel.ramdisk_path",
        "overlaps the kernel at 0x40080000..0x40180000 (kernel.kernel_path)",
    );
    let mut out = Problems::default();
    check_images(&vm, sized(0x200_0000), None, None, AARCH64, &mut out);
    let errs: Vec<String> = out.errors().map(|e| e.to_string()).collect();
    expect(
        &errs,
        "kernel.kernel_path",
        "the kernel (32 MiB, 0x40080000..0x42080000) does not fit in the VM's memory (0x40000000..0x41000000)",
    );
    let errs = errors(&GOOD.replace("cmdline", "ramdisk_path = \"rd\"\ncmdline"));
    expect(&errs, "kernel.ramdisk_path", "needs ramdisk_load_addr");
}

#[test]
fn axvisor_ivc_window_is_accepted_once_in_whole_pages() {
    let with = |extra: &str| {
        let text = GOOD.replace(
            "[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []],",
            &format!("[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []], {extra}"),
        );
        assert_ne!(text, GOOD, "the uart line to extend is in GOOD");
        text
    };
    let ok = with("[\"ivc\", 0x0a00_0000, 0x10_0000, 0, 0xA, []],");
    let p = parse_vm(&ok, AARCH64);
    assert!(p.problems.errors().next().is_none(), "{:?}", p.problems);
    assert!(p.vm.unwrap().emu_devices.iter().any(|d| d.emu_type == 0xA));
    let errs = errors(&with("[\"ivc\", 0x0a00_0800, 0x1000, 0, 0xA, []],"));
    expect(
        &errs,
        "devices.emu_devices[2][1]",
        "IVC window 0xa000800..0xa001800 must start and end on 4 KiB pages",
    );
    let errs = errors(&with(
        "[\"ivc\", 0x0a00_0000, 0x1000, 0, 0xA, []], [\"ivc2\", 0x0b00_0000, 0x1000, 0, 0xA, []],",
    ));
    expect(
        &errs,
        "devices.emu_devices[3]",
        "a VM has one IVC window (emu_type 0xa), and devices.emu_devices[2] is one already",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let errs = errors(&with("[\"ivc\", 0x4000_0000, 0x1000, 0, 0xA, []],"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("devices.emu_devices[2]") && e.contains("overlaps")),
        "an IVC window on RAM: {errs:#?}"
    );
    let p = parse_vm(
        &with("[\"ivc\", 0x0a00_0000, 0x1000, 33, 0xA, []],"),
        AARCH64,
    );
    assert!(p.problems.errors().next().is_none(), "{:?}", p.problems);
    let shown: Vec<String> = p.problems.items.iter().map(|w| w.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|w| w.starts_with("devices.emu_devices[2][3]: ignored: irq_id 33")),
        "{shown:?}"
    );
}

#[test]
fn devices_the_hypervisor_does_not_build_are_refused_by_check() {
    for (code, what) in [
        (0x22, "GIC ITS"),
        (0xE1, "virtio-blk"),
        (0xE2, "virtio-net"),
        (0xE3, "virtio-console"),
    ] {
        let text = GOOD.replace(
            "[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []],",
            &format!("[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []], [\"d\", 0x0a00_0000, 0x1000, 40, {code:#x}, []],"),
        );
        assert_ne!(text, GOOD, "the uart line to extend is in GOOD");
        let errs = errors(&text);
        expect(
            &errs,
            "devices.emu_devices[2][4]",
            &format!("not supported yet: emu_type {code:#x} ({what}"),
        );
    }
}

#[test]
fn devices_unknown_type_overlaps_and_shapes() {
    let text = GOOD.replace(
        "[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []],",
        "[\"uart\", 0x0800_8000, 0x1000, 33, 0x99, []], [\"x\", 0x4000_0000, 0x1000, 2000, 0x2], [\"y\"], [\"\", \"a\", 1, 1, 1],",
    );
    let errs = errors(&text);
    expect(&errs, "devices.emu_devices[1][4]", "unknown emu_type 0x99");
    expect(
        &errs,
        "devices.emu_devices[2][3]",
        "irq_id 2000 is above 1019, the largest on aarch64",
    );
    expect(&errs, "devices.emu_devices[3]", "expected [name, base_gpa, length, irq_id, emu_type, [cfg...]], found an array of 1 elements");
    expect(
        &errs,
        "devices.emu_devices[4][0]",
        "name must be a non-empty string",
    );
    expect(
        &errs,
        "devices.emu_devices[4][1]",
        "base_gpa must be a non-negative integer, not the string \"a\"",
    );
    let text = GOOD.replace(
        "[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []],",
        "[\"uart\", 0x0800_8000, 0x1000, 33, 0x2, []], [\"ram\", 0x40ff_f000, 0x2000, 0, 0x0, []],",
    );
    let errs = errors(&text);
    expect(
        &errs,
        "devices.emu_devices[1]",
        "overlaps devices.emu_devices[0]",
    );
    expect(
        &errs,
        "devices.emu_devices[2]",
        "overlaps memory region kernel.memory_regions[0]",
    );
}

#[test]
fn passthrough_and_modes() {
    let text = GOOD.replace(
        "[devices]",
        "[devices]\ninterrupt_mode = \"magic\"\npassthrough_devices = [[\"soc x\"], [\"p\", 0x1000, 0x1001, 0x1000, 1]]\nexcluded_devices = [[\"/a\"], 5]\npassthrough_addresses = [[0x2000, 0]]",
    );
    let errs = errors(&text);
    expect(
        &errs,
        "devices.interrupt_mode",
        "unknown interrupt_mode \"magic\"",
    );
    expect(
        &errs,
        "devices.passthrough_devices[0]",
        "\"soc x\" is not a device-tree path",
    );
    expect(
        &errs,
        "devices.excluded_devices[1]",
        "expected a device-tree path [\"/path\"], found 5",
    );
    expect(&errs, "devices.passthrough_devices[1]", "not 4 KiB aligned");
    expect(
        &errs,
        "devices.passthrough_addresses[0]",
        "bad passthrough window",
    );
}

#[test]
fn unsupported_and_ignored_options() {
    let text = GOOD.replace("cmdline", "bios_path = \"b\"\ndisk_path = \"d\"\ncmdline");
    let p = parse_vm(&text.replace("\"fs\"", "\"tape\""), AARCH64);
    let all: Vec<String> = p.problems.items.iter().map(|e| e.to_string()).collect();
    expect(&all, "kernel.bios_path", "not supported yet");
    expect(
        &all,
        "kernel.image_location",
        "unknown image_location \"tape\"",
    );
    let warning = p
        .problems
        .items
        .iter()
        .find(|e| e.key.to_string() == "kernel.disk_path");
    assert_eq!(warning.map(|w| w.severity), Some(Severity::Warning));
}

#[test]
fn pinned_cpus() {
    let mpidrs = [0x0, 0x100, 0x200, 0x300];
    let m = "this machine";
    assert_eq!(pinned_cpu(None, None, 0, &mpidrs, m), None);
    assert_eq!(
        pinned_cpu(Some(&[0b1100]), None, 0, &mpidrs, m),
        Some(("phys_cpu_sets", Ok(2)))
    );
    assert_eq!(
        pinned_cpu(None, Some(&[0x300]), 0, &mpidrs, m),
        Some(("phys_cpu_ids", Ok(3)))
    );
    let (_, r) = pinned_cpu(None, Some(&[0x700]), 0, &mpidrs, m).unwrap();
    assert_eq!(
        r.unwrap_err(),
        "this machine has no CPU with MPIDR 0x700 (it has 0x0, 0x100, 0x200, 0x300)"
    );
    let (_, r) = pinned_cpu(Some(&[0x100]), None, 0, &mpidrs, m).unwrap();
    assert_eq!(
        r.unwrap_err(),
        "mask 0x100 names CPU 8 but this machine has CPUs 0..4"
    );
    let (_, r) = pinned_cpu(Some(&[0]), None, 0, &mpidrs, m).unwrap();
    assert_eq!(r.unwrap_err(), "CPU mask is 0");
    let (_, r) = pinned_cpu(Some(&[1]), None, 1, &mpidrs, m).unwrap();
    assert_eq!(r.unwrap_err(), "no entry for this vCPU");
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    use crate::parse::{too_deep, MAX_NESTING};
    // The card config that overflowed the hypervisor's boot stack: 80 nested arrays.
    let deep = GOOD.replace(
        "cmdline = \"fault\"",
        &format!("cmdline = {}{}", "[".repeat(80), "]".repeat(80)),
    );
    let p = parse_vm(&deep, AARCH64);
    assert!(p.vm.is_none());
    let errs: Vec<String> = p.problems.errors().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("nested more than 16 deep"), "{errs:#?}");
    let at = p.problems.items[0].offset.unwrap();
    assert_eq!(at, deep.find("cmdline = [").unwrap() + 10 + MAX_NESTING);
    // Inline tables count too; as deep as allowed is not this error.
    let tables = format!("x = {}{}", "{a=".repeat(17), "}".repeat(17));
    assert!(too_deep(&tables).is_some());
    let ok = format!("x = {}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    assert_eq!(too_deep(&ok), None);
    // Brackets in strings and comments do not count.
    let quoted = [
        format!("a = \"{}\"", "[".repeat(40)),
        format!("a = '{}'", "{".repeat(40)),
        format!("a = \"\"\"\n{}\\\"\"\"\n\"\"\"", "[".repeat(40)),
        format!("a = '''{}'''", "[".repeat(40)),
        format!("# {}\na = 1", "[".repeat(40)),
        format!("a = \"\\\"{}\"", "[".repeat(40)),
    ];
    for q in &quoted {
        assert_eq!(too_deep(q), None, "{q}");
    }
    assert!(parse_vm(GOOD, AARCH64).vm.is_some());
}

/// AxVisor's `memory_regions` flags in, the hypervisor's mapping out.
#[test]
fn axvisor_flags_mapping() {
    let m = |read, write, exec, kind| Mapping {
        read,
        write,
        exec,
        kind,
    };
    let cases = [
        // Its stock RAM values: R|W|X and R|W|X|U.
        (0x7, m(true, true, true, MemKind::Ram)),
        (0xf, m(true, true, true, MemKind::Ram)),
        (0x3, m(true, true, false, MemKind::Ram)),
        (0xb, m(true, true, false, MemKind::Ram)),
        (0x1, m(true, false, false, MemKind::Ram)),
        // Device: never executable; no rights named = read+write.
        (0x10, m(true, true, false, MemKind::Device)),
        (0x13, m(true, true, false, MemKind::Device)),
        (0x17, m(true, true, false, MemKind::Device)),
        (0x11, m(true, false, false, MemKind::Device)),
        (0x30, m(true, true, false, MemKind::Device)),
        (0x3b, m(true, true, false, MemKind::Device)),
        // Uncached RAM.
        (0x27, m(true, true, true, MemKind::UncachedRam)),
        (0x2f, m(true, true, true, MemKind::UncachedRam)),
    ];
    for (flags, want) in cases {
        assert_eq!(Mapping::of(flags), want, "flags {flags:#x}");
        assert_eq!(
            MemRegion {
                range: Range::new(0, 0x1000),
                flags,
                map_type: 0
            }
            .is_ram(),
            want.kind != MemKind::Device,
            "flags {flags:#x}"
        );
    }
}

/// A config as AxVisor users write it: 0xf RAM is RAM, 0x10 / 0x30 windows are
/// devices, and the VM is accepted.
#[test]
fn axvisor_flag_values_are_accepted() {
    for (ram, dev) in [(0x7, 0x10), (0xf, 0x30), (0xf, 0x13), (0xb, 0x1b)] {
        let text = GOOD.replace(
            "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
            &format!("memory_regions = [[0x4000_0000, 0x100_0000, {ram:#x}, 0], [0x4100_0000, 0x1000, {dev:#x}, 2]]"),
        );
        let p = parse_vm(&text, AARCH64);
        assert!(
            !p.problems.has_errors(),
            "{ram:#x}/{dev:#x}: {:?}",
            p.problems
        );
        let vm = p.vm.unwrap();
        assert_eq!(vm.ram_size(), 0x100_0000, "{ram:#x}/{dev:#x}");
        assert_eq!(vm.ram().count(), 1);
    }
    // Before, 0xf made the only region device memory: no RAM at all.
    let only_dev = GOOD.replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x13, 0]]",
    );
    expect(
        &errors(&only_dev),
        "kernel.memory_regions",
        "no normal (non-device) memory region",
    );
    let uncached = GOOD.replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0], [0x4100_0000, 0x1000, 0x23, 0]]",
    );
    expect(
        &errors(&uncached),
        "kernel.memory_regions[1][2]",
        "not supported yet: uncached normal memory",
    );
}

const RISCV: &str = r#"
[base]
id = 1
name = "rv"
cpu_num = 1

[kernel]
entry_point = 0x8020_0000
kernel_path = "k.bin"
kernel_load_addr = 0x8020_0000
memory_regions = [[0x8000_0000, 0x100_0000, 0xf, 0]]

[devices]
emu_devices = [
    ["plic", 0x0c00_0000, 0x60_0000, 0, 0x30, []],
    ["uart", 0x1000_0000, 0x100, 10, 0x2, []],
]
"#;

/// riscv64: a console's interrupt is a PLIC source; no console and no PLIC (a guest
/// of the SBI console and timer) is a valid VM.
#[test]
fn riscv_console_needs_the_plic() {
    assert!(parse_vm(RISCV, RISCV64).vm.is_some());
    let no_plic = RISCV.replace("    [\"plic\", 0x0c00_0000, 0x60_0000, 0, 0x30, []],\n", "");
    let p = parse_vm(&no_plic, RISCV64);
    assert!(p.vm.is_none());
    expect(
        &errors_of(&no_plic, RISCV64),
        "devices.emu_devices[0]",
        "needs an emulated PLIC (emu_type 0x30) on riscv64",
    );
    // On aarch64 there is no PLIC to pair with, but interrupt 10 is an SGI there.
    expect(
        &errors_of(&no_plic, AARCH64),
        "devices.emu_devices[0][3]",
        "irq_id 10 is an SGI",
    );
    let no_plic_spi = no_plic.replace("0x100, 10, 0x2", "0x100, 42, 0x2");
    assert!(!parse_vm(&no_plic_spi, AARCH64).problems.has_errors());
    for irq in [0, 96] {
        let bad = RISCV.replace("0x100, 10, 0x2", &format!("0x100, {irq}, 0x2"));
        expect(
            &errors_of(&bad, RISCV64),
            "devices.emu_devices[1][3]",
            "is not a source of the emulated PLIC (1..=95)",
        );
    }
    let bare = RISCV.replace(
        "emu_devices = [\n    [\"plic\", 0x0c00_0000, 0x60_0000, 0, 0x30, []],\n    [\"uart\", 0x1000_0000, 0x100, 10, 0x2, []],\n]",
        "emu_devices = []",
    );
    assert!(bare.contains("emu_devices = []"));
    let p = parse_vm(&bare, RISCV64);
    assert!(p.problems.items.is_empty(), "{:?}", p.problems);
    assert!(p.vm.unwrap().emu_devices.is_empty());
}

fn errors_of(text: &str, arch: ArchLimits) -> Vec<String> {
    let p = parse_vm(text, arch);
    assert!(p.vm.is_none(), "accepted:\n{text}");
    p.problems.errors().map(|e| e.to_string()).collect()
}

/// AxVisor's device-tree passthrough entries: `["/path"]` (or a bare string) next to
/// the five-element form; `excluded_devices` the same way.
#[test]
fn device_tree_paths() {
    let text = GOOD.replace(
        "[devices]",
        "[devices]\npassthrough_devices = [[\"/pl031@9010000\"], \"/soc\", [\"p\", 0x1000, 0x1000, 0x1000, 48]]\nexcluded_devices = [[\"/soc/gpio@1000\"]]",
    );
    let p = parse_vm(&text, AARCH64);
    assert!(p.problems.items.is_empty(), "{:?}", p.problems);
    let vm = p.vm.unwrap();
    let paths: Vec<(&str, String)> = vm
        .dt_passthrough
        .iter()
        .map(|d| (d.path.as_str(), d.key.to_string()))
        .collect();
    assert_eq!(
        paths,
        [
            (
                "/pl031@9010000",
                "devices.passthrough_devices[0]".to_string()
            ),
            ("/soc", "devices.passthrough_devices[1]".to_string())
        ]
    );
    assert_eq!(vm.passthrough.len(), 1);
    assert_eq!(vm.excluded.len(), 1);
    assert_eq!(vm.excluded[0].path, "/soc/gpio@1000");
    // Exclusions without paths to narrow: a warning.
    let text = GOOD.replace("[devices]", "[devices]\nexcluded_devices = [[\"/gic\"]]");
    let p = parse_vm(&text, AARCH64);
    assert!(!p.problems.has_errors());
    let w: Vec<String> = p.problems.items.iter().map(|e| e.to_string()).collect();
    expect(&w, "devices.excluded_devices", "ignored: excluded_devices");
}

const X86: &str = r#"
[base]
id = 1
name = "vm1"
cpu_num = 2
phys_cpu_ids = [0x0, 0x1]

[kernel]
entry_point = 0x10_0020
kernel_path = "guest:testguest"
kernel_load_addr = 0x10_0000
dtb_load_addr = 0x9000
memory_regions = [[0x0, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [
    ["lapic", 0xfee0_0000, 0x1000, 0, 0x1, []],
    ["ioapic", 0xfec0_0000, 0x1000, 0, 0x1, []],
    ["uart", 0x3f8, 0x8, 4, 0x2, []],
]
"#;

/// x86_64: the console is at I/O ports (inside RAM's addresses is fine, outside
/// the port space is not), 0x1 names the local APIC and I/O APIC windows only,
/// the GIC and PLIC parts are refused.
#[test]
fn x86_console_ports_and_apic_windows() {
    let p = parse_vm(X86, X86_64);
    assert!(p.problems.items.is_empty(), "{:?}", p.problems);
    assert_eq!(p.vm.unwrap().emu_devices.len(), 3);
    // The same window on aarch64 overlaps RAM.
    let e = errors_of(X86, AARCH64);
    expect(&e, "devices.emu_devices[2]", "overlaps memory region");
    let high = X86.replace("0x3f8, 0x8, 4, 0x2", "0xfff8, 0x10, 4, 0x2");
    expect(
        &errors_of(&high, X86_64),
        "devices.emu_devices[2][1]",
        "not in the I/O port space",
    );
    let moved = X86.replace("0xfec0_0000, 0x1000, 0, 0x1", "0xfed0_0000, 0x1000, 0, 0x1");
    expect(
        &errors_of(&moved, X86_64),
        "devices.emu_devices[1][1]",
        "none of x86_64's (0xfee00000 + 0x1000, 0xfec00000 + 0x1000)",
    );
    let gic = X86.replace(
        "0xfec0_0000, 0x1000, 0, 0x1",
        "0xfec0_0000, 0x1000, 0, 0x21",
    );
    expect(
        &errors_of(&gic, X86_64),
        "devices.emu_devices[1][4]",
        "is not a device of x86_64",
    );
    let twice = X86.replace(
        "    [\"uart\", 0x3f8, 0x8, 4, 0x2, []],",
        "    [\"uart\", 0x3f8, 0x8, 4, 0x2, []],\n    [\"uart2\", 0x3fc, 0x8, 3, 0x2, []],",
    );
    expect(
        &errors_of(&twice, X86_64),
        "devices.emu_devices[3]",
        "overlaps devices.emu_devices[2]",
    );
}

/// x86_64 kernels are Multiboot kernels: loaded and entered where their header
/// says, bss counted in their footprint.
#[test]
fn x86_kernels_are_checked_by_their_multiboot_header() {
    let header = |load: u32, entry: u32, bss_end: u32| {
        let flags = multiboot::FLAG_AOUT_KLUDGE;
        let sum = 0u32.wrapping_sub(multiboot::MAGIC).wrapping_sub(flags);
        let mut v = Vec::new();
        for w in [multiboot::MAGIC, flags, sum, load, load, 0, bss_end, entry] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.resize(0x100, 0x90);
        v
    };
    let check = |img: &[u8], text: &str| {
        let p = parse_vm(text, X86_64);
        let cfg = p.vm.expect("a VM");
        let mut out = Problems::default();
        let k = Loaded {
            head: img,
            len: img.len() as u64,
        };
        check_images(&cfg, Some(k), None, None, X86_64, &mut out);
        out.errors().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        check(&header(0x10_0000, 0x10_0020, 0), X86),
        Vec::<String>::new()
    );
    let e = check(&header(0x20_0000, 0x20_0020, 0), X86);
    expect(
        &e,
        "kernel.kernel_load_addr",
        "loads it at 0x200000, not at 0x100000",
    );
    expect(
        &e,
        "kernel.entry_point",
        "enters it at 0x200020, not at 0x100020",
    );
    // The bss runs past the end of RAM.
    let e = check(&header(0x10_0000, 0x10_0020, 0x200_0000), X86);
    expect(&e, "kernel.kernel_path", "does not fit in the VM's memory");
    let e = check(&[0u8; 0x100], X86);
    expect(&e, "kernel.kernel_path", "no Multiboot header");
}
