//! `cargo xtask fuzz NAME --seconds N`: runs one fuzz target of `hypervisor::fuzz`
//! (kernel/src/fuzz.rs) for N seconds.
//!
//! Two engines: libFuzzer through cargo-fuzz (the crate in fuzz/, which needs a
//! nightly toolchain and `cargo install cargo-fuzz`), and the stable driver of
//! `hypervisor::fuzz` (random inputs and mutations of the seed corpus, run as the
//! ignored test `fuzz::tests::fuzz_from_env` in release mode). The stable one is the
//! default (CI has no nightly); `--engine libfuzzer` asks for libFuzzer, `--engine
//! auto` takes it when `cargo +nightly fuzz` works.
//!
//! libFuzzer's build instruments the whole `hypervisor` crate and its dependencies
//! (cargo-fuzz's SanitizerCoverage and AddressSanitizer on every crate): about 2
//! CPU-minutes the first time (the fuzz/ crate has its own target directory), a
//! link of a second or two for each further target.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace::cargo;

/// Which engine runs the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Auto,
    Stable,
    Libfuzzer,
}

/// Whether `cargo +nightly fuzz` is there (a nightly toolchain with cargo-fuzz).
fn libfuzzer_available() -> bool {
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs target `name` for `seconds`; returns whether it ended without a finding.
pub fn fuzz(
    root: &std::path::Path,
    name: &str,
    seconds: u64,
    seed: u64,
    engine: Engine,
) -> Result<bool> {
    let libfuzzer = match engine {
        Engine::Stable => false,
        Engine::Libfuzzer if !libfuzzer_available() => bail!(
            "--engine libfuzzer needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`, `cargo install cargo-fuzz`)"
        ),
        Engine::Libfuzzer => true,
        Engine::Auto => libfuzzer_available(),
    };
    let mut cmd = if libfuzzer {
        println!("xtask: fuzz {name}: libFuzzer (cargo +nightly fuzz) for {seconds} s");
        let mut c = Command::new("cargo");
        c.current_dir(root.join("fuzz"))
            .args(["+nightly", "fuzz", "run", name]);
        if name == "vmconfig" {
            // The corpus libFuzzer grows, then the repository's VM configs as seeds.
            c.arg(format!("corpus/{name}")).arg("../configs/vms");
            std::fs::create_dir_all(root.join("fuzz/corpus").join(name))
                .context("cannot create the fuzz corpus folder")?;
        }
        c.args([
            "--",
            &format!("-max_total_time={seconds}"),
            &format!("-seed={seed}"),
        ]);
        c
    } else {
        println!("xtask: fuzz {name}: the stable driver for {seconds} s (no cargo-fuzz on nightly, or --engine stable)");
        let mut c = Command::new(cargo());
        c.current_dir(root)
            .args([
                "test",
                "-p",
                "hypervisor",
                "--release",
                "--lib",
                "fuzz::tests::fuzz_from_env",
                "--",
                "--ignored",
                "--exact",
                "--nocapture",
            ])
            .env("HV_FUZZ_TARGET", name)
            .env("HV_FUZZ_SECONDS", seconds.to_string())
            .env("HV_FUZZ_SEED", seed.to_string());
        c
    };
    let status = cmd.status().context("cannot run cargo")?;
    Ok(status.success())
}
