//! What the VM was booted with: the Multiboot v1 information block (EBX at entry)
//! instead of a device tree. RAM comes from its memory map (type 1 entries, below
//! 4 GiB: what the guest's page tables map), the boot arguments from its command line,
//! the CPUs from CPUID (leaf 1 EBX[23:16], the logical processor count, with APIC ids
//! 0..n as every x86 VM numbers them), the console is COM1 at port 0x3F8 (if its
//! scratch register works). The information block, its memory map and the command
//! line stay where they are and are reserved (the memory check skips them).
//!
//! The loader is the hypervisor under test (or QEMU), so nothing here trusts it: odd
//! pieces are left out and reported by the `multiboot` check.

use super::port;
use crate::console::{Uart, UartKind};
use crate::mmio;
use crate::platform::{Platform, Region};
use crate::shared::Shared;
use crate::why::{why, CheckResult, Why};

/// EAX of a Multiboot v1 entry.
const BOOT_MAGIC: u32 = 0x2BAD_B002;
/// Information flags: mem_lower/mem_upper, cmdline, mmap.
const FLAG_MEMORY: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MMAP: u32 = 1 << 6;
/// Bytes of the information block up to and including mmap_addr.
const INFO_LEN: usize = 52;
/// Longest command line read.
const MAX_CMDLINE: usize = 4096;
/// Most memory map entries read.
const MAX_ENTRIES: usize = 64;
/// Type of usable RAM in the memory map.
const TYPE_RAM: u32 = 1;
/// What the page tables map.
const MAPPED: u64 = 1 << 32;

/// COM1.
pub const COM1: Uart = Uart {
    kind: UartKind::Ns16550Port,
    base: 0x3F8,
    reg_shift: 0,
};

/// What the information said, for the `multiboot` check.
static FLAGS: Shared = Shared::new(0);
static MEM_LOWER: Shared = Shared::new(0);
static MEM_UPPER: Shared = Shared::new(0);
static RAM_ENTRIES: Shared = Shared::new(0);
static DROPPED: Shared = Shared::new(0);

/// Reads the information block at `info` (EAX at entry: `magic`).
pub fn read(magic: u32, info: usize) -> Result<Platform, Why> {
    let uart = com1_works().then_some(COM1);
    if let Some(uart) = uart {
        crate::console::init(uart);
    }
    if magic != BOOT_MAGIC {
        return Err(why!(
            "not started by a Multiboot loader: EAX = {magic:#x}, not {BOOT_MAGIC:#x}"
        ));
    }
    // Address 0 is a valid place (the hypervisor puts the block at the start of RAM).
    if info as u64 + INFO_LEN as u64 > MAPPED {
        return Err(why!("Multiboot information at {info:#x}: not in memory"));
    }
    let word = |offset: usize| -> u32 {
        // SAFETY: inside the information block (`INFO_LEN` bytes below 4 GiB, which
        // the page tables map); only read, with one `mov` (the block may be at
        // address 0, which a Rust pointer read must not touch).
        unsafe { mmio::read32(info + offset) }
    };
    let flags = word(0);
    FLAGS.set(u64::from(flags));
    MEM_LOWER.set(u64::from(word(4)));
    MEM_UPPER.set(u64::from(word(8)));
    let bootargs = if flags & FLAG_CMDLINE != 0 {
        cmdline(word(16) as usize)
    } else {
        ""
    };
    let mut platform = Platform::without_dtb(bootargs, uart);
    platform.add_reserved(Region {
        base: info as u64,
        size: INFO_LEN as u64,
    });
    if !bootargs.is_empty() || flags & FLAG_CMDLINE != 0 {
        platform.add_reserved(Region {
            base: u64::from(word(16)),
            size: bootargs.len() as u64 + 1,
        });
    }
    if flags & FLAG_MMAP != 0 {
        let (length, addr) = (word(44) as usize, word(48) as usize);
        platform.add_reserved(Region {
            base: addr as u64,
            size: length as u64,
        });
        read_mmap(&mut platform, addr, length);
    }
    for id in 0..cpu_count() {
        platform.add_cpu(u64::from(id));
    }
    Ok(platform)
}

/// The command line at `addr` (NUL-terminated; cut at [`MAX_CMDLINE`] bytes or at
/// the first byte that is not UTF-8).
fn cmdline(addr: usize) -> &'static str {
    if addr == 0 || addr as u64 + MAX_CMDLINE as u64 > MAPPED {
        return "";
    }
    // Byte by byte: the bytes after the NUL need not be RAM.
    let mut len = 0;
    // SAFETY: below 4 GiB (mapped); the loader put the command line there (up to its
    // NUL); only read.
    while len < MAX_CMDLINE && unsafe { mmio::read8(addr + len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes just read; the memory check skips them (reserved), so
    // they stay as they are for good.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    match core::str::from_utf8(&bytes[..len]) {
        Ok(text) => text,
        Err(err) => core::str::from_utf8(&bytes[..err.valid_up_to()]).unwrap_or(""),
    }
}

/// Adds the RAM entries of the memory map at `addr` (`length` bytes).
fn read_mmap(platform: &mut Platform, addr: usize, length: usize) {
    if addr as u64 + length as u64 > MAPPED {
        return;
    }
    let mut at = 0usize;
    let (mut ram, mut dropped) = (0, 0);
    for _ in 0..MAX_ENTRIES {
        if at + 24 > length {
            break;
        }
        let entry = addr + at;
        // SAFETY: inside the memory map the information block names (below 4 GiB,
        // mapped, reserved); only read, with one `mov` each (x86 allows them
        // unaligned; the map may start at address 0).
        let (size, base, len, kind) = unsafe {
            (
                mmio::read32(entry),
                mmio::read64(entry + 4),
                mmio::read64(entry + 12),
                mmio::read32(entry + 20),
            )
        };
        if size < 20 {
            break;
        }
        at += size as usize + 4;
        if kind != TYPE_RAM || len == 0 {
            continue;
        }
        let end = base.saturating_add(len).min(MAPPED);
        if base >= end {
            dropped += 1;
            continue;
        }
        if platform.add_memory(Region {
            base,
            size: end - base,
        }) {
            ram += 1;
        } else {
            dropped += 1;
        }
    }
    RAM_ENTRIES.set(ram);
    DROPPED.set(dropped);
}

/// The logical processor count of CPUID leaf 1 (bare: 1 without HTT; the
/// hypervisor always fills the field in with the VM's vCPU count).
fn cpu_count() -> u32 {
    let [_, ebx, _, edx] = port::cpuid(1, 0);
    if edx & 1 << 28 == 0 && !super::firmware::under_hypervisor() {
        return 1;
    }
    ((ebx >> 16) & 0xff).max(1)
}

/// Whether COM1 answers: its scratch register keeps what is written.
fn com1_works() -> bool {
    const SCR: u16 = 7;
    [0x5a, 0xa5].iter().all(|&v| {
        port::outb(COM1.base as u16 + SCR, v);
        port::inb(COM1.base as u16 + SCR) == v
    })
}

/// multiboot: the information has the memory fields, a command line and a memory map
/// with usable RAM, and the guest's image lies in that RAM.
pub fn check(platform: &Platform) -> CheckResult {
    let flags = FLAGS.get() as u32;
    for (bit, name) in [
        (FLAG_MEMORY, "mem_lower/mem_upper"),
        (FLAG_CMDLINE, "cmdline"),
        (FLAG_MMAP, "mmap"),
    ] {
        if flags & bit == 0 {
            return Err(why!("information flags {flags:#x}: no {name}"));
        }
    }
    if DROPPED.get() != 0 {
        return Err(why!(
            "{} RAM entries of the memory map not used (above 4 GiB or too many)",
            DROPPED.get()
        ));
    }
    let image = crate::image::region();
    if !platform
        .memory()
        .iter()
        .any(|r| r.base <= image.base && image.end() <= r.end())
    {
        return Err(why!(
            "the guest image {:#x}..{:#x} is not in RAM of the memory map",
            image.base,
            image.end()
        ));
    }
    crate::console::println!(
        "testguest: multiboot: flags {flags:#x}, mem_lower {} KiB, mem_upper {} KiB, {} RAM entries, {} CPUs (CPUID)",
        MEM_LOWER.get(),
        MEM_UPPER.get(),
        RAM_ENTRIES.get(),
        platform.cpus().len()
    );
    Ok(())
}
