//! Wires the build to what `cargo xtask build` generated:
//! - `HV_GEN_RS`: the VM table (see `src/spec.rs`); an empty table without it,
//!   so `cargo build`/`cargo clippy` of the bare crate still work.
//! - `HV_LOAD_ADDR`: the physical address the image is linked at (board file
//!   `hv_load_addr`), and `HV_TEXT_OFFSET`: its offset above the 2 MiB-aligned RAM
//!   base (the Image header's text_offset), written into the linker script.
use std::{env, fs, path::PathBuf};

const DEFAULT_GEN: &str = r#"
pub static BUILD: BuildInfo = BuildInfo { board: "none", log: LogLevel::Info, on_last_stop: OnLastStop::PowerOff };
pub static VMS: &[VmSpec] = &[];
"#;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=HV_GEN_RS");
    println!("cargo:rerun-if-env-changed=HV_LOAD_ADDR");
    println!("cargo:rerun-if-env-changed=HV_TEXT_OFFSET");
    let gen = match env::var("HV_GEN_RS") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("HV_GEN_RS={path}: {e}"))
        }
        Err(_) => DEFAULT_GEN.to_string(),
    };
    fs::write(out.join("gen.rs"), gen).unwrap();

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target_os == "none" {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
        let template = manifest.join(format!("src/arch/{arch}/linker.ld"));
        println!("cargo:rerun-if-changed={}", template.display());
        let load = env::var("HV_LOAD_ADDR").unwrap_or_else(|_| "0x40200000".into());
        let text_offset = env::var("HV_TEXT_OFFSET").unwrap_or_else(|_| "0x200000".into());
        let script = fs::read_to_string(&template)
            .unwrap_or_else(|e| panic!("{}: {e}", template.display()))
            .replace("%LOAD_ADDR%", &load)
            .replace("%TEXT_OFFSET%", &text_offset);
        fs::write(out.join("linker.ld"), script).unwrap();
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            out.join("linker.ld").display()
        );
        if arch == "x86_64" {
            // A plain executable at its physical address (the target links a static
            // PIE by default; QEMU's PVH loader and the 32-bit entry code want
            // absolute addresses).
            println!("cargo:rustc-link-arg-bins=--no-pie");
        }
    }
}
