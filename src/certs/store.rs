//! `meshplan certs`: what a run makes in the CA directory, decided before anything is written.
//!
//! ```text
//! DIR/                 0700
//!   root-cert.pem
//!   root-key.pem       0600 (absent when the root was brought with --root-cert/--root-key)
//!   <cluster>/         0700, one per cluster of the plan
//!     ca-cert.pem  ca-key.pem (0600)  root-cert.pem  cert-chain.pem
//!   .meshplan-lock     the lock of a run (0600, empty)
//! ```
//!
//! Safe to run again: a file that exists is never rewritten, so a second run changes no byte
//! and a new cluster only adds its own directory. A key is replaced only by `--rotate` for the
//! one cluster named. Everything is decided and checked before the first write, so a refusal
//! writes nothing; the files are then written all or nothing ([`super::dir`]). Nothing found in
//! DIR is used unless it proves itself: owners and modes ([`super::dir::CaDir::audit`]), a root
//! that may sign ([`super::check::root_findings`]), kept keys that are their certificates' and
//! certificates issued by the root that signs the new ones.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::check::{self, PrivateKey, Read};
use super::dir::{CaDir, Entry, NewFile, Step};
use super::issue::{self, IssueError, Validity};
use super::{CLUSTER_FILES, Options, ROOT_CERT, ROOT_KEY, fingerprint};
use crate::fsread::{self, CERT_FILE_CAP, ReadError};
use crate::userdirs;

/// The marker `meshplan build` leaves at the top of a compiled tree.
const MANIFEST: &str = ".meshplan-manifest";

/// Why `meshplan certs` wrote nothing (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule of safety: keys inside a compiled tree, a key that would be lost, two roots.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or looked at.
    #[error("{path}: {}", fsread::plain(source))]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file of the run could not be written before its commit point: nothing changed.
    #[error(
        "cannot write {path}: {}; nothing in the CA directory changed (a run writes its files aside and moves them in only when all are written)",
        fsread::plain(source)
    )]
    Staging {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file could not be moved into place after the commit point.
    #[error(
        "cannot move {path} into place: {}; the rest of this run waits in .meshplan-commit: run `meshplan certs` again (any plan) to finish it",
        fsread::plain(source)
    )]
    Commit {
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

fn issue_err(what: &str) -> impl FnOnce(IssueError) -> StoreError + '_ {
    move |source| StoreError::Issue {
        what: what.to_owned(),
        source,
    }
}

fn refused(why: String) -> StoreError {
    StoreError::Refused(why)
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
    /// Files an interrupted run had made, moved into place by this one.
    pub finished: Vec<String>,
    /// Temporary files an earlier version left, removed.
    pub leftovers_removed: usize,
}

/// Refuses a DIR inside a compiled tree, `/` and a home directory; nothing is opened.
pub fn check_out_path(dir: &Path) -> Result<(), StoreError> {
    check_out_path_for(dir, "~/.meshplan/certs/MESH")
}

/// [`check_out_path`], whose refusals suggest `instead` (a complete command, when the caller
/// knows the plan and the mesh).
pub fn check_out_path_for(dir: &Path, instead: &str) -> Result<(), StoreError> {
    if let Some(tree) = compiled_tree_around(dir) {
        return Err(refused(format!(
            "{} is inside the compiled tree {} (it holds {MANIFEST}): private keys must never land in the committed output; choose a directory outside it, e.g. {instead}",
            dir.display(),
            tree.display()
        )));
    }
    if let Some(what) = userdirs::root_or_home(dir) {
        return Err(refused(format!(
            "refusing to use {what} {} as the CA directory: the mesh's keys need a directory of their own, such as {instead}",
            dir.display()
        )));
    }
    Ok(())
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

/// A CA directory opened for `check --certs`: its files, read safely, and what the audit of
/// owners, modes and file types found.
pub struct Inspected {
    ca: Result<CaDir, String>,
    missing: bool,
    /// Owners, modes, links and an interrupted run, as findings to report.
    pub problems: Vec<super::dir::Problem>,
}

impl Inspected {
    /// Opens `dir` and audits it for these clusters.
    pub fn open(dir: &Path, clusters: &[&str]) -> Inspected {
        match CaDir::open_for_reading(dir) {
            Ok(ca) => {
                let mut problems = ca.audit(clusters);
                let plain = dir.components().collect::<PathBuf>();
                if std::fs::symlink_metadata(&plain).is_ok_and(|m| m.file_type().is_symlink()) {
                    // Read through (the user named it), but `certs` would refuse it.
                    problems.insert(
                        0,
                        super::dir::Problem {
                            path: ca.show(""),
                            cluster: None,
                            kind: super::dir::ProblemKind::NotPlain {
                                found: "a symbolic link",
                                expected: "a real directory",
                            },
                        },
                    );
                }
                Inspected {
                    problems,
                    ca: Ok(ca),
                    missing: false,
                }
            }
            Err(err) => Inspected {
                missing: matches!(err, ReadError::NotFound),
                ca: Err(err.to_string()),
                problems: Vec::new(),
            },
        }
    }

    /// Reads `root-cert.pem` or `cluster/file` for [`check::check`].
    pub fn read(&self, rel: &str) -> Read {
        match &self.ca {
            Ok(ca) => match ca.read(rel) {
                Ok(bytes) => Read::Bytes(bytes),
                Err(ReadError::NotFound) => Read::Missing,
                Err(err) => Read::Unreadable(err.to_string()),
            },
            Err(_) if self.missing => Read::Missing,
            Err(reason) => Read::Unreadable(reason.clone()),
        }
    }
}

/// Reads `--root-cert` and `--root-key` (capped, regular files; links followed, as the user
/// named them). A key others can read is refused: whoever could read it holds the mesh.
pub fn read_brought(cert: &Path, key: &Path) -> Result<super::BroughtRoot, StoreError> {
    let read = |path: &Path| {
        fsread::read_path(path, CERT_FILE_CAP)
            .map_err(|err| refused(format!("cannot read `{}`: {err}", path.display())))
    };
    let (cert_bytes, _) = read(cert)?;
    let (key_bytes, key_stat) = read(key)?;
    let mode = rustix::fs::Mode::from_raw_mode(key_stat.st_mode).bits() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refused(format!(
            "{} can be read by other users (mode {mode:o}): `chmod 600 {}` (a Kubernetes Secret volume: `defaultMode: 0400`); whoever could read it may hold the mesh's root",
            key.display(),
            key.display()
        )));
    }
    let text = |bytes: Vec<u8>, path: &Path| {
        String::from_utf8(bytes).map_err(|_| {
            refused(format!(
                "{} is not PEM text (a DER file converts with `openssl x509 -inform der`)",
                path.display()
            ))
        })
    };
    Ok(super::BroughtRoot {
        cert_path: cert.display().to_string(),
        cert_pem: text(cert_bytes, cert)?,
        key_path: key.display().to_string(),
        key_pem: text(key_bytes, key)?,
    })
}

/// The root to sign with.
struct Root {
    cert_pem: String,
    der: Vec<u8>,
    key: Option<KeyPair>,
    not_after: OffsetDateTime,
    /// Where it comes from, for messages.
    source: String,
}

impl Root {
    fn cert(&self) -> Result<X509Certificate<'_>, StoreError> {
        X509Certificate::from_der(&self.der)
            .map(|(_, cert)| cert)
            .map_err(|err| refused(format!("{}: {err}", self.source)))
    }
}

/// What happens to one cluster's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
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
    generate_with(dir, clusters, options, &mut |_| Ok(()))
}

/// [`generate`], calling `hook` before each file is written and moved (the tests make it fail
/// there: a full disk, a run killed half-way).
pub fn generate_with(
    dir: &Path,
    clusters: &[&str],
    options: &Options,
    hook: &mut dyn FnMut(Step) -> io::Result<()>,
) -> Result<Generated, StoreError> {
    check_out_path(dir)?;
    let mut warnings = Vec::new();
    // A root brought in is checked before DIR is made: a refusal leaves nothing behind.
    let brought = options
        .root
        .as_ref()
        .map(|root| brought_root(root, &mut warnings))
        .transpose()?;
    let ca = CaDir::open_for_writing(dir)?;
    let result = generate_locked(&ca, clusters, options, brought, hook, warnings);
    if result.is_err() {
        ca.discard_if_created();
    }
    let mut done = result?;
    done.warnings.extend(git_warning(dir));
    Ok(done)
}

fn generate_locked(
    ca: &CaDir,
    clusters: &[&str],
    options: &Options,
    brought: Option<Root>,
    hook: &mut dyn FnMut(Step) -> io::Result<()>,
    mut warnings: Vec<String>,
) -> Result<Generated, StoreError> {
    let _lock = ca.lock()?;
    // Before anything of DIR is used or moved: owners, modes, links. An interrupted run is
    // not a reason to stop; finishing it is the first thing a run does.
    let problems = ca.audit(clusters);
    refuse_unsafe(
        problems
            .iter()
            .filter(|p| p.kind != super::dir::ProblemKind::Interrupted),
        &mut warnings,
    )?;
    let recovered = ca.recover(clusters, hook)?;
    let steps = plan_steps(ca, clusters, options)?;
    let signs = steps.iter().any(|(_, step)| *step != Action::Keep);
    let is_brought = brought.is_some();
    let existing = match brought {
        Some(root) => Some(root_beside_brought(ca, root)?),
        None => load_root(ca, clusters)?,
    };
    if signs && existing.as_ref().is_some_and(|r| r.key.is_none()) {
        return Err(refused(format!(
            "{} has no {ROOT_KEY} to sign new intermediates with (the root was brought in, or its key was moved away): pass it with --root-cert FILE --root-key FILE",
            ca.show("")
        )));
    }
    if signs
        && !is_brought
        && let Some(root) = &existing
    {
        may_sign(root, &mut warnings)?;
    }
    // Every kept cluster proves itself before a key is generated, so a refusal is quick.
    let mut ready = Vec::new();
    for (cluster, step) in steps {
        let prepared = match (step, &existing) {
            (Action::Keep, Some(root)) => Ready::Keep(check_kept(ca, cluster, root)?),
            (Action::CertifyKey, Some(_)) => Ready::Certify(kept_key(ca, cluster)?),
            (Action::New | Action::Rotate, _) => Ready::Fresh,
            (_, None) => {
                return Err(refused(format!(
                    "internal error: {cluster} keeps files but there is no root"
                )));
            }
        };
        ready.push((cluster, step, prepared));
    }
    let fresh = ready
        .iter()
        .filter(|(_, _, r)| matches!(r, Ready::Fresh))
        .count();
    let count = fresh + usize::from(existing.is_none());
    let mut keys = issue::generate_keys(options.algorithm, count, options.progress).into_iter();
    let mut next_key = |what: &str| -> Result<KeyPair, StoreError> {
        keys.next()
            .ok_or_else(|| refused("internal error: fewer keys than planned".to_owned()))?
            .map_err(issue_err(what))
    };
    let mut files = Vec::new();
    let (root, outcome) = match existing {
        Some(root) if is_brought => {
            if ca.entry(ROOT_CERT)? == Entry::Missing {
                files.push(top_file(ROOT_CERT, root.cert_pem.as_bytes(), 0o644));
            }
            (root, RootOutcome::Brought)
        }
        Some(root) => (root, RootOutcome::Kept),
        None => {
            let root = new_root(next_key(ROOT_KEY)?, options)?;
            if let Some(key) = &root.key {
                files.push(top_file(ROOT_KEY, key.serialize_pem().as_bytes(), 0o600));
            }
            files.push(top_file(ROOT_CERT, root.cert_pem.as_bytes(), 0o644));
            (root, RootOutcome::Generated)
        }
    };
    let mut done = Generated {
        root: outcome,
        issued: Vec::new(),
        reissued: Vec::new(),
        rotated: None,
        kept: Vec::new(),
        warnings: Vec::new(),
        written: Vec::new(),
        finished: recovered.finished,
        leftovers_removed: recovered.removed,
    };
    for (cluster, step, prepared) in ready {
        let prepared = match prepared {
            Ready::Fresh => Ready::New(next_key(&format!("{cluster}/ca-key.pem"))?),
            other => other,
        };
        files.extend(cluster_files(cluster, prepared, &root, options)?);
        match step {
            Action::Keep => done.kept.push(cluster.to_owned()),
            Action::CertifyKey => done.reissued.push(cluster.to_owned()),
            Action::New => done.issued.push(cluster.to_owned()),
            Action::Rotate => done.rotated = Some(cluster.to_owned()),
        }
    }
    done.written = ca
        .write_all(&files, hook)?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    done.warnings = warnings;
    Ok(done)
}

/// What a cluster's step starts from, read and checked before any key is generated.
enum Ready {
    /// Kept: its files proved themselves.
    Keep(Kept),
    /// Its kept key, to certify.
    Certify(KeyPair),
    /// A new key is to be made.
    Fresh,
    /// The new key, made.
    New(KeyPair),
}

/// A kept cluster: its certificate, and which copies it lacks.
struct Kept {
    cert_pem: String,
    has_root_copy: bool,
    has_chain: bool,
}

fn top_file(name: &'static str, bytes: &[u8], mode: u32) -> NewFile {
    NewFile {
        cluster: None,
        name,
        bytes: bytes.to_vec(),
        mode,
    }
}

/// Refuses what the audit found unsafe (all of it, one per line); the rest become warnings.
fn refuse_unsafe<'a>(
    problems: impl Iterator<Item = &'a super::dir::Problem>,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    let (errors, notes): (Vec<_>, Vec<_>) = problems.partition(|p| p.kind.is_error());
    warnings.extend(notes.iter().map(|p| check::describe(p)));
    if errors.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = errors.iter().map(|p| check::describe(p)).collect();
    Err(refused(lines.join("\n")))
}

/// Decides every cluster's step before anything is written.
fn plan_steps<'a>(
    ca: &CaDir,
    clusters: &[&'a str],
    options: &Options,
) -> Result<Vec<(&'a str, Action)>, StoreError> {
    let mut steps = Vec::new();
    for cluster in clusters {
        let has = |file: &str| -> Result<bool, StoreError> {
            let rel = format!("{cluster}/{file}");
            match ca.entry(&rel)? {
                Entry::Missing => Ok(false),
                Entry::File => Ok(true),
                Entry::Dir | Entry::Other(_) => Err(refused(format!(
                    "{} is not a regular file: meshplan keeps the cluster's files only as regular files in a real directory; move it away",
                    ca.show(&rel)
                ))),
            }
        };
        let step = if options.rotate.as_deref() == Some(*cluster) {
            Action::Rotate
        } else {
            match (has("ca-key.pem")?, has("ca-cert.pem")?) {
                (true, true) => Action::Keep,
                (true, false) => Action::CertifyKey,
                (false, false) => Action::New,
                (false, true) => {
                    return Err(refused(format!(
                        "{} exists without its key ca-key.pem: restore the key, or issue a new intermediate with --rotate {cluster}",
                        ca.show(&format!("{cluster}/ca-cert.pem"))
                    )));
                }
            }
        };
        steps.push((*cluster, step));
    }
    Ok(steps)
}

/// A file of DIR, capped and regular; `None` when it does not exist.
fn read_opt(ca: &CaDir, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match ca.read(rel) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadError::NotFound) => Ok(None),
        Err(err) => Err(refused(format!("cannot read {}: {err}", ca.show(rel)))),
    }
}

/// A root from its certificate's PEM (exactly one certificate) and key.
fn root_from(cert_pem: String, key: Option<KeyPair>, source: String) -> Result<Root, StoreError> {
    let der = check::exactly_one_certificate(cert_pem.as_bytes()).map_err(|reason| {
        refused(format!(
            "{source} must hold exactly one certificate, the root's: {reason}"
        ))
    })?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|err| refused(format!("{source}: not a certificate: {err}")))?;
    if let Some(key) = &key
        && cert.public_key().raw != key.subject_public_key_info().as_slice()
    {
        return Err(refused(format!(
            "{source}: the key is not the certificate's"
        )));
    }
    let not_after = cert.validity().not_after.to_datetime();
    Ok(Root {
        cert_pem,
        der,
        key,
        not_after,
        source,
    })
}

/// Refuses a root that may not sign intermediates (the same rules as `check --certs`: CA,
/// self-signed, keyCertSign, no pathlen:0, valid now); passes its warnings on.
fn may_sign(root: &Root, warnings: &mut Vec<String>) -> Result<(), StoreError> {
    let cert = root.cert()?;
    let findings = check::root_findings("the root", &root.source, &cert, OffsetDateTime::now_utc());
    let (errors, notes): (Vec<_>, Vec<_>) = findings.iter().partition(|f| !check::is_warning(f));
    warnings.extend(notes.iter().map(|f| f.to_string()));
    if errors.is_empty() {
        return Ok(());
    }
    let reasons: Vec<String> = errors.iter().map(|f| f.to_string()).collect();
    Err(refused(format!(
        "{} cannot sign the mesh's intermediates: {}",
        root.source,
        reasons.join("; ")
    )))
}

/// `--root-cert`/`--root-key`, checked as the mesh's root must be.
fn brought_root(
    brought: &super::BroughtRoot,
    warnings: &mut Vec<String>,
) -> Result<Root, StoreError> {
    let key = issue::parse_key(&brought.key_pem).map_err(issue_err(&brought.key_path))?;
    let root = root_from(
        brought.cert_pem.clone(),
        Some(key),
        brought.cert_path.clone(),
    )?;
    may_sign(&root, warnings)?;
    Ok(root)
}

/// A brought root next to what DIR holds: DIR's root, if any, must be the same certificate.
fn root_beside_brought(ca: &CaDir, root: Root) -> Result<Root, StoreError> {
    if let Some(bytes) = read_opt(ca, ROOT_CERT)? {
        let same = check::first_certificate(&bytes).is_some_and(|der| der == root.der);
        if !same {
            return Err(refused(format!(
                "{} holds another root than {}: the clusters would stop trusting each other; use a new DIR for a new root",
                ca.show(ROOT_CERT),
                root.source
            )));
        }
    } else if ca.entry(ROOT_KEY)? != Entry::Missing {
        return Err(refused(format!(
            "{} exists without {ROOT_CERT}: meshplan cannot tell whether it is the key of {}; move it away, or put its certificate back",
            ca.show(ROOT_KEY),
            root.source
        )));
    }
    Ok(root)
}

/// The clusters (plan's or not) whose directories in DIR hold any CA file.
fn clusters_with_files(ca: &CaDir) -> Result<Vec<String>, StoreError> {
    let mut holders = Vec::new();
    for dir in ca.subdirectories()? {
        for file in CLUSTER_FILES {
            if ca.entry(&format!("{dir}/{file}"))? != Entry::Missing {
                holders.push(dir);
                break;
            }
        }
    }
    Ok(holders)
}

/// `a, b, c and 4 more`.
fn some(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    match names.len().saturating_sub(5) {
        0 => shown.join(", "),
        rest => format!("{} and {rest} more", shown.join(", ")),
    }
}

/// The root already in DIR; `None` when one may be made (DIR holds no cluster's files).
fn load_root(ca: &CaDir, clusters: &[&str]) -> Result<Option<Root>, StoreError> {
    let key_bytes = read_opt(ca, ROOT_KEY)?;
    let cert_bytes = read_opt(ca, ROOT_CERT)?;
    match (key_bytes, cert_bytes) {
        (None, None) => {
            let holders = clusters_with_files(ca)?;
            if holders.is_empty() {
                return Ok(None);
            }
            let trusted = holders
                .iter()
                .find_map(|h| read_opt(ca, &format!("{h}/{ROOT_CERT}")).ok().flatten())
                .and_then(|bytes| check::first_certificate(&bytes))
                .map(|der| format!(" (their root-cert.pem is SHA256 {})", fingerprint(&der)))
                .unwrap_or_default();
            Err(refused(format!(
                "{} holds the CA files of {} but no {ROOT_CERT} or {ROOT_KEY}: a new root would split the mesh, those clusters trusting their root{trusted} and new ones another. Bring the clusters' root back: pass it with --root-cert FILE --root-key FILE (from where you keep it, e.g. a vault), or put {ROOT_CERT} and {ROOT_KEY} back in DIR",
                ca.show(""),
                some(&holders)
            )))
        }
        (Some(key_bytes), None) => Err(key_without_cert(ca, clusters, &key_bytes)?),
        (key_bytes, Some(cert_bytes)) => {
            let what = ca.show(ROOT_CERT);
            let key = match key_bytes {
                Some(bytes) => Some(
                    std::str::from_utf8(&bytes)
                        .map_err(|err| err.to_string())
                        .and_then(|pem| issue::parse_key(pem).map_err(|err| err.to_string()))
                        .map_err(|reason| {
                            refused(format!(
                                "{} is not a usable private key ({reason}): put the root's key back from your copy; without one, move it away (DIR then keeps its clusters, but new intermediates need the root's key with --root-cert FILE --root-key FILE)",
                                ca.show(ROOT_KEY)
                            ))
                        })?,
                ),
                None => None,
            };
            let cert_pem = String::from_utf8(cert_bytes).unwrap_or_default();
            match root_from(cert_pem, key, what) {
                Ok(root) => Ok(Some(root)),
                Err(err) => Err(broken_root_cert(ca, clusters, err)?),
            }
        }
    }
}

/// Why a `root-cert.pem` that is not a usable root is refused, with a copy to restore it from
/// when a cluster holds one that fits DIR's key.
fn broken_root_cert(
    ca: &CaDir,
    clusters: &[&str],
    err: StoreError,
) -> Result<StoreError, StoreError> {
    let Some(key_bytes) = read_opt(ca, ROOT_KEY)? else {
        return Ok(refused(format!(
            "{err}: put the mesh's root certificate back (each cluster's root-cert.pem holds a copy)"
        )));
    };
    let copy = matching_copy(ca, clusters, &key_bytes)?;
    Ok(refused(match copy {
        Some(rel) => format!(
            "{err}: {} holds the certificate of {}: `cp {} {}`, then run again",
            ca.show(&rel),
            ca.show(ROOT_KEY),
            ca.show(&rel),
            ca.show(ROOT_CERT)
        ),
        None => format!("{err}: put the mesh's root certificate back from your copy"),
    }))
}

/// A cluster's `root-cert.pem` whose first certificate is that of the root key `key_bytes`.
fn matching_copy(
    ca: &CaDir,
    clusters: &[&str],
    key_bytes: &[u8],
) -> Result<Option<String>, StoreError> {
    let Some(public) = std::str::from_utf8(key_bytes)
        .ok()
        .and_then(|pem| issue::parse_key(pem).ok())
        .map(|key| key.subject_public_key_info())
    else {
        return Ok(None);
    };
    let mut holders = clusters_with_files(ca)?;
    holders.extend(clusters.iter().map(|c| (*c).to_owned()));
    for holder in holders {
        let rel = format!("{holder}/{ROOT_CERT}");
        let Some(der) = read_opt(ca, &rel)
            .ok()
            .flatten()
            .and_then(|b| check::first_certificate(&b))
        else {
            continue;
        };
        if X509Certificate::from_der(&der).is_ok_and(|(_, cert)| cert.public_key().raw == public) {
            return Ok(Some(rel));
        }
    }
    Ok(None)
}

/// Why `root-key.pem` without `root-cert.pem` is refused, with the way out that exists.
fn key_without_cert(
    ca: &CaDir,
    clusters: &[&str],
    key_bytes: &[u8],
) -> Result<StoreError, StoreError> {
    let key_file = ca.show(ROOT_KEY);
    if let Some(rel) = matching_copy(ca, clusters, key_bytes)? {
        return Ok(refused(format!(
            "{key_file} exists without {ROOT_CERT}; {} holds its certificate: `cp {} {}`, then run again",
            ca.show(&rel),
            ca.show(&rel),
            ca.show(ROOT_CERT)
        )));
    }
    if clusters_with_files(ca)?.is_empty() {
        return Ok(refused(format!(
            "{key_file} exists without {ROOT_CERT} (a run cut short by an earlier meshplan): no cluster's files are in DIR, so nothing was issued from it; remove it (`rm {key_file}`) and run again to make the root"
        )));
    }
    Ok(refused(format!(
        "{key_file} exists without {ROOT_CERT}, and no cluster's root-cert.pem is its certificate: put the certificate back from where you keep it, or move {key_file} away and bring the clusters' root with --root-cert FILE --root-key FILE"
    )))
}

/// A new root: a self-signed certificate for `key`.
fn new_root(key: KeyPair, options: &Options) -> Result<Root, StoreError> {
    let validity = Validity::days_from_now(options.root_days);
    let params = if options.crl_sign {
        issue::root_params_crl(&key, validity)
    } else {
        issue::root_params(&key, validity)
    };
    let cert_pem = issue::self_sign(params, &key).map_err(issue_err(ROOT_CERT))?;
    root_from(cert_pem, Some(key), ROOT_CERT.to_owned())
}

/// Checks a kept cluster's files prove themselves: every file parses, the key is the
/// certificate's, the certificate was issued by the root, the root copy holds the root.
/// Returns the certificate's PEM and which copies are missing.
fn check_kept(ca: &CaDir, cluster: &str, root: &Root) -> Result<Kept, StoreError> {
    let file = |name: &str| format!("{cluster}/{name}");
    let shown = |name: &str| ca.show(&file(name));
    let rotate = format!("`meshplan certs PLAN --out DIR --rotate {cluster}`");
    let key_bytes = read_opt(ca, &file("ca-key.pem"))?.unwrap_or_default();
    let key = PrivateKey::parse(&key_bytes).map_err(|reason| {
        refused(format!(
            "{} is not a usable private key ({reason}): issue a new intermediate with {rotate} (it replaces the key and its certificate)",
            shown("ca-key.pem")
        ))
    })?;
    let cert_bytes = read_opt(ca, &file("ca-cert.pem"))?.unwrap_or_default();
    let away = |name: &str, reason: String| {
        refused(format!(
            "{} is not usable ({reason}): move it away and run again (meshplan writes it again from the kept key and the root), or issue a new intermediate with {rotate}",
            shown(name)
        ))
    };
    let certs = check::certificates(&cert_bytes).map_err(|reason| away("ca-cert.pem", reason))?;
    if certs.len() > 1 {
        return Err(away(
            "ca-cert.pem",
            format!(
                "it holds {} certificates where the intermediate alone belongs",
                certs.len()
            ),
        ));
    }
    let (_, cert) =
        X509Certificate::from_der(&certs[0]).map_err(|err| away("ca-cert.pem", err.to_string()))?;
    if !key.is_key_of(&cert) {
        return Err(refused(format!(
            "{} is not the key of {}: restore the matching key, or issue a new intermediate with {rotate}",
            shown("ca-key.pem"),
            shown("ca-cert.pem")
        )));
    }
    if !check::issued_by(&cert, &root.cert()?) {
        return Err(refused(format!(
            "{} was not issued by the root of this run ({}, SHA256 {}): adding to it would split the mesh. See which root each cluster trusts with `meshplan check PLAN --certs DIR`; then bring that root with --root-cert FILE --root-key FILE, or issue this cluster's intermediate again with {rotate}",
            shown("ca-cert.pem"),
            root.source,
            fingerprint(&root.der)
        )));
    }
    let root_copy = read_opt(ca, &file(ROOT_CERT))?;
    if let Some(bytes) = &root_copy {
        let copies = check::certificates(bytes).map_err(|reason| away(ROOT_CERT, reason))?;
        if !copies.contains(&root.der) {
            return Err(away(
                ROOT_CERT,
                format!("it does not hold the root {}", fingerprint(&root.der)),
            ));
        }
    }
    let chain = read_opt(ca, &file("cert-chain.pem"))?;
    if let Some(bytes) = &chain {
        check::certificates(bytes).map_err(|reason| away("cert-chain.pem", reason))?;
    }
    Ok(Kept {
        cert_pem: String::from_utf8(cert_bytes)
            .map_err(|_| away("ca-cert.pem", "not text".to_owned()))?,
        has_root_copy: root_copy.is_some(),
        has_chain: chain.is_some(),
    })
}

/// The key of a cluster whose certificate is to be issued again.
fn kept_key(ca: &CaDir, cluster: &str) -> Result<KeyPair, StoreError> {
    let rel = format!("{cluster}/ca-key.pem");
    let pem = read_opt(ca, &rel)?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    issue::parse_key(&pem).map_err(|err| {
        refused(format!(
            "{} is not a usable private key ({err}): issue a new intermediate with `meshplan certs PLAN --out DIR --rotate {cluster}` (it replaces the key)",
            ca.show(&rel)
        ))
    })
}

/// The files a cluster's step writes.
fn cluster_files(
    cluster: &str,
    prepared: Ready,
    root: &Root,
    options: &Options,
) -> Result<Vec<NewFile>, StoreError> {
    let put = |name: &'static str, bytes: &[u8], mode: u32| NewFile {
        cluster: Some(cluster.to_owned()),
        name,
        bytes: bytes.to_vec(),
        mode,
    };
    let chain = |cert_pem: &str| format!("{}\n{}", cert_pem.trim_end(), root.cert_pem.trim_start());
    let issue_for = |key: &KeyPair| -> Result<String, StoreError> {
        let root_key = root
            .key
            .as_ref()
            .ok_or_else(|| refused(format!("no root key to sign {cluster}'s intermediate with")))?;
        let validity = Validity::days_from_now(options.intermediate_days).ending_by(root.not_after);
        if validity.not_after <= validity.not_before {
            return Err(refused(format!(
                "{} ends before an intermediate issued now would start: a new root for the whole mesh is needed (a new DIR)",
                root.source
            )));
        }
        let what = format!("{cluster}/ca-cert.pem");
        // A later generation's directory (`east.2`, a `[mesh.trust]` revocation) still names
        // its cluster in L=.
        let locality = crate::trust::unit_cluster(cluster);
        let params = if options.crl_sign {
            issue::intermediate_params_crl(locality, key, validity)
        } else {
            issue::intermediate_params(locality, key, validity)
        }
        .map_err(issue_err(&what))?;
        issue::sign(params, key, &root.cert_pem, root_key).map_err(issue_err(&what))
    };
    let mut files = Vec::new();
    match prepared {
        Ready::Keep(kept) => {
            if !kept.has_root_copy {
                files.push(put(ROOT_CERT, root.cert_pem.as_bytes(), 0o644));
            }
            if !kept.has_chain {
                files.push(put(
                    "cert-chain.pem",
                    chain(&kept.cert_pem).as_bytes(),
                    0o644,
                ));
            }
        }
        Ready::Certify(key) => {
            let cert_pem = issue_for(&key)?;
            // The chain and root copy belong to the certificate just issued.
            files.push(put("ca-cert.pem", cert_pem.as_bytes(), 0o644));
            files.push(put("cert-chain.pem", chain(&cert_pem).as_bytes(), 0o644));
            files.push(put(ROOT_CERT, root.cert_pem.as_bytes(), 0o644));
        }
        Ready::New(key) => {
            let cert_pem = issue_for(&key)?;
            files.push(put("ca-key.pem", key.serialize_pem().as_bytes(), 0o600));
            files.push(put("ca-cert.pem", cert_pem.as_bytes(), 0o644));
            files.push(put("cert-chain.pem", chain(&cert_pem).as_bytes(), 0o644));
            files.push(put(ROOT_CERT, root.cert_pem.as_bytes(), 0o644));
        }
        Ready::Fresh => return Err(refused("internal error: no key made".to_owned())),
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::certs::KeyAlgorithm;
    use crate::certs::dir::{COMMIT, NEW};

    /// [`super::generate_with`], run again while DIR's lock is held. Other tests of this
    /// process spawn programs: a child between fork and exec holds a copy of every open file
    /// description, this run's lock file's too, so a lock just released can look held for a
    /// moment. The CLI spawns nothing while it holds the lock.
    fn generate_with(
        dir: &Path,
        clusters: &[&str],
        options: &Options,
        hook: &mut dyn FnMut(Step) -> io::Result<()>,
    ) -> Result<Generated, StoreError> {
        for _ in 0..100 {
            match super::generate_with(dir, clusters, options, hook) {
                Err(StoreError::Refused(why)) if why.contains("another meshplan certs run") => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                done => return done,
            }
        }
        super::generate_with(dir, clusters, options, hook)
    }

    fn generate(dir: &Path, clusters: &[&str], options: &Options) -> Result<Generated, StoreError> {
        generate_with(dir, clusters, options, &mut |_| Ok(()))
    }

    const CLUSTERS: [&str; 3] = ["c1", "c2", "c3"];

    fn options(rotate: Option<&str>) -> Options {
        Options {
            algorithm: KeyAlgorithm::EcdsaP256,
            rotate: rotate.map(str::to_owned),
            ..Options::default()
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let base =
            std::env::temp_dir().join(format!("meshplan-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        base
    }

    /// Every entry under `dir`: bytes (or `dir`) and mode, links not followed.
    fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                let body = if meta.is_dir() {
                    stack.push(path.clone());
                    b"dir".to_vec()
                } else {
                    std::fs::read(&path).unwrap()
                };
                out.insert(rel, (body, meta.permissions().mode() & 0o777));
            }
        }
        out
    }

    /// The errors `check --certs` finds in `dir`.
    fn errors(dir: &Path) -> Vec<String> {
        let inspected = Inspected::open(dir, &CLUSTERS);
        let read = |rel: &str| inspected.read(rel);
        let input = check::Input {
            dir: "DIR",
            read: &read,
            problems: &inspected.problems,
            trust_domain: "cluster.local",
            fix: "meshplan certs",
            after_rotation: &|_| String::new(),
            now: OffsetDateTime::now_utc(),
        };
        check::check(&input, &CLUSTERS)
            .iter()
            .filter(|f| !check::is_warning(f))
            .map(ToString::to_string)
            .collect()
    }

    /// How many steps of `kind` a successful run from this state takes (on a copy).
    fn count_steps(dir: &Path, rotate: Option<&str>, kind: fn(&Step) -> bool) -> usize {
        let copy = dir.with_extension("count");
        let _ = std::fs::remove_dir_all(&copy);
        if dir.exists() {
            let copied = std::process::Command::new("cp")
                .arg("-a")
                .arg(dir)
                .arg(&copy)
                .status();
            assert!(copied.unwrap().success());
        }
        let mut count = 0;
        generate_with(&copy, &CLUSTERS, &options(rotate), &mut |step| {
            count += usize::from(kind(&step));
            Ok(())
        })
        .unwrap();
        std::fs::remove_dir_all(&copy).unwrap();
        count
    }

    fn full_disk() -> io::Error {
        io::Error::from(io::ErrorKind::StorageFull)
    }

    /// A run that fails on the `at`-th step of `kind`.
    fn failing_at(
        dir: &Path,
        rotate: Option<&str>,
        kind: fn(&Step) -> bool,
        at: usize,
    ) -> Result<Generated, StoreError> {
        let mut seen = 0;
        generate_with(dir, &CLUSTERS, &options(rotate), &mut |step| {
            if kind(&step) {
                seen += 1;
                if seen == at + 1 {
                    return Err(full_disk());
                }
            }
            Ok(())
        })
    }

    fn is_write(step: &Step) -> bool {
        matches!(step, Step::Write(_))
    }

    fn is_move_or_commit(step: &Step) -> bool {
        matches!(step, Step::Move(_) | Step::Commit)
    }

    #[test]
    fn a_full_disk_at_any_write_of_a_first_run_leaves_nothing() {
        let base = scratch("enospc-first");
        let dir = base.join("ca");
        let writes = count_steps(&dir, None, is_write);
        assert_eq!(writes, 2 + 4 * CLUSTERS.len());
        for at in 0..writes {
            let err = failing_at(&dir, None, is_write, at).unwrap_err();
            assert!(matches!(err, StoreError::Staging { .. }), "{at}: {err}");
            assert!(
                err.to_string()
                    .contains("nothing in the CA directory changed"),
                "{err}"
            );
            assert!(!dir.exists(), "write {at}: the DIR this run made is left");
        }
        generate(&dir, &CLUSTERS, &options(None)).unwrap();
        assert_eq!(errors(&dir), Vec::<String>::new());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_full_disk_at_any_write_of_a_rotation_or_an_added_cluster_changes_no_byte() {
        let base = scratch("enospc-again");
        let dir = base.join("ca");
        generate(&dir, &CLUSTERS, &options(None)).unwrap();
        std::fs::remove_dir_all(dir.join("c3")).unwrap();
        std::fs::remove_file(dir.join("c1/cert-chain.pem")).unwrap();
        let before = snapshot(&dir);
        let writes = count_steps(&dir, Some("c2"), is_write);
        assert_eq!(writes, 1 + 4 + 4, "c1's chain, c2 rotated, c3 new");
        for at in 0..writes {
            let err = failing_at(&dir, Some("c2"), is_write, at).unwrap_err();
            assert!(matches!(err, StoreError::Staging { .. }), "{at}: {err}");
            assert_eq!(snapshot(&dir), before, "write {at}");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_run_cut_short_after_its_commit_point_is_finished_by_the_next_whatever_it_asks() {
        let base = scratch("killed");
        let template = base.join("template");
        generate(&template, &CLUSTERS, &options(None)).unwrap();
        std::fs::remove_dir_all(template.join("c3")).unwrap();
        let moves = count_steps(&template, Some("c2"), is_move_or_commit);
        // The commit, c2's four files one by one, c3's directory whole.
        assert_eq!(moves, 1 + 4 + 1);
        let old_key = std::fs::read(template.join("c2/ca-key.pem")).unwrap();
        for at in 0..moves {
            let dir = base.join(format!("run-{at}"));
            let copied = std::process::Command::new("cp")
                .arg("-a")
                .arg(&template)
                .arg(&dir)
                .status();
            assert!(copied.unwrap().success());
            let err = failing_at(&dir, Some("c2"), is_move_or_commit, at).unwrap_err();
            if at == 0 {
                // At the commit point itself: as if nothing happened.
                assert!(matches!(err, StoreError::Staging { .. }), "{err}");
                assert!(!dir.join(NEW).exists() && !dir.join(COMMIT).exists());
            } else {
                assert!(
                    err.to_string().contains("run `meshplan certs` again"),
                    "{err}"
                );
                assert!(dir.join(COMMIT).exists());
                assert!(
                    !errors(&dir).is_empty(),
                    "check --certs says the run is unfinished"
                );
            }
            // The next run, a plain one, finishes (or drops) the interrupted one first.
            let done = generate(&dir, &CLUSTERS, &options(None)).unwrap();
            assert!(
                !dir.join(NEW).exists() && !dir.join(COMMIT).exists(),
                "{at}"
            );
            assert_eq!(errors(&dir), Vec::<String>::new(), "move {at}");
            let new_key = std::fs::read(dir.join("c2/ca-key.pem")).unwrap();
            if at == 0 {
                assert!(done.finished.is_empty());
                assert_eq!(new_key, old_key, "nothing of the cut run is in place");
            } else {
                assert!(!done.finished.is_empty());
                assert_ne!(new_key, old_key, "the rotation was finished");
            }
            let again = snapshot(&dir);
            generate(&dir, &CLUSTERS, &options(None)).unwrap();
            assert_eq!(snapshot(&dir), again, "then a run changes no byte");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_run_killed_while_writing_aside_leaves_what_the_next_run_removes() {
        let base = scratch("killed-staging");
        let dir = base.join("ca");
        generate(&dir, &CLUSTERS, &options(None)).unwrap();
        let before = snapshot(&dir);
        // A panic stands for the kill: no cleanup runs.
        let mut returned = None;
        let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut writes = 0;
            returned = Some(generate_with(
                &dir,
                &CLUSTERS,
                &options(Some("c1")),
                &mut |step| {
                    if is_write(&step) {
                        writes += 1;
                        assert!(writes < 3, "killed");
                    }
                    Ok(())
                },
            ));
        }));
        assert!(killed.is_err(), "the run was not killed: {returned:?}");
        assert!(dir.join(NEW).join("c1").exists());
        generate(&dir, &CLUSTERS, &options(None)).unwrap();
        assert_eq!(snapshot(&dir), before);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_work_directory_holding_anything_else_is_refused_and_kept() {
        let base = scratch("foreign-work");
        let dir = base.join("ca");
        generate(&dir, &CLUSTERS, &options(None)).unwrap();
        for work in [NEW, COMMIT] {
            std::fs::create_dir_all(dir.join(work).join("c1")).unwrap();
            std::fs::write(dir.join(work).join("c1/notes.txt"), "mine").unwrap();
            let err = generate(&dir, &CLUSTERS, &options(None)).unwrap_err();
            assert!(err.to_string().contains("move"), "{err}");
            assert_eq!(
                std::fs::read(dir.join(work).join("c1/notes.txt")).unwrap(),
                b"mine"
            );
            std::fs::remove_dir_all(dir.join(work)).unwrap();
            std::os::unix::fs::symlink(base.join("elsewhere"), dir.join(work)).unwrap();
            let err = generate(&dir, &CLUSTERS, &options(None)).unwrap_err();
            assert!(err.to_string().contains("move it away"), "{err}");
            std::fs::remove_file(dir.join(work)).unwrap();
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
