//! Runs the built `meshplan` binary from the repository root, as a user would.

use std::process::{Command, Output};

/// `meshplan ARGS...`, its exit status and both streams.
pub fn meshplan(args: &[&str]) -> Output {
    meshplan_env(args, &[])
}

/// `meshplan ARGS...` with extra environment variables.
#[allow(dead_code)] // not every test file sets any
pub fn meshplan_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshplan"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the meshplan binary runs")
}
