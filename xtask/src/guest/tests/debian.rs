//! Parsing the host's apt sources, the private source list, kernel choice.
use crate::guest::debian::{
    field, metapackage_dependency, newest_kernel_name, parse_deb822, parse_one_line,
    private_source_list, AptSource,
};
use crate::guest::recipe::{check_image, find, RECIPES};

const DEB822: &str = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n\
Suites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n\
Types: deb deb-src\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\
Components: main\n\n\
Types: deb\nURIs: http://other.example/node\nSuites: nodistro\nComponents: main\n  \n\
Types: deb\nEnabled: no\nURIs: http://disabled.example/debian\nSuites: bookworm\n";

#[test]
fn parses_deb822_sources() {
    let s = parse_deb822(DEB822);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].uri, "http://mirror.example/debian");
    assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
    assert_eq!(s[0].signed_by.as_deref(), Some("/usr/share/keyrings/k.gpg"));
    assert_eq!(s[1].suites, ["bookworm-security"]);
    assert_eq!(s[1].signed_by, None);
}

#[test]
fn parses_one_line_sources() {
    let s = parse_one_line(
        "# c\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n\
         deb-src http://m.example/debian bookworm main\ndeb http://m.example/debian bookworm-backports main # x\n",
    );
    assert_eq!(
        s,
        [
            AptSource {
                uri: "http://m.example/debian".into(),
                suites: vec!["bookworm".into()],
                signed_by: Some("/k.gpg".into()),
            },
            AptSource {
                uri: "http://m.example/debian".into(),
                suites: vec!["bookworm-backports".into()],
                signed_by: None,
            },
        ]
    );
}

#[test]
fn private_list_moves_the_host_release_to_the_recipe_release() {
    let s = parse_deb822(DEB822);
    let list = private_source_list(&s, Some("bookworm"), "trixie", "riscv64").unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(
        lines[0],
        "deb [arch=riscv64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian trixie main"
    );
    assert!(lines[1].ends_with("http://mirror.example/debian trixie-updates main"));
    assert!(lines[2].ends_with("http://mirror.example/debian-security trixie-security main"));
    assert!(!list.contains("nodistro") && !list.contains("disabled"));
    let same = private_source_list(&s, Some("bookworm"), "bookworm", "arm64").unwrap();
    assert!(same.contains("[arch=arm64 ") && same.contains(" bookworm-security main"));
    let e = private_source_list(&s[2..], Some("bookworm"), "bookworm", "arm64").unwrap_err();
    assert!(e.to_string().contains("no Debian mirror"), "{e}");
}

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
    assert_eq!(
        field("Package: x\nVersion: 1:1.35.0-4\n", "Version").as_deref(),
        Some("1:1.35.0-4")
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
    assert!(RECIPES.iter().all(|r| r.qemu.contains("-nic none")));
}
