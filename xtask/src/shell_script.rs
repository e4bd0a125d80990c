//! A script for the hypervisor shell, typed on QEMU's console as the output allows
//! (never by timing): `cargo xtask run --script FILE` and the shell scenarios.
//!
//! The format, one item a line:
//! - `# ...`: a comment; an empty line is skipped;
//! - `#wait TEXT`: wait until the console shows TEXT (after what the last `#wait`
//!   found, and after the prompt the last command was typed at);
//! - `#seen TEXT`: wait until the console has shown TEXT at any time (for what may
//!   come before or after the commands, such as another VM finishing);
//! - `#shell`: move the keyboard to the shell again, as before the first command
//!   (after `reboot`: the machine starts over with the keyboard at its first VM);
//! - anything else: a shell command, typed once the shell shows its next prompt.
//!
//! Before the first command the keyboard is moved to the shell: Ctrl-\ once the
//! hypervisor said where console input goes, again after each such line until it
//! says the shell has it.

use anyhow::{bail, Result};

/// The shell's prompt.
pub const PROMPT: &str = "hv> ";
/// The hypervisor's line when it moves the keyboard (to a VM or to the shell).
const INPUT_GOES: &str = "hv: console input goes to ";
/// ... to the shell.
const TO_SHELL: &str = "hv: console input goes to the hypervisor shell";
/// Ctrl-\.
const SWITCH_KEY: u8 = 0x1c;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Type(String),
    Wait(String),
    Seen(String),
    /// Ctrl-\ until the shell has the keyboard again (after what was found last).
    Shell,
}

/// A parsed script.
pub fn parse(text: &str) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        let wait = |what: &str, word: &str| -> Result<String> {
            let what = what.trim();
            if what.is_empty() {
                bail!("line {}: `{word}` needs the text to wait for", n + 1);
            }
            Ok(what.to_string())
        };
        if let Some(what) = t.strip_prefix("#wait") {
            steps.push(Step::Wait(wait(what, "#wait")?));
        } else if let Some(what) = t.strip_prefix("#seen") {
            steps.push(Step::Seen(wait(what, "#seen")?));
        } else if t == "#shell" {
            steps.push(Step::Shell);
        } else if t.is_empty() || t.starts_with('#') {
            continue;
        } else {
            steps.push(Step::Type(t.to_string()));
        }
    }
    Ok(steps)
}

/// Types a script as the console output allows: fed the whole output so far, it
/// says what to type next.
pub struct Typist {
    steps: Vec<Step>,
    next: usize,
    /// In the shell already.
    in_shell: bool,
    /// Output position after the last "console input goes to" line answered.
    switch_at: usize,
    /// Ctrl-\ typed, its answer not seen yet.
    switch_pending: bool,
    /// Output position after the last prompt a command was typed at.
    prompt_at: usize,
    /// Output position after what the last `#wait` found.
    wait_at: usize,
}

impl Typist {
    pub fn new(steps: Vec<Step>) -> Self {
        Self {
            steps,
            next: 0,
            in_shell: false,
            switch_at: 0,
            switch_pending: false,
            prompt_at: 0,
            wait_at: 0,
        }
    }

    /// What the script waits for now (for a failure message).
    pub fn waiting_for(&self) -> Option<String> {
        if !self.in_shell {
            return Some(String::from("the hypervisor shell to take the keyboard"));
        }
        match self.steps.get(self.next)? {
            Step::Type(l) => Some(format!("a prompt to type `{l}`")),
            Step::Wait(w) | Step::Seen(w) => Some(format!("`{w}`")),
            Step::Shell => Some(String::from("the hypervisor shell to take the keyboard")),
        }
    }

    /// Given the output so far, the bytes to type now (if any).
    pub fn poll(&mut self, out: &[u8]) -> Option<Vec<u8>> {
        if !self.in_shell {
            return self.enter_shell(out);
        }
        loop {
            match self.steps.get(self.next)? {
                Step::Wait(w) => {
                    let from = self.wait_at.max(self.prompt_at);
                    let at = find(out, from, w.as_bytes())?;
                    self.wait_at = at + w.len();
                    self.next += 1;
                }
                Step::Seen(w) => {
                    find(out, 0, w.as_bytes())?;
                    self.next += 1;
                }
                Step::Shell => {
                    self.next += 1;
                    self.in_shell = false;
                    self.switch_pending = false;
                    self.switch_at = self.wait_at.max(self.prompt_at);
                    return self.enter_shell(out);
                }
                Step::Type(line) => {
                    let at = find(out, self.prompt_at, PROMPT.as_bytes())?;
                    self.prompt_at = at + PROMPT.len();
                    let mut bytes = line.clone().into_bytes();
                    bytes.push(b'\r');
                    self.next += 1;
                    return Some(bytes);
                }
            }
        }
    }

    fn enter_shell(&mut self, out: &[u8]) -> Option<Vec<u8>> {
        let at = find(out, self.switch_at, INPUT_GOES.as_bytes())?;
        let line_end = out[at..].iter().position(|&b| b == b'\n')? + at;
        self.switch_at = line_end;
        self.switch_pending = false;
        if out[at..].starts_with(TO_SHELL.as_bytes()) {
            self.in_shell = true;
            self.prompt_at = line_end;
            self.wait_at = line_end;
            return self.poll(out);
        }
        self.switch_pending = true;
        Some(vec![SWITCH_KEY])
    }
}

/// Where `needle` first occurs in `hay` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = hay.get(from..)?;
    rest.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_waits_and_comments() {
        let s = parse("# a comment\n\nvm list\n#wait [vm2] 9 passed\n  mem  \n").unwrap();
        assert_eq!(
            s,
            [
                Step::Type("vm list".into()),
                Step::Wait("[vm2] 9 passed".into()),
                Step::Type("mem".into())
            ]
        );
        assert!(parse("#wait\n").unwrap_err().to_string().contains("line 1"));
        assert_eq!(parse("#seen x y\n").unwrap(), [Step::Seen("x y".into())]);
    }

    #[test]
    fn types_only_what_the_output_allows() {
        let mut t = Typist::new(parse("vm stop 2\n#wait stopped\nmem\n").unwrap());
        let mut out = b"hv: VM 1 (vm1) ...\n".to_vec();
        assert_eq!(
            t.poll(&out),
            None,
            "nothing before the hypervisor says where input goes"
        );
        out.extend_from_slice(b"hv: console input goes to VM 1 (vm1); Ctrl-\\ switches\n");
        assert_eq!(t.poll(&out), Some(vec![SWITCH_KEY]));
        assert_eq!(t.poll(&out), None, "one Ctrl-\\ per answer");
        out.extend_from_slice(b"hv: console input goes to VM 2 (vm2)\n");
        assert_eq!(t.poll(&out), Some(vec![SWITCH_KEY]));
        out.extend_from_slice(b"hv: console input goes to the hypervisor shell (`help`)\n");
        assert_eq!(t.poll(&out), None, "no prompt yet");
        out.extend_from_slice(b"hv> ");
        assert_eq!(t.poll(&out), Some(b"vm stop 2\r".to_vec()));
        assert_eq!(t.poll(&out), None);
        out.extend_from_slice(b"vm stop 2\r\nhv> ");
        assert_eq!(
            t.poll(&out),
            None,
            "waits for `stopped` before the next command"
        );
        out.extend_from_slice(b"hv: VM 2 (vm2) stopped from the shell\n");
        assert_eq!(t.poll(&out), Some(b"mem\r".to_vec()));
        assert_eq!(t.waiting_for(), None, "every step done");
        assert_eq!(t.poll(&out), None);
    }

    #[test]
    fn seen_finds_text_from_the_start() {
        let mut t = Typist::new(parse("mem\n#seen vm2 off\n#wait vm2 off\nmem\n").unwrap());
        let mut out = b"vm2 off\nhv: console input goes to the hypervisor shell\nhv> ".to_vec();
        assert_eq!(t.poll(&out), Some(b"mem\r".to_vec()));
        out.extend_from_slice(b"mem\r\nhv> ");
        assert_eq!(
            t.poll(&out),
            None,
            "`#seen` passes, `#wait` wants a new one"
        );
        out.extend_from_slice(b"vm2 off\n");
        assert_eq!(t.poll(&out), Some(b"mem\r".to_vec()));
    }

    #[test]
    fn a_wait_finds_text_after_the_last_wait() {
        let mut t = Typist::new(parse("#wait boot\n#wait boot\nmem\n").unwrap());
        let mut out = b"hv: console input goes to the hypervisor shell\nhv> boot 1\n".to_vec();
        assert_eq!(t.poll(&out), None, "the second `boot` is not there yet");
        assert_eq!(t.waiting_for().unwrap(), "`boot`");
        out.extend_from_slice(b"boot 2\n");
        assert_eq!(t.poll(&out), Some(b"mem\r".to_vec()));
    }

    #[test]
    fn after_a_reboot_the_keyboard_is_moved_to_the_shell_again() {
        let s = parse("reboot\n#wait hv: hypervisor\n#shell\nvm list\n").unwrap();
        assert_eq!(s[2], Step::Shell);
        let mut t = Typist::new(s);
        let mut out = b"hv: console input goes to the hypervisor shell\nhv> ".to_vec();
        assert_eq!(t.poll(&out), Some(b"reboot\r".to_vec()));
        out.extend_from_slice(b"reboot\r\nhv: rebooting\nhv> ");
        assert_eq!(
            t.poll(&out),
            None,
            "the old prompt is not the new machine's"
        );
        out.extend_from_slice(b"hv: hypervisor 0.1.0\n");
        assert_eq!(t.poll(&out), None, "nothing says where input goes yet");
        assert_eq!(
            t.waiting_for().unwrap(),
            "the hypervisor shell to take the keyboard"
        );
        out.extend_from_slice(b"hv: console input goes to VM 1 (vm1); Ctrl-\\ switches\n");
        assert_eq!(t.poll(&out), Some(vec![SWITCH_KEY]));
        out.extend_from_slice(b"hv: console input goes to the hypervisor shell (`help`)\n");
        assert_eq!(t.poll(&out), None, "no prompt yet");
        out.extend_from_slice(b"hv> ");
        assert_eq!(t.poll(&out), Some(b"vm list\r".to_vec()));
    }
}
