//! Stage 1 output: a serde mirror of the plan's TOML, every value kept with its source span.
//!
//! No logic lives here; the doc comments on the fields are the plan format's reference
//! (`docs/plan-format.md` and `../shared/spec/plan.md` say the same in prose).

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A whole plan file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// `[mesh]`: mesh-wide settings.
    #[schemars(with = "Mesh")]
    pub mesh: Spanned<Mesh>,
    /// `[[network]]`: at least one network.
    #[serde(default)]
    #[schemars(with = "Vec<Network>")]
    pub network: Vec<Spanned<Network>>,
    /// `[[cluster]]`: at least one cluster.
    #[serde(default)]
    #[schemars(with = "Vec<Cluster>")]
    pub cluster: Vec<Spanned<Cluster>>,
    /// `[[service]]` (addition): what runs where, its scope and its locality failover.
    #[serde(default)]
    #[schemars(with = "Vec<Service>")]
    pub service: Vec<Spanned<Service>>,
}

/// `[mesh]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    /// Mesh ID (`values.global.meshID`), a Kubernetes label value.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Istio trust domain; default `cluster.local`.
    #[schemars(with = "Option<String>")]
    pub trust_domain: Option<Spanned<String>>,
    /// (addition) `sidecar` (default) or `ambient`: Istio's data plane.
    #[schemars(with = "Option<Dataplane>")]
    pub dataplane: Option<Spanned<Dataplane>>,
    /// `[mesh.istio]`: which Istio the output targets.
    #[schemars(with = "Istio")]
    pub istio: Spanned<Istio>,
    /// `[mesh.metallb]`: which MetalLB the pools target.
    #[schemars(with = "Option<MeshMetallb>")]
    pub metallb: Option<Spanned<MeshMetallb>>,
    /// `[mesh.samples]`: where demo workloads come from and go to.
    #[schemars(with = "Option<MeshSamples>")]
    pub samples: Option<Spanned<MeshSamples>>,
    /// `[mesh.gitops]` (addition to the spec): hand the compiled tree to Argo CD or Flux.
    #[schemars(with = "Option<Gitops>")]
    pub gitops: Option<Spanned<Gitops>>,
    /// `[mesh.artifacts]` (addition): where every image, chart, CRD file and download the
    /// compiled tree fetches comes from, e.g. a mirror in a closed network.
    #[schemars(with = "Option<Artifacts>")]
    pub artifacts: Option<Spanned<Artifacts>>,
    /// `[mesh.trust]` (addition): several roots and the phases of a rotation, a merge of two
    /// meshes or a revocation (docs/plan-format.md, "Rotating and joining trust").
    #[schemars(with = "Option<crate::trust::raw::Trust>")]
    pub trust: Option<Spanned<crate::trust::raw::Trust>>,
}

/// `[mesh.artifacts]`: the outside sources of the compiled tree. Each key has a default that
/// serves every Istio release a plan may target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    /// Registry path of Istio's images (`pilot`, `proxyv2`, `install-cni`, `ztunnel`), e.g.
    /// `registry.example.com/istio`; default `docker.io/istio`. The same setting as
    /// `[mesh.istio] hub`: set either, or both to the same value.
    #[schemars(with = "Option<String>")]
    pub hub: Option<Spanned<String>>,
    /// Istio's Helm chart repository (`installer = "helm"`): an `https://` repository or an
    /// `oci://` registry path; default `https://blob.istio.io/istio-release/charts`.
    #[schemars(with = "Option<String>")]
    pub istio_charts: Option<Spanned<String>>,
    /// MetalLB's Helm chart repository (`https://` or `oci://`), for the MetalLB install step;
    /// default `https://metallb.github.io/metallb`.
    #[schemars(with = "Option<String>")]
    pub metallb_charts: Option<Spanned<String>>,
    /// Registry path holding MetalLB's `controller` and `speaker` images; default
    /// `quay.io/metallb`.
    #[schemars(with = "Option<String>")]
    pub metallb_hub: Option<Spanned<String>>,
    /// Where the Gateway API CRDs come from (ambient): an `https://` URL of a
    /// `standard-install.yaml`, or a file beside the plan (a relative path), copied into the
    /// tree; default the GitHub release of `gateway_api_version`.
    #[schemars(with = "Option<String>")]
    pub gateway_api_crds: Option<Spanned<String>>,
    /// The Gateway API release of those CRDs, e.g. `v1.5.1`; default the release the targeted
    /// Istio is built with.
    #[schemars(with = "Option<String>")]
    pub gateway_api_version: Option<Spanned<String>>,
    /// Where istioctl release archives come from: a URL under which
    /// `<version>/istioctl-<version>-<os>-<arch>.tar.gz` lies; default
    /// `https://github.com/istio/istio/releases/download`.
    #[schemars(with = "Option<String>")]
    pub istioctl: Option<Spanned<String>>,
    /// Registry path of kind's node images (`platform = "kind"`); default `docker.io/kindest`.
    #[schemars(with = "Option<String>")]
    pub kind_hub: Option<Spanned<String>>,
}

/// Istio's data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dataplane {
    /// Envoy sidecars, injected into every pod.
    #[default]
    Sidecar,
    /// ztunnel on every node (and waypoints), no sidecars.
    Ambient,
}

/// `[mesh.gitops]`: where the compiled tree lives in git, and which tool syncs it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gitops {
    /// Git repository holding the compiled tree, e.g. `https://git.example.com/platform/mesh.git`.
    #[schemars(with = "String")]
    pub repository: Spanned<String>,
    /// Branch (or tag) to sync; default `main`.
    #[schemars(with = "Option<String>")]
    pub revision: Option<Spanned<String>>,
    /// Path of the compiled tree in that repository, e.g. `deploy/mesh`; default `.`.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// `argocd` (an ApplicationSet) or `flux` (a GitRepository and Kustomizations).
    #[schemars(with = "GitopsTool")]
    pub tool: Spanned<GitopsTool>,
}

/// Which GitOps tool syncs the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GitopsTool {
    /// Argo CD ApplicationSet.
    Argocd,
    /// Flux GitRepository + Kustomizations.
    Flux,
}

/// `[mesh.istio]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Istio {
    /// Istio version, e.g. `1.24.2`; 1.20 or later.
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Registry path of Istio's images, e.g. `docker.io/istio` (the default): the same setting
    /// as `[mesh.artifacts] hub`.
    #[schemars(with = "Option<String>")]
    pub hub: Option<Spanned<String>>,
    /// `istioctl` (default) or `helm`.
    #[schemars(with = "Option<Installer>")]
    pub installer: Option<Spanned<Installer>>,
    /// (addition) The control plane's revision, e.g. `1-30-3`: istiod runs as `istiod-<revision>`
    /// and the default revision tag points at it; a lowercase DNS label, not `default`.
    #[schemars(
        with = "Option<String>",
        length(max = 40),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub revision: Option<Spanned<String>>,
}

/// How Istio is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    /// IstioOperator files for `istioctl install -f`.
    Istioctl,
    /// Helm values files.
    Helm,
}

/// `[mesh.metallb]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshMetallb {
    /// MetalLB version, default `0.15`.
    #[schemars(with = "Option<String>")]
    pub version: Option<Spanned<String>>,
    /// Namespace MetalLB runs in, where its pools must be created; default `metallb-system`
    /// (the manifests' namespace; a Helm install uses its release namespace).
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Spanned<String>>,
}

/// `[mesh.samples]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshSamples {
    /// Registry path for the sample images (helloworld, bookinfo; the curl client from the
    /// same registry host); default `docker.io/istio`.
    #[schemars(with = "Option<String>")]
    pub hub: Option<Spanned<String>>,
    /// Namespace the samples go to; default `sample`.
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Spanned<String>>,
}

/// `[[network]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Network ID (`values.global.network`), a label value.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// `none` (default) or `static`.
    #[schemars(with = "Option<Routing>")]
    pub routing: Option<Spanned<Routing>>,
    /// The one L2 subnet every node of the network sits on; required for `static`.
    #[schemars(with = "Option<String>")]
    pub node_subnet: Option<Spanned<String>>,
}

/// How pod traffic between clusters of one network is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// The platform already routes pods.
    None,
    /// Host routes on every node (generated `ip route` scripts).
    Static,
}

/// `[[cluster]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Cluster name: DNS-1123 label, unique in the plan.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `primary` or `remote`.
    #[schemars(with = "Role")]
    pub role: Spanned<Role>,
    /// A remote's primary; required when the plan has several primaries.
    #[schemars(with = "Option<String>")]
    pub primary: Option<Spanned<String>>,
    /// The `id` of a declared network.
    #[schemars(with = "String")]
    pub network: Spanned<String>,
    /// kubectl context for generated scripts; default = `name`.
    #[schemars(with = "Option<String>")]
    pub context: Option<Spanned<String>>,
    /// `generic` (default), `kubeadm`, `kind`, `icp` or `gke`.
    #[schemars(with = "Option<Platform>")]
    pub platform: Option<Spanned<Platform>>,
    /// Kubernetes version, e.g. `1.25`.
    #[schemars(with = "Option<String>")]
    pub kubernetes: Option<Spanned<String>>,
    /// API server URL, e.g. `https://10.64.30.130:6443`.
    #[schemars(with = "Option<String>")]
    pub api_server: Option<Spanned<String>>,
    /// (addition) The name the API server's certificate carries, when `api_server` is
    /// reached by another name or address (`istioctl create-remote-secret --tls-server-name`,
    /// Istio 1.26 and later).
    #[schemars(with = "Option<String>")]
    pub tls_server_name: Option<Spanned<String>>,
    /// The cluster's pod range.
    #[schemars(with = "String")]
    pub pod_cidr: Spanned<String>,
    /// The cluster's service range.
    #[schemars(with = "String")]
    pub service_cidr: Spanned<String>,
    /// Default region of the cluster's nodes.
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
    /// Default zone of the cluster's nodes.
    #[schemars(with = "Option<String>")]
    pub zone: Option<Spanned<String>>,
    /// Default subzone of the cluster's nodes.
    #[schemars(with = "Option<String>")]
    pub subzone: Option<Spanned<String>>,
    /// `iptables` (default) or `ipvs`.
    #[schemars(with = "Option<KubeProxy>")]
    pub kube_proxy: Option<Spanned<KubeProxy>>,
    /// `[cluster.lb]`: planned LoadBalancer addresses.
    #[schemars(with = "Option<Lb>")]
    pub lb: Option<Spanned<Lb>>,
    /// `[cluster.metallb]`: MetalLB address pools.
    #[schemars(with = "Option<Metallb>")]
    pub metallb: Option<Spanned<Metallb>>,
    /// `[[cluster.node]]`: the cluster's nodes.
    #[serde(default)]
    #[schemars(with = "Vec<Node>")]
    pub node: Vec<Spanned<Node>>,
    /// `[cluster.samples]`: demo workloads.
    #[schemars(with = "Option<Samples>")]
    pub samples: Option<Spanned<Samples>>,
    /// `[cluster.gke]`: GKE firewall settings.
    #[schemars(with = "Option<Gke>")]
    pub gke: Option<Spanned<Gke>>,
    /// `[cluster.kubeadm]` (addition): what `kubeadm init` flags would say, so
    /// `platform/kubeadm.yaml` is used as it is (kubeadm refuses `--config` with those flags).
    #[schemars(with = "Option<Kubeadm>")]
    pub kubeadm: Option<Spanned<Kubeadm>>,
}

/// `[cluster.kubeadm]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kubeadm {
    /// Registry of the control-plane images (`--image-repository`), e.g.
    /// `registry.aliyuncs.com/google_containers`.
    #[schemars(with = "Option<String>")]
    pub image_repository: Option<Spanned<String>>,
    /// The container runtime's socket (`--cri-socket`), e.g. `unix:///var/run/cri-dockerd.sock`.
    #[schemars(with = "Option<String>")]
    pub cri_socket: Option<Spanned<String>>,
    /// The API server's advertise address (`--apiserver-advertise-address`); default: the
    /// control-plane node's `ip` (not the `api_server` host, which may be a load balancer).
    #[schemars(with = "Option<String>")]
    pub advertise_address: Option<Spanned<String>>,
}

/// A cluster's role in the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs istiod.
    Primary,
    /// Uses a primary's istiod.
    Remote,
}

/// Where a cluster runs; adds platform files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// No platform files.
    Generic,
    /// kubeadm ClusterConfiguration.
    Kubeadm,
    /// kind Cluster config.
    Kind,
    /// IBM Cloud Private `cluster/config.yaml` network keys.
    Icp,
    /// GKE firewall script.
    Gke,
}

/// kube-proxy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KubeProxy {
    /// iptables mode.
    Iptables,
    /// IPVS mode (MetalLB L2 then needs `strictARP: true`).
    Ipvs,
}

/// `[cluster.lb]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lb {
    /// Address of the LoadBalancer Service exposing this primary's istiod.
    #[schemars(with = "Option<String>")]
    pub istiod: Option<Spanned<String>>,
    /// Address of the east-west gateway.
    #[schemars(with = "Option<String>")]
    pub eastwest: Option<Spanned<String>>,
    /// Address of the ingress gateway.
    #[schemars(with = "Option<String>")]
    pub ingress: Option<Spanned<String>>,
    /// How the addresses reach their Services: `metallb` (default with `[cluster.metallb]`),
    /// `cloud` (the platform's load balancer; default otherwise), `external_ips` (addresses the
    /// network already routes to a node), or `node_port` (east-west only: a node's address
    /// and a fixed node port).
    #[schemars(with = "Option<LbVia>")]
    pub via: Option<Spanned<LbVia>>,
    /// `via = "cloud"`: annotations for every LoadBalancer Service of the cluster, e.g.
    /// `service.beta.kubernetes.io/aws-load-balancer-type = "nlb"`.
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    pub annotations: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// `via = "cloud"`: the DNS name of the east-west gateway's load balancer (e.g. an AWS
    /// NLB), instead of `eastwest`; istiod resolves it (`RESOLVE_HOSTNAME_GATEWAYS`).
    #[schemars(with = "Option<String>")]
    pub eastwest_hostname: Option<Spanned<String>>,
    /// `via = "node_port"`: the node port the east-west gateway's 15443 listens on; default
    /// 31443, within Kubernetes' default node-port range 30000-32767.
    #[schemars(with = "Option<u16>")]
    pub eastwest_node_port: Option<Spanned<u16>>,
}

/// How planned addresses reach their Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbVia {
    /// MetalLB assigns the address, pinned by annotation.
    Metallb,
    /// The platform's cloud load balancer (`spec.loadBalancerIP`, plus the plan's annotations;
    /// on GKE a private address gets the internal load balancer).
    #[default]
    Cloud,
    /// `spec.externalIPs`: the network routes the address to a node already (a VIP).
    ExternalIps,
    /// A NodePort Service: the address is a node's, the port `eastwest_node_port`.
    NodePort,
}

/// `[cluster.metallb]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metallb {
    /// Pool entries: CIDRs or inclusive `start-end` ranges.
    #[schemars(with = "Vec<String>")]
    pub addresses: Spanned<Vec<Spanned<String>>>,
    /// `l2` (default) or `bgp`.
    #[schemars(with = "Option<MetallbMode>")]
    pub mode: Option<Spanned<MetallbMode>>,
    /// L2 only: interfaces to announce from.
    #[schemars(with = "Option<Vec<String>>")]
    pub interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    /// IPAddressPool name; default `<cluster>-pool`.
    #[schemars(with = "Option<String>")]
    pub pool: Option<Spanned<String>>,
    /// BGP only: routers to peer with.
    #[schemars(with = "Option<Vec<Peer>>")]
    pub peers: Option<Spanned<Vec<Spanned<Peer>>>>,
    /// BGP only: MetalLB's own AS number.
    #[schemars(with = "Option<u32>")]
    pub asn: Option<Spanned<u32>>,
}

/// MetalLB advertisement kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetallbMode {
    /// Layer 2 (ARP/NDP).
    L2,
    /// BGP.
    Bgp,
}

/// A BGP peer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The router's address.
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// The router's AS number.
    #[schemars(with = "u32")]
    pub asn: Spanned<u32>,
}

/// `[[cluster.node]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Node name: DNS-1123 subdomain, unique in the cluster.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The node's address.
    #[schemars(with = "Option<String>")]
    pub ip: Option<Spanned<String>>,
    /// The node's pod block, inside the cluster's `pod_cidr`.
    #[schemars(with = "Option<String>")]
    pub pod_cidr: Option<Spanned<String>>,
    /// Overrides the cluster's region.
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
    /// Overrides the cluster's zone.
    #[schemars(with = "Option<String>")]
    pub zone: Option<Spanned<String>>,
    /// Overrides the cluster's subzone.
    #[schemars(with = "Option<String>")]
    pub subzone: Option<Spanned<String>>,
    /// Control-plane node (kind/kubeadm files); default false.
    #[schemars(with = "Option<bool>")]
    pub control_plane: Option<Spanned<bool>>,
}

/// `[cluster.samples]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Samples {
    /// Deploy helloworld with this version label.
    #[schemars(with = "Option<String>")]
    pub helloworld: Option<Spanned<String>>,
    /// Deploy the sleep/curl client.
    #[schemars(with = "Option<bool>")]
    pub sleep: Option<Spanned<bool>>,
    /// Bookinfo workloads to run here.
    #[schemars(with = "Option<Vec<Bookinfo>>")]
    pub bookinfo: Option<Spanned<Vec<Spanned<Bookinfo>>>>,
}

/// A bookinfo workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum Bookinfo {
    /// productpage-v1.
    #[serde(rename = "productpage")]
    Productpage,
    /// details-v1.
    #[serde(rename = "details")]
    Details,
    /// ratings-v1.
    #[serde(rename = "ratings")]
    Ratings,
    /// reviews-v1.
    #[serde(rename = "reviews-v1")]
    ReviewsV1,
    /// reviews-v2.
    #[serde(rename = "reviews-v2")]
    ReviewsV2,
    /// reviews-v3.
    #[serde(rename = "reviews-v3")]
    ReviewsV3,
}

/// `[cluster.gke]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gke {
    /// GCP project.
    #[schemars(with = "Option<String>")]
    pub project: Option<Spanned<String>>,
    /// GCP zone.
    #[schemars(with = "Option<String>")]
    pub zone: Option<Spanned<String>>,
    /// VPC network; default `default`.
    #[schemars(with = "Option<String>")]
    pub vpc: Option<Spanned<String>>,
    /// Network tags of the cluster's nodes (firewall targets).
    #[schemars(with = "Option<Vec<String>>")]
    pub target_tags: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[service]]`: a Kubernetes Service of the mesh, where its endpoints run and how clients in
/// other clusters and regions reach it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The Service's name: DNS-1123 label.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Its namespace: DNS-1123 label.
    #[schemars(with = "String")]
    pub namespace: Spanned<String>,
    /// Its port, 1..65535.
    #[schemars(with = "i64")]
    pub port: Spanned<i64>,
    /// The clusters its endpoints run in (names of `[[cluster]]`s).
    #[schemars(with = "Vec<String>")]
    pub clusters: Spanned<Vec<Spanned<String>>>,
    /// `mesh` (default): reachable from every cluster; `cluster`: only from its own cluster.
    #[schemars(with = "Option<Scope>")]
    pub scope: Option<Spanned<Scope>>,
    /// Locality failover (Istio `localityLbSetting.failover`): when no healthy endpoint is left
    /// in region `from`, clients there go to region `to`.
    #[schemars(with = "Option<Vec<Failover>>")]
    pub failover: Option<Spanned<Vec<Spanned<Failover>>>>,
    /// `[service.outlier]`: outlier detection (defaults apply whenever `failover` is set).
    #[schemars(with = "Option<Outlier>")]
    pub outlier: Option<Spanned<Outlier>>,
}

/// Who can reach a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every cluster of the mesh.
    #[default]
    Mesh,
    /// Only clients in the same cluster (Istio `clusterLocal`).
    Cluster,
}

/// One `failover` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// The clients' region.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// The region they fail over to.
    #[schemars(with = "String")]
    pub to: Spanned<String>,
}

/// `[service.outlier]`: Istio `outlierDetection`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// Consecutive 5xx responses (or connection failures) that eject an endpoint; default 5.
    #[schemars(with = "Option<i64>")]
    pub consecutive_5xx: Option<Spanned<i64>>,
    /// How often endpoints are scanned, a duration such as `10s`, `500ms`, `1m`; default `10s`.
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    /// How long an ejected endpoint stays out (times the number of ejections); default `30s`.
    #[schemars(with = "Option<String>")]
    pub base_ejection_time: Option<Spanned<String>>,
    /// Largest share of endpoints that may be ejected, 0..100; default 100, so that a whole
    /// region's endpoints can be ejected and failover happens (Envoy's own default, 10, keeps
    /// most of a failed region in rotation).
    #[schemars(with = "Option<i64>")]
    pub max_ejection_percent: Option<Spanned<i64>>,
}
