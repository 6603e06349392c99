//! `meshplan build` and `meshplan render` as users and CI run them: determinism, ownership of
//! the output tree, drift detection, failure safety, streams.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "support/files.rs"]
mod files;
#[path = "support/run.rs"]
mod run;
use files::tree;
use run::meshplan;

use serde::Deserialize;

/// A fresh, empty scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("build")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn build(plan: &str, out: &Path) -> Output {
    meshplan(&["build", plan, "-o", out.to_str().unwrap()])
}

fn check(plan: &str, out: &Path) -> Output {
    meshplan(&["build", plan, "-o", out.to_str().unwrap(), "--check"])
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const PLAN: &str = "plans/three-cloud-metallb.toml";

#[cfg(unix)]
#[test]
fn scripts_are_executable_and_nothing_else_is() {
    use std::os::unix::fs::PermissionsExt;
    let out = scratch("modes").join("out");
    assert_eq!(build(PLAN, &out).status.code(), Some(0));
    let files = tree(&out);
    assert!(files.keys().any(|p| p.ends_with(".sh")));
    for path in files.keys() {
        let mode = fs::metadata(out.join(path)).unwrap().permissions().mode();
        let executable = mode & 0o111 != 0;
        assert_eq!(executable, path.ends_with(".sh"), "{path}: mode {mode:o}");
        assert!(
            mode & 0o600 == 0o600,
            "{path}: the owner reads and writes it"
        );
    }
}

#[test]
fn building_twice_gives_identical_trees_wherever_they_are_written() {
    let dir = scratch("twice");
    let (first, second) = (dir.join("a/out"), dir.join("b"));
    assert_eq!(build(PLAN, &first).status.code(), Some(0));
    let once = tree(&first);
    assert_eq!(build(PLAN, &first).status.code(), Some(0));
    assert_eq!(tree(&first), once, "a rebuild changes nothing");
    let absolute = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(PLAN);
    assert_eq!(
        build(absolute.to_str().unwrap(), &second).status.code(),
        Some(0)
    );
    assert_eq!(
        tree(&second),
        once,
        "same bytes from another plan path and output path"
    );
    for (path, bytes) in &once {
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.ends_with('\n') && !text.contains('\r'),
            "{path}: LF endings, final newline"
        );
        assert!(
            !text.contains(env!("CARGO_MANIFEST_DIR")),
            "{path}: no absolute path"
        );
    }
}

#[test]
fn check_passes_on_a_fresh_build_and_lists_changed_missing_and_stale_files() {
    let base = scratch("check");
    let dir = base.join("out");
    let nothing = check(PLAN, &dir);
    assert_eq!(nothing.status.code(), Some(1), "nothing built yet");
    assert_eq!(stdout(&nothing), "", "not every file listed as missing");
    assert!(
        stderr(&nothing)
            .contains("does not exist; run `meshplan build plans/three-cloud-metallb.toml -o "),
        "{}",
        stderr(&nothing)
    );
    build(PLAN, &dir);
    let clean = check(PLAN, &dir);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert_eq!(stdout(&clean), "");

    fs::write(
        dir.join("mdemo-cluster1/namespace.yaml"),
        "edited by hand\n",
    )
    .unwrap();
    fs::remove_file(dir.join("mdemo-cluster2/istio/control-plane.yaml")).unwrap();
    let drift = check(PLAN, &dir);
    assert_eq!(drift.status.code(), Some(1));
    assert!(
        stderr(&drift).contains(&format!(
            "run `meshplan build {PLAN} -o {}` and commit the result",
            dir.display()
        )),
        "{}",
        stderr(&drift)
    );
    assert!(!stderr(&drift).contains("built by"), "{}", stderr(&drift));
    let listed = stdout(&drift);
    assert!(
        listed.contains("changed: ") && listed.contains("mdemo-cluster1/namespace.yaml"),
        "{listed}"
    );
    assert!(
        listed.contains("missing: ") && listed.contains("mdemo-cluster2/istio/control-plane.yaml"),
        "{listed}"
    );
    let before = tree(&dir);
    assert_eq!(check(PLAN, &dir).status.code(), Some(1));
    assert_eq!(tree(&dir), before, "--check writes nothing");

    // A plan that drops a cluster leaves that cluster's files stale.
    let smaller = base.join("two-clusters.toml");
    fs::write(&smaller, without_last_cluster(PLAN)).unwrap();
    build(PLAN, &dir);
    let stale = check(smaller.to_str().unwrap(), &dir);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stdout(&stale).contains("stale: ")
            && stdout(&stale).contains("mdemo-cluster3/namespace.yaml"),
        "{}",
        stdout(&stale)
    );
}

/// The plan text up to its last `[[cluster]]`, with the eastwest-less spare network kept valid.
fn without_last_cluster(plan: &str) -> String {
    let text = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(plan)).unwrap();
    let cut = text.rfind("[[cluster]]").unwrap();
    text[..cut].replace("[[network]]\nid = \"network-c3\"\n", "")
}

#[test]
fn rebuild_removes_what_the_plan_no_longer_produces_and_keeps_foreign_files() {
    let base = scratch("ownership");
    let dir = base.join("out");
    build(PLAN, &dir);
    fs::write(dir.join("NOTES.md"), "mine\n").unwrap();
    fs::write(dir.join("mdemo-cluster3/extra.yaml"), "mine too\n").unwrap();
    let smaller = base.join("two-clusters.toml");
    fs::write(&smaller, without_last_cluster(PLAN)).unwrap();
    let rebuilt = build(smaller.to_str().unwrap(), &dir);
    assert_eq!(
        rebuilt.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let after = tree(&dir);
    assert_eq!(
        after.get("NOTES.md").map(Vec::as_slice),
        Some(&b"mine\n"[..])
    );
    assert_eq!(
        after.get("mdemo-cluster3/extra.yaml").map(Vec::as_slice),
        Some(&b"mine too\n"[..])
    );
    assert!(
        !after
            .keys()
            .any(|p| p.starts_with("mdemo-cluster3/") && p != "mdemo-cluster3/extra.yaml")
    );
    assert_eq!(
        check(smaller.to_str().unwrap(), &dir).status.code(),
        Some(0)
    );
}

#[test]
fn a_foreign_file_in_the_way_stops_the_build_before_anything_changes() {
    let dir = scratch("foreign").join("out");
    fs::create_dir_all(dir.join("mdemo-cluster1")).unwrap();
    fs::write(dir.join("mdemo-cluster1/namespace.yaml"), "hand-written\n").unwrap();
    let before = tree(&dir);
    // --force lets a first build into a non-empty directory through; a file in the way
    // still stops it.
    let out = meshplan(&["build", PLAN, "-o", dir.to_str().unwrap(), "--force"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mdemo-cluster1/namespace.yaml"));
    assert_eq!(tree(&dir), before);
}

#[test]
fn an_invalid_plan_leaves_the_output_untouched() {
    let base = scratch("invalid");
    let dir = base.join("out");
    build(PLAN, &dir);
    let before = tree(&dir);
    let out = build("tests/fixtures/err/lb_outside_pool.toml", &dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(tree(&dir), before);
    let fresh = base.join("never");
    build("tests/fixtures/err/lb_outside_pool.toml", &fresh);
    assert!(
        !fresh.exists(),
        "no directory is created for an invalid plan"
    );
}

fn yaml_documents(text: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn render_streams_one_clusters_manifests_as_parseable_yaml() {
    let out = meshplan(&["render", PLAN, "--cluster", "mdemo-cluster1"]);
    assert_eq!(out.status.code(), Some(0));
    let kinds: Vec<String> = yaml_documents(&stdout(&out))
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    let expected = [
        "Namespace",     // istio-system
        "IPAddressPool", // MetalLB before the Services that take its addresses
        "L2Advertisement",
        "Service",   // istiod-lb
        "Gateway",   // cross-network
        "Namespace", // sample, before its workloads
        "Service",
        "Deployment",
        "ServiceAccount",
        "Service",
        "Deployment",
    ];
    assert_eq!(kinds, expected, "apply order");

    let istio = meshplan(&[
        "render",
        PLAN,
        "--cluster",
        "mdemo-cluster2",
        "--only",
        "istio",
    ]);
    let docs = yaml_documents(&stdout(&istio));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["profile"].as_str(), Some("remote"));
    assert_eq!(
        docs[0]["spec"]["values"]["global"]["remotePilotAddress"].as_str(),
        Some("10.64.30.71")
    );
}

#[test]
fn render_of_an_unknown_cluster_lists_the_plans_clusters() {
    let out = meshplan(&["render", PLAN, "--cluster", "mdemo-cluster9"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mdemo-cluster1, mdemo-cluster2, mdemo-cluster3"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_after_a_meshplan_upgrade_says_which_meshplan_built_the_tree() {
    let dir = scratch("stamp").join("out");
    assert_eq!(build(PLAN, &dir).status.code(), Some(0));
    let manifest = dir.join(".meshplan-manifest");
    let text = fs::read_to_string(&manifest).unwrap();
    let stamp = format!("# meshplan {}\n", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&stamp), "{text}");
    // A tree built by another meshplan, whose output differed in one file.
    fs::write(&manifest, text.replace(&stamp, "# meshplan 0.0.9\n")).unwrap();
    fs::write(dir.join("install.sh"), "older\n").unwrap();
    let drift = check(PLAN, &dir);
    assert_eq!(drift.status.code(), Some(1));
    assert!(
        stderr(&drift).contains(&format!(
            "built by meshplan 0.0.9; this is meshplan {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        stderr(&drift)
    );
    // The differences are still listed after the note.
    assert!(stdout(&drift).contains("install.sh"), "{}", stdout(&drift));
}
