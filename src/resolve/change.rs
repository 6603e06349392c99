//! What to run on live clusters when a plan changes: derived once from the old and the new
//! resolved mesh, shown by `meshplan diff`.
//!
//! Every command is complete and runs from the new tree's root: a cluster's own phase script
//! (which carries its kubectl context), or a kubectl/istioctl/helm command with `--context`.
//! Nothing here depends on the operator's current context or working directory, because a
//! pasted `kubectl apply -k eu2` acts on whichever cluster happens to be current.
//!
//! The order is the order to run them in: changed clusters re-run in the new mesh's install
//! order; clusters whose network changed restart what reads the network label when its pods
//! start; a removed or no longer watched cluster's remote secret goes from every primary that
//! watched it, then the removed cluster's Istio and MetalLB pools go.

use std::collections::BTreeSet;

use serde::Serialize;

use super::procedure::phase_of;
use super::{Cluster, Mesh};

/// The steps a plan change needs on the clusters, in order.
#[derive(Debug, Default, Serialize)]
pub struct Change {
    /// Phase scripts to run again, in install order.
    pub rerun: Vec<ClusterCommand>,
    /// Restarts of pods that read the network label only when they start.
    pub restart: Vec<ClusterCommand>,
    /// Remote secrets and installations of clusters that left the plan (or are no longer watched).
    pub remove: Vec<ClusterCommand>,
    /// What no command here can do (on nodes, when a cluster is set up again).
    pub by_hand: Vec<ClusterNote>,
}

/// One command, as words, on one cluster.
#[derive(Debug, Serialize)]
pub struct ClusterCommand {
    /// The cluster it acts on.
    pub cluster: String,
    /// The command's words, unquoted.
    pub words: Vec<String>,
}

/// A step the operator takes by hand.
#[derive(Debug, Serialize)]
pub struct ClusterNote {
    /// The cluster it concerns.
    pub cluster: String,
    /// What to do.
    pub text: String,
}

impl Change {
    /// Whether the change needs nothing on any cluster.
    pub fn is_empty(&self) -> bool {
        self.rerun.is_empty()
            && self.restart.is_empty()
            && self.remove.is_empty()
            && self.by_hand.is_empty()
    }
}

/// The steps that take the clusters from `old` to `new`, given the paths of the files that
/// differ between the two trees (`cluster/file`, changed, added or removed).
pub fn change(old: &Mesh, new: &Mesh, changed_files: &BTreeSet<&str>) -> Change {
    let mut change = Change::default();
    for cluster in in_install_order(new) {
        rerun(cluster, changed_files, &mut change);
    }
    for cluster in &new.clusters {
        if let Some(before) = old.clusters.iter().find(|c| c.name == cluster.name)
            && before.network != cluster.network
        {
            change.restart.extend(restarts(cluster));
            change.by_hand.push(note(
                cluster,
                format!(
                    "restart the workloads of every other injected namespace on {} (network {} -> {})",
                    cluster.name, before.network, cluster.network
                ),
            ));
        }
    }
    change.remove.extend(stale_remote_secrets(old, new));
    for gone in old
        .clusters
        .iter()
        .filter(|c| !new.clusters.iter().any(|n| n.name == c.name))
    {
        change.remove.extend(uninstall(old, gone));
    }
    change
}

/// The new mesh's clusters in the order the install procedure first touches them.
pub(crate) fn in_install_order(mesh: &Mesh) -> Vec<&Cluster> {
    let first_step = |cluster: &Cluster| {
        mesh.procedure
            .steps
            .iter()
            .position(|step| step.cluster.as_deref() == Some(cluster.name.as_str()))
            .unwrap_or(usize::MAX)
    };
    let mut clusters: Vec<&Cluster> = mesh.clusters.iter().collect();
    clusters.sort_by_key(|cluster| first_step(cluster));
    clusters
}

/// The phases (and the other scripts) a cluster runs again for its changed files.
fn rerun(cluster: &Cluster, changed_files: &BTreeSet<&str>, change: &mut Change) {
    let prefix = format!("{}/", cluster.name);
    let files: Vec<&str> = changed_files
        .iter()
        .filter_map(|path| path.strip_prefix(&prefix))
        .filter(|file| cluster.files.iter().any(|f| f == file))
        .collect();
    if files.is_empty() {
        return;
    }
    let wanted: BTreeSet<&str> = files.iter().filter_map(|file| phase_of(file)).collect();
    let mut phases: Vec<&str> = cluster
        .phases
        .iter()
        .copied()
        .filter(|phase| wanted.contains(phase))
        .collect();
    if phases.is_empty() && files.contains(&"scripts/install.sh") {
        phases = cluster.phases.clone();
    }
    if !phases.is_empty() {
        let script = format!("{}/scripts/install.sh", cluster.name);
        let words = ["bash", script.as_str()].into_iter().chain(phases);
        change.rerun.push(command(cluster, words));
    }
    if files.contains(&"scripts/remote-secrets.sh") {
        let script = format!("{}/scripts/remote-secrets.sh", cluster.name);
        change
            .rerun
            .push(command(cluster, ["bash", script.as_str()]));
    }
    if files.contains(&"scripts/routes.sh") {
        change.by_hand.push(note(
            cluster,
            format!(
                "on every node: the old tree's {0}/scripts/routes-undo.sh, then {0}/scripts/routes.sh",
                cluster.name
            ),
        ));
    }
    if let Some(platform) = files.iter().find(|file| file.starts_with("platform/")) {
        change.by_hand.push(note(
            cluster,
            format!(
                "{}/{platform} takes effect when the cluster is set up again",
                cluster.name
            ),
        ));
    }
}

/// Gateways and injected workloads read the network label when their pods start: after the
/// control plane re-runs with the new network, they restart.
fn restarts(cluster: &Cluster) -> Vec<ClusterCommand> {
    let context = cluster.context.as_str();
    let mut restarts = Vec::new();
    let gateways = [
        (cluster.eastwest.is_some(), "istio-eastwestgateway"),
        (cluster.ingress.is_some(), "istio-ingressgateway"),
    ];
    for (_, deployment) in gateways.iter().filter(|(present, _)| *present) {
        let target = format!("deployment/{deployment}");
        restarts.push(command(
            cluster,
            kubectl(context, "istio-system", &["rollout", "restart", &target]),
        ));
    }
    if let Some(samples) = &cluster.samples {
        restarts.push(command(
            cluster,
            kubectl(
                context,
                &samples.namespace,
                &["rollout", "restart", "deployment"],
            ),
        ));
    }
    restarts
}

/// Remote secrets on primaries of the new mesh for clusters they watched in the old one and
/// no longer watch (removed from the plan, or moved to another primary).
fn stale_remote_secrets(old: &Mesh, new: &Mesh) -> Vec<ClusterCommand> {
    let mut commands = Vec::new();
    for before in &old.clusters {
        let now = new.clusters.iter().find(|c| c.name == before.name);
        for watched in &before.watches {
            let still = now.is_some_and(|c| c.watches.iter().any(|w| w.name == watched.name));
            if still {
                continue;
            }
            let secret = format!("secret/istio-remote-secret-{}", watched.name);
            let words = kubectl(
                &before.context,
                "istio-system",
                &["delete", &secret, "--ignore-not-found"],
            );
            commands.push(command(before, words));
        }
    }
    commands
}

/// Istio and the MetalLB pools off a cluster that left the plan, as the old plan installed them.
fn uninstall(old: &Mesh, gone: &Cluster) -> Vec<ClusterCommand> {
    let context = gone.context.as_str();
    let mut commands = Vec::new();
    if old.istio.installer == "helm" {
        let mut words = vec!["helm", "uninstall"];
        words.extend(helm_releases(old, gone));
        words.extend(["-n", "istio-system", "--kube-context", context]);
        commands.push(command(gone, words));
    } else {
        commands.push(command(
            gone,
            [
                "istioctl",
                "uninstall",
                "--purge",
                "-y",
                "--context",
                context,
            ],
        ));
    }
    commands.push(command(
        gone,
        [
            "kubectl",
            "--context",
            context,
            "delete",
            "namespace",
            "istio-system",
            "--ignore-not-found",
        ],
    ));
    if let Some(metallb) = &gone.metallb {
        let mut objects = vec![format!("ipaddresspools.metallb.io/{}", metallb.pool)];
        if metallb.bgp {
            objects.push(format!("bgpadvertisements.metallb.io/{}-bgp", metallb.pool));
            objects.extend(
                metallb
                    .peers
                    .iter()
                    .map(|peer| format!("bgppeers.metallb.io/{}", peer.name)),
            );
        } else {
            objects.push(format!("l2advertisements.metallb.io/{}-l2", metallb.pool));
        }
        let mut words: Vec<&str> = vec!["delete"];
        words.extend(objects.iter().map(String::as_str));
        words.push("--ignore-not-found");
        commands.push(command(gone, kubectl(context, &metallb.namespace, &words)));
    }
    commands
}

/// The Helm releases the old plan's install.sh made on a cluster, newest first.
fn helm_releases(old: &Mesh, gone: &Cluster) -> Vec<&'static str> {
    let mut releases = Vec::new();
    if gone.ingress.is_some() {
        releases.push("istio-ingressgateway");
    }
    if gone.eastwest.is_some() && old.istio.ambient.is_none() {
        releases.push("istio-eastwestgateway");
    }
    if old.istio.ambient.is_some() {
        releases.extend(["ztunnel", "istio-cni"]);
    }
    releases.extend(["istiod", "istio-base"]);
    releases
}

fn kubectl<'a>(context: &'a str, namespace: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut words = vec!["kubectl", "--context", context, "-n", namespace];
    words.extend_from_slice(rest);
    words
}

fn command<'a>(cluster: &Cluster, words: impl IntoIterator<Item = &'a str>) -> ClusterCommand {
    ClusterCommand {
        cluster: cluster.name.clone(),
        words: words.into_iter().map(str::to_owned).collect(),
    }
}

fn note(cluster: &Cluster, text: String) -> ClusterNote {
    ClusterNote {
        cluster: cluster.name.clone(),
        text,
    }
}
