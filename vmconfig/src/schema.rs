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
#[serde(deny_unknown_fields)]
pub struct BaseToml {
    pub id: u64,
    pub name: String,
    #[serde(default = "one")]
    pub vm_type: u64,
    pub cpu_num: u64,
    pub phys_cpu_ids: Option<Vec<u64>>,
    pub phys_cpu_sets: Option<Vec<u64>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelToml {
    pub entry_point: u64,
    pub image_location: Option<String>,
    pub kernel_path: String,
    pub kernel_load_addr: u64,
    pub bios_path: Option<String>,
    pub bios_load_addr: Option<u64>,
    pub dtb_path: Option<String>,
    pub dtb_load_addr: Option<u64>,
    pub ramdisk_path: Option<String>,
    pub ramdisk_load_addr: Option<u64>,
    pub disk_path: Option<String>,
    #[serde(default)]
    pub cmdline: String,
    pub memory_regions: Vec<Raw>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesToml {
    #[serde(default)]
    pub emu_devices: Vec<Raw>,
    #[serde(default)]
    pub passthrough_devices: Vec<Raw>,
    pub interrupt_mode: Option<String>,
    #[serde(default)]
    pub excluded_devices: Vec<Raw>,
    #[serde(default)]
    pub passthrough_addresses: Vec<Raw>,
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
