//! Which files a config may name on the host: images (`kernel_path`, `dtb_path`,
//! `ramdisk_path`) and a board's bootloader and DTB are copied into VMs and card
//! images, so a path must be a file a user would mean, not any file the build can
//! read (`[image.bootloader] path = "/etc/shadow"`). A regular file inside the
//! repository, the config's directory or the guest image store is taken as it is;
//! anywhere else its name must say what it is (an expected extension). xtask finds
//! out where a path leads; the rule is here. (The hypervisor reads only the files
//! on its card, which are these files copied.)
use alloc::format;
use alloc::string::String;

/// What a named file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Kernel,
    Dtb,
    Ramdisk,
    Bootloader,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Kernel => "kernel image",
            FileKind::Dtb => "device tree",
            FileKind::Ramdisk => "ramdisk",
            FileKind::Bootloader => "bootloader",
        }
    }

    /// File name endings a file of this kind has (compared without case).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileKind::Kernel => &[".bin", ".img", ".elf", ".image", ".gz", ".efi"],
            FileKind::Dtb => &[".dtb"],
            FileKind::Ramdisk => &[
                ".cpio", ".gz", ".img", ".xz", ".zst", ".lz4", ".lzma", ".bz2", ".initrd",
            ],
            FileKind::Bootloader => &[".bin", ".img", ".itb", ".elf", ".fd", ".rom"],
        }
    }
}

/// Where a path led, as the caller found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// It is a regular file (symbolic links followed).
    pub regular: bool,
    /// It lies inside the repository, the config's directory or the guest store
    /// (symbolic links and `..` resolved).
    pub inside_known: bool,
}

fn has_extension(path: &str, kind: FileKind) -> bool {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    // "Image" (an arm64 kernel's usual name) and "vmlinuz-*" are names, not endings.
    let named = kind == FileKind::Kernel && (name == "image" || name.starts_with("vmlinu"));
    named
        || kind
            .extensions()
            .iter()
            .any(|e| name.ends_with(e) && name.len() > e.len())
}

/// Why `path` (as written) may not be the `kind` file a config names.
pub fn file_problem(path: &str, kind: FileKind, found: Found) -> Option<String> {
    if !found.regular {
        return Some(format!(
            "{path:?} is not a regular file: a {} is a file",
            kind.name()
        ));
    }
    if found.inside_known || has_extension(path, kind) {
        return None;
    }
    Some(format!(
        "{path:?} is outside the repository, the config's directory and the guest image store, and its name does not end in {}: a {} from elsewhere must be named as one (this refuses paths that reach files nobody meant to copy into a VM or card image)",
        kind.extensions().join(", "),
        kind.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTSIDE: Found = Found {
        regular: true,
        inside_known: false,
    };

    #[test]
    fn files_outside_must_say_what_they_are() {
        let e = file_problem("/etc/shadow", FileKind::Bootloader, OUTSIDE).unwrap();
        assert!(
            e.starts_with("\"/etc/shadow\" is outside the repository"),
            "{e}"
        );
        assert!(file_problem("../../../etc/passwd", FileKind::Kernel, OUTSIDE).is_some());
        assert_eq!(
            file_problem("/opt/u-boot/u-boot.itb", FileKind::Bootloader, OUTSIDE),
            None
        );
        assert_eq!(
            file_problem("/srv/k/Image", FileKind::Kernel, OUTSIDE),
            None
        );
        assert!(file_problem("/srv/k/.dtb", FileKind::Dtb, OUTSIDE).is_some());
        let inside = Found {
            regular: true,
            inside_known: true,
        };
        assert_eq!(
            file_problem("guests/x/kernel", FileKind::Kernel, inside),
            None
        );
        let dir = Found {
            regular: false,
            inside_known: true,
        };
        assert!(file_problem("/dev/sda.img", FileKind::Ramdisk, dir)
            .unwrap()
            .contains("not a regular file"));
    }
}
