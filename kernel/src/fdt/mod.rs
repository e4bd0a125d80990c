//! Flattened device tree writer (guest DTBs).
//!
//! [`FdtWriter`] builds a version 17 DTB in memory: a memory reservation block, a
//! big-endian structure block and a strings block in which every property name is
//! stored once. Misuse (a property outside a node or after a child node, unbalanced
//! nodes, a duplicate property, names with NUL bytes) is reported as an [`FdtError`]
//! value, never a panic.

pub mod chosen;
pub mod ivc;
mod writer;

pub use writer::{FdtError, FdtWriter};

#[cfg(test)]
pub(crate) mod tests;
