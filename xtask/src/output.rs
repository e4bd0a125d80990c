//! Cleaning captured console output before matching on it: `\r` and terminal escape
//! sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, two-byte `ESC x`).
//! A line erased as a terminal would erase it (`\r ESC [ K`: the hypervisor shell
//! takes its half-typed line off the screen before another line) is dropped.

/// `text` without carriage returns and escape sequences, and without the lines
/// erased by `\r ESC [ K`.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    // Where the current line starts in `out`, and whether the cursor is at its
    // start (a `\r` and nothing since).
    let mut line_start = 0;
    let mut at_cr = false;
    while let Some(c) = chars.next() {
        match c {
            '\r' => at_cr = true,
            '\u{1b}' => {
                if skip_escape(&mut chars) == Some('K') && at_cr {
                    out.truncate(line_start);
                }
            }
            c => {
                at_cr = false;
                out.push(c);
                if c == '\n' {
                    line_start = out.len();
                }
            }
        }
    }
    out
}

/// Skips an escape sequence (after its ESC); a CSI sequence's final byte.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match chars.next() {
        Some('[') => {
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    return Some(c);
                }
            }
        }
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                    chars.next();
                    break;
                }
            }
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_cr_and_escapes() {
        assert_eq!(clean("a\r\nb"), "a\nb");
        assert_eq!(clean("\u{1b}[2J\u{1b}[01;01Hhello\u{1b}[0m"), "hello");
        assert_eq!(clean("x\u{1b}]0;title\u{7}y"), "xy");
        assert_eq!(clean("x\u{1b}]0;t\u{1b}\\y"), "xy");
        assert_eq!(clean("x\u{1b}cy"), "xy");
        assert_eq!(clean("plain [vm1] line"), "plain [vm1] line");
    }

    #[test]
    fn a_line_erased_after_a_carriage_return_is_dropped() {
        assert_eq!(
            clean("x\r\nhv> vm li\r\u{1b}[K[vm1] ok\r\nhv> vm li"),
            "x\n[vm1] ok\nhv> vm li"
        );
        assert_eq!(
            clean("hv> ab\u{1b}[K\r\n"),
            "hv> ab\n",
            "ESC [ K after the cursor moved on erases nothing shown"
        );
    }
}
