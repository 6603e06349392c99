//! Who a user is, for messages, and where the running user's home directories are.

use std::io::Read;
use std::path::PathBuf;

/// The user's entry in `/etc/passwd` (name, home), read with a cap; `None` where it has none.
fn passwd_entry(uid: u32) -> Option<(String, String)> {
    let mut text = String::new();
    std::fs::File::open("/etc/passwd")
        .ok()?
        .take(16 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let home = fields.get(5)?;
        (fields.get(2)?.parse::<u32>().ok()? == uid)
            .then(|| (fields[0].to_owned(), home.to_string()))
    })
}

/// `name (uid N)`, or `uid N` for a user without a name here.
pub fn describe(uid: u32) -> String {
    match passwd_entry(uid) {
        Some((name, _)) => format!("{} (uid {uid})", super::printable(&name)),
        None => format!("uid {uid}"),
    }
}

/// Every directory that is the running user's home: `$HOME`, what the system says when HOME is
/// unset or empty, and the password database's entry, which no environment variable changes.
pub fn home_dirs() -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    homes.extend(std::env::home_dir().filter(|h| !h.as_os_str().is_empty()));
    let uid = rustix::process::geteuid().as_raw();
    homes.extend(
        passwd_entry(uid)
            .map(|(_, home)| PathBuf::from(home))
            .filter(|h| !h.as_os_str().is_empty()),
    );
    homes
}
