use super::ymodem::*;

#[test]
fn crc16_matches_the_xmodem_check_value() {
    // The CRC catalogue's check value of CRC-16/XMODEM for "123456789".
    assert_eq!(crc16(b"123456789"), 0x31c3);
    assert_eq!(crc16(b""), 0);
}

#[test]
fn header_and_frames() {
    let h = header("hypervisor.bin", 1234).unwrap();
    assert_eq!(h.len(), 133);
    assert_eq!(&h[..3], &[SOH, 0, 0xff]);
    assert_eq!(&h[3..23], b"hypervisor.bin\x001234\x00");
    assert!(h[23..131].iter().all(|&b| b == 0));
    assert_eq!(u16::from_be_bytes([h[131], h[132]]), crc16(&h[3..131]));
    let f = frame(STX, 7, b"abc", PAD);
    assert_eq!(f.len(), 1029);
    assert_eq!(&f[..6], &[STX, 7, 0xf8, b'a', b'b', b'c']);
    assert_eq!(f[6], PAD);
    assert!(header(&"x".repeat(130), 1).is_err());
    assert!(header("", 1).is_err());
}

/// How the simulated receiver behaves.
#[derive(Clone, Copy)]
struct Style {
    /// Sends `C` after the header's ACK (lrzsz) or not (U-Boot).
    c_after_header: bool,
    /// NAKs the first EOT (classic) or ACKs it (U-Boot).
    nak_first_eot: bool,
    /// Sends `C` after EOT's ACK (both do; U-Boot too).
    c_after_eot: bool,
    /// Corrupts the first transmission of this data block (its CRC fails: NAK).
    corrupt_block: Option<u8>,
    /// Drops the first transmission of this data block (the sender times out).
    drop_block: Option<u8>,
}

/// A YMODEM receiver: checks every frame, returns (file name, file bytes).
struct Receiver {
    style: Style,
    name: String,
    size: usize,
    data: Vec<u8>,
    next: u8,
    eots: u32,
    started: bool,
    ended: bool,
    corrupted: bool,
    dropped: bool,
}

impl Receiver {
    fn new(style: Style) -> Receiver {
        Receiver {
            style,
            name: String::new(),
            size: 0,
            data: Vec::new(),
            next: 0,
            eots: 0,
            started: false,
            ended: false,
            corrupted: false,
            dropped: false,
        }
    }

    /// The receiver's answer to one transmission (None: it saw nothing).
    fn receive(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        if bytes == [EOT] {
            self.eots += 1;
            if self.style.nak_first_eot && self.eots == 1 {
                return Some(vec![NAK]);
            }
            let mut answer = vec![ACK];
            if self.style.c_after_eot {
                answer.push(b'C');
            }
            return Some(answer);
        }
        let size = match bytes[0] {
            SOH => 128,
            STX => 1024,
            other => panic!("unexpected start byte {other:#x}"),
        };
        assert_eq!(bytes.len(), size + 5, "frame length");
        let (seq, inv) = (bytes[1], bytes[2]);
        assert_eq!(seq, !inv, "block number complement");
        let mut payload = bytes[3..3 + size].to_vec();
        if self.style.drop_block == Some(seq) && seq != 0 && !self.dropped {
            self.dropped = true;
            return None;
        }
        if self.style.corrupt_block == Some(seq) && seq != 0 && !self.corrupted {
            self.corrupted = true;
            payload[0] ^= 0xff;
        }
        let crc = u16::from_be_bytes([bytes[3 + size], bytes[4 + size]]);
        if crc != crc16(&payload) {
            return Some(vec![NAK]);
        }
        if seq == 0 && bytes[0] == SOH && self.eots > 0 {
            assert!(payload.iter().all(|&b| b == 0), "the batch end is empty");
            self.ended = true;
            return Some(vec![ACK]);
        }
        if seq == 0 && !self.started {
            self.started = true;
            let text = &payload[..payload.iter().position(|&b| b == 0).unwrap()];
            self.name = String::from_utf8(text.to_vec()).unwrap();
            let rest = &payload[text.len() + 1..];
            let len = &rest[..rest.iter().position(|&b| b == 0).unwrap()];
            self.size = std::str::from_utf8(len).unwrap().parse().unwrap();
            self.next = 1;
            let mut answer = vec![ACK];
            if self.style.c_after_header {
                answer.push(b'C');
            }
            return Some(answer);
        }
        if seq == self.next.wrapping_sub(1) {
            return Some(vec![ACK]); // a repeat of the last block
        }
        assert_eq!(seq, self.next, "block order");
        self.data.extend_from_slice(&payload);
        self.next = self.next.wrapping_add(1);
        Some(vec![ACK])
    }

    fn file(&self) -> Vec<u8> {
        self.data[..self.size].to_vec()
    }
}

/// Runs the sender against the receiver; returns the receiver and the retries.
fn transfer(style: Style, data: &[u8]) -> (Receiver, u32) {
    let mut s = Sender::new("f.bin", data.to_vec()).unwrap();
    let mut r = Receiver::new(style);
    let mut inbox: Vec<u8> = vec![b'C'];
    for _ in 0..10_000 {
        let mut actions = Vec::new();
        if inbox.is_empty() {
            actions.push(s.on_timeout().unwrap());
        }
        for b in std::mem::take(&mut inbox) {
            actions.push(s.on_byte(b).unwrap());
        }
        for a in actions {
            match a {
                Action::Send(bytes) => inbox.extend(r.receive(&bytes).unwrap_or_default()),
                Action::Wait => {}
                Action::Done => {
                    assert!(s.is_done());
                    return (r, s.retries);
                }
            }
        }
    }
    panic!("the transfer did not end");
}

const UBOOT: Style = Style {
    c_after_header: false,
    nak_first_eot: false,
    c_after_eot: true,
    corrupt_block: None,
    drop_block: None,
};

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

#[test]
fn a_file_reaches_a_uboot_style_receiver_whole() {
    // 300 KiB + 5: more than 256 blocks (the block number wraps), a short last block.
    let data = sample(300 * 1024 + 5);
    let (r, retries) = transfer(UBOOT, &data);
    assert_eq!(r.name, "f.bin");
    assert_eq!(r.size, data.len());
    assert_eq!(r.file(), data);
    assert!(r.ended);
    assert_eq!(retries, 0);
}

#[test]
fn classic_receivers_and_errors() {
    let data = sample(3000);
    let classic = Style {
        c_after_header: true,
        nak_first_eot: true,
        ..UBOOT
    };
    let (r, retries) = transfer(classic, &data);
    assert_eq!(r.file(), data);
    assert_eq!(retries, 1, "the NAKed EOT went again");
    let bad = Style {
        corrupt_block: Some(2),
        ..UBOOT
    };
    let (r, retries) = transfer(bad, &data);
    assert_eq!(r.file(), data, "the NAKed block went again");
    assert_eq!(retries, 1);
    let lost = Style {
        drop_block: Some(3),
        ..UBOOT
    };
    let (r, retries) = transfer(lost, &data);
    assert_eq!(r.file(), data, "the block lost went again after a timeout");
    assert_eq!(retries, 1);
    let (r, _) = transfer(UBOOT, &[]);
    assert_eq!(r.size, 0);
    assert!(r.ended);
}

#[test]
fn cancel_silence_and_endless_naks_end_the_transfer() {
    let mut s = Sender::new("f", vec![1; 10]).unwrap();
    assert!(s.on_timeout().is_err(), "no receiver");
    let mut s = Sender::new("f", vec![1; 10]).unwrap();
    assert!(matches!(s.on_byte(b'C').unwrap(), Action::Send(_)));
    assert_eq!(s.on_byte(CAN).unwrap(), Action::Wait);
    assert!(s.on_byte(CAN).is_err(), "two CANs cancel");
    let mut s = Sender::new("f", vec![1; 10]).unwrap();
    s.on_byte(b'C').unwrap();
    let mut failed = false;
    for _ in 0..MAX_TRIES + 1 {
        if s.on_byte(NAK).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "a block NAKed {MAX_TRIES} times gives up");
    let mut s = Sender::new("f", vec![1; 10]).unwrap();
    assert!(s.on_byte(NAK).is_err(), "checksum mode is refused");
}

/// The port-driving loop, over an in-memory port that answers like U-Boot.
#[test]
fn send_over_a_port() {
    use std::io::{self, Read, Write};
    struct Port {
        r: Receiver,
        out: Vec<u8>,
        pending: Vec<u8>,
    }
    impl Read for Port {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.out.is_empty() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let n = buf.len().min(self.out.len());
            buf[..n].copy_from_slice(&self.out[..n]);
            self.out.drain(..n);
            Ok(n)
        }
    }
    impl Write for Port {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.pending.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let bytes = std::mem::take(&mut self.pending);
            let answer = self.r.receive(&bytes).unwrap_or_default();
            self.out.extend(answer);
            if self.r.ended {
                self.out
                    .extend_from_slice(b"## Total Size = 0x1388 = 5000 Bytes\r\n=> ");
            }
            Ok(())
        }
    }
    let data = sample(5000);
    let mut port = Port {
        r: Receiver::new(UBOOT),
        out: b"## Ready for binary (ymodem) download\r\nC".to_vec(),
        pending: Vec::new(),
    };
    let mut seen = Vec::new();
    let sent = send(
        &mut port,
        "hv.bin",
        data.clone(),
        std::time::Duration::from_millis(20),
        &mut |n| seen.push(n),
    )
    .unwrap();
    assert_eq!(sent.retries, 0);
    assert_eq!(sent.after, b"## Total Size = 0x1388 = 5000 Bytes\r\n=> ");
    assert_eq!(port.r.file(), data);
    assert_eq!(port.r.name, "hv.bin");
    assert_eq!(seen.last(), Some(&data.len()));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress only grows");
}

#[test]
fn uboot_messages() {
    use super::session::{failure_in, total_size};
    let out = "loady 0x40200000\r\n## Ready for binary (ymodem) download to 0x40200000 at 115200 bps...\r\n\
               ## Total Size      = 0x0001e240 = 123456 Bytes\r\n## Start Addr      = 0x40200000\r\n=> ";
    assert_eq!(total_size(out), Some(123456));
    // The command's echo and U-Boot's answer on one line (its `\r\n` was taken by
    // the transfer).
    assert_eq!(
        total_size("=> loady 0x40200000## Total Size      = 0x0002f1c8 = 192968 Bytes\r\n"),
        Some(192968)
    );
    assert_eq!(total_size("=> "), None);
    assert_eq!(failure_in(out), None);
    assert_eq!(
        failure_in("fdt mknode /chosen x\r\nlibfdt fdt_add_subnode(): FDT_ERR_EXISTS\r\n=> "),
        Some("libfdt fdt_add_subnode(): FDT_ERR_EXISTS")
    );
    assert!(failure_in("Unknown command 'fdtx' - try 'help'").is_some());
    assert_eq!(
        super::pty_path("char device redirected to /dev/pts/7 (label serial0)"),
        Some("/dev/pts/7".to_string())
    );
    assert_eq!(super::pty_path("qemu: warning: x"), None);
}

#[test]
fn tftp_setup_commands() {
    use crate::config::board::TftpToml;
    let t = TftpToml {
        dir: "/srv/tftp".into(),
        server_ip: Some("192.168.1.2".into()),
        ip: None,
    };
    let c = super::session::tftp_commands(&t, "rk");
    assert_eq!(
        c.setup,
        ["setenv autoload no; dhcp", "setenv serverip 192.168.1.2"]
    );
    assert_eq!(c.prefix, "rk/");
    let t = TftpToml {
        ip: Some("192.168.1.9".into()),
        server_ip: None,
        ..t
    };
    assert_eq!(
        super::session::tftp_commands(&t, "rk").setup,
        ["setenv ipaddr 192.168.1.9"]
    );
}

#[test]
fn qemu_command_line_of_the_uboot_board() {
    use crate::config::{load, Context, VmList};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let g = vec!["testguest".to_string()];
    let plan = load(
        root,
        &root.join("configs/board/qemu-aarch64-uboot.toml"),
        VmList::FromBoard,
        &Context { guest_crates: &g },
    )
    .unwrap();
    let q = plan.board.qemu.clone().unwrap();
    assert_eq!(
        super::qemu_pty_args(&plan.board, &q).join(" "),
        "-machine virt,virtualization=on,gic-version=3 -cpu cortex-a72 -smp 4 -m 4G \
         -display none -monitor none -no-reboot -nic none -semihosting-config enable=on,target=native \
         -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin -serial pty"
    );
    // The boot typed at the prompt: the hypervisor, then booti with U-Boot's DTB.
    assert_eq!(plan.board.uboot, None);
    let tftp = load(
        root,
        &root.join("xtask/tests/data/qemu-aarch64-uboot-tftp.toml"),
        VmList::FromBoard,
        &Context { guest_crates: &g },
    )
    .unwrap();
    let t = tftp.board.uboot.unwrap().tftp.unwrap();
    assert_eq!(t.dir, "target/hv/tftp");
    assert_eq!(t.server_ip.as_deref(), Some("10.0.2.2"));
}

#[test]
fn boot_steps_typed_at_the_prompt() {
    use crate::image::script::{BootScript, Dtb, Module, ModuleKind, Step};
    let s = BootScript {
        board: "b".into(),
        hypervisor_file: "hypervisor.bin".into(),
        hypervisor_addr: 0x4020_0000,
        dtb: Dtb::ControlCopy {
            addr: 0x4040_0000,
            size: 0x20_0000,
        },
        modules: vec![Module {
            file: "vms/vm3.toml".into(),
            kind: ModuleKind::VmConfig,
            addr: 0x4060_0000,
            slot: 0x1_0000,
        }],
    };
    let steps = s.steps();
    let load = |file: &str, addr: u64| Step::Load {
        file: file.into(),
        addr,
    };
    let run = |c: &str| Step::Run(c.into());
    assert_eq!(steps[0], load("hypervisor.bin", 0x4020_0000));
    assert_eq!(steps[1], run("fdt addr ${fdtcontroladdr}"));
    assert_eq!(
        steps[2],
        run("fdt move ${fdtcontroladdr} 0x40400000 0x200000")
    );
    assert!(steps.contains(&load("vms/vm3.toml", 0x4060_0000)));
    let at = steps
        .iter()
        .position(|x| *x == load("vms/vm3.toml", 0x4060_0000))
        .unwrap();
    assert_eq!(
        steps[at + 1],
        run("fdt set /chosen/hv-modules/module@40600000 reg <0x0 0x40600000 0x0 0x${filesize}>")
    );
    assert_eq!(steps.last(), Some(&run("booti 0x40200000 - 0x40400000")));
    // The card's script says the same, with `load` from the partition.
    let text = s.render();
    for step in &steps {
        if let Step::Run(c) = step {
            assert!(text.contains(c.as_str()), "{c} not in boot.scr:\n{text}");
        }
    }
}
