//! Tests that need a tool from outside the repository (shellcheck, python3 with
//! kubernetes-validate, iproute2 and ping as root).

use std::io::Write;

/// Whether a test that cannot run must fail: `.ci/run` sets `MESHPLAN_REQUIRE_TOOLS=1`, so CI
/// never passes on a check that did not happen.
pub fn required() -> bool {
    std::env::var_os("MESHPLAN_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// A check that cannot run: with [`required`] the test fails; otherwise a `SKIP` line goes
/// straight to the terminal (libtest captures `println!` of passing tests) and the test passes.
pub fn skip(check: &str, reason: &str) {
    assert!(
        !required(),
        "{check} could not run: {reason}; MESHPLAN_REQUIRE_TOOLS=1 (set by .ci/run) makes that a failure"
    );
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIP {check}: {reason} (bash .ci/run installs what is missing)"
    );
}
