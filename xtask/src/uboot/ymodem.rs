//! A YMODEM sender (one file per batch, 1 KiB blocks, CRC-16), as U-Boot's `loady`
//! receives it. Pure: [`Sender`] is a state machine fed with the receiver's bytes and
//! with timeouts; it answers with the bytes to send. [`send`] drives it over a port.
//!
//! The exchange: the receiver asks with `C`; block 0 (file name, decimal size) with
//! SOH; the receiver ACKs (and may ask with `C` again); 1024-byte data blocks with STX,
//! numbered from 1 (mod 256), the last one padded with 0x1A; EOT until it is ACKed
//! (classic receivers NAK the first one); the receiver asks with `C` for the next file;
//! an empty block 0 ends the batch and is ACKed.
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const SOH: u8 = 0x01;
pub const STX: u8 = 0x02;
pub const EOT: u8 = 0x04;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const CAN: u8 = 0x18;
pub const CRC_REQUEST: u8 = b'C';
/// Padding of the last data block.
pub const PAD: u8 = 0x1a;
/// Data bytes of an STX block.
pub const BLOCK: usize = 1024;
/// How often one block is sent before the transfer is given up.
pub const MAX_TRIES: u32 = 10;

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), as YMODEM's blocks carry it.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One framed block: start byte, number, its complement, `payload` padded with `pad`
/// to 128 (SOH) or 1024 (STX) bytes, CRC-16 big-endian.
pub fn frame(start: u8, seq: u8, payload: &[u8], pad: u8) -> Vec<u8> {
    let size = if start == STX { BLOCK } else { 128 };
    let mut data = payload.to_vec();
    data.resize(size, pad);
    let mut out = Vec::with_capacity(size + 5);
    out.extend_from_slice(&[start, seq, !seq]);
    out.extend_from_slice(&data);
    out.extend_from_slice(&crc16(&data).to_be_bytes());
    out
}

/// Block 0 of a file: `name\0size\0`, zero-padded to 128 bytes.
pub fn header(name: &str, size: usize) -> Result<Vec<u8>> {
    let mut payload = name.as_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(size.to_string().as_bytes());
    payload.push(0);
    if payload.len() > 128 || name.as_bytes().contains(&0) || name.is_empty() {
        bail!("YMODEM: file name {name:?} does not fit in block 0");
    }
    Ok(frame(SOH, 0, &payload, 0))
}

/// What the sender waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The receiver's first `C`.
    Start,
    /// The ACK of block `n` (0: the header).
    Ack(usize),
    /// The `C` that asks for block 1 after the header's ACK.
    Request,
    /// The ACK of EOT.
    EotAck,
    /// The `C` that asks for the next file's header.
    FinalRequest,
    /// The ACK of the empty block 0.
    FinalAck,
    Done,
}

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes, then wait for the receiver.
    Send(Vec<u8>),
    /// Keep waiting.
    Wait,
    /// The receiver has the file and ended the batch.
    Done,
}

/// The sender of one file.
pub struct Sender {
    header: Vec<u8>,
    data: Vec<u8>,
    state: State,
    /// Tries of the block being sent.
    tries: u32,
    /// Retransmissions in total, for the report.
    pub retries: u32,
    cancels: u32,
}

impl Sender {
    pub fn new(name: &str, data: Vec<u8>) -> Result<Sender> {
        Ok(Sender {
            header: header(name, data.len())?,
            data,
            state: State::Start,
            tries: 0,
            retries: 0,
            cancels: 0,
        })
    }

    /// How long to wait for the receiver in the current state: a receiver that does
    /// not ask for block 1 or the batch end (U-Boot's) costs this much.
    pub fn patience(&self, wait: Duration) -> Duration {
        match self.state {
            State::Request | State::FinalRequest => wait.min(Duration::from_millis(500)),
            _ => wait,
        }
    }

    /// Data blocks of the file (none for an empty file).
    pub fn blocks(&self) -> usize {
        self.data.len().div_ceil(BLOCK)
    }

    /// Bytes of the file ACKed so far.
    pub fn acked(&self) -> usize {
        match self.state {
            State::Start | State::Ack(0) | State::Request => 0,
            State::Ack(n) => ((n - 1) * BLOCK).min(self.data.len()),
            _ => self.data.len(),
        }
    }

    fn block(&self, n: usize) -> Vec<u8> {
        if n == 0 {
            return self.header.clone();
        }
        let from = (n - 1) * BLOCK;
        let to = (from + BLOCK).min(self.data.len());
        frame(STX, (n % 256) as u8, &self.data[from..to], PAD)
    }

    /// Block `n`, or EOT after the last one.
    fn next_after(&mut self, n: usize) -> Action {
        self.tries = 1;
        if n < self.blocks() {
            self.state = State::Ack(n + 1);
            Action::Send(self.block(n + 1))
        } else {
            self.state = State::EotAck;
            Action::Send(vec![EOT])
        }
    }

    /// The same again, as long as tries are left.
    fn again(&mut self) -> Result<Action> {
        if self.tries >= MAX_TRIES {
            bail!(
                "YMODEM: the receiver did not take {} after {MAX_TRIES} tries",
                self.what()
            );
        }
        self.tries += 1;
        self.retries += 1;
        Ok(Action::Send(match self.state {
            State::Ack(n) => self.block(n),
            State::EotAck => vec![EOT],
            State::FinalAck => frame(SOH, 0, &[], 0),
            _ => return Ok(Action::Wait),
        }))
    }

    fn what(&self) -> String {
        match self.state {
            State::Ack(0) => "block 0 (the file header)".into(),
            State::Ack(n) => format!("block {n} of {}", self.blocks()),
            State::EotAck => "the end of the file (EOT)".into(),
            State::FinalAck => "the end of the batch".into(),
            _ => "the transfer".into(),
        }
    }

    /// The receiver sent `b`.
    pub fn on_byte(&mut self, b: u8) -> Result<Action> {
        if b == CAN {
            self.cancels += 1;
            if self.cancels >= 2 {
                bail!("YMODEM: the receiver cancelled the transfer");
            }
            return Ok(Action::Wait);
        }
        self.cancels = 0;
        match (self.state, b) {
            (State::Start, CRC_REQUEST) => {
                self.state = State::Ack(0);
                self.tries = 1;
                Ok(Action::Send(self.header.clone()))
            }
            (State::Start, NAK) => {
                bail!(
                    "YMODEM: the receiver asks for checksum mode (NAK), only CRC mode is supported"
                )
            }
            (State::Ack(0), ACK) => {
                self.state = State::Request;
                Ok(Action::Wait)
            }
            (State::Request, CRC_REQUEST) => Ok(self.next_after(0)),
            (State::Ack(n), ACK) => Ok(self.next_after(n)),
            (State::Ack(_) | State::EotAck | State::FinalAck, NAK) => self.again(),
            (State::EotAck, ACK) => {
                self.state = State::FinalRequest;
                Ok(Action::Wait)
            }
            (State::FinalRequest, CRC_REQUEST) => {
                self.state = State::FinalAck;
                self.tries = 1;
                Ok(Action::Send(frame(SOH, 0, &[], 0)))
            }
            (State::FinalAck, ACK) => {
                self.state = State::Done;
                Ok(Action::Done)
            }
            (State::Done, _) => Ok(Action::Done),
            // Anything else (a `C` while an ACK is awaited, line noise, the
            // receiver's messages) is ignored: a block goes again only on NAK or
            // timeout, so one block is never ACKed twice.
            _ => Ok(Action::Wait),
        }
    }

    /// Nothing came for a while.
    pub fn on_timeout(&mut self) -> Result<Action> {
        match self.state {
            State::Start => bail!("YMODEM: the receiver never asked for the file (no `C`)"),
            // After the header's ACK some receivers (U-Boot's) wait for block 1
            // without asking, and after EOT's ACK for the end of the batch.
            State::Request => Ok(self.next_after(0)),
            State::FinalRequest => {
                self.state = State::FinalAck;
                self.tries = 1;
                Ok(Action::Send(frame(SOH, 0, &[], 0)))
            }
            State::Done => Ok(Action::Done),
            _ => self.again(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// What [`send`] did.
pub struct Sent {
    /// Blocks sent again.
    pub retries: u32,
    /// Bytes read after the receiver's last ACK (its messages), for the caller.
    pub after: Vec<u8>,
}

/// Sends `data` as file `name` over `port` (reads must time out after a short while);
/// `wait` is how long one answer may take. `progress` is called with the bytes ACKed
/// so far.
pub fn send(
    port: &mut (impl Read + Write),
    name: &str,
    data: Vec<u8>,
    wait: Duration,
    progress: &mut dyn FnMut(usize),
) -> Result<Sent> {
    let mut s = Sender::new(name, data)?;
    let mut since = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        let n = match port.read(&mut buf) {
            Ok(0) => bail!("YMODEM: the serial line closed during the transfer"),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => 0,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => return Err(e).context("YMODEM: reading the serial line"),
        };
        let mut actions = Vec::new();
        if n == 0 {
            if since.elapsed() >= s.patience(wait) {
                actions.push((s.on_timeout()?, n));
            }
        } else {
            for (i, &b) in buf[..n].iter().enumerate() {
                actions.push((s.on_byte(b)?, i + 1));
                if s.is_done() {
                    break;
                }
            }
        }
        for (a, used) in actions {
            match a {
                Action::Send(bytes) => {
                    port.write_all(&bytes)
                        .and_then(|_| port.flush())
                        .context("YMODEM: writing the serial line")?;
                    since = Instant::now();
                    progress(s.acked());
                }
                Action::Wait => {}
                Action::Done => {
                    progress(s.acked());
                    return Ok(Sent {
                        retries: s.retries,
                        after: buf[used.min(n)..n].to_vec(),
                    });
                }
            }
        }
    }
}
