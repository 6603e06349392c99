//! The bookinfo Gateway is reachable on the ingress Service's HTTP port (80) with either
//! installer: the Service's port 80 must reach the port the Gateway listens on in the pod. The
//! Helm gateway chart's own default (vendored: tests/data/schemas/istio/gateway-values.yaml)
//! maps 80 to 80, where a Gateway on 8080 receives nothing (issue 22, problem 3).

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// istioctl's default profile maps the ingress Service's 80 to 8080 (its IstioOperator's
/// `ingressGateways[].k8s.service` is left to that default in our files).
const ISTIOCTL_DEFAULT_HTTP_TARGET: u64 = 8080;

fn target_of_port_80(ports: &Value) -> Option<u64> {
    ports
        .as_sequence()?
        .iter()
        .find(|p| p["port"].as_u64() == Some(80))?["targetPort"]
        .as_u64()
}

fn chart_default_ports() -> Value {
    let text =
        std::fs::read_to_string(crate_root().join("tests/data/schemas/istio/gateway-values.yaml"))
            .unwrap();
    let values: Value = serde_yaml::from_str(&text).unwrap();
    // The vendored file is the chart's values.yaml: `_internal_defaults_do_not_set` holds them.
    let defaults = &values["_internal_defaults_do_not_set"];
    let base = if defaults.is_mapping() {
        defaults
    } else {
        &values
    };
    base["service"]["ports"].clone()
}

fn gateway_port(samples: &str) -> Option<u64> {
    samples
        .split("\n---\n")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .find(|doc| doc["kind"] == "Gateway" && doc["metadata"]["name"] == "bookinfo-gateway")
        .and_then(|gw| gw["spec"]["servers"][0]["port"]["number"].as_u64())
}

#[test]
fn productpage_is_reachable_on_the_ingress_service_port_80() {
    let chart_default = chart_default_ports();
    assert_eq!(
        target_of_port_80(&chart_default),
        Some(80),
        "the vendored chart's default changed; this test's premise is its 80 -> 80"
    );
    let mut checked = 0;
    for dir in ["plans", "tests/fixtures/ok"] {
        for entry in std::fs::read_dir(crate_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let source = meshplan::Source::new(path.to_string_lossy(), text);
            let (_, output) = meshplan::compile(&source);
            let output = output.unwrap().unwrap();
            for (name, samples) in output.iter().filter(|(n, _)| n.ends_with("/samples.yaml")) {
                let Some(listens) = gateway_port(samples) else {
                    continue;
                };
                let cluster = Path::new(name)
                    .parent()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let helm = output.get(&format!("{cluster}/helm/ingress-gateway.yaml"));
                let reaches = match helm {
                    Some(values) => {
                        let values: Value = serde_yaml::from_str(values).unwrap();
                        let ports = &values["service"]["ports"];
                        target_of_port_80(if ports.is_null() {
                            &chart_default
                        } else {
                            ports
                        })
                    }
                    None => Some(ISTIOCTL_DEFAULT_HTTP_TARGET),
                };
                assert_eq!(
                    reaches,
                    Some(listens),
                    "{}: {cluster}'s ingress Service port 80 does not reach the bookinfo Gateway's port",
                    path.display()
                );
                let verify = output
                    .get(&format!("{cluster}/scripts/verify-bookinfo.sh"))
                    .map(String::as_str)
                    .unwrap_or_default();
                assert!(
                    verify.is_empty()
                        || verify.contains(
                            "'http://istio-ingressgateway.istio-system.svc:80/productpage'"
                        ),
                    "{cluster}'s verify-bookinfo.sh does not go through the ingress Service"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "only {checked} bookinfo gateways found");
}
