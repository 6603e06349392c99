//! `meshplan check PLAN --certs DIR`: the `cert` family of findings.
//!
//! The rules read files through a function (see [`Read`]), so they hold no I/O and tests can
//! feed them anything. Each finding names the cluster and the file.

use std::collections::BTreeMap;

use miette::Diagnostic;
use rcgen::PublicKeyData;
use thiserror::Error;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser;
use x509_parser::extensions::{GeneralName, GeneralSubtree};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::dir::{Problem, ProblemKind};
use super::{CLUSTER_FILES, EXPIRY_WARNING_DAYS, ISTIOD_SAN, ROOT_CERT, fingerprint};
use crate::userdirs;

/// A finding about the certificates of a mesh.
#[derive(Debug, Error, Diagnostic)]
pub enum CertError {
    #[error("{file} is missing ({whose})")]
    #[diagnostic(
        code(meshplan::cert::missing_file),
        help(
            "istiod needs all four files of the cacerts Secret (since Istio 1.27 it refuses to start without them). `{fix}` makes what is missing and never overwrites an existing key"
        )
    )]
    MissingFile {
        whose: String,
        file: String,
        fix: String,
    },

    #[error("{file} is not {expected} ({whose}): {reason}")]
    #[diagnostic(
        code(meshplan::cert::not_pem),
        help(
            "the cacerts Secret holds PEM text: `-----BEGIN CERTIFICATE-----` blocks, and an unencrypted private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`). A DER file converts with `openssl x509 -inform der`; an encrypted key cannot be read by istiod"
        )
    )]
    NotPem {
        whose: String,
        file: String,
        expected: &'static str,
        reason: String,
    },

    #[error("{key_file} is not the key of {file} (cluster `{cluster}`)")]
    #[diagnostic(
        code(meshplan::cert::key_mismatch),
        help(
            "istiod signs with ca-key.pem and presents ca-cert.pem; with a key of another certificate every workload certificate it issues fails verification. Restore the matching key, or issue a new intermediate with `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    KeyMismatch {
        cluster: String,
        file: String,
        key_file: String,
    },

    #[error("{file} of cluster `{cluster}` is not a CA certificate (no basicConstraints CA:TRUE)")]
    #[diagnostic(
        code(meshplan::cert::not_ca),
        help(
            "ca-cert.pem must be an intermediate CA (`CA:TRUE, pathlen:0`), not a leaf: verifiers refuse workload certificates signed by a non-CA. Issue one with `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    NotCa { cluster: String, file: String },

    #[error("{file} of {whose} has {found}, where {expected} is needed")]
    #[diagnostic(
        code(meshplan::cert::pathlen),
        help(
            "Istio's intermediates carry `pathlen:0`: istiod signs workloads only, and a stolen intermediate key must not be able to mint further CAs; a root with `pathlen:0` allows no intermediate at all. Reissue with `meshplan certs` (`--rotate CLUSTER` for an intermediate)"
        )
    )]
    Pathlen {
        whose: String,
        file: String,
        found: String,
        expected: &'static str,
    },

    #[error("{file} of cluster `{cluster}` may not sign certificates: {found}")]
    #[diagnostic(
        code(meshplan::cert::key_usage),
        help(
            "a CA's keyUsage must include keyCertSign, or verifiers refuse what it signs. Issue a new intermediate with `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    KeyUsage {
        cluster: String,
        file: String,
        found: String,
    },

    #[error("{file} of cluster `{cluster}` does not chain to its {root_file}: {reason}")]
    #[diagnostic(
        code(meshplan::cert::chain),
        help(
            "the intermediate must be signed by the root the cluster trusts, or no workload certificate of this cluster verifies anywhere. Issue it again from the mesh's root: `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    Chain {
        cluster: String,
        file: String,
        root_file: String,
        reason: String,
    },

    #[error(
        "{whose} trusts another root than {others}: {file} is SHA256 {fingerprint}, theirs {expected}"
    )]
    #[diagnostic(
        code(meshplan::cert::foreign_root),
        help(
            "every cluster's intermediate must chain to the one root the mesh shares, or mTLS between clusters fails silently. The roots found: {roots}. meshplan cannot tell which one is the mesh's (the most trusted is not always it): compare them with the root you keep (`openssl x509 -noout -fingerprint -sha256 -in FILE`). Then put that root's root-cert.pem and root-key.pem in DIR (moving any other away), or pass them with --root-cert FILE --root-key FILE, and issue each other cluster's intermediate again from it: `meshplan certs PLAN --out DIR --rotate CLUSTER`"
        )
    )]
    ForeignRoot {
        whose: String,
        file: String,
        fingerprint: String,
        others: String,
        expected: String,
        roots: String,
    },

    #[error(
        "{file} of cluster `{cluster}` does not run from the intermediate to the root: {reason}"
    )]
    #[diagnostic(
        code(meshplan::cert::chain_order),
        help(
            "cert-chain.pem is ca-cert.pem followed by root-cert.pem, in that order (`cat ca-cert.pem root-cert.pem > cert-chain.pem`); istiod sends it with every workload certificate"
        )
    )]
    ChainOrder {
        cluster: String,
        file: String,
        reason: String,
    },

    #[error("{file} ({whose}) expired on {not_after}")]
    #[diagnostic(
        code(meshplan::cert::expired),
        help(
            "an expired CA makes every certificate it signed fail. Issue a new intermediate with `meshplan certs PLAN --out DIR --rotate CLUSTER`; an expired root needs a new root for the whole mesh"
        )
    )]
    Expired {
        whose: String,
        file: String,
        not_after: String,
    },

    #[error("{file} ({whose}) is not valid before {not_before}")]
    #[diagnostic(
        code(meshplan::cert::not_yet_valid),
        help(
            "verifiers refuse it until then: the clock of the machine that made it was ahead, or this machine's is behind. Check both clocks; reissue with `meshplan certs PLAN --out DIR --rotate CLUSTER`"
        )
    )]
    NotYetValid {
        whose: String,
        file: String,
        not_before: String,
    },

    #[error("{file} ({whose}) expires on {not_after}, in {days} days")]
    #[diagnostic(code(meshplan::cert::expires_soon), severity(Warning), help("{renew}"))]
    ExpiresSoon {
        whose: String,
        file: String,
        not_after: String,
        days: i64,
        /// How to renew it before then: the complete command and what follows it.
        renew: String,
    },

    #[error("{file} of cluster `{cluster}` names {found} in its subject, not `L={cluster}`")]
    #[diagnostic(
        code(meshplan::cert::subject),
        severity(Warning),
        help(
            "Istio puts the cluster's name in the intermediate's Locality (L) to tell the clusters' CAs apart; another name usually means a directory copied from another cluster. `meshplan certs PLAN --out DIR --rotate {cluster}` issues the cluster's own"
        )
    )]
    Subject {
        cluster: String,
        file: String,
        found: String,
    },

    #[error("{file} ({whose}) is not a CA certificate (no basicConstraints CA:TRUE)")]
    #[diagnostic(
        code(meshplan::cert::root_not_ca),
        help(
            "a root must be a CA (`CA:TRUE`), or verifiers refuse every intermediate below it. It cannot be the mesh's root: make the CA from a proper root (a new DIR, or --root-cert FILE --root-key FILE)"
        )
    )]
    RootNotCa { whose: String, file: String },

    #[error("{file} ({whose}) may not sign certificates: {found}")]
    #[diagnostic(
        code(meshplan::cert::root_key_usage),
        help(
            "a root's keyUsage must include keyCertSign, or verifiers (openssl, Go, Envoy) refuse every intermediate below it. It cannot be the mesh's root: make the CA from a proper root (a new DIR, or --root-cert FILE --root-key FILE)"
        )
    )]
    RootKeyUsage {
        whose: String,
        file: String,
        found: String,
    },

    #[error("{file} ({whose}) is not self-signed: {reason}")]
    #[diagnostic(
        code(meshplan::cert::not_self_signed),
        help(
            "root-cert.pem must hold the root itself (its issuer its own subject, signed by its own key): verifiers take only a self-signed certificate as a trust anchor, so a certificate some other CA issued there fails everything below it. Put the root at the top of that chain there (for an organisation's root, bring that one with --root-cert FILE --root-key FILE)"
        )
    )]
    NotSelfSigned {
        whose: String,
        file: String,
        reason: String,
    },

    #[error("{file} of cluster `{cluster}` excludes the trust domain `{trust_domain}`: {reason}")]
    #[diagnostic(
        code(meshplan::cert::name_constraints),
        help(
            "istiod puts spiffe://{trust_domain}/ns/NAMESPACE/sa/ACCOUNT in every workload certificate; name constraints that exclude that trust domain make every one of them fail verification (openssl: permitted subtree violation). Issue the intermediate again without them: `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    NameConstraints {
        cluster: String,
        file: String,
        trust_domain: String,
        reason: String,
    },

    #[error("{file} of cluster `{cluster}` has no subjectAltName DNS:istiod.istio-system.svc")]
    #[diagnostic(
        code(meshplan::cert::istiod_san),
        severity(Warning),
        help(
            "Istio's tools/certs and its documented profile give every intermediate istiod's in-cluster name as its SAN; an intermediate without it is not one meshplan or Istio's Makefiles made. Issue the cluster's own: `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    IstiodSan { cluster: String, file: String },

    #[error(
        "{file} of cluster `{cluster}` holds {count} certificates; the intermediate alone belongs there"
    )]
    #[diagnostic(
        code(meshplan::cert::extra_certificate),
        help(
            "istiod takes the first certificate of ca-cert.pem and ignores the rest, so anything after it is a mistake or a certificate slipped in (an unrelated root there is where people and tools look for the mesh's CA). Keep the intermediate alone; the chain belongs in cert-chain.pem"
        )
    )]
    ExtraCertificate {
        cluster: String,
        file: String,
        count: usize,
    },

    #[error("{file} of cluster `{cluster}` is the same key as cluster `{other}`'s")]
    #[diagnostic(
        code(meshplan::cert::shared_key),
        help(
            "each cluster's istiod needs an intermediate key of its own: with one key shared, whoever takes one cluster's istiod signs for the other too, and rotating one leaves the other exposed. Give this cluster its own: `meshplan certs PLAN --out DIR --rotate {cluster}`"
        )
    )]
    SharedKey {
        cluster: String,
        file: String,
        other: String,
    },

    #[error("{file} ({whose}) is owned by {owner}, not by you ({you})")]
    #[diagnostic(
        code(meshplan::cert::foreign_owner),
        help(
            "its owner can read the keys and replace the certificates, and so hold or split the mesh's trust; meshplan uses only what you own. If it is yours, `chown -R {you_uid} {file}`; otherwise make the CA in a new directory"
        )
    )]
    ForeignOwner {
        whose: String,
        file: String,
        owner: String,
        you: String,
        you_uid: u32,
    },

    #[error("{file} ({whose}) is a private key other users can read (mode {mode:o})")]
    #[diagnostic(
        code(meshplan::cert::key_mode),
        help(
            "`chmod 600 {file}`. Whoever could read it may hold the key: treat it as exposed ({remedy})"
        )
    )]
    KeyMode {
        whose: String,
        file: String,
        mode: u32,
        remedy: String,
    },

    #[error("{file} ({whose}) can be changed by other users (mode {mode:o})")]
    #[diagnostic(
        code(meshplan::cert::writable),
        help(
            "`chmod go-w {file}` (a directory: `chmod 700`): whoever can write there can replace a key or a certificate, plant a root, or swap a cluster's directory"
        )
    )]
    Writable {
        whose: String,
        file: String,
        mode: u32,
    },

    #[error("{file} ({whose}) can be read by other users (mode {mode:o})")]
    #[diagnostic(
        code(meshplan::cert::dir_mode),
        severity(Warning),
        help(
            "`chmod 700 {file}`: others can list it and read its certificates (the keys in it stay 0600, which meshplan checks every run)"
        )
    )]
    DirMode {
        whose: String,
        file: String,
        mode: u32,
    },

    #[error("{file} ({whose}) is {found}, where meshplan keeps {expected}")]
    #[diagnostic(
        code(meshplan::cert::link),
        help(
            "meshplan never reads or writes through a symbolic link or a special file in the CA directory: a link could send a cluster's keys anywhere (or share one cluster's key with another), a FIFO or device could hang a run. Put the real file or directory in its place"
        )
    )]
    Link {
        whose: String,
        file: String,
        found: &'static str,
        expected: &'static str,
    },

    #[error(
        "{file}: a `meshplan certs` run was cut short after its commit point, and these files of {whose} are not in place yet"
    )]
    #[diagnostic(
        code(meshplan::cert::interrupted),
        help(
            "run `{fix}` again (any plan will do): before anything else it moves the rest into place. Until then the directory may hold a new key without its new certificate; do not run cacerts.sh from it"
        )
    )]
    Interrupted {
        whose: String,
        file: String,
        fix: String,
    },
}

impl CertError {
    /// The file the finding is about.
    pub fn file(&self) -> &str {
        match self {
            CertError::MissingFile { file, .. }
            | CertError::NotPem { file, .. }
            | CertError::KeyMismatch { key_file: file, .. }
            | CertError::NotCa { file, .. }
            | CertError::Pathlen { file, .. }
            | CertError::KeyUsage { file, .. }
            | CertError::Chain { file, .. }
            | CertError::ForeignRoot { file, .. }
            | CertError::ChainOrder { file, .. }
            | CertError::Expired { file, .. }
            | CertError::NotYetValid { file, .. }
            | CertError::ExpiresSoon { file, .. }
            | CertError::Subject { file, .. }
            | CertError::RootNotCa { file, .. }
            | CertError::RootKeyUsage { file, .. }
            | CertError::NotSelfSigned { file, .. }
            | CertError::NameConstraints { file, .. }
            | CertError::IstiodSan { file, .. }
            | CertError::ExtraCertificate { file, .. }
            | CertError::SharedKey { file, .. }
            | CertError::ForeignOwner { file, .. }
            | CertError::KeyMode { file, .. }
            | CertError::Writable { file, .. }
            | CertError::DirMode { file, .. }
            | CertError::Link { file, .. }
            | CertError::Interrupted { file, .. } => file,
        }
    }
}

/// What reading one file of the directory gave.
#[derive(Debug, Clone)]
pub enum Read {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// It does not exist.
    Missing,
    /// It exists but could not be read (permissions, a directory).
    Unreadable(String),
}

/// What the rules are given: where the directory is (for messages), how to read a file in it
/// (by path relative to it, `/`-separated), what the audit of owners, modes and file types
/// found, the plan's trust domain, the fix command, and the time to judge validity at.
pub struct Input<'a> {
    /// The directory as the user named it.
    pub dir: &'a str,
    /// Reads `cluster/file` or `root-cert.pem`.
    pub read: &'a dyn Fn(&str) -> Read,
    /// Owners, modes, links, an interrupted run ([`super::dir::CaDir::audit`]).
    pub problems: &'a [Problem],
    /// The mesh's trust domain (`spiffe://<trust domain>/...` in workload certificates).
    pub trust_domain: &'a str,
    /// `meshplan certs PLAN --out DIR`, for help texts.
    pub fix: &'a str,
    /// What to do after a cluster's intermediate is re-issued (cacerts.sh, which istiod
    /// restarts), as the plan says.
    pub after_rotation: &'a dyn Fn(&str) -> String,
    /// The time to judge validity at.
    pub now: OffsetDateTime,
}

/// The finding for a problem the audit of the directory found.
pub fn problem_finding(problem: &Problem, fix: &str) -> CertError {
    let file = problem.path.clone();
    let whose = match &problem.cluster {
        Some(cluster) => format!("cluster `{cluster}`"),
        None if file.ends_with(ROOT_CERT) || file.ends_with(super::ROOT_KEY) => {
            "the mesh's root".to_owned()
        }
        None => "the CA directory".to_owned(),
    };
    match &problem.kind {
        ProblemKind::ForeignOwner { owner, you } => CertError::ForeignOwner {
            whose,
            file,
            owner: userdirs::describe_uid(*owner),
            you: format!("uid {you}"),
            you_uid: *you,
        },
        ProblemKind::KeyMode { mode } => CertError::KeyMode {
            whose,
            file,
            mode: *mode,
            remedy: match &problem.cluster {
                Some(cluster) => format!(
                    "issue a new intermediate with `meshplan certs PLAN --out DIR --rotate {cluster}`"
                ),
                None => "a root key others may have read calls for a new root for the whole mesh"
                    .to_owned(),
            },
        },
        ProblemKind::Writable { mode } => CertError::Writable {
            whose,
            file,
            mode: *mode,
        },
        ProblemKind::DirReadable { mode } => CertError::DirMode {
            whose,
            file,
            mode: *mode,
        },
        ProblemKind::NotPlain { found, expected } => CertError::Link {
            whose,
            file,
            found,
            expected,
        },
        ProblemKind::Interrupted => CertError::Interrupted {
            whose: match &problem.cluster {
                Some(cluster) => format!("cluster `{cluster}`"),
                None => "the mesh's root".to_owned(),
            },
            file,
            fix: fix.to_owned(),
        },
    }
}

/// A problem in words, with what to do: how `meshplan certs` refuses or warns.
pub fn describe(problem: &Problem) -> String {
    let finding = problem_finding(problem, "meshplan certs PLAN --out DIR");
    match finding.help() {
        Some(help) => format!("{finding}: {help}"),
        None => finding.to_string(),
    }
}

/// Whether a finding is a warning (not an error).
pub fn is_warning(finding: &CertError) -> bool {
    finding.severity() == Some(miette::Severity::Warning)
}

/// One file's certificates, DER, in file order.
type Certs = Vec<Vec<u8>>;

/// Every finding about the directory of a mesh with these clusters, in plan order.
pub fn check(input: &Input, clusters: &[&str]) -> Vec<CertError> {
    let mut findings: Vec<CertError> = input
        .problems
        .iter()
        .filter(|p| p.cluster.is_none() || p.kind == ProblemKind::Interrupted)
        .map(|p| problem_finding(p, input.fix))
        .collect();
    let mesh_root = load_top_root(input, &mut findings);
    let mut roots = Vec::new();
    let mut keys = Vec::new();
    for cluster in clusters {
        findings.extend(
            input
                .problems
                .iter()
                .filter(|p| p.cluster.as_deref() == Some(cluster))
                .filter(|p| p.kind != ProblemKind::Interrupted)
                .map(|p| problem_finding(p, input.fix)),
        );
        let (root, key) = check_cluster(input, cluster, &mut findings);
        roots.push((*cluster, root));
        keys.push((*cluster, key));
    }
    findings.extend(shared_keys(input, &keys));
    findings.extend(foreign_roots(input, mesh_root.as_deref(), &roots));
    findings
}

/// Whether the audit already reported `file` as a link or special file (then it is not read).
fn not_plain(input: &Input, file: &str) -> bool {
    input
        .problems
        .iter()
        .any(|p| p.path == file && matches!(p.kind, ProblemKind::NotPlain { .. }))
}

/// Clusters whose intermediate has the same public key as an earlier cluster's.
fn shared_keys(input: &Input, keys: &[(&str, Option<Vec<u8>>)]) -> Vec<CertError> {
    let mut first: BTreeMap<&[u8], &str> = BTreeMap::new();
    let mut findings = Vec::new();
    for (cluster, key) in keys {
        let Some(key) = key else { continue };
        match first.get(key.as_slice()) {
            Some(other) => findings.push(CertError::SharedKey {
                cluster: (*cluster).to_owned(),
                file: path(input, &format!("{cluster}/{}", CLUSTER_FILES[1])),
                other: (*other).to_owned(),
            }),
            None => {
                first.insert(key, cluster);
            }
        }
    }
    findings
}

fn path(input: &Input, rel: &str) -> String {
    format!("{}/{rel}", input.dir.trim_end_matches('/'))
}

/// `DIR/root-cert.pem`: optional (Istio reads only the clusters' files), checked when there.
fn load_top_root(input: &Input, findings: &mut Vec<CertError>) -> Option<Vec<u8>> {
    let file = path(input, ROOT_CERT);
    if not_plain(input, &file) {
        return None;
    }
    let bytes = match (input.read)(ROOT_CERT) {
        Read::Bytes(bytes) => bytes,
        Read::Missing => return None,
        Read::Unreadable(reason) => {
            findings.push(not_pem("the mesh", &file, "a certificate", reason));
            return None;
        }
    };
    let certs = match certificates(&bytes) {
        Ok(certs) => certs,
        Err(reason) => {
            findings.push(not_pem("the mesh", &file, "a certificate", reason));
            return None;
        }
    };
    let first = certs.into_iter().next()?;
    if let Ok((_, cert)) = X509Certificate::from_der(&first) {
        findings.extend(root_findings("the mesh", &file, &cert, input.now));
    }
    Some(first)
}

/// The rules every root must meet, for `check --certs` and for the root `meshplan certs` signs
/// with (one set of rules): a CA, allowing a CA below it, allowed to sign certificates,
/// self-signed, valid now.
pub fn root_findings(
    whose: &str,
    file: &str,
    root: &X509Certificate,
    now: OffsetDateTime,
) -> Vec<CertError> {
    let mut findings = Vec::new();
    let (whose_s, file_s) = (whose.to_owned(), file.to_owned());
    let constraints = root
        .basic_constraints()
        .ok()
        .flatten()
        .map(|ext| ext.value.clone());
    match constraints {
        Some(bc) if bc.ca => {
            if bc.path_len_constraint == Some(0) {
                findings.push(CertError::Pathlen {
                    whose: whose_s.clone(),
                    file: file_s.clone(),
                    found: "pathlen:0".to_owned(),
                    expected: "a root allowing one CA below it (pathlen:1 or no limit)",
                });
            }
        }
        _ => findings.push(CertError::RootNotCa {
            whose: whose_s.clone(),
            file: file_s.clone(),
        }),
    }
    // No keyUsage extension at all allows every use (RFC 5280); one without keyCertSign does not.
    if let Some(usage) = root.key_usage().ok().flatten().map(|ext| *ext.value)
        && !usage.key_cert_sign()
    {
        findings.push(CertError::RootKeyUsage {
            whose: whose_s.clone(),
            file: file_s.clone(),
            found: format!("keyUsage is `{usage}`, without keyCertSign"),
        });
    }
    let names_itself = root.issuer().as_raw() == root.subject().as_raw();
    if !names_itself || root.verify_signature(None).is_err() {
        findings.push(CertError::NotSelfSigned {
            whose: whose_s.clone(),
            file: file_s.clone(),
            reason: if names_itself {
                "it names itself as issuer, but its own key did not sign it".to_owned()
            } else {
                format!("`{}` issued it", root.issuer())
            },
        });
    }
    findings.extend(validity(whose, file, root, now, ROOT_RENEW.to_owned()));
    findings
}

/// How a root is renewed: not by `--rotate`, which re-issues one intermediate under it.
const ROOT_RENEW: &str = "a root is renewed by re-issuing every cluster's intermediate under a new one while the clusters trust both: plan that rotation before then (docs/ca-directory.md)";

fn not_pem(whose: &str, file: &str, expected: &'static str, reason: String) -> CertError {
    CertError::NotPem {
        whose: whose.to_owned(),
        file: file.to_owned(),
        expected,
        reason,
    }
}

/// The DER of the first certificate of a PEM file, if it has one that parses.
pub fn first_certificate(bytes: &[u8]) -> Option<Vec<u8>> {
    certificates(bytes).ok()?.into_iter().next()
}

/// The DER of the one certificate of a PEM file that holds exactly one and nothing else (no
/// text around it, no second certificate, no other block): a root brought in.
pub fn exactly_one_certificate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not PEM text".to_owned())?;
    let trimmed = text.trim();
    let blocks = trimmed.matches("-----BEGIN").count();
    if blocks > 1 {
        return Err(format!(
            "it holds {blocks} PEM blocks; put the root's certificate alone in a file"
        ));
    }
    if !trimmed.starts_with(BEGIN) || !trimmed.ends_with(END) {
        return Err(
            "it holds text outside the certificate; keep only the `-----BEGIN CERTIFICATE-----` block (`openssl x509 -in FILE -out root.pem`)"
                .to_owned(),
        );
    }
    let certs = certificates(trimmed.as_bytes())?;
    let der = certs.into_iter().next().ok_or("no certificate")?;
    match X509Certificate::from_der(&der) {
        Ok(([], _)) => Ok(der),
        Ok(_) => Err("bytes follow the certificate inside its PEM block".to_owned()),
        Err(err) => Err(format!("a certificate does not parse: {err}")),
    }
}

/// The PEM certificates of a file, every one parsed; an error when there are none or one is
/// broken.
pub fn certificates(bytes: &[u8]) -> Result<Certs, String> {
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|err| format!("bad PEM: {err}"))?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "holds a `{}` block where certificates belong",
                block.label
            ));
        }
        X509Certificate::from_der(&block.contents)
            .map_err(|err| format!("a certificate does not parse: {err}"))?;
        certs.push(block.contents);
    }
    if certs.is_empty() {
        return Err("no `-----BEGIN CERTIFICATE-----` block".to_owned());
    }
    Ok(certs)
}

/// A private key, as far as matching it with its certificate needs.
pub enum PrivateKey {
    /// RSA: the modulus and exponent, read from the DER. Parsing an RSA 4096 key with a crypto
    /// library validates it (tens of milliseconds), which made `check --certs` of 100 clusters
    /// take seconds; comparing the public numbers is what `openssl rsa -modulus` does.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// Any other key (ECDSA): its public key, derived by the crypto library (fast).
    Other(Vec<u8>),
}

/// rsaEncryption.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl PrivateKey {
    /// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn parse(bytes: &[u8]) -> Result<PrivateKey, String> {
        let block = Pem::iter_from_buffer(bytes)
            .next()
            .ok_or("no `-----BEGIN PRIVATE KEY-----` block")?
            .map_err(|err| format!("bad PEM: {err}"))?;
        let rsa = match block.label.as_str() {
            "RSA PRIVATE KEY" => Some(block.contents.as_slice()),
            "PRIVATE KEY" => pkcs8_rsa(&block.contents),
            _ => None,
        };
        if let Some((modulus, exponent)) = rsa.and_then(rsa_numbers) {
            return Ok(PrivateKey::Rsa { modulus, exponent });
        }
        let text = String::from_utf8_lossy(bytes);
        rcgen::KeyPair::from_pem(&text)
            .map(|key| PrivateKey::Other(key.subject_public_key_info()))
            .map_err(|err| err.to_string())
    }

    /// Whether this is the private key of `cert`'s public key.
    pub fn is_key_of(&self, cert: &X509Certificate) -> bool {
        match self {
            PrivateKey::Rsa { modulus, exponent } => match cert.public_key().parsed() {
                Ok(PublicKey::RSA(public)) => {
                    unsigned(public.modulus) == unsigned(modulus)
                        && unsigned(public.exponent) == unsigned(exponent)
                }
                _ => false,
            },
            PrivateKey::Other(spki) => spki.as_slice() == cert.public_key().raw,
        }
    }
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo, when the key is RSA.
fn pkcs8_rsa(der: &[u8]) -> Option<&[u8]> {
    let (_, info) = der_parser::der::parse_der(der).ok()?;
    let fields = info.as_sequence().ok()?;
    let algorithm = fields.get(1)?.as_sequence().ok()?;
    let oid = algorithm.first()?.as_oid().ok()?;
    if oid.to_id_string() != RSA_ENCRYPTION {
        return None;
    }
    fields.get(2)?.as_slice().ok()
}

/// `n` and `e` of an RSAPrivateKey (`version, n, e, d, ...`).
fn rsa_numbers(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, key) = der_parser::der::parse_der(der).ok()?;
    let fields = key.as_sequence().ok()?;
    let modulus = fields.get(1)?.as_slice().ok()?.to_vec();
    let exponent = fields.get(2)?.as_slice().ok()?.to_vec();
    Some((modulus, exponent))
}

/// An unsigned big-endian integer without leading zero bytes.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The parsed files of one cluster; `None` where missing or broken (already reported).
struct ClusterFiles {
    ca_cert: Option<Certs>,
    ca_key: Option<PrivateKey>,
    root_cert: Option<Certs>,
    cert_chain: Option<Certs>,
}

fn load_cluster(input: &Input, cluster: &str, findings: &mut Vec<CertError>) -> ClusterFiles {
    let whose = format!("cluster `{cluster}`");
    let mut missing = Vec::new();
    let dir_not_plain = not_plain(input, &path(input, cluster));
    let mut read = |name: &str| -> Option<Vec<u8>> {
        let file = path(input, &format!("{cluster}/{name}"));
        if dir_not_plain || not_plain(input, &file) {
            // Reported by the audit, and never read through.
            return None;
        }
        match (input.read)(&format!("{cluster}/{name}")) {
            Read::Bytes(bytes) => Some(bytes),
            Read::Missing => {
                missing.push(file);
                None
            }
            Read::Unreadable(reason) => {
                findings.push(not_pem(&whose, &file, "readable", reason));
                None
            }
        }
    };
    let [ca_cert, ca_key, root_cert, cert_chain] = CLUSTER_FILES.map(&mut read);
    let fix = input.fix;
    if missing.len() == CLUSTER_FILES.len() {
        // One finding for a cluster without any file rather than four.
        findings.push(CertError::MissingFile {
            whose,
            file: path(input, &format!("{cluster}/")),
            fix: fix.to_owned(),
        });
        return ClusterFiles {
            ca_cert: None,
            ca_key: None,
            root_cert: None,
            cert_chain: None,
        };
    }
    for file in missing {
        findings.push(CertError::MissingFile {
            whose: whose.clone(),
            file,
            fix: fix.to_owned(),
        });
    }
    let mut parsed = |name: &str, bytes: Option<Vec<u8>>| -> Option<Certs> {
        certificates(&bytes?)
            .map_err(|reason| {
                let file = path(input, &format!("{cluster}/{name}"));
                findings.push(not_pem(&whose, &file, "a PEM certificate", reason));
            })
            .ok()
    };
    let ca_cert = parsed(CLUSTER_FILES[0], ca_cert);
    let root_cert = parsed(CLUSTER_FILES[2], root_cert);
    let cert_chain = parsed(CLUSTER_FILES[3], cert_chain);
    let ca_key = ca_key.and_then(|bytes| {
        PrivateKey::parse(&bytes)
            .map_err(|err| {
                let file = path(input, &format!("{cluster}/{}", CLUSTER_FILES[1]));
                findings.push(not_pem(
                    &whose,
                    &file,
                    "an unencrypted PEM private key",
                    err.to_string(),
                ));
            })
            .ok()
    });
    ClusterFiles {
        ca_cert,
        ca_key,
        root_cert,
        cert_chain,
    }
}

/// Checks one cluster's files; returns the DER of the root it trusts (the first of its
/// `root-cert.pem`) and its intermediate's public key, for comparing across the mesh.
fn check_cluster(
    input: &Input,
    cluster: &str,
    findings: &mut Vec<CertError>,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let files = load_cluster(input, cluster, findings);
    let file = |name: &str| path(input, &format!("{cluster}/{name}"));
    let ca_der = files.ca_cert.as_ref().and_then(|certs| certs.first());
    let ca = ca_der.and_then(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c));
    let roots: Vec<X509Certificate> = files
        .root_cert
        .iter()
        .flatten()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .collect();
    if let (Some(ca), Some(key)) = (&ca, &files.ca_key)
        && !key.is_key_of(ca)
    {
        findings.push(CertError::KeyMismatch {
            cluster: cluster.to_owned(),
            file: file(CLUSTER_FILES[0]),
            key_file: file(CLUSTER_FILES[1]),
        });
    }
    if let Some(count) = files.ca_cert.as_ref().map(Vec::len).filter(|n| *n > 1) {
        findings.push(CertError::ExtraCertificate {
            cluster: cluster.to_owned(),
            file: file(CLUSTER_FILES[0]),
            count,
        });
    }
    let whose = format!("cluster `{cluster}`");
    if let Some(ca) = &ca {
        findings.extend(ca_profile(cluster, &file(CLUSTER_FILES[0]), ca));
        findings.extend(name_constraints(
            cluster,
            &file(CLUSTER_FILES[0]),
            ca,
            input.trust_domain,
        ));
    }
    if let Some(root) = roots.first() {
        findings.extend(root_findings(
            &whose,
            &file(CLUSTER_FILES[2]),
            root,
            input.now,
        ));
    }
    if let Some(ca) = &ca
        && !roots.is_empty()
        && !roots.iter().any(|root| issued_by(ca, root))
    {
        findings.push(CertError::Chain {
            cluster: cluster.to_owned(),
            file: file(CLUSTER_FILES[0]),
            root_file: CLUSTER_FILES[2].to_owned(),
            reason: chain_reason(ca, &roots),
        });
    }
    if let (Some(chain), Some(ca_der), Some(root_certs)) =
        (&files.cert_chain, ca_der, &files.root_cert)
        && let Err(reason) = chain_runs(chain, ca_der, root_certs)
    {
        findings.push(CertError::ChainOrder {
            cluster: cluster.to_owned(),
            file: file(CLUSTER_FILES[3]),
            reason,
        });
    }
    if let Some(ca) = &ca {
        let renew = format!(
            "re-issue it before then: `{} --rotate {cluster}`, then {}",
            input.fix,
            (input.after_rotation)(cluster)
        );
        findings.extend(validity(
            &whose,
            &file(CLUSTER_FILES[0]),
            ca,
            input.now,
            renew,
        ));
        findings.extend(subject_names(cluster, &file(CLUSTER_FILES[0]), ca));
        findings.extend(istiod_san(cluster, &file(CLUSTER_FILES[0]), ca));
    }
    let key = ca.as_ref().map(|ca| ca.public_key().raw.to_vec());
    (
        files.root_cert.and_then(|certs| certs.into_iter().next()),
        key,
    )
}

/// The intermediate carries istiod's name as Istio's profile does.
fn istiod_san(cluster: &str, file: &str, ca: &X509Certificate) -> Option<CertError> {
    let names = ca.subject_alternative_name().ok().flatten();
    let has = names.is_some_and(|ext| {
        ext.value
            .general_names
            .iter()
            .any(|name| matches!(name, GeneralName::DNSName(dns) if *dns == ISTIOD_SAN))
    });
    (!has).then(|| CertError::IstiodSan {
        cluster: cluster.to_owned(),
        file: file.to_owned(),
    })
}

/// Whether a URI name constraint (RFC 5280 4.2.1.10: a host, or `.domain` for the hosts
/// under it) covers the host of `spiffe://<trust domain>/...`.
fn uri_constraint_covers(constraint: &str, trust_domain: &str) -> bool {
    let (constraint, host) = (
        constraint.to_ascii_lowercase(),
        trust_domain.to_ascii_lowercase(),
    );
    if constraint.starts_with('.') {
        host.ends_with(&constraint)
    } else {
        host == constraint
    }
}

/// URI name constraints of the intermediate that leave out the trust domain: a permitted list
/// of URIs without it, or an excluded list with it.
fn name_constraints(
    cluster: &str,
    file: &str,
    ca: &X509Certificate,
    trust_domain: &str,
) -> Option<CertError> {
    let constraints = ca.name_constraints().ok().flatten()?;
    let uris = |subtrees: &Option<Vec<GeneralSubtree>>| -> Vec<String> {
        subtrees
            .iter()
            .flatten()
            .filter_map(|subtree| match &subtree.base {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect()
    };
    let permitted = uris(&constraints.value.permitted_subtrees);
    let excluded = uris(&constraints.value.excluded_subtrees);
    let reason = if !permitted.is_empty()
        && !permitted
            .iter()
            .any(|c| uri_constraint_covers(c, trust_domain))
    {
        format!(
            "its nameConstraints permit URIs only in {}",
            permitted.join(", ")
        )
    } else if let Some(hit) = excluded
        .iter()
        .find(|c| uri_constraint_covers(c, trust_domain))
    {
        format!("its nameConstraints exclude URIs in {hit}")
    } else {
        return None;
    };
    Some(CertError::NameConstraints {
        cluster: cluster.to_owned(),
        file: file.to_owned(),
        trust_domain: trust_domain.to_owned(),
        reason,
    })
}

/// CA:TRUE, pathlen:0, keyCertSign.
fn ca_profile(cluster: &str, file: &str, ca: &X509Certificate) -> Vec<CertError> {
    let mut findings = Vec::new();
    let constraints = ca
        .basic_constraints()
        .ok()
        .flatten()
        .map(|ext| ext.value.clone());
    match constraints {
        Some(bc) if bc.ca => {
            if bc.path_len_constraint != Some(0) {
                findings.push(CertError::Pathlen {
                    whose: format!("cluster `{cluster}`"),
                    file: file.to_owned(),
                    found: bc
                        .path_len_constraint
                        .map_or("no pathlen limit".to_owned(), |n| format!("pathlen:{n}")),
                    expected: "pathlen:0",
                });
            }
        }
        _ => findings.push(CertError::NotCa {
            cluster: cluster.to_owned(),
            file: file.to_owned(),
        }),
    }
    let usage = ca.key_usage().ok().flatten().map(|ext| *ext.value);
    let found = match usage {
        None => Some("it has no keyUsage extension".to_owned()),
        Some(usage) if !usage.key_cert_sign() => {
            Some(format!("keyUsage is `{usage}`, without keyCertSign"))
        }
        Some(_) => None,
    };
    if let Some(found) = found {
        findings.push(CertError::KeyUsage {
            cluster: cluster.to_owned(),
            file: file.to_owned(),
            found,
        });
    }
    findings
}

/// Whether `cert` names `issuer` as its issuer and carries its signature.
pub fn issued_by(cert: &X509Certificate, issuer: &X509Certificate) -> bool {
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn chain_reason(ca: &X509Certificate, roots: &[X509Certificate]) -> String {
    let names_a_root = roots
        .iter()
        .any(|root| ca.issuer().as_raw() == root.subject().as_raw());
    if names_a_root {
        format!(
            "it names `{}` as issuer, but that root's key did not sign it",
            ca.issuer()
        )
    } else {
        format!(
            "its issuer is `{}`, the root is `{}`",
            ca.issuer(),
            roots
                .first()
                .map(|r| r.subject().to_string())
                .unwrap_or_default()
        )
    }
}

/// `cert-chain.pem` is the intermediate, then each issuer, ending with a root of
/// `root-cert.pem`.
fn chain_runs(chain: &[Vec<u8>], ca_der: &[u8], roots: &[Vec<u8>]) -> Result<(), String> {
    if chain.first().map(Vec::as_slice) != Some(ca_der) {
        return Err("its first certificate is not ca-cert.pem".to_owned());
    }
    let parsed: Vec<X509Certificate> = chain
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .collect();
    for (index, pair) in parsed.windows(2).enumerate() {
        if !issued_by(&pair[0], &pair[1]) {
            return Err(format!(
                "certificate {} (`{}`) is not signed by certificate {} (`{}`)",
                index + 1,
                pair[0].subject(),
                index + 2,
                pair[1].subject()
            ));
        }
    }
    match chain.last() {
        Some(last) if chain.len() > 1 && roots.contains(last) => Ok(()),
        _ => Err("it does not end with the root of root-cert.pem".to_owned()),
    }
}

fn date(time: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        time.year(),
        u8::from(time.month()),
        time.day()
    )
}

/// Expired, not yet valid (errors), or expiring within [`EXPIRY_WARNING_DAYS`] (a warning).
fn validity(
    whose: &str,
    file: &str,
    cert: &X509Certificate,
    now: OffsetDateTime,
    renew: String,
) -> Option<CertError> {
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let (whose, file) = (whose.to_owned(), file.to_owned());
    if now > not_after {
        return Some(CertError::Expired {
            whose,
            file,
            not_after: date(not_after),
        });
    }
    if now < not_before {
        return Some(CertError::NotYetValid {
            whose,
            file,
            not_before: date(not_before),
        });
    }
    let days = (not_after - now).whole_days();
    (days < EXPIRY_WARNING_DAYS).then(|| CertError::ExpiresSoon {
        whose,
        file,
        not_after: date(not_after),
        days,
        renew,
    })
}

/// The intermediate's `L=` names its cluster.
fn subject_names(cluster: &str, file: &str, ca: &X509Certificate) -> Option<CertError> {
    let localities: Vec<&str> = ca
        .subject()
        .iter_locality()
        .filter_map(|l| l.as_str().ok())
        .collect();
    // A later generation's directory (`east.2`) names its cluster (`east`).
    let cluster = crate::trust::unit_cluster(cluster);
    if localities.contains(&cluster) {
        return None;
    }
    let found = match localities.first() {
        Some(other) => format!("`L={other}`"),
        None => format!("no locality (`{}`)", ca.subject()),
    };
    Some(CertError::Subject {
        cluster: cluster.to_owned(),
        file: file.to_owned(),
        found,
    })
}

/// Clusters whose root differs from the one most of the mesh trusts (a tie goes to
/// `DIR/root-cert.pem`, then to the first cluster in the plan).
fn foreign_roots(
    input: &Input,
    mesh_root: Option<&[u8]>,
    roots: &[(&str, Option<Vec<u8>>)],
) -> Vec<CertError> {
    let mut holders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut order = Vec::new();
    let top = mesh_root.map(fingerprint);
    if let Some(top) = &top {
        holders.entry(top.clone()).or_default().push(ROOT_CERT);
        order.push(top.clone());
    }
    for (cluster, root) in roots {
        if let Some(root) = root {
            let print = fingerprint(root);
            holders.entry(print.clone()).or_default().push(cluster);
            order.push(print);
        }
    }
    let Some(expected) = order
        .iter()
        .max_by_key(|print| {
            (
                holders[*print].len(),
                std::cmp::Reverse(order.iter().position(|p| p == *print)),
            )
        })
        .cloned()
    else {
        return Vec::new();
    };
    let majority = &holders[&expected];
    let top_root = path(input, ROOT_CERT);
    let others = name_list(majority, &top_root);
    let mut seen = Vec::new();
    let mut summary = Vec::new();
    for print in &order {
        if !seen.contains(print) {
            seen.push(print.clone());
            summary.push(format!(
                "SHA256 {print} (trusted by {})",
                name_list(&holders[print], &top_root)
            ));
        }
    }
    let summary = summary.join("; ");
    let mut findings = Vec::new();
    if let Some(top) = top.filter(|print| *print != expected) {
        findings.push(CertError::ForeignRoot {
            whose: "the mesh's top-level root".to_owned(),
            file: path(input, ROOT_CERT),
            fingerprint: top,
            others: others.clone(),
            expected: expected.clone(),
            roots: summary.clone(),
        });
    }
    for (cluster, root) in roots {
        let Some(root) = root else { continue };
        let print = fingerprint(root);
        if print != expected {
            findings.push(CertError::ForeignRoot {
                whose: format!("cluster `{cluster}`"),
                file: path(input, &format!("{cluster}/{ROOT_CERT}")),
                fingerprint: print,
                others: others.clone(),
                expected: expected.clone(),
                roots: summary.clone(),
            });
        }
    }
    findings
}

/// `a, b, c and 7 more`.
fn name_list(names: &[&str], top_root: &str) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = names
        .iter()
        .take(SHOWN)
        .map(|name| {
            if *name == ROOT_CERT {
                top_root.to_owned()
            } else {
                format!("`{name}`")
            }
        })
        .collect();
    let rest = names.len().saturating_sub(SHOWN);
    if rest > 0 {
        format!("{} and {rest} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
