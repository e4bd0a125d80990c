//! Accessors for memory-mapped device registers.
//!
//! On aarch64 each access is one plain `ldr`/`str` with a base register and no
//! writeback, as Linux's `readl`/`writel` are: a hypervisor emulating the device sees
//! a valid instruction syndrome (ESR ISV) for it. A compiler-chosen addressing mode
//! (pre-index writeback, pairs) would leave the access undecodable.
//!
//! On x86_64 each access is one `mov` between a general register and `[register]`
//! (byte, dword or qword), the plainest form a hypervisor decoding the
//! instruction behind a nested page fault must handle.

macro_rules! accessors {
    ($read:ident, $write:ident, $ty:ty, $ldr:literal, $str:literal, $reg:literal, $x86:literal, $x86reg:ident, $x86mod:literal) => {
        /// Reads the register at `addr`.
        ///
        /// # Safety
        /// `addr` must be an aligned device register (or RAM) the guest may read.
        pub unsafe fn $read(addr: usize) -> $ty {
            #[cfg(target_arch = "aarch64")]
            {
                let v: u64;
                // SAFETY: guaranteed by the caller; a single load.
                unsafe {
                    core::arch::asm!(concat!($ldr, " {v:", $reg, "}, [{a}]"), a = in(reg) addr, v = out(reg) v,
                        options(nostack, preserves_flags))
                };
                v as $ty
            }
            #[cfg(target_arch = "x86_64")]
            {
                let v: $ty;
                // SAFETY: guaranteed by the caller; a single load.
                unsafe {
                    core::arch::asm!(concat!("mov {v", $x86mod, "}, ", $x86, " ptr [{a}]"), a = in(reg) addr, v = out($x86reg) v,
                        options(nostack, preserves_flags))
                };
                v
            }
            #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
            // SAFETY: guaranteed by the caller.
            unsafe {
                (addr as *const $ty).read_volatile()
            }
        }

        /// Writes the register at `addr`.
        ///
        /// # Safety
        /// `addr` must be an aligned device register (or RAM) the guest may write, and
        /// the write must not break memory the program relies on.
        pub unsafe fn $write(addr: usize, value: $ty) {
            #[cfg(target_arch = "aarch64")]
            // SAFETY: guaranteed by the caller; a single store.
            unsafe {
                core::arch::asm!(concat!($str, " {v:", $reg, "}, [{a}]"), a = in(reg) addr, v = in(reg) value as u64,
                    options(nostack, preserves_flags))
            };
            #[cfg(target_arch = "x86_64")]
            // SAFETY: guaranteed by the caller; a single store.
            unsafe {
                core::arch::asm!(concat!("mov ", $x86, " ptr [{a}], {v", $x86mod, "}"), a = in(reg) addr, v = in($x86reg) value,
                    options(nostack, preserves_flags))
            };
            #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
            // SAFETY: guaranteed by the caller.
            unsafe {
                (addr as *mut $ty).write_volatile(value)
            }
        }
    };
}

accessors!(read8, write8, u8, "ldrb", "strb", "w", "byte", reg_byte, "");
accessors!(read32, write32, u32, "ldr", "str", "w", "dword", reg, ":e");
accessors!(read64, write64, u64, "ldr", "str", "x", "qword", reg, "");
