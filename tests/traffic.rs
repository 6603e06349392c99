//! `meshplan explain PLAN --traffic`: what each client cluster reaches, and the verify scripts
//! that check it on a running mesh.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "support/run.rs"]
mod run;
use run::meshplan;

const SPLIT: &str = "tests/fixtures/ok/bookinfo-split.toml";
const REGIONS: &str = "tests/fixtures/whatif/two-regions.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(args: &[&str]) -> String {
    run::stdout_of_success(args)
}

fn traffic(plan: &str, extra: &[&str]) -> Value {
    let mut args = vec!["explain", plan, "--traffic", "--format", "json", "-q"];
    args.extend(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// The clusters of each tier of `service` as `client` sees it.
fn tiers(t: &Value, service: &str, client: &str) -> Vec<Vec<String>> {
    let s = t["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no {service}: {t:#}"));
    let c = s["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client"] == client)
        .unwrap_or_else(|| panic!("no client {client} of {service}: {t:#}"));
    c["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tier| {
            tier["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["cluster"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn bookinfo_split_keeps_each_region_on_its_own_reviews() {
    let t = traffic(SPLIT, &[]);
    assert_eq!(
        tiers(&t, "reviews.bookinfo-demo", "books-front"),
        [vec!["books-front"], vec!["books-back"]]
    );
    assert_eq!(
        tiers(&t, "reviews.bookinfo-demo", "books-back"),
        [vec!["books-back"], vec!["books-front"]]
    );
    // Cluster-local: books-back reaches no productpage.
    assert!(tiers(&t, "productpage.bookinfo-demo", "books-back").is_empty());
    // No [[service]] for helloworld: no outlier detection, one tier.
    assert_eq!(
        tiers(&t, "helloworld.bookinfo-demo", "books-front"),
        [vec!["books-front", "books-back"]]
    );
    snapshot(
        "traffic-text@bookinfo-split",
        &ok(&["explain", SPLIT, "--traffic", "-q"]),
    );
    snapshot(
        "traffic-markdown@bookinfo-split",
        &ok(&["explain", SPLIT, "--traffic", "--format", "markdown", "-q"]),
    );
}

#[test]
fn zones_regions_failover_and_east_west_gateways_order_the_tiers() {
    let t = traffic(REGIONS, &["--from", "east-remote"]);
    assert_eq!(
        tiers(&t, "reviews.shop", "east-remote"),
        [
            vec!["east-remote"],
            vec!["east-primary"],
            vec!["west-primary", "west-remote"]
        ]
    );
    let services = t["services"].as_array().unwrap();
    let reviews = services
        .iter()
        .find(|s| s["service"] == "reviews.shop")
        .unwrap();
    let west = &reviews["clients"][0]["tiers"][2];
    assert_eq!(west["why"], "failover us-east → us-west");
    assert_eq!(
        west["endpoints"][0]["via"],
        serde_json::json!(["192.168.20.10:15443"])
    );
    // Only the client asked for.
    assert!(
        services
            .iter()
            .all(|s| s["clients"].as_array().unwrap().len() == 1)
    );
    snapshot(
        "traffic-text@two-regions-from-east-remote",
        &ok(&[
            "explain",
            REGIONS,
            "--traffic",
            "--from",
            "east-remote",
            "-q",
        ]),
    );
}

/// A plan in three regions, with `edit` applied to its text.
fn three_regions(edit: impl Fn(String) -> String, name: &str) -> PathBuf {
    let text = fs::read_to_string(root().join(REGIONS)).unwrap();
    let text = text.replace(
        "failover = [{ from = \"us-east\", to = \"us-west\" }, { from = \"us-west\", to = \"us-east\" }]",
        "failover = [{ from = \"us-east\", to = \"us-west\" }]",
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("traffic");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, edit(text)).unwrap();
    path
}

/// Dropping the outlier detection flattens the tiers; flipping the failover target swaps them.
#[test]
fn the_tiers_follow_outlier_detection_and_the_failover_target() {
    let plan = three_regions(|t| t, "baseline");
    let t = traffic(plan.to_str().unwrap(), &["--service", "ratings"]);
    assert_eq!(
        tiers(&t, "ratings.shop", "west-primary"),
        [vec!["east-primary", "east-remote"]]
    );
    assert_eq!(
        tiers(&t, "ratings.shop", "east-remote"),
        [vec!["east-remote"], vec!["east-primary"]]
    );
    let flat = three_regions(
        |t| t.replace("[service.outlier]\nconsecutive_5xx = 2\n", ""),
        "no-outlier",
    );
    let t = traffic(flat.to_str().unwrap(), &["--service", "ratings"]);
    assert_eq!(
        tiers(&t, "ratings.shop", "east-remote"),
        [vec!["east-primary", "east-remote"]]
    );

    // reviews runs in both regions; a third region's clients fail over to us-east, then to
    // us-west. Flipping the target swaps the two.
    let third = |to: &'static str| {
        move |t: String| {
            t.replace(
                "failover = [{ from = \"us-east\", to = \"us-west\" }]",
                &format!(
                    "failover = [{{ from = \"us-east\", to = \"us-west\" }}, {{ from = \"eu\", to = \"{to}\" }}]"
                ),
            )
            .replace(
                "region = \"us-west\"\nzone = \"us-west-2b\"",
                "region = \"eu\"\nzone = \"eu-1a\"",
            )
        }
    };
    let to_east = three_regions(third("us-east"), "eu-to-east");
    let t = traffic(to_east.to_str().unwrap(), &["--service", "reviews"]);
    assert_eq!(
        tiers(&t, "reviews.shop", "west-remote"),
        [
            vec!["west-remote"],
            vec!["east-primary", "east-remote"],
            vec!["west-primary"]
        ]
    );
    let to_west = three_regions(third("us-west"), "eu-to-west");
    let t = traffic(to_west.to_str().unwrap(), &["--service", "reviews"]);
    assert_eq!(
        tiers(&t, "reviews.shop", "west-remote"),
        [
            vec!["west-remote"],
            vec!["west-primary"],
            vec!["east-primary", "east-remote"]
        ]
    );
}

#[test]
fn an_unknown_service_or_client_is_refused_with_the_nearest_name() {
    let out = meshplan(&["explain", SPLIT, "--traffic", "--service", "review", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did you mean `reviews.bookinfo-demo`?"),
        "{err}"
    );
    let out = meshplan(&["explain", SPLIT, "--traffic", "--from", "books", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster `books`"));
}

/// The versions a generated verify script expects (`expect 'v1'` lines).
fn expected(script: &Path) -> Vec<String> {
    fs::read_to_string(script)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("expect '")?.strip_suffix('\''))
        .map(str::to_owned)
        .collect()
}

/// The versions of the first tier of `service` from `client`, with the clusters they run in.
fn first_tier(t: &Value, service: &str, client: &str) -> Vec<(String, Vec<String>)> {
    t["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["service"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{service}."))
        })
        .flat_map(|s| s["clients"].as_array().unwrap().iter())
        .filter(|c| c["client"] == client)
        .filter_map(|c| c["tiers"].as_array().unwrap().first())
        .flat_map(|tier| tier["endpoints"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["cluster"].as_str().unwrap().to_owned(),
                e["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// Every plan and fixture: each verify script expects exactly what `explain --traffic` says its
/// cluster reaches first (helloworld from the sleep client; reviews from the productpage the
/// gateway reaches), so no script waits for a version its cluster does not get.
#[test]
fn every_verify_script_expects_what_the_model_says_its_cluster_reaches() {
    let mut plans = Vec::new();
    for dir in [
        "plans",
        "tests/fixtures/ok",
        "tests/fixtures/warn",
        "tests/fixtures/whatif",
    ] {
        for entry in fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                plans.push(path);
            }
        }
    }
    plans.sort();
    let mut checked = 0;
    for plan in plans {
        let name = plan
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("traffic-build")
            .join(name.replace('/', "_"));
        let _ = fs::remove_dir_all(&out);
        ok(&["build", &name, "-o", out.to_str().unwrap(), "-q"]);
        let t = traffic(&name, &[]);
        for cluster in fs::read_dir(&out).unwrap() {
            let dir = cluster.unwrap().path();
            let client = dir.file_name().unwrap().to_str().unwrap().to_owned();
            let hello = dir.join("scripts/verify.sh");
            if hello.exists() {
                let mut model: Vec<String> = first_tier(&t, "helloworld", &client)
                    .into_iter()
                    .flat_map(|(_, v)| v)
                    .collect();
                model.dedup();
                assert_eq!(
                    expected(&hello),
                    model,
                    "{name}: {client}/scripts/verify.sh"
                );
                checked += 1;
            }
            let bookinfo = dir.join("scripts/verify-bookinfo.sh");
            if bookinfo.exists() {
                let mut reached: Vec<String> = first_tier(&t, "productpage", &client)
                    .into_iter()
                    .flat_map(|(page, _)| first_tier(&t, "reviews", &page))
                    .flat_map(|(_, v)| v)
                    .collect();
                reached.sort();
                reached.dedup();
                let wants = expected(&bookinfo);
                assert!(!wants.is_empty(), "{name}: {client}: expects nothing");
                for v in &wants {
                    assert!(
                        reached.contains(v),
                        "{name}: {client}/scripts/verify-bookinfo.sh expects reviews-{v}; the model reaches {reached:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} verify scripts");
}

/// Ambient: a `[[service]]` making the helloworld sample cluster-scoped leaves its Service
/// unlabelled `istio.io/global` (ztunnel then keeps it in its cluster), and each cluster's
/// verify.sh expects its own version only.
#[test]
fn an_ambient_cluster_scoped_sample_is_never_labelled_global() {
    let text = fs::read_to_string(root().join("plans/ambient-multi-network.toml")).unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("traffic-ambient");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let build = |name: &str, extra: &str| -> PathBuf {
        let plan = dir.join(format!("{name}.toml"));
        fs::write(&plan, format!("{text}\n{extra}")).unwrap();
        let out = dir.join(name);
        ok(&[
            "build",
            plan.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ]);
        out
    };
    let global = build("global", "");
    let local = build(
        "local",
        "[[service]]\nname = \"helloworld\"\nnamespace = \"sample\"\nport = 5000\n\
         clusters = [\"cluster1\", \"cluster2\"]\nscope = \"cluster\"\n",
    );
    let samples = |out: &Path| fs::read_to_string(out.join("cluster1/samples.yaml")).unwrap();
    assert!(samples(&global).contains("istio.io/global: \"true\""));
    assert!(
        !samples(&local).contains("istio.io/global"),
        "{}",
        samples(&local)
    );
    assert_eq!(
        expected(&global.join("cluster1/scripts/verify.sh")),
        ["v1", "v2"]
    );
    assert_eq!(expected(&local.join("cluster1/scripts/verify.sh")), ["v1"]);
    assert_eq!(expected(&local.join("cluster2/scripts/verify.sh")), ["v2"]);
}
