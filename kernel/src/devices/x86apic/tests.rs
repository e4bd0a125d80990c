use super::*;
use crate::devices::emu_type;
use alloc::vec;

fn zero() -> u64 {
    0
}

fn chip(cpus: usize) -> X86Apic {
    let mut c = X86Apic::new(cpus, zero).unwrap();
    for v in 0..cpus {
        lwrite(&mut c, v, lapic::reg::SVR, 0x1ff);
    }
    c
}

fn lwrite(c: &mut X86Apic, vcpu: usize, off: u32, v: u32) {
    let w = emu_type::GIC_CPU_IF;
    c.mmio(vcpu, w, XAPIC_BASE, u64::from(off), 4, Some(u64::from(v)))
        .unwrap();
}

fn lread(c: &mut X86Apic, vcpu: usize, off: u32) -> u32 {
    let w = emu_type::GIC_CPU_IF;
    c.mmio(vcpu, w, XAPIC_BASE, u64::from(off), 4, None)
        .unwrap() as u32
}

fn iowrite(c: &mut X86Apic, sel: u32, v: u32) {
    let w = emu_type::GIC_CPU_IF;
    c.mmio(0, w, IOAPIC_BASE, 0, 4, Some(u64::from(sel)))
        .unwrap();
    c.mmio(0, w, IOAPIC_BASE, 0x10, 4, Some(u64::from(v)))
        .unwrap();
}

fn ioread(c: &mut X86Apic, sel: u32) -> u32 {
    let w = emu_type::GIC_CPU_IF;
    c.mmio(0, w, IOAPIC_BASE, 0, 1, Some(u64::from(sel)))
        .unwrap();
    c.mmio(0, w, IOAPIC_BASE, 0x10, 4, None).unwrap() as u32
}

fn icr(c: &mut X86Apic, from: usize, dest: u32, lo: u32) {
    lwrite(c, from, lapic::reg::ICR_HI, dest << 24);
    lwrite(c, from, lapic::reg::ICR_LO, lo);
}

#[test]
fn sizes() {
    assert!(X86Apic::new(0, zero).is_err());
    assert!(X86Apic::new(65, zero).is_err());
    assert_eq!(X86Apic::new(64, zero).unwrap().vcpus(), 64);
}

#[test]
fn each_vcpu_sees_its_own_local_apic() {
    let mut c = chip(3);
    for v in 0..3 {
        assert_eq!(lread(&mut c, v, lapic::reg::ID), (v as u32) << 24);
    }
    lwrite(&mut c, 1, lapic::reg::TPR, 0x40);
    assert_eq!(lread(&mut c, 1, lapic::reg::TPR), 0x40);
    assert_eq!(lread(&mut c, 0, lapic::reg::TPR), 0);
    assert_eq!(ioread(&mut c, 1), ioapic::VERSION, "the I/O APIC window");
}

#[test]
fn refused_and_odd_accesses() {
    let mut c = chip(1);
    let w = emu_type::GIC_CPU_IF;
    assert!(
        c.mmio(0, w, XAPIC_BASE, 0x84, 4, None).is_err(),
        "unaligned"
    );
    assert!(c.mmio(0, w, XAPIC_BASE, 0x80, 8, None).is_err(), "width");
    assert!(c.mmio(0, w, IOAPIC_BASE, 0x10, 1, None).is_err());
    assert_eq!(
        c.mmio(5, w, XAPIC_BASE, 0x20, 4, None),
        Ok(0),
        "no such vCPU"
    );
    assert_eq!(c.mmio(0, w, 0x1000, 0, 4, None), Ok(0), "another base");
}

#[test]
fn fixed_ipis_by_destination_and_shorthand() {
    let mut c = chip(4);
    icr(&mut c, 0, 2, 0x4041);
    assert_eq!(c.take_kicks(), 1 << 2);
    assert_eq!(c.pending(2), Some(0x41));
    assert_eq!(c.pending(1), None);
    icr(&mut c, 1, 0, 0x8_4042);
    assert_eq!(c.take_kicks(), 0b1111, "all including self");
    icr(&mut c, 1, 0, 0xc_4043);
    assert_eq!(c.take_kicks(), 0b1101, "all but self");
    icr(&mut c, 3, 0, 0x4_4044);
    assert_eq!(c.take_kicks(), 0b1000, "self");
    icr(&mut c, 0, 0xff, 0x4045);
    assert_eq!(c.take_kicks(), 0b1111, "physical broadcast");
    icr(&mut c, 0, 9, 0x4046);
    assert_eq!(c.take_kicks(), 0, "no vCPU with APIC ID 9");
    // Logical, flat: vCPU 1 bit 1, vCPU 3 bit 3.
    lwrite(&mut c, 1, lapic::reg::LDR, 0x0200_0000);
    lwrite(&mut c, 3, lapic::reg::LDR, 0x0800_0000);
    icr(&mut c, 0, 0x0a, 0x4847);
    assert_eq!(c.take_kicks(), 0b1010);
    icr(&mut c, 0, 0x0a, 0x4948);
    assert_eq!(c.take_kicks(), 0b0010, "lowest priority: one of them");
    assert_eq!(c.pending(3), Some(0x47));
}

#[test]
fn nmi_init_and_startup() {
    let mut c = chip(2);
    icr(&mut c, 0, 1, 0x4400);
    assert!(c.take_nmi(1) && !c.take_nmi(1));
    lwrite(&mut c, 1, lapic::reg::TPR, 0x20);
    icr(&mut c, 0, 1, 0x4500); // INIT
    assert_eq!(lread(&mut c, 1, lapic::reg::TPR), 0, "INIT resets the APIC");
    icr(&mut c, 0, 1, 0x8500); // INIT level de-assert
    icr(&mut c, 0, 1, 0x4608); // SIPI, vector 8
    icr(&mut c, 0, 1, 0x4608); // the second SIPI
    let mut ev = vec![];
    c.take_events(&mut ev);
    assert_eq!(
        ev,
        [VmEvent::StartVcpu {
            index: 1,
            entry: 0x8000,
            arg: 0
        }]
    );
    icr(&mut c, 1, 0, 0x4608);
    c.take_events(&mut ev);
    assert_eq!(ev.len(), 1, "the BSP never waits for SIPI");
}

#[test]
fn console_pin_4_reaches_a_vcpu_and_level_eoi_goes_back() {
    let mut c = chip(2);
    iowrite(&mut c, 0x10 + 8 + 1, 0x0100_0000);
    iowrite(&mut c, 0x10 + 8, 0x24);
    c.set_level(4, true);
    assert_eq!(c.take_kicks(), 0b10);
    assert_eq!(c.pending(1), Some(0x24));
    c.set_level(4, false);
    // A level pin 9 to vCPU 0: remote IRR until the local APIC's EOI.
    iowrite(&mut c, 0x10 + 18, 0x8031);
    c.set_level(9, true);
    assert_eq!(c.pending(0), Some(0x31));
    assert!(c.ack(0, 0x31));
    assert_ne!(c.ioapic().entry(9) & (1 << 14), 0, "remote IRR");
    c.set_level(9, true);
    assert_eq!(c.pending(0), None);
    lwrite(&mut c, 0, lapic::reg::EOI, 0);
    assert_eq!(c.pending(0), Some(0x31), "still asserted: sent again");
    assert!(c.ack(0, 0x31));
    c.set_level(9, false);
    lwrite(&mut c, 0, lapic::reg::EOI, 0);
    assert_eq!(c.ioapic().entry(9) & (1 << 14), 0);
    assert_eq!(c.pending(0), None);
    c.take_kicks();
    c.set_level(30, true);
    assert_eq!(c.take_kicks(), 0, "no pin 30");
}

#[test]
fn msrs_through_the_chip() {
    let mut c = chip(2);
    assert_eq!(c.msr(1, 0x1b, None), MsrAnswer::Value(0xfee0_0800));
    assert_eq!(c.msr(0, 0x10, None), MsrAnswer::NotMine);
    assert_eq!(c.msr(0, 0x802, None), MsrAnswer::Refused, "xAPIC mode");
    assert_eq!(c.msr(0, 0x1b, Some(0xfee0_0d00)), MsrAnswer::Value(0));
    assert_eq!(c.msr(0, 0x802, None), MsrAnswer::Value(0));
    assert_eq!(c.msr(0, 0x830, Some(0x1_0000_0051)), MsrAnswer::Value(0));
    assert_eq!(c.take_kicks(), 0b10);
    assert_eq!(c.pending(1), Some(0x51));
    assert_eq!(c.msr(0, 0x8ff, None), MsrAnswer::Refused);
    assert_eq!(c.msr(7, 0x1b, None), MsrAnswer::NotMine, "no such vCPU");
}

static CLOCK: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
fn clock() -> u64 {
    CLOCK.load(core::sync::atomic::Ordering::Relaxed)
}

#[test]
fn the_timer_runs_on_guest_time() {
    // The only test that moves CLOCK.
    CLOCK.store(10_000, core::sync::atomic::Ordering::Relaxed);
    let mut c = X86Apic::new(1, clock).unwrap();
    c.set_tsc_offset(9_000);
    assert_eq!(c.now(), 1_000);
    lwrite(&mut c, 0, lapic::reg::SVR, 0x1ff);
    lwrite(&mut c, 0, lapic::reg::TIMER_DIV, 0xb);
    lwrite(&mut c, 0, lapic::reg::LVT_TIMER, 0x40);
    lwrite(&mut c, 0, lapic::reg::TIMER_INIT, 500);
    assert_eq!(c.timer_deadline(0), Some(1_500));
    assert!(!c.poll(0));
    CLOCK.store(10_500, core::sync::atomic::Ordering::Relaxed);
    assert!(c.poll(0));
    assert_eq!(c.pending(0), Some(0x40));
    assert_eq!(c.msr(0, 0x6e0, None), MsrAnswer::Value(0));
}

#[test]
fn reset_is_power_on() {
    let mut c = chip(2);
    icr(&mut c, 0, 1, 0x4041);
    c.reset();
    assert_eq!(c.pending(1), None);
    assert_eq!(lread(&mut c, 1, lapic::reg::SVR), 0xff);
    assert_eq!(c.take_kicks(), 0);
}
