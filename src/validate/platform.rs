//! Rules of the `platform` family: API server URLs, kind and GKE prerequisites, platform tables
//! that the cluster's platform does not use.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;
use url::{Host, Url};

use super::facts::ClusterFacts;
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw::Platform;

/// `meshplan::platform::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum PlatformError {
    /// Not an https URL with a host.
    #[error("api_server `{value}` is not an API server URL")]
    #[diagnostic(code(meshplan::platform::invalid_api_server))]
    InvalidApiServer {
        /// As written.
        value: String,
        #[help]
        help: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// kind needs an IP for apiServerAddress.
    #[error("kind cluster `{cluster}` needs an IP address in api_server, not `{host}`")]
    #[diagnostic(
        code(meshplan::platform::kind_api_server),
        help(
            "kind's networking.apiServerAddress takes an IP; use the host's address that other clusters reach, e.g. `https://172.18.0.1:6443`"
        )
    )]
    KindApiServer {
        /// The cluster.
        cluster: String,
        /// The host as written.
        host: String,
        #[label("a hostname, not an IP address")]
        at: SourceSpan,
    },

    /// An API server on loopback cannot be reached from other clusters.
    #[error("api_server of `{cluster}` is a loopback address")]
    #[diagnostic(
        code(meshplan::platform::loopback_api_server),
        severity(Warning),
        help(
            "istiod in the other clusters connects to this URL through the remote secret; give an address they can reach (kind's default kubeconfig points at 127.0.0.1, istio/istio#58047)"
        )
    )]
    LoopbackApiServer {
        /// The cluster.
        cluster: String,
        #[label("only reachable from this host")]
        at: SourceSpan,
    },

    /// GKE firewall needs target tags.
    #[error("GKE cluster `{cluster}` has no firewall target tags")]
    #[diagnostic(code(meshplan::platform::gke_target_tags))]
    GkeTargetTags {
        /// The cluster.
        cluster: String,
        #[help]
        help: String,
        #[label("{what}")]
        at: SourceSpan,
        /// What is missing.
        what: &'static str,
    },

    /// A GKE project, network or tag that GCP would refuse.
    #[error("`{key}` `{value}` is not a valid GCP {what}")]
    #[diagnostic(code(meshplan::platform::gke_name), help("{help}"))]
    GkeName {
        /// The key.
        key: &'static str,
        /// As written.
        value: String,
        /// project ID, network name or network tag.
        what: &'static str,
        /// The rule GCP applies.
        help: &'static str,
        #[label("not accepted by gcloud")]
        at: SourceSpan,
    },

    /// `[mesh.gitops]` that cannot point at the tree.
    #[error("`[mesh.gitops]` {what}")]
    #[diagnostic(code(meshplan::platform::gitops))]
    Gitops {
        /// What is wrong.
        what: &'static str,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: &'static str,
    },

    /// A kubeadm cluster whose Kubernetes version names no patch release.
    #[error("kubeadm cluster `{cluster}` names Kubernetes {version} without a patch release")]
    #[diagnostic(
        code(meshplan::platform::kubeadm_version_unpinned),
        severity(Warning),
        help(
            "platform/kubeadm.yaml then says `stable-{version}`, which kubeadm looks up at dl.k8s.io (unreachable from mirrored or air-gapped installs) and which moves over time; write the release you install, e.g. `{version}.16`"
        )
    )]
    KubeadmVersionUnpinned {
        /// The cluster.
        cluster: String,
        /// As written.
        version: String,
        #[label("no patch release")]
        at: SourceSpan,
    },

    /// A platform table for another platform.
    #[error("`[cluster.{table}]` is ignored: `{cluster}` is not on platform `{table}`")]
    #[diagnostic(
        code(meshplan::platform::unused_table),
        severity(Warning),
        help("set `platform = \"{table}\"` on the cluster, or remove the table")
    )]
    UnusedTable {
        /// The cluster.
        cluster: String,
        /// The table.
        table: &'static str,
        #[label("not used by this cluster's platform")]
        at: SourceSpan,
    },
}

/// Parses `api_server`, which must be an http(s) URL with a host.
pub fn parse_api_server(value: &Spanned<String>, out: &mut Findings) -> Option<Spanned<Url>> {
    let text = value.get_ref();
    let reason = match Url::parse(text) {
        Ok(_) if !text.contains("://") => "no scheme: write `https://` before the host",
        Ok(url) if url.scheme() != "https" => "the API server is served over https",
        Ok(url) if url.host().is_none() => "no host",
        Ok(url) if url.port() == Some(0) => "port 0: write the port the API server listens on",
        // The URL parser decodes `%2e%2e` to `..`: kubectl and a human read different hosts.
        Ok(_) if authority(text).contains('%') => "a percent-encoded host: write the host as it is",
        Ok(url) => return Some(Spanned::new(value.span(), url)),
        Err(_) if !text.contains("://") => "no scheme: write `https://` before the host",
        Err(_) => "not a URL",
    };
    let help = if text.contains("://") {
        "write the URL kubectl uses, e.g. `https://10.64.30.130:6443`".to_owned()
    } else {
        format!("write the URL kubectl uses: `https://{text}`")
    };
    out.push(PlatformError::InvalidApiServer {
        help,
        value: text.clone(),
        at: at(value),
        reason: reason.to_owned(),
    });
    None
}

/// The `host:port` part of a URL as written (between `://` and the path).
fn authority(text: &str) -> &str {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Runs the `platform` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    if let Some(gitops) = &facts.plan.mesh.get_ref().gitops {
        gitops_points_at_the_tree(gitops.get_ref(), out);
    }
    for cluster in &facts.clusters {
        if let Some(url) = &cluster.api_server {
            kind_api_server_is_an_ip(cluster, url, out);
            if facts.clusters.len() > 1 {
                api_server_is_not_loopback(cluster, url, out);
            }
        }
        gke_has_target_tags(cluster, out);
        if let Some(gke) = &cluster.raw.get_ref().gke {
            gke_names_are_valid(gke.get_ref(), out);
        }
        platform_tables_match_platform(cluster, out);
        kubeadm_version_pinned(cluster, out);
    }
}

fn platform_of(cluster: &ClusterFacts) -> Platform {
    cluster
        .raw
        .get_ref()
        .platform
        .as_ref()
        .map_or(Platform::Generic, |p| *p.get_ref())
}

fn kind_api_server_is_an_ip(cluster: &ClusterFacts, url: &Spanned<Url>, out: &mut Findings) {
    if platform_of(cluster) != Platform::Kind {
        return;
    }
    if let Some(Host::Domain(host)) = url.get_ref().host() {
        out.push(PlatformError::KindApiServer {
            cluster: cluster.name().to_owned(),
            host: host.to_owned(),
            at: at(url),
        });
    }
}

fn api_server_is_not_loopback(cluster: &ClusterFacts, url: &Spanned<Url>, out: &mut Findings) {
    let loopback = match url.get_ref().host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if loopback {
        out.push(PlatformError::LoopbackApiServer {
            cluster: cluster.name().to_owned(),
            at: at(url),
        });
    }
}

fn gke_has_target_tags(cluster: &ClusterFacts, out: &mut Findings) {
    if platform_of(cluster) != Platform::Gke {
        return;
    }
    let raw = cluster.raw.get_ref();
    let (what, span) = match raw.gke.as_ref() {
        None => ("no [cluster.gke] table", raw.platform.as_ref().map(at)),
        Some(gke) => match gke.get_ref().target_tags.as_ref() {
            None => ("no target_tags", Some(at(gke))),
            Some(tags) if tags.get_ref().is_empty() => ("empty target_tags", Some(at(tags))),
            Some(_) => return,
        },
    };
    let tags = "`target_tags = [\"gke-<cluster>-<hash>-node\"]` (from `gcloud compute instances list --format='value(tags.items[0])'`)";
    let fix = match raw.gke {
        None => format!("add a `[cluster.gke]` table with {tags}"),
        Some(_) => format!("set {tags} in `[cluster.gke]`"),
    };
    out.push(PlatformError::GkeTargetTags {
        cluster: cluster.name().to_owned(),
        help: format!(
            "{fix}; without targets the firewall rule would apply to every instance in the VPC"
        ),
        at: span.unwrap_or_else(|| at(&raw.name)),
        what,
    });
}

fn platform_tables_match_platform(cluster: &ClusterFacts, out: &mut Findings) {
    if let Some(gke) = &cluster.raw.get_ref().gke
        && platform_of(cluster) != Platform::Gke
    {
        out.push(PlatformError::UnusedTable {
            cluster: cluster.name().to_owned(),
            table: "gke",
            at: at(gke),
        });
    }
    if let Some(kubeadm) = &cluster.raw.get_ref().kubeadm
        && platform_of(cluster) != Platform::Kubeadm
    {
        out.push(PlatformError::UnusedTable {
            cluster: cluster.name().to_owned(),
            table: "kubeadm",
            at: at(kubeadm),
        });
    }
}

/// kubeadm turns `stable-1.25` into a release by asking dl.k8s.io, which an air-gapped or
/// mirrored install (the seeds' kubeadm flow pulls from a mirror) cannot reach.
fn kubeadm_version_pinned(cluster: &ClusterFacts, out: &mut Findings) {
    if platform_of(cluster) != Platform::Kubeadm {
        return;
    }
    let (Some(version), Some(written)) = (&cluster.kubernetes, &cluster.raw.get_ref().kubernetes)
    else {
        return;
    };
    if version.patch.is_none() {
        out.push(PlatformError::KubeadmVersionUnpinned {
            cluster: cluster.name().to_owned(),
            version: written.get_ref().clone(),
            at: at(written),
        });
    }
}

/// The repository must be named, and the path must stay inside it: the GitOps objects are
/// generated from them and a wrong path syncs nothing (or something else).
fn gitops_points_at_the_tree(gitops: &crate::raw::Gitops, out: &mut Findings) {
    let repository = &gitops.repository;
    if repository.get_ref().trim().is_empty()
        || repository.get_ref().chars().any(char::is_whitespace)
    {
        out.push(PlatformError::Gitops {
            what: "repository is not a git URL",
            at: at(repository),
            help: "write the URL the GitOps tool clones, e.g. `https://git.example.com/platform/mesh.git` or `ssh://git@git.example.com/platform/mesh.git`",
        });
    }
    // Argo CD evaluates the ApplicationSet template (goTemplate: true): `{{ .cluster }}` or
    // `{{ printf ... }}` in a value would run there instead of being synced as written.
    let values = std::iter::once(repository)
        .chain(gitops.revision.iter())
        .chain(gitops.path.iter());
    for value in values {
        if value.get_ref().contains("{{") || value.get_ref().contains("}}") {
            out.push(PlatformError::Gitops {
                what: "value holds `{{` or `}}`, which Argo CD would evaluate as a Go template",
                at: at(value),
                help: "neither `{{` nor `}}` may appear in the repository, revision or path: write them literally",
            });
        }
    }
    if let Some(path) = &gitops.path {
        let p = std::path::Path::new(path.get_ref());
        let inside = p.is_relative()
            && p.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
        if !inside || path.get_ref().is_empty() {
            out.push(PlatformError::Gitops {
                what: "path leaves the repository",
                at: at(path),
                help: "give the compiled tree's directory relative to the repository root, without `..`, e.g. `deploy/mesh` (`.` for the root)",
            });
        }
    }
}

/// GCP resource names (RFC 1035: a lowercase letter, then letters, digits and `-`, not ending in
/// `-`), which also keeps them single words in the generated gcloud script.
fn is_rfc1035(value: &str, min: usize, max: usize) -> bool {
    let first_ok = value.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let last_ok = value
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (min..=max).contains(&value.len())
        && first_ok
        && last_ok
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn gke_names_are_valid(gke: &crate::raw::Gke, out: &mut Findings) {
    const PROJECT: &str = "a project ID is 6 to 30 lowercase letters, digits and `-`, starting with a letter (gcloud projects list)";
    const NAME: &str =
        "lowercase letters, digits and `-`, starting with a letter, at most 63 characters";
    let mut check = |value: &Spanned<String>, key, what, help, min, max| {
        if !is_rfc1035(value.get_ref(), min, max) {
            out.push(PlatformError::GkeName {
                key,
                value: value.get_ref().clone(),
                what,
                help,
                at: at(value),
            });
        }
    };
    if let Some(project) = &gke.project {
        check(project, "project", "project ID", PROJECT, 6, 30);
    }
    if let Some(vpc) = &gke.vpc {
        check(vpc, "vpc", "network name", NAME, 1, 63);
    }
    for tag in gke.target_tags.iter().flat_map(|t| t.get_ref().iter()) {
        check(tag, "target_tags", "network tag", NAME, 1, 63);
    }
}
