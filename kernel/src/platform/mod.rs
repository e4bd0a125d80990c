//! Board discovery from the flattened device tree.
