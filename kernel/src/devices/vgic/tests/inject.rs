//! The injection API: raising interrupts, list register hand-over, SGIs, kicks.

use super::*;

fn inj(intid: u32, priority: u8, level: bool) -> Injection {
    Injection {
        intid,
        priority,
        group1: true,
        hw: false,
        level,
    }
}

#[test]
fn level_spi_full_cycle() {
    let mut g = gic4();
    enable_spi(&mut g, 33, 0xa0);
    assert_eq!(
        g.set_level(33, true),
        Ok(Some(0)),
        "IROUTER resets to vCPU 0"
    );
    assert_eq!(g.take_kicks(), 1);
    assert!(g.has_deliverable(0));
    assert_eq!(g.next_to_inject(0), Some(inj(33, 0xa0, true)));
    assert_eq!(g.next_to_inject(0), None, "in flight");
    let (off, b) = bit(ISPENDR, 33);
    assert_eq!(dr(&mut g, off) & b, b, "pending as the guest sees it");
    assert_eq!(g.lr_update(0, 33, LrState::Pending), Ok(LrAction::Keep));
    assert_eq!(g.lr_update(0, 33, LrState::Active), Ok(LrAction::Keep));
    let (aoff, ab) = bit(ISACTIVER, 33);
    assert_eq!(
        dr(&mut g, aoff) & ab,
        ab,
        "active while the guest handles it"
    );
    // The guest's handler reads the device, which lowers its line; then EOI.
    g.set_level(33, false).unwrap();
    assert_eq!(g.lr_update(0, 33, LrState::Invalid), Ok(LrAction::Keep));
    assert_eq!(g.next_to_inject(0), None);
    assert_eq!(dr(&mut g, aoff) & ab, 0);
    assert_eq!(dr(&mut g, off) & b, 0);
}

#[test]
fn level_still_high_after_eoi_is_injected_again() {
    let mut g = gic4();
    enable_spi(&mut g, 40, 0);
    g.set_level(40, true).unwrap();
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(40));
    g.lr_update(0, 40, LrState::Active).unwrap();
    g.lr_update(0, 40, LrState::Invalid).unwrap();
    assert_eq!(g.take_kicks() & 1, 1);
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(40));
}

#[test]
fn level_dropped_before_the_guest_took_it_is_removed() {
    let mut g = gic4();
    enable_spi(&mut g, 40, 0);
    g.set_level(40, true).unwrap();
    g.next_to_inject(0).unwrap();
    g.set_level(40, false).unwrap();
    assert_eq!(g.lr_update(0, 40, LrState::Pending), Ok(LrAction::Remove));
    assert_eq!(g.next_to_inject(0), None);
    assert_eq!(
        g.lr_update(0, 40, LrState::Pending),
        Err(VgicError::NotInFlight(40))
    );
}

#[test]
fn priority_order_then_intid() {
    let mut g = gic4();
    for (intid, prio) in [(35, 0x80), (34, 0x40), (36, 0x40), (33, 0xc0)] {
        enable_spi(&mut g, intid, prio);
        g.set_pending(intid, 0).unwrap();
    }
    enable_private(&mut g, 0, 27, 0x40);
    g.set_private_level(0, 27, true).unwrap();
    let order: alloc::vec::Vec<u32> =
        core::iter::from_fn(|| g.next_to_inject(0).map(|i| i.intid)).collect();
    assert_eq!(order, [27, 34, 36, 35, 33]);
}

#[test]
fn disabled_or_group_disabled_is_not_delivered() {
    let mut g = gic4();
    g.set_pending(50, 0).unwrap();
    assert_eq!(g.next_to_inject(0), None, "not enabled");
    let (off, b) = bit(ISENABLER, 50);
    dw(&mut g, off, b);
    assert_eq!(
        g.next_to_inject(0),
        None,
        "group 1 disabled at the distributor"
    );
    assert_eq!(g.take_kicks(), 0);
    dw(&mut g, CTLR, 0x2);
    assert_eq!(g.take_kicks(), 1, "enabling the group kicks the target");
    // A group-0 interrupt needs EnableGrp0.
    let (goff, gb) = bit(IGROUPR, 50);
    let groups = dr(&mut g, goff);
    dw(&mut g, goff, groups & !gb);
    assert_eq!(g.next_to_inject(0), None);
    dw(&mut g, CTLR, 0x3);
    let got = g.next_to_inject(0).unwrap();
    assert_eq!((got.intid, got.group1), (50, false));
}

#[test]
fn private_interrupts_ignore_distributor_group_enable() {
    let mut g = gic4();
    enable_private(&mut g, 2, 27, 0);
    assert_eq!(g.set_private_level(2, 27, true), Ok(Some(2)));
    assert_eq!(g.next_to_inject(2).map(|i| i.intid), Some(27));
    assert_eq!(g.next_to_inject(1), None);
}

#[test]
fn spi_routing_follows_irouter() {
    let mut g = gic4();
    enable_spi(&mut g, 33, 0);
    g.dist_write(IROUTER + 33 * 8, 8, 2).unwrap();
    assert_eq!(g.set_pending(33, 0), Ok(Some(2)));
    assert_eq!(g.next_to_inject(0), None);
    assert_eq!(g.next_to_inject(2).map(|i| i.intid), Some(33));
    assert_eq!(
        g.lr_update(0, 33, LrState::Invalid),
        Err(VgicError::NotInFlight(33))
    );
    assert_eq!(g.lr_update(2, 33, LrState::Invalid), Ok(LrAction::Keep));
    // Routed to an affinity no vCPU has: held until re-routed.
    g.dist_write(IROUTER + 33 * 8, 8, 0x77).unwrap();
    assert_eq!(g.set_pending(33, 0), Ok(None));
    g.take_kicks();
    g.dist_write(IROUTER + 33 * 8, 8, 3).unwrap();
    assert_eq!(g.take_kicks(), 1 << 3);
    assert_eq!(g.next_to_inject(3).map(|i| i.intid), Some(33));
}

#[test]
fn edges_while_in_a_list_register_are_never_lost() {
    let mut g = gic4();
    enable_spi(&mut g, 33, 0);
    g.set_pending(33, 0).unwrap();
    g.next_to_inject(0).unwrap();
    // A second edge while the LR may or may not have been taken: kept, and the
    // target is kicked so the list register gets read back.
    g.take_kicks();
    g.set_pending(33, 0).unwrap();
    assert_eq!(
        g.take_kicks(),
        1,
        "vCPU 0 must exit to sync its list registers"
    );
    assert_eq!(
        g.lr_update(0, 33, LrState::Active),
        Ok(LrAction::Replace(LrState::PendingActive)),
        "the second edge goes into the list register"
    );
    assert_eq!(g.next_to_inject(0), None, "in flight (pending and active)");
    g.lr_update(0, 33, LrState::Pending).unwrap();
    g.lr_update(0, 33, LrState::Invalid).unwrap();
    assert_eq!(g.next_to_inject(0), None, "both delivered");
    // Reported finished with the edge still in the model: injected again.
    g.set_pending(33, 0).unwrap();
    g.next_to_inject(0).unwrap();
    g.set_pending(33, 0).unwrap();
    g.lr_update(0, 33, LrState::Invalid).unwrap();
    assert_eq!(
        g.next_to_inject(0).map(|i| i.intid),
        Some(33),
        "the second edge"
    );
}

/// The lost-IPI sequence seen with Linux: vCPU 1 took and finished SGI 1 but has not
/// exited since, so the model still shows it in a list register; vCPU 0 sends SGI 1
/// again. The new SGI must be kept and vCPU 1 kicked, or vCPU 1 sleeps on in WFI.
#[test]
fn sgi_to_a_vcpu_with_a_stale_list_register_is_kept_and_kicked() {
    let mut g = gic4();
    let sgi1_to_vcpu1 = (1u64 << 24) | 0b10;
    g.redist_write(1, 0x1_0100, 4, 1 << 1).unwrap(); // GICR_ISENABLER0: SGI 1
    g.sgi(0, sgi1_to_vcpu1).unwrap();
    assert_eq!(g.next_to_inject(1).map(|i| i.intid), Some(1));
    g.take_kicks();
    // The guest acknowledged and deactivated it; no exit yet, so no lr_update.
    g.sgi(0, sgi1_to_vcpu1).unwrap();
    assert_ne!(g.take_kicks() & 0b10, 0, "vCPU 1 is kicked");
    g.lr_update(1, 1, LrState::Invalid).unwrap();
    assert_eq!(
        g.next_to_inject(1).map(|i| i.intid),
        Some(1),
        "the second SGI is delivered"
    );
}

#[test]
fn guest_withdrawals_while_in_a_list_register() {
    let mut g = gic4();
    enable_spi(&mut g, 33, 0);
    // ICPENDR: the LR's pending state is withdrawn.
    g.set_pending(33, 0).unwrap();
    g.next_to_inject(0).unwrap();
    let (off, b) = bit(ICPENDR, 33);
    dw(&mut g, off, b);
    assert_eq!(dr(&mut g, off) & b, 0);
    assert_eq!(g.lr_update(0, 33, LrState::Pending), Ok(LrAction::Remove));
    assert_eq!(g.next_to_inject(0), None);
    // ICENABLER: removed, but still pending once enabled again.
    g.set_pending(33, 0).unwrap();
    g.next_to_inject(0).unwrap();
    let (eoff, eb) = bit(ICENABLER, 33);
    dw(&mut g, eoff, eb);
    assert_eq!(g.lr_update(0, 33, LrState::Pending), Ok(LrAction::Remove));
    assert_eq!(g.next_to_inject(0), None);
    dw(&mut g, eoff - 0x80, eb);
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(33));
    // ICACTIVER on an active one.
    g.lr_update(0, 33, LrState::Active).unwrap();
    let (aoff, ab) = bit(ICACTIVER, 33);
    dw(&mut g, aoff, ab);
    assert_eq!(g.lr_update(0, 33, LrState::Active), Ok(LrAction::Remove));
    // Pending+active with the active part withdrawn.
    g.set_pending(33, 0).unwrap();
    g.next_to_inject(0).unwrap();
    g.lr_update(0, 33, LrState::PendingActive).unwrap();
    dw(&mut g, aoff, ab);
    assert_eq!(
        g.lr_update(0, 33, LrState::PendingActive),
        Ok(LrAction::Replace(LrState::Pending))
    );
}

#[test]
fn unqueue_gives_the_interrupt_back() {
    let mut g = gic4();
    enable_spi(&mut g, 33, 0x80);
    enable_spi(&mut g, 34, 0x10);
    g.set_pending(33, 0).unwrap();
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(33));
    g.set_pending(34, 0).unwrap();
    // One list register only: make room for the higher-priority 34.
    assert_eq!(g.peek(0).map(|i| i.intid), Some(34));
    g.unqueue(0, 33).unwrap();
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(34));
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(33));
    g.lr_update(0, 33, LrState::Active).unwrap();
    assert_eq!(
        g.unqueue(0, 33),
        Err(VgicError::NotInFlight(33)),
        "only pending ones"
    );
}

#[test]
fn more_pending_than_list_registers() {
    let mut g = gic4();
    for intid in 32..40 {
        enable_spi(&mut g, intid, 0);
        g.set_pending(intid, 0).unwrap();
    }
    let mut lrs: alloc::vec::Vec<u32> = (0..4)
        .filter_map(|_| g.next_to_inject(0))
        .map(|i| i.intid)
        .collect();
    assert_eq!(lrs, [32, 33, 34, 35]);
    // Underflow: the guest handled them all; refill.
    for intid in lrs.drain(..) {
        g.lr_update(0, intid, LrState::Invalid).unwrap();
    }
    lrs.extend((0..4).filter_map(|_| g.next_to_inject(0)).map(|i| i.intid));
    assert_eq!(lrs, [36, 37, 38, 39]);
    assert!(!g.has_deliverable(0));
}

#[test]
fn hw_flag_and_software_pending_of_level_interrupts() {
    let mut g = gic4();
    enable_private(&mut g, 1, 27, 0);
    g.set_hw(1, 27, true).unwrap();
    g.set_private_level(1, 27, true).unwrap();
    let i = g.next_to_inject(1).unwrap();
    assert!(i.hw && i.level);
    // ISPENDR on a level interrupt with its line low: pending until taken.
    enable_spi(&mut g, 60, 0);
    let (off, b) = bit(ISPENDR, 60);
    dw(&mut g, off, b);
    assert_eq!(g.next_to_inject(0).map(|i| i.intid), Some(60));
    assert_eq!(
        g.lr_update(0, 60, LrState::Pending),
        Ok(LrAction::Keep),
        "latched, not line"
    );
    g.lr_update(0, 60, LrState::Invalid).unwrap();
    assert_eq!(g.next_to_inject(0), None);
}

#[test]
fn edge_configured_line_latches_on_rising_edge() {
    let mut g = gic4();
    enable_spi(&mut g, 33, 0);
    dw(&mut g, ICFGR + 8, 0b1000); // INTID 33 edge
    g.set_level(33, true).unwrap();
    g.set_level(33, false).unwrap();
    assert_eq!(
        g.next_to_inject(0).map(|i| (i.intid, i.level)),
        Some((33, false))
    );
}

#[test]
fn sgis_from_icc_sgi1r() {
    let mut g = gic4();
    for v in 0..4 {
        enable_private(&mut g, v, 1, 0);
    }
    // INTID 1 to vCPUs 1 and 2 (Aff3.Aff2.Aff1 = 0, TargetList 0b110).
    assert_eq!(g.sgi(0, (1 << 24) | 0b110), Ok(0b110));
    assert_eq!(g.next_to_inject(1).map(|i| i.intid), Some(1));
    assert_eq!(
        g.next_to_inject(2).map(|i| (i.intid, i.level)),
        Some((1, false))
    );
    assert_eq!(g.next_to_inject(3), None);
    // IRM: everyone but the sender.
    assert_eq!(
        g.sgi(3, (1 << 40) | (1 << 24)),
        Ok(0b0001),
        "1 and 2 still have it in flight"
    );
    // A disabled SGI is pending but wakes no one.
    assert_eq!(g.sgi(0, (5 << 24) | 0b1000), Ok(0));
    let pend = rr(&mut g, 3, SGI + ISPENDR);
    assert_eq!(pend & (1 << 5), 1 << 5);
    g.take_kicks();
    rw(&mut g, 3, SGI + ISENABLER, 1 << 5);
    assert_eq!(g.take_kicks(), 1 << 3);
    assert_eq!(g.sgi(4, 0), Err(VgicError::BadVcpu(4)));
}

#[test]
fn group0_sgis_from_icc_sgi0r_and_asgi1r_reach_only_group0_targets() {
    let mut g = gic4();
    for v in 0..4 {
        enable_private(&mut g, v, 3, 0);
    }
    // SGI 3 is Group 0 on vCPUs 1 and 3 (IGROUPR0 resets to all Group 1).
    rw(&mut g, 1, SGI + IGROUPR, !(1 << 3));
    rw(&mut g, 3, SGI + IGROUPR, !(1 << 3));
    let to_1_2 = (3 << 24) | 0b110;
    // ICC_SGI0R_EL1 (and ICC_ASGI1R_EL1, the same request) to vCPUs 1 and 2.
    assert_eq!(g.sgi(0, sgi_request(to_1_2, true)), Ok(0b0010));
    assert_eq!(
        g.next_to_inject(2),
        None,
        "Group 1 on vCPU 2: not generated"
    );
    assert_eq!(
        g.next_to_inject(1).map(|i| (i.intid, i.group1)),
        Some((3, false))
    );
    let pend = rr(&mut g, 2, SGI + ISPENDR);
    assert_eq!(pend & (1 << 3), 0, "not even pending on vCPU 2");
    // IRM from vCPU 0: Group 0 targets only (vCPU 1 has it in flight already).
    assert_eq!(g.sgi(0, sgi_request(1 << 40 | 3 << 24, true)), Ok(0b1000));
    // ICC_SGI1R_EL1 generates it in either group.
    assert_eq!(g.sgi(3, sgi_request(to_1_2, false)), Ok(0b0100));
}

#[test]
fn the_group0_mark_never_comes_from_the_guest() {
    // A guest writing bit 63 (RES0) to ICC_SGI1R_EL1 still reaches Group 1 targets.
    let v = (1u64 << 63) | (2 << 24) | 0b10;
    assert_eq!(sgi_request(v, false) & SGI_GROUP0_ONLY, 0);
    assert_eq!(sgi_request(v, true), v);
    let mut g = gic4();
    enable_private(&mut g, 1, 2, 0);
    assert_eq!(g.sgi(0, sgi_request(v, false)), Ok(0b10));
}

#[test]
fn sgi_affinity_levels_and_range_selector() {
    let mpidrs = [0x0, 0x100, 0x1_0002_0311, 0x110];
    let mut g = Vgic::new(&mpidrs, 32).unwrap();
    for v in 0..4 {
        enable_private(&mut g, v, 2, 0);
    }
    // Aff1 = 1, TargetList bit 0 -> MPIDR 0x100 (vCPU 1).
    assert_eq!(g.sgi(0, (2 << 24) | (1 << 16) | 1), Ok(0b0010));
    // Aff3 = 1, Aff2 = 2, Aff1 = 3, RS = 1, bit 1 -> Aff0 = 17 -> vCPU 2.
    let v = (1 << 48) | (1 << 44) | (2 << 32) | (2 << 24) | (3 << 16) | 0b10;
    assert_eq!(g.sgi(0, v), Ok(0b0100));
    // Aff1 = 1, RS = 1, bit 0 -> Aff0 = 16 -> MPIDR 0x110 (vCPU 3); bit 5 -> nobody.
    assert_eq!(
        g.sgi(0, (1 << 44) | (2 << 24) | (1 << 16) | 0b10_0001),
        Ok(0b1000)
    );
    assert_eq!(
        g.sgi(0, (2 << 24) | (9 << 16) | 0xffff),
        Ok(0),
        "no such affinity"
    );
}

#[test]
fn injection_api_errors() {
    let mut g = gic4();
    assert_eq!(g.set_pending(96, 0), Err(VgicError::BadIntid(96)));
    assert_eq!(
        g.set_pending(u32::MAX, 0),
        Err(VgicError::BadIntid(u32::MAX))
    );
    assert_eq!(g.set_pending(3, 4), Err(VgicError::BadVcpu(4)));
    assert_eq!(
        g.set_pending(40, usize::MAX),
        Ok(None),
        "SPIs ignore the vCPU"
    );
    assert_eq!(g.set_level(27, true), Err(VgicError::BadIntid(27)));
    assert_eq!(
        g.set_level(1 << 31, true),
        Err(VgicError::BadIntid(1 << 31))
    );
    assert_eq!(g.set_private_level(0, 3, true), Err(VgicError::BadIntid(3)));
    assert_eq!(g.set_private_level(9, 27, true), Err(VgicError::BadVcpu(9)));
    assert_eq!(g.set_hw(0, 5000, true), Err(VgicError::BadIntid(5000)));
    assert_eq!(
        g.lr_update(0, 33, LrState::Active),
        Err(VgicError::NotInFlight(33))
    );
    assert_eq!(
        g.lr_update(7, 33, LrState::Active),
        Err(VgicError::BadVcpu(7))
    );
    assert_eq!(
        g.lr_update(0, u32::MAX, LrState::Active),
        Err(VgicError::NotInFlight(u32::MAX))
    );
    assert_eq!(g.unqueue(0, 1), Err(VgicError::NotInFlight(1)));
    assert_eq!(g.next_to_inject(99), None);
    assert!(!g.has_deliverable(99));
}

/// vCPU 1 is still handling SGI 3 when it is sent again: the list register becomes
/// pending and active, so the guest takes the second as soon as it ends the first
/// (ending an edge interrupt causes no exit that would refill the list registers).
#[test]
fn an_edge_while_active_goes_into_the_list_register_as_pending_and_active() {
    let mut g = gic4();
    enable_private(&mut g, 1, 3, 0x80);
    g.set_pending(3, 1).unwrap();
    g.next_to_inject(1).unwrap();
    g.set_pending(3, 1).unwrap();
    assert_eq!(
        g.lr_update(1, 3, LrState::Active),
        Ok(LrAction::Replace(LrState::PendingActive))
    );
    assert_eq!(g.lr_update(1, 3, LrState::Pending), Ok(LrAction::Keep));
    assert_eq!(g.lr_update(1, 3, LrState::Invalid), Ok(LrAction::Keep));
    assert_eq!(g.next_to_inject(1), None, "delivered twice, no more");
    // A forwarded (HW) interrupt cannot be pending and active in a list register.
    g.set_hw(1, 27, true).unwrap();
    enable_private(&mut g, 1, 27, 0x80);
    g.set_pending(27, 1).unwrap();
    g.next_to_inject(1).unwrap();
    g.set_pending(27, 1).unwrap();
    assert_eq!(g.lr_update(1, 27, LrState::Active), Ok(LrAction::Keep));
}
