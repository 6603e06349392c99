//! Stage 2, first half: the plan's values parsed into domain types, still with their spans.
//!
//! A value that does not parse is reported once here (by the family that owns its rule) and is
//! `None` afterwards, so relational rules only look at values that parsed.

use std::net::IpAddr;

use ipnet::IpNet;
use toml::Spanned;
use url::Url;

use super::{Findings, cidr, platform, pool, version};
use crate::model::Version;
use crate::raw;
use crate::sweep::Interval;

/// The parsed plan.
pub struct Facts<'a> {
    /// The plan as written.
    pub plan: &'a raw::Plan,
    /// One entry per `[[network]]`, in plan order.
    pub networks: Vec<NetworkFacts<'a>>,
    /// One entry per `[[cluster]]`, in plan order.
    pub clusters: Vec<ClusterFacts<'a>>,
    /// `mesh.istio.version`.
    pub istio_version: Option<Version>,
    /// `mesh.metallb.version`, or its default.
    pub metallb_version: Option<Version>,
}

/// A parsed `[[network]]`.
pub struct NetworkFacts<'a> {
    /// As written.
    pub raw: &'a Spanned<raw::Network>,
    /// `node_subnet`, if given and valid.
    pub node_subnet: Option<Spanned<IpNet>>,
}

/// A parsed `[[cluster]]`.
pub struct ClusterFacts<'a> {
    /// As written.
    pub raw: &'a Spanned<raw::Cluster>,
    /// Index of its network in `Facts::networks`, if declared.
    pub network: Option<usize>,
    /// `pod_cidr`, if valid.
    pub pod_cidr: Option<Spanned<IpNet>>,
    /// `service_cidr`, if valid.
    pub service_cidr: Option<Spanned<IpNet>>,
    /// The valid `[cluster.lb]` addresses.
    pub lb: Vec<LbAddress>,
    /// The valid entries of `[cluster.metallb] addresses`.
    pub pool: Vec<PoolEntry<'a>>,
    /// Parsed `[[cluster.node]]`s, in plan order.
    pub nodes: Vec<NodeFacts<'a>>,
    /// `api_server`, if valid.
    pub api_server: Option<Spanned<Url>>,
    /// `kubernetes`, if valid.
    pub kubernetes: Option<Version>,
    /// The valid BGP peer addresses.
    pub peers: Vec<Spanned<IpAddr>>,
    /// `[cluster.kubeadm] advertise_address`, if valid.
    pub advertise_address: Option<Spanned<IpAddr>>,
}

/// One planned LoadBalancer address.
pub struct LbAddress {
    /// Which Service it is for.
    pub kind: LbKind,
    /// The address.
    pub addr: Spanned<IpAddr>,
}

/// The Services a plan pins addresses for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    /// istiod's LoadBalancer Service.
    Istiod,
    /// The east-west gateway.
    Eastwest,
    /// The ingress gateway.
    Ingress,
}

impl LbKind {
    /// The key in `[cluster.lb]`.
    pub fn key(self) -> &'static str {
        match self {
            LbKind::Istiod => "istiod",
            LbKind::Eastwest => "eastwest",
            LbKind::Ingress => "ingress",
        }
    }
}

/// A parsed MetalLB `addresses` entry.
pub struct PoolEntry<'a> {
    /// As written.
    pub raw: &'a Spanned<String>,
    /// The addresses it holds.
    pub interval: Interval,
}

/// A parsed `[[cluster.node]]`.
pub struct NodeFacts<'a> {
    /// As written.
    pub raw: &'a Spanned<raw::Node>,
    /// `ip`, if given and valid.
    pub ip: Option<Spanned<IpAddr>>,
    /// `pod_cidr`, if given and valid.
    pub block: Option<Spanned<IpNet>>,
}

impl ClusterFacts<'_> {
    /// The cluster's name as written.
    pub fn name(&self) -> &str {
        self.raw.get_ref().name.get_ref()
    }

    /// The `[cluster.lb]` address of one kind, if planned.
    pub fn lb(&self, kind: LbKind) -> Option<&LbAddress> {
        self.lb.iter().find(|lb| lb.kind == kind)
    }

    /// `api_server`'s address, when its host is an IP literal (located at the whole value).
    pub fn api_server_ip(&self) -> Option<Spanned<IpAddr>> {
        let url = self.api_server.as_ref()?;
        let ip = match url.get_ref().host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        Some(Spanned::new(url.span(), ip))
    }
}

impl<'a> Facts<'a> {
    /// Parses every value of the plan, reporting those that do not parse.
    pub fn gather(plan: &'a raw::Plan, out: &mut Findings) -> Self {
        let networks = plan
            .network
            .iter()
            .map(|raw| NetworkFacts {
                raw,
                node_subnet: raw
                    .get_ref()
                    .node_subnet
                    .as_ref()
                    .and_then(|s| cidr::parse_cidr(s, "node_subnet", out)),
            })
            .collect::<Vec<_>>();
        let clusters = plan
            .cluster
            .iter()
            .map(|raw| gather_cluster(raw, &networks, out))
            .collect();
        let mesh = plan.mesh.get_ref();
        let istio_version = version::parse(&mesh.istio.get_ref().version, "Istio", out);
        let metallb_version = match mesh
            .metallb
            .as_ref()
            .and_then(|m| m.get_ref().version.as_ref())
        {
            Some(v) => version::parse(v, "MetalLB", out),
            None => Some(version::DEFAULT_METALLB),
        };
        Facts {
            plan,
            networks,
            clusters,
            istio_version,
            metallb_version,
        }
    }

    /// Clusters on network `index`.
    pub fn clusters_on(&self, index: usize) -> impl Iterator<Item = &ClusterFacts<'a>> {
        self.clusters
            .iter()
            .filter(move |c| c.network == Some(index))
    }

    /// The cluster named `name`, if any (the first, if the name is duplicated).
    pub fn cluster(&self, name: &str) -> Option<&ClusterFacts<'a>> {
        self.clusters.iter().find(|c| c.name() == name)
    }
}

fn gather_cluster<'a>(
    raw: &'a Spanned<raw::Cluster>,
    networks: &[NetworkFacts<'_>],
    out: &mut Findings,
) -> ClusterFacts<'a> {
    let cluster = raw.get_ref();
    let network = networks
        .iter()
        .position(|n| n.raw.get_ref().id.get_ref() == cluster.network.get_ref());
    ClusterFacts {
        raw,
        network,
        pod_cidr: cidr::parse_cidr(&cluster.pod_cidr, "pod_cidr", out),
        service_cidr: cidr::parse_cidr(&cluster.service_cidr, "service_cidr", out),
        lb: gather_lb(cluster.lb.as_ref(), out),
        pool: cluster
            .metallb
            .as_ref()
            .map(|m| m.get_ref().addresses.get_ref().iter())
            .into_iter()
            .flatten()
            .filter_map(|raw| {
                Some(PoolEntry {
                    raw,
                    interval: pool::parse_entry(raw, out)?,
                })
            })
            .collect(),
        nodes: cluster
            .node
            .iter()
            .map(|raw| NodeFacts {
                raw,
                ip: raw
                    .get_ref()
                    .ip
                    .as_ref()
                    .and_then(|ip| cidr::parse_address(ip, "ip", out)),
                block: raw
                    .get_ref()
                    .pod_cidr
                    .as_ref()
                    .and_then(|b| cidr::parse_cidr(b, "pod_cidr", out)),
            })
            .collect(),
        api_server: cluster
            .api_server
            .as_ref()
            .and_then(|url| platform::parse_api_server(url, out)),
        kubernetes: cluster
            .kubernetes
            .as_ref()
            .and_then(|v| version::parse(v, "Kubernetes", out)),
        peers: cluster
            .metallb
            .iter()
            .filter_map(|m| m.get_ref().peers.as_ref())
            .flat_map(|peers| peers.get_ref().iter())
            .filter_map(|peer| cidr::parse_address(&peer.get_ref().address, "address", out))
            .collect(),
        advertise_address: cluster
            .kubeadm
            .as_ref()
            .and_then(|k| k.get_ref().advertise_address.as_ref())
            .and_then(|a| cidr::parse_address(a, "advertise_address", out)),
    }
}

fn gather_lb(lb: Option<&Spanned<raw::Lb>>, out: &mut Findings) -> Vec<LbAddress> {
    let Some(lb) = lb.map(Spanned::get_ref) else {
        return Vec::new();
    };
    [
        (LbKind::Istiod, &lb.istiod),
        (LbKind::Eastwest, &lb.eastwest),
        (LbKind::Ingress, &lb.ingress),
    ]
    .into_iter()
    .filter_map(|(kind, value)| {
        let value = value.as_ref()?;
        let addr = cidr::parse_address(value, kind.key(), out)?;
        Some(LbAddress { kind, addr })
    })
    .collect()
}
