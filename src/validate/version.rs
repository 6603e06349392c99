//! Rules of the `version` family: versions parse and are supported.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::model::Version;

/// The oldest Istio whose multicluster flow meshplan emits.
pub const OLDEST_ISTIO: Version = Version::new(1, 20, Some(0));
/// The newest Istio release whose guides and charts meshplan was checked against (1.30.3).
pub const NEWEST_ISTIO: Version = Version::new(1, 30, None);
/// MetalLB's CRD configuration (IPAddressPool, L2Advertisement) exists from 0.13.
pub const OLDEST_METALLB: Version = Version::new(0, 13, None);
/// The MetalLB version assumed when the plan names none.
pub const DEFAULT_METALLB: Version = Version::new(0, 15, None);

/// `meshplan::version::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum VersionError {
    /// `tls_server_name` with an istioctl that lacks `--tls-server-name`.
    #[error(
        "`tls_server_name` of `{cluster}` needs Istio 1.26 or later; the plan targets {version}"
    )]
    #[diagnostic(
        code(meshplan::version::tls_server_name_unsupported),
        help(
            "istioctl create-remote-secret takes --tls-server-name from 1.26: raise mesh.istio.version, or reach the API server by a name its certificate carries and drop tls_server_name"
        )
    )]
    TlsServerNameUnsupported {
        /// The cluster.
        cluster: String,
        /// The targeted version.
        version: String,
        #[label("istioctl {version} has no --tls-server-name")]
        at: SourceSpan,
    },

    /// Not a version number.
    #[error("`{value}` is not a valid {product} version")]
    #[diagnostic(code(meshplan::version::invalid))]
    Invalid {
        /// As written.
        value: String,
        /// Istio, MetalLB or Kubernetes.
        product: &'static str,
        #[label("expected MAJOR.MINOR or MAJOR.MINOR.PATCH")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// Istio older than meshplan supports.
    #[error("Istio {value} is older than the oldest supported, {OLDEST_ISTIO}")]
    #[diagnostic(
        code(meshplan::version::istio_unsupported),
        help(
            "set mesh.istio.version to {OLDEST_ISTIO} or later; older releases lack the multicluster install flow meshplan emits (the seeds' Citadel/Mixer-era flows map to current Istio)"
        )
    )]
    IstioUnsupported {
        /// As written.
        value: String,
        #[label("unsupported Istio version")]
        at: SourceSpan,
    },

    /// Istio needs an exact release for image tags.
    #[error("Istio version `{value}` names no release")]
    #[diagnostic(
        code(meshplan::version::istio_patch),
        help(
            "write the full release, e.g. `{value}.0`: it becomes the image tag, and Istio publishes images only for full releases"
        )
    )]
    IstioPatch {
        /// As written.
        value: String,
        #[label("no patch number")]
        at: SourceSpan,
    },

    /// Istio newer than the releases meshplan knows.
    #[error("Istio {value} is newer than {NEWEST_ISTIO}, the newest release meshplan knows")]
    #[diagnostic(
        code(meshplan::version::istio_unknown),
        severity(Warning),
        help(
            "the files follow Istio {NEWEST_ISTIO}'s multicluster guides; check {value}'s release notes for changes to the IstioOperator, Helm values or networking APIs, or target {NEWEST_ISTIO}"
        )
    )]
    IstioUnknown {
        /// As written.
        value: String,
        #[label("newer than meshplan knows")]
        at: SourceSpan,
    },

    /// MetalLB older than its CRD configuration.
    #[error("MetalLB {value} is older than {OLDEST_METALLB}")]
    #[diagnostic(
        code(meshplan::version::metallb_unsupported),
        help(
            "set mesh.metallb.version to 0.13 or later: meshplan writes IPAddressPool and advertisement resources, which replaced the ConfigMap in MetalLB 0.13"
        )
    )]
    MetallbUnsupported {
        /// As written.
        value: String,
        #[label("unsupported MetalLB version")]
        at: SourceSpan,
    },
}

/// Parses `MAJOR.MINOR[.PATCH][-PRERELEASE]`, reporting anything else.
pub fn parse(
    value: &Spanned<String>,
    product: &'static str,
    out: &mut Findings,
) -> Option<Version> {
    let text = value.get_ref();
    let parsed = Version::parse(text);
    if parsed.is_none() {
        let trimmed = text.trim_start_matches(['v', 'V']);
        let help = if trimmed != text && Version::parse(trimmed).is_some() {
            format!("drop the leading `v`: `{trimmed}`")
        } else {
            "write digits separated by dots, e.g. `1.24.2` (Istio), `0.15` (MetalLB), `1.30` (Kubernetes)".to_owned()
        };
        out.push(VersionError::Invalid {
            value: text.clone(),
            product,
            at: at(value),
            help,
        });
    }
    parsed
}

/// Runs the `version` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    let mesh = facts.plan.mesh.get_ref();
    let istio = &mesh.istio.get_ref().version;
    if let Some(version) = &facts.istio_version {
        istio_is_supported(istio, version, out);
        tls_server_name_is_supported(facts, version, out);
    }
    if let (Some(version), Some(written)) = (
        &facts.metallb_version,
        mesh.metallb
            .as_ref()
            .and_then(|m| m.get_ref().version.as_ref()),
    ) {
        metallb_is_supported(written, version, out);
    }
}

fn istio_is_supported(written: &Spanned<String>, version: &Version, out: &mut Findings) {
    if version.at_least(1, 20) {
        if !NEWEST_ISTIO.at_least(version.major, version.minor) {
            out.push(VersionError::IstioUnknown {
                value: written.get_ref().clone(),
                at: at(written),
            });
        }
        if version.patch.is_none() {
            out.push(VersionError::IstioPatch {
                value: written.get_ref().clone(),
                at: at(written),
            });
        }
    } else {
        out.push(VersionError::IstioUnsupported {
            value: written.get_ref().clone(),
            at: at(written),
        });
    }
}

fn tls_server_name_is_supported(facts: &Facts, version: &Version, out: &mut Findings) {
    if version.at_least(1, 26) {
        return;
    }
    for cluster in &facts.clusters {
        if let Some(name) = &cluster.raw.get_ref().tls_server_name {
            out.push(VersionError::TlsServerNameUnsupported {
                cluster: cluster.name().to_owned(),
                version: version.to_string(),
                at: at(name),
            });
        }
    }
}

fn metallb_is_supported(written: &Spanned<String>, version: &Version, out: &mut Findings) {
    if !version.at_least(OLDEST_METALLB.major, OLDEST_METALLB.minor) {
        out.push(VersionError::MetallbUnsupported {
            value: written.get_ref().clone(),
            at: at(written),
        });
    }
}
