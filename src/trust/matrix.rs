//! The proof of a plan's phases: for every phase and every ordered pair of clusters (X, Y),
//! a workload certificate issued (in memory) by X's intermediate validates against Y's trust
//! bundle and CRLs, and none issued by a revoked intermediate does.
//!
//! Clusters move from one phase to the next one at a time, and workloads keep a certificate
//! of the phase before until it is renewed, so phase k is proven for X and Y each in phase
//! k-1 or k (X's leaf from one, Y's bundle from the other); phase k-1 with both already was.
//!
//! A leaf chains leaf → X's intermediate → a root of Y's bundle, verified as a TLS peer
//! verifier does: signatures, CA flags and path length, validity at `now`, the SPIFFE trust
//! domain (Y's own or an alias), and, where Y carries `ca-crl.pem`, a valid CRL from every CA
//! of the chain (Envoy's default: a CRL given for one CA of a chain is needed for all) that
//! does not list the intermediate. Signatures are verified once per certificate pair and the
//! results reused across the matrix.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::{Intermediate, Trust};

/// Everything the proof reads: the roots, each intermediate with its leaves, the CRLs.
#[derive(Debug, Clone, Default)]
pub struct Material {
    /// Each root's certificate, DER, by root name.
    pub roots: BTreeMap<String, Vec<u8>>,
    /// Each intermediate some phase signs with or revokes, DER.
    pub intermediates: BTreeMap<Intermediate, Vec<u8>>,
    /// A workload certificate each intermediate signed in memory, per trust domain it signs
    /// for (SPIFFE URI `spiffe://<domain>/ns/default/sa/default`), DER.
    pub leaves: BTreeMap<(Intermediate, String), Vec<u8>>,
    /// The CRLs of each root's `ca-crl.pem` (the root's and its intermediates'), DER.
    pub crls: BTreeMap<String, Vec<Vec<u8>>>,
}

/// A pair that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The phase being proven.
    pub phase: String,
    /// The cluster whose workload presents the certificate, and the phase it is in.
    pub from: (String, String),
    /// The cluster that verifies it, and the phase it is in.
    pub to: (String, String),
    /// The intermediate that issued the certificate.
    pub intermediate: Intermediate,
    /// Why.
    pub reason: String,
    /// Whether the failure is that a revoked intermediate was still accepted.
    pub revoked_accepted: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |(cluster, phase): &(String, String)| {
            if *phase == self.phase {
                format!("`{cluster}`")
            } else {
                format!("`{cluster}` (still in phase `{phase}`)")
            }
        };
        let what = if self.revoked_accepted {
            "still accepts"
        } else {
            "does not accept"
        };
        write!(
            f,
            "phase `{}`: {} {what} a workload of {} (intermediate {}): {}",
            self.phase,
            side(&self.to),
            side(&self.from),
            self.intermediate.path(),
            self.reason
        )
    }
}

/// What the proof counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Pairs verified (accepted as expected).
    pub accepted: usize,
    /// Pairs refused as expected (a revoked intermediate).
    pub refused: usize,
    /// Every failure, in phase, then plan order.
    pub failures: Vec<Failure>,
}

/// One verifier's view: a bundle and maybe CRLs.
struct View<'a> {
    roots: Vec<&'a str>,
    crl: bool,
    domain: &'a str,
}

/// Parsed material, with the signature checks cached.
struct Parsed<'a> {
    roots: BTreeMap<&'a str, X509Certificate<'a>>,
    intermediates: BTreeMap<&'a Intermediate, X509Certificate<'a>>,
    leaves: BTreeMap<(&'a Intermediate, &'a str), X509Certificate<'a>>,
    crls: BTreeMap<&'a str, Vec<CertificateRevocationList<'a>>>,
    /// (intermediate, root) → signed by it.
    signed: BTreeMap<(&'a Intermediate, &'a str), bool>,
    /// Each root's CRL: the root whose ca-crl.pem holds it, and where.
    root_crls: BTreeMap<&'a str, Result<(&'a str, usize), String>>,
    /// Each intermediate's CRL.
    intermediate_crls: BTreeMap<&'a Intermediate, Result<(&'a str, usize), String>>,
    /// Each leaf: its SPIFFE trust domain once it proved itself against its intermediate.
    leaf_checks: BTreeMap<(&'a Intermediate, &'a str), Result<String, String>>,
    /// Each root: fit to anchor an intermediate now.
    root_checks: BTreeMap<&'a str, Result<(), String>>,
}

/// The leaf against its intermediate: signature, CA flag, validity, SPIFFE ID.
fn check_leaf(
    leaf: &X509Certificate,
    ca: &X509Certificate,
    now: OffsetDateTime,
) -> Result<String, String> {
    if !(leaf.issuer().as_raw() == ca.subject().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok())
    {
        return Err("the workload certificate is not signed by the intermediate".to_owned());
    }
    let ca_ok = ca
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !ca_ok {
        return Err("the intermediate is not a CA".to_owned());
    }
    if !valid_at(leaf, now) {
        return Err("the workload certificate is not valid now".to_owned());
    }
    if !valid_at(ca, now) {
        return Err("the intermediate is not valid now".to_owned());
    }
    spiffe_domain(leaf).ok_or_else(|| "the workload certificate has no SPIFFE ID".to_owned())
}

/// A root fit to anchor an intermediate now.
fn check_root(name: &str, root: &X509Certificate, now: OffsetDateTime) -> Result<(), String> {
    if root
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.path_len_constraint == Some(0))
    {
        return Err(format!(
            "root `{name}` has pathlen:0 and allows no intermediate"
        ));
    }
    if !valid_at(root, now) {
        return Err(format!("root `{name}` is not valid now"));
    }
    Ok(())
}

fn cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("not a certificate: {e}"))
}

impl<'a> Parsed<'a> {
    fn new(material: &'a Material, now: OffsetDateTime) -> Result<Parsed<'a>, String> {
        let mut roots = BTreeMap::new();
        for (name, der) in &material.roots {
            roots.insert(
                name.as_str(),
                cert(der).map_err(|e| format!("root `{name}`: {e}"))?,
            );
        }
        let mut intermediates = BTreeMap::new();
        for (intermediate, der) in &material.intermediates {
            let what = intermediate.path();
            intermediates.insert(intermediate, cert(der).map_err(|e| format!("{what}: {e}"))?);
        }
        let mut leaves = BTreeMap::new();
        for ((intermediate, domain), der) in &material.leaves {
            let what = intermediate.path();
            leaves.insert(
                (intermediate, domain.as_str()),
                cert(der).map_err(|e| format!("leaf of {what}: {e}"))?,
            );
        }
        let mut crls = BTreeMap::new();
        for (name, list) in &material.crls {
            let mut parsed = Vec::new();
            for der in list {
                let (_, crl) = CertificateRevocationList::from_der(der)
                    .map_err(|e| format!("{name}/ca-crl.pem: not a CRL: {e}"))?;
                parsed.push(crl);
            }
            crls.insert(name.as_str(), parsed);
        }
        let mut signed = BTreeMap::new();
        for (intermediate, ca) in &intermediates {
            for (name, root) in &roots {
                let ok = ca.issuer().as_raw() == root.subject().as_raw()
                    && ca.verify_signature(Some(root.public_key())).is_ok();
                signed.insert((*intermediate, *name), ok);
            }
        }
        let root_crls = roots
            .iter()
            .map(|(name, root)| (*name, find_crl(&crls, root, now)))
            .collect();
        let intermediate_crls = intermediates
            .iter()
            .map(|(i, ca)| (*i, find_crl(&crls, ca, now)))
            .collect();
        let leaf_checks = leaves
            .iter()
            .map(|(key, leaf)| {
                let checked = match intermediates.get(key.0) {
                    Some(ca) => check_leaf(leaf, ca, now),
                    None => Err(format!(
                        "the CA directory has no intermediate {}",
                        key.0.path()
                    )),
                };
                (*key, checked)
            })
            .collect();
        let root_checks = roots
            .iter()
            .map(|(name, root)| (*name, check_root(name, root, now)))
            .collect();
        Ok(Parsed {
            leaf_checks,
            root_checks,
            root_crls,
            intermediate_crls,
            roots,
            intermediates,
            leaves,
            crls,
            signed,
        })
    }
}

fn valid_at(cert: &X509Certificate, now: OffsetDateTime) -> bool {
    let v = cert.validity();
    v.not_before.to_datetime() <= now && now <= v.not_after.to_datetime()
}

fn spiffe_domain(leaf: &X509Certificate) -> Option<String> {
    let names = leaf.subject_alternative_name().ok().flatten()?;
    names.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(uri) => uri
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned),
        _ => None,
    })
}

/// Where the CRL of `issuer` is: the root whose ca-crl.pem holds it and its place there,
/// found by name and signature (two CAs may share a name, as a cluster's intermediates under
/// two roots do; a verifier tells them apart by authority key identifier), valid at `now`.
fn find_crl<'a>(
    crls: &BTreeMap<&'a str, Vec<CertificateRevocationList<'a>>>,
    issuer: &X509Certificate,
    now: OffsetDateTime,
) -> Result<(&'a str, usize), String> {
    let mut named = false;
    for (file, list) in crls {
        for (index, crl) in list.iter().enumerate() {
            if crl.issuer().as_raw() != issuer.subject().as_raw() {
                continue;
            }
            named = true;
            if crl.verify_signature(issuer.public_key()).is_err() {
                continue;
            }
            if crl
                .next_update()
                .is_some_and(|next| next.to_datetime() < now)
            {
                return Err(format!(
                    "the CRL of `{}` in {file}/ca-crl.pem is out of date",
                    issuer.subject()
                ));
            }
            return Ok((*file, index));
        }
    }
    Err(if named {
        format!(
            "no CRL of `{}` in ca-crl.pem is signed by that CA",
            issuer.subject()
        )
    } else {
        format!(
            "ca-crl.pem holds no CRL of `{}` (a CRL for one CA of a chain is needed for every CA of it)",
            issuer.subject()
        )
    })
}

/// The CRL `found` for a CA, when the verifier carries the file that holds it.
fn usable<'p, 'a>(
    parsed: &'p Parsed<'a>,
    roots: &[&str],
    found: Option<&Result<(&'a str, usize), String>>,
    whose: String,
) -> Result<&'p CertificateRevocationList<'a>, String> {
    match found {
        Some(Ok((file, index))) if roots.contains(file) => parsed
            .crls
            .get(file)
            .and_then(|list| list.get(*index))
            .ok_or_else(|| format!("no CRL of {whose}")),
        Some(Ok((file, _))) => Err(format!(
            "the CRL of {whose} is in {file}/ca-crl.pem, which it does not carry"
        )),
        Some(Err(reason)) => Err(reason.clone()),
        None => Err(format!("no CRL of {whose}")),
    }
}

fn lists(crl: &CertificateRevocationList, cert: &X509Certificate) -> bool {
    crl.iter_revoked_certificates()
        .any(|r| r.raw_serial() == cert.raw_serial())
}

/// Whether Y (its view) accepts the leaf of `intermediate`; `Err` says why not.
fn verify(
    parsed: &Parsed,
    (intermediate, domain): (&Intermediate, &str),
    view: &View,
    aliases: &[String],
) -> Result<(), String> {
    let Some(ca) = parsed.intermediates.get(intermediate) else {
        return Err(format!(
            "the CA directory has no intermediate {}",
            intermediate.path()
        ));
    };
    let Some(leaf) = parsed.leaves.get(&(intermediate, domain)) else {
        return Err(format!(
            "no workload certificate of {} for {domain} was issued",
            intermediate.path()
        ));
    };
    // Checked once per leaf (signature, CA flag, validity, SPIFFE ID), not per pair.
    let workload_domain = match parsed.leaf_checks.get(&(intermediate, domain)) {
        Some(Ok(found)) => found.as_str(),
        Some(Err(reason)) => return Err(reason.clone()),
        None => return Err("the workload certificate was not checked".to_owned()),
    };
    let root = view
        .roots
        .iter()
        .find(|r| parsed.signed.get(&(intermediate, **r)).copied() == Some(true));
    let Some(root_name) = root else {
        return Err(format!(
            "its bundle holds root(s) {}, and the intermediate was signed by root `{}`",
            view.roots
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", "),
            intermediate.root
        ));
    };
    if !parsed.roots.contains_key(root_name) {
        return Err(format!("no root `{root_name}`"));
    }
    if let Some(Err(reason)) = parsed.root_checks.get(root_name) {
        return Err(reason.clone());
    }
    if workload_domain != view.domain && !aliases.iter().any(|a| a == workload_domain) {
        return Err(format!(
            "its trust domain is {}, the workload's {workload_domain}, and no alias covers it",
            view.domain
        ));
    }
    if view.crl {
        // The CRL must come with Y's ca-crl.pem: the files of the roots Y trusts.
        let root_crl = usable(
            parsed,
            &view.roots,
            parsed.root_crls.get(root_name),
            format!("root `{root_name}`"),
        )?;
        if lists(root_crl, ca) {
            return Err(format!(
                "the intermediate is revoked by root `{root_name}`'s CRL"
            ));
        }
        let int_crl = usable(
            parsed,
            &view.roots,
            parsed.intermediate_crls.get(intermediate),
            format!("the intermediate {}", intermediate.path()),
        )?;
        if lists(int_crl, leaf) {
            return Err("the workload certificate is revoked".to_owned());
        }
    }
    Ok(())
}

/// Proves every phase of `trust` with `material`, at `now`.
pub fn prove(trust: &Trust, material: &Material, now: OffsetDateTime) -> Result<Summary, String> {
    let parsed = Parsed::new(material, now)?;
    let mut summary = Summary::default();
    for (k, phase) in trust.phases.iter().enumerate() {
        let combos: Vec<(usize, usize)> = if k == 0 {
            vec![(0, 0)]
        } else {
            vec![(k, k), (k - 1, k), (k, k - 1)]
        };
        for (fx, fy) in combos {
            let (px, py) = (&trust.phases[fx], &trust.phases[fy]);
            for x in &px.clusters {
                for y in &py.clusters {
                    // Two meshes not yet joined need not trust each other.
                    if !px.connected(&x.cluster, &y.cluster)
                        || !py.connected(&x.cluster, &y.cluster)
                    {
                        continue;
                    }
                    let view = View {
                        roots: y.trust.iter().map(String::as_str).collect(),
                        crl: py.crl,
                        domain: &y.trust_domain,
                    };
                    let revoked = py.crl && py.revokes(&x.signer);
                    let outcome =
                        verify(&parsed, (&x.signer, &x.trust_domain), &view, &trust.aliases);
                    let failure = |reason: String, revoked_accepted: bool| Failure {
                        phase: phase.name.clone(),
                        from: (x.cluster.clone(), px.name.clone()),
                        to: (y.cluster.clone(), py.name.clone()),
                        intermediate: x.signer.clone(),
                        reason,
                        revoked_accepted,
                    };
                    match (outcome, revoked) {
                        (Ok(()), false) => summary.accepted += 1,
                        (Err(_), true) => summary.refused += 1,
                        (Err(reason), false) => summary.failures.push(failure(reason, false)),
                        (Ok(()), true) => summary.failures.push(failure(
                            format!(
                                "the intermediate is revoked in phase `{}` but its ca-crl.pem does not list it",
                                py.name
                            ),
                            true,
                        )),
                    }
                }
            }
        }
        // No intermediate revoked as of this phase is accepted anywhere in it.
        if phase.crl {
            for revoked in &phase.revoked {
                for y in phase
                    .clusters
                    .iter()
                    .filter(|y| phase.connected(&revoked.cluster, &y.cluster))
                {
                    let view = View {
                        roots: y.trust.iter().map(String::as_str).collect(),
                        crl: true,
                        domain: &y.trust_domain,
                    };
                    match verify(&parsed, (revoked, &y.trust_domain), &view, &trust.aliases) {
                        Err(_) => summary.refused += 1,
                        Ok(()) => summary.failures.push(Failure {
                            phase: phase.name.clone(),
                            from: (revoked.cluster.clone(), "revoked".to_owned()),
                            to: (y.cluster.clone(), phase.name.clone()),
                            intermediate: revoked.clone(),
                            reason:
                                "the intermediate is revoked but its ca-crl.pem does not list it"
                                    .to_owned(),
                            revoked_accepted: true,
                        }),
                    }
                }
            }
        }
    }
    Ok(summary)
}

/// The trust domains each intermediate signs for, over every phase (revoked ones included,
/// for every domain of the phase that revokes them): the leaves [`prove`] needs.
pub fn leaves_needed(trust: &Trust) -> Vec<(Intermediate, String)> {
    let mut needed: Vec<(Intermediate, String)> = Vec::new();
    for phase in &trust.phases {
        for c in &phase.clusters {
            needed.push((c.signer.clone(), c.trust_domain.clone()));
        }
        for revoked in &phase.revoked {
            for c in &phase.clusters {
                needed.push((revoked.clone(), c.trust_domain.clone()));
            }
        }
    }
    needed.sort();
    needed.dedup();
    needed
}

/// Issues, in memory, a workload certificate for each of `needed` from its intermediate
/// (certificate PEM and key); one leaf key serves them all. Intermediates without material
/// get none ([`prove`] then says the CA directory lacks them).
pub fn issue_leaves(
    needed: &[(Intermediate, String)],
    signers: &BTreeMap<Intermediate, (String, rcgen::KeyPair)>,
    now: OffsetDateTime,
) -> Result<BTreeMap<(Intermediate, String), Vec<u8>>, String> {
    use crate::certs::issue;
    let key =
        issue::generate_key(crate::certs::KeyAlgorithm::EcdsaP256).map_err(|e| e.to_string())?;
    let validity = issue::Validity::days_from(now - time::Duration::hours(1), 1);
    let mut leaves = BTreeMap::new();
    for (intermediate, domain) in needed {
        let Some((cert_pem, ca_key)) = signers.get(intermediate) else {
            continue;
        };
        let params = issue::workload_params(domain, "default", "default", validity)
            .map_err(|e| e.to_string())?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, ca_key)
            .map_err(|e| format!("{}: {e}", intermediate.path()))?;
        let leaf = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("{}: {e}", intermediate.path()))?;
        leaves.insert((intermediate.clone(), domain.clone()), leaf.der().to_vec());
    }
    Ok(leaves)
}
