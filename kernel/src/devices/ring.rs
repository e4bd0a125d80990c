//! The byte FIFO behind the emulated UARTs' receive FIFOs and transmit buffers.

/// A fixed-size byte ring: pushes fail when it is full (the caller decides whether
/// that drops the byte or tells the sender to wait).
#[derive(Clone, Debug)]
pub struct Ring<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Ring<N> {
    /// An empty ring (`const` so the UARTs' `new` stay `const`).
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `b`; `false` (byte not taken) when the ring is full.
    pub fn push(&mut self, b: u8) -> bool {
        if self.len == N {
            return false;
        }
        self.buf[(self.head + self.len) % N] = b;
        self.len += 1;
        true
    }

    /// The oldest byte, left in place.
    pub fn peek(&self) -> Option<u8> {
        (self.len != 0).then(|| self.buf[self.head])
    }

    /// The oldest byte, removed.
    pub fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(b)
    }

    /// Drops every byte held.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_full_and_wraparound() {
        let mut r = Ring::<3>::new();
        assert!(r.is_empty());
        assert_eq!(r.pop(), None);
        assert!(r.push(1) && r.push(2) && r.push(3));
        assert!(!r.push(4), "full");
        assert_eq!(r.len(), 3);
        assert_eq!(r.pop(), Some(1));
        assert!(r.push(4), "wraps around");
        assert_eq!(
            (r.pop(), r.pop(), r.pop(), r.pop()),
            (Some(2), Some(3), Some(4), None)
        );
        assert!(r.push(5));
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.pop(), None);
    }
}
