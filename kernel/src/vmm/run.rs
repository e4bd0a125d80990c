//! What every physical CPU does once the hypervisor is up: run the one vCPU pinned
//! to it (static partitioning, no scheduler), answer its exits, and take part in the
//! VM lifecycle. The machine and its VM table are in `machine.rs`.

use super::machine::{wake, Machine, Outcome};
use super::vm::{Power, Vm, VmState};
use crate::hal::exit::{Reply, VcpuOnError, VmExit};
use crate::hal::{Current, CurrentVcpu, HostIrq, Vcpu, VcpuStart};

use super::axivc::AXVISOR_CODES_END;
use super::devices::{Access, MmioResult};
use crate::devices::device::VmEvent;
use crate::devices::irqchip::MsrAnswer;
use crate::mm::guest::GuestMemory;
use alloc::vec::Vec;

/// Project hypercall: identify the hypervisor, the VM and the vCPU.
pub const HC_HV_INFO: u64 = 0xC600_0000;
/// Project hypercall: how many times this VM has started (1, then +1 per reset).
pub const HC_VM_BOOTS: u64 = 0xC600_0001;
/// "HV" + ABI version 1.
pub const HV_ABI_MAGIC: u64 = 0x4856_0001;
const NOT_SUPPORTED: u64 = u64::MAX; // -1

/// The loop of physical CPU `cpu` (index in the board's order). Never returns: it
/// runs the vCPU of whichever VM has one on this CPU, and idles otherwise.
pub fn cpu_loop(m: &'static Machine, cpu: usize) -> ! {
    loop {
        match m.assigned(cpu) {
            Some((vm, index)) => {
                if let Some((entry, arg)) = wait_for_start(m, &vm, index) {
                    run_vcpu(m, &vm, index, entry, arg);
                }
            }
            None => idle(m),
        }
    }
}

/// Waits for an interrupt on a CPU with no guest to run, serving the hypervisor's own
/// device interrupts (console input) meanwhile.
fn idle(m: &Machine) {
    Current::idle(&mut |intid| super::input::host_interrupt(m, intid));
}

/// Waits until vCPU `index` is asked to start; None once the VM is destroyed (its
/// CPU is then free for another VM). A stopped VM may be restarted: its CPUs wait.
fn wait_for_start(m: &Machine, vm: &Vm, index: usize) -> Option<(u64, u64)> {
    let slot = &vm.vcpus[index];
    loop {
        match vm.state() {
            VmState::Destroyed => return None,
            VmState::Running if slot.power() == Power::Starting => return Some(slot.boot_params()),
            _ => idle(m),
        }
    }
}

/// What to do after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    Continue,
    /// The vCPU turned itself off; wait for the next CPU_ON.
    PowerOff,
    /// The VM is over.
    Stop,
}

fn run_vcpu(m: &Machine, vm: &Vm, index: usize, entry: u64, arg: u64) {
    let mut vcpu = CurrentVcpu::start(VcpuStart {
        stage2: vm.stage2,
        index,
        vcpus: vm.vcpus.len(),
        cntvoff: vm.cntvoff,
        entry,
        arg,
    });
    let slot = &vm.vcpus[index];
    if !slot.begin_run() {
        // A reset cancelled this start after the CPU saw it.
        return;
    }
    loop {
        if vm.state() != VmState::Running || serve_signals(m, vm, index) != Next::Continue {
            break;
        }
        if let Some(chip) = vm.devices.lock().irq_chip() {
            vcpu.fill_irqs(chip, index);
        }
        let exit = vcpu.run(&|gpa, access| vm.lazy.touch(gpa, access));
        if let Some(chip) = vm.devices.lock().irq_chip() {
            vcpu.sync_irqs(chip, index);
        }
        match handle_exit(m, vm, index, &mut vcpu, exit) {
            Next::Continue => {}
            Next::PowerOff | Next::Stop => break,
        }
    }
    // On -> Off only: a reset may already have queued this vCPU to start again.
    slot.power_off_if_on();
    // The last vCPU out does what the shell asked (restart, delete, device reset).
    m.settle_report(vm);
}

/// Serves the devices of `vm` that raised their signal (work finished outside an
/// access, see `devices::signal`) on its vCPU `index`, and acts on the events they
/// posted.
pub(super) fn serve_signals(m: &Machine, vm: &Vm, index: usize) -> Next {
    let mut events = Vec::new();
    {
        let mut devices = vm.devices.lock();
        if !devices.signalled() {
            return Next::Continue;
        }
        devices.serve_signals(access(vm, index, &mut events));
    }
    kick_pending(vm);
    act_on(m, vm, index, events)
}

/// Wakes the vCPUs of `vm` that its interrupt controller gave new interrupts.
pub fn kick_pending(vm: &Vm) {
    let kicks = vm.devices.lock().take_kicks();
    for (i, v) in vm.vcpus.iter().enumerate() {
        if kicks & (1u64 << i) != 0 && v.power() == Power::On {
            wake(v);
        }
    }
}

/// Resets `vm` on behalf of its vCPU `index`: the other vCPUs are kicked out and
/// power off, the images are loaded again and vCPU 0 starts over.
fn reset_vm(m: &Machine, vm: &Vm, index: usize) -> Next {
    if !vm.begin_reset() {
        return Next::Stop;
    }
    crate::info!(
        "hv: VM {} ({}) reset requested: restarting it",
        vm.id(),
        vm.name()
    );
    vm.vcpus[index].set_power(Power::Off);
    for v in vm.vcpus.iter().filter(|v| v.power() == Power::On) {
        wake(v);
    }
    // Pending CPU_ONs are cancelled; running vCPUs leave at their next exit. New
    // CPU_ONs are refused while the VM resets, but one that passed that check just
    // before the reset began may still land: cancelled on every turn.
    loop {
        for v in &vm.vcpus {
            v.cancel_start();
        }
        if vm.vcpus.iter().all(|v| v.power() == Power::Off) {
            break;
        }
        if vm.is_stopped() {
            return Next::Stop;
        }
        core::hint::spin_loop();
    }
    if let Err(why) = super::create::boot_afresh(vm) {
        return stop(m, vm, &alloc::format!("reset failed: {why}"));
    }
    if !vm.end_reset() {
        return Next::Stop;
    }
    wake(&vm.vcpus[0]);
    Next::PowerOff
}

pub(super) fn handle_exit(
    m: &Machine,
    vm: &Vm,
    index: usize,
    vcpu: &mut CurrentVcpu,
    exit: VmExit,
) -> Next {
    vm.exits.count(&exit);
    let next = dispatch(m, vm, index, vcpu, exit);
    kick_pending(vm);
    next
}

fn dispatch(m: &Machine, vm: &Vm, index: usize, vcpu: &mut CurrentVcpu, exit: VmExit) -> Next {
    match exit {
        VmExit::Mmio {
            gpa,
            width,
            write,
            pc,
        } => {
            let mut events = Vec::new();
            let r = vm
                .devices
                .lock()
                .mmio(access(vm, index, &mut events), gpa, width, write);
            let at = alloc::format!("at GPA {gpa:#x}, PC {pc:#x}");
            let unmapped = || mmio_fault(vm, gpa, write.is_some(), pc);
            answer(
                m,
                (vm, index, vcpu),
                r,
                events,
                Reply::MmioRead,
                unmapped,
                ("MMIO", write.is_some(), &at),
            )
        }
        VmExit::PortIo {
            port,
            width,
            write,
            pc,
        } => port_io(m, vm, index, vcpu, (port, width, write, pc)),
        VmExit::MsrRead { msr, pc } => msr_access(m, (vm, index, vcpu), msr, None, pc),
        VmExit::MsrWrite { msr, value, pc } => {
            msr_access(m, (vm, index, vcpu), msr, Some(value), pc)
        }
        VmExit::Cpuid { leaf, subleaf } => {
            let why = alloc::format!("not supported yet: CPUID leaf {leaf:#x}.{subleaf:#x}");
            stop(m, vm, &why)
        }
        VmExit::VcpuOn { target, entry, arg } => {
            let r = vcpu_on(vm, target, entry, arg);
            vcpu.reply(Reply::VcpuOn(r));
            Next::Continue
        }
        VmExit::VcpuStatus { target } => {
            match vm.vcpu_by_target(target) {
                Some(i) => vcpu.reply(Reply::VcpuStatus {
                    on: vm.vcpus[i].power() != Power::Off,
                }),
                None => vcpu.reply(Reply::VcpuOn(Err(VcpuOnError::InvalidTarget))),
            }
            Next::Continue
        }
        VmExit::VcpuOff => vcpu_off(m, vm, index),
        VmExit::SystemOff => {
            m.stop_vm(vm, Outcome::PoweredOff);
            Next::Stop
        }
        VmExit::SystemReset => reset_vm(m, vm, index),
        VmExit::Hypercall { code, args } => {
            let reply = match code {
                // AxVisor's numbers: its inter-VM channel calls (others refused).
                0..AXVISOR_CODES_END => Reply::Return(m.ivc_call(vm, code, args)),
                _ => Reply::Hypercall(hypercall(vm, index, code, args)),
            };
            vcpu.reply(reply);
            Next::Continue
        }
        VmExit::Ipi { value } => {
            vm.devices.lock().ipi(index, value);
            Next::Continue
        }
        VmExit::Console { data, len } => {
            let len = (len as usize).min(data.len());
            vm.devices.lock().console_write(&data[..len]);
            Next::Continue
        }
        VmExit::Interrupt {
            forward: Some(intid),
        } => {
            vm.devices.lock().inject(index, intid);
            Next::Continue
        }
        VmExit::HostInterrupt { intid } => {
            super::input::host_interrupt(m, intid);
            Next::Continue
        }
        VmExit::Interrupt { forward: None } | VmExit::Idle => Next::Continue,
        VmExit::Fault(f) => stop(m, vm, &f),
    }
}

/// What a device access by vCPU `index` of `vm` is handed: the VM's RAM (filled
/// first where it is zeroed on first touch) and a place for VM events.
fn access<'a>(vm: &'a Vm, index: usize, events: &'a mut Vec<VmEvent>) -> Access<'a> {
    Access {
        vcpu: index,
        memory: GuestMemory::new(&vm.ram, Some(&vm.lazy)),
        events,
    }
}

/// An `in` or `out`: answered by the device at the port, else the VM is stopped.
fn port_io(
    m: &Machine,
    vm: &Vm,
    index: usize,
    vcpu: &mut CurrentVcpu,
    (port, width, write, pc): (u16, u8, Option<u32>, u64),
) -> Next {
    let mut events = Vec::new();
    let r = vm
        .devices
        .lock()
        .pio(access(vm, index, &mut events), port, width, write);
    let dir = if write.is_some() { "out" } else { "in" };
    let at = alloc::format!("at port {port:#x}, PC {pc:#x}");
    let unmapped = || {
        alloc::format!("fault: port I/O ({dir}) to port {port:#x}, where no device is, PC {pc:#x}")
    };
    let reply = |v: u64| Reply::PortRead(v as u32);
    let how = ("port I/O", write.is_some(), at.as_str());
    answer(m, (vm, index, vcpu), r, events, reply, unmapped, how)
}

/// An MSR access (`write` None for a read) by vCPU `index`: the interrupt chip's
/// MSRs (x86's APIC) are answered by the chip, the ones it refuses fault in the
/// guest; no other MSR is answered yet: the VM is stopped with the reason.
fn msr_access(
    m: &Machine,
    (vm, index, vcpu): (&Vm, usize, &mut CurrentVcpu),
    msr: u32,
    write: Option<u64>,
    pc: u64,
) -> Next {
    let mut events = Vec::new();
    let answer = match vm.devices.lock().irq_chip() {
        Some(chip) => {
            let a = chip.msr(index, msr, write);
            chip.take_events(&mut events);
            a
        }
        None => MsrAnswer::NotMine,
    };
    match answer {
        MsrAnswer::Value(v) => {
            vcpu.reply(match write {
                Some(_) => Reply::None,
                None => Reply::MsrRead(v),
            });
            act_on(m, vm, index, events)
        }
        MsrAnswer::Refused => {
            vcpu.reply(Reply::Refused);
            Next::Continue
        }
        MsrAnswer::NotMine => {
            let why = alloc::format!("not supported yet: MSR {msr:#x} access, PC {pc:#x}");
            stop(m, vm, &why)
        }
    }
}

/// Finishes a device access by vCPU `index`: its value to the vCPU and the events
/// the devices posted acted on; or the VM stopped, with `unmapped()` when no device
/// was there, with the device's refusal otherwise (`how`: the access's space,
/// whether it wrote, and where it was made).
fn answer(
    m: &Machine,
    (vm, index, vcpu): (&Vm, usize, &mut CurrentVcpu),
    r: MmioResult,
    events: Vec<VmEvent>,
    reply: impl FnOnce(u64) -> Reply,
    unmapped: impl FnOnce() -> alloc::string::String,
    (space, write, at): (&str, bool, &str),
) -> Next {
    match r {
        MmioResult::Done(v) => {
            vcpu.reply(reply(v));
            act_on(m, vm, index, events)
        }
        MmioResult::Unmapped => stop(m, vm, &unmapped()),
        MmioResult::Error(e, device) => {
            let why = e.describe(&device, space, write);
            stop(m, vm, &alloc::format!("fault: device access {why}, {at}"))
        }
    }
}

/// Acts on the VM events devices posted during an access by vCPU `index`, in
/// order, on the paths the guest's own firmware calls take; stops at the first that
/// ends this vCPU's run.
fn act_on(m: &Machine, vm: &Vm, index: usize, events: Vec<VmEvent>) -> Next {
    for event in events {
        let next = match event {
            VmEvent::PowerOff => {
                m.stop_vm(vm, Outcome::PoweredOff);
                Next::Stop
            }
            VmEvent::Reset => reset_vm(m, vm, index),
            VmEvent::StartVcpu {
                index: i,
                entry,
                arg,
            } => {
                if let Err(e) = start_vcpu(vm, i, entry, arg) {
                    crate::warn!(
                        "hv: VM {} ({}): a device's start of vCPU {i} refused: {e:?}",
                        vm.id(),
                        vm.name()
                    );
                }
                Next::Continue
            }
        };
        if !matches!(next, Next::Continue) {
            return next;
        }
    }
    Next::Continue
}

fn stop(m: &Machine, vm: &Vm, why: &dyn core::fmt::Display) -> Next {
    m.stop_vm(vm, Outcome::Faulted(why));
    Next::Stop
}

pub(super) fn mmio_fault(vm: &Vm, gpa: u64, write: bool, pc: u64) -> alloc::string::String {
    let dir = if write { "write" } else { "read" };
    let read_only = vm
        .spec
        .channels
        .iter()
        .find(|c| !c.writable && c.gpa <= gpa && gpa - c.gpa < c.size);
    if let (true, Some(c)) = (write, read_only) {
        return alloc::format!(
            "fault: write to read-only channel {} at GPA {gpa:#x}, PC {pc:#x}",
            c.name
        );
    }
    let place = if vm.owns_memory(gpa) {
        "not permitted in guest memory"
    } else {
        "outside guest memory"
    };
    alloc::format!("fault: data abort ({dir}) at GPA {gpa:#x} {place}, PC {pc:#x}")
}

fn vcpu_on(vm: &Vm, target: u64, entry: u64, arg: u64) -> Result<(), VcpuOnError> {
    let i = vm
        .vcpu_by_target(target)
        .ok_or(VcpuOnError::InvalidTarget)?;
    start_vcpu(vm, i, entry, arg)
}

/// vCPU `index` turned itself off. When no vCPU of the VM is on or starting any
/// more, nothing can ever run in it again: it is powered off (a clean stop).
fn vcpu_off(m: &Machine, vm: &Vm, index: usize) -> Next {
    vm.vcpus[index].power_off_if_on();
    if vm.state() == VmState::Running && vm.vcpus.iter().all(|v| v.power() == Power::Off) {
        crate::info!(
            "hv: VM {} ({}): its last running vCPU turned itself off (vCPU {index}): powering the VM off",
            vm.id(),
            vm.name()
        );
        m.stop_vm(vm, Outcome::PoweredOff);
        return Next::Stop;
    }
    Next::PowerOff
}

/// Off -> Starting for vCPU `i` of `vm` at `entry` (in its RAM), and wakes its CPU.
/// Refused while the VM is not running (a reset in progress).
fn start_vcpu(vm: &Vm, i: usize, entry: u64, arg: u64) -> Result<(), VcpuOnError> {
    if i >= vm.vcpus.len() {
        return Err(VcpuOnError::InvalidTarget);
    }
    if vm.state() != VmState::Running {
        return Err(VcpuOnError::Denied);
    }
    if !vm.ram.contains(entry) {
        return Err(VcpuOnError::InvalidAddress);
    }
    vm.vcpus[i].request_start(entry, arg)?;
    wake(&vm.vcpus[i]);
    Ok(())
}

fn hypercall(vm: &Vm, index: usize, code: u64, _args: [u64; 4]) -> [u64; 4] {
    match code {
        HC_HV_INFO => [0, HV_ABI_MAGIC, vm.id() as u64, index as u64],
        HC_VM_BOOTS => [0, u64::from(vm.boots()), 0, 0],
        _ => [NOT_SUPPORTED, 0, 0, 0],
    }
}
