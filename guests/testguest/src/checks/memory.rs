//! memory: every 4 KiB page of the RAM the device tree reports can be written and read
//! back, except the pages holding the guest's own image (with its stacks), the
//! device tree and `/reserved-memory` (firmware's own, as OpenSBI's on plain QEMU).
//!
//! Under this project's hypervisor every such page must first read as zero: a VM's
//! RAM holds nothing of whoever used that host memory before (also after a reset).
//!
//! All pages are written first and verified afterwards, so two guest addresses backed
//! by the same host memory show up (the later write wins over the earlier). The pattern
//! depends on the address and on a per-run seed (the counter and, when the hypervisor
//! tells it, the VM id), so another VM writing the same guest-physical addresses with
//! its own seed cannot leave the expected values behind by chance.

use crate::arch;
use crate::console::println;
use crate::image;
use crate::platform::{Platform, Region};
use crate::why::{why, CheckResult};

const PAGE: u64 = 4096;
const WORD: u64 = 8;

/// The value expected at `addr`: distinct for distinct addresses (a multiplication by
/// an odd constant and an xor-shift are both one-to-one).
fn pattern(addr: u64, seed: u64) -> u64 {
    let x = (addr ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// A seed that differs between runs and between VMs.
fn seed() -> u64 {
    let vm = arch::firmware::hv_info().map(|info| info[2]).unwrap_or(0);
    arch::timer::now().rotate_left(17) ^ vm.wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Whether `page` is one not to touch: the image, the device tree or reserved memory.
fn skipped(platform: &Platform, page: &Region) -> bool {
    reserved(platform).iter().any(|r| r.overlaps(page))
        || platform.reserved().iter().any(|r| r.overlaps(page))
}

/// Pages not to touch: the image and the device tree, widened to whole pages.
fn reserved(platform: &Platform) -> [Region; 2] {
    [image::region(), platform.dtb].map(|r| {
        let base = r.base & !(PAGE - 1);
        let end = r.end().saturating_add(PAGE - 1) & !(PAGE - 1);
        Region {
            base,
            size: end.saturating_sub(base),
        }
    })
}

/// Calls `visit` with the address of every testable page.
fn for_each_page(platform: &Platform, mut visit: impl FnMut(u64) -> CheckResult) -> CheckResult {
    for region in platform.memory() {
        let mut page = region.base.saturating_add(PAGE - 1) & !(PAGE - 1);
        while page.saturating_add(PAGE) <= region.end() {
            let this = Region {
                base: page,
                size: PAGE,
            };
            if !skipped(platform, &this) {
                visit(page)?;
            }
            page += PAGE;
        }
    }
    Ok(())
}

fn write_page(page: u64, seed: u64) {
    for addr in (page..page + PAGE).step_by(WORD as usize) {
        // SAFETY: `page` is guest RAM the device tree reports, outside the image (code,
        // data, stacks) and the device tree, so nothing the program uses lives there.
        unsafe { crate::mmio::write64(addr as usize, pattern(addr, seed)) };
    }
}

fn verify_page(page: u64, seed: u64) -> CheckResult {
    for addr in (page..page + PAGE).step_by(WORD as usize) {
        // SAFETY: as in `write_page`.
        let got = unsafe { crate::mmio::read64(addr as usize) };
        let want = pattern(addr, seed);
        if got != want {
            return Err(why!("word at {addr:#x} reads {got:#x}, wrote {want:#x}"));
        }
    }
    Ok(())
}

/// Every word of `page` reads as zero.
fn verify_zero(page: u64) -> CheckResult {
    for addr in (page..page + PAGE).step_by(WORD as usize) {
        // SAFETY: as in `write_page` (a read only).
        let got = unsafe { crate::mmio::read64(addr as usize) };
        if got != 0 {
            return Err(why!(
                "word at {addr:#x} reads {got:#x} at boot: RAM not zeroed for this VM"
            ));
        }
    }
    Ok(())
}

/// Does this project's hypervisor run the guest (it promises zeroed RAM)?
fn under_our_hypervisor() -> bool {
    arch::firmware::hv_info().is_ok_and(|info| info[1] == arch::HV_INFO_MAGIC)
}

/// Runs the check.
pub fn run(platform: &Platform) -> CheckResult {
    if under_our_hypervisor() {
        for_each_page(platform, verify_zero)?;
    }
    let seed = seed();
    let mut pages = 0u64;
    for_each_page(platform, |page| {
        write_page(page, seed);
        pages += 1;
        Ok(())
    })?;
    arch::barrier();
    for_each_page(platform, |page| verify_page(page, seed))?;
    if pages == 0 {
        return Err(why!("no RAM page outside the image and the device tree"));
    }
    let total: u64 = platform.memory().iter().map(|r| r.size / PAGE).sum();
    println!("testguest: memory: {pages} of {total} pages written and read back");
    Ok(())
}
