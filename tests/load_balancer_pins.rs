//! Every LoadBalancer Service a tree makes on a MetalLB cluster, as it will exist on the cluster,
//! passes MetalLB's own rule for a requested address and asks for a planned one.
//!
//! "As it will exist": a Service the bundle declares, the Service an IstioOperator or a Helm
//! values file makes for a gateway, and the Service istiod deploys for an ambient east-west
//! Gateway (its gateway template: `spec.infrastructure.annotations` become the Service's
//! annotations and `spec.addresses[0]` its `spec.loadBalancerIP`; istio/istio 1.30.3
//! `manifests/charts/istio-control/istio-discovery/files/waypoint.yaml:318-357`, class
//! `istio-east-west` deployed with the `waypoint` template as type LoadBalancer,
//! `pilot/pkg/config/kube/gatewaycommon/classinfo.go:157-165`).
//!
//! The real MetalLB controller runs on these Services in `tests/real-tools/run.sh`; this test
//! states the one rule that broke the ambient plan where `cargo test` sees it.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use meshplan::Source;
use serde::Deserialize;
use serde_yaml::Value;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plans_and_ok_fixtures() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in ["plans", "tests/fixtures/ok"] {
        for entry in fs::read_dir(crate_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
}

/// path in the tree -> text.
fn build(plan: &Path) -> BTreeMap<String, String> {
    let source = Source::new(
        plan.display().to_string(),
        fs::read_to_string(plan).unwrap(),
    );
    let (_, output) = meshplan::compile(&source);
    output.unwrap().unwrap()
}

/// A LoadBalancer Service as it will exist on the cluster: what MetalLB reads of it.
#[derive(Debug)]
struct LbService {
    /// Where it comes from, for the failure message.
    origin: String,
    annotations: BTreeMap<String, String>,
    load_balancer_ip: Option<String>,
}

const ANNOTATION: &str = "metallb.io/loadBalancerIPs";
const DEPRECATED_ANNOTATION: &str = "metallb.universe.tf/loadBalancerIPs";

/// MetalLB's `getDesiredLbIPs` (metallb/metallb `controller/service.go`, v0.13.5:223-250,
/// v0.15.2:305-340, v0.16.2:314-349): the addresses a Service asks for, or MetalLB's refusal.
fn desired_lb_ips(svc: &LbService) -> Result<Vec<String>, String> {
    let annotation = svc
        .annotations
        .get(ANNOTATION)
        .or_else(|| svc.annotations.get(DEPRECATED_ANNOTATION))
        .filter(|v| !v.is_empty());
    let spec = svc.load_balancer_ip.as_ref().filter(|v| !v.is_empty());
    match (annotation, spec) {
        (None, None) => Ok(Vec::new()),
        (Some(_), Some(_)) => Err(format!(
            "service can not have both {ANNOTATION} and svc.Spec.LoadBalancerIP"
        )),
        (Some(list), None) => Ok(list.split(',').map(|ip| ip.trim().to_owned()).collect()),
        (None, Some(ip)) => Ok(vec![ip.clone()]),
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_owned(),
                        v.as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The LoadBalancer Services one file of a cluster's directory makes.
fn lb_services(path: &str, text: &str) -> Vec<LbService> {
    let mut found = Vec::new();
    if path.contains("/helm/") {
        // The istio/gateway chart's values: its Service is a LoadBalancer unless told otherwise.
        let values = documents(text).pop().unwrap_or(Value::Null);
        let service = &values["service"];
        if values["name"].is_string()
            && service["type"].as_str().unwrap_or("LoadBalancer") == "LoadBalancer"
        {
            found.push(LbService {
                origin: format!("{path} (istio/gateway chart values)"),
                annotations: string_map(&service["annotations"]),
                load_balancer_ip: string(&service["loadBalancerIP"]),
            });
        }
        return found;
    }
    for doc in documents(text) {
        match doc["kind"].as_str() {
            Some("Service") if doc["spec"]["type"].as_str() == Some("LoadBalancer") => {
                found.push(LbService {
                    origin: format!(
                        "{path}: Service {}",
                        doc["metadata"]["name"].as_str().unwrap()
                    ),
                    annotations: string_map(&doc["metadata"]["annotations"]),
                    load_balancer_ip: string(&doc["spec"]["loadBalancerIP"]),
                });
            }
            Some("Gateway")
                if doc["spec"]["gatewayClassName"].as_str() == Some("istio-east-west") =>
            {
                found.push(LbService {
                    origin: format!(
                        "{path}: the Service istiod deploys for Gateway {}",
                        doc["metadata"]["name"].as_str().unwrap()
                    ),
                    annotations: string_map(&doc["spec"]["infrastructure"]["annotations"]),
                    load_balancer_ip: string(&doc["spec"]["addresses"][0]["value"]),
                });
            }
            Some("IstioOperator") => {
                let gateways = doc["spec"]["components"]["ingressGateways"].as_sequence();
                for gw in gateways.into_iter().flatten() {
                    let k8s = &gw["k8s"];
                    let kind = k8s["service"]["type"].as_str().unwrap_or("LoadBalancer");
                    if gw["enabled"].as_bool() == Some(true) && kind == "LoadBalancer" {
                        found.push(LbService {
                            origin: format!("{path}: gateway {}", gw["name"].as_str().unwrap()),
                            annotations: string_map(&k8s["serviceAnnotations"]),
                            load_balancer_ip: string(&k8s["service"]["loadBalancerIP"]),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The plan's MetalLB clusters: name -> the addresses its `[cluster.lb]` plans.
fn metallb_clusters(plan: &Path) -> BTreeMap<String, Vec<String>> {
    let plan: toml::Value = toml::from_str(&fs::read_to_string(plan).unwrap()).unwrap();
    let mut clusters = BTreeMap::new();
    for cluster in plan["cluster"].as_array().unwrap() {
        let lb = cluster.get("lb");
        let via = lb.and_then(|lb| lb.get("via")).and_then(|v| v.as_str());
        let metallb = cluster.get("metallb").is_some() && via.is_none_or(|v| v == "metallb");
        if !metallb {
            continue;
        }
        let planned = ["istiod", "eastwest", "ingress"]
            .iter()
            .filter_map(|key| lb?.get(*key)?.as_str().map(str::to_owned))
            .collect();
        clusters.insert(cluster["name"].as_str().unwrap().to_owned(), planned);
    }
    clusters
}

fn cluster_services(tree: &BTreeMap<String, String>, cluster: &str) -> Vec<LbService> {
    tree.iter()
        .filter(|(path, _)| path.starts_with(&format!("{cluster}/")) && path.ends_with(".yaml"))
        .flat_map(|(path, text)| lb_services(path, text))
        .collect()
}

#[test]
fn the_ambient_east_west_service_asks_metallb_once_for_its_planned_address() {
    let plan = crate_root().join("plans/ambient-multi-network.toml");
    let tree = build(&plan);
    let clusters = metallb_clusters(&plan);
    assert_eq!(
        clusters.len(),
        2,
        "both clusters of the ambient plan use MetalLB"
    );
    for (cluster, planned) in &clusters {
        let text = &tree[&format!("{cluster}/eastwest-gateway.yaml")];
        let services = lb_services("eastwest-gateway.yaml", text);
        assert_eq!(services.len(), 1, "{cluster}: one east-west Gateway");
        assert_eq!(
            desired_lb_ips(&services[0]),
            Ok(planned.clone()),
            "{cluster}: the Service istiod deploys for the east-west Gateway, as MetalLB reads it ({:?})",
            services[0]
        );
    }
}

#[test]
fn every_load_balancer_service_on_a_metallb_cluster_asks_once_for_a_planned_address() {
    let mut checked = 0;
    for plan in plans_and_ok_fixtures() {
        let name = plan.file_name().unwrap().to_string_lossy().into_owned();
        let clusters = metallb_clusters(&plan);
        if clusters.is_empty() {
            continue;
        }
        let tree = build(&plan);
        for (cluster, planned) in &clusters {
            let mut asked: Vec<String> = Vec::new();
            for svc in cluster_services(&tree, cluster) {
                let ips = desired_lb_ips(&svc).unwrap_or_else(|reason| {
                    panic!("{name}: MetalLB refuses {}: {reason}", svc.origin)
                });
                assert_eq!(
                    ips.len(),
                    1,
                    "{name}: {} asks MetalLB for {ips:?}",
                    svc.origin
                );
                assert!(
                    planned.contains(&ips[0]),
                    "{name}: {} asks for {}, which {cluster}'s [cluster.lb] does not plan ({planned:?})",
                    svc.origin,
                    ips[0]
                );
                asked.extend(ips);
                checked += 1;
            }
            asked.sort();
            let mut want = planned.clone();
            want.sort();
            assert_eq!(
                asked, want,
                "{name}: {cluster}: every planned address asked for once"
            );
        }
    }
    assert!(checked >= 10, "only {checked} Services checked");
}
