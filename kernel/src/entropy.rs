//! Seeds for the guests' random number generators.
//!
//! A guest kernel without entropy at boot makes its own: Linux then spends a large
//! part of its boot mixing timer jitter (riscv64 Linux under QEMU: about 150 million
//! instructions of BLAKE2s and ChaCha before its RNG is ready, a seventh of its boot)
//! where a bare boot got a seed from the firmware. So the hypervisor does what boot
//! firmware does: it puts a seed in every generated guest device tree
//! (`/chosen/rng-seed`, 64 bytes).
//!
//! The seeds come from the firmware's own `/chosen/rng-seed` (QEMU and U-Boot pass
//! one): it is hashed into a pool once, and each guest seed is SHA-512 of the pool,
//! a draw counter, the VM's id and the host's counter, so that no two seeds are
//! alike and none reveals the pool or another VM's seed. Without a firmware seed the
//! guests get none (as before).

use sha2::{Digest, Sha512};
use spin::Mutex;

/// Bytes of a guest's `/chosen/rng-seed`.
pub const SEED_LEN: usize = 64;

/// The secret every guest seed is derived from.
pub struct Pool {
    key: [u8; SEED_LEN],
    draws: u64,
}

impl Pool {
    /// A pool of `material` (the firmware's seed); None when there is none.
    pub fn new(material: &[u8]) -> Option<Self> {
        if material.is_empty() {
            return None;
        }
        let mut h = Sha512::new();
        h.update(b"hypervisor entropy pool");
        h.update(material);
        Some(Self {
            key: h.finalize().into(),
            draws: 0,
        })
    }

    /// The next seed for VM `vm_id`; `salt` is mixed in too (the host's counter).
    pub fn draw(&mut self, vm_id: u64, salt: u64) -> [u8; SEED_LEN] {
        self.draws += 1;
        let mut h = Sha512::new();
        h.update(b"hypervisor guest rng-seed");
        h.update(self.key);
        h.update(self.draws.to_le_bytes());
        h.update(vm_id.to_le_bytes());
        h.update(salt.to_le_bytes());
        h.finalize().into()
    }
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Sets the pool from the firmware's seed (at boot; an empty seed changes nothing).
pub fn init(material: &[u8]) {
    if let Some(p) = Pool::new(material) {
        *POOL.lock() = Some(p);
    }
}

/// A fresh seed for VM `vm_id`'s device tree, or None when the firmware gave none.
pub fn guest_seed(vm_id: u64, salt: u64) -> Option<[u8; SEED_LEN]> {
    POOL.lock().as_mut().map(|p| p.draw(vm_id, salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_material_no_pool() {
        assert!(Pool::new(&[]).is_none());
    }

    #[test]
    fn seeds_differ_by_draw_vm_and_material() {
        let mut a = Pool::new(&[7; 32]).unwrap();
        let s1 = a.draw(1, 0);
        let s2 = a.draw(1, 0);
        assert_ne!(s1, s2, "every draw is new");
        let mut b = Pool::new(&[7; 32]).unwrap();
        assert_eq!(b.draw(1, 0), s1, "deterministic in its inputs");
        let mut c = Pool::new(&[7; 32]).unwrap();
        assert_ne!(c.draw(2, 0), s1, "another VM");
        let mut d = Pool::new(&[8; 32]).unwrap();
        assert_ne!(d.draw(1, 0), s1, "another firmware seed");
        let mut e = Pool::new(&[7; 32]).unwrap();
        assert_ne!(e.draw(1, 5), s1, "another salt");
        assert!(
            !s1.windows(32).any(|w| w == [7; 32]),
            "the material is not copied"
        );
        assert_ne!(s1, [0; SEED_LEN]);
    }
}
