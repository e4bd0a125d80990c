//! Build script of the test guest: on bare-metal targets, link the binary with the
//! linker script of its architecture (`src/arch/<arch>/link.ld`). Host builds (where the
//! guest is an empty program) get no linker arguments.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        return;
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let script = dir.join("src").join("arch").join(&arch).join("link.ld");
    if script.is_file() {
        println!("cargo:rerun-if-changed={}", script.display());
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        if arch == "x86_64" {
            // A plain executable at its physical address (the target links a static
            // PIE by default; the 32-bit Multiboot entry wants absolute addresses).
            println!("cargo:rustc-link-arg-bins=--no-pie");
        }
    } else {
        println!(
            "cargo:warning=testguest: no linker script for {arch} at {}",
            script.display()
        );
    }
}
