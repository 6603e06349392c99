//! The mesh's CA: `meshplan certs` as users run it, the `cert` findings of `check --certs` on
//! directories broken the way people break them, chains verified by openssl and by webpki, and
//! the generated `verify-trust.sh` against a fake kubectl.
//!
//! Every fixture directory is generated here at run time from a recipe in
//! `tests/fixtures/cert/` (its first line declares the code), so no private key is committed.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/files.rs"]
mod files;
#[path = "support/run.rs"]
mod run;
use files::tree;
use run::meshplan;

use meshplan::certs::KeyAlgorithm;
use meshplan::certs::issue::{self, Validity};
use rcgen::{BasicConstraints, IsCa, KeyPair, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

const PLAN: &str = "plans/three-cloud-metallb.toml";
const CLUSTERS: [&str; 3] = ["mdemo-cluster1", "mdemo-cluster2", "mdemo-cluster3"];
const VICTIM: &str = "mdemo-cluster2";

fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("certs")
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

/// `meshplan certs PLAN --out DIR` with ECDSA keys (instant), asserting success.
fn make_ca(plan: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "certs",
        plan,
        "--out",
        dir.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ];
    args.extend_from_slice(extra);
    let output = meshplan(&args);
    assert!(output.status.success(), "{}", text(&output));
    output
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// The JSON findings of `meshplan check PLAN --certs DIR`, and the exit code.
fn check_certs(dir: &Path) -> (Vec<serde_json::Value>, Option<i32>) {
    let output = meshplan(&[
        "check",
        PLAN,
        "--certs",
        dir.to_str().unwrap(),
        "--diagnostics",
        "json",
    ]);
    let findings = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|_| panic!("not JSON: {line}\n{}", text(&output)))
        })
        .collect();
    (findings, output.status.code())
}

/// Issues `cluster`'s intermediate again for its own key, changed by `tweak`, signed by the
/// root in DIR (or by `issuer`), and rewrites its chain to match.
fn reissue(
    dir: &Path,
    cluster: &str,
    validity: Validity,
    tweak: impl FnOnce(&mut rcgen::CertificateParams),
    issuer: Option<(&str, &KeyPair)>,
) {
    let home = dir.join(cluster);
    let key = issue::parse_key(&read(&home.join("ca-key.pem"))).unwrap();
    let root_pem = read(&dir.join("root-cert.pem"));
    let root_key = issue::parse_key(&read(&dir.join("root-key.pem"))).unwrap();
    let mut params = issue::intermediate_params(cluster, &key, validity).unwrap();
    tweak(&mut params);
    let (issuer_pem, issuer_key) = issuer.unwrap_or((&root_pem, &root_key));
    let cert = issue::sign(params, &key, issuer_pem, issuer_key).unwrap();
    fs::write(home.join("ca-cert.pem"), &cert).unwrap();
    fs::write(home.join("cert-chain.pem"), format!("{cert}{root_pem}")).unwrap();
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Breaks DIR the way a recipe says.
fn apply(mutation: &str, dir: &Path) {
    let home = dir.join(VICTIM);
    let year = Validity::days_from_now(365);
    match mutation {
        "remove_key" => fs::remove_file(home.join("ca-key.pem")).unwrap(),
        "garble_cert" => {
            fs::write(home.join("ca-cert.pem"), b"0\x82\x03\x10 binary DER bytes").unwrap()
        }
        "swap_key" => {
            fs::copy(
                dir.join("mdemo-cluster1/ca-key.pem"),
                home.join("ca-key.pem"),
            )
            .unwrap();
        }
        "leaf_as_ca" => reissue(dir, VICTIM, year, |p| p.is_ca = IsCa::ExplicitNoCa, None),
        "no_pathlen" => reissue(
            dir,
            VICTIM,
            year,
            |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
            None,
        ),
        "no_cert_sign" => reissue(
            dir,
            VICTIM,
            year,
            |p| p.key_usages = vec![KeyUsagePurpose::DigitalSignature],
            None,
        ),
        "other_issuer" => {
            let (other_pem, other_key) = other_root();
            reissue(dir, VICTIM, year, |_| {}, Some((&other_pem, &other_key)));
        }
        "foreign_root" => {
            // A whole consistent directory from a second root, as a separate `make` run gives.
            let other = dir.join("other");
            make_ca(PLAN, &other, &[]);
            fs::remove_dir_all(&home).unwrap();
            fs::rename(other.join(VICTIM), &home).unwrap();
            fs::remove_dir_all(&other).unwrap();
        }
        "reversed_chain" => {
            let chain = format!(
                "{}{}",
                read(&home.join("root-cert.pem")),
                read(&home.join("ca-cert.pem"))
            );
            fs::write(home.join("cert-chain.pem"), chain).unwrap();
        }
        "expired" => reissue(
            dir,
            VICTIM,
            Validity::days_from(now() - Duration::days(400), 1),
            |_| {},
            None,
        ),
        "not_yet_valid" => reissue(
            dir,
            VICTIM,
            Validity::days_from(now() + Duration::days(10), 365),
            |_| {},
            None,
        ),
        "expires_soon" => reissue(
            dir,
            VICTIM,
            Validity::days_from(now() - Duration::days(1), 21),
            |_| {},
            None,
        ),
        "copy_cluster" => {
            for file in [
                "ca-cert.pem",
                "ca-key.pem",
                "root-cert.pem",
                "cert-chain.pem",
            ] {
                fs::copy(dir.join("mdemo-cluster1").join(file), home.join(file)).unwrap();
            }
        }
        other => panic!("unknown mutation `{other}`"),
    }
}

/// A second self-signed root, not the mesh's.
fn other_root() -> (String, KeyPair) {
    let key = issue::generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    let pem = issue::self_sign(
        issue::root_params(&key, Validity::days_from_now(3650)),
        &key,
    )
    .unwrap();
    (pem, key)
}

fn recipes() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cert");
    let mut recipes = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let body = read(&path);
        let code = body
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# code: ")
            .unwrap()
            .to_owned();
        let mutation = body
            .lines()
            .find_map(|l| l.strip_prefix("mutation = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{} has no `mutation = \"...\"` line", path.display()))
            .to_owned();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        recipes.push((name, code, mutation));
    }
    recipes.sort();
    recipes
}

#[test]
fn a_fresh_directory_checks_clean() {
    let dir = scratch("fresh").join("ca");
    make_ca(PLAN, &dir, &[]);
    let (findings, status) = check_certs(&dir);
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(status, Some(0));
}

#[test]
fn every_cert_fixture_reports_its_code_first() {
    let recipes = recipes();
    assert!(recipes.len() >= 13, "only {} recipes", recipes.len());
    for (name, code, mutation) in recipes {
        let dir = scratch(&format!("fixture-{name}")).join("ca");
        make_ca(PLAN, &dir, &[]);
        apply(&mutation, &dir);
        let (findings, status) = check_certs(&dir);
        let first = findings
            .first()
            .unwrap_or_else(|| panic!("{name}: no finding"));
        assert_eq!(first["code"], code.as_str(), "{name}: {findings:#?}");
        let message = first["message"].as_str().unwrap();
        assert!(
            message.contains(VICTIM),
            "{name}: the finding must name the cluster: {message}"
        );
        let file = first["file"].as_str().unwrap();
        assert!(
            file.starts_with(dir.to_str().unwrap()) && file.contains(VICTIM),
            "{name}: the finding must name the file: {file}"
        );
        let expected = if first["severity"] == "warning" { 0 } else { 1 };
        assert_eq!(status, Some(expected), "{name}: {findings:#?}");
    }
}

#[test]
fn a_foreign_root_finding_names_both_fingerprints_and_the_others() {
    let dir = scratch("foreign").join("ca");
    make_ca(PLAN, &dir, &[]);
    apply("foreign_root", &dir);
    let (findings, _) = check_certs(&dir);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let message = findings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("`mdemo-cluster1`") && message.contains("`mdemo-cluster3`"),
        "{message}"
    );
    assert_eq!(message.matches("SHA256").count(), 1, "{message}");
    let print = |cluster: &str| {
        meshplan::certs::fingerprint(&der(&read(&dir.join(cluster).join("root-cert.pem"))))
    };
    assert_ne!(print(VICTIM), print("mdemo-cluster1"));
    assert!(message.contains(&print(VICTIM)), "{message}");
    assert!(message.contains(&print("mdemo-cluster1")), "{message}");
}

#[test]
fn a_second_run_changes_no_byte() {
    let dir = scratch("idempotent").join("ca");
    make_ca(PLAN, &dir, &[]);
    let before = tree(&dir);
    let again = make_ca(PLAN, &dir, &[]);
    assert_eq!(tree(&dir), before);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 files written"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_new_cluster_gets_only_its_own_intermediate_from_the_existing_root() {
    let dir = scratch("add-cluster").join("ca");
    make_ca(PLAN, &dir, &[]);
    // The state after a run with a plan that did not have mdemo-cluster3 yet.
    fs::remove_dir_all(dir.join("mdemo-cluster3")).unwrap();
    let before = tree(&dir);
    make_ca(PLAN, &dir, &[]);
    let after = tree(&dir);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{path} changed");
    }
    let added: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert_eq!(added.len(), 4, "{added:?}");
    assert!(
        added.iter().all(|p| p.starts_with("mdemo-cluster3/")),
        "{added:?}"
    );
    let (findings, status) = check_certs(&dir);
    assert!(findings.is_empty() && status == Some(0), "{findings:#?}");
}

#[test]
fn a_lost_certificate_is_issued_again_for_the_kept_key() {
    let dir = scratch("certify").join("ca");
    make_ca(PLAN, &dir, &[]);
    let key = fs::read(dir.join(VICTIM).join("ca-key.pem")).unwrap();
    fs::remove_file(dir.join(VICTIM).join("ca-cert.pem")).unwrap();
    make_ca(PLAN, &dir, &[]);
    assert_eq!(fs::read(dir.join(VICTIM).join("ca-key.pem")).unwrap(), key);
    let (findings, _) = check_certs(&dir);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn a_certificate_without_its_key_is_refused_not_replaced() {
    let dir = scratch("lost-key").join("ca");
    make_ca(PLAN, &dir, &[]);
    fs::remove_file(dir.join(VICTIM).join("ca-key.pem")).unwrap();
    let before = tree(&dir);
    let output = meshplan(&[
        "certs",
        PLAN,
        "--out",
        dir.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--rotate mdemo-cluster2"),
        "{}",
        text(&output)
    );
    assert_eq!(tree(&dir), before);
}

#[test]
fn rotation_replaces_one_clusters_intermediate_only() {
    let dir = scratch("rotate").join("ca");
    make_ca(PLAN, &dir, &[]);
    let before = tree(&dir);
    make_ca(PLAN, &dir, &["--rotate", VICTIM]);
    let after = tree(&dir);
    for (path, bytes) in &before {
        let rotated = path.starts_with(&format!("{VICTIM}/ca-"))
            || path == &format!("{VICTIM}/cert-chain.pem");
        assert_eq!(after[path] != *bytes, rotated, "{path}");
    }
    assert_eq!(after.len(), before.len(), "no stray temporary files");
    let (findings, _) = check_certs(&dir);
    assert!(findings.is_empty(), "{findings:#?}");
    let unknown = meshplan(&[
        "certs",
        PLAN,
        "--out",
        dir.to_str().unwrap(),
        "--rotate",
        "mdemo-clustr2",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("did you mean `mdemo-cluster"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn the_directory_is_private_and_keys_are_0600() {
    let dir = scratch("modes").join("nested").join("ca");
    make_ca(PLAN, &dir, &[]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("root-key.pem")), 0o600);
    for cluster in CLUSTERS {
        assert_eq!(mode(&dir.join(cluster)), 0o700);
        assert_eq!(
            mode(&dir.join(cluster).join("ca-key.pem")),
            0o600,
            "{cluster}"
        );
    }
}

#[test]
fn a_directory_inside_a_compiled_tree_is_refused() {
    let base = scratch("in-tree");
    let out = base.join("out");
    let built = meshplan(&["build", PLAN, "-o", out.to_str().unwrap()]);
    assert!(built.status.success(), "{}", text(&built));
    for inside in [out.join("certs"), out.join("mdemo-cluster1").join("ca")] {
        let output = meshplan(&[
            "certs",
            PLAN,
            "--out",
            inside.to_str().unwrap(),
            "--key-algorithm",
            "ecdsa-p256",
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(".meshplan-manifest"),
            "{}",
            text(&output)
        );
        assert!(!inside.exists(), "{} was created", inside.display());
    }
}

#[test]
fn an_organisations_root_signs_and_its_key_stays_where_it_is() {
    let base = scratch("org-root");
    let (pem, key) = other_root();
    fs::write(base.join("org-root.pem"), &pem).unwrap();
    fs::write(base.join("org-root-key.pem"), key.serialize_pem()).unwrap();
    let dir = base.join("ca");
    let org = |name: &str| base.join(name).to_str().unwrap().to_owned();
    make_ca(
        PLAN,
        &dir,
        &[
            "--root-cert",
            &org("org-root.pem"),
            "--root-key",
            &org("org-root-key.pem"),
        ],
    );
    assert_eq!(read(&dir.join("root-cert.pem")), pem);
    assert!(!dir.join("root-key.pem").exists());
    for cluster in CLUSTERS {
        assert_eq!(read(&dir.join(cluster).join("root-cert.pem")), pem);
    }
    let (findings, _) = check_certs(&dir);
    assert!(findings.is_empty(), "{findings:#?}");
    // A different root into the same DIR would split the mesh's trust.
    let (other, other_key) = other_root();
    fs::write(base.join("second.pem"), &other).unwrap();
    fs::write(base.join("second-key.pem"), other_key.serialize_pem()).unwrap();
    let output = meshplan(&[
        "certs",
        PLAN,
        "--out",
        dir.to_str().unwrap(),
        "--root-cert",
        &org("second.pem"),
        "--root-key",
        &org("second-key.pem"),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

/// A workload certificate as istiod would issue it with `cluster`'s intermediate.
fn workload_leaf(dir: &Path, cluster: &str) -> String {
    let ca_key = issue::parse_key(&read(&dir.join(cluster).join("ca-key.pem"))).unwrap();
    let ca_pem = read(&dir.join(cluster).join("ca-cert.pem"));
    let key = issue::generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    let params = issue::workload_params(
        "cluster.local",
        "sample",
        "helloworld",
        Validity::days_from_now(1),
    )
    .unwrap();
    issue::sign(params, &key, &ca_pem, &ca_key).unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .contents
}

/// The default profile (RSA 4096, as Istio): istiod could issue with every intermediate, as
/// webpki (the verifier rustls uses) sees it.
#[test]
fn workload_certificates_verify_with_webpki_through_each_intermediate() {
    let dir = scratch("webpki").join("ca");
    let output = meshplan(&["certs", PLAN, "--out", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let root_der = der(&read(&dir.join("root-cert.pem")));
    let root_cert = rustls_pki_types::CertificateDer::from(root_der.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&root_cert).unwrap();
    for cluster in CLUSTERS {
        let leaf_der = der(&workload_leaf(&dir, cluster));
        let ca_der = der(&read(&dir.join(cluster).join("ca-cert.pem")));
        let leaf = rustls_pki_types::CertificateDer::from(leaf_der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
        let intermediates = [rustls_pki_types::CertificateDer::from(ca_der.as_slice())];
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &intermediates,
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .unwrap_or_else(|err| panic!("{cluster}: {err:?}"));
        // Without the intermediate there is no path: the leaf is not signed by the root itself.
        assert!(
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&anchor),
                &[],
                rustls_pki_types::UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .is_err()
        );
    }
}

#[test]
fn chains_verify_with_openssl() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("SKIP chains_verify_with_openssl: openssl is not installed");
        return;
    }
    let dir = scratch("openssl").join("ca");
    let output = meshplan(&["certs", PLAN, "--out", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let root = dir.join("root-cert.pem");
    let verify = |args: &[&Path]| {
        let mut command = Command::new("openssl");
        command.arg("verify").arg("-CAfile").arg(&root);
        if let [untrusted, _] = args {
            command.arg("-untrusted").arg(untrusted);
        }
        let output = command.arg(args[args.len() - 1]).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    };
    for cluster in CLUSTERS {
        let home = dir.join(cluster);
        verify(&[&home.join("ca-cert.pem")]);
        let leaf = home.join("workload.pem");
        fs::write(&leaf, workload_leaf(&dir, cluster)).unwrap();
        verify(&[&home.join("ca-cert.pem"), &leaf]);
        verify(&[&home.join("cert-chain.pem"), &leaf]);
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(home.join("ca-cert.pem"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        for expected in [
            "CA:TRUE, pathlen:0",
            "Certificate Sign",
            "DNS:istiod.istio-system.svc",
            &format!("L = {cluster}"),
            "O = Istio",
            "Public-Key: (4096 bit)",
        ] {
            assert!(
                text.contains(expected),
                "{cluster}: no `{expected}` in\n{text}"
            );
        }
    }
}

/// A fake kubectl: answers `get secret cacerts` and `get configmap istio-ca-root-cert` with the
/// canned `root-cert.pem` of `$FAKE/<context>/`, records every call.
const FAKE_KUBECTL: &str = r#"#!/usr/bin/env bash
set -euo pipefail
echo "$*" >> "$FAKE/calls"
[ "$1" = --context ] || { echo "no --context" >&2; exit 3; }
context="$2"; shift 2
[ "$1 $2 $3" = "-n istio-system get" ] || { echo "unexpected: $*" >&2; exit 3; }
kind="$4"; name="$5"
[ "$6 $7" = "-o jsonpath={.data.root-cert\.pem}" ] || { echo "unexpected output: $*" >&2; exit 3; }
file="$FAKE/$context/$kind.pem"
if [ ! -f "$file" ]; then
  echo "Error from server (NotFound): $kind \"$name\" not found" >&2
  exit 1
fi
if [ "$kind" = secret ]; then base64 -w0 < "$file"; else cat "$file"; fi
"#;

fn run_verify_trust(base: &Path, roots: &[(&str, Option<&str>, Option<&str>)]) -> Output {
    let out = base.join("out");
    if !out.exists() {
        let built = meshplan(&["build", PLAN, "-o", out.to_str().unwrap()]);
        assert!(built.status.success(), "{}", text(&built));
    }
    let fake = base.join("fake");
    let _ = fs::remove_dir_all(&fake);
    fs::create_dir_all(fake.join("bin")).unwrap();
    let kubectl = fake.join("bin/kubectl");
    fs::write(&kubectl, FAKE_KUBECTL).unwrap();
    fs::set_permissions(&kubectl, fs::Permissions::from_mode(0o755)).unwrap();
    for (context, secret, configmap) in roots {
        fs::create_dir_all(fake.join(context)).unwrap();
        if let Some(pem) = secret {
            fs::write(fake.join(context).join("secret.pem"), pem).unwrap();
        }
        if let Some(pem) = configmap {
            fs::write(fake.join(context).join("configmap.pem"), pem).unwrap();
        }
    }
    let path = format!(
        "{}:{}",
        fake.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg(out.join("verify-trust.sh"))
        .env("PATH", path)
        .env("FAKE", &fake)
        .output()
        .unwrap()
}

#[test]
fn verify_trust_names_the_cluster_whose_root_differs() {
    let base = scratch("verify-trust");
    let (mesh_root, _) = other_root();
    let (odd_root, _) = other_root();
    let m = Some(mesh_root.as_str());
    let all_match = run_verify_trust(
        &base,
        &[
            ("mdemo-cluster1", m, m),
            ("mdemo-cluster2", m, m),
            ("mdemo-cluster3", m, m),
        ],
    );
    assert_eq!(all_match.status.code(), Some(0), "{}", text(&all_match));
    assert!(
        String::from_utf8_lossy(&all_match.stdout).contains("all 3 clusters trust root"),
        "{}",
        text(&all_match)
    );
    let calls = read(&base.join("fake/calls"));
    for cluster in CLUSTERS {
        assert!(
            calls.contains(&format!(
                "--context {cluster} -n istio-system get secret cacerts"
            )),
            "{calls}"
        );
        assert!(
            calls.contains(&format!(
                "--context {cluster} -n istio-system get configmap istio-ca-root-cert"
            )),
            "{calls}"
        );
    }

    let odd = Some(odd_root.as_str());
    let one_differs = run_verify_trust(
        &base,
        &[
            ("mdemo-cluster1", m, m),
            ("mdemo-cluster2", odd, odd),
            ("mdemo-cluster3", m, m),
        ],
    );
    assert_eq!(one_differs.status.code(), Some(1), "{}", text(&one_differs));
    let stderr = String::from_utf8_lossy(&one_differs.stderr);
    assert!(
        stderr.contains("cluster mdemo-cluster2: its cacerts Secret holds root"),
        "{}",
        text(&one_differs)
    );
    assert!(
        !stderr.contains("cluster mdemo-cluster1") && !stderr.contains("cluster mdemo-cluster3"),
        "{stderr}"
    );
    let odd_print = meshplan::certs::fingerprint(&der(&odd_root));
    assert!(
        stderr.contains(&odd_print),
        "the odd root's fingerprint, as openssl prints it: {stderr}"
    );

    // istiod not restarted after cacerts changed: the Secret is right, the ConfigMap is stale.
    let stale = run_verify_trust(
        &base,
        &[
            ("mdemo-cluster1", m, m),
            ("mdemo-cluster2", m, m),
            ("mdemo-cluster3", m, odd),
        ],
    );
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    assert!(
        String::from_utf8_lossy(&stale.stderr)
            .contains("cluster mdemo-cluster3: its istio-ca-root-cert ConfigMap holds root"),
        "{}",
        text(&stale)
    );

    // A remote without a cacerts Secret is fine (it runs no istiod); a primary without one is not.
    let no_secret = run_verify_trust(
        &base,
        &[
            ("mdemo-cluster1", None, m),
            ("mdemo-cluster2", None, m),
            ("mdemo-cluster3", m, m),
        ],
    );
    assert_eq!(no_secret.status.code(), Some(1), "{}", text(&no_secret));
    let stderr = String::from_utf8_lossy(&no_secret.stderr);
    assert!(
        stderr.contains("cluster mdemo-cluster1: it has no cacerts Secret"),
        "{stderr}"
    );
    assert!(!stderr.contains("mdemo-cluster2"), "{stderr}");
}

fn cacerts(base: &Path, certs_dir: Option<&Path>) -> Output {
    let out = base.join("out");
    if !out.exists() {
        let built = meshplan(&["build", PLAN, "-o", out.to_str().unwrap()]);
        assert!(built.status.success(), "{}", text(&built));
    }
    let mut command = Command::new("bash");
    command
        .arg(out.join("mdemo-cluster2/scripts/cacerts.sh"))
        .env_remove("CERTS_DIR");
    if let Some(dir) = certs_dir {
        command.env("CERTS_DIR", dir);
    }
    // kubectl is never reached in these cases; make sure of it.
    command.env(
        "PATH",
        format!("{}:/usr/bin:/bin", base.join("no-kubectl").display()),
    );
    command.output().unwrap()
}

#[test]
fn cacerts_sh_needs_certs_dir_outside_the_tree_and_says_how_to_make_it() {
    let base = scratch("cacerts-sh");
    let unset = cacerts(&base, None);
    assert_eq!(unset.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(
        stderr.contains("CERTS_DIR is not set")
            && stderr.contains("meshplan certs PLAN.toml --out "),
        "{stderr}"
    );

    let dir = base.join("ca");
    let missing = cacerts(&base, Some(&dir));
    assert_eq!(missing.status.code(), Some(1));
    let expected = format!("meshplan certs PLAN.toml --out {}", dir.display());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains(&expected),
        "{}",
        text(&missing)
    );

    make_ca(PLAN, &dir, &[]);
    fs::remove_file(dir.join("mdemo-cluster2/cert-chain.pem")).unwrap();
    let incomplete = cacerts(&base, Some(&dir));
    assert_eq!(incomplete.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&incomplete.stderr);
    assert!(
        stderr.contains("mdemo-cluster2/cert-chain.pem is missing") && stderr.contains(&expected),
        "{stderr}"
    );

    let inside = base.join("out/keys");
    fs::create_dir_all(&inside).unwrap();
    let in_tree = cacerts(&base, Some(&inside));
    assert_eq!(in_tree.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&in_tree.stderr).contains("inside the compiled tree"),
        "{}",
        text(&in_tree)
    );
}

#[test]
fn a_directory_git_would_commit_is_warned_about() {
    let repo = scratch("git-warning").join("repo");
    fs::create_dir_all(&repo).unwrap();
    let init = Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(&repo)
        .output();
    if !init.is_ok_and(|o| o.status.success()) {
        println!("SKIP a_directory_git_would_commit_is_warned_about: git is not installed");
        return;
    }
    let warned = make_ca(PLAN, &repo.join("ca"), &[]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("not ignored"),
        "{stderr}"
    );
    fs::write(repo.join(".gitignore"), "/ca/\n").unwrap();
    let quiet = make_ca(PLAN, &repo.join("ca"), &[]);
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("warning:"),
        "{}",
        text(&quiet)
    );
}
