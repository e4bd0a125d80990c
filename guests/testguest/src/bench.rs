//! Boot argument `bench=<name>`: one measurement instead of the checks, timed by the
//! guest on its own counter (CNTVCT_EL0 on aarch64, `time` on riscv64: the guest has
//! no cycle counter under the hypervisor, whose PMU is inert), printed as
//!
//! `testguest: bench <name> ns=<ns per operation> n=<operations per batch> [baseline-ns=<ns>]`
//!
//! (the median batch of [`BATCHES`]; `cargo xtask bench` reads this line), or
//! `testguest: bench <name> failed: <why>`. The names:
//!
//! - `hypercall`: a null project hypercall (HV_INFO) round trip; `baseline-ns` is the
//!   same loop calling a function that traps nowhere;
//! - `mmio`: a read of an emulated device register (by the hypervisor, by QEMU when
//!   bare), named by `reg=` in the line: the console UART's status register (`uart-fr`
//!   on a PL011, `uart-lsr` on a memory-mapped 16550), or on x86, whose UART is port
//!   I/O, the local APIC's version register by xAPIC MMIO (`lapic-version`);
//! - `irq`: from the timer's deadline to the guest's interrupt handler (the counter
//!   value the handler reads), the vCPU busy in a loop meanwhile;
//! - `cpu`: one round of a CPU-bound kernel (CoreMark-like: a list sort, a matrix
//!   product, a state machine over bytes, and a CRC over their results).

use crate::arch;
use crate::checks::timer;
use crate::console::{println, UartKind};
use crate::platform::Platform;
use crate::why::{why, Why};

/// Batches of each measurement; the median one is reported.
const BATCHES: usize = 9;

/// The value of boot argument `bench=`, if any.
pub fn requested(bootargs: &str) -> Option<&str> {
    bootargs
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("bench="))
}

/// Runs bench `name` and prints its line.
pub fn run(platform: &Result<Platform, Why>, name: &str) {
    let result = match name {
        "hypercall" => hypercall(),
        "mmio" => platform.as_ref().map_err(|e| *e).and_then(mmio),
        "irq" => platform.as_ref().map_err(|e| *e).and_then(irq),
        "cpu" => cpu(),
        _ => Err(why!(
            "unknown bench (the benches: hypercall, mmio, irq, cpu)"
        )),
    };
    match result {
        Ok(line) => println!("testguest: bench {name} {line}"),
        Err(e) => println!("testguest: bench {name} failed: {e}"),
    }
}

/// `ticks` counter ticks over `n` operations as nanoseconds per operation, with 3
/// decimals.
struct Ns {
    ticks: u64,
    n: u64,
}

impl core::fmt::Display for Ns {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let freq = u128::from(arch::timer::frequency().max(1));
        let ps = u128::from(self.ticks) * 1_000_000_000_000 / freq / u128::from(self.n.max(1));
        write!(f, "{}.{:03}", ps / 1000, ps % 1000)
    }
}

/// The median of [`BATCHES`] timings (counter ticks) of `batch`.
fn median_ticks(mut batch: impl FnMut() -> Result<(), Why>) -> Result<u64, Why> {
    let mut t = [0u64; BATCHES];
    for slot in t.iter_mut() {
        let start = arch::timer::now();
        batch()?;
        *slot = arch::timer::now().wrapping_sub(start);
    }
    t.sort_unstable();
    Ok(t[BATCHES / 2])
}

const HYPERCALLS: u64 = 2000;

/// Stands in for the hypercall in the baseline loop: a call that traps nowhere.
#[inline(never)]
fn trapless(x: u64) -> Result<[u64; 4], arch::CallUndefined> {
    Ok(core::hint::black_box([x, 0, 0, 0]))
}

fn hypercall() -> Result<Line, Why> {
    arch::firmware::hv_info()
        .map_err(|_| why!("not supported: HV_INFO is undefined here (no hypervisor)"))?;
    let calls = median_ticks(|| {
        for _ in 0..HYPERCALLS {
            core::hint::black_box(arch::firmware::hv_info())
                .map_err(|_| why!("HV_INFO became undefined"))?;
        }
        Ok(())
    })?;
    let base = median_ticks(|| {
        for i in 0..HYPERCALLS {
            core::hint::black_box(trapless(i)).map_err(|_| why!("cannot happen"))?;
        }
        Ok(())
    })?;
    Ok(with_baseline(calls, base, HYPERCALLS))
}

/// `ns=.. n=.. baseline-ns=..`.
fn with_baseline(ticks: u64, base: u64, n: u64) -> Line {
    Line::from_fmt(format_args!(
        "ns={} n={n} baseline-ns={}",
        Ns { ticks, n },
        Ns { ticks: base, n }
    ))
}

const MMIO_READS: u64 = 2000;

/// The emulated register the `mmio` bench reads: address, 32-bit wide, and its name
/// for the result line. The console UART's status register where the UART is
/// memory-mapped; on x86, whose UART is port I/O, the local APIC's version register
/// (xAPIC MMIO at 0xFEE0_0030, emulated by the hypervisor, by QEMU when bare).
fn mmio_register(platform: &Platform) -> Result<(usize, bool, &'static str), Why> {
    let uart = platform
        .uart
        .ok_or_else(|| why!("no UART in the device tree"))?;
    Ok(match uart.kind {
        UartKind::Pl011 => (uart.base as usize + 0x18, true, "uart-fr"),
        UartKind::Ns16550 => (
            uart.base as usize + (5 << uart.reg_shift),
            false,
            "uart-lsr",
        ),
        #[cfg(target_arch = "x86_64")]
        UartKind::Ns16550Port => (arch::LAPIC_VERSION, true, "lapic-version"),
    })
}

fn mmio(platform: &Platform) -> Result<Line, Why> {
    let (addr, wide, name) = mmio_register(platform)?;
    let ticks = median_ticks(|| {
        for _ in 0..MMIO_READS {
            // SAFETY: a read-only register of an emulated device (see
            // `mmio_register`); reading it changes nothing.
            let v = unsafe {
                if wide {
                    crate::mmio::read32(addr)
                } else {
                    u32::from(crate::mmio::read8(addr))
                }
            };
            core::hint::black_box(v);
        }
        Ok(())
    })?;
    Ok(Line::from_fmt(format_args!(
        "ns={} n={MMIO_READS} reg={name}",
        Ns {
            ticks,
            n: MMIO_READS
        }
    )))
}

/// Timer interrupts measured.
const IRQS: usize = 15;

fn irq(platform: &Platform) -> Result<Line, Why> {
    let mut late = timer::lateness::<IRQS>(platform)?;
    late.sort_unstable();
    Ok(Line::from_fmt(format_args!(
        "ns={} n=1",
        Ns {
            ticks: late[late.len() / 2],
            n: 1
        }
    )))
}

/// Rounds of the CPU kernel per batch.
const CPU_ROUNDS: u64 = 20;

fn cpu() -> Result<Line, Why> {
    let expected = cpu_round(0);
    let ticks = median_ticks(|| {
        for _ in 0..CPU_ROUNDS {
            let crc = cpu_round(core::hint::black_box(0));
            if crc != expected {
                return Err(why!(
                    "the kernel's CRC changed: {crc:#x}, before {expected:#x}"
                ));
            }
        }
        Ok(())
    })?;
    Ok(Line::from_fmt(format_args!(
        "ns={} n={CPU_ROUNDS} crc={expected:#06x}",
        Ns {
            ticks,
            n: CPU_ROUNDS
        }
    )))
}

/// CRC-16/CCITT of `bytes`, continuing `crc`.
fn crc16(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One round of the CPU kernel, seeded by `seed`; returns the CRC of its results.
fn cpu_round(seed: u32) -> u16 {
    const N: usize = 12;
    const LIST: usize = 128;
    let mut rng = seed.wrapping_add(0x1234_5678);
    let mut next = || {
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        rng >> 8
    };
    // A list sorted by insertion.
    let mut list = [0u32; LIST];
    for v in list.iter_mut() {
        *v = next() & 0xffff;
    }
    for i in 1..LIST {
        let mut j = i;
        while j > 0 && list[j - 1] > list[j] {
            list.swap(j - 1, j);
            j -= 1;
        }
    }
    // A matrix product.
    let mut a = [[0i32; N]; N];
    let mut b = [[0i32; N]; N];
    for i in 0..N {
        for j in 0..N {
            a[i][j] = (next() & 0xff) as i32 - 128;
            b[i][j] = (next() & 0xff) as i32 - 128;
        }
    }
    let mut c = [[0i32; N]; N];
    for i in 0..N {
        for j in 0..N {
            let mut s = 0i32;
            for k in 0..N {
                s = s.wrapping_add(a[i][k].wrapping_mul(b[k][j]));
            }
            c[i][j] = s;
        }
    }
    // A state machine classifying bytes as numbers, words and others.
    let mut counts = [0u32; 4];
    let mut state = 0usize;
    for i in 0..512u32 {
        let byte = (next() % 96 + 32) as u8;
        state = match (state, byte) {
            (_, b'0'..=b'9') => 1,
            (1, b'.') => 2,
            (_, b'a'..=b'z' | b'A'..=b'Z') => 3,
            _ => 0,
        };
        counts[state] = counts[state].wrapping_add(i);
    }
    let mut crc = 0xffff;
    for v in list {
        crc = crc16(crc, &v.to_le_bytes());
    }
    for row in c {
        for v in row {
            crc = crc16(crc, &v.to_le_bytes());
        }
    }
    for v in counts {
        crc = crc16(crc, &v.to_le_bytes());
    }
    crc
}

/// A short line built without a heap (the guest has none).
struct Line {
    buf: [u8; 128],
    len: usize,
}

impl Line {
    fn from_fmt(args: core::fmt::Arguments<'_>) -> Line {
        let mut s = Line {
            buf: [0; 128],
            len: 0,
        };
        let _ = core::fmt::write(&mut s, args);
        s
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = (self.len + s.len()).min(self.buf.len());
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&s.as_bytes()[..n]);
        self.len = end;
        Ok(())
    }
}

impl core::fmt::Display for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?"))
    }
}
