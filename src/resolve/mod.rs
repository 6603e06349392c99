//! Stage 3: `model::Plan` → [`Mesh`], everything the output files need, derived once.
//!
//! Which clusters get an east-west gateway, which primary each remote uses and the address it
//! reaches istiod on, who watches whom (remote secrets), `meshNetworks`, the Istio
//! version-dependent choices, how LoadBalancer addresses are pinned, and which files each
//! cluster's bundle holds. Templates receive this model only and make no decisions.

pub mod artifacts;
pub mod change;
pub mod doctor;
mod networking;
mod platform;
pub mod procedure;
pub(crate) mod samples;
pub mod services;
pub mod traffic;
pub mod upgrade;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{self, Plan, Version};
use crate::raw::{Dataplane, Installer, LbVia, Platform, Role};

/// The resolved mesh: what every template sees.
#[derive(Debug, Serialize)]
pub struct Mesh {
    /// The plan file's name (no directories), for the generated-file headers.
    pub plan_file: String,
    /// Mesh ID.
    pub id: String,
    /// Trust domain.
    pub trust_domain: String,
    /// Istio target: version and version-dependent choices.
    pub istio: IstioTarget,
    /// Whether the mesh spans several networks.
    pub multi_network: bool,
    /// `meshNetworks`: every used network with its clusters and gateways (multi-network only).
    pub mesh_networks: Vec<MeshNetwork>,
    /// Per-cluster bundles, in plan order. Templates get each as `cluster`; leaving them out of
    /// `mesh` keeps every file's template context small.
    #[serde(skip)]
    pub clusters: Vec<Cluster>,
    /// The install procedure, step by step (empty when one cluster was resolved alone).
    #[serde(skip)]
    pub procedure: procedure::Procedure,
    /// GitOps hand-off, with each cluster's directory in the repository.
    pub gitops: Option<Gitops>,
    /// The plan's services as istiod sees them (each primary's bundle has its share).
    #[serde(skip)]
    pub services: Vec<services::Service>,
    /// What the tree fetches (empty when one cluster was resolved alone).
    #[serde(skip)]
    pub artifacts: artifacts::Artifacts,
    /// The sample services of the traffic model, which the verify scripts follow.
    #[serde(skip)]
    pub sample_services: Vec<traffic::ServiceDef>,
    /// What `doctor.sh` compares with the live clusters (empty when one cluster was resolved
    /// alone).
    #[serde(skip)]
    pub doctor: doctor::Doctor,
    /// `[mesh.trust]`: each phase's files and steps (`trust.sh`, the README's "Rotating and
    /// joining trust"), when the plan has phases.
    #[serde(skip)]
    pub trust: Option<crate::trust::steps::TrustProcedure>,
}

/// Where the GitOps tool finds each cluster's bundle.
#[derive(Debug, Serialize)]
pub struct Gitops {
    /// Repository URL.
    pub repository: String,
    /// Revision.
    pub revision: String,
    /// `argocd` or `flux`.
    pub tool: &'static str,
    /// Object name prefix: `mesh-<id>` as a DNS label.
    pub name: String,
    /// `(cluster, path of its directory in the repository)`, in plan order.
    pub clusters: Vec<(String, String)>,
}

/// The Istio release targeted and what differs between releases.
#[derive(Debug, Serialize)]
pub struct IstioTarget {
    /// Image tag, e.g. `1.24.2`.
    pub tag: String,
    /// Image registry: always written, since Istio 1.30's built-in default
    /// (`registry.istio.io`) is retired.
    pub hub: String,
    /// `istioctl` or `helm`.
    pub installer: &'static str,
    /// Where the Helm charts come from (`installer = "helm"`).
    pub charts: Option<IstioCharts>,
    /// `networking.istio.io/v1` from 1.22, `v1beta1` before.
    pub networking_api: &'static str,
    /// Whether `values.global.externalIstiod` sets istiod's env (1.23+).
    pub global_external_istiod: bool,
    /// Whether remotes install with `istio/istiod --set profile=remote` (1.24+) rather than the
    /// `istio/istiod-remote` chart.
    pub helm_remote_profile: bool,
    /// The ambient data plane (ztunnel, no sidecars), when the plan asks for it.
    pub ambient: Option<Ambient>,
    /// The control plane's revision and the names Istio derives from it.
    pub control_plane: ControlPlane,
}

/// The control plane's revision, if the plan names one, and the names Istio derives from it
/// (istio/istio `manifests/charts/istio-control/istio-discovery/templates`): derived here once,
/// so that every file names the same objects. Without a revision they are Istio's defaults.
#[derive(Debug, Serialize)]
pub struct ControlPlane {
    /// `[mesh.istio] revision`.
    pub revision: Option<String>,
    /// istiod's Deployment and Service (on a remote, the Service and EndpointSlice pointing
    /// at its primary): `istiod-<revision>`, else `istiod`.
    pub istiod: String,
    /// The revision's injection webhook (MutatingWebhookConfiguration):
    /// `istio-sidecar-injector-<revision>`, else `istio-sidecar-injector`.
    pub injector_webhook: String,
    /// istiod's mesh config ConfigMap: `istio-<revision>`, else `istio`.
    pub mesh_config: String,
    /// The `istio.io/rev` label of the revision's objects: the revision, else `default`.
    pub rev_label: String,
    /// The Helm release that installs istiod: `istiod-<revision>`, so that two revisions'
    /// releases coexist, else `istiod`.
    pub helm_release: String,
    /// The default revision tag's injection webhook, which serves `istio-injection: enabled`
    /// namespaces once `istioctl tag set default` points it at the revision (revision only).
    pub tag_webhook: Option<String>,
    /// istiod exposed through the east-west gateway, as Istio's
    /// `samples/multicluster/expose-istiod{,-rev.yaml.tmpl}`: the VirtualService's name
    /// (`istiod-vs-<revision>`, so that two revisions' coexist), the SNI names it routes (`*`
    /// without a revision) and the Service it routes them to.
    pub expose: ExposeIstiod,
}

/// The VirtualService that routes remotes' connections to istiod through the east-west gateway.
#[derive(Debug, Serialize)]
pub struct ExposeIstiod {
    /// Its name.
    pub virtual_service: String,
    /// The SNI names it matches on 15012 and 15017.
    pub sni_hosts: Vec<String>,
    /// The istiod Service it routes to.
    pub destination: String,
}

/// The default revision tag, which serves namespaces labelled `istio-injection: enabled`.
pub const DEFAULT_TAG: &str = "default";

/// The names Istio derives from `revision` (`None`: the unrevisioned control plane's).
pub fn control_plane(revision: Option<&str>) -> ControlPlane {
    let suffixed = |name: &str| match revision {
        Some(revision) => format!("{name}-{revision}"),
        None => name.to_owned(),
    };
    ControlPlane {
        revision: revision.map(str::to_owned),
        istiod: suffixed("istiod"),
        injector_webhook: suffixed("istio-sidecar-injector"),
        mesh_config: suffixed("istio"),
        rev_label: revision.unwrap_or("default").to_owned(),
        helm_release: suffixed("istiod"),
        tag_webhook: revision.map(|_| format!("istio-revision-tag-{DEFAULT_TAG}")),
        expose: ExposeIstiod {
            virtual_service: suffixed("istiod-vs"),
            sni_hosts: match revision {
                Some(_) => vec![
                    format!("{}.istio-system.svc", suffixed("istiod")),
                    format!("{}.istio-system.svc.cluster.local", suffixed("istiod")),
                ],
                None => vec!["*".to_owned()],
            },
            destination: format!("{}.istio-system.svc.cluster.local", suffixed("istiod")),
        },
    }
}

/// Istio's Helm charts, as `helm upgrade --install` names them.
#[derive(Debug, Serialize)]
pub struct IstioCharts {
    /// The repository `helm repo add istio` registers (`None` for an OCI registry).
    pub repository: Option<String>,
    /// `istio/base`.
    pub base: String,
    /// `istio/gateway`.
    pub gateway: String,
    /// `istio/cni`.
    pub cni: String,
    /// `istio/ztunnel`.
    pub ztunnel: String,
}

/// What an ambient mesh installs beyond istiod.
#[derive(Debug, Serialize)]
pub struct Ambient {
    /// istiod's `AMBIENT_ENABLE_MULTI_NETWORK`: the mesh spans several networks.
    pub multi_network: bool,
    /// istiod's `AMBIENT_ENABLE_BAGGAGE` (Istio 1.29+, with `multi_network`): peer metadata in
    /// HBONE baggage, so cross-network telemetry names both sides, as Istio's 1.29 multicluster
    /// ambient install guides set it.
    pub baggage: bool,
    /// The Gateway API release whose CRDs the install applies (`v1.5.1`): the plan's, else
    /// the one the targeted Istio is built with (the release table).
    pub gateway_api_version: String,
    /// Where a cluster's install script applies them from: a URL, or the tree's copy of a file
    /// beside the plan (relative to the cluster's directory).
    pub gateway_api_crds: String,
}

fn ambient(plan: &Plan, multi_network: bool) -> Option<Ambient> {
    if plan.mesh.dataplane != Dataplane::Ambient {
        return None;
    }
    let version = artifacts::gateway_api_version(plan)?;
    Some(Ambient {
        multi_network,
        baggage: multi_network && plan.mesh.istio_version.at_least(1, 29),
        gateway_api_version: format!("v{version}"),
        gateway_api_crds: artifacts::gateway_api_crds(plan, &version).0,
    })
}

/// The source of Istio's charts (`installer = "helm"`).
fn istio_chart_source(plan: &Plan) -> Option<artifacts::ChartSource> {
    (plan.mesh.installer == Installer::Helm)
        .then(|| artifacts::ChartSource::new(&plan.mesh.artifacts.istio_charts, "istio"))
}

/// One network in `meshNetworks`.
#[derive(Debug, Serialize)]
pub struct MeshNetwork {
    /// Network ID.
    pub id: String,
    /// Its clusters (`fromRegistry`).
    pub registries: Vec<String>,
    /// Its east-west gateways.
    pub gateways: Vec<NetworkGateway>,
}

/// Where other networks reach an east-west gateway's 15443.
#[derive(Debug, Serialize)]
pub struct NetworkGateway {
    /// IP, or a DNS name istiod resolves (`RESOLVE_HOSTNAME_GATEWAYS`, on by default).
    pub address: String,
    /// 15443, or the node port of a NodePort gateway.
    pub port: u16,
}

/// How a Service gets its planned address: what its Service spec and annotations say, and
/// what the install waits for.
#[derive(Debug, Clone, Serialize)]
pub struct Pin {
    /// The address as planned: an IP, or the load balancer's DNS name.
    pub address: String,
    /// `LoadBalancer`; `NodePort` for a NodePort east-west gateway; `ClusterIP` with externalIPs.
    pub service_type: &'static str,
    /// Service annotations, sorted by key: MetalLB's pin, GKE's internal load balancer, the
    /// plan's own.
    pub annotations: Vec<(String, String)>,
    /// `spec.loadBalancerIP`, for a cloud load balancer given an IP (the platforms that pin by
    /// address still read it).
    pub load_balancer_ip: Option<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// The node port for 15443 (NodePort east-west gateway).
    pub node_port: Option<u16>,
    /// The object whose status shows the address.
    pub wait_object: &'static str,
    /// An ambient east-west Gateway's `spec.addresses`: what istiod's gateway template turns into
    /// its Service's `spec.loadBalancerIP` (istio/istio 1.30.3,
    /// `manifests/charts/istio-control/istio-discovery/files/waypoint.yaml:354-356`). Empty where
    /// MetalLB assigns the address: it is asked through the annotation alone, because MetalLB
    /// refuses a Service that asks both ways (metallb/metallb `controller/service.go`,
    /// `getDesiredLbIPs`: "service can not have both metallb.io/loadBalancerIPs and
    /// svc.Spec.LoadBalancerIP").
    pub gateway_addresses: Vec<GatewayAddress>,
    /// What the install waits for where the platform assigns the address; `None` where
    /// nothing is assigned (externalIPs, NodePort).
    pub wait_for: Option<Wait>,
}

/// How the install waits for a load balancer's address: it polls the object's status (kubectl
/// before 1.26 cannot `wait --for=jsonpath=` on a field that is not there yet).
#[derive(Debug, Clone, Serialize)]
pub struct Wait {
    /// Where the object's status shows the address.
    pub jsonpath: String,
    /// The address planned.
    pub planned: String,
    /// Whatever address appears ends the wait: a cloud names a load balancer when it makes it,
    /// so a planned hostname cannot be waited for; the install prints the one it got.
    pub any: bool,
}

/// Where a remote reaches its primary's istiod, and what serves that address.
#[derive(Debug, Serialize)]
pub struct IstiodReach {
    /// The address (`remotePilotAddress`).
    pub address: IpAddr,
    /// What must be true for it to answer, for the message when it does not.
    pub hint: String,
}

/// What serves a remote's istiod address on its primary.
fn istiod_reach(primary: &model::Cluster, address: IpAddr) -> IstiodReach {
    let server = if primary.lb.istiod == Some(address) {
        "istiod load balancer (service/istiod-lb)"
    } else {
        "east-west gateway"
    };
    let hint = match primary.lb.via {
        LbVia::ExternalIps => format!(
            "it is {}'s {server} on an external IP, so the network must route it to {}'s nodes \
             (a VIP)",
            primary.name, primary.name
        ),
        _ => format!(
            "it is {}'s {server}: is it up, and does this machine reach it?",
            primary.name
        ),
    };
    IstiodReach { address, hint }
}

/// One entry of a Gateway API Gateway's `spec.addresses`.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayAddress {
    /// `IPAddress` or `Hostname`.
    pub r#type: &'static str,
    /// The address or DNS name.
    pub value: String,
}

/// A cluster whose API server another cluster's istiod watches.
#[derive(Debug, Serialize)]
pub struct Watched {
    /// Cluster name (the remote secret's `--name`).
    pub name: String,
    /// Its kubectl context.
    pub context: String,
    /// Its API server URL, when the plan gives one (`--server`).
    pub api_server: Option<String>,
    /// The name on its API server's certificate (`--tls-server-name`).
    pub tls_server_name: Option<String>,
}

/// Node locality labels to apply.
#[derive(Debug, Serialize)]
pub struct NodeLabels {
    /// Node name, or `None` for every node of the cluster (the cluster's default locality).
    pub node: Option<String>,
    /// `label=value` pairs, in a fixed order.
    pub labels: Vec<(String, String)>,
}

/// One cluster's bundle.
#[derive(Debug, Serialize)]
pub struct Cluster {
    /// Name (clusterName, remote-secret name).
    pub name: String,
    /// kubectl context.
    pub context: String,
    /// `primary` or `remote`.
    pub role: &'static str,
    /// Whether it runs istiod.
    pub is_primary: bool,
    /// Network ID.
    pub network: String,
    /// A remote's primary.
    pub primary: Option<String>,
    /// `topology.istio.io/controlPlaneClusters` on a remote.
    pub control_plane_clusters: Option<String>,
    /// Where a remote reaches istiod (the primary's `lb.istiod`, else its `lb.eastwest`).
    pub remote_pilot_address: Option<IpAddr>,
    /// A remote's install first tries istiod's address from the operator's machine.
    pub istiod_reach: Option<IstiodReach>,
    /// `istiodRemote.injectionPath` of a remote.
    pub injection_path: Option<String>,
    /// A primary serving remotes (`externalIstiod`).
    pub external_istiod: bool,
    /// `meshConfig.trustDomain`: the mesh's, or with `[mesh.trust]` the cluster's in the first
    /// phase.
    pub trust_domain: String,
    /// With `[mesh.trust]`: the Istio settings a primary's install files carry for every phase.
    pub trust: Option<IstioTrust>,
    /// The Helm chart installing istiod here: `istio/istiod`, or `istio/istiod-remote` for a
    /// remote before Istio 1.24 (from the plan's chart repository).
    pub helm_istiod_chart: String,
    /// East-west gateway with its pinned address.
    pub eastwest: Option<Pin>,
    /// Ingress gateway with its pinned address.
    pub ingress: Option<Pin>,
    /// The ingress gateway Service's ports (the Helm chart's values name them).
    pub ingress_ports: &'static [ServicePort],
    /// Istio's default ingress gateway stays in the control-plane IstioOperator (a primary
    /// with no planned ingress and no MetalLB pool it could take an address from unplanned).
    pub default_ingress: bool,
    /// istiod's own LoadBalancer Service (hosted control plane).
    pub istiod_lb: Option<Pin>,
    /// istiod exposed through the east-west gateway (Gateway + VirtualService on 15012/15017).
    pub expose_istiod: bool,
    /// The cross-network Gateway (15443, AUTO_PASSTHROUGH): config clusters of a multi-network mesh.
    pub cross_network_gateway: bool,
    /// Clusters this primary's istiod watches (remote secrets it needs).
    pub watches: Vec<Watched>,
    /// Locality labels.
    pub node_labels: Vec<NodeLabels>,
    /// MetalLB pool and advertisement.
    pub metallb: Option<networking::Metallb>,
    /// Static routes its nodes need.
    pub routes: Option<networking::Routes>,
    /// Its platform file.
    pub platform: Option<platform::Platform>,
    /// Its demo workloads.
    pub samples: Option<samples::Samples>,
    /// DestinationRules and cluster-local hosts its istiod reads (primaries only).
    pub services: services::ConfigFor,
    /// The phases of its `scripts/install.sh`, in order (`control-plane`, `gateways`, `samples`).
    pub phases: Vec<&'static str>,
    /// With a revision: the install step that points the default revision tag at it here
    /// ([`procedure::set_default_tag`]), which its samples need to be injected.
    pub default_tag_command: Option<Vec<String>>,
    /// Files in the bundle, relative to the cluster's directory, in apply order where it matters.
    pub files: Vec<String>,
    /// The kubectl-applicable files, in apply order (kustomization resources).
    pub kubectl_files: Vec<String>,
}

/// The Istio settings of `[mesh.trust]` in a primary's install files, the same in every phase.
#[derive(Debug, Serialize)]
pub struct IstioTrust {
    /// istiod's `ISTIO_MULTIROOT_MESH=true` and the proxies' `PROXY_CONFIG_XDS_AGENT=true`:
    /// some phase's bundle holds several roots or changes.
    pub multiroot: bool,
    /// `meshConfig.trustDomainAliases`.
    pub aliases: Vec<String>,
}

/// The trust settings of a primary's install files (none on a remote, which runs no istiod:
/// its proxies take `proxyMetadata` from their primary's istiod at injection).
fn istio_trust(plan: &Plan, is_primary: bool) -> Option<IstioTrust> {
    let trust = plan.trust.as_ref().filter(|_| is_primary)?;
    Some(IstioTrust {
        multiroot: trust.multiroot(),
        aliases: trust.aliases.clone(),
    })
}

/// Resolves a validated plan. `plan_file` names the plan in generated headers.
pub fn resolve(plan: &Plan, plan_file: &str) -> Mesh {
    let mut mesh = mesh(plan, plan_file);
    let mut memo = samples::VerifyMemo::for_plan(plan, &mesh.sample_services);
    mesh.clusters = plan
        .clusters
        .iter()
        .map(|c| cluster(plan, c, &mesh, &mut memo))
        .collect();
    let facts: Vec<procedure::ClusterFacts> = plan
        .clusters
        .iter()
        .zip(&mesh.clusters)
        .map(|(c, bundle)| procedure_facts(c, bundle))
        .collect();
    mesh.procedure = procedure::procedure(plan, &facts);
    mesh.doctor = doctor::doctor(plan, &mesh, &mesh.clusters);
    mesh.artifacts = artifacts::collect(
        plan,
        &mesh.clusters,
        mesh.procedure.preflight.istioctl_version.is_some(),
    );
    mesh.procedure.needs.hosts = procedure::hosts(
        &mesh.procedure.steps,
        &fetched_urls(&mesh),
        &image_registries(&mesh),
    );
    mesh
}

/// URLs the clusters' scripts fetch from the operator's machine, with why: Istio's chart
/// repository (Helm installs), the Gateway API CRDs (ambient), istioctl's archive (preflight.sh
/// names it), as in [`artifacts::collect`]. MetalLB's chart is fetched by a by-hand step,
/// which names it.
fn fetched_urls(mesh: &Mesh) -> Vec<(&str, &'static str)> {
    let mut urls = Vec::new();
    if let Some(charts) = &mesh.istio.charts {
        urls.push((
            charts.repository.as_deref().unwrap_or(charts.base.as_str()),
            "Istio's Helm charts",
        ));
    }
    if let Some(ambient) = &mesh.istio.ambient {
        urls.push((ambient.gateway_api_crds.as_str(), "the Gateway API CRDs"));
    }
    if mesh.procedure.preflight.istioctl_version.is_some() {
        urls.push((
            mesh.procedure.preflight.istioctl_from.as_str(),
            "istioctl, unless it is on PATH",
        ));
    }
    urls
}

/// The registries the clusters' nodes pull from: every image in [`artifacts::collect`] but
/// kind's node image (pulled where `kind create cluster` runs).
fn image_registries(mesh: &Mesh) -> Vec<(String, &'static str)> {
    let registry = |image: &str| image.split('/').next().unwrap_or(image).to_owned();
    let mut registries: Vec<(String, &'static str)> = Vec::new();
    for image in &mesh.artifacts.images {
        let why = match image.used_by {
            "kind" => continue,
            "samples" => "the sample workloads' images",
            "MetalLB" => "MetalLB's images",
            _ => "Istio's images",
        };
        let entry = (registry(&image.image), why);
        if !registries.contains(&entry) {
            registries.push(entry);
        }
    }
    // Istio's first, as the install pulls them first.
    registries.sort_by_key(|(_, why)| *why != "Istio's images");
    registries
}

/// The versions the verify script `file` of `bundle` expects, when the bundle has that script:
/// the bundle's list, shared (issue 28: 1,000 versions in each of 1,000 clusters).
fn expected(
    bundle: &Cluster,
    file: &str,
    expect: impl Fn(&samples::Samples) -> Option<&samples::Expect>,
) -> Option<std::sync::Arc<[String]>> {
    if !bundle.files.iter().any(|f| f == file) {
        return None;
    }
    let versions = bundle.samples.as_ref().and_then(expect);
    Some(versions.map_or_else(|| std::sync::Arc::from([]), |e| e.versions.clone()))
}

fn procedure_facts<'a>(c: &'a model::Cluster, bundle: &Cluster) -> procedure::ClusterFacts<'a> {
    let has = |file: &str| bundle.files.iter().any(|f| f == file);
    let pins = [
        ("eastwest", &bundle.eastwest),
        ("ingress", &bundle.ingress),
        ("istiod", &bundle.istiod_lb),
    ];
    let internal = |pin: &Pin| {
        pin.annotations
            .iter()
            .any(|(key, value)| key == GKE_LB_TYPE && value == "Internal")
    };
    procedure::ClusterFacts {
        plan: c,
        phases: bundle.phases.clone(),
        verify: expected(bundle, "scripts/verify.sh", |s| s.verify.as_ref()),
        verify_bookinfo: expected(bundle, "scripts/verify-bookinfo.sh", |s| {
            s.verify_bookinfo.as_ref()
        }),
        routes: has("scripts/routes.sh"),
        gke_firewall: has("platform/gke-firewall.sh"),
        external_ips: pins
            .iter()
            .filter_map(|(_, pin)| pin.as_ref())
            .flat_map(|pin| pin.external_ips.iter().copied())
            .collect(),
        internal_addresses: pins
            .iter()
            .filter_map(|(name, pin)| Some((*name, pin.as_ref()?)))
            .filter(|(_, pin)| internal(pin))
            .filter_map(|(name, pin)| Some((name, pin.load_balancer_ip?)))
            .collect(),
        istiod_address: bundle.remote_pilot_address,
    }
}

/// Resolves the mesh-wide part and the one cluster `name` only, as [`resolve`] would: what
/// `meshplan render --cluster` needs, without the cost of every other cluster's bundle
/// (routes and remote secrets grow with the mesh). `mesh.clusters` is left empty.
pub fn resolve_cluster(plan: &Plan, plan_file: &str, name: &str) -> (Mesh, Option<Cluster>) {
    let mesh = mesh(plan, plan_file);
    let cluster = plan
        .clusters
        .iter()
        .find(|c| c.name == name)
        .map(|c| cluster(plan, c, &mesh, &mut samples::VerifyMemo::default()));
    (mesh, cluster)
}

/// Everything but the clusters' bundles.
fn mesh(plan: &Plan, plan_file: &str) -> Mesh {
    let version = &plan.mesh.istio_version;
    let multi_network = used_networks(plan).len() > 1;
    Mesh {
        plan_file: plan_file.to_owned(),
        id: plan.mesh.id.clone(),
        trust_domain: plan.mesh.trust_domain.clone(),
        istio: istio_target(plan, version, multi_network),
        multi_network,
        // Ambient finds its east-west gateways by their network label (HBONE, 15008); the
        // sidecar-era meshNetworks entries would name 15443.
        mesh_networks: if multi_network && plan.mesh.dataplane == Dataplane::Sidecar {
            mesh_networks(plan)
        } else {
            Vec::new()
        },
        clusters: Vec::new(),
        procedure: procedure::Procedure::default(),
        gitops: plan.mesh.gitops.as_ref().map(|g| gitops(plan, g)),
        services: services::services(plan),
        artifacts: artifacts::Artifacts::default(),
        sample_services: traffic::sample_definitions(plan),
        doctor: doctor::Doctor::default(),
        trust: plan
            .trust
            .as_ref()
            .map(|trust| crate::trust::steps::procedure(plan, trust)),
    }
}

fn gitops(plan: &Plan, g: &model::Gitops) -> Gitops {
    let name = samples::dns_label(&format!("mesh-{}", plan.mesh.id));
    let dir = |cluster: &str| {
        if g.path == "." {
            cluster.to_owned()
        } else {
            format!("{}/{cluster}", g.path)
        }
    };
    Gitops {
        repository: g.repository.clone(),
        revision: g.revision.clone(),
        tool: g.tool,
        name: name.trim_end_matches('-').chars().take(50).collect(),
        clusters: plan
            .clusters
            .iter()
            .map(|c| (c.name.clone(), dir(&c.name)))
            .collect(),
    }
}

fn istio_target(plan: &Plan, version: &Version, multi_network: bool) -> IstioTarget {
    let mesh = &plan.mesh;
    IstioTarget {
        ambient: ambient(plan, multi_network),
        control_plane: control_plane(mesh.revision.as_deref()),
        tag: version.to_string(),
        hub: mesh.artifacts.hub.clone(),
        installer: match mesh.installer {
            Installer::Istioctl => "istioctl",
            Installer::Helm => "helm",
        },
        charts: istio_chart_source(plan).map(|source| IstioCharts {
            repository: source.repository.clone(),
            base: source.chart("base"),
            gateway: source.chart("gateway"),
            cni: source.chart("cni"),
            ztunnel: source.chart("ztunnel"),
        }),
        networking_api: if version.at_least(1, 22) {
            "networking.istio.io/v1"
        } else {
            "networking.istio.io/v1beta1"
        },
        global_external_istiod: version.at_least(1, 23),
        helm_remote_profile: version.at_least(1, 24),
    }
}

/// Networks with at least one cluster, in plan order.
fn used_networks(plan: &Plan) -> Vec<&str> {
    plan.networks
        .iter()
        .map(|n| n.id.as_str())
        .filter(|id| plan.clusters.iter().any(|c| c.network == *id))
        .collect()
}

fn mesh_networks(plan: &Plan) -> Vec<MeshNetwork> {
    used_networks(plan)
        .into_iter()
        .map(|id| {
            let members = plan.clusters.iter().filter(|c| c.network == id);
            MeshNetwork {
                id: id.to_owned(),
                registries: members.clone().map(|c| c.name.clone()).collect(),
                gateways: members.filter_map(network_gateway).collect(),
            }
        })
        .collect()
}

fn network_gateway(c: &model::Cluster) -> Option<NetworkGateway> {
    let address = eastwest_address(c)?;
    let port = match c.lb.via {
        LbVia::NodePort => c.lb.eastwest_node_port,
        _ => EASTWEST_PORT,
    };
    Some(NetworkGateway { address, port })
}

/// The east-west gateway's cross-network port.
const EASTWEST_PORT: u16 = 15443;

fn eastwest_address(c: &model::Cluster) -> Option<String> {
    c.lb.eastwest
        .map(|ip| ip.to_string())
        .or_else(|| c.lb.eastwest_hostname.clone())
}

/// How the cluster's Service for `address` gets it (see [`Pin`]).
/// A Service port and the container port it reaches.
#[derive(Debug, Serialize)]
pub struct ServicePort {
    pub name: &'static str,
    pub port: u16,
    pub target_port: u16,
}

/// The ingress gateway's HTTP port inside its pod: the bookinfo Gateway listens here.
pub const INGRESS_HTTP_TARGET_PORT: u16 = 8080;

/// The ingress gateway Service's ports as istioctl's default profile maps them: 80 and 443 to
/// the unprivileged 8080 and 8443 the gateway listens on. The Helm gateway chart's default maps
/// 80 to 80, where a Gateway on 8080 receives nothing, so the Helm values name these ports and
/// both installers expose the bookinfo Gateway on the ingress Service's port 80.
pub const INGRESS_PORTS: [ServicePort; 3] = [
    ServicePort {
        name: "status-port",
        port: 15021,
        target_port: 15021,
    },
    ServicePort {
        name: "http2",
        port: 80,
        target_port: INGRESS_HTTP_TARGET_PORT,
    },
    ServicePort {
        name: "https",
        port: 443,
        target_port: 8443,
    },
];

fn pin(plan: &Plan, cluster: &model::Cluster, address: String, object: &'static str) -> Pin {
    let eastwest = object == EASTWEST_SERVICE;
    let ip: Option<IpAddr> = address.parse().ok();
    let mut pin = Pin {
        address,
        service_type: "LoadBalancer",
        annotations: Vec::new(),
        load_balancer_ip: None,
        external_ips: Vec::new(),
        node_port: None,
        wait_object: object,
        gateway_addresses: Vec::new(),
        wait_for: None,
    };
    match cluster.lb.via {
        LbVia::Metallb => {
            pin.annotations
                .push((metallb_annotation(plan).to_owned(), pin.address.clone()));
            pin.wait_for = Some(Wait {
                jsonpath: LB_IP.to_owned(),
                planned: pin.address.clone(),
                any: false,
            });
        }
        LbVia::Cloud => {
            pin.annotations
                .extend(cluster.lb.annotations.iter().cloned());
            if cluster.platform == Platform::Gke && ip.is_some_and(is_private) {
                pin.annotations
                    .push((GKE_LB_TYPE.to_owned(), "Internal".to_owned()));
            }
            pin.load_balancer_ip = ip;
            pin.gateway_addresses.push(GatewayAddress {
                r#type: if ip.is_some() {
                    "IPAddress"
                } else {
                    "Hostname"
                },
                value: pin.address.clone(),
            });
            pin.wait_for = Some(Wait {
                jsonpath: if ip.is_some() { LB_IP } else { LB_HOSTNAME }.to_owned(),
                planned: pin.address.clone(),
                any: ip.is_none(),
            });
        }
        LbVia::ExternalIps => {
            // Nothing assigns a load balancer here; a LoadBalancer Service would stay <pending>.
            pin.service_type = "ClusterIP";
            pin.external_ips.extend(ip);
        }
        LbVia::NodePort => {
            pin.service_type = "NodePort";
            pin.node_port = eastwest.then_some(cluster.lb.eastwest_node_port);
        }
    }
    pin.annotations.sort();
    pin.annotations.dedup_by(|a, b| a.0 == b.0);
    pin
}

/// The east-west gateway's pin. In ambient istiod deploys it from a Gateway API Gateway, whose
/// status carries the address (its Service's name is istiod's to choose).
fn eastwest_pin(plan: &Plan, cluster: &model::Cluster, address: String) -> Pin {
    let mut pin = pin(plan, cluster, address, EASTWEST_SERVICE);
    if plan.mesh.dataplane == Dataplane::Ambient {
        pin.wait_object = "gateway/istio-eastwestgateway";
        if let Some(wait) = &mut pin.wait_for {
            wait.jsonpath = "{.status.addresses[0].value}".to_owned();
        }
    }
    pin
}

const EASTWEST_SERVICE: &str = "service/istio-eastwestgateway";
const LB_IP: &str = "{.status.loadBalancer.ingress[0].ip}";
const LB_HOSTNAME: &str = "{.status.loadBalancer.ingress[0].hostname}";
/// GKE creates an internal passthrough load balancer, the only kind that can take a private
/// address (cloud.google.com/kubernetes-engine/docs/concepts/service-load-balancer-parameters).
const GKE_LB_TYPE: &str = "networking.gke.io/load-balancer-type";

/// RFC 1918, shared (RFC 6598) and unique-local IPv6 addresses: not reachable from outside.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64),
        IpAddr::V6(v6) => v6.segments()[0] & 0xfe00 == 0xfc00,
    }
}

/// MetalLB annotation prefix by version: `metallb.io/` from 0.14.9.
fn metallb_annotation(plan: &Plan) -> &'static str {
    let v = &plan.mesh.metallb_version;
    if (v.major, v.minor, v.patch.unwrap_or(0)) >= crate::releases::METALLB_IO_ANNOTATIONS {
        "metallb.io/loadBalancerIPs"
    } else {
        "metallb.universe.tf/loadBalancerIPs"
    }
}

fn cluster(
    plan: &Plan,
    c: &model::Cluster,
    mesh: &Mesh,
    memo: &mut samples::VerifyMemo,
) -> Cluster {
    let multi_network = mesh.multi_network;
    let is_primary = c.role == Role::Primary;
    let ambient = plan.mesh.dataplane == Dataplane::Ambient;
    let primary = c
        .primary
        .as_ref()
        .and_then(|name| plan.clusters.iter().find(|p| &p.name == name));
    let serves_remotes = is_primary
        && plan
            .clusters
            .iter()
            .any(|r| r.primary.as_deref() == Some(&c.name));
    let expose_istiod = serves_remotes && c.lb.istiod.is_none() && eastwest_address(c).is_some();
    let metallb = networking::metallb(plan, c);
    // The ambient profile installs no ingress gateway.
    let default_ingress = is_primary
        && !ambient
        && plan.mesh.installer == Installer::Istioctl
        && c.lb.ingress.is_none()
        && metallb.is_none();
    let strict_arp = metallb.as_ref().is_some_and(|m| m.strict_arp);
    let mut bundle = Cluster {
        name: c.name.clone(),
        context: c.context.clone(),
        role: role_name(c.role),
        is_primary,
        network: c.network.clone(),
        primary: primary.map(|p| p.name.clone()),
        control_plane_clusters: primary.map(|p| p.name.clone()),
        remote_pilot_address: primary.and_then(|p| p.lb.istiod.or(p.lb.eastwest)),
        istiod_reach: primary.and_then(|p| Some(istiod_reach(p, p.lb.istiod.or(p.lb.eastwest)?))),
        injection_path: (!is_primary)
            .then(|| format!("/inject/cluster/{}/net/{}", c.name, c.network)),
        external_istiod: serves_remotes,
        trust_domain: plan
            .trust
            .as_ref()
            .and_then(|t| t.install_domain(&c.name))
            .unwrap_or(&plan.mesh.trust_domain)
            .to_owned(),
        trust: istio_trust(plan, is_primary),
        helm_istiod_chart: istio_chart_source(plan)
            .map(|source| {
                source.chart(if is_primary || plan.mesh.istio_version.at_least(1, 24) {
                    "istiod"
                } else {
                    "istiod-remote"
                })
            })
            .unwrap_or_default(),
        eastwest: eastwest_address(c).map(|address| eastwest_pin(plan, c, address)),
        ingress: c
            .lb
            .ingress
            .map(|ip| pin(plan, c, ip.to_string(), "service/istio-ingressgateway")),
        ingress_ports: if c.lb.ingress.is_some() {
            &INGRESS_PORTS
        } else {
            &[]
        },
        istiod_lb: c
            .lb
            .istiod
            .filter(|_| is_primary)
            .map(|ip| pin(plan, c, ip.to_string(), "service/istiod-lb")),
        expose_istiod,
        cross_network_gateway: is_primary && multi_network && !ambient,
        watches: if is_primary {
            watched_by(plan, c)
        } else {
            Vec::new()
        },
        node_labels: node_labels(c),
        metallb,
        routes: networking::routes(plan, c),
        platform: platform::platform(plan, c, strict_arp),
        default_ingress,
        samples: plan
            .clusters
            .iter()
            .position(|o| o.name == c.name)
            .and_then(|index| {
                samples::samples(
                    plan,
                    index,
                    default_ingress || c.lb.ingress.is_some(),
                    &mesh.sample_services,
                    memo,
                )
            }),
        services: services::config_for(&mesh.services, is_primary),
        phases: Vec::new(),
        default_tag_command: plan
            .mesh
            .revision
            .as_deref()
            .map(|revision| procedure::set_default_tag(c, revision).1),
        files: Vec::new(),
        kubectl_files: Vec::new(),
    };
    let has_gateways = bundle.eastwest.is_some()
        || bundle.ingress.is_some()
        || bundle.cross_network_gateway
        || bundle.expose_istiod;
    bundle.phases = procedure::phases(has_gateways, bundle.samples.is_some());
    bundle.kubectl_files = kubectl_files(&bundle, ambient);
    bundle.files = files(&bundle, plan.mesh.installer, ambient);
    bundle
}

/// Every primary watches every other cluster: with one primary those are its remotes; with
/// several (multi-primary), each must discover the others' endpoints too.
fn watched_by(plan: &Plan, primary: &model::Cluster) -> Vec<Watched> {
    plan.clusters
        .iter()
        .filter(|c| c.name != primary.name)
        .map(|c| Watched {
            name: c.name.clone(),
            context: c.context.clone(),
            api_server: c.api_server.clone(),
            tls_server_name: c.tls_server_name.clone(),
        })
        .collect()
}

const REGION: &str = "topology.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const SUBZONE: &str = "topology.istio.io/subzone";

fn locality_labels(l: &model::Locality) -> Vec<(String, String)> {
    [(REGION, &l.region), (ZONE, &l.zone), (SUBZONE, &l.subzone)]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value.clone()?)))
        .collect()
}

/// The cluster's default locality on every node, then each listed node's own where it differs.
fn node_labels(c: &model::Cluster) -> Vec<NodeLabels> {
    let default = locality_labels(&c.locality);
    let mut out = Vec::new();
    if !default.is_empty() {
        out.push(NodeLabels {
            node: None,
            labels: default.clone(),
        });
    }
    for node in &c.nodes {
        let own = locality_labels(&node.locality);
        if !own.is_empty() && own != default {
            out.push(NodeLabels {
                node: Some(node.name.clone()),
                labels: own,
            });
        }
    }
    out
}

fn kubectl_files(c: &Cluster, ambient: bool) -> Vec<String> {
    let mut files = vec!["namespace.yaml".to_owned()];
    if c.metallb.is_some() {
        files.push("metallb.yaml".to_owned());
    }
    if c.istiod_lb.is_some() {
        files.push("istiod-lb.yaml".to_owned());
    }
    if c.cross_network_gateway || c.expose_istiod {
        files.push("gateways.yaml".to_owned());
    }
    if ambient && c.eastwest.is_some() {
        files.push("eastwest-gateway.yaml".to_owned());
    }
    if !c.services.destination_rules.is_empty() {
        files.push("destination-rules.yaml".to_owned());
    }
    if c.samples.is_some() {
        files.push("samples.yaml".to_owned());
    }
    files
}

fn files(c: &Cluster, installer: Installer, ambient: bool) -> Vec<String> {
    let mut files = c.kubectl_files.clone();
    files.push("kustomization.yaml".to_owned());
    // Ambient's east-west gateway is a Gateway API object (`eastwest-gateway.yaml`, above).
    let sidecar_eastwest = c.eastwest.is_some() && !ambient;
    match installer {
        Installer::Istioctl => {
            files.push("istio/control-plane.yaml".to_owned());
            if sidecar_eastwest {
                files.push("istio/eastwest-gateway.yaml".to_owned());
            }
            if c.ingress.is_some() {
                files.push("istio/ingress-gateway.yaml".to_owned());
            }
        }
        Installer::Helm => {
            files.push("helm/base.yaml".to_owned());
            files.push("helm/istiod.yaml".to_owned());
            if ambient {
                files.push("helm/cni.yaml".to_owned());
                files.push("helm/ztunnel.yaml".to_owned());
            }
            if sidecar_eastwest {
                files.push("helm/eastwest-gateway.yaml".to_owned());
            }
            if c.ingress.is_some() {
                files.push("helm/ingress-gateway.yaml".to_owned());
            }
        }
    }
    files.push("scripts/install.sh".to_owned());
    files.push("scripts/cacerts.sh".to_owned());
    if !c.watches.is_empty() {
        files.push("scripts/remote-secrets.sh".to_owned());
    }
    if !c.node_labels.is_empty() {
        files.push("scripts/node-labels.sh".to_owned());
    }
    if c.routes.is_some() {
        files.push("scripts/routes.sh".to_owned());
        files.push("scripts/routes-undo.sh".to_owned());
    }
    if c.samples.as_ref().is_some_and(|s| s.verify.is_some()) {
        files.push("scripts/verify.sh".to_owned());
    }
    if c.samples
        .as_ref()
        .is_some_and(|s| s.verify_bookinfo.is_some())
    {
        files.push("scripts/verify-bookinfo.sh".to_owned());
    }
    if let Some(platform) = &c.platform {
        files.push(platform.file().to_owned());
    }
    files
}

/// Cluster bundles by name, for lookups.
pub fn by_name(mesh: &Mesh) -> BTreeMap<&str, &Cluster> {
    mesh.clusters.iter().map(|c| (c.name.as_str(), c)).collect()
}

/// `primary` or `remote`.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Remote => "remote",
    }
}

/// `none` or `static`.
pub fn routing_name(routing: crate::raw::Routing) -> &'static str {
    match routing {
        crate::raw::Routing::None => "none",
        crate::raw::Routing::Static => "static",
    }
}

/// `l2` or `bgp`.
pub fn metallb_mode_name(mode: crate::raw::MetallbMode) -> &'static str {
    match mode {
        crate::raw::MetallbMode::L2 => "l2",
        crate::raw::MetallbMode::Bgp => "bgp",
    }
}
