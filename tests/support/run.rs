//! Runs the built `meshplan` binary from the repository root, as a user would.

use std::process::{Command, Output};

/// `meshplan ARGS...`, its exit status and both streams.
pub fn meshplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshplan"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the meshplan binary runs")
}
