//! The upgrade procedure: every step from the mesh of one plan to the mesh of the next, derived
//! once from the two resolved meshes. `upgrade.sh` runs it, the upgrade's README.md lists it,
//! and `meshplan diff` shows its outline: all three render this one model.
//!
//! A sidecar mesh upgrades by canary (istio.io/latest/docs/setup/upgrade/canary/): the new
//! revision's istiod is installed beside the old one on every primary, then each remote gets
//! the new revision's injection webhook (pointing through its primary); only then does each
//! cluster's injection move, one cluster at a time, by the `default` revision tag (`istioctl
//! tag set default --revision NEW`), which is what serves the namespaces' `istio-injection:
//! enabled`. Workloads restart onto the new proxies after their cluster's tag moved, so no data
//! plane runs ahead of the istiod that serves it, and gateways follow once their istiod and
//! the tags moved (gateways upgraded before istiod stay 0/1: istio/istio#31145). The old
//! revision is removed last, by an explicit phase that first checks that no workload still runs
//! on it. Every phase before that has a rollback.
//!
//! An ambient mesh upgrades in place (istio.io/latest/docs/ambient/upgrade/helm/): newer Gateway
//! API CRDs first, then on each cluster istiod, istio-cni and ztunnel, in that order.
//!
//! Every command runs from the upgrade directory's root, where `old/` and `new/` hold the two
//! trees' files the steps use, and names its cluster's context: nothing depends on the current
//! context or directory.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Cluster, Mesh};
use crate::model::Plan;
use crate::raw::Dataplane;

/// The upgrade, phase by phase.
#[derive(Debug, Serialize)]
pub struct Upgrade {
    /// The release installed now.
    pub from: Release,
    /// The release the upgrade installs.
    pub to: Release,
    /// An in-place upgrade (ambient) rather than a canary.
    pub in_place: bool,
    /// The phases `upgrade.sh` runs with no argument, in order.
    pub phases: Vec<Phase>,
    /// Removing the old revision: run only when asked (`upgrade.sh remove-old`).
    pub removal: Option<Phase>,
    /// The rollback of each phase, latest first: `upgrade.sh rollback` runs them all in this
    /// order; after phase P, the ones from P's on undo it.
    pub rollback: Vec<Phase>,
    /// For each phase, the rollback phases that undo everything up to and including it, in
    /// the order they run.
    pub rollback_points: Vec<RollbackPoint>,
    /// Every kubectl context the steps use, each once.
    pub contexts: Vec<String>,
    /// The files of the two trees the steps use (`old/…`, `new/…`), and the old tree's
    /// istiod-lb.yaml pinned to the old revision (`pinned/…`).
    pub files: Vec<String>,
    /// Whether a rollback step runs the old release's istioctl (`ISTIOCTL_OLD`).
    pub needs_old_istioctl: bool,
    /// Whether a step runs the new release's istioctl (checked first).
    pub needs_istioctl: bool,
}

/// One side of the upgrade.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    /// The Istio version, `1.30.3`.
    pub version: String,
    /// The revision as the plan names it (`None`: the default revision).
    pub revision: Option<String>,
    /// The value of pods' and objects' `istio.io/rev` label: the revision, or `default`.
    pub label: String,
    /// istiod's Deployment and Service: `istiod-<revision>`, or `istiod`.
    pub istiod: String,
    /// The Helm release installing istiod: the same name.
    pub helm_release: String,
    /// The VirtualService routing remotes' istiod connections to it through the east-west
    /// gateway (Istio's expose-istiod.yaml and expose-istiod-rev.yaml.tmpl).
    pub istiod_vs: String,
}

impl Release {
    fn of(plan: &Plan) -> Release {
        let names = super::control_plane(plan.mesh.revision.as_deref());
        Release {
            version: plan.mesh.istio_version.to_string(),
            label: names.rev_label,
            helm_release: names.helm_release,
            istiod: names.istiod,
            revision: names.revision,
            istiod_vs: names.expose.virtual_service,
        }
    }

    /// `Istio 1.30.3 (revision 1-30-3)` or `Istio 1.30.3 (default revision)`.
    fn name(&self) -> String {
        match &self.revision {
            Some(r) => format!("Istio {} (revision {r})", self.version),
            None => format!("Istio {} (default revision)", self.version),
        }
    }
}

/// Where a rollback starts: after `after`, run `run`.
#[derive(Debug, Serialize)]
pub struct RollbackPoint {
    /// The last phase that ran.
    pub after: String,
    /// The rollback phases to run, in order.
    pub run: Vec<String>,
}

/// After each phase, the undo phases of it and every phase before it, latest first.
fn rollback_points(phases: &[Phase]) -> Vec<RollbackPoint> {
    let mut undo: Vec<String> = Vec::new();
    phases
        .iter()
        .map(|phase| {
            if let Some(name) = &phase.undo {
                undo.insert(0, name.clone());
            }
            RollbackPoint {
                after: phase.name.clone(),
                run: undo.clone(),
            }
        })
        .collect()
}

/// One phase: an argument of `upgrade.sh`.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// The argument, `canary`.
    pub name: String,
    /// What it does, for people.
    pub title: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// The rollback phase that undoes it, if anything needs undoing.
    pub undo: Option<String>,
}

/// One step, on one cluster.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The cluster it acts on.
    pub cluster: String,
    /// What it does.
    pub title: String,
    /// Checked before the commands run: no workload of the cluster still runs this revision.
    pub guard: Option<Guard>,
    /// The commands, in order.
    pub commands: Vec<Command>,
    /// A check of running pods: `MESHPLAN_SKIP_VERIFY=1` skips it where nothing runs.
    pub verify: bool,
}

/// Before the old revision goes: no pod but istiod's own still carries its label.
#[derive(Debug, Serialize)]
pub struct Guard {
    /// The cluster's context.
    pub context: String,
    /// The label selector that must match no pod.
    pub selector: String,
}

/// One command, as words.
#[derive(Debug, Serialize)]
pub struct Command {
    /// The words, unquoted; an `istioctl` first word is the new release's istioctl.
    pub words: Vec<String>,
    /// The first word is the old release's istioctl (`$ISTIOCTL_OLD`), which renders the old
    /// release's charts.
    pub old_istioctl: bool,
}

impl Command {
    fn new(words: &[&str]) -> Command {
        Command {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            old_istioctl: false,
        }
    }

    fn old(words: &[&str]) -> Command {
        Command {
            old_istioctl: true,
            ..Command::new(words)
        }
    }
}

/// The two sides, as the steps need them.
struct Pair<'a> {
    old: &'a Mesh,
    new: &'a Mesh,
    from: Release,
    to: Release,
    helm: bool,
}

/// The upgrade from `old` to `new` (a pair the `upgrade` rules accept).
pub fn upgrade(old_plan: &Plan, old: &Mesh, new_plan: &Plan, new: &Mesh) -> Upgrade {
    let pair = Pair {
        old,
        new,
        from: Release::of(old_plan),
        to: Release::of(new_plan),
        helm: new.istio.installer == "helm",
    };
    let in_place = new_plan.mesh.dataplane == Dataplane::Ambient;
    let (phases, removal, rollback) = if in_place {
        in_place_phases(&pair)
    } else {
        canary_phases(&pair, new_plan)
    };
    let all = phases.iter().chain(&removal).chain(&rollback);
    let steps: Vec<&Step> = all.flat_map(|p| &p.steps).collect();
    Upgrade {
        rollback_points: rollback_points(&phases),
        contexts: contexts(&steps),
        files: files(&steps),
        needs_old_istioctl: steps
            .iter()
            .flat_map(|s| &s.commands)
            .any(|c| c.old_istioctl),
        needs_istioctl: steps
            .iter()
            .flat_map(|s| &s.commands)
            .any(|c| !c.old_istioctl && c.words.first().is_some_and(|w| w == "istioctl")),
        from: pair.from,
        to: pair.to,
        in_place,
        phases,
        removal,
        rollback,
    }
}

fn contexts(steps: &[&Step]) -> Vec<String> {
    let mut seen = Vec::new();
    for step in steps {
        for command in &step.commands {
            let words = &command.words;
            let at = words
                .iter()
                .position(|w| w == "--context" || w == "--kube-context");
            if let Some(context) = at.and_then(|i| words.get(i + 1))
                && !seen.contains(context)
            {
                seen.push(context.clone());
            }
        }
    }
    seen
}

/// The `old/…` and `new/…` paths the commands name, sorted.
fn files(steps: &[&Step]) -> Vec<String> {
    steps
        .iter()
        .flat_map(|s| &s.commands)
        .flat_map(|c| &c.words)
        .filter(|w| ["old/", "new/", "pinned/"].iter().any(|p| w.starts_with(p)))
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

/// The clusters in the order the new mesh installs them: primaries before their remotes.
fn install_order(mesh: &Mesh) -> Vec<&Cluster> {
    super::change::in_install_order(mesh)
}

fn primaries(mesh: &Mesh) -> Vec<&Cluster> {
    install_order(mesh)
        .into_iter()
        .filter(|c| c.is_primary)
        .collect()
}

fn remotes(mesh: &Mesh) -> Vec<&Cluster> {
    install_order(mesh)
        .into_iter()
        .filter(|c| !c.is_primary)
        .collect()
}

fn canary_phases(pair: &Pair, new_plan: &Plan) -> (Vec<Phase>, Option<Phase>, Vec<Phase>) {
    let phases = vec![
        canary(pair),
        tags(pair, new_plan),
        gateways(pair, "new"),
        verify(pair),
    ];
    let rollback = vec![
        Phase {
            name: "rollback-gateways".into(),
            undo: None,
            title: format!("gateways back to {}", pair.from.name()),
            steps: gateway_steps(pair, "old"),
        },
        rollback_tags(pair, new_plan),
        rollback_canary(pair),
    ];
    (phases, Some(remove_old(pair)), rollback)
}

/// `istioctl install` of a file, or the Helm releases of a control plane.
fn control_plane_commands(pair: &Pair, cluster: &Cluster, side: &str) -> Vec<Command> {
    let (mesh, release) = side_of(pair, side);
    let ctx = cluster.context.as_str();
    if !pair.helm {
        let file = format!("{side}/{}/istio/control-plane.yaml", cluster.name);
        let words = ["istioctl", "install", "-y", "--context", ctx, "-f", &file];
        return vec![if side == "old" {
            Command::old(&words)
        } else {
            Command::new(&words)
        }];
    }
    let mut commands = helm_repo(mesh);
    let Some(charts) = &mesh.istio.charts else {
        return commands;
    };
    let version = mesh.istio.tag.as_str();
    let values = |file: &str| format!("{side}/{}/helm/{file}", cluster.name);
    commands.push(base_upgrade(pair, cluster, side, None));
    commands.push(helm_upgrade(
        &release.helm_release,
        &cluster.helm_istiod_chart,
        ctx,
        version,
        &values("istiod.yaml"),
        true,
    ));
    if mesh.istio.ambient.is_some() {
        commands.push(helm_upgrade(
            "istio-cni",
            &charts.cni,
            ctx,
            version,
            &values("cni.yaml"),
            true,
        ));
        commands.push(helm_upgrade(
            "ztunnel",
            &charts.ztunnel,
            ctx,
            version,
            &values("ztunnel.yaml"),
            true,
        ));
    }
    commands
}

/// `helm upgrade` of the base chart (CRDs, cluster roles, the default validating webhook) with
/// a tree's values; `default_revision` overrides which revision's istiod the cluster-wide
/// validator calls (`defaultRevision`): during a canary, still the old one.
fn base_upgrade(
    pair: &Pair,
    cluster: &Cluster,
    side: &str,
    default_revision: Option<&str>,
) -> Command {
    let (mesh, _) = side_of(pair, side);
    let chart = mesh
        .istio
        .charts
        .as_ref()
        .map_or("istio/base", |c| c.base.as_str());
    let mut command = helm_upgrade(
        "istio-base",
        chart,
        &cluster.context,
        &mesh.istio.tag,
        &format!("{side}/{}/helm/base.yaml", cluster.name),
        false,
    );
    if let Some(revision) = default_revision {
        command.words.push("--set".to_owned());
        command.words.push(format!("defaultRevision={revision}"));
    }
    command
}

/// The `defaultRevision` of the base chart for the old release: its revision label (`default`
/// for the unrevisioned one, whose Service the chart then names `istiod`). Never empty: the base
/// release must render, and so own, `istiod-default-validator` before `istioctl tag set default`
/// rewrites it, or the release's next upgrade cannot take it back ("exists and cannot be
/// imported into the current release", seen in the real-tools run).
fn old_default_revision<'a>(pair: &'a Pair) -> &'a str {
    &pair.from.label
}

fn side_of<'a>(pair: &'a Pair, side: &str) -> (&'a Mesh, &'a Release) {
    if side == "old" {
        (pair.old, &pair.from)
    } else {
        (pair.new, &pair.to)
    }
}

fn helm_repo(mesh: &Mesh) -> Vec<Command> {
    let repository = mesh
        .istio
        .charts
        .as_ref()
        .and_then(|c| c.repository.as_ref());
    repository
        .map(|url| Command::new(&["helm", "repo", "add", "istio", url, "--force-update"]))
        .into_iter()
        .collect()
}

fn helm_upgrade(
    release: &str,
    chart: &str,
    context: &str,
    version: &str,
    values: &str,
    wait: bool,
) -> Command {
    let mut words = vec![
        "helm",
        "upgrade",
        "--install",
        release,
        chart,
        "-n",
        "istio-system",
        "--kube-context",
        context,
        "--version",
        version,
        "-f",
        values,
    ];
    if wait {
        words.push("--wait");
    }
    Command::new(&words)
}

fn rollout_status(context: &str, object: &str) -> Command {
    Command::new(&[
        "kubectl",
        "--context",
        context,
        "-n",
        "istio-system",
        "rollout",
        "status",
        object,
        "--timeout=10m",
    ])
}

fn canary(pair: &Pair) -> Phase {
    let mut steps = Vec::new();
    for cluster in primaries(pair.new) {
        let mut commands = Vec::new();
        if cluster.istiod_lb.is_some() {
            // istiod's own load balancer selects every istiod by `app: istiod`: pinned to the
            // old revision first, so the remotes behind it keep reaching the old istiod.
            commands.push(apply(&cluster.context, &lb_file("pinned", cluster)));
        }
        commands.extend(control_plane_commands(pair, cluster, "new"));
        keep_old_validator(pair, &mut commands);
        if cluster.expose_istiod {
            // The new revision's VirtualService (istiod-vs-<revision>) beside the old one:
            // remotes' proxies of each revision reach their own istiod by its SNI.
            let file = format!("new/{}/gateways.yaml", cluster.name);
            commands.push(Command::new(&[
                "kubectl",
                "--context",
                &cluster.context,
                "apply",
                "-f",
                &file,
            ]));
        }
        steps.push(Step {
            cluster: cluster.name.clone(),
            title: format!(
                "{}: {} beside {}",
                cluster.name, pair.to.istiod, pair.from.istiod
            ),
            guard: None,
            commands,
            verify: false,
        });
        steps.push(wait_for_istiod(pair, cluster));
    }
    for cluster in remotes(pair.new) {
        let primary = cluster.primary.as_deref().unwrap_or("its primary");
        steps.push(Step {
            cluster: cluster.name.clone(),
            title: format!(
                "{}: revision {}'s injection webhook and istiod Service, pointing at {primary}'s {}",
                cluster.name, pair.to.label, pair.to.istiod
            ),
            guard: None,
            commands: {
                let mut commands = control_plane_commands(pair, cluster, "new");
                keep_old_validator(pair, &mut commands);
                commands
            },
            verify: false,
        });
    }
    Phase {
        name: "canary".into(),
        undo: Some("rollback-canary".into()),
        title: format!(
            "{} beside {}, nothing moved yet",
            pair.to.name(),
            pair.from.name()
        ),
        steps,
    }
}

/// The new base chart installs with the old revision still behind the cluster-wide validator:
/// the tag moves it (`istioctl tag set default` writes `istiod-default-validator` too). On a
/// release upgrade the chart leaves the validator's failurePolicy to the API server's default,
/// Fail, and until an istiod patches in its CA bundle that refuses every Istio object the next
/// steps apply (seen in the real-tools run): it fails open, as on a first install, until then.
fn keep_old_validator(pair: &Pair, commands: &mut [Command]) {
    for command in commands.iter_mut() {
        if command.words.get(3).is_some_and(|r| r == "istio-base") {
            command.words.extend([
                "--set".to_owned(),
                format!("defaultRevision={}", old_default_revision(pair)),
                "--set".to_owned(),
                "base.validationFailurePolicy=Ignore".to_owned(),
            ]);
        }
    }
}

fn wait_for_istiod(pair: &Pair, cluster: &Cluster) -> Step {
    Step {
        cluster: cluster.name.clone(),
        title: format!("{}: {} is ready", cluster.name, pair.to.istiod),
        guard: None,
        commands: vec![rollout_status(
            &cluster.context,
            &format!("deployment/{}", pair.to.istiod),
        )],
        verify: true,
    }
}

/// The namespaces whose pods the plan injects on a cluster: the samples', and every
/// `[[service]]`'s that runs there.
fn injected_namespaces(plan: &Plan, cluster: &Cluster) -> Vec<String> {
    let mut namespaces: Vec<String> = cluster
        .samples
        .iter()
        .map(|s| s.namespace.clone())
        .collect();
    for service in &plan.services {
        if service.clusters.contains(&cluster.name) && !namespaces.contains(&service.namespace) {
            namespaces.push(service.namespace.clone());
        }
    }
    namespaces
}

fn tag_command(cluster: &Cluster, revision: &str) -> Command {
    Command::new(&[
        "istioctl",
        "tag",
        "set",
        "default",
        "--revision",
        revision,
        "--overwrite",
        "-y",
        "--context",
        &cluster.context,
    ])
}

/// The tag moved to a side's revision; with Helm, the base chart's `defaultRevision` then
/// follows it, as a fresh install of that side leaves it.
fn tag_commands(pair: &Pair, cluster: &Cluster, side: &str) -> Vec<Command> {
    let (_, release) = side_of(pair, side);
    let mut commands = vec![tag_command(cluster, &release.label)];
    if pair.helm {
        commands.push(if side == "new" {
            base_upgrade(pair, cluster, "new", None)
        } else {
            base_upgrade(pair, cluster, "new", Some(old_default_revision(pair)))
        });
    }
    commands
}

fn restart_commands(plan: &Plan, cluster: &Cluster) -> Vec<Command> {
    injected_namespaces(plan, cluster)
        .iter()
        .map(|ns| {
            Command::new(&[
                "kubectl",
                "--context",
                &cluster.context,
                "-n",
                ns,
                "rollout",
                "restart",
                "deployment",
            ])
        })
        .collect()
}

/// The clusters in the order their injection moves: primaries first, so that a remote's
/// primary has moved before it.
fn tag_order(mesh: &Mesh) -> Vec<&Cluster> {
    let mut order = primaries(mesh);
    order.extend(remotes(mesh));
    order
}

fn tags(pair: &Pair, plan: &Plan) -> Phase {
    let mut steps = Vec::new();
    for cluster in tag_order(pair.new) {
        steps.extend(move_injection(pair, plan, cluster, "new"));
        if let Some(step) = verify_step(cluster, "new") {
            steps.push(step);
        }
        if cluster.istiod_lb.is_some() {
            steps.push(Step {
                cluster: cluster.name.clone(),
                title: format!(
                    "{}: its remotes' istiod address (istiod-lb) moves to {}",
                    cluster.name, pair.to.istiod
                ),
                guard: None,
                commands: vec![apply(&cluster.context, &lb_file("new", cluster))],
                verify: false,
            });
        }
    }
    Phase {
        name: "tags".into(),
        undo: Some("rollback-tags".into()),
        title: format!(
            "each cluster's workloads move to {}, one cluster at a time",
            pair.to.name()
        ),
        steps,
    }
}

/// A cluster's injection moved to a side's revision (the default tag), then its injected
/// workloads restarted onto that side's proxies.
fn move_injection(pair: &Pair, plan: &Plan, cluster: &Cluster, side: &str) -> Vec<Step> {
    let (_, release) = side_of(pair, side);
    let how = if side == "new" { "moves to" } else { "back to" };
    let mut steps = vec![Step {
        cluster: cluster.name.clone(),
        title: format!(
            "{}: injection (revision tag default) {how} {}",
            cluster.name, release.label
        ),
        guard: None,
        commands: tag_commands(pair, cluster, side),
        verify: false,
    }];
    let restarts = restart_commands(plan, cluster);
    if !restarts.is_empty() {
        steps.push(Step {
            cluster: cluster.name.clone(),
            title: format!(
                "{}: workloads restart onto {}'s proxies",
                cluster.name, release.version
            ),
            guard: None,
            commands: restarts,
            verify: false,
        });
    }
    steps
}

/// `kubectl apply -f FILE` on a cluster.
fn apply(context: &str, file: &str) -> Command {
    Command::new(&["kubectl", "--context", context, "apply", "-f", file])
}

/// A primary's istiod-lb.yaml in a tree: `pinned/` is the old tree's, selecting the old
/// revision's istiod only (rendered by the upgrade).
fn lb_file(side: &str, cluster: &Cluster) -> String {
    format!("{side}/{}/istiod-lb.yaml", cluster.name)
}

fn verify_step(cluster: &Cluster, side: &str) -> Option<Step> {
    cluster
        .files
        .iter()
        .any(|f| f == "scripts/verify.sh")
        .then(|| Step {
            cluster: cluster.name.clone(),
            title: format!("{}: the sample answers", cluster.name),
            guard: None,
            commands: vec![Command::new(&[
                "bash",
                &format!("{side}/{}/scripts/verify.sh", cluster.name),
            ])],
            verify: true,
        })
}

fn gateway_steps(pair: &Pair, side: &str) -> Vec<Step> {
    let (mesh, release) = side_of(pair, side);
    let mut steps = Vec::new();
    for cluster in tag_order(mesh) {
        let commands = gateway_commands(pair, cluster, side);
        if commands.is_empty() {
            continue;
        }
        steps.push(Step {
            cluster: cluster.name.clone(),
            title: format!("{}: gateways on {}", cluster.name, release.name()),
            guard: None,
            commands,
            verify: false,
        });
        if cluster.eastwest.is_some() {
            steps.push(Step {
                cluster: cluster.name.clone(),
                title: format!("{}: the east-west gateway is ready", cluster.name),
                guard: None,
                commands: vec![rollout_status(
                    &cluster.context,
                    "deployment/istio-eastwestgateway",
                )],
                verify: true,
            });
        }
    }
    steps
}

fn gateway_commands(pair: &Pair, cluster: &Cluster, side: &str) -> Vec<Command> {
    let (mesh, _) = side_of(pair, side);
    let ctx = cluster.context.as_str();
    let mut commands = Vec::new();
    let mut gateway = |file: &str, helm_release: &str, helm_values: &str| {
        if pair.helm {
            if let Some(charts) = &mesh.istio.charts {
                commands.push(helm_upgrade(
                    helm_release,
                    &charts.gateway,
                    ctx,
                    &mesh.istio.tag,
                    &format!("{side}/{}/helm/{helm_values}", cluster.name),
                    false,
                ));
            }
        } else {
            let path = format!("{side}/{}/istio/{file}", cluster.name);
            let words = ["istioctl", "install", "-y", "--context", ctx, "-f", &path];
            commands.push(if side == "old" {
                Command::old(&words)
            } else {
                Command::new(&words)
            });
        }
    };
    if cluster.eastwest.is_some() && mesh.istio.ambient.is_none() {
        gateway(
            "eastwest-gateway.yaml",
            "istio-eastwestgateway",
            "eastwest-gateway.yaml",
        );
    }
    if cluster.ingress.is_some() {
        gateway(
            "ingress-gateway.yaml",
            "istio-ingressgateway",
            "ingress-gateway.yaml",
        );
    }
    commands
}

fn gateways(pair: &Pair, side: &str) -> Phase {
    Phase {
        name: "gateways".into(),
        undo: Some("rollback-gateways".into()),
        title: format!("gateways move to {}, after their istiod", pair.to.name()),
        steps: gateway_steps(pair, side),
    }
}

fn verify(pair: &Pair) -> Phase {
    Phase {
        name: "verify".into(),
        undo: None,
        title: "every cluster's sample answers across the upgraded mesh".into(),
        steps: install_order(pair.new)
            .into_iter()
            .filter_map(|c| verify_step(c, "new"))
            .collect(),
    }
}

/// The order the old revision leaves in: remotes first, whose webhooks point at their
/// primary's old istiod, then the primaries.
fn removal_order(mesh: &Mesh) -> Vec<&Cluster> {
    let mut order = remotes(mesh);
    order.extend(primaries(mesh));
    order
}

fn remove_old(pair: &Pair) -> Phase {
    Phase {
        name: "remove-old".into(),
        undo: None,
        title: format!(
            "{} removed, once no workload runs on it (no rollback after this)",
            pair.from.name()
        ),
        steps: removal_steps(pair, &pair.from),
    }
}

/// One release removed from every cluster, remotes first, each once no pod but istiod's own
/// runs on it: its istiod (Helm release, or istioctl's objects of its revision) and the
/// VirtualService that routed remotes to it.
fn removal_steps(pair: &Pair, release: &Release) -> Vec<Step> {
    removal_order(pair.new)
        .into_iter()
        .map(|cluster| {
            let ctx = cluster.context.as_str();
            let mut commands = vec![if pair.helm {
                Command::new(&[
                    "helm",
                    "uninstall",
                    &release.helm_release,
                    "-n",
                    "istio-system",
                    "--kube-context",
                    ctx,
                    "--ignore-not-found",
                ])
            } else {
                Command::new(&[
                    "istioctl",
                    "uninstall",
                    "-y",
                    "--context",
                    ctx,
                    "--revision",
                    &release.label,
                ])
            }];
            if cluster.expose_istiod {
                commands.push(delete_virtual_service(ctx, &release.istiod_vs));
            }
            Step {
                cluster: cluster.name.clone(),
                title: format!("{}: {} removed", cluster.name, release.name()),
                guard: Some(Guard {
                    context: ctx.to_owned(),
                    selector: format!("istio.io/rev={},app!=istiod", release.label),
                }),
                commands,
                verify: false,
            }
        })
        .collect()
}

fn delete_virtual_service(context: &str, name: &str) -> Command {
    Command::new(&[
        "kubectl",
        "--context",
        context,
        "-n",
        "istio-system",
        "delete",
        "virtualservice",
        name,
        "--ignore-not-found",
    ])
}

fn rollback_tags(pair: &Pair, plan: &Plan) -> Phase {
    // Remotes behind a primary's istiod-lb go back with the load balancer, first: their
    // restarts below then inject the old release through it.
    let mut steps: Vec<Step> = primaries(pair.new)
        .into_iter()
        .filter(|c| c.istiod_lb.is_some())
        .map(|cluster| Step {
            cluster: cluster.name.clone(),
            title: format!(
                "{}: its remotes' istiod address (istiod-lb) back to {}",
                cluster.name, pair.from.istiod
            ),
            guard: None,
            commands: vec![apply(&cluster.context, &lb_file("pinned", cluster))],
            verify: false,
        })
        .collect();
    let mut order = tag_order(pair.new);
    order.reverse();
    for cluster in order {
        steps.extend(move_injection(pair, plan, cluster, "old"));
    }
    Phase {
        name: "rollback-tags".into(),
        undo: None,
        title: format!("each cluster's workloads back to {}", pair.from.name()),
        steps,
    }
}

fn rollback_canary(pair: &Pair) -> Phase {
    Phase {
        name: "rollback-canary".into(),
        undo: None,
        title: format!("{} removed again", pair.to.name()),
        steps: removal_steps(pair, &pair.to),
    }
}

fn in_place_phases(pair: &Pair) -> (Vec<Phase>, Option<Phase>, Vec<Phase>) {
    let mut phases = Vec::new();
    phases.extend(gateway_api(pair));
    let order = if pair.helm {
        "istiod, then istio-cni, then ztunnel"
    } else {
        // One IstioOperator holds all three; istioctl applies them in its own order
        // (operator/pkg/install/install.go componentDependencies).
        "istioctl's order: base, then istiod and istio-cni, then ztunnel after istio-cni,"
    };
    phases.push(Phase {
        name: "control-planes".into(),
        undo: Some("rollback-control-planes".into()),
        title: format!("{order} to {} on each cluster in turn", pair.to.version),
        steps: in_place_steps(pair, "new"),
    });
    phases.push(ambient_gateways(pair));
    phases.push(verify(pair));
    let rollback = vec![Phase {
        name: "rollback-control-planes".into(),
        undo: None,
        title: format!(
            "ztunnel, istio-cni and istiod back to {} (the Gateway API CRDs stay: they serve older releases too)",
            pair.from.version
        ),
        steps: in_place_steps(pair, "old"),
    }];
    (phases, None, rollback)
}

fn gateway_api(pair: &Pair) -> Option<Phase> {
    let (was, is) = (
        pair.old.istio.ambient.as_ref()?,
        pair.new.istio.ambient.as_ref()?,
    );
    if was.gateway_api_version == is.gateway_api_version {
        return None;
    }
    let steps = install_order(pair.new)
        .into_iter()
        .map(|cluster| {
            let crds = if is.gateway_api_crds.contains("://") {
                is.gateway_api_crds.clone()
            } else {
                format!("new/{}/{}", cluster.name, is.gateway_api_crds)
            };
            Step {
                cluster: cluster.name.clone(),
                title: format!(
                    "{}: Gateway API {} CRDs",
                    cluster.name, is.gateway_api_version
                ),
                guard: None,
                commands: vec![Command::new(&[
                    "kubectl",
                    "--context",
                    &cluster.context,
                    "apply",
                    "--server-side",
                    // The upgrade owns the CRDs now, whoever last set a field of them.
                    "--force-conflicts",
                    "-f",
                    &crds,
                ])],
                verify: false,
            }
        })
        .collect();
    Some(Phase {
        name: "gateway-api".into(),
        undo: None,
        title: format!(
            "Gateway API {} CRDs (was {}) before any istiod that reads them",
            is.gateway_api_version, was.gateway_api_version
        ),
        steps,
    })
}

/// Each cluster in place: Helm releases one at a time (istiod, istio-cni, ztunnel going up;
/// the reverse coming down, so ztunnel is never ahead of istiod), or one `istioctl install`.
fn in_place_steps(pair: &Pair, side: &str) -> Vec<Step> {
    let (_, release) = side_of(pair, side);
    let mut clusters = install_order(pair.new);
    if side == "old" {
        clusters.reverse();
    }
    let mut steps = Vec::new();
    for cluster in clusters {
        let mut commands = control_plane_commands(pair, cluster, side);
        if side == "old" && pair.helm {
            // The base chart (CRDs, cluster roles) stays new: newer CRDs serve older releases.
            commands.retain(|c| c.words.get(3).is_none_or(|release| release != "istio-base"));
            commands.reverse();
            // `helm repo add` (when any) first again.
            let repo_add_last = commands.last().is_some_and(is_repo_add);
            commands.rotate_right(usize::from(repo_add_last));
        }
        steps.push(Step {
            cluster: cluster.name.clone(),
            title: format!("{}: {} in place", cluster.name, release.name()),
            guard: None,
            commands,
            verify: false,
        });
        let ctx = cluster.context.as_str();
        steps.push(Step {
            cluster: cluster.name.clone(),
            title: format!("{}: istiod, istio-cni and ztunnel are ready", cluster.name),
            guard: None,
            commands: vec![
                rollout_status(ctx, &format!("deployment/{}", release.istiod)),
                rollout_status(ctx, "daemonset/istio-cni-node"),
                rollout_status(ctx, "daemonset/ztunnel"),
            ],
            verify: true,
        });
    }
    steps
}

fn is_repo_add(command: &Command) -> bool {
    command.words.get(1).is_some_and(|w| w == "repo")
}

fn ambient_gateways(pair: &Pair) -> Phase {
    let steps = install_order(pair.new)
        .into_iter()
        .filter(|c| c.eastwest.is_some())
        .map(|cluster| Step {
            cluster: cluster.name.clone(),
            title: format!(
                "{}: istiod {} redeploys the east-west gateway",
                cluster.name, pair.to.version
            ),
            guard: None,
            commands: vec![rollout_status(
                &cluster.context,
                "deployment/istio-eastwestgateway",
            )],
            verify: true,
        })
        .collect();
    Phase {
        name: "gateways".into(),
        undo: None,
        title: "gateways that istiod deploys follow it".into(),
        steps,
    }
}
