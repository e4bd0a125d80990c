//! fs VMs from boot modules held in host memory: the happy path and every way a
//! config or file can stop its VM (and only its VM).

use super::*;
use crate::firmware::modules::{BootModule, ModuleKind};
use alloc::boxed::Box;
use alloc::vec;

pub(super) const VM3: &str = r#"
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
cmdline = ""
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [["uart", 0x0900_0000, 0x1000, 33, 0x2, []]]
"#;

pub(super) const RAM: [Range; 1] = [Range {
    base: 0x4000_0000,
    size: 0x4000_0000,
}];

/// Files in fake RAM: each gets a slot of `slot` bytes, loaded unless `None`.
struct Card {
    files: Vec<(&'static str, ModuleKind, Option<&'static [u8]>, u64)>,
}

impl Card {
    fn new() -> Self {
        Self { files: Vec::new() }
    }

    fn config(mut self, file: &'static str, text: &str) -> Self {
        let data: &'static [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
        let slot = (data.len() as u64 + 0x1_0000) & !0xffff;
        self.files
            .push((file, ModuleKind::VmConfig, Some(data), slot));
        self
    }

    fn image(mut self, file: &'static str, data: Option<&'static [u8]>) -> Self {
        self.files
            .push((file, ModuleKind::VmImage, data, 0x100_0000));
        self
    }

    /// Modules at made-up addresses (0x4800_0000 on, one slot after the other) and
    /// the bytes each address holds.
    fn modules(&self) -> (Modules<'static>, Vec<(u64, &'static [u8])>) {
        let mut m = Modules::new();
        let mut mem = Vec::new();
        let mut addr = 0x4800_0000;
        for &(file, kind, data, slot) in &self.files {
            m.push_for_tests(BootModule {
                kind,
                file,
                slot: Some(Range {
                    base: addr,
                    size: slot,
                }),
                loaded: data.map(|d| Range {
                    base: addr,
                    size: d.len() as u64,
                }),
            });
            if let Some(d) = data {
                mem.push((addr, d));
            }
            addr += slot;
        }
        (m, mem)
    }

    fn run(&self, builtin: &[VmSpec]) -> FsVms {
        let (modules, mem) = self.modules();
        let read = move |r: Range| {
            mem.iter()
                .find(|(a, _)| *a == r.base)
                .and_then(|(_, d)| d.get(..r.size as usize))
        };
        let protected = [Range {
            base: 0x4800_0000,
            size: 0x800_0000,
        }];
        with_test_host(&protected, &read, |host| fs_vms(&modules, host, builtin))
    }
}

/// Runs `f` on a QEMU virt aarch64 machine with four CPUs and [`RAM`].
pub(super) fn with_test_host<T>(
    protected: &[Range],
    read: &dyn Fn(Range) -> Option<&'static [u8]>,
    f: impl FnOnce(&Host<'_>) -> T,
) -> T {
    let kept = vmconfig::host::qemu_virt_aarch64();
    f(&Host {
        kept: &kept,
        cpus: &[0, 1, 2, 3],
        ram: &RAM,
        reserved: &[],
        protected,
        read,
    })
}

pub(super) const GUEST: &[u8] = &[0x5a; 0x2000];

/// VM 1 (vm1) built into the hypervisor on CPUs 0 and 1.
pub(super) fn builtin() -> Vec<VmSpec> {
    let text = VM3
        .replace("id = 3", "id = 1")
        .replace("\"vm3\"", "\"vm1\"")
        .replace("[0x2, 0x3]", "[0x0, 0x1]");
    let cfg = vmconfig::parse_vm(&text, ARCH).vm.unwrap();
    let images = Images {
        kernel: GUEST,
        dtb: None,
        ramdisk: None,
    };
    vec![owned_spec(cfg, images, vec![0, 1])]
}

fn one_line(out: &FsVms) -> &str {
    assert_eq!(out.lines.len(), 1, "{:#?}", out.lines);
    &out.lines[0]
}

#[test]
fn an_fs_vm_becomes_a_spec_like_the_builtin_ones() {
    let card = Card::new()
        .config("vms/vm3.toml", VM3)
        .image("vms/vm3/testguest.bin", Some(GUEST));
    let out = card.run(&builtin());
    assert!(out.lines.is_empty(), "{:#?}", out.lines);
    assert_eq!((out.vms.len(), out.refused), (1, 0));
    let s = &out.vms[0].spec;
    assert_eq!((s.id, &*s.name, s.cpu_num), (3, "vm3", 2));
    assert_eq!(&*s.pcpu_of_vcpu, &[2, 3]);
    assert_eq!(s.kernel.load_gpa, 0x4008_0000);
    assert_eq!(s.kernel.data, GUEST);
    assert_eq!(s.dtb_load_gpa, Some(0x4000_0000));
    assert_eq!(s.memory_regions[0].map_type, crate::spec::MapType::Allocate);
    assert_eq!(s.emu_devices[0].name, "uart");
    assert_eq!(s.interrupt_mode, crate::spec::InterruptMode::Emulated);
    assert_eq!(out.vms[0].file, "vms/vm3.toml: ");
}

#[test]
fn a_bad_config_stops_only_its_vm() {
    let bad = VM3
        .replace("id = 3", "id = 4")
        .replace("\"vm3\"", "\"vm4\"")
        .replace("cpu_num = 2", "cpu_num = 2\nbogus = 1");
    let card = Card::new()
        .config("vms/vm4.toml", &bad)
        .config("vms/vm3.toml", VM3)
        .image("vms/vm3/testguest.bin", Some(GUEST));
    let out = card.run(&builtin());
    assert_eq!((out.vms.len(), out.refused), (1, 1));
    let line = one_line(&out);
    assert!(
        line.starts_with("VM 4 (vm4) not started: vms/vm4.toml: base.bogus: unknown field `bogus`"),
        "{line}"
    );
    assert!(line.ends_with("(line 6)"), "{line}");
}

#[test]
fn a_config_nested_too_deep_is_refused_before_it_is_parsed() {
    // 80 nested arrays overflowed the boot stack while being parsed.
    let deep = VM3.replace(
        "cpu_num = 2",
        &alloc::format!("cpu_num = 2\nx = {}{}", "[".repeat(80), "]".repeat(80)),
    );
    let out = Card::new()
        .config("vms/vm3.toml", &deep)
        .image("vms/vm3/testguest.bin", Some(GUEST))
        .run(&builtin());
    assert_eq!((out.vms.len(), out.refused), (0, 1));
    let line = one_line(&out);
    assert!(
        line.starts_with("vms/vm3.toml: arrays or inline tables nested more than 16 deep"),
        "{line}"
    );
}

#[test]
fn config_errors_are_all_listed_and_unreadable_ids_leave_the_file_alone() {
    let bad = VM3
        .replace(
            "0x100_0000, 0x7, 0]]",
            "0x100_0000, 0x7, 0], [0x4080_0000, 0x1000, 0x7, 0]]",
        )
        .replace("0x2, []]", "0x99, []]");
    let out = Card::new().config("vms/vm3.toml", &bad).run(&[]);
    assert_eq!(out.lines.len(), 2, "{:#?}", out.lines);
    assert!(out.lines[0].starts_with(
        "VM 3 (vm3) not started: vms/vm3.toml: kernel.memory_regions[1]: region 0x40800000..0x40801000 overlaps"
    ));
    assert!(out.lines[1]
        .starts_with("    and vms/vm3.toml: devices.emu_devices[0][4]: unknown emu_type 0x99"));
    let out = Card::new().config("vms/x.toml", "[base\n").run(&[]);
    assert!(
        one_line(&out).starts_with("vms/x.toml: TOML syntax error"),
        "{:?}",
        out.lines
    );
}

#[test]
fn missing_and_truncated_files() {
    let out = Card::new()
        .config("vms/vm3.toml", VM3)
        .image("vms/vm3/testguest.bin", None)
        .run(&[]);
    assert_eq!(
        one_line(&out),
        "VM 3 (vm3) not started: vms/vm3.toml: kernel.kernel_path: vms/vm3/testguest.bin: not loaded (missing on the boot partition, or unreadable)"
    );
    let out = Card::new().config("vms/vm3.toml", VM3).run(&[]);
    assert!(one_line(&out)
        .contains("kernel.kernel_path: vms/vm3/testguest.bin: no boot module holds it"));
    let mut card = Card::new().image("vms/vm3/testguest.bin", Some(GUEST));
    card.files
        .push(("vms/vm3.toml", ModuleKind::VmConfig, None, 0x1_0000));
    assert!(one_line(&card.run(&[])).starts_with("vms/vm3.toml: not loaded (missing"));
    // A file as large as its slot may have been cut short.
    let full: &'static [u8] = Box::leak(vec![b'#'; 0x1_0000].into_boxed_slice());
    let mut card = Card::new();
    card.files
        .push(("vms/vm3.toml", ModuleKind::VmConfig, Some(full), 0x1_0000));
    assert!(
        one_line(&card.run(&[])).starts_with("vms/vm3.toml: fills its whole slot (65536 bytes)")
    );
}

#[test]
fn images_must_fit_the_vm() {
    let big: &'static [u8] = Box::leak(vec![0; 0x100_0000 - 0x1000].into_boxed_slice());
    let out = Card::new()
        .config("vms/vm3.toml", VM3)
        .image("vms/vm3/testguest.bin", Some(big))
        .run(&[]);
    assert!(
        one_line(&out).contains("kernel.kernel_path: the kernel (")
            && out.lines[0].contains("does not fit in the VM's memory"),
        "{:?}",
        out.lines
    );
}

#[test]
fn relative_paths_and_dtb_and_ramdisk() {
    let text = VM3
        .replace("\"/vms/vm3/testguest.bin\"", "\"vm3/./testguest.bin\"")
        .replace(
            "cmdline = \"\"",
            "cmdline = \"\"\ndtb_path = \"../vms/vm3/g.dtb\"\ndtb_load_addr = 0x4000_0000\nramdisk_path = \"/rd\"\nramdisk_load_addr = 0x4080_0000",
        );
    let out = Card::new()
        .config("vms/vm3.toml", &text)
        .image("vms/vm3/testguest.bin", Some(GUEST))
        .image("vms/vm3/g.dtb", Some(&[1; 64]))
        .image("rd", Some(&[2; 128]))
        .run(&[]);
    assert!(out.lines.is_empty(), "{:#?}", out.lines);
    let s = &out.vms[0].spec;
    assert_eq!(
        s.dtb.map(|d| (d.load_gpa, d.data.len())),
        Some((0x4000_0000, 64))
    );
    assert_eq!(
        s.ramdisk.map(|d| (d.load_gpa, d.data.len())),
        Some((0x4080_0000, 128))
    );
    assert_eq!(files::resolve("vms/a.toml", "../../x"), None);
    assert_eq!(files::resolve("a.toml", "b/c").as_deref(), Some("b/c"));
}

#[test]
fn cpus_of_other_vms_are_not_given_twice() {
    let pinned_to_1 = VM3.replace("[0x2, 0x3]", "[0x1, 0x2]");
    let out = Card::new()
        .config("vms/vm3.toml", &pinned_to_1)
        .image("vms/vm3/testguest.bin", Some(GUEST))
        .run(&builtin());
    assert_eq!(
        one_line(&out),
        "VM 3 (vm3) not started: vms/vm3.toml: base.phys_cpu_ids[0]: physical CPU 1 (MPIDR 0x1) already runs a vCPU of VM 1 (vm1)"
    );
    // Unpinned VMs take what pinned ones leave, whatever their order on the card.
    let free = VM3
        .replace("id = 3", "id = 5")
        .replace("\"vm3\"", "\"vm5\"")
        .replace("phys_cpu_ids = [0x2, 0x3]\n", "");
    let card = Card::new()
        .config("vms/vm5.toml", &free)
        .config("vms/vm3.toml", VM3)
        .image("vms/vm3/testguest.bin", Some(GUEST));
    let out = card.run(&builtin());
    assert_eq!(out.vms.len(), 1);
    assert_eq!(out.vms[0].spec.name, "vm3");
    assert!(one_line(&out).contains("base.cpu_num: 2 vCPUs need 2 physical CPUs of their own, but only 0 of this machine's 4 are free"));
    let out = card.run(&[]);
    assert_eq!(out.vms.len(), 2);
    assert_eq!(
        (&*out.vms[0].spec.name, &*out.vms[0].spec.pcpu_of_vcpu),
        ("vm5", &[0, 1][..])
    );
    assert_eq!(&*out.vms[1].spec.pcpu_of_vcpu, &[2, 3]);
}

#[test]
fn ids_and_names_are_unique_and_host_memory_is_guarded() {
    let dup = VM3.replace("id = 3", "id = 1");
    let out = Card::new()
        .config("vms/vm3.toml", &dup)
        .image("vms/vm3/testguest.bin", Some(GUEST))
        .run(&builtin());
    assert!(one_line(&out).contains("base.id: VM id 1 is already used by VM 1 (vm1)"));
    let reserved = VM3.replace("0x7, 0]]", "0x7, 0], [0x4800_0000, 0x1000, 0x3, 2]]");
    let out = Card::new()
        .config("vms/vm3.toml", &reserved)
        .image("vms/vm3/testguest.bin", Some(GUEST))
        .run(&[]);
    assert!(one_line(&out).contains(
        "kernel.memory_regions[1]: host range 0x48000000..0x48001000 overlaps the hypervisor"
    ));
    let reserved = VM3.replace("0x7, 0]]", "0x7, 0], [0x6000_0000, 0x1000, 0x3, 2]]");
    let out = Card::new()
        .config("vms/vm3.toml", &reserved)
        .image("vms/vm3/testguest.bin", Some(GUEST))
        .run(&[]);
    assert!(one_line(&out).contains("is host RAM that is not reserved"));
}

/// `vmconfig::image::generated_dtb_estimate`, which the checks place the generated
/// DTB with, is an upper bound of the DTBs the hypervisor really writes: both
/// architectures, from 1 to 8 vCPUs, a long command line and a ramdisk.
#[test]
fn generated_dtbs_stay_within_the_estimate() {
    use crate::arch::{aarch64, riscv64};
    let rv = VM3
        .replace("0x4008_0000", "0x8020_0000")
        .replace("[[0x4000_0000, 0x100_0000, 0x7, 0]]", "[[0x8000_0000, 0x100_0000, 0x7, 0], [0x9000_0000, 0x10_0000, 0x7, 0]]")
        .replace(
            "[[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]]",
            "[[\"plic\", 0x0c00_0000, 0x60_0000, 0, 0x30, []], [\"uart\", 0x1000_0000, 0x100, 10, 0x2, []]]",
        );
    let arm = VM3.replace(
        "[[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]]",
        "[[\"gicd\", 0x0800_0000, 0x1_0000, 0, 0x21, []], [\"gicr\", 0x080a_0000, 0x10_0000, 0, 0x20, []], [\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]]",
    );
    for cpus in [1usize, 2, 8] {
        for cmdline in [
            "",
            "console=ttyAMA0 earlycon root=/dev/ram rdinit=/init run=\"echo x\"",
        ] {
            let edit = |t: &str| {
                t.replace(
                    "cpu_num = 2\nphys_cpu_ids = [0x2, 0x3]",
                    &alloc::format!("cpu_num = {cpus}"),
                )
                .replace(
                    "cmdline = \"\"",
                    &alloc::format!("cmdline = '{}'", cmdline.repeat(20)),
                )
            };
            for (text, riscv) in [(edit(&arm), false), (edit(&rv), true)] {
                let arch = if riscv {
                    vmconfig::RISCV64
                } else {
                    vmconfig::AARCH64
                };
                let cfg = vmconfig::parse_vm(&text, arch).vm.expect("valid config");
                let estimate = vmconfig::image::generated_dtb_estimate(&cfg);
                let memory: Vec<(u64, u64)> =
                    cfg.ram().map(|m| (m.range.base, m.range.size)).collect();
                let images = Images {
                    kernel: GUEST,
                    dtb: None,
                    ramdisk: Some(&[0u8; 0x1000]),
                };
                let mut spec = owned_spec(cfg, images, (0..cpus as u32).collect());
                spec.ramdisk = Some(crate::spec::Image {
                    load_gpa: memory[0].0 + 0x80_0000,
                    data: &[0u8; 0x1000],
                });
                let dtb = if riscv {
                    let harts = riscv64::guest_dtb::GuestCpus {
                        count: cpus,
                        isa: "rv64imafdch_zicsr_zifencei_zba_zbb_zbc_zbs",
                        timebase_hz: 10_000_000,
                    };
                    riscv64::guest_dtb::for_vm(&spec, &memory, harts, 95, None)
                } else {
                    aarch64::guest_dtb::for_vm(&spec, &memory, None)
                }
                .unwrap();
                assert!(
                    dtb.len() as u64 <= estimate,
                    "riscv {riscv}, {cpus} vCPUs, cmdline {}: DTB {} bytes, estimate {estimate}",
                    spec.cmdline.len(),
                    dtb.len()
                );
            }
        }
    }
}

/// The isolation rules of issue 14 refuse a card config as `cargo xtask check` does
/// (xtask's `config::tests::isolation_rules_as_on_the_card` has the same cases and
/// messages: both come from `vmconfig`).
#[test]
fn isolation_rules_as_xtask_checks_them() {
    const UART: &str = "[[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]]";
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
            VM3.replace("cmdline = \"\"", &alloc::format!("cmdline = \"{}\"", "x".repeat(1 << 20))),
            "kernel.dtb_load_addr: the generated DTB (estimated from cmdline, vCPUs and devices) at 0x40000000..0x40102000 overlaps the kernel at 0x40080000..0x40082000",
        ),
        (
            VM3.replace("cmdline = \"\"", "cmdline = \"\"\nramdisk_path = \"vm3/rd.img\"\nramdisk_load_addr = 0x4008_1000"),
            "kernel.ramdisk_path: the ramdisk at 0x40081000..0x40082000 overlaps the kernel at 0x40080000..0x40082000 (kernel.kernel_path)",
        ),
        (
            VM3.replace("testguest.bin", "riscv.bin"),
            "kernel.kernel_path: the image is a RISC-V Linux Image (magic \"RSC\\x05\" at 0x38), but this VM runs on aarch64",
        ),
    ];
    let mut riscv = vec![0u8; 0x2000];
    riscv[56..60].copy_from_slice(b"RSC\x05");
    let riscv: &'static [u8] = Box::leak(riscv.into_boxed_slice());
    for (text, wanted) in cases {
        let out = Card::new()
            .config("vms/vm3.toml", &text)
            .image("vms/vm3/testguest.bin", Some(GUEST))
            .image("vms/vm3/riscv.bin", Some(riscv))
            .image("vms/vm3/rd.img", Some(&[0u8; 0x1000]))
            .run(&builtin());
        assert_eq!((out.vms.len(), out.refused), (0, 1), "{wanted}");
        let line = one_line(&out);
        let wanted = alloc::format!("VM 3 (vm3) not started: vms/vm3.toml: {wanted}");
        assert!(line.starts_with(&wanted), "{line}\nwanted: {wanted}");
    }
}

/// `[[devices.channels]]` "link" between vm1 and vm3, seen at `gpa`.
fn link(size: &str, gpa: &str) -> String {
    format!(
        "\n[[devices.channels]]\nname = \"link\"\nsize = {size}\nvms = [\"vm1\", \"vm3\"]\ngpa = {gpa}\n"
    )
}

#[test]
fn fs_channels_are_checked_against_the_other_vms() {
    let mut with_link = builtin();
    let text = VM3
        .replace("id = 3", "id = 1")
        .replace("\"vm3\"", "\"vm1\"")
        .replace("[0x2, 0x3]", "[0x0, 0x1]")
        + &link("0x2000", "0x4100_0000");
    let cfg = vmconfig::parse_vm(&text, ARCH).vm.unwrap();
    let images = Images {
        kernel: GUEST,
        dtb: None,
        ramdisk: None,
    };
    with_link[0] = owned_spec(cfg, images, vec![0, 1]);
    // The card's vm3 joins the built-in vm1's channel: accepted.
    let vm3 = format!("{VM3}{}", link("0x2000", "0x4200_0000"));
    let card = Card::new()
        .config("vms/vm3.toml", &vm3)
        .image("vms/vm3/testguest.bin", Some(GUEST));
    let out = card.run(&with_link);
    assert!(out.lines.is_empty(), "{:#?}", out.lines);
    assert_eq!(out.vms[0].spec.channels[0].gpa, 0x4200_0000);
    // Without vm1 naming it, vm3 is alone on it: refused.
    let out = card.run(&builtin());
    assert_eq!((out.vms.len(), out.refused), (0, 1));
    let line = one_line(&out);
    assert!(
        line.starts_with("VM 3 (vm3) not started: vms/vm3.toml: devices.channels[0].name: channel \"link\" is named by this VM only"),
        "{line}"
    );
    // A size that disagrees with vm1's: refused, naming vm1.
    let bigger = format!("{VM3}{}", link("0x3000", "0x4200_0000"));
    let card = Card::new()
        .config("vms/vm3.toml", &bigger)
        .image("vms/vm3/testguest.bin", Some(GUEST));
    let out = card.run(&with_link);
    let line = one_line(&out);
    assert!(
        line.ends_with("devices.channels[0].size: channel \"link\" has size 0x3000 here but 0x2000 in built-in VM vm1"),
        "{line}"
    );
}
