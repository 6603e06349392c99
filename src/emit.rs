//! Stage 5 (binary side): write the compiled tree to disk, or compare it with what is there.
//!
//! meshplan owns exactly the files listed in `DIR/.meshplan-manifest`: a rebuild replaces them,
//! removes those the plan no longer produces, and touches nothing else. Every file is first
//! written to a staging directory on the same filesystem, so a build that fails while writing
//! leaves DIR as it was; only then are files renamed into place. A first build into a new
//! directory is a single rename.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::io::Write;
use std::path::{Path, PathBuf};

use meshplan::render::Output;

/// The file recording what meshplan wrote.
pub const MANIFEST: &str = ".meshplan-manifest";
const STAGING: &str = ".meshplan-staging";

/// Why a build could not be written.
#[derive(Debug)]
pub enum EmitError {
    /// Reading or writing failed.
    Io { path: PathBuf, error: io::Error },
    /// Files the build would overwrite that meshplan did not write.
    Foreign(Vec<String>),
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
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> EmitError + '_ {
    move |error| EmitError::Io {
        path: path.to_owned(),
        error,
    }
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
/// meshplan delete files elsewhere.
fn is_safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    p.is_relative()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// The whole expected tree, manifest included.
fn expected(output: &Output) -> Output {
    let mut all = output.clone();
    all.insert(MANIFEST.to_owned(), manifest_text(output));
    all
}

/// Compares DIR with the compiled output without writing anything.
pub fn check(dir: &Path, output: &Output) -> Result<Drift, EmitError> {
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

/// Writes the output into DIR (see the module docs for the guarantees).
pub fn build(dir: &Path, output: &Output) -> Result<Written, EmitError> {
    let all = expected(output);
    if !dir.exists() {
        return build_new(dir, &all);
    }
    let owned = owned(dir)?;
    let foreign: Vec<String> = all
        .keys()
        .filter(|p| *p != MANIFEST && !owned.contains(*p) && dir.join(p).exists())
        .cloned()
        .collect();
    if !foreign.is_empty() {
        return Err(EmitError::Foreign(foreign));
    }
    // Only files whose bytes differ are staged and moved; an unchanged rebuild writes nothing.
    let changed: Output = all
        .iter()
        .filter(|(path, text)| {
            fs::read(dir.join(path)).map_or(true, |bytes| bytes != text.as_bytes())
        })
        .map(|(path, text)| (path.clone(), text.clone()))
        .collect();
    let staging = dir.join(STAGING);
    stage(&staging, &changed).inspect_err(|_| {
        let _ = fs::remove_dir_all(&staging);
    })?;
    let written = commit(dir, &staging, &changed, all.len(), output, &owned);
    let _ = fs::remove_dir_all(&staging);
    written
}

/// A new directory is staged beside it and renamed into place in one step.
fn build_new(dir: &Path, all: &Output) -> Result<Written, EmitError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let staging = parent.join(format!(".{name}{STAGING}"));
    let _ = fs::remove_dir_all(&staging);
    let result =
        stage(&staging, all).and_then(|()| fs::rename(&staging, dir).map_err(io_error(dir)));
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result.map(|()| Written {
        changed: all.keys().filter(|p| *p != MANIFEST).cloned().collect(),
        ..Written::default()
    })
}

fn stage(staging: &Path, all: &Output) -> Result<(), EmitError> {
    let _ = fs::remove_dir_all(staging);
    // Each directory is made once: creating files is what a large build spends its time on,
    // and `create_dir_all` per file doubled the system calls.
    let mut made = BTreeSet::new();
    for (path, text) in all {
        let target = staging.join(path);
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

/// Moves the staged (changed) files into place, the manifest last, then removes stale owned
/// files.
fn commit(
    dir: &Path,
    staging: &Path,
    changed: &Output,
    total: usize,
    output: &Output,
    owned: &BTreeSet<String>,
) -> Result<Written, EmitError> {
    let mut written = Written::default();
    // Until the manifest is replaced, the old one still names every file meshplan owns.
    let order = changed
        .keys()
        .filter(|p| *p != MANIFEST)
        .chain(changed.keys().filter(|p| *p == MANIFEST));
    for path in order {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::rename(staging.join(path), &target).map_err(io_error(&target))?;
        if path != MANIFEST {
            written.changed.push(path.clone());
        }
    }
    written.unchanged = total - changed.len() - usize::from(!changed.contains_key(MANIFEST));
    for path in owned.iter().filter(|p| !output.contains_key(*p)) {
        let target = dir.join(path);
        match fs::remove_file(&target) {
            Ok(()) => {
                written.removed.push(path.clone());
                remove_empty_parents(dir, &target);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(EmitError::Io {
                    path: target,
                    error,
                });
            }
        }
    }
    Ok(written)
}

/// Directories left empty by removing a stale file go too (a removed cluster's folder).
fn remove_empty_parents(dir: &Path, file: &Path) {
    let mut current = file.parent();
    while let Some(parent) = current.filter(|p| *p != dir && p.starts_with(dir)) {
        if fs::remove_dir(parent).is_err() {
            break;
        }
        current = parent.parent();
    }
}
