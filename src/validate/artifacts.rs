//! Rules of the `artifacts` family: `[mesh.artifacts]` (and the older `[mesh.istio] hub` and
//! `[mesh.samples] hub`) name sources that can serve the tree: well formed, one Istio hub, and
//! none of the locations Istio retired in December 2026.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::model::Version;
use crate::raw;

/// Locations Istio stopped serving in December 2026 (the 1.31 upgrade notes, "Deprecation of
/// GCP infrastructure and hosting"): matched against a value with its scheme removed.
pub const RETIRED: &[(&str, &str)] = &[
    (
        "istio-release.storage.googleapis.com",
        "Istio's charts are at https://blob.istio.io/istio-release/charts (or oci://ghcr.io/istio/release/charts)",
    ),
    (
        "storage.googleapis.com/istio-release",
        "Istio's charts and downloads are at https://blob.istio.io/istio-release",
    ),
    (
        "gcr.io/istio-release",
        "Istio's images are at docker.io/istio, its OCI charts at oci://ghcr.io/istio/release/charts",
    ),
    ("registry.istio.io", "Istio's images are at docker.io/istio"),
];

/// `meshplan::artifacts::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum ArtifactsError {
    /// `[mesh.istio] hub` and `[mesh.artifacts] hub` disagree.
    #[error("`[mesh.istio] hub` and `[mesh.artifacts] hub` name different registries")]
    #[diagnostic(
        code(meshplan::artifacts::hub_conflict),
        help(
            "both keys set Istio's image hub (`[mesh.istio] hub` is the older spelling); keep one of them, or give both the same value"
        )
    )]
    HubConflict {
        #[label("`{istio}` here")]
        istio_at: SourceSpan,
        /// `[mesh.istio] hub`.
        istio: String,
        #[label("`{artifacts}` here")]
        at: SourceSpan,
        /// `[mesh.artifacts] hub`.
        artifacts: String,
    },

    /// A location Istio no longer serves.
    #[error("`{key}` names {retired}, which Istio retired in December 2026")]
    #[diagnostic(code(meshplan::artifacts::retired))]
    Retired {
        /// The key.
        key: &'static str,
        /// The retired location.
        retired: &'static str,
        #[label("no longer served")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A value that cannot be what its key needs.
    #[error("`{key}` is not {expected}: `{value}`")]
    #[diagnostic(code(meshplan::artifacts::invalid))]
    Invalid {
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// As written.
        value: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// Why not.
        reason: String,
        #[help]
        help: &'static str,
    },
}

/// Whether a Gateway API CRD source is a URL (else a file beside the plan).
pub fn is_url(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://")
}

/// Runs the `artifacts` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    let mesh = facts.plan.mesh.get_ref();
    let istio_hub = mesh.istio.get_ref().hub.as_ref();
    let samples_hub = mesh.samples.as_ref().and_then(|s| s.get_ref().hub.as_ref());
    for (key, value) in [
        ("mesh.istio.hub", istio_hub),
        ("mesh.samples.hub", samples_hub),
    ] {
        if let Some(value) = value {
            not_retired(key, value, out);
        }
    }
    let Some(artifacts) = mesh.artifacts.as_ref().map(|a| a.get_ref()) else {
        return;
    };
    for (key, value) in keys(artifacts) {
        if let Some(value) = value {
            not_retired(key, value, out);
            well_formed(key, value, out);
        }
    }
    if let (Some(istio), Some(own)) = (istio_hub, artifacts.hub.as_ref())
        && istio.get_ref() != own.get_ref()
    {
        out.push(ArtifactsError::HubConflict {
            istio_at: at(istio),
            istio: istio.get_ref().clone(),
            at: at(own),
            artifacts: own.get_ref().clone(),
        });
    }
}

fn keys(a: &raw::Artifacts) -> [(&'static str, Option<&Spanned<String>>); 8] {
    [
        ("hub", a.hub.as_ref()),
        ("istio_charts", a.istio_charts.as_ref()),
        ("metallb_charts", a.metallb_charts.as_ref()),
        ("metallb_hub", a.metallb_hub.as_ref()),
        ("gateway_api_crds", a.gateway_api_crds.as_ref()),
        ("gateway_api_version", a.gateway_api_version.as_ref()),
        ("istioctl", a.istioctl.as_ref()),
        ("kind_hub", a.kind_hub.as_ref()),
    ]
}

fn not_retired(key: &'static str, value: &Spanned<String>, out: &mut Findings) {
    let text = value.get_ref().to_ascii_lowercase();
    let bare = text
        .split_once("://")
        .map_or(text.as_str(), |(_, rest)| rest);
    let retired = RETIRED.iter().find(|(location, _)| {
        bare.strip_prefix(location)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ':']))
    });
    if let Some((location, instead)) = retired {
        out.push(ArtifactsError::Retired {
            key,
            retired: location,
            at: at(value),
            help: format!("{instead}; a mirror of those works too"),
        });
    }
}

fn well_formed(key: &'static str, value: &Spanned<String>, out: &mut Findings) {
    let text = value.get_ref();
    let problem = match key {
        "hub" | "metallb_hub" | "kind_hub" => registry_path(text).err().map(|reason| {
            (
                "a registry path",
                reason,
                "write the registry and repository path without a scheme, e.g. `registry.example.com/istio`",
            )
        }),
        "istio_charts" | "metallb_charts" => chart_repository(text).err().map(|reason| {
            (
                "a chart repository",
                reason,
                "an `https://` Helm repository (`https://blob.istio.io/istio-release/charts`) or an `oci://` registry path (`oci://ghcr.io/istio/release/charts`)",
            )
        }),
        "gateway_api_crds" => crd_source(text).err().map(|reason| {
            (
                "a URL or a file beside the plan",
                reason,
                "an `https://` URL of the CRDs' `standard-install.yaml`, or its path relative to the plan's directory",
            )
        }),
        "gateway_api_version" => Version::parse(text.strip_prefix('v').unwrap_or(text))
            .filter(|v| v.patch.is_some())
            .is_none()
            .then(|| {
                (
                    "a Gateway API release",
                    "expected vMAJOR.MINOR.PATCH".to_owned(),
                    "write the release tag, e.g. `v1.5.1`",
                )
            }),
        _ => http_url(text).err().map(|reason| {
            (
                "a download URL",
                reason,
                "an `https://` URL under which `<version>/istioctl-<version>-linux-amd64.tar.gz` lies, e.g. `https://github.com/istio/istio/releases/download`",
            )
        }),
    };
    if let Some((expected, reason, help)) = problem {
        out.push(ArtifactsError::Invalid {
            key,
            expected,
            value: text.clone(),
            at: at(value),
            reason,
            help,
        });
    }
}

/// `host[:port][/path]`: what container runtimes take before `/<image>:<tag>`.
fn registry_path(text: &str) -> Result<(), String> {
    if text.contains("://") {
        return Err("no scheme in a registry path".to_owned());
    }
    if text.is_empty() || text.starts_with('/') || text.ends_with('/') || text.contains("//") {
        return Err("an empty part".to_owned());
    }
    match text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':')))
    {
        Some(c) => Err(format!("`{c}` cannot be in a registry path")),
        None if text.chars().any(|c| c.is_ascii_uppercase()) => {
            Err("registry paths are lowercase".to_owned())
        }
        None => Ok(()),
    }
}

fn parsed_url(text: &str, schemes: &[&str]) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "scheme `{}` is not {}",
            url.scheme(),
            schemes.join(" or ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("no query or fragment here".to_owned());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("spaces or control characters".to_owned());
    }
    Ok(url)
}

fn chart_repository(text: &str) -> Result<(), String> {
    parsed_url(text, &["https", "http", "oci"]).map(|_| ())
}

fn http_url(text: &str) -> Result<(), String> {
    parsed_url(text, &["https", "http"]).map(|_| ())
}

fn crd_source(text: &str) -> Result<(), String> {
    if text.contains("://") {
        return http_url(text);
    }
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err("an empty or unprintable path".to_owned());
    }
    if text.starts_with('/') || text.starts_with('\\') || text.get(1..2) == Some(":") {
        return Err("absolute: the plan must build the same anywhere".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_paths() {
        for good in [
            "docker.io/istio",
            "localhost:5000/istio",
            "quay.io/metallb",
            "r.example/a/b_c",
        ] {
            assert_eq!(registry_path(good), Ok(()), "{good}");
        }
        for bad in [
            "https://docker.io/istio",
            "",
            "docker.io/istio/",
            "a//b",
            "a b",
            "Docker.io/x",
            "a'b",
        ] {
            assert!(registry_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chart_repositories_and_crd_sources() {
        assert!(chart_repository("oci://ghcr.io/istio/release/charts").is_ok());
        assert!(chart_repository("https://blob.istio.io/istio-release/charts").is_ok());
        assert!(chart_repository("ghcr.io/istio/release/charts").is_err());
        assert!(chart_repository("ftp://x/charts").is_err());
        assert!(crd_source("crds/gateway-api-v1.5.1.yaml").is_ok());
        assert!(crd_source("../vendor/standard-install.yaml").is_ok());
        assert!(crd_source("/etc/crds.yaml").is_err());
        assert!(crd_source("oci://x/y").is_err());
        assert!(crd_source("https://example.com/standard-install.yaml").is_ok());
    }
}
