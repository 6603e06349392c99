//! The install procedure: every step of installing the mesh, in order, derived once.
//!
//! `install.sh` runs the steps it can and prints the ones it cannot (on nodes, in a cloud
//! console); `preflight.sh` checks what can be checked before anything is changed; the tree's
//! README.md lists the same steps under "Install order". All three render this one list, so
//! they cannot disagree. Steps done by hand elsewhere (a VIP on the network, a cloud address
//! reservation) are steps too: what the install depends on is in the order, not only in the
//! plan's comments. [`Needs`] is what a fresh shell needs before any step: the README's
//! "Before you start".
//!
//! The order is Istio's for primary-remote and multi-primary meshes: every primary's control
//! plane and gateways; the primaries watch each other; then each remote's control plane, then
//! attaching it (its remote secret on every primary), and only then anything on the remote
//! that needs a sidecar or the mesh's root certificate (its gateways, its samples): until its
//! primary's istiod watches it, the remote's injection webhook has no CA bundle and
//! `istio-ca-root-cert` does not exist there.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::{self, Plan, Version};
use crate::raw::{Dataplane, Installer, Platform, Role};

/// The procedure and the checks that come before it.
#[derive(Debug, Default, Serialize)]
pub struct Procedure {
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// What `preflight.sh` checks.
    pub preflight: Preflight,
    /// Every cluster, as `verify-trust.sh` asks it for its root.
    pub members: Vec<Member>,
    /// What the operator's shell needs before the first step.
    pub needs: Needs,
}

/// What a fresh shell needs to run `install.sh`: the README's "Before you start".
#[derive(Debug, Default, Clone, Serialize)]
pub struct Needs {
    /// Every kubectl context the scripts use, each once.
    pub contexts: Vec<String>,
    /// Programs on PATH, each with the versions that work and what uses it.
    pub tools: Vec<Need>,
    /// The environment variables the scripts read.
    pub variables: Vec<Need>,
    /// Hosts the install fetches from (the operator's machine, or the clusters' nodes).
    pub hosts: Vec<Need>,
}

/// One need: a name and what it is for.
#[derive(Debug, Clone, Serialize)]
pub struct Need {
    /// Program, variable or host.
    pub name: String,
    /// Versions, default, or why.
    pub what: String,
}

impl Need {
    fn new(name: impl Into<String>, what: impl Into<String>) -> Need {
        Need {
            name: name.into(),
            what: what.into(),
        }
    }
}

/// A cluster of the mesh, as the mesh-wide scripts address it.
#[derive(Debug, Serialize)]
pub struct Member {
    /// Cluster name.
    pub name: String,
    /// Its kubectl context.
    pub context: String,
    /// `primary` or `remote`.
    pub role: &'static str,
}

/// One step of the install.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Position in the procedure, from 1.
    pub number: usize,
    /// The cluster it acts on, if one.
    pub cluster: Option<String>,
    /// What it does, for people.
    pub title: String,
    /// The commands, each as words, run from the tree's root.
    pub commands: Vec<Vec<String>>,
    /// Done by the operator elsewhere (on each node, with a package manager): `install.sh`
    /// prints it instead of running it.
    pub by_hand: bool,
    /// A check of the installed mesh (it needs running pods): `MESHPLAN_SKIP_VERIFY=1` skips it
    /// in dry environments such as API servers without nodes.
    pub verify: bool,
}

/// What `preflight.sh` checks before `install.sh` changes anything.
#[derive(Debug, Default, Serialize)]
pub struct Preflight {
    /// The istioctl version the plan targets, when any step runs istioctl: istioctl renders
    /// its own built-in charts, so `tag` alone would mix versions.
    pub istioctl_version: Option<String>,
    /// Whether helm installs Istio.
    pub helm: bool,
    /// Whether a step runs gcloud.
    pub gcloud: bool,
    /// The oldest kubectl minor version the scripts work with (`wait --for=jsonpath`).
    pub kubectl_min_minor: u64,
    /// Every kubectl context the scripts use, each once.
    pub contexts: Vec<String>,
    /// Clusters whose CA files must be in `$CERTS_DIR/<cluster>/`.
    pub certs: Vec<String>,
    /// Clusters that need MetalLB installed first.
    pub metallb: Vec<MetallbCheck>,
    /// Where istioctl archives of the targeted version lie (`[mesh.artifacts] istioctl`).
    pub istioctl_from: String,
    /// The Kubernetes releases the targeted Istio supports, and the contexts to ask (`None`
    /// when the release table does not know the Istio minor).
    pub kubernetes: Option<KubernetesCheck>,
    /// GKE network tags a node must carry (the firewall rule's targets).
    pub gke_tags: Vec<GkeCheck>,
    /// GKE internal load-balancer addresses that should be reserved.
    pub gke_addresses: Vec<GkeCheck>,
}

/// Every cluster's API server must run a Kubernetes the targeted Istio supports.
#[derive(Debug, Serialize)]
pub struct KubernetesCheck {
    /// The Istio minor, `1.24`.
    pub istio: String,
    /// The oldest supported Kubernetes minor (`1.x`).
    pub oldest: u64,
    /// The newest supported Kubernetes minor (`1.x`).
    pub newest: u64,
}

/// One GKE look-up: a network tag or an address in a project.
#[derive(Debug, Serialize)]
pub struct GkeCheck {
    /// Cluster name.
    pub cluster: String,
    /// `--project`, when the plan names one (else gcloud's configured project).
    pub project: Option<String>,
    /// The tag or the address.
    pub value: String,
}

/// MetalLB must be installed in a cluster before its pools are applied.
#[derive(Debug, Serialize)]
pub struct MetallbCheck {
    /// Cluster name.
    pub cluster: String,
    /// Its context.
    pub context: String,
}

/// The oldest kubectl the scripts are tested with (tests/install_trace.rs runs every install
/// against a kubectl that behaves as 1.25 does). The scripts poll for load-balancer addresses
/// instead of `kubectl wait --for=jsonpath=`, which before 1.26 fails at once on a field that
/// does not exist yet (kubernetes/kubectl#1236); nothing else they run is newer than 1.22
/// (`apply --server-side`).
pub const KUBECTL_MIN_MINOR: u64 = 25;

/// The oldest bash every generated script runs on (macOS's /bin/bash): tests/compile.rs refuses
/// anything newer in any generated script, and MESHPLAN_OLD_BASH runs them under real ones.
pub const BASH_MIN: &str = "3.2";

/// Where a remote reaches its primary's istiod: xDS and certificates, and the webhooks.
pub const ISTIOD_PORTS: [u16; 2] = [15012, 15017];

/// The phases of a cluster's own `scripts/install.sh`, in order.
pub fn phases(has_gateways: bool, has_samples: bool) -> Vec<&'static str> {
    let mut phases = vec!["control-plane"];
    if has_gateways {
        phases.push("gateways");
    }
    if has_samples {
        phases.push("samples");
    }
    phases
}

/// The phase of a cluster's `scripts/install.sh` that applies `file` (a path in the cluster's
/// bundle), or `None` for files no phase applies (scripts run by hand, platform files, the
/// verify scripts). The install.sh template applies each file in exactly this phase; a test
/// reads every generated install.sh to hold the two together.
pub fn phase_of(file: &str) -> Option<&'static str> {
    match file {
        "namespace.yaml"
        | "metallb.yaml"
        | "istiod-lb.yaml"
        | "destination-rules.yaml"
        | "istio/control-plane.yaml"
        | "helm/base.yaml"
        | "helm/istiod.yaml"
        | "helm/cni.yaml"
        | "helm/ztunnel.yaml"
        | "scripts/cacerts.sh"
        | "scripts/node-labels.sh" => Some("control-plane"),
        "gateways.yaml"
        | "eastwest-gateway.yaml"
        | "istio/eastwest-gateway.yaml"
        | "istio/ingress-gateway.yaml"
        | "helm/eastwest-gateway.yaml"
        | "helm/ingress-gateway.yaml" => Some("gateways"),
        "samples.yaml" => Some("samples"),
        _ => None,
    }
}

/// What the procedure needs to know of a resolved cluster.
pub struct ClusterFacts<'a> {
    /// The plan's cluster.
    pub plan: &'a model::Cluster,
    /// Its install phases.
    pub phases: Vec<&'static str>,
    /// The helloworld versions `scripts/verify.sh` expects, when it writes that script.
    pub verify: Option<std::sync::Arc<[String]>>,
    /// The reviews versions `scripts/verify-bookinfo.sh` expects, when it writes that script.
    pub verify_bookinfo: Option<std::sync::Arc<[String]>>,
    /// Whether it writes `scripts/routes.sh`.
    pub routes: bool,
    /// Whether it writes `platform/gke-firewall.sh`.
    pub gke_firewall: bool,
    /// Addresses its Services take as `externalIPs`: the network must route them to its nodes.
    pub external_ips: Vec<IpAddr>,
    /// Addresses GKE's internal load balancer serves for it (reserved in the VPC's subnet),
    /// with the Service they are for.
    pub internal_addresses: Vec<(&'static str, IpAddr)>,
    /// Where a remote reaches its primary's istiod.
    pub istiod_address: Option<IpAddr>,
}

/// Derives the procedure.
pub fn procedure(plan: &Plan, clusters: &[ClusterFacts]) -> Procedure {
    let mut steps = Steps::default();
    prerequisites(&mut steps, plan, clusters);
    let primaries: Vec<&ClusterFacts> = clusters
        .iter()
        .filter(|c| c.plan.role == Role::Primary)
        .collect();
    let revision = plan.mesh.revision.as_deref();
    let names = super::control_plane(revision);
    let control_plane = match (plan.mesh.dataplane, revision) {
        (Dataplane::Sidecar, None) => "control plane: namespace, CA, istiod".to_owned(),
        (Dataplane::Sidecar, Some(revision)) => format!(
            "control plane: namespace, CA, {} (revision {revision})",
            names.istiod
        ),
        // A revision on an ambient plan is refused (`version::revision_ambient`).
        (Dataplane::Ambient, _) => {
            "control plane: namespace, CA, Gateway API CRDs, istiod, istio-cni, ztunnel".to_owned()
        }
    };
    let remote_profile = match revision {
        None => "the remote profile (webhook pointing at its primary)".to_owned(),
        Some(revision) => format!(
            "the remote profile of revision {revision} (webhook, and Service {} pointing at its \
             primary)",
            names.istiod
        ),
    };
    for c in &primaries {
        steps.run_phase(c, "control-plane", &control_plane);
        if let Some(revision) = revision {
            steps.set_default_tag(c.plan, revision);
        }
        steps.run_phase(c, "gateways", "gateways");
    }
    for watcher in &primaries {
        for watched in primaries
            .iter()
            .filter(|p| p.plan.name != watcher.plan.name)
        {
            steps.attach(watcher.plan, watched.plan);
        }
    }
    for remote in clusters.iter().filter(|c| c.plan.role == Role::Remote) {
        let what = match remote.istiod_address {
            Some(address) => format!(
                "control plane: istiod's address {address} answers on ports 15012 and 15017 \
                 from here, then namespace, CA, {remote_profile}"
            ),
            None => format!("control plane: namespace, CA, {remote_profile}"),
        };
        steps.run_phase(remote, "control-plane", &what);
        // Its own primary first: that is the istiod that injects its pods.
        let mut watchers = primaries.clone();
        watchers.sort_by_key(|p| remote.plan.primary.as_deref() != Some(p.plan.name.as_str()));
        for watcher in watchers {
            steps.attach(watcher.plan, remote.plan);
        }
        if let Some(revision) = revision {
            steps.set_default_tag(remote.plan, revision);
        }
        steps.run_phase(
            remote,
            "gateways",
            "gateways, once its primary's istiod has attached it",
        );
    }
    for c in clusters {
        steps.run_phase(c, "samples", "sample workloads");
    }
    steps.verify(
        None,
        "every cluster's cacerts Secret and istio-ca-root-cert carry the mesh's one root"
            .to_owned(),
        words(&["bash", "verify-trust.sh"]),
    );
    for c in clusters {
        verify(&mut steps, c);
    }
    let preflight = preflight(plan, clusters);
    let needs = needs(plan, &steps.0, &preflight);
    Procedure {
        steps: steps.0,
        preflight,
        needs,
        members: plan
            .clusters
            .iter()
            .map(|c| Member {
                name: c.name.clone(),
                context: c.context.clone(),
                role: super::role_name(c.role),
            })
            .collect(),
    }
}

#[derive(Default)]
struct Steps(Vec<Step>);

impl Steps {
    fn push(
        &mut self,
        cluster: Option<&str>,
        title: String,
        commands: Vec<Vec<String>>,
        by_hand: bool,
    ) {
        self.0.push(Step {
            number: self.0.len() + 1,
            cluster: cluster.map(str::to_owned),
            title,
            commands,
            by_hand,
            verify: false,
        });
    }

    /// A check of the installed mesh, run last.
    fn verify(&mut self, cluster: Option<&str>, title: String, command: Vec<String>) {
        self.push(cluster, title, vec![command], false);
        if let Some(step) = self.0.last_mut() {
            step.verify = true;
        }
    }

    fn run(&mut self, cluster: &str, title: String, command: Vec<String>) {
        self.push(Some(cluster), title, vec![command], false);
    }

    fn run_phase(&mut self, c: &ClusterFacts, phase: &str, what: &str) {
        if c.phases.contains(&phase) {
            let name = &c.plan.name;
            self.run(
                name,
                format!("{name}: {what}"),
                words(&["bash", &format!("{name}/scripts/install.sh"), phase]),
            );
        }
    }

    /// The default revision tag pointed at `revision` on `cluster`: see [`set_default_tag`].
    fn set_default_tag(&mut self, cluster: &model::Cluster, revision: &str) {
        let (title, command) = set_default_tag(cluster, revision);
        self.run(&cluster.name, title, command);
    }

    fn attach(&mut self, watcher: &model::Cluster, watched: &model::Cluster) {
        let title = format!(
            "{}: istiod watches {} (remote secret)",
            watcher.name, watched.name
        );
        let script = format!("{}/scripts/remote-secrets.sh", watcher.name);
        self.run(
            &watcher.name,
            title,
            words(&["bash", &script, &watched.name]),
        );
    }
}

/// The step that points the default revision tag at `revision` on `cluster`: its title and
/// command. Namespaces keep `istio-injection: enabled`; the tag's webhook
/// (`istio-revision-tag-default`) serves them, and istioctl makes it from the revision's own
/// webhook (a Service on a primary, the revisioned `istiod-<revision>` Service pointing at the
/// primary on a remote), deactivating a non-revisioned `istio-sidecar-injector`
/// (istio/istio `istioctl/pkg/tag/generate.go`). Moving a mesh to another revision is this same
/// command, cluster by cluster; `--overwrite` makes it safe to run again.
pub fn set_default_tag(cluster: &model::Cluster, revision: &str) -> (String, Vec<String>) {
    let name = &cluster.name;
    let istiod = super::control_plane(Some(revision)).istiod;
    let served_by = match cluster.role {
        Role::Primary => format!("its {istiod}"),
        Role::Remote => format!(
            "{}'s {istiod}",
            cluster.primary.as_deref().unwrap_or("its primary")
        ),
    };
    let title = format!(
        "{name}: the default revision tag points at revision {revision}, so that namespaces \
         labelled istio-injection: enabled are injected by {served_by}"
    );
    let mut command = words(&["istioctl", "tag", "set", super::DEFAULT_TAG, "--revision"]);
    command.push(revision.to_owned());
    command.extend(words(&["--overwrite", "-y", "--context"]));
    command.push(cluster.context.clone());
    (title, command)
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// `--project P`, when the plan names the project.
fn project_words(gke: &model::Gke) -> Vec<String> {
    gke.project
        .as_ref()
        .map(|p| vec!["--project".to_owned(), p.clone()])
        .unwrap_or_default()
}

/// The cluster's GCP region: its planned region, else its zone's (`us-east1-b` → `us-east1`).
fn gcp_region(c: &model::Cluster) -> String {
    let zone = c.gke.as_ref().and_then(|g| g.zone.as_ref());
    c.locality
        .region
        .clone()
        .or_else(|| {
            zone.and_then(|z| z.rsplit_once('-'))
                .map(|(r, _)| r.to_owned())
        })
        .unwrap_or_else(|| "REGION".to_owned())
}

/// Addresses that the network, not Kubernetes, brings to the cluster's nodes: a VIP routed to
/// them (ICP's proxy VIP, keepalived). Nothing in the cluster can check it before the gateway
/// exists; remotes' istiod address is checked when they are installed.
fn external_ip_steps(steps: &mut Steps, clusters: &[ClusterFacts]) {
    for c in clusters.iter().filter(|c| !c.external_ips.is_empty()) {
        let name = &c.plan.name;
        let addresses: Vec<String> = c.external_ips.iter().map(ToString::to_string).collect();
        let remotes: Vec<&str> = clusters
            .iter()
            .filter(|r| {
                r.istiod_address
                    .is_some_and(|a| c.external_ips.contains(&a))
            })
            .map(|r| r.plan.name.as_str())
            .collect();
        let mut title = format!(
            "{name}: make {} a VIP that the network routes to {name}'s nodes (a proxy VIP such \
             as ICP's, keepalived or a static route): its gateway takes it as an external IP, which \
             kube-proxy answers on any node",
            addresses.join(", ")
        );
        match remotes.as_slice() {
            [] => {}
            [remote] => title.push_str(&format!(
                "; {remote} reaches istiod there: install.sh checks that it answers on ports \
                 15012 and 15017 before {remote}'s control plane"
            )),
            _ => title.push_str(&format!(
                "; {} reach istiod there: install.sh checks that it answers on ports 15012 and \
                 15017 before each one's control plane",
                remotes.join(", ")
            )),
        }
        steps.push(Some(name), title, Vec::new(), true);
    }
}

/// GKE: the firewall rule targets network tags the plan names (GKE generates them per node
/// pool), and internal load-balancer addresses are best reserved so nothing else takes them.
fn gke_steps(steps: &mut Steps, clusters: &[ClusterFacts]) {
    for c in clusters.iter().filter(|c| c.gke_firewall) {
        let Some(gke) = &c.plan.gke else { continue };
        let name = &c.plan.name;
        let mut list = words(&["gcloud", "compute", "instances", "list"]);
        list.extend(project_words(gke));
        list.push("--format=value(name,tags.items)".to_owned());
        steps.push(
            Some(name),
            format!(
                "{name}: target_tags {} must be network tags of its nodes (GKE makes them per \
                 node pool; read them as here); preflight.sh checks that a node carries each",
                gke.target_tags.join(", ")
            ),
            vec![list],
            true,
        );
    }
    for c in clusters.iter().filter(|c| !c.internal_addresses.is_empty()) {
        let Some(gke) = &c.plan.gke else { continue };
        let name = &c.plan.name;
        let region = gcp_region(c.plan);
        let commands = c
            .internal_addresses
            .iter()
            .map(|(service, address)| {
                let mut create = words(&["gcloud", "compute", "addresses", "create"]);
                create.push(format!("{name}-{service}"));
                create.extend(project_words(gke));
                create.extend(words(&["--region", &region, "--subnet", "SUBNET"]));
                create.extend(words(&["--addresses", &address.to_string()]));
                create
            })
            .collect();
        steps.push(
            Some(name),
            format!(
                "{name}: reserve its internal load-balancer addresses in the subnet of VPC {} \
                 that its nodes use (SUBNET), so that nothing else takes them; preflight.sh \
                 notes any that is not reserved",
                gke.vpc
            ),
            commands,
            true,
        );
    }
}

fn prerequisites(steps: &mut Steps, plan: &Plan, clusters: &[ClusterFacts]) {
    steps.push(
        None,
        "make the mesh's CA files (one root, one intermediate per cluster) outside this tree, and \
         point CERTS_DIR at them"
            .to_owned(),
        vec![
            words(&["meshplan", "certs", "PLAN.toml", "--out", "DIR"]),
            words(&["export", "CERTS_DIR=DIR"]),
        ],
        true,
    );
    for c in clusters.iter().filter(|c| c.plan.metallb.is_some()) {
        let p = c.plan;
        let release = super::artifacts::metallb_release(plan);
        steps.push(
            Some(&p.name),
            format!(
                "{}: install MetalLB {} into namespace {} (Helm as here, or its manifest); \
                 preflight.sh checks its CRDs",
                p.name,
                release.as_ref().unwrap_or(&plan.mesh.metallb_version),
                plan.mesh.metallb_namespace
            ),
            metallb_install(plan, &p.context, release.as_ref()),
            true,
        );
    }
    external_ip_steps(steps, clusters);
    gke_steps(steps, clusters);
    for c in clusters.iter().filter(|c| c.routes) {
        let nodes: Vec<String> = c
            .plan
            .nodes
            .iter()
            .filter_map(|n| n.ip.map(|ip| format!("{} {ip}", n.name)))
            .collect();
        steps.push(
            Some(&c.plan.name),
            format!(
                "{}: on each of its nodes ({}), as root: the routes to the other clusters' pods",
                c.plan.name,
                nodes.join(", ")
            ),
            vec![words(&[
                "bash",
                &format!("{}/scripts/routes.sh", c.plan.name),
            ])],
            true,
        );
    }
    steps.push(
        None,
        preflight_title(clusters),
        vec![words(&["bash", "preflight.sh"])],
        false,
    );
    for c in clusters.iter().filter(|c| c.gke_firewall) {
        let name = &c.plan.name;
        steps.run(
            name,
            format!("{name}: GKE firewall rule admitting the other clusters' pods"),
            words(&["bash", &format!("{name}/platform/gke-firewall.sh")]),
        );
    }
}

/// `helm repo add` (an HTTP repository) and `helm upgrade --install` of MetalLB's chart, from
/// the plan's repository, pinned to its release, with its images from the plan's hub.
fn metallb_install(plan: &Plan, context: &str, release: Option<&Version>) -> Vec<Vec<String>> {
    let artifacts = &plan.mesh.artifacts;
    let source = super::artifacts::ChartSource::new(&artifacts.metallb_charts, "metallb");
    let mut commands = Vec::new();
    if let Some(repository) = &source.repository {
        commands.push(words(&["helm", "repo", "add", "metallb", repository]));
    }
    let mut install = words(&["helm", "upgrade", "--install", "metallb"]);
    install.push(source.chart("metallb"));
    install.push("--namespace".to_owned());
    install.push(plan.mesh.metallb_namespace.clone());
    install.extend(words(&["--create-namespace", "--kube-context", context]));
    if let Some(release) = release {
        install.extend(words(&["--version", &release.to_string()]));
    }
    if artifacts.metallb_hub != crate::model::DEFAULT_METALLB_HUB {
        for image in ["controller", "speaker"] {
            install.push("--set".to_owned());
            install.push(format!(
                "{image}.image.repository={}/{image}",
                artifacts.metallb_hub
            ));
        }
    }
    commands.push(install);
    commands
}

/// What preflight.sh checks, as the step's title says it.
fn preflight_title(clusters: &[ClusterFacts]) -> String {
    let mut checks = vec!["tools", "versions", "contexts", "CA files"];
    if clusters.iter().any(|c| c.plan.metallb.is_some()) {
        checks.push("MetalLB");
    }
    if clusters.iter().any(|c| c.gke_firewall) {
        checks.push("GKE network tags");
    }
    if clusters.iter().any(|c| !c.internal_addresses.is_empty()) {
        checks.push("reserved addresses");
    }
    let last = checks.pop().unwrap_or_default();
    if checks.is_empty() {
        format!("check {last}")
    } else {
        format!("check {} and {last}", checks.join(", "))
    }
}

fn verify(steps: &mut Steps, c: &ClusterFacts) {
    let name = &c.plan.name;
    if let Some(versions) = &c.verify {
        steps.verify(
            Some(name),
            format!(
                "{name}: helloworld answers from {} (first traffic tier)",
                versions_text(versions)
            ),
            words(&["bash", &format!("{name}/scripts/verify.sh")]),
        );
    }
    if let Some(versions) = &c.verify_bookinfo {
        steps.verify(
            Some(name),
            format!(
                "{name}: productpage through the ingress shows reviews {} (first traffic tier)",
                versions_text(versions)
            ),
            words(&["bash", &format!("{name}/scripts/verify-bookinfo.sh")]),
        );
    }
}

/// `v1`, `v1 and v2`, `v1, v2 and v3`.
fn versions_text(versions: &[String]) -> String {
    match versions.split_last() {
        None => "no version".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

fn preflight(plan: &Plan, clusters: &[ClusterFacts]) -> Preflight {
    let mut contexts: Vec<String> = Vec::new();
    for c in &plan.clusters {
        if !contexts.contains(&c.context) {
            contexts.push(c.context.clone());
        }
    }
    let remote_secrets = plan.clusters.len() > 1;
    // A revision's default tag is set with istioctl, whatever installs Istio.
    let istioctl = plan.mesh.installer == Installer::Istioctl
        || remote_secrets
        || plan.mesh.revision.is_some();
    Preflight {
        istioctl_version: istioctl.then(|| plan.mesh.istio_version.to_string()),
        helm: plan.mesh.installer == Installer::Helm,
        gcloud: clusters.iter().any(|c| c.gke_firewall),
        kubectl_min_minor: KUBECTL_MIN_MINOR,
        contexts,
        certs: plan.clusters.iter().map(|c| c.name.clone()).collect(),
        metallb: plan
            .clusters
            .iter()
            .filter(|c| c.metallb.is_some())
            .map(|c| MetallbCheck {
                cluster: c.name.clone(),
                context: c.context.clone(),
            })
            .collect(),
        istioctl_from: format!(
            "{}/{}/",
            plan.mesh.artifacts.istioctl, plan.mesh.istio_version
        ),
        kubernetes: crate::releases::istio(&plan.mesh.istio_version).map(|release| {
            KubernetesCheck {
                istio: format!("{}.{}", release.minor.0, release.minor.1),
                oldest: release.kubernetes.0,
                newest: release.kubernetes.1,
            }
        }),
        gke_tags: clusters
            .iter()
            .filter(|c| c.gke_firewall)
            .flat_map(|c| {
                let gke = c.plan.gke.as_ref();
                let tags = gke.map(|g| g.target_tags.clone()).unwrap_or_default();
                tags.into_iter().map(move |tag| GkeCheck {
                    cluster: c.plan.name.clone(),
                    project: gke.and_then(|g| g.project.clone()),
                    value: tag,
                })
            })
            .collect(),
        gke_addresses: clusters
            .iter()
            .flat_map(|c| {
                let project = c.plan.gke.as_ref().and_then(|g| g.project.clone());
                c.internal_addresses
                    .iter()
                    .map(move |(_, address)| GkeCheck {
                        cluster: c.plan.name.clone(),
                        project: project.clone(),
                        value: address.to_string(),
                    })
            })
            .collect(),
    }
}

/// What a fresh shell needs, derived from what the steps run.
fn needs(plan: &Plan, steps: &[Step], preflight: &Preflight) -> Needs {
    let mut tools = vec![
        Need::new(
            "bash",
            format!("{BASH_MIN} or later (macOS's /bin/bash is enough)"),
        ),
        Need::new(
            "kubectl",
            format!("1.{} or later", preflight.kubectl_min_minor),
        ),
    ];
    if let Some(version) = &preflight.istioctl_version {
        tools.push(Need::new(
            "istioctl",
            format!("exactly {version}: it installs from its own built-in charts"),
        ));
    }
    let helm_by_hand = steps.iter().any(|s| {
        s.by_hand
            && s.commands
                .iter()
                .any(|c| c.first().is_some_and(|w| w == "helm"))
    });
    if preflight.helm || helm_by_hand {
        let why = if preflight.helm {
            "installs Istio's charts"
        } else {
            "installs MetalLB, by hand"
        };
        tools.push(Need::new("helm", format!("3.x: {why}")));
    }
    if preflight.gcloud || !preflight.gke_tags.is_empty() {
        tools.push(Need::new(
            "gcloud",
            "the GKE firewall rules, network tags and addresses",
        ));
    }
    tools.push(Need::new(
        "base64, sha256sum (or shasum)",
        "verify-trust.sh compares the clusters' roots",
    ));
    let mut variables = vec![
        Need::new(
            "CERTS_DIR",
            "required: the directory `meshplan certs` made, outside this tree; a relative path \
             is taken from the directory install.sh is run from",
        ),
        Need::new(
            "MESHPLAN_WAIT_TIMEOUT",
            "default 5m: how long each wait lasts (an address, a webhook, a remote attached, \
             the samples), as kubectl durations: 300s, 5m, 1h30m",
        ),
        Need::new(
            "MESHPLAN_SKIP_VERIFY",
            "1 skips every check of the running mesh (it needs pods): the verify steps, and \
             whether a remote's istiod address answers; for API servers without nodes",
        ),
        Need::new(
            "MESHPLAN_SKIP_REMOTE_CLUSTERS",
            "1 keeps doctor.sh from asking each primary's istiod, through `istioctl \
             remote-clusters`, which clusters it has synced (it needs an istiod pod)",
        ),
        Need::new(
            "MESHPLAN_SKIP_VERSION_CHECK",
            "1 lets preflight.sh accept another istioctl than the plan's",
        ),
    ];
    if plan.clusters.iter().any(|c| c.role == Role::Remote) {
        variables.push(Need::new(
            "MESHPLAN_SKIP_REACHABILITY",
            "1 skips the check that a remote's istiod address answers on 15012 and 15017 from \
             this machine, where it is outside the clusters' network",
        ));
    }
    Needs {
        contexts: preflight.contexts.clone(),
        tools,
        variables,
        hosts: Vec::new(),
    }
}

/// The host of an `https://`, `http://` or `oci://` URL.
pub fn url_host(word: &str) -> Option<&str> {
    let rest = ["https://", "http://", "oci://"]
        .iter()
        .find_map(|scheme| word.strip_prefix(scheme))?;
    rest.split(['/', ':']).next().filter(|h| !h.is_empty())
}

/// Hosts the install fetches from: URLs the steps name, and those the clusters' scripts fetch
/// (`urls`, with why), then the registries the nodes pull images from.
pub fn hosts(steps: &[Step], urls: &[(&str, &str)], registries: &[(String, &str)]) -> Vec<Need> {
    // (host, from where, why...), in the order first named.
    let mut hosts: Vec<(String, &str, Vec<String>)> = Vec::new();
    let mut add = |host: &str, from: &'static str, why: String| {
        let at = hosts.iter().position(|(h, f, _)| h == host && *f == from);
        match at {
            Some(at) if hosts[at].2.contains(&why) => {}
            Some(at) => hosts[at].2.push(why),
            None => hosts.push((host.to_owned(), from, vec![why])),
        }
    };
    for (url, why) in urls {
        if let Some(host) = url_host(url) {
            add(host, "this machine", (*why).to_owned());
        }
    }
    let mut by_hand: Vec<(&str, Vec<String>)> = Vec::new();
    for step in steps {
        for host in step.commands.iter().flatten().filter_map(|w| url_host(w)) {
            let number = step.number.to_string();
            match by_hand.iter_mut().find(|(h, _)| *h == host) {
                Some((_, numbers)) if numbers.contains(&number) => {}
                Some((_, numbers)) => numbers.push(number),
                None => by_hand.push((host, vec![number])),
            }
        }
    }
    for (host, numbers) in by_hand {
        let steps = if numbers.len() == 1 { "step" } else { "steps" };
        add(
            host,
            "this machine",
            format!("{steps} {}", numbers.join(", ")),
        );
    }
    for (registry, why) in registries {
        add(registry, "the clusters' nodes", (*why).to_owned());
    }
    hosts
        .into_iter()
        .map(|(host, from, why)| Need::new(host, format!("{} (from {from})", why.join("; "))))
        .collect()
}

/// Whether a cluster is on GKE (its firewall script is a step).
pub fn is_gke(c: &model::Cluster) -> bool {
    c.platform == Platform::Gke
}

#[cfg(test)]
mod tests {
    use crate::Source;

    fn preflight_istioctl(revision: &str) -> Option<String> {
        let text = format!(
            "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"1.30.3\"\ninstaller = \"helm\"\n{revision}\n\
             [[network]]\nid = \"n\"\n[[cluster]]\nname = \"one\"\nrole = \"primary\"\n\
             network = \"n\"\npod_cidr = \"10.1.0.0/16\"\nservice_cidr = \"10.2.0.0/16\"\n"
        );
        let checked = crate::check(&Source::new("p.toml", text));
        let plan = checked.plan?;
        let mesh = super::super::resolve(&plan, "p.toml");
        mesh.procedure.preflight.istioctl_version.clone()
    }

    /// A single Helm-installed cluster runs no istioctl, unless the plan has a revision: its
    /// default revision tag is set with istioctl, which preflight.sh must then check.
    #[test]
    fn a_helm_plan_with_a_revision_needs_istioctl() {
        assert_eq!(preflight_istioctl(""), None);
        assert_eq!(
            preflight_istioctl("revision = \"1-30-3\"").as_deref(),
            Some("1.30.3")
        );
    }
}
