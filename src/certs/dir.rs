//! The CA directory on disk, reached only through directory handles (`openat` with
//! `O_NOFOLLOW`), so that a path checked is the path written and no link is ever followed
//! inside it. The rules are in `docs/ca-directory.md`; in short:
//!
//! - DIR is a real directory (not a link) owned by the user who runs meshplan, and so is
//!   everything meshplan reads or writes in it; no group or other user may write any of it,
//!   and no one but the owner may read a private key. Found otherwise, `certs` refuses and
//!   `check --certs` reports it, every run.
//! - One `certs` run at a time: it locks `DIR/.meshplan-lock`, a file it creates (0600).
//! - All or nothing: a run writes every new file into `DIR/.meshplan-new` first; only when all
//!   are complete does it rename that to `DIR/.meshplan-commit` (the commit point) and move
//!   the files into place. A run cut short before the commit point leaves DIR as it was (the
//!   next run removes `.meshplan-new`); after it, the next run finishes the moves first.
//! - Every file is read with a size cap ([`fsread::CERT_FILE_CAP`]) and only if regular.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::store::StoreError;
use super::{CLUSTER_FILES, CRL, ROOT_CERT, ROOT_KEY};
use crate::fsread::{self, CERT_FILE_CAP, ReadError};
use crate::userdirs;

/// The file a `certs` run locks (created by meshplan, mode 0600).
pub const LOCK: &str = ".meshplan-lock";
/// Where a run writes its files before its commit point.
pub const NEW: &str = ".meshplan-new";
/// The same directory after the commit point, while its files are moved into place.
pub const COMMIT: &str = ".meshplan-commit";
/// The private keys, by file name.
const KEYS: [&str; 2] = [ROOT_KEY, "ca-key.pem"];
/// The order files move into a cluster's directory: its certificate last, so a run cut short
/// leaves at worst a key without its certificate (which the next run finishes anyway).
const MOVE_ORDER: [&str; 4] = [
    "ca-key.pem",
    "root-cert.pem",
    "cert-chain.pem",
    "ca-cert.pem",
];

/// A moment of writing, given to the test hook before it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A file of the run is about to be written into `.meshplan-new` (`cluster/file`).
    Write(&'a str),
    /// `.meshplan-new` is about to become `.meshplan-commit`.
    Commit,
    /// A file (`cluster/file`, `root-key.pem`) or a whole new cluster directory (`cluster/`)
    /// is about to move into place.
    Move(&'a str),
}

/// A file a run writes: `cluster/name` (or `name` at the top), its bytes and mode.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// The cluster, or `None` for the root's files at the top of DIR.
    pub cluster: Option<String>,
    /// The file name.
    pub name: &'static str,
    /// Its content.
    pub bytes: Vec<u8>,
    /// Its mode (0600 for keys, 0644 for certificates).
    pub mode: u32,
}

impl NewFile {
    fn rel(&self) -> String {
        match &self.cluster {
            Some(cluster) => format!("{cluster}/{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// What an entry of DIR is, links not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Nothing there.
    Missing,
    /// A regular file.
    File,
    /// A real directory.
    Dir,
    /// Anything else: a link, a FIFO, a device (what, in words).
    Other(&'static str),
}

/// Something about owners, modes or file types that makes DIR unsafe to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The path, as the user named DIR.
    pub path: String,
    /// The cluster whose directory it is in, if any.
    pub cluster: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with an entry of DIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// It belongs to another user (who can read or replace it).
    ForeignOwner {
        /// Its owner.
        owner: u32,
        /// The user running meshplan.
        you: u32,
    },
    /// A private key others can read (or change).
    KeyMode {
        /// Its permission bits.
        mode: u32,
    },
    /// Others can write it: replace a key, plant a root, swap a cluster's directory.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// A directory others can list and enter (a warning: the keys in it stay 0600).
    DirReadable {
        /// Its permission bits.
        mode: u32,
    },
    /// A link or special file where meshplan keeps a regular file or a directory.
    NotPlain {
        /// What it is.
        found: &'static str,
        /// What belongs there.
        expected: &'static str,
    },
    /// An interrupted run's files, not yet moved into place (`.meshplan-commit/<cluster>`).
    Interrupted,
}

impl ProblemKind {
    /// Whether `certs` refuses to run (an error of `check --certs`), rather than warns.
    pub fn is_error(&self) -> bool {
        !matches!(self, ProblemKind::DirReadable { .. })
    }
}

fn errno_io(path: &Path) -> impl FnOnce(Errno) -> StoreError + '_ {
    move |errno| StoreError::Io {
        path: path.display().to_string(),
        source: errno.into(),
    }
}

fn refused(why: String) -> StoreError {
    StoreError::Refused(why)
}

fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

fn mode_bits(stat: &Stat) -> u32 {
    Mode::from_raw_mode(stat.st_mode).bits() & 0o7777
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory `name` in `dir`, never through a link.
fn open_dir_at(dir: impl AsFd, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
}

/// What `name` in `dir` is, without following a link.
fn entry_at(dir: impl AsFd, name: &str) -> Result<(Entry, Option<Stat>), Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => {
            let entry = match file_type(&stat) {
                FileType::RegularFile => Entry::File,
                FileType::Directory => Entry::Dir,
                other => Entry::Other(fsread::kind_of(other)),
            };
            Ok((entry, Some(stat)))
        }
        Err(Errno::NOENT) => Ok((Entry::Missing, None)),
        Err(errno) => Err(errno),
    }
}

/// The names in a directory, sorted, without `.` and `..`.
fn names(dir: impl AsFd) -> Result<Vec<String>, Errno> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a file that must not exist yet, never through a link, with exactly `mode`.
fn write_new_at(dir: impl AsFd, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    // The umask may have removed bits (never added any); set exactly `mode`.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    File::from(fd).write_all(bytes)
}

/// `.ca-key.pem.1234.tmp`: the temporary files earlier meshplan versions wrote and may have
/// left behind when cut short.
fn is_legacy_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    CLUSTER_FILES.iter().chain([&ROOT_KEY]).any(|file| {
        rest.strip_prefix(file)
            .and_then(|pid| pid.strip_prefix('.'))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A name meshplan could have given a cluster's directory (a plan's cluster name: no `/`,
/// no leading dot).
fn is_cluster_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/')
}

/// The CA directory, open.
pub struct CaDir {
    /// DIR as the user named it, for messages.
    shown: PathBuf,
    fd: OwnedFd,
    /// Whether this run made DIR.
    created: bool,
}

impl CaDir {
    /// `DIR/rel` as the user would write it.
    pub fn show(&self, rel: &str) -> String {
        let dir = self.shown.display().to_string();
        if rel.is_empty() {
            dir
        } else {
            format!("{}/{rel}", dir.trim_end_matches('/'))
        }
    }

    /// Opens DIR for `check --certs`, following a link DIR itself may be (the audit reports it).
    pub fn open_for_reading(dir: &Path) -> Result<CaDir, ReadError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|errno| match errno {
            Errno::NOENT => ReadError::NotFound,
            Errno::NOTDIR => ReadError::Io(io::Error::other(format!(
                "{} is a file, not a directory",
                dir.display()
            ))),
            other => ReadError::Io(other.into()),
        })?;
        Ok(CaDir {
            shown: dir.to_path_buf(),
            fd,
            created: false,
        })
    }

    /// Opens DIR for `certs`, making it (0700) and its missing parents when it does not exist.
    /// Refused: DIR a link or a file; DIR owned by another user or writable by others (checked
    /// before anything is written in it).
    pub fn open_for_writing(dir: &Path) -> Result<CaDir, StoreError> {
        // `ca/` and `ca/.` name `ca`: without the trailing part, a link `ca` shows as one.
        let dir = &dir.components().collect::<PathBuf>();
        let shown = dir.display();
        let (fd, created) = match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(dir)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Err(refused(format!(
                    "the CA directory {shown} is a symbolic link (to {target}): meshplan keeps keys only in a real directory it can check; name that directory itself, or remove the link"
                )));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(refused(format!(
                    "the CA directory {shown} is a file, not a directory"
                )));
            }
            Ok(_) => {
                let flags = DIR_FLAGS;
                let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|errno| {
                    if errno == Errno::LOOP || errno == Errno::NOTDIR {
                        refused(format!(
                            "the CA directory {shown} was replaced while meshplan looked at it; run again"
                        ))
                    } else {
                        errno_io(dir)(errno)
                    }
                })?;
                (fd, false)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => (make_dirs(dir)?, true),
            Err(source) => {
                return Err(StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                });
            }
        };
        let ca = CaDir {
            shown: dir.to_path_buf(),
            fd,
            created,
        };
        // Before writing anything in it (even the lock file): is DIR itself the user's?
        let stat = rustix::fs::fstat(&ca.fd).map_err(errno_io(dir))?;
        if let Some(kind) = judge(&stat, Kind::Dir)
            && kind.is_error()
        {
            return Err(refused(super::check::describe(&Problem {
                path: ca.show(""),
                cluster: None,
                kind,
            })));
        }
        Ok(ca)
    }

    /// Removes DIR again when this run made it and left nothing in it but the lock file.
    pub fn discard_if_created(&self) {
        if !self.created || names(&self.fd).map_or(true, |n| n.iter().any(|n| n != LOCK)) {
            return;
        }
        let _ = rustix::fs::unlinkat(&self.fd, LOCK, AtFlags::empty());
        let _ = std::fs::remove_dir(&self.shown);
    }

    /// Locks DIR for this run (until the returned file is dropped or the process ends), by
    /// `DIR/.meshplan-lock`: a file meshplan makes, so that no one who can merely open DIR can
    /// hold the lock.
    pub fn lock(&self) -> Result<File, StoreError> {
        let path = PathBuf::from(self.show(LOCK));
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, LOCK, flags, Mode::from_raw_mode(0o600)).map_err(
            |errno| match errno {
                Errno::LOOP | Errno::MLINK => refused(format!(
                    "{} is a symbolic link: meshplan makes that file itself to lock DIR; remove the link",
                    path.display()
                )),
                other => errno_io(&path)(other),
            },
        )?;
        let stat = rustix::fs::fstat(&fd).map_err(errno_io(&path))?;
        if file_type(&stat) != FileType::RegularFile || stat.st_uid != userdirs::euid() {
            return Err(refused(format!(
                "{} is not a file of yours: meshplan makes that file itself to lock DIR; remove it",
                path.display()
            )));
        }
        if mode_bits(&stat) != 0o600 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(errno_io(&path))?;
        }
        let file = File::from(fd);
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(refused(format!(
                "another meshplan certs run is using {} (it holds {}); wait for it to finish",
                self.shown.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// What `rel` (`name` or `cluster/name`) is; a cluster directory that is not a real
    /// directory makes its files [`Entry::Other`].
    pub fn entry(&self, rel: &str) -> Result<Entry, StoreError> {
        let path = PathBuf::from(self.show(rel));
        match rel.split_once('/') {
            None => entry_at(&self.fd, rel)
                .map(|(e, _)| e)
                .map_err(errno_io(&path)),
            Some((cluster, name)) => match open_dir_at(&self.fd, cluster) {
                Ok(fd) => entry_at(&fd, name).map(|(e, _)| e).map_err(errno_io(&path)),
                Err(Errno::NOENT) => Ok(Entry::Missing),
                Err(Errno::LOOP | Errno::NOTDIR) => Ok(Entry::Other("in no real directory")),
                Err(errno) => Err(errno_io(&path)(errno)),
            },
        }
    }

    /// Reads `rel` (`name` or `cluster/name`), capped, regular files only, no link followed.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        match rel.split_once('/') {
            None => fsread::read_at(&self.fd, rel, CERT_FILE_CAP).map(|(bytes, _)| bytes),
            Some((cluster, name)) => {
                let fd = open_dir_at(&self.fd, cluster).map_err(|errno| match errno {
                    Errno::NOENT => ReadError::NotFound,
                    Errno::LOOP | Errno::NOTDIR => ReadError::Io(io::Error::other(format!(
                        "{} is not a real directory (a symbolic link or a file)",
                        self.show(cluster)
                    ))),
                    other => ReadError::Io(other.into()),
                })?;
                fsread::read_at(&fd, name, CERT_FILE_CAP).map(|(bytes, _)| bytes)
            }
        }
    }

    /// The real directories at the top of DIR (not meshplan's own, which start with a dot).
    pub fn subdirectories(&self) -> Result<Vec<String>, StoreError> {
        let path = PathBuf::from(self.show(""));
        let mut dirs = Vec::new();
        for name in names(&self.fd).map_err(errno_io(&path))? {
            if is_cluster_name(&name)
                && entry_at(&self.fd, &name).map_err(errno_io(&path))?.0 == Entry::Dir
            {
                dirs.push(name);
            }
        }
        Ok(dirs)
    }

    /// Owners, modes and file types of DIR, the root's files and the clusters' directories and
    /// files, and an interrupted run's files: everything meshplan reads or writes.
    pub fn audit(&self, clusters: &[&str]) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut note = |path: String, cluster: Option<&str>, kind: Option<ProblemKind>| {
            if let Some(kind) = kind {
                problems.push(Problem {
                    path,
                    cluster: cluster.map(str::to_owned),
                    kind,
                });
            }
        };
        if let Ok(stat) = rustix::fs::fstat(&self.fd) {
            note(self.show(""), None, judge(&stat, Kind::Dir));
        }
        for name in [ROOT_CERT, ROOT_KEY, CRL] {
            note(self.show(name), None, self.judge_at(&self.fd, name));
        }
        if let Ok(commit) = open_dir_at(&self.fd, COMMIT) {
            let staged = names(&commit).unwrap_or_default();
            for name in staged {
                let cluster = is_cluster_name(&name).then_some(name.as_str());
                let rel = format!("{COMMIT}/{name}");
                note(self.show(&rel), cluster, Some(ProblemKind::Interrupted));
            }
        }
        for cluster in clusters {
            note(
                self.show(cluster),
                Some(cluster),
                self.judge_at(&self.fd, cluster),
            );
            let Ok(home) = open_dir_at(&self.fd, cluster) else {
                continue;
            };
            for name in CLUSTER_FILES {
                let path = self.show(&format!("{cluster}/{name}"));
                note(path, Some(cluster), self.judge_at(&home, name));
            }
        }
        problems
    }

    /// The problem with `name` in `dir`, if any (nothing when it does not exist).
    fn judge_at(&self, dir: impl AsFd, name: &str) -> Option<ProblemKind> {
        let kind = if KEYS.contains(&name) {
            Kind::Key
        } else if name.ends_with(".pem") {
            Kind::Cert
        } else {
            Kind::Dir
        };
        match entry_at(dir, name) {
            Ok((Entry::Missing, _)) | Err(_) => None,
            Ok((entry, Some(stat))) => match (entry, kind) {
                (Entry::File, Kind::Key | Kind::Cert) | (Entry::Dir, Kind::Dir) => {
                    judge(&stat, kind)
                }
                (found, _) => Some(ProblemKind::NotPlain {
                    found: match found {
                        Entry::Other(what) => what,
                        Entry::Dir => "a directory",
                        _ => "a regular file",
                    },
                    expected: if kind == Kind::Dir {
                        "a real directory"
                    } else {
                        "a regular file"
                    },
                }),
            },
            Ok((_, None)) => None,
        }
    }

    /// Finishes what an interrupted run left: moves `.meshplan-commit`'s files into place, or
    /// removes `.meshplan-new` (a run cut short before its commit point); removes the
    /// temporary files earlier versions left. Returns the files moved in.
    pub fn recover(
        &self,
        clusters: &[&str],
        hook: &mut dyn FnMut(Step) -> io::Result<()>,
    ) -> Result<Recovered, StoreError> {
        let mut recovered = Recovered::default();
        if entry_at(&self.fd, COMMIT).map_err(errno_io(&self.shown))?.0 != Entry::Missing {
            recovered.finished = self.finish_commit(hook)?;
        }
        if entry_at(&self.fd, NEW).map_err(errno_io(&self.shown))?.0 != Entry::Missing {
            self.remove_new()?;
        }
        recovered.removed += self.remove_legacy_temps(&self.fd);
        for cluster in clusters {
            if let Ok(home) = open_dir_at(&self.fd, cluster) {
                recovered.removed += self.remove_legacy_temps(&home);
            }
        }
        Ok(recovered)
    }

    fn remove_legacy_temps(&self, dir: &OwnedFd) -> usize {
        let mut removed = 0;
        for name in names(dir).unwrap_or_default() {
            if !is_legacy_temp(&name) {
                continue;
            }
            let ours = matches!(entry_at(dir, &name), Ok((Entry::File, Some(stat))) if stat.st_uid == userdirs::euid());
            if ours && rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Opens one of meshplan's work directories, which must be a real directory of the user.
    fn open_work(&self, name: &str) -> Result<OwnedFd, StoreError> {
        let path = PathBuf::from(self.show(name));
        let fd = open_dir_at(&self.fd, name).map_err(|errno| match errno {
            Errno::LOOP | Errno::NOTDIR => refused(format!(
                "{} is not a directory meshplan made (a link or a file): move it away",
                path.display()
            )),
            other => errno_io(&path)(other),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(errno_io(&path))?;
        if stat.st_uid != userdirs::euid() {
            return Err(refused(format!(
                "{} belongs to {}, so meshplan did not make it: move it away",
                path.display(),
                userdirs::describe_uid(stat.st_uid)
            )));
        }
        Ok(fd)
    }

    /// The entries of a work directory (or one cluster's in it), each checked to be what
    /// meshplan writes there: regular files of the user named as `allowed` says, and (at the
    /// top) cluster directories.
    fn work_entries(
        &self,
        dir: &OwnedFd,
        rel: &str,
        allowed: &[&str],
        with_dirs: bool,
    ) -> Result<Vec<(String, Entry)>, StoreError> {
        let path = PathBuf::from(self.show(rel));
        let mut out = Vec::new();
        for name in names(dir).map_err(errno_io(&path))? {
            let (entry, stat) = entry_at(dir, &name).map_err(errno_io(&path))?;
            let owner_ok = stat.is_some_and(|s| s.st_uid == userdirs::euid());
            let expected = match entry {
                Entry::File => allowed.contains(&name.as_str()),
                Entry::Dir => with_dirs && is_cluster_name(&name),
                _ => false,
            };
            if !(expected && owner_ok) {
                return Err(refused(format!(
                    "{}/{name} is not something meshplan writes there: move {} away (and check DIR with `meshplan check PLAN --certs DIR`)",
                    path.display(),
                    self.show(rel.split('/').next().unwrap_or(rel))
                )));
            }
            out.push((name, entry));
        }
        Ok(out)
    }

    /// Removes `.meshplan-new`: a run cut short before its commit point (nothing of it is in
    /// place), after checking it holds only what meshplan writes.
    fn remove_new(&self) -> Result<(), StoreError> {
        let new = self.open_work(NEW)?;
        let top: Vec<&str> = vec![ROOT_KEY, ROOT_CERT, CRL];
        for (name, entry) in self.work_entries(&new, NEW, &top, true)? {
            let path = PathBuf::from(self.show(&format!("{NEW}/{name}")));
            if entry == Entry::Dir {
                let home = self.open_work(&format!("{NEW}/{name}"))?;
                let rel = format!("{NEW}/{name}");
                for (file, _) in self.work_entries(&home, &rel, &CLUSTER_FILES, false)? {
                    rustix::fs::unlinkat(&home, file.as_str(), AtFlags::empty())
                        .map_err(errno_io(&path))?;
                }
                rustix::fs::unlinkat(&new, name.as_str(), AtFlags::REMOVEDIR)
                    .map_err(errno_io(&path))?;
            } else {
                rustix::fs::unlinkat(&new, name.as_str(), AtFlags::empty())
                    .map_err(errno_io(&path))?;
            }
        }
        rustix::fs::unlinkat(&self.fd, NEW, AtFlags::REMOVEDIR)
            .map_err(errno_io(Path::new(&self.show(NEW))))
    }

    /// Writes a run's files all or nothing: into `.meshplan-new`, then (all complete) renamed
    /// to `.meshplan-commit` and moved into place. Returns the files written, as shown.
    pub fn write_all(
        &self,
        files: &[NewFile],
        hook: &mut dyn FnMut(Step) -> io::Result<()>,
    ) -> Result<Vec<String>, StoreError> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(err) = self.stage(files, hook) {
            if entry_at(&self.fd, NEW).is_ok_and(|(e, _)| e == Entry::Dir) {
                let _ = self.remove_new();
            }
            return Err(err);
        }
        // The commit point. Should the rename itself fail, nothing is in place yet.
        let committed = hook(Step::Commit).and_then(|()| {
            rustix::fs::renameat(&self.fd, NEW, &self.fd, COMMIT).map_err(io::Error::from)
        });
        if let Err(source) = committed {
            let _ = self.remove_new();
            return Err(StoreError::Staging {
                path: self.show(COMMIT),
                source,
            });
        }
        self.finish_commit(hook)?;
        Ok(files.iter().map(|f| self.show(&f.rel())).collect())
    }

    fn stage(
        &self,
        files: &[NewFile],
        hook: &mut dyn FnMut(Step) -> io::Result<()>,
    ) -> Result<(), StoreError> {
        let staging = |rel: &str, source: io::Error| StoreError::Staging {
            path: self.show(&format!("{NEW}/{rel}")),
            source,
        };
        rustix::fs::mkdirat(&self.fd, NEW, Mode::from_raw_mode(0o700))
            .map_err(|errno| staging("", errno.into()))?;
        let new = open_dir_at(&self.fd, NEW).map_err(|errno| staging("", errno.into()))?;
        rustix::fs::fchmod(&new, Mode::from_raw_mode(0o700))
            .map_err(|errno| staging("", errno.into()))?;
        let mut homes: Vec<(String, OwnedFd)> = Vec::new();
        for file in files {
            let rel = file.rel();
            hook(Step::Write(&rel)).map_err(|source| staging(&rel, source))?;
            let Some(cluster) = &file.cluster else {
                write_new_at(&new, file.name, &file.bytes, file.mode)
                    .map_err(|source| staging(&rel, source))?;
                continue;
            };
            if !homes.iter().any(|(c, _)| c == cluster) {
                rustix::fs::mkdirat(&new, cluster.as_str(), Mode::from_raw_mode(0o700))
                    .map_err(|errno| staging(cluster, errno.into()))?;
                let fd =
                    open_dir_at(&new, cluster).map_err(|errno| staging(cluster, errno.into()))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
                    .map_err(|errno| staging(cluster, errno.into()))?;
                homes.push((cluster.clone(), fd));
            }
            let home = homes
                .iter()
                .find(|(c, _)| c == cluster)
                .map(|(_, fd)| fd.as_fd())
                .ok_or_else(|| refused("internal error: no staged directory".to_owned()))?;
            write_new_at(home, file.name, &file.bytes, file.mode)
                .map_err(|source| staging(&rel, source))?;
        }
        Ok(())
    }

    /// Moves every file of `.meshplan-commit` into place (a run's, or an interrupted run's),
    /// then removes it. Returns the files moved, as shown.
    fn finish_commit(
        &self,
        hook: &mut dyn FnMut(Step) -> io::Result<()>,
    ) -> Result<Vec<String>, StoreError> {
        let commit = self.open_work(COMMIT)?;
        let mut moved = Vec::new();
        let entries = self.work_entries(&commit, COMMIT, &[ROOT_KEY, ROOT_CERT, CRL], true)?;
        let move_error = |rel: &str, source: io::Error| StoreError::Commit {
            path: self.show(rel),
            source,
        };
        // The root's key first: its certificate in place means the root is complete.
        for name in [ROOT_KEY, ROOT_CERT, CRL] {
            if entries.iter().any(|(n, _)| n == name) {
                hook(Step::Move(name)).map_err(|source| move_error(name, source))?;
                self.move_root_file(&commit, name)?;
                moved.push(self.show(name));
            }
        }
        for (cluster, _) in entries.iter().filter(|(_, e)| *e == Entry::Dir) {
            moved.extend(self.move_cluster(&commit, cluster, hook)?);
        }
        rustix::fs::unlinkat(&self.fd, COMMIT, AtFlags::REMOVEDIR)
            .map_err(|errno| move_error(COMMIT, errno.into()))?;
        Ok(moved)
    }

    /// Moves a root file into place: it never replaces one (a second root splits the mesh); a
    /// byte-identical one already there is fine.
    fn move_root_file(&self, commit: &OwnedFd, name: &str) -> Result<(), StoreError> {
        let target = self.show(name);
        let move_error = |source: io::Error| StoreError::Commit {
            path: target.clone(),
            source,
        };
        match entry_at(&self.fd, name)
            .map_err(|errno| move_error(errno.into()))?
            .0
        {
            Entry::Missing => rustix::fs::renameat(commit, name, &self.fd, name)
                .map_err(|errno| move_error(errno.into())),
            Entry::File => {
                let staged = fsread::read_at(commit, name, CERT_FILE_CAP);
                let there = fsread::read_at(&self.fd, name, CERT_FILE_CAP);
                match (staged, there) {
                    (Ok((a, _)), Ok((b, _))) if a == b => {
                        rustix::fs::unlinkat(commit, name, AtFlags::empty())
                            .map_err(|errno| move_error(errno.into()))
                    }
                    _ => Err(refused(format!(
                        "{target} exists and differs from the one an interrupted run made in {}: keep the one the clusters trust and move {} away",
                        self.show(COMMIT),
                        self.show(COMMIT)
                    ))),
                }
            }
            _ => Err(refused(format!(
                "{target} is not a regular file: move it away"
            ))),
        }
    }

    /// Moves a cluster's staged files into its directory: the whole directory when the
    /// cluster has none yet, else file by file, its certificate last.
    fn move_cluster(
        &self,
        commit: &OwnedFd,
        cluster: &str,
        hook: &mut dyn FnMut(Step) -> io::Result<()>,
    ) -> Result<Vec<String>, StoreError> {
        let rel = format!("{COMMIT}/{cluster}");
        let staged = self.open_work(&rel)?;
        let files: Vec<String> = self
            .work_entries(&staged, &rel, &CLUSTER_FILES, false)?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let move_error = |what: &str, source: io::Error| StoreError::Commit {
            path: self.show(what),
            source,
        };
        let shown = |name: &String| self.show(&format!("{cluster}/{name}"));
        match entry_at(&self.fd, cluster)
            .map_err(|errno| move_error(cluster, errno.into()))?
            .0
        {
            Entry::Missing => {
                hook(Step::Move(&format!("{cluster}/"))).map_err(|e| move_error(cluster, e))?;
                rustix::fs::renameat(commit, cluster, &self.fd, cluster)
                    .map_err(|errno| move_error(cluster, errno.into()))?;
                return Ok(files.iter().map(shown).collect());
            }
            Entry::Dir => {}
            _ => {
                return Err(refused(format!(
                    "{} is not a real directory: meshplan writes keys only into one; remove it",
                    self.show(cluster)
                )));
            }
        }
        let home =
            open_dir_at(&self.fd, cluster).map_err(|errno| move_error(cluster, errno.into()))?;
        let mut moved = Vec::new();
        for name in MOVE_ORDER {
            if !files.iter().any(|f| f == name) {
                continue;
            }
            let target = format!("{cluster}/{name}");
            if let (Entry::Other(_) | Entry::Dir, _) =
                entry_at(&home, name).map_err(|errno| move_error(&target, errno.into()))?
            {
                return Err(refused(format!(
                    "{} is not a regular file: move it away",
                    self.show(&target)
                )));
            }
            hook(Step::Move(&target)).map_err(|e| move_error(&target, e))?;
            rustix::fs::renameat(&staged, name, &home, name)
                .map_err(|errno| move_error(&target, errno.into()))?;
            moved.push(self.show(&target));
        }
        rustix::fs::unlinkat(commit, cluster, AtFlags::REMOVEDIR)
            .map_err(|errno| move_error(&rel, errno.into()))?;
        Ok(moved)
    }
}

/// What [`CaDir::recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Files an interrupted run had made, now moved into place.
    pub finished: Vec<String>,
    /// Temporary files of earlier versions removed.
    pub removed: usize,
}

/// What an entry is for, to judge its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key,
    Cert,
    Dir,
}

/// The one most serious problem with an entry's owner and mode, if any.
fn judge(stat: &Stat, kind: Kind) -> Option<ProblemKind> {
    let you = userdirs::euid();
    let mode = mode_bits(stat);
    if stat.st_uid != you {
        return Some(ProblemKind::ForeignOwner {
            owner: stat.st_uid,
            you,
        });
    }
    if kind == Kind::Key && mode & 0o077 != 0 {
        return Some(ProblemKind::KeyMode { mode });
    }
    if mode & 0o022 != 0 {
        return Some(ProblemKind::Writable { mode });
    }
    if kind == Kind::Dir && mode & 0o077 != 0 {
        return Some(ProblemKind::DirReadable { mode });
    }
    None
}

/// Makes DIR (0700) and its missing parents (0700 less the umask), through directory handles:
/// a path component made here is entered without following a link, so a link planted while
/// DIR is made is refused, not followed. Existing parents are taken as the path names them.
fn make_dirs(dir: &Path) -> Result<OwnedFd, StoreError> {
    let shown = dir.display();
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(refused(format!(
            "the CA directory {shown} does not exist and its path takes `..`; name it without `..`"
        )));
    }
    let start = if dir.is_absolute() { "/" } else { "." };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd =
        rustix::fs::open(start, flags, Mode::empty()).map_err(errno_io(Path::new(start)))?;
    let parts: Vec<&std::ffi::OsStr> = dir
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let mut made = false;
    let mut here = PathBuf::from(start);
    for (index, part) in parts.iter().enumerate() {
        here.push(part);
        let last = index + 1 == parts.len();
        let follow = !(last || made);
        let open_flags = if follow { flags } else { DIR_FLAGS };
        fd = match rustix::fs::openat(&fd, *part, open_flags, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&fd, *part, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(errno) => return Err(errno_io(&here)(errno)),
                }
                made = true;
                rustix::fs::openat(&fd, *part, DIR_FLAGS, Mode::empty()).map_err(|errno| {
                    refused(format!(
                        "{} could not be entered after meshplan made it ({}); run again",
                        here.display(),
                        fsread::plain(&errno.into())
                    ))
                })?
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(refused(format!(
                    "the CA directory {shown} cannot be made: {} is a file or a link",
                    here.display()
                )));
            }
            Err(errno) => return Err(errno_io(&here)(errno)),
        };
    }
    // The umask may have removed bits; DIR is exactly 0700.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(errno_io(dir))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_meshplans_own_temporary_names_count_as_leftovers() {
        for name in [
            ".ca-key.pem.1.tmp",
            ".cert-chain.pem.4242.tmp",
            ".root-key.pem.77.tmp",
        ] {
            assert!(is_legacy_temp(name), "{name}");
        }
        for name in [
            ".ca-key.pem..tmp",
            ".ca-key.pem.12a.tmp",
            "ca-key.pem.1.tmp",
            ".notes.tmp",
            ".ca-key.pem.1.tmp.bak",
            ".other.pem.1.tmp",
        ] {
            assert!(!is_legacy_temp(name), "{name}");
        }
    }
}
