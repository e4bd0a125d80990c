//! The Multiboot (v1) information block a guest started like a Multiboot kernel
//! finds at EBX: the VM's memory (`mem_lower` / `mem_upper` and the full memory map)
//! and its command line. Pure: it writes bytes for a guest-physical address.
//!
//! The command line is the VM config's, followed by one word per inter-VM channel
//! the VM maps ([`channel_words`]): Multiboot has no device description, so this is
//! how a Multiboot guest (the test guest) finds each channel's region and doorbell,
//! as a DTB's `hv,ivc-*` nodes tell guests on the other architectures.

use crate::spec::ChannelSpec;
use alloc::string::String;
use alloc::vec::Vec;

/// The word that describes one channel on a Multiboot command line.
pub const CHANNEL_WORD: &str = "hv.channel=";

/// The VM's command line with its channels appended: per channel
/// `hv.channel=<name>,<region gpa>,<size>,<rw|ro>[,<doorbell gpa>,<gsi>]` (hex
/// addresses and size, decimal GSI).
pub fn cmdline_with_channels(cmdline: &str, channels: &[ChannelSpec]) -> String {
    let mut out = String::from(cmdline);
    for c in channels {
        if !out.is_empty() {
            out.push(' ');
        }
        let access = if c.writable { "rw" } else { "ro" };
        out.push_str(&alloc::format!(
            "{CHANNEL_WORD}{},{:#x},{:#x},{access}",
            c.name,
            c.gpa,
            c.size
        ));
        if let Some((gpa, gsi)) = c.doorbell {
            out.push_str(&alloc::format!(",{gpa:#x},{gsi}"));
        }
    }
    out
}

const FLAG_MEM: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MMAP: u32 = 1 << 6;
/// Size of the fixed part of the information block.
const INFO_SIZE: usize = 88;
/// E820 type of RAM.
const RAM: u32 = 1;

/// The information block for a VM with RAM `memory` ((GPA, size) ranges) and
/// command line `cmdline`, to be placed at guest-physical `at`: the fixed block,
/// then the memory map, then the command line (NUL-terminated).
pub fn info(memory: &[(u64, u64)], cmdline: &str, at: u64) -> Vec<u8> {
    let mut out = alloc::vec![0u8; INFO_SIZE];
    let put =
        |out: &mut Vec<u8>, off: usize, v: u32| out[off..off + 4].copy_from_slice(&v.to_le_bytes());
    // mem_lower: KiB from 0 up to 640 KiB; mem_upper: KiB from 1 MiB in the RAM
    // range that starts there or covers it.
    let kib = |b: u64| u32::try_from(b / 1024).unwrap_or(u32::MAX);
    let lower = memory
        .iter()
        .find(|&&(base, _)| base == 0)
        .map_or(0, |&(_, size)| kib(size.min(0xa_0000)));
    let upper = memory
        .iter()
        .find(|&&(base, size)| base <= 0x10_0000 && base + size > 0x10_0000)
        .map_or(0, |&(base, size)| kib(base + size - 0x10_0000));
    let mut map = Vec::new();
    for &(base, size) in memory {
        map.extend_from_slice(&20u32.to_le_bytes());
        map.extend_from_slice(&base.to_le_bytes());
        map.extend_from_slice(&size.to_le_bytes());
        map.extend_from_slice(&RAM.to_le_bytes());
    }
    let map_at = at + INFO_SIZE as u64;
    let cmd_at = map_at + map.len() as u64;
    put(&mut out, 0, FLAG_MEM | FLAG_CMDLINE | FLAG_MMAP);
    put(&mut out, 4, lower);
    put(&mut out, 8, upper);
    put(&mut out, 16, cmd_at as u32);
    put(&mut out, 44, map.len() as u32);
    put(&mut out, 48, map_at as u32);
    out.extend_from_slice(&map);
    out.extend_from_slice(cmdline.as_bytes());
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn memory_map_and_cmdline_follow_the_block() {
        // 16 MiB of RAM from 0, the block at 0x9000.
        let b = info(&[(0, 16 << 20)], "fault", 0x9000);
        assert_eq!(u32_at(&b, 0), FLAG_MEM | FLAG_CMDLINE | FLAG_MMAP);
        assert_eq!(u32_at(&b, 4), 640);
        assert_eq!(u32_at(&b, 8), 15 * 1024);
        assert_eq!(u32_at(&b, 44), 24);
        let map_at = u32_at(&b, 48) as usize;
        assert_eq!(map_at, 0x9000 + INFO_SIZE);
        let m = &b[map_at - 0x9000..];
        assert_eq!(u32_at(m, 0), 20);
        assert_eq!(u64::from_le_bytes(m[4..12].try_into().unwrap()), 0);
        assert_eq!(u64::from_le_bytes(m[12..20].try_into().unwrap()), 16 << 20);
        assert_eq!(u32_at(m, 20), RAM);
        let cmd = u32_at(&b, 16) as usize - 0x9000;
        assert_eq!(&b[cmd..], b"fault\0");
    }

    #[test]
    fn channels_follow_the_command_line() {
        use crate::spec::{List, Str};
        let chan = |name: &'static str, writable, doorbell| ChannelSpec {
            name: Str::Borrowed(name),
            size: 0x1_0000,
            vms: List::Borrowed(&[]),
            gpa: 0x100_0000,
            writable,
            doorbell,
        };
        assert_eq!(cmdline_with_channels("ivc", &[]), "ivc");
        assert_eq!(
            cmdline_with_channels(
                "ivc",
                &[
                    chan("link", true, Some((0xfe00_0000, 10))),
                    chan("ro", false, None)
                ]
            ),
            "ivc hv.channel=link,0x1000000,0x10000,rw,0xfe000000,10 hv.channel=ro,0x1000000,0x10000,ro"
        );
        assert_eq!(
            cmdline_with_channels("", &[chan("x", true, None)]),
            "hv.channel=x,0x1000000,0x10000,rw"
        );
    }

    #[test]
    fn ram_not_at_0_or_1_mib_gives_zero_lower_and_upper() {
        let b = info(
            &[(0x4000_0000, 1 << 20), (0x8000_0000, 1 << 20)],
            "",
            0x4000_0000,
        );
        assert_eq!((u32_at(&b, 4), u32_at(&b, 8)), (0, 0));
        assert_eq!(u32_at(&b, 44), 48);
        assert_eq!(*b.last().unwrap(), 0);
    }
}
