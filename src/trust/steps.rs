//! Each phase's files and steps as data: what `trust.sh` does and the tree's README says, so
//! the templates only loop over decisions made here.
//!
//! The Istio settings come from the pinned source: istiod takes a changed `root-cert.pem`
//! (a bundle of several roots, or one root replaced by another) only with
//! `ISTIO_MULTIROOT_MESH=true` (pilot/pkg/bootstrap/istio_ca.go: "Multi root is disabled,
//! updating new ROOT-CA not supported"), and then pushes the bundle to proxies over PCDS
//! (pilot/pkg/xds/pcds.go), which a proxy asks for only with `PROXY_CONFIG_XDS_AGENT=true`
//! (pilot/cmd/pilot-agent/options/options.go). istiod reads `ca-crl.pem` from the `cacerts`
//! Secret when present (`PILOT_ENABLE_CA_CRL`, on by default; pilot/pkg/bootstrap/istio_ca.go)
//! and hands it to proxies as `istio-ca-crl`.

use serde::Serialize;

use super::{Phase, Trust};
use crate::model::Plan;
use crate::raw::Role;

/// The whole procedure of `[mesh.trust]`.
#[derive(Debug, Clone, Serialize)]
pub struct TrustProcedure {
    /// The roots, in plan order, with their fingerprints where the plan records them.
    pub roots: Vec<RootExpect>,
    /// Trust domain aliases every cluster needs (`meshConfig.trustDomainAliases`).
    pub aliases: Vec<String>,
    /// Each phase.
    pub phases: Vec<PhaseSteps>,
}

/// A root and its fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct RootExpect {
    /// Its name (`$CERTS_DIR/<name>/`).
    pub name: String,
    /// Its SHA-256 fingerprint, when the plan records it.
    pub fingerprint: Option<String>,
}

/// One phase's files and steps.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSteps {
    /// 1-based position.
    pub number: usize,
    /// The phase's name.
    pub name: String,
    /// The phase before, if any.
    pub previous: Option<String>,
    /// istiod needs `ISTIO_MULTIROOT_MESH=true` and proxies `PROXY_CONFIG_XDS_AGENT=true`.
    pub multiroot: bool,
    /// The clusters carry `ca-crl.pem`.
    pub crl: bool,
    /// Intermediates revoked as of this phase (`root/unit`).
    pub revoked: Vec<String>,
    /// The `cacerts` Secret of each primary, in plan order (the order of the restarts).
    pub secrets: Vec<SecretFiles>,
    /// Every cluster's expected roots, as verify-trust.sh checks them.
    pub expect: Vec<Expect>,
    /// Istio settings the phase needs, each with the file of the tree that carries it.
    pub settings: Vec<String>,
    /// The steps in order, for people.
    pub steps: Vec<String>,
}

/// One primary's `cacerts` Secret in a phase: which files of `$CERTS_DIR` make it.
#[derive(Debug, Clone, Serialize)]
pub struct SecretFiles {
    /// The cluster.
    pub cluster: String,
    /// Its kubectl context.
    pub context: String,
    /// `root/unit`: the directory of ca-cert.pem, ca-key.pem and cert-chain.pem.
    pub signer: String,
    /// The roots whose root-cert.pem make its bundle, in order.
    pub trust: Vec<String>,
    /// The roots whose ca-crl.pem make its ca-crl.pem (empty: none).
    pub crl: Vec<String>,
    /// Its trust domain in this phase.
    pub trust_domain: String,
}

/// What verify-trust.sh expects of one cluster in a phase.
#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    /// The cluster.
    pub cluster: String,
    /// Its kubectl context.
    pub context: String,
    /// `primary` or `remote`.
    pub role: &'static str,
    /// The roots it must hold.
    pub roots: Vec<RootExpect>,
}

/// The procedure for a validated plan.
pub fn procedure(plan: &Plan, trust: &Trust) -> TrustProcedure {
    let phases = trust
        .phases
        .iter()
        .enumerate()
        .map(|(index, phase)| {
            phase_steps(
                plan,
                trust,
                index,
                phase,
                index.checked_sub(1).map(|i| &trust.phases[i]),
            )
        })
        .collect();
    TrustProcedure {
        roots: trust
            .roots
            .iter()
            .map(|r| RootExpect {
                name: r.name.clone(),
                fingerprint: r.fingerprint.clone(),
            })
            .collect(),
        aliases: trust.aliases.clone(),
        phases,
    }
}

fn phase_steps(
    plan: &Plan,
    trust: &Trust,
    index: usize,
    phase: &Phase,
    previous: Option<&Phase>,
) -> PhaseSteps {
    let context = |name: &str| {
        plan.clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.context.clone())
            .unwrap_or_default()
    };
    let role = |name: &str| {
        plan.clusters
            .iter()
            .find(|c| c.name == name)
            .map_or("primary", |c| {
                if c.role == Role::Remote {
                    "remote"
                } else {
                    "primary"
                }
            })
    };
    let secrets: Vec<SecretFiles> = phase
        .clusters
        .iter()
        .filter(|c| c.served_by == c.cluster)
        .map(|c| SecretFiles {
            cluster: c.cluster.clone(),
            context: context(&c.cluster),
            signer: c.signer.path(),
            trust: c.trust.clone(),
            crl: if phase.crl {
                c.trust.clone()
            } else {
                Vec::new()
            },
            trust_domain: c.trust_domain.clone(),
        })
        .collect();
    let expect = phase
        .clusters
        .iter()
        .map(|c| Expect {
            cluster: c.cluster.clone(),
            context: context(&c.cluster),
            role: role(&c.cluster),
            roots: c
                .trust
                .iter()
                .map(|name| RootExpect {
                    name: name.clone(),
                    fingerprint: trust
                        .roots
                        .iter()
                        .find(|r| &r.name == name)
                        .and_then(|r| r.fingerprint.clone()),
                })
                .collect(),
        })
        .collect();
    let settings = settings(plan, trust, phase);
    let mut steps: Vec<String> = install_step(trust, index, phase, &secrets)
        .into_iter()
        .collect();
    steps.extend(moved_domains(trust, phase, previous));
    steps.push(format!(
        "`CERTS_DIR=… bash trust.sh {}`: for each primary in turn, its `cacerts` Secret from the phase's files, then a restart of its istiod, waited for",
        phase.name
    ));
    if previous.is_some_and(|prev| prev.clusters.iter().any(|c| c.apart)) {
        let joined: Vec<&str> = phase
            .clusters
            .iter()
            .filter(|c| {
                previous
                    .and_then(|p| p.state(&c.cluster))
                    .is_some_and(|s| s.apart)
                    && !c.apart
            })
            .map(|c| c.cluster.as_str())
            .collect();
        if !joined.is_empty() {
            steps.push(format!(
                "Only now connect {} to the rest of the mesh (their remote secrets, scripts/remote-secrets.sh): every cluster trusts both roots",
                joined.join(", ")
            ));
        }
    }
    steps.push(format!(
        "`bash trust.sh {} restart`: restart the workloads of every injected namespace, so none keeps a certificate of the phase before",
        phase.name
    ));
    steps.push(format!(
        "`bash verify-trust.sh {}`: every cluster's `cacerts` Secret and `istio-ca-root-cert` ConfigMap hold exactly the phase's roots",
        phase.name
    ));
    PhaseSteps {
        number: index + 1,
        name: phase.name.clone(),
        previous: previous.map(|p| p.name.clone()),
        multiroot: phase.multiroot,
        crl: phase.crl,
        revoked: phase.revoked.iter().map(|i| i.path()).collect(),
        secrets,
        expect,
        settings,
        steps,
    }
}

/// The Istio settings a phase needs, each with where the tree's install files carry it.
fn settings(plan: &Plan, trust: &Trust, phase: &Phase) -> Vec<String> {
    let mut settings = Vec::new();
    if phase.multiroot {
        settings.push(
            "istiod: env `ISTIO_MULTIROOT_MESH=true` (`values.pilot.env` of istio/control-plane.yaml, `pilot.env` of helm/istiod.yaml)"
                .to_owned(),
        );
        settings.push(
            "proxies: `meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT: \"true\"` (a remote's proxies get it from their primary's istiod at injection)"
                .to_owned(),
        );
    }
    let mut domains: Vec<&str> = phase
        .clusters
        .iter()
        .map(|c| c.trust_domain.as_str())
        .collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in &domains {
        let whose: Vec<&str> = phase
            .clusters
            .iter()
            .filter(|c| c.served_by == c.cluster && c.trust_domain == *domain)
            .map(|c| c.cluster.as_str())
            .collect();
        if domains.len() > 1 || *domain != plan.mesh.trust_domain {
            settings.push(format!(
                "`meshConfig.trustDomain: {domain}` on {}",
                whose.join(", ")
            ));
        }
    }
    if !trust.aliases.is_empty() {
        settings.push(format!(
            "`meshConfig.trustDomainAliases: [{}]` on every primary",
            trust.aliases.join(", ")
        ));
    }
    settings
}

/// Where the phase's Istio settings come from: every primary's install files carry them for
/// every phase, applied once before the first (its `install.sh control-plane`, `CERTS_DIR`
/// at the root the primary signs with then, laid out as a one-root CA directory).
fn install_step(
    trust: &Trust,
    index: usize,
    phase: &Phase,
    secrets: &[SecretFiles],
) -> Option<String> {
    if index == 0 {
        let commands: Vec<String> = secrets
            .iter()
            .map(|s| {
                let root = s.signer.split('/').next().unwrap_or_default();
                format!(
                    "`CERTS_DIR=\"$CERTS_DIR/{root}\" bash {}/scripts/install.sh control-plane`",
                    s.cluster
                )
            })
            .collect();
        return Some(format!(
            "Every primary's install files (istio/control-plane.yaml or helm/istiod.yaml) carry the Istio settings of every phase{}, the trust domain of this one and the aliases: install or upgrade each primary's control plane with them once, before the first `trust.sh`: {}",
            if trust.multiroot() {
                " (ISTIO_MULTIROOT_MESH, PROXY_CONFIG_XDS_AGENT)"
            } else {
                ""
            },
            commands.join(", ")
        ));
    }
    phase.multiroot.then(|| {
        "The settings above come from every primary's install files, applied before the first phase (`install.sh control-plane`): `bash trust.sh PHASE` checks istiod has ISTIO_MULTIROOT_MESH and stops before changing anything if not".to_owned()
    })
}

/// A step for each primary whose trust domain moves in `phase` away from the one its install
/// files carry (the first phase's): that change is an Istio upgrade the tree does not write.
fn moved_domains(trust: &Trust, phase: &Phase, previous: Option<&Phase>) -> Vec<String> {
    phase
        .clusters
        .iter()
        .filter(|c| c.served_by == c.cluster)
        .filter_map(|c| {
            let installed = trust.install_domain(&c.cluster)?;
            let before = previous?.state(&c.cluster)?;
            (before.trust_domain != c.trust_domain && installed != c.trust_domain).then(|| {
                format!(
                    "{} moves from trust domain {installed} to {}: its install files carry the first phase's (`meshConfig.trustDomain: {installed}`); before `trust.sh`, reinstall its control plane with `meshConfig.trustDomain: {}` (the plan's aliases keep both accepted)",
                    c.cluster, c.trust_domain, c.trust_domain
                )
            })
        })
        .collect()
}
