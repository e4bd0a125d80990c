//! Console input: bytes typed on the board's console go to one VM at a time, the VM
//! "with the keyboard". Ctrl-\ passes the keyboard to the next running VM, and the
//! console says which VM has it. (Ctrl-A would be taken by QEMU's own console.) The
//! keyboard follows VM ids, not positions in the VM table, so VMs created or
//! destroyed meanwhile do not move it.

use super::machine::Machine;
use super::run::kick_pending;
use super::vm::Vm;
use crate::console;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

/// Ctrl-\ (ASCII FS).
pub const SWITCH_KEY: u8 = 0x1c;

/// No VM has the keyboard.
const NOBODY: u32 = u32::MAX;

/// Id of the VM that has the keyboard.
static FOCUS: AtomicU32 = AtomicU32::new(NOBODY);

/// Gives the first VM the keyboard and tells the user, at boot.
pub fn announce(m: &Machine) {
    let vms = m.vms();
    let Some(first) = vms.first() else { return };
    focus(first);
    if vms.len() > 1 {
        crate::info!(
            "hv: console input goes to VM {} ({}); Ctrl-\\ switches",
            first.id(),
            first.name()
        );
    }
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
    let Some(vm) = m.vm(FOCUS.load(Ordering::Acquire)) else {
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

/// Moves the keyboard to the next VM (in VM table order) that is still running.
fn switch(m: &Machine) {
    let vms = m.vms();
    let from = FOCUS.load(Ordering::Acquire);
    let at = vms.iter().position(|v| v.id() == from).unwrap_or(vms.len());
    let n = vms.len();
    let next: Option<&Arc<Vm>> = (1..=n)
        .map(|k| &vms[(at + k) % n])
        .find(|v| !v.is_stopped());
    match next {
        Some(vm) => {
            if let Some(old) = vms.get(at) {
                old.devices.lock().set_focus(false);
            }
            focus(vm);
            crate::info!("hv: console input goes to VM {} ({})", vm.id(), vm.name());
        }
        None => crate::warn!("hv: no VM is running to take console input"),
    }
}
