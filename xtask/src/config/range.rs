//! Address ranges `[base, base + size)` and the few operations the checks need
//! (from the shared config crate, so the host and the hypervisor compute alike).
pub use vmconfig::range::{covered_by, human_size, Range, PAGE};
