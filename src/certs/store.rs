//! The CA directory on disk: what `meshplan certs` writes and `check --certs` reads.
//!
//! ```text
//! DIR/                 0700
//!   root-cert.pem
//!   root-key.pem       0600 (absent when the root was brought with --root-cert/--root-key)
//!   <cluster>/         0700, one per cluster of the plan
//!     ca-cert.pem  ca-key.pem (0600)  root-cert.pem  cert-chain.pem
//! ```
//!
//! Safe to run again: a file that exists is never rewritten, so a second run changes no byte
//! and a new cluster only adds its own directory. A key is replaced only by `--rotate` for the
//! one cluster named. Everything is decided before the first write, so a refusal writes nothing.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use super::check::Read;
use super::issue::{self, IssueError, Validity};
use super::{CLUSTER_FILES, Options, ROOT_CERT, ROOT_KEY};

/// The marker `meshplan build` leaves at the top of a compiled tree.
const MANIFEST: &str = ".meshplan-manifest";

/// Why `meshplan certs` wrote nothing (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule of safety: keys inside a compiled tree, a key that would be lost, two roots.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A key or certificate could not be made or parsed.
    #[error("{what}: {source}")]
    Issue {
        /// Which file or step.
        what: String,
        /// What the crypto library said.
        source: IssueError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn issue_err(what: &str) -> impl FnOnce(IssueError) -> StoreError + '_ {
    move |source| StoreError::Issue {
        what: what.to_owned(),
        source,
    }
}

/// Where the root came from this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOutcome {
    /// Made now (key and certificate).
    Generated,
    /// Already in DIR.
    Kept,
    /// Read from `--root-cert`/`--root-key`.
    Brought,
}

/// What a run did.
#[derive(Debug)]
pub struct Generated {
    /// The root.
    pub root: RootOutcome,
    /// Clusters that got a new intermediate (key and certificate).
    pub issued: Vec<String>,
    /// Clusters whose existing key got a new certificate (its certificate was missing).
    pub reissued: Vec<String>,
    /// The cluster whose intermediate was rotated.
    pub rotated: Option<String>,
    /// Clusters left as they were (missing copies of the root or chain filled in).
    pub kept: Vec<String>,
    /// Things the user should know: a directory others can read, a git tree not ignoring DIR.
    pub warnings: Vec<String>,
    /// Every file written.
    pub written: Vec<PathBuf>,
}

/// The compiled tree (the directory holding `.meshplan-manifest`) that `dir` is in or would be
/// created in, if any; symbolic links are followed where the path exists.
pub fn compiled_tree_around(dir: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(dir).ok()?;
    let resolved = absolute
        .ancestors()
        .find(|p| p.exists())
        .and_then(|existing| existing.canonicalize().ok());
    let candidates = absolute
        .ancestors()
        .chain(resolved.iter().flat_map(|r| r.ancestors()));
    candidates
        .map(Path::to_path_buf)
        .find(|p| p.join(MANIFEST).exists())
}

/// A warning when `dir` lies in a git work tree that does not ignore it.
pub fn git_warning(dir: &Path) -> Option<String> {
    let resolved = dir.canonicalize().ok()?;
    let tree = resolved.ancestors().find(|p| p.join(".git").exists())?;
    let asked = std::process::Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["check-ignore", "-q", "--"])
        .arg(&resolved)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match asked.ok().and_then(|status| status.code()) {
        Some(0) => None,
        Some(1) => Some(format!(
            "{} is inside the git work tree {} and not ignored: add it to .gitignore so the private keys are never committed",
            dir.display(),
            tree.display()
        )),
        _ => Some(format!(
            "{} is inside the git work tree {} (git could not say whether it is ignored): make sure the private keys are never committed",
            dir.display(),
            tree.display()
        )),
    }
}

/// Reads files of a CA directory for [`super::check::check`].
pub fn reader(dir: &Path) -> impl Fn(&str) -> Read + '_ {
    move |rel| {
        let path = dir.join(rel);
        match fs::read(&path) {
            Ok(bytes) => Read::Bytes(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Read::Missing,
            Err(err) => Read::Unreadable(err.to_string()),
        }
    }
}

/// The root to sign with.
struct Root {
    cert_pem: String,
    key: Option<KeyPair>,
    not_after: OffsetDateTime,
}

/// What happens to one cluster's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Key and certificate exist: only fill in missing copies of the root and the chain.
    Keep,
    /// The key exists without its certificate: issue one for it.
    CertifyKey,
    /// Nothing there: new key and certificate.
    New,
    /// `--rotate`: replace key and certificate.
    Rotate,
}

/// Makes what is missing in `dir` for these clusters.
pub fn generate(dir: &Path, clusters: &[&str], options: &Options) -> Result<Generated, StoreError> {
    if let Some(tree) = compiled_tree_around(dir) {
        return Err(StoreError::Refused(format!(
            "{} is inside the compiled tree {} (it holds {MANIFEST}): private keys must never land in the committed output; choose a directory outside it, e.g. ~/.meshplan/certs/MESH",
            dir.display(),
            tree.display()
        )));
    }
    let mut warnings = Vec::new();
    let mut written = Vec::new();
    ensure_private_dir(dir, &mut warnings)?;
    let steps = plan_steps(dir, clusters, options)?;
    let mut root = load_root(dir, options)?;
    let needs_root_key = steps.iter().any(|(_, step)| *step != Step::Keep);
    let generate_root = root.is_none();
    if needs_root_key && root.as_ref().is_some_and(|r| r.key.is_none()) {
        return Err(StoreError::Refused(format!(
            "{} has no {ROOT_KEY} to sign new intermediates with (the root was brought in, or its key was moved away): pass it with --root-cert FILE --root-key FILE",
            dir.display()
        )));
    }
    let fresh = steps
        .iter()
        .filter(|(_, s)| matches!(s, Step::New | Step::Rotate))
        .count();
    let mut keys =
        issue::generate_keys(options.algorithm, fresh + usize::from(generate_root)).into_iter();
    let mut next_key = |what: &str| -> Result<KeyPair, StoreError> {
        keys.next()
            .ok_or_else(|| {
                StoreError::Refused("internal error: fewer keys than planned".to_owned())
            })?
            .map_err(issue_err(what))
    };
    let outcome = if generate_root {
        let key = next_key(ROOT_KEY)?;
        let validity = Validity::days_from_now(options.root_days);
        let cert_pem = issue::self_sign(issue::root_params(&key, validity), &key)
            .map_err(issue_err(ROOT_CERT))?;
        written.push(write_new(
            &dir.join(ROOT_KEY),
            key.serialize_pem().as_bytes(),
            0o600,
        )?);
        written.push(write_new(&dir.join(ROOT_CERT), cert_pem.as_bytes(), 0o644)?);
        root = Some(Root {
            cert_pem,
            key: Some(key),
            not_after: validity.not_after,
        });
        RootOutcome::Generated
    } else if options.root.is_some() {
        RootOutcome::Brought
    } else {
        RootOutcome::Kept
    };
    let root = root.ok_or_else(|| StoreError::Refused("internal error: no root".to_owned()))?;
    if options.root.is_some() && !dir.join(ROOT_CERT).exists() {
        written.push(write_new(
            &dir.join(ROOT_CERT),
            root.cert_pem.as_bytes(),
            0o644,
        )?);
    }
    let mut done = Generated {
        root: outcome,
        issued: Vec::new(),
        reissued: Vec::new(),
        rotated: None,
        kept: Vec::new(),
        warnings: Vec::new(),
        written: Vec::new(),
    };
    for (cluster, step) in steps {
        let key = match step {
            Step::New | Step::Rotate => Some(next_key(&format!("{cluster}/ca-key.pem"))?),
            _ => None,
        };
        written.extend(write_cluster(dir, cluster, step, key, &root, options)?);
        let list = match step {
            Step::Keep => &mut done.kept,
            Step::CertifyKey => &mut done.reissued,
            Step::New => &mut done.issued,
            Step::Rotate => {
                done.rotated = Some(cluster.to_owned());
                continue;
            }
        };
        list.push(cluster.to_owned());
    }
    warnings.extend(git_warning(dir));
    done.warnings = warnings;
    done.written = written;
    Ok(done)
}

/// Creates `dir` (0700) or, when it exists, warns if others may read it.
fn ensure_private_dir(dir: &Path, warnings: &mut Vec<String>) -> Result<(), StoreError> {
    if dir.is_dir() {
        let mode = fs::metadata(dir).map_err(io(dir))?.permissions().mode();
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{} can be read by other users (mode {:o}): `chmod 700 {}`",
                dir.display(),
                mode & 0o777,
                dir.display()
            ));
        }
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    // The umask may have removed bits, never added them; set exactly 0700 anyway.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Decides every cluster's step before anything is written.
fn plan_steps<'a>(
    dir: &Path,
    clusters: &[&'a str],
    options: &Options,
) -> Result<Vec<(&'a str, Step)>, StoreError> {
    let mut steps = Vec::new();
    for cluster in clusters {
        let has = |file: &str| dir.join(cluster).join(file).exists();
        let step = if options.rotate.as_deref() == Some(*cluster) {
            Step::Rotate
        } else {
            match (has("ca-key.pem"), has("ca-cert.pem")) {
                (true, true) => Step::Keep,
                (true, false) => Step::CertifyKey,
                (false, false) => Step::New,
                (false, true) => {
                    return Err(StoreError::Refused(format!(
                        "{} exists without its key ca-key.pem: restore the key, or issue a new intermediate with --rotate {cluster}",
                        dir.join(cluster).join("ca-cert.pem").display()
                    )));
                }
            }
        };
        steps.push((*cluster, step));
    }
    Ok(steps)
}

fn read_text(path: &Path) -> Result<String, StoreError> {
    fs::read_to_string(path).map_err(io(path))
}

/// The DER of the first PEM block of a text.
fn first_der(pem: &str) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .next()?
        .ok()
        .map(|block| block.contents)
}

fn not_after(cert_pem: &str, what: &str) -> Result<OffsetDateTime, StoreError> {
    let der = first_der(cert_pem)
        .ok_or_else(|| StoreError::Refused(format!("{what}: not a PEM certificate")))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|err| StoreError::Refused(format!("{what}: not a certificate: {err}")))?;
    if !cert.is_ca() {
        return Err(StoreError::Refused(format!(
            "{what} is not a CA certificate (no CA:TRUE)"
        )));
    }
    Ok(cert.validity().not_after.to_datetime())
}

fn check_pair(cert_pem: &str, key: &KeyPair, what: &str) -> Result<(), StoreError> {
    let der = first_der(cert_pem)
        .ok_or_else(|| StoreError::Refused(format!("{what}: not a PEM certificate")))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|err| StoreError::Refused(format!("{what}: {err}")))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(StoreError::Refused(format!(
            "{what}: the key is not the certificate's"
        )));
    }
    Ok(())
}

/// The root already there or brought in; `None` when one must be made.
fn load_root(dir: &Path, options: &Options) -> Result<Option<Root>, StoreError> {
    let existing_cert = dir.join(ROOT_CERT);
    let existing_key = dir.join(ROOT_KEY);
    if let Some(brought) = &options.root {
        let key = issue::parse_key(&brought.key_pem).map_err(issue_err(&brought.key_path))?;
        let what = format!("{} and {}", brought.cert_path, brought.key_path);
        check_pair(&brought.cert_pem, &key, &what)?;
        let not_after = not_after(&brought.cert_pem, &brought.cert_path)?;
        if existing_cert.exists()
            && !same_certificate(&read_text(&existing_cert)?, &brought.cert_pem)
        {
            return Err(StoreError::Refused(format!(
                "{} holds another root than {}: the clusters would stop trusting each other; use a new DIR for a new root",
                existing_cert.display(),
                brought.cert_path
            )));
        }
        return Ok(Some(Root {
            cert_pem: brought.cert_pem.clone(),
            key: Some(key),
            not_after,
        }));
    }
    let key = if existing_key.exists() {
        let pem = read_text(&existing_key)?;
        Some(issue::parse_key(&pem).map_err(issue_err(&existing_key.display().to_string()))?)
    } else {
        None
    };
    if !existing_cert.exists() {
        return match key {
            Some(_) => Err(StoreError::Refused(format!(
                "{} exists without {ROOT_CERT}: restore the certificate (meshplan never makes a second root certificate for a key it did not certify)",
                existing_key.display()
            ))),
            None => Ok(None),
        };
    }
    let cert_pem = read_text(&existing_cert)?;
    let what = existing_cert.display().to_string();
    if let Some(key) = &key {
        check_pair(&cert_pem, key, &format!("{what} and {ROOT_KEY}"))?;
    }
    let not_after = not_after(&cert_pem, &what)?;
    Ok(Some(Root {
        cert_pem,
        key,
        not_after,
    }))
}

/// Whether two PEM texts hold the same first certificate (whitespace aside).
fn same_certificate(a: &str, b: &str) -> bool {
    match (first_der(a), first_der(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Writes what a cluster's step needs; returns the files written.
fn write_cluster(
    dir: &Path,
    cluster: &str,
    step: Step,
    new_key: Option<KeyPair>,
    root: &Root,
    options: &Options,
) -> Result<Vec<PathBuf>, StoreError> {
    let home = dir.join(cluster);
    if !home.is_dir() {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&home)
            .map_err(io(&home))?;
    }
    let [ca_cert, ca_key, root_cert, cert_chain] = CLUSTER_FILES.map(|f| home.join(f));
    let mut written = Vec::new();
    let issue_for = |key: &KeyPair| -> Result<String, StoreError> {
        let root_key = root.key.as_ref().ok_or_else(|| {
            StoreError::Refused(format!("no root key to sign {cluster}'s intermediate with"))
        })?;
        let validity = Validity::days_from_now(options.intermediate_days).ending_by(root.not_after);
        let what = format!("{cluster}/ca-cert.pem");
        let params =
            issue::intermediate_params(cluster, key, validity).map_err(issue_err(&what))?;
        issue::sign(params, key, &root.cert_pem, root_key).map_err(issue_err(&what))
    };
    let chain = |cert_pem: &str| format!("{}\n{}", cert_pem.trim_end(), root.cert_pem.trim_start());
    match step {
        Step::Keep => {
            if !root_cert.exists() {
                written.push(write_new(&root_cert, root.cert_pem.as_bytes(), 0o644)?);
            }
            if !cert_chain.exists() {
                let cert_pem = read_text(&ca_cert)?;
                written.push(write_new(&cert_chain, chain(&cert_pem).as_bytes(), 0o644)?);
            }
        }
        Step::CertifyKey => {
            let key = issue::parse_key(&read_text(&ca_key)?)
                .map_err(issue_err(&ca_key.display().to_string()))?;
            let cert_pem = issue_for(&key)?;
            written.push(write_new(&ca_cert, cert_pem.as_bytes(), 0o644)?);
            // The chain and root copy belong to the certificate just issued.
            written.push(replace(&cert_chain, chain(&cert_pem).as_bytes(), 0o644)?);
            written.push(replace(&root_cert, root.cert_pem.as_bytes(), 0o644)?);
        }
        Step::New | Step::Rotate => {
            let key =
                new_key.ok_or_else(|| StoreError::Refused("internal error: no key".to_owned()))?;
            let cert_pem = issue_for(&key)?;
            let key_pem = key.serialize_pem();
            let put = if step == Step::New {
                write_new
            } else {
                replace
            };
            // The key first: a run cut short leaves a key without a certificate, which the
            // next run certifies, never a certificate without its key.
            written.push(put(&ca_key, key_pem.as_bytes(), 0o600)?);
            written.push(put(&ca_cert, cert_pem.as_bytes(), 0o644)?);
            written.push(replace(&cert_chain, chain(&cert_pem).as_bytes(), 0o644)?);
            written.push(replace(&root_cert, root.cert_pem.as_bytes(), 0o644)?);
        }
    }
    Ok(written)
}

/// Writes a file that must not exist yet, with `mode` from its creation on.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    // No fsync: it made 400 files take seconds; a file cut short by a crash is not PEM, which
    // the next run and `check --certs` report rather than use.
    file.write_all(bytes).map_err(io(path))?;
    Ok(path.to_path_buf())
}

/// Replaces a file whole (a temporary file renamed over it), with `mode`.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temp);
    write_new(&temp, bytes, mode)?;
    fs::rename(&temp, path).map_err(io(path))?;
    Ok(path.to_path_buf())
}
