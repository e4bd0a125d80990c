//! libFuzzer target `x86apic`: `hypervisor::fuzz` (kernel/src/fuzz.rs) holds the target.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = hypervisor::fuzz::target("x86apic").expect("a target of hypervisor::fuzz::TARGETS");
    target(data);
});
