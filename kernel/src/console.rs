//! The hypervisor console. One host UART is shared by the hypervisor and every VM.
//!
//! - The VM that has the keyboard is shown as a terminal would show it, as its output
//!   comes (prompts without a line end, echo, colours and other escape sequences),
//!   with its name at each line start. Any other output first ends its unfinished
//!   line, which is drawn again in full (after its prefix) when that VM continues it,
//!   so its last appearance is always whole.
//! - Every other VM's output is collected per VM into lines, and each complete line
//!   is written as `[<vm name>] <line>` under one lock, so lines of different VMs never
//!   interleave. A [`Sanitizer`] keeps only text, tabs and colour/attribute sequences
//!   (SGR, `ESC [ ... m`) of it, so such a VM cannot move the cursor, clear the screen
//!   or start a line of its own (forge an `hv:` line); a line with colours ends with a
//!   reset, so they do not leak into the next line.

use core::fmt;

/// Longest line kept before it is flushed without a newline.
pub const LINE_MAX: usize = 240;

/// A piece of a VM's output the console may show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// One character (UTF-8), a tab, or one whole SGR sequence: never cut.
    Text(&'a [u8]),
    /// The end of a line.
    LineEnd,
}

/// The filter of a VM's output bytes (those of a VM without the keyboard): a pure
/// state machine around [`anstyle_parse`]'s parser (clap's fork of the one of the
/// alacritty terminal, `vte`), which splits the bytes into characters, control
/// characters and escape sequences as a terminal does (Paul Williams' DEC parser). What passes: printable characters (UTF-8), tab, line feed, and SGR sequences (`ESC [ <numbers separated by ; or :> m`,
/// written again from the parsed numbers). What is dropped: every other control
/// character (carriage return, backspace, bell, ...), C1 controls, and every other
/// escape sequence (cursor movement, erasing, modes, OSC such as window titles, DCS).
pub struct Sanitizer {
    parser: anstyle_parse::Parser,
}

impl Default for Sanitizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sanitizer {
    pub fn new() -> Self {
        Self {
            parser: anstyle_parse::Parser::default(),
        }
    }

    /// Feeds one output byte; `out` gets what may be shown of it, if anything.
    pub fn push(&mut self, byte: u8, out: &mut dyn FnMut(Piece<'_>)) {
        self.parser.advance(&mut Emit { out }, byte);
    }
}

/// Longest SGR sequence written again (the parser keeps at most 32 numbers of 5
/// digits).
const SGR_MAX: usize = 2 + 32 * 6 + 1;

struct Emit<'o> {
    out: &'o mut dyn FnMut(Piece<'_>),
}

impl anstyle_parse::Perform for Emit<'_> {
    fn print(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        let mut utf8 = [0; 4];
        (self.out)(Piece::Text(c.encode_utf8(&mut utf8).as_bytes()));
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => (self.out)(Piece::LineEnd),
            b'\t' => (self.out)(Piece::Text(b"\t")),
            _ => {}
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &anstyle_parse::Params,
        intermediates: &[u8],
        ignore: bool,
        action: u8,
    ) {
        if action != b'm' || ignore || !intermediates.is_empty() {
            return;
        }
        let mut seq = [0u8; SGR_MAX];
        seq[..2].copy_from_slice(b"\x1b[");
        let mut len = 2;
        for (i, param) in params.iter().enumerate() {
            for (j, &n) in param.iter().enumerate() {
                let sep = match (i, j) {
                    (0, 0) => None,
                    (_, 0) => Some(b';'),
                    _ => Some(b':'),
                };
                let mut digits = [0u8; 5];
                let mut k = digits.len();
                let mut v = n;
                loop {
                    k -= 1;
                    digits[k] = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                let need = usize::from(sep.is_some()) + digits.len() - k + 1;
                if len + need > SGR_MAX {
                    return;
                }
                if let Some(sep) = sep {
                    seq[len] = sep;
                    len += 1;
                }
                seq[len..len + digits.len() - k].copy_from_slice(&digits[k..]);
                len += digits.len() - k;
            }
        }
        seq[len] = b'm';
        (self.out)(Piece::Text(&seq[..len + 1]));
    }
}

/// Collects a VM's output into lines.
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Adds a piece; `line` gets each complete line (without its end): at a line end,
    /// and before a piece that does not fit any more, so a long line goes out in
    /// parts without a character or a sequence cut in two.
    pub fn push(&mut self, piece: Piece<'_>, line: &mut dyn FnMut(&[u8])) {
        match piece {
            Piece::LineEnd => line(self.take()),
            Piece::Text(bytes) => {
                if self.len + bytes.len() > LINE_MAX {
                    line(self.take());
                }
                let n = bytes.len().min(LINE_MAX);
                self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
                self.len += n;
            }
        }
    }

    /// Adds one raw byte (the streamed line of the VM with the keyboard); a full
    /// buffer starts over, so only the line's tail is kept.
    pub fn push_byte(&mut self, byte: u8) {
        if self.len == LINE_MAX {
            self.len = 0;
        }
        self.buf[self.len] = byte;
        self.len += 1;
    }

    /// What is buffered so far, without emptying the buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// What is buffered so far (a line without its end), emptying the buffer.
    pub fn take(&mut self) -> &[u8] {
        let n = core::mem::replace(&mut self.len, 0);
        &self.buf[..n]
    }
}

/// The shell's input line (its prompt and what is typed so far) while it is on
/// screen. Other output first takes it off ([`PromptLine::erase`]) and then draws
/// it again below itself ([`PromptLine::redraw`], the cursor where it was), so a
/// VM's line never lands in the middle of a half-typed command.
pub struct PromptLine {
    text: LineBuffer,
    /// Cells between the cursor and the end of the line.
    back: usize,
    shown: bool,
}

impl Default for PromptLine {
    fn default() -> Self {
        Self::new()
    }
}

impl PromptLine {
    pub const fn new() -> Self {
        Self {
            text: LineBuffer::new(),
            back: 0,
            shown: false,
        }
    }

    /// The line as the screen shows it now: `text`, the cursor `back` cells before
    /// its end (a line longer than [`LINE_MAX`] keeps its start).
    pub fn set(&mut self, text: &[u8], back: usize) {
        self.text.take();
        for &b in text.iter().take(LINE_MAX) {
            self.text.push_byte(b);
        }
        self.back = back.min(self.text.as_bytes().len());
        self.shown = true;
    }

    /// The line has left the screen (ended with Enter, or erased for good).
    pub fn clear(&mut self) {
        self.shown = false;
    }

    pub fn shown(&self) -> bool {
        self.shown
    }

    /// What takes the line off the screen (nothing when it is not shown).
    pub fn erase(&self, out: &mut dyn FnMut(&[u8])) {
        if self.shown {
            out(b"\r\x1b[K");
        }
    }

    /// What draws the line again (after other output ended a line), with the
    /// cursor back in its place.
    pub fn redraw(&self, out: &mut dyn FnMut(&[u8])) {
        if !self.shown {
            return;
        }
        out(self.text.as_bytes());
        for _ in 0..self.back {
            out(b"\x08");
        }
    }
}

#[cfg(target_os = "none")]
mod output {
    use crate::drivers::uart::HostUart;
    use core::fmt::Write;
    use spin::Mutex;

    struct Console {
        uart: HostUart,
        /// The VM whose output line is on screen unfinished (streamed output of the
        /// VM with the keyboard).
        open_line: Option<u32>,
        /// The streamed line so far of `partial_owner`, drawn again when other output
        /// cut it and it continues.
        partial: super::LineBuffer,
        partial_owner: Option<u32>,
        /// The shell's input line, when it is on screen.
        prompt: super::PromptLine,
    }

    /// A writer that remembers the last byte it wrote (did the output end a line?).
    struct Tracked<'u> {
        uart: &'u mut HostUart,
        last: u8,
    }

    impl Write for Tracked<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            if let Some(&b) = s.as_bytes().last() {
                self.last = b;
            }
            self.uart.write_str(s)
        }
    }

    impl Console {
        /// Takes the shell's line off the screen before other output.
        fn erase_prompt(&mut self) {
            let uart = &self.uart;
            self.prompt
                .erase(&mut |b| b.iter().for_each(|&x| uart.putc(x)));
        }

        /// Draws the shell's line again after other output ended a line.
        fn redraw_prompt(&mut self) {
            let uart = &self.uart;
            self.prompt
                .redraw(&mut |b| b.iter().for_each(|&x| uart.putc(x)));
        }

        /// Ends an unfinished streamed line so the next output starts on its own
        /// (with the colours reset if the line may have set some).
        fn close_line(&mut self) {
            if self.open_line.take().is_some() {
                if self.partial.as_bytes().contains(&0x1b) {
                    let _ = self.uart.write_str(SGR_RESET);
                }
                let _ = self.uart.write_str("\n");
            }
        }
    }

    static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

    /// SGR reset: ends a line that set colours, so they do not leak into the next.
    const SGR_RESET: &str = "\x1b[0m";

    /// Takes over the console UART, with its receive interrupt on.
    pub fn init(uart: crate::firmware::Uart) {
        let uart = HostUart::new(uart);
        uart.enable_rx_interrupt();
        *CONSOLE.lock() = Some(Console {
            uart,
            open_line: None,
            partial: super::LineBuffer::new(),
            partial_owner: None,
            prompt: super::PromptLine::new(),
        });
    }

    pub fn print(args: core::fmt::Arguments) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.erase_prompt();
            c.close_line();
            let mut w = Tracked {
                uart: &mut c.uart,
                last: 0,
            };
            let _ = w.write_fmt(args);
            if w.last == b'\n' {
                c.redraw_prompt();
            } else {
                c.prompt.clear();
            }
        }
    }

    /// The shell's echo of a typed key, written as it is; `line` is the shell's
    /// line as the screen shows it afterwards (the prompt and the text typed, the
    /// cursor that many cells before its end), `None` once Enter ended it.
    pub fn shell_echo(echo: &[u8], line: Option<(&[u8], usize)>) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.close_line();
            echo.iter().for_each(|&b| c.uart.putc(b));
            match line {
                Some((text, back)) => c.prompt.set(text, back),
                None => c.prompt.clear(),
            }
        }
    }

    /// Takes the shell's line off the screen for good (the keyboard left the shell).
    pub fn shell_hide() {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.erase_prompt();
            c.prompt.clear();
        }
    }

    /// Prints the last words of a machine that is ending: even when the console is
    /// held (the CPU that fails may hold it itself, mid-print), after a bounded wait.
    pub fn print_emergency(args: core::fmt::Arguments) {
        let mut guard = None;
        for _ in 0..10_000_000 {
            if let Some(g) = CONSOLE.try_lock() {
                guard = Some(g);
                break;
            }
            core::hint::spin_loop();
        }
        let mut guard = guard.unwrap_or_else(|| {
            // SAFETY: the machine ends after this print; whoever holds the console
            // never gets to use it again in a way that matters.
            unsafe { CONSOLE.force_unlock() };
            CONSOLE.lock()
        });
        if let Some(c) = guard.as_mut() {
            c.erase_prompt();
            c.prompt.clear();
            c.close_line();
            let _ = c.uart.write_fmt(args);
        }
    }

    /// Reads every byte waiting on the console UART (up to `buf.len()`): how many.
    /// The console lock is released before the caller routes the bytes, since
    /// routing takes VM device locks, which are held while VMs print.
    pub fn read_input(buf: &mut [u8]) -> usize {
        let mut n = 0;
        if let Some(c) = CONSOLE.lock().as_mut() {
            while n < buf.len() {
                let Some(b) = c.uart.getc() else { break };
                buf[n] = b;
                n += 1;
            }
        }
        n
    }

    /// One complete line of a VM, prefixed with its name: what a [`super::Sanitizer`]
    /// let through (no control characters but tab, no escape sequences but SGR),
    /// with the colours reset at its end if it set some.
    pub fn vm_line(name: &str, line: &[u8]) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.erase_prompt();
            c.close_line();
            let _ = write!(c.uart, "[{name}] ");
            for &b in line {
                c.uart.putc(b);
            }
            if line.contains(&0x1b) {
                let _ = c.uart.write_str(SGR_RESET);
            }
            let _ = c.uart.write_str("\n");
            c.redraw_prompt();
        }
    }

    /// Output of the VM that has the keyboard, shown as it comes (prompts and echo
    /// included, escape sequences passed through; carriage returns dropped, so the
    /// name stays) with its name at each line start. `id` (the VM's id) tells whose
    /// line is open.
    pub fn vm_stream(id: u32, name: &str, bytes: &[u8]) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            // (The shell's line is not on screen while a VM has the keyboard; if it
            // were, it would go.)
            c.erase_prompt();
            c.prompt.clear();
            for &b in bytes {
                if b == b'\r' {
                    continue;
                }
                // The line end of a line other output cut: it is on screen whole.
                if b == b'\n' && c.open_line != Some(id) && c.partial_owner == Some(id) {
                    c.partial.take();
                    continue;
                }
                if c.open_line != Some(id) {
                    c.close_line();
                    let _ = write!(c.uart, "[{name}] ");
                    c.open_line = Some(id);
                    if c.partial_owner == Some(id) {
                        for &p in c.partial.as_bytes() {
                            c.uart.putc(p);
                        }
                    } else {
                        c.partial.take();
                        c.partial_owner = Some(id);
                    }
                }
                if b == b'\n' {
                    c.close_line();
                    c.partial.take();
                } else {
                    c.uart.putc(b);
                    // A full buffer starts over: only the line's tail is drawn again.
                    c.partial.push_byte(b);
                }
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
mod output {
    pub fn print(_args: core::fmt::Arguments) {}
    pub fn print_emergency(_args: core::fmt::Arguments) {}
    pub fn vm_line(_name: &str, _line: &[u8]) {}
    pub fn vm_stream(_id: u32, _name: &str, _bytes: &[u8]) {}
    pub fn shell_echo(_echo: &[u8], _line: Option<(&[u8], usize)>) {}
    pub fn shell_hide() {}
    /// No console input on the host.
    pub fn read_input(_buf: &mut [u8]) -> usize {
        0
    }
}

#[cfg(target_os = "none")]
pub use output::init;
pub use output::{print_emergency, read_input, shell_echo, shell_hide, vm_line, vm_stream};

pub fn print(args: fmt::Arguments) {
    output::print(args)
}

/// The level set at run time (the shell's `log`); `u8::MAX`: the board config's.
static LEVEL: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(u8::MAX);

/// Does the hypervisor show messages of `level` (the board config's `log`, or what
/// the shell's `log` set since)?
pub fn enabled(level: crate::spec::LogLevel) -> bool {
    use crate::spec::LogLevel as L;
    let now = match LEVEL.load(core::sync::atomic::Ordering::Relaxed) {
        0 => L::Error,
        1 => L::Warn,
        2 => L::Info,
        3 => L::Debug,
        4 => L::Trace,
        _ => crate::spec::BUILD.log,
    };
    level <= now
}

/// Sets the level of messages shown from now on (the shell's `log`).
pub fn set_level(level: crate::spec::LogLevel) {
    use crate::spec::LogLevel as L;
    let v = match level {
        L::Error => 0,
        L::Warn => 1,
        L::Info => 2,
        L::Debug => 3,
        L::Trace => 4,
    };
    LEVEL.store(v, core::sync::atomic::Ordering::Relaxed);
}

/// Prints to the hypervisor console if the build's log level is `Info` (the default)
/// or finer: the lifecycle lines (banner, VMs built, powered off, reset, console focus).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::console::enabled($crate::spec::LogLevel::Info) {
            $crate::println!($($arg)*)
        }
    };
}

/// Prints to the hypervisor console if the build's log level is `Warn` or finer.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        if $crate::console::enabled($crate::spec::LogLevel::Warn) {
            $crate::println!($($arg)*)
        }
    };
}

/// Prints to the hypervisor console if the build's log level is `Debug` or finer.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::console::enabled($crate::spec::LogLevel::Debug) {
            $crate::println!($($arg)*)
        }
    };
}

/// Prints to the hypervisor console whatever the log level: errors (a VM stopped by a
/// fault or not started, hypervisor bugs) and the final tally of how the VMs ended.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    use alloc::vec::Vec;

    /// `input` through a Sanitizer into a LineBuffer: the complete lines and the rest.
    fn filter(input: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut sanitizer = Sanitizer::new();
        let mut lb = LineBuffer::new();
        let mut lines = Vec::new();
        for &b in input {
            sanitizer.push(b, &mut |piece| {
                lb.push(piece, &mut |l| lines.push(l.to_vec()))
            });
        }
        (lines, lb.take().to_vec())
    }

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        filter(input).0
    }

    #[test]
    fn splits_lines_and_drops_cr() {
        assert_eq!(
            lines(b"ok: a\r\nok: b\n"),
            [b"ok: a".to_vec(), b"ok: b".to_vec()]
        );
        assert_eq!(filter(b">> ").1, b">> ", "a prompt waits for its line end");
    }

    #[test]
    fn colours_pass_as_sgr_sequences() {
        assert_eq!(
            lines(b"a \x1b[1;31mred\x1b[0m b\n"),
            [b"a \x1b[1;31mred\x1b[0m b".to_vec()]
        );
        assert_eq!(
            lines(b"\x1b[38;5;208mo\x1b[38:2:255:0:0mt\x1b[m\n"),
            [b"\x1b[38;5;208mo\x1b[38:2:255:0:0mt\x1b[0m".to_vec()],
            "256 colours, sub-parameters, and the empty reset (as 0)"
        );
    }

    #[test]
    fn cursor_movement_erasing_and_modes_are_dropped() {
        assert_eq!(
            lines(b"\x1b[2J\x1b[H\x1b[5A\x1b[10;1Hx\x1b[2K\x1b[?25l\x1b[?1049hy\x1b7\x1b8\x1bcz\n"),
            [b"xyz".to_vec()]
        );
        assert_eq!(
            lines(b"\x1b[>4;2mk\x1b[1 mj\n"),
            [b"kj".to_vec()],
            "an `m` with a private marker or an intermediate is not SGR"
        );
    }

    #[test]
    fn strings_are_dropped_whole() {
        assert_eq!(
            lines(b"\x1b]0;title\x07a\x1b]2;t\x1b\\b\x1bP1$r\x1b\\c\x1b_apc\x1b\\d\n"),
            [b"abcd".to_vec()],
            "OSC (BEL or ST), DCS and APC"
        );
    }

    #[test]
    fn an_endless_string_is_dropped_without_growing() {
        let mut input = b"\x1b]0;".to_vec();
        input.resize(input.len() + 20_000, b'a');
        input.extend_from_slice(b"\x07ok\n");
        assert_eq!(lines(&input), [b"ok".to_vec()]);
        assert!(
            core::mem::size_of::<Sanitizer>() < 2048,
            "a fixed-size parser"
        );
    }

    #[test]
    fn control_characters_but_tab_and_line_feed_are_dropped() {
        assert_eq!(lines(b"\x07\x08a\tb\x0c\x0b\x00\x7f\n"), [b"a\tb".to_vec()]);
        // No carriage return: a VM cannot go back over its name and start a line.
        assert_eq!(
            lines(b"junk\rhv: VM 1 (vm1) powered off\n"),
            [b"junkhv: VM 1 (vm1) powered off".to_vec()]
        );
    }

    #[test]
    fn utf8_passes_and_c1_controls_do_not() {
        assert_eq!(lines("é ✓\n".as_bytes()), ["é ✓".as_bytes().to_vec()]);
        assert_eq!(
            lines(b"a\xc2\x9b2Jb\n"),
            [b"a2Jb".to_vec()],
            "U+009B (CSI as a C1 control) is dropped, what follows it is text"
        );
        assert_eq!(
            lines(b"a\x9b2Jb\n"),
            [b"a2Jb".to_vec()],
            "a raw 0x9b (no UTF-8) starts no sequence either"
        );
    }

    #[test]
    fn long_lines_are_flushed_in_pieces() {
        let mut input = Vec::new();
        input.resize(LINE_MAX * 2 + 3, b'x');
        let (lines, rest) = filter(&input);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == LINE_MAX));
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn a_long_line_is_not_cut_inside_a_sequence_or_character() {
        let mut input = Vec::new();
        input.resize(LINE_MAX - 3, b'x');
        input.extend_from_slice(b"\x1b[31mr");
        let (lines, rest) = filter(&input);
        assert_eq!(lines, [input[..LINE_MAX - 3].to_vec()]);
        assert_eq!(rest, b"\x1b[31mr");
        let mut input = Vec::new();
        input.resize(LINE_MAX - 1, b'x');
        input.extend_from_slice("é".as_bytes());
        let (lines, rest) = filter(&input);
        assert_eq!(lines[0].len(), LINE_MAX - 1);
        assert_eq!(rest, "é".as_bytes());
    }

    #[test]
    fn the_longest_sgr_sequence_fits() {
        let mut input = b"\x1b[".to_vec();
        for i in 0..40 {
            if i > 0 {
                input.push(b';');
            }
            input.extend_from_slice(b"65535");
        }
        input.extend_from_slice(b"mz\n");
        let got = lines(&input);
        assert_eq!(got.len(), 1);
        assert!(got[0].ends_with(b"z"), "text after it still comes");
        assert!(
            got[0] == b"z" || (got[0].starts_with(b"\x1b[65535;") && got[0].len() <= SGR_MAX + 1),
            "dropped (too many numbers) or written again whole: {:?}",
            got[0]
        );
    }

    #[test]
    fn the_shell_line_is_erased_and_drawn_again_with_its_cursor() {
        let drawn = |p: &PromptLine| {
            let mut out = Vec::new();
            p.erase(&mut |b| out.extend_from_slice(b));
            out.extend_from_slice(b"[vm1] a line\n");
            p.redraw(&mut |b| out.extend_from_slice(b));
            out
        };
        let mut p = PromptLine::new();
        assert_eq!(drawn(&p), b"[vm1] a line\n", "no shell line on screen");
        p.set(b"hv> vm lsit", 2);
        assert!(p.shown());
        assert_eq!(
            drawn(&p),
            b"\r\x1b[K[vm1] a line\nhv> vm lsit\x08\x08",
            "erased, then drawn again with the cursor 2 cells before the end"
        );
        p.clear();
        assert_eq!(drawn(&p), b"[vm1] a line\n", "Enter ended it");
        p.set(&[b'x'; 300], 1000);
        let out = drawn(&p);
        assert_eq!(out.iter().filter(|&&b| b == b'x').count(), LINE_MAX);
        assert_eq!(out.iter().filter(|&&b| b == 0x08).count(), LINE_MAX);
    }

    #[test]
    fn streamed_bytes_keep_the_line_tail() {
        let mut lb = LineBuffer::new();
        for _ in 0..LINE_MAX + 2 {
            lb.push_byte(b'y');
        }
        assert_eq!(lb.as_bytes().len(), 2);
    }
}
