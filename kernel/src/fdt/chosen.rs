//! The `/chosen` node of a generated guest device tree, one writer for every
//! architecture: the command line, the console, the initramfs and the seed for the
//! guest's random number generator (`crate::entropy`).

use super::{FdtError, FdtWriter};

/// What `/chosen` says.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chosen<'a> {
    pub bootargs: &'a str,
    /// Path of the console's node (`stdout-path`).
    pub stdout_path: Option<&'a str>,
    /// Initial ramdisk `(start, end)` guest-physical, end exclusive.
    pub initrd: Option<(u64, u64)>,
    /// `rng-seed`: without one Linux spends part of its boot making entropy itself.
    pub rng_seed: Option<&'a [u8]>,
}

/// Writes the `/chosen` node (at the root level of `w`).
pub fn write(w: &mut FdtWriter, c: &Chosen<'_>) -> Result<(), FdtError> {
    w.begin_node("chosen")?;
    w.property_string("bootargs", c.bootargs)?;
    if let Some(path) = c.stdout_path {
        w.property_string("stdout-path", path)?;
    }
    if let Some((start, end)) = c.initrd {
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    if let Some(seed) = c.rng_seed {
        w.property_bytes("rng-seed", seed)?;
    }
    w.end_node()
}
