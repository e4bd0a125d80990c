use super::*;

fn on(id: u32) -> Lapic {
    let mut l = Lapic::new(id);
    l.mmio_write(reg::SVR as u64, 0x1ff, 0);
    l
}

fn rd(l: &mut Lapic, off: u32) -> u32 {
    l.mmio_read(u64::from(off), 0)
}

fn wr(l: &mut Lapic, off: u32, v: u32) -> Effect {
    l.mmio_write(u64::from(off), v, 0)
}

fn x2(id: u32) -> Lapic {
    let mut l = on(id);
    l.msr_write(MSR_APIC_BASE, XAPIC_BASE | BASE_EN | BASE_EXTD, 0)
        .unwrap();
    l
}

#[test]
fn power_on_values() {
    let mut l = Lapic::new(3);
    assert_eq!(rd(&mut l, reg::ID), 3 << 24);
    assert_eq!(rd(&mut l, reg::VERSION), 0x0005_0014);
    assert_eq!(rd(&mut l, reg::TPR), 0);
    assert_eq!(rd(&mut l, reg::PPR), 0);
    assert_eq!(rd(&mut l, reg::LDR), 0);
    assert_eq!(rd(&mut l, reg::DFR), 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::SVR), 0xff);
    for off in [0x320, 0x330, 0x340, 0x350, 0x360, 0x370] {
        assert_eq!(rd(&mut l, off), 0x1_0000, "LVT {off:#x} masked");
    }
    for off in (0x100..0x280).step_by(0x10) {
        assert_eq!(rd(&mut l, off), 0);
    }
    assert_eq!(rd(&mut l, reg::TIMER_INIT), 0);
    assert_eq!(rd(&mut l, reg::TIMER_CUR), 0);
    assert_eq!(rd(&mut l, reg::TIMER_DIV), 0);
    assert_eq!(rd(&mut l, reg::ESR), 0);
    assert_eq!(l.msr_read(MSR_APIC_BASE, 0), Ok(0xfee0_0800));
    assert_eq!(Lapic::new(0).msr_read(MSR_APIC_BASE, 0), Ok(0xfee0_0900));
    assert!(!Lapic::new(0).clone().take_sipi(), "the BSP runs");
    assert!(Lapic::new(1).take_sipi(), "an AP waits for SIPI");
}

#[test]
fn writable_bits_of_each_register() {
    let mut l = on(1);
    wr(&mut l, reg::ID, 0xff00_0000);
    assert_eq!(rd(&mut l, reg::ID), 1 << 24, "the ID is the vCPU's");
    wr(&mut l, reg::VERSION, 0);
    assert_eq!(rd(&mut l, reg::VERSION), VERSION);
    wr(&mut l, reg::TPR, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::TPR), 0xff);
    wr(&mut l, reg::LDR, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::LDR), 0xff00_0000);
    wr(&mut l, reg::DFR, 0);
    assert_eq!(rd(&mut l, reg::DFR), 0x0fff_ffff);
    wr(&mut l, reg::SVR, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::SVR), 0x1ff, "no EOI-broadcast suppression");
    wr(&mut l, reg::LVT_TIMER, 0xffff_ffff);
    assert_eq!(
        rd(&mut l, reg::LVT_TIMER),
        0x0001_00ff,
        "mode 3 is reserved: kept"
    );
    wr(&mut l, reg::LVT_TIMER, 0x0002_00ff);
    assert_eq!(rd(&mut l, reg::LVT_TIMER), 0x0002_00ff);
    wr(&mut l, reg::LVT_LINT0, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::LVT_LINT0), 0x0001_a7ff);
    wr(&mut l, reg::LVT_ERROR, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::LVT_ERROR), 0x0001_00ff);
    wr(&mut l, reg::LVT_THERMAL, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::LVT_THERMAL), 0x0001_07ff);
    wr(&mut l, reg::TIMER_DIV, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::TIMER_DIV), 0xb);
    wr(&mut l, reg::ICR_HI, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::ICR_HI), 0xff00_0000);
    wr(&mut l, reg::IRR, 0xffff_ffff);
    assert_eq!(rd(&mut l, reg::IRR), 0, "IRR is read-only");
    assert_eq!(rd(&mut l, reg::ESR), 0, "read-only registers are no error");
}

#[test]
fn software_disable_masks_every_lvt_and_drops_interrupts() {
    let mut l = on(0);
    wr(&mut l, reg::LVT_LINT0, 0x30);
    assert_eq!(rd(&mut l, reg::LVT_LINT0), 0x30);
    wr(&mut l, reg::SVR, 0xff);
    assert_eq!(rd(&mut l, reg::LVT_LINT0), 0x1_0030);
    wr(&mut l, reg::LVT_LINT0, 0x30);
    assert_eq!(rd(&mut l, reg::LVT_LINT0), 0x1_0030, "stays masked");
    assert!(!l.accept(0x40, false));
    assert_eq!(l.pending(), None);
}

#[test]
fn reserved_registers_read_zero_and_set_esr() {
    let mut l = on(0);
    for off in [0x10u32, 0x40, 0x2f0, 0x3a0, 0x3f0, 0xff0] {
        assert_eq!(rd(&mut l, off), 0);
        wr(&mut l, off, 0xffff_ffff);
    }
    assert_eq!(rd(&mut l, reg::ESR), 0, "errors show once ESR is written");
    wr(&mut l, reg::ESR, 0);
    assert_eq!(rd(&mut l, reg::ESR), ESR_ILLEGAL_REG);
    wr(&mut l, reg::ESR, 0);
    assert_eq!(rd(&mut l, reg::ESR), 0);
    assert_eq!(l.mmio_read(0x1000, 0), 0, "past the registers");
}

#[test]
fn illegal_vectors_set_esr_and_the_error_lvt_fires() {
    let mut l = on(0);
    wr(&mut l, reg::LVT_ERROR, 0xfe);
    assert!(!l.accept(5, false));
    assert_eq!(wr(&mut l, reg::ICR_LO, 0x0000_4003), Effect::None);
    wr(&mut l, reg::ESR, 0);
    assert_eq!(rd(&mut l, reg::ESR), ESR_RECV_ILLEGAL | ESR_SEND_ILLEGAL);
    assert_eq!(l.pending(), Some(0xfe));
}

#[test]
fn priority_tpr_ppr_isr_nesting_and_eoi() {
    let mut l = on(0);
    assert!(l.accept(0x31, false));
    assert!(l.accept(0x52, false));
    assert_eq!(rd(&mut l, reg::IRR + 0x10), 1 << 17);
    assert_eq!(rd(&mut l, reg::IRR + 0x20), 1 << 18);
    assert_eq!(l.pending(), Some(0x52));
    wr(&mut l, reg::TPR, 0x50);
    assert_eq!(rd(&mut l, reg::PPR), 0x50);
    assert_eq!(l.pending(), None, "class 5 is not above TPR 0x50");
    wr(&mut l, reg::TPR, 0);
    assert!(l.ack(0x52));
    assert!(!l.ack(0x52), "no longer pending");
    assert_eq!(rd(&mut l, reg::ISR + 0x20), 1 << 18);
    assert_eq!(rd(&mut l, reg::PPR), 0x50);
    assert_eq!(l.pending(), None, "0x31 waits for the higher class's EOI");
    assert!(l.accept(0x61, false));
    assert_eq!(l.pending(), Some(0x61), "a higher class nests");
    assert!(l.ack(0x61));
    assert_eq!(rd(&mut l, reg::PPR), 0x60);
    assert_eq!(wr(&mut l, reg::EOI, 0), Effect::None);
    assert_eq!(rd(&mut l, reg::PPR), 0x50, "0x61 ended first");
    wr(&mut l, reg::EOI, 0);
    assert_eq!(rd(&mut l, reg::PPR), 0);
    assert_eq!(l.pending(), Some(0x31));
    assert!(l.ack(0x31));
    wr(&mut l, reg::EOI, 0);
    assert_eq!(
        wr(&mut l, reg::EOI, 0),
        Effect::None,
        "EOI with nothing in service"
    );
    assert_eq!(l.pending(), None);
}

#[test]
fn level_triggered_eoi_is_broadcast() {
    let mut l = on(0);
    assert!(l.accept(0x41, true));
    assert_eq!(rd(&mut l, reg::TMR + 0x20), 1 << 1);
    l.ack(0x41);
    assert_eq!(wr(&mut l, reg::EOI, 0), Effect::Eoi(0x41));
}

#[test]
fn icr_messages() {
    let mut l = on(0);
    wr(&mut l, reg::ICR_HI, 0x0300_0000);
    let e = wr(&mut l, reg::ICR_LO, 0x0000_4041);
    assert_eq!(
        e,
        Effect::Ipi(Message {
            vector: 0x41,
            delivery: Delivery::Fixed { lowest: false },
            dest: Dest::Physical(3),
            level: false,
        })
    );
    assert_eq!(rd(&mut l, reg::ICR_LO) & (1 << 12), 0, "delivered at once");
    let m = |lo: u32| Message::from_icr(u64::from(lo), false);
    assert_eq!(m(0x0000_0c41).dest, Dest::Logical(0));
    assert_eq!(m(0x0004_0041).dest, Dest::SelfOnly);
    assert_eq!(m(0x0008_0041).dest, Dest::All);
    assert_eq!(m(0x000c_0041).dest, Dest::AllButSelf);
    assert_eq!(m(0x0000_4500).delivery, Delivery::Init { assert: true });
    assert_eq!(m(0x0000_8500).delivery, Delivery::Init { assert: false });
    assert_eq!(m(0x0000_0608).delivery, Delivery::Startup);
    assert_eq!(m(0x0000_0400).delivery, Delivery::Nmi);
    assert_eq!(m(0x0000_0141).delivery, Delivery::Fixed { lowest: true });
    let x = Message::from_icr(0x0000_0007_0000_0041, true);
    assert_eq!(x.dest, Dest::Physical(7));
}

#[test]
fn destinations_physical_and_logical() {
    let mut l = on(2);
    assert!(l.matches_physical(2) && l.matches_physical(0xff));
    assert!(!l.matches_physical(3));
    wr(&mut l, reg::LDR, 0x0400_0000);
    assert!(l.matches_logical(0x06) && !l.matches_logical(0x01));
    assert!(l.matches_logical(0xff));
    wr(&mut l, reg::DFR, 0x0fff_ffff);
    wr(&mut l, reg::LDR, 0x2100_0000);
    assert!(l.matches_logical(0x23), "cluster 2, member bit 0");
    assert!(!l.matches_logical(0x13), "another cluster");
    let x = x2(0x13);
    assert_eq!(x.msr_read(0x80d, 0), Ok(0x0001_0008));
    assert!(x.matches_logical(0x0001_0008) && !x.matches_logical(0x0000_0008));
    assert!(x.matches_physical(0x13) && x.matches_physical(u32::MAX));
    assert!(!x.matches_physical(0xff), "0xff is an ID in x2APIC mode");
}

#[test]
fn lint_pins_follow_their_lvt() {
    let mut l = on(0);
    assert!(!l.lint(0), "masked");
    wr(&mut l, reg::LVT_LINT0, 0x33);
    assert!(l.lint(0));
    assert_eq!(l.pending(), Some(0x33));
    wr(&mut l, reg::LVT_LINT1, 0x400);
    assert!(l.lint(1));
    assert!(l.take_nmi() && !l.take_nmi());
}

#[test]
fn one_shot_timer_fires_once() {
    let mut l = on(0);
    wr(&mut l, reg::TIMER_DIV, 0xb); // divide by 1
    wr(&mut l, reg::LVT_TIMER, 0x40);
    l.mmio_write(u64::from(reg::TIMER_INIT), 1000, 5000);
    assert_eq!(l.timer_deadline(), Some(6000));
    assert_eq!(l.mmio_read(u64::from(reg::TIMER_CUR), 5400), 600);
    assert!(!l.poll(5999));
    assert!(l.poll(6000));
    assert_eq!(l.pending(), Some(0x40));
    assert_eq!(l.timer_deadline(), None);
    assert!(!l.poll(9000), "only once");
    assert_eq!(l.mmio_read(u64::from(reg::TIMER_CUR), 9000), 0);
    assert_eq!(rd(&mut l, reg::TIMER_INIT), 1000);
}

#[test]
fn periodic_timer_rearms() {
    let mut l = on(0);
    wr(&mut l, reg::TIMER_DIV, 0x0); // divide by 2
    wr(&mut l, reg::LVT_TIMER, 0x2_0040);
    l.mmio_write(u64::from(reg::TIMER_INIT), 100, 0);
    assert_eq!(l.timer_deadline(), Some(200));
    assert_eq!(l.mmio_read(u64::from(reg::TIMER_CUR), 50), 75);
    assert!(l.poll(200));
    assert_eq!(l.timer_deadline(), Some(400));
    l.ack(0x40);
    wr(&mut l, reg::EOI, 0);
    assert!(l.poll(1050), "late: the missed periods fire once");
    assert_eq!(l.timer_deadline(), Some(1200));
    assert_eq!(l.pending(), Some(0x40));
    l.mmio_write(u64::from(reg::TIMER_INIT), 0, 1100);
    assert_eq!(l.timer_deadline(), None, "initial count 0 stops it");
    // A floor longer than the period: the period is the floor.
    l.set_period_floor(500);
    l.mmio_write(u64::from(reg::TIMER_INIT), 1, 2000);
    assert_eq!(
        l.timer_deadline(),
        Some(2500),
        "1 tick clamped to the floor"
    );
    assert!(l.poll(2600));
    assert_eq!(l.timer_deadline(), Some(3000));
}

#[test]
fn divide_values() {
    // (register value, divisor)
    let table = [
        (0x0, 2),
        (0x1, 4),
        (0x2, 8),
        (0x3, 16),
        (0x8, 32),
        (0x9, 64),
        (0xa, 128),
        (0xb, 1),
    ];
    for (v, div) in table {
        let mut l = on(0);
        wr(&mut l, reg::TIMER_DIV, v);
        l.mmio_write(u64::from(reg::TIMER_INIT), 10, 0);
        assert_eq!(l.timer_deadline(), Some(10 * div), "divide {v:#x}");
    }
}

#[test]
fn masked_timer_counts_but_raises_nothing() {
    let mut l = on(0);
    wr(&mut l, reg::TIMER_DIV, 0xb);
    wr(&mut l, reg::LVT_TIMER, 0x1_0040);
    l.mmio_write(u64::from(reg::TIMER_INIT), 10, 0);
    assert!(l.poll(10));
    assert_eq!(l.pending(), None);
}

#[test]
fn tsc_deadline_timer() {
    let mut l = on(0);
    l.msr_write(MSR_TSC_DEADLINE, 500, 0).unwrap();
    assert_eq!(
        l.msr_read(MSR_TSC_DEADLINE, 0),
        Ok(0),
        "ignored in one-shot mode"
    );
    wr(&mut l, reg::LVT_TIMER, 0x4_0050);
    l.mmio_write(u64::from(reg::TIMER_INIT), 77, 0);
    assert_eq!(rd(&mut l, reg::TIMER_INIT), 0, "initial count ignored");
    l.msr_write(MSR_TSC_DEADLINE, 12345, 0).unwrap();
    assert_eq!(l.msr_read(MSR_TSC_DEADLINE, 0), Ok(12345));
    assert_eq!(l.timer_deadline(), Some(12345));
    assert!(!l.poll(12344));
    assert!(l.poll(12345));
    assert_eq!(l.pending(), Some(0x50));
    assert_eq!(
        l.msr_read(MSR_TSC_DEADLINE, 0),
        Ok(0),
        "disarmed once fired"
    );
    l.msr_write(MSR_TSC_DEADLINE, 20000, 0).unwrap();
    wr(&mut l, reg::LVT_TIMER, 0x0_0050);
    assert_eq!(l.timer_deadline(), None, "a mode change disarms");
}

#[test]
fn apic_base_transitions() {
    let mut l = on(1);
    let base = XAPIC_BASE | BASE_EN;
    assert_eq!(
        l.msr_write(MSR_APIC_BASE, base + 0x1000, 0),
        Err(Gp),
        "no move"
    );
    l.msr_write(MSR_APIC_BASE, base | BASE_BSP, 0).unwrap();
    assert_eq!(
        l.msr_read(MSR_APIC_BASE, 0),
        Ok(base),
        "the BSP bit is the machine's"
    );
    assert_eq!(
        l.msr_write(MSR_APIC_BASE, XAPIC_BASE | BASE_EXTD, 0),
        Err(Gp)
    );
    assert_eq!(
        l.msr_read(0x802, 0),
        Err(Gp),
        "x2APIC MSRs need x2APIC mode"
    );
    l.msr_write(MSR_APIC_BASE, base | BASE_EXTD, 0).unwrap();
    assert!(l.x2apic());
    assert_eq!(l.msr_read(0x802, 0), Ok(1));
    assert_eq!(
        l.msr_write(MSR_APIC_BASE, base, 0),
        Err(Gp),
        "x2APIC -> xAPIC"
    );
    l.msr_write(MSR_APIC_BASE, XAPIC_BASE, 0).unwrap();
    assert_eq!(l.msr_read(MSR_APIC_BASE, 0), Ok(XAPIC_BASE));
    assert!(!l.accept(0x40, false), "globally disabled");
    l.msr_write(MSR_APIC_BASE, base, 0).unwrap();
    assert_eq!(
        l.mmio_read(u64::from(reg::SVR), 0),
        0xff,
        "back to power-on"
    );
}

#[test]
fn x2apic_msrs() {
    let mut l = x2(5);
    assert_eq!(l.msr_read(0x803, 0), Ok(u64::from(VERSION)));
    l.msr_write(0x808, 0x20, 0).unwrap();
    assert_eq!(l.msr_read(0x808, 0), Ok(0x20));
    assert_eq!(l.msr_read(0x80a, 0), Ok(0x20), "PPR");
    assert_eq!(l.msr_read(0x80b, 0), Err(Gp), "EOI is write-only");
    assert_eq!(l.msr_write(0x80b, 1, 0), Err(Gp), "EOI takes 0 only");
    assert_eq!(l.msr_write(0x80b, 0, 0), Ok(Effect::None));
    assert_eq!(l.msr_read(0x80e, 0), Err(Gp), "no DFR in x2APIC mode");
    assert_eq!(l.msr_write(0x80d, 0, 0), Err(Gp), "LDR is read-only");
    assert_eq!(l.msr_write(0x802, 0, 0), Err(Gp), "ID is read-only");
    assert_eq!(l.msr_read(0x831, 0), Err(Gp), "no ICR high");
    assert_eq!(l.msr_read(0x8ff, 0), Err(Gp));
    assert_eq!(l.msr_write(0x808, 1 << 32, 0), Err(Gp), "reserved bits");
    assert_eq!(l.msr_write(0x828, 1, 0), Err(Gp), "ESR takes 0 only");
    let e = l.msr_write(0x830, 0x0000_0009_0000_0061, 0);
    assert_eq!(
        e,
        Ok(Effect::Ipi(Message {
            vector: 0x61,
            delivery: Delivery::Fixed { lowest: false },
            dest: Dest::Physical(9),
            level: false,
        }))
    );
    assert_eq!(l.msr_read(0x830, 0), Ok(0x0000_0009_0000_0061));
    assert_eq!(l.msr_write(0x830, 1 << 12, 0), Err(Gp), "delivery status");
    l.msr_write(0x83f, 0x71, 0).unwrap();
    assert_eq!(l.pending(), Some(0x71), "self IPI");
    assert_eq!(l.msr_read(0x83f, 0), Err(Gp));
    l.msr_write(0x838, 300, 0).unwrap();
    assert_eq!(l.msr_read(0x838, 0), Ok(300));
    assert_eq!(
        l.mmio_read(u64::from(reg::TPR), 0),
        0,
        "no MMIO in x2APIC mode"
    );
    assert_eq!(l.msr_read(0x1234, 0), Err(Gp), "not an APIC MSR");
}

#[test]
fn init_resets_and_waits_for_sipi() {
    let mut l = on(1);
    assert!(l.take_sipi());
    wr(&mut l, reg::TPR, 0x30);
    l.init();
    assert_eq!(rd(&mut l, reg::TPR), 0);
    assert_eq!(rd(&mut l, reg::SVR), 0xff);
    assert!(l.take_sipi());
    assert!(!l.take_sipi(), "a second SIPI is ignored");
}
