//! Which Debian kernel package a built-in recipe takes: the one the suite's
//! `linux-image-<flavor>` metapackage points to (its `-unsigned` variant where there
//! is one), else the newest ABI by version. Fetching and unpacking is [`crate::apt`]'s.
use anyhow::{Context, Result};

use crate::apt::PrivateApt;

/// The kernel package of `flavor` (e.g. `arm64`): the image the metapackage
/// `linux-image-<flavor>` depends on, i.e. the suite's current default kernel (its
/// newest ABI), as its `-unsigned` variant where one exists. Without the metapackage,
/// the newest `linux-image-<abi>-<flavor>[-unsigned]` by version.
pub fn kernel_package(apt: &PrivateApt, flavor: &str) -> Result<String> {
    let meta = format!("linux-image-{flavor}");
    let dep = apt
        .cache(&["depends", &meta])?
        .and_then(|text| metapackage_dependency(&text));
    let base = match dep {
        Some(d) => d,
        None => newest_kernel(apt, flavor)?,
    };
    let unsigned = format!("{base}-unsigned");
    if base.ends_with("-unsigned") || apt.version(&unsigned)?.is_none() {
        return Ok(base);
    }
    Ok(unsigned)
}

/// The first `linux-image-*` dependency in `apt-cache depends` output.
pub fn metapackage_dependency(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim().trim_start_matches('|');
        let dep = l.strip_prefix("Depends:")?.trim();
        let dep = dep.trim_start_matches('<').trim_end_matches('>');
        dep.starts_with("linux-image-").then(|| dep.to_string())
    })
}

fn newest_kernel(apt: &PrivateApt, flavor: &str) -> Result<String> {
    let names = apt
        .cache(&["pkgnames", "linux-image-"])?
        .unwrap_or_default();
    let best = newest_kernel_name(names.lines(), flavor);
    best.with_context(|| {
        format!(
            "no Debian kernel package linux-image-*-{flavor} found in the private package lists"
        )
    })
}

/// Among package names, the newest `linux-image-<abi>-<flavor>` (a `-unsigned` name
/// counts as its base name, which is returned). The ABI is numbers with an optional
/// `+debNN` suffix (6.1.0-56, 6.12.38+deb13), so other flavors (`-cloud-arm64`,
/// `-rt-arm64`) do not match.
pub fn newest_kernel_name<'a>(
    names: impl Iterator<Item = &'a str>,
    flavor: &str,
) -> Option<String> {
    let suffix = format!("-{flavor}");
    let mut best: Option<(Vec<u64>, String)> = None;
    for n in names {
        let n = n.trim();
        let base = n.strip_suffix("-unsigned").unwrap_or(n);
        let Some(abi) = base
            .strip_prefix("linux-image-")
            .and_then(|r| r.strip_suffix(&suffix))
        else {
            continue;
        };
        let plain = match abi.split_once("+deb") {
            Some((v, d)) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => v,
            Some(_) => continue,
            None => abi,
        };
        let numeric = plain.starts_with(|c: char| c.is_ascii_digit())
            && plain
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
        if !numeric {
            continue;
        }
        let key: Vec<u64> = abi
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok())
            .collect();
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, base.to_string()));
        }
    }
    best.map(|(_, n)| n)
}
