//! `cargo xtask run`: build, then boot the board in QEMU with the console on the
//! terminal. The exit status is QEMU's: 0 only when every VM stopped cleanly.
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::build::{build_plan, load_plan, BuildOptions};
use crate::host_tools::ensure_qemu;
use crate::qemu::{qemu_args, qemu_binary, run_interactive, Outcome};
use crate::workspace::Workspace;

pub fn run(ws: &Workspace, opts: &BuildOptions, timeout: Option<u64>) -> Result<()> {
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
    let args = if q.boots_image() {
        // Firmware boots the card image of `cargo xtask image` from a virtio disk.
        crate::image::qemu::prepare(ws, plan, opts, &q)?
    } else {
        let out = build_plan(ws, plan, true)?;
        let bin = out.bin.context("no raw binary was written")?;
        qemu_args(&board, &q, &bin)
    };
    println!("xtask: {program} {}", args.join(" "));
    match run_interactive(&program, &args, timeout.map(Duration::from_secs))? {
        Outcome::Exited(s) if s.success() => {
            println!("xtask: QEMU exited with status 0");
            Ok(())
        }
        Outcome::Exited(s) => bail!("QEMU exited with {s}"),
        Outcome::TimedOut(secs) => {
            bail!("timeout: QEMU was still running after {secs} s; killed it")
        }
    }
}
