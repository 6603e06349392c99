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
            .contains("re-run (from the new tree's root, in this order):\n  mdemo-cluster1: bash mdemo-cluster1/scripts/install.sh control-plane\n  mdemo-cluster2: bash mdemo-cluster2/scripts/install.sh gateways\n"),
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
    // A new Istio is an upgrade, never a re-run of the installs; this one comes with another
    // change, so meshplan says it cannot order it, and why.
    assert!(!stdout.contains("re-run (from"), "{stdout}");
    assert!(
        stdout.contains("upgrade: not one meshplan can order")
            && stdout.contains("cluster mdemo-cluster3 removed"),
        "{stdout}"
    );
    // The primary forgets the removed cluster, then the cluster loses Istio and its pool; each
    // command names its context, so pasting it acts on the right cluster whatever is current.
    assert!(
        stdout.contains(
            "remove:\n  \
             mdemo-cluster1: kubectl --context mdemo-cluster1 -n istio-system delete secret/istio-remote-secret-mdemo-cluster3 --ignore-not-found\n  \
             mdemo-cluster3: istioctl uninstall --purge -y --context mdemo-cluster3\n  \
             mdemo-cluster3: kubectl --context mdemo-cluster3 delete namespace istio-system --ignore-not-found\n  \
             mdemo-cluster3: kubectl --context mdemo-cluster3 -n metallb-system delete ipaddresspools.metallb.io/first-pool l2advertisements.metallb.io/first-pool-l2 --ignore-not-found\n"
        ),
        "{stdout}"
    );
}

#[test]
fn a_network_change_restarts_what_reads_the_network_label() {
    let new = variant(
        "network",
        THREE_CLOUD,
        &[
            ("\"network-c2\"", "\"network-c9\""),
            ("\"network-c2\"", "\"network-c9\""),
        ],
    );
    let out = meshplan(&["diff", THREE_CLOUD, &new, "--color", "never", "-q"], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rerun = stdout
        .find("  mdemo-cluster2: bash mdemo-cluster2/scripts/install.sh control-plane gateways")
        .expect(&stdout);
    let restart = stdout
        .find("restart (the network changed):\n  mdemo-cluster2: kubectl --context mdemo-cluster2 -n istio-system rollout restart deployment/istio-eastwestgateway\n")
        .expect(&stdout);
    assert!(
        rerun < restart,
        "the new label comes before the restarts:\n{stdout}"
    );
    assert!(
        stdout.contains("  mdemo-cluster2: restart the workloads of every other injected namespace on mdemo-cluster2 (network network-c2 -> network-c9)"),
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
    // The ICP side's only report is its own warning: Istio 1.22 is past its end of life (its
    // header says so); none of stdin's findings is put on it.
    assert_eq!(stderr.matches(&format!("[{ICP}:")).count(), 1, "{stderr}");
    assert!(
        stderr.contains("Istio 1.22 reached its end of life"),
        "{stderr}"
    );
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

/// The files each phase function of `install.sh` (and the helpers it calls) applies or runs.
fn files_by_phase(script: &str) -> Vec<(String, String)> {
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in script.lines() {
        if let Some(name) = line.strip_suffix("() {") {
            current = Some((name.to_owned(), String::new()));
        } else if line == "}" {
            bodies.extend(current.take());
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let files_in = |body: &str| -> Vec<String> {
        body.split_whitespace()
            .filter(|word| {
                word.ends_with(".yaml") || (word.starts_with("scripts/") && word.ends_with(".sh"))
            })
            .map(|word| word.trim_matches('\'').to_owned())
            .collect()
    };
    let mut files = Vec::new();
    for (name, body) in &bodies {
        let Some(phase) = ["control_plane", "gateways", "samples"]
            .into_iter()
            .find(|p| p == name)
        else {
            continue;
        };
        let mut text = body.clone();
        for (helper, helper_body) in &bodies {
            if body.contains(&format!("  {helper}\n")) {
                text.push_str(helper_body);
            }
        }
        for file in files_in(&text) {
            files.push((phase.replace('_', "-"), file));
        }
    }
    files
}

/// `diff` names the phase that re-applies a changed file: the phase must be the one that
/// applies it in every generated install.sh, or a re-run would leave the change unapplied.
#[test]
fn every_file_install_sh_applies_is_in_the_phase_diff_names() {
    let mut checked = 0;
    for dir in ["plans", "tests/fixtures/ok"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let source = meshplan::Source::new(path.to_string_lossy(), text);
            let (_, output) = meshplan::compile(&source);
            let output = output.unwrap().unwrap();
            for (name, script) in output
                .iter()
                .filter(|(n, _)| n.ends_with("/scripts/install.sh"))
            {
                for (phase, file) in files_by_phase(script) {
                    assert_eq!(
                        meshplan::resolve::procedure::phase_of(&file),
                        Some(phase.as_str()),
                        "{name} applies {file} in {phase}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} files found in phase functions"
    );
}
