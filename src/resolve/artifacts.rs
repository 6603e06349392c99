//! Everything the compiled tree makes someone fetch, derived from the same values the templates
//! write: the images each install pulls, the charts it installs, the files it downloads. The
//! tree lists them (`images.txt`, `charts.txt`, README.md) so a closed network knows what to
//! mirror, each next to where it comes from upstream.

use serde::Serialize;

use super::{Cluster, samples};
use crate::model::{
    CrdSource, DEFAULT_HUB, DEFAULT_ISTIO_CHARTS, DEFAULT_ISTIOCTL, DEFAULT_KIND_HUB,
    DEFAULT_METALLB_CHARTS, DEFAULT_METALLB_HUB, DEFAULT_SAMPLES_HUB, GATEWAY_API_RELEASES, Plan,
    Version,
};
use crate::raw::{Dataplane, Installer, Platform, Role};
use crate::releases;

/// What the tree fetches, sorted and without repeats.
#[derive(Debug, Default, Serialize)]
pub struct Artifacts {
    /// Container images.
    pub images: Vec<Image>,
    /// Helm charts.
    pub charts: Vec<Chart>,
    /// Other downloads: the Gateway API CRDs, istioctl.
    pub downloads: Vec<Download>,
    /// Files beside the plan that the tree holds a copy of.
    pub attachments: Vec<Attachment>,
}

/// A container image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Image {
    /// As the tree names it.
    pub image: String,
    /// The same image where its publisher serves it.
    pub upstream: String,
    /// What pulls it.
    pub used_by: &'static str,
}

/// A Helm chart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Chart {
    /// Chart name.
    pub name: String,
    /// Chart version, or `unpinned`.
    pub version: String,
    /// The repository the tree installs it from.
    pub repository: String,
    /// Its publisher's repository.
    pub upstream: String,
}

/// A file the install downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Download {
    /// What it is.
    pub what: String,
    /// Where the tree gets it: a URL, or a file in the tree.
    pub location: String,
    /// Where its publisher serves it.
    pub upstream: String,
}

/// A file beside the plan copied into the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// Its path in the tree.
    pub tree_path: String,
    /// Its path as the plan names it, relative to the plan's directory.
    pub source: String,
}

/// The tree's copy of Gateway API CRDs named by a file beside the plan.
pub const GATEWAY_API_CRDS_FILE: &str = "gateway-api-crds.yaml";

/// Where a Helm chart comes from: a repository `helm repo add` registers under a name, or an
/// OCI registry path charts are installed from directly.
#[derive(Debug, Clone, Serialize)]
pub struct ChartSource {
    /// `https://` repository to add (`None` for OCI).
    pub repository: Option<String>,
    /// What precedes a chart's name in `helm upgrade --install`: `istio/` or `oci://…/`.
    #[serde(skip)]
    prefix: String,
}

impl ChartSource {
    /// A chart source; `name` is what `helm repo add` calls an HTTP repository.
    pub fn new(location: &str, name: &str) -> Self {
        if location.starts_with("oci://") {
            ChartSource {
                repository: None,
                prefix: format!("{location}/"),
            }
        } else {
            ChartSource {
                repository: Some(location.to_owned()),
                prefix: format!("{name}/"),
            }
        }
    }

    /// The reference `helm upgrade --install` takes for a chart.
    pub fn chart(&self, chart: &str) -> String {
        format!("{}{chart}", self.prefix)
    }
}

/// Istio's image names (`tools/docker.yaml`) that an install pulls.
fn istio_images(plan: &Plan) -> Vec<(&'static str, &'static str)> {
    let mut names = vec![("proxyv2", "sidecars and gateways")];
    if plan.clusters.iter().any(|c| c.role == Role::Primary) {
        names.push(("pilot", "istiod"));
    }
    if plan.mesh.dataplane == Dataplane::Ambient {
        names.push(("install-cni", "istio-cni"));
        names.push(("ztunnel", "ztunnel"));
    }
    names
}

/// The Gateway API release an ambient mesh installs: the plan's, else its Istio's.
pub fn gateway_api_version(plan: &Plan) -> Option<Version> {
    plan.mesh
        .artifacts
        .gateway_api_version
        .clone()
        .or_else(|| releases::istio(&plan.mesh.istio_version).map(|r| r.gateway_api.clone()))
        .or_else(|| Some(releases::newest_istio().gateway_api.clone()))
}

/// The GitHub release URL of a Gateway API release's standard-channel CRDs.
pub fn gateway_api_url(version: &Version) -> String {
    format!("{GATEWAY_API_RELEASES}/v{version}/standard-install.yaml")
}

/// Where the ambient install applies the CRDs from: `(location for scripts run in a cluster's
/// directory, location as the tree's README names it)`.
pub fn gateway_api_crds(plan: &Plan, version: &Version) -> (String, String) {
    match &plan.mesh.artifacts.gateway_api_crds {
        Some(CrdSource::Url(url)) => (url.clone(), url.clone()),
        Some(CrdSource::File(_)) => (
            format!("../{GATEWAY_API_CRDS_FILE}"),
            GATEWAY_API_CRDS_FILE.to_owned(),
        ),
        None => {
            let url = gateway_api_url(version);
            (url.clone(), url)
        }
    }
}

/// The istioctl archive for Linux on amd64 under a download location.
pub fn istioctl_archive(base: &str, version: &Version) -> String {
    format!("{base}/{version}/istioctl-{version}-linux-amd64.tar.gz")
}

/// The tag of Istio's image `name` as the install pulls it. Istio's ambient profile (istioctl's,
/// and the `files/profile-ambient.yaml` of the charts installed with `profile: ambient`) sets
/// `global.variant: distroless`, so an ambient mesh pulls `TAG-distroless` (the 1.30.3
/// reference copy: schemas/istio/ambient/istiod-profile-ambient.yaml). The ztunnel chart takes
/// no profile and reads only its own `variant` (empty), so with Helm it pulls the plain tag.
/// tests/real-tools compares this with what helm and istioctl render.
fn istio_image_tag(plan: &Plan, name: &str) -> String {
    let tag = plan.mesh.istio_version.to_string();
    let helm_ztunnel = name == "ztunnel" && plan.mesh.installer == crate::raw::Installer::Helm;
    if plan.mesh.dataplane == Dataplane::Ambient && !helm_ztunnel {
        format!("{tag}-distroless")
    } else {
        tag
    }
}

/// Collects what the resolved clusters fetch.
pub fn collect(plan: &Plan, clusters: &[Cluster], istioctl: bool) -> Artifacts {
    let a = &plan.mesh.artifacts;
    let mut images: Vec<Image> = istio_images(plan)
        .into_iter()
        .map(|(name, used_by)| {
            let tag = istio_image_tag(plan, name);
            Image {
                image: format!("{}/{name}:{tag}", a.hub),
                upstream: format!("{DEFAULT_HUB}/{name}:{tag}"),
                used_by,
            }
        })
        .collect();
    images.extend(sample_images(plan));
    let kind_clusters = plan
        .clusters
        .iter()
        .filter(|c| c.platform == Platform::Kind);
    images.extend(kind_clusters.filter_map(|c| {
        Some(Image {
            image: super::platform::kind_node_image(c, &a.kind_hub)?,
            upstream: super::platform::kind_node_image(c, DEFAULT_KIND_HUB)?,
            used_by: "kind",
        })
    }));
    let metallb = metallb_release(plan);
    if let Some(release) = &metallb {
        for name in ["controller", "speaker"] {
            images.push(Image {
                image: format!("{}/{name}:v{release}", a.metallb_hub),
                upstream: format!("{DEFAULT_METALLB_HUB}/{name}:v{release}"),
                used_by: "MetalLB",
            });
        }
    }
    images.sort();
    images.dedup();
    let mut charts = istio_charts(plan, clusters);
    if plan.clusters.iter().any(|c| c.metallb.is_some()) {
        charts.push(Chart {
            name: "metallb".to_owned(),
            version: metallb.map_or_else(|| "unpinned".to_owned(), |v| v.to_string()),
            repository: a.metallb_charts.clone(),
            upstream: DEFAULT_METALLB_CHARTS.to_owned(),
        });
    }
    charts.sort();
    charts.dedup();
    let (downloads, attachments) = downloads(plan, istioctl);
    Artifacts {
        images,
        charts,
        downloads,
        attachments,
    }
}

/// The MetalLB release the install step pins, where the plan has pools.
pub fn metallb_release(plan: &Plan) -> Option<Version> {
    plan.clusters
        .iter()
        .any(|c| c.metallb.is_some())
        .then(|| releases::metallb_release(&plan.mesh.metallb_version))
        .flatten()
}

fn sample_images(plan: &Plan) -> Vec<Image> {
    let hub = plan
        .mesh
        .samples_hub
        .as_deref()
        .unwrap_or(DEFAULT_SAMPLES_HUB);
    let mut images = Vec::new();
    let mut push = |image: fn(&str) -> String| {
        images.push(Image {
            image: image(hub),
            upstream: image(DEFAULT_SAMPLES_HUB),
            used_by: "samples",
        });
    };
    for c in &plan.clusters {
        if c.samples.helloworld.is_some() {
            push(samples::helloworld_image);
        }
        if c.samples.sleep {
            push(samples::curl_image);
        }
    }
    for c in &plan.clusters {
        for w in &c.samples.bookinfo {
            images.push(Image {
                image: samples::bookinfo_image(hub, *w),
                upstream: samples::bookinfo_image(DEFAULT_SAMPLES_HUB, *w),
                used_by: "samples",
            });
        }
    }
    images
}

fn istio_charts(plan: &Plan, clusters: &[Cluster]) -> Vec<Chart> {
    if plan.mesh.installer != Installer::Helm {
        return Vec::new(); // istioctl installs from the charts built into it
    }
    let a = &plan.mesh.artifacts;
    let mut names: Vec<String> = vec!["base".to_owned()];
    for c in clusters {
        names.push(
            c.helm_istiod_chart
                .rsplit('/')
                .next()
                .unwrap_or("istiod")
                .to_owned(),
        );
        if c.files
            .iter()
            .any(|f| f.starts_with("helm/") && f.ends_with("-gateway.yaml"))
        {
            names.push("gateway".to_owned());
        }
    }
    if plan.mesh.dataplane == Dataplane::Ambient {
        names.push("cni".to_owned());
        names.push("ztunnel".to_owned());
    }
    names
        .into_iter()
        .map(|name| Chart {
            name,
            version: plan.mesh.istio_version.to_string(),
            repository: a.istio_charts.clone(),
            upstream: DEFAULT_ISTIO_CHARTS.to_owned(),
        })
        .collect()
}

fn downloads(plan: &Plan, istioctl: bool) -> (Vec<Download>, Vec<Attachment>) {
    let mut downloads = Vec::new();
    let mut attachments = Vec::new();
    let version = &plan.mesh.istio_version;
    if istioctl {
        downloads.push(Download {
            what: format!("istioctl {version} (Linux, amd64; other platforms beside it)"),
            location: istioctl_archive(&plan.mesh.artifacts.istioctl, version),
            upstream: istioctl_archive(DEFAULT_ISTIOCTL, version),
        });
    }
    if plan.mesh.dataplane == Dataplane::Ambient
        && let Some(gateway_api) = gateway_api_version(plan)
    {
        let (_, location) = gateway_api_crds(plan, &gateway_api);
        downloads.push(Download {
            what: format!("Gateway API v{gateway_api} CRDs (standard channel)"),
            location,
            upstream: gateway_api_url(&gateway_api),
        });
        if let Some(CrdSource::File(source)) = &plan.mesh.artifacts.gateway_api_crds {
            attachments.push(Attachment {
                tree_path: GATEWAY_API_CRDS_FILE.to_owned(),
                source: source.clone(),
            });
        }
    }
    (downloads, attachments)
}
