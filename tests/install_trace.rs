//! The install procedure as an operator runs it: each shipped plan's and multi-cluster
//! fixture's `install.sh`, with kubectl, istioctl, helm and gcloud replaced on PATH by a
//! recorder (`tests/support/fake-tools/fake`). The recorder logs every call, fakes only the
//! outputs the scripts read, and refuses a remote's gateway until a primary watches the remote,
//! as a real cluster does. The tests read the log for the order Istio's guides require.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/run.rs"]
mod run;
use run::meshplan;

use meshplan::model::Plan;
use meshplan::raw::Role;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn multi_cluster_plans() -> Vec<PathBuf> {
    let mut plans = Vec::new();
    for dir in ["plans", "tests/fixtures/ok"] {
        for entry in fs::read_dir(crate_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") && model(&path).clusters.len() > 1 {
                plans.push(path);
            }
        }
    }
    plans.sort();
    plans
}

fn model(path: &Path) -> Plan {
    let text = fs::read_to_string(path).unwrap();
    let source = meshplan::Source::new(path.to_string_lossy(), text);
    meshplan::check(&source).plan.unwrap()
}

/// A PATH directory where kubectl, istioctl, helm and gcloud are the recorder.
fn fake_bin(scratch: &Path) -> PathBuf {
    let bin = scratch.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let fake = crate_root().join("tests/support/fake-tools/fake");
    for tool in ["kubectl", "istioctl", "helm", "gcloud"] {
        let link = bin.join(tool);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&fake, &link).unwrap();
    }
    bin
}

/// CA files for every cluster, as `meshplan certs` lays them out.
fn certs_dir(scratch: &Path, plan: &Plan) -> PathBuf {
    let certs = scratch.join("certs");
    for c in &plan.clusters {
        let dir = certs.join(&c.name);
        fs::create_dir_all(&dir).unwrap();
        for file in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            fs::write(dir.join(file), "fake\n").unwrap();
        }
    }
    certs
}

struct Trace {
    ok: bool,
    log: Vec<String>,
    stderr: String,
}

/// Builds the plan and runs its `install.sh` against the recorder.
fn run_install(plan_path: &Path, test: &str) -> Trace {
    let version = model(plan_path).mesh.istio_version.to_string();
    run_install_with_istioctl(plan_path, test, &version)
}

/// The reviews versions planned anywhere in the mesh (the resolved samples carry them), as the
/// recorder renders productpage.
fn reviews_versions(plan: &Plan) -> Vec<&'static str> {
    let mesh = meshplan::resolve::resolve(plan, "plan.toml");
    mesh.clusters
        .iter()
        .find_map(|c| c.samples.as_ref())
        .map(|s| s.reviews_versions.clone())
        .unwrap_or_default()
}

/// Like [`run_install`], with an istioctl that reports `istioctl_version`.
fn run_install_with_istioctl(plan_path: &Path, test: &str, istioctl_version: &str) -> Trace {
    let plan = model(plan_path);
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("install-trace")
        .join(test);
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(scratch.join("state")).unwrap();
    let out = scratch.join("out");
    let built = meshplan(&[
        "build",
        plan_path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let log = scratch.join("calls.log");
    fs::write(&log, "").unwrap();
    let contexts: Vec<&str> = plan.clusters.iter().map(|c| c.context.as_str()).collect();
    let remotes: Vec<&str> = plan
        .clusters
        .iter()
        .filter(|c| c.role == Role::Remote)
        .map(|c| c.context.as_str())
        .collect();
    let versions: Vec<&str> = plan
        .clusters
        .iter()
        .filter_map(|c| c.samples.helloworld.as_deref())
        .collect();
    let reviews = reviews_versions(&plan);
    let path = format!(
        "{}:{}",
        fake_bin(&scratch).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg(out.join("install.sh"))
        .env("PATH", path)
        .env("CERTS_DIR", certs_dir(&scratch, &plan))
        .env("FAKE_LOG", &log)
        .env("FAKE_STATE", scratch.join("state"))
        .env("FAKE_CONTEXTS", contexts.join("\n"))
        .env("FAKE_REMOTE_CONTEXTS", remotes.join("\n"))
        .env("FAKE_HELLO_VERSIONS", versions.join(" "))
        .env("FAKE_REVIEWS_VERSIONS", reviews.join(" "))
        .env("FAKE_ISTIO_VERSION", istioctl_version)
        .env("MESHPLAN_SKIP_VERSION_CHECK", "")
        .output()
        .unwrap();
    Trace {
        ok: output.status.success(),
        log: fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Trace {
    /// Index of the first log line for which `matches` holds.
    fn first(&self, matches: impl Fn(&str) -> bool) -> Option<usize> {
        self.log.iter().position(|line| matches(line))
    }

    fn context_words(context: &str) -> [String; 2] {
        [
            format!("--context {context} "),
            format!("--kube-context {context} "),
        ]
    }

    /// First call on `context` whose line contains every one of `words`.
    fn first_on(&self, context: &str, words: &[&str]) -> Option<usize> {
        let on = Self::context_words(context);
        self.first(|line| {
            let line = format!("{line} ");
            on.iter().any(|c| line.contains(c.as_str())) && words.iter().all(|w| line.contains(w))
        })
    }
}

/// Every primary holds a remote secret for every other cluster, applied in its own
/// istio-system, made with `-n istio-system`.
fn assert_every_primary_watches_every_cluster(plan: &Path, trace: &Trace) {
    let plan_model = model(plan);
    let primaries = plan_model
        .clusters
        .iter()
        .filter(|c| c.role == Role::Primary);
    for primary in primaries {
        for watched in plan_model
            .clusters
            .iter()
            .filter(|c| c.name != primary.name)
        {
            let attached = format!("ATTACHED {} ON {}", watched.context, primary.context);
            assert!(
                trace.log.contains(&attached),
                "{}: {} never watches {}",
                plan.display(),
                primary.name,
                watched.name
            );
        }
    }
    let secrets = trace
        .log
        .iter()
        .filter(|l| l.starts_with("istioctl create-remote-secret"));
    for secret in secrets {
        assert!(secret.contains(" -n istio-system"), "{secret}");
    }
}

fn assert_order(plan: &Path, trace: &Trace) {
    let plan_model = model(plan);
    let name = plan.display();
    assert!(
        trace.ok,
        "{name}: install.sh failed\n{}\n{}",
        trace.stderr,
        trace.log.join("\n")
    );
    let missing: Vec<&String> = trace
        .log
        .iter()
        .filter(|l| l.starts_with("MISSING"))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: calls name files not in the tree: {missing:?}"
    );

    let version_check = trace.first(|l| l.starts_with("istioctl version")).unwrap();
    let first_istioctl = trace.first(|l| l.starts_with("istioctl ")).unwrap();
    assert_eq!(
        version_check, first_istioctl,
        "{name}: istioctl used before its version was checked"
    );

    for c in &plan_model.clusters {
        let ctx = c.context.as_str();
        let cacerts = trace
            .first_on(ctx, &["create secret generic cacerts"])
            .unwrap_or_else(|| panic!("{name}: no cacerts Secret on {ctx}"));
        let control_plane = trace
            .first_on(ctx, &["install", "istio/control-plane.yaml"])
            .or_else(|| trace.first_on(ctx, &["upgrade --install istiod "]))
            .unwrap_or_else(|| panic!("{name}: no control plane installed on {ctx}"));
        assert!(
            cacerts < control_plane,
            "{name}: {ctx}: cacerts after the control plane"
        );
        if c.role == Role::Primary {
            continue;
        }
        let attached = trace
            .first(|l| l.starts_with(&format!("ATTACHED {ctx} ON ")))
            .unwrap_or_else(|| panic!("{name}: remote {ctx} never attached to a primary"));
        for words in [
            &["gateway.yaml"][..],
            &["istio/gateway"][..],
            &["apply -f samples.yaml"][..],
        ] {
            if let Some(after) = trace.first_on(ctx, words) {
                assert!(
                    attached < after,
                    "{name}: {ctx}: `{}` before its primary watches it",
                    trace.log[after]
                );
            }
        }
    }
}

#[test]
fn every_multi_cluster_plan_installs_in_istios_order() {
    let plans = multi_cluster_plans();
    assert!(
        plans.len() >= 8,
        "expected the shipped plans and multi-cluster fixtures"
    );
    for plan in plans {
        let test = plan.file_stem().unwrap().to_string_lossy().into_owned();
        let trace = run_install(&plan, &test);
        assert_order(&plan, &trace);
        assert_every_primary_watches_every_cluster(&plan, &trace);
    }
}

#[test]
fn a_wrong_istioctl_stops_before_anything_changes() {
    let plan = crate_root().join("plans/three-cloud-metallb.toml");
    let trace = run_install_with_istioctl(&plan, "wrong-istioctl", "1.19.0");
    assert!(!trace.ok);
    assert!(
        trace.stderr.contains("istioctl on PATH is 1.19.0"),
        "{}",
        trace.stderr
    );
    assert!(
        trace.stderr.contains("MESHPLAN_SKIP_VERSION_CHECK=1"),
        "{}",
        trace.stderr
    );
    let calls = trace.log.join("\n");
    assert!(
        !calls.contains(" apply "),
        "something was applied:\n{calls}"
    );
    assert!(
        !calls.contains("istioctl install"),
        "something was installed:\n{calls}"
    );
}
