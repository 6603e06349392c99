//! The mesh's trust over time (`[mesh.trust]`): several roots, the phases a rotation, a merge
//! of two meshes or a revocation goes through, and the proof that each phase keeps every
//! cluster trusting every other.
//!
//! - [`raw`]: the table as written;
//! - this module: its rules (coded `meshplan::trust::*` findings) and the validated [`Trust`]:
//!   for every phase, what each cluster trusts, which intermediate signs its workloads, what
//!   is revoked;
//! - [`ca`]: `meshplan certs` and `check --certs` for a plan with phases: one CA directory per
//!   root (`DIR/<root>/`, the layout of a one-root mesh), CRLs, the matrix;
//! - [`matrix`]: the proof, over certificates in memory;
//! - [`steps`]: each phase's files and steps as data, for the tree's `trust.sh` and README.
//!
//! A plan without `[mesh.trust]` has none of this, and its outputs are unchanged.

pub mod ca;
pub mod matrix;
pub mod raw;
pub mod steps;

use miette::{Diagnostic, SourceSpan};
use serde::Serialize;
use thiserror::Error;
use toml::Spanned;

use crate::diagnostic::at;
use crate::raw::Dataplane;
use crate::validate::{Facts, Findings};

/// Istio's upstream issue on several roots in ambient mode.
pub const AMBIENT_MULTIROOT_ISSUE: &str = "https://github.com/istio/istio/issues/61719";

/// The validated `[mesh.trust]`.
#[derive(Debug, Clone, Serialize)]
pub struct Trust {
    /// Every root, in plan order (oldest first).
    pub roots: Vec<Root>,
    /// Trust domains every cluster accepts besides its own.
    pub aliases: Vec<String>,
    /// The phases in order.
    pub phases: Vec<Phase>,
}

/// A root of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    /// Its name, the directory `DIR/<name>/`.
    pub name: String,
    /// Its SHA-256 fingerprint, when the plan records it.
    pub fingerprint: Option<String>,
}

/// One intermediate CA: the cluster it serves, the root that signed it, its generation (a
/// revocation gives the cluster a new one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Intermediate {
    /// The root that signs it.
    pub root: String,
    /// The cluster whose istiod signs with it.
    pub cluster: String,
    /// 1 at first; one more after each revocation of the cluster's intermediate.
    pub generation: u32,
}

impl Intermediate {
    /// Its directory inside `DIR/<root>/`: the cluster's name, then `.N` from generation 2
    /// (cluster names hold no dot, so the two never meet).
    pub fn unit(&self) -> String {
        unit_name(&self.cluster, self.generation)
    }

    /// `DIR/<root>/<unit>`, relative.
    pub fn path(&self) -> String {
        format!("{}/{}", self.root, self.unit())
    }
}

/// The directory name of generation `generation` of `cluster`'s intermediate.
pub fn unit_name(cluster: &str, generation: u32) -> String {
    if generation <= 1 {
        cluster.to_owned()
    } else {
        format!("{cluster}.{generation}")
    }
}

/// The cluster an intermediate's directory name serves (`east.2` → `east`).
pub fn unit_cluster(unit: &str) -> &str {
    unit.split('.').next().unwrap_or(unit)
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Its name.
    pub name: String,
    /// Each cluster's state, in plan order.
    pub clusters: Vec<ClusterState>,
    /// Every intermediate revoked as of this phase (this one's and earlier ones').
    pub revoked: Vec<Intermediate>,
    /// Whether the clusters carry `ca-crl.pem` in this phase.
    pub crl: bool,
    /// Whether any cluster's bundle holds several roots, or a bundle changes from the phase
    /// before: istiod then needs `ISTIO_MULTIROOT_MESH=true` (and proxies
    /// `PROXY_CONFIG_XDS_AGENT=true`) to take and push the new bundle.
    pub multiroot: bool,
}

/// What one cluster trusts and signs with in a phase. A remote runs no istiod: its
/// workloads' certificates and its published bundle are its primary's.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterState {
    /// The cluster.
    pub cluster: String,
    /// The cluster whose istiod serves it (itself, or a remote's primary).
    pub served_by: String,
    /// The roots in its `root-cert.pem`, in plan order.
    pub trust: Vec<String>,
    /// The intermediate that signs its workloads.
    pub signer: Intermediate,
    /// The trust domain of its workloads' identities.
    pub trust_domain: String,
    /// Whether it is still in a mesh of its own in this phase (an override with `apart`).
    pub apart: bool,
}

impl Phase {
    /// Whether `a` and `b` are connected in this phase (so must trust each other).
    pub fn connected(&self, a: &str, b: &str) -> bool {
        match (self.state(a), self.state(b)) {
            (Some(a), Some(b)) => a.apart == b.apart,
            _ => true,
        }
    }
}

impl Phase {
    /// The state of `cluster`.
    pub fn state(&self, cluster: &str) -> Option<&ClusterState> {
        self.clusters.iter().find(|c| c.cluster == cluster)
    }

    /// Whether `intermediate` is revoked in this phase.
    pub fn revokes(&self, intermediate: &Intermediate) -> bool {
        self.revoked.contains(intermediate)
    }
}

impl Trust {
    /// Every intermediate some phase signs with, sorted.
    pub fn intermediates(&self) -> Vec<Intermediate> {
        let mut all: Vec<Intermediate> = self
            .phases
            .iter()
            .flat_map(|p| p.clusters.iter().map(|c| c.signer.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The intermediates under `root`.
    pub fn intermediates_of(&self, root: &str) -> Vec<Intermediate> {
        self.intermediates()
            .into_iter()
            .filter(|i| i.root == root)
            .collect()
    }

    /// Whether some phase needs istiod's `ISTIO_MULTIROOT_MESH` and the proxies'
    /// `PROXY_CONFIG_XDS_AGENT`: the install files then carry both for every phase, so no
    /// phase is an Istio upgrade.
    pub fn multiroot(&self) -> bool {
        self.phases.iter().any(|p| p.multiroot)
    }

    /// The trust domain `cluster`'s install files carry: its trust domain in the first phase,
    /// where the mesh is today.
    pub fn install_domain(&self, cluster: &str) -> Option<&str> {
        self.phases
            .first()?
            .state(cluster)
            .map(|s| s.trust_domain.as_str())
    }

    /// Whether any phase carries a CRL.
    pub fn has_crl(&self) -> bool {
        self.phases.iter().any(|p| p.crl)
    }

    /// Every intermediate revoked in some phase.
    pub fn revoked(&self) -> Vec<Intermediate> {
        self.phases
            .last()
            .map(|p| p.revoked.clone())
            .unwrap_or_default()
    }
}

/// A rule of `[mesh.trust]` broken.
#[derive(Debug, Error, Diagnostic)]
pub enum TrustError {
    #[error("{what} `{name}` is not a DNS-1123 label")]
    #[diagnostic(
        code(meshplan::trust::name),
        help(
            "use up to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit: a root's name is its directory in the CA directory, a phase's is an argument of trust.sh"
        )
    )]
    Name {
        what: &'static str,
        name: String,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("{what} `{name}` is declared twice")]
    #[diagnostic(
        code(meshplan::trust::duplicate),
        help("give each root and each phase a name of its own")
    )]
    Duplicate {
        what: &'static str,
        name: String,
        #[label("again here")]
        at: SourceSpan,
    },

    #[error("[mesh.trust] has no {what}")]
    #[diagnostic(
        code(meshplan::trust::empty),
        help(
            "declare every root with `[[mesh.trust.root]] name = \"...\"` and at least one `[[mesh.trust.phase]]`, the first being where the mesh is today (docs/plan-format.md, \"Rotating and joining trust\")"
        )
    )]
    Empty {
        what: &'static str,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("no root `{name}` in [[mesh.trust.root]]")]
    #[diagnostic(code(meshplan::trust::unknown_root), help("the roots: {roots}"))]
    UnknownRoot {
        name: String,
        roots: String,
        #[label("not declared")]
        at: SourceSpan,
    },

    #[error("no cluster `{name}` in the plan")]
    #[diagnostic(
        code(meshplan::trust::unknown_cluster),
        help("the clusters: {clusters}")
    )]
    UnknownCluster {
        name: String,
        clusters: String,
        #[label("not a [[cluster]]")]
        at: SourceSpan,
    },

    #[error("`{cluster}` is a remote: its workloads' certificates come from `{primary}`'s istiod")]
    #[diagnostic(
        code(meshplan::trust::remote),
        help(
            "a remote runs no istiod and has no intermediate of its own; it trusts and signs as its primary does. Name `{primary}` instead"
        )
    )]
    Remote {
        cluster: String,
        primary: String,
        #[label("a remote")]
        at: SourceSpan,
    },

    #[error(
        "phase `{phase}`: {whose} would be signed by root `{sign}`, which is not in its `trust`"
    )]
    #[diagnostic(
        code(meshplan::trust::sign_untrusted),
        help(
            "istiod checks its intermediate against its own root-cert.pem when it starts and refuses one that does not chain to it: add `{sign}` to `trust`"
        )
    )]
    SignUntrusted {
        phase: String,
        whose: String,
        sign: String,
        #[label("not in trust")]
        at: SourceSpan,
    },

    #[error("phase `{phase}` of an ambient mesh has several roots: {roots}")]
    #[diagnostic(
        code(meshplan::trust::ambient_multiroot),
        help(
            "ztunnel takes only its own cluster's CA root as a trust anchor, so in ambient mode a second root breaks cross-cluster traffic (`BadSignature` from the peer's east-west gateway): https://github.com/istio/istio/issues/61719. Until that is fixed upstream, an ambient mesh keeps one root: rotate by re-issuing intermediates under the same root, or move the mesh to sidecars for the rotation"
        )
    )]
    AmbientMultiroot {
        phase: String,
        roots: String,
        #[label("more than one root in an ambient mesh")]
        at: SourceSpan,
    },

    #[error(
        "phase `{phase}`: `{from}`'s workloads are spiffe://{domain}/..., which `{to}` (trust domain {to_domain}) does not accept"
    )]
    #[diagnostic(
        code(meshplan::trust::domain_mismatch),
        help(
            "a proxy accepts a peer only from its own trust domain or one of meshConfig.trustDomainAliases; add `{domain}` to `[mesh.trust] aliases` for the phases the two trust domains meet"
        )
    )]
    DomainMismatch {
        phase: String,
        from: String,
        domain: String,
        to: String,
        to_domain: String,
        #[label("not accepted everywhere")]
        at: SourceSpan,
    },

    #[error("the first phase `{phase}` revokes `{cluster}`'s intermediate")]
    #[diagnostic(
        code(meshplan::trust::revoke_first),
        help(
            "the first phase is where the mesh is today; revoke in a later phase, which replaces the cluster's intermediate of the phase before"
        )
    )]
    RevokeFirst {
        phase: String,
        cluster: String,
        #[label("in the first phase")]
        at: SourceSpan,
    },

    #[error("phases `{first}` and `{phase}` both revoke intermediates")]
    #[diagnostic(
        code(meshplan::trust::revoke_twice),
        help(
            "each root's ca-crl.pem lists every intermediate the plan revokes, so one plan revokes in one phase; plan a later revocation as a new plan whose first phase is where this one ends"
        )
    )]
    RevokeTwice {
        first: String,
        phase: String,
        #[label("a second revoking phase")]
        at: SourceSpan,
    },

    #[error("fingerprint `{value}` of root `{root}` is not a SHA-256 fingerprint")]
    #[diagnostic(
        code(meshplan::trust::fingerprint),
        help(
            "write it as `meshplan certs` and `openssl x509 -noout -fingerprint -sha256 -in root-cert.pem` print it: 32 hexadecimal bytes separated by `:`"
        )
    )]
    Fingerprint {
        root: String,
        value: String,
        #[label("32 bytes as AB:CD:...")]
        at: SourceSpan,
    },
}

/// Whether `value` is a SHA-256 fingerprint as openssl prints it.
fn is_fingerprint(value: &str) -> bool {
    let parts: Vec<&str> = value.split(':').collect();
    parts.len() == 32
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Checks `[mesh.trust]`, returning the validated trust when it holds (and the plan's
/// clusters are valid enough to say).
pub fn check(facts: &Facts, out: &mut Findings) -> Option<Trust> {
    let mesh = facts.plan.mesh.get_ref();
    let spanned = mesh.trust.as_ref()?;
    let table = spanned.get_ref();
    let before = out.has_errors();
    let mut errs: Vec<TrustError> = Vec::new();
    // Roots.
    let mut roots: Vec<Root> = Vec::new();
    for root in &table.root {
        let r = root.get_ref();
        let name = r.name.get_ref();
        if !is_label(name) {
            errs.push(TrustError::Name {
                what: "root",
                name: name.clone(),
                at: at(&r.name),
            });
        }
        if roots.iter().any(|known| &known.name == name) {
            errs.push(TrustError::Duplicate {
                what: "root",
                name: name.clone(),
                at: at(&r.name),
            });
        }
        let fingerprint = r.fingerprint.as_ref().map(|f| {
            let value = f.get_ref().trim().to_ascii_uppercase();
            if !is_fingerprint(&value) {
                errs.push(TrustError::Fingerprint {
                    root: name.clone(),
                    value: f.get_ref().clone(),
                    at: at(f),
                });
            }
            value
        });
        roots.push(Root {
            name: name.clone(),
            fingerprint,
        });
    }
    if table.root.is_empty() {
        errs.push(TrustError::Empty {
            what: "[[mesh.trust.root]]",
            at: at(spanned),
        });
    }
    if table.phase.is_empty() {
        errs.push(TrustError::Empty {
            what: "[[mesh.trust.phase]]",
            at: at(spanned),
        });
    }
    let root_names = roots
        .iter()
        .map(|r| format!("`{}`", r.name))
        .collect::<Vec<_>>()
        .join(", ");
    let cluster_names = facts
        .clusters
        .iter()
        .map(|c| format!("`{}`", c.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let known_root = |name: &Spanned<String>, errs: &mut Vec<TrustError>| {
        if !roots.iter().any(|r| &r.name == name.get_ref()) {
            errs.push(TrustError::UnknownRoot {
                name: name.get_ref().clone(),
                roots: root_names.clone(),
                at: at(name),
            });
        }
    };
    // A primary's name, or the finding for a remote / unknown cluster.
    let primary_of = |name: &Spanned<String>, errs: &mut Vec<TrustError>| -> bool {
        match facts.cluster(name.get_ref()) {
            None => {
                errs.push(TrustError::UnknownCluster {
                    name: name.get_ref().clone(),
                    clusters: cluster_names.clone(),
                    at: at(name),
                });
                false
            }
            Some(c) if *c.raw.get_ref().role.get_ref() == crate::raw::Role::Remote => {
                errs.push(TrustError::Remote {
                    cluster: name.get_ref().clone(),
                    primary: c
                        .raw
                        .get_ref()
                        .primary
                        .as_ref()
                        .map(|p| p.get_ref().clone())
                        .unwrap_or_default(),
                    at: at(name),
                });
                false
            }
            Some(_) => true,
        }
    };
    let mut phase_names: Vec<&str> = Vec::new();
    let mut first_revoking: Option<&str> = None;
    for (index, phase) in table.phase.iter().enumerate() {
        let p = phase.get_ref();
        let name = p.name.get_ref();
        if !is_label(name) {
            errs.push(TrustError::Name {
                what: "phase",
                name: name.clone(),
                at: at(&p.name),
            });
        }
        if phase_names.contains(&name.as_str()) {
            errs.push(TrustError::Duplicate {
                what: "phase",
                name: name.clone(),
                at: at(&p.name),
            });
        }
        phase_names.push(name);
        for root in p.trust.get_ref() {
            known_root(root, &mut errs);
        }
        known_root(&p.sign, &mut errs);
        if !p
            .trust
            .get_ref()
            .iter()
            .any(|r| r.get_ref() == p.sign.get_ref())
        {
            errs.push(TrustError::SignUntrusted {
                phase: name.clone(),
                whose: "every cluster's intermediate".to_owned(),
                sign: p.sign.get_ref().clone(),
                at: at(&p.sign),
            });
        }
        for cluster in &p.revoke {
            primary_of(cluster, &mut errs);
            if index == 0 {
                errs.push(TrustError::RevokeFirst {
                    phase: name.clone(),
                    cluster: cluster.get_ref().clone(),
                    at: at(cluster),
                });
            }
        }
        if let Some(first) = p.revoke.first() {
            match first_revoking {
                Some(earlier) => errs.push(TrustError::RevokeTwice {
                    first: earlier.to_owned(),
                    phase: name.clone(),
                    at: at(first),
                }),
                None => first_revoking = Some(name),
            }
        }
        for o in &p.overrides {
            let o = o.get_ref();
            for cluster in o.clusters.get_ref() {
                primary_of(cluster, &mut errs);
            }
            for root in o.trust.iter().flat_map(|t| t.get_ref()) {
                known_root(root, &mut errs);
            }
            if let Some(sign) = &o.sign {
                known_root(sign, &mut errs);
            }
            let trust = o.trust.as_ref().unwrap_or(&p.trust);
            let sign = o.sign.as_ref().unwrap_or(&p.sign);
            if !trust
                .get_ref()
                .iter()
                .any(|r| r.get_ref() == sign.get_ref())
            {
                errs.push(TrustError::SignUntrusted {
                    phase: name.clone(),
                    whose: format!(
                        "the intermediate of {}",
                        o.clusters
                            .get_ref()
                            .iter()
                            .map(|c| format!("`{}`", c.get_ref()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    sign: sign.get_ref().clone(),
                    at: at(sign),
                });
            }
        }
    }
    let bad = !errs.is_empty();
    for err in errs {
        out.push(err);
    }
    if bad || before {
        return None;
    }
    let trust = build(facts, table, roots)?;
    semantic(facts, table, &trust, out).then_some(trust)
}

/// The validated model, once every name resolves.
fn build(facts: &Facts, table: &raw::Trust, roots: Vec<Root>) -> Option<Trust> {
    let mesh_domain = facts
        .plan
        .mesh
        .get_ref()
        .trust_domain
        .as_ref()
        .map_or_else(|| "cluster.local".to_owned(), |t| t.get_ref().clone());
    let mut generation: std::collections::BTreeMap<String, u32> = Default::default();
    let mut revoked: Vec<Intermediate> = Vec::new();
    let mut phases: Vec<Phase> = Vec::new();
    let mut crl = false;
    for p in &table.phase {
        let p = p.get_ref();
        let previous = phases.last();
        for cluster in &p.revoke {
            let name = cluster.get_ref();
            if let Some(state) = previous.and_then(|prev| prev.state(name)) {
                revoked.push(state.signer.clone());
            }
            *generation.entry(name.clone()).or_insert(1) += 1;
            crl = true;
        }
        // Primaries first, then remotes take their primary's state.
        let mut states: Vec<ClusterState> = Vec::new();
        for c in &facts.clusters {
            let raw = c.raw.get_ref();
            let name = c.name();
            let remote = *raw.role.get_ref() == crate::raw::Role::Remote;
            let served_by = if remote {
                raw.primary.as_ref()?.get_ref().clone()
            } else {
                name.to_owned()
            };
            let o = p.overrides.iter().map(|o| o.get_ref()).find(|o| {
                o.clusters
                    .get_ref()
                    .iter()
                    .any(|n| n.get_ref() == &served_by)
            });
            let trust_list = o.and_then(|o| o.trust.as_ref()).unwrap_or(&p.trust);
            let sign = o.and_then(|o| o.sign.as_ref()).unwrap_or(&p.sign);
            let trust_domain = o
                .and_then(|o| o.trust_domain.as_ref())
                .map_or_else(|| mesh_domain.clone(), |t| t.get_ref().clone());
            // Plan order of the roots, whatever order `trust` lists them in.
            let trust = roots
                .iter()
                .filter(|r| trust_list.get_ref().iter().any(|t| t.get_ref() == &r.name))
                .map(|r| r.name.clone())
                .collect();
            states.push(ClusterState {
                cluster: name.to_owned(),
                served_by: served_by.clone(),
                trust,
                signer: Intermediate {
                    root: sign.get_ref().clone(),
                    cluster: served_by.clone(),
                    generation: generation.get(&served_by).copied().unwrap_or(1),
                },
                trust_domain,
                apart: o
                    .and_then(|o| o.apart.as_ref())
                    .is_some_and(|a| *a.get_ref()),
            });
        }
        let multiroot = states.iter().any(|s| s.trust.len() > 1)
            || previous.is_some_and(|prev| {
                states
                    .iter()
                    .any(|s| prev.state(&s.cluster).is_some_and(|b| b.trust != s.trust))
            });
        phases.push(Phase {
            name: p.name.get_ref().clone(),
            clusters: states,
            revoked: revoked.clone(),
            crl,
            multiroot,
        });
    }
    Some(Trust {
        roots,
        aliases: table.aliases.iter().map(|a| a.get_ref().clone()).collect(),
        phases,
    })
}

/// Rules over the model: ambient with several roots, trust domains that do not meet.
fn semantic(facts: &Facts, table: &raw::Trust, trust: &Trust, out: &mut Findings) -> bool {
    let mut ok = true;
    let ambient = facts
        .plan
        .mesh
        .get_ref()
        .dataplane
        .as_ref()
        .is_some_and(|d| *d.get_ref() == Dataplane::Ambient);
    for (phase, raw_phase) in trust.phases.iter().zip(&table.phase) {
        let raw_phase = raw_phase.get_ref();
        let mut used: Vec<&str> = phase
            .clusters
            .iter()
            .flat_map(|c| c.trust.iter().map(String::as_str))
            .collect();
        used.sort_unstable();
        used.dedup();
        if ambient && used.len() > 1 {
            ok = false;
            out.push(TrustError::AmbientMultiroot {
                phase: phase.name.clone(),
                roots: used
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                at: at(&raw_phase.trust),
            });
        }
        'pairs: for from in &phase.clusters {
            for to in &phase.clusters {
                if from.apart != to.apart {
                    continue;
                }
                let accepted = from.trust_domain == to.trust_domain
                    || trust.aliases.contains(&from.trust_domain);
                if !accepted {
                    ok = false;
                    let span = raw_phase
                        .overrides
                        .iter()
                        .find(|o| {
                            o.get_ref()
                                .clusters
                                .get_ref()
                                .iter()
                                .any(|c| c.get_ref() == &from.served_by)
                        })
                        .and_then(|o| o.get_ref().trust_domain.as_ref().map(at))
                        .unwrap_or_else(|| at(&raw_phase.name));
                    out.push(TrustError::DomainMismatch {
                        phase: phase.name.clone(),
                        from: from.cluster.clone(),
                        domain: from.trust_domain.clone(),
                        to: to.cluster.clone(),
                        to_domain: to.trust_domain.clone(),
                        at: span,
                    });
                    break 'pairs;
                }
            }
        }
    }
    ok
}
