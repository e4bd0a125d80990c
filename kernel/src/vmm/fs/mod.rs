//! VMs with `image_location = "fs"`: their configs and images are not built into the
//! hypervisor but are files on the boot card that the bootloader loaded into RAM and
//! listed as boot modules in the DTB (see [`crate::firmware::modules`]).
//!
//! Each config is parsed and checked with the rules xtask uses (the shared
//! `vmconfig` crate); its image paths are resolved among the modules; its vCPUs are
//! placed on CPUs no other VM uses; and it becomes a [`VmSpec`] like those of the
//! built-in table. Anything wrong stops only that VM, with a line naming the VM (when
//! its id and name can be read), the file, the key and the reason.

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

use crate::firmware::modules::{ModuleKind, Modules};
use crate::firmware::Range;
use crate::spec::VmSpec;
use files::{inside, overlaps, resolve};
use place::CpuOwners;
use source::{lasting, FileSource, ModuleFiles};
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
}

/// A config that will not become a VM.
struct Refusal {
    /// (id, name) when the config has them.
    vm: Option<(u64, String)>,
    file: String,
    /// `key: reason` (or just the reason), first the one that is shown first.
    problems: Vec<String>,
}

impl Refusal {
    fn new(vm: Option<(u64, String)>, file: &str, problems: Vec<String>) -> Self {
        Self {
            vm,
            file: file.to_string(),
            problems,
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
}

/// Reads, checks and places the fs VMs of `modules`; `builtin` are the VMs built
/// into the hypervisor (their CPUs, ids and names are taken).
pub fn fs_vms(modules: &Modules<'_>, host: &Host<'_>, builtin: &[VmSpec]) -> FsVms {
    let mut out = FsVms::default();
    if modules.overflow {
        out.lines.push(format!(
            "more than {} boot modules: the others are ignored",
            crate::firmware::modules::MAX_MODULES
        ));
    }
    let files = ModuleFiles { modules, host };
    let mut found: Vec<Result<Candidate, Refusal>> = Vec::new();
    for m in modules.iter().filter(|m| m.kind == ModuleKind::VmConfig) {
        let earlier: Vec<&VmConfig> = found.iter().flatten().map(|c| &c.cfg).collect();
        let c = candidate(m.file, &files, host, builtin, &earlier, &mut out.lines);
        found.push(c);
    }
    let placed = place_all(found, host, builtin);
    for r in placed {
        match r {
            Ok((c, pcpus)) => {
                out.vms.push(FsVm {
                    file: format!("{}: ", c.file),
                    spec: owned_spec(c.cfg, c.images, pcpus),
                });
            }
            Err(refusal) => {
                out.refused += 1;
                refusal.lines(&mut out.lines);
            }
        }
    }
    out
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
        Err((key, why)) => Err(Refusal::new(
            Some((u64::from(c.cfg.id), c.cfg.name.clone())),
            &c.file,
            alloc::vec![format!("{key}: {why}")],
        )),
    }
}

/// The spec of the VM config `file` read from `files` (the shell's `vm create`),
/// checked with the same rules as at boot; its vCPUs placed on CPUs none of
/// `existing` uses. Else the lines that say why (file, key, reason).
pub fn create_one(
    files: &dyn FileSource,
    file: &str,
    host: &Host<'_>,
    existing: &[VmSpec],
) -> Result<FsVm, Vec<String>> {
    let mut lines = Vec::new();
    let file = file.trim_start_matches('/');
    let found = candidate(file, files, host, existing, &[], &mut lines);
    let placed = place_all(alloc::vec![found], host, existing);
    let refusal = match placed.into_iter().next() {
        Some(Ok((c, pcpus))) => {
            return Ok(FsVm {
                file: format!("{}: ", c.file),
                spec: owned_spec(c.cfg, c.images, pcpus),
            })
        }
        Some(Err(r)) => r,
        None => Refusal::new(None, file, alloc::vec![String::from("refused")]),
    };
    refusal.lines(&mut lines);
    Err(lines)
}

/// Reads and checks one config file and the images it names.
fn candidate(
    file: &str,
    files: &dyn FileSource,
    host: &Host<'_>,
    builtin: &[VmSpec],
    earlier: &[&VmConfig],
    lines: &mut Vec<String>,
) -> Result<Candidate, Refusal> {
    let bytes = files
        .read(file)
        .and_then(|b| lasting(b, file))
        .map_err(|why| {
            // The refusal names the file itself.
            let why = why.strip_prefix(&format!("{file}: ")).unwrap_or(&why);
            Refusal::new(None, file, alloc::vec![String::from(why)])
        })?;
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
    let images = vm_images(&cfg, file, files, &mut problems);
    problems.extend(host_memory(&cfg, host));
    match images {
        Some(images) if problems.is_empty() => Ok(Candidate {
            file: file.to_string(),
            cfg,
            images,
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
    files: &dyn FileSource,
    problems: &mut Vec<String>,
) -> Option<Images> {
    let read = |path: &str| {
        let Some(at) = resolve(file, path) else {
            return Err(format!("{path:?} leaves the boot partition"));
        };
        files.read(&at).and_then(|b| lasting(b, &at))
    };
    let mut get = |r: &ImageRef| match read(&r.path) {
        Ok(b) => Some(b),
        Err(why) => {
            problems.push(format!("{}: {why}", r.key));
            None
        }
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
