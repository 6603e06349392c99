//! `meshplan upgrade OLD NEW -o DIR` and `meshplan diff` on a version change, as a user sees
//! them: the pair rules on their fixtures (tests/fixtures/upgrade/, each naming its old plan on
//! its second line), the procedure's files, and its scripts as bash and shellcheck read them.
//! The order the procedure runs in is tests/install_trace.rs's.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/bash_compat.rs"]
mod bash_compat;
#[path = "support/bump.rs"]
mod bump;
#[path = "support/run.rs"]
mod run;
#[path = "support/tools.rs"]
mod tools;
use run::meshplan;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("upgrade")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn snapshot(name: &str, suffix: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_suffix(suffix);
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// A fixture's first lines: `# code: CODE` and `# old: PLAN`.
fn declared(path: &Path) -> (String, String) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let code = lines.next().unwrap().strip_prefix("# code: ").unwrap();
    let old = lines.next().unwrap().strip_prefix("# old: ").unwrap();
    (code.to_owned(), old.to_owned())
}

#[test]
fn every_upgrade_rule_fires_on_its_fixture_and_writes_nothing() {
    let dir = crate_root().join("tests/fixtures/upgrade");
    let mut fixtures: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 7, "{} fixtures", fixtures.len());
    for fixture in fixtures {
        let (code, old) = declared(&fixture);
        let out = scratch("refused").join("out");
        let run = meshplan(&[
            "upgrade",
            "-q",
            &old,
            fixture.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr)
            .replace(&format!("{}/", crate_root().display()), "");
        assert_eq!(
            run.status.code(),
            Some(1),
            "{}: {stderr}",
            fixture.display()
        );
        assert!(
            stderr.contains(&code),
            "{}: no {code} in\n{stderr}",
            fixture.display()
        );
        assert!(
            !out.exists(),
            "{}: a refused upgrade wrote {}",
            fixture.display(),
            out.display()
        );
        let name = fixture.file_name().unwrap().to_string_lossy();
        snapshot("upgrade", &format!("refused__{name}"), &stderr);
    }
}

/// `meshplan upgrade` from a plan to the same plan one minor newer, into a fresh directory.
fn upgrade_dir(plan: &Path, test: &str) -> PathBuf {
    let dir = scratch(test);
    let (text, _, _) = bump::bumped(plan);
    let new = dir.join("new.toml");
    fs::write(&new, text).unwrap();
    let out = dir.join("up");
    let run = meshplan(&[
        "upgrade",
        "-q",
        plan.to_str().unwrap(),
        new.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}: {}",
        plan.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// The files under `dir`, relative to it, sorted (the manifest left out).
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.retain(|f| f != ".meshplan-manifest");
    found.sort();
    found
}

/// The procedure's own files, whole: upgrade.sh, README.md and the pinned istiod-lb; the list
/// of the copied tree files (they are the two builds' own, snapshotted there).
fn procedure_text(dir: &Path) -> String {
    let mut text = format!("files:\n  {}\n", files(dir).join("\n  "));
    for file in files(dir) {
        if file.starts_with("old/") || file.starts_with("new/") {
            continue;
        }
        text.push_str(&format!(
            "\n===== {file}\n{}",
            fs::read_to_string(dir.join(&file)).unwrap()
        ));
    }
    text
}

#[test]
fn a_canary_through_a_hosted_istiods_load_balancer() {
    let dir = upgrade_dir(
        &crate_root().join("plans/three-cloud-metallb.toml"),
        "hosted",
    );
    snapshot(
        "upgrade",
        "tree__three-cloud-metallb",
        &procedure_text(&dir),
    );
}

#[test]
fn an_ambient_helm_mesh_in_place() {
    let dir = upgrade_dir(
        &crate_root().join("tests/fixtures/ok/ambient-helm.toml"),
        "ambient",
    );
    snapshot("upgrade", "tree__ambient-helm", &procedure_text(&dir));
}

#[test]
fn a_second_upgrade_into_the_same_directory_changes_nothing() {
    let plan = crate_root().join("plans/shared-control-plane-multi-network.toml");
    let dir = upgrade_dir(&plan, "again");
    let before: Vec<(String, String)> = files(&dir)
        .into_iter()
        .map(|f| (f.clone(), fs::read_to_string(dir.join(&f)).unwrap()))
        .collect();
    let new = dir.parent().unwrap().join("new.toml");
    let run = meshplan(&[
        "upgrade",
        plan.to_str().unwrap(),
        new.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("0 files written"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let after: Vec<(String, String)> = files(&dir)
        .into_iter()
        .map(|f| (f.clone(), fs::read_to_string(dir.join(&f)).unwrap()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn every_upgrade_script_passes_bash_n_shellcheck_and_bash_3_2() {
    let shellcheck = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !shellcheck {
        tools::skip("shellcheck of upgrade.sh", "shellcheck is not installed");
    }
    for plan in bump::upgrade_plans(&crate_root()) {
        let stem = plan.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = upgrade_dir(&plan, &format!("lint-{stem}"));
        let script = dir.join("upgrade.sh");
        let text = fs::read_to_string(&script).unwrap();
        let old_bash = bash_compat::violations(&text);
        assert!(old_bash.is_empty(), "{stem}: {}", old_bash.join("\n"));
        let syntax = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            syntax.status.success(),
            "{stem}: {}",
            String::from_utf8_lossy(&syntax.stderr)
        );
        if shellcheck {
            let lint = Command::new("shellcheck").arg(&script).output().unwrap();
            assert!(
                lint.status.success(),
                "{stem}: shellcheck:\n{}",
                String::from_utf8_lossy(&lint.stdout)
            );
        }
    }
}

#[test]
fn diff_of_a_version_bump_shows_the_upgrade_not_a_rerun() {
    let plan = crate_root().join("plans/icp-single-network.toml");
    let dir = scratch("diff");
    let (text, _, _) = bump::bumped(&plan);
    let new = dir.join("new.toml");
    fs::write(&new, text).unwrap();
    let run = meshplan(&["diff", "-q", plan.to_str().unwrap(), new.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1));
    assert!(stdout.contains("upgrade by canary"), "{stdout}");
    assert!(stdout.contains("  tags: "), "{stdout}");
    assert!(!stdout.contains("re-run (from"), "{stdout}");
}

#[test]
fn diff_of_a_bump_meshplan_cannot_order_says_so() {
    let fixture = crate_root().join("tests/fixtures/upgrade/same-revision.toml");
    let (_, old) = declared(&fixture);
    let run = meshplan(&["diff", "-q", &old, fixture.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("upgrade: not one meshplan can order"),
        "{stdout}"
    );
    assert!(stdout.contains("needs a revision of its own"), "{stdout}");
    assert!(!stdout.contains("re-run (from"), "{stdout}");
}
