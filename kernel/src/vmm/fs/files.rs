//! The files of fs VMs among the boot modules: paths as a config writes them resolved
//! to files on the boot partition, and each file's bytes, once it is known to be
//! whole (loaded, not cut short by its slot) and in RAM.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::firmware::modules::BootModule;
use crate::firmware::Range;

use super::Host;

/// The file a config path names: a leading '/' is the boot partition's root,
/// anything else is relative to the config's directory. `.` and `..` are resolved;
/// `None` when `..` climbs above the root.
pub fn resolve(config_file: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if !path.starts_with('/') {
        parts.extend(config_file.split('/').filter(|p| !p.is_empty()));
        parts.pop();
    }
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The bytes of module `m` (or why they cannot be used), checked: loaded, inside its slot, not filling it (a
/// file as large as its slot may have been cut short), and in RAM.
pub fn module_bytes(m: &BootModule<'_>, host: &Host<'_>) -> Result<&'static [u8], String> {
    let Some(loaded) = m.loaded else {
        return Err("not loaded (missing on the boot partition, or unreadable)".into());
    };
    let slot = m.slot.unwrap_or(loaded);
    if loaded.base != slot.base || loaded.size > slot.size {
        return Err(format!(
            "loaded at {:#x}+{:#x}, outside its slot {:#x}+{:#x}",
            loaded.base, loaded.size, slot.base, slot.size
        ));
    }
    if m.slot.is_some() && loaded.size == slot.size {
        return Err(format!(
            "fills its whole slot ({} bytes), so it may be cut short; the file must be smaller (make the card image again with `cargo xtask image` for a larger slot)",
            slot.size
        ));
    }
    if !inside(loaded, host.ram) {
        return Err(format!(
            "loaded at {:#x}+{:#x}, which is not RAM",
            loaded.base, loaded.size
        ));
    }
    (host.read)(loaded).ok_or_else(|| "cannot be read".into())
}

/// Whether `r` lies inside one of `ranges`.
pub fn inside(r: Range, ranges: &[Range]) -> bool {
    let Some(end) = r.base.checked_add(r.size) else {
        return false;
    };
    ranges
        .iter()
        .any(|x| r.base >= x.base && end <= x.base.saturating_add(x.size))
}

/// Whether `r` overlaps any of `ranges`.
pub fn overlaps(r: Range, ranges: &[Range]) -> bool {
    let end = r.base.saturating_add(r.size);
    ranges.iter().any(|x| {
        r.size != 0 && x.size != 0 && r.base < x.base.saturating_add(x.size) && x.base < end
    })
}
