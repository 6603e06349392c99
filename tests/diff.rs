//! `meshplan diff`: the summary of a plan change and the diffs of the compiled files.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn meshplan(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshplan"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// A variant of a shipped plan, written under the same file name in its own folder, as across
/// git revisions.
fn variant(case: &str, plan: &str, edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(root().join(plan)).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{plan} has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("diff")
        .join(case);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(PathBuf::from(plan).file_name().unwrap());
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn snapshot(name: &str, output: &Output) {
    let text = String::from_utf8_lossy(&output.stdout).replace(
        &format!(
            "{}/",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("diff")
                .display()
        ),
        "<tmp>/",
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

const THREE_CLOUD: &str = "plans/three-cloud-metallb.toml";
const ICP: &str = "plans/icp-single-network.toml";

#[test]
fn identical_plans_exit_0_and_say_no_changes() {
    let out = meshplan(&["diff", THREE_CLOUD, THREE_CLOUD], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no changes\n");
}

#[test]
fn address_and_range_changes() {
    let new = variant(
        "addresses",
        THREE_CLOUD,
        &[
            ("eastwest = \"10.6.136.29\"", "eastwest = \"10.6.136.28\""),
            (
                "pod_cidr = \"10.202.0.0/16\"",
                "pod_cidr = \"10.203.0.0/16\"",
            ),
        ],
    );
    let out = meshplan(&["diff", THREE_CLOUD, &new, "--color", "never", "-q"], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("re-run:\n  mdemo-cluster1: istioctl install -f istio/control-plane.yaml\n"),
        "{stdout}"
    );
    snapshot("diff-addresses", &out);
}

#[test]
fn a_removed_cluster_and_a_version_bump() {
    let text = std::fs::read_to_string(root().join(THREE_CLOUD)).unwrap();
    let cut = text.rfind("[[cluster]]").unwrap();
    let smaller = text[..cut].replace("version = \"1.24.2\"", "version = \"1.26.1\"");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("diff")
        .join("removed");
    std::fs::create_dir_all(&dir).unwrap();
    let new = dir.join("three-cloud-metallb.toml");
    std::fs::write(&new, smaller).unwrap();
    let out = meshplan(
        &[
            "diff",
            THREE_CLOUD,
            new.to_str().unwrap(),
            "--color",
            "never",
            "-q",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cluster mdemo-cluster3 removed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mesh: istio_version 1.24.2 -> 1.26.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--- a/mdemo-cluster3/namespace.yaml\n+++ /dev/null"),
        "{stdout}"
    );
}

#[test]
fn node_block_changes_show_route_changes() {
    let new = variant(
        "routes",
        ICP,
        &[("pod_cidr = \"20.1.90.0/26\"", "pod_cidr = \"20.1.91.0/26\"")],
    );
    let out = meshplan(&["diff", ICP, &new, "--color", "never", "-q"], None);
    assert_eq!(out.status.code(), Some(1));
    snapshot("diff-routes", &out);
}

#[test]
fn the_old_side_can_come_from_stdin() {
    let old = std::fs::read_to_string(root().join(ICP)).unwrap();
    let same = meshplan(&["diff", "-", ICP], Some(&old));
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let new = variant(
        "stdin",
        ICP,
        &[("pod_cidr = \"20.1.90.0/26\"", "pod_cidr = \"20.1.91.0/26\"")],
    );
    let changed = meshplan(&["diff", "-", &new, "--color", "never", "-q"], Some(&old));
    assert_eq!(changed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&changed.stdout).contains("+20.1.91.0/26 via 172.16.187.16"));
}

#[test]
fn an_invalid_side_gets_diagnostics_and_exit_2() {
    let out = meshplan(
        &[
            "diff",
            ICP,
            "tests/fixtures/err/lb_outside_pool.toml",
            "--color",
            "never",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("meshplan::lb::outside_pool"));
    assert!(out.stdout.is_empty());
    assert_eq!(
        meshplan(&["diff", "-", "-"], Some("")).status.code(),
        Some(2)
    );
}

#[test]
fn a_renamed_plan_is_no_change() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("diff")
        .join("renamed");
    std::fs::create_dir_all(&dir).unwrap();
    let renamed = dir.join("mesh-prod.toml");
    std::fs::copy(root().join(THREE_CLOUD), &renamed).unwrap();
    let out = meshplan(&["diff", THREE_CLOUD, renamed.to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no changes\n");
}

#[test]
fn an_invalid_stdin_side_is_reported_as_stdin_once() {
    let broken =
        std::fs::read_to_string(root().join("tests/fixtures/err/lb_outside_pool.toml")).unwrap();
    let out = meshplan(&["diff", "-", ICP, "--color", "never"], Some(&broken));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[<stdin>:"), "{stderr}");
    assert!(!stderr.contains("[icp-single-network.toml:"), "{stderr}");
    assert!(!stderr.contains(&format!("[{ICP}:")), "{stderr}");
    assert_eq!(stderr.matches("<stdin>: invalid").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches(&format!("{ICP}: valid")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn service_changes_are_summarised_in_words() {
    let plan = "tests/fixtures/ok/bookinfo-split.toml";
    let new = variant(
        "services",
        plan,
        &[
            (
                "failover = [{ from = \"us-east\", to = \"us-west\" }, { from = \"us-west\", to = \"us-east\" }]",
                "failover = [{ from = \"us-east\", to = \"us-west\" }]",
            ),
            ("consecutive_5xx = 3", "consecutive_5xx = 7"),
            (
                "name = \"productpage\"",
                "name = \"productpage\"\nfailover = [{ from = \"us-west\", to = \"us-east\" }]",
            ),
            ("scope = \"cluster\"\n", "\n"),
            (
                "clusters = [\"books-front\"]\n",
                "clusters = [\"books-front\", \"books-back\"]\n",
            ),
        ],
    );
    let out = meshplan(&["diff", plan, &new, "--color", "never", "-q"], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "  reviews.bookinfo-demo: failover us-west→us-east removed\n",
        "  details.bookinfo-demo: outlier.consecutive_5xx 3 -> 7\n",
        "  productpage.bookinfo-demo: cluster books-back added; failover us-west→us-east added; ",
        "scope cluster -> mesh",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}
