//! Parsing the host's apt sources, the private source list, apt's status lines and
//! package records.
use super::{
    field, first_dependency, parse_deb822, parse_one_line, parse_status, private_source_list,
    AptSource,
};

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
                components: vec!["main".into()],
                signed_by: Some("/k.gpg".into()),
            },
            AptSource {
                uri: "http://m.example/debian".into(),
                suites: vec!["bookworm-backports".into()],
                components: vec!["main".into()],
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
fn one_line_sources_keep_their_components() {
    let one = parse_one_line(
        "deb [signed-by=/k.gpg] http://m/debian bookworm main contrib\n# deb http://z x y\n",
    );
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].components, ["main", "contrib"]);
    let list = private_source_list(&one, Some("bookworm"), "trixie", "arm64").unwrap();
    assert_eq!(
        list,
        "deb [arch=arm64 signed-by=/k.gpg] http://m/debian trixie main contrib\n"
    );
}

#[test]
fn reads_status_lines_and_records() {
    assert_eq!(
        parse_status("dlstatus:4:65.7748:Retrieving file 4 of 5"),
        Some((65, "Retrieving file 4 of 5".into()))
    );
    assert_eq!(
        parse_status("dlstatus:1:100.0000:a:b"),
        Some((100, "a:b".into()))
    );
    assert_eq!(
        parse_status("Get:1 http://m/debian bookworm InRelease"),
        None
    );
    assert_eq!(parse_status("dlstatus:1:x:y"), None);
    assert_eq!(
        field("Package: x\nVersion: 1:1.35.0-4\n", "Version").as_deref(),
        Some("1:1.35.0-4")
    );
    assert_eq!(
        first_dependency("linux-image-6.12.117+deb12-arm64 (= 6.12.117-1~deb12u1), x"),
        Some("linux-image-6.12.117+deb12-arm64".into())
    );
    assert_eq!(first_dependency(""), None);
}
