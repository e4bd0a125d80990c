//! Where the frames of 2nd-stage translation tables come from: the trait lives in
//! the hal ([`crate::hal::paging::TableMemory`]); this name is kept for its users.
pub use crate::hal::paging::{TableMemory, ENTRIES};
