//! Registry parsing, includes and cycles, locations, and pulls from `file://` and
//! loopback HTTP registries.
use std::fs;
use std::path::Path;

use super::{image_archive, serve_dir, sha256_hex, write_registry};
use crate::download::{check_sha256, download};
use crate::guest::location::{read_text, Location};
use crate::guest::registry::{self, parse};
use crate::guest::store::{Store, MANIFEST};
use crate::guest::{pull_archive, registry_location};

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn image(name: &str, url: &str) -> String {
    format!(
        "[[images]]\nname = \"{name}\"\nversion = \"1\"\nreleased_at = 2026-01-02\n\
         description = \"d\"\nsha256 = \"{SHA}\"\narch = \"aarch64\"\nurl = \"{url}\"\n\n"
    )
}

fn include(url: &str) -> String {
    format!("[[includes]]\nurl = \"{url}\"\n\n")
}

#[test]
fn parses_axvisor_format() {
    let loc = Location::file("/srv/reg/registry.toml");
    let text = image("a", "a.tar.gz")
        + &image("b", "https://example.invalid/b.tar.gz")
        + "[[images]]\nname = \"r\"\nversion = \"bookworm\"\nreleased_at = \"2026-11-21\"\n\
           description = \"recipe\"\nsha256 = \"\"\narch = \"aarch64\"\nurl = \"recipe:linux-aarch64\"\n\n"
        + &include("more.toml");
    let (images, includes) = parse(&text, &loc).unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0].name, "a");
    assert_eq!(images[0].released_at, "2026-01-02");
    assert_eq!(images[0].sha256, SHA);
    assert_eq!(images[0].location, Location::file("/srv/reg/a.tar.gz"));
    assert_eq!(
        images[1].location,
        Location::http("https://example.invalid/b.tar.gz")
    );
    assert_eq!(images[2].location, Location::Recipe("linux-aarch64".into()));
    assert_eq!(images[2].released_at, "2026-11-21");
    assert_eq!(includes, [Location::file("/srv/reg/more.toml")]);
}

#[test]
fn rejects_bad_entries() {
    let loc = Location::file("/r.toml");
    let no_sha = "[[images]]\nname = \"a\"\nurl = \"a.tar.gz\"\n";
    let e = format!("{:#}", parse(no_sha, &loc).unwrap_err());
    assert!(e.contains("sha256 must be 64 hex digits"), "{e}");
    let bad_name = image("../evil", "a.tar.gz");
    let e = format!("{:#}", parse(&bad_name, &loc).unwrap_err());
    assert!(e.contains("bad image name"), "{e}");
    let bad_scheme = image("a", "ftp://host/a.tar.gz");
    let e = format!("{:#}", parse(&bad_scheme, &loc).unwrap_err());
    assert!(e.contains("unsupported URL scheme"), "{e}");
    let e = format!("{:#}", parse("[[images]]\nname = 3\n", &loc).unwrap_err());
    assert!(e.contains("registry file:///r.toml"), "{e}");
}

#[test]
fn merges_includes_first_definition_wins() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(
        d.join("main.toml"),
        image("a", "a.tar.gz") + &include("sub/b.toml") + &include("c.toml"),
    )
    .unwrap();
    // b.toml includes c.toml too (a diamond, not a cycle) and redefines "a".
    fs::write(
        d.join("sub/b.toml"),
        image("b", "b.tar.gz") + &image("a", "other.tar.gz") + &include("../c.toml"),
    )
    .unwrap();
    fs::write(d.join("c.toml"), image("c", "c.tar.gz")).unwrap();
    let reg = registry::load(&Location::file(d.join("main.toml"))).unwrap();
    let names: Vec<&str> = reg.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        reg.find("a").unwrap().location,
        Location::file(d.join("a.tar.gz"))
    );
    assert_eq!(
        reg.find("b").unwrap().location,
        Location::file(d.join("sub/b.tar.gz"))
    );
}

#[test]
fn detects_include_cycles() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(
        d.join("a.toml"),
        image("a", "a.tar.gz") + &include("b.toml"),
    )
    .unwrap();
    fs::write(
        d.join("b.toml"),
        include(&format!("file://{}", d.join("a.toml").display())),
    )
    .unwrap();
    let e = format!(
        "{:#}",
        registry::load(&Location::file(d.join("a.toml"))).unwrap_err()
    );
    assert!(e.contains("registry include cycle"), "{e}");
    assert!(e.contains("a.toml -> ") && e.contains("b.toml -> "), "{e}");
    fs::write(d.join("self.toml"), include("self.toml")).unwrap();
    let e = format!(
        "{:#}",
        registry::load(&Location::file(d.join("self.toml"))).unwrap_err()
    );
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn missing_include_names_the_url() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("a.toml"), include("nope.toml")).unwrap();
    let e = format!(
        "{:#}",
        registry::load(&Location::file(t.path().join("a.toml"))).unwrap_err()
    );
    assert!(e.contains("nope.toml"), "{e}");
}

#[test]
fn locations() {
    assert_eq!(
        Location::parse("file:///a/b%20c.toml", None).unwrap(),
        Location::file("/a/b c.toml")
    );
    let base = Location::http("http://h:1/x/reg.toml");
    assert_eq!(
        Location::parse("./img.tar.gz", Some(&base)).unwrap(),
        Location::http("http://h:1/x/img.tar.gz")
    );
    assert_eq!(
        Location::parse("HTTPS://h/a", None).unwrap(),
        Location::http("HTTPS://h/a")
    );
    assert!(Location::parse("file://relative/x", None).is_err());
    assert!(Location::parse("", None).is_err());
    assert_eq!(
        registry_location(Path::new("/repo"), Some("/tmp/r.toml")).unwrap(),
        Location::file("/tmp/r.toml")
    );
}

#[test]
fn sha_mismatch_says_expected_and_got() {
    let e = check_sha256("file:///x.tar.gz", &SHA.to_uppercase(), "ff").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("checksum mismatch for file:///x.tar.gz"),
        "{msg}"
    );
    assert!(msg.contains(&format!("expected sha256 {SHA}")), "{msg}");
    assert!(msg.contains("got ff"), "{msg}");
    assert!(check_sha256("x", &SHA.to_uppercase(), SHA).is_ok());
}

#[test]
fn pull_with_a_wrong_checksum_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let reg = write_registry(t.path(), &image_archive(), SHA, None);
    let store = Store {
        root: t.path().join("store"),
    };
    let r = registry::load(&Location::file(reg)).unwrap();
    let e = format!(
        "{:#}",
        pull_archive(&store, r.find("linux-test").unwrap()).unwrap_err()
    );
    assert!(e.contains("checksum mismatch"), "{e}");
    assert!(e.contains(&sha256_hex(&image_archive())), "{e}");
    assert!(!store.image_dir("linux-test").exists());
    assert!(store.pulled().unwrap().is_empty());
}

fn check_pulled(store: &Store, sha: &str, source: &str) {
    let m = store.manifest("linux-test").unwrap().unwrap();
    assert_eq!(m.version, "1.0");
    assert_eq!(m.sha256, sha);
    assert_eq!(m.source, source);
    assert_eq!(m.kernel.as_deref(), Some("Image"));
    assert_eq!(m.initramfs.as_deref(), Some("initramfs.cpio.gz"));
    // The single top-level directory of the archive was stripped.
    let img = store.resolve("linux-test", "Image").unwrap();
    assert_eq!(fs::read(img).unwrap(), b"kernel bytes");
    assert!(store.image_dir("linux-test").join(MANIFEST).is_file());
    assert!(!store.root.join(".tmp").read_dir().unwrap().any(|_| true));
}

#[test]
fn pulls_from_a_file_registry() {
    let t = tempfile::tempdir().unwrap();
    let archive = image_archive();
    let sha = sha256_hex(&archive);
    let reg = write_registry(t.path(), &archive, &sha, None);
    let store = Store {
        root: t.path().join("store"),
    };
    let loc = Location::parse(&format!("file://{}", reg.display()), None).unwrap();
    let r = registry::load(&loc).unwrap();
    let dir = pull_archive(&store, r.find("linux-test").unwrap()).unwrap();
    assert_eq!(dir, store.image_dir("linux-test"));
    let src = format!("file://{}", t.path().join("linux-test.tar.gz").display());
    check_pulled(&store, &sha, &src);
    store.remove("linux-test").unwrap();
    assert!(store.manifest("linux-test").unwrap().is_none());
    assert!(store.remove("linux-test").is_err());
}

#[test]
fn pulls_from_a_loopback_http_registry() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("www");
    fs::create_dir(&served).unwrap();
    let archive = image_archive();
    let sha = sha256_hex(&archive);
    write_registry(&served, &archive, &sha, None);
    let base = serve_dir(&served, 8);
    let loc = Location::parse(&format!("{base}/registry.toml"), None).unwrap();
    let r = registry::load(&loc).unwrap();
    let entry = r.find("linux-test").unwrap();
    assert_eq!(
        entry.location,
        Location::http(format!("{base}/linux-test.tar.gz"))
    );
    let store = Store {
        root: t.path().join("store"),
    };
    pull_archive(&store, entry).unwrap();
    check_pulled(&store, &sha, &format!("{base}/linux-test.tar.gz"));
    // A missing file: the error names the URL and the HTTP status.
    let missing = Location::http(format!("{base}/nope.tar.gz"));
    let e = format!(
        "{:#}",
        download(missing.source().unwrap(), &t.path().join("x"), None).unwrap_err()
    );
    assert!(
        e.contains(&format!("{base}/nope.tar.gz")) && e.contains("404"),
        "{e}"
    );
}

#[test]
fn network_errors_name_the_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/registry.toml");
    let e = format!("{:#}", read_text(&Location::http(url.clone())).unwrap_err());
    assert!(e.contains(&url), "{e}");
    let e = format!(
        "{:#}",
        read_text(&Location::file("/no/such/registry.toml")).unwrap_err()
    );
    assert!(e.contains("/no/such/registry.toml"), "{e}");
}

#[test]
fn the_default_registry_lists_the_built_in_recipes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let loc = Location::file(root.join(crate::guest::DEFAULT_REGISTRY));
    let reg = registry::load(&loc).unwrap();
    for r in crate::guest::recipe::RECIPES {
        let e = reg
            .find(r.name)
            .unwrap_or_else(|| panic!("{} not listed", r.name));
        assert_eq!(e.location, Location::Recipe(r.name.into()));
        assert_eq!(e.arch, r.arch);
    }
}

#[test]
fn names_with_versions_and_several_versions_of_a_name() {
    use crate::guest::split_version;
    assert_eq!(split_version("linux-aarch64"), ("linux-aarch64", None));
    assert_eq!(
        split_version("linux-aarch64:1.2"),
        ("linux-aarch64", Some("1.2"))
    );
    assert_eq!(split_version("linux-aarch64:"), ("linux-aarch64", None));
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("r.toml");
    let entry = |v: &str| {
        format!(
            "[[images]]\nname = \"os\"\nversion = \"{v}\"\nsha256 = \"{}\"\nurl = \"os-{v}.tar.gz\"\n",
            "a".repeat(64)
        )
    };
    fs::write(
        &reg,
        format!("{}{}{}", entry("2.0"), entry("1.0"), entry("2.0")),
    )
    .unwrap();
    let r = registry::load(&Location::file(&reg)).unwrap();
    assert_eq!(
        r.versions("os"),
        ["2.0", "1.0"],
        "the first of a name+version wins"
    );
    assert_eq!(
        r.find("os").unwrap().version,
        "2.0",
        "the first listed is the default"
    );
    assert!(r
        .find_version("os", "1.0")
        .unwrap()
        .url
        .ends_with("os-1.0.tar.gz"));
    assert!(r.find_version("os", "3.0").is_none());
}

#[test]
fn remote_registries_are_read_from_the_cache_until_a_sync() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("www");
    fs::create_dir(&served).unwrap();
    let archive = image_archive();
    let sha = sha256_hex(&archive);
    let reg = write_registry(&served, &archive, &sha, None);
    // Two connections: the first load, then the sync. Later loads that fetched would
    // find no server.
    let base = serve_dir(&served, 2);
    let loc = Location::parse(&format!("{base}/registry.toml"), None).unwrap();
    let cache = |refresh| registry::Cache {
        dir: t.path().join("cache"),
        refresh,
    };
    let r = registry::load_with(&loc, Some(&cache(false))).unwrap();
    assert_eq!(r.find("linux-test").unwrap().version, "1.0");
    assert!(cache(false).file(&loc).is_file());
    // The registry changes on the server: the cache still says 1.0 ...
    let text = fs::read_to_string(&reg)
        .unwrap()
        .replace("\"1.0\"", "\"1.1\"");
    fs::write(&reg, text).unwrap();
    let r = registry::load_with(&loc, Some(&cache(false))).unwrap();
    assert_eq!(r.find("linux-test").unwrap().version, "1.0");
    // ... until a sync fetches it again.
    let r = registry::load_with(&loc, Some(&cache(true))).unwrap();
    assert_eq!(r.find("linux-test").unwrap().version, "1.1");
    let r = registry::load_with(&loc, Some(&cache(false))).unwrap();
    assert_eq!(r.find("linux-test").unwrap().version, "1.1");
    // The server is gone (2 connections served): a sync fails and says so.
    let err = registry::load_with(&loc, Some(&cache(true))).unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot load the registry"),
        "{err:#}"
    );
    // A local registry is read as it is: no cache file.
    let local = write_registry(t.path(), &archive, &sha, None);
    let l = Location::file(&local);
    registry::load_with(&l, Some(&cache(false))).unwrap();
    assert!(!cache(false).file(&l).exists());
}
