//! Reading a file meshplan did not write, safely: with a size cap, only when it is a regular
//! file, and without hanging on a FIFO or following a link it was not asked to follow.
//!
//! Every read opens with `O_NONBLOCK` (opening a FIFO for reading then returns at once instead
//! of waiting for a writer), checks the open file with `fstat` before reading a byte (a FIFO,
//! a device such as `/dev/zero`, a socket or a directory is refused), refuses a file larger
//! than the cap by its size, and reads at most one byte past the cap (a file that grows while
//! it is read is refused too). `O_NONBLOCK` changes nothing for a regular file.
//!
//! [`read_at`] opens relative to a directory handle with `O_NOFOLLOW`: the CA directory's
//! files. [`read_path`] opens a path the user named and follows links (a Kubernetes Secret
//! volume is made of links); what the link leads to must still be a regular file.

use std::fmt;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};

/// The most meshplan reads of a certificate or key file: 1 MiB. A CA certificate is 1–2 KiB
/// and an RSA 4096 key about 3 KiB; a chain of hundreds of certificates still fits.
pub const CERT_FILE_CAP: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// There is no such file.
    NotFound,
    /// It is a symbolic link, and links are not followed here.
    Link,
    /// It is not a regular file: what it is (`a FIFO`, `a character device`, ...).
    NotRegular(&'static str),
    /// It is larger than the cap.
    TooLarge {
        /// The cap, in bytes.
        cap: u64,
    },
    /// What the system said.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("it does not exist"),
            ReadError::Link => {
                f.write_str("it is a symbolic link, and meshplan reads only regular files there")
            }
            ReadError::NotRegular(what) => {
                write!(
                    f,
                    "it is not a regular file ({what}); meshplan reads only regular files"
                )
            }
            ReadError::TooLarge { cap } => {
                write!(
                    f,
                    "it is larger than {}, the most meshplan reads",
                    size(*cap)
                )
            }
            ReadError::Io(error) => write!(f, "{}", plain(error)),
        }
    }
}

impl std::error::Error for ReadError {}

/// `1 MiB`, `64 KiB`, `100 bytes`.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// An I/O error in words, without the OS error number.
pub fn plain(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "the filesystem is read-only".to_owned(),
        io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        io::ErrorKind::QuotaExceeded => "the disk quota is exceeded".to_owned(),
        _ => error.to_string(),
    }
}

/// What a file type is, in words: `a FIFO`.
pub fn kind_of(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "a special file",
    }
}

fn flags(follow: bool) -> OFlags {
    let base = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    if follow {
        base
    } else {
        base | OFlags::NOFOLLOW
    }
}

fn open_error(error: rustix::io::Errno, follow: bool) -> ReadError {
    match error {
        rustix::io::Errno::NOENT => ReadError::NotFound,
        // O_NOFOLLOW on a link: ELOOP on Linux, EMLINK or EFTYPE elsewhere.
        rustix::io::Errno::LOOP | rustix::io::Errno::MLINK if !follow => ReadError::Link,
        other => ReadError::Io(other.into()),
    }
}

/// Reads `name` in the directory `dir` (no link followed), at most `cap` bytes; also returns
/// the file's status (owner, mode) as it was when read.
pub fn read_at(dir: impl AsFd, name: &str, cap: u64) -> Result<(Vec<u8>, Stat), ReadError> {
    let fd = rustix::fs::openat(dir, name, flags(false), Mode::empty())
        .map_err(|e| open_error(e, false))?;
    read_open(fd, cap)
}

/// Reads the file at `path`, following links, at most `cap` bytes; also returns its status.
pub fn read_path(path: &Path, cap: u64) -> Result<(Vec<u8>, Stat), ReadError> {
    let fd = rustix::fs::open(path, flags(true), Mode::empty()).map_err(|e| open_error(e, true))?;
    read_open(fd, cap)
}

/// Reads an open file: refused unless regular and at most `cap` bytes.
fn read_open(fd: OwnedFd, cap: u64) -> Result<(Vec<u8>, Stat), ReadError> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(e.into()))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        return Err(ReadError::NotRegular(kind_of(file_type)));
    }
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > cap {
        return Err(ReadError::TooLarge { cap });
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok((bytes, stat))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshplan-fsread-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_at_the_cap_is_read_and_one_byte_more_is_refused() {
        let dir = scratch("cap");
        std::fs::write(dir.join("at"), vec![b'a'; 100]).unwrap();
        std::fs::write(dir.join("over"), vec![b'a'; 101]).unwrap();
        assert_eq!(read_path(&dir.join("at"), 100).unwrap().0.len(), 100);
        let err = read_path(&dir.join("over"), 100).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { cap: 100 }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "it is larger than 100 bytes, the most meshplan reads"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_before_reading() {
        let dir = scratch("special");
        let err = read_path(Path::new("/dev/zero"), CERT_FILE_CAP).unwrap_err();
        assert!(
            matches!(err, ReadError::NotRegular("a character device")),
            "{err:?}"
        );
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Opened without a writer: O_NONBLOCK returns at once, fstat says FIFO.
        let err = read_path(&fifo, CERT_FILE_CAP).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular("a FIFO")), "{err:?}");
        let err = read_path(&dir, CERT_FILE_CAP).unwrap_err();
        assert!(
            matches!(err, ReadError::NotRegular("a directory")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn links_are_followed_by_path_and_refused_in_a_directory() {
        let dir = scratch("links");
        std::fs::write(dir.join("real"), "x").unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        assert_eq!(read_path(&dir.join("link"), 10).unwrap().0, b"x");
        let err = read_path(&dir.join("zero"), 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular(_)), "{err:?}");
        let handle = std::fs::File::open(&dir).unwrap();
        assert_eq!(read_at(&handle, "real", 10).unwrap().0, b"x");
        assert!(matches!(read_at(&handle, "link", 10), Err(ReadError::Link)));
        assert!(matches!(read_at(&handle, "zero", 10), Err(ReadError::Link)));
        assert!(matches!(
            read_at(&handle, "none", 10),
            Err(ReadError::NotFound)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
