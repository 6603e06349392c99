//! The install procedure as an operator runs it: each shipped plan's and multi-cluster
//! fixture's `install.sh`, with kubectl, istioctl, helm and gcloud replaced on PATH by a
//! recorder (`tests/support/fake-tools/fake`). The recorder logs every call, fakes only the
//! outputs the scripts read, and refuses a remote's gateway until a primary watches the remote,
//! as a real cluster does. The tests read the log for the order Istio's guides require.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/bump.rs"]
mod bump;
#[path = "support/run.rs"]
mod run;
#[path = "support/tools.rs"]
mod tools;
use bump::{bumped, upgrade_plans};
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

/// A PATH directory where kubectl, istioctl, helm, gcloud and sleep are the recorder, and
/// `bash` is `bash` when one is given (every generated script then runs under it: install.sh
/// calls the others as `bash FILE`).
fn fake_bin(scratch: &Path, bash: Option<&Path>, real_sleep: bool) -> PathBuf {
    let bin = scratch.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let fake = crate_root().join("tests/support/fake-tools/fake");
    let sleep = (!real_sleep).then_some("sleep");
    for tool in ["kubectl", "istioctl", "helm", "gcloud"]
        .into_iter()
        .chain(sleep)
    {
        let link = bin.join(tool);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&fake, &link).unwrap();
    }
    if let Some(bash) = bash {
        std::os::unix::fs::symlink(bash, bin.join("bash")).unwrap();
    }
    bin
}

/// CA files for every cluster, as `meshplan certs` lays them out, in `dir`; each holds its own
/// path.
fn certs_dir(dir: &Path, plan: &Plan) -> PathBuf {
    for c in &plan.clusters {
        let cluster = dir.join(&c.name);
        fs::create_dir_all(&cluster).unwrap();
        for file in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            // Each file names itself: the recorder logs what cacerts.sh made kubectl read.
            fs::write(
                cluster.join(file),
                format!("{}\n", cluster.join(file).display()),
            )
            .unwrap();
        }
    }
    dir.to_owned()
}

struct Trace {
    ok: bool,
    log: Vec<String>,
    stdout: String,
    stderr: String,
    /// Where the run happened: the tree is `out/`, the CA files `certs/`.
    scratch: PathBuf,
}

/// Builds the plan and runs its `install.sh` against the recorder.
fn run_install(plan_path: &Path, test: &str) -> Trace {
    Setup::default().run(plan_path, test)
}

/// The reviews versions planned anywhere in the mesh, as the recorder renders productpage for
/// a context it has no answer for.
fn reviews_versions(plan: &Plan) -> Vec<&'static str> {
    use meshplan::raw::Bookinfo;
    [
        (Bookinfo::ReviewsV1, "v1"),
        (Bookinfo::ReviewsV2, "v2"),
        (Bookinfo::ReviewsV3, "v3"),
    ]
    .into_iter()
    .filter(|(w, _)| plan.clusters.iter().any(|c| c.samples.bookinfo.contains(w)))
    .map(|(_, v)| v)
    .collect()
}

/// What a healthy mesh answers each cluster's verify scripts, as meshplan's traffic model
/// predicts it: `context TAB versions` lines for helloworld and for reviews.
fn healthy_answers(plan: &Plan) -> (String, String) {
    let mesh = meshplan::resolve::resolve(plan, "plan.toml");
    let mut hello = Vec::new();
    let mut reviews = Vec::new();
    for (c, bundle) in plan.clusters.iter().zip(&mesh.clusters) {
        let Some(samples) = &bundle.samples else {
            continue;
        };
        if let Some(expect) = &samples.verify {
            hello.push(format!("{}\t{}", c.context, expect.versions.join(" ")));
        }
        if let Some(expect) = &samples.verify_bookinfo {
            reviews.push(format!("{}\t{}", c.context, expect.versions.join(" ")));
        }
    }
    (hello.join("\n"), reviews.join("\n"))
}

/// The name a cloud gives a load balancer it creates: never the one planned.
fn invented_hostname(cluster: &str) -> String {
    format!("k8s-{cluster}-7f3a9c.elb.example.com")
}

/// `context TAB object TAB address` for every load-balanced address of the mesh, as the
/// recorder hands them out: the planned IP, or for a hostname the cloud's own name.
fn addresses(plan: &Plan) -> String {
    let mesh = meshplan::resolve::resolve(plan, "plan.toml");
    let mut lines = Vec::new();
    for c in &mesh.clusters {
        for pin in [&c.eastwest, &c.ingress, &c.istiod_lb]
            .into_iter()
            .flatten()
        {
            let address = if pin.address.parse::<std::net::IpAddr>().is_err() {
                invented_hostname(&c.name)
            } else {
                pin.address.clone()
            };
            lines.push(format!("{}\t{}\t{address}", c.context, pin.wait_object));
        }
    }
    lines.join("\n")
}

/// How install.sh is run: the defaults are a current kubectl, the plan's istioctl, the system
/// bash and an absolute CERTS_DIR; every value can be changed for one test.
#[derive(Default)]
struct Setup {
    /// The istioctl version the recorder reports (default: the plan's).
    istioctl: Option<String>,
    /// More environment, set last (it can override the recorder's).
    env: Vec<(String, String)>,
    /// The bash that runs every script.
    bash: Option<PathBuf>,
    /// CERTS_DIR as the operator gives it, relative to the directory install.sh is run from
    /// (`scratch/`); default the absolute `scratch/certs`.
    certs: Option<String>,
    /// The network namespace install.sh runs in (`ip netns exec`), with the real sleep.
    netns: Option<String>,
    /// Instead of install.sh: `meshplan upgrade` from the plan to this one (its text), then
    /// `upgrade.sh` run once with each of these argument lists, on clusters the install left
    /// attached.
    upgrade: Option<(String, Vec<Vec<String>>)>,
}

impl Setup {
    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn run(&self, plan_path: &Path, test: &str) -> Trace {
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
        let (hello_by_context, reviews_by_context) = healthy_answers(&plan);
        let path = format!(
            "{}:{}",
            fake_bin(&scratch, self.bash.as_deref(), self.netns.is_some()).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let certs = match &self.certs {
            Some(relative) => {
                certs_dir(&scratch.join(relative), &plan);
                relative.clone()
            }
            None => certs_dir(&scratch.join("certs"), &plan)
                .to_string_lossy()
                .into_owned(),
        };
        let (args, upgraded) = match &self.upgrade {
            Some((text, runs)) => {
                let version = compile_upgrade(plan_path, text, &scratch, &remotes);
                let runs: Vec<String> = runs
                    .iter()
                    .map(|args| format!("bash up/upgrade.sh {}", args.join(" ")))
                    .collect();
                (vec!["-c".to_owned(), runs.join(" && ")], Some(version))
            }
            None => (vec!["out/install.sh".to_owned()], None),
        };
        let istioctl = self
            .istioctl
            .clone()
            .or(upgraded)
            .unwrap_or_else(|| plan.mesh.istio_version.to_string());
        let bash = self.bash.clone().unwrap_or_else(|| PathBuf::from("bash"));
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).arg(bash);
                c
            }
            None => Command::new(bash),
        };
        let output = command
            .args(args)
            .current_dir(&scratch)
            .env("PATH", path)
            .env("CERTS_DIR", certs)
            .env("FAKE_LOG", &log)
            .env("FAKE_STATE", scratch.join("state"))
            .env("FAKE_CONTEXTS", contexts.join("\n"))
            .env("FAKE_REMOTE_CONTEXTS", remotes.join("\n"))
            .env("FAKE_HELLO_VERSIONS", versions.join(" "))
            .env("FAKE_REVIEWS_VERSIONS", reviews.join(" "))
            .env("FAKE_HELLO_BY_CONTEXT", hello_by_context)
            .env("FAKE_REVIEWS_BY_CONTEXT", reviews_by_context)
            .env("FAKE_ISTIO_VERSION", istioctl)
            .env("FAKE_ADDRESSES", addresses(&plan))
            .env("MESHPLAN_SKIP_VERSION_CHECK", "")
            .env("MESHPLAN_SKIP_VERIFY", "")
            // The recorder's clusters are not on this machine's network: nothing may be sent
            // to their planned addresses (the reachability test runs in its own namespace).
            .env("MESHPLAN_SKIP_REACHABILITY", "1")
            .env_remove("MESHPLAN_WAIT_TIMEOUT")
            .env_remove("CDPATH")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        Trace {
            ok: output.status.success(),
            log: fs::read_to_string(&log)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            scratch,
        }
    }
}

/// `meshplan upgrade PLAN new.toml -o up` in `scratch`, the remotes attached as the install
/// left them; returns the new Istio version.
fn compile_upgrade(plan_path: &Path, new_text: &str, scratch: &Path, remotes: &[&str]) -> String {
    let new_plan = scratch.join("new.toml");
    fs::write(&new_plan, new_text).unwrap();
    let up = scratch.join("up");
    let made = meshplan(&[
        "upgrade",
        "-q",
        plan_path.to_str().unwrap(),
        new_plan.to_str().unwrap(),
        "-o",
        up.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "meshplan upgrade {}: {}",
        plan_path.display(),
        String::from_utf8_lossy(&made.stderr)
    );
    for remote in remotes {
        fs::write(scratch.join("state").join(format!("attached-{remote}")), "").unwrap();
    }
    let source = meshplan::Source::new("new.toml", new_text);
    let checked = meshplan::check(&source);
    checked.plan.unwrap().mesh.istio_version.to_string()
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
        "{name}: install.sh failed\n{}\n{}\n{}",
        trace.stdout,
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
            // `istiod`, or `istiod-<revision>` for a plan with a revision.
            .or_else(|| trace.first_on(ctx, &["upgrade --install istiod"]))
            .unwrap_or_else(|| panic!("{name}: no control plane installed on {ctx}"));
        assert!(
            cacerts < control_plane,
            "{name}: {ctx}: cacerts after the control plane"
        );
        if let Some(revision) = &plan_model.mesh.revision {
            assert_default_tag_order(&plan_model, trace, c, revision, control_plane);
        }
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
        // Its samples wait until istiod has attached it (it writes istio-ca-root-cert then):
        // a remote secret just applied is not yet read, and until it is, the injection
        // webhook refuses the sample pods.
        if let Some(samples) = trace.first_on(ctx, &["apply -f samples.yaml"]) {
            let on = Trace::context_words(ctx);
            let before = trace.log[..samples]
                .iter()
                .rev()
                .find(|l| on.iter().any(|c| format!("{l} ").contains(c.as_str())));
            assert!(
                before.is_some_and(|l| l.contains("get configmap istio-ca-root-cert")),
                "{name}: {ctx}: samples applied without waiting for istiod to attach it (last call there: {before:?})"
            );
        }
    }
}

/// With a revision, the default revision tag is pointed at it on every cluster: after the
/// cluster's control plane, on a remote after every primary watches it (its webhook then has a
/// CA bundle and the primary's istiod injects through it), and before its samples, whose
/// namespace (`istio-injection: enabled`) only the tag serves.
fn assert_default_tag_order(
    plan: &Plan,
    trace: &Trace,
    c: &meshplan::model::Cluster,
    revision: &str,
    control_plane: usize,
) {
    let ctx = c.context.as_str();
    let tag = trace
        .first_on(ctx, &["istioctl tag set default --revision", revision])
        .unwrap_or_else(|| panic!("{ctx}: the default revision tag is never set"));
    assert!(
        trace.log[tag].contains(" --overwrite") && trace.log[tag].contains(" -y"),
        "{}",
        trace.log[tag]
    );
    assert!(
        control_plane < tag,
        "{ctx}: tag set before the control plane"
    );
    if c.role == Role::Remote {
        for primary in plan.clusters.iter().filter(|p| p.role == Role::Primary) {
            let attached = trace
                .first(|l| l == format!("ATTACHED {ctx} ON {}", primary.context))
                .unwrap_or_else(|| panic!("{ctx}: never attached to {}", primary.name));
            assert!(
                attached < tag,
                "{ctx}: tag set before {} watches it",
                primary.name
            );
        }
    }
    if let Some(samples) = trace.first_on(ctx, &["apply -f samples.yaml"]) {
        assert!(
            tag < samples,
            "{ctx}: samples applied before the tag was set"
        );
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
    let trace = Setup {
        istioctl: Some("1.19.0".to_owned()),
        ..Setup::default()
    }
    .run(&plan, "wrong-istioctl");
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

/// A failed run's whole account, for assertion messages.
fn account(trace: &Trace) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}\ncalls:\n{}",
        trace.stdout,
        trace.stderr,
        trace.log.join("\n")
    )
}

fn plan_path(name: &str) -> PathBuf {
    crate_root().join(name)
}

/// kubectl before 1.26 fails `wait --for=jsonpath=` at once when the field is not there yet
/// (kubernetes/kubectl#1236); the recorder does so with FAKE_KUBECTL_VERSION=1.25.16, and its
/// load balancers take a moment to get their address. Every install still goes through.
#[test]
fn every_install_waits_for_its_addresses_on_kubectl_1_25() {
    for plan in multi_cluster_plans() {
        let test = format!(
            "kubectl-1.25-{}",
            plan.file_stem().unwrap().to_string_lossy()
        );
        let trace = Setup::default()
            .env("FAKE_KUBECTL_VERSION", "1.25.16")
            .run(&plan, &test);
        assert_order(&plan, &trace);
    }
}

/// The three addresses three-cloud waits for were each read while still pending, and then
/// found: the waits poll rather than trust a first read.
#[test]
fn waits_poll_until_the_load_balancer_has_the_address() {
    let plan = plan_path("plans/three-cloud-metallb.toml");
    let trace = run_install(&plan, "poll");
    assert!(trace.ok, "{}", account(&trace));
    for object in [
        "PENDING service/istiod-lb ON mdemo-cluster1",
        "PENDING service/istio-eastwestgateway ON mdemo-cluster1",
        "PENDING service/istio-eastwestgateway ON mdemo-cluster3",
    ] {
        assert!(trace.log.iter().any(|l| l == object), "{}", account(&trace));
    }
    assert!(
        !trace
            .log
            .iter()
            .any(|l| l.contains(" wait ") && l.contains("jsonpath")),
        "a wait --for=jsonpath is left:\n{}",
        account(&trace)
    );
}

/// An address that never comes fails the install once MESHPLAN_WAIT_TIMEOUT has passed (the
/// recorder's sleep returns at once; the tries are counted), naming what was waited for.
#[test]
fn an_address_that_never_comes_fails_after_meshplan_wait_timeout() {
    let plan = plan_path("plans/three-cloud-metallb.toml");
    let trace = Setup::default()
        .env("FAKE_ADDRESSES", "")
        .env("MESHPLAN_WAIT_TIMEOUT", "20s")
        .run(&plan, "never");
    assert!(!trace.ok, "{}", account(&trace));
    assert!(
        trace.stderr.contains("service/istiod-lb")
            && trace.stderr.contains("10.64.30.71")
            && trace.stderr.contains("mdemo-cluster1")
            && trace.stderr.contains("20s")
            && trace.stderr.contains("MESHPLAN_WAIT_TIMEOUT"),
        "{}",
        account(&trace)
    );
    let sleeps = trace.log.iter().filter(|l| *l == "sleep 5").count();
    assert_eq!(sleeps, 4, "20s in 5 s tries:\n{}", account(&trace));
}

/// A cloud names a load balancer when it makes it: the install takes whatever hostname
/// appears, prints it and says what to do with it, instead of waiting for the planned one.
#[test]
fn a_hostname_load_balancer_takes_the_name_the_cloud_gives_it() {
    let plan = plan_path("tests/fixtures/ok/lb-hostname.toml");
    let trace = run_install(&plan, "hostname");
    assert!(trace.ok, "{}", account(&trace));
    for cluster in ["eks-east", "eks-west"] {
        let invented = invented_hostname(cluster);
        let said = trace
            .stdout
            .lines()
            .chain(trace.stderr.lines())
            .find(|l| l.contains(&invented))
            .unwrap_or_else(|| panic!("{invented} never printed\n{}", account(&trace)));
        assert!(said.contains("eastwest_hostname"), "{said}");
    }
}

/// `MESHPLAN_SKIP_VERIFY=1` skips every check of the running mesh, verify-trust.sh included,
/// as install.sh's header and the README say.
#[test]
fn meshplan_skip_verify_skips_verify_trust() {
    let plan = plan_path("plans/icp-single-network.toml");
    let trace = Setup::default()
        .env("MESHPLAN_SKIP_VERIFY", "1")
        .run(&plan, "skip-verify");
    assert!(trace.ok, "{}", account(&trace));
    let checks: Vec<&String> = trace
        .log
        .iter()
        .filter(|l| l.contains("get secret cacerts") || l.contains(" exec "))
        .collect();
    assert!(checks.is_empty(), "checks ran: {checks:?}");
}

/// bookinfo-split plans reviews to fail over from us-east to us-west with outlier detection, so
/// a healthy mesh keeps books-front's (us-east) productpage on its local reviews-v1: Envoy only
/// uses a lower priority when the local one is unhealthy. The install ends with every verify
/// step passing when the gateway sees exactly that (it expected v2 and v3 there before the
/// traffic model, and failed at its last step).
#[test]
fn bookinfo_split_verifies_the_planned_failover_tier() {
    let plan = plan_path("tests/fixtures/ok/bookinfo-split.toml");
    let trace = Setup::default()
        .env("FAKE_REVIEWS_BY_CONTEXT", "books-front\tv1")
        .run(&plan, "bookinfo-split-local-tier");
    assert!(trace.ok, "{}", account(&trace));
    assert!(
        trace.stdout.contains("reviews-v1: 30 of 30"),
        "{}",
        account(&trace)
    );
}

/// When the tiers flatten on a running mesh (no locality labels on the nodes, a DestinationRule
/// missing), books-front's gateway renders v2 and v3 too: verify-bookinfo.sh fails and says so.
#[test]
fn bookinfo_split_fails_when_the_gateway_leaves_its_tier() {
    let plan = plan_path("tests/fixtures/ok/bookinfo-split.toml");
    let trace = Setup::default()
        .env("FAKE_REVIEWS_BY_CONTEXT", "books-front\tv1 v2 v3")
        .run(&plan, "bookinfo-split-flat");
    assert!(!trace.ok, "{}", account(&trace));
    for version in ["v2", "v3"] {
        assert!(
            trace.stderr.contains(&format!(
                "verify-bookinfo.sh: reviews-{version} rendered productpage on books-front 10 times, which the plan does not expect"
            )),
            "{}",
            account(&trace)
        );
    }
}

/// A cluster whose root bundle holds the mesh's root and another fails verify-trust.sh, which
/// names it (the whole set of certificates is compared, not the first).
#[test]
fn verify_trust_names_a_cluster_whose_bundle_holds_a_second_root() {
    let plan = plan_path("plans/three-cloud-metallb.toml");
    let trace = Setup::default()
        .env("FAKE_EXTRA_ROOT_CONTEXTS", "mdemo-cluster2")
        .run(&plan, "second-root");
    assert!(!trace.ok, "{}", account(&trace));
    let named: Vec<&str> = trace
        .stderr
        .lines()
        .filter(|l| l.starts_with("verify-trust.sh: cluster "))
        .collect();
    assert!(!named.is_empty(), "{}", account(&trace));
    assert!(
        named
            .iter()
            .all(|l| l.starts_with("verify-trust.sh: cluster mdemo-cluster2:")),
        "{named:?}"
    );
}

/// A relative CERTS_DIR is the operator's: taken from the directory install.sh is run from,
/// made absolute once, and every script reads the same files.
#[test]
fn a_relative_certs_dir_is_read_from_the_operators_directory() {
    let plan = plan_path("plans/icp-single-network.toml");
    let trace = Setup {
        certs: Some("my-ca".to_owned()),
        ..Setup::default()
    }
    .run(&plan, "relative-certs");
    assert_order(&plan, &trace);
    for cluster in ["cluster-1", "cluster-2"] {
        let ca = trace
            .scratch
            .join("my-ca")
            .join(cluster)
            .join("ca-cert.pem");
        let read = format!("FROM-FILE ca-cert.pem={}", ca.display());
        assert!(trace.log.contains(&read), "{read}\n{}", account(&trace));
    }
}

/// Runs one cluster's cacerts.sh by itself, from `scratch/`, with `env`.
fn cacerts_alone(trace: &Trace, cluster: &str, env: &[(&str, &str)]) -> std::process::Output {
    let fakes = trace.scratch.join("bin");
    Command::new("bash")
        .arg(format!("out/{cluster}/scripts/cacerts.sh"))
        .current_dir(&trace.scratch)
        .env(
            "PATH",
            format!(
                "{}:{}",
                fakes.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("FAKE_LOG", trace.scratch.join("calls.log"))
        .env("FAKE_STATE", trace.scratch.join("state"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The operator's environment does not change what cacerts.sh reads: an exported CDPATH, a
/// CERTS_DIR that looks like an option of `cd`, and one with a `=` (kubectl refuses any path
/// with one in `--from-file`, "key names or file paths cannot contain '='", 1.25 to today).
#[test]
fn cacerts_sh_survives_cdpath_an_option_like_dir_and_an_equals_sign() {
    let plan = plan_path("plans/icp-single-network.toml");
    let trace = run_install(&plan, "cacerts-env");
    assert!(trace.ok, "{}", account(&trace));
    let plan_model = model(&plan);
    for dir in ["-P", "a=b", "x y"] {
        certs_dir(&trace.scratch.join(dir), &plan_model);
        fs::write(trace.scratch.join("calls.log"), "").unwrap();
        let out = cacerts_alone(
            &trace,
            "cluster-2",
            &[("CERTS_DIR", dir), ("CDPATH", ".:/tmp")],
        );
        assert!(
            out.status.success(),
            "CERTS_DIR={dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = fs::read_to_string(trace.scratch.join("calls.log")).unwrap();
        for file in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            let path = trace.scratch.join(dir).join("cluster-2").join(file);
            let read = format!("FROM-FILE {file}={}\n", path.display());
            assert!(calls.contains(&read), "CERTS_DIR={dir}: {read}{calls}");
        }
        assert!(!calls.contains("MISSING"), "CERTS_DIR={dir}:\n{calls}");
    }
}

/// cacerts.sh's hint for a CA directory that does not exist names it absolutely, so following
/// it from any directory makes the CA where cacerts.sh will look (never a second root).
#[test]
fn the_cacerts_hint_names_one_directory_wherever_it_is_followed() {
    let plan = plan_path("plans/icp-single-network.toml");
    let trace = run_install(&plan, "cacerts-hint");
    let out = cacerts_alone(&trace, "cluster-1", &[("CERTS_DIR", "../new-ca")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let absolute = trace.scratch.join("../new-ca");
    assert!(
        stderr.contains(&format!("--out {}", absolute.display())),
        "{stderr}"
    );
}

/// preflight.sh checks the GKE firewall's target tags against the project's instances, before
/// anything changes (a rule on a tag no node has admits nothing).
#[test]
fn preflight_refuses_a_target_tag_that_no_node_carries() {
    let plan = plan_path("plans/gke-single-network.toml");
    let trace = Setup::default()
        .env("FAKE_UNTAGGED", "gke-cluster-1-1a2b3c4d-node")
        .run(&plan, "untagged");
    assert!(!trace.ok, "{}", account(&trace));
    assert!(
        trace.stderr.contains("gke-cluster-1-1a2b3c4d-node"),
        "{}",
        account(&trace)
    );
    let changed: Vec<&String> = trace
        .log
        .iter()
        .filter(|l| l.contains(" apply ") || l.contains(" create") || l.contains(" install"))
        .collect();
    assert!(changed.is_empty(), "changed before preflight: {changed:?}");
}

/// A missing kubectl context is one problem: the checks that would need it (MetalLB's CRD on
/// that cluster) do not add a second, misleading one.
#[test]
fn preflight_does_not_cascade_from_a_missing_context() {
    let plan = plan_path("plans/three-cloud-metallb.toml");
    let trace = Setup::default()
        .env("FAKE_CONTEXTS", "mdemo-cluster1")
        .run(&plan, "missing-context");
    assert!(!trace.ok, "{}", account(&trace));
    for missing in ["mdemo-cluster2", "mdemo-cluster3"] {
        assert!(
            trace
                .stderr
                .contains(&format!("kubectl has no context {missing} ")),
            "{}",
            account(&trace)
        );
        assert!(
            !trace
                .stderr
                .contains(&format!("MetalLB is not installed on {missing}")),
            "{}",
            account(&trace)
        );
    }
    assert!(
        trace
            .stderr
            .contains("preflight.sh: 2 problem(s); nothing was changed"),
        "{}",
        account(&trace)
    );
}

/// The by-hand prerequisites are printed in the install order: ICP's external-IP VIP, GKE's
/// address reservations (and the firewall's target tags, which preflight checks).
#[test]
fn by_hand_prerequisites_are_printed_in_the_install_order() {
    let icp = run_install(&plan_path("plans/icp-single-network.toml"), "by-hand-icp");
    assert!(icp.ok, "{}", account(&icp));
    let by_hand = icp.stdout.split("== ").next().unwrap();
    assert!(
        by_hand.contains("172.16.160.100") && by_hand.contains("VIP"),
        "{by_hand}"
    );
    let gke = run_install(&plan_path("plans/gke-single-network.toml"), "by-hand-gke");
    assert!(gke.ok, "{}", account(&gke));
    let by_hand = gke.stdout.split("== ").next().unwrap();
    for address in ["10.142.0.100", "10.142.0.101"] {
        assert!(
            by_hand.contains(&format!("--addresses {address}")),
            "{by_hand}"
        );
    }
}

/// The bashes named in MESHPLAN_OLD_BASH (colon-separated paths, e.g. a bash 3.2 and 4.2 built
/// from source; see docs/testing.md) run every multi-cluster install, every script under
/// them. No package registry this project reaches ships an old bash, so the check is opt-in.
#[test]
fn old_bashes_run_every_install() {
    let Ok(list) = std::env::var("MESHPLAN_OLD_BASH") else {
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIP old bash installs: MESHPLAN_OLD_BASH names no bash (docs/testing.md)"
        );
        return;
    };
    for bash in list.split(':').filter(|b| !b.is_empty()) {
        let bash = PathBuf::from(bash);
        assert!(bash.is_file(), "{} is not a file", bash.display());
        for plan in multi_cluster_plans() {
            let test = format!(
                "old-bash-{}-{}",
                bash.parent()
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .unwrap_or_default()
                    .to_string_lossy(),
                plan.file_stem().unwrap().to_string_lossy()
            );
            let trace = Setup {
                bash: Some(bash.clone()),
                ..Setup::default()
            }
            .env("FAKE_KUBECTL_VERSION", "1.25.16")
            .run(&plan, &test);
            assert_order(&plan, &trace);
        }
    }
}

/// A network namespace of the test's own, deleted when dropped: nothing it holds is reached
/// from outside it, and nothing in it reaches out.
struct Netns(String);

impl Netns {
    /// The namespace with loopback up and `address` on it; `Err` says why it cannot be made.
    fn with_address(name: &str, address: &str) -> Result<Netns, String> {
        let run = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
                    }
                })
        };
        let name = format!("{name}-{}", std::process::id());
        run(&["netns", "add", &name])?;
        let netns = Netns(name);
        run(&["netns", "exec", &netns.0, "ip", "link", "set", "lo", "up"])?;
        run(&[
            "netns", "exec", &netns.0, "ip", "addr", "add", address, "dev", "lo",
        ])?;
        Ok(netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Listens on `address` at `ports` inside `netns` until killed (python3's socket module).
fn listen(netns: &Netns, address: &str, ports: &[u16]) -> std::process::Child {
    let program = format!(
        "import socket, time\nfor port in {ports:?}:\n    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n    s.bind(({address:?}, port)); s.listen(16); globals()[f's{{port}}'] = s\nprint('listening', flush=True)\ntime.sleep(600)\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &netns.0, "python3", "-c", &program])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "listening");
    child
}

/// A remote's install first tries istiod's address from the operator's machine (bash's
/// /dev/tcp). In a network namespace of this test's own, ICP's VIP 172.16.160.100 is on
/// loopback: with istiod's ports answering there the install goes through; with nothing
/// listening it stops before cluster-2's control plane, naming the address and the VIP.
#[test]
fn a_remote_install_first_reaches_istiods_address() {
    let plan = plan_path("plans/icp-single-network.toml");
    let netns = match Netns::with_address("mp-reach", "172.16.160.100/32") {
        Ok(netns) => netns,
        Err(reason) => {
            tools::skip(
                "istiod reachability in a network namespace",
                &format!("cannot make a network namespace (root and iproute2 needed): {reason}"),
            );
            return;
        }
    };
    let reach = |test: &str| {
        Setup {
            netns: Some(netns.0.clone()),
            ..Setup::default()
        }
        .env("MESHPLAN_SKIP_REACHABILITY", "")
        .env("MESHPLAN_WAIT_TIMEOUT", "5s")
        .run(&plan, test)
    };
    let refused = reach("reach-refused");
    assert!(!refused.ok, "{}", account(&refused));
    assert!(
        refused
            .stderr
            .contains("istiod's address 172.16.160.100:15012 does not answer")
            && refused.stderr.contains("VIP"),
        "{}",
        account(&refused)
    );
    assert!(
        refused.first_on("cluster-2", &["apply"]).is_none(),
        "cluster-2 was changed:\n{}",
        account(&refused)
    );
    let mut listener = listen(&netns, "172.16.160.100", &[15012, 15017]);
    let answered = reach("reach-answered");
    let _ = listener.kill();
    let _ = listener.wait();
    assert_order(&plan, &answered);
}

// The upgrade procedure as an operator runs it: `meshplan upgrade` from each plan to the plan
// with Istio one minor newer, then its upgrade.sh against the recorder.

/// `upgrade.sh` run once with each argument list, after `meshplan upgrade` to [`bumped`].
fn run_upgrade(
    plan: &Path,
    runs: &[&[&str]],
    env: &[(&str, &str)],
    test: &str,
) -> (Trace, String, Option<String>) {
    let (text, to, revision) = bumped(plan);
    let runs = runs
        .iter()
        .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
        .collect();
    let mut setup = Setup {
        upgrade: Some((text, runs)),
        ..Setup::default()
    };
    for (name, value) in env {
        setup = setup.env(name, value);
    }
    let trace = setup.run(plan, test);
    assert!(
        trace.ok,
        "{}: upgrade.sh failed\n{}\n{}\n{}",
        plan.display(),
        trace.stdout,
        trace.stderr,
        trace.log.join("\n")
    );
    let missing: Vec<&String> = trace
        .log
        .iter()
        .filter(|l| l.starts_with("MISSING"))
        .collect();
    assert!(missing.is_empty(), "{}: {missing:?}", plan.display());
    (trace, to, revision)
}

/// The cluster whose istiod serves `cluster`'s proxies: itself, or its primary.
fn control_plane_of<'a>(plan: &'a Plan, cluster: &'a meshplan::model::Cluster) -> &'a str {
    match &cluster.primary {
        Some(primary) if cluster.role == Role::Remote => plan
            .clusters
            .iter()
            .find(|c| &c.name == primary)
            .map_or(cluster.context.as_str(), |c| c.context.as_str()),
        _ => cluster.context.as_str(),
    }
}

#[test]
fn every_plan_upgrades_one_minor_by_canary_in_istios_order() {
    for plan_file in upgrade_plans(&crate_root()) {
        let plan = model(&plan_file);
        if plan.mesh.dataplane == meshplan::raw::Dataplane::Ambient {
            continue;
        }
        let stem = plan_file.file_stem().unwrap().to_string_lossy();
        // The phases in upgrade.sh's own order, then the removal, as the operator runs them.
        let runs: [&[&str]; 2] = [&[], &["remove-old"]];
        let (trace, to, revision) = run_upgrade(&plan_file, &runs, &[], &format!("upgrade-{stem}"));
        let revision = revision.unwrap();
        let name = plan_file.display();
        let istiod = format!("istiod-{revision}");
        let new_control_plane = |ctx: &str| {
            trace
                .first_on(ctx, &["install", "new/", "istio/control-plane.yaml"])
                .or_else(|| trace.first_on(ctx, &[&format!("upgrade --install {istiod} ")]))
                .unwrap_or_else(|| panic!("{name}: no {istiod} installed on {ctx}"))
        };
        let ready = |ctx: &str| {
            trace
                .first_on(ctx, &[&format!("rollout status deployment/{istiod} ")])
                .unwrap_or_else(|| panic!("{name}: nothing waits for {istiod} on {ctx}"))
        };
        let mut last_tag = 0;
        for c in &plan.clusters {
            let ctx = c.context.as_str();
            let serving = control_plane_of(&plan, c);
            let tag = trace
                .first_on(
                    ctx,
                    &["tag set default", &format!("--revision {revision} ")],
                )
                .unwrap_or_else(|| panic!("{name}: injection never moves on {ctx}"));
            last_tag = last_tag.max(tag);
            for before in [
                new_control_plane(serving),
                ready(serving),
                new_control_plane(ctx),
            ] {
                assert!(
                    before < tag,
                    "{name}: {ctx}'s tag moved before {} (`{}`)",
                    serving,
                    trace.log[before]
                );
            }
            if let Some(restart) = trace.first_on(ctx, &["rollout restart"]) {
                assert!(tag < restart, "{name}: {ctx} restarts before its tag moved");
            }
            let gateway = trace
                .first_on(ctx, &["new/", "istio/eastwest-gateway.yaml"])
                .or_else(|| {
                    trace.first_on(ctx, &["istio-eastwestgateway", &format!("--version {to} ")])
                });
            if let Some(gateway) = gateway {
                for before in [ready(serving), new_control_plane(ctx), tag] {
                    assert!(
                        before < gateway,
                        "{name}: {ctx}'s gateway upgraded before `{}`",
                        trace.log[before]
                    );
                }
            }
        }
        for c in &plan.clusters {
            let removal = trace
                .first_on(&c.context, &["uninstall"])
                .unwrap_or_else(|| panic!("{name}: the old release never leaves {}", c.context));
            assert!(
                last_tag < removal,
                "{name}: {} loses the old release before every tag moved",
                c.context
            );
        }
    }
}

#[test]
fn every_ambient_plan_upgrades_in_place_istiod_then_cni_then_ztunnel() {
    let mut seen = 0;
    for plan_file in upgrade_plans(&crate_root()) {
        let plan = model(&plan_file);
        if plan.mesh.dataplane != meshplan::raw::Dataplane::Ambient {
            continue;
        }
        seen += 1;
        let stem = plan_file.file_stem().unwrap().to_string_lossy();
        let (trace, to, _) = run_upgrade(&plan_file, &[&[]], &[], &format!("upgrade-{stem}"));
        let name = plan_file.display();
        let first_install = trace
            .first(|l| l.contains(" install ") || l.contains("upgrade --install"))
            .unwrap();
        if let Some(crds) = trace.first(|l| l.starts_with("GATEWAY-API ")) {
            assert!(
                crds < first_install,
                "{name}: Gateway API CRDs after an install"
            );
        }
        for c in &plan.clusters {
            let ctx = c.context.as_str();
            if plan.mesh.installer == meshplan::raw::Installer::Helm {
                let version = format!("--version {to} ");
                let at = |release: &str| {
                    trace
                        .first_on(ctx, &[&format!("upgrade --install {release} "), &version])
                        .unwrap_or_else(|| panic!("{name}: {release} not upgraded on {ctx}"))
                };
                assert!(
                    at("istiod") < at("istio-cni"),
                    "{name}: {ctx}: istio-cni before istiod"
                );
                assert!(
                    at("istio-cni") < at("ztunnel"),
                    "{name}: {ctx}: ztunnel before istio-cni"
                );
            } else {
                trace
                    .first_on(ctx, &["install", "new/", "istio/control-plane.yaml"])
                    .unwrap_or_else(|| panic!("{name}: {ctx} not upgraded"));
            }
        }
    }
    assert!(seen >= 2, "only {seen} ambient plans upgraded");
}

#[test]
fn a_rollback_after_the_tags_moved_puts_injection_back_before_removing_the_canary() {
    let plan_file = plan_path("tests/fixtures/ok/primary-remote-multi-network.toml");
    let plan = model(&plan_file);
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install-trace/upgrade-rollback");
    let old_istioctl = scratch.join("bin/istioctl");
    let (trace, _, revision) = run_upgrade(
        &plan_file,
        &[&["canary", "tags"], &["rollback"]],
        &[
            ("ISTIOCTL_OLD", old_istioctl.to_str().unwrap()),
            // The recorder reports one version for every istioctl.
            ("MESHPLAN_SKIP_VERSION_CHECK", "1"),
        ],
        "upgrade-rollback",
    );
    let revision = revision.unwrap();
    for c in &plan.clusters {
        let ctx = c.context.as_str();
        let back = trace
            .first_on(ctx, &["tag set default --revision default "])
            .unwrap_or_else(|| panic!("injection never moves back on {ctx}"));
        let removed = trace
            .first_on(ctx, &["uninstall", &format!("--revision {revision}")])
            .unwrap_or_else(|| panic!("the canary never leaves {ctx}"));
        assert!(
            back < removed,
            "{ctx}: the canary went before injection moved back"
        );
        assert!(
            trace
                .first_on(ctx, &["uninstall", "--revision default"])
                .is_none(),
            "{ctx}: a rollback removed the old release"
        );
    }
}

/// With a revision, a cluster's own `install.sh samples` refuses to apply the samples until
/// the default revision tag is set there (their namespace is labelled `istio-injection:
/// enabled`, which only the tag serves), and says which command sets it.
#[test]
fn samples_wait_for_the_default_revision_tag() {
    let plan = plan_path("tests/fixtures/ok/revision-primary-remote.toml");
    let trace = run_install(&plan, "revision-tag");
    assert_order(&plan, &trace);
    let tag = trace.scratch.join("state/default-tag-media-core");
    fs::remove_file(&tag).unwrap();
    let samples = |trace: &Trace| {
        let fakes = trace.scratch.join("bin");
        Command::new("bash")
            .args(["out/media-core/scripts/install.sh", "samples"])
            .current_dir(&trace.scratch)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    fakes.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("FAKE_LOG", trace.scratch.join("calls.log"))
            .env("FAKE_STATE", trace.scratch.join("state"))
            .output()
            .unwrap()
    };
    let refused = samples(&trace);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "the default revision tag is not set on media-core, so no istiod would inject the \
             samples: run istioctl tag set default --revision 1-30-3 --overwrite -y --context \
             media-core first"
        ),
        "{stderr}"
    );
    fs::write(&tag, "").unwrap();
    let applied = samples(&trace);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
}
