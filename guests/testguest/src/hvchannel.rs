//! The `hv.channel=` words the hypervisor appends to a Multiboot guest's command line,
//! one per inter-VM channel (x86 has no device tree to describe them):
//! `hv.channel=<name>,<region gpa>,<size>,<rw|ro>[,<doorbell gpa>,<gsi>]`, hex
//! addresses and size, decimal GSI. Pure, so it is tested on the host.

/// The word's prefix.
pub const WORD: &str = "hv.channel=";

/// One channel as the command line gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel<'a> {
    pub name: &'a str,
    pub region: u64,
    pub size: u64,
    pub writable: bool,
    pub doorbell: Option<(u64, u32)>,
}

/// Why no channel came out of a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem<'a> {
    /// A `hv.channel=` word that does not read (what follows the prefix).
    Unreadable(&'a str),
    /// No channel with a doorbell.
    NoDoorbell,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// `<name>,<gpa>,<size>,<rw|ro>[,<doorbell>,<gsi>]` (what follows `hv.channel=`).
pub fn parse(v: &str) -> Option<Channel<'_>> {
    let mut f = v.split(',');
    let name = f.next().filter(|n| !n.is_empty())?;
    let region = hex(f.next()?)?;
    let size = hex(f.next()?)?;
    let writable = match f.next()? {
        "rw" => true,
        "ro" => false,
        _ => return None,
    };
    let doorbell = match (f.next(), f.next()) {
        (Some(d), Some(g)) => Some((hex(d)?, g.parse().ok()?)),
        (None, None) => None,
        _ => return None,
    };
    f.next().is_none().then_some(Channel {
        name,
        region,
        size,
        writable,
        doorbell,
    })
}

/// The first channel with a doorbell on `cmdline`; an unreadable word before it is
/// an error.
pub fn first_with_doorbell(cmdline: &str) -> Result<Channel<'_>, Problem<'_>> {
    for w in cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(WORD))
    {
        match parse(w) {
            Some(c) if c.doorbell.is_some() => return Ok(c),
            Some(_) => continue,
            None => return Err(Problem::Unreadable(w)),
        }
    }
    Err(Problem::NoDoorbell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_read_and_bad_ones_refused() {
        assert_eq!(
            parse("link,0x1000000,0x10000,rw,0xfe000000,10"),
            Some(Channel {
                name: "link",
                region: 0x100_0000,
                size: 0x1_0000,
                writable: true,
                doorbell: Some((0xfe00_0000, 10)),
            })
        );
        assert_eq!(
            parse("log,0x2000,0x1000,ro").map(|c| (c.writable, c.doorbell)),
            Some((false, None))
        );
        for bad in [
            "",
            "link",
            "link,0x1000",
            "link,1000,0x1000,rw",
            "link,0x1000,0x1000,wr",
            "link,0x1000,0x1000,rw,0xfe000000",
            "link,0x1000,0x1000,rw,0xfe000000,10,1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_first_channel_with_a_doorbell_is_taken() {
        assert_eq!(
            first_with_doorbell("ivc hv.channel=log,0x2000,0x1000,ro"),
            Err(Problem::NoDoorbell)
        );
        assert_eq!(
            first_with_doorbell(
                "ivc hv.channel=log,0x2000,0x1000,ro hv.channel=l,0x3000,0x1000,rw,0xfe001000,11"
            )
            .map(|c| (c.name, c.doorbell)),
            Ok(("l", Some((0xfe00_1000, 11))))
        );
        assert_eq!(
            first_with_doorbell("hv.channel=x,0x1 hv.channel=l,0x3000,0x1000,rw,0xfe001000,11"),
            Err(Problem::Unreadable("x,0x1"))
        );
    }
}
