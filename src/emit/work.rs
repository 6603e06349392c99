//! meshplan's work directory `DIR/.meshplan-staging`, its journal, and putting DIR back after
//! an interrupted build.
//!
//! Git (or a copy, or another user) can put any file into DIR, a forged journal included, so
//! meshplan acts on a work directory only when it can prove that it made it, on this machine:
//!
//! - the directory and every file meshplan reads in it belong to the running user, and are real
//!   directories and regular files (never links);
//! - its marker names the directory's own inode and birth time, which no checkout, copy or
//!   system call can give a directory made by someone else;
//! - the journal names them too, and names the inode of every file it will move, so a
//!   rollback moves back or removes only those very files.
//!
//! A work directory that fails any of these is foreign: meshplan touches nothing in it and asks
//! the user to move it away. Even a proven journal is followed under the build's own rules:
//! every path is walked through real directories from DIR's handle, and only regular files
//! with the journaled inodes are renamed or removed.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;

use super::at::{self, Obstacle, Root, Stop, Walker};
use super::{EmitError, refused, users};

/// meshplan's work directory inside DIR, present only while a build runs (or after a crash).
pub const WORK: &str = ".meshplan-staging";
/// In WORK: written first; names WORK's identity.
const MARKER: &str = "meshplan-work";
/// In WORK: present from the first move into DIR until the commit point.
const JOURNAL: &str = "journal";
const JOURNAL_PENDING: &str = "journal.new";
const JOURNAL_HEADER: &str = "meshplan journal 2";
/// In WORK: the new files, and the old ones moved aside.
pub const NEW: &str = "new";
pub const OLD: &str = "old";
const MARKER_TEXT: &str = "meshplan's work directory: it removes it when a build ends";
/// Far above any journal meshplan writes (a line per file of the tree).
const JOURNAL_CAP: u64 = 256 << 20;
const MARKER_CAP: u64 = 4096;

/// One move of a commit, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory the build made in DIR.
    Dir { path: String },
    /// A file that did not exist: the new one's inode.
    New { path: String, new: u64 },
    /// A file replaced: the old one's inode (moved to WORK/old), the new one's.
    Replace { path: String, old: u64, new: u64 },
    /// A file removed (moved to WORK/old): its inode.
    Remove { path: String, old: u64 },
}

impl Entry {
    fn line(&self) -> String {
        match self {
            Entry::Dir { path } => format!("dir {path}"),
            Entry::New { path, new } => format!("new {new} {path}"),
            Entry::Replace { path, old, new } => format!("replace {old} {new} {path}"),
            Entry::Remove { path, old } => format!("remove {old} {path}"),
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let (kind, rest) = line.split_once(' ')?;
        let number = |text: &str| -> Option<(u64, String)> {
            let (n, rest) = text.split_once(' ')?;
            Some((n.parse().ok()?, rest.to_owned()))
        };
        let entry = match kind {
            "dir" => Entry::Dir {
                path: rest.to_owned(),
            },
            "new" => {
                let (new, path) = number(rest)?;
                Entry::New { path, new }
            }
            "replace" => {
                let (old, rest) = number(rest)?;
                let (new, path) = number(&rest)?;
                Entry::Replace { path, old, new }
            }
            "remove" => {
                let (old, path) = number(rest)?;
                Entry::Remove { path, old }
            }
            _ => return None,
        };
        at::plain_parts(Path::new(entry.path()))
            .is_some()
            .then_some(entry)
    }

    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path }
            | Entry::New { path, .. }
            | Entry::Replace { path, .. }
            | Entry::Remove { path, .. } => path,
        }
    }
}

/// A work directory meshplan proved its own.
pub struct Work {
    fd: OwnedFd,
    identity: String,
}

/// What DIR holds where the work directory goes.
pub enum Found {
    Nothing,
    /// Proven meshplan's; with the journal of an interrupted commit, if there is one.
    Ours(Work, Option<Vec<Entry>>),
    /// An empty directory: a build killed before it wrote its marker.
    Empty,
}

/// Looks at `DIR/.meshplan-staging` without changing anything; refuses one that meshplan
/// cannot prove it made.
pub fn inspect(root: &Root) -> Result<Found, EmitError> {
    let name = OsStr::new(WORK);
    let shown = root.show(WORK);
    let foreign = |why: &str| {
        refused(format!(
            "{} exists and meshplan cannot prove it made it ({why}); meshplan restores and deletes nothing it cannot prove it wrote, so move it away (if a build of yours was interrupted there, the files it had moved aside are in its `old` folder)",
            shown.display()
        ))
    };
    let Some(stat) = at::stat_at(root.fd(), name).map_err(io_at(&shown))? else {
        return Ok(Found::Nothing);
    };
    if at::kind(&stat) != FileType::Directory {
        return Err(foreign("it is not a directory"));
    }
    let fd = rustix::fs::openat(
        root.fd(),
        name,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| io_at(&shown)(errno.into()))?;
    if at::entries(fd.as_fd()).map_err(io_at(&shown))?.is_empty() {
        return Ok(Found::Empty);
    }
    let euid = rustix::process::geteuid().as_raw();
    let owner = rustix::fs::fstat(&fd)
        .map_err(|e| io_at(&shown)(e.into()))?
        .st_uid;
    if owner != euid {
        return Err(foreign(&format!(
            "it belongs to {}",
            users::describe(owner)
        )));
    }
    let identity = at::identity(fd.as_fd()).map_err(io_at(&shown))?;
    let marker = read_own(fd.as_fd(), MARKER, MARKER_CAP, euid)
        .map_err(|why| foreign(&format!("its marker {why}")))?
        .ok_or_else(|| foreign("it has no marker"))?;
    if marker != marker_text(&identity) {
        return Err(foreign(
            "its marker names another directory: it came from a copy, an archive or a git checkout",
        ));
    }
    let journal = read_own(fd.as_fd(), JOURNAL, JOURNAL_CAP, euid)
        .map_err(|why| foreign(&format!("its journal {why}")))?
        .map(|text| parse_journal(&text, &identity))
        .transpose()
        .map_err(|why| foreign(&format!("its journal {why}")))?;
    Ok(Found::Ours(Work { fd, identity }, journal))
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> EmitError + '_ {
    move |error| EmitError::Io {
        path: path.to_owned(),
        error,
    }
}

/// A file of the work directory as text, when it is a regular file of `euid`'s within `cap`;
/// the error says what is wrong with it.
fn read_own(work: BorrowedFd, name: &str, cap: u64, euid: u32) -> Result<Option<String>, String> {
    let opened = match at::open_regular(work, OsStr::new(name)) {
        Ok(None) => return Ok(None),
        Ok(Some(opened)) => opened,
        Err(Ok(_)) => return Err("is not a regular file".to_owned()),
        Err(Err(error)) => return Err(format!("cannot be read: {error}")),
    };
    if opened.stat.st_uid != euid {
        return Err(format!(
            "belongs to {}",
            users::describe(opened.stat.st_uid)
        ));
    }
    match opened.read_capped(cap) {
        Ok(Some(bytes)) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| "is not text".to_owned()),
        Ok(None) => Err("is larger than meshplan ever writes".to_owned()),
        Err(error) => Err(format!("cannot be read: {error}")),
    }
}

fn marker_text(identity: &str) -> String {
    format!("{MARKER_TEXT}\nwork {identity}\n")
}

fn parse_journal(text: &str, identity: &str) -> Result<Vec<Entry>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(JOURNAL_HEADER) {
        return Err("is not one this meshplan writes".to_owned());
    }
    if lines.next() != Some(&format!("work {identity}")) {
        return Err("names another directory".to_owned());
    }
    lines
        .map(|line| {
            Entry::parse(line).ok_or_else(|| format!("has a line meshplan did not write: {line:?}"))
        })
        .collect()
}

/// Makes the work directory (0700) and its marker, or refuses when something has the name.
pub fn make(root: &Root) -> Result<Work, EmitError> {
    let shown = root.show(WORK);
    rustix::fs::mkdirat(root.fd(), WORK, Mode::from_raw_mode(0o700)).map_err(|errno| {
        if errno == Errno::EXIST {
            refused(format!(
                "{} is in the way of meshplan's work directory; move it away",
                shown.display()
            ))
        } else {
            io_at(&shown)(errno.into())
        }
    })?;
    let fd = rustix::fs::openat(
        root.fd(),
        WORK,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| io_at(&shown)(errno.into()))?;
    let identity = at::identity(fd.as_fd()).map_err(io_at(&shown))?;
    at::create_file(
        fd.as_fd(),
        OsStr::new(MARKER),
        marker_text(&identity).as_bytes(),
        0o600,
    )
    .map_err(io_at(&shown.join(MARKER)))?;
    Ok(Work { fd, identity })
}

impl Work {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Writes the journal whole (a pending file renamed into place), so that a crash leaves
    /// either no journal or all of it.
    pub fn write_journal(&self, entries: &[Entry]) -> io::Result<()> {
        let mut text = format!("{JOURNAL_HEADER}\nwork {}\n", self.identity);
        for entry in entries {
            text.push_str(&entry.line());
            text.push('\n');
        }
        let pending = OsStr::new(JOURNAL_PENDING);
        at::create_file(self.fd.as_fd(), pending, text.as_bytes(), 0o600)?;
        at::rename(
            self.fd.as_fd(),
            pending,
            self.fd.as_fd(),
            OsStr::new(JOURNAL),
        )
    }

    /// The commit point: without the journal, the new tree stands.
    pub fn drop_journal(&self) -> io::Result<()> {
        at::remove_file(self.fd.as_fd(), OsStr::new(JOURNAL))
    }

    /// Removes the work directory, its marker last: a run killed half-way through leaves a
    /// directory the next run still recognises as meshplan's (or an empty one).
    pub fn remove(
        self,
        root: &Root,
        before_remove: &mut dyn FnMut(&str) -> io::Result<()>,
    ) -> io::Result<()> {
        for name in at::entries(self.fd.as_fd())? {
            if name == MARKER {
                continue;
            }
            before_remove(&name.to_string_lossy())?;
            at::remove_tree(self.fd.as_fd(), &name)?;
        }
        before_remove(MARKER)?;
        match at::remove_file(self.fd.as_fd(), OsStr::new(MARKER)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        at::remove_empty_dir(root.fd(), OsStr::new(WORK))
    }

    /// Undoes the moves of a commit, last first. Safe to run again after it was itself cut
    /// short: each step looks at what is there before it moves anything.
    pub fn roll_back(&self, root: &Root, entries: &[Entry]) -> Result<(), EmitError> {
        let new = self.subdir(NEW);
        let old = self.subdir(OLD);
        let mut dir = Walker::new(root.fd());
        let mut new = new.as_ref().map(|fd| Walker::new(fd.as_fd()));
        let mut old = old.as_ref().map(|fd| Walker::new(fd.as_fd()));
        for entry in entries.iter().rev() {
            let parts = at::plain_parts(Path::new(entry.path())).ok_or_else(|| {
                refused(format!("a journal path is not plain: {:?}", entry.path()))
            })?;
            let step = Step {
                root,
                parts: &parts,
                path: entry.path(),
            };
            match *entry {
                Entry::Dir { .. } => step.remove_made_dir(&mut dir),
                Entry::New { new: inode, .. } => {
                    if step.exists_in(new.as_mut())? {
                        continue; // never moved in
                    }
                    step.remove_if(&mut dir, inode)?;
                }
                Entry::Replace {
                    old: was,
                    new: inode,
                    ..
                } => step.put_back(&mut dir, old.as_mut(), was, Some(inode))?,
                Entry::Remove { old: was, .. } => {
                    step.put_back(&mut dir, old.as_mut(), was, None)?
                }
            }
        }
        Ok(())
    }

    fn subdir(&self, name: &str) -> Option<OwnedFd> {
        rustix::fs::openat(
            self.fd.as_fd(),
            name,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }
}

/// One journal entry being undone.
struct Step<'a> {
    root: &'a Root,
    parts: &'a [&'a OsStr],
    path: &'a str,
}

impl Step<'_> {
    fn stopped(&self, stop: Stop) -> EmitError {
        at::stop_error(self.root, stop, self.path)
    }

    /// The regular file's inode at the path below `walker`, `None` when nothing is there.
    fn inode_in(&self, walker: &mut Walker) -> Result<Option<u64>, EmitError> {
        let (dir, name) = match walker.parent(self.parts, false) {
            Ok(found) => found,
            Err(Stop::Missing(_)) => return Ok(None),
            Err(stop) => return Err(self.stopped(stop)),
        };
        match at::stat_at(dir, name).map_err(io_at(&self.root.show(self.path)))? {
            None => Ok(None),
            Some(stat) if at::kind(&stat) == FileType::RegularFile => Ok(Some(stat.st_ino)),
            Some(stat) => Err(at::obstacle_error(
                self.root,
                Path::new(self.path),
                if at::kind(&stat) == FileType::Symlink {
                    Obstacle::Link
                } else {
                    Obstacle::Special
                },
                self.path,
            )),
        }
    }

    fn exists_in(&self, walker: Option<&mut Walker>) -> Result<bool, EmitError> {
        match walker {
            Some(walker) => Ok(self.inode_in(walker)?.is_some()),
            None => Ok(false),
        }
    }

    fn remove_made_dir(&self, dir: &mut Walker) {
        // Made by this build; empty once its new files are gone (else it stays).
        if let Ok((parent, name)) = dir.parent(self.parts, false) {
            let _ = at::remove_empty_dir(parent, name);
        }
    }

    /// Removes DIR's file when it is the very file this build moved in.
    fn remove_if(&self, dir: &mut Walker, inode: u64) -> Result<(), EmitError> {
        if self.inode_in(dir)? != Some(inode) {
            return Ok(()); // not the build's file: left alone
        }
        let (parent, name) = dir.parent(self.parts, false).map_err(|s| self.stopped(s))?;
        match at::remove_file(parent, name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_at(&self.root.show(self.path))(e))
            }
            _ => Ok(()),
        }
    }

    /// Moves the old file back from WORK/old, when it is the journaled one and DIR holds
    /// nothing there or the build's own new file.
    fn put_back(
        &self,
        dir: &mut Walker,
        old: Option<&mut Walker>,
        was: u64,
        new: Option<u64>,
    ) -> Result<(), EmitError> {
        let Some(old) = old else {
            return Ok(()); // nothing was moved aside yet
        };
        match self.inode_in(old)? {
            None => return Ok(()),
            Some(inode) if inode != was => {
                return Err(refused(format!(
                    "the file meshplan moved aside for {} is not the one its journal names; it stays in {}/{OLD}",
                    self.path,
                    self.root.show(WORK).display()
                )));
            }
            Some(_) => {}
        }
        let there = self.inode_in(dir)?;
        if there.is_some() && there != new {
            return Err(refused(format!(
                "{} holds a file this build did not write, so meshplan cannot put the old one back; the old one is in {}/{OLD}",
                self.root.show(self.path).display(),
                self.root.show(WORK).display()
            )));
        }
        let (from, name) = old.parent(self.parts, false).map_err(|s| self.stopped(s))?;
        let (to, _) = dir.parent(self.parts, false).map_err(|s| self.stopped(s))?;
        at::rename(from, name, to, name).map_err(io_at(&self.root.show(self.path)))
    }
}

/// Puts DIR back as it was before an interrupted build and removes meshplan's work directory;
/// refuses one that meshplan cannot prove it made. Whether an interrupted commit was undone.
pub fn recover(root: &Root) -> Result<bool, EmitError> {
    match inspect(root)? {
        Found::Nothing => Ok(false),
        Found::Empty => at::remove_empty_dir(root.fd(), OsStr::new(WORK))
            .map(|()| false)
            .map_err(io_at(&root.show(WORK))),
        Found::Ours(work, journal) => {
            if let Some(entries) = &journal {
                work.roll_back(root, entries).map_err(|err| {
                    refused(format!(
                        "{} holds an interrupted build, and putting the old files back failed: {err}",
                        root.shown().display()
                    ))
                })?;
            }
            work.remove(root, &mut |_| Ok(()))
                .map_err(io_at(&root.show(WORK)))?;
            Ok(journal.is_some())
        }
    }
}
