//! ivc-axvisor (boot argument `ivc-axvisor=publish` or `ivc-axvisor=subscribe:<vm id>`):
//! an inter-VM channel made the way a guest written for AxVisor makes it, by
//! AxVisor's hypercalls (3 publish, 4 subscribe, 5 unpublish, 6 unsubscribe; answer
//! 0 or -1), with no device tree node and no doorbell: the peers poll the region.
//!
//! The publisher publishes [`KEY`] asking for [`ASKED`] bytes and must get a whole
//! page more, in its IVC window, starting with AxVisor's header (its VM id, the key).
//! It writes a message (a sequence number, [`WORDS`] words and their checksum) and
//! then [`READY`]; the subscriber, which retries subscribing until the channel is
//! published, finds the same header, checks the message, writes its answer and
//! [`ANSWERED`]; the publisher checks the answer, writes [`BYE`] and unpublishes.
//! The subscriber still reads the message after [`BYE`] (the region stays with it)
//! and unsubscribes. On the way each refuses what AxVisor refuses: a size of 0, an
//! answer pointer outside RAM, a key published twice, a second subscription, an
//! unknown publisher, unpublishing or unsubscribing what is not there.

use core::sync::atomic::{fence, Ordering};

use crate::arch::firmware::axvisor_call;
use crate::console::println;
use crate::mmio::{read64, write64};
use crate::platform::Platform;
use crate::why::{why, CheckResult};

const PUBLISH: u64 = 3;
const SUBSCRIBE: u64 = 4;
const UNPUBLISH: u64 = 5;
const UNSUBSCRIBE: u64 = 6;

/// The channel's key.
pub const KEY: u64 = 0x7e57_0000_00a5_0001;
/// Bytes the publisher asks for (the answer is rounded up to a page).
const ASKED: u64 = 0x1800;
const GIVEN: u64 = 0x2000;
/// Flags after AxVisor's header (publisher VM id, key: 16 bytes), each written last.
const READY_AT: usize = 0x10;
const ANSWERED_AT: usize = 0x18;
const BYE_AT: usize = 0x20;
const READY: u64 = 0x5245_4144_595f_7075; // "READY_pu"
const ANSWERED: u64 = 0x414e_5357_5f73_7562; // "ANSW_sub"
const BYE: u64 = 0x4259_455f_7075_6221; // "BYE_pub!"
/// Where each side's message goes.
const PUB_SLOT: usize = 0x100;
const SUB_SLOT: usize = 0x1000;
const WORDS: usize = 32;
/// The peer boots at the same time as this VM, on another CPU.
const WAIT_MS: u64 = 60_000;

/// The words the hypervisor answers `&base` and `&size` into: this guest's RAM
/// (identity-mapped: a static's address is its guest-physical address).
static mut ANSWER: [u64; 2] = [0; 2];

fn answer_ptrs() -> (u64, u64) {
    let base = core::ptr::addr_of_mut!(ANSWER) as u64;
    (base, base + 8)
}

fn answer() -> (u64, u64) {
    let (b, s) = answer_ptrs();
    // SAFETY: this guest's own static, written by the hypervisor during the call.
    unsafe { (read64(b as usize), read64(s as usize)) }
}

fn set_size(size: u64) {
    let (_, s) = answer_ptrs();
    // SAFETY: as above.
    unsafe { write64(s as usize, size) };
}

/// The role of `ivc-axvisor=<role>`: None for publish, Some(publisher id) for
/// subscribe.
pub fn requested(bootargs: &str) -> Option<Option<u64>> {
    bootargs
        .split_ascii_whitespace()
        .find_map(|w| match w.strip_prefix("ivc-axvisor=")? {
            "publish" => Some(None),
            v => Some(Some(v.strip_prefix("subscribe:")?.parse().ok()?)),
        })
}

fn word(sender: u64, seq: u64, i: usize) -> u64 {
    (seq ^ sender << 56 ^ (i as u64) << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn write_message(at: usize, sender: u64, seq: u64) {
    let mut sum = 0u64;
    for i in 0..WORDS {
        let w = word(sender, seq, i);
        sum = sum.wrapping_add(w).rotate_left(3);
        // SAFETY: the channel's region, mapped read-write for this VM.
        unsafe { write64(at + 8 + 8 * i, w) };
    }
    // SAFETY: as above.
    unsafe {
        write64(at + 8 + 8 * WORDS, sum);
        write64(at, seq);
    }
}

fn check_message(at: usize, sender: u64, seq: u64) -> CheckResult {
    let mut sum = 0u64;
    // SAFETY: the channel's region, mapped for this VM.
    let got_seq = unsafe { read64(at) };
    for i in 0..WORDS {
        // SAFETY: as above.
        let w = unsafe { read64(at + 8 + 8 * i) };
        if w != word(sender, seq, i) {
            return Err(why!("word {i} of VM {sender}'s message is {w:#x}"));
        }
        sum = sum.wrapping_add(w).rotate_left(3);
    }
    // SAFETY: as above.
    let got_sum = unsafe { read64(at + 8 + 8 * WORDS) };
    if (got_seq, got_sum) != (seq, sum) {
        return Err(why!(
            "VM {sender}'s message has sequence {got_seq:#x} and checksum {got_sum:#x}, not {seq:#x} and {sum:#x}"
        ));
    }
    Ok(())
}

fn wait_flag(at: usize, value: u64, what: &str) -> CheckResult {
    // SAFETY: the channel's region, mapped for this VM.
    if !crate::time::wait_until(WAIT_MS, || unsafe { read64(at) } == value) {
        return Err(why!("no {what} from the peer in {WAIT_MS} ms"));
    }
    fence(Ordering::SeqCst);
    Ok(())
}

/// A call that must be refused (-1).
fn refused(what: &str, code: u64, args: [u64; 4]) -> CheckResult {
    match axvisor_call(code, args) {
        -1 => Ok(()),
        r => Err(why!("{what} was answered {r}, not -1")),
    }
}

/// The header at `base` is (`publisher`, [`KEY`]).
fn check_header(base: usize, publisher: u64) -> CheckResult {
    // SAFETY: the region just mapped for this VM.
    let (id, key) = unsafe { (read64(base), read64(base + 8)) };
    if (id, key) != (publisher, KEY) {
        return Err(why!(
            "the region's header is VM {id}, key {key:#x}; expected VM {publisher}, key {KEY:#x}"
        ));
    }
    Ok(())
}

/// Runs this VM's side.
pub fn run(platform: &Platform, role: Option<u64>) -> CheckResult {
    let me = crate::arch::firmware::hv_info()
        .map_err(|_| why!("HV_INFO is undefined: no hypervisor"))?[2];
    let ram_end = platform
        .ram_end()
        .ok_or_else(|| why!("no RAM in the device tree"))?;
    match role {
        None => publisher(me, ram_end),
        Some(publisher_id) => subscriber(me, publisher_id),
    }
}

fn publisher(me: u64, ram_end: u64) -> CheckResult {
    let (b, s) = answer_ptrs();
    set_size(0);
    refused("publish of size 0", PUBLISH, [KEY, b, s, 0])?;
    set_size(ASKED);
    refused(
        "publish answering past RAM",
        PUBLISH,
        [KEY, b, ram_end - 4, 0],
    )?;
    refused(
        "unpublish of a key never published",
        UNPUBLISH,
        [KEY, 0, 0, 0],
    )?;
    match axvisor_call(PUBLISH, [KEY, b, s, 0]) {
        0 => {}
        r => return Err(why!("publish answered {r}")),
    }
    let (base, size) = answer();
    println!("testguest: ivc-axvisor: published key {KEY:#x} at {base:#x}, {size:#x} bytes");
    if size != GIVEN {
        return Err(why!(
            "asked {ASKED:#x} bytes, given {size:#x}, not {GIVEN:#x}"
        ));
    }
    let base = base as usize;
    check_header(base, me)?;
    refused("a second publish of the key", PUBLISH, [KEY, b, s, 0])?;
    write_message(base + PUB_SLOT, me, 1);
    fence(Ordering::SeqCst);
    // SAFETY: the region, mapped read-write for this VM.
    unsafe { write64(base + READY_AT, READY) };
    wait_flag(base + ANSWERED_AT, ANSWERED, "answer")?;
    // SAFETY: as above (the subscriber's VM id, after its answer).
    let peer = unsafe { read64(base + SUB_SLOT + 8 + 8 * WORDS + 8) };
    check_message(base + SUB_SLOT, peer, 2)?;
    println!("testguest: ivc-axvisor: VM {peer}'s answer checked");
    // SAFETY: as above.
    unsafe { write64(base + BYE_AT, BYE) };
    fence(Ordering::SeqCst);
    match axvisor_call(UNPUBLISH, [KEY, 0, 0, 0]) {
        0 => {}
        r => return Err(why!("unpublish answered {r}")),
    }
    refused("a second unpublish", UNPUBLISH, [KEY, 0, 0, 0])?;
    println!("testguest: ivc-axvisor: unpublished");
    Ok(())
}

fn subscriber(me: u64, publisher: u64) -> CheckResult {
    let (b, s) = answer_ptrs();
    refused("subscribe to VM 999", SUBSCRIBE, [999, KEY, b, s])?;
    refused(
        "unsubscribe from what is not subscribed",
        UNSUBSCRIBE,
        [publisher, KEY, 0, 0],
    )?;
    // Until the publisher has published.
    let mut tries = 0u64;
    let subscribed = crate::time::wait_until(WAIT_MS, || {
        tries += 1;
        let r = axvisor_call(SUBSCRIBE, [publisher, KEY, b, s]) == 0;
        if !r {
            crate::time::wait_until(100, || false);
        }
        r
    });
    if !subscribed {
        return Err(why!(
            "VM {publisher}'s key {KEY:#x} was not published in {WAIT_MS} ms ({tries} tries)"
        ));
    }
    let (base, size) = answer();
    println!(
        "testguest: ivc-axvisor: subscribed to VM {publisher}'s key {KEY:#x} at {base:#x}, {size:#x} bytes"
    );
    if size != GIVEN {
        return Err(why!("the region is {size:#x} bytes, not {GIVEN:#x}"));
    }
    let base = base as usize;
    check_header(base, publisher)?;
    refused("a second subscribe", SUBSCRIBE, [publisher, KEY, b, s])?;
    wait_flag(base + READY_AT, READY, "message")?;
    check_message(base + PUB_SLOT, publisher, 1)?;
    println!("testguest: ivc-axvisor: VM {publisher}'s message checked");
    write_message(base + SUB_SLOT, me, 2);
    // SAFETY: the region, mapped read-write for this VM: who answered, then the flag.
    unsafe { write64(base + SUB_SLOT + 8 + 8 * WORDS + 8, me) };
    fence(Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { write64(base + ANSWERED_AT, ANSWERED) };
    wait_flag(base + BYE_AT, BYE, "goodbye")?;
    // The publisher unpublishes now; the region stays with this VM until it goes.
    crate::time::wait_until(200, || false);
    check_message(base + PUB_SLOT, publisher, 1)?;
    match axvisor_call(UNSUBSCRIBE, [publisher, KEY, 0, 0]) {
        0 => {}
        r => return Err(why!("unsubscribe answered {r}")),
    }
    refused("a second unsubscribe", UNSUBSCRIBE, [publisher, KEY, 0, 0])?;
    println!("testguest: ivc-axvisor: unsubscribed");
    Ok(())
}
