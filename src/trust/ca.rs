//! The CA directory of a plan with `[mesh.trust]` phases: one directory per root, each laid
//! out as a one-root mesh's is (`docs/ca-directory.md`), so the rules, modes, locks and
//! all-or-nothing writes of [`crate::certs::store`] apply to each unchanged:
//!
//! ```text
//! DIR/                  0700
//!   <root>/             a one-root CA directory: root-cert.pem, root-key.pem (0600),
//!     <cluster>/        the intermediate <root> signs for the cluster (generation 1)
//!     <cluster>.2/      its next generation, after a revocation
//!     ca-crl.pem        the root's CRL and an (empty) CRL of each of its intermediates,
//!                       when the plan revokes an intermediate
//! ```
//!
//! A phase's `cacerts` Secret of a cluster is put together from these files by `trust.sh`:
//! its signing intermediate's `ca-cert.pem`, `ca-key.pem` and `cert-chain.pem`, the
//! `root-cert.pem` of every root it trusts in that phase (the bundle), and their
//! `ca-crl.pem` files where the phase carries CRLs.

use std::collections::BTreeMap;
use std::path::Path;

use miette::Diagnostic;
use thiserror::Error;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use super::matrix::{self, Material, Summary};
use super::{Intermediate, Trust};
use crate::certs::dir::{CaDir, NewFile};
use crate::certs::store::{self, Generated, StoreError};
use crate::certs::{CRL, Options, ROOT_CERT, ROOT_KEY, check, fingerprint, issue};
use crate::fsread::ReadError;

/// A finding of `check --certs` about a plan's phases.
#[derive(Debug, Error, Diagnostic)]
pub enum TrustCertError {
    #[error("{file}: root `{root}` is SHA256 {found}, the plan says {expected}")]
    #[diagnostic(
        code(meshplan::trust::root_fingerprint),
        help(
            "the plan's `fingerprint` of a root is what verify-trust.sh expects the clusters to hold: either DIR/{root}/ is not the root the plan means (put that one there), or the plan's fingerprint is stale (write the one `meshplan certs` printed)"
        )
    )]
    Fingerprint {
        root: String,
        file: String,
        found: String,
        expected: String,
    },

    #[error(
        "{file} is missing: phase `{phase}` revokes an intermediate, and every root it trusts needs its CRLs"
    )]
    #[diagnostic(
        code(meshplan::trust::crl_missing),
        help(
            "Envoy checks a CRL of every CA of a chain once any is given, so each root of the phase needs ca-crl.pem (its own CRL and one per intermediate). `{fix}` makes it"
        )
    )]
    CrlMissing {
        phase: String,
        file: String,
        fix: String,
    },

    #[error("{failure}")]
    #[diagnostic(
        code(meshplan::trust::matrix),
        help(
            "each phase must keep every cluster trusting every other while clusters move to it one at a time and workloads still hold certificates of the phase before: a root is dropped from a bundle only after no cluster signs with it any more (the phase before must already sign with the new root everywhere), and a new root is trusted everywhere before any cluster signs with it"
        )
    )]
    Matrix {
        failure: matrix::Failure,
        file: String,
    },

    #[error("{file}: {reason}")]
    #[diagnostic(
        code(meshplan::trust::material),
        help(
            "the proof needs every root's root-cert.pem and every intermediate's ca-cert.pem and ca-key.pem of the plan's phases: `{fix}` makes what is missing"
        )
    )]
    Material {
        file: String,
        reason: String,
        fix: String,
    },
}

impl TrustCertError {
    /// The file the finding is about.
    pub fn file(&self) -> &str {
        match self {
            TrustCertError::Fingerprint { file, .. }
            | TrustCertError::CrlMissing { file, .. }
            | TrustCertError::Matrix { file, .. }
            | TrustCertError::Material { file, .. } => file,
        }
    }
}

/// What `meshplan certs` did for one root.
#[derive(Debug)]
pub struct RootDone {
    /// The root's name.
    pub root: String,
    /// What the one-root run did in `DIR/<root>/`.
    pub generated: Generated,
    /// Whether `ca-crl.pem` was written.
    pub crl_written: bool,
    /// The root's fingerprint.
    pub fingerprint: Option<String>,
}

fn refused(why: String) -> StoreError {
    StoreError::Refused(why)
}

/// Makes what every phase needs: each root (kept if there), each intermediate of each phase,
/// and `ca-crl.pem` of each root when the plan revokes. Nothing existing is overwritten: a
/// key is never replaced, a CRL that exists is kept (`check --certs` says if it falls short).
pub fn generate(dir: &Path, trust: &Trust, options: &Options) -> Result<Vec<RootDone>, StoreError> {
    store::check_out_path(dir)?;
    if options.root.is_some() || options.rotate.is_some() {
        return Err(refused(
            "with [mesh.trust] phases, --root-cert/--root-key and --rotate do not apply: bring an existing root by putting its root-cert.pem and root-key.pem in DIR/<root name>/ (a one-root CA directory of meshplan moves there whole), and give a cluster a new intermediate with `revoke` in a phase".to_owned(),
        ));
    }
    if dir.join(ROOT_CERT).exists() || dir.join(ROOT_KEY).exists() {
        let first = trust.roots.first().map_or("ROOT", |r| r.name.as_str());
        return Err(refused(format!(
            "{} holds a one-root CA ({ROOT_CERT} at its top); a plan with [mesh.trust] keeps each root in DIR/<root name>/: move that CA into {}/{first}/ (every file and cluster directory) if it is root `{first}`",
            dir.display(),
            dir.display()
        )));
    }
    let options = Options {
        crl_sign: true,
        ..options.clone()
    };
    let mut done = Vec::new();
    for root in &trust.roots {
        let units: Vec<String> = trust
            .intermediates_of(&root.name)
            .iter()
            .map(Intermediate::unit)
            .collect();
        let names: Vec<&str> = units.iter().map(String::as_str).collect();
        let root_dir = dir.join(&root.name);
        let generated = store::generate(&root_dir, &names, &options)?;
        let crl_written = if trust.has_crl() {
            write_crl(&root_dir, &root.name, trust)?
        } else {
            false
        };
        let fingerprint = CaDir::open_for_reading(&root_dir)
            .ok()
            .and_then(|ca| ca.read(ROOT_CERT).ok())
            .and_then(|bytes| check::first_certificate(&bytes))
            .map(|der| fingerprint(&der));
        done.push(RootDone {
            root: root.name.clone(),
            generated,
            crl_written,
            fingerprint,
        });
    }
    Ok(done)
}

fn read_text(ca: &CaDir, rel: &str) -> Result<String, StoreError> {
    let bytes = ca
        .read(rel)
        .map_err(|err| refused(format!("cannot read {}: {err}", ca.show(rel))))?;
    String::from_utf8(bytes).map_err(|_| refused(format!("{} is not PEM text", ca.show(rel))))
}

/// `DIR/<root>/ca-crl.pem`, when missing: the root's CRL listing the plan's revoked
/// intermediates under it, then an empty CRL of each of its intermediates.
fn write_crl(root_dir: &Path, root: &str, trust: &Trust) -> Result<bool, StoreError> {
    let ca = CaDir::open_for_writing(root_dir)?;
    let _lock = ca.lock()?;
    match ca.read(CRL) {
        Ok(_) => return Ok(false),
        Err(ReadError::NotFound) => {}
        Err(err) => return Err(refused(format!("cannot read {}: {err}", ca.show(CRL)))),
    }
    let revoked: Vec<Intermediate> = trust
        .revoked()
        .into_iter()
        .filter(|i| i.root == root)
        .collect();
    let mut serials = Vec::new();
    for intermediate in &revoked {
        let rel = format!("{}/ca-cert.pem", intermediate.unit());
        let pem = read_text(&ca, &rel)?;
        let der = check::first_certificate(pem.as_bytes())
            .ok_or_else(|| refused(format!("{} holds no certificate", ca.show(&rel))))?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|err| refused(format!("{}: {err}", ca.show(&rel))))?;
        serials.push(cert.raw_serial().to_vec());
    }
    let root_pem = read_text(&ca, ROOT_CERT)?;
    let root_key =
        issue::parse_key(&read_text(&ca, ROOT_KEY)?).map_err(|source| StoreError::Issue {
            what: ca.show(ROOT_KEY),
            source,
        })?;
    let mut text = crl_pem(&root_pem, &root_key, &serials)
        .map_err(|reason| refused(format!("{}: {reason}", ca.show(ROOT_CERT))))?;
    for intermediate in trust.intermediates_of(root) {
        let unit = intermediate.unit();
        let cert_pem = read_text(&ca, &format!("{unit}/ca-cert.pem"))?;
        let key = issue::parse_key(&read_text(&ca, &format!("{unit}/ca-key.pem"))?).map_err(
            |source| StoreError::Issue {
                what: ca.show(&format!("{unit}/ca-key.pem")),
                source,
            },
        )?;
        text.push_str(
            &crl_pem(&cert_pem, &key, &[])
                .map_err(|reason| refused(format!("{}: {reason}", ca.show(&unit))))?,
        );
    }
    ca.write_all(
        &[NewFile {
            cluster: None,
            name: CRL,
            bytes: text.into_bytes(),
            mode: 0o644,
        }],
        &mut |_| Ok(()),
    )?;
    Ok(true)
}

/// A CRL signed by the CA `issuer_pem` listing `serials`, valid until the CA ends (a CRL past
/// its nextUpdate fails every verification, so it must not lapse before the CA does).
pub fn crl_pem(
    issuer_pem: &str,
    issuer_key: &rcgen::KeyPair,
    serials: &[Vec<u8>],
) -> Result<String, String> {
    let der = check::first_certificate(issuer_pem.as_bytes()).ok_or("no certificate")?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after.to_datetime();
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let params = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: not_after.max(now + time::Duration::days(1)),
        crl_number: rcgen::SerialNumber::from_slice(&now.unix_timestamp().to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(serial),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(issuer_pem, issuer_key).map_err(|e| match e {
            rcgen::Error::IssuerNotCrlSigner => {
                "it may not sign CRLs (no cRLSign in its keyUsage): it was made before the plan revoked anything; a revocation needs a root and intermediates made by `meshplan certs` for a plan with [mesh.trust]".to_owned()
            }
            other => other.to_string(),
        })?;
    let crl = params.signed_by(&issuer).map_err(|e| match e {
        rcgen::Error::IssuerNotCrlSigner => {
            "it may not sign CRLs (no cRLSign in its keyUsage): a revocation needs a root and intermediates made by `meshplan certs` for a plan with [mesh.trust]".to_owned()
        }
        other => other.to_string(),
    })?;
    crl.pem().map_err(|e| e.to_string())
}

/// The DER of every `X509 CRL` block of a PEM text.
pub fn crls(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|e| format!("bad PEM: {e}"))?;
        if block.label != "X509 CRL" {
            return Err(format!("holds a `{}` block where CRLs belong", block.label));
        }
        out.push(block.contents);
    }
    Ok(out)
}

/// What `check --certs` found for a plan with phases: findings, and the matrix's count when
/// it ran.
pub struct Checked {
    /// Every finding.
    pub findings: Vec<crate::diagnostic::Error>,
    /// The matrix, when the material was complete enough to run it.
    pub summary: Option<Summary>,
}

/// `check --certs DIR` for a plan with phases: each root's directory by the one-root rules,
/// the plan's fingerprints, the CRLs, then the matrix of every phase.
pub fn check_dir(
    dir: &Path,
    trust: &Trust,
    trust_domain: &str,
    fix: &str,
    after_rotation: &dyn Fn(&str) -> String,
    now: OffsetDateTime,
) -> Checked {
    let mut findings: Vec<crate::diagnostic::Error> = Vec::new();
    let shown = dir.display().to_string();
    let file = |rel: &str| format!("{}/{rel}", shown.trim_end_matches('/'));
    for root in &trust.roots {
        let units: Vec<String> = trust
            .intermediates_of(&root.name)
            .iter()
            .map(Intermediate::unit)
            .collect();
        let names: Vec<&str> = units.iter().map(String::as_str).collect();
        let root_dir = dir.join(&root.name);
        let inspected = store::Inspected::open(&root_dir, &names);
        let read = |rel: &str| inspected.read(rel);
        let root_shown = file(&root.name);
        let input = check::Input {
            dir: &root_shown,
            read: &read,
            problems: &inspected.problems,
            trust_domain,
            fix,
            after_rotation,
            now,
        };
        findings.extend(check::check(&input, &names).into_iter().map(Into::into));
        if let (Some(expected), check::Read::Bytes(bytes)) = (&root.fingerprint, read(ROOT_CERT))
            && let Some(der) = check::first_certificate(&bytes)
        {
            let found = fingerprint(&der);
            if &found != expected {
                findings.push(
                    TrustCertError::Fingerprint {
                        root: root.name.clone(),
                        file: file(&format!("{}/{ROOT_CERT}", root.name)),
                        found,
                        expected: expected.clone(),
                    }
                    .into(),
                );
            }
        }
    }
    for phase in trust.phases.iter().filter(|p| p.crl) {
        let mut roots: Vec<&str> = phase
            .clusters
            .iter()
            .flat_map(|c| c.trust.iter().map(String::as_str))
            .collect();
        roots.sort_unstable();
        roots.dedup();
        for root in roots {
            if !dir.join(root).join(CRL).exists() {
                findings.push(
                    TrustCertError::CrlMissing {
                        phase: phase.name.clone(),
                        file: file(&format!("{root}/{CRL}")),
                        fix: fix.to_owned(),
                    }
                    .into(),
                );
            }
        }
    }
    if findings.iter().any(crate::diagnostic::Error::is_error) {
        return Checked {
            findings,
            summary: None,
        };
    }
    match load(dir, trust, now) {
        Ok(material) => match matrix::prove(trust, &material, now) {
            Ok(summary) => {
                for failure in &summary.failures {
                    let signer = &failure.intermediate;
                    findings.push(
                        TrustCertError::Matrix {
                            failure: failure.clone(),
                            file: file(&format!("{}/ca-cert.pem", signer.path())),
                        }
                        .into(),
                    );
                }
                Checked {
                    findings,
                    summary: Some(summary),
                }
            }
            Err(reason) => {
                findings.push(
                    TrustCertError::Material {
                        file: shown.clone(),
                        reason,
                        fix: fix.to_owned(),
                    }
                    .into(),
                );
                Checked {
                    findings,
                    summary: None,
                }
            }
        },
        Err((rel, reason)) => {
            findings.push(
                TrustCertError::Material {
                    file: file(&rel),
                    reason,
                    fix: fix.to_owned(),
                }
                .into(),
            );
            Checked {
                findings,
                summary: None,
            }
        }
    }
}

/// Reads the material of every phase from DIR and issues the leaves in memory. `Err` names
/// the file (relative to DIR) that stands in the way.
pub fn load(dir: &Path, trust: &Trust, now: OffsetDateTime) -> Result<Material, (String, String)> {
    let mut material = Material::default();
    let mut signers: BTreeMap<Intermediate, (String, rcgen::KeyPair)> = BTreeMap::new();
    for root in &trust.roots {
        let ca = CaDir::open_for_reading(&dir.join(&root.name))
            .map_err(|err| (root.name.clone(), err.to_string()))?;
        let text = |rel: &str| -> Result<String, (String, String)> {
            let path = format!("{}/{rel}", root.name);
            let bytes = ca
                .read(rel)
                .map_err(|err| (path.clone(), err.to_string()))?;
            String::from_utf8(bytes).map_err(|_| (path, "not PEM text".to_owned()))
        };
        let root_pem = text(ROOT_CERT)?;
        let root_der = check::first_certificate(root_pem.as_bytes()).ok_or_else(|| {
            (
                format!("{}/{ROOT_CERT}", root.name),
                "no certificate".to_owned(),
            )
        })?;
        material.roots.insert(root.name.clone(), root_der);
        match ca.read(CRL) {
            Ok(bytes) => {
                let list = crls(&bytes).map_err(|e| (format!("{}/{CRL}", root.name), e))?;
                material.crls.insert(root.name.clone(), list);
            }
            Err(ReadError::NotFound) => {}
            Err(err) => return Err((format!("{}/{CRL}", root.name), err.to_string())),
        }
        for intermediate in trust.intermediates_of(&root.name) {
            let unit = intermediate.unit();
            let cert_pem = text(&format!("{unit}/ca-cert.pem"))?;
            let key_pem = text(&format!("{unit}/ca-key.pem"))?;
            let der = check::first_certificate(cert_pem.as_bytes()).ok_or_else(|| {
                (
                    format!("{}/ca-cert.pem", intermediate.path()),
                    "no certificate".to_owned(),
                )
            })?;
            let key = issue::parse_key(&key_pem)
                .map_err(|e| (format!("{}/ca-key.pem", intermediate.path()), e.to_string()))?;
            material.intermediates.insert(intermediate.clone(), der);
            signers.insert(intermediate, (cert_pem, key));
        }
    }
    material.leaves = matrix::issue_leaves(&matrix::leaves_needed(trust), &signers, now)
        .map_err(|e| (String::new(), e))?;
    Ok(material)
}

/// Just the proof over DIR (for the bench and tests): load, then prove.
pub fn prove_dir(dir: &Path, trust: &Trust, now: OffsetDateTime) -> Result<Summary, String> {
    let material = load(dir, trust, now).map_err(|(file, reason)| format!("{file}: {reason}"))?;
    matrix::prove(trust, &material, now)
}
