//! Derived platform files: kind and kubeadm cluster configs, ICP network keys, GKE firewall.

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{self, Plan};
use crate::raw::{KubeProxy, Platform as Kind};

/// The platform file a cluster gets, if any.
#[derive(Debug, Serialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum Platform {
    /// `platform/kind.yaml`.
    Kind(KindConfig),
    /// `platform/kubeadm.yaml`.
    Kubeadm(KubeadmConfig),
    /// `platform/icp-config.yaml`.
    Icp(IcpConfig),
    /// `platform/gke-firewall.sh`.
    Gke(GkeFirewall),
}

impl Platform {
    /// The file's path in the cluster's directory.
    pub fn file(&self) -> &'static str {
        match self {
            Platform::Kind(_) => "platform/kind.yaml",
            Platform::Kubeadm(_) => "platform/kubeadm.yaml",
            Platform::Icp(_) => "platform/icp-config.yaml",
            Platform::Gke(_) => "platform/gke-firewall.sh",
        }
    }
}

/// A kind `Cluster` (kind.x-k8s.io/v1alpha4).
#[derive(Debug, Serialize)]
pub struct KindConfig {
    /// Cluster name.
    pub name: String,
    /// Host address the API server listens on.
    pub api_server_address: Option<String>,
    /// Host port of the API server.
    pub api_server_port: Option<u16>,
    /// Pod range.
    pub pod_subnet: IpNet,
    /// Service range.
    pub service_subnet: IpNet,
    /// `ipv4` or `ipv6`.
    pub ip_family: &'static str,
    /// `iptables` or `ipvs`.
    pub kube_proxy_mode: &'static str,
    /// MetalLB L2 with IPVS needs `strictARP: true`.
    pub strict_arp: bool,
    /// Node roles (`control-plane`/`worker`), control planes first; one control plane when
    /// the plan lists no nodes.
    pub nodes: Vec<&'static str>,
    /// `<kind hub>/node:v<version>` when the plan gives a full Kubernetes release.
    pub image: Option<String>,
}

/// A kubeadm `ClusterConfiguration`.
#[derive(Debug, Serialize)]
pub struct KubeadmConfig {
    /// `kubeadm.k8s.io/v1beta4` from Kubernetes 1.31, `v1beta3` before (or when unknown).
    pub api_version: &'static str,
    /// `v1.30.2`, or `stable-1.30` (the latest patch, looked up by kubeadm) when the plan gives
    /// no patch release.
    pub kubernetes_version: Option<String>,
    /// `host:port` of the API server.
    pub control_plane_endpoint: Option<String>,
    /// Pod range.
    pub pod_subnet: IpNet,
    /// Service range.
    pub service_subnet: IpNet,
    /// kube-proxy in IPVS mode.
    pub ipvs: bool,
    /// MetalLB L2 with IPVS needs `strictARP: true`.
    pub strict_arp: bool,
    /// `imageRepository`.
    pub image_repository: Option<String>,
    /// `nodeRegistration.criSocket` of the InitConfiguration, as a `unix://` URL.
    pub cri_socket: Option<String>,
    /// `localAPIEndpoint.advertiseAddress` of the InitConfiguration.
    pub advertise_address: Option<String>,
}

/// IBM Cloud Private `cluster/config.yaml` network keys.
#[derive(Debug, Serialize)]
pub struct IcpConfig {
    /// `network_cidr`.
    pub network_cidr: IpNet,
    /// `service_cluster_ip_range`.
    pub service_cluster_ip_range: IpNet,
}

/// A GKE firewall rule letting the other clusters' pods in.
#[derive(Debug, Serialize)]
pub struct GkeFirewall {
    /// Rule name.
    pub rule: String,
    /// GCP project, when given.
    pub project: Option<String>,
    /// VPC network.
    pub vpc: String,
    /// Pod ranges of the other clusters on the cluster's network (never empty).
    pub source_ranges: Vec<IpNet>,
    /// Target tags.
    pub target_tags: Vec<String>,
}

/// Resolves a cluster's platform file; `strict_arp` says whether MetalLB needs it.
pub fn platform(plan: &Plan, c: &model::Cluster, strict_arp: bool) -> Option<Platform> {
    match c.platform {
        Kind::Generic => None,
        Kind::Kind => Some(Platform::Kind(kind(
            c,
            strict_arp,
            &plan.mesh.artifacts.kind_hub,
        ))),
        Kind::Kubeadm => Some(Platform::Kubeadm(kubeadm(c, strict_arp))),
        Kind::Icp => Some(Platform::Icp(IcpConfig {
            network_cidr: c.pod_cidr,
            service_cluster_ip_range: c.service_cidr,
        })),
        Kind::Gke => gke(plan, c).map(Platform::Gke),
    }
}

fn host_and_port(c: &model::Cluster) -> Option<(String, Option<u16>)> {
    let url = url::Url::parse(c.api_server.as_deref()?).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Some((host, url.port()))
}

fn kind(c: &model::Cluster, strict_arp: bool, hub: &str) -> KindConfig {
    let (address, port) = host_and_port(c).map_or((None, None), |(h, p)| (Some(h), p));
    let mut nodes: Vec<&'static str> = c
        .nodes
        .iter()
        .map(|n| {
            if n.control_plane {
                "control-plane"
            } else {
                "worker"
            }
        })
        .collect();
    nodes.sort_by_key(|role| *role != "control-plane");
    if !nodes.contains(&"control-plane") {
        nodes.insert(0, "control-plane");
    }
    KindConfig {
        name: c.name.clone(),
        api_server_address: address,
        api_server_port: port,
        pod_subnet: c.pod_cidr,
        service_subnet: c.service_cidr,
        ip_family: if c.pod_cidr.addr().is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        },
        kube_proxy_mode: proxy_mode(c),
        strict_arp,
        nodes,
        image: kind_node_image(c, hub),
    }
}

/// kind's node image for the cluster's Kubernetes, when the plan gives a full release.
pub(super) fn kind_node_image(c: &model::Cluster, hub: &str) -> Option<String> {
    c.kubernetes
        .as_ref()
        .filter(|v| v.patch.is_some())
        .map(|v| format!("{hub}/node:v{v}"))
}

fn proxy_mode(c: &model::Cluster) -> &'static str {
    match c.kube_proxy {
        KubeProxy::Iptables => "iptables",
        KubeProxy::Ipvs => "ipvs",
    }
}

fn kubeadm(c: &model::Cluster, strict_arp: bool) -> KubeadmConfig {
    let v1beta4 = c.kubernetes.as_ref().is_some_and(|v| v.at_least(1, 31));
    KubeadmConfig {
        api_version: if v1beta4 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        },
        kubernetes_version: c.kubernetes.as_ref().map(|v| match v.patch {
            Some(_) => format!("v{v}"),
            None => format!("stable-{}.{}", v.major, v.minor),
        }),
        control_plane_endpoint: host_and_port(c).map(|(host, port)| {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("{host}:{}", port.unwrap_or(6443))
        }),
        pod_subnet: c.pod_cidr,
        service_subnet: c.service_cidr,
        ipvs: c.kube_proxy == KubeProxy::Ipvs,
        strict_arp,
        image_repository: c.kubeadm.image_repository.clone(),
        // kubeadm wants a URL; a bare path gets its scheme, as kubeadm itself would add.
        cri_socket: c.kubeadm.cri_socket.as_ref().map(|socket| {
            if socket.contains("://") {
                socket.clone()
            } else {
                format!("unix://{socket}")
            }
        }),
        advertise_address: advertise_address(c).map(|ip| ip.to_string()),
    }
}

/// The planned address, else the control-plane node's own. Not the `api_server` host: that may
/// be a load balancer in front of several control-plane nodes.
fn advertise_address(c: &model::Cluster) -> Option<std::net::IpAddr> {
    c.kubeadm
        .advertise_address
        .or_else(|| c.nodes.iter().find(|n| n.control_plane).and_then(|n| n.ip))
}

/// Pod traffic comes straight from the other clusters on the same network; across networks it
/// arrives through the east-west gateway, which a LoadBalancer already exposes.
fn gke(plan: &Plan, c: &model::Cluster) -> Option<GkeFirewall> {
    let gke = c.gke.as_ref()?;
    let source_ranges: Vec<IpNet> = plan
        .clusters
        .iter()
        .filter(|o| o.network == c.network && o.name != c.name)
        .map(|o| o.pod_cidr)
        .collect();
    (!source_ranges.is_empty() && !gke.target_tags.is_empty()).then(|| GkeFirewall {
        rule: format!("{}-allow-mesh-pods", c.name),
        project: gke.project.clone(),
        vpc: gke.vpc.clone(),
        source_ranges,
        target_tags: gke.target_tags.clone(),
    })
}
