//! The hypervisor shell (`hv> `) on the console: one more stop in the Ctrl-\ cycle
//! of the keyboard (`vmm::input`). `parse` turns a line into a [`Command`], `line`
//! edits the line as it is typed (both pure); [`execute`] runs a command against
//! the machine, writing what it says to `out`.
//!
//! Stopping, restarting and deleting a VM wait for its vCPUs to leave the guest:
//! the shell may run on a CPU that runs one of them (the console's interrupt
//! arrives there), so the request is left on the VM and done by the last vCPU out
//! (`Machine::settle`), or at once when none is in.

pub mod line;
pub mod parse;

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;

use super::machine::Machine;
use super::vm::{Pending, Power, Vm, VmState};
use crate::hal::{Current, HostTimer};
use crate::spec::VmSpec;
use crate::vmm::fs::FsVm;
pub use parse::Command;

/// The prompt.
pub const PROMPT: &str = "hv> ";

/// What the caller does after a command: most are done inside [`execute`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Give the keyboard to this VM.
    Focus(u32),
    PowerOff,
    Reboot,
}

/// How `vm create` reads a config: the path and the specs of the VMs there are
/// (their ids, names and CPUs are taken) -> the VM's spec and the frames holding its
/// files (which the VM keeps), or the lines that say why not.
pub type CreateFn<'a> = &'a dyn Fn(&str, &[VmSpec]) -> Result<FsVm, Vec<String>>;

/// Runs `cmd`; `out` gets what it prints (lines ending in `\n`).
pub fn execute(
    m: &Machine,
    cmd: Command,
    out: &mut dyn Write,
    create: CreateFn<'_>,
) -> Result<Effect, String> {
    match cmd {
        Command::Nothing => {}
        Command::Help => {
            for (c, what) in parse::HELP {
                let _ = writeln!(out, "  {c:<16} {what}");
            }
            let _ = writeln!(
                out,
                "  Ctrl-\\ moves the keyboard to the next running VM and back to this shell"
            );
        }
        Command::VmList => vm_list(m, out),
        Command::VmShow(id) => vm_show(&*find(m, id)?, out),
        Command::VmStop(id) => {
            let vm = find(m, id)?;
            if !m.stop_from_shell(&vm, Pending::Stop) {
                return Err(alloc::format!("VM {id} is {}, not running", state(&vm)));
            }
            settle(m, &vm, out);
        }
        Command::VmStart(id) => {
            let vm = find(m, id)?;
            match vm.state() {
                VmState::Created => {
                    m.start(&vm);
                    let _ = writeln!(out, "VM {id} ({}) started", vm.name());
                }
                VmState::Stopped => {
                    vm.set_pending(Pending::Restart);
                    settle(m, &vm, out);
                }
                _ => return Err(alloc::format!("VM {id} is {}", state(&vm))),
            }
        }
        Command::VmRestart(id) => {
            let vm = find(m, id)?;
            match vm.state() {
                VmState::Created => {
                    m.start(&vm);
                    let _ = writeln!(out, "VM {id} ({}) started", vm.name());
                }
                VmState::Stopped => {
                    vm.set_pending(Pending::Restart);
                    settle(m, &vm, out);
                }
                _ => {
                    // Running or resetting: stopped first; a stop racing with this
                    // one (the guest powering off) leaves it stopped, and then it
                    // restarts all the same.
                    if !m.stop_from_shell(&vm, Pending::Restart) {
                        vm.set_pending(Pending::Restart);
                    }
                    settle(m, &vm, out);
                }
            }
        }
        Command::VmDelete(id) => {
            let vm = find(m, id)?;
            if !m.stop_from_shell(&vm, Pending::Delete) {
                vm.set_pending(Pending::Delete);
            }
            settle(m, &vm, out);
        }
        Command::VmCreate(path) => vm_create(m, &path, out, create)?,
        Command::VmFocus(id) => {
            let vm = find(m, id)?;
            if vm.is_stopped() {
                return Err(alloc::format!(
                    "VM {id} is {}: only a running VM takes the keyboard",
                    state(&vm)
                ));
            }
            return Ok(Effect::Focus(id));
        }
        Command::Log(level) => {
            crate::console::set_level(level);
            let _ = writeln!(out, "log level: {level:?}");
        }
        Command::Mem => {
            let (used, free) = m.frames();
            let _ = writeln!(
                out,
                "mem: {used} frames used, {free} free (4 KiB frames; {} MiB free)",
                free >> 8
            );
        }
        Command::Cpus => cpus(m, out),
        Command::PowerOff => return Ok(Effect::PowerOff),
        Command::Reboot => return Ok(Effect::Reboot),
    }
    Ok(Effect::None)
}

fn find(m: &Machine, id: u32) -> Result<Arc<Vm>, String> {
    m.vm(id)
        .ok_or_else(|| alloc::format!("no VM with id {id} (`vm list` shows them)"))
}

/// Does what waits for the VM's vCPUs now if none is in the guest; else says it
/// will be done when they are out.
fn settle(m: &Machine, vm: &Vm, out: &mut dyn Write) {
    let what = vm.pending();
    match m.settle(vm) {
        Some(Ok(done)) => {
            let _ = writeln!(out, "{done}");
        }
        Some(Err(why)) => {
            let _ = writeln!(out, "{why}");
        }
        None if what != Pending::Nothing => {
            let doing = match what {
                Pending::Restart => "restarting",
                Pending::Delete => "deleting",
                _ => "stopping",
            };
            let _ = writeln!(
                out,
                "VM {} ({}): {doing} once its vCPUs have left the guest (the console says when)",
                vm.id(),
                vm.name()
            );
        }
        None => {}
    }
}

/// The state as `vm list` shows it.
fn state(vm: &Vm) -> &'static str {
    match vm.state() {
        VmState::Created => "created",
        VmState::Running => "running",
        VmState::Resetting => "resetting",
        VmState::Stopped if vm.faulted() => "faulted",
        VmState::Stopped => "stopped",
        VmState::Destroyed => "deleted",
    }
}

/// Seconds since it last started, with tenths ("-" when not running).
fn uptime(vm: &Vm) -> String {
    let at = vm.started_at();
    if at == 0 || vm.is_stopped() {
        return String::from("-");
    }
    let ds = Current::counter().saturating_sub(at) * 10 / Current::counter_hz().max(1);
    alloc::format!("{}.{} s", ds / 10, ds % 10)
}

fn cpu_list(vm: &Vm) -> String {
    let cpus: Vec<String> = vm
        .vcpus
        .iter()
        .map(|v| alloc::format!("{}", v.pcpu))
        .collect();
    cpus.join(",")
}

fn vm_list(m: &Machine, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{:<4} {:<16} {:<9} {:<5} {:<8} {:>8} {:>9} {:>9}",
        "ID", "NAME", "STATE", "VCPUS", "CPUS", "MEMORY", "UPTIME", "EXITS"
    );
    for vm in m.vms() {
        let _ = writeln!(
            out,
            "{:<4} {:<16} {:<9} {:<5} {:<8} {:>4} MiB {:>9} {:>9}",
            vm.id(),
            vm.name(),
            state(&vm),
            vm.vcpus.len(),
            cpu_list(&vm),
            vm.ram_bytes() >> 20,
            uptime(&vm),
            vm.exits.total()
        );
    }
}

fn vm_show(vm: &Vm, out: &mut dyn Write) {
    let s = &vm.spec;
    let _ = writeln!(
        out,
        "VM {} ({}): {}, boot {}, VMID {}, uptime {}",
        vm.id(),
        vm.name(),
        state(vm),
        vm.boots(),
        vm.vmid,
        uptime(vm)
    );
    let vcpus: Vec<String> = vm
        .vcpus
        .iter()
        .enumerate()
        .map(|(i, v)| alloc::format!("vCPU {i} on CPU {} ({})", v.pcpu, power(v.power())))
        .collect();
    let _ = writeln!(out, "  vCPUs: {}", vcpus.join(", "));
    let _ = writeln!(out, "  entry: {:#x}", s.entry_point);
    let images = [
        ("kernel", Some(&s.kernel)),
        ("dtb", s.dtb.as_ref()),
        ("ramdisk", s.ramdisk.as_ref()),
    ];
    for (what, img) in images {
        if let Some(i) = img {
            let _ = writeln!(
                out,
                "  {what}: {} bytes at GPA {:#x}",
                i.data.len(),
                i.load_gpa
            );
        }
    }
    if !s.cmdline.is_empty() {
        let _ = writeln!(out, "  cmdline: {:?}", &*s.cmdline);
    }
    for r in s.memory_regions.iter() {
        let _ = writeln!(
            out,
            "  memory: GPA {:#x}..{:#x} ({} MiB, {:?}, flags {:#x})",
            r.gpa,
            r.gpa.saturating_add(r.size),
            r.size >> 20,
            r.map_type,
            r.flags
        );
    }
    for d in s.emu_devices.iter() {
        let _ = writeln!(
            out,
            "  device: {} (emu_type {:#x}) at GPA {:#x}+{:#x}, interrupt {}",
            d.name, d.emu_type, d.base_gpa, d.length, d.irq
        );
    }
    for d in s.passthrough_devices.iter() {
        let _ = writeln!(
            out,
            "  passthrough: {} GPA {:#x} -> host {:#x}+{:#x}, interrupt {}",
            d.name, d.base_gpa, d.base_hpa, d.length, d.irq
        );
    }
    let _ = writeln!(out, "  exits: {}", vm.exits);
    let (blocks, filled, _) = vm.lazy.counts();
    let _ = writeln!(
        out,
        "  RAM blocks zeroed on first touch: {filled} of {blocks}"
    );
}

fn power(p: Power) -> &'static str {
    match p {
        Power::Off => "off",
        Power::Starting => "starting",
        Power::On => "on",
    }
}

fn cpus(m: &Machine, out: &mut dyn Write) {
    for (i, id) in m.platform.cpus().iter().enumerate() {
        match m.assigned(i) {
            Some((vm, v)) => {
                let _ = writeln!(
                    out,
                    "CPU {i} ({id:#x}): VM {} ({}) vCPU {v}, {}",
                    vm.id(),
                    vm.name(),
                    power(vm.vcpus[v].power())
                );
            }
            None => {
                let _ = writeln!(out, "CPU {i} ({id:#x}): free");
            }
        }
    }
}

fn vm_create(
    m: &Machine,
    path: &str,
    out: &mut dyn Write,
    create: CreateFn<'_>,
) -> Result<(), String> {
    let existing: Vec<VmSpec> = m.vms().iter().map(|v| VmSpec::clone(&v.spec)).collect();
    let FsVm { spec, frames, .. } = match create(path, &existing) {
        Ok(vm) => vm,
        Err(lines) => {
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            return Err(alloc::format!("vm create {path}: refused"));
        }
    };
    let (id, name) = (spec.id, spec.name.clone());
    let vm = m
        .create_holding(Cow::Owned(spec), frames)
        .map_err(|why| alloc::format!("VM {id} ({name}) not created: {path}: {why}"))?;
    let _ = writeln!(
        out,
        "VM {} ({}) created: {}",
        vm.id(),
        vm.name(),
        vm.summary()
    );
    m.start(&vm);
    let _ = writeln!(out, "VM {} ({}) started", vm.id(), vm.name());
    Ok(())
}

/// The shell on the console: its line editor, fed by `vmm::input`.
#[cfg(target_os = "none")]
pub mod console {
    use super::line::LineEditor;
    use super::{execute, Effect, PROMPT};
    use crate::hal::{Cpu, Current};
    use crate::vmm::machine::Machine;
    use alloc::string::String;
    use alloc::vec::Vec;
    use spin::Mutex;

    static EDITOR: Mutex<LineEditor> = Mutex::new(LineEditor::new());

    /// Writes shell output to the console a whole line at a time, so another
    /// CPU's line never lands inside one of the shell's.
    #[derive(Default)]
    struct Out {
        line: String,
    }

    impl Out {
        fn flush(&mut self) {
            if !self.line.is_empty() {
                crate::console::print(format_args!("{}", self.line));
                self.line.clear();
            }
        }
    }

    impl core::fmt::Write for Out {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for piece in s.split_inclusive('\n') {
                self.line.push_str(piece);
                if piece.ends_with('\n') {
                    self.flush();
                }
            }
            Ok(())
        }
    }

    /// The prompt and the line typed so far, and how far the cursor is from its end.
    fn shown(ed: &LineEditor) -> (Vec<u8>, usize) {
        let typed = ed.current();
        let mut text = Vec::with_capacity(PROMPT.len() + typed.len());
        text.extend_from_slice(PROMPT.as_bytes());
        text.extend_from_slice(typed);
        (text, typed.len() - ed.cursor().min(typed.len()))
    }

    /// Shows the prompt and the line typed so far (on a line of its own), the
    /// cursor where it was.
    pub fn prompt() {
        let ed = EDITOR.lock();
        let (text, back) = shown(&ed);
        let mut draw = text.clone();
        draw.extend(core::iter::repeat_n(0x08, back));
        crate::console::shell_hide();
        crate::console::shell_echo(&draw, Some((&text, back)));
    }

    /// Takes the shell's line off the screen (the keyboard goes to a VM); what was
    /// typed stays in the editor for when it comes back.
    pub fn leave() {
        crate::console::shell_hide();
    }

    /// One typed byte for the shell.
    pub fn key(m: &Machine, byte: u8) {
        let line = {
            let mut ed = EDITOR.lock();
            let mut echo: Vec<u8> = Vec::new();
            let line = ed.feed(byte, &mut |b| echo.extend_from_slice(b));
            match line {
                Some(_) => crate::console::shell_echo(&echo, None),
                None if echo.is_empty() => {}
                None => {
                    let (text, back) = shown(&ed);
                    crate::console::shell_echo(&echo, Some((&text, back)));
                }
            }
            line
        };
        let Some(line) = line else { return };
        let mut out = Out::default();
        let result = super::parse::parse(&line).and_then(|cmd| {
            let create = |path: &str, existing: &[crate::spec::VmSpec]| {
                m.with_frames(|frames| {
                    crate::vmm::fs::start::create(&m.platform, path, existing, frames)
                })
            };
            execute(m, cmd, &mut out, &create)
        });
        out.flush();
        match result {
            Ok(Effect::None) => {}
            Ok(Effect::Focus(id)) => {
                crate::vmm::input::focus_id(m, id);
                return;
            }
            Ok(Effect::PowerOff) => m.power_off_now(),
            Ok(Effect::Reboot) => {
                crate::println!("hv: rebooting");
                Current::reboot(&m.platform)
            }
            Err(why) => crate::println!("error: {why}"),
        }
        prompt();
    }
}

/// On the host there is no console: the shell is driven through [`execute`].
#[cfg(not(target_os = "none"))]
pub mod console {
    use crate::vmm::machine::Machine;

    pub fn prompt() {}

    pub fn leave() {}

    pub fn key(_m: &Machine, _byte: u8) {}
}
