//! The `cargo xtask` subcommands.
pub mod bench;
pub mod build;
pub mod clippy;
pub mod defconfig;
pub mod fuzz;
pub mod run;
pub mod test;
pub mod test_attacks;
pub mod test_fs;
pub mod test_shell;
pub mod test_signals;
#[cfg(feature = "schema")]
pub mod vmconfig;
