//! Stage 5 (binary side): write the compiled tree to disk, or compare it with what is there.
//!
//! meshplan owns exactly the files listed in `DIR/.meshplan-manifest`: a rebuild replaces them,
//! removes those the plan no longer produces, and touches nothing else. Nothing found in DIR is
//! trusted beyond what meshplan can prove: DIR may come from `git clone`, a copy or another
//! user. The rules, each with a test in `tests/output_safety.rs` or `tests.rs` here:
//!
//! - It never writes or deletes through a symbolic link ([`at`]): everything inside DIR is
//!   reached from one handle on DIR, a directory at a time, never following a link, so a path
//!   checked is the path written even if a directory is swapped for a link meanwhile. Every
//!   file it replaces or removes must be a regular file; otherwise the build stops before
//!   anything changes.
//! - It reads only regular files, without blocking and never past a cap: a file it compares
//!   is read no further than the new text's length; the manifest and the journal have caps far
//!   above what meshplan writes.
//! - It deletes only what its manifest lists (plain relative paths, checked as above) and its
//!   own work directory `DIR/.meshplan-staging`, which it acts on only when it can prove it
//!   made it on this machine ([`work`]: a marker and a journal bound to the directory's inode
//!   and birth time, which git cannot carry).
//! - One build at a time: DIR's handle is locked (`flock`) for the whole build; a lock held by
//!   something else is named ([`lock`]).
//! - All or nothing, through a journal. Changed files are first written to the work directory;
//!   then the journal (every move, with the inodes of the files moved) is written, and each old
//!   file is moved aside into the work directory before its new version is moved in. Removing
//!   the journal is the commit point. A failure before that moves every old file back; a run
//!   killed before that leaves the journal, and the next `build` moves the old files back
//!   before anything else. So DIR always ends up holding the old tree or the new one, never a
//!   mix (while a build runs, a reader of DIR may see both).
//! - `/` and the user's home directory are never output directories ([`place`]).

mod at;
mod lock;
mod place;
#[cfg(test)]
mod tests;
mod work;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use meshplan::render::Output;

use at::{Root, Stop, Walker};
pub use work::WORK;
use work::{Entry, Work};

/// The file recording what meshplan wrote.
pub const MANIFEST: &str = ".meshplan-manifest";
/// Far above any manifest meshplan writes (a line per file: 10,000 files are 0.5 MB).
const MANIFEST_CAP: u64 = 64 << 20;

/// Why a build could not be written.
#[derive(Debug)]
pub enum EmitError {
    /// Reading or writing failed.
    Io { path: PathBuf, error: io::Error },
    /// Files the build would overwrite that meshplan did not write.
    Foreign(Vec<String>),
    /// Something meshplan refuses to do, said in words.
    Refused(String),
}

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmitError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            EmitError::Foreign(paths) => write!(
                f,
                "refusing to overwrite files meshplan did not write (not in {MANIFEST}): {}; move them away or build into another directory",
                paths.join(", ")
            ),
            EmitError::Refused(why) => f.write_str(why),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> EmitError + '_ {
    move |error| EmitError::Io {
        path: path.to_owned(),
        error,
    }
}

fn refused(why: String) -> EmitError {
    EmitError::Refused(why)
}

/// Text found on disk (a file name, a process name) for a message: what would act on the
/// user's terminal is escaped (the message as a whole is escaped again where it is printed).
fn printable(text: &str) -> String {
    meshplan::terminal::text(text).into_owned()
}

/// What a build changed.
#[derive(Debug, Default)]
pub struct Written {
    /// Files created or replaced.
    pub changed: Vec<String>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Files removed because the plan no longer produces them.
    pub removed: Vec<String>,
    /// Whether an interrupted build's commit was undone first.
    pub recovered: bool,
}

/// Differences between DIR and what the plan compiles to.
#[derive(Debug, Default)]
pub struct Drift {
    /// DIR does not exist (every file is missing).
    pub no_dir: bool,
    /// The version stamp of the meshplan that built DIR, when it is not this one's: `Some("")`
    /// for a manifest from before stamps. Differences may then come from the upgrade.
    pub built_by_other: Option<String>,
    /// Files the plan produces that DIR lacks.
    pub missing: Vec<String>,
    /// Files whose content differs.
    pub changed: Vec<String>,
    /// Files meshplan wrote earlier that the plan no longer produces.
    pub stale: Vec<String>,
}

impl Drift {
    /// Whether DIR is exactly what the plan compiles to.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.stale.is_empty()
    }
}

/// The meshplan that writes a manifest, stamped in it so that `build --check` after an
/// upgrade can say where differences may come from. The package version only: a commit hash
/// would change every user's tree with every build of meshplan.
const STAMP: &str = concat!("# meshplan ", env!("CARGO_PKG_VERSION"));

/// The manifest's text for an output.
fn manifest_text(output: &Output) -> String {
    let mut text = format!(
        "# Files written by meshplan from the plan. It replaces and removes only these.\n{STAMP}\n"
    );
    for path in output.keys() {
        text.push_str(path);
        text.push('\n');
    }
    text
}

/// The whole expected tree, manifest included: the output's texts borrowed, not copied (a
/// 1,000-cluster tree is tens of megabytes).
fn expected(output: &Output) -> BTreeMap<String, Cow<'_, str>> {
    let mut all: BTreeMap<String, Cow<'_, str>> = output
        .iter()
        .map(|(path, text)| (path.clone(), Cow::Borrowed(text.as_str())))
        .collect();
    all.insert(MANIFEST.to_owned(), Cow::Owned(manifest_text(output)));
    all
}

/// DIR's manifest: the paths it lists (trusted only as plain relative paths, no `..`, no `/`;
/// links on the way are refused where a path is used) and its version stamp line.
struct Manifest {
    paths: BTreeSet<String>,
    stamp: Option<String>,
}

/// DIR's manifest; `None` when there is none.
fn owned(root: &Root) -> Result<Option<Manifest>, EmitError> {
    let opened = match at::open_regular(root.fd(), OsStr::new(MANIFEST)) {
        Ok(None) => return Ok(None),
        Ok(Some(opened)) => opened,
        Err(Ok(obstacle)) => {
            return Err(at::obstacle_error(
                root,
                Path::new(MANIFEST),
                obstacle,
                MANIFEST,
            ));
        }
        Err(Err(error)) => return Err(io_error(&root.show(MANIFEST))(error)),
    };
    let bytes = opened
        .read_capped(MANIFEST_CAP)
        .map_err(io_error(&root.show(MANIFEST)))?
        .ok_or_else(|| {
            refused(format!(
                "{} is larger than any manifest meshplan writes ({} MiB); it is not meshplan's, so move it away",
                root.show(MANIFEST).display(),
                MANIFEST_CAP >> 20
            ))
        })?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(Manifest {
        paths: text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| at::plain_parts(Path::new(l)).is_some())
            .map(str::to_owned)
            .collect(),
        stamp: text
            .lines()
            .find(|l| l.starts_with("# meshplan "))
            .map(str::to_owned),
    }))
}

/// What stands at a path of the tree.
enum Probe {
    /// Nothing: the number of leading directories of the path that exist.
    Absent(usize),
    /// A regular file: its inode, and whether it holds the expected bytes.
    File { inode: u64, same: bool },
}

fn probe(
    root: &Root,
    walker: &mut Walker,
    path: &str,
    expected: Option<&[u8]>,
) -> Result<Probe, EmitError> {
    let parts = at::plain_parts(Path::new(path))
        .ok_or_else(|| refused(format!("internal error: {path:?} is not a plain path")))?;
    let (dir, name) = match walker.parent(&parts, false) {
        Ok(found) => found,
        Err(Stop::Missing(depth)) => return Ok(Probe::Absent(depth)),
        Err(stop) => return Err(at::stop_error(root, stop, path)),
    };
    let opened = match at::open_regular(dir, name) {
        Ok(None) => return Ok(Probe::Absent(parts.len() - 1)),
        Ok(Some(opened)) => opened,
        Err(Ok(obstacle)) => {
            return Err(at::obstacle_error(root, Path::new(path), obstacle, path));
        }
        Err(Err(error)) => return Err(io_error(&root.show(path))(error)),
    };
    let inode = opened.stat.st_ino;
    let same = match expected {
        Some(bytes) => opened.holds(bytes).map_err(io_error(&root.show(path)))?,
        None => false,
    };
    Ok(Probe::File { inode, same })
}

/// Compares DIR with the compiled output without writing anything.
pub fn check(dir: &Path, output: &Output) -> Result<Drift, EmitError> {
    let all = expected(output);
    if !place::existing(dir)? {
        return Ok(Drift {
            no_dir: true,
            missing: all.into_keys().collect(),
            ..Drift::default()
        });
    }
    let root = Root::open(dir)?;
    if let work::Found::Ours(_, Some(_)) = work::inspect(&root)? {
        return Err(refused(format!(
            "{} holds a build that was interrupted; run `meshplan build` to put the old tree back, then check again",
            dir.display()
        )));
    }
    let manifest = owned(&root)?;
    let mut drift = Drift {
        built_by_other: manifest
            .as_ref()
            .map(|m| m.stamp.clone().unwrap_or_default())
            .filter(|stamp| stamp != STAMP)
            .map(|stamp| stamp.trim_start_matches("# meshplan ").to_owned()),
        ..Drift::default()
    };
    let owned = manifest.map(|m| m.paths).unwrap_or_default();
    let mut walker = Walker::new(root.fd());
    for (path, text) in &all {
        match probe(&root, &mut walker, path, Some(text.as_bytes()))? {
            Probe::Absent(_) => drift.missing.push(path.clone()),
            Probe::File { same: true, .. } => {}
            Probe::File { .. } => drift.changed.push(path.clone()),
        }
    }
    for path in owned.iter().filter(|p| !output.contains_key(*p)) {
        if let Probe::File { .. } = probe(&root, &mut walker, path, None)? {
            drift.stale.push(path.clone());
        }
    }
    Ok(drift)
}

/// How a build may proceed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// Build into a non-empty directory that holds no manifest.
    pub force: bool,
}

/// Writes the output into DIR (see the module docs for the guarantees).
pub fn build(dir: &Path, output: &Output, options: Options) -> Result<Written, EmitError> {
    build_with(dir, output, options, &mut |_| Ok(()))
}

/// [`build`], calling `before_move(path)` before each file is moved during the commit: the
/// tests make it fail or panic there.
fn build_with(
    dir: &Path,
    output: &Output,
    options: Options,
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<Written, EmitError> {
    let created = place::prepare(dir)?;
    let result = Root::open(dir).and_then(|root| build_locked(&root, output, options, before_move));
    if result.is_err() && created {
        // A directory this build made and left empty goes again.
        let _ = fs::remove_dir(dir);
    }
    result
}

fn build_locked(
    root: &Root,
    output: &Output,
    options: Options,
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<Written, EmitError> {
    lock::exclusive(root)?;
    let recovered = work::recover(root)?;
    let owned = owned(root)?;
    if owned.is_none() && !options.force {
        place::refuse_unowned(root)?;
    }
    let all = expected(output);
    let plan = Plan::of(
        root,
        &all,
        output,
        &owned.map(|m| m.paths).unwrap_or_default(),
    )?;
    let unchanged = all.len() - plan.writes.len();
    if plan.writes.is_empty() && plan.removes.is_empty() {
        return Ok(Written {
            unchanged: unchanged - 1,
            recovered,
            ..Written::default()
        });
    }
    let work = work::make(root)?;
    let inodes = match stage(root, &work, &plan.writes) {
        Ok(inodes) => inodes,
        Err(err) => {
            let _ = work.remove(root, &mut |_| Ok(()));
            return Err(err);
        }
    };
    commit(root, work, &plan, &inodes, before_move)?;
    remove_empty_parents(root, &plan.removes);
    Ok(Written {
        changed: plan
            .writes
            .iter()
            .map(|w| w.path.clone())
            .filter(|p| p != MANIFEST)
            .collect(),
        unchanged: unchanged - usize::from(!plan.writes.iter().any(|w| w.path == MANIFEST)),
        removed: plan.removes.iter().map(|(p, _)| p.clone()).collect(),
        recovered,
    })
}

/// A file to write: its text, and the inode of the file it replaces.
struct Change<'a> {
    path: String,
    text: &'a str,
    replaces: Option<u64>,
}

/// What one build does: directories to make, files to write, owned files to remove.
struct Plan<'a> {
    made_dirs: Vec<String>,
    writes: Vec<Change<'a>>,
    removes: Vec<(String, u64)>,
}

impl Plan<'_> {
    /// The directories the build makes whose parent exists: each is staged whole in the work
    /// directory and moved into DIR by one rename, its files and directories with it (a first
    /// build of 1,000 clusters: 1,000 renames instead of 10,000 and 3,700 `mkdir`s, issue 28).
    fn trees(&self) -> BTreeSet<&str> {
        let made: BTreeSet<&str> = self.made_dirs.iter().map(String::as_str).collect();
        made.iter()
            .copied()
            .filter(|dir| {
                dir.rsplit_once('/')
                    .is_none_or(|(parent, _)| !made.contains(parent))
            })
            .collect()
    }
}

/// The tree of [`Plan::trees`] that holds `path`, if any.
fn tree_of<'t>(trees: &BTreeSet<&'t str>, path: &str) -> Option<&'t str> {
    path.match_indices('/')
        .map(|(end, _)| &path[..end])
        .find_map(|dir| trees.get(dir).copied())
}

impl<'a> Plan<'a> {
    fn of(
        root: &Root,
        all: &'a BTreeMap<String, Cow<'_, str>>,
        output: &Output,
        owned: &BTreeSet<String>,
    ) -> Result<Plan<'a>, EmitError> {
        let mut missing = BTreeSet::new();
        let mut writes = Vec::new();
        let mut foreign = Vec::new();
        let mut walker = Walker::new(root.fd());
        // The last directory found missing, with its depth: the paths below it (the next ones,
        // in sorted order) are missing too, without a failed `openat` each.
        let mut absent: Option<(String, usize)> = None;
        for (path, text) in all {
            let below_absent = absent.as_ref().filter(|(dir, _)| {
                path.strip_prefix(dir.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            });
            let found = match below_absent {
                Some((_, depth)) => Probe::Absent(*depth),
                None => probe(root, &mut walker, path, Some(text.as_bytes()))?,
            };
            let replaces = match found {
                Probe::Absent(depth) => {
                    let dirs = dirs_below(path, depth);
                    if let Some(first) = dirs.first() {
                        absent = Some((first.clone(), depth));
                    }
                    missing.extend(dirs);
                    None
                }
                Probe::File { .. } if path != MANIFEST && !owned.contains(path) => {
                    foreign.push(path.clone());
                    continue;
                }
                Probe::File { same: true, .. } => continue,
                Probe::File { inode, .. } => Some(inode),
            };
            writes.push(Change {
                path: path.clone(),
                text,
                replaces,
            });
        }
        if !foreign.is_empty() {
            return Err(EmitError::Foreign(foreign));
        }
        let mut removes = Vec::new();
        for path in owned.iter().filter(|p| !output.contains_key(*p)) {
            if let Probe::File { inode, .. } = probe(root, &mut walker, path, None)? {
                removes.push((path.clone(), inode));
            }
        }
        Ok(Plan {
            // BTreeSet order puts a parent before its children.
            made_dirs: missing.into_iter().collect(),
            writes,
            removes,
        })
    }

    /// The journal: directories first, then every move of the commit.
    fn entries(&self, inodes: &[u64]) -> Vec<Entry> {
        let dirs = self
            .made_dirs
            .iter()
            .map(|path| Entry::Dir { path: path.clone() });
        let writes = self
            .writes
            .iter()
            .zip(inodes)
            .map(|(w, &new)| match w.replaces {
                Some(old) => Entry::Replace {
                    path: w.path.clone(),
                    old,
                    new,
                },
                None => Entry::New {
                    path: w.path.clone(),
                    new,
                },
            });
        let removes = self.removes.iter().map(|(path, old)| Entry::Remove {
            path: path.clone(),
            old: *old,
        });
        dirs.chain(writes).chain(removes).collect()
    }
}

/// The directories of `path` from the `depth`-th on (those that do not exist), as paths.
fn dirs_below(path: &str, depth: usize) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (depth..parts.len().saturating_sub(1))
        .map(|last| parts[..=last].join("/"))
        .collect()
}

/// `parts` below one of the work directory's folders.
fn in_work<'a>(folder: &'a str, parts: &[&'a OsStr]) -> Vec<&'a OsStr> {
    std::iter::once(OsStr::new(folder))
        .chain(parts.iter().copied())
        .collect()
}

/// Writes the new files into the work directory; their inodes, in order. The files are shared
/// out over the cores, in runs of neighbouring paths (so each thread makes its own
/// directories, mostly): creating 10,000 files is the kernel's work, and it scales with the
/// cores on ext4 (issue 28: 350 ms on one core, 200-240 ms on two, at 1,000 clusters).
fn stage(root: &Root, work: &Work, writes: &[Change]) -> Result<Vec<u64>, EmitError> {
    let parts =
        meshplan::parallel::chunks_on_all_cores(writes, |part| stage_part(root, work, part));
    let mut inodes = Vec::with_capacity(writes.len());
    for part in parts {
        inodes.extend(part?);
    }
    Ok(inodes)
}

/// [`stage`] of one run of files, with a directory walker of its own (two threads making the
/// same directory is fine: `Walker::dir` takes `EEXIST` as made).
fn stage_part(root: &Root, work: &Work, writes: &[Change]) -> Result<Vec<u64>, EmitError> {
    let mut walker = Walker::new(work.fd());
    let mut inodes = Vec::with_capacity(writes.len());
    for change in writes {
        let shown = || root.show(WORK).join(work::NEW).join(&change.path);
        let parts = at::plain_parts(Path::new(&change.path)).unwrap_or_default();
        let staged = in_work(work::NEW, &parts);
        let (dir, name) = walker
            .parent(&staged, true)
            .map_err(|stop| at::stop_error(root, stop, &change.path))?;
        // Scripts are executable; the umask applies as to any new file.
        let mode = if change.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        let inode = at::create_file(dir, name, change.text.as_bytes(), mode)
            .map_err(|error| io_error(&shown())(error))?;
        inodes.push(inode);
    }
    Ok(inodes)
}

/// Moves every old file aside and every new one in, under the journal; on failure, moves the
/// old ones back.
fn commit(
    root: &Root,
    work: Work,
    plan: &Plan,
    inodes: &[u64],
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<(), EmitError> {
    let entries = plan.entries(inodes);
    work.write_journal(&entries)
        .map_err(io_error(&root.show(WORK).join("journal")))?;
    if let Err(err) = apply(root, &work, plan, before_move) {
        return match work.roll_back(root, &entries) {
            Ok(()) => {
                let _ = work.remove(root, &mut |_| Ok(()));
                Err(err)
            }
            Err(undo) => Err(refused(format!(
                "{err}; putting the old files back failed too ({undo}); the next `meshplan build` tries again"
            ))),
        };
    }
    work.drop_journal()
        .map_err(io_error(&root.show(WORK).join("journal")))?;
    let _ = work.remove(root, before_move);
    Ok(())
}

fn apply(
    root: &Root,
    work: &Work,
    plan: &Plan,
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<(), EmitError> {
    let mut dir = Walker::new(root.fd());
    let mut new = Walker::new(work.fd());
    let mut old = Walker::new(work.fd());
    let trees = plan.trees();
    // How each new tree got there, once its first file comes up.
    let mut placed: BTreeMap<&str, Placed> = BTreeMap::new();
    // The manifest goes last, so that even a reader during the build sees the old one until
    // every file it does not list is in place.
    let order = plan
        .writes
        .iter()
        .filter(|w| w.path != MANIFEST)
        .chain(plan.writes.iter().filter(|w| w.path == MANIFEST));
    for change in order {
        let path = change.path.as_str();
        if let Some(tree) = tree_of(&trees, path) {
            let how = match placed.get(tree) {
                Some(how) => *how,
                None => {
                    let how = place_tree(root, plan, tree, &mut dir, &mut new, before_move)?;
                    placed.insert(tree, how);
                    how
                }
            };
            if how == Placed::Moved {
                continue;
            }
        }
        before_move(path).map_err(io_error(&root.show(path)))?;
        let parts = at::plain_parts(Path::new(path)).unwrap_or_default();
        let (to, name) = dir
            .parent(&parts, false)
            .map_err(|stop| at::stop_error(root, stop, path))?;
        if change.replaces.is_some() {
            let (aside, _) = old
                .parent(&in_work(work::OLD, &parts), true)
                .map_err(|stop| at::stop_error(root, stop, path))?;
            at::rename(to, name, aside, name).map_err(io_error(&root.show(path)))?;
        }
        let (from, _) = new
            .parent(&in_work(work::NEW, &parts), false)
            .map_err(|stop| at::stop_error(root, stop, path))?;
        at::rename(from, name, to, name).map_err(io_error(&root.show(path)))?;
    }
    for (path, _) in &plan.removes {
        before_move(path).map_err(io_error(&root.show(path)))?;
        let parts = at::plain_parts(Path::new(path)).unwrap_or_default();
        let (from, name) = dir
            .parent(&parts, false)
            .map_err(|stop| at::stop_error(root, stop, path))?;
        let (aside, _) = old
            .parent(&in_work(work::OLD, &parts), true)
            .map_err(|stop| at::stop_error(root, stop, path))?;
        at::rename(from, name, aside, name).map_err(io_error(&root.show(path)))?;
    }
    Ok(())
}

/// How a directory DIR lacked got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// Moved in whole from the work directory, by one rename.
    Moved,
    /// Made a directory at a time, where the filesystem cannot rename without replacing; its
    /// files are then moved in one by one.
    Made,
}

/// Puts `tree`, a directory DIR lacks, in place (see [`Placed`]).
fn place_tree(
    root: &Root,
    plan: &Plan,
    tree: &str,
    dir: &mut Walker,
    new: &mut Walker,
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<Placed, EmitError> {
    before_move(tree).map_err(io_error(&root.show(tree)))?;
    let parts = at::plain_parts(Path::new(tree)).unwrap_or_default();
    let (to, name) = dir
        .parent(&parts, false)
        .map_err(|stop| at::stop_error(root, stop, tree))?;
    let (from, _) = new
        .parent(&in_work(work::NEW, &parts), false)
        .map_err(|stop| at::stop_error(root, stop, tree))?;
    if at::move_new_dir(from, name, to).map_err(io_error(&root.show(tree)))? {
        return Ok(Placed::Moved);
    }
    let below = format!("{tree}/");
    for made_dir in plan
        .made_dirs
        .iter()
        .filter(|d| *d == tree || d.starts_with(&below))
    {
        let parts = at::plain_parts(Path::new(made_dir)).unwrap_or_default();
        let (parent, name) = dir
            .parent(&parts, false)
            .map_err(|stop| at::stop_error(root, stop, made_dir))?;
        rustix::fs::mkdirat(parent, name, rustix::fs::Mode::from_raw_mode(0o755))
            .map_err(|errno| io_error(&root.show(made_dir))(errno.into()))?;
    }
    Ok(Placed::Made)
}

/// Directories left empty by removing stale files go too (a removed cluster's folder).
fn remove_empty_parents(root: &Root, removed: &[(String, u64)]) {
    let mut walker = Walker::new(root.fd());
    for (path, _) in removed {
        let parts = at::plain_parts(Path::new(path)).unwrap_or_default();
        for depth in (1..parts.len()).rev() {
            // Neither a non-empty directory nor a link is removed.
            let removed = walker
                .parent(&parts[..depth], false)
                .ok()
                .is_some_and(|(parent, name)| at::remove_empty_dir(parent, name).is_ok());
            if !removed {
                break;
            }
        }
    }
}
