//! The PLIC, as an ordinary guest drives it: this hart's supervisor context found
//! through the device tree (`interrupts-extended` entries naming the hart's
//! `riscv,cpu-intc` with interrupt 9), threshold 0, a source given priority 1 and
//! enabled, claim and complete. `init_and_test` raises the console UART's "THR empty"
//! interrupt once and waits for it to arrive through the PLIC as a supervisor
//! external interrupt.

use core::arch::asm;

use crate::checks;
use crate::console::UartKind;
use crate::fdt::Node;
use crate::mmio;
use crate::platform::Platform;
use crate::shared::Shared;
use crate::time;
use crate::why::{why, CheckResult};

const PLIC: [&str; 2] = COMPATIBLE;
/// The PLIC's compatible strings.
pub const COMPATIBLE: [&str; 2] = ["riscv,plic0", "sifive,plic-1.0.0"];
/// Local interrupt number of the supervisor external interrupt.
const IRQ_S_EXT: u32 = 9;
const ENABLE_BASE: usize = 0x2000;
const ENABLE_STRIDE: usize = 0x80;
const CONTEXT_BASE: usize = 0x20_0000;
const CONTEXT_STRIDE: usize = 0x1000;
/// sie.SEIE.
const SEIE: u64 = 1 << 9;
/// 16550 registers and bits.
const UART_IER: usize = 1;
const UART_IIR: usize = 2;
const IER_THRI: u8 = 1 << 1;
/// How long the test interrupt may take, in milliseconds.
const DEADLINE_MS: u64 = 1000;

/// PLIC base, this hart's context and the UART's source, once found.
static BASE: Shared = Shared::new(0);
static CONTEXT: Shared = Shared::new(0);
static UART_SOURCE: Shared = Shared::new(0);
static UART_BASE: Shared = Shared::new(0);
static UART_SHIFT: Shared = Shared::new(0);
/// The last source claimed by the handler.
static CLAIMED: Shared = Shared::new(0);

fn reg(offset: usize) -> usize {
    BASE.get() as usize + offset
}

fn claim_reg() -> usize {
    reg(CONTEXT_BASE + CONTEXT.get() as usize * CONTEXT_STRIDE + 4)
}

fn threshold_reg() -> usize {
    reg(CONTEXT_BASE + CONTEXT.get() as usize * CONTEXT_STRIDE)
}

fn enable_reg(source: u32) -> usize {
    reg(ENABLE_BASE + CONTEXT.get() as usize * ENABLE_STRIDE + (source as usize / 32) * 4)
}

fn uart_reg(r: usize) -> usize {
    UART_BASE.get() as usize + (r << UART_SHIFT.get())
}

/// The `phandle` of the interrupt controller of the CPU node with `reg` = `hart`.
fn hart_intc(platform: &Platform, hart: u64) -> Option<u32> {
    let cpus = platform.fdt.find("/cpus")?;
    let cpu = cpus
        .children()
        .find(|c| c.reg().next().map(|r| r.0) == Some(hart))?;
    let intc = cpu.children().find(|c| c.is_compatible("riscv,cpu-intc"))?;
    intc.prop_u32("phandle")
}

/// The context of the PLIC `node` wired to `intc`'s supervisor external interrupt.
fn s_context(node: &Node, intc: u32) -> Option<u64> {
    let cells = node.prop("interrupts-extended")?;
    cells
        .chunks_exact(8)
        .map(|c| {
            (
                u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .position(|pair| pair == (intc, IRQ_S_EXT))
        .map(|i| i as u64)
}

/// The PLIC's base and this hart's supervisor context.
pub fn find(platform: &Platform) -> Option<(u64, u64)> {
    let node = platform.fdt.find_compatible(&PLIC)?;
    let (base, _) = node.reg().next()?;
    let intc = hart_intc(platform, super::cpu_hw_id())?;
    Some((base, s_context(&node, intc)?))
}

/// The console UART's PLIC source.
fn uart_source(platform: &Platform) -> Option<u32> {
    let path = platform.fdt.find("/chosen")?.prop_str("stdout-path")?;
    let node = platform.fdt.find(path.split(':').next().unwrap_or(path))?;
    node.prop_u32("interrupts")
}

/// Sets the PLIC up for this hart and raises one UART interrupt through it.
pub fn init_and_test(platform: &Platform) -> CheckResult {
    let (base, context) =
        find(platform).ok_or_else(|| why!("no PLIC context for this hart's S-mode"))?;
    BASE.set(base);
    CONTEXT.set(context);
    let uart = platform
        .uart
        .filter(|u| u.kind == UartKind::Ns16550)
        .ok_or_else(|| why!("no 16550 console to raise a test interrupt with"))?;
    let source = uart_source(platform).ok_or_else(|| why!("the console has no interrupt"))?;
    UART_SOURCE.set(u64::from(source));
    UART_BASE.set(uart.base);
    UART_SHIFT.set(u64::from(uart.reg_shift));
    // SAFETY (all register accesses below): PLIC and UART registers the device tree
    // names, accessed as 32-bit (PLIC) and 8-bit (UART) words.
    unsafe {
        mmio::write32(threshold_reg(), 0);
        mmio::write32(reg(4 * source as usize), 1);
        let claimed = mmio::read32(claim_reg());
        if claimed != 0 {
            mmio::write32(claim_reg(), claimed);
            return Err(why!(
                "source {claimed} was pending before anything was enabled"
            ));
        }
        let enable = mmio::read32(enable_reg(source));
        mmio::write32(enable_reg(source), enable | 1 << (source % 32));
    }
    CLAIMED.set(0);
    // SAFETY: enabling external interrupts on this hart; the handler is installed.
    unsafe { asm!("csrs sie, {}", in(reg) SEIE, options(nomem, nostack)) };
    super::irq::enable();
    // SAFETY: as above; THR is empty, so this raises the "THR empty" interrupt.
    unsafe { mmio::write8(uart_reg(UART_IER), IER_THRI) };
    let arrived = time::wait_until(DEADLINE_MS, || CLAIMED.get() != 0);
    super::irq::disable();
    // SAFETY: as above.
    unsafe {
        asm!("csrc sie, {}", in(reg) SEIE, options(nomem, nostack));
        mmio::write8(uart_reg(UART_IER), 0);
        let enable = mmio::read32(enable_reg(source));
        mmio::write32(enable_reg(source), enable & !(1 << (source % 32)));
    }
    match CLAIMED.get() {
        _ if !arrived => Err(why!(
            "the UART's interrupt (PLIC source {source}) did not arrive within {DEADLINE_MS} ms"
        )),
        c if c == u64::from(source) => Ok(()),
        c => Err(why!("claimed source {c}, expected {source}")),
    }
}

/// The supervisor external interrupt: claim, serve the UART, complete.
pub fn handle() {
    // SAFETY: this hart's claim register, found by `init_and_test`.
    let id = unsafe { mmio::read32(claim_reg()) };
    if id == 0 {
        checks::timer::on_spurious_interrupt();
        return;
    }
    if u64::from(id) == UART_SOURCE.get() {
        // SAFETY: reading IIR acknowledges "THR empty"; IER = 0 keeps it from coming
        // back.
        unsafe {
            let _ = mmio::read8(uart_reg(UART_IIR));
            mmio::write8(uart_reg(UART_IER), 0);
        }
        CLAIMED.set(u64::from(id));
    } else {
        checks::timer::on_other_interrupt(id);
    }
    // SAFETY: completing the claimed source.
    unsafe { mmio::write32(claim_reg(), id) };
}
