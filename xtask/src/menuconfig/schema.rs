//! The settings menuconfig shows: for each, where it lives in the file, its type, its
//! help text and its allowed values (from [`Truth`]), and how text typed by the user
//! becomes a TOML value. Type and range are checked here, as the user types; what
//! depends on other values (memory layout, CPUs, ...) is checked by the config model
//! exactly as `cargo xtask build` does.
use toml_edit::Value;

use super::doc::{compact, Loc};
use super::truth::Truth;

/// Largest `cpu_num` the VM checks accept.
pub const MAX_VCPUS: i64 = 512;

/// An allowed value and what it means.
#[derive(Clone, Debug)]
pub struct Opt {
    pub value: Value,
    pub help: String,
}

impl Opt {
    fn text(value: &str, help: &str) -> Opt {
        Opt {
            value: Value::from(value),
            help: help.to_string(),
        }
    }

    /// The value as shown in a list.
    pub fn label(&self) -> String {
        match self.value.as_str() {
            Some(s) => s.to_string(),
            None => compact(&self.value),
        }
    }
}

/// What the value of a TOML-typed setting must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `["a", "b"]`
    Strings,
    /// `[0x0, 0x100]`
    Ints,
    /// `[[base, size], ...]`
    Ranges,
    /// `[base, size]`
    Pair,
    /// `[gpa, size, flags, map_type]`
    Region,
    /// `[name, base_gpa, length, irq_id, emu_type, [cfg...]]`
    EmuDevice,
    /// `[name, base_gpa, base_hpa, length, irq_id]`, or `["/dt/path"]`
    PassDevice,
    /// `[["/dt/path"], ...]`
    PathLists,
}

impl Shape {
    pub fn example(self) -> &'static str {
        match self {
            Shape::Strings => "[\"-a\", \"b\"]",
            Shape::Ints => "[0x0, 0x1]",
            Shape::Ranges => "[[0x4000_0000, 0x4000_0000]]",
            Shape::Pair => "[0x0900_0000, 0x1000]",
            Shape::Region => "[0x4000_0000, 0x100_0000, 0x7, 0]",
            Shape::EmuDevice => "[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []]",
            Shape::PassDevice => "[\"rtc\", 0x0901_0000, 0x0901_0000, 0x1000, 34]",
            Shape::PathLists => "[[\"/pcie@10000000\"]]",
        }
    }

    pub fn check(self, v: &Value) -> Result<(), String> {
        let bad = || match self {
            Shape::Region => format!(
                "expected 4 non-negative integers [gpa, size, flags, map_type], e.g. {}",
                self.example()
            ),
            Shape::EmuDevice => format!(
                "expected [name, base_gpa, length, irq_id, emu_type, [cfg...]] (a name, 4 \
                 non-negative integers, optionally a list of them), e.g. {}",
                self.example()
            ),
            Shape::PassDevice => format!(
                "expected [name, base_gpa, base_hpa, length, irq_id] (a name, 4 non-negative \
                 integers) or a device-tree path [\"/node\"], e.g. {}",
                self.example()
            ),
            _ => format!("expected a TOML value like {}", self.example()),
        };
        let arr = v.as_array().ok_or_else(bad)?;
        let ok = match self {
            Shape::Strings => arr.iter().all(Value::is_str),
            Shape::Ints => arr.iter().all(|x| x.as_integer().is_some_and(|i| i >= 0)),
            Shape::Ranges => arr.iter().all(|x| {
                x.as_array()
                    .is_some_and(|p| p.len() == 2 && p.iter().all(nonneg))
            }),
            Shape::Region => arr.len() == 4 && arr.iter().all(nonneg),
            Shape::Pair => arr.len() == 2 && arr.iter().all(nonneg),
            Shape::EmuDevice => {
                (arr.len() == 5 || arr.len() == 6)
                    && named(arr)
                    && arr.iter().skip(1).take(4).all(nonneg)
                    && arr
                        .get(5)
                        .is_none_or(|c| c.as_array().is_some_and(|c| c.iter().all(nonneg)))
            }
            Shape::PassDevice => {
                let path = arr.len() == 1
                    && arr
                        .get(0)
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.starts_with('/'));
                path || (arr.len() == 5 && named(arr) && arr.iter().skip(1).all(nonneg))
            }
            Shape::PathLists => arr.iter().all(|x| {
                x.as_array().is_some_and(|p| {
                    p.iter()
                        .all(|s| s.as_str().is_some_and(|s| s.starts_with('/')))
                })
            }),
        };
        if ok {
            Ok(())
        } else {
            Err(bad())
        }
    }
}

fn nonneg(v: &Value) -> bool {
    v.as_integer().is_some_and(|i| i >= 0)
}

/// The first element is a non-empty string.
fn named(arr: &toml_edit::Array) -> bool {
    arr.get(0)
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// The lists of a VM config edited one entry at a time, on a page of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    /// `kernel.memory_regions`
    Regions,
    /// `devices.emu_devices`
    EmuDevices,
    /// `devices.passthrough_devices`
    PassDevices,
}

impl List {
    pub fn loc(self) -> Loc {
        match self {
            List::Regions => Loc::at("kernel", "memory_regions"),
            List::EmuDevices => Loc::at("devices", "emu_devices"),
            List::PassDevices => Loc::at("devices", "passthrough_devices"),
        }
    }

    pub fn shape(self) -> Shape {
        match self {
            List::Regions => Shape::Region,
            List::EmuDevices => Shape::EmuDevice,
            List::PassDevices => Shape::PassDevice,
        }
    }

    /// What one entry is called.
    pub fn item(self) -> &'static str {
        match self {
            List::Regions => "region",
            List::EmuDevices | List::PassDevices => "device",
        }
    }

    pub fn fields(self) -> &'static str {
        match self {
            List::Regions => "[gpa, size, flags, map_type]",
            List::EmuDevices => "[name, base_gpa, length, irq_id, emu_type, [cfg...]]",
            List::PassDevices => "[name, base_gpa, base_hpa, length, irq_id]",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            List::Regions => "Memory regions",
            List::EmuDevices => "Emulated devices",
            List::PassDevices => "Passthrough devices",
        }
    }

    /// The short name in the title path.
    pub fn short(self) -> &'static str {
        match self {
            List::Regions => "memory",
            List::EmuDevices => "emulated",
            List::PassDevices => "passthrough",
        }
    }

    /// What the edit window says under the field.
    pub fn note(self) -> String {
        match self {
            List::Regions => {
                "flags 0x1 R, 0x2 W, 0x4 X, 0x8 user, 0x10 device; map_type 0 allocate, 1 identity, 2 reserved"
                    .into()
            }
            List::EmuDevices => {
                let known: Vec<String> = vmconfig::EMU_TYPES
                    .iter()
                    .map(|(c, n)| format!("{c:#x} {n}"))
                    .collect();
                format!("emu_type: {}", known.join(", "))
            }
            List::PassDevices => {
                "host device window mapped at base_gpa; irq_id its interrupt".into()
            }
        }
    }

    /// The full help of the list.
    pub fn help(self) -> Vec<String> {
        match self {
            List::Regions => vec![
                "A region is [gpa, size, flags, map_type]:".to_string(),
                "  gpa, size  guest-physical base and size, 4 KiB aligned".into(),
                "  flags      AxVisor's: 0x1 read, 0x2 write, 0x4 execute, 0x8 user (no effect),"
                    .into(),
                "             0x10 device, 0x20 uncached (RAM: 0x7 or 0xf)".into(),
                "  map_type   0 allocate anywhere, 1 identity (GPA = HPA), 2 reserved host range"
                    .into(),
                "Regions must not overlap; the VM needs at least one normal (non-device) one."
                    .into(),
            ],
            List::EmuDevices => {
                let mut lines = vec![
                    "An emulated device is [name, base_gpa, length, irq_id, emu_type, [cfg...]]:"
                        .to_string(),
                    "  base_gpa, length  its window in guest-physical memory".into(),
                    "  irq_id            its interrupt (0: none)".into(),
                    "  cfg               device-specific values (optional)".into(),
                    "emu_type:".into(),
                ];
                lines.extend(
                    vmconfig::EMU_TYPES
                        .iter()
                        .map(|(c, n)| format!("  {c:#x}  {n}")),
                );
                lines
            }
            List::PassDevices => vec![
                "A passthrough device is [name, base_gpa, base_hpa, length, irq_id]:".to_string(),
                "  base_hpa, length  the host device's window, mapped at base_gpa".into(),
                "  irq_id            its interrupt, given to the VM (interrupt_mode".into(),
                "                    \"passthrough\" for the VM to get it directly)".into(),
            ],
        }
    }
}

/// The type of a setting.
#[derive(Clone, Debug)]
pub enum Kind {
    Bool,
    /// An integer in `min..=max`; `hex` ones are addresses, shown in hex.
    Int {
        min: i64,
        max: i64,
        hex: bool,
    },
    Str,
    /// One of the options.
    Choice(Vec<Opt>),
    /// A list of strings, each one of the options.
    Multi(Vec<Opt>),
    /// Any value of the shape, typed as TOML.
    Toml(Shape),
    /// `vm_configs`: edited on its own page (the VM configs of the board's arch).
    VmList,
    /// A list of tuples (`memory_regions`, devices): edited on its own page, one
    /// entry at a time.
    List(List),
}

impl Kind {
    /// A short name of the type, with its range or values.
    pub fn describe(&self) -> String {
        match self {
            Kind::Bool => "boolean (true/false)".into(),
            Kind::Int { min, max, .. } if *max == i64::MAX => format!("integer >= {min:#x}"),
            Kind::Int {
                min,
                max,
                hex: true,
            } => format!("integer {min:#x}..={max:#x}"),
            Kind::Int { min, max, .. } => format!("integer {min}..={max}"),
            Kind::Str => "string".into(),
            Kind::Choice(opts) => {
                let labels: Vec<String> = opts.iter().map(Opt::label).collect();
                format!("one of: {}", labels.join(", "))
            }
            Kind::Multi(opts) => {
                let labels: Vec<String> = opts.iter().map(Opt::label).collect();
                format!("any of: {}", labels.join(", "))
            }
            Kind::Toml(shape) => format!("TOML value like {}", shape.example()),
            Kind::VmList => "list of VM config files".into(),
            Kind::List(l) => format!("list of {}", l.fields()),
        }
    }
}

/// Which page a board setting is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Build,
    Hardware,
    Qemu,
    /// `[image]` and `[uboot]`: the card image and `cargo xtask uboot`.
    Image,
    Vm,
}

/// One setting.
#[derive(Clone, Debug)]
pub struct Setting {
    pub loc: Loc,
    pub kind: Kind,
    pub help: String,
    /// May be left out of the file (empty input removes it).
    pub optional: bool,
    /// What leaving it out means.
    pub default: Option<&'static str>,
    pub group: Group,
}

impl Setting {
    pub fn name(&self) -> String {
        self.loc.dotted()
    }

    /// The value typed by the user, checked for type and range; `Ok(None)` removes
    /// the key (only optional settings).
    pub fn parse(&self, input: &str) -> Result<Option<Value>, String> {
        let input = input.trim();
        if input.is_empty() && !matches!(self.kind, Kind::Str) {
            return match self.optional {
                true => Ok(None),
                false => Err(format!("{} needs a value", self.name())),
            };
        }
        if input.is_empty() && self.optional {
            return Ok(None);
        }
        match &self.kind {
            Kind::Str => Ok(Some(Value::from(input))),
            Kind::Bool => match input {
                "true" | "yes" | "y" | "1" => Ok(Some(Value::from(true))),
                "false" | "no" | "n" | "0" => Ok(Some(Value::from(false))),
                _ => Err("expected true or false".into()),
            },
            Kind::Int { min, max, .. } => parse_int(input, *min, *max).map(Some),
            Kind::Toml(shape) => {
                let v: Value = input
                    .parse()
                    .map_err(|_| format!("not a TOML value; expected e.g. {}", shape.example()))?;
                shape.check(&v)?;
                Ok(Some(v))
            }
            Kind::Choice(opts) | Kind::Multi(opts) => {
                let found = opts.iter().find(|o| o.label() == input);
                match found {
                    Some(o) => Ok(Some(o.value.clone())),
                    None => Err(self.kind.describe()),
                }
            }
            Kind::VmList | Kind::List(_) => Err("edited on its own page".into()),
        }
    }
}

/// An integer as TOML spells it (`42`, `0x4000_0000`, `0b101`), in `min..=max`.
/// The spelling typed is kept.
pub fn parse_int(input: &str, min: i64, max: i64) -> Result<Value, String> {
    let v: Value = input
        .parse()
        .map_err(|_| format!("{input:?} is not an integer (e.g. 42 or 0x4000_0000)"))?;
    let Some(n) = v.as_integer() else {
        return Err(format!(
            "{input:?} is not an integer (e.g. 42 or 0x4000_0000)"
        ));
    };
    if n < min || n > max {
        return Err(match max {
            i64::MAX => format!("{n} is out of range: must be at least {min}"),
            _ => format!("{n} is out of range {min}..={max}"),
        });
    }
    Ok(v)
}

fn setting(loc: Loc, kind: Kind, group: Group, help: &str) -> Setting {
    Setting {
        loc,
        kind,
        help: help.to_string(),
        optional: false,
        default: None,
        group,
    }
}

fn optional(mut s: Setting, default: Option<&'static str>) -> Setting {
    s.optional = true;
    s.default = default;
    s
}

const ADDR: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
    hex: true,
};

/// The settings of a board file (`.build.toml`).
pub fn board_settings(truth: &Truth) -> Vec<Setting> {
    let mut out = build_settings(truth);
    out.extend(hardware_settings(truth));
    out.extend(device_settings());
    out.extend(qemu_settings());
    out.extend(image_settings());
    out
}

/// `[devices]`: the board's devices, as documentation and for the checks (the
/// hypervisor finds them in the DTB).
fn device_settings() -> Vec<Setting> {
    let window = |key, help| {
        optional(
            setting(
                Loc::at("devices", key),
                Kind::Toml(Shape::Pair),
                Group::Hardware,
                help,
            ),
            None,
        )
    };
    vec![
        window("uart", "The console UART's window [base, size]."),
        optional(
            setting(
                Loc::at("devices", "uart_kind"),
                Kind::Str,
                Group::Hardware,
                "The UART's kind, e.g. pl011, ns16550a, dw-apb-uart.",
            ),
            None,
        ),
        optional(
            setting(
                Loc::at("devices", "uart_irq"),
                Kind::Int {
                    min: 0,
                    max: 1023,
                    hex: false,
                },
                Group::Hardware,
                "The UART's interrupt number.",
            ),
            None,
        ),
        optional(
            setting(
                Loc::at("devices", "gic_version"),
                Kind::Choice(vec![
                    Opt {
                        value: Value::from(2),
                        help: "GICv2".into(),
                    },
                    Opt {
                        value: Value::from(3),
                        help: "GICv3".into(),
                    },
                ]),
                Group::Hardware,
                "The GIC version (aarch64): the VMs' GICs are checked against it.",
            ),
            None,
        ),
        window(
            "gicd",
            "The GIC distributor's window [base, size] (aarch64).",
        ),
        window(
            "gicr",
            "The GICv3 redistributors' window [base, size] (aarch64).",
        ),
        window(
            "gicc",
            "The GICv2 CPU interface's window [base, size] (aarch64).",
        ),
        window(
            "gich",
            "The GICv2 virtual interface control window [base, size] (aarch64).",
        ),
        window(
            "gicv",
            "The GICv2 virtual CPU interface window [base, size] (aarch64): a VM's GICv2 CPU \
             interface must fit in it.",
        ),
        optional(
            setting(
                Loc::at("devices", "gits"),
                Kind::Toml(Shape::Ranges),
                Group::Hardware,
                "The GIC ITS windows [[base, size], ...] (aarch64).",
            ),
            None,
        ),
        window("plic", "The PLIC's window [base, size] (riscv64)."),
    ]
}

/// `[image]` (`cargo xtask image`) and `[uboot]` (`cargo xtask uboot`). The nested
/// tables (`[image.bootloader]`, `[image.dtb]`, `[uboot.tftp]`) are edited in the file.
fn image_settings() -> Vec<Setting> {
    let size = |key, help, default| {
        optional(
            setting(Loc::at("image", key), Kind::Str, Group::Image, help),
            Some(default),
        )
    };
    vec![
        size("size", "The card image's size, e.g. 256M or 1G.", "256M"),
        size(
            "partition_offset",
            "Where the FAT32 boot partition starts, e.g. 16M (the bootloader goes before it).",
            "16M",
        ),
        optional(
            setting(
                Loc::at("image", "uboot_dram_base"),
                ADDR,
                Group::Image,
                "U-Boot's first DRAM bank: booti runs the hypervisor at it, rounded up to 2 MiB, \
                 plus the Image header's text_offset; must give hv_load_addr.",
            ),
            Some("the first RAM range's base"),
        ),
        optional(
            setting(
                Loc::at("uboot", "serial"),
                Kind::Str,
                Group::Image,
                "cargo xtask uboot: the host's serial device wired to the board's console, e.g. \
                 /dev/ttyUSB0 (--serial wins).",
            ),
            None,
        ),
        optional(
            setting(
                Loc::at("uboot", "baud"),
                Kind::Int {
                    min: 1,
                    max: i64::from(u32::MAX),
                    hex: false,
                },
                Group::Image,
                "cargo xtask uboot: the serial line's baud rate (--baud wins).",
            ),
            Some("115200"),
        ),
        optional(
            setting(
                Loc::at("uboot", "prompt"),
                Kind::Str,
                Group::Image,
                "cargo xtask uboot: U-Boot's prompt, as it prints it.",
            ),
            Some("\"=> \""),
        ),
    ]
}

fn target_help(truth: &Truth) -> String {
    let mut help = "The Rust target the hypervisor is built for (`cargo build --target`). \
        Offered: the bare-metal targets of rust-toolchain.toml whose architecture has a \
        kernel port in kernel/src/arch/."
        .to_string();
    if !truth.unported_targets.is_empty() {
        help.push_str(&format!(
            " Not offered (no kernel port yet): {}.",
            truth.unported_targets.join(", ")
        ));
    }
    help
}

fn build_settings(truth: &Truth) -> Vec<Setting> {
    let targets = truth
        .targets
        .iter()
        .map(|t| Opt::text(t, "a target of rust-toolchain.toml with a kernel port"))
        .collect();
    let features = truth
        .features
        .iter()
        .map(|f| match f.arch {
            Some(a) => Opt::text(&f.name, &format!("{} ({} only)", f.help, a.name())),
            None => Opt::text(&f.name, &f.help),
        })
        .collect();
    let levels = [
        ("Trace", "everything, including each trap: very verbose"),
        ("Debug", "details useful when debugging the hypervisor"),
        ("Info", "normal messages (the default)"),
        ("Warn", "only warnings and errors"),
        ("Error", "only errors"),
    ];
    let log = levels.iter().map(|(v, h)| Opt::text(v, h)).collect();
    vec![
        setting(Loc::top("target"), Kind::Choice(targets), Group::Build, &target_help(truth)),
        optional(
            setting(
                Loc::top("features"),
                Kind::Multi(features),
                Group::Build,
                "Cargo features of the kernel crate `hypervisor`, passed to `cargo build --features`. \
                 The list is the crate's [features] table (read with cargo metadata).",
            ),
            Some("[]"),
        ),
        optional(
            setting(
                Loc::top("log"),
                Kind::Choice(log),
                Group::Build,
                "How much the hypervisor prints. Error: VM faults, VMs not started and the \
                 final tally. Warn: also warnings. Info: also the lifecycle (banner, VMs \
                 built, powered off, reset, console focus). Debug, Trace: also VM build \
                 times and each VM's exits by kind when it stops.",
            ),
            Some("\"Info\""),
        ),
        optional(
            setting(
                Loc::top("to_bin"),
                Kind::Bool,
                Group::Build,
                "Also write target/hv/<board>/hypervisor.bin, the raw image boards and QEMU boot \
                 (`cargo xtask run` always writes it).",
            ),
            Some("true"),
        ),
        optional(
            setting(
                Loc::top("cargo_args"),
                Kind::Toml(Shape::Strings),
                Group::Build,
                "Extra arguments for the kernel's `cargo build`, as a TOML list of strings.",
            ),
            Some("[]"),
        ),
        setting(
            Loc::top("vm_configs"),
            Kind::VmList,
            Group::Build,
            "The VM configs bundled into the hypervisor: files in configs/vms/ for the board's \
             architecture. Space selects one, Enter opens it to edit its main fields.",
        ),
        optional(
            setting(
                Loc::top("on_last_stop"),
                Kind::Choice(vec![
                    Opt::text("poweroff", "power the machine off (the default; QEMU boards and tests)"),
                    Opt::text("shell", "stay up with the hypervisor shell on the console"),
                ]),
                Group::Build,
                "What the hypervisor does when the last VM stops: power off (the exit \
                 status says whether every VM stopped cleanly), or stay in the hypervisor \
                 shell (`hv> `), where VMs can be restarted or created.",
            ),
            Some("\"poweroff\""),
        ),
    ]
}

fn hardware_settings(truth: &Truth) -> Vec<Setting> {
    let arches = truth
        .arches()
        .into_iter()
        .map(|a| Opt::text(a.name(), "an architecture with a kernel port"))
        .collect();
    let u32_max = i64::from(u32::MAX);
    vec![
        optional(
            setting(
                Loc::top("board"),
                Kind::Str,
                Group::Hardware,
                "The board's name: letters, digits, '-' and '_'. Outputs go to target/hv/<board>/.",
            ),
            Some("the file name"),
        ),
        optional(
            setting(
                Loc::top("arch"),
                Kind::Choice(arches),
                Group::Hardware,
                "The CPU architecture; must match target.",
            ),
            Some("from target"),
        ),
        optional(
            setting(
                Loc::top("smp"),
                Kind::Int {
                    min: 1,
                    max: u32_max,
                    hex: false,
                },
                Group::Hardware,
                "The number of physical CPUs. Each vCPU of each VM gets one of its own, so the \
                 VMs' cpu_num together must not exceed it.",
            ),
            Some("the length of cpu_mpidrs"),
        ),
        optional(
            setting(
                Loc::top("cpu_mpidrs"),
                Kind::Toml(Shape::Ints),
                Group::Hardware,
                "MPIDR (aarch64) or hart id of each CPU in device-tree order; one per CPU \
                 (smp). VM configs name CPUs by these values in phys_cpu_ids.",
            ),
            Some("0, 1, 2, ..."),
        ),
        setting(
            Loc::top("hv_load_addr"),
            ADDR,
            Group::Hardware,
            "Physical address the hypervisor is linked and loaded at: inside the board's RAM, \
             not in a reserved range; 2 MiB aligned on aarch64 and riscv64 (RAM base + 0x20_0000 \
             for an arm64 Image).",
        ),
        setting(
            Loc::at("memory", "ram"),
            Kind::Toml(Shape::Ranges),
            Group::Hardware,
            "The board's RAM map, [[base, size], ...]: 4 KiB aligned, not overlapping.",
        ),
        optional(
            setting(
                Loc::at("memory", "reserved"),
                Kind::Toml(Shape::Ranges),
                Group::Hardware,
                "Firmware ranges inside RAM that VMs must not get, [[base, size], ...].",
            ),
            Some("[]"),
        ),
    ]
}

fn qemu_settings() -> Vec<Setting> {
    vec![
        setting(
            Loc::at("qemu", "machine"),
            Kind::Str,
            Group::Qemu,
            "QEMU -machine for `cargo xtask run`, e.g. virt,virtualization=on,gic-version=3. \
             Real boards have no [qemu] section.",
        ),
        optional(
            setting(
                Loc::at("qemu", "cpu"),
                Kind::Str,
                Group::Qemu,
                "QEMU -cpu, e.g. cortex-a72.",
            ),
            Some("QEMU's default"),
        ),
        optional(
            setting(
                Loc::at("qemu", "memory"),
                Kind::Str,
                Group::Qemu,
                "QEMU -m, e.g. 1G; must equal the RAM in [memory] ram.",
            ),
            Some("QEMU's default"),
        ),
        optional(
            setting(
                Loc::at("qemu", "args"),
                Kind::Toml(Shape::Strings),
                Group::Qemu,
                "More QEMU arguments, as a TOML list of strings.",
            ),
            Some("[]"),
        ),
        optional(
            setting(
                Loc::at("qemu", "bios"),
                Kind::Str,
                Group::Qemu,
                "QEMU -bios: firmware that boots the card image or, for `cargo xtask uboot \
                 --qemu`, waits at its prompt, e.g. /usr/lib/u-boot/qemu_arm64/u-boot.bin.",
            ),
            None,
        ),
        optional(
            setting(
                Loc::at("qemu", "boot"),
                Kind::Choice(vec![
                    Opt::text("kernel", "-kernel hypervisor.bin (default)"),
                    Opt::text(
                        "image",
                        "the card image of `cargo xtask image` as a virtio disk, booted by bios",
                    ),
                ]),
                Group::Qemu,
                "What `cargo xtask run` boots.",
            ),
            Some("\"kernel\""),
        ),
    ]
}

/// The main fields of a VM config.
pub fn vm_settings() -> Vec<Setting> {
    let mut out = vm_base_settings();
    out.extend(vm_kernel_settings());
    out.push(optional(
        setting(
            List::EmuDevices.loc(),
            Kind::List(List::EmuDevices),
            Group::Vm,
            "The devices the hypervisor emulates for the VM: [name, base_gpa, length, irq_id, \
             emu_type, [cfg...]] per device (interrupt controller, console, ...).",
        ),
        Some("[]"),
    ));
    out.push(optional(
        setting(
            List::PassDevices.loc(),
            Kind::List(List::PassDevices),
            Group::Vm,
            "Host devices mapped into the VM: [name, base_gpa, base_hpa, length, irq_id] per \
             device, or [\"/dt/path\"] (AxVisor's form: the node's registers and interrupt \
             from the host device tree, with every enabled node under it).",
        ),
        Some("[]"),
    ));
    out.push(optional(
        setting(
            Loc::at("devices", "excluded_devices"),
            Kind::Toml(Shape::PathLists),
            Group::Vm,
            "Device-tree nodes left out of path passthrough: [[\"/path\"], ...].",
        ),
        Some("[]"),
    ));
    out.push(optional(
        setting(
            Loc::at("devices", "passthrough_addresses"),
            Kind::Toml(Shape::Ranges),
            Group::Vm,
            "Host address ranges mapped into the VM at the same address: [[gpa, length], ...].",
        ),
        Some("[]"),
    ));
    out.push(optional(
        setting(
            Loc::at("devices", "interrupt_mode"),
            Kind::Choice(vec![
                Opt::text(
                    "emu",
                    "interrupts of emulated devices are injected (default)",
                ),
                Opt::text("passthrough", "the VM gets the host's interrupts directly"),
                Opt::text("no_irq", "the VM gets no interrupts"),
            ]),
            Group::Vm,
            "How the VM gets interrupts.",
        ),
        Some("\"emu\""),
    ));
    out
}

fn vm_base_settings() -> Vec<Setting> {
    let vm_types = vec![
        Opt {
            value: Value::from(0),
            help: "host VM".into(),
        },
        Opt {
            value: Value::from(1),
            help: "RTOS (default)".into(),
        },
        Opt {
            value: Value::from(2),
            help: "Linux".into(),
        },
    ];
    vec![
        setting(
            Loc::at("base", "name"),
            Kind::Str,
            Group::Vm,
            "The VM's name: letters, digits, '-', '_' and '.'; unique. Prefixes every line the \
             VM prints: [name] ...",
        ),
        setting(
            Loc::at("base", "id"),
            Kind::Int {
                min: 0,
                max: i64::from(u32::MAX),
                hex: false,
            },
            Group::Vm,
            "The VM's id, unique among the board's VMs.",
        ),
        optional(
            setting(
                Loc::at("base", "vm_type"),
                Kind::Choice(vm_types),
                Group::Vm,
                "The kind of guest.",
            ),
            Some("1"),
        ),
        setting(
            Loc::at("base", "cpu_num"),
            Kind::Int {
                min: 1,
                max: MAX_VCPUS,
                hex: false,
            },
            Group::Vm,
            "The number of vCPUs. Each runs on a physical CPU of its own: all VMs together get \
             at most the board's smp CPUs.",
        ),
        optional(
            setting(
                Loc::at("base", "phys_cpu_ids"),
                Kind::Toml(Shape::Ints),
                Group::Vm,
                "The physical CPU of each vCPU, by MPIDR (one of the board's cpu_mpidrs); one \
                 entry per vCPU.",
            ),
            Some("the next free CPUs"),
        ),
        optional(
            setting(
                Loc::at("base", "phys_cpu_sets"),
                Kind::Toml(Shape::Ints),
                Group::Vm,
                "A CPU bitmask per vCPU (bit n: the board's CPU n), e.g. [0x1, 0x2]; the vCPU \
                 runs on a CPU of its mask. One entry per vCPU.",
            ),
            Some("the next free CPUs"),
        ),
    ]
}

fn vm_kernel_settings() -> Vec<Setting> {
    let path = |key, help| {
        optional(
            setting(Loc::at("kernel", key), Kind::Str, Group::Vm, help),
            None,
        )
    };
    let addr = |key, help| optional(setting(Loc::at("kernel", key), ADDR, Group::Vm, help), None);
    let locations = vec![
        Opt::text(
            "memory",
            "bundled into the hypervisor at build time (default)",
        ),
        Opt::text(
            "fs",
            "files on the boot card, read at boot (`cargo xtask image`, `cargo xtask uboot`)",
        ),
    ];
    vec![
        optional(
            setting(
                Loc::at("kernel", "image_location"),
                Kind::Choice(locations),
                Group::Vm,
                "Where the VM's images and config are at run time.",
            ),
            Some("\"memory\""),
        ),
        setting(
            Loc::at("kernel", "kernel_path"),
            Kind::Str,
            Group::Vm,
            "The kernel image: a file (relative to the VM config), or guest:<crate> for an \
             in-repo guest crate under guests/ that `cargo xtask build` builds.",
        ),
        setting(
            Loc::at("kernel", "kernel_load_addr"),
            ADDR,
            Group::Vm,
            "Guest-physical address the kernel image is loaded at; inside the VM's memory.",
        ),
        setting(
            Loc::at("kernel", "entry_point"),
            ADDR,
            Group::Vm,
            "Guest-physical address vCPU 0 starts at; inside the VM's memory.",
        ),
        setting(
            Loc::at("kernel", "memory_regions"),
            Kind::List(List::Regions),
            Group::Vm,
            "The VM's memory: [gpa, size, flags, map_type] per region; flags (AxVisor's) \
             0x1 read, 0x2 write, 0x4 execute, 0x8 user (no effect), 0x10 device, 0x20 \
             uncached; map_type 0 allocate anywhere, 1 identity (GPA = \
             HPA), 2 reserved host range. 4 KiB aligned, not overlapping.",
        ),
        optional(
            setting(
                Loc::at("kernel", "cmdline"),
                Kind::Str,
                Group::Vm,
                "The guest's command line (/chosen/bootargs of its device tree).",
            ),
            Some("\"\""),
        ),
        path(
            "dtb_path",
            "A device tree for the guest (relative to the VM config). Without it the hypervisor \
             generates one.",
        ),
        addr(
            "dtb_load_addr",
            "Where the device tree goes (default: the start of the VM's first RAM region).",
        ),
        path(
            "ramdisk_path",
            "An initial ramdisk image (relative to the VM config).",
        ),
        addr(
            "ramdisk_load_addr",
            "Where the ramdisk goes; needed with ramdisk_path.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(settings: &[Setting], name: &str) -> Setting {
        settings.iter().find(|s| s.name() == name).unwrap().clone()
    }

    #[test]
    fn ints_keep_their_spelling_and_range() {
        let v = parse_int("0x4040_0000", 0, i64::MAX).unwrap();
        assert_eq!(v.as_integer(), Some(0x4040_0000));
        assert_eq!(compact(&v), "0x4040_0000");
        let cpu = find(&vm_settings(), "base.cpu_num");
        assert!(cpu.parse("0").unwrap_err().contains("out of range 1..=512"));
        assert!(cpu.parse("513").is_err());
        assert!(cpu.parse("two").unwrap_err().contains("not an integer"));
        assert_eq!(cpu.parse("2").unwrap().unwrap().as_integer(), Some(2));
        assert!(cpu.parse("").unwrap_err().contains("needs a value"));
    }

    #[test]
    fn optional_settings_are_removed_by_empty_input() {
        let s = find(&vm_settings(), "kernel.dtb_path");
        assert!(s.parse("").unwrap().is_none());
        let s = find(&vm_settings(), "kernel.dtb_load_addr");
        assert!(s.parse("  ").unwrap().is_none());
    }

    #[test]
    fn toml_shapes_are_checked() {
        let truth = Truth::default();
        let args = find(&board_settings(&truth), "cargo_args");
        assert!(args.parse("[\"-v\", \"x\"]").unwrap().is_some());
        assert!(args.parse("[1]").is_err());
        assert!(args.parse("[\"unterminated").is_err());
        let ram = find(&board_settings(&truth), "memory.ram");
        assert!(ram.parse("[[0x4000_0000, 0x1000]]").is_ok());
        assert!(ram.parse("[[0x4000_0000]]").is_err());
        assert!(Shape::Region
            .check(&"[1, 2, 3, 4]".parse().unwrap())
            .is_ok());
        assert!(Shape::Region.check(&"[1, 2, 3]".parse().unwrap()).is_err());
    }

    #[test]
    fn choices_come_from_the_truth() {
        let truth = Truth {
            targets: vec!["aarch64-unknown-none-softfloat".into()],
            unported_targets: vec!["x86_64-unknown-none".into()],
            ..Truth::default()
        };
        let target = find(&board_settings(&truth), "target");
        assert!(target.parse("aarch64-unknown-none-softfloat").is_ok());
        assert!(target.parse("x86_64-unknown-none").is_err());
        assert!(target.help.contains("x86_64-unknown-none"));
        let log = find(&board_settings(&truth), "log");
        assert_eq!(
            log.kind.describe(),
            "one of: Trace, Debug, Info, Warn, Error"
        );
    }
}
