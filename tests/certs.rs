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
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|_| panic!("not JSON: {line}\n{}", text(&output)))
        })
        // The plan's own warnings about its pinned versions (its header names them: Istio 1.24
        // is past its end of life) are not about the CA directory.
        .filter(|f| {
            !f["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("meshplan::version::"))
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
        "wrong_locality" => {
            // Its own key, but the subject of another cluster's intermediate.
            let key = issue::parse_key(&read(&home.join("ca-key.pem"))).unwrap();
            let params = issue::intermediate_params("mdemo-cluster1", &key, year).unwrap();
            let cert = issue::sign(
                params,
                &key,
                &read(&dir.join("root-cert.pem")),
                &root_key(dir),
            )
            .unwrap();
            write_intermediate(dir, VICTIM, &cert);
        }
        "shared_key" => {
            // mdemo-cluster1's key, certified again for mdemo-cluster2 (its own subject).
            fs::copy(
                dir.join("mdemo-cluster1/ca-key.pem"),
                home.join("ca-key.pem"),
            )
            .unwrap();
            reissue(dir, VICTIM, year, |_| {}, None);
        }
        "extra_certificate" => {
            let (other, _) = other_root();
            let cert = read(&home.join("ca-cert.pem"));
            fs::write(home.join("ca-cert.pem"), format!("{cert}{other}")).unwrap();
        }
        "no_istiod_san" => reissue(dir, VICTIM, year, |p| p.subject_alt_names.clear(), None),
        "name_constraint_other_domain" => reissue(
            dir,
            VICTIM,
            year,
            |p| {
                p.custom_extensions
                    .push(uri_name_constraint("other.example"))
            },
            None,
        ),
        "root_no_cert_sign" => replace_cluster_root(dir, |p| {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }),
        "root_not_ca" => replace_cluster_root(dir, |p| p.is_ca = IsCa::ExplicitNoCa),
        "root_signed_by_other" => {
            let key = root_key(dir);
            let params = issue::root_params(&key, year);
            let (org_pem, org_key) = org_ca();
            let root = issue::sign(params, &key, &org_pem, &org_key).unwrap();
            fs::write(home.join("root-cert.pem"), root).unwrap();
        }
        "key_readable" => chmod(&home.join("ca-key.pem"), 0o644),
        "cluster_dir_writable" => chmod(&home, 0o777),
        "cluster_dir_readable" => chmod(&home, 0o755),
        "key_owned_by_nobody" => {
            std::os::unix::fs::chown(home.join("ca-key.pem"), Some(NOBODY), None).unwrap()
        }
        "key_link" => {
            fs::remove_file(home.join("ca-key.pem")).unwrap();
            std::os::unix::fs::symlink("../mdemo-cluster1/ca-key.pem", home.join("ca-key.pem"))
                .unwrap();
        }
        "interrupted_commit" => {
            let staged = dir.join(".meshplan-commit").join(VICTIM);
            fs::create_dir_all(&staged).unwrap();
            fs::copy(home.join("ca-cert.pem"), staged.join("ca-cert.pem")).unwrap();
        }
        other => panic!("unknown mutation `{other}`"),
    }
}

/// The uid of `nobody`, the "other user" of these tests (they run as root in CI).
const NOBODY: u32 = 65534;

/// Mutations that need root (chown to another user).
const NEEDS_ROOT: [&str; 1] = ["key_owned_by_nobody"];

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// The mesh root's key in DIR.
fn root_key(dir: &Path) -> KeyPair {
    issue::parse_key(&read(&dir.join("root-key.pem"))).unwrap()
}

/// `cluster`'s ca-cert.pem and the cert-chain.pem that goes with it.
fn write_intermediate(dir: &Path, cluster: &str, cert: &str) {
    let home = dir.join(cluster);
    let root_pem = read(&dir.join("root-cert.pem"));
    fs::write(home.join("ca-cert.pem"), cert).unwrap();
    fs::write(home.join("cert-chain.pem"), format!("{cert}{root_pem}")).unwrap();
}

/// The victim's root-cert.pem replaced by a certificate of the mesh root's own key and name,
/// self-signed but changed by `tweak`: the intermediate still verifies with its key.
fn replace_cluster_root(dir: &Path, tweak: impl FnOnce(&mut rcgen::CertificateParams)) {
    let key = root_key(dir);
    let mut params = issue::root_params(&key, Validity::days_from_now(365));
    tweak(&mut params);
    let root = issue::self_sign(params, &key).unwrap();
    fs::write(dir.join(VICTIM).join("root-cert.pem"), root).unwrap();
}

/// An organisation's CA with a name of its own (`CN=Org CA`).
fn org_ca() -> (String, KeyPair) {
    let key = issue::generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    let mut params = issue::root_params(&key, Validity::days_from_now(3650));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Org CA");
    (issue::self_sign(params, &key).unwrap(), key)
}

/// A critical nameConstraints extension permitting only URIs of `host` (rcgen has no URI
/// subtree): SEQUENCE { [0] { SEQUENCE { [6] host } } }.
fn uri_name_constraint(host: &str) -> rcgen::CustomExtension {
    let der = |tag: u8, body: Vec<u8>| {
        let mut out = vec![tag, u8::try_from(body.len()).unwrap()];
        out.extend(body);
        out
    };
    let value = der(
        0x30,
        der(0xa0, der(0x30, der(0x86, host.as_bytes().to_vec()))),
    );
    let mut extension = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 30], value);
    extension.set_criticality(true);
    extension
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
        if NEEDS_ROOT.contains(&mutation.as_str()) && !is_root() {
            println!("SKIP recipe {name}: chown to another user needs root");
            continue;
        }
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
    chmod(&base.join("org-root-key.pem"), 0o600);
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
    chmod(&base.join("second-key.pem"), 0o600);
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
    // A root and three intermediates take seconds: each key is reported as it is made.
    let stderr = String::from_utf8_lossy(&output.stderr);
    for done in 1..=4 {
        assert!(
            stderr.contains(&format!("generating RSA 4096 keys: {done} of 4\n")),
            "{stderr}"
        );
    }
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

/// A root bundle saved on Windows (CRLF) or pasted indented is the same root: verify-trust.sh
/// drops spaces and carriage returns from each line before it reads the certificate.
#[test]
fn verify_trust_reads_a_root_with_crlf_endings_and_indented_lines_as_the_same_root() {
    let base = scratch("verify-trust-crlf");
    let (mesh_root, _) = other_root();
    let mangled: String = mesh_root
        .lines()
        .map(|line| format!("  {line} \r\n"))
        .collect();
    let m = Some(mesh_root.as_str());
    let run = run_verify_trust(
        &base,
        &[
            ("mdemo-cluster1", m, Some(mangled.as_str())),
            ("mdemo-cluster2", m, m),
            ("mdemo-cluster3", m, m),
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let print = meshplan::certs::fingerprint(&der(&mesh_root));
    assert!(
        String::from_utf8_lossy(&run.stdout)
            .contains(&format!("all 3 clusters trust root {print}")),
        "{}",
        text(&run)
    );
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

// ---------------------------------------------------------------------------------------------
// The CA directory trusts nothing it cannot prove (issue 20, items 3–10; the reproductions of
// docs/../adversarial-review-2026-12.md, sections C and K).

/// `meshplan certs PLAN --out DIR` with ECDSA keys, whatever the outcome.
fn certs(dir: &Path, extra: &[&str]) -> Output {
    certs_env(dir, extra, &[])
}

fn certs_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec![
        "certs",
        PLAN,
        "--out",
        dir.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ];
    args.extend_from_slice(extra);
    run::meshplan_env(&args, env)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a refused run (exit 2) whose message holds every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(2), "{}", text(output));
    let said = stderr(output);
    for needle in needles {
        assert!(said.contains(needle), "no `{needle}` in:\n{}", text(output));
    }
}

/// The codes of `check --certs`, in order.
fn codes(dir: &Path) -> Vec<String> {
    check_certs(dir)
        .0
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir` with its bytes and mode, links not followed (a link shows as its
/// target's name).
fn snapshot(dir: &Path) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&current)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let body = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            };
            out.push((rel, body, meta.permissions().mode() & 0o7777));
        }
    }
    out.sort();
    out
}

#[test]
fn a_directory_another_user_made_is_refused_with_its_root_key() {
    if !is_root() {
        println!("SKIP: making a directory of another user needs root");
        return;
    }
    // C6: a shared 1777 parent; another user made `meshca` with their own root, keys 0644.
    let shared = scratch("other-user").join("shared");
    fs::create_dir_all(&shared).unwrap();
    chmod(&shared, 0o1777);
    let dir = shared.join("meshca");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let (pem, key) = other_root();
    fs::write(dir.join("root-cert.pem"), &pem).unwrap();
    fs::write(dir.join("root-key.pem"), key.serialize_pem()).unwrap();
    for (path, mode) in [
        (dir.clone(), 0o700),
        (dir.join("root-cert.pem"), 0o644),
        (dir.join("root-key.pem"), 0o644),
    ] {
        chmod(&path, mode);
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let before = snapshot(&dir);
    let output = certs(&dir, &[]);
    assert_refused(&output, &["owned by uid 65534", "not by you", "new"]);
    assert_eq!(snapshot(&dir), before, "a refused run writes nothing");
    let found = codes(&dir);
    assert!(
        found.contains(&"meshplan::cert::foreign_owner".to_owned()),
        "{found:?}"
    );
}

#[test]
fn a_file_or_cluster_directory_of_another_user_is_refused() {
    if !is_root() {
        println!("SKIP: chown to another user needs root");
        return;
    }
    for victim in [
        "root-key.pem",
        "root-cert.pem",
        VICTIM,
        "mdemo-cluster2/ca-key.pem",
        "mdemo-cluster2/cert-chain.pem",
    ] {
        let dir = scratch(&format!("other-owner-{}", victim.replace('/', "-"))).join("ca");
        make_ca(PLAN, &dir, &[]);
        std::os::unix::fs::chown(dir.join(victim), Some(NOBODY), None).unwrap();
        let before = snapshot(&dir);
        let output = certs(&dir, &["--rotate", VICTIM]);
        assert_refused(&output, &[victim, "owned by uid 65534"]);
        assert_eq!(snapshot(&dir), before, "{victim}");
        let found = codes(&dir);
        assert_eq!(
            found.first().map(String::as_str),
            Some("meshplan::cert::foreign_owner"),
            "{victim}: {found:?}"
        );
    }
}

#[test]
fn keys_others_can_read_are_refused_every_run_and_reported() {
    // C7: modes were checked only when DIR was made.
    for key in ["root-key.pem", "mdemo-cluster2/ca-key.pem"] {
        for bad in [0o644, 0o640, 0o604] {
            let dir = scratch("key-mode").join("ca");
            make_ca(PLAN, &dir, &[]);
            chmod(&dir.join(key), bad);
            let before = snapshot(&dir);
            let output = certs(&dir, &[]);
            assert_refused(
                &output,
                &[key, &format!("chmod 600 {}", dir.join(key).display())],
            );
            assert_eq!(snapshot(&dir), before);
            let (findings, status) = check_certs(&dir);
            assert_eq!(
                findings[0]["code"], "meshplan::cert::key_mode",
                "{findings:#?}"
            );
            assert_eq!(status, Some(1));
            chmod(&dir.join(key), 0o600);
            make_ca(PLAN, &dir, &[]);
        }
    }
    // C17: a world-readable --root-key is refused too, before anything is made.
    let base = scratch("root-key-mode");
    let (pem, key) = other_root();
    fs::write(base.join("org.pem"), &pem).unwrap();
    fs::write(base.join("org-key.pem"), key.serialize_pem()).unwrap();
    chmod(&base.join("org-key.pem"), 0o644);
    let org = |name: &str| base.join(name).to_str().unwrap().to_owned();
    let dir = base.join("ca");
    let output = certs(
        &dir,
        &[
            "--root-cert",
            &org("org.pem"),
            "--root-key",
            &org("org-key.pem"),
        ],
    );
    assert_refused(&output, &["org-key.pem", "chmod 600"]);
    assert!(!dir.exists());
}

#[test]
fn directory_modes_are_checked_every_run() {
    let dir = scratch("dir-mode").join("ca");
    make_ca(PLAN, &dir, &[]);
    // Readable by others: a warning (the keys stay 0600), in both commands.
    chmod(&dir, 0o755);
    let warned = certs(&dir, &[]);
    assert_eq!(warned.status.code(), Some(0), "{}", text(&warned));
    assert!(
        stderr(&warned).contains(&format!("warning: {}", dir.display()))
            && stderr(&warned).contains(&format!("chmod 700 {}", dir.display())),
        "{}",
        text(&warned)
    );
    let (findings, status) = check_certs(&dir);
    assert_eq!(
        findings[0]["code"], "meshplan::cert::dir_mode",
        "{findings:#?}"
    );
    assert_eq!(status, Some(0));
    // Writable by others: anyone could plant a root or swap a cluster's directory. Refused.
    for (path, bad) in [
        (dir.clone(), 0o777),
        (dir.join(VICTIM), 0o770),
        (dir.clone(), 0o1733),
    ] {
        chmod(&path, bad);
        let before = snapshot(&dir);
        let output = certs(&dir, &[]);
        assert_refused(&output, &["changed by other users", "chmod"]);
        assert_eq!(snapshot(&dir), before);
        assert!(codes(&dir).contains(&"meshplan::cert::writable".to_owned()));
        chmod(&path, 0o700);
    }
    let again = certs(&dir, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    // No warning about the directory (the plan's own, about its pinned Istio, stays).
    assert!(
        !stderr(&again).contains("meshplan::cert::"),
        "{}",
        text(&again)
    );
}

#[test]
fn the_home_directory_and_the_root_directory_are_refused() {
    // C24: `--out $HOME` and `--out /`. The root and key named do not exist: were the
    // refusal missing, the run would stop on them before writing anything.
    let base = scratch("home");
    let home = base.join("home");
    fs::create_dir(&home).unwrap();
    let home_str = home.to_str().unwrap();
    let missing = [
        "--root-cert",
        "/nonexistent/r.pem",
        "--root-key",
        "/nonexistent/k.pem",
    ];
    let output = certs_env(&home, &missing, &[("HOME", home_str)]);
    assert_refused(&output, &["home directory"]);
    for form in [
        format!("{home_str}/"),
        format!("{home_str}/."),
        format!("{home_str}/../home"),
    ] {
        let output = certs_env(Path::new(&form), &missing, &[("HOME", home_str)]);
        assert_refused(&output, &["home directory"]);
    }
    assert_eq!(fs::read_dir(&home).unwrap().count(), 0);
    for root in ["/", "//", "/.", "/.."] {
        let output = certs(Path::new(root), &missing);
        assert_refused(&output, &["root directory"]);
    }
    // HOME unset or empty does not make the login home acceptable: the passwd entry counts.
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let uid = rustix::process::geteuid().as_raw().to_string();
    let login_home = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2] == uid)
        .map(|f| f[5].to_owned());
    let Some(login_home) = login_home.filter(|h| Path::new(h).is_dir() && h != "/") else {
        println!("SKIP the passwd part: no login home for uid {uid} in /etc/passwd");
        return;
    };
    for env in [vec![("HOME", "")], vec![("HOME", home_str)]] {
        let output = certs_env(Path::new(&login_home), &missing, &env);
        assert_refused(&output, &["home directory"]);
    }
    let unset = Command::new(env!("CARGO_BIN_EXE_meshplan"))
        .args(["certs", PLAN, "--out", &login_home])
        .args(missing)
        .env_remove("HOME")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_refused(&unset, &["home directory"]);
}

#[test]
fn keys_are_never_written_through_a_symbolic_link() {
    let base = scratch("links");
    // C3: a cluster's directory replaced by a link to another directory.
    let victim = base.join("victimdir");
    fs::create_dir(&victim).unwrap();
    let dir = base.join("ca");
    make_ca(PLAN, &dir, &[]);
    fs::remove_dir_all(dir.join(VICTIM)).unwrap();
    std::os::unix::fs::symlink("../victimdir", dir.join(VICTIM)).unwrap();
    let before = snapshot(&dir);
    let output = certs(&dir, &[]);
    assert_refused(&output, &[VICTIM, "symbolic link"]);
    assert_eq!(
        fs::read_dir(&victim).unwrap().count(),
        0,
        "keys written into the link's target"
    );
    assert_eq!(snapshot(&dir), before);
    assert!(codes(&dir).contains(&"meshplan::cert::link".to_owned()));

    // DIR itself a link (to an empty directory, and leading nowhere).
    let real = base.join("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink("real", base.join("linked")).unwrap();
    std::os::unix::fs::symlink("nowhere", base.join("dangling")).unwrap();
    for link in ["linked", "dangling", "linked/", "linked/.", "dangling/"] {
        let output = certs(&base.join(link), &[]);
        assert_refused(&output, &["symbolic link"]);
    }
    assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    make_ca(PLAN, &real, &[]);
    assert_eq!(codes(&base.join("linked"))[0], "meshplan::cert::link");
    assert!(!base.join("nowhere").exists());
    // Left behind, the dangling link stops tests/compile.rs's globs, which walk the whole
    // crate directory (target/ included) from `..`.
    fs::remove_file(base.join("dangling")).unwrap();

    // A key that is a link to another cluster's key (C5) is refused, not "kept".
    let shared = base.join("shared-key");
    make_ca(PLAN, &shared, &[]);
    apply("key_link", &shared);
    let output = certs(&shared, &[]);
    assert_refused(&output, &["mdemo-cluster2/ca-key.pem", "symbolic link"]);
}

#[test]
fn clusters_without_their_root_are_refused_until_it_is_brought_back() {
    // C12: the README's advice (root in a vault, the clusters on the install host), then a
    // cluster added to the plan.
    let base = scratch("no-root");
    let dir = base.join("ca");
    make_ca(PLAN, &dir, &[]);
    let vault = base.join("vault");
    fs::create_dir(&vault).unwrap();
    for file in ["root-cert.pem", "root-key.pem"] {
        fs::rename(dir.join(file), vault.join(file)).unwrap();
    }
    fs::remove_dir_all(dir.join("mdemo-cluster3")).unwrap();
    let before = snapshot(&dir);
    let output = certs(&dir, &[]);
    assert_refused(
        &output,
        &["mdemo-cluster1", "--root-cert", "--root-key", "split"],
    );
    assert_eq!(snapshot(&dir), before, "no second root");
    // A root that is not the clusters' is refused too.
    let (other, other_key) = other_root();
    fs::write(base.join("other.pem"), &other).unwrap();
    fs::write(base.join("other-key.pem"), other_key.serialize_pem()).unwrap();
    chmod(&base.join("other-key.pem"), 0o600);
    let path = |p: PathBuf| p.to_str().unwrap().to_owned();
    let wrong = certs(
        &dir,
        &[
            "--root-cert",
            &path(base.join("other.pem")),
            "--root-key",
            &path(base.join("other-key.pem")),
        ],
    );
    assert_refused(&wrong, &["mdemo-cluster1", "not issued by"]);
    assert_eq!(snapshot(&dir), before);
    // The way the message names: bring the root back.
    chmod(&vault.join("root-key.pem"), 0o600);
    let brought = certs(
        &dir,
        &[
            "--root-cert",
            &path(vault.join("root-cert.pem")),
            "--root-key",
            &path(vault.join("root-key.pem")),
        ],
    );
    assert_eq!(brought.status.code(), Some(0), "{}", text(&brought));
    assert_eq!(
        read(&dir.join("root-cert.pem")),
        read(&vault.join("root-cert.pem"))
    );
    assert!(!dir.join("root-key.pem").exists());
    let (findings, status) = check_certs(&dir);
    assert!(findings.is_empty() && status == Some(0), "{findings:#?}");
}

#[test]
fn the_foreign_root_help_names_no_root_the_mesh_does_not_share() {
    // The split mesh an older meshplan made (C12): the first two clusters on root A, a new
    // DIR/root-cert.pem B and the third cluster issued from it.
    let dir = scratch("split-help").join("ca");
    make_ca(PLAN, &dir, &[]);
    let old_root = read(&dir.join("root-cert.pem"));
    let (new_root, new_key) = other_root();
    fs::write(dir.join("root-cert.pem"), &new_root).unwrap();
    fs::write(dir.join("root-key.pem"), new_key.serialize_pem()).unwrap();
    chmod(&dir.join("root-key.pem"), 0o600);
    let third = dir.join("mdemo-cluster3");
    let key = issue::parse_key(&read(&third.join("ca-key.pem"))).unwrap();
    let params =
        issue::intermediate_params("mdemo-cluster3", &key, Validity::days_from_now(365)).unwrap();
    let cert = issue::sign(params, &key, &new_root, &new_key).unwrap();
    write_intermediate(&dir, "mdemo-cluster3", &cert);
    fs::write(third.join("root-cert.pem"), &new_root).unwrap();
    let (findings, status) = check_certs(&dir);
    assert_eq!(status, Some(1));
    let foreign: Vec<_> = findings
        .iter()
        .filter(|f| f["code"] == "meshplan::cert::foreign_root")
        .collect();
    assert!(!foreign.is_empty(), "{findings:#?}");
    let print = |pem: &str| meshplan::certs::fingerprint(&der(pem));
    for finding in foreign {
        let help = finding["help"].as_str().unwrap();
        assert!(
            !help.contains("the mesh's root (DIR/root-cert.pem"),
            "the help must not call DIR's root the mesh's: {help}"
        );
        assert!(
            help.contains(&print(&old_root)) && help.contains(&print(&new_root)),
            "the help names both roots and who trusts each: {help}"
        );
    }
    // And `certs` adds nothing to a split mesh.
    let output = certs(&dir, &["--rotate", "mdemo-cluster1"]);
    assert_refused(&output, &["not issued by"]);
}

#[test]
fn a_held_lock_stops_a_second_run() {
    let dir = scratch("lock").join("ca");
    make_ca(PLAN, &dir, &[]);
    let lock = dir.join(".meshplan-lock");
    assert_eq!(mode(&lock), 0o600);
    let before = snapshot(&dir);
    let held = fs::OpenOptions::new().read(true).open(&lock).unwrap();
    held.lock().unwrap();
    let output = certs(&dir, &["--rotate", VICTIM]);
    assert_refused(&output, &["another meshplan certs", "wait"]);
    assert_eq!(snapshot(&dir), before);
    drop(held);
    // Another user who can open DIR itself cannot block a run (it locks a file inside).
    let dir_handle = fs::File::open(&dir).unwrap();
    dir_handle.lock().unwrap();
    let output = certs(&dir, &["--rotate", VICTIM]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // A link where the lock file goes is refused, its target untouched.
    let target = dir.parent().unwrap().join("lock-target");
    fs::write(&target, "x").unwrap();
    fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    let output = certs(&dir, &[]);
    assert_refused(&output, &[".meshplan-lock"]);
    assert_eq!(read(&target), "x");
}

#[test]
fn racing_rotations_leave_every_key_with_its_certificate() {
    // C19: three `certs --rotate` at once, again and again.
    let dir = scratch("race").join("ca");
    make_ca(PLAN, &dir, &[]);
    let binary = env!("CARGO_BIN_EXE_meshplan");
    for round in 0..25 {
        let children: Vec<_> = (0..3)
            .map(|_| {
                Command::new(binary)
                    .args(["certs", PLAN, "--out", dir.to_str().unwrap()])
                    .args(["--key-algorithm", "ecdsa-p256", "--rotate", VICTIM, "-q"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            match output.status.code() {
                Some(0) => {}
                Some(2) => assert!(
                    stderr(&output).contains("another meshplan certs"),
                    "round {round}: {}",
                    text(&output)
                ),
                _ => panic!("round {round}: {}", text(&output)),
            }
        }
        let (findings, status) = check_certs(&dir);
        assert!(
            findings.is_empty() && status == Some(0),
            "round {round}: {findings:#?}"
        );
    }
}

#[test]
fn states_an_older_full_disk_left_are_refused_with_a_way_out_that_works() {
    // C21, as the earlier meshplan left them. Each refusal names a way out; taking it works.
    let base = scratch("old-enospc");
    // 1. Only root-key.pem (the certificate never written).
    let dir = base.join("only-key");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let key = issue::generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    fs::write(dir.join("root-key.pem"), key.serialize_pem()).unwrap();
    chmod(&dir.join("root-key.pem"), 0o600);
    let output = certs(&dir, &[]);
    assert_refused(&output, &["root-key.pem", "remove it"]);
    fs::remove_file(dir.join("root-key.pem")).unwrap();
    make_ca(PLAN, &dir, &[]);

    // 2. A 0-byte ca-key.pem (no certificate).
    let dir = base.join("empty-key");
    make_ca(PLAN, &dir, &[]);
    for file in ["ca-cert.pem", "cert-chain.pem", "root-cert.pem"] {
        fs::remove_file(dir.join(VICTIM).join(file)).unwrap();
    }
    fs::write(dir.join(VICTIM).join("ca-key.pem"), "").unwrap();
    let output = certs(&dir, &[]);
    assert_refused(
        &output,
        &["mdemo-cluster2/ca-key.pem", "--rotate mdemo-cluster2"],
    );
    make_ca(PLAN, &dir, &["--rotate", VICTIM]);
    let (findings, _) = check_certs(&dir);
    assert!(findings.is_empty(), "{findings:#?}");

    // 3. A 0-byte ca-cert.pem next to a good key: never "kept".
    let dir = base.join("empty-cert");
    make_ca(PLAN, &dir, &[]);
    let key = read(&dir.join(VICTIM).join("ca-key.pem"));
    fs::write(dir.join(VICTIM).join("ca-cert.pem"), "").unwrap();
    let output = certs(&dir, &[]);
    assert_refused(&output, &["mdemo-cluster2/ca-cert.pem", "move it away"]);
    fs::remove_file(dir.join(VICTIM).join("ca-cert.pem")).unwrap();
    make_ca(PLAN, &dir, &[]);
    assert_eq!(
        read(&dir.join(VICTIM).join("ca-key.pem")),
        key,
        "the key is kept"
    );
    let (findings, _) = check_certs(&dir);
    assert!(findings.is_empty(), "{findings:#?}");

    // 4. A 0-byte root-cert.pem beside its key: the clusters hold copies; the message names one.
    let dir = base.join("empty-root-cert");
    make_ca(PLAN, &dir, &[]);
    fs::write(dir.join("root-cert.pem"), "").unwrap();
    let output = certs(&dir, &["--rotate", VICTIM]);
    let copy = dir.join("mdemo-cluster1/root-cert.pem");
    let command = format!(
        "cp {} {}",
        copy.display(),
        dir.join("root-cert.pem").display()
    );
    assert_refused(&output, &[&command]);
    fs::copy(&copy, dir.join("root-cert.pem")).unwrap();
    make_ca(PLAN, &dir, &["--rotate", VICTIM]);

    // 5. A 0-byte root-key.pem beside a good certificate.
    fs::write(dir.join("root-key.pem"), "").unwrap();
    let output = certs(&dir, &["--rotate", VICTIM]);
    assert_refused(
        &output,
        &["root-key.pem is not a usable private key", "your copy"],
    );
}

#[test]
fn leftover_temporary_files_are_removed_and_nothing_else() {
    let base = scratch("leftovers");
    let dir = base.join("ca");
    make_ca(PLAN, &dir, &[]);
    let home = dir.join(VICTIM);
    // What an older meshplan left when cut short, and what it never wrote.
    fs::write(home.join(".cert-chain.pem.4242.tmp"), "").unwrap();
    fs::write(dir.join(".root-cert.pem.17.tmp"), "half").unwrap();
    fs::write(home.join(".notes.tmp"), "mine").unwrap();
    fs::write(base.join("victim"), "precious").unwrap();
    std::os::unix::fs::symlink("../../victim", home.join(".ca-key.pem.99.tmp")).unwrap();
    let output = certs(&dir, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(!home.join(".cert-chain.pem.4242.tmp").exists());
    assert!(!dir.join(".root-cert.pem.17.tmp").exists());
    assert_eq!(read(&home.join(".notes.tmp")), "mine");
    assert!(
        fs::symlink_metadata(home.join(".ca-key.pem.99.tmp")).is_ok(),
        "a link is left"
    );
    assert_eq!(read(&base.join("victim")), "precious");
}

#[test]
fn roots_brought_in_are_checked_like_the_meshs_root() {
    // C14/C15: every one of these signed intermediates before.
    let base = scratch("brought");
    let year = Validity::days_from_now(365);
    let make = |name: &str, validity: Validity, tweak: &dyn Fn(&mut rcgen::CertificateParams)| {
        let key = issue::generate_key(KeyAlgorithm::EcdsaP256).unwrap();
        let mut params = issue::root_params(&key, validity);
        tweak(&mut params);
        let pem = issue::self_sign(params, &key).unwrap();
        fs::write(base.join(format!("{name}.pem")), &pem).unwrap();
        fs::write(base.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
        chmod(&base.join(format!("{name}-key.pem")), 0o600);
        (pem, key)
    };
    make(
        "expired",
        Validity::days_from(now() - Duration::days(30), 29),
        &|_| {},
    );
    make(
        "future",
        Validity::days_from(now() + Duration::days(30), 365),
        &|_| {},
    );
    make("pathlen0", year, &|p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
    });
    make("nocertsign", year, &|p| {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature]
    });
    let (good, good_key) = make("good", year, &|_| {});
    // Not self-signed: the org CA signed it.
    let (org_pem, org_key) = org_ca();
    let sub = issue::sign(
        issue::root_params(&good_key, year),
        &good_key,
        &org_pem,
        &org_key,
    )
    .unwrap();
    fs::write(base.join("sub.pem"), &sub).unwrap();
    // Junk text and a second, unrelated root around the good one.
    let (other, _) = other_root();
    fs::write(
        base.join("junk.pem"),
        format!("Bag Attributes: junk\n{good}text\n{other}"),
    )
    .unwrap();
    fs::write(base.join("two.pem"), format!("{good}{other}")).unwrap();
    fs::write(base.join("text.pem"), format!("{good}trailing words\n")).unwrap();
    let cases = [
        ("expired", "expired-key", "expired"),
        ("future", "future-key", "not valid before"),
        ("pathlen0", "pathlen0-key", "pathlen:0"),
        ("nocertsign", "nocertsign-key", "keyCertSign"),
        ("sub", "good-key", "not self-signed"),
        ("junk", "good-key", "exactly one certificate"),
        ("two", "good-key", "exactly one certificate"),
        ("text", "good-key", "exactly one certificate"),
    ];
    for (cert, key, reason) in cases {
        let dir = base.join(format!("out-{cert}"));
        let path = |n: &str| base.join(format!("{n}.pem")).to_str().unwrap().to_owned();
        let output = certs(
            &dir,
            &["--root-cert", &path(cert), "--root-key", &path(key)],
        );
        assert_refused(&output, &[&format!("{cert}.pem"), reason]);
        assert!(!dir.exists(), "{cert}: DIR made for a refused root");
    }
}

/// Runs `command`, killing it after a minute: a read that hangs fails the test, never the run.
fn bounded(mut command: Command) -> Output {
    let child = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = sender.send(());
    assert!(
        output.status.code().is_some(),
        "killed after a minute: it hung"
    );
    output
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

#[test]
fn special_files_and_huge_files_are_refused_without_reading_them() {
    // K2/C16: /dev/zero and FIFOs as inputs; a file larger than the cap.
    let base = scratch("special");
    let (pem, key) = other_root();
    fs::write(base.join("good.pem"), &pem).unwrap();
    fs::write(base.join("good-key.pem"), key.serialize_pem()).unwrap();
    chmod(&base.join("good-key.pem"), 0o600);
    mkfifo(&base.join("fifo"));
    fs::write(base.join("huge.pem"), vec![b'a'; (1 << 20) + 1]).unwrap();
    let p = |n: &str| base.join(n).to_str().unwrap().to_owned();
    let cases = [
        (p("fifo"), p("good-key.pem"), "not a regular file"),
        (
            "/dev/zero".to_owned(),
            p("good-key.pem"),
            "not a regular file",
        ),
        (p("good.pem"), "/dev/zero".to_owned(), "not a regular file"),
        (p("good.pem"), p("fifo"), "not a regular file"),
        (p("huge.pem"), p("good-key.pem"), "larger than 1 MiB"),
    ];
    for (cert, key, reason) in cases {
        let dir = base.join("ca");
        let mut command = Command::new(env!("CARGO_BIN_EXE_meshplan"));
        command
            .args(["certs", PLAN, "--out", dir.to_str().unwrap()])
            .args([
                "--key-algorithm",
                "ecdsa-p256",
                "--root-cert",
                &cert,
                "--root-key",
                &key,
            ]);
        let output = bounded(command);
        assert_refused(&output, &[reason]);
        assert!(!dir.exists());
    }
    // Inside DIR: a link to /dev/zero, a FIFO, a huge certificate; `certs` and `check --certs`.
    let dir = base.join("inside");
    make_ca(PLAN, &dir, &[]);
    let home = dir.join(VICTIM);
    fs::remove_file(home.join("cert-chain.pem")).unwrap();
    mkfifo(&home.join("cert-chain.pem"));
    fs::write(home.join("ca-cert.pem"), vec![b'a'; 2 << 20]).unwrap();
    fs::remove_file(dir.join("root-cert.pem")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("root-cert.pem")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshplan"));
    command.args([
        "check",
        PLAN,
        "--certs",
        dir.to_str().unwrap(),
        "--diagnostics",
        "json",
    ]);
    let output = bounded(command);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = stderr(&output);
    assert!(said.contains("larger than 1 MiB"), "{said}");
    assert!(said.contains("a FIFO"), "{said}");
    assert!(
        said.contains("root-cert.pem") && said.contains("symbolic link"),
        "{said}"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshplan"));
    command
        .args(["certs", PLAN, "--out", dir.to_str().unwrap()])
        .args(["--key-algorithm", "ecdsa-p256"]);
    let output = bounded(command);
    assert_refused(&output, &["root-cert.pem", "symbolic link"]);
}

#[test]
fn openssl_refuses_what_the_new_findings_report() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("SKIP openssl_refuses_what_the_new_findings_report: openssl is not installed");
        return;
    }
    // For each: `check --certs` reports the code, and openssl verify fails the same chain.
    for (mutation, code) in [
        ("root_no_cert_sign", "meshplan::cert::root_key_usage"),
        ("root_signed_by_other", "meshplan::cert::not_self_signed"),
        (
            "name_constraint_other_domain",
            "meshplan::cert::name_constraints",
        ),
    ] {
        let dir = scratch(&format!("openssl-{mutation}")).join("ca");
        make_ca(PLAN, &dir, &[]);
        apply(mutation, &dir);
        assert!(codes(&dir).contains(&code.to_owned()), "{mutation}");
        let home = dir.join(VICTIM);
        let leaf = home.join("workload.pem");
        fs::write(&leaf, workload_leaf(&dir, VICTIM)).unwrap();
        let verify = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(home.join("root-cert.pem"))
            .arg("-untrusted")
            .arg(home.join("ca-cert.pem"))
            .arg(&leaf)
            .output()
            .unwrap();
        assert!(
            !verify.status.success(),
            "{mutation}: openssl accepted\n{}",
            text(&verify)
        );
    }
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one with `options`; `None` (the test skips) unless root may mount here.
    fn mount(at: &Path, options: &str) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        mounted.status.success().then(|| Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// C21 on a real full disk (the unit tests in src/certs/store.rs fail every write and every
/// move through a hook; this is the same with the kernel saying ENOSPC). Needs root and a
/// kernel that lets it mount tmpfs; skips otherwise.
#[test]
fn a_full_disk_never_leaves_a_state_a_rerun_refuses_or_keeps_broken() {
    if !is_root() {
        println!("SKIP: mounting a small tmpfs needs root");
        return;
    }
    let base = scratch("tmpfs");
    let mut limits: Vec<String> = (1..=20)
        .map(|pages| format!("size={}k", pages * 4))
        .collect();
    limits.extend((2..=20).map(|inodes| format!("size=4m,nr_inodes={inodes}")));
    let mut failed = 0;
    for (index, limit) in limits.iter().enumerate() {
        let Some(disk) = Tmpfs::mount(&base.join(format!("m{index}")), limit) else {
            println!("SKIP: cannot mount tmpfs here");
            return;
        };
        let dir = disk.0.join("ca");
        let first = certs(&dir, &[]);
        if first.status.code() != Some(0) {
            failed += 1;
            assert_eq!(first.status.code(), Some(2), "{limit}: {}", text(&first));
            // Nothing half-made: no DIR, or one a rerun takes as it is.
            let left: Vec<String> = fs::read_dir(&disk.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(left.is_empty(), "{limit}: left {left:?}\n{}", text(&first));
        }
        disk.remount("size=4m,nr_inodes=10000");
        let again = certs(&dir, &[]);
        assert_eq!(again.status.code(), Some(0), "{limit}: {}", text(&again));
        let (findings, status) = check_certs(&dir);
        assert!(
            findings.is_empty() && status == Some(0),
            "{limit}: {findings:#?}"
        );
    }
    assert!(
        failed > 10,
        "only {failed} of {} limits ran out of space",
        limits.len()
    );
    // A rotation on a disk with 0..12 pages to spare: refused whole, or done whole.
    let mut refused = 0;
    for spare in 0..12 {
        let Some(disk) = Tmpfs::mount(&base.join(format!("r{spare}")), "size=4m") else {
            return;
        };
        let dir = disk.0.join("ca");
        make_ca(PLAN, &dir, &[]);
        let df = Command::new("df")
            .args(["-B4096", "--output=used"])
            .arg(&disk.0)
            .output()
            .unwrap();
        let used: u64 = String::from_utf8_lossy(&df.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap();
        disk.remount(&format!("size={}k", (used + spare) * 4));
        let before = snapshot(&dir);
        let rotated = certs(&dir, &["--rotate", VICTIM]);
        if rotated.status.code() == Some(0) {
            assert_ne!(snapshot(&dir), before);
        } else {
            refused += 1;
            assert_refused(
                &rotated,
                &["no space left", "nothing in the CA directory changed"],
            );
            assert_eq!(snapshot(&dir), before, "spare {spare}");
        }
        let (findings, status) = check_certs(&dir);
        assert!(
            findings.is_empty() && status == Some(0),
            "spare {spare}: {findings:#?}"
        );
    }
    assert!(refused > 0, "no rotation ran out of space");
}

/// `check --certs` gives the CA directory its own verdict: a good one is said to be read and
/// valid, a missing one is one finding (not one per cluster), and the plan stays "valid".
#[test]
fn check_certs_names_the_ca_directory_in_its_verdict() {
    let base = scratch("verdict");
    let dir = base.join("ca");
    make_ca(PLAN, &dir, &[]);
    let human = |dir: &Path| {
        meshplan(&[
            "check",
            PLAN,
            "--certs",
            dir.to_str().unwrap(),
            "--color",
            "never",
        ])
    };
    let good = human(&dir);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    let stderr = String::from_utf8_lossy(&good.stderr).into_owned();
    assert!(stderr.contains(&format!("{PLAN}: valid")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} (the CA files of 3 clusters): valid\n",
            dir.display()
        )),
        "{stderr}"
    );

    let missing = base.join("not-there");
    let (findings, code) = check_certs(&missing);
    assert_eq!(code, Some(1));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["code"], "meshplan::cert::missing_file");
    let bad = human(&missing);
    let stderr = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(stderr.contains(&format!("{PLAN}: valid")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} (the CA files of 3 clusters): invalid, 1 error, 0 warnings",
            missing.display()
        )),
        "{stderr}"
    );
}

/// What follows a rotation is said for the cluster the plan describes: a primary's istiod
/// restarts; a remote runs none, so nothing restarts there. An intermediate close to its end
/// names the complete command, and a refused DIR suggests one with the plan and the mesh id.
#[test]
fn messages_name_the_plan_the_directory_and_what_runs_where() {
    let base = scratch("messages");
    let dir = base.join("ca");
    make_ca(PLAN, &dir, &["--intermediate-days", "10"]);
    let remote = certs(&dir, &["--rotate", VICTIM]);
    let said = text(&remote);
    assert!(
        said.contains(&format!(
            "rotated: {VICTIM} (next: `bash {VICTIM}/scripts/cacerts.sh` in the built tree; {VICTIM} runs no istiod (its workloads' certificates come from mdemo-cluster1's), so nothing restarts)"
        )),
        "{said}"
    );
    let primary = certs(&dir, &["--rotate", "mdemo-cluster1"]);
    assert!(
        text(&primary).contains("then `kubectl --context mdemo-cluster1 -n istio-system rollout restart deployment/istiod`"),
        "{}",
        text(&primary)
    );

    let (findings, _) = check_certs(&dir);
    let soon = findings
        .iter()
        .find(|f| f["code"] == "meshplan::cert::expires_soon")
        .expect("a 10-day intermediate expires soon");
    let help = soon["help"].as_str().unwrap();
    assert!(
        help.starts_with(&format!(
            "re-issue it before then: `meshplan certs {PLAN} --out {} --rotate mdemo-cluster",
            dir.display()
        )),
        "{help}"
    );

    let tree = base.join("tree");
    let built = meshplan(&["build", PLAN, "-o", tree.to_str().unwrap(), "-q"]);
    assert!(built.status.success(), "{}", text(&built));
    let refused = certs(&tree.join("ca"), &[]);
    assert!(
        text(&refused).contains(&format!(
            "e.g. `meshplan certs {PLAN} --out ~/.meshplan/certs/mdemo-mesh`"
        )),
        "{}",
        text(&refused)
    );
}
