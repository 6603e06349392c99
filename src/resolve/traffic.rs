//! The traffic model: for every service and every client cluster, the endpoints that client
//! gets, in the priority tiers its proxy uses. Derived once, from `[[service]]` and the
//! samples; the verify scripts, `meshplan explain --traffic` and the README read it.
//!
//! What it rests on (Istio's `pilot/pkg/networking/core/loadbalancer/loadbalancer.go`):
//!
//! - Sidecar mode, with outlier detection (a `DestinationRule` of `[[service]]`): locality load
//!   balancing is on (the mesh default `localityLbSetting.enabled`), and istiod gives each
//!   endpoint a priority against the client's locality: 0 same region, zone and subzone; 1 same
//!   region and zone; 2 same region; 3 another region; and when a `failover` entry names the
//!   client's region (the first such entry), 3 for its `to` region and 4 for the others. The
//!   priorities are then renumbered from 0 without gaps. Envoy sends everything to the best
//!   priority that has healthy endpoints: a healthy mesh's client reaches its first tier only.
//! - Without outlier detection, istiod applies no failover priorities: one tier, spread over
//!   every reachable endpoint.
//! - `scope = "cluster"` (`serviceSettings.clusterLocal`): only the client's own cluster.
//! - Another network's endpoints are reached through that network's east-west gateways (their
//!   planned address), and not at all when the network has none.
//! - Ambient without a waypoint: ztunnel applies neither outlier detection nor locality
//!   failover; a global service (`istio.io/global`) is one tier over every reachable endpoint.
//!
//! A cluster counts in its own locality (`region`, `zone`, `subzone`); nodes that override it
//! are not split out. The samples' services (helloworld, bookinfo) take their endpoints from
//! where the samples run, and their settings from a `[[service]]` of the same name in the
//! samples' namespace, whose `clusters` are endpoints too.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{self, Failover, Plan};
use crate::raw::{Bookinfo, Dataplane, LbVia, Scope};

/// The model of every service, for every client cluster.
#[derive(Debug, Serialize)]
pub struct Traffic {
    /// The plan file name.
    pub plan_file: String,
    /// Mesh ID.
    pub mesh_id: String,
    /// `sidecar` or `ambient`.
    pub dataplane: &'static str,
    /// Services: the plan's `[[service]]` in plan order, then the samples' own.
    pub services: Vec<ServiceTraffic>,
}

/// One service as every client cluster sees it.
#[derive(Debug, Serialize)]
pub struct ServiceTraffic {
    /// `name.namespace`.
    pub service: String,
    /// Its port.
    pub port: u16,
    /// `plan`, `sample`, or `plan, sample` (a `[[service]]` naming a sample service).
    pub source: &'static str,
    /// How a client's endpoints are ordered.
    pub routing: &'static str,
    /// Per client cluster, in plan order.
    pub clients: Vec<ClientView>,
}

/// What one client cluster reaches.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// The client's cluster.
    pub client: String,
    /// Its locality, `region/zone/subzone` (`-` when it has none).
    pub locality: String,
    /// Tiers, best first: a healthy mesh sends everything to the first.
    pub tiers: Vec<Tier>,
    /// Endpoints it cannot reach, with why.
    pub unreachable: Vec<Unreachable>,
}

impl ClientView {
    /// The endpoints a healthy mesh sends this client to: its first tier.
    pub fn first_tier(&self) -> &[Endpoint] {
        self.tiers.first().map_or(&[], |t| t.endpoints.as_slice())
    }
}

/// Endpoints of one priority.
#[derive(Debug, Clone, Serialize)]
pub struct Tier {
    /// Envoy priority, from 0.
    pub priority: usize,
    /// Why these endpoints are here.
    pub why: String,
    /// Endpoints, in plan order of their clusters.
    pub endpoints: Vec<Endpoint>,
}

/// A cluster's endpoints of a service.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// The cluster's index in `plan.clusters`.
    #[serde(skip)]
    pub index: usize,
    /// The cluster they run in.
    pub cluster: String,
    /// Its locality.
    pub locality: String,
    /// Version labels there (samples only).
    pub versions: Vec<String>,
    /// The east-west gateway addresses (`address:port`) a client on another network goes
    /// through; empty on the client's own network. Shared by every endpoint of one network
    /// (a 1,000-cluster view would otherwise copy them a thousand times, issue 28).
    pub via: Arc<[String]>,
}

/// A cluster's endpoints a client cannot reach.
#[derive(Debug, Clone, Serialize)]
pub struct Unreachable {
    /// The cluster.
    pub cluster: String,
    /// Why.
    pub why: String,
}

/// Where a service runs and what decides its clients' tiers.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Port.
    pub port: u16,
    /// `plan`, `sample` or `plan, sample`.
    pub source: &'static str,
    /// `(cluster index, versions)`, in plan order.
    pub endpoints: Vec<(usize, Vec<String>)>,
    /// Client cluster indexes, in plan order; `None`: every cluster.
    pub clients: Option<Vec<usize>>,
    /// Who reaches it.
    pub scope: Scope,
    /// Failover entries.
    pub failover: Vec<Failover>,
    /// Outlier detection set.
    pub outlier: bool,
}

impl ServiceDef {
    /// `name.namespace`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// The samples' services: `(name, port)`.
const HELLOWORLD: (&str, u16) = ("helloworld", 5000);
const BOOKINFO_PORT: u16 = 9080;

/// The bookinfo workloads of one service, with their version label.
fn bookinfo_of(service: &str) -> &'static [(Bookinfo, &'static str)] {
    match service {
        "productpage" => &[(Bookinfo::Productpage, "v1")],
        "details" => &[(Bookinfo::Details, "v1")],
        "ratings" => &[(Bookinfo::Ratings, "v1")],
        "reviews" => &[
            (Bookinfo::ReviewsV1, "v1"),
            (Bookinfo::ReviewsV2, "v2"),
            (Bookinfo::ReviewsV3, "v3"),
        ],
        _ => &[],
    }
}

/// Which bookinfo workloads call `service`.
fn bookinfo_callers(service: &str) -> &'static [Bookinfo] {
    match service {
        "details" | "reviews" => &[Bookinfo::Productpage],
        "ratings" => &[Bookinfo::ReviewsV2, Bookinfo::ReviewsV3],
        _ => &[],
    }
}

/// A sample service: name, port, `(cluster index, versions)` endpoints, caller cluster indexes.
type SampleService = (&'static str, u16, Vec<(usize, Vec<String>)>, Vec<usize>);

/// Every sample service that runs somewhere.
fn sample_services(plan: &Plan) -> Vec<SampleService> {
    let mut out = Vec::new();
    let hello: Vec<(usize, Vec<String>)> = plan
        .clusters
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, vec![c.samples.helloworld.clone()?])))
        .collect();
    if !hello.is_empty() {
        let callers = plan
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.samples.sleep)
            .map(|(i, _)| i)
            .collect();
        out.push((HELLOWORLD.0, HELLOWORLD.1, hello, callers));
    }
    for service in ["productpage", "details", "reviews", "ratings"] {
        let endpoints: Vec<(usize, Vec<String>)> = plan
            .clusters
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let versions: Vec<String> = bookinfo_of(service)
                    .iter()
                    .filter(|(w, _)| c.samples.bookinfo.contains(w))
                    .map(|(_, v)| (*v).to_owned())
                    .collect();
                (!versions.is_empty()).then_some((i, versions))
            })
            .collect();
        if endpoints.is_empty() {
            continue;
        }
        // productpage's client is the ingress gateway of a cluster that runs it (verify-bookinfo.sh).
        let callers: Vec<usize> = plan
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                if service == "productpage" {
                    c.samples.bookinfo.contains(&Bookinfo::Productpage)
                } else {
                    bookinfo_callers(service)
                        .iter()
                        .any(|w| c.samples.bookinfo.contains(w))
                }
            })
            .map(|(i, _)| i)
            .collect();
        out.push((service, BOOKINFO_PORT, endpoints, callers));
    }
    out
}

/// The `[[service]]` naming a sample service (same name, in the samples' namespace).
fn plan_service<'a>(plan: &'a Plan, name: &str) -> Option<&'a model::Service> {
    plan.services
        .iter()
        .find(|s| s.name == name && s.namespace == plan.mesh.samples_namespace)
}

/// The sample services that run somewhere, with the settings of the `[[service]]` naming
/// them: what the verify scripts follow.
pub fn sample_definitions(plan: &Plan) -> Vec<ServiceDef> {
    sample_services(plan)
        .into_iter()
        .map(|(name, port, mut endpoints, callers)| {
            let planned = plan_service(plan, name);
            // The plan's `clusters` count too: endpoints of its own may run there.
            if let Some(planned) = planned {
                for (i, c) in plan.clusters.iter().enumerate() {
                    if planned.clusters.contains(&c.name) && !endpoints.iter().any(|(e, _)| *e == i)
                    {
                        endpoints.push((i, Vec::new()));
                    }
                }
                endpoints.sort_by_key(|(i, _)| *i);
            }
            ServiceDef {
                name: name.to_owned(),
                namespace: plan.mesh.samples_namespace.clone(),
                port,
                source: if planned.is_some() {
                    "plan, sample"
                } else {
                    "sample"
                },
                endpoints,
                // A planned service is modelled from every cluster, as other services are.
                clients: if planned.is_some() {
                    None
                } else {
                    Some(callers)
                },
                scope: planned.map_or(Scope::Mesh, |s| s.scope),
                failover: planned.map(|s| s.failover.clone()).unwrap_or_default(),
                outlier: planned.is_some_and(|s| s.outlier.is_some()),
            }
        })
        .collect()
}

/// Every service of the plan, with where it runs: `[[service]]` in plan order (a sample
/// service among them runs where the samples run and in its `clusters`), then the sample services no `[[service]]`
/// names.
pub fn definitions(plan: &Plan) -> Vec<ServiceDef> {
    let index = plan.cluster_indexes();
    let samples = sample_definitions(plan);
    let mut defs: Vec<ServiceDef> = plan
        .services
        .iter()
        .map(|s| {
            match samples
                .iter()
                .find(|d| d.name == s.name && d.namespace == s.namespace)
            {
                Some(sample) => sample.clone(),
                None => ServiceDef {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                    port: s.port,
                    source: "plan",
                    endpoints: s
                        .clusters
                        .iter()
                        .filter_map(|c| Some((*index.get(c.as_str())?, Vec::new())))
                        .collect(),
                    clients: None,
                    scope: s.scope,
                    failover: s.failover.clone(),
                    outlier: s.outlier.is_some(),
                },
            }
        })
        .collect();
    defs.extend(samples.into_iter().filter(|d| d.source == "sample"));
    defs
}

/// A locality as `region/zone/subzone`, `-` when empty.
pub fn locality_text(l: &model::Locality) -> String {
    let parts: Vec<&str> = [&l.region, &l.zone, &l.subzone]
        .iter()
        .filter_map(|p| p.as_deref())
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("/")
    }
}

/// How `def`'s clients order its endpoints.
pub fn routing(plan: &Plan, def: &ServiceDef) -> &'static str {
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    match (def.scope, ambient, def.outlier) {
        (Scope::Cluster, _, _) => "cluster-local: the client's own cluster only",
        (Scope::Mesh, true, _) => {
            "ambient, no waypoint: ztunnel spreads over every reachable endpoint (no outlier \
             detection, no locality failover)"
        }
        (Scope::Mesh, false, true) => {
            "locality failover (outlier detection): same locality first, then the failover \
             region, then the rest"
        }
        (Scope::Mesh, false, false) => {
            "no outlier detection: no locality preference, spread over every reachable endpoint"
        }
    }
}

/// The east-west gateways (`address:port`) of every network, in plan order: one pass over the
/// clusters.
fn gateways_by_network(plan: &Plan) -> HashMap<&str, Arc<[String]>> {
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    let mut out: HashMap<&str, Vec<String>> = HashMap::new();
    for c in &plan.clusters {
        let Some(address) =
            c.lb.eastwest
                .map(|ip| match ip {
                    std::net::IpAddr::V4(v4) => v4.to_string(),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                })
                .or_else(|| c.lb.eastwest_hostname.clone())
        else {
            continue;
        };
        // Ambient's east-west gateway takes HBONE on 15008; the sidecar one 15443.
        let port = if ambient {
            15008
        } else if c.lb.via == LbVia::NodePort {
            c.lb.eastwest_node_port
        } else {
            15443
        };
        out.entry(c.network.as_str())
            .or_default()
            .push(format!("{address}:{port}"));
    }
    out.into_iter().map(|(n, g)| (n, g.into())).collect()
}

/// Istio's priority of an endpoint in `to` for a client in `from`, before renumbering, with why.
fn raw_priority(
    from: &model::Locality,
    to: &model::Locality,
    failover: &[Failover],
) -> (u8, String) {
    let eq = |a: &Option<String>, b: &Option<String>| {
        a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("")
    };
    if eq(&from.region, &to.region) {
        if eq(&from.zone, &to.zone) {
            if eq(&from.subzone, &to.subzone) {
                return (0, "same locality".to_owned());
            }
            return (1, "same zone".to_owned());
        }
        return (2, "same region".to_owned());
    }
    let region = from.region.as_deref().unwrap_or("");
    match failover.iter().find(|f| f.from == region) {
        Some(f) if to.region.as_deref() == Some(f.to.as_str()) => {
            (3, format!("failover {} → {}", f.from, f.to))
        }
        Some(f) => (4, format!("other regions, after failover to {}", f.to)),
        None => (3, "other regions".to_owned()),
    }
}

/// Where a client stands.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    /// Its cluster (an index into `plan.clusters`), when it is one.
    pub cluster: Option<usize>,
    /// Its name in the output.
    pub name: String,
    /// Its locality.
    pub locality: &'a model::Locality,
    /// Its network.
    pub network: &'a str,
}

/// Everything of client cluster `client` that [`view_from`] reads to place `def`'s endpoints
/// (its name and locality text only label the view): clients with equal keys get the same
/// tiers of the same endpoints, so what is derived from the tiers can be shared between them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The client's own cluster, which only a cluster-local service looks at.
    cluster: Option<usize>,
    /// Its network: which endpoints go through which east-west gateways.
    network: String,
    /// Its locality, which only locality failover (outlier detection, sidecar) looks at.
    locality: Option<[Option<String>; 3]>,
}

/// The [`ViewKey`] of client cluster `client` for `def`.
pub fn view_key(plan: &Plan, def: &ServiceDef, client: usize) -> ViewKey {
    let me = &plan.clusters[client];
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    let cluster_local = def.scope == Scope::Cluster;
    ViewKey {
        cluster: cluster_local.then_some(client),
        network: me.network.clone(),
        locality: (!cluster_local && !ambient && def.outlier).then(|| {
            [
                me.locality.region.clone(),
                me.locality.zone.clone(),
                me.locality.subzone.clone(),
            ]
        }),
    }
}

/// What client cluster `client` (an index into `plan.clusters`) reaches of `def`.
pub fn view(plan: &Plan, def: &ServiceDef, client: usize) -> ClientView {
    let me = &plan.clusters[client];
    view_from(
        plan,
        def,
        &Client {
            cluster: Some(client),
            name: me.name.clone(),
            locality: &me.locality,
            network: &me.network,
        },
        &[],
    )
}

/// What `client` reaches of `def` when the clusters in `lost` (indexes) are gone.
pub fn view_from(plan: &Plan, def: &ServiceDef, client: &Client, lost: &[usize]) -> ClientView {
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    let mut tiers: Vec<(u8, String, Vec<Endpoint>)> = Vec::new();
    let mut unreachable = Vec::new();
    let mut gateways: Option<HashMap<&str, Arc<[String]>>> = None;
    let direct: Arc<[String]> = Arc::new([]);
    for (i, versions) in &def.endpoints {
        if lost.contains(i) {
            continue;
        }
        let there = &plan.clusters[*i];
        if def.scope == Scope::Cluster && Some(*i) != client.cluster {
            unreachable.push(Unreachable {
                cluster: there.name.clone(),
                why: if ambient {
                    "cluster-local: not labelled istio.io/global".to_owned()
                } else {
                    "cluster-local: serviceSettings.clusterLocal".to_owned()
                },
            });
            continue;
        }
        let via = if there.network == client.network {
            Arc::clone(&direct)
        } else {
            let gateways = gateways
                .get_or_insert_with(|| gateways_by_network(plan))
                .get(there.network.as_str())
                .cloned()
                .unwrap_or_else(|| Arc::clone(&direct));
            if gateways.is_empty() {
                unreachable.push(Unreachable {
                    cluster: there.name.clone(),
                    why: format!("network {} has no east-west gateway", there.network),
                });
                continue;
            }
            gateways
        };
        let (priority, why) = if def.scope == Scope::Cluster {
            (0, "cluster-local".to_owned())
        } else if ambient {
            (0, "ztunnel: no locality preference".to_owned())
        } else if def.outlier {
            raw_priority(client.locality, &there.locality, &def.failover)
        } else {
            (0, "no locality preference".to_owned())
        };
        let endpoint = Endpoint {
            index: *i,
            cluster: there.name.clone(),
            locality: locality_text(&there.locality),
            versions: versions.clone(),
            via,
        };
        match tiers.iter_mut().find(|(p, ..)| *p == priority) {
            Some((_, _, endpoints)) => endpoints.push(endpoint),
            None => tiers.push((priority, why, vec![endpoint])),
        }
    }
    tiers.sort_by_key(|(p, ..)| *p);
    ClientView {
        client: client.name.clone(),
        locality: locality_text(client.locality),
        tiers: tiers
            .into_iter()
            .enumerate()
            .map(|(priority, (_, why, endpoints))| Tier {
                priority,
                why,
                endpoints,
            })
            .collect(),
        unreachable,
    }
}

/// The whole model, optionally only for client `from` and service `service` (`name.namespace`
/// or `name`).
pub fn traffic(plan: &Plan, plan_file: &str, from: Option<&str>, service: Option<&str>) -> Traffic {
    let services = definitions(plan)
        .into_iter()
        .filter(|d| service.is_none_or(|s| s == d.id() || s == d.name))
        .map(|d| ServiceTraffic {
            service: d.id(),
            port: d.port,
            source: d.source,
            routing: routing(plan, &d),
            clients: match &d.clients {
                Some(clients) => clients.clone(),
                None => (0..plan.clusters.len()).collect(),
            }
            .into_iter()
            .filter(|i| from.is_none_or(|f| plan.clusters[*i].name == f))
            .map(|i| view(plan, &d, i))
            .collect(),
        })
        .collect();
    Traffic {
        plan_file: plan_file.to_owned(),
        mesh_id: plan.mesh.id.clone(),
        dataplane: match plan.mesh.dataplane {
            Dataplane::Sidecar => "sidecar",
            Dataplane::Ambient => "ambient",
        },
        services,
    }
}
