//! Files that a stop signal (SIGINT from Ctrl-C, SIGTERM, SIGHUP) must not leave
//! behind, such as the `.part` files of downloads and card images. Their owners
//! remove them on every other path (errors, panics) when dropped; a signal ends the
//! process without running drops, so the signal handler (installed by
//! [`crate::qemu`], which also ends QEMU) removes the registered files before xtask
//! ends.
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use anyhow::{Context, Result};

/// Room for this many files at a time (xtask has at most two: a download inside an
/// image build); more are removed by their owners only.
const SLOTS: usize = 8;

/// The registered paths as C strings, null where free. A path's memory is never
/// freed (a handler may be reading it when its file is deregistered): a few bytes
/// per temporary file.
static PATHS: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];

/// While alive, a stop signal removes this file.
#[must_use]
pub struct OnSignal {
    slot: Option<usize>,
}

/// Registers `path` for removal on a stop signal, until the guard is dropped.
pub fn remove_on_signal(path: &Path) -> Result<OnSignal> {
    crate::qemu::install_handlers()?;
    let c = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: a path with a NUL byte", path.display()))?;
    let ptr = c.into_raw();
    for (i, slot) in PATHS.iter().enumerate() {
        if slot
            .compare_exchange(null_mut(), ptr, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Ok(OnSignal { slot: Some(i) });
        }
    }
    // SAFETY: `ptr` came from `into_raw` above and was published nowhere.
    drop(unsafe { CString::from_raw(ptr) });
    Ok(OnSignal { slot: None })
}

impl Drop for OnSignal {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            PATHS[i].store(null_mut(), Ordering::SeqCst);
        }
    }
}

/// Removes every registered file. Called from the signal handler: it only touches
/// atomics and calls unlink(2), which are async-signal-safe.
pub fn remove_all() {
    for slot in &PATHS {
        let p = slot.swap(null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a NUL-terminated string from `CString::into_raw` that is
            // never freed; unlink(2) only reads it.
            unsafe { libc::unlink(p) };
        }
    }
}

#[cfg(test)]
mod tests {
    //! A stop signal to a process holding a registered file: the file is gone and the
    //! process died of the signal. The process is this test binary again, running
    //! the ignored helper test below.
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    const ENV: &str = "XTASK_CLEANUP_TEST_FILE";

    #[test]
    #[ignore = "run by a_stop_signal_removes_the_registered_files in a process of its own"]
    fn helper_registers_a_file_and_signals_itself() {
        let (Some(path), Some(sig)) = (std::env::var_os(ENV), std::env::var_os("SIG")) else {
            return;
        };
        let path = std::path::PathBuf::from(path);
        std::fs::write(&path, b"partial").unwrap();
        let _guard = super::remove_on_signal(&path).unwrap();
        let sig: i32 = sig.to_str().unwrap().parse().unwrap();
        // SAFETY: kill(2) of this very process.
        unsafe { libc::kill(libc::getpid(), sig) };
        std::thread::sleep(std::time::Duration::from_secs(10));
        panic!("still alive after signal {sig}");
    }

    #[test]
    fn a_stop_signal_removes_the_registered_files() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let t = tempfile::tempdir().unwrap();
            let path = t.path().join(".card.img.part");
            let status = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "cleanup::tests::helper_registers_a_file_and_signals_itself",
                    "--ignored",
                    "--nocapture",
                ])
                .env(ENV, &path)
                .env("SIG", sig.to_string())
                .status()
                .unwrap();
            assert_eq!(status.signal(), Some(sig), "signal {sig}: {status}");
            assert!(!path.exists(), "signal {sig}: {} was left", path.display());
        }
    }
}
