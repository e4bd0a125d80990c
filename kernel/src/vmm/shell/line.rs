//! The shell's line editor: a pure state machine fed one typed byte at a time. It
//! echoes what the terminal must show (through `out`) and hands back a finished line.
//!
//! Keys: printable ASCII inserts at the cursor; Backspace (DEL or BS) deletes before
//! it; Ctrl-U clears the line; Ctrl-C drops it; left/right move the cursor; up/down
//! walk the history (the last [`HISTORY`] distinct lines); Enter (CR or LF, CR LF
//! counts once) ends the line. Other control bytes and escape sequences are ignored.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::parse::LINE_MAX;

/// Lines kept in the history.
pub const HISTORY: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    /// ESC seen.
    Start,
    /// ESC [ (or ESC O) seen: parameters until a final byte.
    Csi,
}

pub struct LineEditor {
    line: Vec<u8>,
    cursor: usize,
    history: VecDeque<String>,
    /// Position while walking the history (`history.len()`: the line being typed).
    walk: usize,
    /// The line being typed, kept while the history is shown.
    draft: Vec<u8>,
    esc: Esc,
    last_cr: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> Self {
        Self {
            line: Vec::new(),
            cursor: 0,
            history: VecDeque::new(),
            walk: 0,
            draft: Vec::new(),
            esc: Esc::None,
            last_cr: false,
        }
    }

    /// The line typed so far (redrawn after the prompt when other output cut it).
    pub fn current(&self) -> &[u8] {
        &self.line
    }

    /// Where the cursor is in [`LineEditor::current`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Feeds one byte; `out` gets the echo. A finished line comes back (the echo
    /// has ended it with CR LF).
    pub fn feed(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) -> Option<String> {
        let after_cr = core::mem::replace(&mut self.last_cr, false);
        match self.esc {
            Esc::Start => {
                self.esc = if byte == b'[' || byte == b'O' {
                    Esc::Csi
                } else {
                    Esc::None
                };
                return None;
            }
            Esc::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.esc = Esc::None;
                    self.arrow(byte, out);
                }
                return None;
            }
            Esc::None => {}
        }
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\n' && after_cr {
                    return None;
                }
                self.last_cr = byte == b'\r';
                out(b"\r\n");
                return Some(self.finish());
            }
            0x1b => self.esc = Esc::Start,
            0x7f | 0x08 if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
                out(b"\x08");
                self.redraw_tail(out, 1);
            }
            0x15 => self.replace(Vec::new(), out),
            0x03 => {
                out(b"^C\r\n");
                self.line.clear();
                self.cursor = 0;
                self.walk = self.history.len();
                return Some(String::new());
            }
            0x20..=0x7e if self.line.len() < LINE_MAX => {
                self.line.insert(self.cursor, byte);
                self.cursor += 1;
                out(&[byte]);
                self.redraw_tail(out, 0);
            }
            _ => {}
        }
        None
    }

    fn arrow(&mut self, key: u8, out: &mut dyn FnMut(&[u8])) {
        match key {
            b'A' if self.walk > 0 => {
                if self.walk == self.history.len() {
                    self.draft = self.line.clone();
                }
                self.walk -= 1;
                let l = self.history[self.walk].as_bytes().to_vec();
                self.replace(l, out);
            }
            b'B' if self.walk < self.history.len() => {
                self.walk += 1;
                let l = match self.history.get(self.walk) {
                    Some(h) => h.as_bytes().to_vec(),
                    None => core::mem::take(&mut self.draft),
                };
                self.replace(l, out);
            }
            b'C' if self.cursor < self.line.len() => {
                out(&self.line[self.cursor..=self.cursor]);
                self.cursor += 1;
            }
            b'D' if self.cursor > 0 => {
                self.cursor -= 1;
                out(b"\x08");
            }
            _ => {}
        }
    }

    /// Shows `new` instead of the current line, cursor at its end.
    fn replace(&mut self, new: Vec<u8>, out: &mut dyn FnMut(&[u8])) {
        for _ in 0..self.cursor {
            out(b"\x08");
        }
        out(&new);
        out(b"\x1b[K");
        self.cursor = new.len();
        self.line = new;
    }

    /// Writes the line from the cursor on (after an insertion or deletion), clears
    /// `gone` cells after it, and moves back to the cursor.
    fn redraw_tail(&self, out: &mut dyn FnMut(&[u8]), gone: usize) {
        let tail = &self.line[self.cursor..];
        if tail.is_empty() && gone == 0 {
            return;
        }
        out(tail);
        if gone > 0 {
            out(b"\x1b[K");
        }
        for _ in 0..tail.len() {
            out(b"\x08");
        }
    }

    fn finish(&mut self) -> String {
        let bytes = core::mem::take(&mut self.line);
        self.cursor = 0;
        self.draft.clear();
        // Only printable ASCII is ever inserted.
        let line: String = bytes.iter().map(|&b| char::from(b)).collect();
        let trimmed = line.trim();
        if !trimmed.is_empty() && self.history.back().map(String::as_str) != Some(trimmed) {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(String::from(trimmed));
        }
        self.walk = self.history.len();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `keys`: the finished lines and the echo.
    fn typed(ed: &mut LineEditor, keys: &[u8]) -> (Vec<String>, Vec<u8>) {
        let mut lines = Vec::new();
        let mut echo = Vec::new();
        for &k in keys {
            if let Some(l) = ed.feed(k, &mut |b| echo.extend_from_slice(b)) {
                lines.push(l);
            }
        }
        (lines, echo)
    }

    fn lines(keys: &[u8]) -> Vec<String> {
        typed(&mut LineEditor::new(), keys).0
    }

    #[test]
    fn enter_ends_a_line_once_for_cr_lf() {
        assert_eq!(lines(b"vm list\r\nmem\n"), ["vm list", "mem"]);
        assert_eq!(lines(b"a\r\r"), ["a", ""], "two CRs are two lines");
        let (_, echo) = typed(&mut LineEditor::new(), b"ab\r");
        assert_eq!(echo, b"ab\r\n");
    }

    #[test]
    fn backspace_ctrl_u_and_ctrl_c() {
        assert_eq!(lines(b"vm lisx\x7ft\r"), ["vm list"]);
        assert_eq!(
            lines(b"ab\x08\x08\x08c\r"),
            ["c"],
            "backspace at the start does nothing"
        );
        assert_eq!(lines(b"garbage\x15mem\r"), ["mem"]);
        assert_eq!(lines(b"poweroff\x03mem\r"), ["", "mem"]);
    }

    #[test]
    fn cursor_moves_and_inserts_in_the_middle() {
        let mut ed = LineEditor::new();
        let (l, echo) = typed(&mut ed, b"vm lst\x1b[D\x1b[Di\x1b[C\x1b[C\x1b[Cs\r");
        assert_eq!(l, ["vm lists"]);
        // The insertion redraws the tail and moves back over it.
        assert!(echo.windows(4).any(|w| w == b"ist\x08"), "{echo:?}");
    }

    #[test]
    fn history_walks_up_and_down_and_keeps_the_draft() {
        let mut ed = LineEditor::new();
        typed(&mut ed, b"vm list\rmem\rmem\r");
        let (l, _) = typed(&mut ed, b"\x1b[A\x1b[A\r");
        assert_eq!(l, ["vm list"], "repeated lines are kept once");
        let (l, _) = typed(&mut ed, b"cp\x1b[A\x1b[B\x1b[Bus\r");
        assert_eq!(l, ["cpus"], "down past the newest gives the draft back");
        let (l, _) = typed(&mut ed, b"\x1b[B\x1b[B\x1bOA\r");
        assert_eq!(
            l,
            ["cpus"],
            "ESC O A is up too; down at the bottom does nothing"
        );
    }

    #[test]
    fn history_is_bounded() {
        let mut ed = LineEditor::new();
        for i in 0..100 {
            typed(&mut ed, alloc::format!("vm show {i}\r").as_bytes());
        }
        assert_eq!(ed.history.len(), HISTORY);
        let mut keys = Vec::new();
        for _ in 0..200 {
            keys.extend_from_slice(b"\x1b[A");
        }
        keys.push(b'\r');
        let (l, _) = typed(&mut ed, &keys);
        assert_eq!(l, [alloc::format!("vm show {}", 100 - HISTORY)]);
    }

    #[test]
    fn control_bytes_and_long_lines_are_contained() {
        assert_eq!(lines(b"m\x00\x07\x1b[5~e\x1b[1;5Cm\xff\xc3\r"), ["mem"]);
        let mut keys = alloc::vec![b'x'; 1000];
        keys.push(b'\r');
        assert_eq!(lines(&keys)[0].len(), LINE_MAX);
    }
}
