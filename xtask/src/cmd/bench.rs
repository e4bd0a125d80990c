//! `cargo xtask bench`: speed measured as ratios taken side by side in one run.
//!
//! `linux-boot` boots the same Linux kernel and initramfs to the same marker line
//! under the hypervisor and directly on QEMU (same machine, CPU model, memory and
//! vCPU count), alternating the two, several runs each, and prints the medians and
//! their ratio. Wall-clock time from QEMU's start to the marker is measured: both
//! sides pay the same QEMU start-up.
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::build::{build, BuildOptions};
use crate::config::vm::{ImageSource, ImageSpec};
use crate::qemu::{qemu_args, qemu_binary};
use crate::workspace::Workspace;

pub struct BenchOptions {
    pub what: String,
    pub config: Option<PathBuf>,
    pub vm: PathBuf,
    pub runs: usize,
    pub marker: String,
    pub timeout: Duration,
}

pub fn bench(ws: &Workspace, o: &BenchOptions) -> Result<()> {
    if o.what != "linux-boot" {
        bail!(
            "unknown benchmark `{}`: the benchmarks are: linux-boot",
            o.what
        );
    }
    let opts = BuildOptions {
        config: o.config.clone(),
        vms: vec![o.vm.clone()],
        force_bin: true,
    };
    let out = build(ws, &opts)?;
    let bin = out.bin.context("the build wrote no raw binary")?;
    let board = &out.plan.board;
    let q = board
        .qemu
        .as_ref()
        .context("the board has no [qemu] section: cannot benchmark")?;
    let vm = out.plan.vms.first().context("no VM to benchmark")?;
    let kernel = file_of(&vm.kernel)?;
    let program = qemu_binary(board);
    // Both sides get the same number of emulated CPUs: the hypervisor run only the
    // CPUs up to the last one the VM is placed on. Idle emulated CPUs are not free
    // under QEMU (every broadcast TLB invalidation of the guest waits for them),
    // unlike idle cores on hardware, so the board's full `smp` would measure QEMU.
    let hv_cpus = vm.pcpus.iter().max().map_or(board.smp, |&c| c + 1);
    let hv_board = crate::config::Board {
        smp: hv_cpus,
        ..board.clone()
    };
    let hv_args = qemu_args(&hv_board, q, &bin);

    // The same guest straight on QEMU: the board's machine without virtualization,
    // the VM's vCPUs and RAM, the VM's command line.
    let machine: Vec<&str> = q
        .machine
        .split(',')
        .filter(|p| !p.starts_with("virtualization"))
        .collect();
    let mut bare = vec!["-machine".to_string(), machine.join(",")];
    if let Some(cpu) = &q.cpu {
        bare.extend(["-cpu".into(), cpu.clone()]);
    }
    bare.extend([
        "-smp".into(),
        vm.cpu_num.to_string(),
        "-m".into(),
        format!("{}M", vm.ram_size() >> 20),
    ]);
    bare.extend(["-nographic", "-no-reboot", "-nic", "none"].map(String::from));
    bare.extend(["-kernel".into(), kernel.display().to_string()]);
    if let Some(rd) = &vm.ramdisk {
        bare.extend(["-initrd".into(), file_of(rd)?.display().to_string()]);
    }
    bare.extend(["-append".into(), vm.cmdline.clone()]);

    let hv_marker = format!("[{}] {}", vm.name, o.marker);
    println!(
        "bench linux-boot: {} vCPUs, {} MiB, {} runs each, marker \"{}\"; QEMU -smp {hv_cpus} under the hypervisor, -smp {} bare",
        vm.cpu_num,
        vm.ram_size() >> 20,
        o.runs,
        o.marker,
        vm.cpu_num
    );
    let (mut hv, mut direct) = (Vec::new(), Vec::new());
    for i in 0..o.runs {
        // Alternate which side goes first so drift in the host's load hits both.
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for under_hv in order {
            let (args, marker, label) = if under_hv {
                (&hv_args, hv_marker.as_str(), "hypervisor")
            } else {
                (&bare, o.marker.as_str(), "bare QEMU ")
            };
            let t = time_to_marker(&program, args, marker, o.timeout)
                .with_context(|| format!("run {} {label}", i + 1))?;
            println!("  run {}: {label} {:6.2} s", i + 1, t.as_secs_f64());
            if under_hv {
                hv.push(t)
            } else {
                direct.push(t)
            }
        }
    }
    let (mh, md) = (median(&mut hv), median(&mut direct));
    println!(
        "median: hypervisor {:.2} s, bare QEMU {:.2} s",
        mh.as_secs_f64(),
        md.as_secs_f64()
    );
    println!(
        "ratio hypervisor / bare: {:.3}",
        mh.as_secs_f64() / md.as_secs_f64()
    );
    Ok(())
}

fn file_of(img: &ImageSpec) -> Result<PathBuf> {
    match &img.source {
        ImageSource::File(p) => Ok(p.clone()),
        other => bail!(
            "{}: the benchmark needs a kernel/initramfs file, not {other:?}",
            img.key
        ),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Starts QEMU and returns the time until a line containing `marker` appears; QEMU
/// is then killed.
fn time_to_marker(
    program: &str,
    args: &[String],
    marker: &str,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    // QEMU gets SIGTERM if xtask dies (Ctrl-C, kill) while it waits for the marker.
    let mut child = crate::qemu::qemu_command(program, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    let wanted = marker.to_string();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(Instant::now());
                return;
            }
        }
    });
    let seen = rx.recv_timeout(timeout);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    match seen {
        Ok(at) => Ok(at - start),
        Err(_) => bail!(
            "no line containing \"{marker}\" within {} s",
            timeout.as_secs()
        ),
    }
}
