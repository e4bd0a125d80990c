//! Signals: how a device asks for service outside a guest's access to it, when its
//! work finishes elsewhere (a peer VM rang its doorbell, the host completed a
//! request, typed input arrived). Raising a device's [`Signal`] marks it on its
//! bus's [`SignalBoard`] and wakes the VM; a vCPU of the VM then calls
//! [`crate::devices::device::Device::service`] with the same context an access gets
//! (interrupt lines, guest memory, VM events) before it next enters the guest.
//!
//! Who is woken is the VMM's business: it gives the board a waker when it builds the
//! VM. Raising is lock-free, so it is safe from any CPU and from another VM's exit.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;

/// Most devices of one bus that can be signalled (one bit each).
pub const MAX_SIGNALLED: usize = 64;

/// The pending signals of one bus, and how to wake the VM they are for.
#[derive(Default)]
pub struct SignalBoard {
    pending: AtomicU64,
    /// `wake(target)`: makes a vCPU of the VM look (a kick of its CPU).
    waker: Once<(fn(u64), u64)>,
}

impl SignalBoard {
    /// Sets how raising a signal wakes the VM (once; later calls change nothing).
    pub fn set_waker(&self, wake: fn(u64), target: u64) {
        self.waker.call_once(|| (wake, target));
    }

    /// Is any signal pending? (A load: cheap enough for every vCPU loop turn.)
    pub fn any(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// The pending signals (bit i = device i), cleared.
    pub fn take(&self) -> u64 {
        self.pending.swap(0, Ordering::AcqRel)
    }

    fn raise(&self, bit: u32) {
        let before = self.pending.fetch_or(1 << bit, Ordering::AcqRel);
        // Only the first raise since the last service needs to wake anyone.
        if before == 0 {
            if let Some((wake, target)) = self.waker.get() {
                wake(*target);
            }
        }
    }
}

/// One device's signal: cheap to clone, and to hand to whoever finishes its work.
#[derive(Clone)]
pub struct Signal {
    board: Arc<SignalBoard>,
    bit: u32,
}

impl Signal {
    /// The signal of device `id` on `board`; None past [`MAX_SIGNALLED`].
    pub fn new(board: &Arc<SignalBoard>, id: usize) -> Option<Self> {
        (id < MAX_SIGNALLED).then(|| Self {
            board: board.clone(),
            bit: id as u32,
        })
    }

    /// Asks for the device to be served on a vCPU of its VM.
    pub fn raise(&self) {
        self.board.raise(self.bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU64;

    static WOKEN: AtomicU64 = AtomicU64::new(0);

    fn wake(target: u64) {
        WOKEN.fetch_add(target, Ordering::Relaxed);
    }

    #[test]
    fn a_raise_marks_the_device_and_wakes_the_vm_once() {
        let board = Arc::new(SignalBoard::default());
        let a = Signal::new(&board, 0).unwrap();
        let b = Signal::new(&board, 63).unwrap();
        assert!(Signal::new(&board, 64).is_none());
        // Without a waker a raise is only marked.
        a.raise();
        assert!(board.any());
        assert_eq!(board.take(), 1);
        assert!(!board.any());
        board.set_waker(wake, 100);
        board.set_waker(wake, 5); // the first waker stays
        a.raise();
        b.raise();
        a.clone().raise();
        assert_eq!(WOKEN.load(Ordering::Relaxed), 100, "one wake until served");
        assert_eq!(board.take(), 1 | 1 << 63);
        b.raise();
        assert_eq!(WOKEN.load(Ordering::Relaxed), 200);
    }
}
