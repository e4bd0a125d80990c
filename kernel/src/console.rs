//! The hypervisor console. One host UART is shared by the hypervisor and every VM:
//! VM output is collected per VM into lines and each complete line is written as
//! `[<vm name>] <line>` under one lock, so lines of different VMs never interleave.

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

    static CONSOLE: Mutex<Option<HostUart>> = Mutex::new(None);

    pub fn init(uart: crate::platform::Uart) {
        *CONSOLE.lock() = Some(HostUart::new(uart));
    }

    pub fn print(args: core::fmt::Arguments) {
        if let Some(u) = CONSOLE.lock().as_mut() {
            let _ = u.write_fmt(args);
        }
    }

    pub fn vm_line(name: &str, line: &[u8]) {
        if let Some(u) = CONSOLE.lock().as_mut() {
            let _ = write!(u, "[{name}] ");
            for &b in line {
                // Control characters other than tab would let a guest forge lines.
                u.putc(if b == b'\t' || (0x20..0x7f).contains(&b) {
                    b
                } else {
                    b'?'
                });
            }
            let _ = u.write_str("\n");
        }
    }
}

#[cfg(not(target_os = "none"))]
mod output {
    pub fn print(_args: core::fmt::Arguments) {}
    pub fn vm_line(_name: &str, _line: &[u8]) {}
}

#[cfg(target_os = "none")]
pub use output::init;
pub use output::vm_line;

pub fn print(args: fmt::Arguments) {
    output::print(args)
}

/// Prints to the hypervisor console.
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
