//! Encodings of the x86-64 system descriptors the hypervisor builds: interrupt gates
//! (IDT) and 64-bit TSS descriptors (GDT). Pure, tested on the host.

/// A 64-bit interrupt gate to `handler` in code segment `selector`, on interrupt
/// stack `ist` (0: the current stack): the two 8-byte words of the IDT entry.
pub fn interrupt_gate(handler: u64, selector: u16, ist: u8) -> [u64; 2] {
    const PRESENT_INTERRUPT_GATE: u64 = 0x8e;
    [
        (handler & 0xffff)
            | (selector as u64) << 16
            | (ist as u64 & 7) << 32
            | PRESENT_INTERRUPT_GATE << 40
            | (handler >> 16 & 0xffff) << 48,
        handler >> 32,
    ]
}

/// An available 64-bit TSS descriptor for the TSS at `base` of `limit` + 1 bytes:
/// the two 8-byte GDT words.
pub fn tss_descriptor(base: u64, limit: u32) -> [u64; 2] {
    const PRESENT_TSS64: u64 = 0x89;
    let limit = limit as u64;
    [
        (limit & 0xffff)
            | (base & 0xff_ffff) << 16
            | PRESENT_TSS64 << 40
            | (limit >> 16 & 0xf) << 48
            | (base >> 24 & 0xff) << 56,
        base >> 32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_gate_splits_its_handler_address() {
        let [lo, hi] = interrupt_gate(0xffff_8000_1234_5678, 0x08, 1);
        assert_eq!(lo & 0xffff, 0x5678);
        assert_eq!(lo >> 16 & 0xffff, 0x08);
        assert_eq!(lo >> 32 & 7, 1);
        assert_eq!(lo >> 40 & 0xff, 0x8e);
        assert_eq!(lo >> 48, 0x1234);
        assert_eq!(hi, 0xffff_8000);
    }

    #[test]
    fn a_tss_descriptor_splits_its_base_and_limit() {
        let [lo, hi] = tss_descriptor(0x1_2345_6789, 103);
        assert_eq!(lo & 0xffff, 103);
        assert_eq!(lo >> 16 & 0xff_ffff, 0x45_6789);
        assert_eq!(lo >> 40 & 0xff, 0x89);
        assert_eq!(lo >> 48 & 0xf, 0);
        assert_eq!(lo >> 56, 0x23);
        assert_eq!(hi, 0x1);
    }
}
