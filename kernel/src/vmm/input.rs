//! Console input: bytes typed on the board's console go to one VM at a time, the VM
//! "with the keyboard". Ctrl-\ passes the keyboard to the next running VM, and the
//! console says which VM has it. (Ctrl-A would be taken by QEMU's own console.)

use super::run::{kick_pending, Machine};
use crate::console;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Ctrl-\ (ASCII FS).
pub const SWITCH_KEY: u8 = 0x1c;

/// Index (into the machine's VMs) of the VM that has the keyboard.
static FOCUS: AtomicUsize = AtomicUsize::new(0);

/// Gives the first VM the keyboard and tells the user, at boot.
pub fn announce(m: &Machine) {
    if let Some(vm) = m.vms.first() {
        vm.devices.lock().set_focus(true);
    }
    if m.vms.len() > 1 {
        if let Some(vm) = m.vms.get(FOCUS.load(Ordering::Acquire)) {
            crate::info!(
                "hv: console input goes to VM {} ({}); Ctrl-\\ switches",
                vm.id(),
                vm.name()
            );
        }
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
    let Some(vm) = m.vms.get(FOCUS.load(Ordering::Acquire)) else {
        return;
    };
    if vm.is_stopped() {
        return;
    }
    vm.devices.lock().console_input(byte);
    kick_pending(vm);
}

/// Moves the keyboard to the next VM that is still running.
fn switch(m: &Machine) {
    let n = m.vms.len();
    let from = FOCUS.load(Ordering::Acquire);
    let next = (1..=n)
        .map(|k| (from + k) % n)
        .find(|&i| !m.vms[i].is_stopped());
    match next {
        Some(i) => {
            m.vms[from].devices.lock().set_focus(false);
            FOCUS.store(i, Ordering::Release);
            let vm = &m.vms[i];
            vm.devices.lock().set_focus(true);
            crate::info!("hv: console input goes to VM {} ({})", vm.id(), vm.name());
        }
        None => crate::warn!("hv: no VM is running to take console input"),
    }
}
