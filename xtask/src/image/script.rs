//! The U-Boot boot script (`boot.scr`) of a card image. U-Boot's distro boot finds it
//! on the boot partition and runs it with `devtype`, `devnum`, `distro_bootpart` and
//! `prefix` set. It loads the hypervisor where `booti` runs it, the board DTB (or
//! takes U-Boot's own), the files of `image_location = "fs"` VMs, describes those
//! files in the DTB's `/chosen/hv-modules` node, and boots the hypervisor.
use std::fmt::Write as _;

/// What a boot module is, as the `compatible` of its node says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleKind {
    /// A VM config (TOML) of an `image_location = "fs"` VM.
    VmConfig,
    /// An image (kernel, DTB, ramdisk) a VM config names.
    VmImage,
}

impl ModuleKind {
    pub fn compatible(self) -> &'static str {
        match self {
            ModuleKind::VmConfig => "hv,vm-config",
            ModuleKind::VmImage => "hv,vm-image",
        }
    }
}

/// A file U-Boot loads into its slot `[addr, addr + slot)`; the script never reads
/// more than `slot` bytes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Path on the boot partition, without a leading `/`.
    pub file: String,
    pub kind: ModuleKind,
    pub addr: u64,
    pub slot: u64,
}

/// Which device tree the hypervisor gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dtb {
    /// U-Boot's own (`$fdtcontroladdr`, on QEMU the machine's), unchanged.
    Control,
    /// U-Boot's own, copied to `[addr, addr + size)` so nodes can be added.
    ControlCopy { addr: u64, size: u64 },
    /// A DTB file from the boot partition, loaded into `[addr, addr + slot)`.
    File { file: String, addr: u64, slot: u64 },
}

/// Extra room made in a DTB for the nodes the script adds (and U-Boot's fixups).
pub const DTB_EXTRA: u64 = 0x1_0000;

/// Everything the script does.
#[derive(Clone, Debug)]
pub struct BootScript {
    pub board: String,
    pub hypervisor_file: String,
    pub hypervisor_addr: u64,
    pub dtb: Dtb,
    pub modules: Vec<Module>,
}

const PART: &str = "${devtype} ${devnum}:${distro_bootpart}";

impl BootScript {
    /// The DTB address `booti` gets.
    fn dtb_arg(&self) -> String {
        match &self.dtb {
            Dtb::Control => "${fdtcontroladdr}".into(),
            Dtb::ControlCopy { addr, .. } | Dtb::File { addr, .. } => format!("{addr:#x}"),
        }
    }

    /// The script text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# boot.scr for board {}, written by `cargo xtask image` (regenerate it there; U-Boot runs this copy).",
            self.board
        );
        s.push_str("# U-Boot's distro boot sets devtype, devnum, distro_bootpart and prefix.\n");
        let _ = writeln!(
            s,
            "echo \"boot.scr: board {}, boot partition {PART}\"",
            self.board
        );
        let _ = writeln!(
            s,
            "if load {PART} {:#x} ${{prefix}}{}; then",
            self.hypervisor_addr, self.hypervisor_file
        );
        let body = self.body();
        for line in body.lines() {
            let _ = writeln!(s, "    {line}");
        }
        s.push_str("fi\n");
        let _ = writeln!(
            s,
            "echo \"boot.scr: could not start the hypervisor ({})\"",
            self.hypervisor_file
        );
        s
    }

    /// What runs once the hypervisor is loaded.
    fn body(&self) -> String {
        let mut s = String::new();
        let ok = match &self.dtb {
            Dtb::Control => true,
            Dtb::ControlCopy { addr, size } => {
                // `fdt move` needs a working FDT first.
                s.push_str("fdt addr ${fdtcontroladdr}\n");
                let _ = writeln!(s, "fdt move ${{fdtcontroladdr}} {addr:#x} {size:#x}");
                true
            }
            Dtb::File { file, addr, slot } => {
                let _ = writeln!(s, "setenv hv_dtb_ok 0");
                let _ = writeln!(
                    s,
                    "if load {PART} {addr:#x} ${{prefix}}{file} {slot:#x}; then"
                );
                let _ = writeln!(s, "    fdt addr {addr:#x}");
                let _ = writeln!(s, "    fdt resize {DTB_EXTRA:#x}");
                let _ = writeln!(s, "    setenv hv_dtb_ok 1");
                s.push_str("fi\n");
                false
            }
        };
        let mut boot = String::new();
        if !self.modules.is_empty() {
            boot.push_str(&self.modules_commands());
        }
        let dtb = self.dtb_arg();
        let _ = writeln!(
            boot,
            "echo \"boot.scr: booti {:#x} - {dtb}\"",
            self.hypervisor_addr
        );
        let _ = writeln!(boot, "booti {:#x} - {dtb}", self.hypervisor_addr);
        if ok {
            s.push_str(&boot);
        } else {
            s.push_str("if test \"${hv_dtb_ok}\" = 1; then\n");
            for line in boot.lines() {
                let _ = writeln!(s, "    {line}");
            }
            s.push_str("fi\n");
        }
        s
    }

    /// Loads each module and describes it under `/chosen/hv-modules`.
    fn modules_commands(&self) -> String {
        let mut s = String::new();
        for line in modules_node() {
            let _ = writeln!(s, "{line}");
        }
        for m in &self.modules {
            for line in module_node(m) {
                let _ = writeln!(s, "{line}");
            }
            let _ = writeln!(
                s,
                "if load {PART} {:#x} ${{prefix}}{} {:#x}; then",
                m.addr, m.file, m.slot
            );
            for line in module_loaded(m) {
                let _ = writeln!(s, "    {line}");
            }
            s.push_str("else\n");
            let _ = writeln!(
                s,
                "    echo \"boot.scr: {} not loaded (missing on the boot partition?)\"",
                m.file
            );
            s.push_str("fi\n");
        }
        s
    }

    /// The same boot as commands typed at U-Boot's prompt, with each file sent by the
    /// host (`cargo xtask uboot`: YMODEM or TFTP) where the script loads it from the
    /// card. Every step must succeed; the last one is `booti`.
    pub fn steps(&self) -> Vec<Step> {
        let mut out = vec![Step::Load {
            file: self.hypervisor_file.clone(),
            addr: self.hypervisor_addr,
        }];
        let run = |s: &str| Step::Run(s.to_string());
        match &self.dtb {
            Dtb::Control => {}
            Dtb::ControlCopy { addr, size } => {
                out.push(run("fdt addr ${fdtcontroladdr}"));
                out.push(Step::Run(format!(
                    "fdt move ${{fdtcontroladdr}} {addr:#x} {size:#x}"
                )));
            }
            Dtb::File { file, addr, .. } => {
                out.push(Step::Load {
                    file: file.clone(),
                    addr: *addr,
                });
                out.push(Step::Run(format!("fdt addr {addr:#x}")));
                out.push(Step::Run(format!("fdt resize {DTB_EXTRA:#x}")));
            }
        }
        if !self.modules.is_empty() {
            out.extend(modules_node().into_iter().map(Step::Run));
        }
        for m in &self.modules {
            out.extend(module_node(m).into_iter().map(Step::Run));
            out.push(Step::Load {
                file: m.file.clone(),
                addr: m.addr,
            });
            out.extend(module_loaded(m).into_iter().map(Step::Run));
        }
        out.push(Step::Run(format!(
            "booti {:#x} - {}",
            self.hypervisor_addr,
            self.dtb_arg()
        )));
        out
    }
}

/// One step of a boot typed at U-Boot's prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Put the boot-partition file `file` at `addr` (U-Boot sets `${filesize}`).
    Load { file: String, addr: u64 },
    /// A command.
    Run(String),
}

const MODULES_NODE: &str = "/chosen/hv-modules";

/// Makes `/chosen/hv-modules`.
fn modules_node() -> Vec<String> {
    let node = MODULES_NODE;
    vec![
        "fdt mknode /chosen hv-modules".into(),
        format!("fdt set {node} compatible \"hv,boot-modules\""),
        format!("fdt set {node} \"#address-cells\" <2>"),
        format!("fdt set {node} \"#size-cells\" <2>"),
    ]
}

fn module_path(m: &Module) -> (String, String) {
    let unit = format!("module@{:x}", m.addr);
    let path = format!("{MODULES_NODE}/{unit}");
    (unit, path)
}

/// Makes the module's node (before the file is loaded).
fn module_node(m: &Module) -> Vec<String> {
    let (unit, path) = module_path(m);
    let (hi, lo) = (m.addr >> 32, m.addr & 0xffff_ffff);
    let (shi, slo) = (m.slot >> 32, m.slot & 0xffff_ffff);
    vec![
        format!("fdt mknode {MODULES_NODE} {unit}"),
        format!(
            "fdt set {path} compatible \"{}\" \"hv,module\"",
            m.kind.compatible()
        ),
        format!("fdt set {path} hv,file \"{}\"", m.file),
        format!("fdt set {path} hv,slot <{hi:#x} {lo:#x} {shi:#x} {slo:#x}>"),
    ]
}

/// Records the loaded file (`${filesize}` bytes) in the module's node.
fn module_loaded(m: &Module) -> Vec<String> {
    let (_, path) = module_path(m);
    let (hi, lo) = (m.addr >> 32, m.addr & 0xffff_ffff);
    vec![
        format!("fdt set {path} reg <{hi:#x} {lo:#x} 0x0 0x${{filesize}}>"),
        format!("fdt rsvmem add {:#x} {:#x}", m.addr, m.slot),
    ]
}
