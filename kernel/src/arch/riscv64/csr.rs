//! Control and status registers of HS-mode and of the virtual supervisor, by number
//! (so no assembler extension flags are needed), with read/write/set/clear macros.

pub const SSTATUS: u16 = 0x100;
pub const SIE: u16 = 0x104;
pub const STVEC: u16 = 0x105;
pub const SCOUNTEREN: u16 = 0x106;
pub const SSCRATCH: u16 = 0x140;
pub const SCAUSE: u16 = 0x142;
pub const STVAL: u16 = 0x143;
pub const SIP: u16 = 0x144;
pub const TIME: u16 = 0xc01;

pub const VSSTATUS: u16 = 0x200;
pub const VSIE: u16 = 0x204;
pub const VSTVEC: u16 = 0x205;
pub const VSSCRATCH: u16 = 0x240;
pub const VSEPC: u16 = 0x241;
pub const VSCAUSE: u16 = 0x242;
pub const VSTVAL: u16 = 0x243;
pub const VSATP: u16 = 0x280;
pub const VSTIMECMP: u16 = 0x24d;

pub const HSTATUS: u16 = 0x600;
pub const HEDELEG: u16 = 0x602;
pub const HIDELEG: u16 = 0x603;
pub const HIE: u16 = 0x604;
pub const HTIMEDELTA: u16 = 0x605;
pub const HCOUNTEREN: u16 = 0x606;
/// hcounteren.TM: the guest may read `time`.
pub const HCOUNTEREN_TM: u64 = 1 << 1;
pub const HTVAL: u16 = 0x643;
pub const HVIP: u16 = 0x645;
pub const HTINST: u16 = 0x64a;
pub const HGATP: u16 = 0x680;

/// sstatus fields.
pub mod sstatus {
    pub const SIE: u64 = 1 << 1;
    pub const SPIE: u64 = 1 << 5;
    pub const SPP: u64 = 1 << 8;
    pub const FS_DIRTY: u64 = 3 << 13;
}

/// hstatus fields.
pub mod hstatus {
    pub const SPV: u64 = 1 << 7;
    pub const SPVP: u64 = 1 << 8;
    pub const HU: u64 = 1 << 9;
    pub const VTVM: u64 = 1 << 20;
    pub const VTW: u64 = 1 << 21;
    pub const VTSR: u64 = 1 << 22;
}

/// Interrupt bits (sip/sie, hvip, hideleg).
pub mod irq {
    pub const SSI: u64 = 1 << 1;
    pub const VSSI: u64 = 1 << 2;
    pub const STI: u64 = 1 << 5;
    pub const VSTI: u64 = 1 << 6;
    pub const SEI: u64 = 1 << 9;
    pub const VSEI: u64 = 1 << 10;
}

/// henvcfg.STCE: VS-mode `stimecmp` is `vstimecmp` (Sstc).
pub const HENVCFG_STCE: u64 = 1 << 63;

macro_rules! read_csr {
    ($csr:expr) => {{
        let v: u64;
        // SAFETY: reading a CSR of the current privilege level has no side effect
        // beyond returning its value.
        unsafe { core::arch::asm!("csrr {0}, {csr}", out(reg) v, csr = const $csr, options(nomem, nostack)) };
        v
    }};
}

macro_rules! write_csr {
    ($csr:expr, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the hypervisor owns every HS-mode and VS CSR of its hart; callers
        // write values that keep the hypervisor itself running.
        unsafe { core::arch::asm!("csrw {csr}, {0}", in(reg) v, csr = const $csr, options(nomem, nostack)) };
    }};
}

macro_rules! set_csr {
    ($csr:expr, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: as for `write_csr!`.
        unsafe { core::arch::asm!("csrs {csr}, {0}", in(reg) v, csr = const $csr, options(nomem, nostack)) };
    }};
}

macro_rules! clear_csr {
    ($csr:expr, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: as for `write_csr!`.
        unsafe { core::arch::asm!("csrc {csr}, {0}", in(reg) v, csr = const $csr, options(nomem, nostack)) };
    }};
}

pub(crate) use {clear_csr, read_csr, set_csr, write_csr};

/// Invalidates every G-stage and guest (VS-stage) translation of this hart.
pub fn hfence_all() {
    // SAFETY: TLB maintenance only; HFENCE.GVMA and HFENCE.VVMA with x0, x0.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +h",
            "hfence.gvma zero, zero",
            "hfence.vvma zero, zero",
            ".option pop",
            options(nostack)
        )
    };
}

/// Invalidates this hart's G-stage translations of guest-physical `gpa` (every VMID),
/// after its G-stage PTE changed.
pub fn hfence_gvma_addr(gpa: u64) {
    // SAFETY: TLB maintenance only; the fence orders the PTE store before it.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +h",
            "fence rw, rw",
            "hfence.gvma {0}, zero",
            ".option pop",
            in(reg) gpa >> 2,
            options(nostack)
        )
    };
}

/// Invalidates the guest's (VS-stage) translations on this hart, for the current VMID.
pub fn hfence_vvma() {
    // SAFETY: TLB maintenance only.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +h",
            "hfence.vvma zero, zero",
            ".option pop",
            options(nostack)
        )
    };
}

/// Zeroes the FP registers and fcsr: a guest's FP state lives in the hart (the
/// hypervisor uses no FP), so a vCPU starting here would see the last guest's.
/// sstatus.FS is not Off in HS-mode (`host::init_cpu`).
pub fn clear_fp() {
    // SAFETY: only FP state, which the hypervisor itself never uses, is written.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option arch, +d",
            "fmv.d.x f0, zero",
            "fmv.d.x f1, zero",
            "fmv.d.x f2, zero",
            "fmv.d.x f3, zero",
            "fmv.d.x f4, zero",
            "fmv.d.x f5, zero",
            "fmv.d.x f6, zero",
            "fmv.d.x f7, zero",
            "fmv.d.x f8, zero",
            "fmv.d.x f9, zero",
            "fmv.d.x f10, zero",
            "fmv.d.x f11, zero",
            "fmv.d.x f12, zero",
            "fmv.d.x f13, zero",
            "fmv.d.x f14, zero",
            "fmv.d.x f15, zero",
            "fmv.d.x f16, zero",
            "fmv.d.x f17, zero",
            "fmv.d.x f18, zero",
            "fmv.d.x f19, zero",
            "fmv.d.x f20, zero",
            "fmv.d.x f21, zero",
            "fmv.d.x f22, zero",
            "fmv.d.x f23, zero",
            "fmv.d.x f24, zero",
            "fmv.d.x f25, zero",
            "fmv.d.x f26, zero",
            "fmv.d.x f27, zero",
            "fmv.d.x f28, zero",
            "fmv.d.x f29, zero",
            "fmv.d.x f30, zero",
            "fmv.d.x f31, zero",
            "csrw fcsr, zero",
            ".option pop",
            options(nomem, nostack)
        )
    };
}

/// Makes instruction fetches on this hart see earlier stores.
pub fn fence_i() {
    // SAFETY: a fence has no effect besides ordering.
    unsafe { core::arch::asm!("fence rw, rw", "fence.i", options(nostack)) };
}

pub fn wfi() {
    // SAFETY: waits for an interrupt to become pending; with sstatus.SIE clear none is
    // taken here.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}
