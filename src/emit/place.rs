//! Where a build may go: the output path itself, before any handle on it is opened.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::at::{self, Root};
use super::{EmitError, MANIFEST, io_error, refused, users};

/// Checks the output path and creates it when missing; whether it was created.
pub fn prepare(dir: &Path) -> Result<bool, EmitError> {
    if existing(dir)? {
        return Ok(false);
    }
    if dir
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(refused(format!(
            "the output path {} does not exist, and it takes `..` or `.` from a directory that does not exist; name the output directory without them",
            dir.display()
        )));
    }
    let mut ancestor = PathBuf::new();
    for component in dir.components() {
        ancestor.push(component);
        match fs::metadata(&ancestor) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(refused(format!(
                    "the output path {} cannot be made: {} is a file",
                    dir.display(),
                    ancestor.display()
                )));
            }
            Err(_) => fs::create_dir(&ancestor).map_err(|error| {
                refused(format!(
                    "cannot make the output directory {}: {}",
                    ancestor.display(),
                    plain(&error)
                ))
            })?,
        }
    }
    Ok(true)
}

/// Whether the output path is an existing directory meshplan may build into (`false`: it does
/// not exist); refuses links, files, `/` and the home directory.
pub fn existing(dir: &Path) -> Result<bool, EmitError> {
    let shown = dir.display();
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refused(match fs::metadata(dir) {
            Err(_) => format!("the output path {shown} is a symbolic link that leads nowhere"),
            Ok(_) => format!(
                "the output path {shown} is a symbolic link; meshplan writes only into a real directory, so give the path it leads to"
            ),
        })),
        Ok(meta) if meta.is_dir() => {
            refuse_home_or_root(dir)?;
            Ok(true)
        }
        Ok(_) => Err(refused(format!(
            "the output path {shown} is a file, not a directory"
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(refused(format!(
            "cannot look at the output path {shown}: {}",
            plain(&error)
        ))),
    }
}

/// An I/O error in words, without the OS error number.
pub fn plain(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "the filesystem is read-only".to_owned(),
        io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        kind => kind.to_string(),
    }
}

/// `/` and the user's home directory are never output directories, forced or not, whatever
/// HOME says (an unset HOME must not make the home directory a fair target).
fn refuse_home_or_root(dir: &Path) -> Result<(), EmitError> {
    let real = fs::canonicalize(dir).map_err(io_error(dir))?;
    if real.parent().is_none() {
        return Err(refused(format!(
            "refusing to build into the root directory {}; build into a directory of its own",
            dir.display()
        )));
    }
    let is_home = users::home_dirs()
        .iter()
        .filter_map(|home| fs::canonicalize(home).ok())
        .any(|home| home == real);
    if is_home {
        return Err(refused(format!(
            "refusing to build into the home directory {}; build into a directory of its own, such as {}",
            dir.display(),
            dir.join("mesh").display()
        )));
    }
    Ok(())
}

/// A first build goes only into an empty directory (or with `--force`): `-o .` in the wrong
/// place would scatter files among the user's.
pub fn refuse_unowned(root: &Root) -> Result<(), EmitError> {
    let names: Vec<String> = at::entries(root.fd())
        .map_err(io_error(root.shown()))?
        .into_iter()
        .map(|name| super::printable(&name.to_string_lossy()))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let count = names.len();
    let mut shown = names.into_iter().take(8).collect::<Vec<_>>().join(", ");
    if count > 8 {
        shown.push_str(&format!(" and {} more", count - 8));
    }
    Err(refused(format!(
        "{} is not empty and holds no {MANIFEST}, so meshplan did not build it (it holds {shown}); build into a new or empty directory, or pass --force to write the tree beside what is there (files in the way still stop the build)",
        root.shown().display()
    )))
}
