//! The validated plan: every value parsed and every reference resolved, no spans.
//!
//! Built only from a plan that passed validation. Later stages (resolve, render) read this
//! and never the raw TOML.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::raw::{
    self, Bookinfo, Dataplane, Installer, KubeProxy, LbVia, MetallbMode, Platform, Role, Routing,
    Scope,
};
use crate::sweep::Interval;
use crate::validate::Facts;
use crate::validate::facts::{ClusterFacts, LbKind, NodeFacts};

/// A version number as plans write them: `1.24.2`, `0.15`, `1.25.0-rc.1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch, when written.
    pub patch: Option<u64>,
    /// Pre-release suffix after `-`, when written.
    pub pre: Option<String>,
}

impl Version {
    /// A release version.
    pub const fn new(major: u64, minor: u64, patch: Option<u64>) -> Self {
        Version {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    /// Parses `MAJOR.MINOR[.PATCH][-PRE]`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (numbers, pre) = match text.split_once('-') {
            Some((numbers, pre)) => (numbers, Some(pre)),
            None => (text, None),
        };
        let pre_ok = pre.is_none_or(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
        let parts: Vec<&str> = numbers.split('.').collect();
        let number = |s: &str| {
            (!s.is_empty() && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (major, minor, patch) = match parts.as_slice() {
            [major, minor] => (number(major)?, number(minor)?, None),
            [major, minor, patch] => (number(major)?, number(minor)?, Some(number(patch)?)),
            _ => return None,
        };
        pre_ok.then(|| Version {
            major,
            minor,
            patch,
            pre: pre.map(str::to_owned),
        })
    }

    /// Whether this is `major.minor` or later.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The validated plan.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Mesh-wide settings.
    pub mesh: Mesh,
    /// Networks, in plan order.
    pub networks: Vec<Network>,
    /// Clusters, in plan order.
    pub clusters: Vec<Cluster>,
    /// Services, in plan order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// `[mesh.trust]`: the phases of the mesh's trust, when the plan has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trust::Trust>,
}

/// A `[[service]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Port.
    pub port: u16,
    /// Clusters its endpoints run in, in plan order, without repeats.
    pub clusters: Vec<String>,
    /// Who reaches it.
    pub scope: Scope,
    /// Locality failover, `(from, to)` regions in plan order.
    pub failover: Vec<Failover>,
    /// Outlier detection: the plan's settings (defaults filled in), also when only `failover`
    /// asks for it (Istio ignores failover without it).
    pub outlier: Option<Outlier>,
}

impl Service {
    /// `name.namespace`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// One failover entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failover {
    /// Clients' region.
    pub from: String,
    /// Region they fail over to.
    pub to: String,
}

/// Outlier detection settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outlier {
    /// `consecutive5xxErrors`.
    pub consecutive_5xx: u32,
    /// `interval`.
    pub interval: String,
    /// `baseEjectionTime`.
    pub base_ejection_time: String,
    /// `maxEjectionPercent`.
    pub max_ejection_percent: u32,
}

/// Default `consecutive_5xx` (Istio's and Envoy's).
pub const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
/// Default `interval` (Istio's).
pub const DEFAULT_INTERVAL: &str = "10s";
/// Default `base_ejection_time` (Istio's).
pub const DEFAULT_BASE_EJECTION_TIME: &str = "30s";
/// Default `max_ejection_percent`: all, so a failed region can be ejected whole.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 100;

/// Mesh-wide settings.
#[derive(Debug, Serialize)]
pub struct Mesh {
    /// Mesh ID.
    pub id: String,
    /// Trust domain.
    pub trust_domain: String,
    /// Data plane.
    pub dataplane: Dataplane,
    /// Istio version.
    pub istio_version: Version,
    /// Where the tree's images, charts, CRDs and downloads come from.
    pub artifacts: Artifacts,
    /// Installer.
    pub installer: Installer,
    /// The control plane's revision (`[mesh.istio] revision`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// MetalLB version.
    pub metallb_version: Version,
    /// Namespace MetalLB runs in (its pools go there).
    pub metallb_namespace: String,
    /// Registry for sample images.
    pub samples_hub: Option<String>,
    /// Namespace of the samples.
    pub samples_namespace: String,
    /// GitOps hand-off.
    pub gitops: Option<Gitops>,
}

/// `[mesh.artifacts]` (and `[mesh.istio] hub`), defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Artifacts {
    /// Istio's images.
    pub hub: String,
    /// Istio's chart repository (`https://` or `oci://`).
    pub istio_charts: String,
    /// MetalLB's chart repository (`https://` or `oci://`).
    pub metallb_charts: String,
    /// MetalLB's images.
    pub metallb_hub: String,
    /// The Gateway API CRDs, when the plan names where they come from (else the GitHub
    /// release of the Gateway API version).
    pub gateway_api_crds: Option<CrdSource>,
    /// The Gateway API release, when the plan pins one (else the targeted Istio's).
    pub gateway_api_version: Option<Version>,
    /// Where istioctl archives are downloaded from.
    pub istioctl: String,
    /// kind's node images.
    pub kind_hub: String,
}

/// Where the Gateway API CRDs come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrdSource {
    /// An `https://` (or `http://`) URL.
    Url(String),
    /// A file beside the plan, as written (relative to the plan's directory).
    File(String),
}

/// Istio's images since ever, and the only registry serving them after December 2026.
pub const DEFAULT_HUB: &str = "docker.io/istio";
/// Istio's HTTP chart repository from December 2026 (every release; the 1.31 upgrade notes).
pub const DEFAULT_ISTIO_CHARTS: &str = "https://blob.istio.io/istio-release/charts";
/// MetalLB's chart repository (GitHub Pages of metallb/metallb).
pub const DEFAULT_METALLB_CHARTS: &str = "https://metallb.github.io/metallb";
/// MetalLB's images (`controller`, `speaker`).
pub const DEFAULT_METALLB_HUB: &str = "quay.io/metallb";
/// Gateway API releases on GitHub: `<this>/<version>/standard-install.yaml`.
pub const GATEWAY_API_RELEASES: &str =
    "https://github.com/kubernetes-sigs/gateway-api/releases/download";
/// Istio's GitHub releases: `<this>/<version>/istioctl-<version>-<os>-<arch>.tar.gz`.
pub const DEFAULT_ISTIOCTL: &str = "https://github.com/istio/istio/releases/download";
/// kind's node images.
pub const DEFAULT_KIND_HUB: &str = "docker.io/kindest";
/// Istio's sample images.
pub const DEFAULT_SAMPLES_HUB: &str = "docker.io/istio";

/// `[mesh.gitops]`.
#[derive(Debug, Serialize)]
pub struct Gitops {
    /// Repository URL.
    pub repository: String,
    /// Revision to sync.
    pub revision: String,
    /// Path of the tree in the repository (no trailing slash; `.` for the root).
    pub path: String,
    /// `argocd` or `flux`.
    pub tool: &'static str,
}

/// A network.
#[derive(Debug, Serialize)]
pub struct Network {
    /// Network ID.
    pub id: String,
    /// Routing mode.
    pub routing: Routing,
    /// Node subnet.
    pub node_subnet: Option<IpNet>,
}

/// A cluster.
#[derive(Debug, Serialize)]
pub struct Cluster {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// A remote's primary (resolved, also when implied).
    pub primary: Option<String>,
    /// Network ID.
    pub network: String,
    /// kubectl context.
    pub context: String,
    /// Platform.
    pub platform: Platform,
    /// Kubernetes version.
    pub kubernetes: Option<Version>,
    /// API server URL.
    pub api_server: Option<String>,
    /// The API server certificate's name, for remote secrets.
    pub tls_server_name: Option<String>,
    /// Pod range.
    pub pod_cidr: IpNet,
    /// Service range.
    pub service_cidr: IpNet,
    /// Default locality.
    pub locality: Locality,
    /// kube-proxy mode.
    pub kube_proxy: KubeProxy,
    /// Planned LoadBalancer addresses.
    pub lb: Lb,
    /// MetalLB pool.
    pub metallb: Option<Metallb>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Demo workloads.
    pub samples: Samples,
    /// GKE settings.
    pub gke: Option<Gke>,
    /// kubeadm settings.
    pub kubeadm: Kubeadm,
}

/// What `kubeadm init` flags would say (`[cluster.kubeadm]`).
#[derive(Debug, Default, Serialize)]
pub struct Kubeadm {
    /// `imageRepository`.
    pub image_repository: Option<String>,
    /// `nodeRegistration.criSocket`.
    pub cri_socket: Option<String>,
    /// `localAPIEndpoint.advertiseAddress`, as planned.
    pub advertise_address: Option<IpAddr>,
}

/// Region, zone, subzone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Locality {
    /// Region.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Subzone.
    pub subzone: Option<String>,
}

/// Planned LoadBalancer addresses.
#[derive(Debug, Default, Serialize)]
pub struct Lb {
    /// istiod's LoadBalancer.
    pub istiod: Option<IpAddr>,
    /// East-west gateway.
    pub eastwest: Option<IpAddr>,
    /// Ingress gateway.
    pub ingress: Option<IpAddr>,
    /// How the addresses reach their Services.
    pub via: LbVia,
    /// Annotations for every LoadBalancer Service (`via = "cloud"`), sorted by key.
    pub annotations: Vec<(String, String)>,
    /// The east-west gateway's load-balancer DNS name (`via = "cloud"`).
    pub eastwest_hostname: Option<String>,
    /// The east-west gateway's node port for 15443 (`via = "node_port"`).
    pub eastwest_node_port: u16,
}

/// The node port of a NodePort east-west gateway when the plan names none.
pub const DEFAULT_EASTWEST_NODE_PORT: u16 = 31443;

/// A MetalLB pool.
#[derive(Debug, Serialize)]
pub struct Metallb {
    /// IPAddressPool name.
    pub pool: String,
    /// Entries as written (validated).
    pub addresses: Vec<String>,
    /// Advertisement mode.
    pub mode: MetallbMode,
    /// L2 interfaces.
    pub interfaces: Vec<String>,
    /// BGP peers.
    pub peers: Vec<Peer>,
    /// BGP AS number.
    pub asn: Option<u32>,
    /// Number of addresses in the pool.
    pub size: u128,
}

/// A BGP peer.
#[derive(Debug, Serialize)]
pub struct Peer {
    /// Router address.
    pub address: String,
    /// Router AS number.
    pub asn: u32,
}

/// A node.
#[derive(Debug, Serialize)]
pub struct Node {
    /// Name.
    pub name: String,
    /// Address.
    pub ip: Option<IpAddr>,
    /// Pod block.
    pub pod_cidr: Option<IpNet>,
    /// Effective locality (node's own, else the cluster's).
    pub locality: Locality,
    /// Control-plane node.
    pub control_plane: bool,
}

/// Demo workloads.
#[derive(Debug, Default, Serialize)]
pub struct Samples {
    /// helloworld version label.
    pub helloworld: Option<String>,
    /// sleep/curl client.
    pub sleep: bool,
    /// Bookinfo workloads, sorted.
    pub bookinfo: Vec<Bookinfo>,
}

/// GKE firewall settings.
#[derive(Debug, Serialize)]
pub struct Gke {
    /// Project.
    pub project: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// VPC.
    pub vpc: String,
    /// Target tags.
    pub target_tags: Vec<String>,
}

impl Serialize for Bookinfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Bookinfo::Productpage => "productpage",
            Bookinfo::Details => "details",
            Bookinfo::Ratings => "ratings",
            Bookinfo::ReviewsV1 => "reviews-v1",
            Bookinfo::ReviewsV2 => "reviews-v2",
            Bookinfo::ReviewsV3 => "reviews-v3",
        })
    }
}

macro_rules! serialize_lowercase {
    ($($ty:ty => [$($variant:ident = $name:literal),*]),* $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(match self { $(<$ty>::$variant => $name),* })
            }
        }
    )*};
}

serialize_lowercase! {
    Role => [Primary = "primary", Remote = "remote"],
    Routing => [None = "none", Static = "static"],
    Platform => [Generic = "generic", Kubeadm = "kubeadm", Kind = "kind", Icp = "icp", Gke = "gke"],
    KubeProxy => [Iptables = "iptables", Ipvs = "ipvs"],
    MetallbMode => [L2 = "l2", Bgp = "bgp"],
    Installer => [Istioctl = "istioctl", Helm = "helm"],
    Dataplane => [Sidecar = "sidecar", Ambient = "ambient"],
    Scope => [Mesh = "mesh", Cluster = "cluster"],
    LbVia => [Metallb = "metallb", Cloud = "cloud", ExternalIps = "external_ips", NodePort = "node_port"],
}

fn text(value: &Option<toml::Spanned<String>>) -> Option<String> {
    value.as_ref().map(|v| v.get_ref().clone())
}

impl Plan {
    /// Each cluster's index in `clusters`, by name.
    pub fn cluster_indexes(&self) -> std::collections::HashMap<&str, usize> {
        self.clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect()
    }

    /// Builds the model from a plan that passed validation; `None` if a value it needs did not
    /// parse (validation reports that as an error first, so this does not happen in practice).
    pub fn from_facts(facts: &Facts) -> Option<Plan> {
        let raw_mesh = facts.plan.mesh.get_ref();
        let istio = raw_mesh.istio.get_ref();
        let samples = raw_mesh.samples.as_ref().map(|s| s.get_ref());
        let mesh = Mesh {
            id: raw_mesh.id.get_ref().clone(),
            trust_domain: text(&raw_mesh.trust_domain)
                .unwrap_or_else(|| "cluster.local".to_owned()),
            dataplane: raw_mesh
                .dataplane
                .as_ref()
                .map_or(Dataplane::Sidecar, |d| *d.get_ref()),
            istio_version: facts.istio_version.clone()?,
            artifacts: artifacts(istio, raw_mesh.artifacts.as_ref().map(|a| a.get_ref())),
            installer: istio
                .installer
                .as_ref()
                .map_or(Installer::Istioctl, |i| *i.get_ref()),
            revision: text(&istio.revision),
            metallb_version: facts.metallb_version.clone()?,
            metallb_namespace: raw_mesh
                .metallb
                .as_ref()
                .and_then(|m| text(&m.get_ref().namespace))
                .unwrap_or_else(|| "metallb-system".to_owned()),
            samples_hub: samples.and_then(|s| text(&s.hub)),
            samples_namespace: samples
                .and_then(|s| text(&s.namespace))
                .unwrap_or_else(|| "sample".to_owned()),
            gitops: raw_mesh.gitops.as_ref().map(|g| gitops(g.get_ref())),
        };
        let networks = facts
            .networks
            .iter()
            .map(|n| {
                let raw = n.raw.get_ref();
                Network {
                    id: raw.id.get_ref().clone(),
                    routing: raw.routing.as_ref().map_or(Routing::None, |r| *r.get_ref()),
                    node_subnet: n.node_subnet.as_ref().map(|s| *s.get_ref()),
                }
            })
            .collect();
        let clusters = facts
            .clusters
            .iter()
            .map(|c| cluster(facts, c))
            .collect::<Option<Vec<_>>>()?;
        Some(Plan {
            mesh,
            networks,
            clusters,
            services: facts
                .plan
                .service
                .iter()
                .map(|s| service(s.get_ref()))
                .collect::<Option<Vec<_>>>()?,
            trust: None,
        })
    }
}

fn cluster(facts: &Facts, c: &ClusterFacts) -> Option<Cluster> {
    let raw = c.raw.get_ref();
    let locality = Locality {
        region: text(&raw.region),
        zone: text(&raw.zone),
        subzone: text(&raw.subzone),
    };
    let lb_addr = |kind| c.lb(kind).map(|lb| *lb.addr.get_ref());
    let raw_lb = raw.lb.as_ref().map(|lb| lb.get_ref());
    Some(Cluster {
        name: c.name().to_owned(),
        role: *raw.role.get_ref(),
        primary: primary_name(facts, c),
        network: raw.network.get_ref().clone(),
        context: text(&raw.context).unwrap_or_else(|| c.name().to_owned()),
        platform: raw
            .platform
            .as_ref()
            .map_or(Platform::Generic, |p| *p.get_ref()),
        kubernetes: c.kubernetes.clone(),
        // As written: the URL crate would normalise `https://h:6443` to `https://h:6443/`.
        api_server: c.api_server.as_ref().and(text(&raw.api_server)),
        tls_server_name: text(&raw.tls_server_name),
        pod_cidr: *c.pod_cidr.as_ref()?.get_ref(),
        service_cidr: *c.service_cidr.as_ref()?.get_ref(),
        kube_proxy: raw
            .kube_proxy
            .as_ref()
            .map_or(KubeProxy::Iptables, |k| *k.get_ref()),
        lb: Lb {
            istiod: lb_addr(LbKind::Istiod),
            eastwest: lb_addr(LbKind::Eastwest),
            ingress: lb_addr(LbKind::Ingress),
            via: lb_via(raw),
            annotations: raw_lb
                .and_then(|lb| lb.annotations.as_ref())
                .map(|a| {
                    a.get_ref()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                        .collect()
                })
                .unwrap_or_default(),
            eastwest_hostname: raw_lb.and_then(|lb| text(&lb.eastwest_hostname)),
            eastwest_node_port: raw_lb
                .and_then(|lb| lb.eastwest_node_port.as_ref())
                .map_or(DEFAULT_EASTWEST_NODE_PORT, |p| *p.get_ref()),
        },
        metallb: raw.metallb.as_ref().map(|m| metallb(c, m.get_ref())),
        nodes: c.nodes.iter().map(|n| node(n, &locality)).collect(),
        samples: samples(raw.samples.as_ref().map(|s| s.get_ref())),
        gke: raw.gke.as_ref().map(|g| gke(g.get_ref())),
        kubeadm: raw
            .kubeadm
            .as_ref()
            .map(|k| Kubeadm {
                image_repository: text(&k.get_ref().image_repository),
                cri_socket: text(&k.get_ref().cri_socket),
                advertise_address: c.advertise_address.as_ref().map(|a| *a.get_ref()),
            })
            .unwrap_or_default(),
        locality,
    })
}

/// `[cluster.lb] via`, or its default: MetalLB where the cluster has pools, else the cloud.
pub fn lb_via(raw: &raw::Cluster) -> LbVia {
    let written = raw.lb.as_ref().and_then(|lb| lb.get_ref().via.as_ref());
    match (written, &raw.metallb) {
        (Some(via), _) => *via.get_ref(),
        (None, Some(_)) => LbVia::Metallb,
        (None, None) => LbVia::Cloud,
    }
}

/// A remote's primary: the one it names, else the plan's only primary.
pub fn primary_name(facts: &Facts, c: &ClusterFacts) -> Option<String> {
    let raw = c.raw.get_ref();
    if *raw.role.get_ref() == Role::Primary {
        return None;
    }
    match &raw.primary {
        Some(named) => Some(named.get_ref().clone()),
        None => facts
            .clusters
            .iter()
            .find(|p| *p.raw.get_ref().role.get_ref() == Role::Primary)
            .map(|p| p.name().to_owned()),
    }
}

fn service(raw: &raw::Service) -> Option<Service> {
    let mut clusters: Vec<String> = Vec::new();
    for name in raw.clusters.get_ref() {
        if !clusters.contains(name.get_ref()) {
            clusters.push(name.get_ref().clone());
        }
    }
    let failover: Vec<Failover> = raw
        .failover
        .iter()
        .flat_map(|f| f.get_ref().iter())
        .map(|f| Failover {
            from: f.get_ref().from.get_ref().clone(),
            to: f.get_ref().to.get_ref().clone(),
        })
        .collect();
    let outlier = match raw.outlier.as_ref().map(|o| o.get_ref()) {
        Some(o) => Some(outlier(o)?),
        None if !failover.is_empty() => Some(outlier(&raw::Outlier {
            consecutive_5xx: None,
            interval: None,
            base_ejection_time: None,
            max_ejection_percent: None,
        })?),
        None => None,
    };
    Some(Service {
        name: raw.name.get_ref().clone(),
        namespace: raw.namespace.get_ref().clone(),
        port: u16::try_from(*raw.port.get_ref()).ok()?,
        clusters,
        scope: raw.scope.as_ref().map_or(Scope::Mesh, |s| *s.get_ref()),
        failover,
        outlier,
    })
}

fn outlier(raw: &raw::Outlier) -> Option<Outlier> {
    let number = |v: &Option<toml::Spanned<i64>>, default: u32| match v {
        Some(v) => u32::try_from(*v.get_ref()).ok(),
        None => Some(default),
    };
    Some(Outlier {
        consecutive_5xx: number(&raw.consecutive_5xx, DEFAULT_CONSECUTIVE_5XX)?,
        interval: text(&raw.interval).unwrap_or_else(|| DEFAULT_INTERVAL.to_owned()),
        base_ejection_time: text(&raw.base_ejection_time)
            .unwrap_or_else(|| DEFAULT_BASE_EJECTION_TIME.to_owned()),
        max_ejection_percent: number(&raw.max_ejection_percent, DEFAULT_MAX_EJECTION_PERCENT)?,
    })
}

fn metallb(c: &ClusterFacts, raw: &raw::Metallb) -> Metallb {
    let list = |v: &Option<toml::Spanned<Vec<toml::Spanned<String>>>>| -> Vec<String> {
        v.iter()
            .flat_map(|l| l.get_ref().iter().map(|s| s.get_ref().clone()))
            .collect()
    };
    Metallb {
        pool: text(&raw.pool).unwrap_or_else(|| format!("{}-pool", c.name())),
        addresses: raw
            .addresses
            .get_ref()
            .iter()
            .map(|a| a.get_ref().trim().to_owned())
            .collect(),
        mode: raw.mode.as_ref().map_or(MetallbMode::L2, |m| *m.get_ref()),
        interfaces: list(&raw.interfaces),
        peers: raw
            .peers
            .iter()
            .flat_map(|p| p.get_ref().iter())
            .map(|p| Peer {
                address: p.get_ref().address.get_ref().clone(),
                asn: *p.get_ref().asn.get_ref(),
            })
            .collect(),
        asn: raw.asn.as_ref().map(|a| *a.get_ref()),
        size: c
            .pool
            .iter()
            .map(|e| e.interval)
            .fold(0u128, |sum, i: Interval| sum.saturating_add(i.size())),
    }
}

fn node(n: &NodeFacts, cluster: &Locality) -> Node {
    let raw = n.raw.get_ref();
    Node {
        name: raw.name.get_ref().clone(),
        ip: n.ip.as_ref().map(|ip| *ip.get_ref()),
        pod_cidr: n.block.as_ref().map(|b| *b.get_ref()),
        locality: Locality {
            region: text(&raw.region).or_else(|| cluster.region.clone()),
            zone: text(&raw.zone).or_else(|| cluster.zone.clone()),
            subzone: text(&raw.subzone).or_else(|| cluster.subzone.clone()),
        },
        control_plane: raw.control_plane.as_ref().is_some_and(|c| *c.get_ref()),
    }
}

fn samples(raw: Option<&raw::Samples>) -> Samples {
    let Some(raw) = raw else {
        return Samples::default();
    };
    let mut bookinfo: Vec<Bookinfo> = raw
        .bookinfo
        .iter()
        .flat_map(|b| b.get_ref().iter().map(|w| *w.get_ref()))
        .collect();
    bookinfo.sort();
    bookinfo.dedup();
    Samples {
        helloworld: text(&raw.helloworld),
        sleep: raw.sleep.as_ref().is_some_and(|s| *s.get_ref()),
        bookinfo,
    }
}

fn artifacts(istio: &raw::Istio, raw: Option<&raw::Artifacts>) -> Artifacts {
    let key =
        |get: fn(&raw::Artifacts) -> &Option<toml::Spanned<String>>| raw.and_then(|a| text(get(a)));
    Artifacts {
        hub: key(|a| &a.hub)
            .or_else(|| text(&istio.hub))
            .unwrap_or_else(|| DEFAULT_HUB.to_owned()),
        // A trailing `/` would double up where a chart name or version is appended.
        istio_charts: key(|a| &a.istio_charts)
            .map_or_else(|| DEFAULT_ISTIO_CHARTS.to_owned(), trim_slash),
        metallb_charts: key(|a| &a.metallb_charts)
            .map_or_else(|| DEFAULT_METALLB_CHARTS.to_owned(), trim_slash),
        metallb_hub: key(|a| &a.metallb_hub).unwrap_or_else(|| DEFAULT_METALLB_HUB.to_owned()),
        gateway_api_crds: key(|a| &a.gateway_api_crds).map(|source| {
            if crate::validate::artifacts::is_url(&source) {
                CrdSource::Url(source)
            } else {
                CrdSource::File(source)
            }
        }),
        gateway_api_version: key(|a| &a.gateway_api_version)
            .and_then(|v| Version::parse(v.trim_start_matches('v'))),
        istioctl: key(|a| &a.istioctl).map_or_else(|| DEFAULT_ISTIOCTL.to_owned(), trim_slash),
        kind_hub: key(|a| &a.kind_hub).unwrap_or_else(|| DEFAULT_KIND_HUB.to_owned()),
    }
}

fn trim_slash(url: String) -> String {
    url.trim_end_matches('/').to_owned()
}

fn gitops(raw: &raw::Gitops) -> Gitops {
    let path = text(&raw.path).unwrap_or_else(|| ".".to_owned());
    Gitops {
        repository: raw.repository.get_ref().clone(),
        revision: text(&raw.revision).unwrap_or_else(|| "main".to_owned()),
        path: path.trim_end_matches('/').to_owned(),
        tool: match raw.tool.get_ref() {
            raw::GitopsTool::Argocd => "argocd",
            raw::GitopsTool::Flux => "flux",
        },
    }
}

fn gke(raw: &raw::Gke) -> Gke {
    Gke {
        project: text(&raw.project),
        zone: text(&raw.zone),
        vpc: text(&raw.vpc).unwrap_or_else(|| "default".to_owned()),
        target_tags: raw
            .target_tags
            .iter()
            .flat_map(|t| t.get_ref().iter().map(|s| s.get_ref().clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn versions_parse_and_compare() {
        let v = Version::parse("1.24.2").unwrap();
        assert_eq!(v.to_string(), "1.24.2");
        assert!(v.at_least(1, 20) && !v.at_least(1, 25));
        assert_eq!(Version::parse("0.15").unwrap().patch, None);
        assert_eq!(
            Version::parse("1.25.0-rc.1").unwrap().to_string(),
            "1.25.0-rc.1"
        );
        for bad in ["", "1", "v1.2", "1.2.3.4", "1..2", "1.2-", "1.x"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }
}
