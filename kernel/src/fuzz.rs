//! Fuzz targets: plain `fn(&[u8])` entry points over everything a guest or a card
//! config controls, for two drivers:
//!
//! - the stable one (`cargo xtask fuzz NAME --seconds N`, and a short run of each in
//!   the host tests, `fuzz::tests`): random inputs and mutations of a seed corpus,
//!   [`drive`] below;
//! - cargo-fuzz / libFuzzer (nightly), the crate in `fuzz/` at the repository root,
//!   one `fuzz_target!` per entry of [`TARGETS`].
//!
//! A target panics only on a finding: the decoders and models must answer every
//! input (an `Err` is an answer), and the checks here hold for every answer.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::arch::aarch64::{esr, idregs, pmu_debug, smccc};
use crate::arch::riscv64::{insn, sbi};
use crate::arch::x86_64::{insn as x86_insn, ioexit};
use crate::devices::device::{Device, DeviceCtx, VmEvent};
use crate::devices::irqchip;
use crate::devices::registry::{self, VmFacts};
use crate::devices::{emu_type, ConsoleKind};
use crate::mm::guest::{GuestMemory, GuestRam};
use crate::spec::{EmuDevice, VmSpec};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target: its name and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("vmconfig", vmconfig_text),
    ("aarch64-esr", aarch64_esr),
    ("aarch64-smccc", aarch64_smccc),
    ("riscv64-insn", riscv64_insn),
    ("riscv64-sbi", riscv64_sbi),
    ("x86_64-insn", x86_64_insn),
    ("pl011", pl011),
    ("uart16550", uart16550),
    ("testdev", testdev),
    ("vgic", vgic_v3),
    ("vgicv2", vgic_v2),
    ("vplic", vplic),
    ("x86apic", x86apic),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Reads little-endian words from the input, zeros past its end.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A VM config file from the card: the nesting guard, the parser and every rule
/// (the hypervisor's own path for card VMs), and the error locators on it.
fn vmconfig_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = vmconfig::parse::nesting_problem(&text);
    let limits = <crate::hal::Current as crate::hal::Arch>::LIMITS;
    let _ = vmconfig::parse_vm(&text, limits);
    let _ = vmconfig::parse::identify(&text);
    let offset = data
        .first()
        .map_or(0, |&b| usize::from(b) * text.len() / 256);
    let _ = vmconfig::parse::key_at(&text, offset);
    let (line, _) = vmconfig::parse::line_col(&text, offset);
    assert!(line >= 1, "line numbers start at 1");
}

/// ESR_EL2 values of a trapped access: the data-abort and system-register decoders
/// and the tables they feed.
fn aarch64_esr(data: &[u8]) {
    let mut input = Input(data);
    while !input.is_empty() {
        let syndrome = input.u64();
        let _ = esr::class(syndrome);
        let len = esr::instr_len(syndrome);
        assert!(len == 2 || len == 4, "instruction length {len}");
        if let esr::DataAbort::Access(a) = esr::data_abort(syndrome) {
            assert!(matches!(a.width, 1 | 2 | 4 | 8), "width {}", a.width);
            assert!(a.reg <= 31, "register {}", a.reg);
        }
        let _ = esr::fault_status(syndrome);
        let _ = esr::fault_level(syndrome);
        let access = esr::sysreg(syndrome);
        assert!(access.reg <= 31, "register {}", access.reg);
        let enc = access.encoding();
        let _ = esr::sgi_register(enc);
        let _ = esr::is_pauth_key(enc);
        let _ = idregs::classify(enc);
        let _ = pmu_debug::is_pmu_or_debug(enc);
        let _ = esr::fault_ipa(input.u64(), input.u64());
    }
}

/// PSCI and hypercalls: x0..x4 of an `hvc #0` / `smc #0`.
fn aarch64_smccc(data: &[u8]) {
    let mut input = Input(data);
    while !input.is_empty() {
        let x = [
            input.u64(),
            input.u64(),
            input.u64(),
            input.u64(),
            input.u64(),
        ];
        let _ = smccc::function(x);
        let _ = smccc::decode(x);
    }
}

/// The instruction at a guest-page fault (fetched, or from htinst): every decoder.
fn riscv64_insn(data: &[u8]) {
    let mut input = Input(data);
    while !input.is_empty() {
        let (low, high) = (input.u16(), input.u16());
        let word = u32::from(low) | (u32::from(high) << 16);
        let decoded = [
            insn::decode(low, high),
            insn::decode16(low),
            insn::decode32(word, 4),
            insn::decode32(word, 2),
        ];
        for a in decoded.into_iter().flatten() {
            assert!(matches!(a.width, 1 | 2 | 4 | 8), "width {}", a.width);
            assert!(a.reg < 32, "register {}", a.reg);
            assert!(a.len == 2 || a.len == 4, "length {}", a.len);
        }
        let _ = insn::htinst(input.u64());
        if let Some((rd, _)) = insn::counter_read(word) {
            assert!(rd < 32, "register {rd}");
        }
        let _ = insn::insn_len(low);
    }
}

/// The bytes behind an x86 nested page fault or I/O intercept (QEMU's SVM has no
/// decode assists): the MMIO `mov` decoder in both modes, the merge of a load into
/// its register, the `in`/`out` length and the exit information words.
fn x86_64_insn(data: &[u8]) {
    const MAX_INSN: u8 = 15;
    for at in 0..data.len().min(64) {
        let bytes = &data[at..];
        for mode in [x86_insn::Mode::Prot32, x86_insn::Mode::Long64] {
            if let Ok(a) = x86_insn::decode(bytes, mode) {
                assert!(matches!(a.width, 1 | 2 | 4 | 8), "width {}", a.width);
                assert!(a.len >= 2 && a.len <= MAX_INSN, "length {}", a.len);
                assert!(usize::from(a.len) <= bytes.len(), "length past the bytes");
                match a.op {
                    x86_insn::Op::Load { reg, dst_width } => {
                        assert!(reg < 16, "register {reg}");
                        assert!(dst_width >= a.width && matches!(dst_width, 1 | 2 | 4 | 8));
                        let merged = x86_insn::merge_load(u64::MAX, 0, dst_width);
                        assert!(dst_width < 4 || merged == 0, "a 32/64-bit load clears");
                    }
                    x86_insn::Op::Store { reg, high_byte } => {
                        assert!(reg < 16, "register {reg}");
                        assert!(!high_byte || (a.width == 1 && (4..8).contains(&reg)));
                    }
                    x86_insn::Op::StoreImm(_) => {}
                }
            }
        }
        if let Some(len) = ioexit::io_insn_len(bytes) {
            assert!(
                len >= 1 && usize::from(len) <= bytes.len().min(6),
                "in/out length {len}"
            );
        }
    }
    let mut input = Input(data);
    while !input.is_empty() {
        if let Some(io) = ioexit::decode_io(input.u64()) {
            assert!(matches!(io.width, 1 | 2 | 4), "port width {}", io.width);
        }
        let _ = ioexit::decode_npf(input.u64());
    }
}

/// SBI calls: a0..a7 of an `ecall`.
fn riscv64_sbi(data: &[u8]) {
    let mut input = Input(data);
    while !input.is_empty() {
        let a = [(); 8].map(|_| input.u64());
        let _ = sbi::decode(a);
        let _ = sbi::is_legacy(a[7]);
        let _ = sbi::hart_mask(a[0], a[1]);
    }
}

/// One device access from the input: vCPU, offset in a window of `window` bytes,
/// width (1, 2, 4, 8 mostly, sometimes anything), read or write and value.
struct Access {
    vcpu: usize,
    offset: u64,
    width: u8,
    write: Option<u64>,
}

fn access(input: &mut Input, window: u64) -> Access {
    let op = input.u8();
    let vcpu = usize::from(op >> 6);
    let width = match op & 7 {
        0 | 1 => 4,
        2 => 1,
        3 => 2,
        4 => 8,
        _ => input.u8(),
    };
    let offset = u64::from(input.u32()) % window;
    let write = (op & 8 != 0).then(|| input.u64());
    Access {
        vcpu,
        offset,
        width,
        write,
    }
}

/// Drives a device of the bus with accesses, interrupt-chip-less.
fn device(mut dev: Box<dyn Device>, window: u64, data: &[u8]) {
    let ram = GuestRam::default();
    let mut events: Vec<VmEvent> = Vec::new();
    let mut input = Input(data);
    while !input.is_empty() {
        let a = access(&mut input, window);
        let mut ctx = DeviceCtx::new(a.vcpu, None, GuestMemory::new(&ram, None), &mut events);
        match a.write {
            Some(v) => {
                let _ = dev.mmio_write(&mut ctx, a.offset, a.width, v);
            }
            None => {
                let _ = dev.mmio_read(&mut ctx, a.offset, a.width);
            }
        }
        let mut ctx = DeviceCtx::new(a.vcpu, None, GuestMemory::new(&ram, None), &mut events);
        dev.service(&mut ctx);
        if let Some(serial) = dev.serial() {
            serial.drain_tx(&mut |_| {});
            let _ = serial.push_rx(a.offset as u8);
        }
        events.clear();
    }
}

fn emu(emu_type: u32, base: u64, length: u64, irq: u32) -> EmuDevice {
    EmuDevice {
        name: alloc::borrow::Cow::Borrowed("fuzzed"),
        base_gpa: base,
        length,
        irq,
        emu_type,
        cfg: alloc::borrow::Cow::Borrowed(&[]),
    }
}

fn console(kind: ConsoleKind, data: &[u8]) {
    let facts = VmFacts {
        console: kind,
        cpus: 4,
    };
    let Ok(created) = registry::create(&emu(emu_type::CONSOLE, 0x0900_0000, 0x1000, 33), &facts)
    else {
        panic!("the console UART cannot be created");
    };
    device(created.device, 0x1000, data);
}

fn pl011(data: &[u8]) {
    console(ConsoleKind::Pl011, data);
}

fn uart16550(data: &[u8]) {
    console(ConsoleKind::Uart16550, data);
}

fn testdev(data: &[u8]) {
    device(
        Box::new(crate::devices::testdev::TestDevice::new(40)),
        0x1000,
        data,
    );
}

/// Drives an interrupt chip of an `arch` kind: accesses to its windows (one of
/// `windows`: emu_type, base, size; chosen by the input), interrupt lines, IPIs,
/// injections and MSRs, with the vCPUs it has.
fn chip(spec: &VmSpec, arch: vmconfig::IrqChip, windows: &[(u32, u64, u64)], data: &[u8]) {
    let ids: Vec<u64> = (0..u64::from(spec.cpu_num)).collect();
    let chip = irqchip::for_vm(spec, ids, &[27], arch, fuzz_clock);
    let Ok(Some(mut chip)) = chip else {
        panic!("the interrupt chip cannot be created: {:?}", chip.err());
    };
    let mut input = Input(data);
    while !input.is_empty() {
        let kind = input.u8();
        match kind % 8 {
            0 => chip.set_level(input.u32() % 1100, input.u8() & 1 != 0),
            1 => chip.ipi(usize::from(input.u8() % 4), input.u64()),
            2 => chip.inject(usize::from(input.u8() % 4), input.u32() % 1100),
            3 => {
                let _ = chip.take_kicks();
                let mut events = Vec::new();
                chip.take_events(&mut events);
            }
            4 => {
                let vcpu = usize::from(input.u8() % 4);
                // Mostly the APIC's own MSRs (0x1b, 0x6e0, 0x800-0x8ff).
                let msr = match input.u8() % 4 {
                    0 => 0x1b,
                    1 => 0x6e0,
                    2 => input.u32(),
                    _ => 0x800 | u32::from(input.u8()),
                };
                let write = (input.u8() & 1 != 0).then(|| input.u64());
                let _ = chip.msr(vcpu, msr, write);
            }
            _ => {
                let (window, base, size) = windows[usize::from(kind >> 3) % windows.len()];
                let mut a = access(&mut input, size);
                if arch == vmconfig::IrqChip::Apic && kind & 0x80 == 0 {
                    // Mostly the APICs' 16-byte register slots.
                    a.offset &= !0xf;
                }
                let _ = chip.mmio(
                    a.vcpu % spec.cpu_num as usize,
                    window,
                    base,
                    a.offset,
                    a.width,
                    a.write,
                );
            }
        }
    }
    chip.reset();
}

fn gic_spec(devices: Vec<EmuDevice>) -> VmSpec {
    VmSpec {
        cpu_num: 4,
        pcpu_of_vcpu: alloc::borrow::Cow::Owned(vec![0, 1, 2, 3]),
        emu_devices: alloc::borrow::Cow::Owned(devices),
        interrupt_mode: crate::spec::InterruptMode::Emulated,
        ..crate::spec::TEST_SPEC
    }
}

fn vgic_v3(data: &[u8]) {
    let spec = gic_spec(vec![
        emu(emu_type::GIC_DIST, 0x0800_0000, 0x1_0000, 0),
        emu(emu_type::GIC_REDIST, 0x080a_0000, 0x8_0000, 0),
        emu(emu_type::CONSOLE, 0x0900_0000, 0x1000, 33),
    ]);
    chip(
        &spec,
        vmconfig::IrqChip::Gic,
        &[
            (emu_type::GIC_DIST, 0x0800_0000, 0x1_0000),
            (emu_type::GIC_REDIST, 0x080a_0000, 0x8_0000),
        ],
        data,
    );
}

fn vgic_v2(data: &[u8]) {
    let spec = gic_spec(vec![
        emu(emu_type::GIC_DIST, 0x0800_0000, 0x1_0000, 0),
        emu(emu_type::GIC_CPU_IF, 0x0801_0000, 0x1_0000, 0),
        emu(emu_type::CONSOLE, 0x0900_0000, 0x1000, 33),
    ]);
    chip(
        &spec,
        vmconfig::IrqChip::Gic,
        &[
            (emu_type::GIC_DIST, 0x0800_0000, 0x1_0000),
            (emu_type::GIC_CPU_IF, 0x0801_0000, 0x1_0000),
        ],
        data,
    );
}

fn vplic(data: &[u8]) {
    let spec = gic_spec(vec![
        emu(emu_type::PLIC, 0x0c00_0000, 0x60_0000, 0),
        emu(emu_type::CONSOLE, 0x1000_0000, 0x100, 10),
    ]);
    chip(
        &spec,
        vmconfig::IrqChip::Plic,
        &[(emu_type::PLIC, 0x0c00_0000, 0x60_0000)],
        data,
    );
}

/// A clock for chips that read time: it moves on with every call, so timers fire.
fn fuzz_clock() -> u64 {
    static NOW: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    NOW.fetch_add(997, core::sync::atomic::Ordering::Relaxed)
}

/// The x86 local APICs (xAPIC window) and I/O APIC of a 4-vCPU VM.
fn x86apic(data: &[u8]) {
    let spec = gic_spec(vec![
        emu(emu_type::GIC_CPU_IF, 0xfee0_0000, 0x1000, 0),
        emu(emu_type::GIC_CPU_IF, 0xfec0_0000, 0x1000, 0),
        emu(emu_type::CONSOLE, 0x3f8, 8, 4),
    ]);
    let windows = [
        (emu_type::GIC_CPU_IF, 0xfee0_0000, 0x1000),
        (emu_type::GIC_CPU_IF, 0xfec0_0000, 0x1000),
    ];
    chip(&spec, vmconfig::IrqChip::Apic, &windows, data);
}

/// A small deterministic generator (xorshift64*): the stable driver needs no more.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// A mutation of `input`: bytes flipped, set to interesting values, inserted,
/// removed, a piece duplicated or spliced from `other`.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'[', b'=', b'"'];
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        let last = out.len().saturating_sub(1);
        match rng.below(6) {
            0 if !out.is_empty() => out[at.min(last)] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at.min(last)] = INTERESTING[rng.below(8)],
            2 => out.insert(at, rng.next_u64() as u8),
            3 if !out.is_empty() => {
                out.remove(at.min(last));
            }
            4 if !out.is_empty() => {
                let from = rng.below(out.len());
                let len = (1 + rng.below(out.len() - from)).min(64);
                let piece = out[from..from + len].to_vec();
                out.splice(at..at, piece);
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = (1 + rng.below(other.len() - from)).min(64);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => out.push(rng.next_u64() as u8),
        }
    }
    out.truncate(4096);
    out
}

/// How many inputs of its own the stable driver keeps for mutation, besides the seeds.
const LATER_INPUTS: usize = 256;

/// The stable driver: runs `target` on the seeds, then on inputs that are random
/// (one in eight) or mutations of a seed or of an earlier input, as long as `more`
/// (handed each input before it runs) says so. Returns how many inputs ran. A
/// finding is a panic of the target; `more` has seen its input last.
pub fn drive(
    target: Target,
    seeds: &[Vec<u8>],
    rng: &mut Rng,
    mut more: impl FnMut(&[u8]) -> bool,
) -> u64 {
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    let mut ran = 0;
    for s in seeds {
        if !more(s) {
            return ran;
        }
        target(s);
        ran += 1;
    }
    loop {
        let input = if pool.is_empty() || rng.below(8) == 0 {
            let len = rng.below(256);
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            // Half of the time from a seed, so the seeds' structure is never lost.
            let pick = |rng: &mut Rng| match rng.below(2) {
                0 if !seeds.is_empty() => rng.below(seeds.len()),
                _ => rng.below(pool.len()),
            };
            let (a, b) = (pick(rng), pick(rng));
            mutate(rng, &pool[a], &pool[b])
        };
        if !more(&input) {
            return ran;
        }
        target(&input);
        ran += 1;
        // Room for 256 later inputs however many seeds there are (a corpus
        // libFuzzer grew in fuzz/corpus/ can hold more than 256).
        if pool.len() < seeds.len() + LATER_INPUTS {
            pool.push(input);
        } else {
            // The seeds stay; the later inputs take turns.
            let at = seeds.len() + rng.below(pool.len() - seeds.len());
            pool[at] = input;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The seed corpus of `name`: the files in fuzz/corpus/<name>/ (what cargo-fuzz
    /// found, if it ran here), and for `vmconfig` every VM config of the repository.
    fn seeds(name: &str) -> Vec<Vec<u8>> {
        let mut dirs = vec![repo().join("fuzz/corpus").join(name)];
        if name == "vmconfig" {
            dirs.push(repo().join("configs/vms"));
            dirs.push(repo().join("xtask/tests/data"));
        }
        let mut out = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.iter().filter(|f| f.is_file()) {
                if let Ok(bytes) = std::fs::read(f) {
                    out.push(bytes);
                }
            }
        }
        if out.is_empty() {
            out = vec![vec![0; 16], (0..=255).collect()];
        }
        out
    }

    #[test]
    fn every_target_survives_a_short_run() {
        for (i, &(name, f)) in TARGETS.iter().enumerate() {
            let mut rng = Rng::new(0x5eed + i as u64);
            let seeds = seeds(name);
            let mut left = seeds.len() + 1_000;
            let ran = drive(f, &seeds, &mut rng, |_| {
                left -= 1;
                left > 0
            });
            assert_eq!(ran as usize, seeds.len() + 999, "{name}");
        }
    }

    /// More seeds than the driver keeps inputs of its own (a corpus libFuzzer grew):
    /// the driver still runs (it once indexed past its pool here).
    #[test]
    fn more_seeds_than_later_inputs() {
        fn quiet(_: &[u8]) {}
        let seeds: Vec<Vec<u8>> = (0..LATER_INPUTS + 30).map(|i| vec![i as u8; 3]).collect();
        let mut rng = Rng::new(3);
        let mut left = seeds.len() + 5 * LATER_INPUTS;
        let ran = drive(quiet, &seeds, &mut rng, |_| {
            left -= 1;
            left > 0
        });
        assert_eq!(ran as usize, seeds.len() + 5 * LATER_INPUTS - 1);
    }

    #[test]
    fn mutations_stay_bounded_and_change_the_input() {
        let mut rng = Rng::new(7);
        let seed = b"id = 1".to_vec();
        let changed = (0..100)
            .filter(|_| mutate(&mut rng, &seed, &seed) != seed)
            .count();
        assert!(changed > 50, "{changed}");
        assert!(mutate(&mut rng, &[0; 5000], &[]).len() <= 4096);
    }

    #[test]
    fn a_target_that_panics_is_found() {
        fn picky(data: &[u8]) {
            assert!(!data.starts_with(b"bug"), "found");
        }
        let last = std::cell::RefCell::new(Vec::new());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut rng = Rng::new(1);
            let mut n = 0;
            drive(picky, &[b"bu".to_vec(), b"g".to_vec()], &mut rng, |i| {
                *last.borrow_mut() = i.to_vec();
                n += 1;
                n < 200_000
            })
        }));
        assert!(r.is_err(), "the driver never built the input `bug`");
        assert!(last.borrow().starts_with(b"bug"), "{:?}", last.borrow());
    }

    /// `cargo xtask fuzz NAME --seconds N` runs this (ignored otherwise) with
    /// HV_FUZZ_TARGET, HV_FUZZ_SECONDS and HV_FUZZ_SEED: the stable driver for that
    /// long; on a finding it writes the input to target/hv/fuzz/<name>/crash-<seed>
    /// and fails.
    #[test]
    #[ignore = "run by cargo xtask fuzz"]
    fn fuzz_from_env() {
        let name = std::env::var("HV_FUZZ_TARGET").unwrap_or_default();
        let Some(f) = target(&name) else {
            let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            panic!("unknown fuzz target `{name}` (known: {})", names.join(", "));
        };
        let seconds: u64 = std::env::var("HV_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        let seed: u64 = std::env::var("HV_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let seeds = seeds(&name);
        let last = std::cell::RefCell::new(Vec::new());
        let mut rng = Rng::new(seed);
        let mut n = 0u64;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive(f, &seeds, &mut rng, |i| {
                last.borrow_mut().clear();
                last.borrow_mut().extend_from_slice(i);
                n += 1;
                !n.is_multiple_of(256) || std::time::Instant::now() < deadline
            })
        }));
        match r {
            Ok(ran) => println!(
                "fuzz {name}: {ran} inputs in {seconds} s ({} seeds), no finding",
                seeds.len()
            ),
            Err(_) => {
                let dir = repo().join("target/hv/fuzz").join(&name);
                let file = dir.join(format!("crash-{seed}"));
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(&file, &*last.borrow());
                panic!(
                    "fuzz {name}: finding after {n} inputs; input in {}",
                    file.display()
                );
            }
        }
    }
}
