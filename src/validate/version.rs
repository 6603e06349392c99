//! Rules of the `version` family: versions parse and are supported, and what the release table
//! (`src/releases.toml`) says about the targeted Istio: its end of life, the Kubernetes releases
//! it supports, the maturity of the features the plan uses, the Gateway API CRDs it needs.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::model::Version;
use crate::releases::{self, Day, IstioRelease, Maturity};

/// The oldest Istio whose multicluster flow meshplan emits.
pub const OLDEST_ISTIO: Version = Version::new(1, 20, Some(0));
/// The newest Istio minor meshplan knows (the release table's last row).
pub const NEWEST_ISTIO: Version = Version::new(1, 31, None);
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

    /// An Istio release past its end of life.
    #[error("Istio {minor} reached its end of life on {end_of_life}")]
    #[diagnostic(code(meshplan::version::istio_eol), severity(Warning))]
    IstioEol {
        /// `1.24`.
        minor: String,
        /// The date.
        end_of_life: Day,
        #[label("no more fixes, security fixes included, since {end_of_life}")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A cluster's Kubernetes outside the targeted Istio's supported range.
    #[error(
        "Kubernetes {kubernetes} of `{cluster}` is outside what Istio {minor} supports, 1.{oldest} to 1.{newest}"
    )]
    #[diagnostic(
        code(meshplan::version::kubernetes_unsupported),
        severity(Warning),
        help(
            "istioctl installs anyway, with a warning (\"you might experience problems\"); Istio tests {minor} on Kubernetes 1.{oldest} to 1.{newest} only. Upgrade the cluster, or target an Istio whose range includes {kubernetes} (istio.io/latest/docs/releases/supported-releases)"
        )
    )]
    KubernetesUnsupported {
        /// The cluster.
        cluster: String,
        /// As written.
        kubernetes: String,
        /// `1.24`.
        minor: String,
        /// Oldest supported Kubernetes minor.
        oldest: u64,
        /// Newest supported Kubernetes minor.
        newest: u64,
        #[label("Istio {minor} supports 1.{oldest} to 1.{newest}")]
        at: SourceSpan,
    },

    /// A feature the plan uses is alpha (or earlier) on the targeted Istio.
    #[error("{feature} is {maturity} in Istio {minor}")]
    #[diagnostic(code(meshplan::version::feature_alpha), severity(Warning))]
    FeatureAlpha {
        /// What the plan uses.
        feature: &'static str,
        /// Its maturity there.
        maturity: Maturity,
        /// `1.24`.
        minor: String,
        #[label("{feature} here")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// Gateway API CRDs older than the targeted Istio processes.
    #[error(
        "Gateway API {pinned} is older than {minimum}, the oldest whose CRDs Istio {minor} processes"
    )]
    #[diagnostic(
        code(meshplan::version::gateway_api_below_minimum),
        help(
            "istiod silently stops processing the kinds whose CRDs are below its minimum (Istio 1.30: TLSRoute and ReferenceGrant; istioctl analyze reports IST0176); set gateway_api_version to {minimum} or later (Istio {minor} is built with {default}), or remove it for that default"
        )
    )]
    GatewayApiBelowMinimum {
        /// As pinned.
        pinned: String,
        /// The table's minimum.
        minimum: String,
        /// The table's default.
        default: String,
        /// `1.30`.
        minor: String,
        #[label("below {minimum}")]
        at: SourceSpan,
    },

    /// `[mesh.istio] revision` that cannot name a control plane revision.
    #[error("`{value}` cannot be a control plane revision")]
    #[diagnostic(code(meshplan::version::revision_invalid))]
    RevisionInvalid {
        /// As written.
        value: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong with it.
        reason: String,
        #[help]
        help: String,
    },

    /// A revision on an ambient plan.
    #[error("a revision is not supported on an ambient plan")]
    #[diagnostic(
        code(meshplan::version::revision_ambient),
        help(
            "remove mesh.istio.revision: an ambient data plane is one ztunnel DaemonSet and one istio-cni per cluster, each bound to one istiod (ztunnel's xDS address names istiod or istiod-<revision>), and namespaces join it by istio.io/dataplane-mode, not through the injection webhook a revision tag moves; meshplan plans ambient upgrades in place (istiod, then istio-cni, then ztunnel), so it plans no revision there"
        )
    )]
    RevisionAmbient {
        #[label("revision on an ambient mesh")]
        at: SourceSpan,
        #[label("ambient data plane here")]
        dataplane: Option<SourceSpan>,
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

/// The longest revision: `istio-sidecar-injector-<revision>` (the revision's injection webhook,
/// the longest name Istio derives from it) must stay a 63-character label, as `istiod-<revision>`
/// (a Service, so a DNS label) does.
pub const REVISION_MAX: usize = 63 - "istio-sidecar-injector-".len();

/// Runs the `version` rules; `today` dates the end-of-life rule.
pub fn check(facts: &Facts, today: Day, out: &mut Findings) {
    let mesh = facts.plan.mesh.get_ref();
    if let Some(revision) = &mesh.istio.get_ref().revision {
        revision_is_valid(revision, out);
        if let Some(dataplane) = mesh
            .dataplane
            .as_ref()
            .filter(|d| *d.get_ref() == crate::raw::Dataplane::Ambient)
        {
            out.push(VersionError::RevisionAmbient {
                at: at(revision),
                dataplane: Some(at(dataplane)),
            });
        }
    }
    let istio = &mesh.istio.get_ref().version;
    if let Some(version) = &facts.istio_version {
        istio_is_supported(istio, version, out);
        tls_server_name_is_supported(facts, version, out);
        if let Some(release) = releases::istio(version) {
            istio_is_not_past_end_of_life(istio, release, today, out);
            kubernetes_is_in_range(facts, release, out);
            ipv6_is_not_alpha(facts, release, out);
            gateway_api_is_recent_enough(facts, release, out);
        }
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

fn minor(release: &IstioRelease) -> String {
    format!("{}.{}", release.minor.0, release.minor.1)
}

fn istio_is_not_past_end_of_life(
    written: &Spanned<String>,
    release: &IstioRelease,
    today: Day,
    out: &mut Findings,
) {
    let Some(end_of_life) = release.end_of_life.filter(|eol| *eol <= today) else {
        return;
    };
    let supported: Vec<String> = releases::supported_istio(today)
        .into_iter()
        .map(minor)
        .collect();
    let help = if supported.is_empty() {
        "target a supported release (istio.io/latest/docs/releases/supported-releases)".to_owned()
    } else {
        format!(
            "target a supported release: {} in meshplan's release table of {} (istio.io/latest/docs/releases/supported-releases)",
            supported.join(" or "),
            releases::CHECKED
        )
    };
    out.push(VersionError::IstioEol {
        minor: minor(release),
        end_of_life,
        at: at(written),
        help,
    });
}

fn kubernetes_is_in_range(facts: &Facts, release: &IstioRelease, out: &mut Findings) {
    let (oldest, newest) = release.kubernetes;
    for cluster in &facts.clusters {
        let (Some(version), Some(written)) =
            (&cluster.kubernetes, &cluster.raw.get_ref().kubernetes)
        else {
            continue;
        };
        if version.major == 1 && (oldest..=newest).contains(&version.minor) {
            continue;
        }
        out.push(VersionError::KubernetesUnsupported {
            cluster: cluster.name().to_owned(),
            kubernetes: written.get_ref().clone(),
            minor: minor(release),
            oldest,
            newest,
            at: at(written),
        });
    }
}

/// Istio's "IPv6 Support for Kubernetes" (single-stack) has stayed alpha (`core.ipv6`).
fn ipv6_is_not_alpha(facts: &Facts, release: &IstioRelease, out: &mut Findings) {
    if release.ipv6 > Maturity::Alpha {
        return;
    }
    let ipv6 = facts.clusters.iter().find_map(|c| {
        c.pod_cidr
            .as_ref()
            .filter(|cidr| cidr.get_ref().addr().is_ipv6())
    });
    if let Some(cidr) = ipv6 {
        out.push(VersionError::FeatureAlpha {
            feature: "IPv6 (single-stack) support",
            maturity: release.ipv6,
            minor: minor(release),
            at: at(cidr),
            help: "Istio's feature status lists IPv6 for Kubernetes as alpha: it works end to end, but is not supported for production (istio/enhancements features.yaml, core.ipv6); plan IPv4 clusters, or accept the risk".to_owned(),
        });
    }
}

fn gateway_api_is_recent_enough(facts: &Facts, release: &IstioRelease, out: &mut Findings) {
    let Some(written) = facts
        .plan
        .mesh
        .get_ref()
        .artifacts
        .as_ref()
        .and_then(|a| a.get_ref().gateway_api_version.as_ref())
    else {
        return;
    };
    // A release without a patch number is `artifacts::invalid`, not compared here.
    let pinned =
        Version::parse(written.get_ref().trim_start_matches('v')).filter(|v| v.patch.is_some());
    if pinned.is_some_and(|v| v < release.gateway_api_minimum) {
        out.push(VersionError::GatewayApiBelowMinimum {
            pinned: written.get_ref().clone(),
            minimum: format!("v{}", release.gateway_api_minimum),
            default: format!("v{}", release.gateway_api),
            minor: minor(release),
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

/// Why `value` cannot be a revision, if it cannot: Istio names objects `istiod-<revision>` and
/// `istio-sidecar-injector-<revision>` and labels them `istio.io/rev: <revision>`.
pub fn revision_problem(value: &str) -> Option<(String, String)> {
    let suggestion: String = value
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_owned();
    let instead = |why: &str| {
        if !suggestion.is_empty()
            && suggestion != value
            && suggestion != "default"
            && suggestion.len() <= REVISION_MAX
        {
            format!("write `{suggestion}`: {why}")
        } else {
            format!("{why}, e.g. `1-30-3`")
        }
    };
    if value == "default" {
        return Some((
            "the default revision tag's name".to_owned(),
            "`default` is the name of the default revision tag (istioctl tag set default), which meshplan points at this revision; name the revision after its release, e.g. `1-30-3`".to_owned(),
        ));
    }
    if value.is_empty() {
        return Some((
            "empty".to_owned(),
            "name the revision, e.g. `1-30-3`, or remove mesh.istio.revision for an unrevisioned control plane".to_owned(),
        ));
    }
    let label = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !label {
        return Some((
            "not a lowercase DNS label".to_owned(),
            instead(
                "a revision is part of object names (istiod-<revision>) and label values: lowercase letters, digits and `-`, starting and ending with a letter or digit (RFC 1123)",
            ),
        ));
    }
    if value.len() > REVISION_MAX {
        return Some((
            format!("{} characters, {REVISION_MAX} at most", value.len()),
            format!(
                "istio-sidecar-injector-<revision>, the revision's injection webhook, must stay within 63 characters: shorten it to {REVISION_MAX} characters or fewer, e.g. `1-30-3`"
            ),
        ));
    }
    None
}

fn revision_is_valid(written: &Spanned<String>, out: &mut Findings) {
    if let Some((reason, help)) = revision_problem(written.get_ref()) {
        out.push(VersionError::RevisionInvalid {
            value: written.get_ref().clone(),
            at: at(written),
            reason,
            help,
        });
    }
}

#[cfg(test)]
mod revision_tests {
    use super::*;

    #[test]
    fn a_revision_is_a_short_lowercase_label_other_than_default() {
        assert_eq!(revision_problem("1-30-3"), None);
        assert_eq!(revision_problem("canary"), None);
        assert_eq!(revision_problem(&"a".repeat(REVISION_MAX)), None);
        assert_eq!(REVISION_MAX, 40);
        let long = "a".repeat(REVISION_MAX + 1);
        assert!(revision_problem(&long).is_some());
        assert!(format!("istio-sidecar-injector-{long}").len() > 63);
        let (reason, help) = revision_problem("1.30.3").unwrap_or_default();
        assert_eq!(reason, "not a lowercase DNS label");
        assert!(help.contains("`1-30-3`"), "{help}");
        for bad in ["default", "", "-a", "a-", "A", "a_b"] {
            assert!(revision_problem(bad).is_some(), "{bad}");
        }
    }
}
