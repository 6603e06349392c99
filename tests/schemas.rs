//! Everything meshplan writes, for every shipped plan and ok fixture, checked against the real
//! schemas: Kubernetes' own (kubernetes-validate), Istio's and MetalLB's CRDs and chart values
//! in `tests/data/schemas` (copied into the repository; its README gives sources and licences).
//! The checks live in `tests/tools/validate_output.py`; these tests build the trees and run it,
//! in two parts: the Istio, MetalLB and Helm checks need only jsonschema and PyYAML; the
//! Kubernetes core kinds need kubernetes-validate too, so a machine without it still runs the
//! first. Missing schema files fail the tests; missing Python or modules fail them under
//! `MESHPLAN_REQUIRE_TOOLS=1` (CI) and print a SKIP line elsewhere.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use meshplan::Source;

#[path = "support/tools.rs"]
mod tools;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn build_trees() -> Vec<PathBuf> {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schema-trees");
    let _ = fs::remove_dir_all(&out);
    let mut trees = Vec::new();
    for dir in ["plans", "tests/fixtures/ok"] {
        let mut entries: Vec<PathBuf> = fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for plan in entries {
            let name = plan.file_stem().unwrap().to_string_lossy().into_owned();
            let source = Source::new(plan.to_string_lossy(), fs::read_to_string(&plan).unwrap());
            let (_, output) = meshplan::compile(&source);
            let tree = out.join(&name);
            for (path, text) in output.unwrap().unwrap() {
                let file = tree.join(path);
                fs::create_dir_all(file.parent().unwrap()).unwrap();
                fs::write(file, text).unwrap();
            }
            trees.push(tree);
        }
    }
    trees
}

/// The trees, built once for both tests.
fn trees() -> &'static [PathBuf] {
    static TREES: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    TREES.get_or_init(build_trees)
}

fn validate(part: &str, needs: &str) {
    let schemas = root().join("tests/data/schemas");
    assert!(
        schemas.join("istio/crd-all.gen.yaml").is_file(),
        "the schemas the test validates against are missing from {}",
        schemas.display()
    );
    let what = format!("schema validation ({part}: {needs})");
    let result = Command::new("python3")
        .arg(root().join("tests/tools/validate_output.py"))
        .args(["--part", part])
        .arg(&schemas)
        .args(trees())
        .output();
    let Ok(output) = result else {
        tools::skip(&what, "python3 is not installed");
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => println!("{}", stdout.trim_end()),
        Some(3) => tools::skip(&what, stderr.trim()),
        _ => panic!("generated output violates a schema:\n{stdout}{stderr}"),
    }
}

#[test]
fn istio_metallb_and_helm_documents_satisfy_their_schemas() {
    validate("custom", "jsonschema and PyYAML");
}

#[test]
fn kubernetes_core_documents_satisfy_the_kubernetes_schemas() {
    validate("core", "kubernetes-validate");
}
