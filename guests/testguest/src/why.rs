//! [`Why`]: the reason a check failed, a short text of fixed capacity (the guest has no
//! heap), built with the [`why!`] macro like `format!`.

use core::fmt;

/// Capacity of a reason, in bytes; longer texts are cut. (Small enough that a
/// `Result<(), Why>` stays cheap to return.)
const CAPACITY: usize = 120;

/// Why a check failed.
#[derive(Clone, Copy)]
pub struct Why {
    buf: [u8; CAPACITY],
    len: u8,
}

/// What a check returns.
pub type CheckResult = Result<(), Why>;

impl Why {
    /// Formats `args` into a new reason.
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut why = Self {
            buf: [0; CAPACITY],
            len: 0,
        };
        // Cannot fail: `write_str` below never returns an error.
        let _ = fmt::write(&mut why, args);
        why
    }

    /// The text (cut at a character boundary if it was too long).
    pub fn as_str(&self) -> &str {
        let bytes = &self.buf[..usize::from(self.len)];
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => core::str::from_utf8(&bytes[..err.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl fmt::Write for Why {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = usize::from(self.len);
        let take = s.len().min(CAPACITY - len);
        self.buf[len..len + take].copy_from_slice(&s.as_bytes()[..take]);
        // Fits: `len + take <= CAPACITY`, which is below 256.
        self.len = (len + take) as u8;
        Ok(())
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds a [`Why`] like `format!` builds a string.
macro_rules! why {
    ($($arg:tt)*) => {
        $crate::why::Why::new(format_args!($($arg)*))
    };
}
pub(crate) use why;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_format() {
        assert_eq!(why!("x = {:#x}", 255).as_str(), "x = 0xff");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(CAPACITY);
        let why = why!("{long}");
        assert_eq!(why.as_str().len(), CAPACITY);
        let odd = why!("a{long}");
        assert_eq!(odd.as_str().len(), CAPACITY - 1);
        assert!(odd.as_str().starts_with("aé"));
    }
}
