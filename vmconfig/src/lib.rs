//! VM configs in AxVisor's format (`[base]`, `[kernel]`, `[devices]`): the TOML
//! shape, the checked model, and the checks that need nothing but the config.
//!
//! Shared by xtask (which adds file names, line numbers and the checks that need the
//! host: files on disk, guest crates, the board) and the hypervisor (which reads the
//! configs of `image_location = "fs"` VMs from the boot card at run time). The rules
//! exist once, here. `no_std` with `alloc`. Reading configs from TOML text
//! (`parse_vm`, the `toml` crate) is feature `parse` (default); without it the crate
//! is the model and the checks only.
#![no_std]

extern crate alloc;

pub mod bzimage;
pub mod channel;
pub mod check;
pub mod cpus;
#[cfg(feature = "devtree")]
pub mod devtree;
pub mod dtbdump;
pub mod host;
pub mod image;
pub mod irq;
#[cfg(feature = "schema")]
pub mod json_schema;
pub mod key;
pub mod model;
pub mod multiboot;
#[cfg(feature = "parse")]
pub mod parse;
pub mod paths;
pub mod range;
pub mod schema;

#[cfg(all(test, feature = "parse"))]
mod tests;

pub use check::{check_vm, valid_name, MAX_NAME_LEN};
pub use image::{check_images, image_fits, Loaded};
pub use key::{KeyPath, Problem, Problems, Seg, Severity};
pub use model::*;
#[cfg(feature = "parse")]
pub use parse::{parse_vm, Parsed};
pub use range::Range;
