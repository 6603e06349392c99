//! One build at a time: an exclusive `flock` on DIR's handle for the whole build, released when
//! the handle closes (or the process dies, so a killed build leaves no stale lock).
//!
//! Anyone who can open DIR can take the same lock; meshplan cannot stop that, so when the lock
//! is taken it says who holds it (from `/proc/locks`): another meshplan build, or some other
//! program of some user, which then has to let go.

use std::io;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use super::EmitError;
use super::at::Root;
use super::users;

/// Takes DIR's lock (held as long as `root` is open), or says who holds it.
pub fn exclusive(root: &Root) -> Result<(), EmitError> {
    match rustix::fs::flock(root.fd(), FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(Errno::WOULDBLOCK) => Err(EmitError::Refused(held_by(root))),
        Err(errno) => Err(EmitError::Io {
            path: root.shown().to_owned(),
            error: errno.into(),
        }),
    }
}

/// A process holding a lock on DIR.
struct Holder {
    pid: u32,
    command: String,
    user: String,
}

fn held_by(root: &Root) -> String {
    let dir = root.shown().display();
    match root.stat().ok().and_then(|stat| holder(&stat)) {
        Some(holder) if holder.command == "meshplan" => format!(
            "another meshplan build (process {}, user {}) is writing {dir}; wait for it to finish",
            holder.pid, holder.user
        ),
        Some(holder) => format!(
            "{dir} is locked by process {} (`{}`, user {}), which is not a meshplan build; meshplan takes that lock to build one at a time, so it cannot start until that process lets go: ask its owner, or build into a directory only you can open",
            holder.pid, holder.command, holder.user
        ),
        None => format!("another meshplan build is writing {dir}; wait for it to finish"),
    }
}

/// The process holding a `flock` on the file `stat` describes, from `/proc/locks`.
fn holder(stat: &rustix::fs::Stat) -> Option<Holder> {
    let locks = read_proc("/proc/locks").ok()?;
    let wanted = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
        stat.st_ino
    );
    let pid = locks.lines().find_map(|line| lock_holder(line, &wanted))?;
    let status = read_proc(&format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let command = super::printable(field("Name:")?);
    let uid: u32 = field("Uid:")?.split_whitespace().nth(1)?.parse().ok()?;
    Some(Holder {
        pid,
        command,
        user: users::describe(uid),
    })
}

/// The pid of a held `FLOCK` line of `/proc/locks` on the file `wanted` (`MAJ:MIN:INODE`);
/// waiting lines (`->`) and pids from other namespaces (0) are skipped.
fn lock_holder(line: &str, wanted: &str) -> Option<u32> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(1) != Some(&"FLOCK") || fields.contains(&"->") {
        return None;
    }
    let pid: u32 = fields.get(4)?.parse().ok()?;
    (fields.get(5) == Some(&wanted) && pid != 0).then_some(pid)
}

/// A small file of `/proc`, capped: these are a few kilobytes.
fn read_proc(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(1 << 20)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::lock_holder;

    #[test]
    fn a_held_flock_line_names_its_process() {
        let wanted = "fd:01:1234";
        assert_eq!(
            lock_holder("1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF", wanted),
            Some(4242)
        );
        assert_eq!(
            lock_holder("1: -> FLOCK  ADVISORY  WRITE 4243 fd:01:1234 0 EOF", wanted),
            None,
            "a waiter does not hold the lock"
        );
        assert_eq!(
            lock_holder("2: POSIX  ADVISORY  WRITE 4244 fd:01:1234 0 EOF", wanted),
            None
        );
        assert_eq!(
            lock_holder("3: FLOCK  ADVISORY  WRITE 4245 fd:01:9999 0 EOF", wanted),
            None
        );
    }
}
