//! A plan upgraded one Istio minor, as an operator writes it for `meshplan upgrade`.

use std::fs;
use std::path::Path;

/// The plan's text with `[mesh.istio] version` one minor newer (patch 0) and, unless the mesh
/// is ambient (which upgrades in place), the revision Istio's docs would name it (`1-31-0`);
/// with the new version and revision.
pub fn bumped(plan: &Path) -> (String, String, Option<String>) {
    let text = fs::read_to_string(plan).unwrap();
    let source = meshplan::Source::new(plan.to_string_lossy(), text.clone());
    let model = meshplan::check(&source).plan.unwrap();
    let from = &model.mesh.istio_version;
    let to = format!("{}.{}.0", from.major, from.minor + 1);
    let ambient = model.mesh.dataplane == meshplan::raw::Dataplane::Ambient;
    let revision = (!ambient).then(|| to.replace('.', "-"));
    let istio = text.find("[mesh.istio]").unwrap();
    let line = istio + text[istio..].find("\nversion = ").unwrap() + 1;
    let end = line + text[line..].find('\n').unwrap();
    let mut new = format!("{}version = \"{to}\"", &text[..line]);
    if let Some(revision) = &revision {
        new.push_str(&format!("\nrevision = \"{revision}\""));
    }
    new.push_str(&text[end..]);
    (new, to, revision)
}

/// Every shipped plan, and the fixtures that add a Helm install, an ambient Helm install and
/// the multi-cluster topologies the shipped plans lack.
pub fn upgrade_plans(root: &Path) -> Vec<std::path::PathBuf> {
    let mut plans: Vec<std::path::PathBuf> = fs::read_dir(root.join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    plans.sort();
    for fixture in [
        "ambient-helm",
        "helm-installer",
        "multi-primary-multi-network",
        "primary-remote-multi-network",
    ] {
        plans.push(root.join(format!("tests/fixtures/ok/{fixture}.toml")));
    }
    plans
}
