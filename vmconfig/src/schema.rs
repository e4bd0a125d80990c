//! The TOML shape of a VM config, as serde types: unknown keys and wrong types are
//! rejected here, by the deserializer (xtask's `toml_edit` or this crate's `toml`).
//!
//! The three sections are read in three passes (`Parts<BaseToml, IgnoredAny,
//! IgnoredAny>`, ...), so an error in one section does not hide those of the next.
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// A whole config with each section of its own type (`IgnoredAny` to skip one).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(
        bound = "B: schemars::JsonSchema, K: schemars::JsonSchema, D: schemars::JsonSchema + Default"
    )
)]
#[serde(deny_unknown_fields)]
pub struct Parts<B, K, D> {
    pub base: B,
    pub kernel: K,
    #[serde(default)]
    pub devices: D,
}

/// The pass that reads `[base]`.
pub type BasePass = Parts<BaseToml, IgnoredAny, IgnoredAny>;
/// The pass that reads `[kernel]`.
pub type KernelPass = Parts<IgnoredAny, KernelToml, IgnoredAny>;
/// The pass that reads `[devices]` (optional).
pub type DevicesPass = Parts<IgnoredAny, IgnoredAny, Option<DevicesToml>>;

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BaseToml {
    /// VM id, unique among the VMs of a build.
    pub id: u64,
    /// VM name (letters, digits, `-`, `_`, `.`): the console prefix `[name]`.
    #[cfg_attr(feature = "schema", schemars(extend("pattern" = crate::json_schema::NAME_PATTERN)))]
    pub name: String,
    /// 0 host VM, 1 RTOS (default), 2 Linux.
    #[serde(default = "one")]
    pub vm_type: u64,
    /// Number of vCPUs.
    pub cpu_num: u64,
    /// The physical CPU (MPIDR / hart id) of each vCPU.
    pub phys_cpu_ids: Option<Vec<u64>>,
    /// A CPU bitmask per vCPU (bit n = the board's CPU n).
    pub phys_cpu_sets: Option<Vec<u64>>,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KernelToml {
    /// Guest physical address the first vCPU starts at.
    pub entry_point: u64,
    /// "memory" (default): bundled into the hypervisor; "fs": files on the boot card.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["memory", "fs"])))]
    pub image_location: Option<String>,
    /// The kernel image: a file (relative to this config), "guest:<crate>" or "image:<name>/<file>".
    pub kernel_path: String,
    /// Guest physical address the kernel is loaded at.
    pub kernel_load_addr: u64,
    /// Not supported yet.
    pub bios_path: Option<String>,
    /// Ignored without bios_path.
    pub bios_load_addr: Option<u64>,
    /// A device tree for the guest (else the hypervisor generates one).
    pub dtb_path: Option<String>,
    /// Guest physical address of the device tree.
    pub dtb_load_addr: Option<u64>,
    /// An initramfs / ramdisk image.
    pub ramdisk_path: Option<String>,
    /// Guest physical address of the ramdisk.
    pub ramdisk_load_addr: Option<u64>,
    /// Ignored: disk images are not supported yet.
    pub disk_path: Option<String>,
    /// The guest's command line (in /chosen/bootargs).
    #[serde(default)]
    pub cmdline: String,
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::json_schema::memory_regions")
    )]
    /// Guest memory: [[gpa, size, flags, map_type], ...].
    pub memory_regions: Vec<Raw>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DevicesToml {
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::json_schema::emu_devices")
    )]
    /// Emulated devices: [[name, base_gpa, length, irq_id, emu_type, [cfg...]], ...].
    pub emu_devices: Vec<Raw>,
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::json_schema::passthrough_devices")
    )]
    /// Host devices mapped into the VM: [[name, base_gpa, base_hpa, length, irq_id], ...].
    pub passthrough_devices: Vec<Raw>,
    /// "emu" (default), "no_irq" or "passthrough".
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["no_irq", "emu", "passthrough"])))]
    pub interrupt_mode: Option<String>,
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::json_schema::excluded_devices")
    )]
    /// Device-tree paths to leave out (accepted, ignored: device-tree passthrough is not supported yet).
    pub excluded_devices: Vec<Raw>,
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::json_schema::passthrough_addresses")
    )]
    /// Host address ranges mapped 1:1: [[gpa, length], ...].
    pub passthrough_addresses: Vec<Raw>,
    #[serde(default)]
    /// Inter-VM channels this VM maps ([[devices.channels]]).
    pub channels: Vec<ChannelToml>,
}

/// One `[[devices.channels]]` entry: a shared-memory region and this VM's doorbell.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelToml {
    /// The channel's name: the same in the config of every VM that maps it.
    #[cfg_attr(feature = "schema", schemars(extend("pattern" = crate::json_schema::NAME_PATTERN)))]
    pub name: String,
    /// Bytes of shared memory: a multiple of 4 KiB, the same in every member's config.
    pub size: u64,
    /// The VMs (by name) that map the channel, this one included: the same list, in the
    /// same order, in every member's config (a VM's position is its doorbell number).
    pub vms: Vec<String>,
    /// Where this VM sees the region (guest-physical, 4 KiB aligned).
    pub gpa: u64,
    /// "rw" (default): read-write; "ro": read-only for this VM.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["rw", "ro"])))]
    pub access: Option<String>,
    /// This VM's doorbell: a 4 KiB emulated device window at this guest-physical address.
    pub doorbell: Option<u64>,
    /// The interrupt a peer's ring raises in this VM (needs `doorbell`).
    pub irq: Option<u64>,
}

/// Any TOML value, for arrays that mix types (`[name, base, len, ...]`) and that are
/// checked element by element to give precise messages.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Raw {
    Int(i64),
    Bool(bool),
    Float(f64),
    Str(String),
    List(Vec<Raw>),
    Table(BTreeMap<String, Raw>),
}

impl Raw {
    /// A short name of the value's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Raw::Int(_) => "an integer",
            Raw::Bool(_) => "a boolean",
            Raw::Float(_) => "a float",
            Raw::Str(_) => "a string",
            Raw::List(_) => "an array",
            Raw::Table(_) => "a table",
        }
    }
}
