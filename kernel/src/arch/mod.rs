//! Architecture support. Pure parts (trap decoders, table formats) build on every host
//! so they can be unit-tested; the parts that touch the CPU are gated on the target.
pub mod aarch64;
