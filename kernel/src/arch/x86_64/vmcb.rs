//! The virtual machine control block (AMD APM vol. 2, appendix B): one 4 KiB page per
//! vCPU, the control area (what exits, the nested page tables, event injection) and
//! the guest's saved state. Kept as bytes with named offsets, so the layout is the
//! manual's and every field is checked on the host; [`Vmcb::multiboot`] is the state a
//! vCPU starts in: how QEMU starts a Multiboot (v1) kernel.
//!
//! Used by `vcpu`, which no VM reaches yet (VM creation is refused).

/// Control-area offsets.
pub mod ctl {
    pub const INTERCEPT_CR: usize = 0x000;
    pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
    pub const INTERCEPT_MISC1: usize = 0x00c;
    pub const INTERCEPT_MISC2: usize = 0x010;
    pub const IOPM_BASE_PA: usize = 0x040;
    pub const MSRPM_BASE_PA: usize = 0x048;
    pub const TSC_OFFSET: usize = 0x050;
    pub const ASID: usize = 0x058;
    pub const TLB_CONTROL: usize = 0x05c;
    pub const V_INTR: usize = 0x060;
    pub const INTERRUPT_SHADOW: usize = 0x068;
    pub const EXITCODE: usize = 0x070;
    pub const EXITINFO1: usize = 0x078;
    pub const EXITINFO2: usize = 0x080;
    pub const EXITINTINFO: usize = 0x088;
    pub const NP_ENABLE: usize = 0x090;
    pub const EVENTINJ: usize = 0x0a8;
    pub const N_CR3: usize = 0x0b0;
    pub const CLEAN_BITS: usize = 0x0c0;
    pub const NRIP: usize = 0x0c8;
}

/// Save-area offsets (from the start of the VMCB).
pub mod save {
    pub const ES: usize = 0x400;
    pub const CS: usize = 0x410;
    pub const SS: usize = 0x420;
    pub const DS: usize = 0x430;
    pub const FS: usize = 0x440;
    pub const GS: usize = 0x450;
    pub const GDTR: usize = 0x460;
    pub const LDTR: usize = 0x470;
    pub const IDTR: usize = 0x480;
    pub const TR: usize = 0x490;
    pub const CPL: usize = 0x4cb;
    pub const EFER: usize = 0x4d0;
    pub const CR4: usize = 0x548;
    pub const CR3: usize = 0x550;
    pub const CR0: usize = 0x558;
    pub const DR7: usize = 0x560;
    pub const DR6: usize = 0x568;
    pub const RFLAGS: usize = 0x570;
    pub const RIP: usize = 0x578;
    pub const RSP: usize = 0x5d8;
    pub const RAX: usize = 0x5f8;
    pub const CR2: usize = 0x640;
    pub const G_PAT: usize = 0x668;
}

/// INTERCEPT_MISC1 bits.
pub mod misc1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    /// A virtual interrupt (V_IRQ) the guest can take now: the interrupt window.
    pub const VINTR: u32 = 1 << 4;
    pub const INIT: u32 = 1 << 3;
    pub const CPUID: u32 = 1 << 18;
    /// INVD would drop dirty cache lines of the host's memory too.
    pub const INVD: u32 = 1 << 22;
    pub const HLT: u32 = 1 << 24;
    /// INVLPGA names any ASID: another VM's TLB entries.
    pub const INVLPGA: u32 = 1 << 26;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// INTERCEPT_MISC2 bits.
pub mod misc2 {
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    /// RDTSCP reads TSC_AUX, which VMRUN does not switch: emulated.
    pub const RDTSCP: u32 = 1 << 7;
    /// WBINVD (QEMU reports INVD with this exit too): a no-op for the guest.
    pub const WBINVD: u32 = 1 << 9;
    pub const MONITOR: u32 = 1 << 10;
    pub const MWAIT: u32 = 1 << 11;
    pub const MWAIT_ARMED: u32 = 1 << 12;
    pub const XSETBV: u32 = 1 << 13;
}

/// What a guest's entry into 32-bit protected mode needs beyond the VMCB's control.
pub const MULTIBOOT_MAGIC: u32 = 0x2bad_b002;
const EFER_SVME: u64 = 1 << 12;
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
/// The power-on PAT.
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
/// Segment attributes (the VMCB's packed form: access byte in 7:0, AVL/L/DB/G in
/// 11:8): flat 32-bit code and data, a busy 32-bit TSS, an LDT.
pub const ATTR_CODE32: u16 = 0xc9b;
pub const ATTR_DATA32: u16 = 0xc93;
const ATTR_TSS32_BUSY: u16 = 0x08b;
const ATTR_LDT: u16 = 0x082;
/// Real-mode code and data: present, accessed, 16-bit.
const ATTR_CODE16: u16 = 0x09b;
const ATTR_DATA16: u16 = 0x093;

/// One VMCB.
#[repr(C, align(4096))]
pub struct Vmcb(pub [u8; 4096]);

/// Where a vCPU's VMCB points: its ASID, nested tables and permission maps.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub asid: u32,
    pub ncr3: u64,
    pub iopm_pa: u64,
    pub msrpm_pa: u64,
}

impl Vmcb {
    pub const fn zeroed() -> Self {
        Self([0; 4096])
    }

    pub fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.0[off], self.0[off + 1]])
    }
    pub fn u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_le_bytes(b)
    }
    pub fn u64(&self, off: usize) -> u64 {
        let mut b = [0; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_le_bytes(b)
    }
    pub fn set_u16(&mut self, off: usize, v: u16) {
        self.0[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A segment register of the save area: selector, attributes, limit, base.
    pub fn set_segment(&mut self, at: usize, selector: u16, attr: u16, limit: u32, base: u64) {
        self.set_u16(at, selector);
        self.set_u16(at + 2, attr);
        self.set_u32(at + 4, limit);
        self.set_u64(at + 8, base);
    }

    /// The control area every vCPU has: what exits (interrupts, NMI, INIT, CPUID,
    /// INVD, HLT, INVLPGA, port I/O and MSRs through the maps, shutdown, every SVM
    /// instruction, RDTSCP, WBINVD, MONITOR/MWAIT, XSETBV) and the VM's nested
    /// paging.
    pub fn control(&mut self, s: &Setup) {
        use misc1 as m1;
        use misc2 as m2;
        self.set_u32(
            ctl::INTERCEPT_MISC1,
            m1::INTR
                | m1::NMI
                | m1::INIT
                | m1::CPUID
                | m1::INVD
                | m1::HLT
                | m1::INVLPGA
                | m1::IOIO_PROT
                | m1::MSR_PROT
                | m1::SHUTDOWN,
        );
        self.set_u32(
            ctl::INTERCEPT_MISC2,
            m2::VMRUN
                | m2::VMMCALL
                | m2::VMLOAD
                | m2::VMSAVE
                | m2::STGI
                | m2::CLGI
                | m2::SKINIT
                | m2::RDTSCP
                | m2::WBINVD
                | m2::MONITOR
                | m2::MWAIT
                | m2::MWAIT_ARMED
                | m2::XSETBV,
        );
        self.set_u64(ctl::IOPM_BASE_PA, s.iopm_pa);
        self.set_u64(ctl::MSRPM_BASE_PA, s.msrpm_pa);
        self.set_u32(ctl::ASID, s.asid);
        self.set_u64(ctl::NP_ENABLE, 1);
        self.set_u64(ctl::N_CR3, s.ncr3);
        // V_INTR_MASKING: the guest's IF masks only virtual interrupts.
        self.set_u64(ctl::V_INTR, 1 << 24);
    }

    /// The state QEMU starts a Multiboot (v1) kernel in: 32-bit protected mode,
    /// paging off, flat 4 GiB code and data segments, EAX = the Multiboot magic
    /// (EBX = the information block is a general register the world switch loads),
    /// at `entry`.
    pub fn multiboot(&mut self, s: &Setup, entry: u32) {
        self.0.fill(0);
        self.control(s);
        self.set_segment(save::CS, 0x08, ATTR_CODE32, u32::MAX, 0);
        for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
            self.set_segment(seg, 0x10, ATTR_DATA32, u32::MAX, 0);
        }
        self.set_segment(save::GDTR, 0, 0, 0xffff, 0);
        self.set_segment(save::IDTR, 0, 0, 0xffff, 0);
        self.set_segment(save::LDTR, 0, ATTR_LDT, 0xffff, 0);
        self.set_segment(save::TR, 0, ATTR_TSS32_BUSY, 0xffff, 0);
        // The guest's EFER must have SVME for VMRUN to accept it (APM 15.5.1).
        self.set_u64(save::EFER, EFER_SVME);
        self.set_u64(save::CR0, CR0_PE | CR0_ET);
        self.set_u64(save::DR6, 0xffff_0ff0);
        self.set_u64(save::DR7, 0x400);
        self.set_u64(save::RFLAGS, 0x2);
        self.set_u64(save::RIP, entry as u64);
        self.set_u64(save::RAX, MULTIBOOT_MAGIC as u64);
        self.set_u64(save::G_PAT, PAT_DEFAULT);
    }

    /// The state a secondary vCPU starts in after INIT and a start-up IPI: real
    /// mode at CS = `entry` >> 4 (the SIPI vector << 8), IP = 0, paging off.
    pub fn real_mode(&mut self, s: &Setup, entry: u32) {
        self.0.fill(0);
        self.control(s);
        let cs = (entry >> 4) as u16;
        self.set_segment(save::CS, cs, ATTR_CODE16, 0xffff, u64::from(cs) << 4);
        for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
            self.set_segment(seg, 0, ATTR_DATA16, 0xffff, 0);
        }
        self.set_segment(save::GDTR, 0, 0, 0xffff, 0);
        self.set_segment(save::IDTR, 0, 0, 0xffff, 0);
        self.set_segment(save::LDTR, 0, ATTR_LDT, 0xffff, 0);
        self.set_segment(save::TR, 0, ATTR_TSS32_BUSY, 0xffff, 0);
        self.set_u64(save::EFER, EFER_SVME);
        self.set_u64(save::CR0, CR0_ET);
        self.set_u64(save::DR6, 0xffff_0ff0);
        self.set_u64(save::DR7, 0x400);
        self.set_u64(save::RFLAGS, 0x2);
        self.set_u64(save::RIP, 0);
        self.set_u64(save::G_PAT, PAT_DEFAULT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    #[test]
    fn the_layout_is_the_manuals() {
        assert_eq!(core::mem::size_of::<Vmcb>(), 4096);
        assert_eq!(core::mem::align_of::<Vmcb>(), 4096);
        // Spot checks against APM vol. 2 table B-1 / B-2.
        assert_eq!(
            (ctl::EXITCODE, ctl::N_CR3, ctl::EVENTINJ),
            (0x70, 0xb0, 0xa8)
        );
        assert_eq!(
            (save::CS, save::EFER, save::RIP, save::RAX),
            (0x410, 0x4d0, 0x578, 0x5f8)
        );
        assert_eq!(
            (save::CR0, save::CR3, save::CR4, save::G_PAT),
            (0x558, 0x550, 0x548, 0x668)
        );
    }

    #[test]
    fn a_started_secondary_vcpu_is_in_real_mode_at_the_vector() {
        let mut v = Box::new(Vmcb::zeroed());
        let s = Setup {
            asid: 2,
            ncr3: 0x5000,
            iopm_pa: 0x20_0000,
            msrpm_pa: 0x20_3000,
        };
        // SIPI vector 0x08: CS 0x0800, base 0x8000, IP 0.
        v.real_mode(&s, 0x8000);
        assert_eq!(v.u16(save::CS), 0x0800);
        assert_eq!(v.u64(save::CS + 8), 0x8000);
        assert_eq!(v.u32(save::CS + 4), 0xffff);
        assert_eq!(v.u64(save::RIP), 0);
        assert_eq!(v.u64(save::CR0) & CR0_PE, 0);
        assert_ne!(v.u64(save::EFER) & EFER_SVME, 0);
        assert_eq!(v.u64(ctl::N_CR3), 0x5000);
        assert_ne!(v.u32(ctl::INTERCEPT_MISC2) & misc2::VMRUN, 0);
    }

    #[test]
    fn a_multiboot_vcpu_starts_flat_32_bit_with_the_magic_and_nested_paging() {
        let mut v = Box::new(Vmcb::zeroed());
        v.0[0x7ff] = 0xaa; // stale state is cleared
        let s = Setup {
            asid: 3,
            ncr3: 0x1234_5000,
            iopm_pa: 0x20_0000,
            msrpm_pa: 0x20_3000,
        };
        v.multiboot(&s, 0x10_0000);
        assert_eq!(v.0[0x7ff], 0);
        assert_eq!(v.u64(save::RIP), 0x10_0000);
        assert_eq!(v.u64(save::RAX), 0x2bad_b002);
        assert_eq!(v.u64(save::CR0), 0x11);
        assert_ne!(v.u64(save::EFER) & EFER_SVME, 0);
        assert_eq!(v.u16(save::CS), 0x08);
        assert_eq!(v.u16(save::CS + 2), ATTR_CODE32);
        assert_eq!(v.u32(save::CS + 4), u32::MAX);
        assert_eq!(v.u16(save::SS + 2), ATTR_DATA32);
        assert_eq!(v.u32(ctl::ASID), 3);
        assert_eq!(v.u64(ctl::N_CR3), 0x1234_5000);
        assert_eq!(v.u64(ctl::NP_ENABLE), 1);
        assert_eq!(v.u64(ctl::IOPM_BASE_PA), 0x20_0000);
        assert_eq!(v.u64(ctl::MSRPM_BASE_PA), 0x20_3000);
        let m1 = v.u32(ctl::INTERCEPT_MISC1);
        for bit in [
            misc1::HLT,
            misc1::CPUID,
            misc1::IOIO_PROT,
            misc1::MSR_PROT,
            misc1::SHUTDOWN,
        ] {
            assert_ne!(m1 & bit, 0);
        }
        // VMRUN must be intercepted or the CPU refuses the VMCB.
        let m2 = v.u32(ctl::INTERCEPT_MISC2);
        assert_ne!(m2 & misc2::VMRUN, 0);
        assert_ne!(m2 & misc2::VMMCALL, 0);
    }
}
