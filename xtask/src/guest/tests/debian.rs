//! Kernel package choice and the recipes' image header check.
use crate::guest::debian::{metapackage_dependency, newest_kernel_name};
use crate::guest::recipe::{check_image, find, RECIPES};

#[test]
fn picks_the_kernel_package() {
    let depends = "linux-image-arm64\n  Depends: linux-image-6.1.0-56-arm64\n";
    assert_eq!(
        metapackage_dependency(depends).as_deref(),
        Some("linux-image-6.1.0-56-arm64")
    );
    assert_eq!(metapackage_dependency("x\n  Recommends: y\n"), None);
    let names = [
        "linux-image-6.1.0-47-arm64-unsigned",
        "linux-image-6.1.0-56-cloud-arm64-unsigned",
        "linux-image-6.1.0-56-rt-arm64",
        "linux-image-6.1.0-9-arm64",
        "linux-image-6.1.0-56-arm64-unsigned",
        "linux-image-arm64",
        "linux-image-6.1.0-56-arm64-dbg",
    ];
    assert_eq!(
        newest_kernel_name(names.iter().copied(), "arm64").as_deref(),
        Some("linux-image-6.1.0-56-arm64")
    );
    let rv = [
        "linux-image-6.12.38+deb13-riscv64",
        "linux-image-6.12.41+deb13-riscv64",
    ];
    assert_eq!(
        newest_kernel_name(rv.iter().copied(), "riscv64").as_deref(),
        Some("linux-image-6.12.41+deb13-riscv64")
    );
}

#[test]
fn recipes_check_the_image_header() {
    let arm = find("linux-aarch64").unwrap();
    let mut img = vec![0u8; 64];
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    assert!(check_image(arm, &img, "Image".as_ref()).is_ok());
    let rv = find("linux-riscv64").unwrap();
    assert!(check_image(rv, &img, "Image".as_ref()).is_err());
    assert!(check_image(arm, &img[..10], "Image".as_ref()).is_err());
    // x86's bzImage: "HdrS" at 0x202, not an Image header.
    let x86 = find("linux-x86_64").unwrap();
    assert!(check_image(x86, &img, "bzImage".as_ref()).is_err());
    let mut bz = vec![0u8; 0x400];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    assert!(check_image(x86, &bz, "bzImage".as_ref()).is_ok());
    assert!(check_image(arm, &bz, "Image".as_ref()).is_err());
    let e = check_image(x86, &bz[..0x204], "k".as_ref()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "k is not a x86_64 Linux bzImage (no bzImage header magic at offset 0x202)"
    );
    assert!(RECIPES.iter().all(|r| r.qemu.contains("-nic none")));
}
