//! Cleaning captured console output before matching on it: `\r` and terminal escape
//! sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, two-byte `ESC x`).

/// `text` without carriage returns and escape sequences.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' => skip_escape(&mut chars),
            c => out.push(c),
        }
    }
    out
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
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
}
