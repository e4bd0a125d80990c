//! `cargo xtask clippy`: clippy, warnings as errors, for every crate on every target
//! it is built for: the host (the whole workspace, tests included, and xtask without
//! its default features, as the `cargo xtask` alias builds it) and each bare-metal
//! target a board file names, with each set of kernel features the board files use
//! (plus `fs-vms` where `cargo xtask image` adds it: boards with an `[image]`).
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::config::vm::FS_VMS_FEATURE;
use crate::workspace::cargo;

/// Bare-metal targets the project knows; a target no board file names is reported.
pub const BARE_METAL_TARGETS: &[&str] = &[
    "aarch64-unknown-none-softfloat",
    "riscv64gc-unknown-none-elf",
    "x86_64-unknown-none",
];

/// Board files whose targets and features are linted.
const BOARD_DIRS: &[&str] = &["configs/board", "xtask/tests/data"];

/// One clippy run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub what: String,
    pub args: Vec<String>,
}

/// (target, features) of each board file under `dirs` (files without `target` are
/// not board files and are skipped).
pub fn board_builds(root: &Path) -> Result<BTreeSet<(String, Vec<String>)>> {
    let mut out = BTreeSet::new();
    let mut qemu = BTreeSet::new();
    for dir in BOARD_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
                continue;
            };
            let Some(target) = doc.get("target").and_then(|t| t.as_str()) else {
                continue;
            };
            let mut features: Vec<String> = doc
                .get("features")
                .and_then(|f| f.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            features.sort();
            features.dedup();
            out.insert((target.to_string(), features.clone()));
            if doc.get("qemu").is_some() {
                qemu.insert((target.to_string(), features.clone()));
            }
            if doc.get("image").is_some() && !features.iter().any(|f| f == FS_VMS_FEATURE) {
                out.insert((target.to_string(), with_fs_vms(features)));
            }
        }
    }
    // `run` builds QEMU boards with fs-vms when their VMs include fs VMs (the disk):
    // each target gets one such set, if its card images gave it none.
    for (target, features) in qemu {
        if !out
            .iter()
            .any(|(t, f)| *t == target && f.iter().any(|x| x == FS_VMS_FEATURE))
        {
            out.insert((target, with_fs_vms(features)));
        }
    }
    Ok(out)
}

/// `features` and fs-vms, sorted.
fn with_fs_vms(mut features: Vec<String>) -> Vec<String> {
    if !features.iter().any(|f| f == FS_VMS_FEATURE) {
        features.push(FS_VMS_FEATURE.to_string());
        features.sort();
    }
    features
}

/// The clippy runs: the host, then per bare-metal target the guest and, per feature
/// set, the hypervisor (which lints vmconfig with it).
pub fn runs(builds: &BTreeSet<(String, Vec<String>)>) -> Vec<Run> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let deny = ["--", "-D", "warnings"];
    let mut runs = vec![Run {
        what: "host: the workspace, all targets (tests included)".into(),
        args: [s(&["clippy", "--workspace", "--all-targets"]), s(&deny)].concat(),
    }];
    runs.push(Run {
        what: "host: xtask as `cargo xtask` builds it (without its default features)".into(),
        args: [
            s(&[
                "clippy",
                "-p",
                "xtask",
                "--no-default-features",
                "--all-targets",
            ]),
            s(&deny),
        ]
        .concat(),
    });
    let targets: BTreeSet<&String> = builds.iter().map(|(t, _)| t).collect();
    for t in targets {
        runs.push(Run {
            what: format!("{t}: testguest"),
            args: [
                s(&["clippy", "-p", "testguest", "--release", "--target", t]),
                s(&deny),
            ]
            .concat(),
        });
        runs.push(Run {
            what: format!("{t}: vmconfig without features"),
            args: [
                s(&[
                    "clippy",
                    "-p",
                    "vmconfig",
                    "--no-default-features",
                    "--target",
                    t,
                ]),
                s(&deny),
            ]
            .concat(),
        });
        for (_, features) in builds.iter().filter(|(bt, _)| bt == t) {
            let list = features.join(",");
            let mut args = s(&["clippy", "-p", "hypervisor", "--release", "--target", t]);
            if !list.is_empty() {
                args.extend(["--features".to_string(), list.clone()]);
            }
            args.extend(s(&deny));
            runs.push(Run {
                what: format!(
                    "{t}: hypervisor, features [{}]",
                    if list.is_empty() { "none" } else { &list }
                ),
                args,
            });
        }
    }
    runs
}

/// Runs every clippy run; returns whether all were clean. Prints one line per run.
pub fn clippy(root: &Path) -> Result<bool> {
    let builds = board_builds(root)?;
    let built: BTreeSet<&str> = builds.iter().map(|(t, _)| t.as_str()).collect();
    for t in BARE_METAL_TARGETS.iter().filter(|t| !built.contains(**t)) {
        println!("xtask: clippy: {t}: no board builds for it yet, nothing to lint");
    }
    let mut failed = Vec::new();
    for run in runs(&builds) {
        println!("xtask: clippy: {}: cargo {}", run.what, run.args.join(" "));
        let status = Command::new(cargo())
            .current_dir(root)
            .args(&run.args)
            .stdin(Stdio::null())
            .status()
            .context("cannot run cargo clippy")?;
        if !status.success() {
            failed.push(run.what.clone());
        }
    }
    if failed.is_empty() {
        println!("xtask: clippy: clean");
        Ok(true)
    } else {
        println!(
            "xtask: clippy: warnings or errors in: {}",
            failed.join("; ")
        );
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repositorys_boards_give_these_runs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let builds = board_builds(root).unwrap();
        let has = |t: &str, f: &[&str]| {
            builds.contains(&(t.to_string(), f.iter().map(|s| s.to_string()).collect()))
        };
        let a = "aarch64-unknown-none-softfloat";
        let r = "riscv64gc-unknown-none-elf";
        assert!(has(a, &[]), "real boards: no features");
        assert!(has(a, &["fs-vms"]), "real boards' card images: fs-vms");
        assert!(has(a, &["s2-page-mappings", "semihosting-exit"]));
        assert!(has(a, &["fs-vms", "s2-page-mappings", "semihosting-exit"]));
        assert!(has(r, &["sifive-test-exit"]));
        assert!(has(r, &["sifive-test-exit", "test-reenter-start"]));
        assert!(
            builds
                .iter()
                .any(|(t, f)| t == r && f.iter().any(|x| x == "fs-vms")),
            "riscv64 QEMU boards run fs VMs from a disk: fs-vms is linted there too"
        );
        let runs = runs(&builds);
        assert_eq!(
            runs[0].args.join(" "),
            "clippy --workspace --all-targets -- -D warnings"
        );
        assert_eq!(
            runs[1].args.join(" "),
            "clippy -p xtask --no-default-features --all-targets -- -D warnings"
        );
        assert!(runs.iter().all(|r| r.args.ends_with(&[
            "--".to_string(),
            "-D".into(),
            "warnings".into()
        ])));
        let line = |r: &Run| r.args.join(" ");
        assert!(runs
            .iter()
            .any(|x| line(x)
                == format!("clippy -p hypervisor --release --target {a} -- -D warnings")));
        assert!(runs.iter().any(|x| line(x)
            == format!("clippy -p hypervisor --release --target {r} --features sifive-test-exit -- -D warnings")));
        assert!(runs.iter().any(
            |x| line(x) == format!("clippy -p testguest --release --target {r} -- -D warnings")
        ));
        let x = "x86_64-unknown-none";
        assert!(has(x, &["isa-debug-exit"]));
        assert!(runs.iter().any(|y| line(y)
            == format!("clippy -p hypervisor --release --target {x} --features isa-debug-exit -- -D warnings")));
        assert!(runs.iter().any(
            |y| line(y) == format!("clippy -p testguest --release --target {x} -- -D warnings")
        ));
    }
}
