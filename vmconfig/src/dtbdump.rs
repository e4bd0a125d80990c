//! The console form of a generated guest DTB: the hypervisor built with feature
//! `dump-guest-dtb` prints every VM's device tree as it creates the VM, and
//! `cargo xtask bench` reads it back to boot the bare side of a bench with the very
//! device description the guest gets. Written and read here, so the two agree.
//!
//! The form: lines `guest-dtb <vm> <offset> <hex>` of up to [`CHUNK`] bytes each,
//! offsets in hex and in order, then `guest-dtb <vm> end <length>`. A line may carry
//! a prefix before `guest-dtb ` (the console's own).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The word every dump line starts with.
pub const TAG: &str = "guest-dtb ";
/// Bytes per line.
pub const CHUNK: usize = 48;

/// The lines (without line ends) that show `dtb` of VM `vm`.
pub fn lines<'a>(vm: &'a str, dtb: &'a [u8]) -> impl Iterator<Item = String> + 'a {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    dtb.chunks(CHUNK)
        .enumerate()
        .map(move |(i, chunk)| {
            let mut hex = String::with_capacity(chunk.len() * 2);
            for b in chunk {
                hex.push(HEX[usize::from(b >> 4)] as char);
                hex.push(HEX[usize::from(b & 0xf)] as char);
            }
            format!("{TAG}{vm} {:x} {hex}", i * CHUNK)
        })
        .chain(core::iter::once(format!("{TAG}{vm} end {}", dtb.len())))
}

/// The DTB of VM `vm` from console `text` (the last complete dump of it), or why
/// there is none.
pub fn parse(text: &str, vm: &str) -> Result<Vec<u8>, String> {
    let mut found = None;
    let mut current: Option<Vec<u8>> = None;
    for (n, line) in text.lines().enumerate() {
        let Some(at) = line.find(TAG) else { continue };
        let mut words = line[at + TAG.len()..].split_ascii_whitespace();
        if words.next() != Some(vm) {
            continue;
        }
        let (Some(offset), value) = (words.next(), words.next()) else {
            return Err(format!(
                "line {}: a guest-dtb line without an offset",
                n + 1
            ));
        };
        if words.next().is_some() {
            return Err(format!("line {}: a guest-dtb line with extra words", n + 1));
        }
        if offset == "end" {
            let bytes = current.take().unwrap_or_default();
            let len: usize = value
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("line {}: no length after `end`", n + 1))?;
            if len != bytes.len() {
                return Err(format!(
                    "line {}: the dump of VM {vm} says {len} bytes, its lines held {}",
                    n + 1,
                    bytes.len()
                ));
            }
            found = Some(bytes);
            continue;
        }
        let offset = usize::from_str_radix(offset, 16)
            .map_err(|_| format!("line {}: offset `{offset}` is not hex", n + 1))?;
        let bytes = current.get_or_insert_with(Vec::new);
        if offset == 0 {
            bytes.clear();
        }
        if offset != bytes.len() {
            return Err(format!(
                "line {}: offset {offset:#x}, expected {:#x} (a line is missing)",
                n + 1,
                bytes.len()
            ));
        }
        let hex = value.unwrap_or("").as_bytes();
        if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > CHUNK * 2 {
            return Err(format!("line {}: {} hex digits", n + 1, hex.len()));
        }
        for pair in hex.chunks(2) {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                _ => return Err(format!("line {}: not a hex byte", n + 1)),
            }
        }
    }
    match (found, current) {
        (Some(dtb), _) => Ok(dtb),
        (None, Some(_)) => Err(format!("the dump of VM {vm}'s DTB has no `end` line")),
        (None, None) => Err(format!(
            "no `{TAG}{vm} ...` line (a hypervisor built with feature dump-guest-dtb prints them)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(vm: &str, dtb: &[u8], prefix: &str) -> String {
        lines(vm, dtb).map(|l| format!("{prefix}{l}\n")).collect()
    }

    #[test]
    fn round_trip_with_prefixes_and_other_lines() {
        let dtb: Vec<u8> = (0..=255u8).chain(0..7).collect();
        let text = format!(
            "hv: booting\n{}[vm1] testguest: vCPU 0 up\n{}",
            dump("linux", &dtb, "hv: "),
            dump("vm1", &dtb[..5], "")
        );
        assert_eq!(parse(&text, "linux").unwrap(), dtb);
        assert_eq!(parse(&text, "vm1").unwrap(), &dtb[..5]);
        let first = lines("linux", &dtb).next().unwrap();
        assert!(first.starts_with("guest-dtb linux 0 000102"), "{first}");
        assert_eq!(lines("a", &[]).collect::<Vec<_>>(), ["guest-dtb a end 0"]);
    }

    #[test]
    fn the_last_dump_counts() {
        let text = dump("v", &[1, 2], "") + &dump("v", &[3], "");
        assert_eq!(parse(&text, "v").unwrap(), [3]);
    }

    #[test]
    fn broken_dumps_are_refused() {
        let dtb: Vec<u8> = (0..100).collect();
        let full = dump("v", &dtb, "");
        let missing: String = full
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        assert!(parse(&missing, "v")
            .unwrap_err()
            .contains("line is missing"));
        let cut: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(parse(&cut, "v").unwrap_err().contains("no `end` line"));
        let wrong_len = full.replace("end 100", "end 99");
        assert!(parse(&wrong_len, "v")
            .unwrap_err()
            .contains("says 99 bytes"));
        assert!(parse("guest-dtb v 0 0g\n", "v")
            .unwrap_err()
            .contains("not a hex byte"));
        assert!(parse("guest-dtb v 0 012\n", "v")
            .unwrap_err()
            .contains("3 hex digits"));
        assert!(parse("guest-dtb v\n", "v")
            .unwrap_err()
            .contains("without an offset"));
        assert!(parse("guest-dtb v zz 00\n", "v")
            .unwrap_err()
            .contains("not hex"));
        assert!(parse("guest-dtb v 0 00 x\n", "v")
            .unwrap_err()
            .contains("extra words"));
        assert!(parse("guest-dtb v end x\n", "v")
            .unwrap_err()
            .contains("no length"));
        assert!(parse(&full, "w")
            .unwrap_err()
            .contains("no `guest-dtb w ...` line"));
        assert_eq!(parse(&full, "v").unwrap(), dtb);
    }
}
