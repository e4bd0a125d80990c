//! ivc (boot argument `ivc`): ping-pong through an inter-VM channel with a peer test
//! guest. The device tree describes the channel: its region (`hv,ivc-shmem` under
//! `/reserved-memory`) and its doorbell (`hv,ivc-doorbell`: MAGIC at 0x00, ID 0x04,
//! MEMBERS 0x08, RING 0x0C, STATUS 0x10 write-1-to-clear) with the interrupt a
//! peer's ring raises. x86 has no device tree: the hypervisor puts the channel on the
//! Multiboot command line (`arch::ivc_channel`). Either way the guest prints the
//! region and doorbell it uses (`testguest: ivc: region <a> size <s>, doorbell <d>`).
//!
//! Member 0 sends [`MESSAGES`] messages; member 1 checks each and answers it; member
//! 0 checks every answer. A message (in its sender's half of the region) is a
//! sequence number, [`WORDS`] payload words that depend on the sender and the
//! sequence number, and their checksum; it is written, then the sequence number,
//! then the peer's doorbell is rung. The receiver waits for its doorbell's interrupt
//! to be pending at the interrupt controller (the line is level-high while a ring is
//! unacknowledged; on aarch64 and riscv64 it is not enabled, so only its pending bit
//! shows; on x86 it is the vector's IRR bit at the local APIC, taken once STATUS is
//! clear: `arch::ivc_irq_done`), finds the sender's bit in STATUS, clears it (the
//! line must drop), and checks sequence
//! number and checksum. Both print `testguest: ivc: member <m>: <n> sent, <n>
//! received, <b> bad, <i> interrupts`.
//!
//! Boot argument `ivc-probe=<region>,<doorbell>` (a VM that is not on the channel):
//! after the checks, `probe` reads `<region>` (no message of the pair may show in
//! either slot), writes and reads it back (this VM's own RAM there, which must keep
//! what it wrote) and rings `<doorbell>`, which this VM does not have: the
//! hypervisor must stop it there.

use core::sync::atomic::{fence, Ordering};

use crate::console::println;
use crate::mmio::{read32, read64, write32, write64};
use crate::platform::Platform;
use crate::why::{why, CheckResult};

/// Messages each way.
pub const MESSAGES: u64 = 1000;
/// Payload words of a message.
const WORDS: usize = 16;
/// Where member k's messages go in the region.
const SLOT: usize = 0x800;
const MAGIC: u32 = u32::from_le_bytes(*b"IVC1");
const REG_MAGIC: usize = 0x00;
const REG_ID: usize = 0x04;
const REG_MEMBERS: usize = 0x08;
const REG_RING: usize = 0x0c;
const REG_STATUS: usize = 0x10;
/// The first message may wait for the peer to boot.
const FIRST_WAIT_MS: u64 = 60_000;
const WAIT_MS: u64 = 5_000;

/// `(region, doorbell)` of `ivc-probe=<hex>,<hex>` (`key`).
pub fn requested(bootargs: &str, key: &str) -> Option<(usize, usize)> {
    bootargs.split_ascii_whitespace().find_map(|w| {
        let v = w.strip_prefix(key)?.strip_prefix('=')?;
        let (a, b) = v.split_once(',')?;
        let hex = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        Some((hex(a)?, hex(b)?))
    })
}

fn payload(sender: u32, seq: u64, i: usize) -> u64 {
    (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64) << 8 ^ u64::from(sender) << 60)
        .rotate_left(i as u32)
}

/// Writes message `seq` from `sender` into its slot.
fn send(region: usize, sender: u32, seq: u64) {
    let slot = region + sender as usize * SLOT;
    let mut sum = 0u64;
    for i in 0..WORDS {
        let v = payload(sender, seq, i);
        sum = sum.wrapping_add(v);
        // SAFETY: the channel's region (boot argument), mapped read-write.
        unsafe { write64(slot + 16 + 8 * i, v) };
    }
    // SAFETY: as above.
    unsafe { write64(slot + 8, sum) };
    fence(Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { write64(slot, seq) };
    fence(Ordering::SeqCst);
}

/// Checks message `seq` from `sender`: its sequence number, payload and checksum.
fn check(region: usize, sender: u32, seq: u64) -> Result<(), u64> {
    let slot = region + sender as usize * SLOT;
    fence(Ordering::SeqCst);
    // SAFETY: the channel's region (boot argument), mapped.
    let got = unsafe { read64(slot) };
    if got != seq {
        return Err(got);
    }
    let mut sum = 0u64;
    let mut same = true;
    for i in 0..WORDS {
        // SAFETY: as above.
        let v = unsafe { read64(slot + 16 + 8 * i) };
        sum = sum.wrapping_add(v);
        same &= v == payload(sender, seq, i);
    }
    // SAFETY: as above.
    let want = unsafe { read64(slot + 8) };
    if sum != want || !same {
        return Err(got);
    }
    Ok(())
}

/// Waits until member `from` rang (its bit in STATUS), then clears the bit.
fn wait_ring(doorbell: usize, from: u32, ms: u64) -> bool {
    let bit = 1u32 << from;
    let rang = crate::time::wait_until(ms, || {
        // SAFETY: the doorbell window (boot argument); reading STATUS has no side
        // effect but collecting rings.
        unsafe { read32(doorbell + REG_STATUS) & bit != 0 }
    });
    if rang {
        // SAFETY: as above; write-1-to-clear.
        unsafe { write32(doorbell + REG_STATUS, bit) };
    }
    rang
}

/// The channel as the guest finds it: region, its size, doorbell, and the doorbell
/// interrupt's pending bit (address, mask).
pub struct View {
    pub region: usize,
    pub size: u64,
    pub doorbell: usize,
    pub pending: (usize, u32),
}

/// The channel the VM's description gives: the architecture's own way
/// (`arch::ivc_channel`: x86's command line) or the device tree's nodes. Prints
/// where it is, for the scenario to compare with the config.
fn described(platform: &Platform) -> Result<View, crate::why::Why> {
    let v = match crate::arch::ivc_channel(platform) {
        Some(v) => v?,
        None => from_dtb(platform)?,
    };
    if v.size < 2 * SLOT as u64 {
        return Err(why!(
            "region of {:#x} bytes: too small for two slots",
            v.size
        ));
    }
    println!(
        "testguest: ivc: region {:#x} size {:#x}, doorbell {:#x}",
        v.region, v.size, v.doorbell
    );
    Ok(v)
}

/// Reads the channel's nodes from the device tree.
fn from_dtb(platform: &Platform) -> Result<View, crate::why::Why> {
    let fdt = &platform.fdt;
    let bell = fdt
        .find_compatible(&["hv,ivc-doorbell"])
        .ok_or_else(|| why!("no hv,ivc-doorbell node in the device tree"))?;
    let shmem = fdt
        .find_compatible(&["hv,ivc-shmem"])
        .ok_or_else(|| why!("no hv,ivc-shmem node (under /reserved-memory) in the device tree"))?;
    let (doorbell, _) = bell
        .reg()
        .next()
        .ok_or_else(|| why!("doorbell node without reg"))?;
    let (region, size) = shmem
        .reg()
        .next()
        .ok_or_else(|| why!("region node without reg"))?;
    let pending = crate::arch::pending_bit(fdt, &bell).ok_or_else(|| {
        why!("doorbell node: no interrupt this guest can read the pending state of")
    })?;
    Ok(View {
        region: region as usize,
        size,
        doorbell: doorbell as usize,
        pending,
    })
}

/// Whether the doorbell's interrupt is pending at the interrupt controller.
fn line_pending((addr, bit): (usize, u32)) -> bool {
    // SAFETY: the interrupt controller's pending register the device tree gives;
    // reading it has no side effect.
    unsafe { read32(addr) & bit != 0 }
}

fn ring(doorbell: usize, to: u32) {
    // SAFETY: the doorbell window (boot argument).
    unsafe { write32(doorbell + REG_RING, 1 << to) };
}

/// Runs the ping-pong on the channel the device tree describes.
pub fn run(platform: &Platform) -> CheckResult {
    let View {
        region,
        doorbell,
        pending,
        ..
    } = described(platform)?;
    // SAFETY: the doorbell window (boot argument); identity registers.
    let (magic, me, members) = unsafe {
        (
            read32(doorbell + REG_MAGIC),
            read32(doorbell + REG_ID),
            read32(doorbell + REG_MEMBERS),
        )
    };
    if magic != MAGIC {
        return Err(why!(
            "doorbell at {doorbell:#x}: MAGIC {magic:#x}, not {MAGIC:#x}"
        ));
    }
    if members != 2 || me > 1 {
        return Err(why!(
            "doorbell: member {me} of {members}; this check wants 2 members"
        ));
    }
    let peer = 1 - me;
    let (mut sent, mut received, mut bad, mut irqs) = (0u64, 0u64, 0u64, 0u64);
    let mut first_bad = None;
    for seq in 1..=MESSAGES {
        let wait = if seq == 1 { FIRST_WAIT_MS } else { WAIT_MS };
        if me == 0 {
            send(region, me, seq);
            ring(doorbell, peer);
            sent += 1;
        }
        // The ring raises the interrupt; STATUS then has the peer's bit.
        if crate::time::wait_until(wait, || line_pending(pending)) {
            irqs += 1;
        }
        if !wait_ring(doorbell, peer, wait) {
            return Err(why!(
                "member {me}: no ring from member {peer} for message {seq} ({sent} sent, {received} received)"
            ));
        }
        if !crate::arch::ivc_irq_done() {
            return Err(why!(
                "member {me}: the doorbell interrupt was pending but never taken (message {seq})"
            ));
        }
        if line_pending(pending) {
            return Err(why!(
                "member {me}: the doorbell interrupt is still pending after STATUS was cleared (message {seq})"
            ));
        }
        match check(region, peer, seq) {
            Ok(()) => received += 1,
            Err(got) => {
                bad += 1;
                first_bad.get_or_insert((seq, got));
            }
        }
        if me == 1 {
            send(region, me, seq);
            ring(doorbell, peer);
            sent += 1;
        }
    }
    println!(
        "testguest: ivc: member {me}: {sent} sent, {received} received, {bad} bad, {irqs} interrupts"
    );
    if let Some((seq, got)) = first_bad {
        return Err(why!(
            "message {seq} from member {peer}: sequence number {got} or its checksum is wrong"
        ));
    }
    if irqs != MESSAGES {
        return Err(why!(
            "the doorbell interrupt was pending for {irqs} of {MESSAGES} rings"
        ));
    }
    Ok(())
}

/// Boot argument `ivc-probe`: this VM is on no channel. Its own RAM at `region`
/// keeps what it writes; ringing `doorbell` must stop it.
pub fn probe((region, doorbell): (usize, usize)) {
    // What the pair wrote there (a message in either member's slot) must not show.
    for sender in 0..2u32 {
        let slot = region + sender as usize * SLOT;
        // SAFETY: this VM's own RAM (its config puts RAM there); only read.
        let (seq, first) = unsafe { (read64(slot), read64(slot + 16)) };
        if (1..=MESSAGES).contains(&seq) && first == payload(sender, seq, 0) {
            println!("FAIL: ivc-probe: member {sender}'s message {seq} shows at {slot:#x}");
            return;
        }
    }
    println!("testguest: ivc-probe: no message of the channel at {region:#x}");
    let mark = 0x5eed_0000_0000_0000u64 | region as u64;
    // SAFETY: `region` is this VM's own RAM (its config puts RAM there); the
    // checks are done, nothing else uses that page.
    let seen = unsafe {
        write64(region, mark);
        fence(Ordering::SeqCst);
        read64(region)
    };
    if seen == mark {
        println!(
            "testguest: ivc-probe: {region:#x} is this VM's own memory (reads back {seen:#x})"
        );
    } else {
        println!("FAIL: ivc-probe: wrote {mark:#x} at {region:#x}, read {seen:#x}");
    }
    println!("testguest: ivc-probe: ringing the channel's doorbell at {doorbell:#x}");
    // SAFETY: deliberately a window this VM does not have: the hypervisor is
    // expected to stop the VM.
    unsafe { write32(doorbell + REG_RING, 0xffff_ffff) };
    println!("FAIL: ivc-probe: the doorbell write was allowed");
}

/// What `ivc-once` expects from member 0 and answers with ("Linx", "TGst").
pub const ONCE_FROM_PEER: u32 = 0x4c69_6e78;
pub const ONCE_REPLY: u32 = 0x5447_7374;
/// `ivc-once` waits this long for the peer (a Linux VM boots first).
const ONCE_WAIT_MS: u64 = 240_000;

/// ivc-once (boot argument `ivc-once`, this VM member 1): one message each way with
/// a peer that has no driver (Linux with busybox `devmem`). The message in a
/// member's slot is three 32-bit words: sequence number 1, a value, and the value's
/// complement. This VM waits for member 0's ring (its interrupt pending, then its
/// STATUS bit), checks member 0's message holds [`ONCE_FROM_PEER`], clears STATUS,
/// writes [`ONCE_REPLY`] into its own slot and rings member 0.
pub fn once(platform: &Platform) -> CheckResult {
    let View {
        region,
        doorbell,
        pending,
        ..
    } = described(platform)?;
    // SAFETY: the doorbell window the device tree gives; an identity register.
    let me = unsafe { read32(doorbell + REG_ID) };
    if me != 1 {
        return Err(why!("ivc-once runs as member 1, this VM is member {me}"));
    }
    if !crate::time::wait_until(ONCE_WAIT_MS, || line_pending(pending)) {
        return Err(why!(
            "no doorbell interrupt from member 0 in {ONCE_WAIT_MS} ms"
        ));
    }
    if !wait_ring(doorbell, 0, WAIT_MS) {
        return Err(why!(
            "the interrupt was pending but STATUS has no ring from member 0"
        ));
    }
    if !crate::arch::ivc_irq_done() {
        return Err(why!("the doorbell interrupt was pending but never taken"));
    }
    fence(Ordering::SeqCst);
    // SAFETY: the channel's region the device tree gives (member 0's slot).
    let (seq, value, check) = unsafe { (read32(region), read32(region + 4), read32(region + 8)) };
    println!("testguest: ivc-once: member 0 wrote {seq:#x} {value:#x} {check:#x}");
    if (seq, value, check) != (1, ONCE_FROM_PEER, !ONCE_FROM_PEER) {
        return Err(why!(
            "member 0's message is {seq:#x} {value:#x} {check:#x}, not 0x1 {ONCE_FROM_PEER:#x} {:#x}",
            !ONCE_FROM_PEER
        ));
    }
    let slot = region + SLOT;
    // SAFETY: this member's slot of the region, mapped read-write.
    unsafe {
        write32(slot + 4, ONCE_REPLY);
        write32(slot + 8, !ONCE_REPLY);
        fence(Ordering::SeqCst);
        write32(slot, 1);
    }
    fence(Ordering::SeqCst);
    ring(doorbell, 0);
    println!("testguest: ivc-once: answered {ONCE_REPLY:#x} and rang member 0");
    Ok(())
}

/// `ivc-bench`: round trips timed by member 0.
const BENCH_ROUNDS: usize = 1000;
/// `ivc-bench`: bulk copies through the channel, and their size.
const BENCH_COPIES: usize = 200;
const BENCH_CHUNK: usize = 0x8000;
/// Where bulk data goes in the region (after the two message slots).
const BULK: usize = 0x1000;

/// Local buffers for the bulk copies (this VM's RAM).
struct Buffers([[u64; BENCH_CHUNK / 8]; 2]);
static mut BUFFERS: Buffers = Buffers([[0; BENCH_CHUNK / 8]; 2]);
static mut TICKS: [u64; BENCH_ROUNDS] = [0; BENCH_ROUNDS];

fn ns(ticks: u64) -> u64 {
    let hz = crate::arch::timer::frequency().max(1);
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// (median, p99) of `t` in ns (sorted in place).
fn median_p99(t: &mut [u64]) -> (u64, u64) {
    t.sort_unstable();
    let at = |q: usize| ns(t[(t.len() * q / 100).min(t.len() - 1)]);
    (at(50), at(99))
}

/// KiB/s of `bytes` in `ticks`.
fn kib_s(bytes: u64, ticks: u64) -> u64 {
    let secs_ns = ns(ticks).max(1);
    (u128::from(bytes) * 1_000_000_000 / u128::from(secs_ns) / 1024) as u64
}

/// Copies `words` 64-bit words from `src` to `dst` (device accesses, one word at a time).
fn copy_words(dst: usize, src: usize, words: usize) {
    for i in 0..words {
        // SAFETY: the callers pass the channel's region or this VM's buffers, each at
        // least `words` words long.
        unsafe { write64(dst + 8 * i, read64(src + 8 * i)) };
    }
}

/// ivc-bench (boot argument `ivc-bench`, 2 members): member 0 times
/// [`BENCH_ROUNDS`] doorbell round trips (write a sequence number, ring, wait for the
/// answer's STATUS bit) and [`BENCH_COPIES`] bulk transfers of [`BENCH_CHUNK`] bytes
/// (member 0 copies its buffer into the region and rings, member 1 copies it out and
/// rings back); then the same work inside this VM: the copies buffer to buffer, and
/// self-IPIs (`arch::self_ipi_ticks`). Member 1 answers. Member 0 prints
/// `testguest: ivc-bench: round-trip median <ns> ns p99 <ns> ns`,
/// `testguest: ivc-bench: channel copy <n> KiB/s`, `testguest: ivc-bench: local memcpy
/// <n> KiB/s` and `testguest: ivc-bench: local self-ipi median <ns> ns p99 <ns> ns`.
pub fn bench(platform: &Platform) -> CheckResult {
    let View {
        region, doorbell, ..
    } = described(platform)?;
    // SAFETY: the doorbell window the device tree gives; identity registers.
    let (me, members) = unsafe { (read32(doorbell + REG_ID), read32(doorbell + REG_MEMBERS)) };
    if members != 2 || me > 1 {
        return Err(why!(
            "ivc-bench wants 2 members, this is member {me} of {members}"
        ));
    }
    let peer = 1 - me;
    // SAFETY: the statics are used by this vCPU only (the bench runs on vCPU 0).
    let (bufs, ticks) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(BUFFERS),
            &mut *core::ptr::addr_of_mut!(TICKS),
        )
    };
    let (a, b) = (
        bufs.0[0].as_mut_ptr() as usize,
        bufs.0[1].as_mut_ptr() as usize,
    );
    let words = BENCH_CHUNK / 8;
    let slot = |m: u32| region + m as usize * SLOT;
    for (i, t) in ticks.iter_mut().enumerate() {
        let seq = i as u64 + 1;
        let wait = if i == 0 { FIRST_WAIT_MS } else { WAIT_MS };
        let start = crate::arch::timer::now();
        if me == 0 {
            // SAFETY: this member's slot of the region.
            unsafe { write64(slot(me), seq) };
            fence(Ordering::SeqCst);
            ring(doorbell, peer);
        }
        if !wait_ring(doorbell, peer, wait) {
            return Err(why!(
                "member {me}: no ring from member {peer} in round {seq}"
            ));
        }
        // SAFETY: the peer's slot of the region.
        let got = unsafe { read64(slot(peer)) };
        if got != seq {
            return Err(why!("round {seq}: member {peer} wrote {got}"));
        }
        if me == 1 {
            // SAFETY: this member's slot of the region.
            unsafe { write64(slot(me), seq) };
            fence(Ordering::SeqCst);
            ring(doorbell, peer);
        }
        *t = crate::arch::timer::now().wrapping_sub(start);
    }
    let start = crate::arch::timer::now();
    for i in 0..BENCH_COPIES {
        if me == 0 {
            copy_words(region + BULK, a, words);
            fence(Ordering::SeqCst);
            ring(doorbell, peer);
        }
        if !wait_ring(doorbell, peer, WAIT_MS) {
            return Err(why!("member {me}: no ring in bulk copy {i}"));
        }
        if me == 1 {
            copy_words(b, region + BULK, words);
            fence(Ordering::SeqCst);
            ring(doorbell, peer);
        }
    }
    let channel_ticks = crate::arch::timer::now().wrapping_sub(start);
    if me == 1 {
        return Ok(());
    }
    let (median, p99) = median_p99(ticks);
    println!(
        "testguest: ivc-bench: round-trip median {median} ns p99 {p99} ns ({BENCH_ROUNDS} rounds)"
    );
    let bytes = (BENCH_COPIES * BENCH_CHUNK) as u64;
    println!(
        "testguest: ivc-bench: channel copy {} KiB/s ({BENCH_COPIES} x {BENCH_CHUNK} bytes)",
        kib_s(bytes, channel_ticks)
    );
    let start = crate::arch::timer::now();
    for _ in 0..BENCH_COPIES {
        copy_words(b, a, words);
        fence(Ordering::SeqCst);
        copy_words(a, b, words);
    }
    let local_ticks = crate::arch::timer::now().wrapping_sub(start);
    println!(
        "testguest: ivc-bench: local memcpy {} KiB/s (2 copies per transfer)",
        kib_s(bytes, local_ticks)
    );
    crate::arch::self_ipi_ticks(platform, ticks)?;
    let (median, p99) = median_p99(ticks);
    println!("testguest: ivc-bench: local self-ipi median {median} ns p99 {p99} ns ({BENCH_ROUNDS} rounds)");
    Ok(())
}
