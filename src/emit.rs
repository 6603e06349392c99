//! Stage 5 (binary side): write the compiled tree to disk, or compare it with what is there.
//!
//! meshplan owns exactly the files listed in `DIR/.meshplan-manifest`: a rebuild replaces them,
//! removes those the plan no longer produces, and touches nothing else. The rules, each with a
//! test in `tests/output_safety.rs` or below:
//!
//! - It never writes or deletes through a symbolic link it did not make: every directory on the
//!   way to a file it touches must be a real directory, and every file it replaces or removes
//!   a regular file; otherwise the build stops before anything changes.
//! - It deletes only what its manifest lists (inside DIR, no `..`, no link on the way) and its
//!   own work directory `DIR/.meshplan-staging`, recognised by the marker it writes there first.
//! - One build at a time: DIR itself is locked (`flock`) for the whole build.
//! - All or nothing, through a journal. Changed files are first written to the work directory;
//!   then the journal (every path and whether it existed) is written, and each old file is
//!   moved aside into the work directory before its new version is moved in. Removing the
//!   journal is the commit point. A failure before that moves every old file back; a run killed
//!   before that leaves the journal, and the next `build` moves the old files back before
//!   anything else. So DIR always ends up holding the old tree or the new one, never a mix
//!   (while a build runs, a reader of DIR may see both).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use meshplan::render::Output;

/// The file recording what meshplan wrote.
pub const MANIFEST: &str = ".meshplan-manifest";
/// meshplan's work directory inside DIR, present only while a build runs (or after a crash).
pub const WORK: &str = ".meshplan-staging";
/// In WORK: written first, so that meshplan can tell its work directory from a user's.
const MARKER: &str = "meshplan-work";
/// In WORK: present from the first move into DIR until the commit point.
const JOURNAL: &str = "journal";
const JOURNAL_HEADER: &str = "meshplan journal 1";
/// In WORK: the new files, and the old ones moved aside.
const NEW: &str = "new";
const OLD: &str = "old";

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

/// What a build changed.
#[derive(Debug, Default)]
pub struct Written {
    /// Files created or replaced.
    pub changed: Vec<String>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Files removed because the plan no longer produces them.
    pub removed: Vec<String>,
}

/// Differences between DIR and what the plan compiles to.
#[derive(Debug, Default)]
pub struct Drift {
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

/// The manifest's text for an output.
fn manifest_text(output: &Output) -> String {
    let mut text = String::from(
        "# Files written by meshplan from the plan. It replaces and removes only these.\n",
    );
    for path in output.keys() {
        text.push_str(path);
        text.push('\n');
    }
    text
}

/// Paths listed in DIR's manifest (empty when there is none).
fn owned(dir: &Path) -> Result<BTreeSet<String>, EmitError> {
    let path = dir.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| is_safe_relative(l))
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(error) => Err(EmitError::Io { path, error }),
    }
}

/// A manifest line is trusted only if it stays inside DIR: an edited manifest must not make
/// meshplan delete files elsewhere. (Links on the way are checked where the path is used.)
fn is_safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    p.is_relative() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The whole expected tree, manifest included.
fn expected(output: &Output) -> Output {
    let mut all = output.clone();
    all.insert(MANIFEST.to_owned(), manifest_text(output));
    all
}

/// Compares DIR with the compiled output without writing anything.
pub fn check(dir: &Path, output: &Output) -> Result<Drift, EmitError> {
    if dir.join(WORK).join(JOURNAL).exists() {
        return Err(refused(format!(
            "{} holds a build that was interrupted; run `meshplan build` to put the old tree back, then check again",
            dir.display()
        )));
    }
    let mut drift = Drift::default();
    for (path, text) in &expected(output) {
        match fs::read(dir.join(path)) {
            Ok(bytes) if bytes == text.as_bytes() => {}
            Ok(_) => drift.changed.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => drift.missing.push(path.clone()),
            Err(error) => {
                return Err(EmitError::Io {
                    path: dir.join(path),
                    error,
                });
            }
        }
    }
    for path in owned(dir)? {
        if !output.contains_key(&path) && dir.join(&path).exists() {
            drift.stale.push(path);
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
    let created = prepare_dir(dir)?;
    let result = build_locked(dir, output, options, before_move);
    if result.is_err() && created {
        // A directory this build made and left empty goes again.
        let _ = fs::remove_dir(dir);
    }
    result
}

fn build_locked(
    dir: &Path,
    output: &Output,
    options: Options,
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<Written, EmitError> {
    let _lock = lock(dir)?;
    recover(dir)?;
    let owned = owned(dir)?;
    if owned.is_empty() && !dir.join(MANIFEST).exists() && !options.force {
        refuse_unowned(dir)?;
    }
    let plan = Plan::of(dir, &expected(output), output, &owned)?;
    let unchanged = expected(output).len() - plan.writes.len();
    if plan.writes.is_empty() && plan.removes.is_empty() {
        return Ok(Written {
            unchanged: unchanged - 1,
            ..Written::default()
        });
    }
    let work = dir.join(WORK);
    make_work_dir(&work)?;
    if let Err(err) = stage(&work.join(NEW), &plan.writes) {
        let _ = remove_work_dir(&work, &mut |_| Ok(()));
        return Err(err);
    }
    commit(dir, &work, &plan, before_move)?;
    remove_empty_parents(dir, &plan.removes);
    Ok(Written {
        changed: plan
            .writes
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p != MANIFEST)
            .collect(),
        unchanged: unchanged - usize::from(!plan.writes.iter().any(|(p, _)| p == MANIFEST)),
        removed: plan.removes.clone(),
    })
}

/// Checks the output path and creates it when missing; whether it was created.
fn prepare_dir(dir: &Path) -> Result<bool, EmitError> {
    let shown = dir.display();
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(refused(match fs::metadata(dir) {
                Err(_) => format!("the output path {shown} is a symbolic link that leads nowhere"),
                Ok(_) => format!(
                    "the output path {shown} is a symbolic link; meshplan writes only into a real directory, so give the path it leads to"
                ),
            }));
        }
        Ok(meta) if meta.is_dir() => {
            refuse_home_or_root(dir)?;
            return Ok(false);
        }
        Ok(_) => {
            return Err(refused(format!(
                "the output path {shown} is a file, not a directory"
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(refused(format!(
                "cannot look at the output path {shown}: {}",
                plain(&error)
            )));
        }
    }
    if dir
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(refused(format!(
            "the output path {shown} does not exist, and it takes `..` or `.` from a directory that does not exist; name the output directory without them"
        )));
    }
    let mut ancestor = PathBuf::new();
    for component in dir.components() {
        ancestor.push(component);
        match fs::metadata(&ancestor) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(refused(format!(
                    "the output path {shown} cannot be made: {} is a file",
                    ancestor.display()
                )));
            }
            Err(_) => fs::create_dir(&ancestor).map_err(|error| {
                refused(format!(
                    "cannot make the output directory {}: {}",
                    ancestor.display(),
                    plain(&error)
                ))
            })?,
        }
    }
    Ok(true)
}

/// An I/O error in words, without the OS error number.
fn plain(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "the filesystem is read-only".to_owned(),
        io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        kind => kind.to_string(),
    }
}

/// `/` and the home directory are never output directories, forced or not.
fn refuse_home_or_root(dir: &Path) -> Result<(), EmitError> {
    let real = fs::canonicalize(dir).map_err(io_error(dir))?;
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .and_then(|h| fs::canonicalize(h).ok());
    if real.parent().is_none() {
        return Err(refused(format!(
            "refusing to build into the root directory {}; build into a directory of its own",
            dir.display()
        )));
    }
    if home.as_deref() == Some(real.as_path()) {
        return Err(refused(format!(
            "refusing to build into the home directory {}; build into a directory of its own, such as {}",
            dir.display(),
            dir.join("mesh").display()
        )));
    }
    Ok(())
}

/// A first build goes only into an empty directory (or with `--force`): `-o .` in the wrong
/// place would scatter files among the user's.
fn refuse_unowned(dir: &Path) -> Result<(), EmitError> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let count = names.len();
    let mut shown = names.into_iter().take(8).collect::<Vec<_>>().join(", ");
    if count > 8 {
        shown.push_str(&format!(" and {} more", count - 8));
    }
    Err(refused(format!(
        "{} is not empty and holds no {MANIFEST}, so meshplan did not build it (it holds {shown}); build into a new or empty directory, or pass --force to write the tree beside what is there (files in the way still stop the build)",
        dir.display()
    )))
}

/// An exclusive lock on DIR, released when the returned handle drops (or the process dies).
fn lock(dir: &Path) -> Result<fs::File, EmitError> {
    let handle = fs::File::open(dir).map_err(io_error(dir))?;
    match handle.try_lock() {
        Ok(()) => Ok(handle),
        Err(fs::TryLockError::WouldBlock) => Err(refused(format!(
            "another meshplan build is writing {}; wait for it to finish",
            dir.display()
        ))),
        Err(fs::TryLockError::Error(error)) => Err(EmitError::Io {
            path: dir.to_owned(),
            error,
        }),
    }
}

/// What one build does: files to write (new or changed), owned files to remove.
struct Plan {
    writes: Vec<(String, String)>,
    /// Of `writes`, those that exist in DIR now (their old version is moved aside).
    replaces: BTreeSet<String>,
    removes: Vec<String>,
}

impl Plan {
    fn of(
        dir: &Path,
        all: &Output,
        output: &Output,
        owned: &BTreeSet<String>,
    ) -> Result<Plan, EmitError> {
        let mut plan = Plan {
            writes: Vec::new(),
            replaces: BTreeSet::new(),
            removes: Vec::new(),
        };
        let mut foreign = Vec::new();
        for (path, text) in all {
            match existing_file(dir, path)? {
                None => plan.writes.push((path.clone(), text.clone())),
                Some(_) if path != MANIFEST && !owned.contains(path) => foreign.push(path.clone()),
                Some(bytes) if bytes == text.as_bytes() => {}
                Some(_) => {
                    plan.replaces.insert(path.clone());
                    plan.writes.push((path.clone(), text.clone()));
                }
            }
        }
        if !foreign.is_empty() {
            return Err(EmitError::Foreign(foreign));
        }
        for path in owned.iter().filter(|p| !output.contains_key(*p)) {
            if existing_file(dir, path)?.is_some() {
                plan.removes.push(path.clone());
            }
        }
        Ok(plan)
    }
}

/// The bytes of DIR/`path` when it is a regular file; `None` when nothing is there. Anything
/// else on the way (a link, a file where a directory belongs, a directory where the file
/// belongs) stops the build: meshplan never writes or deletes through what it did not make.
fn existing_file(dir: &Path, path: &str) -> Result<Option<Vec<u8>>, EmitError> {
    let mut current = dir.to_path_buf();
    let parts: Vec<_> = Path::new(path).components().collect();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        let last = i + 1 == parts.len();
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(EmitError::Io {
                    path: current,
                    error,
                });
            }
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(refused(format!(
                "{} is a symbolic link; meshplan writes and deletes only through directories it made, so it will not touch {path} (replace the link with a real directory or remove it)",
                current.display()
            )));
        }
        match (last, kind.is_dir(), kind.is_file()) {
            (false, true, _) | (true, _, true) => {}
            (false, false, _) => {
                return Err(refused(format!(
                    "{} is not a directory, so meshplan cannot write {path}; move it away",
                    current.display()
                )));
            }
            (true, _, false) => {
                return Err(refused(format!(
                    "{} is not a regular file ({}); meshplan writes a file there, so move it away",
                    current.display(),
                    if kind.is_dir() {
                        "a directory"
                    } else {
                        "a special file"
                    }
                )));
            }
        }
    }
    fs::read(&current).map(Some).map_err(io_error(&current))
}

/// Makes meshplan's work directory, or refuses when something else has the name.
fn make_work_dir(work: &Path) -> Result<(), EmitError> {
    fs::create_dir(work).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            refused(format!(
                "{} is in the way of meshplan's work directory; move it away",
                work.display()
            ))
        } else {
            EmitError::Io {
                path: work.to_owned(),
                error,
            }
        }
    })?;
    fs::write(
        work.join(MARKER),
        "meshplan's work directory: it removes it when a build ends\n",
    )
    .map_err(io_error(work))
}

/// Puts DIR back as it was before an interrupted build, and removes meshplan's work
/// directory; refuses a work directory that is not meshplan's.
fn recover(dir: &Path) -> Result<(), EmitError> {
    let work = dir.join(WORK);
    let meta = match fs::symlink_metadata(&work) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(EmitError::Io { path: work, error }),
    };
    if !meta.is_dir() || !work.join(MARKER).is_file() {
        if meta.is_dir() && fs::remove_dir(&work).is_ok() {
            return Ok(()); // empty: a build was killed before it wrote its marker
        }
        return Err(refused(format!(
            "{} exists and meshplan did not make it; it would be meshplan's work directory, so move it away (meshplan deletes nothing it did not write)",
            work.display()
        )));
    }
    if let Some(entries) = read_journal(&work)? {
        roll_back(dir, &work, &entries).map_err(|err| {
            refused(format!(
                "{} holds an interrupted build, and putting the old files back failed: {err}; the old files are in {}",
                dir.display(),
                work.join(OLD).display()
            ))
        })?;
    }
    remove_work_dir(&work, &mut |_| Ok(())).map_err(io_error(&work))
}

/// Removes meshplan's work directory, its marker last: a run killed half-way through leaves a
/// directory the next run still recognises as meshplan's (or an empty one).
fn remove_work_dir(
    work: &Path,
    before_remove: &mut dyn FnMut(&str) -> io::Result<()>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(work)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != MARKER)
        .collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        before_remove(&entry.file_name().to_string_lossy())?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    before_remove(MARKER)?;
    match fs::remove_file(work.join(MARKER)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::remove_dir(work)
}

/// One journal line: a path and whether DIR held a file there before the build.
#[derive(Debug)]
struct Entry {
    path: String,
    existed: bool,
}

fn journal_text(plan: &Plan, made_dirs: &[String]) -> String {
    let mut text = format!("{JOURNAL_HEADER}\n");
    for dir in made_dirs {
        text.push_str(&format!("dir {dir}\n"));
    }
    for (path, _) in &plan.writes {
        let kind = if plan.replaces.contains(path) {
            "old"
        } else {
            "new"
        };
        text.push_str(&format!("{kind} {path}\n"));
    }
    for path in &plan.removes {
        text.push_str(&format!("old {path}\n"));
    }
    text
}

/// Journal entries in order (`dir` lines as entries that did not exist); `None` without one.
fn read_journal(work: &Path) -> Result<Option<Vec<(String, Entry)>>, EmitError> {
    let path = work.join(JOURNAL);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(EmitError::Io { path, error }),
    };
    let mut lines = text.lines();
    if lines.next() != Some(JOURNAL_HEADER) {
        return Err(refused(format!(
            "{} is not a journal meshplan wrote; move {} away",
            path.display(),
            work.display()
        )));
    }
    let mut entries = Vec::new();
    for line in lines {
        let (kind, rel) = line.split_once(' ').unwrap_or(("", line));
        if !is_safe_relative(rel) || !matches!(kind, "dir" | "old" | "new") {
            return Err(refused(format!(
                "{} has a line meshplan did not write: {line:?}; move {} away",
                path.display(),
                work.display()
            )));
        }
        entries.push((
            kind.to_owned(),
            Entry {
                path: rel.to_owned(),
                existed: kind == "old",
            },
        ));
    }
    Ok(Some(entries))
}

/// Undoes the moves of a commit, last first. Safe to run again after it was itself cut short.
fn roll_back(dir: &Path, work: &Path, entries: &[(String, Entry)]) -> io::Result<()> {
    for (kind, entry) in entries.iter().rev() {
        let target = dir.join(&entry.path);
        if kind == "dir" {
            // Made by this build; empty once its new files are gone.
            let _ = fs::remove_dir(&target);
        } else if entry.existed {
            let aside = work.join(OLD).join(&entry.path);
            if aside.exists() {
                fs::rename(&aside, &target)?;
            }
        } else if !work.join(NEW).join(&entry.path).exists() {
            // The new file was moved in: nothing was there before, so it goes.
            match fs::remove_file(&target) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

fn stage(new: &Path, writes: &[(String, String)]) -> Result<(), EmitError> {
    // Each directory is made once: creating files is what a large build spends its time on,
    // and `create_dir_all` per file doubled the system calls.
    let mut made = BTreeSet::new();
    for (path, text) in writes {
        let target = new.join(path);
        if let Some(parent) = target.parent().filter(|p| !made.contains(*p)) {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
            made.insert(parent.to_path_buf());
        }
        write_new(&target, text, path.ends_with(".sh")).map_err(io_error(&target))?;
    }
    Ok(())
}

/// Creates the file with its mode (scripts executable), less the user's umask as for any new
/// file, in one system call rather than a create and a chmod.
fn write_new(path: &Path, text: &str, executable: bool) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if executable { 0o755 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = executable;
    options.open(path)?.write_all(text.as_bytes())
}

/// Directories DIR lacks for the files to write, parents first.
fn missing_dirs(dir: &Path, plan: &Plan) -> Vec<String> {
    let mut missing = BTreeSet::new();
    for (path, _) in &plan.writes {
        let mut prefix = PathBuf::new();
        let parent = Path::new(path).parent().unwrap_or(Path::new(""));
        for part in parent.components() {
            prefix.push(part);
            if !dir.join(&prefix).exists() {
                missing.insert(prefix.to_string_lossy().into_owned());
            }
        }
    }
    // BTreeSet order puts a parent before its children.
    missing.into_iter().collect()
}

/// Moves every old file aside and every new one in, under the journal; on failure, moves the
/// old ones back.
fn commit(
    dir: &Path,
    work: &Path,
    plan: &Plan,
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<(), EmitError> {
    let made_dirs = missing_dirs(dir, plan);
    let journal = work.join(JOURNAL);
    let pending = work.join("journal.new");
    fs::write(&pending, journal_text(plan, &made_dirs)).map_err(io_error(&pending))?;
    fs::rename(&pending, &journal).map_err(io_error(&journal))?;
    if let Err(err) = apply(dir, work, plan, &made_dirs, before_move) {
        return match read_journal(work).and_then(|entries| {
            roll_back(dir, work, &entries.unwrap_or_default()).map_err(io_error(dir))
        }) {
            Ok(()) => {
                let _ = remove_work_dir(work, &mut |_| Ok(()));
                Err(err)
            }
            Err(undo) => Err(refused(format!(
                "{err}; putting the old files back failed too ({undo}); the next `meshplan build` tries again"
            ))),
        };
    }
    // The commit point: without the journal, the new tree stands.
    fs::remove_file(&journal).map_err(io_error(&journal))?;
    let _ = remove_work_dir(work, before_move);
    Ok(())
}

fn apply(
    dir: &Path,
    work: &Path,
    plan: &Plan,
    made_dirs: &[String],
    before_move: &mut dyn FnMut(&str) -> io::Result<()>,
) -> Result<(), EmitError> {
    for made in made_dirs {
        let path = dir.join(made);
        fs::create_dir(&path).map_err(io_error(&path))?;
    }
    let old = work.join(OLD);
    let aside = |path: &str| -> Result<(), EmitError> {
        let to = old.join(path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let from = dir.join(path);
        fs::rename(&from, &to).map_err(io_error(&from))
    };
    // The manifest goes last, so that even a reader during the build sees the old one until
    // every file it does not list is in place.
    let order = plan
        .writes
        .iter()
        .filter(|(p, _)| p != MANIFEST)
        .chain(plan.writes.iter().filter(|(p, _)| p == MANIFEST));
    for (path, _) in order {
        before_move(path).map_err(io_error(&dir.join(path)))?;
        if plan.replaces.contains(path) {
            aside(path)?;
        }
        let target = dir.join(path);
        fs::rename(work.join(NEW).join(path), &target).map_err(io_error(&target))?;
    }
    for path in &plan.removes {
        before_move(path).map_err(io_error(&dir.join(path)))?;
        aside(path)?;
    }
    Ok(())
}

/// Directories left empty by removing stale files go too (a removed cluster's folder).
fn remove_empty_parents(dir: &Path, removed: &[String]) {
    for path in removed {
        let mut current = Path::new(path).parent();
        while let Some(parent) = current.filter(|p| !p.as_os_str().is_empty()) {
            // remove_dir removes neither a non-empty directory nor a link.
            if fs::remove_dir(dir.join(parent)).is_err() {
                break;
            }
            current = parent.parent();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Failures and crashes in the middle of a commit. A test cannot make a write fail as root
    //! by permissions, so a hook before each move fails (an error: the build rolls back) or
    //! panics (a crash: nothing of the build's own runs after it, as with `kill -9`).

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
}
