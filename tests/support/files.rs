//! Reading a directory tree back in the integration tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Every file under `dir` (relative path → bytes).
#[allow(dead_code)] // not every test file reads whole trees
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Every entry under `dir` (relative path → bytes), not following links: a link is recorded as
/// `-> TARGET`.
#[allow(dead_code)] // not every test file looks at links
pub fn tree_no_follow(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                files.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else {
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Every shipped plan and TOML fixture that is UTF-8 (a fixture that is not never reaches the
/// parser), sorted by path, with its text: what the parser tests read.
#[allow(dead_code)] // only the parser tests read them all
pub fn plans_and_fixtures() -> Vec<(std::path::PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    toml_files(&root.join("plans"), &mut files);
    toml_files(&root.join("tests/fixtures"), &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|file| Some((file.clone(), fs::read_to_string(file).ok()?)))
        .collect()
}

fn toml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}
