//! Failures and crashes in the middle of a commit, a directory swapped for a link during it,
//! and work directories forged at random. A test cannot make a write fail as root by
//! permissions, so a hook before each move fails (an error: the build rolls back), panics (a
//! crash: nothing of the build's own runs after it, as with `kill -9`) or swaps a directory.
#![allow(clippy::unwrap_used)]

use super::*;
use std::collections::BTreeMap;

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("meshplan-emit-{}", std::process::id()))
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir.join("out")
}

fn output(files: &[(&str, &str)]) -> Output {
    files
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect()
}

/// Every file and directory under `dir`: path → content (directories: `/`).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                found.insert(rel, "/".to_owned());
                stack.push(path);
            } else {
                found.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    found
}

fn old_plan() -> Output {
    output(&[
        ("a/one.yaml", "old one\n"),
        ("a/two.yaml", "old two\n"),
        ("gone/three.yaml", "old three\n"),
        ("same.yaml", "same\n"),
    ])
}

fn new_plan() -> Output {
    output(&[
        ("a/one.yaml", "new one\n"),
        ("a/two.yaml", "new two\n"),
        ("b/deep/four.yaml", "new four\n"),
        ("same.yaml", "same\n"),
    ])
}

#[test]
fn a_commit_that_fails_half_way_leaves_the_old_tree() {
    for failing_move in 1..=5 {
        let dir = scratch(&format!("fails_{failing_move}"));
        build(&dir, &old_plan(), Options::default()).unwrap();
        fs::write(dir.join("NOTES.md"), "mine\n").unwrap();
        let before = tree(&dir);
        let mut moves = 0;
        let err = build_with(&dir, &new_plan(), Options::default(), &mut |_| {
            moves += 1;
            if moves == failing_move {
                Err(io::Error::other("injected failure"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(tree(&dir), before, "failing at move {failing_move}");
    }
}

#[test]
fn a_build_killed_during_its_commit_is_rolled_back_by_the_next_run() {
    for dying_move in 1..=5 {
        let dir = scratch(&format!("killed_{dying_move}"));
        build(&dir, &old_plan(), Options::default()).unwrap();
        let before = tree(&dir);
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut moves = 0;
            build_with(&dir, &new_plan(), Options::default(), &mut |_| {
                moves += 1;
                assert!(moves < dying_move, "killed");
                Ok(())
            })
        }));
        assert!(crashed.is_err(), "the build died at move {dying_move}");
        assert_ne!(tree(&dir), before, "the crash left a mixed tree");
        assert!(
            check(&dir, &old_plan()).is_err(),
            "check sees the interruption"
        );
        // The next run first puts the old tree back; building the old plan then finds
        // nothing to change.
        let written = build(&dir, &old_plan(), Options::default()).unwrap();
        assert!(written.changed.is_empty() && written.removed.is_empty());
        assert!(written.recovered, "the run says it put the old tree back");
        assert_eq!(tree(&dir), before, "dying at move {dying_move}");
        // And the new plan builds cleanly afterwards.
        build(&dir, &new_plan(), Options::default()).unwrap();
        assert!(check(&dir, &new_plan()).unwrap().is_empty());
        assert!(!dir.join(WORK).exists());
    }
}

#[test]
fn a_build_killed_while_cleaning_up_leaves_the_new_tree_and_a_work_directory_it_knows() {
    // Moves 1-5 are the commit (see above); after them come the removals of the work
    // directory's entries (`new`, `old`, the marker).
    for dying_step in 6..=8 {
        let dir = scratch(&format!("cleanup_{dying_step}"));
        build(&dir, &old_plan(), Options::default()).unwrap();
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut steps = 0;
            build_with(&dir, &new_plan(), Options::default(), &mut |_| {
                steps += 1;
                assert!(steps < dying_step, "killed");
                Ok(())
            })
        }));
        assert!(crashed.is_err(), "the build died at step {dying_step}");
        assert!(dir.join(WORK).exists());
        let written = build(&dir, &new_plan(), Options::default()).unwrap();
        assert!(
            written.changed.is_empty(),
            "step {dying_step}: the new tree stood"
        );
        assert!(check(&dir, &new_plan()).unwrap().is_empty());
        assert!(!dir.join(WORK).exists());
    }
}

#[test]
fn a_failed_first_build_leaves_no_directory() {
    let dir = scratch("first");
    let err = build_with(&dir, &new_plan(), Options::default(), &mut |_| {
        Err(io::Error::other("injected failure"))
    });
    assert!(err.is_err());
    assert!(!dir.exists());
}

/// Files outside DIR that no build may touch, and their state (links not followed).
fn outside(base: &Path) -> PathBuf {
    let away = base.join("outside");
    fs::create_dir_all(away.join("y")).unwrap();
    fs::write(away.join("x.txt"), "precious x\n").unwrap();
    fs::write(away.join("one.yaml"), "precious one\n").unwrap();
    fs::write(away.join("y/z.txt"), "precious z\n").unwrap();
    away
}

#[test]
fn a_directory_swapped_for_a_link_during_the_commit_is_not_written_through() {
    // The review's B4: another writer in DIR swaps a directory for a link while a build runs.
    // Whether the build then stops (the link is met) or goes on (into the directory it had
    // opened, now moved), nothing reaches the link's target.
    for swap_at in 1..=4 {
        let dir = scratch(&format!("swap_{swap_at}"));
        let base = dir.parent().unwrap().to_path_buf();
        build(&dir, &old_plan(), Options::default()).unwrap();
        let away = outside(&base);
        let before = tree(&away);
        let mut moves = 0;
        let result = build_with(&dir, &new_plan(), Options::default(), &mut |_| {
            moves += 1;
            if moves == swap_at {
                fs::rename(dir.join("a"), base.join("a-moved"))?;
                std::os::unix::fs::symlink(&away, dir.join("a"))?;
            }
            Ok(())
        });
        if let Err(err) = &result {
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        assert_eq!(tree(&away), before, "swapped before move {swap_at}");
    }
}

mod forged {
    //! Arbitrary work directories: markers, journals and files in `old`/`new`, with links in
    //! DIR and in the work directory pointing outside. Whatever they hold, a build never
    //! changes anything outside DIR, and never panics.

    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    const NAMES: &[&str] = &["a", "evil", "y", "one.yaml", "x.txt", "z.txt", "..", "gone"];

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(NAMES), 1..4).prop_map(|p| p.join("/"))
    }

    #[derive(Debug, Clone)]
    enum Number {
        /// The inode of a file outside DIR (the most dangerous guess).
        Outside(usize),
        Random(u64),
    }

    fn line() -> impl Strategy<Value = (String, Number, Number, String)> {
        let number = prop_oneof![
            (0usize..3).prop_map(Number::Outside),
            any::<u64>().prop_map(Number::Random)
        ];
        (
            prop::sample::select(&["dir", "new", "replace", "remove", "old", "junk"][..]),
            number.clone(),
            number,
            path(),
        )
            .prop_map(|(k, a, b, p)| (k.to_owned(), a, b, p))
    }

    #[derive(Debug, Clone)]
    struct Forgery {
        valid_marker: bool,
        valid_header: bool,
        lines: Vec<(String, Number, Number, String)>,
        links_in_dir: Vec<(String, bool)>,
        old_files: Vec<String>,
        new_files: Vec<String>,
        link_in_old: bool,
    }

    fn forgery() -> impl Strategy<Value = Forgery> {
        (
            (any::<bool>(), any::<bool>()),
            prop::collection::vec(line(), 0..8),
            prop::collection::vec(
                (
                    prop::sample::select(&["evil", "a", "b", "gone", "a/evil"][..]),
                    any::<bool>(),
                )
                    .prop_map(|(n, d)| (n.to_owned(), d)),
                0..3,
            ),
            prop::collection::vec(path(), 0..4),
            prop::collection::vec(path(), 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(
                    (valid_marker, valid_header),
                    lines,
                    links_in_dir,
                    old_files,
                    new_files,
                    link_in_old,
                )| Forgery {
                    valid_marker,
                    valid_header,
                    lines,
                    links_in_dir,
                    old_files,
                    new_files,
                    link_in_old,
                },
            )
    }

    fn identity(dir: &Path) -> String {
        let meta = fs::symlink_metadata(dir).unwrap();
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or("-".to_owned(), |d| {
                format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
            });
        format!("{} {born}", meta.ino())
    }

    /// Writes a file at `rel` below `base` unless the path leaves it or is blocked.
    fn plant(base: &Path, rel: &str, text: &str) {
        if rel.split('/').any(|p| p == "..") {
            return;
        }
        let file = base.join(rel);
        if fs::create_dir_all(file.parent().unwrap()).is_ok() && !file.is_dir() {
            let _ = fs::write(file, text);
        }
    }

    fn forge(dir: &Path, away: &Path, forgery: &Forgery) {
        let inodes: Vec<u64> = ["x.txt", "one.yaml", "y/z.txt"]
            .iter()
            .map(|f| fs::metadata(away.join(f)).unwrap().ino())
            .collect();
        for (name, to_dir) in &forgery.links_in_dir {
            let link = dir.join(name);
            let _ = fs::remove_dir_all(&link);
            let _ = fs::remove_file(&link);
            let target = if *to_dir {
                away.to_path_buf()
            } else {
                away.join("x.txt")
            };
            if let Some(parent) = link.parent() {
                let _ = fs::create_dir_all(parent);
            }
            let _ = symlink(target, &link);
        }
        let work = dir.join(WORK);
        fs::create_dir_all(&work).unwrap();
        for rel in &forgery.old_files {
            plant(&work.join("old"), rel, "planted old\n");
        }
        for rel in &forgery.new_files {
            plant(&work.join("new"), rel, "planted new\n");
        }
        if forgery.link_in_old {
            let _ = fs::create_dir_all(work.join("old"));
            let _ = symlink(away, work.join("old/a"));
        }
        let id = if forgery.valid_marker {
            identity(&work)
        } else {
            "1 -".to_owned()
        };
        fs::write(
            work.join("meshplan-work"),
            format!("meshplan's work directory: it removes it when a build ends\nwork {id}\n"),
        )
        .unwrap();
        let number = |n: &Number| match n {
            Number::Outside(i) => inodes[*i],
            Number::Random(n) => *n,
        };
        let header = if forgery.valid_header {
            "meshplan journal 2"
        } else {
            "meshplan journal 1"
        };
        let mut journal = format!("{header}\nwork {id}\n");
        for (kind, a, b, path) in &forgery.lines {
            let (a, b) = (number(a), number(b));
            journal.push_str(&match kind.as_str() {
                "dir" | "old" => format!("{kind} {path}\n"),
                "new" | "remove" => format!("{kind} {a} {path}\n"),
                "replace" => format!("{kind} {a} {b} {path}\n"),
                _ => format!("{kind}\n"),
            });
        }
        fs::write(work.join("journal"), journal).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

        #[test]
        fn a_forged_work_directory_never_touches_anything_outside_dir(forgery in forgery()) {
            let dir = scratch("forged");
            let base = dir.parent().unwrap().to_path_buf();
            build(&dir, &old_plan(), Options::default()).unwrap();
            let away = outside(&base);
            // Forging may itself write through its own links; what counts is what the build does.
            forge(&dir, &away, &forgery);
            let before = crate_tree(&away);
            let _ = build(&dir, &new_plan(), Options::default());
            let _ = check(&dir, &new_plan());
            prop_assert_eq!(crate_tree(&away), before);
        }
    }

    /// Everything under `dir` with its inode, not following links: a file put back, replaced
    /// or removed changes it.
    fn crate_tree(dir: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
        let mut found = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(current) = stack.pop() {
            for entry in fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if meta.is_dir() {
                    stack.push(path.clone());
                }
                let bytes = if meta.is_file() {
                    fs::read(&path).unwrap()
                } else {
                    Vec::new()
                };
                found.insert(rel, (meta.ino(), bytes));
            }
        }
        found
    }
}
