//! The hypervisor console. One host UART is shared by the hypervisor and every VM:
//! VM output is collected per VM into lines and each complete line is written as
//! `[<vm name>] <line>` under one lock, so lines of different VMs never interleave.
//! The VM that has the keyboard is shown as it types (prompts, echo); any other
//! output first ends its unfinished line, which is drawn again in full (after its
//! prefix) when that VM continues it, so its last appearance is always whole.

use core::fmt;

/// Longest line kept before it is flushed without a newline.
pub const LINE_MAX: usize = 240;

/// Collects a VM's output bytes into lines.
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

    /// Adds one byte; returns a complete line (without its newline) when `byte` ends
    /// one or the buffer is full. `\r` is dropped.
    pub fn push(&mut self, byte: u8) -> Option<&[u8]> {
        match byte {
            b'\r' => None,
            b'\n' => Some(self.take()),
            _ => {
                self.buf[self.len] = byte;
                self.len += 1;
                (self.len == LINE_MAX).then(|| self.take())
            }
        }
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
    }

    impl Console {
        /// Ends an unfinished streamed line so the next output starts on its own.
        fn close_line(&mut self) {
            if self.open_line.take().is_some() {
                let _ = self.uart.write_str("\n");
            }
        }
    }

    static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

    /// Takes over the console UART, with its receive interrupt on.
    pub fn init(uart: crate::firmware::Uart) {
        let uart = HostUart::new(uart);
        uart.enable_rx_interrupt();
        *CONSOLE.lock() = Some(Console {
            uart,
            open_line: None,
            partial: super::LineBuffer::new(),
            partial_owner: None,
        });
    }

    pub fn print(args: core::fmt::Arguments) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.close_line();
            let _ = c.uart.write_fmt(args);
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

    /// One complete line of a VM, prefixed with its name. Control characters other
    /// than tab are shown as `?`: a guest must not be able to forge hypervisor lines.
    pub fn vm_line(name: &str, line: &[u8]) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            c.close_line();
            let _ = write!(c.uart, "[{name}] ");
            for &b in line {
                c.uart.putc(if b == b'\t' || (0x20..0x7f).contains(&b) {
                    b
                } else {
                    b'?'
                });
            }
            let _ = c.uart.write_str("\n");
        }
    }

    /// Output of the VM that has the keyboard, shown as it comes (prompts and echo
    /// included, escape sequences passed through) with its name at each line start.
    /// `id` (the VM's id) tells whose line is open.
    pub fn vm_stream(id: u32, name: &str, bytes: &[u8]) {
        if let Some(c) = CONSOLE.lock().as_mut() {
            for &b in bytes {
                if b == b'\r' {
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
                } else {
                    c.uart.putc(b);
                }
                // A full buffer starts over: only the line's tail is drawn again.
                let _ = c.partial.push(b);
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
    /// No console input on the host.
    pub fn read_input(_buf: &mut [u8]) -> usize {
        0
    }
}

#[cfg(target_os = "none")]
pub use output::init;
pub use output::{print_emergency, read_input, vm_line, vm_stream};

pub fn print(args: fmt::Arguments) {
    output::print(args)
}

/// Does this build show messages of `level` (the board config's `log`)?
pub fn enabled(level: crate::spec::LogLevel) -> bool {
    level <= crate::spec::BUILD.log
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

    #[test]
    fn splits_lines_and_drops_cr() {
        let mut lb = LineBuffer::new();
        let mut lines = alloc::vec::Vec::new();
        for &b in b"ok: a\r\nok: b\n" {
            if let Some(l) = lb.push(b) {
                lines.push(l.to_vec());
            }
        }
        assert_eq!(lines, [b"ok: a".to_vec(), b"ok: b".to_vec()]);
    }

    #[test]
    fn long_lines_are_flushed_in_pieces() {
        let mut lb = LineBuffer::new();
        let mut flushed = 0;
        for _ in 0..LINE_MAX * 2 + 3 {
            if let Some(l) = lb.push(b'x') {
                assert_eq!(l.len(), LINE_MAX);
                flushed += 1;
            }
        }
        assert_eq!(flushed, 2);
        assert_eq!(lb.take().len(), 3);
    }
}
