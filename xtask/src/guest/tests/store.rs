//! The store: names, resolution of `image:<name>/<file>`, staging.
use std::fs;

use crate::guest::store::{check_name, Manifest, Store};

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store {
        root: t.path().join("store"),
    };
    (t, s)
}

fn put(store: &Store, name: &str, files: &[&str]) {
    let st = store.staging(name).unwrap();
    for f in files {
        fs::write(st.image.join(f), f.as_bytes()).unwrap();
    }
    st.commit(Manifest {
        name: name.into(),
        version: "v1".into(),
        ..Manifest::default()
    })
    .unwrap();
}

#[test]
fn names() {
    assert!(check_name("linux-aarch64").is_ok());
    assert!(check_name("a_b.c-1").is_ok());
    for bad in ["", ".hidden", "..", "a/b", "a b", "../x"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn resolves_files_of_pulled_images() {
    let (_t, s) = store();
    put(&s, "img", &["Image"]);
    assert_eq!(
        s.resolve("img", "Image").unwrap(),
        s.image_dir("img").join("Image")
    );
    let e = s.resolve("img", "nope.dtb").unwrap_err();
    assert!(e.contains("has no file nope.dtb"), "{e}");
    for bad in ["../x", "/etc/passwd", "", "a/../b"] {
        assert!(
            s.resolve("img", bad).unwrap_err().contains("bad file"),
            "{bad}"
        );
    }
    let e = s.resolve("linux-aarch64", "Image").unwrap_err();
    assert!(e.contains("is not pulled"), "{e}");
    assert!(e.contains("linux-aarch64/Image"), "{e}");
    assert!(e.contains("`cargo xtask guest pull linux-aarch64`"), "{e}");
}

#[test]
fn staging_is_removed_unless_committed() {
    let (_t, s) = store();
    let st = s.staging("img").unwrap();
    let dir = st.dir.clone();
    fs::write(st.image.join("Image"), b"x").unwrap();
    drop(st);
    assert!(!dir.exists());
    assert!(s.manifest("img").unwrap().is_none());
    // A second pull replaces the first.
    put(&s, "img", &["A"]);
    put(&s, "img", &["B"]);
    assert!(!s.image_dir("img").join("A").exists());
    assert!(s.image_dir("img").join("B").exists());
    let pulled = s.pulled().unwrap();
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].version, "v1");
    assert!(pulled[0].pulled_at > 0);
}

#[test]
fn manifest_round_trips() {
    let (_t, s) = store();
    let st = s.staging("img").unwrap();
    let m = Manifest {
        name: "img".into(),
        version: "6.1".into(),
        sha256: "ab".into(),
        source: "recipe:img".into(),
        arch: "aarch64".into(),
        description: "d".into(),
        pulled_at: 0,
        kernel: Some("Image".into()),
        initramfs: Some("initramfs.cpio.gz".into()),
        dtbs: None,
        packages: vec!["p 1".into()],
    };
    st.commit(m.clone()).unwrap();
    let mut got = s.manifest("img").unwrap().unwrap();
    got.pulled_at = 0;
    assert_eq!(got, m);
}

#[test]
fn default_root_uses_the_environment_variable() {
    // Only checks the shape: the variable itself is not set here (tests share the
    // environment); the CLI test covers HV_GUEST_STORE.
    if std::env::var_os(crate::guest::store::STORE_ENV).is_none() {
        if let Ok(r) = crate::guest::store::default_root() {
            assert!(r.ends_with("hypervisor-guests"), "{}", r.display());
        }
    }
}
