//! Console input: bytes typed on the board's console go to one VM at a time, the VM
//! "with the keyboard", or to the hypervisor shell (`vmm::shell`). Ctrl-\ passes the
//! keyboard to the next running VM, after the last one to the shell, and the
//! console says which has it. (Ctrl-A would be taken by QEMU's own console.) The
//! keyboard follows VM ids, not positions in the VM table, so VMs created or
//! destroyed meanwhile do not move it.

use super::machine::Machine;
use super::run::kick_pending;
use super::shell;
use super::vm::Vm;
use crate::console;
use core::sync::atomic::{AtomicU32, Ordering};

/// Ctrl-\ (ASCII FS).
pub const SWITCH_KEY: u8 = 0x1c;

/// No VM has the keyboard.
const NOBODY: u32 = u32::MAX;

/// The hypervisor shell has the keyboard.
const SHELL: u32 = u32::MAX - 1;

/// Id of the VM that has the keyboard (or [`SHELL`], [`NOBODY`]).
static FOCUS: AtomicU32 = AtomicU32::new(NOBODY);

/// Gives the first VM the keyboard and tells the user, at boot.
pub fn announce(m: &Machine) {
    let vms = m.vms();
    let Some(first) = vms.first() else { return };
    focus(first);
    crate::info!(
        "hv: console input goes to VM {} ({}); Ctrl-\\ switches (VMs, then the hypervisor shell)",
        first.id(),
        first.name()
    );
}

/// A physical interrupt of one of the hypervisor's own devices.
pub fn host_interrupt(m: &Machine, intid: u32) {
    if m.platform.console().and_then(|u| u.irq) == Some(intid) {
        let mut buf = [0u8; 64];
        loop {
            let n = console::read_input(&mut buf);
            buf[..n].iter().for_each(|&b| route(m, b));
            if n < buf.len() {
                break;
            }
        }
    }
}

fn route(m: &Machine, byte: u8) {
    if byte == SWITCH_KEY {
        switch(m);
        return;
    }
    let focus = FOCUS.load(Ordering::Acquire);
    if focus == SHELL {
        shell::console::key(m, byte);
        return;
    }
    let Some(vm) = m.vm(focus) else {
        return;
    };
    if vm.is_stopped() {
        return;
    }
    vm.devices.lock().console_input(byte);
    kick_pending(&vm);
}

/// Gives `vm` the keyboard.
fn focus(vm: &Vm) {
    FOCUS.store(vm.id(), Ordering::Release);
    vm.devices.lock().set_focus(true);
}

/// Takes the keyboard from the VM (or the shell) that has it.
fn unfocus(m: &Machine) {
    let from = FOCUS.load(Ordering::Acquire);
    if from == SHELL {
        shell::console::leave();
    }
    if let Some(old) = m.vm(from) {
        old.devices.lock().set_focus(false);
    }
}

/// Gives the shell the keyboard and shows its prompt (`vm focus` away from it, the
/// last VM stopped with `on_last_stop = "shell"`).
pub fn to_shell(m: &Machine) {
    let old = FOCUS.swap(SHELL, Ordering::AcqRel);
    if old == SHELL {
        return;
    }
    if let Some(vm) = m.vm(old) {
        vm.devices.lock().set_focus(false);
    }
    crate::info!("hv: console input goes to the hypervisor shell (`help` lists its commands)");
    shell::console::prompt();
}

/// The shell's `vm focus ID`.
pub fn focus_id(m: &Machine, id: u32) {
    let Some(vm) = m.vm(id) else { return };
    unfocus(m);
    focus(&vm);
    crate::info!("hv: console input goes to VM {} ({})", vm.id(), vm.name());
}

/// Moves the keyboard to the next VM (in VM table order) that is still running;
/// after the last one, to the shell; from the shell, to the first running VM.
fn switch(m: &Machine) {
    let vms = m.vms();
    let from = FOCUS.load(Ordering::Acquire);
    let start = match vms.iter().position(|v| v.id() == from) {
        Some(i) => i + 1,
        None if from == SHELL => 0,
        None => vms.len(),
    };
    let next = vms.iter().skip(start).find(|v| !v.is_stopped());
    match next {
        Some(vm) => {
            unfocus(m);
            focus(vm);
            crate::info!("hv: console input goes to VM {} ({})", vm.id(), vm.name());
        }
        None if from == SHELL => {
            crate::warn!("hv: no VM is running to take console input");
            shell::console::prompt();
        }
        None => to_shell(m),
    }
}
