//! Emulated device models: pure state machines behind one MMIO interface, no arch code.
