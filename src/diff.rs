//! `meshplan diff`: what a plan change means, then what it does to the compiled files.
//!
//! The summary compares the two validated plans field by field (lists of named things — clusters,
//! nodes, networks — matched by name, not position), then the routes each cluster's nodes get,
//! then which files of which bundles change. The file diffs are unified diffs of the two trees.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use similar::TextDiff;

use crate::model::Plan;
use crate::render::Output;
use crate::render::printable_word;
use crate::resolve::Mesh;
use crate::resolve::change::{Change, change};
use crate::terminal;

/// One side of the comparison: a compiled plan.
pub struct Side<'a> {
    /// The plan as reported (a path, or `-` for stdin).
    pub name: &'a str,
    /// The validated plan.
    pub plan: &'a Plan,
    /// Its resolved mesh.
    pub mesh: &'a Mesh,
    /// Its compiled tree.
    pub output: &'a Output,
}

/// The difference between two compiled plans.
#[derive(Debug, Default)]
pub struct PlanDiff {
    /// Summary lines (no trailing newlines).
    pub summary: Vec<String>,
    /// Unified diffs, one per changed, added or removed file.
    pub files: Vec<String>,
}

impl PlanDiff {
    /// Whether the two plans compile to the same thing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.summary.is_empty()
    }
}

/// Compares two compiled plans.
pub fn diff(old: &Side, new: &Side) -> PlanDiff {
    let mut summary = Vec::new();
    summary.extend(plan_changes(old.plan, new.plan));
    summary.extend(route_changes(old.mesh, new.mesh));
    let files = file_changes(old, new, &mut summary);
    let changed: BTreeSet<&str> = changed_paths(old, new);
    let mut steps = change(old.mesh, new.mesh, &changed);
    if is_upgrade(old.plan, new.plan) {
        // Re-running the installs would upgrade every control plane in place at once.
        steps.rerun.clear();
        summary.extend(upgrade_lines(old, new));
    }
    summary.extend(step_lines(&steps));
    if !summary.is_empty() {
        summary.insert(0, format!("plan change: {} -> {}", old.name, new.name));
    }
    PlanDiff { summary, files }
}

/// A value flattened to `path -> text`; arrays of objects with a `name` (or `id`) become maps
/// keyed by it, other arrays one comma-separated value; nulls are absent.
fn flatten(value: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    let key = |v: &Value| {
        v.get("name")
            .or_else(|| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &sub, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(|i| key(i).is_some()) => {
            for item in items {
                flatten(
                    item,
                    &format!("{path}[{}]", key(item).unwrap_or_default()),
                    out,
                );
            }
        }
        Value::Array(items) => {
            if !items.is_empty() {
                let texts: Vec<String> = items.iter().map(display).collect();
                out.insert(path.to_owned(), texts.join(", "));
            }
        }
        scalar => {
            out.insert(path.to_owned(), display(scalar));
        }
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn flat(value: &impl serde::Serialize) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten(
        &serde_json::to_value(value).unwrap_or(Value::Null),
        "",
        &mut out,
    );
    out
}

/// `key old -> new`, `key: +new`, `key: -old`, for every difference.
fn changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a != b => Some(format!("{k} {a} -> {b}")),
            (Some(a), None) => Some(format!("{k} {a} removed")),
            (None, Some(b)) => Some(format!("{k} {b} added")),
            _ => None,
        })
        .collect()
}

/// Every difference between the two plans' contents, a line each (`  mesh: key old -> new`,
/// `  cluster eu1 added`, `  reviews.bookinfo: …`): the summary's first lines, and what the
/// upgrade rules look at.
pub(crate) fn plan_changes(old: &Plan, new: &Plan) -> Vec<String> {
    let mut lines = field_changes(old, new);
    lines.extend(service_changes(old, new));
    lines
}

fn field_changes(old: &Plan, new: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for change in changes(&flat(&old.mesh), &flat(&new.mesh)) {
        lines.push(format!("  mesh: {change}"));
    }
    for change in changes(&flat(&old.networks), &flat(&new.networks)) {
        lines.push(format!("  networks: {change}"));
    }
    let names = |p: &Plan| {
        p.clusters
            .iter()
            .map(|c| c.name.clone())
            .collect::<BTreeSet<_>>()
    };
    let (before, after) = (names(old), names(new));
    for added in after.difference(&before) {
        lines.push(format!("  cluster {added} added"));
    }
    for removed in before.difference(&after) {
        lines.push(format!("  cluster {removed} removed"));
    }
    for name in before.intersection(&after) {
        let find = |p: &'_ Plan| {
            p.clusters
                .iter()
                .find(|c| &c.name == name)
                .map(flat)
                .unwrap_or_default()
        };
        let changed = changes(&find(old), &find(new));
        if !changed.is_empty() {
            lines.push(format!("  cluster {name}: {}", changed.join("; ")));
        }
    }
    lines
}

fn services_by_id(plan: &Plan) -> BTreeMap<String, &crate::model::Service> {
    plan.services.iter().map(|s| (s.id(), s)).collect()
}

/// Services added and removed, and per service what changed, in words: `reviews.bookinfo:
/// failover us-east→us-west added`.
fn service_changes(old: &Plan, new: &Plan) -> Vec<String> {
    let (before, after) = (services_by_id(old), services_by_id(new));
    let mut lines = Vec::new();
    for (id, s) in &after {
        if !before.contains_key(id) {
            lines.push(format!("  service {id} added ({})", s.clusters.join(", ")));
        }
    }
    for id in before.keys().filter(|id| !after.contains_key(*id)) {
        lines.push(format!("  service {id} removed"));
    }
    for (id, was) in &before {
        let Some(is) = after.get(id) else { continue };
        let mut parts = Vec::new();
        let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
        let (c0, c1) = (set(&was.clusters), set(&is.clusters));
        parts.extend(c1.difference(&c0).map(|c| format!("cluster {c} added")));
        parts.extend(c0.difference(&c1).map(|c| format!("cluster {c} removed")));
        let arrows = |s: &crate::model::Service| -> BTreeSet<String> {
            s.failover
                .iter()
                .map(|f| format!("{}→{}", f.from, f.to))
                .collect()
        };
        let (f0, f1) = (arrows(was), arrows(is));
        parts.extend(f1.difference(&f0).map(|f| format!("failover {f} added")));
        parts.extend(f0.difference(&f1).map(|f| format!("failover {f} removed")));
        let mut rest = changes(&flat(*was), &flat(*is));
        rest.retain(|c| !c.starts_with("clusters ") && !c.starts_with("failover"));
        parts.extend(rest);
        if !parts.is_empty() {
            lines.push(format!("  {id}: {}", parts.join("; ")));
        }
    }
    lines
}

/// Routes added and removed on the nodes of each cluster.
fn route_changes(old: &Mesh, new: &Mesh) -> Vec<String> {
    let routes = |m: &Mesh| -> BTreeMap<String, (usize, BTreeSet<String>)> {
        m.clusters
            .iter()
            .filter_map(|c| {
                let r = c.routes.as_ref()?;
                let set = r
                    .routes
                    .iter()
                    .map(|r| format!("{} via {}", r.block, r.via))
                    .collect();
                Some((c.name.clone(), (r.node_ips.len(), set)))
            })
            .collect()
    };
    let (before, after) = (routes(old), routes(new));
    let clusters: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let empty = (0, BTreeSet::new());
    clusters
        .into_iter()
        .filter_map(|name| {
            let (_, was) = before.get(name).unwrap_or(&empty);
            let (nodes, is) = after.get(name).or(before.get(name)).unwrap_or(&empty);
            let mut parts: Vec<String> = is.difference(was).map(|r| format!("+{r}")).collect();
            parts.extend(was.difference(is).map(|r| format!("-{r}")));
            (!parts.is_empty()).then(|| {
                format!(
                    "  routes on the {nodes} nodes of {name}: {}",
                    parts.join(", ")
                )
            })
        })
        .collect()
}

/// The paths that differ between the two trees.
fn changed_paths<'a>(old: &Side<'a>, new: &Side<'a>) -> BTreeSet<&'a str> {
    old.output
        .keys()
        .chain(new.output.keys())
        .filter(|path| old.output.get(*path) != new.output.get(*path))
        .map(String::as_str)
        .collect()
}

fn file_changes(old: &Side, new: &Side, summary: &mut Vec<String>) -> Vec<String> {
    let paths: BTreeSet<&String> = old.output.keys().chain(new.output.keys()).collect();
    let mut diffs = Vec::new();
    let mut bundles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in paths {
        let (a, b) = (old.output.get(path), new.output.get(path));
        if a == b {
            continue;
        }
        let kind = match (a, b) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let bundle = path
            .split_once('/')
            .map_or("(mesh)", |(dir, _)| dir)
            .to_owned();
        bundles
            .entry(bundle)
            .or_default()
            .push(format!("{path} ({kind})"));
        let (a, b) = (a.map_or("", String::as_str), b.map_or("", String::as_str));
        let old_name = if kind == "added" {
            "/dev/null".to_owned()
        } else {
            format!("a/{path}")
        };
        let new_name = if kind == "removed" {
            "/dev/null".to_owned()
        } else {
            format!("b/{path}")
        };
        let text = TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&old_name, &new_name)
            .to_string();
        diffs.push(text);
    }
    if !bundles.is_empty() {
        summary.push(format!(
            "files: {} in {} bundle(s)",
            diffs.len(),
            bundles.len()
        ));
        for (bundle, files) in &bundles {
            summary.push(format!("  {bundle}: {}", files.join(", ")));
        }
    }
    diffs
}

/// The change's steps as summary sections: complete commands, runnable from the new tree's
/// root, each prefixed with the cluster it acts on.
/// A new Istio version or revision: re-running every cluster's install would upgrade every
/// control plane at once, in place, so the summary shows the upgrade instead.
fn is_upgrade(old: &Plan, new: &Plan) -> bool {
    old.mesh.istio_version != new.mesh.istio_version || old.mesh.revision != new.mesh.revision
}

/// The upgrade's phases, or why meshplan cannot order one.
fn upgrade_lines(old: &Side, new: &Side) -> Vec<String> {
    let findings = crate::validate::upgrade::check_pair(old.plan, new.plan, None);
    if !findings.is_empty() {
        let mut lines = vec![
            "upgrade: not one meshplan can order (`meshplan upgrade OLD NEW -o DIR` shows where):"
                .to_owned(),
        ];
        lines.extend(findings.iter().map(|f| format!("  {f}")));
        return lines;
    }
    let upgrade = crate::resolve::upgrade::upgrade(old.plan, old.mesh, new.plan, new.mesh);
    let kind = if upgrade.in_place {
        "in place"
    } else {
        "by canary"
    };
    let mut lines = vec![format!(
        "upgrade {kind}, not a re-run of install.sh (`meshplan upgrade OLD NEW -o DIR` writes upgrade.sh), phase by phase:"
    )];
    for phase in &upgrade.phases {
        lines.push(format!(
            "  {}: {}",
            phase.name,
            terminal::text(&phase.title)
        ));
        lines.extend(
            phase
                .steps
                .iter()
                .map(|step| format!("    {}", terminal::text(&step.title))),
        );
    }
    if let Some(removal) = &upgrade.removal {
        lines.push(format!(
            "  then, by hand when satisfied: {}: {}",
            removal.name,
            terminal::text(&removal.title)
        ));
    }
    lines
}

fn step_lines(change: &Change) -> Vec<String> {
    let mut lines = Vec::new();
    let sections = [
        (
            "re-run (from the new tree's root, in this order):",
            &change.rerun,
        ),
        ("restart (the network changed):", &change.restart),
        ("remove:", &change.remove),
    ];
    for (heading, commands) in sections {
        if commands.is_empty() {
            continue;
        }
        lines.push(heading.to_owned());
        lines.extend(commands.iter().map(|c| {
            let words: Vec<String> = c.words.iter().map(|w| printable_word(w)).collect();
            format!("  {}: {}", terminal::text(&c.cluster), words.join(" "))
        }));
    }
    if !change.by_hand.is_empty() {
        lines.push("by hand:".to_owned());
        lines.extend(change.by_hand.iter().map(|n| {
            format!(
                "  {}: {}",
                terminal::text(&n.cluster),
                terminal::text(&n.text)
            )
        }));
    }
    lines
}
