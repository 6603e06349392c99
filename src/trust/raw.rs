//! `[mesh.trust]` as written: a serde mirror with spans (see `docs/plan-format.md`,
//! "Rotating and joining trust").

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// `[mesh.trust]` (addition): the mesh's trust over time. Several roots, the phases the mesh
/// goes through (which roots each cluster trusts, which root signs its intermediate), a
/// revoked intermediate, and the trust domains of two meshes joining. Without it the mesh has
/// one root and nothing changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// Trust domains accepted besides each cluster's own (`meshConfig.trustDomainAliases`):
    /// the other mesh's trust domain while two meshes join.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub aliases: Vec<Spanned<String>>,
    /// `[[mesh.trust.root]]`: every root the phases name, oldest first.
    #[serde(default)]
    #[schemars(with = "Vec<TrustRoot>")]
    pub root: Vec<Spanned<TrustRoot>>,
    /// `[[mesh.trust.phase]]`: the phases in order; the first is where the mesh is today.
    #[serde(default)]
    #[schemars(with = "Vec<TrustPhase>")]
    pub phase: Vec<Spanned<TrustPhase>>,
}

/// `[[mesh.trust.root]]`: one root CA, kept by `meshplan certs` in `DIR/<name>/`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustRoot {
    /// The root's name: a DNS-1123 label, the directory `DIR/<name>/` of the CA directory.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The root certificate's SHA-256 fingerprint (`AB:CD:…`, as `meshplan certs` and
    /// `openssl x509 -noout -fingerprint -sha256` print it). Optional; when every root of a
    /// phase has one, verify-trust.sh checks the clusters hold exactly those roots and
    /// `check --certs` that DIR holds them.
    #[schemars(with = "Option<String>")]
    pub fingerprint: Option<Spanned<String>>,
}

/// `[[mesh.trust.phase]]`: what every cluster trusts and signs with in one phase.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustPhase {
    /// The phase's name: a DNS-1123 label, unique.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The roots in every cluster's `root-cert.pem` (its trust bundle), by name.
    #[schemars(with = "Vec<String>")]
    pub trust: Spanned<Vec<Spanned<String>>>,
    /// The root that signs every cluster's intermediate (one of `trust`).
    #[schemars(with = "String")]
    pub sign: Spanned<String>,
    /// Clusters whose intermediate of the phase before is revoked in this one: it is listed in
    /// `ca-crl.pem`, and the cluster gets a new intermediate from this phase on.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub revoke: Vec<Spanned<String>>,
    /// `[[mesh.trust.phase.override]]`: clusters that trust, sign or name themselves
    /// otherwise in this phase (the clusters of a mesh that joins).
    #[serde(default, rename = "override")]
    #[schemars(with = "Vec<TrustOverride>")]
    pub overrides: Vec<Spanned<TrustOverride>>,
}

/// `[[mesh.trust.phase.override]]`: the phase's settings for some clusters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustOverride {
    /// The clusters this applies to.
    #[schemars(with = "Vec<String>")]
    pub clusters: Spanned<Vec<Spanned<String>>>,
    /// Their trust bundle instead of the phase's.
    #[schemars(with = "Option<Vec<String>>")]
    pub trust: Option<Spanned<Vec<Spanned<String>>>>,
    /// The root that signs their intermediate instead of the phase's.
    #[schemars(with = "Option<String>")]
    pub sign: Option<Spanned<String>>,
    /// Their trust domain in this phase (`meshConfig.trustDomain`) instead of
    /// `mesh.trust_domain`: the joining mesh's own until its workloads move over.
    #[schemars(with = "Option<String>")]
    pub trust_domain: Option<Spanned<String>>,
    /// `true`: in this phase these clusters are still a mesh of their own, not yet connected
    /// to the rest (no remote secrets, no east-west traffic between the two), so the proof does
    /// not ask the two sides to trust each other. Default `false`.
    #[schemars(with = "Option<bool>")]
    pub apart: Option<Spanned<bool>>,
}
