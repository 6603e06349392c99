//! Every outside fetch a built tree names comes from the plan: an image reference, a registry
//! path (`hub`, `imageRepository`, a chart's `image.repository`), a chart repository, an
//! `oci://` reference or a URL, in any file of the tree of every shipped plan and every ok and
//! warn fixture (the err fixtures build no tree).
//! Each must be on a host the plan names, or on one of the project's defaults; none may name a
//! location Istio retired in December 2026. A plan that sets mirrors gets only its own hosts.
//!
//! The upstream columns of `images.txt`, `charts.txt` and README.md's artifacts table are not
//! fetched by the tree (they say where a mirror copies from) and must be the defaults. What the
//! charts themselves render (`helm template` in tests/real-tools) is not scanned here: that needs
//! the real charts; the charts take every image from the `hub`/`global.hub` this scan checks.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use meshplan::model;
use meshplan::render::Output;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The plans that name a mirror for everything their tree fetches.
const MIRRORED: &[&str] = &[
    "plans/three-cloud-metallb.toml",
    "tests/fixtures/ok/closed-network-mirrors.toml",
];

/// Istio's retired locations, matched anywhere in the tree, comments included.
const RETIRED: &[&str] = &[
    "istio-release.storage.googleapis.com",
    "storage.googleapis.com/istio-release",
    "gcr.io/istio-release",
    "registry.istio.io",
];

/// Links to documentation pages (read by people, never fetched by a script).
const DOCUMENTATION: &[&str] = &["https://helm.sh/docs/intro/install/"];

/// One reference the tree makes, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    host: String,
    text: String,
    file: String,
    upstream: bool,
}

fn plans() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in ["plans", "tests/fixtures/ok", "tests/fixtures/warn"] {
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

fn relative(path: &Path) -> String {
    path.strip_prefix(crate_root())
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

fn build(text: &str) -> Output {
    let source = meshplan::Source::new("plan.toml", text);
    let (checked, output) = meshplan::compile(&source);
    assert!(checked.is_valid());
    output.unwrap().unwrap()
}

/// The host of a registry path or image reference (`docker.io` when the first component is
/// not a host, as container runtimes read it).
fn registry_host(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            first.split(':').next().unwrap().to_owned()
        }
        _ => "docker.io".to_owned(),
    }
}

/// The host of a URL (`https://`, `http://`, `oci://`).
fn url_host(text: &str) -> String {
    url::Url::parse(text)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_else(|| format!("<not a URL: {text}>"))
}

/// Every `scheme://...` in a text, up to the first character no URL here contains.
fn urls(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["https://", "http://", "oci://", "unix://"] {
        let mut rest = text;
        while let Some(at) = rest.find(scheme) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| c.is_whitespace() || "'\"`)(<>|,\\".contains(c))
                .unwrap_or(tail.len());
            found.push(tail[..end].trim_end_matches(['.', ';']).to_owned());
            rest = &tail[scheme.len()..];
        }
    }
    found
}

/// Registry paths and images in YAML: `image`, `hub`, `imageRepository` values.
fn yaml_registry_refs(value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, v) in map {
                let key = key.as_str().unwrap_or_default();
                if let (true, Some(text)) = (
                    matches!(key, "image" | "hub" | "imageRepository"),
                    v.as_str(),
                ) && text != "auto"
                {
                    out.push(text.to_owned());
                }
                yaml_registry_refs(v, out);
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| yaml_registry_refs(v, out)),
        _ => {}
    }
}

/// Every reference in a built tree.
fn references(tree: &Output) -> Vec<Reference> {
    let mut refs = Vec::new();
    let mut push = |host: String, text: &str, file: &str, upstream: bool| {
        refs.push(Reference {
            host,
            text: text.to_owned(),
            file: file.to_owned(),
            upstream,
        });
    };
    for (file, text) in tree {
        match file.as_str() {
            "images.txt" => {
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let (image, upstream) = line.split_once(' ').unwrap();
                    push(registry_host(image), image, file, false);
                    push(registry_host(upstream), upstream, file, true);
                }
                continue;
            }
            "charts.txt" => {
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let fields: Vec<&str> = line.split(' ').collect();
                    push(url_host(fields[2]), fields[2], file, false);
                    push(url_host(fields[3]), fields[3], file, true);
                }
                continue;
            }
            "README.md" => {
                // The artifacts table: fetched-from, then upstream.
                for row in artifact_rows(text) {
                    for (cell, upstream) in [(&row[1], false), (&row[2], true)] {
                        let host = if cell.contains("://") {
                            url_host(cell)
                        } else if cell.contains('/') {
                            registry_host(cell)
                        } else {
                            continue; // a file in the tree
                        };
                        push(host, cell, file, upstream);
                    }
                }
                let rest: String = text
                    .lines()
                    .filter(|l| !l.starts_with("| "))
                    .collect::<Vec<_>>()
                    .join("\n");
                for url in urls(&rest) {
                    push(url_host(&url), &url, file, false);
                }
                continue;
            }
            _ => {}
        }
        for url in urls(text) {
            push(url_host(&url), &url, file, false);
        }
        if file.ends_with(".yaml") {
            let mut found = Vec::new();
            for doc in serde_yaml::Deserializer::from_str(text) {
                let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
                yaml_registry_refs(&value, &mut found);
            }
            for reference in found {
                push(registry_host(&reference), &reference, file, false);
            }
        }
        if file.ends_with(".sh") {
            // `--set controller.image.repository=<registry path>/controller` (MetalLB).
            for word in text.split_whitespace() {
                if let Some((_, path)) = word.trim_matches('\'').split_once(".image.repository=") {
                    push(registry_host(path), path, file, false);
                }
            }
        }
    }
    refs
}

/// The rows of README.md's artifacts table, as cells.
fn artifact_rows(readme: &str) -> Vec<Vec<String>> {
    readme
        .split("\n## ")
        .find(|section| section.starts_with("Artifacts"))
        .map(|section| {
            section
                .lines()
                .filter(|l| {
                    l.starts_with("| ") && !l.starts_with("| artifact ") && !l.starts_with("| ---")
                })
                .map(|l| {
                    l.trim_matches('|')
                        .split(" | ")
                        .map(|c| c.trim().to_owned())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Hosts a plan names in any of its values.
fn plan_hosts(text: &str) -> BTreeSet<String> {
    fn walk(value: &toml::Value, out: &mut BTreeSet<String>) {
        match value {
            toml::Value::String(s) if s.contains("://") => {
                out.insert(url_host(s));
            }
            toml::Value::String(s) if s.contains('/') && !s.contains(char::is_whitespace) => {
                out.insert(registry_host(s));
            }
            toml::Value::Table(t) => t.values().for_each(|v| walk(v, out)),
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut hosts = BTreeSet::new();
    walk(&toml::from_str(text).unwrap(), &mut hosts);
    hosts
}

/// The hosts of meshplan's defaults: where each artifact comes from unless the plan says.
fn default_hosts() -> BTreeSet<String> {
    let mut hosts: BTreeSet<String> = [
        model::DEFAULT_ISTIO_CHARTS,
        model::DEFAULT_METALLB_CHARTS,
        model::GATEWAY_API_RELEASES,
        model::DEFAULT_ISTIOCTL,
    ]
    .iter()
    .map(|u| url_host(u))
    .collect();
    for hub in [
        model::DEFAULT_HUB,
        model::DEFAULT_METALLB_HUB,
        model::DEFAULT_KIND_HUB,
        model::DEFAULT_SAMPLES_HUB,
    ] {
        hosts.insert(registry_host(hub));
    }
    hosts
}

/// A Service of the cluster the call runs in (`NAME.NAMESPACE.svc`): nothing is fetched from
/// outside.
fn is_in_cluster(host: &str) -> bool {
    host.ends_with(".svc")
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whatever in a tree breaks the rules; empty when it keeps them.
fn violations(plan: &str, tree: &Output, mirrored: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, text) in tree {
        let lower = text.to_ascii_lowercase();
        for retired in RETIRED {
            if lower.contains(retired) {
                problems.push(format!("{file} names retired {retired}"));
            }
        }
    }
    let named = plan_hosts(plan);
    let defaults = default_hosts();
    for r in references(tree) {
        if r.text.starts_with("unix://") || DOCUMENTATION.contains(&r.text.as_str()) {
            continue;
        }
        let allowed = if r.upstream {
            defaults.contains(&r.host)
        } else {
            is_loopback(&r.host)
                || is_in_cluster(&r.host)
                || named.contains(&r.host)
                || (!mirrored && defaults.contains(&r.host))
        };
        if !allowed {
            problems.push(format!(
                "{}: `{}` ({}) is on {}, which the plan does not name{}",
                r.file,
                r.text,
                if r.upstream { "upstream" } else { "fetched" },
                r.host,
                if mirrored { " (it sets mirrors)" } else { "" }
            ));
        }
    }
    if mirrored {
        // Fetches the tree makes without naming them: kubeadm's default registry, kind's
        // default node image.
        for (file, text) in tree {
            if file.ends_with("platform/kubeadm.yaml") && !text.contains("imageRepository:") {
                problems.push(format!("{file} leaves kubeadm on its default registry"));
            }
            if file.ends_with("platform/kind.yaml") && !text.contains("image:") {
                problems.push(format!("{file} leaves kind on its default node image"));
            }
        }
    }
    problems
}

#[test]
fn every_fetch_in_every_tree_comes_from_the_plan_or_a_default() {
    let mut checked = 0;
    for path in plans() {
        let name = relative(&path);
        let text = fs::read_to_string(&path).unwrap();
        let tree = build(&text);
        let problems = violations(&text, &tree, MIRRORED.contains(&name.as_str()));
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
        checked += references(&tree).len();
    }
    assert!(
        checked > 500,
        "only {checked} references found: is the scan blind?"
    );
}

#[test]
fn a_mirrored_tree_names_its_mirrors_and_nothing_else() {
    for name in MIRRORED {
        let text = fs::read_to_string(crate_root().join(name)).unwrap();
        let tree = build(&text);
        let refs = references(&tree);
        let fetched: BTreeSet<&str> = refs
            .iter()
            .filter(|r| !r.upstream && !r.text.starts_with("unix://"))
            .map(|r| r.host.as_str())
            .collect();
        let defaults = default_hosts();
        let leaked: Vec<&&str> = fetched.iter().filter(|h| defaults.contains(**h)).collect();
        assert!(leaked.is_empty(), "{name} fetches from defaults {leaked:?}");
        // Each kind of reference was seen, so the scan covers what the tree holds.
        for file in ["images.txt", "README.md"] {
            assert!(
                refs.iter().any(|r| r.file == file && !r.upstream),
                "{name}: none in {file}"
            );
        }
    }
}

#[test]
fn the_scan_sees_a_default_a_mirrored_plan_forgets() {
    let name = "tests/fixtures/ok/closed-network-mirrors.toml";
    let text = fs::read_to_string(crate_root().join(name)).unwrap();
    for (key, host) in [
        ("metallb_hub", "quay.io"),
        ("istio_charts", "blob.istio.io"),
        ("gateway_api_crds", "github.com"),
        ("istioctl", "github.com"),
        ("kind_hub", "docker.io"),
        ("hub", "docker.io"),
    ] {
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} = ")))
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(without, text, "{key} is in the fixture");
        let problems = violations(&without, &build(&without), true);
        assert!(
            problems.iter().any(|p| p.contains(&format!(" on {host},"))),
            "without {key}, nothing on {host} was found: {problems:?}"
        );
        assert!(
            violations(&without, &build(&without), false).is_empty(),
            "{key}'s default is allowed in a plan that does not mirror"
        );
    }
}

#[test]
fn no_plan_can_name_a_retired_location() {
    for (key, value) in [
        ("hub", "gcr.io/istio-release"),
        ("hub", "registry.istio.io/release"),
        (
            "istio_charts",
            "https://istio-release.storage.googleapis.com/charts",
        ),
        ("istio_charts", "oci://gcr.io/istio-release/charts"),
    ] {
        let plan = format!(
            "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"1.30.3\"\n[mesh.artifacts]\n{key} = \"{value}\"\n\
             [[network]]\nid = \"n\"\n[[cluster]]\nname = \"c\"\nrole = \"primary\"\nnetwork = \"n\"\n\
             pod_cidr = \"10.1.0.0/16\"\nservice_cidr = \"10.2.0.0/16\"\n"
        );
        let checked = meshplan::check(&meshplan::Source::new("plan.toml", plan.as_str()));
        let codes: Vec<String> = checked.findings.iter().map(|f| f.code_str()).collect();
        assert!(!checked.is_valid(), "{value}");
        assert!(
            codes.contains(&"meshplan::artifacts::retired".to_owned()),
            "{value}: {codes:?}"
        );
    }
}

#[test]
fn every_version_gets_its_hub_written_out() {
    // Istio 1.30's own default hub is registry.istio.io (retired): every IstioOperator and
    // every Helm values file that selects images must name the hub, for every release.
    for release in meshplan::releases::istio_releases() {
        for installer in ["istioctl", "helm"] {
            let plan = format!(
                "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"{}.{}.1\"\ninstaller = \"{installer}\"\n\
                 [[network]]\nid = \"n\"\n[[cluster]]\nname = \"c\"\nrole = \"primary\"\nnetwork = \"n\"\n\
                 pod_cidr = \"10.1.0.0/16\"\nservice_cidr = \"10.2.0.0/16\"\n[cluster.lb]\neastwest = \"10.3.0.1\"\n\
                 ingress = \"10.3.0.2\"\nvia = \"external_ips\"\n",
                release.minor.0, release.minor.1
            );
            let tree = build(&plan);
            let files: Vec<&String> = tree
                .keys()
                .filter(|f| f.contains("/istio/") || f.ends_with("helm/istiod.yaml"))
                .collect();
            assert!(!files.is_empty());
            for file in files {
                assert!(
                    tree[file].contains("hub: \"docker.io/istio\""),
                    "{installer} {:?}: {file} names no hub",
                    release.minor
                );
            }
        }
    }
}
