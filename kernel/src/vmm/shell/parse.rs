//! The shell's command language: one line -> one [`Command`], or a message saying
//! what is wrong with it. Pure (no machine, no console): tested on the host.

use alloc::format;
use alloc::string::{String, ToString};

use crate::spec::LogLevel;

/// One command of the hypervisor shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// An empty line.
    Nothing,
    Help,
    VmList,
    VmShow(u32),
    VmStop(u32),
    VmStart(u32),
    VmRestart(u32),
    VmDelete(u32),
    /// A VM config file, read through the file source (the card's files).
    VmCreate(String),
    VmFocus(u32),
    Log(LogLevel),
    Mem,
    Cpus,
    PowerOff,
    Reboot,
}

/// The commands with their arguments and what they do, for `help`.
pub const HELP: &[(&str, &str)] = &[
    ("help", "this list"),
    (
        "vm list",
        "the VMs: id, name, state, vCPUs and their CPUs, memory, uptime, exits",
    ),
    (
        "vm show ID",
        "one VM: its config, devices, memory map and counters",
    ),
    (
        "vm stop ID",
        "stop a running VM (its vCPUs leave the guest, its devices are reset)",
    ),
    (
        "vm start ID",
        "start a VM that was created or stopped (a stopped VM boots afresh)",
    ),
    (
        "vm restart ID",
        "stop the VM if it runs and boot it afresh: RAM scrubbed, devices and vCPUs as at first boot",
    ),
    (
        "vm delete ID",
        "stop the VM if it runs and free it: RAM, second-stage tables, VMID; its CPUs become free",
    ),
    (
        "vm create PATH",
        "build and start a VM from a config file on the card (checked as `cargo xtask check` does)",
    ),
    ("vm focus ID", "give the keyboard to a VM (Ctrl-\\ comes back)"),
    (
        "log LEVEL",
        "what the hypervisor prints from now on: error, warn, info, debug, trace",
    ),
    ("mem", "host RAM frames (4 KiB) used and free"),
    ("cpus", "which CPU runs which vCPU of which VM"),
    (
        "poweroff",
        "power the machine off (status: whether every VM stopped cleanly)",
    ),
    ("reboot", "restart the machine through its firmware"),
];

/// Longest accepted line, in bytes.
pub const LINE_MAX: usize = 200;

/// Parses one line (words separated by spaces or tabs).
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_ascii_whitespace();
    let Some(first) = words.next() else {
        return Ok(Command::Nothing);
    };
    let cmd = match first {
        "help" | "?" => Command::Help,
        "vm" => return vm(words),
        "log" => {
            let level = words
                .next()
                .ok_or("log: which level? error, warn, info, debug or trace")?;
            Command::Log(log_level(level)?)
        }
        "mem" => Command::Mem,
        "cpus" => Command::Cpus,
        "poweroff" => Command::PowerOff,
        "reboot" => Command::Reboot,
        other => {
            return Err(format!(
                "unknown command `{}` (`help` lists the commands)",
                shown(other)
            ))
        }
    };
    no_more(first, words)?;
    Ok(cmd)
}

fn vm<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<Command, String> {
    let Some(sub) = words.next() else {
        return Err(String::from(
            "vm: what? list, show, stop, start, restart, delete, create or focus",
        ));
    };
    let mut id = |sub: &str| -> Result<u32, String> {
        let w = words
            .next()
            .ok_or_else(|| format!("vm {sub}: which VM? give its id (`vm list`)"))?;
        vm_id(w).map_err(|e| format!("vm {sub}: {e}"))
    };
    let cmd = match sub {
        "list" | "ls" => Command::VmList,
        "show" => Command::VmShow(id(sub)?),
        "stop" => Command::VmStop(id(sub)?),
        "start" => Command::VmStart(id(sub)?),
        "restart" => Command::VmRestart(id(sub)?),
        "delete" | "rm" => Command::VmDelete(id(sub)?),
        "focus" => Command::VmFocus(id(sub)?),
        "create" => {
            let path = words
                .next()
                .ok_or("vm create: which config file? e.g. `vm create vms/vm3.toml`")?;
            Command::VmCreate(path.to_string())
        }
        other => {
            return Err(format!(
            "vm: unknown subcommand `{}` (list, show, stop, start, restart, delete, create, focus)",
            shown(other)
        ))
        }
    };
    if let Some(extra) = words.next() {
        return Err(format!("vm {sub}: unexpected `{}`", shown(extra)));
    }
    Ok(cmd)
}

fn no_more<'a>(cmd: &str, mut words: impl Iterator<Item = &'a str>) -> Result<(), String> {
    match words.next() {
        Some(extra) => Err(format!("{cmd}: unexpected `{}`", shown(extra))),
        None => Ok(()),
    }
}

/// A VM id: decimal (or 0x hex), as `vm list` shows it.
fn vm_id(w: &str) -> Result<u32, String> {
    let parsed = match w.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => w.parse(),
    };
    parsed.map_err(|_| format!("`{}` is not a VM id (a number, see `vm list`)", shown(w)))
}

fn log_level(w: &str) -> Result<LogLevel, String> {
    Ok(match w.to_ascii_lowercase().as_str() {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => {
            return Err(format!(
                "log: unknown level `{}` (error, warn, info, debug, trace)",
                shown(w)
            ))
        }
    })
}

/// A word as a message quotes it: at most 40 characters.
fn shown(w: &str) -> &str {
    match w.char_indices().nth(40) {
        Some((i, _)) => &w[..i],
        None => w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        let cases = [
            ("", Command::Nothing),
            ("   \t ", Command::Nothing),
            ("help", Command::Help),
            ("vm list", Command::VmList),
            ("  vm   ls ", Command::VmList),
            ("vm show 2", Command::VmShow(2)),
            ("vm stop 0x10", Command::VmStop(16)),
            ("vm start 1", Command::VmStart(1)),
            ("vm restart 3", Command::VmRestart(3)),
            ("vm delete 4", Command::VmDelete(4)),
            ("vm rm 4", Command::VmDelete(4)),
            ("vm focus 1", Command::VmFocus(1)),
            (
                "vm create vms/vm3.toml",
                Command::VmCreate("vms/vm3.toml".into()),
            ),
            ("log debug", Command::Log(LogLevel::Debug)),
            ("log Warn", Command::Log(LogLevel::Warn)),
            ("mem", Command::Mem),
            ("cpus", Command::Cpus),
            ("poweroff", Command::PowerOff),
            ("reboot", Command::Reboot),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases = [
            ("vm", "vm: what?"),
            ("vm stop", "vm stop: which VM?"),
            ("vm stop two", "vm stop: `two` is not a VM id"),
            ("vm stop -1", "not a VM id"),
            ("vm stop 99999999999", "not a VM id"),
            ("vm frobnicate 1", "vm: unknown subcommand `frobnicate`"),
            ("vm list 2", "vm list: unexpected `2`"),
            ("vm show 1 2", "vm show: unexpected `2`"),
            ("vm create", "vm create: which config file?"),
            ("log", "log: which level?"),
            ("log loud", "log: unknown level `loud`"),
            ("mem now", "mem: unexpected `now`"),
            ("halt", "unknown command `halt`"),
        ];
        for (line, want) in cases {
            let got = parse(line).unwrap_err();
            assert!(got.contains(want), "{line:?}: {got}");
        }
    }

    #[test]
    fn a_long_word_is_cut_in_messages() {
        let long = "x".repeat(500);
        let e = parse(&long).unwrap_err();
        assert!(e.len() < 100, "{e}");
    }

    #[test]
    fn help_names_every_command() {
        for word in [
            "vm list",
            "vm show",
            "vm stop",
            "vm start",
            "vm restart",
            "vm delete",
            "vm create",
            "vm focus",
            "log",
            "mem",
            "cpus",
            "poweroff",
            "reboot",
        ] {
            assert!(HELP.iter().any(|(c, _)| c.starts_with(word)), "{word}");
            let line = HELP
                .iter()
                .find(|(c, _)| c.starts_with(word))
                .map(|(c, _)| {
                    c.replace("ID", "1")
                        .replace("PATH", "a.toml")
                        .replace("LEVEL", "info")
                })
                .unwrap();
            assert!(parse(&line).is_ok(), "help's `{line}` parses");
        }
    }
}
