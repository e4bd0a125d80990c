//! Good and bad configs through the whole loader: every bad one must be rejected with
//! the file, the key and the reason.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A scratch directory with a board and VM files.
struct Fixture {
    dir: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Fixture {
    fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("xtask-config-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const BOARD: &str = r#"
board = "testboard"
arch = "aarch64"
target = "aarch64-unknown-none-softfloat"
smp = 4
hv_load_addr = 0x4020_0000
[memory]
ram = [[0x4000_0000, 0x4000_0000]]
[qemu]
machine = "virt,virtualization=on,gic-version=3"
memory = "1G"
"#;

fn vm_text(id: u32, name: &str, cpus: &str) -> String {
    format!(
        r#"
[base]
id = {id}
name = "{name}"
cpu_num = 2
{cpus}
[kernel]
entry_point = 0x4008_0000
kernel_path = "guest:testguest"
kernel_load_addr = 0x4008_0000
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]
[devices]
emu_devices = [
    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["uart", 0x0900_0000, 0x1000, 33, 0x2, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],
]
"#
    )
}

fn guests() -> Vec<String> {
    vec!["testguest".to_string()]
}

fn run(f: &Fixture, board: &str, vms: &[(&str, String)]) -> Result<Plan, ConfigError> {
    let b = f.write("board.toml", board);
    let paths: Vec<PathBuf> = vms.iter().map(|(n, t)| f.write(n, t)).collect();
    let g = guests();
    load(
        &f.dir,
        &b,
        VmList::Override(&paths),
        &Context { guest_crates: &g },
    )
}

fn errors(r: Result<Plan, ConfigError>) -> Vec<String> {
    match r {
        Ok(_) => panic!("config was accepted"),
        Err(ConfigError(rep)) => rep.errors().map(|d| d.to_string()).collect(),
    }
}

/// Asserts some error mentions the file, the key and the reason.
fn expect(errs: &[String], file: &str, key: &str, reason: &str) {
    let wanted = format!("{file}:");
    assert!(
        errs.iter().any(|e| e.contains(&wanted)
            && e.contains(&format!(": {key}: "))
            && e.contains(reason)),
        "no error with file {file}, key {key}, reason {reason:?} in:\n{}",
        errs.join("\n")
    );
}

fn two_vms() -> Vec<(&'static str, String)> {
    vec![
        ("a.toml", vm_text(1, "vm1", "")),
        ("b.toml", vm_text(2, "vm2", "")),
    ]
}

#[test]
fn good_config_places_free_cpus_in_order() {
    let f = Fixture::new();
    let plan = run(&f, BOARD, &two_vms()).unwrap();
    assert_eq!(plan.board.name, "testboard");
    assert_eq!(plan.vms[0].pcpus, vec![0, 1]);
    assert_eq!(plan.vms[1].pcpus, vec![2, 3]);
    assert_eq!(plan.vms[0].dtb_load_gpa, 0x4000_0000);
    assert_eq!(
        plan.vms[0].kernel.source,
        vm::ImageSource::Guest("testguest".into())
    );
    assert!(plan.vms[0].dtb.is_none());
}

#[test]
fn pinned_cpus_by_mask_and_mpidr() {
    let f = Fixture::new();
    let board = BOARD.replace(
        "smp = 4",
        "smp = 4\ncpu_mpidrs = [0x0, 0x100, 0x200, 0x300]",
    );
    let vms = vec![
        (
            "a.toml",
            vm_text(1, "vm1", "phys_cpu_sets = [0b1100, 0b1000]"),
        ),
        ("b.toml", vm_text(2, "vm2", "phys_cpu_ids = [0x100, 0x0]")),
    ];
    let plan = run(&f, &board, &vms).unwrap();
    assert_eq!(plan.vms[0].pcpus, vec![2, 3]);
    assert_eq!(plan.vms[1].pcpus, vec![1, 0]);
}

#[test]
fn unpinned_vm_takes_cpus_left_by_pinned_ones() {
    let f = Fixture::new();
    let vms = vec![
        ("a.toml", vm_text(1, "vm1", "")),
        ("b.toml", vm_text(2, "vm2", "phys_cpu_ids = [0x0, 0x1]")),
    ];
    let plan = run(&f, BOARD, &vms).unwrap();
    assert_eq!(plan.vms[0].pcpus, vec![2, 3]);
    assert_eq!(plan.vms[1].pcpus, vec![0, 1]);
}

#[test]
fn toml_syntax_error_gives_line_and_column() {
    let f = Fixture::new();
    let bad = vm_text(1, "vm1", "").replace("cpu_num = 2", "cpu_num = = 2");
    let errs = errors(run(&f, BOARD, &[("a.toml", bad)]));
    assert!(
        errs.iter()
            .any(|e| e.contains("a.toml:5:") && e.contains("TOML syntax error")),
        "{errs:?}"
    );
}

#[test]
fn unknown_keys_are_rejected_in_every_section() {
    let f = Fixture::new();
    let bad = vm_text(1, "vm1", "colour = 3").replace("[devices]", "[devices]\nwhatever = 1");
    let errs = errors(run(&f, BOARD, &[("a.toml", bad)]));
    expect(&errs, "a.toml", "base.colour", "unknown field `colour`");
    expect(
        &errs,
        "a.toml",
        "devices.whatever",
        "unknown field `whatever`",
    );
}

#[test]
fn unknown_board_key_and_section_key() {
    let f = Fixture::new();
    let board = BOARD
        .replace("smp = 4", "smp = 4\nspeed = 9")
        .replace("gic-version=3\"", "gic-version=3\"\ncolor = 1");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(&errs, "board.toml", "speed", "unknown field `speed`");
    expect(&errs, "board.toml", "qemu.color", "unknown field `color`");
}

#[test]
fn wrong_type_names_the_key() {
    let f = Fixture::new();
    let bad = vm_text(1, "vm1", "").replace("cpu_num = 2", "cpu_num = \"two\"");
    let errs = errors(run(&f, BOARD, &[("a.toml", bad)]));
    expect(&errs, "a.toml", "base.cpu_num", "invalid type");
}

#[test]
fn overlapping_and_unaligned_regions() {
    let f = Fixture::new();
    let bad = vm_text(1, "vm1", "").replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0], [0x4080_0000, 0x100_0000, 0x7, 0], [0x5000_0100, 0x1000, 0x7, 0]]",
    );
    let errs = errors(run(&f, BOARD, &[("a.toml", bad)]));
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[1]",
        "overlaps kernel.memory_regions[0]",
    );
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[2]",
        "not 4 KiB aligned",
    );
}

#[test]
fn region_elements_are_checked_one_by_one() {
    let f = Fixture::new();
    let bad = vm_text(1, "vm1", "").replace(
        "[[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "[[0x4000_0000, \"big\", 0x7, 0], [0x5000_0000, 0x1000, 0x7], [0x6000_0000, 0x1000, 0x40, 5]]",
    );
    let errs = errors(run(&f, BOARD, &[("a.toml", bad)]));
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[0][1]",
        "size must be a non-negative integer, not the string \"big\"",
    );
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[1]",
        "expected [gpa, size, flags, map_type]",
    );
    expect(&errs, "a.toml", "kernel.memory_regions[2][2]", "flags 0x40");
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[2][3]",
        "unknown map_type 5",
    );
}

#[test]
fn identity_region_outside_board_ram() {
    let f = Fixture::new();
    let bad = vm_text(1, "vm1", "").replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0], [0x9000_0000, 0x1000_0000, 0x7, 1]]",
    );
    let errs = errors(run(&f, BOARD, &[("a.toml", bad)]));
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[1]",
        "identity region 0x90000000..0xa0000000 is outside board testboard's RAM",
    );
}

#[test]
fn identity_regions_must_not_be_shared_or_hold_the_hypervisor() {
    let f = Fixture::new();
    let region =
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0], [0x6000_0000, 0x100_0000, 0x7, 1]]";
    let a = vm_text(1, "vm1", "").replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        region,
    );
    let b = vm_text(2, "vm2", "").replace(
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
        "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0], [0x6000_0000, 0x1000, 0x7, 1]]",
    );
    let errs = errors(run(&f, BOARD, &[("a.toml", a), ("b.toml", b)]));
    expect(
        &errs,
        "b.toml",
        "kernel.memory_regions[1]",
        "already given to vm1",
    );

    let c = vm_text(1, "vm1", "").replace("0x100_0000, 0x7, 0]]", "0x100_0000, 0x7, 1]]");
    let errs = errors(run(&f, BOARD, &[("c.toml", c)]));
    expect(
        &errs,
        "c.toml",
        "kernel.memory_regions[0]",
        "contains the hypervisor's load address 0x40200000",
    );
}

#[test]
fn duplicate_ids_and_names() {
    let f = Fixture::new();
    let vms = vec![
        ("a.toml", vm_text(1, "vm1", "")),
        ("b.toml", vm_text(1, "vm1", "")),
    ];
    let errs = errors(run(&f, BOARD, &vms));
    expect(&errs, "b.toml", "base.id", "duplicate VM id 1");
    expect(&errs, "b.toml", "base.name", "duplicate VM name \"vm1\"");
}

#[test]
fn more_vcpus_than_cpus() {
    let f = Fixture::new();
    let vms = vec![
        ("a.toml", vm_text(1, "vm1", "")),
        ("b.toml", vm_text(2, "vm2", "")),
        ("c.toml", vm_text(3, "vm3", "")),
    ];
    let errs = errors(run(&f, BOARD, &vms));
    assert!(
        errs.iter().any(|e| e.contains("board.toml:5:1: smp:")),
        "{errs:?}"
    );
    expect(
        &errs,
        "board.toml",
        "smp",
        "the VMs need 6 vCPUs (vm1: 2, vm2: 2, vm3: 2) but board testboard has 4 CPUs",
    );
}

#[test]
fn physical_cpu_given_twice() {
    let f = Fixture::new();
    let vms = vec![
        ("a.toml", vm_text(1, "vm1", "phys_cpu_ids = [0x0, 0x1]")),
        ("b.toml", vm_text(2, "vm2", "phys_cpu_sets = [0x4, 0x2]")),
    ];
    let errs = errors(run(&f, BOARD, &vms));
    expect(
        &errs,
        "b.toml",
        "base.phys_cpu_sets[1]",
        "physical CPU 1 (MPIDR 0x1) is given to vCPU 1 of vm2 and to vCPU 1 of vm1",
    );
}

#[test]
fn phys_cpu_list_length_and_unknown_mpidr_and_bad_mask() {
    let f = Fixture::new();
    let vms = vec![
        ("a.toml", vm_text(1, "vm1", "phys_cpu_ids = [0x0]")),
        ("b.toml", vm_text(2, "vm2", "")),
    ];
    let errs = errors(run(&f, BOARD, &vms));
    expect(
        &errs,
        "a.toml",
        "base.phys_cpu_ids",
        "has 1 entries but cpu_num = 2",
    );

    let vms = vec![
        ("a.toml", vm_text(1, "vm1", "phys_cpu_ids = [0x0, 0x700]")),
        ("b.toml", vm_text(2, "vm2", "phys_cpu_sets = [0x0, 0x100]")),
    ];
    let errs = errors(run(&f, BOARD, &vms));
    expect(
        &errs,
        "a.toml",
        "base.phys_cpu_ids[1]",
        "no CPU with MPIDR 0x700",
    );
    expect(&errs, "b.toml", "base.phys_cpu_sets[0]", "CPU mask is 0");
    expect(
        &errs,
        "b.toml",
        "base.phys_cpu_sets[1]",
        "names CPU 8 but board testboard has CPUs 0..4",
    );
}

#[test]
fn missing_image_file_and_unknown_guest_crate() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "").replace("guest:testguest", "images/nothing.bin");
    let b = vm_text(2, "vm2", "").replace("guest:testguest", "guest:nosuchguest");
    let errs = errors(run(&f, BOARD, &[("a.toml", a), ("b.toml", b)]));
    expect(
        &errs,
        "a.toml",
        "kernel.kernel_path",
        "image file not found",
    );
    assert!(
        errs.iter().any(|e| e.contains("images/nothing.bin")),
        "{errs:?}"
    );
    expect(
        &errs,
        "b.toml",
        "kernel.kernel_path",
        "no guest crate `nosuchguest` in guests/ (known: testguest)",
    );
}

#[test]
fn load_address_and_entry_outside_memory() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "")
        .replace("entry_point = 0x4008_0000", "entry_point = 0x5000_0000")
        .replace(
            "kernel_load_addr = 0x4008_0000",
            "kernel_load_addr = 0x3000_0000",
        );
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    expect(
        &errs,
        "a.toml",
        "kernel.entry_point",
        "0x50000000 is outside the VM's memory",
    );
    expect(
        &errs,
        "a.toml",
        "kernel.kernel_load_addr",
        "0x30000000 is outside the VM's memory",
    );
}

#[test]
fn image_that_does_not_fit_and_relative_paths() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.dir.join("img")).unwrap();
    std::fs::write(f.dir.join("img/kernel.bin"), vec![0u8; 0x2000]).unwrap();
    std::fs::write(f.dir.join("img/initrd"), vec![0u8; 0x1000]).unwrap();
    let a = vm_text(1, "vm1", "")
        .replace("guest:testguest", "img/kernel.bin")
        .replace("kernel_load_addr = 0x4008_0000", "kernel_load_addr = 0x40ff_f000\nramdisk_path = \"img/initrd\"\nramdisk_load_addr = 0x4008_0000");
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    expect(
        &errs,
        "a.toml",
        "kernel.kernel_path",
        "does not fit in the VM's memory (0x40000000..0x41000000)",
    );

    // Fits once moved down; the ramdisk (relative to the VM file) is found.
    let ok = vm_text(1, "vm1", "")
        .replace("guest:testguest", "img/kernel.bin")
        .replace("kernel_load_addr = 0x4008_0000", "kernel_load_addr = 0x4008_0000\nramdisk_path = \"img/initrd\"\nramdisk_load_addr = 0x4100_0000");
    let errs = errors(run(&f, BOARD, &[("a.toml", ok.clone())]));
    expect(&errs, "a.toml", "kernel.ramdisk_path", "does not fit");
    let ok = ok.replace(
        "ramdisk_load_addr = 0x4100_0000",
        "ramdisk_load_addr = 0x4080_0000",
    );
    let plan = run(&f, BOARD, &[("a.toml", ok)]).unwrap();
    let rd = plan.vms[0].ramdisk.as_ref().unwrap();
    assert_eq!(rd.source, vm::ImageSource::File(f.dir.join("img/initrd")));
}

#[test]
fn overlapping_images() {
    let f = Fixture::new();
    std::fs::write(f.dir.join("k.bin"), vec![0u8; 0x2000]).unwrap();
    std::fs::write(f.dir.join("d.dtb"), vec![0u8; 0x100]).unwrap();
    let a = vm_text(1, "vm1", "")
        .replace("guest:testguest", "k.bin")
        .replace(
            "kernel_load_addr = 0x4008_0000",
            "kernel_load_addr = 0x4008_0000\ndtb_path = \"d.dtb\"\ndtb_load_addr = 0x4008_1000",
        );
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    expect(
        &errs,
        "a.toml",
        "kernel.dtb_path",
        "the DTB at 0x40081000..0x40081100 overlaps the kernel at 0x40080000..0x40082000 (kernel.kernel_path)",
    );
}

#[test]
fn dtb_placement_rules() {
    let f = Fixture::new();
    std::fs::write(f.dir.join("d.dtb"), vec![0u8; 0x100]).unwrap();
    // dtb_load_addr without dtb_path: where the generated DTB goes.
    let a = vm_text(1, "vm1", "").replace(
        "kernel_load_addr = 0x4008_0000",
        "kernel_load_addr = 0x4008_0000\ndtb_load_addr = 0x4010_0000",
    );
    let plan = run(&f, BOARD, &[("a.toml", a)]).unwrap();
    assert_eq!(plan.vms[0].dtb_load_gpa, 0x4010_0000);
    assert!(plan.vms[0].dtb.is_none());
    // With dtb_path the given DTB is bundled and the generated one's place is RAM start.
    let a = vm_text(1, "vm1", "").replace(
        "kernel_load_addr = 0x4008_0000",
        "kernel_load_addr = 0x4008_0000\ndtb_path = \"d.dtb\"\ndtb_load_addr = 0x4010_0000",
    );
    let plan = run(&f, BOARD, &[("a.toml", a)]).unwrap();
    assert_eq!(plan.vms[0].dtb_load_gpa, 0x4000_0000);
    assert_eq!(plan.vms[0].dtb.as_ref().unwrap().load, 0x4010_0000);
}

#[test]
fn unknown_emu_type_and_overlapping_windows() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "")
        .replace("[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]", "[\"uart\", 0x0900_0000, 0x1000, 33, 0x77, []], [\"uart2\", 0x0800_8000, 0x1000, 34, 0x2, []], [\"ram\", 0x4000_1000, 0x1000, 0, 0x0, []]");
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[1][4]",
        "unknown emu_type 0x77",
    );
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[2]",
        "overlaps devices.emu_devices[0] (gicd at 0x8000000..0x8010000)",
    );
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[3]",
        "overlaps memory region kernel.memory_regions[0]",
    );
}

#[test]
fn emu_device_shape_and_irq_range() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "").replace(
        "[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]",
        "[\"uart\", 0x0900_0000, 0x1000, 2000, 0x2, []], [\"x\", 1]",
    );
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[1][3]",
        "irq_id 2000 is above 1019",
    );
    expect(&errs, "a.toml", "devices.emu_devices[2]", "expected [name, base_gpa, length, irq_id, emu_type, [cfg...]], found an array of 2 elements");
}

#[test]
fn passthrough_forms() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "").replace(
        "[devices]",
        "[devices]\npassthrough_devices = [[\"serial\", 0x1000_0000, 0xfeb5_0000, 0x1000, 365], [\"soc/serial\"], [\"odd\", 0x2000_0100, 0x2000_0100, 0x100, 0]]\npassthrough_addresses = [[0x3000_0000, 0x1000]]",
    );
    let errs = errors(run(&f, BOARD, &[("a.toml", a.clone())]));
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[1]",
        "\"soc/serial\" is not a device-tree path",
    );
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[2]",
        "not 4 KiB aligned",
    );
    let ok = a.replace(
        ", [\"soc/serial\"], [\"odd\", 0x2000_0100, 0x2000_0100, 0x100, 0]",
        "",
    );
    let plan = run(&f, BOARD, &[("a.toml", ok)]).unwrap();
    let p = &plan.vms[0].passthrough;
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].gpa, p[0].hpa, p[0].len, p[0].irq),
        (0x1000_0000, 0xfeb5_0000, 0x1000, 365)
    );
    assert_eq!((p[1].gpa, p[1].hpa), (0x3000_0000, 0x3000_0000));
}

#[test]
fn image_location_fs_and_bios_are_not_supported_yet() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "")
        .replace(
            "kernel_load_addr = 0x4008_0000",
            "kernel_load_addr = 0x4008_0000\nimage_location = \"fs\"\nbios_path = \"x\"",
        )
        .replace("[devices]", "[devices]\ninterrupt_mode = \"magic\"");
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    expect(
        &errs,
        "a.toml",
        "kernel.bios_path",
        "not supported yet: bios_path",
    );
    expect(
        &errs,
        "a.toml",
        "devices.interrupt_mode",
        "unknown interrupt_mode \"magic\"",
    );
}

#[test]
fn all_errors_of_all_files_are_reported() {
    let f = Fixture::new();
    let a = vm_text(1, "bad name", "").replace("0x21, []", "0x99, []");
    let b = vm_text(2, "vm2", "").replace("entry_point = 0x4008_0000", "entry_point = 0x1");
    let errs = errors(run(&f, BOARD, &[("a.toml", a), ("b.toml", b)]));
    expect(&errs, "a.toml", "base.name", "must be non-empty");
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[0][4]",
        "unknown emu_type 0x99",
    );
    expect(
        &errs,
        "b.toml",
        "kernel.entry_point",
        "outside the VM's memory",
    );
    assert!(errs.len() >= 3);
}

#[test]
fn errors_carry_line_numbers() {
    let f = Fixture::new();
    let a = vm_text(1, "vm1", "").replace("entry_point = 0x4008_0000", "entry_point = 0x1");
    let errs = errors(run(&f, BOARD, &[("a.toml", a)]));
    // `entry_point` is on line 8 of the generated text.
    assert!(
        errs.iter()
            .any(|e| e.contains("a.toml:8:1: kernel.entry_point")),
        "{errs:?}"
    );
}

#[test]
fn board_arch_target_mismatch_and_unknown_target() {
    let f = Fixture::new();
    let board = BOARD.replace("arch = \"aarch64\"", "arch = \"riscv64\"");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(
        &errs,
        "board.toml",
        "target",
        "is not a target for arch \"riscv64\"",
    );
    let board = BOARD
        .replace("aarch64-unknown-none-softfloat", "mips-unknown-none")
        .replace("arch = \"aarch64\"\n", "");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(
        &errs,
        "board.toml",
        "target",
        "unknown target `mips-unknown-none`",
    );
    let board = BOARD.replace("arch = \"aarch64\"", "arch = \"sparc\"");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(&errs, "board.toml", "arch", "unknown variant `sparc`");
}

#[test]
fn board_memory_and_load_address_checks() {
    let f = Fixture::new();
    let board = BOARD
        .replace("hv_load_addr = 0x4020_0000", "hv_load_addr = 0x9000_0000")
        .replace("memory = \"1G\"", "memory = \"2G\"");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(
        &errs,
        "board.toml",
        "hv_load_addr",
        "0x90000000 is not inside the board's RAM",
    );
    expect(
        &errs,
        "board.toml",
        "qemu.memory",
        "QEMU gets 2 GiB of RAM but [memory] ram describes 1 GiB",
    );

    let board = BOARD.replace("hv_load_addr = 0x4020_0000", "hv_load_addr = 0x4020_1000");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(
        &errs,
        "board.toml",
        "hv_load_addr",
        "is not aligned to 2 MiB",
    );

    let board = BOARD.replace(
        "ram = [[0x4000_0000, 0x4000_0000]]",
        "ram = [[0x4000_0000, 0x4000_0000], [0x6000_0000, 0x1000]]\nreserved = [[0x1000, 0x1000]]",
    );
    let errs = errors(run(&f, &board, &two_vms()));
    expect(
        &errs,
        "board.toml",
        "memory.ram[1]",
        "overlaps memory.ram[0]",
    );
    expect(
        &errs,
        "board.toml",
        "memory.reserved[0]",
        "not inside the board's RAM",
    );
}

#[test]
fn board_missing_keys() {
    let f = Fixture::new();
    let board = "board = \"x\"\ntarget = \"aarch64-unknown-none-softfloat\"\n";
    let errs = errors(run(&f, board, &two_vms()));
    expect(&errs, "board.toml", "smp", "missing key `smp`");
    expect(&errs, "board.toml", "memory", "missing section [memory]");
    expect(
        &errs,
        "board.toml",
        "hv_load_addr",
        "missing key `hv_load_addr`",
    );
}

#[test]
fn vms_needing_more_ram_than_the_board_has() {
    let f = Fixture::new();
    let big = |id, name: &str| {
        vm_text(id, name, "").replace(
            "[[0x4000_0000, 0x100_0000, 0x7, 0]]",
            "[[0x4000_0000, 0x2800_0000, 0x7, 0]]",
        )
    };
    let errs = errors(run(
        &f,
        BOARD,
        &[("a.toml", big(1, "vm1")), ("b.toml", big(2, "vm2"))],
    ));
    expect(
        &errs,
        "b.toml",
        "kernel.memory_regions",
        "the VMs need 1280 MiB of RAM together but board testboard has 1 GiB",
    );
}

#[test]
fn warnings_do_not_fail() {
    let f = Fixture::new();
    let a =
        vm_text(1, "vm1", "").replace("[devices]", "[devices]\nexcluded_devices = [[\"/gic\"]]");
    let plan = run(&f, BOARD, &[("a.toml", a)]).unwrap();
    let w: Vec<String> = plan.warnings.warnings().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("devices.excluded_devices") && w.contains("ignored")),
        "{w:?}"
    );
}

#[test]
fn board_vm_configs_must_exist() {
    let f = Fixture::new();
    let board = BOARD.to_string().replace(
        "hv_load_addr",
        "vm_configs = [\"configs/vms/missing.toml\"]\nhv_load_addr",
    );
    let b = f.write("board.toml", &board);
    let g = guests();
    let errs = errors(load(
        &f.dir,
        &b,
        VmList::FromBoard,
        &Context { guest_crates: &g },
    ));
    expect(
        &errs,
        "board.toml",
        "vm_configs[0]",
        "VM config not found: configs/vms/missing.toml",
    );
}

/// The repository root (xtask's parent).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn every_board_in_the_repository_is_valid() {
    let g = guests();
    let dir = repo().join("configs/board");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let plan = load(
            repo(),
            &path,
            VmList::FromBoard,
            &Context { guest_crates: &g },
        )
        .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        assert_eq!(
            Some(plan.board.name.as_str()),
            path.file_stem().and_then(|s| s.to_str())
        );
        assert_eq!(plan.vms.len(), 2, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 5, "expected the five boards, found {seen}");
}

#[test]
fn default_board_matches_the_contract() {
    let g = guests();
    let plan = load(
        repo(),
        &repo().join("configs/board/qemu-aarch64.toml"),
        VmList::FromBoard,
        &Context { guest_crates: &g },
    )
    .unwrap();
    assert_eq!(plan.board.smp, 4);
    assert_eq!(plan.board.hv_load_addr, 0x4020_0000);
    assert_eq!(
        plan.board.features,
        ["semihosting-exit", "s2-page-mappings"]
    );
    let names: Vec<&str> = plan.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["vm1", "vm2"]);
    assert_eq!(plan.vms[0].pcpus, [0, 1]);
    assert_eq!(plan.vms[1].pcpus, [2, 3]);
    for vm in &plan.vms {
        assert_eq!(vm.entry_point, 0x4008_0000);
        assert_eq!(
            vm.memory[0].range,
            range::Range::new(0x4000_0000, 0x100_0000)
        );
        assert_eq!(vm.emu_devices.len(), 3);
    }
}

#[test]
fn fault_vm_config_is_valid_with_vm1() {
    let g = guests();
    let vms = [
        repo().join("configs/vms/testguest-aarch64-qemu-smp2-a.toml"),
        repo().join("configs/vms/testguest-aarch64-qemu-smp2-fault.toml"),
    ];
    let plan = load(
        repo(),
        &repo().join("configs/board/qemu-aarch64.toml"),
        VmList::Override(&vms),
        &Context { guest_crates: &g },
    )
    .unwrap();
    assert_eq!(plan.vms[1].cmdline, "fault");
    assert_eq!(plan.vms[1].name, "fault-vm");
}

#[test]
fn board_pairs_must_have_two_elements() {
    let f = Fixture::new();
    let board = BOARD.replace(
        "ram = [[0x4000_0000, 0x4000_0000]]",
        "ram = [[0x4000_0000, 0x4000_0000, 7]]",
    );
    let errs = errors(run(&f, &board, &two_vms()));
    assert!(
        errs.iter()
            .any(|e| e.contains("board.toml:") && e.contains("memory.ram")),
        "{errs:?}"
    );
}

#[test]
fn passthrough_must_not_expose_ram_or_be_shared() {
    let f = Fixture::new();
    let dev = |gpa: &str, hpa: &str| {
        format!("[devices]\npassthrough_devices = [[\"dev\", {gpa}, {hpa}, 0x1000, 0]]")
    };
    let a = vm_text(1, "vm1", "").replace("[devices]", &dev("0x1000_0000", "0x4100_0000"));
    let b = vm_text(2, "vm2", "").replace("[devices]", &dev("0x1000_0000", "0xfe00_0000"));
    let c = vm_text(3, "vm3", "").replace("[devices]", &dev("0x2000_0000", "0xfe00_0000"));
    let board = BOARD.replace("smp = 4", "smp = 6");
    let errs = errors(run(
        &f,
        &board,
        &[("a.toml", a), ("b.toml", b), ("c.toml", c)],
    ));
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[0]",
        "overlaps host RAM 0x40000000..0x80000000",
    );
    expect(
        &errs,
        "c.toml",
        "devices.passthrough_devices[0]",
        "already given to vm2",
    );
    assert!(
        !errs.iter().any(|e| e.starts_with("error: b.toml")),
        "{errs:?}"
    );
}

/// A VM config with `emu` as its GIC emu_devices (the UART added) and `cpus` vCPUs.
fn gic_vm(id: u32, name: &str, cpus: u32, emu: &str) -> String {
    vm_text(id, name, "")
        .replace("cpu_num = 2", &format!("cpu_num = {cpus}"))
        .replace("    [\"gicr\", 0x080a_0000, 0x4_0000, 0, 0x20, []],\n", "")
        .replace(r#"    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],"#, emu)
}

const GICV2_EMU: &str = r#"    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["gicc", 0x0801_0000, 0x2000, 0, 0x1, []],"#;
const GICV3_EMU: &str = r#"    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],"#;

fn board_with_gic(version: u32) -> String {
    format!("{BOARD}[devices]\ngic_version = {version}\ngicv = [0x0804_0000, 0x1_0000]\n")
}

#[test]
fn gic_versions_must_match_the_board() {
    let f = Fixture::new();
    let v2 = vec![("a.toml", gic_vm(1, "vm1", 2, GICV2_EMU))];
    let v3 = vec![("b.toml", gic_vm(2, "vm2", 2, GICV3_EMU))];
    let errs = errors(run(&f, &board_with_gic(3), &v2));
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[1][4]",
        "this VM has a GICv2 (CPU interface, emu_type 0x1) but board testboard has a GICv3",
    );
    let errs = errors(run(&f, &board_with_gic(2), &v3));
    expect(
        &errs,
        "b.toml",
        "devices.emu_devices[1][4]",
        "this VM has a GICv3 (emu_type 0x21/0x20) but board testboard has a GICv2",
    );
    assert!(run(&f, &board_with_gic(2), &v2).is_ok());
    assert!(run(&f, &board_with_gic(3), &v3).is_ok());
    // A QEMU board without [devices]: its machine option says.
    let errs = errors(run(&f, BOARD, &v2));
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[1][4]",
        "but board testboard has a GICv3 ([qemu] machine gic-version=3)",
    );
    let default_v2 = BOARD.replace(",gic-version=3", "");
    let errs = errors(run(&f, &default_v2, &v3));
    expect(
        &errs,
        "b.toml",
        "devices.emu_devices[1][4]",
        "has a GICv2 (QEMU virt's default GIC, version 2",
    );
    // A board that says nothing: a warning that the check was not made (the
    // hypervisor checks at boot).
    let unknown = BOARD.replace(
        "machine = \"virt,virtualization=on,gic-version=3\"",
        "machine = \"sbsa-ref\"",
    );
    let plan = run(&f, &unknown, &v2).expect("accepted with a warning");
    let w = plan.warnings.to_string();
    assert!(
        w.contains("a.toml")
            && w.contains("not checked: whether this VM's GIC version is the host's"),
        "{w}"
    );
    let errs = errors(run(&f, &board_with_gic(4), &v3));
    expect(
        &errs,
        "board.toml",
        "devices.gic_version",
        "unknown gic_version 4",
    );
}

#[test]
fn gicv2_vm_problems() {
    let f = Fixture::new();
    let mixed = format!("{GICV2_EMU}\n    [\"gicr\", 0x080a_0000, 0x4_0000, 0, 0x20, []],");
    let no_dist = r#"    ["gicc", 0x0801_0000, 0x2000, 0, 0x1, []],"#;
    let small = GICV2_EMU.replace("0x2000", "0x1000");
    let big = GICV2_EMU.replace("0x2000", "0x2_0000");
    let board = board_with_gic(2).replace("smp = 4", "smp = 9");
    let vms = vec![
        ("a.toml", gic_vm(1, "vm1", 1, &mixed)),
        ("b.toml", gic_vm(2, "vm2", 1, no_dist)),
        ("c.toml", gic_vm(3, "vm3", 1, &small)),
        ("d.toml", gic_vm(4, "vm4", 1, &big)),
    ];
    let errs = errors(run(&f, &board, &vms));
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[1][4]",
        "choose one GIC version",
    );
    expect(
        &errs,
        "b.toml",
        "devices.emu_devices[0][4]",
        "needs a GIC distributor (emu_type 0x21)",
    );
    expect(
        &errs,
        "c.toml",
        "devices.emu_devices[1][2]",
        "must be 4 KiB aligned and at least 8 KiB",
    );
    expect(
        &errs,
        "d.toml",
        "devices.emu_devices[1][2]",
        "is larger than board testboard's GICV frame",
    );
    let nine = vec![("e.toml", gic_vm(5, "vm5", 9, GICV2_EMU))];
    let errs = errors(run(&f, &board, &nine));
    expect(
        &errs,
        "e.toml",
        "base.cpu_num",
        "has at most 8 vCPUs, not 9",
    );
}

#[test]
fn gicv3_redistributors_for_every_vcpu() {
    let f = Fixture::new();
    let board = BOARD.replace("smp = 4", "smp = 3");
    let vms = vec![("a.toml", gic_vm(1, "vm1", 3, GICV3_EMU))];
    let errs = errors(run(&f, &board, &vms));
    expect(
        &errs,
        "a.toml",
        "devices.emu_devices[1][2]",
        "holds 2 redistributors (0x20000 each) but the VM has 3 vCPUs: it needs 0x60000 bytes",
    );
    let vms = vec![("a.toml", gic_vm(1, "vm1", 2, GICV3_EMU))];
    assert!(run(&f, &board, &vms).is_ok());
}

#[test]
fn repository_gicv2_vms_only_on_the_gicv2_board() {
    let g = guests();
    let vms = [
        repo().join("configs/vms/testguest-aarch64-qemu-gicv2-smp2-a.toml"),
        repo().join("configs/vms/testguest-aarch64-qemu-gicv2-smp2-b.toml"),
    ];
    let ctx = Context { guest_crates: &g };
    let on = |board: &str| load(repo(), &repo().join(board), VmList::Override(&vms), &ctx);
    let plan = on("configs/board/qemu-aarch64-gicv2.toml").unwrap();
    assert_eq!(plan.board.gic.as_ref().map(|g| g.0), Some(2));
    let errs = errors(on("configs/board/qemu-aarch64.toml"));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().all(|e| e.contains("needs a GICv2 board")),
        "{errs:?}"
    );
}

/// AxVisor's stock aarch64 QEMU configs map 1 GiB of RAM identically at 0x8000_0000
/// with flags 0xf: that fits the qemu-aarch64 board (4 GiB at 0x4000_0000), and a
/// region past its RAM still gets a clear message.
#[test]
fn stock_identity_gib_fits_the_qemu_board() {
    let f = Fixture::new();
    let board = std::fs::read_to_string(repo().join("configs/board/qemu-aarch64.toml")).unwrap();
    let stock = |base: &str| {
        vm_text(1, "vm1", "")
            .replace(
                "memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]",
                &format!("memory_regions = [[{base}, 0x4000_0000, 0xf, 1]]"),
            )
            .replace("0x4008_0000", &base.replace("000_0000", "008_0000"))
    };
    let g = guests();
    let b = f.write("board.toml", &board);
    let vm = f.write("a.toml", &stock("0x8000_0000"));
    let plan = load(
        repo(),
        &b,
        VmList::Override(std::slice::from_ref(&vm)),
        &Context { guest_crates: &g },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.vms[0].ram_size(), 0x4000_0000);
    assert_eq!(plan.vms[0].memory[0].map_type, 1);
    // 0x1_2000_0000 + 1 GiB ends past 0x1_4000_0000, the end of the board's RAM.
    let vm = f.write("a.toml", &stock("0x1_2000_0000"));
    let errs = errors(load(
        repo(),
        &b,
        VmList::Override(&[vm]),
        &Context { guest_crates: &g },
    ));
    expect(
        &errs,
        "a.toml",
        "kernel.memory_regions[0]",
        "identity region 0x120000000..0x160000000 is outside board qemu-aarch64's RAM (0x40000000..0x140000000)",
    );
}

/// Device-tree passthrough checked against the board's device tree (`host_dtb`, here
/// the QEMU virt and RK3588 fixtures): windows resolved as the hypervisor resolves
/// them, then checked like the five-element form.
#[test]
fn device_tree_passthrough_against_the_board_dtb() {
    let f = Fixture::new();
    let board = BOARD.replace(
        "smp = 4",
        &format!(
            "smp = 4\nhost_dtb = {:?}",
            repo().join("kernel/tests/dtbs/qemu-virt-gicv3.dtb")
        ),
    );
    let pass = |paths: &str| {
        vm_text(1, "vm1", "").replace(
            "[devices]",
            &format!("[devices]\npassthrough_devices = [{paths}]"),
        )
    };
    let plan = run(
        &f,
        &board,
        &[("a.toml", pass("[\"/pl031@9010000\"], [\"/pl061\"]"))],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let w: Vec<(&str, u64, u64, u32)> = plan.vms[0]
        .dt_windows
        .iter()
        .map(|d| (d.name.as_str(), d.hpa, d.len, d.irq))
        .collect();
    assert_eq!(
        w,
        [
            ("/pl031@9010000", 0x0901_0000, 0x1000, 34),
            ("/pl061@9030000", 0x0903_0000, 0x1000, 39)
        ]
    );
    // The console, a missing node, a window over the VM's emulated UART.
    let errs = errors(run(
        &f,
        &board,
        &[(
            "a.toml",
            pass("[\"/pl011@9000000\"], [\"/rtc@1\"], [\"/\"]"),
        )],
    ));
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[0]",
        "/pl011@9000000 is the hypervisor's console",
    );
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[1]",
        "no node /rtc@1 in the host device tree",
    );
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[2]",
        // The whole tree holds the console and the GIC: the first found is named.
        "list it in excluded_devices",
    );
    let whole = pass("[\"/\"]").replace(
        "passthrough_devices = [[\"/\"]]",
        "passthrough_devices = [[\"/\"]]\nexcluded_devices = [[\"/intc\"], [\"/pl011@9000000\"], [\"/pcie@10000000\"], [\"/flash@0\"]]",
    );
    // Everything else (RTC, GPIO, fw-cfg, virtio-mmio, the platform bus): nothing
    // of it collides with vm1's RAM and emulated GIC/UART windows.
    let plan = run(&f, &board, &[("a.toml", whole)]).unwrap_or_else(|e| panic!("{e}"));
    let nodes: Vec<&str> = plan.vms[0]
        .dt_windows
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert!(
        nodes.contains(&"/pl031@9010000") && nodes.contains(&"/pl061@9030000"),
        "{nodes:?}"
    );
    assert!(
        nodes
            .iter()
            .all(|n| !n.starts_with("/intc") && !n.starts_with("/pl011")),
        "{nodes:?}"
    );
    // Two VMs taking the same node: the second is refused.
    let b = vm_text(2, "vm2", "")
        .replace("0x0900_0000", "0x0a00_0000")
        .replace(
            "[devices]",
            "[devices]\npassthrough_devices = [[\"/pl031@9010000\"]]",
        );
    let board6 = board.replace("smp = 4", "smp = 6");
    let errs = errors(run(
        &f,
        &board6,
        &[("a.toml", pass("[\"/pl031@9010000\"]")), ("b.toml", b)],
    ));
    expect(
        &errs,
        "b.toml",
        "devices.passthrough_devices[0]",
        "already given to vm1",
    );
}

/// The RK3588 board's own tree (Orange Pi 5 Plus): uart9 resolves, the debug UART
/// (the console) and a disabled UART are refused.
#[test]
fn device_tree_passthrough_on_rk3588() {
    let f = Fixture::new();
    let board = std::fs::read_to_string(repo().join("configs/board/orangepi-5-plus.toml"))
        .unwrap()
        .replace(
            "\n[memory]",
            &format!(
                "\nhost_dtb = {:?}\n[memory]",
                repo().join("kernel/tests/dtbs/rk3588-orangepi-5-plus.dtb")
            ),
        );
    assert!(board.contains("host_dtb"));
    let vm = |paths: &str| {
        vm_text(1, "vm1", "")
            .replace("0x4000_0000, 0x100_0000", "0x1000_0000, 0x100_0000")
            .replace("0x4008_0000", "0x1008_0000")
            .replace(
                "[devices]",
                &format!("[devices]\npassthrough_devices = [{paths}]"),
            )
    };
    let plan = run(&f, &board, &[("a.toml", vm("[\"/serial@febc0000\"]"))])
        .unwrap_or_else(|e| panic!("{e}"));
    let d = &plan.vms[0].dt_windows[0];
    assert_eq!((d.hpa, d.len, d.irq), (0xfebc_0000, 0x1000, 372));
    let errs = errors(run(
        &f,
        &board,
        &[(
            "a.toml",
            vm("[\"/serial@feb50000\"], [\"/serial@feb60000\"]"),
        )],
    ));
    expect(&errs, "a.toml", "devices.passthrough_devices[0]", "console");
    expect(
        &errs,
        "a.toml",
        "devices.passthrough_devices[1]",
        "is disabled",
    );
}

/// The isolation rules of issue 14 as `cargo xtask check` applies them: the same
/// cases and messages as the hypervisor's for card configs
/// (`vmm::fs::tests::isolation_rules_as_xtask_checks_them`), all from `vmconfig`.
#[test]
fn isolation_rules_as_on_the_card() {
    const VM3: &str = r#"
[base]
id = 3
name = "vm3"
cpu_num = 2

[kernel]
entry_point = 0x4008_0000
kernel_path = "testguest.bin"
kernel_load_addr = 0x4008_0000
cmdline = ""
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [["uart", 0x0900_0000, 0x1000, 33, 0x2, []]]
"#;
    const UART: &str = "[[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]]";
    let board = format!(
        "{BOARD}[devices]\nuart = [0x0900_0000, 0x1000]\ngic_version = 3\ngicd = [0x0800_0000, 0x1_0000]\ngicr = [0x080a_0000, 0xf6_0000]\n"
    );
    let with_devices = |devs: &str| VM3.replace(UART, devs);
    let cases: [(String, &str); 9] = [
        (
            with_devices("[[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []], [\"plic\", 0x0c00_0000, 0x60_0000, 0, 0x30, []]]"),
            "devices.emu_devices[1][4]: emu_type 0x30 (RISC-V PLIC (partial passthrough)) is a riscv64 device: aarch64 VMs have a GIC",
        ),
        (
            with_devices("[[\"uart\", 0x0900_0000, 0x1000, 5, 0x2, []]]"),
            "devices.emu_devices[0][3]: irq_id 5 is an SGI (INTID 0-15",
        ),
        (
            with_devices("[[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []], [\"uart1\", 0x0901_0000, 0x1000, 33, 0x2, []]]"),
            "devices.emu_devices[1][3]: irq_id 33 of \"uart1\" is also the interrupt of devices.emu_devices[0] (\"uart\")",
        ),
        (
            with_devices("[[\"gicr\", 0x080a_0000, 0x4_0000, 0, 0x20, []], [\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]]"),
            "devices.emu_devices[0][4]: a GICv3 redistributor region (emu_type 0x20) needs a GIC distributor (emu_type 0x21)",
        ),
        (
            VM3.replace("[devices]", "[devices]\npassthrough_devices = [[\"gicd\", 0x0800_0000, 0x0800_0000, 0x1_0000, 0]]"),
            "devices.passthrough_devices[0]: passthrough device gicd: host 0x8000000..0x8010000 overlaps the hypervisor's GIC distributor (GICD) at 0x8000000..0x8010000",
        ),
        (
            VM3.replace("[devices]", "[devices]\npassthrough_devices = [[\"con\", 0x0a00_0000, 0x0900_0000, 0x1000, 0]]"),
            "devices.passthrough_devices[0]: passthrough device con: host 0x9000000..0x9001000 overlaps the hypervisor's console UART at 0x9000000..0x9001000",
        ),
        (
            VM3.replace("cmdline = \"\"", &format!("cmdline = \"{}\"", "x".repeat(1 << 20))),
            "kernel.dtb_load_addr: the generated DTB (estimated from cmdline, vCPUs and devices) at 0x40000000..0x40102000 overlaps the kernel at 0x40080000..0x40082000",
        ),
        (
            VM3.replace("cmdline = \"\"", "cmdline = \"\"\nramdisk_path = \"rd.img\"\nramdisk_load_addr = 0x4008_1000"),
            "kernel.ramdisk_path: the ramdisk at 0x40081000..0x40082000 overlaps the kernel at 0x40080000..0x40082000 (kernel.kernel_path)",
        ),
        (
            VM3.replace("testguest.bin", "riscv.bin"),
            "kernel.kernel_path: the image is a RISC-V Linux Image (magic \"RSC\\x05\" at 0x38), but this VM runs on aarch64",
        ),
    ];
    let f = Fixture::new();
    f.write("testguest.bin", &"Z".repeat(0x2000));
    let mut riscv = vec![0u8; 0x2000];
    riscv[56..60].copy_from_slice(b"RSC\x05");
    std::fs::write(f.dir.join("riscv.bin"), riscv).unwrap();
    std::fs::write(f.dir.join("rd.img"), vec![0u8; 0x1000]).unwrap();
    for (text, wanted) in cases {
        let errs = errors(run(&f, &board, &[("vm3.toml", text)]));
        assert!(
            errs.iter()
                .any(|e| e.contains("vm3.toml:") && e.contains(&format!(": {wanted}"))),
            "wanted {wanted:?} in:\n{}",
            errs.join("\n")
        );
        // The only problem (as on the card, where it is the one line).
        assert_eq!(errs.len(), 1, "{errs:#?}");
    }
}

/// Boards without `[devices]` do not skip the checks of the hypervisor's own
/// devices: a QEMU virt board has the machine's known layout.
#[test]
fn qemu_boards_without_devices_keep_their_gic_and_console() {
    let f = Fixture::new();
    for (hpa, what) in [
        (0x0800_0000u64, "GIC distributor (GICD)"),
        (0x0900_0000, "console UART"),
    ] {
        let vm = vm_text(1, "vm1", "").replace(
            "[devices]",
            &format!(
                "[devices]\npassthrough_devices = [[\"x\", 0x0a00_0000, {hpa:#x}, 0x1000, 0]]"
            ),
        );
        let errs = errors(run(&f, BOARD, &[("a.toml", vm)]));
        expect(
            &errs,
            "a.toml",
            "devices.passthrough_devices[0]",
            &format!("overlaps the hypervisor's {what} at {:#x}", hpa),
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("(as QEMU virt's memory map says)")),
            "{errs:?}"
        );
    }
}

/// Files a config names must be files a user would mean: `/etc/shadow` as a
/// bootloader or `/etc/passwd` as a kernel is refused (outside the repository and
/// the config's directory, and not named as one); a file in the config's directory
/// or one named by its kind is taken.
#[test]
fn host_files_must_be_what_the_config_means() {
    let f = Fixture::new();
    let board =
        format!("{BOARD}[image]\nbootloader = {{ path = \"/etc/passwd\", offset = 0x8000 }}\n");
    let errs = errors(run(&f, &board, &two_vms()));
    expect(
        &errs,
        "board.toml",
        "image.bootloader.path",
        "\"/etc/passwd\" is outside the repository, the config's directory and the guest image store",
    );
    let vm = vm_text(1, "vm1", "").replace("guest:testguest", "/etc/passwd");
    let errs = errors(run(&f, BOARD, &[("a.toml", vm)]));
    expect(
        &errs,
        "a.toml",
        "kernel.kernel_path",
        "a kernel image from elsewhere must be named as one",
    );
    let vm = vm_text(1, "vm1", "").replace("guest:testguest", "/etc");
    let errs = errors(run(&f, BOARD, &[("a.toml", vm)]));
    expect(
        &errs,
        "a.toml",
        "kernel.kernel_path",
        "\"/etc\" is not a regular file",
    );
    // In the config's directory: taken whatever its name.
    f.write("kernel", "x");
    let vm = vm_text(1, "vm1", "").replace("guest:testguest", "kernel");
    assert!(run(&f, BOARD, &[("a.toml", vm)]).is_ok());
}
