//! Flattened device tree writer (guest DTBs).
