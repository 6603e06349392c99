//! Derived demo workloads: which sample objects each cluster gets, with their images.

use serde::Serialize;
use serde::ser::SerializeSeq;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::traffic::{self, ServiceDef};
use crate::model::{DEFAULT_SAMPLES_HUB, Plan};
use crate::raw::{Bookinfo, Dataplane, Scope};

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
    /// The helloworld Service, in every cluster that runs helloworld or the client, so the name
    /// resolves wherever it is called from.
    pub helloworld_service: bool,
    /// Labels of the helloworld Service: `istio.io/global=true` in ambient unless a
    /// `[[service]]` makes it cluster-scoped (ambient's `serviceScopeConfigs` makes only
    /// Services so labelled reachable from other clusters).
    pub helloworld_labels: Vec<(&'static str, &'static str)>,
    /// This cluster's helloworld Deployment: version label and image.
    pub helloworld: Option<Workload>,
    /// The sleep/curl client image.
    pub sleep_image: Option<String>,
    /// Bookinfo Services (all of them wherever any bookinfo workload runs).
    pub bookinfo_services: Vec<SampleService>,
    /// Bookinfo Deployments here.
    pub bookinfo: Vec<Workload>,
    /// What verify.sh expects from this cluster's sleep client: the helloworld versions of
    /// its first tier in the traffic model. `None` without a client or a reachable endpoint.
    /// Not in the cluster's template value: its lists are as long as the mesh and shared by
    /// many clients, so `render` renders them once for all of those and verify.sh takes the
    /// text (issue 28).
    #[serde(skip)]
    pub verify: Option<Expect>,
    /// The bookinfo Gateway and VirtualService, where productpage runs behind an ingress
    /// gateway: Istio's `bookinfo-gateway.yaml`, which the seeds apply.
    pub bookinfo_ingress: bool,
    /// The port the bookinfo Gateway listens on in the ingress gateway's pod.
    pub gateway_port: u16,
    /// Where verify-bookinfo.sh asks for productpage: the ingress Service on its HTTP port, as
    /// a client of the ingress (its load balancer forwards the same port) reaches it.
    pub productpage_url: String,
    /// What verify-bookinfo.sh expects through this cluster's ingress gateway: the reviews
    /// versions (`v1`..`v3`) that render productpage, following the traffic model from the
    /// gateway to productpage to reviews (and, for the starred v2 and v3, on to ratings).
    pub verify_bookinfo: Option<Expect>,
}

/// What a verify script expects, from the traffic model. Clients that see the same first tier
/// share one copy of it (issue 28: with helloworld in 1,000 clusters each list is 1,000 long).
#[derive(Debug, Serialize)]
pub struct Expect {
    /// The versions that must answer, and the only ones that may.
    pub versions: Arc<[String]>,
    /// The versions planned in the mesh that this cluster does not reach while healthy.
    pub not_expected: Arc<[String]>,
    /// Other clusters whose Deployments serve the expected answers, to wait for.
    pub waits: RemoteWaits,
}

/// `(cluster index, what to wait for there)`, in plan order, shared by the clients of a view.
pub type WaitList = Arc<[(usize, RemoteWait)]>;

/// The clusters whose Deployments a verify script waits for: a list shared by every client
/// with the same first tier, less the client's own cluster (its script waits for all of its
/// own). Serialized as the list of the others.
#[derive(Debug, Clone)]
pub struct RemoteWaits {
    /// `(cluster index, what to wait for there)`, in plan order.
    all: WaitList,
    /// The client's own cluster, left out.
    except: Option<usize>,
}

impl RemoteWaits {
    /// The clusters to wait in, in plan order.
    pub fn iter(&self) -> impl Iterator<Item = &RemoteWait> {
        self.all
            .iter()
            .filter(|(i, _)| Some(*i) != self.except)
            .map(|(_, wait)| wait)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// None to wait for.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The shared list, the client's own cluster included, and the index of that cluster
    /// (the caller leaves it out): lets `render` render the parts of the list every client
    /// shares once.
    pub fn shared(&self) -> (&WaitList, Option<usize>) {
        (&self.all, self.except)
    }
}

impl Serialize for RemoteWaits {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for wait in self.iter() {
            seq.serialize_element(wait)?;
        }
        seq.end()
    }
}

/// Deployments of another cluster to wait for.
#[derive(Debug, Serialize)]
pub struct RemoteWait {
    /// Cluster name.
    pub cluster: String,
    /// Its kubectl context.
    pub context: String,
    /// Deployment names there.
    pub deployments: Vec<String>,
}

/// A sample Service.
#[derive(Debug, Serialize)]
pub struct SampleService {
    /// Its name.
    pub name: &'static str,
    /// Its labels beyond `app` and `service` (see [`Samples::helloworld_labels`]).
    pub labels: Vec<(&'static str, &'static str)>,
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

/// Resolves a cluster's samples, `None` when it runs none. `index`: the cluster's place in
/// the plan; `has_ingress`: an ingress gateway runs in the cluster; `defs`: the sample
/// services of the traffic model ([`traffic::sample_definitions`]).
pub fn samples(
    plan: &Plan,
    index: usize,
    has_ingress: bool,
    defs: &[ServiceDef],
    memo: &mut VerifyMemo,
) -> Option<Samples> {
    let c = plan.clusters.get(index)?;
    let s = &c.samples;
    if s.helloworld.is_none() && !s.sleep && s.bookinfo.is_empty() {
        return None;
    }
    let hub = plan
        .mesh
        .samples_hub
        .as_deref()
        .unwrap_or(DEFAULT_SAMPLES_HUB);
    let def = |name: &str| defs.iter().find(|d| d.name == name);
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    // Ambient: a Service is reachable from other clusters only when labelled global (the
    // ambient profile's `serviceScopeConfigs`); a cluster-scoped one never is.
    let labels = |name: &str| -> Vec<(&'static str, &'static str)> {
        if ambient && def(name).is_some_and(|d| d.scope == Scope::Mesh) {
            vec![("istio.io/global", "true")]
        } else {
            Vec::new()
        }
    };
    let bookinfo_ingress = has_ingress && s.bookinfo.contains(&Bookinfo::Productpage);
    Some(Samples {
        namespace: plan.mesh.samples_namespace.clone(),
        namespace_labels: vec![if ambient {
            ("istio.io/dataplane-mode", "ambient")
        } else {
            ("istio-injection", "enabled")
        }],
        helloworld_service: def(HELLOWORLD).is_some() && (s.helloworld.is_some() || s.sleep),
        helloworld_labels: labels(HELLOWORLD),
        helloworld: s.helloworld.as_ref().map(|version| Workload {
            name: helloworld_deployment(version),
            app: "helloworld",
            version: version.clone(),
            image: helloworld_image(hub),
        }),
        sleep_image: s.sleep.then(|| curl_image(hub)),
        bookinfo_services: if s.bookinfo.is_empty() {
            Vec::new()
        } else {
            ["details", "ratings", "reviews", "productpage"]
                .into_iter()
                .map(|name| SampleService {
                    name,
                    labels: labels(name),
                })
                .collect()
        },
        bookinfo: s
            .bookinfo
            .iter()
            .map(|w| bookinfo_workload(hub, *w))
            .collect(),
        verify: if s.sleep {
            def(HELLOWORLD).and_then(|d| verify_helloworld(plan, index, d, memo))
        } else {
            None
        },
        bookinfo_ingress,
        gateway_port: super::INGRESS_HTTP_TARGET_PORT,
        productpage_url: format!(
            "http://istio-ingressgateway.istio-system.svc:{}/productpage",
            super::INGRESS_PORTS[1].port
        ),
        verify_bookinfo: if bookinfo_ingress {
            verify_bookinfo(plan, index, &def)
        } else {
            None
        },
    })
}

const HELLOWORLD: &str = "helloworld";

fn helloworld_deployment(version: &str) -> String {
    format!("helloworld-{}", dns_label(version))
}

/// Deployments to wait for, by cluster index.
type Waits = BTreeMap<usize, Vec<String>>;

/// Adds `deployment` in cluster `i` to `waits`, unless `i` is the client's own cluster (its
/// verify script waits for all of its own).
fn add_wait(client: usize, i: usize, deployment: &str, waits: &mut Waits) {
    if i == client {
        return;
    }
    let deployments = waits.entry(i).or_default();
    if !deployments.iter().any(|d| d == deployment) {
        deployments.push(deployment.to_owned());
    }
}

fn remote_waits(plan: &Plan, waits: Waits) -> Vec<(usize, RemoteWait)> {
    waits
        .into_iter()
        .filter_map(|(i, mut deployments)| {
            let c = plan.clusters.get(i)?;
            deployments.shrink_to_fit();
            Some((
                i,
                RemoteWait {
                    cluster: c.name.clone(),
                    context: c.context.clone(),
                    deployments,
                },
            ))
        })
        .collect()
}

/// verify.sh's expectations, by the [`traffic::ViewKey`] of the clients they are for: computed
/// once for all the clients that see the same first tier of helloworld (the clusters of one
/// network, without locality failover). Lives for one `resolve`.
#[derive(Debug, Default)]
pub struct VerifyMemo(HashMap<traffic::ViewKey, Option<Shared>>);

impl VerifyMemo {
    /// The memo filled for every sleep client of the plan: the distinct first tiers computed
    /// on every core, each for the first client (in plan order) that sees it, as
    /// [`verify_helloworld`] would compute it (issue 28: 100 tiers of 1,000 endpoints at 1,000
    /// clusters).
    pub fn for_plan(plan: &Plan, defs: &[ServiceDef]) -> VerifyMemo {
        let Some(def) = defs.iter().find(|d| d.name == HELLOWORLD) else {
            return VerifyMemo::default();
        };
        let mut keys: Vec<(traffic::ViewKey, usize)> = Vec::new();
        let mut seen = HashSet::new();
        for (client, c) in plan.clusters.iter().enumerate() {
            let key = traffic::view_key(plan, def, client);
            if c.samples.sleep && seen.insert(key.clone()) {
                keys.push((key, client));
            }
        }
        let tiers = crate::parallel::map_on_all_cores(&keys, |(_, client)| {
            helloworld_tier(plan, *client, def)
        });
        VerifyMemo(keys.into_iter().map(|(key, _)| key).zip(tiers).collect())
    }
}

/// An [`Expect`] for every client with one [`traffic::ViewKey`], waits in every cluster included.
#[derive(Debug, Clone)]
struct Shared {
    versions: Arc<[String]>,
    not_expected: Arc<[String]>,
    waits: Arc<[(usize, RemoteWait)]>,
}

/// verify.sh: the helloworld versions of the sleep client's first tier.
fn verify_helloworld(
    plan: &Plan,
    client: usize,
    def: &ServiceDef,
    memo: &mut VerifyMemo,
) -> Option<Expect> {
    let shared = memo
        .0
        .entry(traffic::view_key(plan, def, client))
        .or_insert_with(|| helloworld_tier(plan, client, def))
        .clone()?;
    Some(Expect {
        versions: shared.versions,
        not_expected: shared.not_expected,
        waits: RemoteWaits {
            all: shared.waits,
            except: Some(client),
        },
    })
}

/// What [`verify_helloworld`] expects of `client`'s first tier, waits in its own cluster too.
fn helloworld_tier(plan: &Plan, client: usize, def: &ServiceDef) -> Option<Shared> {
    let view = traffic::view(plan, def, client);
    let mut versions = Vec::new();
    // Each version's Deployment name, made once: a 1,000-cluster tier names the same few
    // versions a thousand times (issue 28).
    let mut deployments: HashMap<&str, String> = HashMap::new();
    let mut waits = Waits::new();
    for e in view.first_tier() {
        let i = e.index;
        for v in &e.versions {
            let deployment = deployments.entry(v.as_str()).or_insert_with(|| {
                versions.push(v.clone());
                helloworld_deployment(v)
            });
            add_wait(usize::MAX, i, deployment, &mut waits);
        }
    }
    if versions.is_empty() {
        return None;
    }
    let not_expected: Vec<String> = def
        .endpoints
        .iter()
        .flat_map(|(_, vs)| vs.iter())
        .filter(|v| !deployments.contains_key(v.as_str()))
        .cloned()
        .collect();
    Some(Shared {
        versions: versions.into(),
        not_expected: not_expected.into(),
        waits: remote_waits(plan, waits).into(),
    })
}

/// verify-bookinfo.sh: from this cluster's ingress gateway to productpage's first tier, from
/// each productpage to reviews' first tier; v2 and v3 show stars only where ratings is
/// reachable from them.
fn verify_bookinfo<'a>(
    plan: &Plan,
    client: usize,
    def: &dyn Fn(&str) -> Option<&'a ServiceDef>,
) -> Option<Expect> {
    let productpage = def("productpage")?;
    let reviews = def("reviews")?;
    let ratings = def("ratings");
    let mut versions: Vec<String> = Vec::new();
    let mut waits = Waits::new();
    for page in traffic::view(plan, productpage, client).first_tier() {
        let p = page.index;
        let mut shown = false;
        for review in traffic::view(plan, reviews, p).first_tier() {
            let r = review.index;
            let stars = ratings.map(|d| traffic::view(plan, d, r));
            for v in &review.versions {
                let rated = match (v.as_str(), &stars) {
                    ("v1", _) => true,
                    (_, Some(view)) => !view.first_tier().is_empty(),
                    (_, None) => false,
                };
                if !rated {
                    continue;
                }
                if v != "v1" {
                    for rating in stars.iter().flat_map(|view| view.first_tier()) {
                        add_wait(client, rating.index, "ratings-v1", &mut waits);
                    }
                }
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
                add_wait(client, r, &format!("reviews-{v}"), &mut waits);
                shown = true;
            }
        }
        if shown {
            add_wait(client, p, "productpage-v1", &mut waits);
        }
    }
    if versions.is_empty() {
        return None;
    }
    versions.sort();
    let not_expected: Vec<String> = ["v1", "v2", "v3"]
        .into_iter()
        .filter(|v| !versions.iter().any(|e| e == v))
        .filter(|v| {
            reviews
                .endpoints
                .iter()
                .any(|(_, vs)| vs.iter().any(|x| x == v))
        })
        .map(str::to_owned)
        .collect();
    Some(Expect {
        versions: versions.into(),
        not_expected: not_expected.into(),
        waits: RemoteWaits {
            all: remote_waits(plan, waits).into(),
            except: None,
        },
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
