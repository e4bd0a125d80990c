//! libFuzzer target `x86_64-insn`: `hypervisor::fuzz` (kernel/src/fuzz.rs) holds the target.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = hypervisor::fuzz::target("x86_64-insn").expect("a target of hypervisor::fuzz::TARGETS");
    target(data);
});
