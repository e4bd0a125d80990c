//! `cargo xtask run`: build, then boot the board in QEMU with the console on the
//! terminal. The exit status is QEMU's: 0 only when every VM stopped cleanly. VMs
//! with `image_location = "fs"` go on a FAT32 disk image attached as a virtio disk
//! (the same writer and layout as the card of `cargo xtask image`).
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::build::{build_plan, load_plan, BuildOptions};
use crate::config::vm::ImageLocation;
use crate::host_tools::ensure_qemu;
use crate::qemu::{
    qemu_args, qemu_binary, run_interactive, Interactive, Outcome, ALL_STOPPED, REBOOTING,
};
use crate::workspace::Workspace;

pub fn run(
    ws: &Workspace,
    opts: &BuildOptions,
    timeout: Option<u64>,
    script: Option<&std::path::Path>,
) -> Result<()> {
    let steps = match script {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the script {}", f.display()))?;
            Some(crate::shell_script::parse(&text).with_context(|| format!("{}", f.display()))?)
        }
        None => None,
    };
    let plan = load_plan(ws, opts)?;
    let Some(q) = plan.board.qemu.clone() else {
        bail!(
            "board {} has no [qemu] section: it is a real board, not one QEMU can run \
             (build it with `cargo xtask build` and boot hypervisor.bin on the board)",
            plan.board.name
        );
    };
    ensure_qemu(plan.board.arch)?;
    let board = plan.board.clone();
    let program = qemu_binary(&board);
    let fs_vms = plan.vms.iter().any(|v| v.location == ImageLocation::Fs);
    let args = if q.boots_image() {
        // Firmware boots the card image of `cargo xtask image` from a virtio disk.
        crate::image::qemu::prepare(ws, plan, opts, &q)?
    } else if fs_vms {
        // The fs VMs go on a FAT32 disk the hypervisor reads itself.
        let run = crate::image::run_disk(ws, plan, &[])?;
        let mut args = qemu_args(&board, &q, &run.bin);
        args.extend(crate::image::qemu::disk_args(&run.disk));
        args
    } else {
        let out = build_plan(ws, plan, true)?;
        qemu_args(&board, &q, &out.qemu_kernel()?)
    };
    println!("xtask: {program} {}", args.join(" "));
    if let Some(steps) = steps {
        return run_script(ws, &program, &args, timeout, steps);
    }
    let run = run_interactive(&program, &args, timeout.map(Duration::from_secs))?;
    verdict(&run)?;
    println!("xtask: QEMU exited with status 0");
    Ok(())
}

/// `run --script`: the console on this terminal, the script typed on it.
fn run_script(
    ws: &Workspace,
    program: &str,
    args: &[String],
    timeout: Option<u64>,
    steps: Vec<crate::shell_script::Step>,
) -> Result<()> {
    let log = super::test::log_path(ws, "run-script")?;
    let mut typist = crate::shell_script::Typist::new(steps);
    let mut f = |out: &[u8]| typist.poll(out);
    let (outcome, text, _) = crate::qemu::run_scripted(
        program,
        args,
        timeout.map(Duration::from_secs),
        &log,
        true,
        Some(&mut f),
    )?;
    if let Some(what) = typist.waiting_for() {
        println!("xtask: the script did not finish: it waited for {what}");
    }
    let run = Interactive {
        outcome,
        all_stopped: text.contains(ALL_STOPPED),
        rebooted: text.contains(REBOOTING),
    };
    verdict(&run)?;
    println!("xtask: QEMU exited with status 0");
    Ok(())
}

/// Whether an interactive run succeeded: QEMU exited 0 *and* the hypervisor said every
/// VM stopped (QEMU also exits 0 when it is quit from its monitor, Ctrl-A x).
pub fn verdict(run: &Interactive) -> Result<()> {
    match run.outcome {
        Outcome::Exited(s) if s.success() && run.all_stopped => Ok(()),
        Outcome::Exited(s) if s.success() && run.rebooted => bail!(
            "the hypervisor shell's `reboot` ended QEMU: this board runs it with -no-reboot \
             (with on_last_stop = \"shell\" in the board file, QEMU runs without it and a \
             reboot starts the machine over)"
        ),
        Outcome::Exited(s) if s.success() => bail!(
            "QEMU was ended before every VM stopped (quit from its monitor, Ctrl-A x, or \
             killed); no `{ALL_STOPPED}` line from the hypervisor"
        ),
        Outcome::Exited(s) => bail!("QEMU exited with {s}"),
        Outcome::TimedOut(secs) => {
            bail!("timeout: QEMU was still running after {secs} s; killed it")
        }
        Outcome::Interrupted(sig) => {
            bail!("interrupted by signal {sig}: QEMU was stopped")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn run(code: i32, all_stopped: bool) -> Interactive {
        Interactive {
            outcome: Outcome::Exited(std::process::ExitStatus::from_raw(code << 8)),
            all_stopped,
            rebooted: false,
        }
    }

    #[test]
    fn only_a_clean_end_with_every_vm_stopped_succeeds() {
        assert!(verdict(&run(0, true)).is_ok());
        let quit = verdict(&run(0, false)).unwrap_err().to_string();
        assert!(quit.contains("Ctrl-A x"), "{quit}");
        let failed = verdict(&run(1, true)).unwrap_err().to_string();
        assert!(failed.contains("QEMU exited with"), "{failed}");
        let rebooted = Interactive {
            rebooted: true,
            ..run(0, false)
        };
        let rebooted = verdict(&rebooted).unwrap_err().to_string();
        assert!(rebooted.contains("-no-reboot"), "{rebooted}");
        let sig = Interactive {
            outcome: Outcome::Interrupted(15),
            all_stopped: false,
            rebooted: false,
        };
        assert!(verdict(&sig).unwrap_err().to_string().contains("signal 15"));
        let late = Interactive {
            outcome: Outcome::TimedOut(3),
            all_stopped: false,
            rebooted: false,
        };
        assert!(verdict(&late).unwrap_err().to_string().contains("timeout"));
    }
}
