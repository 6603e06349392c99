//! The mesh's trust over time (`[mesh.trust]`): each fixture plan (rotation A → A+B → B, two
//! meshes joining, one cluster's intermediate revoked) made into a CA directory by
//! `meshplan certs` and proven by `check --certs`; the same matrix of phases × cluster pairs
//! checked again with `openssl verify`; a phase that drops the old root too early shown to
//! fail naming the pair; the `trust-cert` recipes breaking a directory each way.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/run.rs"]
mod run;
use run::meshplan;

use meshplan::trust::{Trust, ca, matrix};
use time::OffsetDateTime;

const FIXTURES: [&str; 3] = ["rotation", "merge", "revocation"];

fn plan_path(name: &str) -> String {
    format!("tests/fixtures/trust/{name}.toml")
}

fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("trust")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn make_ca(plan: &str, dir: &Path) -> Output {
    let output = meshplan(&[
        "certs",
        plan,
        "--out",
        dir.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    output
}

fn check_certs(plan: &str, dir: &Path) -> (Vec<serde_json::Value>, Option<i32>, Output) {
    let output = meshplan(&[
        "check",
        plan,
        "--certs",
        dir.to_str().unwrap(),
        "--diagnostics",
        "json",
    ]);
    let findings = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .collect();
    (findings, output.status.code(), output)
}

fn trust_of(plan: &str) -> Trust {
    let text = fs::read_to_string(plan).unwrap();
    let source = meshplan::Source::new(plan, text);
    meshplan::check(&source).plan.unwrap().trust.unwrap()
}

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_fixture_plan_builds_into_phases_that_check_certs_proves() {
    for name in FIXTURES {
        let plan = plan_path(name);
        let dir = scratch(&format!("prove-{name}"));
        make_ca(&plan, &dir);
        let (findings, code, output) = check_certs(&plan, &dir);
        assert_eq!(code, Some(0), "{name}: {}", text(&output));
        assert!(findings.is_empty(), "{name}: {findings:?}");
        // The proof ran over every pair: count them from the plan.
        let trust = trust_of(&plan);
        let summary = ca::prove_dir(&dir, &trust, OffsetDateTime::now_utc()).unwrap();
        assert!(
            summary.failures.is_empty(),
            "{name}: {:?}",
            summary.failures
        );
        let n = trust.phases[0].clusters.len();
        let pairs = n * n * (1 + 3 * (trust.phases.len() - 1));
        match name {
            // Every pair of every phase and transition accepts.
            "rotation" => assert_eq!((summary.accepted, summary.refused), (pairs, 0)),
            // The two meshes are apart in the first phase: only the pairs inside each side
            // (2 of 4) are asked there, and in the transitions out of it.
            "merge" => assert_eq!((summary.accepted, summary.refused), (pairs - 2 - 4, 0)),
            // bank-ams's old intermediate is refused by both clusters once the CRL is there:
            // as a leaf still in `today` against `revoke-ams` (2), and as revoked in the phase (2).
            "revocation" => assert_eq!((summary.accepted, summary.refused), (pairs - 2, 4)),
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_second_certs_run_changes_nothing_and_a_one_root_directory_is_refused() {
    let plan = plan_path("revocation");
    let dir = scratch("second-run");
    make_ca(&plan, &dir);
    let snapshot = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut all = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    all.push((path.clone(), fs::read(&path).unwrap()));
                }
            }
        }
        all.sort();
        all
    };
    let before = snapshot(&dir);
    let again = make_ca(&plan, &dir);
    assert_eq!(snapshot(&dir), before, "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("root kept"), "{stderr}");
    assert!(stderr.contains("0 files written"), "{stderr}");
    // Keys stay 0600 in every root's directory.
    use std::os::unix::fs::PermissionsExt;
    for (path, _) in &before {
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("key.pem")
        {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
    // A one-root CA directory (root-cert.pem at its top) is not taken for a phased plan.
    let one_root = scratch("one-root");
    make_ca(
        "tests/fixtures/ok/multi-primary-multi-network.toml",
        &one_root,
    );
    let output = meshplan(&[
        "certs",
        &plan,
        "--out",
        one_root.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("meshplan::certs::refused"), "{stderr}");
    assert!(stderr.contains("move that CA into"), "{stderr}");
    // --rotate does not apply to phases (a revocation does that).
    let output = meshplan(&[
        "certs",
        &plan,
        "--out",
        dir.to_str().unwrap(),
        "--rotate",
        "bank-ams",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn dropping_the_old_root_too_early_fails_naming_the_pair() {
    let plan = plan_path("rotation-too-early");
    let dir = scratch("too-early");
    make_ca(&plan, &dir);
    let (findings, code, output) = check_certs(&plan, &dir);
    assert_eq!(code, Some(1), "{}", text(&output));
    let messages: Vec<&str> = findings
        .iter()
        .filter(|f| f["code"] == "meshplan::trust::matrix")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(
            &"phase `b`: `bank-fra` does not accept a workload of `bank-ams` (still in phase `trust-b`) (intermediate root-a/bank-ams): its bundle holds root(s) `root-b`, and the intermediate was signed by root `root-a`"
        ),
        "{messages:#?}"
    );
    // Only phase `b` fails, and only for leaves of clusters still in `trust-b`.
    assert!(
        messages
            .iter()
            .all(|m| m.starts_with("phase `b`:") && m.contains("(still in phase `trust-b`)")),
        "{messages:#?}"
    );
    assert_eq!(messages.len(), 4, "{messages:#?}");
    // The same directory under the plan with the phase in between is proven.
    let (findings, code, _) = check_certs(&plan_path("rotation"), &dir);
    assert_eq!(code, Some(0), "{findings:?}");
}

/// Applies a `trust-cert` recipe's mutation to DIR (and may give another plan to check with).
fn apply(mutation: &str, plan: &str, dir: &Path, scratch_dir: &Path) -> String {
    let mut words = mutation.splitn(2, ' ');
    match (words.next(), words.next()) {
        (Some("none"), None) => plan.to_owned(),
        (Some("remove"), Some(rel)) => {
            fs::remove_file(dir.join(rel)).unwrap();
            plan.to_owned()
        }
        (Some("garble"), Some(rel)) => {
            fs::write(dir.join(rel), "-----BEGIN X509 CRL-----\nnot base64\n").unwrap();
            plan.to_owned()
        }
        (Some("fingerprint"), Some(root)) => {
            let text = fs::read_to_string(plan).unwrap().replace(
                &format!("name = \"{root}\"\n"),
                &format!(
                    "name = \"{root}\"\nfingerprint = \"{}\"\n",
                    ["00"; 32].join(":")
                ),
            );
            let copy = scratch_dir.join("plan.toml");
            fs::write(&copy, text).unwrap();
            copy.to_string_lossy().into_owned()
        }
        _ => panic!("unknown mutation {mutation}"),
    }
}

#[test]
fn each_trust_cert_recipe_raises_its_code() {
    for entry in fs::read_dir(crate_root().join("tests/fixtures/trust-cert")).unwrap() {
        let path = entry.unwrap().path();
        let recipe = fs::read_to_string(&path).unwrap();
        let code = recipe
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# code: "))
            .unwrap()
            .to_owned();
        let table: toml::Table = recipe.parse().unwrap();
        let plan = table["plan"].as_str().unwrap();
        let mutation = table["mutation"].as_str().unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let work = scratch(&format!("recipe-{stem}"));
        let dir = work.join("ca");
        make_ca(plan, &dir);
        let checked_with = apply(mutation, plan, &dir, &work);
        let (findings, status, output) = check_certs(&checked_with, &dir);
        assert_eq!(status, Some(1), "{stem}: {}", text(&output));
        let first = findings
            .iter()
            .find(|f| f["severity"] == "error")
            .unwrap_or_else(|| panic!("{stem}: {}", text(&output)));
        assert_eq!(first["code"], code.as_str(), "{stem}: {findings:#?}");
    }
}

/// PEM of a DER certificate.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

/// `openssl verify` of X's leaf (from phase px) against Y's files of phase py, as
/// Envoy checks a peer: the bundle as trust anchors, X's intermediate as the chain it
/// sends, and with CRLs every CA's CRL required (`-crl_check_all`).
fn openssl_accepts(
    work: &Path,
    dir: &Path,
    leaf_pem: &str,
    intermediate_pem: &str,
    roots: &[String],
    crl: bool,
) -> (bool, String) {
    let leaf = work.join("leaf.pem");
    let chain = work.join("chain.pem");
    let bundle = work.join("bundle.pem");
    let crls = work.join("crl.pem");
    fs::write(&leaf, leaf_pem).unwrap();
    fs::write(&chain, intermediate_pem).unwrap();
    let mut bundle_text = String::new();
    let mut crl_text = String::new();
    for root in roots {
        bundle_text.push_str(&fs::read_to_string(dir.join(root).join("root-cert.pem")).unwrap());
        if crl {
            crl_text.push_str(&fs::read_to_string(dir.join(root).join("ca-crl.pem")).unwrap());
        }
    }
    fs::write(&bundle, bundle_text).unwrap();
    let mut command = Command::new("openssl");
    command
        .arg("verify")
        .arg("-CAfile")
        .arg(&bundle)
        .arg("-untrusted")
        .arg(&chain);
    if crl {
        fs::write(&crls, crl_text).unwrap();
        command.arg("-crl_check_all").arg("-CRLfile").arg(&crls);
    }
    let output = command.arg(&leaf).output().unwrap();
    (output.status.success(), text(&output))
}

#[test]
fn the_matrix_agrees_with_openssl_verify() {
    for name in FIXTURES.iter().chain(&["rotation-too-early"]) {
        let plan = plan_path(name);
        let dir = scratch(&format!("openssl-{name}"));
        make_ca(&plan, &dir);
        let trust = trust_of(&plan);
        let now = OffsetDateTime::now_utc();
        let material = ca::load(&dir, &trust, now).unwrap();
        let summary = matrix::prove(&trust, &material, now).unwrap();
        let work = scratch(&format!("openssl-{name}-work"));
        let mut checked = 0;
        for (k, _) in trust.phases.iter().enumerate() {
            let combos: Vec<(usize, usize)> = if k == 0 {
                vec![(0, 0)]
            } else {
                vec![(k, k), (k - 1, k), (k, k - 1)]
            };
            for (fx, fy) in combos {
                let (px, py) = (&trust.phases[fx], &trust.phases[fy]);
                for x in &px.clusters {
                    for y in &py.clusters {
                        if !px.connected(&x.cluster, &y.cluster)
                            || !py.connected(&x.cluster, &y.cluster)
                        {
                            continue;
                        }
                        let leaf = &material.leaves[&(x.signer.clone(), x.trust_domain.clone())];
                        let intermediate = &material.intermediates[&x.signer];
                        let (accepted, output) = openssl_accepts(
                            &work,
                            &dir,
                            &pem("CERTIFICATE", leaf),
                            &pem("CERTIFICATE", intermediate),
                            &y.trust,
                            py.crl,
                        );
                        let matrix_failed = summary.failures.iter().any(|f| {
                            f.phase == trust.phases[k].name
                                && f.from == (x.cluster.clone(), px.name.clone())
                                && f.to == (y.cluster.clone(), py.name.clone())
                        });
                        let revoked = py.crl && py.revokes(&x.signer);
                        // The matrix fails a pair exactly when openssl's verdict differs from
                        // what the phase expects (accepted, unless revoked).
                        assert_eq!(
                            accepted != revoked,
                            !matrix_failed,
                            "{name}: phase {} {} ({}) -> {} ({}): openssl {output}",
                            trust.phases[k].name,
                            x.cluster,
                            px.name,
                            y.cluster,
                            py.name
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 0);
        if *name == "rotation-too-early" {
            assert!(!summary.failures.is_empty());
        } else {
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        }
    }
}

#[path = "support/bash_compat.rs"]
mod bash_compat;

/// `meshplan build PLAN -o DIR`, asserting success.
fn build(plan: &str, out: &Path) {
    let built = meshplan(&["build", plan, "-o", out.to_str().unwrap()]);
    assert!(built.status.success(), "{}", text(&built));
}

#[test]
fn the_phase_scripts_are_well_formed_and_only_written_for_phased_plans() {
    let shellcheck = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for name in FIXTURES {
        let out = scratch(&format!("build-{name}")).join("out");
        build(&plan_path(name), &out);
        for script in ["trust.sh", "verify-trust.sh"] {
            let file = out.join(script);
            let body = fs::read_to_string(&file).unwrap();
            assert!(body.contains("\nset -euo pipefail\n"), "{name}: {script}");
            let old = bash_compat::violations(&body);
            assert!(old.is_empty(), "{name}: {script}: {old:?}");
            let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
            assert!(
                syntax.status.success(),
                "{name}: {script}: {}",
                text(&syntax)
            );
            if shellcheck {
                let lint = Command::new("shellcheck").arg(&file).output().unwrap();
                assert!(lint.status.success(), "{name}: {script}: {}", text(&lint));
            }
        }
        let readme = fs::read_to_string(out.join("README.md")).unwrap();
        assert!(
            readme.contains("\n## Rotating and joining trust\n"),
            "{name}"
        );
        // Every phase has its section, files and steps.
        for phase in &trust_of(&plan_path(name)).phases {
            assert!(
                readme.contains(&format!("`{}`\n", phase.name)),
                "{name}: {}",
                phase.name
            );
        }
        // Listing the phases needs nothing; an unknown phase is refused before kubectl.
        let listed = Command::new("bash")
            .arg(out.join("trust.sh"))
            .output()
            .unwrap();
        assert!(listed.status.success(), "{}", text(&listed));
        let unknown = Command::new("bash")
            .arg(out.join("trust.sh"))
            .arg("no-such-phase")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    }
    // The phases say what Istio needs: several roots need ISTIO_MULTIROOT_MESH, checked before
    // any Secret changes; a revocation carries ca-crl.pem.
    let built = |name: &str| {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("trust")
            .join(format!("build-{name}"))
            .join("out")
    };
    let out = built("rotation");
    let script = fs::read_to_string(out.join("trust.sh")).unwrap();
    assert!(script.contains("need_multiroot 'bank-fra' 'bank-fra'\n    need_multiroot 'bank-ams' 'bank-ams'\n    apply_cluster 'bank-fra' 'bank-fra' 'root-a/bank-fra' 'root-a root-b' ''"), "{script}");
    let out = built("revocation");
    let script = fs::read_to_string(out.join("trust.sh")).unwrap();
    assert!(
        script.contains("apply_cluster 'bank-ams' 'bank-ams' 'root/bank-ams.2' 'root' 'root'"),
        "{script}"
    );
    // A plan without [mesh.trust] gets no trust.sh.
    let plain = scratch("build-plain").join("out");
    build("tests/fixtures/ok/multi-primary-multi-network.toml", &plain);
    assert!(!plain.join("trust.sh").exists());
}

/// A fake kubectl answering `get secret cacerts` / `get configmap istio-ca-root-cert` with
/// `$FAKE/<context>/<kind>.pem`.
const FAKE_KUBECTL: &str = r#"#!/usr/bin/env bash
set -euo pipefail
context="$2"; kind="$6"; name="$7"
file="$FAKE/$context/$kind.pem"
if [ ! -f "$file" ]; then
  echo "Error from server (NotFound): $kind \"$name\" not found" >&2
  exit 1
fi
if [ "$kind" = secret ]; then base64 -w0 < "$file"; else cat "$file"; fi
"#;

fn verify_phase(
    out: &Path,
    fake: &Path,
    phase: &str,
    certs_dir: Option<&Path>,
    held: &[(&str, &str)],
) -> Output {
    let _ = fs::remove_dir_all(fake);
    fs::create_dir_all(fake.join("bin")).unwrap();
    let kubectl = fake.join("bin/kubectl");
    fs::write(&kubectl, FAKE_KUBECTL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&kubectl, fs::Permissions::from_mode(0o755)).unwrap();
    for (context, pem) in held {
        fs::create_dir_all(fake.join(context)).unwrap();
        fs::write(fake.join(context).join("secret.pem"), pem).unwrap();
        fs::write(fake.join(context).join("configmap.pem"), pem).unwrap();
    }
    let path = format!(
        "{}:{}",
        fake.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg(out.join("verify-trust.sh"))
        .arg(phase)
        .env("PATH", path)
        .env("FAKE", fake)
        .env_remove("CERTS_DIR");
    if let Some(dir) = certs_dir {
        command.env("CERTS_DIR", dir);
    }
    command.output().unwrap()
}

#[test]
fn verify_trust_knows_the_roots_each_phase_expects() {
    let base = scratch("verify-phase");
    let dir = base.join("ca");
    make_ca(&plan_path("rotation"), &dir);
    let out = base.join("out");
    build(&plan_path("rotation"), &out);
    let fake = base.join("fake");
    let a = fs::read_to_string(dir.join("root-a/root-cert.pem")).unwrap();
    let b = fs::read_to_string(dir.join("root-b/root-cert.pem")).unwrap();
    let both = format!("{a}{b}");
    // Phase trust-b: both roots everywhere, fingerprints read from CERTS_DIR.
    let ok = verify_phase(
        &out,
        &fake,
        "trust-b",
        Some(&dir),
        &[("bank-fra", &both), ("bank-ams", &both)],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    // bank-ams still on root A alone: named.
    let behind = verify_phase(
        &out,
        &fake,
        "trust-b",
        Some(&dir),
        &[("bank-fra", &both), ("bank-ams", &a)],
    );
    assert_eq!(behind.status.code(), Some(1), "{}", text(&behind));
    let stderr = String::from_utf8_lossy(&behind.stderr);
    assert!(
        stderr.contains("phase trust-b: cluster bank-ams: its cacerts Secret holds root(s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("cluster bank-fra"), "{stderr}");
    // The same bundle is wrong for phase b: root A must be gone there.
    let stale = verify_phase(
        &out,
        &fake,
        "b",
        Some(&dir),
        &[("bank-fra", &both), ("bank-ams", &both)],
    );
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    // Without CERTS_DIR and no fingerprint in the plan, it says what it needs.
    let blind = verify_phase(
        &out,
        &fake,
        "b",
        None,
        &[("bank-fra", &b), ("bank-ams", &b)],
    );
    assert_eq!(blind.status.code(), Some(1), "{}", text(&blind));
    assert!(
        String::from_utf8_lossy(&blind.stderr).contains("records no fingerprint of root root-b"),
        "{}",
        text(&blind)
    );
    // With the fingerprints `meshplan certs` printed recorded in the plan, no CERTS_DIR needed.
    let printed =
        String::from_utf8_lossy(&make_ca(&plan_path("rotation"), &dir).stderr).into_owned();
    let print_of = |root: &str| -> String {
        printed
            .lines()
            .find(|l| l.contains(&format!("/{root}: ")))
            .and_then(|l| l.split("SHA256 ").nth(1))
            .unwrap()
            .trim()
            .to_owned()
    };
    let recorded = fs::read_to_string(plan_path("rotation"))
        .unwrap()
        .replace(
            "name = \"root-a\"\n",
            &format!(
                "name = \"root-a\"\nfingerprint = \"{}\"\n",
                print_of("root-a")
            ),
        )
        .replace(
            "name = \"root-b\"\n",
            &format!(
                "name = \"root-b\"\nfingerprint = \"{}\"\n",
                print_of("root-b")
            ),
        );
    let recorded_plan = base.join("recorded.toml");
    fs::write(&recorded_plan, recorded).unwrap();
    let out2 = base.join("out2");
    build(recorded_plan.to_str().unwrap(), &out2);
    let known = verify_phase(
        &out2,
        &fake,
        "b",
        None,
        &[("bank-fra", &b), ("bank-ams", &b)],
    );
    assert_eq!(known.status.code(), Some(0), "{}", text(&known));
    let (findings, code, _) = check_certs(recorded_plan.to_str().unwrap(), &dir);
    assert_eq!(code, Some(0), "{findings:?}");
}

/// `DIR/<cluster>/<file>` of a built tree, parsed.
fn install_values(out: &Path, cluster: &str, file: &str) -> serde_yaml::Value {
    let path = out.join(cluster).join(file);
    serde_yaml::from_str(&fs::read_to_string(&path).unwrap()).unwrap()
}

/// The value at `keys` under `value`, or Null.
fn at<'a>(value: &'a serde_yaml::Value, keys: &[&str]) -> &'a serde_yaml::Value {
    keys.iter().fold(value, |v, key| &v[*key])
}

/// A fixture plan's text, with `installer = "helm"` when `helm`, written to `dir`.
fn plan_copy(name: &str, helm: bool, dir: &Path) -> String {
    let mut plan = fs::read_to_string(plan_path(name)).unwrap();
    if helm {
        plan = plan.replace("[mesh.istio]\n", "[mesh.istio]\ninstaller = \"helm\"\n");
    }
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, plan).unwrap();
    path.to_str().unwrap().to_owned()
}

/// What istiod and the proxies read, from the IstioOperator or the Helm istiod values: (the
/// pilot env, meshConfig).
fn istiod_config(out: &Path, cluster: &str, helm: bool) -> (serde_yaml::Value, serde_yaml::Value) {
    if helm {
        let values = install_values(out, cluster, "helm/istiod.yaml");
        (
            at(&values, &["pilot", "env"]).clone(),
            values["meshConfig"].clone(),
        )
    } else {
        let operator = install_values(out, cluster, "istio/control-plane.yaml");
        (
            at(&operator, &["spec", "values", "pilot", "env"]).clone(),
            at(&operator, &["spec", "meshConfig"]).clone(),
        )
    }
}

#[test]
fn the_install_files_carry_the_settings_every_phase_needs() {
    let dir = scratch("install-settings");
    let str_list = |v: &serde_yaml::Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for helm in [false, true] {
        for name in FIXTURES {
            let out = dir.join(format!("{name}-{helm}"));
            build(&plan_copy(name, helm, &dir), &out);
            for cluster in ["bank-fra", "bank-ams"] {
                let (env, mesh_config) = istiod_config(&out, cluster, helm);
                let what = format!("{name} (helm: {helm}) {cluster}");
                // Rotation and merge change bundles; the revocation keeps its one root.
                let multiroot = name != "revocation";
                let want = multiroot.then_some("true");
                assert_eq!(env["ISTIO_MULTIROOT_MESH"].as_str(), want, "{what}");
                let metadata = at(&mesh_config, &["defaultConfig", "proxyMetadata"]);
                assert_eq!(metadata["PROXY_CONFIG_XDS_AGENT"].as_str(), want, "{what}");
                let (domain, aliases) = match (name, cluster) {
                    ("merge", "bank-ams") => ("ams.bank.example", 2),
                    ("merge", _) => ("fra.bank.example", 2),
                    _ => ("cluster.local", 0),
                };
                assert_eq!(mesh_config["trustDomain"].as_str(), Some(domain), "{what}");
                let aliases_seen = str_list(&mesh_config["trustDomainAliases"]);
                assert_eq!(aliases_seen.len(), aliases, "{what}: {aliases_seen:?}");
                if aliases > 0 {
                    assert_eq!(aliases_seen, ["ams.bank.example", "fra.bank.example"]);
                }
            }
        }
    }
}

#[test]
fn a_plan_without_mesh_trust_carries_none_of_the_trust_settings() {
    let dir = scratch("no-trust-settings");
    for helm in [false, true] {
        let with = plan_copy("rotation", helm, &dir);
        let text = fs::read_to_string(&with).unwrap();
        let cut = text.find("[mesh.trust]").unwrap();
        let without = dir.join(format!("plain-{helm}.toml"));
        fs::write(&without, &text[..cut]).unwrap();
        let out = dir.join(format!("plain-{helm}"));
        build(without.to_str().unwrap(), &out);
        for cluster in ["bank-fra", "bank-ams"] {
            let (env, mesh_config) = istiod_config(&out, cluster, helm);
            assert!(env["ISTIO_MULTIROOT_MESH"].is_null(), "{cluster}: {env:?}");
            assert!(
                mesh_config["defaultConfig"].is_null()
                    && mesh_config["trustDomainAliases"].is_null(),
                "{cluster}: {mesh_config:?}"
            );
        }
    }
}
