//! The core on the host, through the fake architecture (`hal::fake`): VMs built in
//! host memory, exits dispatched as a vCPU would deliver them, the lifecycle, and
//! the frames a VM holds given back when it is destroyed.

use super::fs::FsVm;
use super::machine::Machine;
use super::run::{handle_exit, Next, HC_HV_INFO, HV_ABI_MAGIC};
use super::vm::VmState;
use crate::firmware::Range;
use crate::hal::exit::{Reply, VcpuOnError, VmExit};
use crate::hal::fake::{self, FakeVcpu};
use crate::hal::{Arch, Current};
use crate::mm::frames::FrameAllocator;
use crate::spec::{EmuDevice, Image, MapType, MemRegion, VmSpec, TEST_SPEC};
use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::vec::Vec;

const RAM_GPA: u64 = 0x4000_0000;
const UART: u64 = 0x0900_0000;
const KERNEL: &[u8] = b"\x01\x02\x03\x04 a guest kernel";

/// `size` bytes of host memory, 2 MiB aligned, that stand for physical RAM.
fn host_ram(size: u64) -> Range {
    let layout = std::alloc::Layout::from_size_align(size as usize, 2 << 20).unwrap();
    // SAFETY: a non-zero size; the memory is leaked: the test's "physical RAM".
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null());
    Range {
        base: p as u64,
        size,
    }
}

fn machine(cpus: u64) -> Machine {
    let ram = host_ram(64 << 20);
    let board = fake::board(&[ram], cpus as usize);
    let frames = FrameAllocator::new(&[ram], &[]).unwrap();
    Machine::new(board, frames)
}

/// A VM `id` with one vCPU per entry of `pcpus`, 8 MiB of RAM and a console UART.
/// The spec is owned, as a VM loaded from the card has it: freed with its VM.
fn spec(id: u32, pcpus: &[u32], regions: Vec<MemRegion>) -> Cow<'static, VmSpec> {
    let emu = alloc::vec![EmuDevice {
        name: Cow::Borrowed("uart"),
        base_gpa: UART,
        length: 0x1000,
        irq: 0,
        emu_type: 0x2,
        cfg: Cow::Borrowed(&[]),
    }];
    Cow::Owned(VmSpec {
        id,
        name: Cow::Owned(alloc::format!("vm{id}")),
        cpu_num: pcpus.len() as u32,
        pcpu_of_vcpu: Cow::Owned(pcpus.to_vec()),
        entry_point: RAM_GPA,
        kernel: Image {
            load_gpa: RAM_GPA,
            data: KERNEL,
        },
        dtb_load_gpa: Some(RAM_GPA + (4 << 20)),
        memory_regions: Cow::Owned(regions),
        emu_devices: Cow::Owned(emu),
        ..TEST_SPEC
    })
}

fn ram(gpa: u64, size: u64) -> MemRegion {
    MemRegion {
        gpa,
        size,
        flags: 0x7,
        map_type: MapType::Allocate,
    }
}

fn simple(id: u32, pcpu: u32) -> Cow<'static, VmSpec> {
    spec(id, &[pcpu], alloc::vec![ram(RAM_GPA, 8 << 20)])
}

#[test]
fn a_vm_is_built_with_its_images_in_its_ram() {
    let m = machine(2);
    let vm = m.create(simple(1, 0)).unwrap();
    assert_eq!(vm.state(), VmState::Created);
    let hpa = vm.ram.translate(RAM_GPA, KERNEL.len() as u64).unwrap();
    // SAFETY: the VM's RAM, host memory here; nothing runs.
    let bytes = unsafe { crate::mm::phys::slice_mut(hpa, KERNEL.len() as u64) };
    assert_eq!(bytes, KERNEL);
    let dtb = vm.ram.translate(RAM_GPA + (4 << 20), 8).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { crate::mm::phys::slice_mut(dtb, 8) }, b"FAKEDESC");
    assert_eq!(vm.vcpus[0].boot_params(), (RAM_GPA, RAM_GPA + (4 << 20)));
    assert!(m.start(&vm));
    assert_eq!(vm.state(), VmState::Running);
}

#[test]
fn create_and_destroy_in_a_loop_gives_every_frame_back() {
    let m = machine(2);
    let baseline = m.free_bytes();
    for round in 0..50 {
        let a = m.create(simple(1, 0)).unwrap();
        let b = m
            .create(spec(
                2,
                &[1],
                alloc::vec![ram(RAM_GPA, 6 << 20), ram(0x8000_0000, 2 << 20)],
            ))
            .unwrap();
        assert!(
            m.free_bytes() <= baseline - (16 << 20),
            "round {round}: RAM taken"
        );
        assert_eq!((a.vmid, b.vmid), (1, 2), "VMIDs are reused");
        m.destroy(1).unwrap();
        m.destroy(2).unwrap();
        assert_eq!(a.state(), VmState::Destroyed);
        assert!(m.vms().is_empty());
        assert_eq!(m.free_bytes(), baseline, "round {round}: every frame back");
    }
}

#[test]
fn a_vm_that_fails_to_build_takes_nothing() {
    let m = machine(2);
    let baseline = m.free_bytes();
    // The second region overlaps the first: mapping it fails after RAM and
    // tables were taken for the first.
    let bad = spec(
        3,
        &[0],
        alloc::vec![ram(RAM_GPA, 8 << 20), ram(RAM_GPA + (4 << 20), 8 << 20)],
    );
    let e = m.create(bad).err().unwrap();
    assert!(e.contains("memory_regions[1]"), "{e}");
    assert_eq!(m.free_bytes(), baseline);
    let too_big = spec(4, &[0], alloc::vec![ram(RAM_GPA, 128 << 20)]);
    assert!(m.create(too_big).err().unwrap().contains("no 128 MiB"));
    assert_eq!(m.free_bytes(), baseline);
    let bad_cpu = simple(5, 7);
    assert!(m.create(bad_cpu).err().unwrap().contains("physical CPU 7"));
    assert_eq!(m.free_bytes(), baseline);
}

#[test]
fn destroying_a_running_vm_is_refused() {
    let m = machine(2);
    let vm = m.create(simple(1, 0)).unwrap();
    m.start(&vm);
    assert!(m.destroy(1).unwrap_err().contains("stop it first"));
    assert!(m.destroy(9).unwrap_err().contains("no VM with id 9"));
}

/// Two running VMs, so stopping one never ends the (fake) machine.
fn two_running() -> (Machine, [alloc::sync::Arc<super::vm::Vm>; 2]) {
    let m = machine(2);
    let a = m
        .create(spec(1, &[0], alloc::vec![ram(RAM_GPA, 8 << 20)]))
        .unwrap();
    let b = m.create(simple(2, 1)).unwrap();
    m.start(&a);
    m.start(&b);
    (m, [a, b])
}

#[test]
fn an_mmio_write_reaches_the_uart_and_is_answered() {
    let (m, [a, _]) = two_running();
    let mut vcpu = FakeVcpu::scripted(&[]);
    let exit = VmExit::Mmio {
        gpa: UART,
        width: 4,
        write: Some(u64::from(b'h')),
        pc: RAM_GPA,
    };
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, exit), Next::Continue);
    let read_fr = VmExit::Mmio {
        gpa: UART + 0x18,
        width: 4,
        write: None,
        pc: RAM_GPA,
    };
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, read_fr), Next::Continue);
    assert!(matches!(
        vcpu.replies[..],
        [Reply::MmioRead(0), Reply::MmioRead(_)]
    ));
    assert_eq!(a.state(), VmState::Running);
}

#[test]
fn a_bad_access_stops_only_its_own_vm() {
    let (m, [a, b]) = two_running();
    // A third VM keeps the machine up when both others stop.
    let c = m.create(simple(3, 1)).unwrap();
    m.start(&c);
    let mut vcpu = FakeVcpu::scripted(&[]);
    let exit = VmExit::Mmio {
        gpa: 0x1234_0000,
        width: 4,
        write: None,
        pc: RAM_GPA,
    };
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, exit), Next::Stop);
    assert_eq!(a.state(), VmState::Stopped);
    assert!(a.faulted());
    assert_eq!(b.state(), VmState::Running);
    assert_eq!(m.tally(), (2, 1));
    let pio = VmExit::PortIo {
        port: 0x3f8,
        width: 1,
        write: Some(0x41),
        pc: RAM_GPA,
    };
    assert_eq!(handle_exit(&m, &b, 0, &mut vcpu, pio), Next::Stop);
    assert!(b.faulted(), "port I/O with no device: not supported yet");
    assert_eq!(c.state(), VmState::Running);
}

#[test]
fn firmware_requests_and_hypercalls_get_answers() {
    let (m, [a, _]) = two_running();
    let mut vcpu = FakeVcpu::scripted(&[]);
    let calls = [
        VmExit::Hypercall {
            code: HC_HV_INFO,
            args: [0; 4],
        },
        VmExit::VcpuOn {
            target: 5,
            entry: RAM_GPA,
            arg: 0,
        },
        VmExit::VcpuStatus { target: 0 },
        VmExit::Hypercall {
            code: 0x99,
            args: [0; 4],
        },
    ];
    for c in calls {
        assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, c), Next::Continue);
    }
    assert_eq!(
        vcpu.replies,
        [
            Reply::Hypercall([0, HV_ABI_MAGIC, 1, 0]),
            Reply::VcpuOn(Err(VcpuOnError::InvalidTarget)),
            Reply::VcpuStatus { on: true },
            Reply::Return(u64::MAX),
        ]
    );
    assert_eq!(
        handle_exit(&m, &a, 0, &mut vcpu, VmExit::VcpuOff),
        Next::PowerOff
    );
}

#[test]
fn a_stopped_vm_restarts_with_fresh_ram_and_vcpu_zero_at_its_entry() {
    let (m, [a, _]) = two_running();
    let mut vcpu = FakeVcpu::scripted(&[]);
    let hpa = a.ram.translate(RAM_GPA, 4).unwrap();
    // SAFETY: the VM's RAM, host memory here; its vCPU is not running.
    unsafe { crate::mm::phys::slice_mut(hpa, 4) }.copy_from_slice(b"junk");
    let exit = VmExit::Mmio {
        gpa: 0x10,
        width: 4,
        write: None,
        pc: RAM_GPA,
    };
    handle_exit(&m, &a, 0, &mut vcpu, exit);
    a.vcpus[0].set_power(super::vm::Power::Off);
    m.restart(&a).unwrap();
    assert_eq!(a.state(), VmState::Running);
    assert_eq!(a.boots(), 2);
    assert!(!a.faulted());
    assert_eq!(a.vcpus[0].power(), super::vm::Power::Starting);
    // SAFETY: as above.
    assert_eq!(unsafe { crate::mm::phys::slice_mut(hpa, 4) }, &KERNEL[..4]);
    assert!(m.restart(&a).unwrap_err().contains("not stopped"));
}

/// Where the test device (`devices/testdev.rs`) sits on a VM's bus.
const PROBE: u64 = 0x0a00_0000;
const PROBE_PORTS: u16 = 0x3f8;

/// Puts the test device (interrupt line 40) at `PROBE` and ports 0x3f8..0x400; its
/// id on the bus.
fn attach_probe(vm: &super::vm::Vm) -> crate::devices::bus::DeviceId {
    use crate::devices::bus::Window;
    use crate::devices::registry::Created;
    let probe = Created {
        device: Box::new(crate::devices::testdev::TestDevice::new(40)),
        windows: alloc::vec![Window::mmio(PROBE, 0x1000), Window::ports(PROBE_PORTS, 8)],
    };
    vm.devices.lock().attach("probe", probe).unwrap()
}

fn probe_write(offset: u64, value: u64) -> VmExit {
    VmExit::Mmio {
        gpa: PROBE + offset,
        width: 8,
        write: Some(value),
        pc: RAM_GPA,
    }
}

fn port(port: u16, write: Option<u32>) -> VmExit {
    VmExit::PortIo {
        port,
        width: 1,
        write,
        pc: RAM_GPA,
    }
}

#[test]
fn a_device_signalled_from_elsewhere_is_served_before_its_vcpu_enters_the_guest() {
    use super::run::serve_signals;
    use crate::devices::testdev::SERVED;
    // VM 2's vCPU 0 is on CPU 1, not the CPU the test runs as (CPU 0).
    let (m, [_, a]) = two_running();
    let probe = attach_probe(&a);
    let mut vcpu = FakeVcpu::scripted(&[]);
    let target = RAM_GPA + 0x1000;
    handle_exit(&m, &a, 0, &mut vcpu, probe_write(0x30, target));
    // Nothing raised: nothing served.
    assert_eq!(serve_signals(&m, &a, 0), Next::Continue);
    let hpa = a.ram.translate(target, 6).unwrap();
    // SAFETY: the VM's RAM, host memory here; nothing runs.
    let bytes = || unsafe { crate::mm::phys::slice_mut(hpa, 6) }.to_vec();
    assert_ne!(bytes(), SERVED);
    // Raised by someone else (a peer VM, the host), on another thread even: the VM
    // is woken (its vCPU 0's CPU kicked) and the device served on its next turn.
    let signal = a.devices.lock().signal(probe).unwrap();
    let kicks = fake::KICKS.load(core::sync::atomic::Ordering::Relaxed);
    std::thread::spawn(move || signal.raise()).join().unwrap();
    assert!(fake::KICKS.load(core::sync::atomic::Ordering::Relaxed) > kicks);
    assert!(a.devices.lock().signalled());
    assert_eq!(serve_signals(&m, &a, 0), Next::Continue);
    assert_eq!(bytes(), SERVED);
    assert!(!a.devices.lock().signalled());
    // The signal outlives a reset of the device.
    a.devices.lock().reset();
    assert!(a.devices.lock().signal(probe).is_some());
    assert!(
        a.devices.lock().signal(probe + 1).is_none(),
        "no such device"
    );
}

#[test]
fn port_io_goes_to_the_device_on_the_bus() {
    let (m, [a, b]) = two_running();
    // A third VM keeps the machine up when both others stop.
    let c = m.create(simple(3, 1)).unwrap();
    m.start(&c);
    attach_probe(&a);
    let mut vcpu = FakeVcpu::scripted(&[]);
    let out = port(PROBE_PORTS, Some(0x41));
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, out), Next::Continue);
    let inb = port(PROBE_PORTS, None);
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, inb), Next::Continue);
    assert_eq!(vcpu.replies, [Reply::PortRead(0), Reply::PortRead(0x41)]);
    // A port the device refuses, and a port with no device: the VM stops.
    let refused = port(PROBE_PORTS + 1, None);
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, refused), Next::Stop);
    assert!(a.faulted());
    assert_eq!(
        handle_exit(&m, &b, 0, &mut vcpu, port(0x60, None)),
        Next::Stop
    );
    assert!(b.faulted(), "port I/O to no device");
}

#[test]
fn a_device_writes_guest_ram_even_where_it_is_filled_on_first_touch() {
    let (m, [a, _]) = two_running();
    attach_probe(&a);
    let mut vcpu = FakeVcpu::scripted(&[]);
    // The last 2 MiB block of the 8 MiB RAM holds no image: it is parked.
    let parked = RAM_GPA + (6 << 20) + 0x10;
    let (_, filled, _) = a.lazy.counts();
    for exit in [
        probe_write(8, parked),
        probe_write(8, RAM_GPA + (8 << 20) - 2),
    ] {
        assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, exit), Next::Continue);
    }
    assert_eq!(a.lazy.counts().1, filled + 1, "the block was filled first");
    let hpa = a.ram.translate(parked, 4).unwrap();
    // SAFETY: the VM's RAM, host memory here; its vCPU is not running.
    assert_eq!(unsafe { crate::mm::phys::slice_mut(hpa, 4) }, b"dma!");
    let read_status = VmExit::Mmio {
        gpa: PROBE + 8,
        width: 8,
        write: None,
        pc: RAM_GPA,
    };
    handle_exit(&m, &a, 0, &mut vcpu, read_status);
    assert_eq!(vcpu.replies[2], Reply::MmioRead(1), "past the end: refused");
    assert_eq!(a.state(), VmState::Running);
}

#[test]
fn vm_events_a_device_posts_are_acted_on() {
    let m = machine(2);
    let a = m
        .create(spec(1, &[0, 1], alloc::vec![ram(RAM_GPA, 8 << 20)]))
        .unwrap();
    let b = m.create(simple(2, 1)).unwrap();
    m.start(&a);
    m.start(&b);
    attach_probe(&a);
    let mut vcpu = FakeVcpu::scripted(&[]);
    let entry = RAM_GPA + 0x100;
    for exit in [probe_write(0x28, entry), probe_write(0x20, 3)] {
        assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, exit), Next::Continue);
    }
    assert_eq!(a.vcpus[1].power(), super::vm::Power::Starting);
    assert_eq!(a.vcpus[1].boot_params(), (entry, 7));

    // Reset: devices back at power-on, vCPU 0 queued at the entry again.
    let out = port(PROBE_PORTS, Some(5));
    handle_exit(&m, &a, 0, &mut vcpu, out);
    a.vcpus[1].set_power(super::vm::Power::Off);
    let reset = probe_write(0x20, 2);
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, reset), Next::PowerOff);
    assert_eq!((a.state(), a.boots()), (VmState::Running, 2));
    assert_eq!(a.vcpus[0].power(), super::vm::Power::Starting);
    handle_exit(&m, &a, 0, &mut vcpu, port(PROBE_PORTS, None));
    assert_eq!(vcpu.replies.last(), Some(&Reply::PortRead(0)));

    let off = probe_write(0x20, 1);
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, off), Next::Stop);
    assert_eq!(a.state(), VmState::Stopped);
    assert!(!a.faulted(), "a clean power-off");
    assert_eq!(b.state(), VmState::Running);
}

/// A VM with vCPUs on CPUs 0..n, each of them on (as `run_vcpu` leaves them).
fn running_with_vcpus_on(m: &Machine, n: u32) -> alloc::sync::Arc<super::vm::Vm> {
    let pcpus: Vec<u32> = (0..n).collect();
    let vm = m
        .create(spec(1, &pcpus, alloc::vec![ram(RAM_GPA, 8 << 20)]))
        .unwrap();
    m.start(&vm);
    assert!(vm.vcpus[0].begin_run());
    for v in &vm.vcpus[1..] {
        v.request_start(RAM_GPA, 0).unwrap();
        assert!(v.begin_run());
    }
    vm
}

#[test]
fn cpu_off_of_the_last_running_vcpu_powers_the_vm_off() {
    let m = machine(4);
    let other = m.create(simple(2, 3)).unwrap();
    m.start(&other);
    let vm = running_with_vcpus_on(&m, 2);
    let mut vcpu = FakeVcpu::scripted(&[]);
    assert_eq!(
        handle_exit(&m, &vm, 1, &mut vcpu, VmExit::VcpuOff),
        Next::PowerOff
    );
    assert_eq!(vm.state(), VmState::Running, "vCPU 0 still runs");
    // A CPU_ON of vCPU 1 pending: the VM is not over when vCPU 0 turns off.
    vm.vcpus[1].request_start(RAM_GPA, 0).unwrap();
    assert_eq!(
        handle_exit(&m, &vm, 0, &mut vcpu, VmExit::VcpuOff),
        Next::PowerOff
    );
    assert_eq!(vm.state(), VmState::Running);
    assert!(vm.vcpus[1].begin_run());
    // The last one: nothing can ever run in the VM again.
    assert_eq!(
        handle_exit(&m, &vm, 1, &mut vcpu, VmExit::VcpuOff),
        Next::Stop
    );
    assert_eq!(vm.state(), VmState::Stopped);
    assert!(!vm.faulted(), "a clean power-off");
    assert_eq!(other.state(), VmState::Running);
}

#[test]
fn cpu_on_is_denied_while_the_vm_resets_and_a_cancelled_start_does_not_run() {
    let m = machine(4);
    let vm = running_with_vcpus_on(&m, 3);
    vm.vcpus[2].power_off_if_on();
    // vCPU 2's start was seen by its CPU, then a reset began and cancelled it.
    vm.vcpus[2].request_start(RAM_GPA, 0).unwrap();
    assert!(vm.begin_reset());
    vm.vcpus[2].cancel_start();
    assert!(
        !vm.vcpus[2].begin_run(),
        "a cancelled start must not enter the guest"
    );
    // A CPU_ON while the VM resets is refused.
    let mut vcpu = FakeVcpu::scripted(&[]);
    let on = VmExit::VcpuOn {
        target: Current::vcpu_id(2),
        entry: RAM_GPA,
        arg: 0,
    };
    assert_eq!(handle_exit(&m, &vm, 1, &mut vcpu, on), Next::Continue);
    assert_eq!(vcpu.replies, [Reply::VcpuOn(Err(VcpuOnError::Denied))]);
    assert_eq!(vm.vcpus[2].power(), super::vm::Power::Off);
}

#[test]
fn a_reset_completes_while_another_vcpu_keeps_calling_cpu_on() {
    use core::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;
    let m = machine(4);
    // Another VM keeps the machine up if this one has to be stopped.
    let keep = m.create(simple(2, 3)).unwrap();
    m.start(&keep);
    let vm = running_with_vcpus_on(&m, 3);
    vm.vcpus[2].power_off_if_on();
    for round in 0..200 {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            // vCPU 1, as `run_vcpu` runs it: an exit taken in the guest is handled
            // even when the reset began meanwhile (the kick comes after); it leaves
            // once it sees the VM not running. Its exits are CPU_ONs of vCPU 2,
            // whose CPU starts it only while the VM runs (`wait_for_start`) and
            // turns it off again at once, to keep the slot moving.
            s.spawn(|| {
                let mut vcpu = FakeVcpu::scripted(&[]);
                let on = VmExit::VcpuOn {
                    target: Current::vcpu_id(2),
                    entry: RAM_GPA,
                    arg: 0,
                };
                loop {
                    handle_exit(&m, &vm, 1, &mut vcpu, on);
                    if vm.state() != VmState::Running {
                        break;
                    }
                    if vm.vcpus[2].begin_run() {
                        vm.vcpus[2].power_off_if_on();
                    }
                }
                vm.vcpus[1].power_off_if_on();
            });
            // vCPU 0 resets the VM; it must come back.
            let (tx, rx) = mpsc::channel();
            let (m, vm, done) = (&m, &vm, &done);
            s.spawn(move || {
                let mut vcpu = FakeVcpu::scripted(&[]);
                let next = handle_exit(m, vm, 0, &mut vcpu, VmExit::SystemReset);
                done.store(true, Ordering::Release);
                tx.send(next).unwrap();
            });
            let next = rx.recv_timeout(Duration::from_secs(20));
            if next.is_err() {
                // Unblock both threads (a stopped VM ends the reset's wait) so the
                // failure is reported instead of hanging the test run.
                m.stop_vm(vm, super::machine::Outcome::Faulted(&"the reset hung"));
            }
            assert_eq!(next, Ok(Next::PowerOff), "round {round}: the reset hung");
        });
        assert!(done.load(Ordering::Acquire));
        assert_eq!(vm.state(), VmState::Running);
        assert_eq!(vm.vcpus[2].power(), super::vm::Power::Off);
        // Back to the running state for the next round: vCPU 0 (queued by the
        // reset) and vCPU 1 on.
        assert!(vm.vcpus[0].begin_run());
        vm.vcpus[1].request_start(RAM_GPA, 0).unwrap();
        assert!(vm.vcpus[1].begin_run());
    }
    assert_eq!(vm.boots(), 201);
}

const CHAN_GPA: u64 = 0x5000_0000;
const DOORBELL: u64 = 0x0a00_0000;

/// `base` with channel "link" (two pages, VMs vm1 and vm2) at `gpa`, with a doorbell.
fn with_channel(
    base: Cow<'static, VmSpec>,
    gpa: u64,
    size: u64,
    vms: &'static [Cow<'static, str>],
) -> Cow<'static, VmSpec> {
    let mut s = base.into_owned();
    s.channels = Cow::Owned(alloc::vec![crate::spec::ChannelSpec {
        name: Cow::Borrowed("link"),
        size,
        vms: Cow::Borrowed(vms),
        gpa,
        writable: true,
        doorbell: Some((DOORBELL, 40)),
    }]);
    Cow::Owned(s)
}

const PAIR: &[Cow<'static, str>] = &[Cow::Borrowed("vm1"), Cow::Borrowed("vm2")];

fn translate(vm: &super::vm::Vm, gpa: u64) -> Option<u64> {
    let tables = vm.tables.lock();
    let mut mem = crate::mm::phys::FrameTables(&mut FrameAllocator::new(&[], &[]).unwrap());
    tables.as_ref()?.translate(&mut mem, gpa).map(|t| t.hpa)
}

#[test]
fn a_channel_is_shared_rung_and_outlives_each_of_its_vms() {
    use crate::devices::doorbell::{REG_ID, REG_RING, REG_STATUS};
    let m = machine(2);
    let baseline = m.free_bytes();
    let a = m
        .create(with_channel(simple(1, 0), CHAN_GPA, 0x2000, PAIR))
        .unwrap();
    // VM 2 sees the region elsewhere.
    let b = m
        .create(with_channel(
            simple(2, 1),
            CHAN_GPA + 0x10_0000,
            0x2000,
            PAIR,
        ))
        .unwrap();
    let ch = m.channel("link").expect("the machine holds the channel");
    assert_eq!(ch.users(), [1, 2]);
    assert_eq!(translate(&a, CHAN_GPA + 0x1000), Some(ch.hpa + 0x1000));
    assert_eq!(translate(&b, CHAN_GPA + 0x10_1000), Some(ch.hpa + 0x1000));
    // What VM 1 writes there, VM 2 reads.
    // SAFETY: the channel's region, host memory here; nothing runs.
    unsafe { crate::mm::phys::slice_mut(ch.hpa + 8, 4) }.copy_from_slice(b"ping");
    let mut vcpu = FakeVcpu::scripted(&[]);
    let mmio = |gpa, write| VmExit::Mmio {
        gpa,
        width: 4,
        write,
        pc: RAM_GPA,
    };
    handle_exit(&m, &b, 0, &mut vcpu, mmio(DOORBELL + REG_ID, None));
    handle_exit(&m, &a, 0, &mut vcpu, mmio(DOORBELL + REG_RING, Some(0b10)));
    assert!(
        b.devices.lock().signalled(),
        "VM 2's doorbell was signalled"
    );
    assert!(!a.devices.lock().signalled());
    handle_exit(&m, &b, 0, &mut vcpu, mmio(DOORBELL + REG_STATUS, None));
    // VM 2 is member 1; the write is answered too; STATUS says member 0 rang.
    assert!(
        matches!(
            vcpu.replies[..],
            [Reply::MmioRead(1), _, Reply::MmioRead(0b01)]
        ),
        "{:?}",
        vcpu.replies
    );
    // A VM not on the list, or one that disagrees on the size, is refused.
    let e = m
        .create(with_channel(simple(3, 1), CHAN_GPA, 0x2000, PAIR))
        .err()
        .unwrap();
    assert!(e.contains("not on its list"), "{e}");
    let e = m.create(with_channel(
        spec(2, &[1], alloc::vec![ram(RAM_GPA, 8 << 20)]),
        CHAN_GPA,
        0x3000,
        PAIR,
    ));
    assert!(e.err().unwrap().contains("has size 0x3000 here but 0x2000"));
    // VM 1 goes: VM 2 keeps the region and its contents.
    m.destroy(1).unwrap();
    assert_eq!(ch.users(), [2]);
    assert_eq!(translate(&b, CHAN_GPA + 0x10_0000), Some(ch.hpa));
    // SAFETY: as above.
    assert_eq!(
        unsafe { crate::mm::phys::slice_mut(ch.hpa + 8, 4) },
        b"ping"
    );
    // VM 1 comes back (a new build) and maps the same region.
    let a = m
        .create(with_channel(simple(1, 0), CHAN_GPA, 0x2000, PAIR))
        .unwrap();
    assert_eq!(translate(&a, CHAN_GPA), Some(ch.hpa));
    m.destroy(1).unwrap();
    m.destroy(2).unwrap();
    assert!(m.channel("link").is_none(), "the last user gave it back");
    assert_eq!(
        m.free_bytes(),
        baseline,
        "every frame back, the channel's too"
    );
}

#[test]
fn a_restarted_member_keeps_the_region_and_its_doorbell() {
    use crate::devices::doorbell::REG_RING;
    let m = machine(2);
    let a = m
        .create(with_channel(simple(1, 0), CHAN_GPA, 0x2000, PAIR))
        .unwrap();
    let b = m
        .create(with_channel(simple(2, 1), CHAN_GPA, 0x2000, PAIR))
        .unwrap();
    m.start(&a);
    m.start(&b);
    let ch = m.channel("link").unwrap();
    // SAFETY: the channel's region, host memory here; nothing runs.
    unsafe { crate::mm::phys::slice_mut(ch.hpa, 4) }.copy_from_slice(b"kept");
    m.stop_vm(&a, super::machine::Outcome::PoweredOff);
    assert_eq!(a.state(), VmState::Stopped);
    assert_eq!(translate(&b, CHAN_GPA), Some(ch.hpa), "the peer keeps it");
    m.restart(&a).unwrap();
    assert_eq!(a.state(), VmState::Running);
    assert_eq!(translate(&a, CHAN_GPA), Some(ch.hpa), "mapped as before");
    // SAFETY: as above.
    assert_eq!(unsafe { crate::mm::phys::slice_mut(ch.hpa, 4) }, b"kept");
    assert_eq!(ch.users(), [1, 2]);
    // Its doorbell still takes the peer's rings.
    let mut vcpu = FakeVcpu::scripted(&[]);
    let ring = VmExit::Mmio {
        gpa: DOORBELL + REG_RING,
        width: 4,
        write: Some(0b01),
        pc: RAM_GPA,
    };
    assert_eq!(handle_exit(&m, &b, 0, &mut vcpu, ring), Next::Continue);
    assert!(a.devices.lock().signalled());
}

/// The shell's commands through [`super::shell::execute`]: what they print, or
/// their error.
fn sh(m: &Machine, line: &str) -> Result<alloc::string::String, alloc::string::String> {
    sh_with(m, line, &|_, _| {
        Err(alloc::vec!["no file source here".into()])
    })
}

fn sh_with(
    m: &Machine,
    line: &str,
    create: super::shell::CreateFn<'_>,
) -> Result<alloc::string::String, alloc::string::String> {
    let mut out = alloc::string::String::new();
    let cmd = super::shell::parse::parse(line)?;
    super::shell::execute(m, cmd, &mut out, create)?;
    Ok(out)
}

/// The numbers `mem` prints: (used, free) frames.
fn mem(m: &Machine) -> (u64, u64) {
    let out = sh(m, "mem").unwrap();
    let num = |after: &str| -> u64 {
        let i = out.find(after).unwrap() + after.len();
        out[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("mem: "), num("used, "))
}

#[test]
fn shell_restart_of_a_running_vm_waits_for_its_vcpus_and_takes_no_frame() {
    let (m, [b, a]) = two_running();
    // VM 2, on CPU 1: not the CPU the shell runs on here (CPU 0), so it is kicked.
    assert!(a.vcpus[0].begin_run(), "vCPU 0 in the guest");
    let before = mem(&m);
    assert_eq!(
        before.0 + before.1,
        (64 << 20) / 4096,
        "every frame counted"
    );
    for round in 1..=100u32 {
        let kicks = fake::KICKS.load(core::sync::atomic::Ordering::Relaxed);
        let out = sh(&m, "vm restart 2").unwrap();
        assert!(
            out.contains("restarting once its vCPUs have left the guest"),
            "{out}"
        );
        assert_eq!(a.state(), VmState::Stopped);
        assert!(
            fake::KICKS.load(core::sync::atomic::Ordering::Relaxed) > kicks,
            "its vCPU is kicked out of the guest (masked or not)"
        );
        assert_eq!(a.boots(), round, "nothing done while the vCPU is in");
        // Its CPU takes the vCPU out of the guest (run_vcpu's end) and settles.
        a.vcpus[0].power_off_if_on();
        m.settle_report(&a);
        assert_eq!(a.state(), VmState::Running, "round {round}");
        assert_eq!(a.boots(), round + 1);
        assert!(a.vcpus[0].begin_run());
        assert_eq!(mem(&m), before, "round {round}: the same frames");
    }
    assert_eq!(b.state(), VmState::Running, "the other VM runs on");
    assert_eq!(b.boots(), 1);
}

#[test]
fn shell_stop_start_and_delete_give_everything_back() {
    let (m, [a, b]) = two_running();
    let hpa = a.ram.translate(RAM_GPA + 0x1000, 4).unwrap();
    // SAFETY: the VM's RAM, host memory here; no vCPU runs.
    unsafe { crate::mm::phys::slice_mut(hpa, 4) }.copy_from_slice(b"junk");
    let out = sh(&m, "vm stop 1").unwrap();
    assert!(out.contains("its devices are reset"), "{out}");
    assert!(sh(&m, "vm stop 1")
        .unwrap_err()
        .contains("stopped, not running"));
    assert!(sh(&m, "vm list").unwrap().contains("stopped"));
    let out = sh(&m, "vm start 1").unwrap();
    assert!(out.contains("VM 1 (vm1) restarted: boot 2"), "{out}");
    // SAFETY: as above.
    assert_eq!(
        unsafe { crate::mm::phys::slice_mut(hpa, 4) },
        &[0; 4],
        "RAM scrubbed"
    );
    assert!(sh(&m, "vm start 1").unwrap_err().contains("running"));

    let free_before_b = m.free_bytes();
    let out = sh(&m, "vm delete 2").unwrap();
    assert!(out.contains("VM 2 (vm2) deleted"), "{out}");
    assert_eq!(b.state(), VmState::Destroyed);
    assert!(m.free_bytes() >= free_before_b + (8 << 20));
    assert!(sh(&m, "vm show 2").unwrap_err().contains("no VM with id 2"));
    let cpus = sh(&m, "cpus").unwrap();
    assert!(cpus.contains("CPU 1 (0x1): free"), "{cpus}");
    assert!(cpus.contains("CPU 0 (0x0): VM 1 (vm1) vCPU 0"), "{cpus}");
}

#[test]
fn shell_create_builds_and_starts_a_vm_or_shows_why_not() {
    let (m, [a, _]) = two_running();
    m.stop_from_shell(&a, super::vm::Pending::Delete);
    m.settle_report(&a);
    assert!(m.vm(1).is_none());
    let refused = sh(&m, "vm create vms/vm3.toml").unwrap_err();
    assert!(
        refused.contains("vm create vms/vm3.toml: refused"),
        "{refused}"
    );
    let bad = |path: &str, _: &[VmSpec]| -> Result<FsVm, Vec<alloc::string::String>> {
        Err(alloc::vec![alloc::format!("{path}: base.id: missing")])
    };
    let mut out = alloc::string::String::new();
    let cmd = super::shell::parse::parse("vm create vms/bad.toml").unwrap();
    assert!(super::shell::execute(&m, cmd, &mut out, &bad).is_err());
    assert!(out.contains("vms/bad.toml: base.id: missing"), "{out}");
    let good = |_: &str, existing: &[VmSpec]| -> Result<FsVm, Vec<alloc::string::String>> {
        assert_eq!(existing.len(), 1, "the VMs there are are handed over");
        Ok(FsVm {
            spec: simple(3, 0).into_owned(),
            file: "vms/vm3.toml: ".into(),
            frames: Vec::new(),
        })
    };
    let out = sh_with(&m, "vm create vms/vm3.toml", &good).unwrap();
    assert!(out.contains("VM 3 (vm3) created"), "{out}");
    assert_eq!(m.vm(3).unwrap().state(), VmState::Running);
    let list = sh(&m, "vm list").unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("3    vm3") && l.contains("running")),
        "{list}"
    );
    let show = sh(&m, "vm show 3").unwrap();
    assert!(
        show.contains("device: uart (emu_type 0x2) at GPA 0x9000000+0x1000"),
        "{show}"
    );
    assert!(
        show.contains("memory: GPA 0x40000000..0x40800000 (8 MiB, Allocate"),
        "{show}"
    );
}

#[test]
fn with_on_last_stop_shell_the_machine_stays_up() {
    let (mut m, [a, b]) = two_running();
    m.on_last_stop = crate::spec::OnLastStop::Shell;
    sh(&m, "vm stop 1").unwrap();
    sh(&m, "vm stop 2").unwrap();
    assert!(a.is_stopped() && b.is_stopped());
    // Still here (the fake machine panics when powered off): restart one.
    assert!(sh(&m, "vm restart 2")
        .unwrap()
        .contains("restarted: boot 2"));
}

#[test]
#[should_panic(expected = "fake machine powered off (success: true)")]
fn by_default_stopping_the_last_vm_powers_off() {
    let (m, _) = two_running();
    sh(&m, "vm stop 1").unwrap();
    sh(&m, "vm stop 2").unwrap();
}

#[test]
fn shell_commands_answer_bad_ids_and_focus_only_running_vms() {
    let (m, [a, _]) = two_running();
    assert!(sh(&m, "vm stop 7").unwrap_err().contains("no VM with id 7"));
    let cmd = super::shell::parse::parse("vm focus 2").unwrap();
    let mut out = alloc::string::String::new();
    let e = super::shell::execute(&m, cmd, &mut out, &|_, _| Err(Vec::new()));
    assert_eq!(e, Ok(super::shell::Effect::Focus(2)));
    m.stop_vm(&a, super::machine::Outcome::PoweredOff);
    assert!(sh(&m, "vm focus 1")
        .unwrap_err()
        .contains("only a running VM"));
    assert!(sh(&m, "help").unwrap().contains("vm restart ID"));
}

#[test]
fn a_faulted_vm_is_shown_faulted_and_restarts_from_the_shell() {
    let (m, [a, _]) = two_running();
    let mut vcpu = FakeVcpu::scripted(&[]);
    let exit = VmExit::Mmio {
        gpa: 0x1234_0000,
        width: 4,
        write: None,
        pc: RAM_GPA,
    };
    assert_eq!(handle_exit(&m, &a, 0, &mut vcpu, exit), Next::Stop);
    let list = sh(&m, "vm list").unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("1 ") && l.contains("faulted")),
        "{list}"
    );
    let out = sh(&m, "vm restart 1").unwrap();
    assert!(out.contains("VM 1 (vm1) restarted: boot 2"), "{out}");
    assert!(!a.faulted());
    assert_eq!(a.state(), VmState::Running);
    assert_eq!(m.tally(), (2, 0));
}

const IVC_WINDOW: u64 = 0x6000_0000;

/// `base` with an AxVisor IVC window (emu_type 0xA) of 32 MiB at [`IVC_WINDOW`].
fn with_ivc_window(base: Cow<'static, VmSpec>) -> Cow<'static, VmSpec> {
    let mut s = base.into_owned();
    let mut emu = s.emu_devices.to_vec();
    emu.push(EmuDevice {
        name: Cow::Borrowed("ivc"),
        base_gpa: IVC_WINDOW,
        length: 32 << 20,
        irq: 0,
        emu_type: 0xA,
        cfg: Cow::Borrowed(&[]),
    });
    s.emu_devices = Cow::Owned(emu);
    Cow::Owned(s)
}

/// AxVisor's hypercall `code` by vCPU 0 of `vm`: what the vCPU was answered.
fn axvisor_call(m: &Machine, vm: &super::vm::Vm, code: u64, args: [u64; 4]) -> Reply {
    let mut vcpu = FakeVcpu::scripted(&[]);
    let exit = VmExit::Hypercall { code, args };
    assert_eq!(handle_exit(m, vm, 0, &mut vcpu, exit), Next::Continue);
    vcpu.replies[0]
}

fn guest_word(vm: &super::vm::Vm, gpa: u64) -> u64 {
    let mut b = [0u8; 8];
    crate::mm::guest::GuestMemory::new(&vm.ram, Some(&vm.lazy))
        .read(gpa, &mut b)
        .unwrap();
    u64::from_le_bytes(b)
}

fn set_guest_word(vm: &super::vm::Vm, gpa: u64, value: u64) {
    crate::mm::guest::GuestMemory::new(&vm.ram, Some(&vm.lazy))
        .write(gpa, &value.to_le_bytes())
        .unwrap();
}

#[test]
fn axvisor_ivc_hypercalls_publish_subscribe_and_give_the_region_back() {
    use super::axivc::{HC_PUBLISH, HC_SUBSCRIBE, HC_UNPUBLISH, HC_UNSUBSCRIBE};
    const OK: Reply = Reply::Return(0);
    const REFUSED: Reply = Reply::Return(u64::MAX);
    // The guest's two answer words.
    const BASE: u64 = RAM_GPA + 0x10_0000;
    const SIZE: u64 = BASE + 8;
    const KEY: u64 = 0xfeed_0000_0001;
    let m = machine(2);
    let baseline = m.free_bytes();
    let a = m.create(with_ivc_window(simple(1, 0))).unwrap();
    let b = m.create(with_ivc_window(simple(2, 1))).unwrap();

    // Publish: 0x1800 bytes wanted, a page more given, at the window's start.
    set_guest_word(&a, SIZE, 0x1800);
    assert_eq!(axvisor_call(&m, &a, HC_PUBLISH, [KEY, BASE, SIZE, 0]), OK);
    assert_eq!(guest_word(&a, BASE), IVC_WINDOW);
    assert_eq!(guest_word(&a, SIZE), 0x2000);
    let ch = m.ivc_channels()[0].clone();
    assert_eq!((ch.publisher, ch.key, ch.size), (1, KEY, 0x2000));
    assert_eq!(translate(&a, IVC_WINDOW + 0x1000), Some(ch.hpa + 0x1000));
    // SAFETY: the channel's region, host memory here; nothing runs.
    let region = |off, len| unsafe { crate::mm::phys::slice_mut(ch.hpa + off, len) };
    assert_eq!(region(0, 8), 1u64.to_le_bytes(), "header: the publisher");
    assert_eq!(region(8, 8), KEY.to_le_bytes(), "header: the key");
    assert!(region(16, 0x2000 - 16).iter().all(|&b| b == 0));

    // Refused, with nothing taken: the same key again, size 0, pointers outside
    // RAM or straddling its end, a huge size that does not fit what is left.
    let free = m.free_bytes();
    assert_eq!(
        axvisor_call(&m, &a, HC_PUBLISH, [KEY, BASE, SIZE, 0]),
        REFUSED
    );
    set_guest_word(&a, SIZE, 0);
    assert_eq!(
        axvisor_call(&m, &a, HC_PUBLISH, [7, BASE, SIZE, 0]),
        REFUSED
    );
    set_guest_word(&a, SIZE, 0x1000);
    let ram_end = RAM_GPA + (8 << 20);
    for (base, size) in [(0x10, SIZE), (BASE, IVC_WINDOW), (BASE, ram_end - 4)] {
        assert_eq!(
            axvisor_call(&m, &a, HC_PUBLISH, [7, base, size, 0]),
            REFUSED
        );
    }
    assert_eq!(m.free_bytes(), free);
    assert_eq!(m.ivc_channels().len(), 1);
    // A size beyond 16 MiB is cut to 16 MiB, placed after the first channel.
    set_guest_word(&a, SIZE, u64::MAX);
    assert_eq!(axvisor_call(&m, &a, HC_PUBLISH, [2, BASE, SIZE, 0]), OK);
    assert_eq!(guest_word(&a, SIZE), 16 << 20);
    assert_eq!(guest_word(&a, BASE), IVC_WINDOW + 0x2000);
    // ... and no second one fits in the 32 MiB window.
    set_guest_word(&a, SIZE, 16 << 20);
    assert_eq!(
        axvisor_call(&m, &a, HC_PUBLISH, [3, BASE, SIZE, 0]),
        REFUSED
    );

    // Subscribe: VM 2 sees the region at the start of its own window.
    let sub = [1, KEY, BASE, SIZE];
    assert_eq!(axvisor_call(&m, &b, HC_SUBSCRIBE, sub), OK);
    assert_eq!(
        (guest_word(&b, BASE), guest_word(&b, SIZE)),
        (IVC_WINDOW, 0x2000)
    );
    assert_eq!(translate(&b, IVC_WINDOW + 0x1000), Some(ch.hpa + 0x1000));
    // One subscriber; unknown publishers, keys and VM ids beyond 32 bits refused.
    assert_eq!(axvisor_call(&m, &b, HC_SUBSCRIBE, sub), REFUSED);
    assert_eq!(axvisor_call(&m, &a, HC_SUBSCRIBE, sub), REFUSED);
    for bad in [
        [9, KEY, BASE, SIZE],
        [1, 99, BASE, SIZE],
        [1 << 32 | 1, KEY, BASE, SIZE],
    ] {
        assert_eq!(axvisor_call(&m, &b, HC_SUBSCRIBE, bad), REFUSED);
    }
    assert_eq!(
        axvisor_call(&m, &b, HC_SUBSCRIBE, [1, 2, 0x10, SIZE]),
        REFUSED
    );

    // Unpublish: only by the publisher; the subscriber keeps the region.
    assert_eq!(axvisor_call(&m, &b, HC_UNPUBLISH, [KEY, 0, 0, 0]), REFUSED);
    assert_eq!(axvisor_call(&m, &a, HC_UNPUBLISH, [KEY, 0, 0, 0]), OK);
    assert_eq!(translate(&a, IVC_WINDOW), None);
    assert_eq!(translate(&b, IVC_WINDOW), Some(ch.hpa));
    assert_eq!(axvisor_call(&m, &a, HC_UNPUBLISH, [KEY, 0, 0, 0]), REFUSED);
    // While VM 2 holds it, the key is not published again.
    set_guest_word(&a, SIZE, 0x1000);
    assert_eq!(
        axvisor_call(&m, &a, HC_PUBLISH, [KEY, BASE, SIZE, 0]),
        REFUSED
    );
    // Unsubscribe frees the unpublished region.
    let free = m.free_bytes();
    assert_eq!(
        axvisor_call(&m, &a, HC_UNSUBSCRIBE, [1, KEY, 0, 0]),
        REFUSED
    );
    assert_eq!(axvisor_call(&m, &b, HC_UNSUBSCRIBE, [1, KEY, 0, 0]), OK);
    assert_eq!(translate(&b, IVC_WINDOW), None);
    // The region, and the stage-2 table that mapped it in VM 2, emptied now.
    assert_eq!(m.free_bytes(), free + 0x3000);
    assert_eq!(
        axvisor_call(&m, &b, HC_UNSUBSCRIBE, [1, KEY, 0, 0]),
        REFUSED
    );
    assert_eq!(m.ivc_channels().len(), 1, "key 2 is left");

    // AxVisor's other numbers are refused in x0 alone.
    assert_eq!(axvisor_call(&m, &a, 0, [0; 4]), REFUSED);

    // VM 2 subscribes to key 2, then VM 1 goes: VM 2 keeps it until it goes too.
    assert_eq!(axvisor_call(&m, &b, HC_SUBSCRIBE, [1, 2, BASE, SIZE]), OK);
    m.destroy(1).unwrap();
    assert_eq!(m.ivc_channels()[0].publisher_gpa, None);
    assert_eq!(translate(&b, IVC_WINDOW), Some(m.ivc_channels()[0].hpa));
    m.destroy(2).unwrap();
    assert!(m.ivc_channels().is_empty());
    // A VM without an IVC window has its calls refused.
    let c = m.create(simple(3, 0)).unwrap();
    set_guest_word(&c, SIZE, 0x1000);
    assert_eq!(
        axvisor_call(&m, &c, HC_PUBLISH, [KEY, BASE, SIZE, 0]),
        REFUSED
    );
    m.destroy(3).unwrap();
    assert_eq!(m.free_bytes(), baseline, "every frame back");
}

#[test]
fn a_write_to_a_read_only_channel_is_named_as_such() {
    let m = machine(2);
    let mut s = with_channel(simple(1, 0), CHAN_GPA, 0x2000, PAIR).into_owned();
    s.channels.to_mut()[0].writable = false;
    let a = m.create(Cow::Owned(s)).unwrap();
    assert_eq!(
        super::run::mmio_fault(&a, CHAN_GPA + 0x1008, true, RAM_GPA),
        "fault: write to read-only channel link at GPA 0x50001008, PC 0x40000000"
    );
    let read = super::run::mmio_fault(&a, CHAN_GPA + 0x1008, false, RAM_GPA);
    assert!(read.contains("data abort (read)"), "{read}");
    let elsewhere = super::run::mmio_fault(&a, CHAN_GPA + 0x2000, true, RAM_GPA);
    assert!(elsewhere.contains("outside guest memory"), "{elsewhere}");
    m.destroy(1).unwrap();
}

#[test]
fn msrs_go_to_the_interrupt_chip_and_a_refused_one_faults_in_the_guest() {
    use crate::devices::x86apic::X86Apic;
    let m = machine(3);
    // Another VM keeps the machine up when this one stops.
    let other = m.create(simple(2, 2)).unwrap();
    m.start(&other);
    // RAM from 0, as x86 guests have it: a start-up IPI's entry is below 1 MiB.
    let regions = alloc::vec![ram(0, 2 << 20), ram(RAM_GPA, 8 << 20)];
    let vm = m.create(spec(1, &[0, 1], regions)).unwrap();
    m.start(&vm);
    vm.devices
        .lock()
        .set_chip(Box::new(X86Apic::new(2, || 0).unwrap()));
    let mut vcpu = FakeVcpu::scripted(&[]);
    let rd = |msr| VmExit::MsrRead { msr, pc: 0 };
    let wr = |msr, value| VmExit::MsrWrite { msr, value, pc: 0 };
    assert_eq!(handle_exit(&m, &vm, 0, &mut vcpu, rd(0x1b)), Next::Continue);
    assert_eq!(
        handle_exit(&m, &vm, 0, &mut vcpu, rd(0x802)),
        Next::Continue
    );
    let x2apic = wr(0x1b, 0xfee0_0d00);
    assert_eq!(handle_exit(&m, &vm, 0, &mut vcpu, x2apic), Next::Continue);
    assert_eq!(
        vcpu.replies,
        [Reply::MsrRead(0xfee0_0900), Reply::Refused, Reply::None]
    );
    // INIT, then a start-up IPI with vector 8 to APIC ID 1: vCPU 1 starts at 0x8000.
    for icr in [0x1_0000_4500, 0x1_0000_4608] {
        assert_eq!(
            handle_exit(&m, &vm, 0, &mut vcpu, wr(0x830, icr)),
            Next::Continue
        );
    }
    assert_eq!(vm.vcpus[1].power(), super::vm::Power::Starting);
    assert_eq!(vm.vcpus[1].boot_params(), (0x8000, 0));
    // An MSR nobody answers stops the VM.
    assert_eq!(
        handle_exit(&m, &vm, 0, &mut vcpu, rd(0xc000_0080)),
        Next::Stop
    );
    assert!(vm.faulted());
}
