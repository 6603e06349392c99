//! Names the commit the binary is built from, for `meshplan --version`: `git rev-parse` when
//! the source is a git checkout (with `-dirty` when it has uncommitted changes), `unknown` when
//! it is not (a crates.io package, a tarball). Nothing generated depends on it.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=MESHPLAN_COMMIT={commit}");
    // `--git-path` names where git keeps each file: in a linked worktree HEAD and index are the
    // worktree's own and the branch's ref is in the common directory. A file that does not exist
    // (a ref only in packed-refs) would make every build stale, so packed-refs is watched instead.
    for file in ["HEAD", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose = git(&["rev-parse", "--git-path", &head_ref]);
        let packed = git(&["rev-parse", "--git-path", "packed-refs"]);
        match (loose, packed) {
            (Some(loose), _) if std::path::Path::new(&loose).exists() => {
                println!("cargo:rerun-if-changed={loose}");
            }
            (_, Some(packed)) => println!("cargo:rerun-if-changed={packed}"),
            _ => {}
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
