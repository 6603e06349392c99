//! The `meshplan` binary as users run it: exit codes, streams, JSON diagnostics.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "support/run.rs"]
mod run;
use run::meshplan;

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn valid_plan_exits_0_and_says_so() {
    let out = meshplan(&[
        "check",
        "plans/three-cloud-metallb.toml",
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("plans/three-cloud-metallb.toml: valid"));
    assert!(
        out.stdout.is_empty(),
        "diagnostics go to stderr, not stdout"
    );
}

#[test]
fn invalid_plan_exits_1_with_code_line_and_help() {
    let out = meshplan(&[
        "check",
        "tests/fixtures/err/seed001_service_range_host_bits.toml",
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("meshplan::cidr::host_bits"), "{err}");
    assert!(
        err.contains("seed001_service_range_host_bits.toml:"),
        "points at the file: {err}"
    );
    assert!(
        err.contains("10.0.0.0/24"),
        "help names the canonical CIDR: {err}"
    );
}

#[test]
fn missing_file_exits_2() {
    let out = meshplan(&["check", "plans/does-not-exist.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read plan `plans/does-not-exist.toml`"));
}

#[test]
fn unreadable_path_exits_2() {
    // A directory cannot be read as a file.
    let out = meshplan(&["check", "plans"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(meshplan(&["check"]).status.code(), Some(2));
    assert_eq!(meshplan(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        meshplan(&[
            "check",
            "plans/gke-single-network.toml",
            "--diagnostics",
            "xml"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn empty_and_binary_files_are_invalid_plans_not_crashes() {
    let empty = scratch("empty.toml", b"");
    let out = meshplan(&["check", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("meshplan::plan::missing_key"),
        "{}",
        stderr(&out)
    );

    let garbage = scratch("garbage.toml", &[0xff, 0xfe, 0x00, 0x9c, 0x80, b'\n', 0x01]);
    let out = meshplan(&["check", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("meshplan::plan::encoding"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_diagnostics_are_one_object_per_line_with_positions() {
    let out = meshplan(&[
        "check",
        "tests/fixtures/err/seed001_service_range_host_bits.toml",
        "--diagnostics",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let findings: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 1, "{err}");
    let finding = &findings[0];
    assert_eq!(finding["code"], "meshplan::cidr::host_bits");
    assert_eq!(finding["severity"], "error");
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/err/seed001_service_range_host_bits.toml"),
    )
    .unwrap();
    let line = finding["line"].as_u64().unwrap() as usize;
    let column = finding["column"].as_u64().unwrap() as usize;
    let at_position: String = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .chars()
        .skip(column - 1)
        .take(13)
        .collect();
    assert_eq!(
        at_position, "\"10.0.0.1/24\"",
        "line/column point at the value"
    );
    assert!(finding["help"].as_str().unwrap().contains("10.0.0.0/24"));
}

#[test]
fn json_reports_io_failures_too() {
    let out = meshplan(&["check", "nope.toml", "--diagnostics", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let finding: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(finding["code"], "meshplan::io::read_plan");
}

#[test]
fn quiet_hides_warnings_and_summary() {
    let plan = scratch(
        "unused-network.toml",
        br#"[mesh]
id = "m"
[mesh.istio]
version = "1.24.2"
[[network]]
id = "n1"
[[network]]
id = "spare"
[[cluster]]
name = "c1"
role = "primary"
network = "n1"
pod_cidr = "10.1.0.0/16"
service_cidr = "10.2.0.0/16"
"#,
    );
    let loud = meshplan(&["check", plan.to_str().unwrap(), "--color", "never"]);
    assert_eq!(loud.status.code(), Some(0));
    assert!(stderr(&loud).contains("meshplan::network::unused"));
    let quiet = meshplan(&["check", plan.to_str().unwrap(), "-q"]);
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(stderr(&quiet), "");
}

/// Plans are capped at 64 MiB, from a file or stdin: `check /dev/zero` must end with an error,
/// not read until the machine runs out of memory.
#[test]
fn endless_or_huge_input_is_refused_with_a_code() {
    let huge = std::env::temp_dir().join(format!("meshplan-huge-{}.toml", std::process::id()));
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len((64 << 20) + 1).unwrap(); // sparse: no disk used
    drop(file);
    let huge_path = huge.to_str().unwrap();
    let json = ["--diagnostics", "json"];
    let stdin_runs: [(&[&str], &Path); 2] = [
        (&["diff", "-", "plans/icp-single-network.toml"], &huge),
        (
            &["diff", "-", "plans/icp-single-network.toml"],
            Path::new("/dev/zero"),
        ),
    ];
    for args in [
        vec!["check", huge_path],
        vec!["render", huge_path, "--cluster", "c1"],
        vec!["check", "/dev/zero"],
        vec!["render", "/dev/zero", "--cluster", "c1"],
    ] {
        let out = meshplan(&[&args[..], &json[..]].concat());
        assert_too_large(&out, &args.join(" "));
    }
    for (args, input) in stdin_runs {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshplan"))
            .args(args)
            .args(json)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap();
        assert_too_large(&out, &format!("{} < {}", args.join(" "), input.display()));
    }
    let _ = std::fs::remove_file(&huge);
}

fn assert_too_large(out: &std::process::Output, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(out));
    let first = stderr(out).lines().next().unwrap_or_default().to_owned();
    let finding: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(finding["code"], "meshplan::io::plan_too_large", "{what}");
    assert!(
        finding["message"].as_str().unwrap().contains("64 MiB"),
        "{what}"
    );
}

fn shipped_plan_with(from: &str, to: &str) -> String {
    let base = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans/three-cloud-metallb.toml"),
    )
    .unwrap();
    assert!(base.contains(from), "the shipped plan has `{from}`");
    base.replacen(from, to, 1)
}

/// 1-based line of the first `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

fn assert_no_panic(out: &Output, what: &str) {
    let err = stderr(out);
    assert_ne!(out.status.code(), Some(101), "{what} panicked: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// Review R4: miette's graphical report panicked (exit 101) on a label past column ~65,530,
/// in `check`, `build` and `diff` alike.
#[test]
fn a_finding_past_column_65530_is_reported_not_a_panic() {
    let value = "\"10.201.0.0/33\"";
    let text = shipped_plan_with(
        "pod_cidr = \"10.201.0.0/16\"",
        &format!("pod_cidr ={}{value}", " ".repeat(65_530)),
    );
    let plan = scratch("far-column.toml", text.as_bytes());
    let plan = plan.to_str().unwrap();
    let line = line_of(&text, value);
    // The value starts after `pod_cidr =` (10 columns) and the 65,530 spaces.
    let at = format!("far-column.toml:{line}:65541]");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("far-column-out");
    let _ = std::fs::remove_dir_all(&out_dir);
    let runs: [(Vec<&str>, i32); 3] = [
        (vec!["check", plan], 1),
        (vec!["build", plan, "-o", out_dir.to_str().unwrap()], 1),
        // diff: 2 when a side is invalid (README: "2 error (an invalid side)").
        (vec!["diff", "plans/three-cloud-metallb.toml", plan], 2),
    ];
    for (args, code) in runs {
        let out = meshplan(&[&args[..], &["--color", "never"]].concat());
        let what = args.join(" ");
        assert_no_panic(&out, &what);
        assert_eq!(out.status.code(), Some(code), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("meshplan::cidr::"), "{what}: {err}");
        assert!(err.contains(&at), "{what} names the place {at}: {err}");
        assert!(
            err.contains("10.201.0.0/33"),
            "{what} shows the value: {err}"
        );
    }
    assert!(!out_dir.exists(), "an invalid plan writes nothing");
}

/// Review R4, reached naturally: 4,000 failover entries on one line give 4,000 findings whose
/// columns pass 65,530 after the 2,184th.
#[test]
fn four_thousand_findings_on_one_line_are_all_reported() {
    let base = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ok/bookinfo-split.toml"),
    )
    .unwrap();
    let line = r#"failover = [{ from = "us-east", to = "us-west" }, { from = "us-west", to = "us-east" }]"#;
    assert!(base.contains(line));
    let same = vec![r#"{ from = "us-east", to = "us-east" }"#; 4_000].join(", ");
    let text = base.replacen(line, &format!("failover = [{same}]"), 1);
    let plan = scratch("failover-4000.toml", text.as_bytes());
    let out = meshplan(&["check", plan.to_str().unwrap(), "--color", "never"]);
    assert_no_panic(&out, "check");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.matches("meshplan::service::failover_same_region")
            .count(),
        4_000
    );
    assert!(
        err.contains("failover-4000.toml: invalid, 4000 errors"),
        "{err}"
    );
}

/// Review R3: every finding on a long line printed the whole line, so 2,000 findings on a
/// 30 kB line printed 60 MB (and 64,000 took 52 s). A long line is shown as a window around
/// each finding's label.
#[test]
fn findings_on_a_long_line_show_a_window_of_it() {
    let bad: Vec<String> = (0..2_000).map(|i| format!("\"bad{i}\"")).collect();
    let text = shipped_plan_with(
        "addresses = [\"10.64.30.71-10.64.30.73\"]",
        &format!(
            "addresses = [\"10.64.30.71-10.64.30.73\", {}]",
            bad.join(", ")
        ),
    );
    let plan = scratch("long-line.toml", text.as_bytes());
    let out = meshplan(&["check", plan.to_str().unwrap(), "--color", "never"]);
    assert_no_panic(&out, "check");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.matches("meshplan::cidr::invalid").count(),
        2_000,
        "{err:.2000}"
    );
    assert!(
        err.len() < 2_000 * 1_500,
        "{} bytes for 2,000 findings: {:.3000}",
        err.len(),
        err
    );
    // The last finding still shows its value, under its label, at its place.
    let line = line_of(&text, "\"bad1999\"");
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"bad1999\"")
        .unwrap()
        + 1;
    let last = err.rsplit("meshplan::cidr::invalid").next().unwrap();
    assert!(
        last.contains(&format!("long-line.toml:{line}:{column}]")),
        "{last}"
    );
    assert!(last.contains("\"bad1999\""), "{last}");
    assert!(last.contains("`bad1999` is not a CIDR"), "{last}");
}
