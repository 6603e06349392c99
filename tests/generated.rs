//! Property test over generated, well-formed plans of random topology and options: compiling
//! never panics, every generated plan is valid, the output is the same bytes every time, every
//! YAML file parses, and `render --cluster`'s one-cluster path prints what the tree holds. CI runs a bounded smoke (PROPTEST_CASES, default 48); the long run
//! recorded in docs/testing.md used `PROPTEST_CASES=1000000`.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

#[path = "support/synthetic.rs"]
#[allow(dead_code)] // the benchmark shape is used by examples/synthetic_plan.rs
mod synthetic;

use meshplan::Source;
use proptest::prelude::*;
use serde::Deserialize;
use synthetic::Shape;

const ISTIO: &[&str] = &[
    "1.20.8", "1.21.6", "1.22.3", "1.23.5", "1.24.2", "1.26.1", "1.28.1",
];
const PLATFORMS: &[&str] = &["generic", "kubeadm", "kind", "icp", "gke"];

fn shape() -> impl Strategy<Value = Shape> {
    (
        (1usize..7, 0usize..5, 1usize..4, 1usize..4, 0usize..3),
        (
            prop::sample::select(ISTIO),
            any::<bool>(),
            0usize..4,
            any::<bool>(),
        ),
        (
            prop::collection::vec(prop::sample::select(PLATFORMS), 1..4),
            any::<bool>(),
            0usize..3,
            0usize..6,
        ),
    )
        .prop_map(
            |(
                (clusters, nodes, networks, primaries, statics),
                (istio, helm, metallb, ipvs),
                (platforms, samples, gitops, services),
            )| Shape {
                clusters,
                nodes_per_cluster: nodes,
                networks: networks.min(clusters),
                primaries: primaries.min(clusters),
                // Static routing needs nodes in every cluster of the network.
                static_networks: if nodes > 0 { statics } else { 0 },
                istio,
                helm,
                metallb_every: metallb,
                ipvs,
                platforms,
                samples,
                gitops: [None, Some("argocd"), Some("flux")][gitops],
                services,
            },
        )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn generated_plans_compile_deterministically_to_parseable_yaml(shape in shape()) {
        let text = synthetic::plan(&shape);
        let source = Source::new("generated.toml", text.as_str());
        let (checked, first) = meshplan::compile(&source);
        let codes: Vec<String> = checked.findings.iter().filter(|f| f.is_error()).map(|f| f.code_str()).collect();
        prop_assert!(codes.is_empty(), "{shape:?} is invalid: {codes:?}\n{text}");
        let first = first.unwrap().unwrap();
        let (_, second) = meshplan::compile(&source);
        prop_assert_eq!(&first, &second.unwrap().unwrap(), "two compiles differ");
        for (path, yaml) in first.iter().filter(|(p, _)| p.ends_with(".yaml")) {
            for doc in serde_yaml::Deserializer::from_str(yaml) {
                prop_assert!(serde_yaml::Value::deserialize(doc).is_ok(), "{path} does not parse");
            }
        }
        let plan = checked.plan.as_ref().unwrap();
        for name in plan.clusters.iter().map(|c| &c.name) {
            prop_assert_eq!(render_cluster(plan, name), applied_by_kustomize(&first, name));
        }
    }
}

/// What `meshplan render --cluster NAME` prints: that cluster resolved and rendered alone.
fn render_cluster(plan: &meshplan::model::Plan, name: &str) -> String {
    let (mesh, cluster) = meshplan::resolve::resolve_cluster(plan, "generated.toml", name);
    let selection = meshplan::render::Selection::Kubectl;
    meshplan::render::cluster_stream(&mesh, &cluster.unwrap(), selection)
        .unwrap()
        .unwrap()
}

/// The built files the cluster's kustomization lists, in its order, as one stream.
fn applied_by_kustomize(tree: &meshplan::render::Output, name: &str) -> String {
    let kustomization: serde_yaml::Value =
        serde_yaml::from_str(&tree[&format!("{name}/kustomization.yaml")]).unwrap();
    kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|file| tree[&format!("{name}/{}", file.as_str().unwrap())].as_str())
        .collect::<Vec<_>>()
        .join("---\n")
}
