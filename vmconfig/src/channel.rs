//! Inter-VM channels (`[[devices.channels]]`): a named region of shared memory that
//! the VMs listed on it map, each at its own guest-physical address with its own
//! access, and a doorbell per VM (an emulated 4 KiB device window: a write rings the
//! peers, whose doorbell raises its interrupt).
//!
//! The rules exist once, here: [`check_channels`] (one VM's entries, inside
//! `check_vm`) and [`check_members`] (every VM of a machine together: a channel named
//! by one VM only, VMs that disagree on its size or its list, a VM mapping a channel
//! it is not listed on). xtask runs both before building; the hypervisor runs them on
//! the VMs it reads from a card, against the VMs it already has.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::check::valid_name;
use crate::irq::irq_problem;
use crate::key::{KeyPath, Problems};
use crate::model::*;
use crate::range::{Range, PAGE};
use crate::schema::ChannelToml;

/// The size of a doorbell window.
pub const DOORBELL_SIZE: u64 = PAGE;
/// Most VMs on one channel (one bit each in the doorbell's registers).
pub const MAX_MEMBERS: usize = 32;
/// Largest channel region (1 GiB).
pub const MAX_SIZE: u64 = 1 << 30;

/// One VM's view of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// `devices.channels[i]`, for messages.
    pub key: KeyPath,
    pub name: String,
    /// Bytes of shared memory (4 KiB multiples), the same for every member.
    pub size: u64,
    /// The VMs (by name) that may map it, in the order every member lists them: a
    /// VM's position here is its number on the doorbell.
    pub vms: Vec<String>,
    /// Where this VM sees the region.
    pub gpa: u64,
    /// Read-write (else read-only) for this VM.
    pub writable: bool,
    /// This VM's doorbell, if it has one.
    pub doorbell: Option<Doorbell>,
}

/// A VM's doorbell window and the interrupt a peer's ring raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Doorbell {
    pub gpa: u64,
    pub irq: u32,
}

impl Channel {
    /// The region in this VM's guest-physical space.
    pub fn range(&self) -> Range {
        Range::new(self.gpa, self.size)
    }

    /// The doorbell window in this VM's guest-physical space.
    pub fn doorbell_range(&self) -> Option<Range> {
        self.doorbell.map(|d| Range::new(d.gpa, DOORBELL_SIZE))
    }

    /// The position of VM `name` on the channel's list.
    pub fn member(&self, name: &str) -> Option<usize> {
        self.vms.iter().position(|v| v == name)
    }
}

/// Reads and checks one VM's `[[devices.channels]]`. `vm_name` is the VM's own
/// name (it must be on each list).
pub fn channels(
    raw: &[ChannelToml],
    vm_name: &str,
    arch: ArchLimits,
    out: &mut Problems,
) -> Vec<Channel> {
    let key = KeyPath::new("devices").key("channels");
    let mut all: Vec<Channel> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let k = key.index(i);
        if let Some(c) = channel(t, &k, vm_name, arch, out) {
            if let Some(o) = all.iter().find(|o| o.name == c.name) {
                out.error(
                    &k.key("name"),
                    format!("channel {:?} is already mapped by {}", c.name, o.key),
                );
                continue;
            }
            all.push(c);
        }
    }
    all
}

fn channel(
    t: &ChannelToml,
    k: &KeyPath,
    vm_name: &str,
    arch: ArchLimits,
    out: &mut Problems,
) -> Option<Channel> {
    let errors = out.error_count();
    if !valid_name(&t.name) {
        out.error(
            &k.key("name"),
            format!(
                "channel name {:?} must be 1 to 64 letters, digits, '-', '_' or '.' (not starting with '.')",
                t.name
            ),
        );
    }
    if t.size == 0 || !t.size.is_multiple_of(PAGE) || t.size > MAX_SIZE {
        out.error(
            &k.key("size"),
            format!(
                "size {:#x} must be a non-zero multiple of 4 KiB (0x1000), at most {MAX_SIZE:#x}",
                t.size
            ),
        );
    }
    let range = Range::new(t.gpa, t.size);
    if !t.gpa.is_multiple_of(PAGE) || range.end().is_none() {
        out.error(
            &k.key("gpa"),
            format!(
                "gpa {:#x} must be 4 KiB aligned and the region must fit in 64 bits",
                t.gpa
            ),
        );
    }
    check_list(t, k, vm_name, out);
    let writable = match t.access.as_deref() {
        None | Some("rw") => true,
        Some("ro") => false,
        Some(other) => {
            out.error(
                &k.key("access"),
                format!("unknown access {other:?} (\"rw\" read-write or \"ro\" read-only)"),
            );
            true
        }
    };
    let doorbell = match (t.doorbell, t.irq) {
        (Some(gpa), Some(irq)) => {
            if !gpa.is_multiple_of(PAGE) || gpa.checked_add(DOORBELL_SIZE).is_none() {
                out.error(
                    &k.key("doorbell"),
                    format!("doorbell {gpa:#x} must be 4 KiB aligned (its window is 0x1000 bytes)"),
                );
            }
            let irq = u32::try_from(irq).unwrap_or(u32::MAX);
            if let Some(why) = irq_problem(irq, arch) {
                out.error(&k.key("irq"), why);
            }
            Some(Doorbell { gpa, irq })
        }
        (Some(_), None) => {
            out.error(
                &k.key("irq"),
                "a doorbell needs the interrupt a peer's ring raises (irq)",
            );
            None
        }
        (None, Some(_)) => {
            out.error(
                &k.key("doorbell"),
                "irq without a doorbell window (doorbell = <gpa>)",
            );
            None
        }
        (None, None) => None,
    };
    (out.error_count() == errors).then(|| Channel {
        key: k.clone(),
        name: t.name.clone(),
        size: t.size,
        vms: t.vms.clone(),
        gpa: t.gpa,
        writable,
        doorbell,
    })
}

fn check_list(t: &ChannelToml, k: &KeyPath, vm_name: &str, out: &mut Problems) {
    let key = k.key("vms");
    if t.vms.len() < 2 || t.vms.len() > MAX_MEMBERS {
        out.error(
            &key,
            format!(
                "a channel joins 2 to {MAX_MEMBERS} VMs, not {} (list every VM that maps it, this one included)",
                t.vms.len()
            ),
        );
    }
    for (i, v) in t.vms.iter().enumerate() {
        if t.vms[..i].contains(v) {
            out.error(&key.index(i), format!("VM {v:?} is listed twice"));
        }
    }
    if !t.vms.iter().any(|v| v == vm_name) {
        out.error(
            &key,
            format!(
                "this VM ({vm_name:?}) is not on the channel's list {:?}: a VM maps only channels it is listed on",
                t.vms
            ),
        );
    }
}

/// Largest region one AxVisor IVC publish gets: a bigger request is cut to this
/// (16 MiB, as AxVisor does; the size written back to the guest says so).
pub const IVC_MAX_PUBLISH: u64 = 16 << 20;

/// AxVisor's IVC device (`emu_type` 0xA): a window of the VM's guest-physical space
/// (not RAM, not another device's) where the hypervisor places each channel its
/// guest publishes or subscribes to by hypercall. One per VM, in whole 4 KiB pages;
/// its `irq_id` is not used (a warning says so).
pub fn check_ivc_windows(emu: &[EmuDevice], out: &mut Problems) {
    let mut first: Option<&KeyPath> = None;
    for d in emu.iter().filter(|d| d.emu_type == EMU_IVC) {
        if let Some(f) = first {
            out.error(
                &d.key,
                format!("a VM has one IVC window (emu_type 0xa), and {f} is one already"),
            );
            continue;
        }
        first = Some(&d.key);
        if !d.range.base.is_multiple_of(PAGE) || !d.range.size.is_multiple_of(PAGE) {
            out.error(
                &d.key.index(1),
                format!(
                    "IVC window {} must start and end on 4 KiB pages (channels are placed in whole pages)",
                    d.range
                ),
            );
        }
        if d.irq != 0 {
            out.warning(
                &d.key.index(3),
                format!(
                    "ignored: irq_id {} (the IVC window raises no interrupt; give the channel a [[devices.channels]] doorbell for one)",
                    d.irq
                ),
            );
        }
    }
}

/// The VM's channel regions and doorbells against each other, its memory and its
/// devices, and the doorbells' interrupts against its devices'.
pub fn check_layout(
    chans: &[Channel],
    memory: &[MemRegion],
    emu: &[EmuDevice],
    pass: &[PassDevice],
    arch: ArchLimits,
    out: &mut Problems,
) {
    let mut taken: Vec<(String, Range)> = Vec::new();
    for (j, m) in memory.iter().enumerate() {
        taken.push((format!("kernel.memory_regions[{j}]"), m.range));
    }
    // A console in the port space (x86) takes no guest-physical addresses.
    for d in emu
        .iter()
        .filter(|d| !(arch.console_ports && d.emu_type == EMU_CONSOLE))
    {
        taken.push((format!("{} ({})", d.key, d.name), d.range));
    }
    for d in pass {
        taken.push((format!("{} ({})", d.key, d.name), Range::new(d.gpa, d.len)));
    }
    // The architecture's fixed interrupt controller windows (x86: the local APICs
    // and the I/O APIC), there whether or not the VM lists them.
    for &(base, len) in arch.chip_windows {
        taken.push((
            format!("{}'s interrupt controller window", arch.name),
            Range::new(base, len),
        ));
    }
    for c in chans {
        for (what, r, key) in [
            ("region", Some(c.range()), c.key.key("gpa")),
            ("doorbell", c.doorbell_range(), c.key.key("doorbell")),
        ] {
            let Some(r) = r else { continue };
            if let Some((other, or)) = taken.iter().find(|(_, o)| o.overlaps(&r)) {
                out.error(
                    &key,
                    format!(
                        "channel {:?}'s {what} at {r} overlaps {other} at {or}",
                        c.name
                    ),
                );
            }
            taken.push((format!("channel {:?}'s {what}", c.name), r));
        }
    }
    let mut irqs: Vec<(String, u32)> = Vec::new();
    for d in emu.iter().filter(|d| d.irq != 0) {
        if !EMU_GIC_PARTS.contains(&d.emu_type) && d.emu_type != EMU_PLIC {
            irqs.push((format!("{} ({})", d.key, d.name), d.irq));
        }
    }
    for d in pass.iter().filter(|d| d.irq != 0) {
        irqs.push((format!("{} ({})", d.key, d.name), d.irq));
    }
    for c in chans {
        let Some(db) = c.doorbell else { continue };
        if let Some((other, _)) = irqs.iter().find(|(_, i)| *i == db.irq) {
            out.error(
                &c.key.key("irq"),
                format!(
                    "irq {} of channel {:?}'s doorbell is also the interrupt of {other}",
                    db.irq, c.name
                ),
            );
        }
        if arch.plic_sources.is_some() && !emu.iter().any(|d| d.emu_type == EMU_PLIC) {
            out.error(
                &c.key.key("irq"),
                format!(
                    "channel {:?}'s doorbell interrupt is a source of the emulated PLIC (emu_type 0x30) on {}, and this VM has none",
                    c.name, arch.name
                ),
            );
        }
        irqs.push((format!("channel {:?}'s doorbell", c.name), db.irq));
    }
}

/// How one VM's view of channel `name` (`size`, `vms`) disagrees with that of a
/// member already known (`their_size`, `their_vms`, in `shown`): (field, reason)
/// for each difference. Every member has the same size and the same list, in the
/// same order (a VM's position is its number on the doorbell).
pub fn disagreement(
    name: &str,
    size: u64,
    vms: &[&str],
    their_size: u64,
    their_vms: &[&str],
    shown: &str,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if size != their_size {
        out.push((
            "size",
            format!("channel {name:?} has size {size:#x} here but {their_size:#x} in {shown}"),
        ));
    }
    if vms != their_vms {
        out.push((
            "vms",
            format!(
                "channel {name:?} lists {vms:?} here but {their_vms:?} in {shown} (every member lists the same VMs in the same order)"
            ),
        ));
    }
    out
}

/// One VM of a machine, as [`check_members`] sees it.
pub struct Member<'a> {
    /// How the VM is named in messages (its config file).
    pub shown: &'a str,
    pub channels: &'a [Channel],
}

/// The VMs of a machine together: every channel is named by at least two VMs, all
/// of which agree on its size and its list, and every VM naming it is on that list.
/// Problems are reported against the VM they are about (its index in `vms`).
pub fn check_members(vms: &[Member<'_>]) -> Vec<(usize, KeyPath, String)> {
    let mut out = Vec::new();
    for (i, vm) in vms.iter().enumerate() {
        for c in vm.channels {
            let others: Vec<(&Member<'_>, &Channel)> = vms
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, o)| Some((o, o.channels.iter().find(|oc| oc.name == c.name)?)))
                .collect();
            if others.is_empty() {
                out.push((
                    i,
                    c.key.key("name"),
                    format!(
                        "channel {:?} is named by this VM only: no other VM maps it (its list: {:?})",
                        c.name, c.vms
                    ),
                ));
                continue;
            }
            // Compare with the first VM naming it (each disagreement said once).
            let (first, fc) = others[0];
            let earlier = vms[..i]
                .iter()
                .any(|o| o.channels.iter().any(|oc| oc.name == c.name));
            if !earlier {
                continue;
            }
            let theirs: Vec<&str> = fc.vms.iter().map(String::as_str).collect();
            let ours: Vec<&str> = c.vms.iter().map(String::as_str).collect();
            for (field, why) in disagreement(&c.name, c.size, &ours, fc.size, &theirs, first.shown)
            {
                out.push((i, c.key.key(field), why));
            }
        }
    }
    out
}

#[cfg(all(test, feature = "parse"))]
mod tests {
    use super::*;
    use crate::parse::parse_vm;
    use alloc::string::ToString;

    fn vm(name: &str, channels: &str) -> String {
        format!(
            r#"
[base]
id = 1
name = "{name}"
cpu_num = 1
[kernel]
entry_point = 0x4008_0000
kernel_path = "k"
kernel_load_addr = 0x4008_0000
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]
[devices]
emu_devices = [
    ["gicd", 0x0800_0000, 0x1_0000, 0, 0x21, []],
    ["gicr", 0x080a_0000, 0x4_0000, 0, 0x20, []],
    ["uart", 0x0900_0000, 0x1000, 33, 0x2, []],
]
{channels}
"#
        )
    }

    const GOOD: &str = r#"
[[devices.channels]]
name = "link"
size = 0x2000
vms = ["a", "b"]
gpa = 0x4100_0000
access = "rw"
doorbell = 0x0a00_0000
irq = 40
"#;

    fn errors(text: &str) -> Vec<String> {
        let p = parse_vm(text, AARCH64);
        p.problems.errors().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_channel_is_read_with_its_doorbell() {
        let p = parse_vm(&vm("a", GOOD), AARCH64);
        let v = p.vm.expect("valid");
        assert_eq!(v.channels.len(), 1);
        let c = &v.channels[0];
        assert_eq!(
            (c.name.as_str(), c.size, c.gpa, c.writable),
            ("link", 0x2000, 0x4100_0000, true)
        );
        assert_eq!(
            c.doorbell,
            Some(Doorbell {
                gpa: 0x0a00_0000,
                irq: 40
            })
        );
        assert_eq!(c.member("b"), Some(1));
        let ro = GOOD.replace("\"rw\"", "\"ro\"");
        assert!(!parse_vm(&vm("a", &ro), AARCH64).vm.unwrap().channels[0].writable);
    }

    #[test]
    fn bad_channels_are_refused_with_key_and_reason() {
        let cases: &[(&str, &str, &str)] = &[
            ("0x2000", "0x2100", "devices.channels[0].size: size 0x2100 must be a non-zero multiple of 4 KiB"),
            ("0x4100_0000", "0x4100_0800", "devices.channels[0].gpa: gpa 0x41000800 must be 4 KiB aligned"),
            ("0x4100_0000", "0x40ff_f000", "devices.channels[0].gpa: channel \"link\"'s region at 0x40fff000..0x41001000 overlaps kernel.memory_regions[0]"),
            ("0x0a00_0000", "0x0900_0000", "devices.channels[0].doorbell: channel \"link\"'s doorbell at 0x9000000..0x9001000 overlaps devices.emu_devices[2] (uart)"),
            ("irq = 40", "irq = 33", "devices.channels[0].irq: irq 33 of channel \"link\"'s doorbell is also the interrupt of devices.emu_devices[2] (uart)"),
            ("irq = 40", "irq = 20", "devices.channels[0].irq: irq_id 20 is a PPI"),
            ("\"rw\"", "\"wr\"", "devices.channels[0].access: unknown access \"wr\""),
            ("[\"a\", \"b\"]", "[\"b\", \"c\"]", "devices.channels[0].vms: this VM (\"a\") is not on the channel's list"),
            ("[\"a\", \"b\"]", "[\"a\"]", "devices.channels[0].vms: a channel joins 2 to 32 VMs, not 1"),
            ("[\"a\", \"b\"]", "[\"a\", \"a\"]", "devices.channels[0].vms[1]: VM \"a\" is listed twice"),
            ("irq = 40", "", "devices.channels[0].irq: a doorbell needs the interrupt"),
        ];
        for (from, to, want) in cases {
            let text = vm("a", &GOOD.replace(from, to));
            let errs = errors(&text);
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{want}\n got {errs:?}"
            );
        }
        let twice = format!(
            "{GOOD}{}",
            GOOD.replace("0x4100_0000", "0x4200_0000")
                .replace("0x0a00_0000", "0x0a00_1000")
                .replace("40", "41")
        );
        let errs = errors(&vm("a", &twice));
        assert!(
            errs.iter().any(|e| e.starts_with("devices.channels[1].name: channel \"link\" is already mapped by devices.channels[0]")),
            "{errs:?}"
        );
        let unknown = GOOD.replace("access", "acces");
        assert!(!errors(&vm("a", &unknown)).is_empty());
    }

    #[test]
    fn riscv64_doorbells_need_the_plic() {
        let text = vm("a", GOOD)
            .replace("[\"gicd\", 0x0800_0000, 0x1_0000, 0, 0x21, []],", "")
            .replace("[\"gicr\", 0x080a_0000, 0x4_0000, 0, 0x20, []],", "")
            .replace("[\"uart\", 0x0900_0000, 0x1000, 33, 0x2, []],", "");
        let errs: Vec<String> = parse_vm(&text, RISCV64)
            .problems
            .errors()
            .map(|p| p.to_string())
            .collect();
        assert!(
            errs.iter().any(|e| e.contains(
                "is a source of the emulated PLIC (emu_type 0x30) on riscv64, and this VM has none"
            )),
            "{errs:?}"
        );
    }

    /// An x86 VM (its fixed platform: local APICs, I/O APIC, COM1 on pin 4).
    const X86_VM: &str = r#"
[base]
id = 1
name = "a"
cpu_num = 1
[kernel]
entry_point = 0x10_0020
kernel_path = "guest:testguest"
kernel_load_addr = 0x10_0000
dtb_load_addr = 0x9000
memory_regions = [[0x0, 0x100_0000, 0x7, 0]]
[devices]
emu_devices = [
    ["lapic", 0xfee0_0000, 0x1000, 0, 0x1, []],
    ["ioapic", 0xfec0_0000, 0x1000, 0, 0x1, []],
    ["uart", 0x3f8, 0x8, 4, 0x2, []],
]
[[devices.channels]]
name = "link"
size = 0x1_0000
vms = ["a", "b"]
gpa = 0x100_0000
doorbell = 0xfe00_0000
irq = 10
"#;

    #[test]
    fn x86_channels_are_checked_against_the_platform_and_the_io_apic() {
        let p = parse_vm(X86_VM, X86_64);
        assert!(p.problems.items.is_empty(), "{:?}", p.problems);
        let c = &p.vm.expect("valid").channels[0];
        assert_eq!(
            c.doorbell,
            Some(Doorbell {
                gpa: 0xfe00_0000,
                irq: 10
            })
        );
        // A region at the console's port numbers is fine: ports are no addresses.
        let low = X86_VM
            .replace(
                "[[0x0, 0x100_0000, 0x7, 0]]",
                "[[0x8000, 0xff_8000, 0x7, 0]]",
            )
            .replace("size = 0x1_0000", "size = 0x1000")
            .replace("gpa = 0x100_0000", "gpa = 0x0");
        let p = parse_vm(&low, X86_64);
        assert!(!p.problems.has_errors(), "{:?}", p.problems);
        let cases: &[(&str, &str, &str)] = &[
            ("gpa = 0x100_0000", "gpa = 0xff_0000", "devices.channels[0].gpa: channel \"link\"'s region at 0xff0000..0x1000000 overlaps kernel.memory_regions[0]"),
            ("gpa = 0x100_0000", "gpa = 0xfee0_0000", "devices.channels[0].gpa: channel \"link\"'s region at 0xfee00000..0xfee10000 overlaps devices.emu_devices[0] (lapic)"),
            ("doorbell = 0xfe00_0000", "doorbell = 0xfec0_0000", "devices.channels[0].doorbell: channel \"link\"'s doorbell at 0xfec00000..0xfec01000 overlaps devices.emu_devices[1] (ioapic)"),
            ("irq = 10", "irq = 4", "devices.channels[0].irq: irq 4 of channel \"link\"'s doorbell is also the interrupt of devices.emu_devices[2] (uart)"),
            ("irq = 10", "irq = 0", "devices.channels[0].irq: irq_id 0 is the PC timer's GSI"),
            ("irq = 10", "irq = 9", "devices.channels[0].irq: irq_id 9 is the ACPI SCI"),
            ("irq = 10", "irq = 24", "devices.channels[0].irq: irq_id 24 is not a pin of the VM's I/O APIC (GSI 1..=23, not 9)"),
        ];
        for (from, to, want) in cases {
            let text = X86_VM.replace(from, to);
            let errs: Vec<String> = parse_vm(&text, X86_64)
                .problems
                .errors()
                .map(|p| p.to_string())
                .collect();
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{want}\n got {errs:?}"
            );
        }
        // Without the APIC windows listed, they are still the platform's.
        let unlisted = X86_VM
            .replace("    [\"lapic\", 0xfee0_0000, 0x1000, 0, 0x1, []],\n", "")
            .replace("gpa = 0x100_0000", "gpa = 0xfee0_0000");
        let errs: Vec<String> = parse_vm(&unlisted, X86_64)
            .problems
            .errors()
            .map(|p| p.to_string())
            .collect();
        assert!(
            errs.iter().any(|e| e.starts_with("devices.channels[0].gpa: channel \"link\"'s region at 0xfee00000..0xfee10000 overlaps x86_64's interrupt controller window at 0xfee00000..0xfee01000")),
            "{errs:?}"
        );
        // Two channels: one's doorbell on the other's.
        let two = format!(
            "{X86_VM}{}",
            r#"
[[devices.channels]]
name = "other"
size = 0x1000
vms = ["a", "c"]
gpa = 0x200_0000
doorbell = 0xfe00_0000
irq = 11
"#
        );
        let errs: Vec<String> = parse_vm(&two, X86_64)
            .problems
            .errors()
            .map(|p| p.to_string())
            .collect();
        assert!(
            errs.iter().any(|e| e.starts_with("devices.channels[1].doorbell: channel \"other\"'s doorbell at 0xfe000000..0xfe001000 overlaps channel \"link\"'s doorbell")),
            "{errs:?}"
        );
    }

    fn chans(name: &str, text: &str) -> Vec<Channel> {
        parse_vm(&vm(name, text), AARCH64)
            .vm
            .expect("valid")
            .channels
    }

    #[test]
    fn members_must_agree_and_be_more_than_one() {
        let a = chans("a", GOOD);
        let b = chans("b", GOOD);
        let m = |shown, _name: &str, channels| Member { shown, channels };
        assert!(check_members(&[m("a.toml", "a", &a), m("b.toml", "b", &b)]).is_empty());
        let alone = check_members(&[m("a.toml", "a", &a)]);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].0, 0);
        assert_eq!(alone[0].1.to_string(), "devices.channels[0].name");
        assert!(
            alone[0]
                .2
                .starts_with("channel \"link\" is named by this VM only"),
            "{}",
            alone[0].2
        );
        let bigger = chans("b", &GOOD.replace("0x2000", "0x3000"));
        let r = check_members(&[m("a.toml", "a", &a), m("b.toml", "b", &bigger)]);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            (r[0].0, r[0].2.as_str()),
            (
                1,
                "channel \"link\" has size 0x3000 here but 0x2000 in a.toml"
            )
        );
        let order = chans("b", &GOOD.replace("[\"a\", \"b\"]", "[\"b\", \"a\"]"));
        let r = check_members(&[m("a.toml", "a", &a), m("b.toml", "b", &order)]);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].2
                .contains("lists [\"b\", \"a\"] here but [\"a\", \"b\"] in a.toml"),
            "{}",
            r[0].2
        );
    }
}
