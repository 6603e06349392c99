//! Fingerprints the sources that decide what meshplan writes, for `meshplan render`'s cache
//! key: a rebuilt binary whose code, templates or dependencies changed must not reuse a stream
//! an older build cached, even at the same version number.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

const INPUTS: [&str; 4] = ["src", "templates", "Cargo.toml", "Cargo.lock"];

fn main() {
    let mut files = Vec::new();
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
        collect(Path::new(input), &mut files);
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in &files {
        file.hash(&mut hasher);
        fs::read(file).unwrap_or_default().hash(&mut hasher);
    }
    println!(
        "cargo:rustc-env=MESHPLAN_BUILD_FINGERPRINT={:016x}",
        hasher.finish()
    );
}

/// `path` itself when it is a file, else every file below it; missing paths add nothing (a
/// published package has no Cargo.lock of its own).
fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    match fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                collect(&entry.path(), files);
            }
        }
        Err(_) if path.is_file() => files.push(path.to_owned()),
        Err(_) => {}
    }
}
