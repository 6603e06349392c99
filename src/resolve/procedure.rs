//! The install procedure: every step of installing the mesh, in order, derived once.
//!
//! `install.sh` runs the steps it can and prints the ones it cannot (on nodes, in a cloud
//! console); `preflight.sh` checks what can be checked before anything is changed; the tree's
//! README.md lists the same steps under "Install order". All three render this one list, so
//! they cannot disagree.
//!
//! The order is Istio's for primary-remote and multi-primary meshes: every primary's control
//! plane and gateways; the primaries watch each other; then each remote's control plane, then
//! attaching it (its remote secret on every primary), and only then anything on the remote
//! that needs a sidecar or the mesh's root certificate (its gateways, its samples): until its
//! primary's istiod watches it, the remote's injection webhook has no CA bundle and
//! `istio-ca-root-cert` does not exist there.

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

/// MetalLB must be installed in a cluster before its pools are applied.
#[derive(Debug, Serialize)]
pub struct MetallbCheck {
    /// Cluster name.
    pub cluster: String,
    /// Its context.
    pub context: String,
}

/// kubectl 1.23 added `wait --for=jsonpath`, which the scripts use to wait for addresses.
pub const KUBECTL_MIN_MINOR: u64 = 23;

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

/// What the procedure needs to know of a resolved cluster.
pub struct ClusterFacts<'a> {
    /// The plan's cluster.
    pub plan: &'a model::Cluster,
    /// Its install phases.
    pub phases: Vec<&'static str>,
    /// Whether it writes `scripts/verify.sh`.
    pub verify: bool,
    /// Whether it writes `scripts/verify-bookinfo.sh`.
    pub verify_bookinfo: bool,
    /// Whether it writes `scripts/routes.sh`.
    pub routes: bool,
    /// Whether it writes `platform/gke-firewall.sh`.
    pub gke_firewall: bool,
}

/// Derives the procedure.
pub fn procedure(plan: &Plan, clusters: &[ClusterFacts]) -> Procedure {
    let mut steps = Steps::default();
    prerequisites(&mut steps, plan, clusters);
    let primaries: Vec<&ClusterFacts> = clusters
        .iter()
        .filter(|c| c.plan.role == Role::Primary)
        .collect();
    let control_plane = match plan.mesh.dataplane {
        Dataplane::Sidecar => "control plane: namespace, CA, istiod",
        Dataplane::Ambient => {
            "control plane: namespace, CA, Gateway API CRDs, istiod, istio-cni, ztunnel"
        }
    };
    for c in &primaries {
        steps.run_phase(c, "control-plane", control_plane);
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
        steps.run_phase(
            remote,
            "control-plane",
            "control plane: namespace, CA, the remote profile (webhook pointing at its primary)",
        );
        // Its own primary first: that is the istiod that injects its pods.
        let mut watchers = primaries.clone();
        watchers.sort_by_key(|p| remote.plan.primary.as_deref() != Some(p.plan.name.as_str()));
        for watcher in watchers {
            steps.attach(watcher.plan, remote.plan);
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
    steps.push(
        None,
        "every cluster's cacerts Secret and istio-ca-root-cert carry the mesh's one root"
            .to_owned(),
        vec![words(&["bash", "verify-trust.sh"])],
        false,
    );
    for c in clusters {
        verify(&mut steps, c);
    }
    Procedure {
        steps: steps.0,
        preflight: preflight(plan, clusters),
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

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
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
        "check tools, versions, contexts, CA files and MetalLB".to_owned(),
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

fn verify(steps: &mut Steps, c: &ClusterFacts) {
    let name = &c.plan.name;
    if c.verify {
        steps.verify(
            Some(name),
            format!("{name}: helloworld answers from every version in the mesh"),
            words(&["bash", &format!("{name}/scripts/verify.sh")]),
        );
    }
    if c.verify_bookinfo {
        steps.verify(
            Some(name),
            format!("{name}: productpage through the ingress shows every planned reviews version"),
            words(&["bash", &format!("{name}/scripts/verify-bookinfo.sh")]),
        );
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
    let istioctl = plan.mesh.installer == Installer::Istioctl || remote_secrets;
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
    }
}

/// Whether a cluster is on GKE (its firewall script is a step).
pub fn is_gke(c: &model::Cluster) -> bool {
    c.platform == Platform::Gke
}
