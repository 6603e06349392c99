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
