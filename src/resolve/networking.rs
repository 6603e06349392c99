//! Derived networking: MetalLB objects and the static routes each node needs.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{self, Plan};
use crate::raw::{KubeProxy, MetallbMode, Routing};

/// A cluster's MetalLB configuration.
#[derive(Debug, Serialize)]
pub struct Metallb {
    /// Namespace MetalLB runs in: its objects go there.
    pub namespace: String,
    /// IPAddressPool name.
    pub pool: String,
    /// Pool entries, as written.
    pub addresses: Vec<String>,
    /// `l2` or `bgp`.
    pub bgp: bool,
    /// L2Advertisement interfaces.
    pub interfaces: Vec<String>,
    /// MetalLB's own AS (BGP).
    pub asn: Option<u32>,
    /// BGP peers, each with its object name.
    pub peers: Vec<Peer>,
    /// kube-proxy runs IPVS and MetalLB announces with L2: kube-proxy needs `strictARP: true`.
    pub strict_arp: bool,
}

/// A BGPPeer.
#[derive(Debug, Serialize)]
pub struct Peer {
    /// Object name: `<pool>-peer-<n>`.
    pub name: String,
    /// Router address.
    pub address: String,
    /// Router AS.
    pub asn: u32,
}

/// Resolves MetalLB for a cluster that has a pool.
pub fn metallb(plan: &Plan, cluster: &model::Cluster) -> Option<Metallb> {
    let m = cluster.metallb.as_ref()?;
    let bgp = m.mode == MetallbMode::Bgp;
    Some(Metallb {
        namespace: plan.mesh.metallb_namespace.clone(),
        pool: m.pool.clone(),
        addresses: m.addresses.clone(),
        bgp,
        interfaces: m.interfaces.clone(),
        asn: m.asn,
        peers: m
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| Peer {
                name: format!("{}-peer-{}", m.pool, i + 1),
                address: p.address.clone(),
                asn: p.asn,
            })
            .collect(),
        strict_arp: !bgp && cluster.kube_proxy == KubeProxy::Ipvs,
    })
}

/// The host routes a cluster's nodes need on a `routing = "static"` network.
#[derive(Debug, Serialize)]
pub struct Routes {
    /// The network.
    pub network: String,
    /// This cluster's node addresses (routes.sh refuses to run on a host with none of them).
    pub node_ips: Vec<IpAddr>,
    /// One route per pod block of every other cluster on the network.
    pub routes: Vec<Route>,
}

/// `ip route replace <block> via <via>`.
#[derive(Debug, Serialize)]
pub struct Route {
    /// Destination pod block.
    pub block: IpNet,
    /// Next hop: the node owning the block.
    pub via: IpAddr,
    /// That node's cluster and name, for the script's comments.
    pub owner: String,
}

/// Routes for a cluster on a static network: every other cluster's node blocks on that network,
/// never the cluster's own (its CNI routes those).
pub fn routes(plan: &Plan, cluster: &model::Cluster) -> Option<Routes> {
    let network = plan.networks.iter().find(|n| n.id == cluster.network)?;
    if network.routing != Routing::Static {
        return None;
    }
    let routes: Vec<Route> = plan
        .clusters
        .iter()
        .filter(|c| c.network == cluster.network && c.name != cluster.name)
        .flat_map(|c| {
            c.nodes.iter().filter_map(move |n| {
                Some(Route {
                    block: n.pod_cidr?,
                    via: n.ip?,
                    owner: format!("{}/{}", c.name, n.name),
                })
            })
        })
        .collect();
    let node_ips: Vec<IpAddr> = cluster.nodes.iter().filter_map(|n| n.ip).collect();
    (!routes.is_empty() && !node_ips.is_empty()).then(|| Routes {
        network: network.id.clone(),
        node_ips,
        routes,
    })
}
