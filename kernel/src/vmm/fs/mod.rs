//! VMs with `image_location = "fs"`: their configs and images are not built into the
//! hypervisor but are files on the boot card that the bootloader loaded into RAM and
//! listed as boot modules in the DTB (see [`crate::firmware::modules`]).
//!
//! Each config is parsed and checked with the rules xtask uses (the shared
//! `vmconfig` crate); its image paths are resolved among the modules; its vCPUs are
//! placed on CPUs no other VM uses; and it becomes a [`VmSpec`] like those of the
//! built-in table. Anything wrong stops only that VM, with a line naming the VM (when
//! its id and name can be read), the file, the key and the reason.

pub mod disk;
pub mod disk_source;
#[cfg(test)]
mod disk_tests;
pub mod files;
pub mod place;
pub mod source;
pub mod spec;
#[cfg(target_os = "none")]
pub mod start;
#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use vmconfig::{ArchLimits, ImageRef, Problem, Severity, VmConfig};

use crate::firmware::modules::Modules;
use crate::firmware::Range;
use crate::spec::VmSpec;
use files::{inside, overlaps, resolve};
use place::CpuOwners;
use source::{FileSource, ModuleSource};
use spec::{owned_spec, Images};

/// The rules of the architecture the hypervisor runs on.
const ARCH: ArchLimits = <crate::hal::Current as crate::hal::Arch>::LIMITS;

/// What the fs VMs need to know about the machine.
pub struct Host<'a> {
    /// MPIDRs of the physical CPUs, in DTB order.
    pub cpus: &'a [u64],
    pub ram: &'a [Range],
    /// `/memreserve/` and `/reserved-memory` ranges.
    pub reserved: &'a [Range],
    /// What no VM may map: the hypervisor image, its DTB, the boot modules' slots.
    pub protected: &'a [Range],
    /// Host windows the hypervisor keeps ([`BoardInfo::kept_windows`]).
    ///
    /// [`BoardInfo::kept_windows`]: crate::firmware::BoardInfo::kept_windows
    pub kept: &'a [vmconfig::host::HostWindow],
    /// The bytes of a loaded module (a range already checked to be RAM).
    pub read: &'a dyn Fn(Range) -> Option<&'static [u8]>,
}

/// The fs VMs ready to be built, and what to tell about the others.
#[derive(Default)]
pub struct FsVms {
    pub vms: Vec<FsVm>,
    /// Configs that did not become a VM.
    pub refused: usize,
    /// Lines for the console (without the `hv: ` prefix).
    pub lines: Vec<String>,
}

/// One fs VM ready to be built.
pub struct FsVm {
    pub spec: VmSpec,
    /// `"<config file>: "`, for messages about this VM.
    pub file: String,
    /// Host frames (base, size) holding its files (read from the disk): the VM
    /// keeps them (its images are loaded again from them on a restart) and frees
    /// them when it is deleted (`Machine::create_holding`).
    pub frames: Vec<(u64, u64)>,
}

/// A config that will not become a VM.
struct Refusal {
    /// (id, name) when the config has them.
    vm: Option<(u64, String)>,
    file: String,
    /// `key: reason` (or just the reason), first the one that is shown first.
    problems: Vec<String>,
    /// Frames its files were read into, given back to the source.
    frames: Vec<(u64, u64)>,
}

impl Refusal {
    fn new(vm: Option<(u64, String)>, file: &str, problems: Vec<String>) -> Self {
        Self {
            vm,
            file: file.to_string(),
            problems,
            frames: Vec::new(),
        }
    }

    /// The refusal of a candidate: its frames go back with it.
    fn of(c: Candidate, problems: Vec<String>) -> Self {
        let who = Some((u64::from(c.cfg.id), c.cfg.name.clone()));
        Self {
            frames: c.frames,
            ..Self::new(who, &c.file, problems)
        }
    }

    fn lines(&self, out: &mut Vec<String>) {
        let who = match &self.vm {
            Some((id, name)) => format!("VM {id} ({name}) not started: "),
            None => String::new(),
        };
        let mut problems = self.problems.iter();
        let first = problems.next().map_or("refused", String::as_str);
        out.push(format!("{who}{}: {first}", self.file));
        for p in problems {
            out.push(format!("    and {}: {p}", self.file));
        }
    }
}

/// A config that passed every check but the CPU placement.
struct Candidate {
    file: String,
    cfg: VmConfig,
    images: Images,
    /// Frames its files were read into ([`FileSource::take_frames`]).
    frames: Vec<(u64, u64)>,
}

/// Most bytes a VM config file may have.
pub const CONFIG_LIMIT: u64 = 4 << 20;

/// Reads, checks and places the fs VMs of `modules`; `builtin` are the VMs built
/// into the hypervisor (their CPUs, ids and names are taken).
pub fn fs_vms(modules: &Modules<'_>, host: &Host<'_>, builtin: &[VmSpec]) -> FsVms {
    let mut src = ModuleSource { modules, host };
    vms_from(&mut src, host, builtin)
}

/// Reads, checks and places the fs VMs whose configs `src` holds.
pub fn vms_from(src: &mut dyn FileSource, host: &Host<'_>, builtin: &[VmSpec]) -> FsVms {
    let mut out = FsVms::default();
    let configs = src.configs(&mut out.lines);
    let mut found: Vec<Result<Candidate, Refusal>> = Vec::new();
    for file in &configs {
        let earlier: Vec<&VmConfig> = found.iter().flatten().map(|c| &c.cfg).collect();
        let c = candidate(file, src, host, builtin, &earlier, &mut out.lines);
        found.push(c);
    }
    check_channels(&mut found, builtin);
    let placed = place_all(found, host, builtin);
    for r in placed {
        match r {
            Ok((c, pcpus)) => out.vms.push(fs_vm(c, pcpus)),
            Err(refusal) => {
                out.refused += 1;
                src.release(&refusal.frames);
                refusal.lines(&mut out.lines);
            }
        }
    }
    out
}

fn fs_vm(c: Candidate, pcpus: Vec<u32>) -> FsVm {
    FsVm {
        file: format!("{}: ", c.file),
        frames: c.frames,
        spec: owned_spec(c.cfg, c.images, pcpus),
    }
}

/// The channels of the fs VMs against each other and the built-in VMs'
/// (`vmconfig::channel::check_members`, the rule xtask applies to a build): an fs VM
/// naming a channel no other VM names, or disagreeing with its members on its size
/// or list, is refused.
fn check_channels(found: &mut [Result<Candidate, Refusal>], builtin: &[VmSpec]) {
    use vmconfig::channel::{check_members, Channel, Doorbell, Member};
    let key = vmconfig::KeyPath::new("devices").key("channels");
    let built: Vec<(String, Vec<Channel>)> = builtin
        .iter()
        .map(|s| {
            let chans = s
                .channels
                .iter()
                .enumerate()
                .map(|(i, c)| Channel {
                    key: key.index(i),
                    name: c.name.to_string(),
                    size: c.size,
                    vms: c.vms.iter().map(|v| v.to_string()).collect(),
                    gpa: c.gpa,
                    writable: c.writable,
                    doorbell: c.doorbell.map(|(gpa, irq)| Doorbell { gpa, irq }),
                })
                .collect();
            (format!("built-in VM {}", s.name), chans)
        })
        .collect();
    let fs: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_ok()).collect();
    let mut members: Vec<Member<'_>> = built
        .iter()
        .map(|(shown, channels)| Member { shown, channels })
        .collect();
    for &i in &fs {
        if let Ok(c) = &found[i] {
            members.push(Member {
                shown: &c.file,
                channels: &c.cfg.channels,
            });
        }
    }
    let mut problems: Vec<(usize, String)> = check_members(&members)
        .into_iter()
        .filter(|(m, _, _)| *m >= built.len())
        .map(|(m, key, why)| (fs[m - built.len()], format!("{key}: {why}")))
        .collect();
    drop(members);
    problems.sort_by_key(|(i, _)| *i);
    for (i, _) in problems.iter() {
        let why: Vec<String> = problems
            .iter()
            .filter(|(j, _)| j == i)
            .map(|(_, w)| w.clone())
            .collect();
        let slot = core::mem::replace(&mut found[*i], Err(Refusal::new(None, "", Vec::new())));
        found[*i] = match slot {
            Ok(c) => Err(Refusal::of(c, why)),
            done => done,
        };
    }
}

/// A config with its vCPUs placed, or why it will not become a VM.
type Placed = Result<(Candidate, Vec<u32>), Refusal>;

/// Places pinned VMs first, then the others on the CPUs left, as xtask does.
fn place_all(
    found: Vec<Result<Candidate, Refusal>>,
    host: &Host<'_>,
    builtin: &[VmSpec],
) -> Vec<Placed> {
    let mut owners = CpuOwners::new(host.cpus.len(), builtin);
    let mut placed: Vec<Option<Placed>> = Vec::new();
    placed.resize_with(found.len(), || None);
    let pinned = |c: &Candidate| c.cfg.phys_cpu_ids.is_some() || c.cfg.phys_cpu_sets.is_some();
    let mut later = Vec::new();
    for (i, r) in found.into_iter().enumerate() {
        match r {
            Ok(c) if !pinned(&c) => later.push((i, c)),
            Ok(c) => placed[i] = Some(place_one(&mut owners, c, host)),
            Err(e) => placed[i] = Some(Err(e)),
        }
    }
    for (i, c) in later {
        placed[i] = Some(place_one(&mut owners, c, host));
    }
    placed.into_iter().flatten().collect()
}

fn place_one(owners: &mut CpuOwners, c: Candidate, host: &Host<'_>) -> Placed {
    match owners.place(&c.cfg, host.cpus) {
        Ok(pcpus) => Ok((c, pcpus)),
        Err((key, why)) => Err(Refusal::of(c, alloc::vec![format!("{key}: {why}")])),
    }
}

/// The spec of the VM config `file` read from `src` (the shell's `vm create`),
/// checked with the same rules as at boot (channels against `existing` too); its
/// vCPUs placed on CPUs none of `existing` uses. Else the lines that say why (file,
/// key, reason).
pub fn create_one(
    src: &mut dyn FileSource,
    file: &str,
    host: &Host<'_>,
    existing: &[VmSpec],
) -> Result<FsVm, Vec<String>> {
    let mut lines = Vec::new();
    let file = file.trim_start_matches('/');
    let mut found = alloc::vec![candidate(file, src, host, existing, &[], &mut lines)];
    check_channels(&mut found, existing);
    let placed = place_all(found, host, existing);
    let refusal = match placed.into_iter().next() {
        Some(Ok((c, pcpus))) => return Ok(fs_vm(c, pcpus)),
        Some(Err(r)) => r,
        None => Refusal::new(None, file, alloc::vec![String::from("refused")]),
    };
    src.release(&refusal.frames);
    refusal.lines(&mut lines);
    Err(lines)
}

/// Reads and checks one config file and the images it names; the frames its files
/// were read into go with the candidate, or back to the source when it is refused.
fn candidate(
    file: &str,
    src: &mut dyn FileSource,
    host: &Host<'_>,
    builtin: &[VmSpec],
    earlier: &[&VmConfig],
    lines: &mut Vec<String>,
) -> Result<Candidate, Refusal> {
    let r = read_candidate(file, src, host, builtin, earlier, lines);
    let frames = src.take_frames();
    match r {
        Ok(c) => Ok(Candidate { frames, ..c }),
        Err(e) => {
            src.release(&frames);
            Err(e)
        }
    }
}

fn read_candidate(
    file: &str,
    src: &mut dyn FileSource,
    host: &Host<'_>,
    builtin: &[VmSpec],
    earlier: &[&VmConfig],
    lines: &mut Vec<String>,
) -> Result<Candidate, Refusal> {
    let bytes = src
        .read(file, CONFIG_LIMIT)
        .map_err(|why| Refusal::new(None, file, alloc::vec![why]))?;
    let text = core::str::from_utf8(bytes).map_err(|e| {
        let why = format!("not UTF-8 text (byte {})", e.valid_up_to());
        Refusal::new(None, file, alloc::vec![why])
    })?;
    let parsed = vmconfig::parse_vm(text, ARCH);
    let who = parsed.id.zip(parsed.name.clone());
    let shown = |p: &Problem| located(text, p);
    for w in parsed
        .problems
        .items
        .iter()
        .filter(|p| p.severity == Severity::Warning)
    {
        lines.push(format!("{file}: warning: {}", shown(w)));
    }
    let Some(cfg) = parsed.vm else {
        let problems = parsed.problems.errors().map(shown).collect();
        return Err(Refusal::new(who, file, problems));
    };
    let mut problems = taken_ids(&cfg, builtin, earlier);
    let images = vm_images(&cfg, file, src, &mut problems);
    problems.extend(host_memory(&cfg, host));
    match images {
        Some(images) if problems.is_empty() => Ok(Candidate {
            file: file.to_string(),
            cfg,
            images,
            frames: Vec::new(),
        }),
        _ => Err(Refusal::new(who, file, problems)),
    }
}

/// `key: reason`, with the line when the parser located it.
fn located(text: &str, p: &Problem) -> String {
    match p.offset {
        Some(o) => format!("{p} (line {})", vmconfig::parse::line_col(text, o).0),
        None => p.to_string(),
    }
}

/// A VM id or name used by a built-in VM or by an fs VM read before.
fn taken_ids(cfg: &VmConfig, builtin: &[VmSpec], earlier: &[&VmConfig]) -> Vec<String> {
    let others = builtin
        .iter()
        .map(|s| (s.id, &*s.name))
        .chain(earlier.iter().map(|c| (c.id, c.name.as_str())));
    let mut problems = Vec::new();
    for (id, name) in others {
        if id == cfg.id {
            problems.push(format!(
                "base.id: VM id {id} is already used by VM {id} ({name})"
            ));
        }
        if name == cfg.name {
            problems.push(format!(
                "base.name: VM name {name:?} is already used by VM {id} ({name})"
            ));
        }
    }
    problems
}

/// The kernel, DTB and ramdisk bytes, checked to fit the VM's memory; `None` after
/// adding a problem.
fn vm_images(
    cfg: &VmConfig,
    file: &str,
    src: &mut dyn FileSource,
    problems: &mut Vec<String>,
) -> Option<Images> {
    // No image can be larger than the VM's memory: a larger file is not even read.
    let limit = cfg
        .memory
        .iter()
        .fold(0u64, |sum, m| sum.saturating_add(m.range.size));
    let mut get = |r: &ImageRef| {
        let got = match resolve(file, &r.path) {
            None => Err(format!("{:?} leaves the root of {}", r.path, src.what())),
            Some(path) => src
                .read(&path, limit)
                .map_err(|why| format!("{path}: {why}")),
        };
        got.map_err(|why| problems.push(format!("{}: {why}", r.key)))
            .ok()
    };
    let kernel = get(&cfg.kernel);
    let dtb = cfg.dtb.as_ref().map(&mut get);
    let ramdisk = cfg.ramdisk.as_ref().map(&mut get);
    let images = Images {
        kernel: kernel?,
        dtb: dtb.map_or(Some(None), |d| d.map(Some))?,
        ramdisk: ramdisk.map_or(Some(None), |d| d.map(Some))?,
    };
    fn loaded(b: &[u8]) -> vmconfig::Loaded<'_> {
        let head = &b[..b.len().min(vmconfig::image::HEAD_LEN)];
        vmconfig::Loaded {
            head,
            len: b.len() as u64,
        }
    }
    let mut checked = vmconfig::Problems::default();
    vmconfig::check_images(
        cfg,
        Some(loaded(images.kernel)),
        images.dtb.map(loaded),
        images.ramdisk.map(loaded),
        ARCH,
        &mut checked,
    );
    problems.extend(checked.errors().map(|p| p.to_string()));
    Some(images)
}

/// Host memory an fs VM maps as it is (reserved regions, passthrough devices) must
/// not be the hypervisor's, a boot module's, or RAM the frame allocator hands out.
fn host_memory(cfg: &VmConfig, host: &Host<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, m) in cfg.memory.iter().enumerate() {
        let r = Range {
            base: m.range.base,
            size: m.range.size,
        };
        let key = format!("kernel.memory_regions[{i}]");
        if m.map_type != 0 && overlaps(r, host.protected) {
            problems.push(format!(
                "{key}: host range {} overlaps the hypervisor, its DTB or a boot module",
                m.range
            ));
        } else if m.map_type == 2 && overlaps(r, host.ram) && !inside(r, host.reserved) {
            problems.push(format!(
                "{key}: reserved region {} is host RAM that is not reserved (/memreserve/ or /reserved-memory)",
                m.range
            ));
        }
    }
    let ram: Vec<vmconfig::Range> = host
        .ram
        .iter()
        .map(|r| vmconfig::Range::new(r.base, r.size))
        .collect();
    let mut checked = vmconfig::Problems::default();
    vmconfig::host::check_passthrough(&cfg.passthrough, host.kept, &ram, &mut checked);
    problems.extend(checked.errors().map(|p| p.to_string()));
    problems
}
