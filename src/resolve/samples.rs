//! Derived demo workloads: which sample objects each cluster gets, with their images.

use serde::Serialize;

use crate::model::{self, DEFAULT_SAMPLES_HUB, Plan};
use crate::raw::{Bookinfo, Dataplane};

/// Image tag of Istio's bookinfo examples.
const BOOKINFO_TAG: &str = "1.20.2";
/// Image of the curl client that replaced Istio's `sleep` sample.
const CURL_IMAGE: &str = "curlimages/curl:8.16.0";

/// The samples of one cluster.
#[derive(Debug, Serialize)]
pub struct Samples {
    /// Namespace.
    pub namespace: String,
    /// Its labels: `istio-injection=enabled` (sidecar) or `istio.io/dataplane-mode=ambient`.
    pub namespace_labels: Vec<(&'static str, &'static str)>,
    /// Labels of the Services other clusters call: `istio.io/global=true` in ambient, where a
    /// service is cluster-local unless labelled global (the ambient profile's
    /// `serviceScopeConfigs`).
    pub service_labels: Vec<(&'static str, &'static str)>,
    /// The helloworld Service, in every cluster that runs helloworld or the client, so the name
    /// resolves wherever it is called from.
    pub helloworld_service: bool,
    /// This cluster's helloworld Deployment: version label and image.
    pub helloworld: Option<Workload>,
    /// The sleep/curl client image.
    pub sleep_image: Option<String>,
    /// Bookinfo Services (all of them wherever any bookinfo workload runs).
    pub bookinfo_services: Vec<&'static str>,
    /// Bookinfo Deployments here.
    pub bookinfo: Vec<Workload>,
    /// Every helloworld version in the mesh: what verify.sh expects to hear.
    pub mesh_versions: Vec<String>,
    /// The bookinfo Gateway and VirtualService, where productpage runs behind an ingress
    /// gateway: Istio's `bookinfo-gateway.yaml`, which the seeds apply.
    pub bookinfo_ingress: bool,
    /// Every reviews version in the mesh (`v1`..`v3`): what verify-bookinfo.sh expects to see.
    pub reviews_versions: Vec<&'static str>,
}

/// A Deployment of a sample.
#[derive(Debug, Serialize)]
pub struct Workload {
    /// Deployment (and ServiceAccount) name: a DNS-1123 label.
    pub name: String,
    /// App label and ServiceAccount suffix.
    pub app: &'static str,
    /// Version label.
    pub version: String,
    /// Image reference.
    pub image: String,
}

/// The registry part of an image hub (`docker.m.daocloud.io/istio` → `docker.m.daocloud.io`),
/// used to mirror non-Istio images the same way.
fn registry(hub: &str) -> &str {
    match hub.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// The image of the helloworld sample: it answers with `$SERVICE_VERSION`, so one image serves
/// any version label.
pub(super) fn helloworld_image(hub: &str) -> String {
    format!("{hub}/examples-helloworld-v1:1.0")
}

/// The curl client's image, from the samples hub's registry.
pub(super) fn curl_image(hub: &str) -> String {
    format!("{}/{CURL_IMAGE}", registry(hub))
}

/// The image of one bookinfo workload.
pub(super) fn bookinfo_image(hub: &str, w: Bookinfo) -> String {
    let (app, version) = bookinfo_app(w);
    format!("{hub}/examples-bookinfo-{app}-{version}:{BOOKINFO_TAG}")
}

fn bookinfo_app(w: Bookinfo) -> (&'static str, &'static str) {
    match w {
        Bookinfo::Productpage => ("productpage", "v1"),
        Bookinfo::Details => ("details", "v1"),
        Bookinfo::Ratings => ("ratings", "v1"),
        Bookinfo::ReviewsV1 => ("reviews", "v1"),
        Bookinfo::ReviewsV2 => ("reviews", "v2"),
        Bookinfo::ReviewsV3 => ("reviews", "v3"),
    }
}

fn bookinfo_workload(hub: &str, w: Bookinfo) -> Workload {
    let (app, version) = bookinfo_app(w);
    Workload {
        name: format!("{app}-{version}"),
        app,
        version: version.to_owned(),
        image: bookinfo_image(hub, w),
    }
}

/// Every reviews version planned anywhere in the mesh, in order.
fn reviews_versions(plan: &Plan) -> Vec<&'static str> {
    [
        (Bookinfo::ReviewsV1, "v1"),
        (Bookinfo::ReviewsV2, "v2"),
        (Bookinfo::ReviewsV3, "v3"),
    ]
    .into_iter()
    .filter(|(w, _)| plan.clusters.iter().any(|c| c.samples.bookinfo.contains(w)))
    .map(|(_, v)| v)
    .collect()
}

/// Resolves a cluster's samples, `None` when it runs none. `has_ingress`: an ingress gateway
/// runs in the cluster.
pub fn samples(plan: &Plan, c: &model::Cluster, has_ingress: bool) -> Option<Samples> {
    let s = &c.samples;
    if s.helloworld.is_none() && !s.sleep && s.bookinfo.is_empty() {
        return None;
    }
    let hub = plan
        .mesh
        .samples_hub
        .as_deref()
        .unwrap_or(DEFAULT_SAMPLES_HUB);
    let mesh_versions: Vec<String> = plan
        .clusters
        .iter()
        .filter_map(|o| o.samples.helloworld.clone())
        .collect();
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    Some(Samples {
        namespace: plan.mesh.samples_namespace.clone(),
        namespace_labels: vec![if ambient {
            ("istio.io/dataplane-mode", "ambient")
        } else {
            ("istio-injection", "enabled")
        }],
        service_labels: if ambient {
            vec![("istio.io/global", "true")]
        } else {
            Vec::new()
        },
        helloworld_service: !mesh_versions.is_empty() && (s.helloworld.is_some() || s.sleep),
        helloworld: s.helloworld.as_ref().map(|version| Workload {
            name: format!("helloworld-{}", dns_label(version)),
            app: "helloworld",
            version: version.clone(),
            image: helloworld_image(hub),
        }),
        sleep_image: s.sleep.then(|| curl_image(hub)),
        bookinfo_services: if s.bookinfo.is_empty() {
            Vec::new()
        } else {
            vec!["details", "ratings", "reviews", "productpage"]
        },
        bookinfo: s
            .bookinfo
            .iter()
            .map(|w| bookinfo_workload(hub, *w))
            .collect(),
        mesh_versions,
        bookinfo_ingress: has_ingress && s.bookinfo.contains(&Bookinfo::Productpage),
        reviews_versions: reviews_versions(plan),
    })
}

/// A label value (`Zone_1.a`) as a DNS-1123 label fragment (`zone-1-a`) for object names.
pub(super) fn dns_label(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
