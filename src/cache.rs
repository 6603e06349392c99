//! `meshplan render`'s cache of cluster streams. Rendering cluster after cluster of a large plan
//! (a deploy loop piping each into `kubectl apply`) would otherwise parse and validate the whole
//! plan every time; with the cache, only the first run for each cluster does.
//!
//! An entry's key is a BLAKE3 hash of everything its stream depends on: this build of meshplan
//! (`build.rs`'s fingerprint), the plan's file name and bytes, the cluster and the selection.
//! Only plans without findings are cached, so a hit has nothing to report. An entry starts with
//! the hash of its stream, and one that does not match is a miss. Entries are written to a
//! temporary file and renamed into place; past [`MAX_ENTRIES`] the oldest are removed, and only
//! files named like entries ever are.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use meshplan::render::Selection;

/// Entries kept; a 1,000-cluster plan's streams are 2–60 KB each.
const MAX_ENTRIES: usize = 4096;
const SUFFIX: &str = ".yaml";

/// The cache directory; writes into it are best effort (a read-only home still renders).
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `MESHPLAN_CACHE_DIR` (empty: no cache), else the platform's cache directory
    /// (`$XDG_CACHE_HOME` or `~/.cache` on Linux) + `meshplan/render`.
    pub fn open() -> Option<Cache> {
        let dir = match std::env::var_os("MESHPLAN_CACHE_DIR") {
            Some(dir) if dir.is_empty() => return None,
            Some(dir) => PathBuf::from(dir),
            None => dirs::cache_dir()?.join("meshplan").join("render"),
        };
        Some(Cache { dir })
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
        fs::create_dir_all(&self.dir)?;
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

    /// Removes the oldest entries past [`MAX_ENTRIES`].
    fn prune(&self) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, PathBuf)> = listing
            .flatten()
            .filter(|e| is_entry_name(&e.file_name().to_string_lossy()))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if entries.len() <= MAX_ENTRIES {
            return;
        }
        entries.sort();
        for (_, path) in &entries[..entries.len() - MAX_ENTRIES] {
            let _ = fs::remove_file(path);
        }
    }

    fn entry(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", key.0))
    }
}

/// A 64-digit hex BLAKE3 hash naming an entry.
pub struct Key(String);

impl Key {
    pub fn new(plan_file: &str, plan: &[u8], cluster: &str, selection: Selection) -> Key {
        let mut hasher = blake3::Hasher::new();
        let selection = format!("{selection:?}");
        let fields: [&[u8]; 5] = [
            env!("MESHPLAN_BUILD_FINGERPRINT").as_bytes(),
            plan_file.as_bytes(),
            cluster.as_bytes(),
            selection.as_bytes(),
            plan,
        ];
        // Length-prefixed, so no two different field lists hash the same bytes.
        for field in fields {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        Key(hasher.finalize().to_hex().to_string())
    }
}

fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(SUFFIX)
        .is_some_and(|hash| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}
