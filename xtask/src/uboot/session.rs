//! Talking to U-Boot over a serial line: wait for its prompt, type commands (each
//! character only after U-Boot echoed the one before, so a board's small UART FIFO
//! never overflows), send files, boot, then pass the console through.
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libc::STDIN_FILENO;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use super::ymodem;
use crate::config::board::TftpToml;
use crate::config::Board;
use crate::image::script::Step;
use crate::image::Contents;

/// Ctrl-C: stops U-Boot's autoboot and whatever command is running.
const CTRL_C: u8 = 0x03;
/// Ctrl-]: leaves the console.
pub const LEAVE: u8 = 0x1d;
/// How long U-Boot may take to print its prompt after power-on.
const PROMPT_WAIT: Duration = Duration::from_secs(120);
/// How long one command may take (a TFTP load of a large file included).
const COMMAND_WAIT: Duration = Duration::from_secs(120);
/// How long one typed character's echo may take.
const ECHO_WAIT: Duration = Duration::from_secs(5);

/// A serial port: reads time out after a short while.
pub trait Port: Read + Write + Send {
    /// Another handle on the same line (for the console's input thread).
    fn another(&self) -> Result<Box<dyn Port>>;
}

impl Port for serialport::TTYPort {
    fn another(&self) -> Result<Box<dyn Port>> {
        Ok(Box::new(
            self.try_clone_native()
                .context("cannot open the serial line twice")?,
        ))
    }
}

/// Opens a serial device (or pseudo-terminal) raw, 8N1, no flow control.
pub fn open(device: &str, baud: u32) -> Result<Box<dyn Port>> {
    let port = serialport::new(device, baud)
        .timeout(Duration::from_millis(50))
        .open_native()
        .with_context(|| format!("cannot open the serial line {device}"))?;
    Ok(Box::new(port))
}

/// How files reach U-Boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loader {
    /// `loady <addr>` and YMODEM over the console line.
    Ymodem,
    Tftp(Tftp),
}

/// `tftp <addr> <prefix><file>` after `setup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tftp {
    pub setup: Vec<String>,
    pub prefix: String,
}

/// The commands that give U-Boot its network for TFTP (board file `[uboot.tftp]`).
pub fn tftp_commands(t: &TftpToml, board: &str) -> Tftp {
    let mut setup = Vec::new();
    match t.ip.as_deref() {
        None | Some("dhcp") => setup.push("setenv autoload no; dhcp".to_string()),
        Some(ip) => setup.push(format!("setenv ipaddr {ip}")),
    }
    if let Some(s) = &t.server_ip {
        setup.push(format!("setenv serverip {s}"));
    }
    Tftp {
        setup,
        prefix: format!("{board}/"),
    }
}

/// What U-Boot prints when `booti` hands over to the image.
const STARTING: &str = "Starting kernel";

/// What U-Boot prints when a command went wrong.
const FAILURES: &[&str] = &[
    "Unknown command",
    "## Error",
    "libfdt fdt_",
    "Bad Linux ARM64 Image",
    "Retry count exceeded",
    "TFTP error",
    "Wrong Image Format",
    "ERROR: ",
];

/// The first line of `output` that says a command failed.
pub fn failure_in(output: &str) -> Option<&str> {
    output
        .lines()
        .find(|l| FAILURES.iter().any(|f| l.contains(f)))
        .map(str::trim)
}

/// `## Total Size      = 0x0001e240 = 123456 Bytes` -> 123456.
pub fn total_size(output: &str) -> Option<u64> {
    output.lines().find_map(|l| {
        let rest = l.split("## Total Size").nth(1)?;
        let last = rest.rsplit('=').next()?.trim();
        last.strip_suffix("Bytes")?.trim().parse().ok()
    })
}

/// A serial console with U-Boot on the other end.
pub struct Console {
    port: Box<dyn Port>,
    /// Where what U-Boot prints goes (the terminal or a log).
    sink: Box<dyn Write + Send>,
    /// Everything read.
    seen: Vec<u8>,
    prompt: String,
    deadline: Option<Instant>,
}

impl Console {
    pub fn new(
        port: Box<dyn Port>,
        sink: Box<dyn Write + Send>,
        prompt: String,
        deadline: Option<Instant>,
    ) -> Console {
        Console {
            port,
            sink,
            seen: Vec::new(),
            prompt,
            deadline,
        }
    }

    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Reads what is there (waiting one port timeout at most); false when the line
    /// closed (QEMU exited, the adapter was unplugged).
    fn pump(&mut self) -> Result<bool> {
        let mut buf = [0u8; 4096];
        match self.port.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                let _ = self.sink.write_all(&buf[..n]);
                let _ = self.sink.flush();
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            // A pseudo-terminal whose other side closed reads EIO.
            Err(_) => Ok(false),
        }
    }

    /// Reads until `needle` appears after byte `from` of the transcript.
    fn expect(&mut self, needle: &[u8], from: usize, wait: Duration, what: &str) -> Result<usize> {
        let until = Instant::now() + wait;
        loop {
            let from = from.min(self.seen.len());
            if let Some(i) = find(&self.seen[from..], needle) {
                return Ok(from + i + needle.len());
            }
            if Instant::now() >= until || self.out_of_time() {
                bail!("U-Boot: timed out waiting for {what}");
            }
            if !self.pump()? {
                bail!("the serial line closed while waiting for {what}");
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.port
            .write_all(bytes)
            .and_then(|_| self.port.flush())
            .context("cannot write to the serial line")
    }

    /// Stops autoboot: Ctrl-C until the prompt shows, then waits for quiet.
    pub fn reach_prompt(&mut self) -> Result<()> {
        let until = Instant::now() + PROMPT_WAIT;
        let prompt = self.prompt.clone().into_bytes();
        loop {
            let mark = self.seen.len();
            self.send(&[CTRL_C])?;
            let tick = Instant::now() + Duration::from_millis(300);
            while Instant::now() < tick {
                if !self.pump()? {
                    bail!("the serial line closed before U-Boot's prompt");
                }
            }
            if find(&self.seen[mark..], &prompt).is_some() {
                break;
            }
            if Instant::now() >= until || self.out_of_time() {
                bail!(
                    "no U-Boot prompt {:?} on the serial line (is the board powered and the line right? \
                     a different prompt: `prompt` in [uboot])",
                    self.prompt
                );
            }
        }
        // Let the echoes of further Ctrl-Cs settle.
        let mut last = self.seen.len();
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_millis(300) {
            self.pump()?;
            if self.seen.len() != last {
                last = self.seen.len();
                quiet = Instant::now();
            }
        }
        Ok(())
    }

    /// Types `cmd`, paced by its echo, then Enter; returns what it printed before the
    /// next prompt. Fails when U-Boot says it failed.
    pub fn run(&mut self, cmd: &str) -> Result<String> {
        let start = self.seen.len();
        self.type_line(cmd)?;
        let prompt = self.prompt.clone().into_bytes();
        let after_echo = self.seen.len();
        let end = self.expect(
            &prompt,
            after_echo,
            COMMAND_WAIT,
            &format!("`{cmd}` to finish"),
        )?;
        let output = String::from_utf8_lossy(&self.seen[start..end]).into_owned();
        if let Some(line) = failure_in(&output) {
            bail!("U-Boot: `{cmd}` failed: {line}");
        }
        Ok(output)
    }

    fn type_line(&mut self, cmd: &str) -> Result<()> {
        for b in cmd.bytes() {
            let mark = self.seen.len();
            self.send(&[b])?;
            self.expect(&[b], mark, ECHO_WAIT, &format!("the echo of `{cmd}`"))?;
        }
        self.send(b"\r")
    }

    /// Sends `data` to `addr` with `loady`; checks the size U-Boot got.
    fn load_ymodem(&mut self, file: &str, addr: u64, data: &[u8]) -> Result<()> {
        let cmd = format!("loady {addr:#x}");
        let start = self.seen.len();
        self.type_line(&cmd)?;
        let len = data.len();
        println!("\nxtask: uboot: sending {file} ({len} bytes) with YMODEM");
        let t = Instant::now();
        let mut last = None;
        let sent = {
            let mut progress = |n: usize| {
                // A line per MiB, not per block.
                let step = if n == len { usize::MAX } else { n >> 20 };
                if last != Some(step) {
                    last = Some(step);
                    println!("xtask: uboot: {file}: {n} of {len} bytes");
                }
            };
            ymodem::send(
                &mut self.port,
                file,
                data.to_vec(),
                Duration::from_secs(3),
                &mut progress,
            )?
        };
        let retries = sent.retries;
        self.seen.extend_from_slice(&sent.after);
        let _ = self.sink.write_all(&sent.after);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "xtask: uboot: sent {file} in {secs:.1} s ({:.0} KiB/s, {retries} block(s) sent again)",
            len as f64 / 1024.0 / secs.max(0.001)
        );
        let prompt = self.prompt.clone().into_bytes();
        let mark = self.seen.len() - sent.after.len();
        let end = self.expect(&prompt, mark, COMMAND_WAIT, "the prompt after loady")?;
        let output = String::from_utf8_lossy(&self.seen[start..end]).into_owned();
        if let Some(line) = failure_in(&output) {
            bail!("U-Boot: `{cmd}` failed: {line}");
        }
        match total_size(&output) {
            Some(n) if n == len as u64 => Ok(()),
            Some(n) => bail!("U-Boot received {n} bytes of {file}, not {len}"),
            None => bail!("U-Boot did not report the size of {file} after loady"),
        }
    }

    /// The whole boot: prompt, files, script, `booti` (whose prompt never comes).
    pub fn boot(&mut self, contents: &Contents, loader: &Loader, board: &Board) -> Result<()> {
        self.reach_prompt()?;
        println!(
            "\nxtask: uboot: at U-Boot's prompt; booting board {}",
            board.name
        );
        if let Loader::Tftp(t) = loader {
            for c in &t.setup {
                self.run(c)?;
            }
        }
        let steps = contents.script.steps();
        for step in &steps {
            match step {
                Step::Load { file, addr } => {
                    let data = super::file_of(contents, step)
                        .with_context(|| format!("{file} is not among the files to send"))?;
                    match loader {
                        Loader::Ymodem => self.load_ymodem(file, *addr, data)?,
                        Loader::Tftp(t) => {
                            let out = self.run(&format!("tftp {addr:#x} {}{file}", t.prefix))?;
                            if !out.contains("Bytes transferred") {
                                bail!("U-Boot: tftp of {file} did not report a transfer");
                            }
                        }
                    }
                }
                Step::Run(cmd) if cmd.starts_with("booti ") => self.booti(cmd)?,
                Step::Run(cmd) => {
                    self.run(cmd)?;
                }
            }
        }
        Ok(())
    }

    /// Types `booti ...` and waits for U-Boot to hand over (`Starting kernel`); a
    /// failure message or the prompt coming back first is an error.
    fn booti(&mut self, cmd: &str) -> Result<()> {
        let start = self.seen.len();
        self.type_line(cmd)?;
        let after_echo = self.seen.len();
        let until = Instant::now() + COMMAND_WAIT;
        loop {
            let out = String::from_utf8_lossy(&self.seen[start..]).into_owned();
            if out.contains(STARTING) {
                println!();
                return Ok(());
            }
            if let Some(line) = failure_in(&out) {
                bail!("U-Boot: `{cmd}` failed: {line}");
            }
            if find(&self.seen[after_echo..], self.prompt.as_bytes()).is_some() {
                bail!("U-Boot: `{cmd}` returned to the prompt without starting the hypervisor");
            }
            if Instant::now() >= until || self.out_of_time() {
                bail!("U-Boot: timed out waiting for `{cmd}` to start the hypervisor");
            }
            if !self.pump()? {
                bail!("the serial line closed while waiting for `{cmd}`");
            }
        }
    }

    /// After `booti`: shows the console until the line closes, the deadline passes,
    /// or (with `keys`) Ctrl-] is typed; this terminal's keys go to the board.
    pub fn stay(&mut self, keys: bool) -> Result<Left> {
        let _raw = if keys {
            println!("xtask: uboot: console of the board; Ctrl-] leaves");
            Some(RawInput::start(self.port.another()?)?)
        } else {
            None
        };
        loop {
            if self.out_of_time() {
                return Ok(Left::TimedOut);
            }
            if _raw.as_ref().is_some_and(|r| r.left()) {
                // Raw mode is still on: end the line with CR LF.
                print!("\r\nxtask: uboot: left the console\r\n");
                return Ok(Left::ByKey);
            }
            if !self.pump()? {
                print!("\r\nxtask: uboot: the serial line closed\r\n");
                return Ok(Left::Closed);
            }
        }
    }
}

/// How the console session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    /// The line closed (QEMU exited, the adapter was unplugged).
    Closed,
    /// Ctrl-] was typed.
    ByKey,
    TimedOut,
}

/// This terminal in raw mode, its keys sent to the board by a thread.
struct RawInput {
    left: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The terminal's settings before, restored on drop.
    saved: Termios,
}

impl RawInput {
    fn start(mut port: Box<dyn Port>) -> Result<RawInput> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let saved = tcgetattr(STDIN_FILENO).context("cannot read the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(STDIN_FILENO, SetArg::TCSANOW, &raw)
            .context("cannot put the terminal in raw mode")?;
        let left = std::sync::Arc::new(AtomicBool::new(false));
        let flag = left.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut b = [0u8; 1];
            while let Ok(1) = stdin.read(&mut b) {
                if b[0] == LEAVE {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                if port.write_all(&b).is_err() {
                    return;
                }
            }
        });
        Ok(RawInput { left, saved })
    }

    fn left(&self) -> bool {
        self.left.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for RawInput {
    fn drop(&mut self) {
        let _ = tcsetattr(STDIN_FILENO, SetArg::TCSANOW, &self.saved);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
