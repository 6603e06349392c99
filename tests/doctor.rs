//! `doctor.sh`, the tree's read-only comparison of the live clusters with the plan, run against
//! a fake kubectl (`tests/support/fake-tools/live`) that answers from a live state written here:
//! the state a clean install leaves (what the bundle applies, what the load balancers assign),
//! then that state with one thing changed at a time. Every call doctor.sh makes is logged: none
//! may write.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

#[path = "support/run.rs"]
mod run;
use run::meshplan;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn every_plan() -> Vec<PathBuf> {
    let mut plans = Vec::new();
    for dir in ["plans", "tests/fixtures/ok"] {
        for entry in fs::read_dir(crate_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                plans.push(path);
            }
        }
    }
    plans.sort();
    plans
}

/// One answer of the fake kubectl.
#[derive(Clone)]
struct Answer {
    context: String,
    namespace: String,
    object: String,
    jsonpath: String,
    value: String,
}

fn answer(context: &str, namespace: &str, object: &str, jsonpath: &str, value: &str) -> Answer {
    Answer {
        context: context.to_owned(),
        namespace: namespace.to_owned(),
        object: object.to_owned(),
        jsonpath: jsonpath.to_owned(),
        value: value.to_owned(),
    }
}

const NETWORK: &str = "{.metadata.labels.topology\\.istio\\.io/network}";
const CLUSTER_ID: &str = "{.spec.template.spec.containers[0].env[?(@.name==\"CLUSTER_ID\")].value}";
const IMAGE: &str = "{.spec.template.spec.containers[0].image}";
const MESH: &str = "{.data.mesh}";
const SECRETS: &str = "{range .items[*]}{.metadata.name}{\"\\n\"}{end}";
const POOL: &str = "{.spec.addresses[*]}";
const BUNDLE_VERSION: &str =
    "{.metadata.annotations.gateway\\.networking\\.k8s\\.io/bundle-version}";
const ROOT: &str = "{.data.root-cert\\.pem}";
const GATEWAY_CRD: &str = "crd/gateways.gateway.networking.k8s.io";
const DEPLOYMENTS: &str = SECRETS;
const SLICES: &str = "{range .items[*]}{.metadata.namespace}/{.metadata.labels.kubernetes\\.io/service-name}{\" \"}{range .endpoints[*]}{.conditions.ready}{\",\"}{end}{\"\\n\"}{end}";

const ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----\nZmFrZS1yb290\n-----END CERTIFICATE-----\n";
const OTHER_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nb3RoZXItcm9vdA==\n-----END CERTIFICATE-----\n";

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a clean install of the plan leaves on the clusters, as kubectl shows it: from the plan
/// and the bundles meshplan resolves (the objects the install applies, the addresses the load
/// balancers assign as planned, the remote secrets remote-secrets.sh creates).
fn healthy(plan_path: &Path, tree: &Path) -> Vec<Answer> {
    let text = fs::read_to_string(plan_path).unwrap();
    let source = meshplan::Source::new(plan_path.to_string_lossy(), text);
    let plan = meshplan::check(&source).plan.unwrap();
    let mesh = meshplan::resolve::resolve(&plan, "plan.toml");
    let mut live = Vec::new();
    for c in &mesh.clusters {
        let ctx = c.context.as_str();
        let sys = "istio-system";
        live.push(answer(
            ctx,
            sys,
            "namespace/istio-system",
            NETWORK,
            &c.network,
        ));
        if c.is_primary {
            // istiod-<revision> and istio-<revision> for a plan with a revision.
            let istiod = format!("deployment/{}", mesh.istio.control_plane.istiod);
            live.push(answer(ctx, sys, &istiod, CLUSTER_ID, &c.name));
            let image = format!("{}/pilot:{}", mesh.istio.hub, mesh.istio.tag);
            live.push(answer(ctx, sys, &istiod, IMAGE, &image));
            let config = format!(
                "defaultConfig:\\n  discoveryAddress: istiod.istio-system.svc:15012\\n  meshId: {}\\nrootNamespace: istio-system\\ntrustDomain: {}\\n",
                mesh.id, mesh.trust_domain
            );
            let mesh_config = format!("configmap/{}", mesh.istio.control_plane.mesh_config);
            live.push(answer(ctx, sys, &mesh_config, MESH, &config));
            let secrets: String = c
                .watches
                .iter()
                .map(|w| format!("istio-remote-secret-{}\\n", w.name))
                .collect();
            live.push(answer(ctx, sys, "secrets", SECRETS, &secrets));
        }
        if let Some(pin) = &c.eastwest
            && let Some(wait) = &pin.wait_for
        {
            live.push(answer(
                ctx,
                sys,
                pin.wait_object,
                &wait.jsonpath,
                &wait.planned,
            ));
        }
        if let Some(m) = &c.metallb {
            let object = format!("ipaddresspools.metallb.io/{}", m.pool);
            live.push(answer(
                ctx,
                &m.namespace,
                &object,
                POOL,
                &m.addresses.join(" "),
            ));
        }
        if let Some(ambient) = &mesh.istio.ambient {
            let version = &ambient.gateway_api_version;
            live.push(answer(ctx, sys, GATEWAY_CRD, BUNDLE_VERSION, version));
        }
        live.push(answer(
            ctx,
            sys,
            "secret/cacerts",
            ROOT,
            &base64(ROOT_PEM.as_bytes()),
        ));
        let pem = ROOT_PEM.replace('\n', "\\n");
        live.push(answer(ctx, sys, "configmap/istio-ca-root-cert", ROOT, &pem));
        if c.is_primary {
            let rows = remote_cluster_rows(&c.name, c.watches.iter().map(|w| w.name.as_str()));
            live.push(answer(ctx, sys, "remote-clusters", "-", &rows));
        }
    }
    live.extend(installed_workloads(tree, &plan));
    live
}

/// `istioctl remote-clusters` of an istiod that synced its own cluster and every watched one,
/// as Istio's `writeMulticlusterStatus` prints it (istioctl/pkg/proxyconfig/clusters.go: a
/// tabwriter with padding 5, istiod's own cluster without a secret), newlines as `\n`.
fn remote_cluster_rows<'a>(own: &str, watched: impl Iterator<Item = &'a str>) -> String {
    let mut rows = vec![["NAME", "SECRET", "STATUS", "ISTIOD", "REVISION"].map(str::to_owned)];
    let pod = "istiod-7d4f8b9c6d-x2k8p";
    rows.push([own, "", "synced", pod, ""].map(str::to_owned));
    for name in watched {
        let secret = format!("istio-system/istio-remote-secret-{name}");
        rows.push([name, &secret, "synced", pod, ""].map(str::to_owned));
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap() + 5)
        .collect();
    rows.iter()
        .map(|r| {
            let mut line: String = (0..4)
                .map(|i| format!("{:w$}", r[i], w = widths[i]))
                .collect();
            line.push_str(&r[4]);
            line + "\\n"
        })
        .collect()
}

/// The Deployments of each cluster's samples.yaml (what `install.sh samples` applies), by name
/// and `app` label, and the ready EndpointSlices of every `[[service]]` where it runs: its
/// `clusters`, and where a sample Deployment of its name runs.
fn installed_workloads(tree: &Path, plan: &meshplan::model::Plan) -> Vec<Answer> {
    let mut live = Vec::new();
    for c in &plan.clusters {
        let mut names = Vec::new();
        let mut apps = Vec::new();
        if let Ok(text) = fs::read_to_string(tree.join(&c.name).join("samples.yaml")) {
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let doc = serde_yaml::Value::deserialize(doc).unwrap();
                if doc["kind"] == "Deployment" {
                    names.push(doc["metadata"]["name"].as_str().unwrap().to_owned());
                    let app = &doc["spec"]["template"]["metadata"]["labels"]["app"];
                    apps.push(app.as_str().unwrap().to_owned());
                }
            }
        }
        let listed: String = names.iter().map(|n| format!("{n}\\n")).collect();
        let samples = &plan.mesh.samples_namespace;
        live.push(answer(
            &c.context,
            samples,
            "deployments",
            DEPLOYMENTS,
            &listed,
        ));
        let slices: String = plan
            .services
            .iter()
            .filter(|s| {
                s.clusters.contains(&c.name) || (&s.namespace == samples && apps.contains(&s.name))
            })
            .map(|s| format!("{}/{} true,\\n", s.namespace, s.name))
            .collect();
        live.push(answer(&c.context, "*", "endpointslices", SLICES, &slices));
    }
    live
}

struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    log: Vec<String>,
}

/// Builds the plan into `dir/out`, afresh (a tree left by an older meshplan is replaced).
fn build(plan: &Path, dir: &Path) -> PathBuf {
    let tree = dir.join("out");
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let out = meshplan(&[
        "build",
        &plan.to_string_lossy(),
        "-o",
        &tree.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tree
}

/// Runs the tree's doctor.sh with `args` against `live`, with every tool it could call replaced
/// by the fake; `down` names contexts that do not answer.
fn doctor(tree: &Path, live: &[Answer], down: &[&str], args: &[&str]) -> Run {
    doctor_with(tree, live, down, args, &[])
}

/// [`doctor`], with `env` set for the script (e.g. `CERTS_DIR`).
fn doctor_with(
    tree: &Path,
    live: &[Answer],
    down: &[&str],
    args: &[&str],
    env: &[(&str, &Path)],
) -> Run {
    let scratch = tree.parent().unwrap().join("run");
    let _ = fs::remove_dir_all(&scratch);
    let bin = scratch.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let fake = crate_root().join("tests/support/fake-tools/live");
    for tool in ["kubectl", "istioctl", "helm", "gcloud", "curl"] {
        std::os::unix::fs::symlink(&fake, bin.join(tool)).unwrap();
    }
    let state: String = live
        .iter()
        .map(|a| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                a.context, a.namespace, a.object, a.jsonpath, a.value
            )
        })
        .collect();
    fs::write(scratch.join("live"), state).unwrap();
    let log = scratch.join("log");
    fs::write(&log, "").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out: Output = Command::new("bash")
        .arg(tree.join("doctor.sh"))
        .args(args)
        .env("PATH", path)
        .env("FAKE_LOG", &log)
        .env("FAKE_LIVE", scratch.join("live"))
        .env("FAKE_DOWN", down.join("\n"))
        .env_remove("MESHPLAN_SKIP_VERIFY")
        .env_remove("MESHPLAN_SKIP_REMOTE_CLUSTERS")
        .env_remove("CERTS_DIR")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        log: fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

/// The verb of a logged kubectl call: its first word that is neither a flag nor a flag's value.
fn verb(call: &str) -> Option<String> {
    let mut words = call.split(' ').skip(1);
    while let Some(word) = words.next() {
        match word {
            "--context" | "-n" | "--namespace" | "-o" | "-l" | "--selector" => {
                words.next();
            }
            w if w.starts_with('-') => {}
            w => return Some(w.to_owned()),
        }
    }
    None
}

fn scratch(test: &str, plan: &Path) -> PathBuf {
    let name = plan.file_stem().unwrap().to_string_lossy().into_owned();
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("doctor")
        .join(test)
        .join(name)
}

/// Every call doctor.sh can make is a read: on every plan, with the clusters as installed (every
/// check runs, verify-trust.sh included), with each difference below (each takes its own path
/// through the script), and with every cluster down.
#[test]
fn every_call_doctor_makes_is_a_read() {
    for plan in every_plan() {
        let tree = build(&plan, &scratch("reads", &plan));
        let live = healthy(&plan, &tree);
        let mut runs = vec![doctor(&tree, &live, &[], &[])];
        let healthy_run = &runs[0];
        assert_eq!(
            healthy_run.status,
            Some(0),
            "{}: doctor.sh on a clean install:\n{}{}",
            plan.display(),
            healthy_run.stdout,
            healthy_run.stderr
        );
        assert!(
            healthy_run.stdout.contains("clusters match the plan"),
            "{}",
            healthy_run.stdout
        );
        for (_, mutate) in mutations() {
            let mut changed = live.clone();
            mutate(&mut changed);
            runs.push(doctor(&tree, &changed, &[], &["--json"]));
        }
        let contexts: Vec<&str> = live.iter().map(|a| a.context.as_str()).collect();
        runs.push(doctor(&tree, &[], &contexts, &[]));
        for run in &runs {
            assert!(!run.log.is_empty(), "{}: no call logged", plan.display());
            for call in &run.log {
                // istiod's debug/clusterz, through a port-forward to its pod: no object changes.
                if call.starts_with("istioctl remote-clusters --context ") {
                    continue;
                }
                assert!(
                    call.starts_with("kubectl "),
                    "{}: doctor.sh called another tool than kubectl: {call}",
                    plan.display()
                );
                let verb = verb(call);
                assert!(
                    matches!(verb.as_deref(), Some("get" | "version")),
                    "{}: doctor.sh made a call that is not a read ({verb:?}): {call}",
                    plan.display()
                );
            }
        }
    }
}

type Mutation = fn(&mut Vec<Answer>);

/// Sets the first answer for `object` at `jsonpath`; `deployment/istiod` is also the Deployment of
/// a revision, `deployment/istiod-<revision>`.
fn set(live: &mut [Answer], object: &str, jsonpath: &str, value: &str) {
    let names = |a: &Answer| {
        a.object == object
            || (object == "deployment/istiod" && a.object.starts_with("deployment/istiod-"))
    };
    let a = live
        .iter_mut()
        .find(|a| names(a) && a.jsonpath == jsonpath)
        .unwrap_or_else(|| panic!("no {object} {jsonpath} in the live state"));
    a.value = value.to_owned();
}

fn value(live: &[Answer], object: &str, jsonpath: &str) -> String {
    live.iter()
        .find(|a| a.object == object && a.jsonpath == jsonpath)
        .map(|a| a.value.clone())
        .unwrap_or_default()
}

/// One change each, and the code it must yield, alone. The first matching object of the state
/// is changed (the first cluster that has it).
fn mutations() -> Vec<(&'static str, Mutation)> {
    vec![
        ("meshplan::live::network_label", |live| {
            set(live, "namespace/istio-system", NETWORK, "elsewhere")
        }),
        ("meshplan::live::istiod_config", |live| {
            set(live, "deployment/istiod", CLUSTER_ID, "Kubernetes")
        }),
        ("meshplan::live::istiod_version", |live| {
            set(
                live,
                "deployment/istiod",
                IMAGE,
                "docker.io/istio/pilot:1.19.0",
            )
        }),
        ("meshplan::live::remote_secret_stale", |live| {
            let held = value(live, "secrets", SECRETS);
            let held = format!("{held}istio-remote-secret-retired\\n");
            set(live, "secrets", SECRETS, &held)
        }),
        ("meshplan::live::remote_cluster_sync", |live| {
            // The first primary's row of the first cluster it watches (else its own).
            let rows = live
                .iter_mut()
                .find(|a| a.object == "remote-clusters")
                .unwrap();
            let mut lines: Vec<String> = rows.value.split("\\n").map(str::to_owned).collect();
            let row = if lines.len() > 3 { 2 } else { 1 };
            lines[row] = lines[row].replacen("synced ", "timeout", 1);
            rows.value = lines.join("\\n");
        }),
        ("meshplan::live::root_mismatch", |live| {
            let other = base64(OTHER_PEM.as_bytes());
            let last = live
                .iter_mut()
                .rev()
                .find(|a| a.object == "secret/cacerts")
                .unwrap();
            last.value = other;
        }),
    ]
}

/// The EndpointSlices kubectl lists in bookinfo-split's books-back.
fn books_back_slices(live: &mut [Answer]) -> &mut String {
    let a = live
        .iter_mut()
        .find(|a| a.context == "books-back" && a.object == "endpointslices")
        .unwrap();
    &mut a.value
}

/// Mutations of objects only some plans have: (plan, code, change).
fn plan_mutations() -> Vec<(&'static str, &'static str, Mutation)> {
    vec![
        (
            "tests/fixtures/ok/bookinfo-split.toml",
            "meshplan::live::placement",
            |live| {
                // books-back without its reviews-v3 Deployment.
                let held = "helloworld-v2\\nratings-v1\\nreviews-v2\\nsleep\\n";
                let a = live
                    .iter_mut()
                    .find(|a| a.context == "books-back" && a.object == "deployments")
                    .unwrap();
                a.value = held.to_owned();
            },
        ),
        (
            "tests/fixtures/ok/bookinfo-split.toml",
            "meshplan::live::placement",
            |live| {
                // productpage, planned in books-front only, ready in books-back too.
                books_back_slices(live).push_str("bookinfo-demo/productpage true,false,\\n");
            },
        ),
        (
            "tests/fixtures/ok/bookinfo-split.toml",
            "meshplan::live::placement",
            |live| {
                // details in books-back, planned there, with no endpoint ready.
                let slices = books_back_slices(live);
                *slices = slices.replace("/details true,", "/details false,");
            },
        ),
        (
            "plans/three-cloud-metallb.toml",
            "meshplan::live::remote_secret_missing",
            |live| {
                let held = value(live, "secrets", SECRETS);
                let kept = held.split_once("\\n").map(|(_, rest)| rest).unwrap_or("");
                set(live, "secrets", SECRETS, kept)
            },
        ),
        (
            "plans/three-cloud-metallb.toml",
            "meshplan::live::eastwest_address",
            |live| {
                set(
                    live,
                    "service/istio-eastwestgateway",
                    "{.status.loadBalancer.ingress[0].ip}",
                    "10.64.30.99",
                )
            },
        ),
        (
            "plans/three-cloud-metallb.toml",
            "meshplan::live::metallb_pool",
            |live| {
                let object = live
                    .iter()
                    .find(|a| a.object.starts_with("ipaddresspools.metallb.io/"))
                    .map(|a| a.object.clone())
                    .unwrap();
                set(live, &object, POOL, "10.64.30.60-10.64.30.80")
            },
        ),
        (
            "plans/ambient-multi-network.toml",
            "meshplan::live::gateway_api_version",
            |live| set(live, GATEWAY_CRD, BUNDLE_VERSION, "v1.0.0"),
        ),
    ]
}

/// The codes of a run, from its human text (`error[CODE]`) or its JSON lines.
fn codes(run: &Run, json: bool) -> Vec<String> {
    if json {
        run.stdout
            .lines()
            .map(|line| {
                let finding: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                for key in [
                    "code", "severity", "message", "help", "file", "cluster", "object",
                ] {
                    assert!(finding[key].is_string(), "{key} missing in {line}");
                }
                assert!(finding["labels"].is_array(), "{line}");
                finding["code"].as_str().unwrap().to_owned()
            })
            .collect()
    } else {
        run.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("error["))
            .filter_map(|l| l.split(']').next())
            .map(str::to_owned)
            .collect()
    }
}

fn assert_exactly(plan: &Path, tree: &Path, live: &[Answer], down: &[&str], code: &str, exit: i32) {
    for json in [false, true] {
        let args: &[&str] = if json { &["--json"] } else { &[] };
        let run = doctor(tree, live, down, args);
        assert_eq!(
            codes(&run, json),
            vec![code.to_owned()],
            "{}: expected exactly {code} (--json: {json}):\n{}{}",
            plan.display(),
            run.stdout,
            run.stderr
        );
        assert_eq!(run.status, Some(exit), "{}: {}", plan.display(), run.stdout);
    }
}

#[test]
fn each_difference_yields_exactly_its_code_in_both_formats() {
    let mut cases: Vec<(PathBuf, &str, Mutation)> = Vec::new();
    for plan in [
        "plans/three-cloud-metallb.toml",
        "plans/ambient-multi-network.toml",
    ] {
        for (code, mutate) in mutations() {
            cases.push((crate_root().join(plan), code, mutate));
        }
    }
    for (plan, code, mutate) in plan_mutations() {
        cases.push((crate_root().join(plan), code, mutate));
    }
    let mut trees = std::collections::BTreeMap::new();
    for (plan, code, mutate) in cases {
        let tree = trees
            .entry(plan.clone())
            .or_insert_with(|| build(&plan, &scratch("codes", &plan)))
            .clone();
        let mut live = healthy(&plan, &tree);
        mutate(&mut live);
        assert_exactly(&plan, &tree, &live, &[], code, 1);
    }
}

#[test]
fn a_cluster_that_cannot_be_read_exits_2_naming_it() {
    let plan = crate_root().join("plans/three-cloud-metallb.toml");
    let tree = build(&plan, &scratch("down", &plan));
    let live = healthy(&plan, &tree);
    assert_exactly(
        &plan,
        &tree,
        &live,
        &["mdemo-cluster2"],
        "meshplan::live::unreadable",
        2,
    );
    let run = doctor(&tree, &live, &["mdemo-cluster2"], &[]);
    assert!(
        run.stdout
            .contains("cluster mdemo-cluster2: context mdemo-cluster2 could not be read"),
        "{}",
        run.stdout
    );
}

/// What an operator reads: each finding names the cluster and the object, and says what the
/// plan expects and what was found; the JSON line carries the same.
#[test]
fn a_finding_reads_as_expected_versus_found() {
    let plan = crate_root().join("plans/three-cloud-metallb.toml");
    let tree = build(&plan, &scratch("text", &plan));
    let mut live = healthy(&plan, &tree);
    set(&mut live, "namespace/istio-system", NETWORK, "elsewhere");
    let human = doctor(&tree, &live, &[], &[]);
    let json = doctor(&tree, &live, &[], &["--json"]);
    let text = format!(
        "$ bash doctor.sh\n{}\n$ bash doctor.sh --json\n{}",
        human.stdout, json.stdout
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("doctor-network-label", text));
}

/// Every code doctor.sh can report is documented, and `meshplan explain-code` knows it.
#[test]
fn every_live_code_is_documented() {
    let tree = build(
        &crate_root().join("plans/ambient-multi-network.toml"),
        &scratch("docs", Path::new("ambient-multi-network.toml")),
    );
    let script = fs::read_to_string(tree.join("doctor.sh")).unwrap();
    let known: Vec<&str> = meshplan::resolve::doctor::CODES
        .iter()
        .map(|(code, _)| *code)
        .collect();
    for piece in script.split("meshplan::live::").skip(1) {
        let rule: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let code = format!("meshplan::live::{rule}");
        assert!(
            known.contains(&code.as_str()),
            "doctor.sh reports {code}, not in CODES"
        );
    }
    for code in known {
        let out = meshplan(&["explain-code", code]);
        assert!(
            out.status.success(),
            "explain-code {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(code), "{text}");
    }
}

/// With `CERTS_DIR`, the mesh's root is the CA directory's, not what most clusters carry: a
/// mesh that agrees on another root is reported cluster by cluster.
#[test]
fn the_ca_directory_names_the_mesh_root() {
    let plan = crate_root().join("plans/three-cloud-metallb.toml");
    let tree = build(&plan, &scratch("certs-dir", &plan));
    let mut live = healthy(&plan, &tree);
    for a in live.iter_mut().filter(|a| a.jsonpath == ROOT) {
        a.value = if a.object == "secret/cacerts" {
            base64(OTHER_PEM.as_bytes())
        } else {
            OTHER_PEM.replace('\n', "\\n")
        };
    }
    let agreed = doctor(&tree, &live, &[], &[]);
    assert_eq!(agreed.status, Some(0), "{}", agreed.stdout);
    let ca = tree.parent().unwrap().join("ca");
    fs::create_dir_all(&ca).unwrap();
    fs::write(ca.join("root-cert.pem"), ROOT_PEM).unwrap();
    let run = doctor_with(&tree, &live, &[], &["--json"], &[("CERTS_DIR", &ca)]);
    assert_eq!(run.status, Some(1), "{}", run.stdout);
    let mut named: Vec<(String, String)> = run
        .stdout
        .lines()
        .map(|line| {
            let f: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(f["code"], "meshplan::live::root_mismatch", "{line}");
            let cluster = f["cluster"].as_str().unwrap().to_owned();
            (cluster, f["object"].as_str().unwrap().to_owned())
        })
        .collect();
    named.sort();
    // Every cluster's Secret (cacerts.sh runs on each) and ConfigMap.
    let expected: Vec<(String, String)> = ["mdemo-cluster1", "mdemo-cluster2", "mdemo-cluster3"]
        .iter()
        .flat_map(|c| {
            ["configmap/istio-ca-root-cert", "secret/cacerts"]
                .map(|o| ((*c).to_owned(), o.to_owned()))
        })
        .collect();
    assert_eq!(named, expected, "{}", run.stdout);
}
