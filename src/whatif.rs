//! `meshplan explain PLAN --without CLUSTER...`: what is lost when those clusters go down.
//!
//! Computed from the validated plan alone (no bundle is resolved), so it stays fast on large
//! meshes. What it reports, and the Istio behaviour each part rests on:
//!
//! - services with no endpoint left anywhere;
//! - services that keep endpoints elsewhere, per lost region: where their clients in that
//!   region go, as the traffic model (`crate::resolve::traffic`, `explain --traffic`) says for a
//!   client there once the lost clusters are gone: its first tier. With outlier detection
//!   Istio's locality load balancing is on: same region first, then the `failover` region, then
//!   any other. Without it there is no locality preference, and nothing ejects the lost
//!   endpoints quickly; in ambient mode, without a waypoint, ztunnel does no failover at all;
//! - remotes whose primary is lost: their proxies keep the configuration and certificates they
//!   have until those expire, but nothing new is injected or configured;
//! - networks whose every east-west gateway is lost: the clusters left there cannot be reached
//!   from other networks.
//!
//! A lost cluster counts in its own `region`; nodes whose region overrides it are not split out
//! (a cluster lost is lost in every region its nodes span).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::model::{self, Plan};
use crate::raw::{Dataplane, Role, Scope};
use crate::resolve::traffic::{self, ServiceDef};

/// What losing the clusters means.
#[derive(Debug, Serialize)]
pub struct WhatIf {
    /// The plan file name.
    pub plan_file: String,
    /// Mesh ID.
    pub mesh_id: String,
    /// The clusters lost, in plan order.
    pub without: Vec<String>,
    /// Services left with no endpoint.
    pub no_endpoints: Vec<LostService>,
    /// Where clients of services that keep endpoints go, per lost region.
    pub failovers: Vec<FailoverRoute>,
    /// Remotes whose primary is lost.
    pub remotes_without_control_plane: Vec<OrphanRemote>,
    /// Networks left without an east-west gateway.
    pub networks_without_eastwest: Vec<NetworkLoss>,
}

/// A service with no endpoint left.
#[derive(Debug, Serialize)]
pub struct LostService {
    /// `name.namespace`.
    pub service: String,
    /// `mesh` or `cluster`.
    pub scope: &'static str,
    /// The clusters it ran in (all lost).
    pub clusters: Vec<String>,
}

/// Where one service's traffic goes once its endpoints in one region are lost.
#[derive(Debug, Serialize)]
pub struct FailoverRoute {
    /// `name.namespace`.
    pub service: String,
    /// The region whose endpoints are lost (`-` for clusters without a region).
    pub from: String,
    /// The service's lost clusters in that region.
    pub lost: Vec<String>,
    /// The region its clients there go to; `None` when spread over every region left.
    pub to: Option<String>,
    /// The clusters serving them now.
    pub clusters: Vec<String>,
    /// Why: `same region`, `failover`, `locality order` or `no outlier detection`.
    pub by: &'static str,
}

/// A remote whose primary is lost.
#[derive(Debug, Serialize)]
pub struct OrphanRemote {
    /// The remote.
    pub remote: String,
    /// Its lost primary.
    pub primary: String,
}

/// A network left without an east-west gateway.
#[derive(Debug, Serialize)]
pub struct NetworkLoss {
    /// Network ID.
    pub network: String,
    /// The lost clusters that had its gateways.
    pub lost_gateways: Vec<String>,
    /// Its clusters left, unreachable from other networks.
    pub clusters_left: Vec<String>,
}

/// Why [`what_if`] refused: a name that is not a cluster of the plan.
#[derive(Debug)]
pub struct UnknownCluster {
    /// As given.
    pub name: String,
    /// The nearest cluster name.
    pub nearest: Option<String>,
}

/// What losing `without` means for the plan.
pub fn what_if(plan: &Plan, plan_file: &str, without: &[String]) -> Result<WhatIf, UnknownCluster> {
    let clusters: HashMap<&str, &model::Cluster> =
        plan.clusters.iter().map(|c| (c.name.as_str(), c)).collect();
    if let Some(name) = without.iter().find(|n| !clusters.contains_key(n.as_str())) {
        return Err(UnknownCluster {
            name: name.clone(),
            nearest: crate::suggest::nearest(name, clusters.keys().copied()).map(str::to_owned),
        });
    }
    let lost: BTreeSet<&str> = without.iter().map(String::as_str).collect();
    let mut out = WhatIf {
        plan_file: plan_file.to_owned(),
        mesh_id: plan.mesh.id.clone(),
        without: plan
            .clusters
            .iter()
            .filter(|c| lost.contains(c.name.as_str()))
            .map(|c| c.name.clone())
            .collect(),
        no_endpoints: Vec::new(),
        failovers: Vec::new(),
        remotes_without_control_plane: orphan_remotes(plan, &lost),
        networks_without_eastwest: networks_without_eastwest(plan, &lost),
    };
    let lost_index: Vec<usize> = plan
        .clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| lost.contains(c.name.as_str()))
        .map(|(i, _)| i)
        .collect();
    // The traffic model's services: `[[service]]` first, in plan order.
    let defs = traffic::definitions(plan);
    for def in defs.iter().take(plan.services.len()) {
        service_loss(plan, def, &lost_index, &mut out);
    }
    Ok(out)
}

fn service_loss(plan: &Plan, def: &ServiceDef, lost: &[usize], out: &mut WhatIf) {
    let (gone, left): (Vec<usize>, Vec<usize>) = def
        .endpoints
        .iter()
        .map(|(i, _)| *i)
        .partition(|i| lost.contains(i));
    if gone.is_empty() {
        return;
    }
    let name = |i: &usize| plan.clusters[*i].name.clone();
    if left.is_empty() {
        out.no_endpoints.push(LostService {
            service: def.id(),
            scope: match def.scope {
                Scope::Mesh => "mesh",
                Scope::Cluster => "cluster",
            },
            clusters: def.endpoints.iter().map(|(i, _)| name(i)).collect(),
        });
        return;
    }
    // A cluster-local service's clients are in its own cluster: lost with it.
    if def.scope == Scope::Cluster {
        return;
    }
    // Per lost region, a client there (on the first lost cluster's network) as the traffic
    // model sees it once the lost clusters are gone: its first tier.
    let mut by_region: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in &gone {
        let region = plan.clusters[*i].locality.region.as_deref().unwrap_or("-");
        by_region.entry(region).or_default().push(*i);
    }
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    for (region, lost_here) in by_region {
        let locality = model::Locality {
            region: (region != "-").then(|| region.to_owned()),
            zone: None,
            subzone: None,
        };
        let client = traffic::Client {
            cluster: None,
            name: region.to_owned(),
            locality: &locality,
            network: &plan.clusters[lost_here[0]].network,
        };
        let view = traffic::view_from(plan, def, &client, lost);
        let first = view.tiers.first();
        let clusters: Vec<String> = first
            .map(|t| t.endpoints.iter().map(|e| e.cluster.clone()).collect())
            .unwrap_or_default();
        let regions: BTreeSet<Option<&str>> = first
            .iter()
            .flat_map(|t| t.endpoints.iter())
            .map(|e| plan.clusters[e.index].locality.region.as_deref())
            .collect();
        let single = match regions.iter().next() {
            Some(Some(r)) if regions.len() == 1 => Some((*r).to_owned()),
            _ => None,
        };
        let why = first.map_or("", |t| t.why.as_str());
        let by = if first.is_none() {
            "no reachable endpoint"
        } else if ambient {
            "ztunnel: no failover without a waypoint"
        } else if !def.outlier {
            "no outlier detection"
        } else if region != "-" && single.as_deref() == Some(region) {
            "same region"
        } else if why.starts_with("failover") {
            "failover"
        } else {
            "locality order"
        };
        // A region named only where the tier is one region because of the plan: the client's
        // own, or its failover target.
        let to = single.filter(|_| by == "same region" || by == "failover");
        out.failovers.push(FailoverRoute {
            service: def.id(),
            from: region.to_owned(),
            lost: lost_here.iter().map(name).collect(),
            to,
            clusters,
            by,
        });
    }
}

fn orphan_remotes(plan: &Plan, lost: &BTreeSet<&str>) -> Vec<OrphanRemote> {
    plan.clusters
        .iter()
        .filter(|c| c.role == Role::Remote && !lost.contains(c.name.as_str()))
        .filter_map(|c| {
            let primary = c.primary.as_ref()?;
            lost.contains(primary.as_str()).then(|| OrphanRemote {
                remote: c.name.clone(),
                primary: primary.clone(),
            })
        })
        .collect()
}

fn has_eastwest(c: &model::Cluster) -> bool {
    c.lb.eastwest.is_some() || c.lb.eastwest_hostname.is_some()
}

fn networks_without_eastwest(plan: &Plan, lost: &BTreeSet<&str>) -> Vec<NetworkLoss> {
    let mut members: BTreeMap<&str, Vec<&model::Cluster>> = BTreeMap::new();
    for c in &plan.clusters {
        members.entry(c.network.as_str()).or_default().push(c);
    }
    if members.len() < 2 {
        return Vec::new();
    }
    plan.networks
        .iter()
        .filter_map(|n| {
            let on = members.get(n.id.as_str())?;
            let is_lost = |c: &&&model::Cluster| lost.contains(c.name.as_str());
            let gateways: Vec<&&model::Cluster> = on.iter().filter(|c| has_eastwest(c)).collect();
            let left: Vec<String> = on
                .iter()
                .filter(|c| !is_lost(c))
                .map(|c| c.name.clone())
                .collect();
            let all_gateways_lost = !gateways.is_empty() && gateways.iter().all(is_lost);
            (all_gateways_lost && !left.is_empty()).then(|| NetworkLoss {
                network: n.id.clone(),
                lost_gateways: gateways.iter().map(|c| c.name.clone()).collect(),
                clusters_left: left,
            })
        })
        .collect()
}
