//! `meshplan render`'s cache of cluster streams. Rendering cluster after cluster of a large plan
//! (a deploy loop piping each into `kubectl apply`) would otherwise parse and validate the whole
//! plan every time; with the cache, only the first run for each cluster does.
//!
//! An entry's key is a BLAKE3 hash of everything its stream depends on: this build of meshplan
//! (`build.rs`'s fingerprint), the plan's file name and bytes, the cluster and the selection.
//! Only plans without findings are cached, so a hit has nothing to report. An entry starts with
//! the hash of its stream, and one that does not match is a miss. Entries are written to a
//! temporary file and renamed into place; past [`MAX_ENTRIES`] or [`MAX_BYTES`] the oldest are
//! removed, and only files named like entries ever are.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use meshplan::render::Selection;

/// Entries kept, and their total size: a 1,000-cluster plan's streams are 3–7 KB, its primaries'
/// IstioOperators (`meshNetworks` lists every cluster) about 100 KB.
const MAX_ENTRIES: usize = 4096;
const MAX_BYTES: u64 = 256 << 20;
const SUFFIX: &str = ".yaml";

/// The cache directory; writes into it are best effort (a read-only home still renders).
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `MESHPLAN_CACHE_DIR` (empty: no cache), else the platform's cache directory
    /// (`$XDG_CACHE_HOME` or `~/.cache` on Linux) + `meshplan/render`. No cache when that
    /// directory cannot be made, or others may write to it: what is in it gets applied.
    pub fn open() -> Option<Cache> {
        let dir = match std::env::var_os("MESHPLAN_CACHE_DIR") {
            Some(dir) if dir.is_empty() => return None,
            Some(dir) => PathBuf::from(dir),
            None => dirs::cache_dir()?.join("meshplan").join("render"),
        };
        private_dir(&dir).then_some(Cache { dir })
    }

    /// The stream cached under `key`, if its content still matches its hash.
    pub fn get(&self, key: &Key) -> Option<String> {
        let entry = fs::read_to_string(self.entry(key)).ok()?;
        let (hash, stream) = entry.split_once('\n')?;
        (blake3::hash(stream.as_bytes()).to_hex().as_str() == hash).then(|| stream.to_owned())
    }

    /// Stores `stream` under `key`; failures are ignored, as the stream was already rendered.
    pub fn put(&self, key: &Key, stream: &str) {
        if self.write(key, stream).is_ok() {
            self.prune();
        }
    }

    fn write(&self, key: &Key, stream: &str) -> std::io::Result<()> {
        let temporary = self.dir.join(format!(".{}.{}", key.0, std::process::id()));
        let written = fs::File::create(&temporary).and_then(|mut file| {
            writeln!(file, "{}", blake3::hash(stream.as_bytes()).to_hex())?;
            file.write_all(stream.as_bytes())
        });
        let placed = written.and_then(|()| fs::rename(&temporary, self.entry(key)));
        if placed.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        placed
    }

    /// Keeps the newest entries within [`MAX_ENTRIES`] and [`MAX_BYTES`], and removes
    /// temporary files a killed run left behind an hour ago or more.
    fn prune(&self) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        let abandoned = SystemTime::now() - std::time::Duration::from_secs(3600);
        let mut entries = Vec::new();
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let Ok(metadata) = item.metadata() else {
                continue;
            };
            let Ok(modified) = metadata.modified() else {
                continue;
            };
            if is_entry_name(&name) {
                entries.push((modified, metadata.len(), item.path()));
            } else if is_temporary_name(&name) && modified < abandoned {
                let _ = fs::remove_file(item.path());
            }
        }
        entries.sort_by(|a, b| b.cmp(a));
        let mut kept_bytes = 0;
        for (index, (_, bytes, path)) in entries.iter().enumerate() {
            kept_bytes += bytes;
            if index >= MAX_ENTRIES || kept_bytes > MAX_BYTES {
                let _ = fs::remove_file(path);
            }
        }
    }

    fn entry(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", key.0))
    }
}

/// A 64-digit hex BLAKE3 hash naming an entry.
pub struct Key(String);

impl Key {
    /// The key of a plan's bytes as read.
    pub fn new(plan_file: &str, cluster: &str, selection: Selection, plan: &[u8]) -> Key {
        let mut hasher = hasher(plan_file, cluster, selection);
        hasher.update(plan);
        Key(hasher.finalize().to_hex().to_string())
    }

    /// The key of the plan file at `path`, hashed as it is read: a hit then needs no copy of
    /// a large plan in memory. A plan changed between this and a later read cannot be served a
    /// stale entry, as entries are stored under the key of the bytes compiled ([`Key::new`]).
    pub fn of_file(
        plan_file: &str,
        cluster: &str,
        selection: Selection,
        path: &Path,
    ) -> std::io::Result<Key> {
        let mut hasher = hasher(plan_file, cluster, selection);
        hasher.update_reader(fs::File::open(path)?)?;
        Ok(Key(hasher.finalize().to_hex().to_string()))
    }
}

/// A hasher fed every input but the plan's bytes, which come last; the others are
/// length-prefixed, so no two different inputs hash the same byte sequence.
fn hasher(plan_file: &str, cluster: &str, selection: Selection) -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    let selection = format!("{selection:?}");
    let fields = [
        env!("MESHPLAN_BUILD_FINGERPRINT"),
        plan_file,
        cluster,
        &selection,
    ];
    for field in fields {
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher
}

/// Makes `dir` (only its owner may enter it) if it is missing; whether others cannot write to it.
fn private_dir(dir: &Path) -> bool {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir).is_ok()
            && fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o022 == 0)
    }
    #[cfg(not(unix))]
    builder.create(dir).is_ok()
}

fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(SUFFIX).is_some_and(is_hash)
}

/// `.HASH.PID`, as [`Cache::write`] names its temporary files.
fn is_temporary_name(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(hash, pid)| {
            is_hash(hash) && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashed_as_read_has_the_key_of_its_bytes() {
        let dir = std::env::temp_dir().join(format!("meshplan-cache-key-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plan.toml");
        let bytes = "[mesh]\nid = \"m\"\n".repeat(10_000);
        fs::write(&path, &bytes).unwrap();
        let key =
            |cluster, selection| Key::new("plan.toml", cluster, selection, bytes.as_bytes()).0;
        let of_file = Key::of_file("plan.toml", "c1", Selection::Kubectl, &path)
            .unwrap()
            .0;
        assert_eq!(of_file, key("c1", Selection::Kubectl));
        assert_ne!(of_file, key("c2", Selection::Kubectl));
        assert_ne!(of_file, key("c1", Selection::Istio));
        assert!(is_entry_name(&format!("{of_file}{SUFFIX}")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_files_named_as_the_cache_names_them_are_its_own() {
        let hash = "0123456789abcdef".repeat(4);
        assert!(is_entry_name(&format!("{hash}.yaml")));
        for other in [
            format!("{hash}.yml"),
            format!(".{hash}.1234"),
            format!("{}.yaml", &hash[1..]),
            format!("{}g.yaml", &hash[1..]),
            "notes.yaml".to_owned(),
        ] {
            assert!(!is_entry_name(&other), "{other}");
        }
        assert!(is_temporary_name(&format!(".{hash}.1234")));
        for other in [
            format!(".{hash}."),
            format!(".{hash}.12a"),
            format!("{hash}.1234"),
            format!(".{hash}.yaml"),
        ] {
            assert!(!is_temporary_name(&other), "{other}");
        }
    }
}
