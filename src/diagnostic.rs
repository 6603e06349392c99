//! The one diagnostic type: every finding of every stage, by family.
//!
//! Each family's variants live beside the rules that raise them (`parse.rs` for `plan`,
//! `validate/<family>.rs` for the others); this enum only gathers them. Codes are
//! `meshplan::<family>::<rule>`, listed with causes and fixes in `docs/diagnostics.md`.

use miette::{Diagnostic, Severity, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use crate::certs::CertError;
use crate::parse::PlanError;
use crate::validate::{
    cidr::CidrError, lb::LbError, names::NameError, network::NetworkError, node::NodeError,
    overlap::OverlapError, platform::PlatformError, pool::PoolError, role::RoleError,
    service::ServiceError, version::VersionError,
};

/// A finding about a plan: an error (stops compilation) or a warning.
#[derive(Debug, Error, Diagnostic)]
pub enum Error {
    /// `meshplan::plan::*`: syntax, types, missing and unknown keys.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] PlanError),
    /// `meshplan::name::*`: names, label values, duplicates.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Name(#[from] NameError),
    /// `meshplan::cidr::*`: malformed ranges and addresses.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cidr(#[from] CidrError),
    /// `meshplan::overlap::*`: ranges that collide on one network.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Overlap(#[from] OverlapError),
    /// `meshplan::pool::*`: MetalLB pools.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pool(#[from] PoolError),
    /// `meshplan::lb::*`: planned LoadBalancer addresses.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lb(#[from] LbError),
    /// `[mesh] dataplane = "ambient"` (codes of the role, version, network and lb families).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Ambient(#[from] crate::validate::ambient::AmbientError),
    /// `meshplan::lb::*` about delivery: how addresses reach their Services.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Delivery(#[from] crate::validate::delivery::DeliveryError),
    /// `meshplan::node::*`: nodes and their pod blocks.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Node(#[from] NodeError),
    /// `meshplan::role::*`: primaries and remotes.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Role(#[from] RoleError),
    /// `meshplan::network::*`: networks and east-west reachability.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Network(#[from] NetworkError),
    /// `meshplan::platform::*`: kind, GKE, API servers.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Platform(#[from] PlatformError),
    /// `meshplan::version::*`: Istio, MetalLB and Kubernetes versions.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Version(#[from] VersionError),
    /// `meshplan::cert::*`: the mesh's CA files (`check --certs`); about files, not plan lines.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cert(#[from] CertError),
    /// `meshplan::service::*`: `[[service]]` placement, scope, failover and outlier settings.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Service(#[from] ServiceError),
    /// `meshplan::artifacts::*`: where images, charts, CRDs and downloads come from.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Artifacts(#[from] crate::validate::artifacts::ArtifactsError),
    /// `meshplan::upgrade::*`: a pair of plans (`meshplan upgrade`, `meshplan diff`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Upgrade(#[from] crate::validate::upgrade::UpgradeError),
    /// `meshplan::trust::*`: `[mesh.trust]` roots, phases, revocations, trust domains.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// `meshplan::trust::*` of `check --certs`: a phase's proof over the CA directory.
    #[error(transparent)]
    #[diagnostic(transparent)]
    TrustCert(#[from] crate::trust::ca::TrustCertError),
}

impl Error {
    /// Errors stop compilation; warnings do not.
    pub fn is_error(&self) -> bool {
        self.severity().unwrap_or(Severity::Error) == Severity::Error
    }

    /// Where the finding points first, for sorting findings by position in the plan.
    pub fn offset(&self) -> usize {
        self.labels()
            .and_then(|mut labels| labels.next())
            .map_or(0, |label| label.offset())
    }

    /// The file a finding is about when it is not the plan (a certificate of `check --certs`).
    pub fn other_file(&self) -> Option<&str> {
        match self {
            Error::Cert(cert) => Some(cert.file()),
            Error::TrustCert(cert) => Some(cert.file()),
            _ => None,
        }
    }

    /// The stable code, e.g. `meshplan::overlap::pod_cidr`.
    pub fn code_str(&self) -> String {
        self.code().map(|c| c.to_string()).unwrap_or_default()
    }
}

/// The source span of a spanned plan value, for a label.
pub fn at<T>(value: &Spanned<T>) -> SourceSpan {
    value.span().into()
}
