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

/// stdout of `meshplan ARGS...`, which must exit 0 (else the test fails with its stderr).
#[allow(dead_code)] // not every test file needs it
pub fn stdout_of_success(args: &[&str]) -> String {
    let out = meshplan(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("meshplan prints UTF-8")
}
