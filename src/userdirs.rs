//! Who runs meshplan and where their home is: for refusing to write into a home directory and
//! for naming the owner of a file in messages.
//!
//! The home directory is `$HOME` when it is set and not empty, and also, always, the home of
//! the effective user's entry in `/etc/passwd`: unsetting or emptying `HOME` must not make the
//! login home acceptable. `/etc/passwd` is read directly (capped, regular file only), with no
//! libc lookup; users that only a directory service (LDAP, NSS) knows have no entry there, and
//! then `$HOME` is all there is.

use std::path::{Path, PathBuf};

use crate::fsread;

/// Where the user database is.
const PASSWD: &str = "/etc/passwd";
/// The most of `/etc/passwd` meshplan reads (a line is about 50 bytes).
const PASSWD_CAP: u64 = 16 << 20;

/// The effective user id.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The user database's text, or empty when it cannot be read.
fn passwd_text() -> String {
    fsread::read_path(Path::new(PASSWD), PASSWD_CAP)
        .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The fields of `uid`'s entry: `name:password:uid:gid:gecos:home:shell`.
fn entry(passwd: &str, uid: u32) -> Option<Vec<&str>> {
    let uid = uid.to_string();
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 7 && fields[2] == uid)
}

/// The home directories of `uid`, not yet resolved: `home_env` (when not empty), then the
/// passwd entry's.
pub fn homes_from(home_env: Option<&std::ffi::OsStr>, passwd: &str, uid: u32) -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = home_env
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(home) = entry(passwd, uid)
        .map(|fields| fields[5])
        .filter(|home| !home.is_empty())
    {
        homes.push(PathBuf::from(home));
    }
    homes
}

/// The current user's home directories, resolved (links followed); those that do not exist
/// are left out.
pub fn homes() -> Vec<PathBuf> {
    let home_env = std::env::var_os("HOME");
    // The system's own lookup as well: it knows users a directory service (NSS) serves.
    let mut homes: Vec<PathBuf> = homes_from(home_env.as_deref(), &passwd_text(), euid())
        .into_iter()
        .chain(std::env::home_dir())
        .filter_map(|home| std::fs::canonicalize(home).ok())
        .collect();
    homes.sort();
    homes.dedup();
    homes
}

/// `uid 65534 (nobody)`, or `uid 65534` when the name is unknown.
pub fn describe_uid(uid: u32) -> String {
    match entry(&passwd_text(), uid) {
        Some(fields) if !fields[0].is_empty() => {
            format!("uid {uid} ({})", crate::terminal::text(fields[0]))
        }
        _ => format!("uid {uid}"),
    }
}

/// Why `dir` (an existing directory) must not hold meshplan's output: it is `/` or a home
/// directory of the user. `None` when it may.
pub fn root_or_home(dir: &Path) -> Option<&'static str> {
    let real = std::fs::canonicalize(dir).ok()?;
    if real.parent().is_none() {
        return Some("the root directory");
    }
    homes().contains(&real).then_some("the home directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        broken:line\n\
        ann:x:1000:1000:Ann,,,:/home/ann:/bin/bash\n";

    #[test]
    fn the_passwd_home_counts_whatever_home_says() {
        let with_env = homes_from(Some("/tmp/elsewhere".as_ref()), PASSWD, 1000);
        assert_eq!(
            with_env,
            [PathBuf::from("/tmp/elsewhere"), PathBuf::from("/home/ann")]
        );
        assert_eq!(
            homes_from(Some("".as_ref()), PASSWD, 1000),
            [PathBuf::from("/home/ann")]
        );
        assert_eq!(homes_from(None, PASSWD, 0), [PathBuf::from("/root")]);
        assert!(homes_from(None, PASSWD, 4242).is_empty());
        assert!(homes_from(None, "", 0).is_empty());
    }

    #[test]
    fn the_root_directory_is_refused_in_every_spelling() {
        for root in ["/", "//", "/.", "/..", "/tmp/.."] {
            assert_eq!(
                root_or_home(Path::new(root)),
                Some("the root directory"),
                "{root}"
            );
        }
        assert_eq!(root_or_home(Path::new("/definitely/not/here")), None);
    }
}
