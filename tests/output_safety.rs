//! `meshplan build` against a careless user, a hostile plan author and a crashed run: it never
//! writes or deletes through a symbolic link it did not make, never deletes what its own
//! manifest does not prove it wrote, refuses directories that are not its own, and keeps one
//! build at a time. (Interrupted and failed commits: the unit tests in `src/emit.rs`.)

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "support/files.rs"]
mod files;
#[path = "support/run.rs"]
mod run;
use files::tree_no_follow as tree;
use run::{meshplan, meshplan_env};

const PLAN: &str = "plans/three-cloud-metallb.toml";

/// A fresh, empty scratch directory for one test, outside the repository: the links these
/// tests make (one dangling) must not meet other tests' directory walks.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("meshplan-output-safety-{}", std::process::id()))
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn build(plan: &str, out: &Path) -> Output {
    meshplan(&["build", plan, "-o", out.to_str().unwrap()])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn built(plan: &str, out: &Path) {
    let done = build(plan, out);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
}

/// The shipped plan without its last cluster.
fn without_last_cluster(base: &Path) -> String {
    let text = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(PLAN)).unwrap();
    let cut = text.rfind("[[cluster]]").unwrap();
    let plan = base.join("two-clusters.toml");
    fs::write(
        &plan,
        text[..cut].replace("[[network]]\nid = \"network-c3\"\n", ""),
    )
    .unwrap();
    plan.to_str().unwrap().to_owned()
}

/// A directory outside the tree with one file the user cares about.
fn elsewhere(base: &Path) -> PathBuf {
    let dir = base.join("elsewhere");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("keep.txt"), "precious\n").unwrap();
    dir
}

#[test]
fn a_cluster_directory_replaced_by_a_link_is_not_written_through() {
    let base = scratch("link_cluster_dir");
    let out = base.join("out");
    built(PLAN, &out);
    let away = elsewhere(&base);
    fs::remove_dir_all(out.join("mdemo-cluster1")).unwrap();
    symlink(&away, out.join("mdemo-cluster1")).unwrap();
    let before = (tree(&out), tree(&away));
    let refused = build(PLAN, &out);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("mdemo-cluster1") && stderr(&refused).contains("symbolic link"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        (tree(&out), tree(&away)),
        before,
        "nothing written anywhere"
    );
}

#[test]
fn a_manifest_line_through_a_link_deletes_nothing() {
    let base = scratch("link_manifest_line");
    let out = base.join("out");
    built(PLAN, &out);
    let away = elsewhere(&base);
    fs::write(away.join("victim.txt"), "not meshplan's\n").unwrap();
    symlink(&away, out.join("evil")).unwrap();
    let manifest = out.join(".meshplan-manifest");
    let mut text = fs::read_to_string(&manifest).unwrap();
    text.push_str("evil/victim.txt\n");
    fs::write(&manifest, text).unwrap();
    let run = build(PLAN, &out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("evil"), "{}", stderr(&run));
    assert_eq!(
        fs::read_to_string(away.join("victim.txt")).unwrap(),
        "not meshplan's\n"
    );
}

#[test]
fn a_removed_cluster_whose_directory_became_a_link_deletes_nothing_behind_it() {
    let base = scratch("link_removed_cluster");
    let out = base.join("out");
    built(PLAN, &out);
    // The link's target holds files with the names the manifest lists.
    let away = base.join("elsewhere");
    fs::rename(out.join("mdemo-cluster3"), &away).unwrap();
    symlink(&away, out.join("mdemo-cluster3")).unwrap();
    let before = tree(&away);
    let smaller = without_last_cluster(&base);
    let run = build(&smaller, &out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("mdemo-cluster3"), "{}", stderr(&run));
    assert_eq!(tree(&away), before);
}

#[test]
fn files_a_user_left_in_the_staging_directory_are_not_deleted() {
    let base = scratch("user_staging");
    let out = base.join("out");
    built(PLAN, &out);
    fs::create_dir_all(out.join(".meshplan-staging")).unwrap();
    fs::write(out.join(".meshplan-staging/mine.txt"), "mine\n").unwrap();
    fs::write(out.join("mdemo-cluster1/namespace.yaml"), "edited\n").unwrap();
    let run = build(PLAN, &out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(".meshplan-staging"),
        "{}",
        stderr(&run)
    );
    assert_eq!(
        fs::read_to_string(out.join(".meshplan-staging/mine.txt")).unwrap(),
        "mine\n"
    );
}

#[test]
fn a_first_build_leaves_directories_beside_the_output_alone() {
    let base = scratch("sibling_staging");
    let sibling = base.join(".out.meshplan-staging");
    fs::create_dir_all(&sibling).unwrap();
    fs::write(sibling.join("mine.txt"), "mine\n").unwrap();
    built(PLAN, &base.join("out"));
    assert_eq!(
        fs::read_to_string(sibling.join("mine.txt")).unwrap(),
        "mine\n"
    );
}

#[test]
fn a_non_empty_directory_without_a_manifest_is_refused_unless_forced() {
    let base = scratch("not_ours");
    let out = base.join("out");
    fs::create_dir_all(out.join(".ssh")).unwrap();
    fs::write(out.join(".bashrc"), "export PS1\n").unwrap();
    let before = tree(&out);
    let refused = build(PLAN, &out);
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains(".bashrc") && message.contains(".ssh") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(tree(&out), before);
    let forced = meshplan(&["build", PLAN, "-o", out.to_str().unwrap(), "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert!(out.join("install.sh").is_file() && out.join(".bashrc").is_file());
}

#[test]
fn the_home_directory_and_the_root_are_refused_even_when_forced() {
    let home = scratch("home");
    fs::write(home.join(".bashrc"), "export PS1\n").unwrap();
    let before = tree(&home);
    for target in [home.to_str().unwrap(), "/"] {
        let refused = meshplan_env(
            &["build", PLAN, "-o", target, "--force"],
            &[("HOME", home.to_str().unwrap())],
        );
        assert_eq!(refused.status.code(), Some(2), "{target}");
        assert!(
            stderr(&refused).contains("refusing"),
            "{}",
            stderr(&refused)
        );
    }
    assert_eq!(tree(&home), before);
    assert!(!Path::new("/.meshplan-manifest").exists());
}

#[test]
fn odd_output_paths_are_explained_in_words() {
    let base = scratch("odd_paths");
    let file = base.join("a-file");
    fs::write(&file, "x\n").unwrap();
    let dangling = base.join("dangling");
    symlink(base.join("nowhere"), &dangling).unwrap();
    let dotdot = base.join("missing/..");
    for (path, words) in [
        (&file, "is a file"),
        (&dangling, "symbolic link"),
        (&dotdot, "does not exist"),
    ] {
        let run = build(PLAN, path);
        assert_eq!(run.status.code(), Some(2), "{}", path.display());
        let message = stderr(&run);
        assert!(message.contains(words), "{}: {message}", path.display());
        assert!(!message.contains("os error"), "{message}");
    }
    assert!(!base.join("nowhere").exists());
}

#[test]
fn a_lock_held_by_another_program_names_that_program() {
    // Anyone who can open DIR can take its lock; the refusal says who holds it.
    let out = scratch("locked").join("out");
    built(PLAN, &out);
    let holder = fs::File::open(&out).unwrap();
    holder.try_lock().unwrap();
    let before = tree(&out);
    let loser = build("tests/fixtures/ok/kind-platform.toml", &out);
    assert_eq!(loser.status.code(), Some(2));
    let message = stderr(&loser);
    assert!(
        message.contains(&format!("locked by process {}", std::process::id()))
            && message.contains("not a meshplan build")
            && message.contains("uid "),
        "{message}"
    );
    assert_eq!(tree(&out), before);
    drop(holder);
    let winner = build("tests/fixtures/ok/kind-platform.toml", &out);
    assert_eq!(winner.status.code(), Some(0), "{}", stderr(&winner));
}
