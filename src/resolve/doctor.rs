//! What `doctor.sh` compares with the live clusters: every fact of the mesh the plan decides and
//! a read-only `kubectl get` can see, derived once from the resolved clusters.
//!
//! The template only asks and compares; what to ask, where, and what to expect is here. Each
//! difference is reported with a code of the `live` family ([`CODES`], documented in
//! docs/diagnostics.md like the plan's codes).

use serde::Serialize;

use super::Cluster;
use crate::model::Plan;

/// Every code `doctor.sh` reports, with its help line, in docs/diagnostics.md's order.
pub const CODES: &[(&str, &str)] = &[
    (
        "meshplan::live::unreadable",
        "check the context and that the API server answers: kubectl --context CONTEXT version",
    ),
    (
        "meshplan::live::network_label",
        "istiod reads its network from this label: run the cluster's scripts/install.sh \
         control-plane again (it applies namespace.yaml)",
    ),
    (
        "meshplan::live::istiod_config",
        "istiod runs with other values than the plan's: run the cluster's scripts/install.sh \
         control-plane again",
    ),
    (
        "meshplan::live::istiod_version",
        "istiod runs another release than the plan targets: upgrade it (scripts/install.sh \
         control-plane), or set mesh.istio_version to what runs",
    ),
    (
        "meshplan::live::remote_secret_missing",
        "istiod does not watch that cluster: run PRIMARY/scripts/remote-secrets.sh CLUSTER",
    ),
    (
        "meshplan::live::remote_secret_stale",
        "istiod watches a cluster the plan does not: delete the Secret once that cluster has \
         left the mesh (kubectl -n istio-system delete secret NAME)",
    ),
    (
        "meshplan::live::eastwest_address",
        "other networks reach this cluster at the planned address: free it for the east-west \
         gateway, or plan the address it got and build again",
    ),
    (
        "meshplan::live::root_mismatch",
        "the clusters do not trust one root: run the cluster's scripts/cacerts.sh with the \
         mesh's CA files and restart istiod (verify-trust.sh says more)",
    ),
    (
        "meshplan::live::metallb_pool",
        "MetalLB may give out addresses the plan gives to other clusters: apply the cluster's \
         metallb.yaml again (scripts/install.sh control-plane)",
    ),
    (
        "meshplan::live::remote_cluster_sync",
        "istiod has not synced that cluster: check its remote secret's API server address and \
         token (istioctl remote-clusters; istiod's log names the error)",
    ),
    (
        "meshplan::live::placement",
        "the workloads do not run where the plan puts them: apply the cluster's samples.yaml \
         (scripts/install.sh samples), deploy the service there, or change the plan",
    ),
    (
        "meshplan::live::gateway_api_version",
        "istiod needs these Gateway API CRDs at least: apply the cluster's Gateway API CRDs \
         again (scripts/install.sh control-plane)",
    ),
];

/// What `doctor.sh` checks.
#[derive(Debug, Default, Serialize)]
pub struct Doctor {
    /// Every cluster, in plan order.
    pub clusters: Vec<Checked>,
    /// The oldest Gateway API bundle version the mesh needs (`v1.2.1`), when it needs any.
    pub gateway_api_min: Option<String>,
    /// The codes and their help lines, for the script's help lookup.
    pub codes: Vec<Code>,
    /// `[mesh.istio] revision`, which `istioctl remote-clusters --revision` asks for.
    pub revision: Option<String>,
    /// Every sample Deployment of the mesh, sorted, joined by spaces: one of these in a
    /// cluster the plan does not put it in is a difference (other Deployments are not ours).
    pub sample_names: String,
    /// Every `[[service]]` as `namespace/name`, sorted: an endpoint of one of these in a
    /// cluster the plan does not run it in is a difference.
    pub services: Vec<String>,
}

/// A code and its help line.
#[derive(Debug, Serialize)]
pub struct Code {
    /// `meshplan::live::...`.
    pub code: &'static str,
    /// What to do about it.
    pub help: &'static str,
}

/// One cluster, as `doctor.sh` asks it.
#[derive(Debug, Serialize)]
pub struct Checked {
    /// Cluster name.
    pub name: String,
    /// Its kubectl context.
    pub context: String,
    /// `topology.istio.io/network` of `istio-system`.
    pub network: String,
    /// What its own istiod runs with (primaries; remotes run none).
    pub istiod: Option<Istiod>,
    /// The remote secrets a primary holds: `istio-remote-secret-<cluster>` for every cluster
    /// it watches, and no other Secret labelled `istio/multiCluster=true`.
    pub remote_secrets: Option<Vec<RemoteSecret>>,
    /// The east-west gateway's assigned address, where a load balancer assigns the planned
    /// one (not externalIPs or NodePort, and not a name the cloud chooses).
    pub eastwest: Option<Address>,
    /// MetalLB's IPAddressPool.
    pub metallb: Option<Pool>,
    /// On a primary, the clusters `istioctl remote-clusters` must show its istiod synced with:
    /// its own and every cluster it watches.
    pub synced: Option<Vec<String>>,
    /// The sample Deployments here, when the mesh runs samples anywhere (a cluster without
    /// any must have none of [`Doctor::sample_names`]).
    pub samples: Option<SampleDeployments>,
    /// The `[[service]]`s that must have a ready endpoint here (in its `clusters`, or
    /// running its sample here), as `namespace/name`, sorted, joined by spaces; every other
    /// one of [`Doctor::services`] must have none. `None` without `[[service]]`s.
    pub endpoints: Option<String>,
}

/// The sample Deployments of one cluster.
#[derive(Debug, Serialize)]
pub struct SampleDeployments {
    /// The samples' namespace.
    pub namespace: String,
    /// The Deployments planned here, sorted, joined by spaces; empty for none.
    pub names: String,
}

/// istiod's Deployment and mesh config as the generated IstioOperator or Helm values make them.
#[derive(Debug, Serialize)]
pub struct Istiod {
    /// `CLUSTER_ID` (`global.multiCluster.clusterName`).
    pub cluster_id: String,
    /// `defaultConfig.meshId` of the `istio` ConfigMap's mesh (`global.meshID`).
    pub mesh_id: String,
    /// `trustDomain` of the `istio` ConfigMap's mesh (`meshConfig.trustDomain`).
    pub trust_domain: String,
    /// The image tag (`tag`).
    pub tag: String,
}

/// A remote secret a primary should hold.
#[derive(Debug, Serialize)]
pub struct RemoteSecret {
    /// The cluster it lets istiod watch.
    pub cluster: String,
    /// The Secret's name, as `istioctl create-remote-secret --name CLUSTER` makes it.
    pub secret: String,
}

/// Where a load balancer's address shows, and the planned one.
#[derive(Debug, Serialize)]
pub struct Address {
    /// `service/...` or `gateway/...` in istio-system.
    pub object: String,
    /// The jsonpath of the address in its status.
    pub jsonpath: String,
    /// The address planned.
    pub planned: String,
}

/// A MetalLB IPAddressPool and its planned entries.
#[derive(Debug, Serialize)]
pub struct Pool {
    /// Namespace.
    pub namespace: String,
    /// Pool name.
    pub name: String,
    /// The entries, as metallb.yaml lists them, joined by spaces (as kubectl prints a list).
    pub addresses: String,
}

/// The doctor's model of resolved clusters.
pub fn doctor(plan: &Plan, mesh: &super::Mesh, clusters: &[Cluster]) -> Doctor {
    let (services, mut here) = placed_services(plan, clusters.len());
    let samples: Vec<SampleDeployments> = clusters
        .iter()
        .map(|c| sample_deployments(plan, c))
        .collect();
    let mut sample_names: Vec<&str> = samples
        .iter()
        .flat_map(|s| s.names.split(' '))
        .filter(|n| !n.is_empty())
        .collect();
    sample_names.sort_unstable();
    sample_names.dedup();
    let sample_names = sample_names.join(" ");
    Doctor {
        clusters: clusters
            .iter()
            .zip(samples)
            .enumerate()
            .map(|(i, (c, samples))| Checked {
                samples: (!sample_names.is_empty()).then_some(samples),
                endpoints: (!services.is_empty()).then(|| {
                    here.get_mut(i)
                        .map(std::mem::take)
                        .unwrap_or_default()
                        .join(" ")
                }),
                ..checked(mesh, c)
            })
            .collect(),
        gateway_api_min: mesh
            .istio
            .ambient
            .as_ref()
            .map(|a| a.gateway_api_version.clone()),
        codes: CODES
            .iter()
            .map(|&(code, help)| Code { code, help })
            .collect(),
        revision: mesh.istio.control_plane.revision.clone(),
        sample_names,
        services,
    }
}

/// Every `[[service]]` as `namespace/name`, sorted, and for each cluster index the ones that
/// run there, sorted: its `clusters`, and for a sample service also where the sample runs
/// (`traffic::sample_definitions`).
fn placed_services(plan: &Plan, clusters: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let samples = super::traffic::sample_definitions(plan);
    let index = plan.cluster_indexes();
    let mut services = Vec::with_capacity(plan.services.len());
    let mut here: Vec<Vec<String>> = vec![Vec::new(); clusters];
    for s in &plan.services {
        let id = format!("{}/{}", s.namespace, s.name);
        let mut at: Vec<usize> = s
            .clusters
            .iter()
            .filter_map(|c| index.get(c.as_str()).copied())
            .collect();
        if let Some(sample) = samples
            .iter()
            .find(|d| d.name == s.name && d.namespace == s.namespace)
        {
            at.extend(sample.endpoints.iter().map(|(i, _)| *i));
        }
        at.sort_unstable();
        at.dedup();
        for i in at {
            if let Some(list) = here.get_mut(i) {
                list.push(id.clone());
            }
        }
        services.push(id);
    }
    services.sort_unstable();
    for list in &mut here {
        list.sort_unstable();
    }
    (services, here)
}

/// The sample Deployments samples.yaml makes in `c`.
fn sample_deployments(plan: &Plan, c: &Cluster) -> SampleDeployments {
    let mut names: Vec<&str> = Vec::new();
    if let Some(s) = &c.samples {
        names.extend(s.helloworld.iter().map(|w| w.name.as_str()));
        if s.sleep_image.is_some() {
            names.push("sleep");
        }
        names.extend(s.bookinfo.iter().map(|w| w.name.as_str()));
    }
    names.sort_unstable();
    SampleDeployments {
        namespace: plan.mesh.samples_namespace.clone(),
        names: names.join(" "),
    }
}
fn checked(mesh: &super::Mesh, c: &Cluster) -> Checked {
    Checked {
        name: c.name.clone(),
        context: c.context.clone(),
        network: c.network.clone(),
        istiod: c.is_primary.then(|| Istiod {
            cluster_id: c.name.clone(),
            mesh_id: mesh.id.clone(),
            trust_domain: c.trust_domain.clone(),
            tag: mesh.istio.tag.clone(),
        }),
        remote_secrets: c.is_primary.then(|| {
            c.watches
                .iter()
                .map(|w| RemoteSecret {
                    cluster: w.name.clone(),
                    secret: format!("istio-remote-secret-{}", w.name),
                })
                .collect()
        }),
        eastwest: c.eastwest.as_ref().and_then(|pin| {
            let wait = pin.wait_for.as_ref().filter(|w| !w.any)?;
            Some(Address {
                object: pin.wait_object.to_owned(),
                jsonpath: wait.jsonpath.clone(),
                planned: wait.planned.clone(),
            })
        }),
        metallb: c.metallb.as_ref().map(|m| Pool {
            namespace: m.namespace.clone(),
            name: m.pool.clone(),
            addresses: m.addresses.join(" "),
        }),
        synced: c.is_primary.then(|| {
            std::iter::once(c.name.clone())
                .chain(c.watches.iter().map(|w| w.name.clone()))
                .collect()
        }),
        samples: None,
        endpoints: None,
    }
}
