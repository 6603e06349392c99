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
