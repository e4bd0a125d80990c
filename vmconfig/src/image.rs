//! The Linux `Image` boot protocol as the hypervisor must honour it when loading a
//! guest kernel. arm64 and RISC-V share the header layout (text_offset at byte 8,
//! image_size at byte 16, a magic at byte 56) and the rule that the kernel's whole
//! footprint, bss included, must not collide with the DTB or initramfs the hypervisor
//! places; they differ in the magic and in where the kernel may be loaded. The two
//! variants are [`ARM64`] and [`RISCV`] ([`ArchLimits::linux_image`]).
//!
//! The hypervisor loads kernels with it; the checks use it before that (xtask on the
//! files on disk, the hypervisor on card VMs): which architecture an image is for
//! ([`image_arch`]: the `Image` magics, an ELF header's machine), where a Linux
//! kernel really lives (bss included), and that nothing placed in a VM's RAM (kernel,
//! ramdisk, DTB, the DTB the hypervisor generates) overlaps anything else
//! ([`check_images`]).
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::key::{KeyPath, Problems};
use crate::model::{ArchLimits, ImageRef, MemRegion, VmConfig};
use crate::range::{human_size, Range};

const BLOCK_2M: u64 = 2 << 20;

/// The bytes of the header this module reads; shorter images have no header.
const HEADER_LEN: usize = 64;
const TEXT_OFFSET_AT: usize = 8;
const IMAGE_SIZE_AT: usize = 16;

/// Where a kernel of a [`Format`] may be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadRule {
    /// text_offset above a 2 MiB boundary (arm64).
    TextOffsetAbove2M,
    /// On a 2 MiB boundary, text_offset aside (64-bit RISC-V).
    Aligned2M,
}

/// One architecture's variant of the `Image` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// The architecture as messages name it ("arm64", "RISC-V").
    pub arch: &'static str,
    /// Offset of the magic that tells a Linux `Image` from a bare-metal binary.
    pub magic_at: usize,
    pub magic: [u8; 4],
    /// The text_offset to assume when image_size is 0 (old arm64 kernels, whose
    /// header fields were not yet defined); None to take the header as it is.
    pub unsized_text_offset: Option<u64>,
    pub load_rule: LoadRule,
}

/// The arm64 Linux `Image` header: the "ARM\x64" magic, and a kernel that sits
/// text_offset above a 2 MiB boundary.
pub const ARM64: Format = Format {
    arch: "arm64",
    magic_at: 56,
    magic: *b"ARM\x64",
    // Kernels before 3.17 leave image_size 0 and load at 0x80000 by convention.
    unsized_text_offset: Some(0x8_0000),
    load_rule: LoadRule::TextOffsetAbove2M,
};

/// The RISC-V Linux `Image` header: the "RSC\x05" magic (magic2), and a 64-bit
/// kernel that sits at a 2 MiB-aligned address.
pub const RISCV: Format = Format {
    arch: "RISC-V",
    magic_at: 56,
    magic: *b"RSC\x05",
    unsized_text_offset: None,
    load_rule: LoadRule::Aligned2M,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// Bytes from the load address the kernel uses, bss included (0 = unknown).
    pub image_size: u64,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Format {
    /// The header of an `Image` of this format, or None for other images (bare-metal
    /// binaries).
    pub fn parse(&self, image: &[u8]) -> Option<ImageHeader> {
        let magic_end = self.magic_at + self.magic.len();
        if image.len() < HEADER_LEN.max(magic_end) || image[self.magic_at..magic_end] != self.magic
        {
            return None;
        }
        let image_size = le64(image, IMAGE_SIZE_AT);
        let text_offset = match self.unsized_text_offset {
            Some(assumed) if image_size == 0 => assumed,
            _ => le64(image, TEXT_OFFSET_AT),
        };
        Some(ImageHeader {
            text_offset,
            image_size,
        })
    }

    /// Checks a Linux kernel's placement: `load` must follow the format's
    /// [`LoadRule`], and the kernel's whole footprint must avoid `others` (name,
    /// start, end: DTB, initrd). Returns the footprint `(start, end)` to check against
    /// guest RAM.
    pub fn check_placement(
        &self,
        h: &ImageHeader,
        file_len: u64,
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<(u64, u64), String> {
        let arch = self.arch;
        match self.load_rule {
            LoadRule::TextOffsetAbove2M
                if !load.wrapping_sub(h.text_offset).is_multiple_of(BLOCK_2M) =>
            {
                return Err(format!(
                    "kernel_load_addr {load:#x} breaks the {arch} boot protocol: it must be a 2 MiB-aligned address plus the Image's text_offset {:#x}",
                    h.text_offset
                ));
            }
            LoadRule::Aligned2M if !load.is_multiple_of(BLOCK_2M) => {
                return Err(format!(
                    "kernel_load_addr {load:#x} breaks the {arch} boot protocol: a 64-bit kernel must be loaded at a 2 MiB-aligned address"
                ));
            }
            _ => {}
        }
        let size = h.image_size.max(file_len);
        kernel_clear_of(load, size, "Image image_size, bss included", others)
    }

    /// Where a guest kernel with this format's header will live, bss included, if its
    /// placement follows the boot protocol and avoids `others` (name, start, end);
    /// None for kernels without the header (bare-metal images).
    pub fn kernel_footprint(
        &self,
        image: &[u8],
        load: u64,
        others: &[(&'static str, u64, u64)],
    ) -> Result<Option<(u64, u64)>, String> {
        match self.parse(image) {
            Some(h) => self
                .check_placement(&h, image.len() as u64, load, others)
                .map(Some),
            None => Ok(None),
        }
    }
}

/// The kernel's footprint `load`..`load + size` (what `size` is, for messages),
/// checked to overlap none of `others` (name, start, end).
pub(crate) fn kernel_clear_of(
    load: u64,
    size: u64,
    sized_by: &str,
    others: &[(&'static str, u64, u64)],
) -> Result<(u64, u64), String> {
    let end = load
        .checked_add(size)
        .ok_or_else(|| format!("kernel at {load:#x} + {size:#x} overflows"))?;
    for &(what, start, stop) in others {
        if start < end && load < stop {
            return Err(format!(
                "the kernel needs {load:#x}..{end:#x} ({sized_by}) but the {what} is at {start:#x}..{stop:#x}"
            ));
        }
    }
    Ok((load, end))
}

/// Bytes of an image's start [`image_arch`] and [`check_images`] look at.
/// (A Multiboot header may lie anywhere in the first 8 KiB: they are all read; an
/// x86 bzImage's setup header ends at 0x26c.)
pub const HEAD_LEN: usize = crate::multiboot::SEARCH_LEN + 32;

/// The architecture (as [`ArchLimits::name`] names it) an image is for, and what
/// says so; `None` for raw images without a header (bare-metal binaries).
pub fn image_arch(head: &[u8]) -> Option<(&'static str, &'static str)> {
    for (f, arch) in [(ARM64, "aarch64"), (RISCV, "riscv64")] {
        let end = f.magic_at + f.magic.len();
        if head.len() >= end && head[f.magic_at..end] == f.magic {
            return Some((
                arch,
                if arch == "aarch64" {
                    "an arm64 Linux Image (magic \"ARM\\x64\" at 0x38)"
                } else {
                    "a RISC-V Linux Image (magic \"RSC\\x05\" at 0x38)"
                },
            ));
        }
    }
    if crate::bzimage::is_bzimage(head) {
        return Some(("x86_64", "an x86 Linux bzImage (\"HdrS\" at 0x202)"));
    }
    if head.len() >= 20 && head[..4] == *b"\x7fELF" {
        // e_machine, in the byte order EI_DATA gives.
        let m = if head[5] == 2 {
            u16::from_be_bytes([head[18], head[19]])
        } else {
            u16::from_le_bytes([head[18], head[19]])
        };
        return Some(match m {
            183 => ("aarch64", "an ELF file for aarch64 (e_machine 183)"),
            243 => ("riscv64", "an ELF file for RISC-V (e_machine 243)"),
            62 => ("x86_64", "an ELF file for x86_64 (e_machine 62)"),
            40 => ("arm", "an ELF file for 32-bit Arm (e_machine 40)"),
            3 => ("x86", "an ELF file for 32-bit x86 (e_machine 3)"),
            _ => (
                "another architecture",
                "an ELF file of an unknown e_machine",
            ),
        });
    }
    None
}

/// Bytes the hypervisor's generated device tree may take for `cfg` (when it names no
/// `dtb_path`): a fixed part (root, PSCI or SBI nodes, timer, interrupt controller,
/// clock, strings), each vCPU's and device's node, each RAM region, the command
/// line. An upper bound; the hypervisor's tests hold its real DTBs to it.
pub fn generated_dtb_estimate<I>(cfg: &VmConfig<I>) -> u64 {
    let fixed = 0x1000;
    let per_cpu = 0x200 * u64::from(cfg.cpu_num);
    let per_device = 0x100 * (cfg.emu_devices.len() + cfg.passthrough.len()) as u64;
    let per_region = 0x40 * cfg.memory.len() as u64;
    let cmdline = (cfg.cmdline.len() as u64 + 8) & !7;
    (fixed + per_cpu + per_device + per_region + cmdline + 0xfff) & !0xfff
}

/// An image to place whose bytes are known: its first [`HEAD_LEN`] bytes (or fewer)
/// and its length.
#[derive(Clone, Copy, Debug)]
pub struct Loaded<'a> {
    pub head: &'a [u8],
    pub len: u64,
}

/// What an image of a config is to the checks: the key that names it and where it
/// goes. ([`ImageRef`] here and in the hypervisor; xtask's resolved images too.)
pub trait Placed {
    fn key(&self) -> &KeyPath;
    fn load_key(&self) -> &KeyPath;
    fn load(&self) -> u64;
}

impl Placed for ImageRef {
    fn key(&self) -> &KeyPath {
        &self.key
    }
    fn load_key(&self) -> &KeyPath {
        &self.load_key
    }
    fn load(&self) -> u64 {
        self.load
    }
}

/// Checks that an image of `size` bytes loaded at `load` lies inside one RAM region.
pub fn image_fits(load: u64, size: u64, mem: &[MemRegion]) -> Result<(), String> {
    let r = Range::new(load, size.max(1));
    if mem.iter().any(|m| m.is_ram() && m.range.contains_range(&r)) {
        return Ok(());
    }
    let regions: Vec<String> = mem
        .iter()
        .filter(|m| m.is_ram())
        .map(|m| m.range.to_string())
        .collect();
    Err(format!(
        "the image ({}, {r}) does not fit in the VM's memory ({})",
        human_size(size),
        regions.join(", ")
    ))
}

/// The checks of a VM's images whose bytes are known (`None`: not known yet, as a
/// guest crate before it is built): each is for `arch`, a Linux kernel is loaded
/// where its boot protocol says, and everything placed in the VM's RAM (the kernel
/// with its bss, the DTB or the estimate of the generated one, the ramdisk) lies
/// inside it and overlaps nothing else.
pub fn check_images<I: Placed>(
    cfg: &VmConfig<I>,
    kernel: Option<Loaded<'_>>,
    dtb: Option<Loaded<'_>>,
    ramdisk: Option<Loaded<'_>>,
    arch: ArchLimits,
    out: &mut Problems,
) {
    let mut placed: Vec<(KeyPath, &'static str, Range)> = Vec::new();
    if let Some(k) = kernel {
        check_arch(cfg.kernel.key(), k.head, arch, out);
        let (mut size, mut what) = (k.len, "the kernel");
        if crate::bzimage::is_bzimage(k.head) {
            what = "the kernel (the bzImage's init_size)";
            if let Some(s) = check_bzimage(cfg, k, ramdisk, out) {
                size = s;
            }
        } else if arch.multiboot {
            what = "the kernel (bss included)";
            check_multiboot(cfg, k, out, &mut size);
        } else if let Some((f, h)) = arch
            .linux_image
            .and_then(|f| f.parse(k.head).map(|h| (f, h)))
        {
            what = "the kernel (bss included)";
            match f.check_placement(&h, k.len, cfg.kernel.load(), &[]) {
                Ok((start, end)) => size = end - start,
                Err(why) => out.error(cfg.kernel.load_key(), why),
            }
        }
        let at = Range::new(cfg.kernel.load(), size);
        placed.push((cfg.kernel.key().clone(), what, at));
    } else {
        // Not built yet: its first byte is at its load address all the same.
        let at = Range::new(cfg.kernel.load(), 1);
        placed.push((cfg.kernel.key().clone(), "the kernel's start", at));
    }
    if let (Some(img), Some(d)) = (&cfg.dtb, dtb) {
        placed.push((img.key().clone(), "the DTB", Range::new(img.load(), d.len)));
    }
    if cfg.dtb.is_none() {
        let key = KeyPath::new("kernel").key("dtb_load_addr");
        let size = generated_dtb_estimate(cfg);
        placed.push((
            key,
            "the generated DTB (estimated from cmdline, vCPUs and devices)",
            Range::new(cfg.dtb_load_gpa, size),
        ));
    }
    if let (Some(img), Some(r)) = (&cfg.ramdisk, ramdisk) {
        placed.push((
            img.key().clone(),
            "the ramdisk",
            Range::new(img.load(), r.len),
        ));
    }
    let mut fitted: Vec<&(KeyPath, &'static str, Range)> = Vec::new();
    for p in &placed {
        let (key, what, r) = p;
        if let Err(why) = image_fits(r.base, r.size, &cfg.memory) {
            out.error(key, why.replacen("the image", what, 1));
            continue;
        }
        if let Some((okey, owhat, or)) = fitted.iter().find(|(_, _, or)| or.overlaps(r)) {
            out.error(
                key,
                format!("{what} at {r} overlaps {owhat} at {or} ({okey})"),
            );
        }
        fitted.push(p);
    }
}

/// An x86 bzImage kernel: its setup header, where it is loaded and entered, the
/// initrd's end and the command line's length (see [`crate::bzimage`]). The
/// kernel's footprint size when the header is usable.
fn check_bzimage<I: Placed>(
    cfg: &VmConfig<I>,
    k: Loaded<'_>,
    ramdisk: Option<Loaded<'_>>,
    out: &mut Problems,
) -> Option<u64> {
    let h = match crate::bzimage::parse(k.head) {
        Ok(Some(h)) => h,
        Ok(None) => return None,
        Err(why) => {
            out.error(cfg.kernel.key(), why);
            return None;
        }
    };
    let load = cfg.kernel.load();
    if let Err(why) = h.check_entry(load, cfg.entry_point) {
        out.error(&KeyPath::new("kernel").key("entry_point"), why);
    }
    let initrd = match (&cfg.ramdisk, ramdisk) {
        (Some(img), Some(r)) => Some((img.load(), r.len)),
        _ => None,
    };
    if let Err(why) = h.check_boot_data(initrd, cfg.cmdline.len()) {
        let key = match (&cfg.ramdisk, why.starts_with("the ramdisk")) {
            (Some(img), true) => img.key().clone(),
            _ => KeyPath::new("kernel").key("cmdline"),
        };
        out.error(&key, why);
    }
    match h.check_placement(k.len, load, &[]) {
        Ok((start, end)) => Some(end - start),
        Err(why) => {
            out.error(cfg.kernel.load_key(), why);
            None
        }
    }
}

/// A Multiboot kernel (x86): loaded at the config's `kernel_load_addr` and entered
/// at its `entry_point` only if its header says the same; `size` becomes its
/// footprint, bss included.
fn check_multiboot<I: Placed>(
    cfg: &VmConfig<I>,
    k: Loaded<'_>,
    out: &mut Problems,
    size: &mut u64,
) {
    let l = match crate::multiboot::layout_of(k.head, k.len as usize) {
        Ok(l) => l,
        Err(e) => {
            out.error(cfg.kernel.key(), format!("the kernel image: {e}"));
            return;
        }
    };
    *size = l.end - l.load_addr;
    if l.load_addr != cfg.kernel.load() {
        out.error(
            cfg.kernel.load_key(),
            format!(
                "the kernel's Multiboot header loads it at {:#x}, not at {:#x}",
                l.load_addr,
                cfg.kernel.load()
            ),
        );
    }
    if l.entry != cfg.entry_point {
        out.error(
            &KeyPath::new("kernel").key("entry_point"),
            format!(
                "the kernel's Multiboot header enters it at {:#x}, not at {:#x}",
                l.entry, cfg.entry_point
            ),
        );
    }
}

/// An image built for another architecture than the VM's.
fn check_arch(key: &KeyPath, head: &[u8], arch: ArchLimits, out: &mut Problems) {
    if let Some((of, what)) = image_arch(head) {
        if of != arch.name {
            out.error(
                key,
                format!("the image is {what}, but this VM runs on {}", arch.name),
            );
        }
    }
}

#[cfg(all(test, feature = "parse"))]
mod tests {
    use super::*;
    use crate::model::{AARCH64, RISCV64};
    use crate::parse::parse_vm;

    const VM: &str = r#"
[base]
id = 1
name = "l"
cpu_num = 2
[kernel]
entry_point = 0x4020_0000
kernel_path = "Image"
kernel_load_addr = 0x4020_0000
ramdisk_path = "initrd"
ramdisk_load_addr = 0x4800_0000
memory_regions = [[0x4000_0000, 0x2000_0000, 0x7, 0]]
cmdline = "console=ttyAMA0"
[devices]
emu_devices = [
    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],
    ["uart", 0x0900_0000, 0x1000, 33, 0x2, []],
]
"#;

    fn linux(magic: &[u8; 4], image_size: u64) -> Vec<u8> {
        let mut v = alloc::vec![0u8; 64];
        v[16..24].copy_from_slice(&image_size.to_le_bytes());
        v[56..60].copy_from_slice(magic);
        v
    }

    fn elf(machine: u16) -> Vec<u8> {
        let mut v = alloc::vec![0u8; 64];
        v[..4].copy_from_slice(b"\x7fELF");
        v[5] = 1;
        v[18..20].copy_from_slice(&machine.to_le_bytes());
        v
    }

    fn errors(text: &str, kernel: &[u8], len: u64, ramdisk: u64, arch: ArchLimits) -> Vec<String> {
        let cfg = parse_vm(text, arch).vm.expect("config accepted");
        let mut out = Problems::default();
        let k = Loaded { head: kernel, len };
        let r = Loaded {
            head: &[],
            len: ramdisk,
        };
        check_images(&cfg, Some(k), None, Some(r), arch, &mut out);
        out.errors().map(|e| e.to_string()).collect()
    }

    #[test]
    fn architecture_from_the_header() {
        assert_eq!(image_arch(&linux(b"ARM\x64", 0)).unwrap().0, "aarch64");
        assert_eq!(image_arch(&linux(b"RSC\x05", 0)).unwrap().0, "riscv64");
        assert_eq!(image_arch(&elf(183)).unwrap().0, "aarch64");
        assert_eq!(image_arch(&elf(243)).unwrap().0, "riscv64");
        assert_eq!(image_arch(&[0u8; 64]), None);
        assert_eq!(image_arch(b"short"), None);
        let rv = VM
            .replace("0x4020_0000", "0x8020_0000")
            .replace("0x4800_0000", "0x8800_0000")
            .replace("0x4000_0000, 0x2000_0000", "0x8000_0000, 0x2000_0000")
            .replace("    [\"gicd\", 0x0800_0000, 0x1_0000, 0, 0x21, []],\n    [\"gicr\", 0x080a_0000, 0x4_0000, 0, 0x20, []],\n    [\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []],\n", "");
        let e = errors(
            &rv,
            &linux(b"ARM\x64", 0x200_0000),
            0x100_0000,
            0x1000,
            RISCV64,
        );
        assert_eq!(e, ["kernel.kernel_path: the image is an arm64 Linux Image (magic \"ARM\\x64\" at 0x38), but this VM runs on riscv64"]);
        let e = errors(VM, &elf(243), 0x1000, 0x1000, AARCH64);
        assert!(e[0].contains("an ELF file for RISC-V"), "{e:?}");
        assert!(errors(
            VM,
            &linux(b"ARM\x64", 0x200_0000),
            0x100_0000,
            0x1000,
            AARCH64
        )
        .is_empty());
    }

    #[test]
    fn the_kernels_bss_and_the_ramdisk() {
        // The file is 16 MiB, the kernel 160 MiB with its bss: the ramdisk at +126 MiB
        // is inside it.
        let e = errors(
            VM,
            &linux(b"ARM\x64", 0xa00_0000),
            0x100_0000,
            0x1000,
            AARCH64,
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("kernel.ramdisk_path: the ramdisk at 0x48000000..0x48001000 overlaps the kernel (bss included) at 0x40200000..0x4a200000 (kernel.kernel_path)"), "{e:?}");
        // A raw kernel of the same file size and a ramdisk loaded over it.
        let over = VM.replace(
            "ramdisk_load_addr = 0x4800_0000",
            "ramdisk_load_addr = 0x4080_0000",
        );
        let e = errors(&over, &[0u8; 64], 0x100_0000, 0x1000, AARCH64);
        assert!(e[0].starts_with("kernel.ramdisk_path: the ramdisk at 0x40800000..0x40801000 overlaps the kernel at 0x40200000..0x41200000"), "{e:?}");
        // The boot protocol's load rule.
        let odd = VM.replace(
            "kernel_load_addr = 0x4020_0000",
            "kernel_load_addr = 0x4010_0000",
        );
        let e = errors(
            &odd,
            &linux(b"ARM\x64", 0x200_0000),
            0x100_0000,
            0x1000,
            AARCH64,
        );
        assert!(e[0].starts_with("kernel.kernel_load_addr: kernel_load_addr 0x40100000 breaks the arm64 boot protocol"), "{e:?}");
    }

    const X86: &str = r#"
[base]
id = 1
name = "linux"
cpu_num = 2
[kernel]
entry_point = 0x100_0000
kernel_path = "bzImage"
kernel_load_addr = 0x100_0000
ramdisk_path = "initrd"
ramdisk_load_addr = 0x1000_0000
dtb_load_addr = 0x8000
memory_regions = [[0, 0x2000_0000, 0x7, 0]]
cmdline = "console=ttyS0"
[devices]
emu_devices = []
"#;

    #[test]
    fn an_x86_bzimage_is_checked_by_its_setup_header() {
        use crate::bzimage::example as image;
        use crate::model::X86_64;
        let bz = image(0x020f, 0x1000);
        let head = &bz[..HEAD_LEN];
        assert_eq!(image_arch(head).unwrap().0, "x86_64");
        let e = errors(X86, head, bz.len() as u64, 0x10_0000, X86_64);
        assert!(e.is_empty(), "{e:?}");
        // On aarch64 it is an image of another architecture.
        let e = errors(VM, head, bz.len() as u64, 0x1000, AARCH64);
        assert!(e[0].contains("an x86 Linux bzImage"), "{e:?}");
        // init_size (63.6 MiB from 16 MiB) reaches the ramdisk at 64 MiB.
        let low = X86.replace("0x1000_0000", "0x400_0000");
        let e = errors(&low, head, bz.len() as u64, 0x10_0000, X86_64);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("kernel.ramdisk_path: the ramdisk at 0x4000000..0x4100000 overlaps the kernel (the bzImage's init_size) at 0x1000000..0x4f98000"), "{e:?}");
        // Loaded below pref_address, entered elsewhere.
        let odd = X86.replace(
            "kernel_load_addr = 0x100_0000",
            "kernel_load_addr = 0x20_0000",
        );
        let e = errors(&odd, head, bz.len() as u64, 0x10_0000, X86_64);
        assert!(
            e.iter().any(|e| e.starts_with(
                "kernel.entry_point: entry_point 0x1000000: the 32-bit boot protocol"
            )),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.starts_with(
                "kernel.kernel_load_addr: kernel_load_addr 0x200000 breaks the x86 boot protocol"
            )),
            "{e:?}"
        );
        // An old protocol is refused with the reason.
        let old = image(0x020b, 0x1000);
        let e = errors(X86, &old[..HEAD_LEN], old.len() as u64, 0x10_0000, X86_64);
        assert_eq!(e, ["kernel.kernel_path: the bzImage's boot protocol is 2.11 (older than Linux 5.0); the hypervisor needs 2.14 or later (it passes the ACPI tables in the zero page's acpi_rsdp_addr)"]);
        // A command line longer than cmdline_size.
        let long = X86.replace("console=ttyS0", &"x".repeat(0x800));
        let e = errors(&long, head, bz.len() as u64, 0x10_0000, X86_64);
        assert!(
            e.iter()
                .any(|e| e.starts_with("kernel.cmdline: the command line is 2048 bytes")),
            "{e:?}"
        );
    }

    #[test]
    fn the_generated_dtb_grows_with_the_cmdline() {
        let small = parse_vm(VM, AARCH64).vm.unwrap();
        assert_eq!(generated_dtb_estimate(&small), 0x2000);
        // The DTB goes to the start of RAM, the kernel 2 MiB above: a 1 MiB command
        // line is fine, a 3 MiB one reaches into the kernel.
        let long = |n: usize| VM.replace("console=ttyAMA0", &"x".repeat(n));
        assert!(errors(&long(1 << 20), &[0u8; 64], 0x1000, 0x1000, AARCH64).is_empty());
        let e = errors(&long(3 << 20), &[0u8; 64], 0x1000, 0x1000, AARCH64);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("kernel.dtb_load_addr: the generated DTB (estimated from cmdline, vCPUs and devices) at 0x40000000..0x40302000 overlaps the kernel at 0x40200000..0x40201000"), "{e:?}");
    }
}
