//! Register-level tests of the PL011 model, plus the access sequences of Linux's
//! amba-pl011 driver (probe, startup, interrupt handler, console write).

use super::*;
use alloc::vec::Vec;

fn rd(u: &mut Pl011, off: u64) -> u32 {
    u.read(off, 4).unwrap() as u32
}

fn wr(u: &mut Pl011, off: u64, v: u32) {
    u.write(off, 4, u64::from(v)).unwrap();
}

fn drained(u: &mut Pl011) -> Vec<u8> {
    let mut out = Vec::new();
    u.drain_tx(|b| out.push(b));
    out
}

#[test]
fn reset_values() {
    let mut u = Pl011::new();
    assert_eq!(rd(&mut u, FR), FR_TXFE | FR_RXFE);
    assert_eq!(rd(&mut u, CR), 0x300);
    assert_eq!(rd(&mut u, IFLS), 0x12);
    for off in [DR, RSR_ECR, ILPR, IBRD, FBRD, LCR_H, IMSC, RIS, MIS, DMACR] {
        assert_eq!(rd(&mut u, off), 0, "offset {off:#x}");
    }
    assert!(!u.irq_level());
}

#[test]
fn primecell_identification() {
    let mut u = Pl011::new();
    let id = |u: &mut Pl011, base: u64| {
        (0..4).fold(0u32, |acc, i| acc | (rd(u, base + 4 * i) << (8 * i)))
    };
    assert_eq!(id(&mut u, 0xfe0), 0x0004_1011);
    assert_eq!(id(&mut u, 0xff0), 0xb105_f00d);
    // Linux reads them with 32-bit accesses; byte reads work too.
    assert_eq!(u.read(0xff0, 1), Ok(0x0d));
    assert_eq!(u.read(0xffc, 2), Ok(0xb1));
}

#[test]
fn control_registers_are_stored_with_their_widths() {
    let mut u = Pl011::new();
    for (off, written, kept) in [
        (IBRD, 0xffff_ffff, 0xffff),
        (FBRD, 0xff, 0x3f),
        (LCR_H, 0x1ff, 0xff),
        (CR, 0xffff_ffff, 0xff87),
        (IFLS, 0xff, 0x3f),
        (IMSC, 0xffff, 0x7ff),
        (DMACR, 0xff, 0x7),
        (ILPR, 0x1ff, 0xff),
    ] {
        wr(&mut u, off, written);
        assert_eq!(rd(&mut u, off), kept, "offset {off:#x}");
    }
    // Read-only registers ignore writes.
    wr(&mut u, FR, 0);
    wr(&mut u, RIS, 0x7ff);
    wr(&mut u, 0xfe0, 0);
    assert_eq!(rd(&mut u, FR), FR_TXFE | FR_RXFE);
    assert_eq!(rd(&mut u, RIS), 0);
    assert_eq!(rd(&mut u, 0xfe0), 0x11);
}

#[test]
fn transmit_buffer_flags_and_drain() {
    let mut u = Pl011::new();
    wr(&mut u, DR, u32::from(b'h'));
    u.write(DR, 1, u64::from(b'i')).unwrap();
    u.write(DR, 2, 0x0a).unwrap();
    let fr = rd(&mut u, FR);
    assert_eq!(fr & (FR_BUSY | FR_TXFE | FR_TXFF), FR_BUSY);
    assert_eq!(drained(&mut u), b"hi\n");
    assert_eq!(rd(&mut u, FR) & (FR_BUSY | FR_TXFE), FR_TXFE);
    for i in 0..TX_BUFFER as u32 {
        wr(&mut u, DR, i);
    }
    assert_ne!(rd(&mut u, FR) & FR_TXFF, 0);
    wr(&mut u, DR, 0xee); // dropped, like a write to a full FIFO
    let out = drained(&mut u);
    assert_eq!(out.len(), TX_BUFFER);
    assert_eq!(out[TX_BUFFER - 1], (TX_BUFFER - 1) as u8);
}

#[test]
fn tx_interrupt_latches_and_clears() {
    let mut u = Pl011::new();
    wr(&mut u, DR, u32::from(b'x'));
    assert_eq!(rd(&mut u, RIS), INT_TX);
    assert!(!u.irq_level(), "masked");
    wr(&mut u, IMSC, INT_TX);
    assert!(u.irq_level());
    assert_eq!(rd(&mut u, MIS), INT_TX);
    wr(&mut u, ICR, INT_TX);
    assert_eq!(rd(&mut u, RIS), 0);
    assert!(!u.irq_level());
}

#[test]
fn receive_without_fifo_holds_one_byte() {
    let mut u = Pl011::new();
    assert_eq!(u.rx_space(), 1);
    assert!(u.push_rx(b'a'));
    assert!(!u.push_rx(b'b'));
    assert_eq!(rd(&mut u, FR) & (FR_RXFE | FR_RXFF), FR_RXFF);
    assert_eq!(rd(&mut u, RIS), INT_RX, "trigger level is one byte");
    assert_eq!(rd(&mut u, DR), u32::from(b'a'));
    assert_eq!(rd(&mut u, FR) & (FR_RXFE | FR_RXFF), FR_RXFE);
    assert_eq!(rd(&mut u, RIS), 0);
    assert_eq!(rd(&mut u, DR), 0, "empty FIFO reads zero");
}

#[test]
fn receive_fifo_trigger_levels_and_timeout() {
    let mut u = Pl011::new();
    wr(&mut u, LCR_H, LCR_H_FEN | 0x60);
    wr(&mut u, IMSC, INT_RX | INT_RT);
    for b in 0..3 {
        assert!(u.push_rx(b));
    }
    assert_eq!(
        rd(&mut u, RIS),
        INT_RT,
        "below the 1/2 trigger: receive timeout"
    );
    assert!(u.irq_level());
    for b in 3..16 {
        assert!(u.push_rx(b));
    }
    assert_eq!(rd(&mut u, RIS), INT_RX);
    assert_eq!(rd(&mut u, DR), 0);
    assert_eq!(rd(&mut u, RIS), INT_RT, "15 left, below trigger");
    for b in 16..(16 + RX_FIFO as u8 - 15) {
        assert!(u.push_rx(b));
    }
    assert_eq!(u.rx_space(), 0);
    assert!(!u.push_rx(0xff));
    assert_ne!(rd(&mut u, FR) & FR_RXFF, 0);
    let got: Vec<u32> = (0..RX_FIFO).map(|_| rd(&mut u, DR)).collect();
    assert_eq!(got, (1..=RX_FIFO as u32).collect::<Vec<_>>());
    assert_eq!(rd(&mut u, RIS), 0);
    assert!(!u.irq_level());
    // IFLS 7/8 (RXIFLSEL = 4): 28 bytes.
    wr(&mut u, IFLS, 4 << 3);
    for b in 0..27 {
        u.push_rx(b);
    }
    assert_eq!(rd(&mut u, RIS), INT_RT);
    u.push_rx(27);
    assert_eq!(rd(&mut u, RIS), INT_RX);
}

#[test]
fn icr_acknowledges_rx_until_the_next_byte() {
    let mut u = Pl011::new();
    wr(&mut u, LCR_H, LCR_H_FEN);
    wr(&mut u, IMSC, INT_RX | INT_RT);
    u.push_rx(b'a');
    wr(&mut u, ICR, INT_RX | INT_RT);
    assert_eq!(rd(&mut u, RIS), 0);
    assert!(!u.irq_level());
    u.push_rx(b'b');
    assert_eq!(rd(&mut u, RIS), INT_RT);
    wr(&mut u, ICR, INT_RT);
    assert_eq!(rd(&mut u, DR), u32::from(b'a'));
    assert_eq!(
        rd(&mut u, RIS),
        INT_RT,
        "timeout restarts after a read with data left"
    );
}

#[test]
fn loopback_sends_tx_to_rx() {
    let mut u = Pl011::new();
    wr(&mut u, CR, 0x301 | CR_LBE);
    wr(&mut u, DR, u32::from(b'z'));
    assert!(drained(&mut u).is_empty());
    assert_eq!(rd(&mut u, DR), u32::from(b'z'));
}

#[test]
fn widths_alignment_and_out_of_window() {
    let mut u = Pl011::new();
    assert_eq!(u.read(FR, 2), Ok(u64::from(FR_TXFE | FR_RXFE)));
    assert_eq!(u.read(FR, 1), Ok(u64::from(FR_TXFE | FR_RXFE)));
    assert_eq!(u.read(CR + 1, 1), Ok(0x03));
    assert_eq!(u.read(CR + 2, 2), Ok(0));
    assert_eq!(
        u.read(FR, 8),
        Err(MmioError::BadWidth {
            offset: FR,
            width: 8,
            accepts: Widths::W1_2_4,
        })
    );
    assert_eq!(
        u.read(FR, 3),
        Err(MmioError::BadWidth {
            offset: FR,
            width: 3,
            accepts: Widths::W1_2_4,
        })
    );
    assert_eq!(
        u.read(FR + 1, 2),
        Err(MmioError::Unaligned {
            offset: FR + 1,
            width: 2
        })
    );
    assert_eq!(
        u.write(DR + 2, 4, 0),
        Err(MmioError::Unaligned {
            offset: DR + 2,
            width: 4
        })
    );
    assert_eq!(u.read(0x1000, 4), Ok(0));
    assert_eq!(u.read(u64::MAX, 1), Ok(0));
    assert_eq!(u.read(u64::MAX - 3, 4), Ok(0));
    assert_eq!(u.write(u64::MAX - 3, 4, 7), Ok(()));
    // A byte write to the reserved upper half of UARTDR sends nothing.
    u.write(DR + 1, 1, 0x41).unwrap();
    assert!(drained(&mut u).is_empty());
    // A byte read of UARTDR's upper half does not pop the FIFO.
    u.push_rx(b'q');
    assert_eq!(u.read(DR + 1, 1), Ok(0));
    assert_eq!(u.read(DR, 2), Ok(u64::from(b'q')));
}

/// The amba-pl011 driver's probe/startup and interrupt handling, with 16-bit accesses.
#[test]
fn linux_driver_sequence() {
    let mut u = Pl011::new();
    let r16 = |u: &mut Pl011, off| u.read(off, 2).unwrap() as u32;
    let w16 = |u: &mut Pl011, off, v: u32| u.write(off, 2, u64::from(v)).unwrap();
    // Probe: periphid, then hwinit: clear and mask all interrupts.
    assert_eq!(rd(&mut u, 0xfe0) & 0xff, 0x11);
    w16(&mut u, ICR, 0x7ff);
    w16(&mut u, IMSC, 0);
    // Startup: IFLS, CR, LCR_H with FIFOs, unmask RX and RT.
    w16(&mut u, IFLS, 0x12);
    w16(&mut u, CR, 0x301);
    w16(&mut u, IBRD, 13);
    w16(&mut u, FBRD, 1);
    w16(&mut u, LCR_H, 0x70);
    w16(&mut u, ICR, 0x7ff);
    w16(&mut u, IMSC, INT_RX | INT_RT);
    // Start TX: write while TXFF clear, then unmask TX; the interrupt comes.
    for &b in b"ok\n" {
        assert_eq!(r16(&mut u, FR) & FR_TXFF, 0);
        w16(&mut u, DR, u32::from(b));
    }
    w16(&mut u, IMSC, INT_RX | INT_RT | INT_TX);
    assert!(u.irq_level());
    let status = r16(&mut u, MIS);
    assert_eq!(status, INT_TX);
    w16(&mut u, ICR, status & !(INT_TX | INT_RT | INT_RX));
    // Nothing more to send: stop_tx masks TX.
    w16(&mut u, IMSC, INT_RX | INT_RT);
    assert!(!u.irq_level());
    assert_eq!(drained(&mut u), b"ok\n");
    // Input arrives: RX handler reads until RXFE.
    for &b in b"ls\r" {
        assert!(u.push_rx(b));
    }
    assert!(u.irq_level());
    assert_eq!(r16(&mut u, MIS), INT_RT);
    let mut got = Vec::new();
    while r16(&mut u, FR) & FR_RXFE == 0 {
        got.push(r16(&mut u, DR) as u8);
    }
    assert_eq!(got, b"ls\r");
    assert!(!u.irq_level());
    // Console write: save IMSC, mask, poll, wait for !BUSY (the VMM drains), restore.
    let saved = r16(&mut u, IMSC);
    w16(&mut u, IMSC, 0);
    w16(&mut u, DR, u32::from(b'!'));
    drained(&mut u);
    assert_eq!(r16(&mut u, FR) & FR_BUSY, 0);
    w16(&mut u, IMSC, saved);
    assert!(!u.irq_level(), "TX is latched but masked");
}
