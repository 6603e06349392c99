//! `meshplan explain PLAN --without CLUSTER...`: what a user sees when clusters go down.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::path::PathBuf;

const SPLIT: &str = "tests/fixtures/ok/bookinfo-split.toml";
const REGIONS: &str = "tests/fixtures/whatif/two-regions.toml";

#[path = "support/run.rs"]
mod run;
use run::meshplan;

/// stdout of a successful `explain PLAN --without ...`.
fn without(plan: &str, clusters: &[&str], format: &str) -> String {
    let mut args = vec!["explain", plan, "--format", format, "-q"];
    for c in clusters {
        args.extend(["--without", c]);
    }
    run::stdout_of_success(&args)
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn json(plan: &str, clusters: &[&str]) -> serde_json::Value {
    serde_json::from_str(&without(plan, clusters, "json")).unwrap()
}

#[test]
fn a_service_hosted_only_in_the_lost_cluster_has_no_endpoints() {
    let w = json(SPLIT, &["books-front"]);
    let lost = &w["no_endpoints"];
    assert_eq!(lost.as_array().unwrap().len(), 1, "{w:#}");
    assert_eq!(lost[0]["service"], "productpage.bookinfo-demo");
    assert_eq!(lost[0]["clusters"], serde_json::json!(["books-front"]));
    snapshot(
        "what-if-text@bookinfo-split-without-books-front",
        &without(SPLIT, &["books-front"], "text"),
    );
    snapshot(
        "what-if-markdown@bookinfo-split-without-books-front",
        &without(SPLIT, &["books-front"], "markdown"),
    );
}

#[test]
fn a_failover_goes_to_the_planned_region_and_its_clusters() {
    let w = json(SPLIT, &["books-back"]);
    let routes = w["failovers"].as_array().unwrap();
    let reviews = routes
        .iter()
        .find(|r| r["service"] == "reviews.bookinfo-demo")
        .unwrap();
    assert_eq!(reviews["from"], "us-west");
    assert_eq!(reviews["to"], "us-east");
    assert_eq!(reviews["clusters"], serde_json::json!(["books-front"]));
    assert_eq!(reviews["by"], "failover");
    // Outlier detection without a failover list: Istio's locality order, any region.
    let details = routes
        .iter()
        .find(|r| r["service"] == "details.bookinfo-demo")
        .unwrap();
    assert_eq!(details["to"], serde_json::Value::Null);
    assert_eq!(details["by"], "locality order");
    assert!(w["no_endpoints"].as_array().unwrap().is_empty());
}

#[test]
fn a_lost_primary_leaves_its_remotes_without_control_plane() {
    let w = json(SPLIT, &["books-front"]);
    assert_eq!(
        w["remotes_without_control_plane"],
        serde_json::json!([{ "remote": "books-back", "primary": "books-front" }])
    );
    let text = without(SPLIT, &["books-front"], "text");
    assert!(
        text.contains(
            "books-back (primary books-front): existing proxies keep their last configuration"
        ),
        "{text}"
    );
    // Losing the remote leaves the primary's control plane alone.
    let w = json(SPLIT, &["books-back"]);
    assert!(
        w["remotes_without_control_plane"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn two_clusters_lost_at_once() {
    let text = without(REGIONS, &["east-primary", "west-primary"], "text");
    snapshot("what-if-text@two-regions-without-both-primaries", &text);
    let w = json(REGIONS, &["east-primary", "west-primary"]);
    assert_eq!(
        w["without"],
        serde_json::json!(["east-primary", "west-primary"])
    );
    let networks: Vec<&str> = w["networks_without_eastwest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(networks, ["net-east", "net-west"]);
    assert_eq!(
        w["remotes_without_control_plane"].as_array().unwrap().len(),
        2
    );
    // A whole region lost: reviews fails over to the other region's two clusters; a service
    // without outlier detection spreads without locality preference.
    let w = json(REGIONS, &["east-primary", "east-remote"]);
    let routes = w["failovers"].as_array().unwrap();
    let reviews = routes
        .iter()
        .find(|r| r["service"] == "reviews.shop")
        .unwrap();
    assert_eq!(reviews["to"], "us-west");
    assert_eq!(
        reviews["clusters"],
        serde_json::json!(["west-primary", "west-remote"])
    );
    let payments = routes
        .iter()
        .find(|r| r["service"] == "payments.shop")
        .unwrap();
    assert_eq!(payments["by"], "no outlier detection");
    let lost: Vec<&str> = w["no_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(lost, ["ratings.shop", "ledger.shop"]);
    snapshot(
        "what-if-markdown@two-regions-without-the-east",
        &without(REGIONS, &["east-primary", "east-remote"], "markdown"),
    );
}

#[test]
fn an_unknown_cluster_is_an_error_naming_the_nearest() {
    let out = meshplan(&["explain", SPLIT, "--without", "books-frnt", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no cluster `books-frnt`"), "{stderr}");
    assert!(stderr.contains("did you mean `books-front`?"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn explain_without_without_lists_the_services() {
    let text = String::from_utf8(meshplan(&["explain", SPLIT, "-q"]).stdout).unwrap();
    assert!(text.contains("Services\n"), "{text}");
    assert!(
        text.contains("reviews.bookinfo-demo      9080  books-front, books-back  mesh     us-east→us-west, us-west→us-east"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&meshplan(&["explain", SPLIT, "--format", "json", "-q"]).stdout)
            .unwrap();
    assert_eq!(json["mesh_id"], "books-mesh");
}

/// The shipped ambient plan with its second cluster in another region and `extra` appended.
fn ambient_plan(name: &str, extra: &str) -> String {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans/ambient-multi-network.toml"),
    )
    .unwrap()
    .replace(
        "region = \"eu-west\"\nzone = \"eu-west-b\"",
        "region = \"eu-north\"\nzone = \"eu-north-b\"",
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("what-if");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Ambient without a waypoint: ztunnel does no locality failover (a plan asking for one is
/// refused, `meshplan::service::ambient_needs_waypoint`), so losing a region is reported as
/// ztunnel spreading over what is left, not as Istio's sidecar behaviour.
#[test]
fn ambient_reports_no_failover_that_ztunnel_does_not_do() {
    let plan = ambient_plan(
        "ambient-failover",
        "[[service]]\nname = \"reviews\"\nnamespace = \"shop\"\nport = 9080\n\
         clusters = [\"cluster1\", \"cluster2\"]\n",
    );
    let w = json(&plan, &["cluster1"]);
    let route = &w["failovers"][0];
    assert_eq!(route["service"], "reviews.shop", "{w:#}");
    assert_eq!(route["to"], serde_json::Value::Null, "{w:#}");
    assert_eq!(
        route["by"], "ztunnel: no failover without a waypoint",
        "{w:#}"
    );
    assert_eq!(route["clusters"], serde_json::json!(["cluster2"]));
    let refused = meshplan(&[
        "check",
        &ambient_plan(
            "ambient-outlier",
            "[[service]]\nname = \"reviews\"\nnamespace = \"shop\"\nport = 9080\n\
             clusters = [\"cluster1\", \"cluster2\"]\n[service.outlier]\nconsecutive_5xx = 2\n",
        ),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("meshplan::service::ambient_needs_waypoint")
    );
}
