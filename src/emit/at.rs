//! DIR through directory handles that never follow a symbolic link.
//!
//! Every path meshplan touches inside DIR is reached from one handle on DIR, a component at a
//! time, each opened with `O_NOFOLLOW | O_DIRECTORY`; files are opened, made, renamed and
//! removed relative to the handle of their own directory. A link anywhere on the way stops the
//! walk, and a directory swapped for a link after it was checked is never written through: the
//! handle keeps pointing at the directory that was checked (`openat(2)`, `renameat(2)`).
//! Files are read only when they are regular files, opened without blocking, and never past a
//! cap, so a FIFO, `/dev/zero` or a huge file cannot hang meshplan or fill its memory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::EmitError;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// DIR, opened once: everything inside it is reached from this handle.
pub struct Root {
    fd: OwnedFd,
    /// DIR as the user named it, for messages.
    shown: PathBuf,
}

impl Root {
    /// Opens DIR itself, refusing a link (it was checked by path before; this closes the gap).
    pub fn open(dir: &Path) -> Result<Root, EmitError> {
        let fd = rustix::fs::open(dir, DIR_FLAGS, Mode::empty()).map_err(|errno| match errno {
            Errno::LOOP | Errno::NOTDIR => EmitError::Refused(format!(
                "the output path {} is not a real directory (a symbolic link or a file); meshplan writes only into a real directory",
                dir.display()
            )),
            errno => EmitError::Io {
                path: dir.to_owned(),
                error: errno.into(),
            },
        })?;
        Ok(Root {
            fd,
            shown: dir.to_owned(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// DIR as the user named it.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// `DIR/rel` for messages.
    pub fn show(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.shown.join(rel)
    }

    pub fn stat(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }
}

/// A relative path's components, or `None` when one is not a plain name (`..`, `/`, `.`).
pub fn plain_parts(path: &Path) -> Option<Vec<&OsStr>> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name),
            _ => return None,
        }
    }
    (!parts.is_empty()).then_some(parts)
}

/// What stands at a path instead of what meshplan needs there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obstacle {
    Link,
    NotDirectory,
    Directory,
    Special,
}

impl Obstacle {
    fn of(kind: FileType) -> Option<Obstacle> {
        match kind {
            FileType::Symlink => Some(Obstacle::Link),
            FileType::Directory => Some(Obstacle::Directory),
            FileType::RegularFile => None,
            _ => Some(Obstacle::Special),
        }
    }
}

/// A walk below one directory handle, keeping the chain of directories it last opened: paths
/// visited in sorted order share their prefixes, so each directory is opened once per run of
/// paths inside it, and at most one chain of handles is open at a time.
pub struct Walker<'a> {
    base: BorrowedFd<'a>,
    open: Vec<(OsString, OwnedFd)>,
}

/// Where a walk stopped.
pub enum Stop {
    /// A component does not exist: the number of components before it, which do.
    Missing(usize),
    /// The path named (relative to the walk's base) is not a real directory.
    Blocked(PathBuf, Obstacle),
    Io(PathBuf, io::Error),
}

impl<'a> Walker<'a> {
    pub fn new(base: BorrowedFd<'a>) -> Self {
        Walker {
            base,
            open: Vec::new(),
        }
    }

    /// The directory at `parts`, every component a real directory; with `create`, missing
    /// ones are made (mode 0755 less the umask, as any new directory).
    pub fn dir(&mut self, parts: &[&OsStr], create: bool) -> Result<BorrowedFd<'_>, Stop> {
        let shared = self
            .open
            .iter()
            .zip(parts)
            .take_while(|((name, _), part)| name.as_os_str() == **part)
            .count();
        self.open.truncate(shared);
        for (i, part) in parts.iter().enumerate().skip(shared) {
            let parent = self.open.last().map_or(self.base, |(_, fd)| fd.as_fd());
            let here = || parts[..=i].iter().collect::<PathBuf>();
            // With `create`, made first: the directories a build stages are nearly all new.
            if create {
                match rustix::fs::mkdirat(parent, *part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(errno) => return Err(Stop::Io(here(), errno.into())),
                }
            }
            let fd = match rustix::fs::openat(parent, *part, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if !create => return Err(Stop::Missing(i)),
                Err(errno) => return Err(blocked(parent, part, here(), errno)),
            };
            self.open.push((part.to_os_string(), fd));
        }
        Ok(self.open.last().map_or(self.base, |(_, fd)| fd.as_fd()))
    }

    /// The directory holding `parts`' last component, and that component.
    pub fn parent<'p>(
        &mut self,
        parts: &[&'p OsStr],
        create: bool,
    ) -> Result<(BorrowedFd<'_>, &'p OsStr), Stop> {
        let (name, dirs) = parts
            .split_last()
            .ok_or_else(|| Stop::Io(PathBuf::new(), io::Error::other("an empty path")))?;
        Ok((self.dir(dirs, create)?, name))
    }
}

/// Why `openat` refused a component: a link, something else than a directory, or an error.
fn blocked(parent: BorrowedFd, name: &OsStr, here: PathBuf, errno: Errno) -> Stop {
    let kind = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|stat| FileType::from_raw_mode(stat.st_mode));
    match kind {
        Ok(FileType::Symlink) => Stop::Blocked(here, Obstacle::Link),
        Ok(FileType::Directory) => Stop::Io(here, errno.into()),
        Ok(_) => Stop::Blocked(here, Obstacle::NotDirectory),
        Err(_) => Stop::Io(here, errno.into()),
    }
}

/// A regular file, opened for reading: its status and an open handle.
pub struct Opened {
    pub stat: Stat,
    file: File,
}

impl Opened {
    /// At most `cap` bytes, or `None` when the file holds more.
    pub fn read_capped(self, cap: u64) -> io::Result<Option<Vec<u8>>> {
        if stat_size(&self.stat) > cap {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(stat_size(&self.stat)).unwrap_or(0));
        self.file.take(cap + 1).read_to_end(&mut bytes)?;
        Ok((bytes.len() as u64 <= cap).then_some(bytes))
    }

    /// Whether the file holds exactly `expected`, reading no more than that.
    pub fn holds(self, expected: &[u8]) -> io::Result<bool> {
        if stat_size(&self.stat) != expected.len() as u64 {
            return Ok(false);
        }
        Ok(self
            .read_capped(expected.len() as u64)?
            .is_some_and(|bytes| bytes == expected))
    }
}

/// Opens the directory `name` in `dir`, never through a link.
pub fn open_dir(dir: BorrowedFd, name: impl rustix::path::Arg) -> io::Result<OwnedFd> {
    rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()).map_err(io::Error::from)
}

pub fn stat_size(stat: &Stat) -> u64 {
    u64::try_from(stat.st_size).unwrap_or(0)
}

/// Opens `name` in `dir` for reading when it is a regular file: `Ok(None)` when nothing is
/// there, `Err(Ok(obstacle))` when something else is. Checked before opening, so that no
/// device or FIFO is ever opened, and again after, against a swap in between.
pub fn open_regular(
    dir: BorrowedFd,
    name: &OsStr,
) -> Result<Option<Opened>, Result<Obstacle, io::Error>> {
    let before = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(None),
        Err(errno) => return Err(Err(errno.into())),
    };
    if let Some(obstacle) = Obstacle::of(FileType::from_raw_mode(before.st_mode)) {
        return Err(Ok(obstacle));
    }
    let fd = match rustix::fs::openat(dir, name, READ_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err(Ok(Obstacle::Link)),
        Err(errno) => return Err(Err(errno.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|errno| Err(errno.into()))?;
    if let Some(obstacle) = Obstacle::of(FileType::from_raw_mode(stat.st_mode)) {
        return Err(Ok(obstacle));
    }
    Ok(Some(Opened {
        stat,
        file: File::from(fd),
    }))
}

/// The status of `name` in `dir`, not following a link; `None` when nothing is there.
pub fn stat_at(dir: BorrowedFd, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

pub fn kind(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// Creates `name` in `dir` (it must not exist) with `mode` less the umask, writes `bytes`, and
/// returns its inode.
pub fn create_file(dir: BorrowedFd, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<u64> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    let inode = rustix::fs::fstat(&fd)?.st_ino;
    File::from(fd).write_all(bytes)?;
    Ok(inode)
}

/// Renames `from_name` in `from` to `to_name` in `to` (replacing a file there; never following
/// a link at either end, as `rename(2)` never does for the last component).
pub fn rename(
    from: BorrowedFd,
    from_name: &OsStr,
    to: BorrowedFd,
    to_name: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::renameat(from, from_name, to, to_name)?)
}

/// Moves the directory `name` in `from` to `name` in `to`, where nothing may stand (the
/// rename fails rather than replace an empty directory made there meanwhile, as `mkdir`
/// would); `false` when the filesystem cannot rename without replacing, and nothing moved.
#[cfg(target_os = "linux")]
pub fn move_new_dir(from: BorrowedFd, name: &OsStr, to: BorrowedFd) -> io::Result<bool> {
    match rustix::fs::renameat_with(from, name, to, name, rustix::fs::RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::INVAL | Errno::NOSYS) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Elsewhere the directories are made and the files moved one by one.
#[cfg(not(target_os = "linux"))]
pub fn move_new_dir(_from: BorrowedFd, _name: &OsStr, _to: BorrowedFd) -> io::Result<bool> {
    Ok(false)
}

/// Removes the entry `name` (a file or a link, never what a link points to).
pub fn remove_file(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the directory `name` if it is empty (never a link).
pub fn remove_empty_dir(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Removes `name` and, when it is a real directory, everything in it; links are removed, never
/// followed.
pub fn remove_tree(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    let fd = match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::LOOP | Errno::NOTDIR) => return remove_file(dir, name),
        Err(errno) => return Err(errno.into()),
    };
    for name in entries(fd.as_fd())? {
        remove_tree(fd.as_fd(), &name)?;
    }
    remove_empty_dir(dir, name)
}

/// The names in a directory, sorted, without `.` and `..`.
pub fn entries(dir: BorrowedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = OsStr::from_bytes(entry?.file_name().to_bytes()).to_os_string();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A stable identity of a directory that no copy or `git checkout` reproduces: its inode and,
/// where the filesystem keeps one, its birth time (which no system call can set).
pub fn identity(dir: BorrowedFd) -> io::Result<String> {
    let inode = rustix::fs::fstat(dir)?.st_ino;
    Ok(format!("{inode} {}", birth_time(dir)))
}

#[cfg(target_os = "linux")]
fn birth_time(dir: BorrowedFd) -> String {
    use rustix::fs::StatxFlags;
    match rustix::fs::statx(dir, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME) {
        Ok(statx) if statx.stx_mask & StatxFlags::BTIME.bits() != 0 => {
            format!("{}.{:09}", statx.stx_btime.tv_sec, statx.stx_btime.tv_nsec)
        }
        _ => "-".to_owned(),
    }
}

#[cfg(not(target_os = "linux"))]
fn birth_time(_dir: BorrowedFd) -> String {
    "-".to_owned()
}

/// The error a stopped walk means to a build touching `touching` (relative to `root`).
pub fn stop_error(root: &Root, stop: Stop, touching: &str) -> EmitError {
    match stop {
        Stop::Missing(_) => EmitError::Io {
            path: root.show(touching),
            error: io::ErrorKind::NotFound.into(),
        },
        Stop::Blocked(at, obstacle) => obstacle_error(root, &at, obstacle, touching),
        Stop::Io(at, error) => EmitError::Io {
            path: root.show(at),
            error,
        },
    }
}

/// The refusal for an obstacle at `at` on the way to (or at) `touching`.
pub fn obstacle_error(root: &Root, at: &Path, obstacle: Obstacle, touching: &str) -> EmitError {
    let shown = root.show(at);
    EmitError::Refused(match obstacle {
        Obstacle::Link => format!(
            "{} is a symbolic link; meshplan writes and deletes only through directories it made, so it will not touch {touching} (replace the link with a real directory or remove it)",
            shown.display()
        ),
        Obstacle::NotDirectory => format!(
            "{} is not a directory, so meshplan cannot write {touching}; move it away",
            shown.display()
        ),
        Obstacle::Directory | Obstacle::Special => format!(
            "{} is not a regular file ({}); meshplan writes a file there, so move it away",
            shown.display(),
            if obstacle == Obstacle::Directory {
                "a directory"
            } else {
                "a special file"
            }
        ),
    })
}
