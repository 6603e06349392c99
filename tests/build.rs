//! `meshplan build` and `meshplan render` as users and CI run them: determinism, ownership of
//! the output tree, drift detection, failure safety, streams.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "support/run.rs"]
mod run;
use run::{meshplan, meshplan_env};

use serde::Deserialize;

/// A fresh, empty scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("build")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir` (relative path → bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn build(plan: &str, out: &Path) -> Output {
    meshplan(&["build", plan, "-o", out.to_str().unwrap()])
}

fn check(plan: &str, out: &Path) -> Output {
    meshplan(&["build", plan, "-o", out.to_str().unwrap(), "--check"])
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const PLAN: &str = "plans/three-cloud-metallb.toml";

#[cfg(unix)]
#[test]
fn scripts_are_executable_and_nothing_else_is() {
    use std::os::unix::fs::PermissionsExt;
    let out = scratch("modes").join("out");
    assert_eq!(build(PLAN, &out).status.code(), Some(0));
    let files = tree(&out);
    assert!(files.keys().any(|p| p.ends_with(".sh")));
    for path in files.keys() {
        let mode = fs::metadata(out.join(path)).unwrap().permissions().mode();
        let executable = mode & 0o111 != 0;
        assert_eq!(executable, path.ends_with(".sh"), "{path}: mode {mode:o}");
        assert!(
            mode & 0o600 == 0o600,
            "{path}: the owner reads and writes it"
        );
    }
}

#[test]
fn building_twice_gives_identical_trees_wherever_they_are_written() {
    let dir = scratch("twice");
    let (first, second) = (dir.join("a/out"), dir.join("b"));
    assert_eq!(build(PLAN, &first).status.code(), Some(0));
    let once = tree(&first);
    assert_eq!(build(PLAN, &first).status.code(), Some(0));
    assert_eq!(tree(&first), once, "a rebuild changes nothing");
    let absolute = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(PLAN);
    assert_eq!(
        build(absolute.to_str().unwrap(), &second).status.code(),
        Some(0)
    );
    assert_eq!(
        tree(&second),
        once,
        "same bytes from another plan path and output path"
    );
    for (path, bytes) in &once {
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.ends_with('\n') && !text.contains('\r'),
            "{path}: LF endings, final newline"
        );
        assert!(
            !text.contains(env!("CARGO_MANIFEST_DIR")),
            "{path}: no absolute path"
        );
    }
}

#[test]
fn check_passes_on_a_fresh_build_and_lists_changed_missing_and_stale_files() {
    let base = scratch("check");
    let dir = base.join("out");
    assert_eq!(
        check(PLAN, &dir).status.code(),
        Some(1),
        "nothing built yet"
    );
    build(PLAN, &dir);
    let clean = check(PLAN, &dir);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert_eq!(stdout(&clean), "");

    fs::write(
        dir.join("mdemo-cluster1/namespace.yaml"),
        "edited by hand\n",
    )
    .unwrap();
    fs::remove_file(dir.join("mdemo-cluster2/istio/control-plane.yaml")).unwrap();
    let drift = check(PLAN, &dir);
    assert_eq!(drift.status.code(), Some(1));
    let listed = stdout(&drift);
    assert!(
        listed.contains("changed: ") && listed.contains("mdemo-cluster1/namespace.yaml"),
        "{listed}"
    );
    assert!(
        listed.contains("missing: ") && listed.contains("mdemo-cluster2/istio/control-plane.yaml"),
        "{listed}"
    );
    let before = tree(&dir);
    assert_eq!(check(PLAN, &dir).status.code(), Some(1));
    assert_eq!(tree(&dir), before, "--check writes nothing");

    // A plan that drops a cluster leaves that cluster's files stale.
    let smaller = base.join("two-clusters.toml");
    fs::write(&smaller, without_last_cluster(PLAN)).unwrap();
    build(PLAN, &dir);
    let stale = check(smaller.to_str().unwrap(), &dir);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stdout(&stale).contains("stale: ")
            && stdout(&stale).contains("mdemo-cluster3/namespace.yaml"),
        "{}",
        stdout(&stale)
    );
}

/// The plan text up to its last `[[cluster]]`, with the eastwest-less spare network kept valid.
fn without_last_cluster(plan: &str) -> String {
    let text = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(plan)).unwrap();
    let cut = text.rfind("[[cluster]]").unwrap();
    text[..cut].replace("[[network]]\nid = \"network-c3\"\n", "")
}

#[test]
fn rebuild_removes_what_the_plan_no_longer_produces_and_keeps_foreign_files() {
    let base = scratch("ownership");
    let dir = base.join("out");
    build(PLAN, &dir);
    fs::write(dir.join("NOTES.md"), "mine\n").unwrap();
    fs::write(dir.join("mdemo-cluster3/extra.yaml"), "mine too\n").unwrap();
    let smaller = base.join("two-clusters.toml");
    fs::write(&smaller, without_last_cluster(PLAN)).unwrap();
    let rebuilt = build(smaller.to_str().unwrap(), &dir);
    assert_eq!(
        rebuilt.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let after = tree(&dir);
    assert_eq!(
        after.get("NOTES.md").map(Vec::as_slice),
        Some(&b"mine\n"[..])
    );
    assert_eq!(
        after.get("mdemo-cluster3/extra.yaml").map(Vec::as_slice),
        Some(&b"mine too\n"[..])
    );
    assert!(
        !after
            .keys()
            .any(|p| p.starts_with("mdemo-cluster3/") && p != "mdemo-cluster3/extra.yaml")
    );
    assert_eq!(
        check(smaller.to_str().unwrap(), &dir).status.code(),
        Some(0)
    );
}

#[test]
fn a_foreign_file_in_the_way_stops_the_build_before_anything_changes() {
    let dir = scratch("foreign").join("out");
    fs::create_dir_all(dir.join("mdemo-cluster1")).unwrap();
    fs::write(dir.join("mdemo-cluster1/namespace.yaml"), "hand-written\n").unwrap();
    let before = tree(&dir);
    let out = build(PLAN, &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mdemo-cluster1/namespace.yaml"));
    assert_eq!(tree(&dir), before);
}

#[test]
fn an_invalid_plan_leaves_the_output_untouched() {
    let base = scratch("invalid");
    let dir = base.join("out");
    build(PLAN, &dir);
    let before = tree(&dir);
    let out = build("tests/fixtures/err/lb_outside_pool.toml", &dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(tree(&dir), before);
    let fresh = base.join("never");
    build("tests/fixtures/err/lb_outside_pool.toml", &fresh);
    assert!(
        !fresh.exists(),
        "no directory is created for an invalid plan"
    );
}

fn yaml_documents(text: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn render_streams_one_clusters_manifests_as_parseable_yaml() {
    let out = meshplan(&["render", PLAN, "--cluster", "mdemo-cluster1"]);
    assert_eq!(out.status.code(), Some(0));
    let kinds: Vec<String> = yaml_documents(&stdout(&out))
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    let expected = [
        "Namespace",     // istio-system
        "IPAddressPool", // MetalLB before the Services that take its addresses
        "L2Advertisement",
        "Service",   // istiod-lb
        "Gateway",   // cross-network
        "Namespace", // sample, before its workloads
        "Service",
        "Deployment",
        "ServiceAccount",
        "Service",
        "Deployment",
    ];
    assert_eq!(kinds, expected, "apply order");

    let istio = meshplan(&[
        "render",
        PLAN,
        "--cluster",
        "mdemo-cluster2",
        "--only",
        "istio",
    ]);
    let docs = yaml_documents(&stdout(&istio));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["profile"].as_str(), Some("remote"));
    assert_eq!(
        docs[0]["spec"]["values"]["global"]["remotePilotAddress"].as_str(),
        Some("10.64.30.71")
    );
}

#[test]
fn render_of_an_unknown_cluster_lists_the_plans_clusters() {
    let out = meshplan(&["render", PLAN, "--cluster", "mdemo-cluster9"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mdemo-cluster1, mdemo-cluster2, mdemo-cluster3"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

// The render cache (src/cache.rs): a hit prints exactly what a compile prints, and anything
// that could change the output misses.

/// `meshplan render PLAN --cluster CLUSTER` with the cache in `cache`.
fn cached_render(cache: &Path, plan: &str, cluster: &str) -> Output {
    meshplan_env(
        &["render", plan, "--cluster", cluster],
        &[("MESHPLAN_CACHE_DIR", cache.to_str().unwrap())],
    )
}

/// The cache's entries: file name → content.
fn cache_entries(cache: &Path) -> BTreeMap<String, String> {
    let Ok(listing) = fs::read_dir(cache) else {
        return BTreeMap::new();
    };
    listing
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// An entry as the cache writes it: the BLAKE3 hash of the stream, a newline, the stream.
fn entry_text(stream: &str) -> String {
    format!("{}\n{stream}", blake3::hash(stream.as_bytes()).to_hex())
}

#[test]
fn a_cached_render_prints_exactly_what_a_compile_prints() {
    let cache = scratch("cache_hit").join("cache");
    let first = cached_render(&cache, PLAN, "mdemo-cluster1");
    let entries = cache_entries(&cache);
    assert_eq!(
        entries.len(),
        1,
        "one entry per plan, cluster and selection"
    );
    let second = cached_render(&cache, PLAN, "mdemo-cluster1");
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(second.status, first.status);
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(second.stderr, first.stderr, "the same `valid` summary");
    assert_eq!(
        stdout(&first),
        stdout(&meshplan(&["render", PLAN, "--cluster", "mdemo-cluster1"]))
    );
    let (name, text) = entries.first_key_value().unwrap();
    assert!(
        name.len() == 64 + ".yaml".len() && name.ends_with(".yaml"),
        "{name}"
    );
    assert_eq!(text, &entry_text(&stdout(&first)));
}

/// A cache in a scratch directory holding the entry for `cluster`, its stream replaced by
/// `planted` (with a matching hash); the cache, the entry's name and the compiled stream.
fn planted_cache(test: &str, cluster: &str, planted: &str) -> (PathBuf, String, String) {
    let cache = scratch(test).join("cache");
    let compiled = stdout(&cached_render(&cache, PLAN, cluster));
    let (name, _) = cache_entries(&cache).pop_first().unwrap();
    fs::write(cache.join(&name), entry_text(planted)).unwrap();
    (cache, name, compiled)
}

#[test]
fn a_hit_is_served_from_the_entry_and_a_damaged_entry_is_a_miss() {
    // An entry whose hash matches is trusted: proof that the second run did not compile.
    let (cache, name, compiled) =
        planted_cache("cache_damaged", "mdemo-cluster2", "kind: FromTheCache\n");
    assert_eq!(
        stdout(&cached_render(&cache, PLAN, "mdemo-cluster2")),
        "kind: FromTheCache\n"
    );
    // One whose hash does not (a truncated or edited file) is compiled again and replaced.
    fs::write(
        cache.join(&name),
        entry_text(&compiled).replace("Namespace", "Namespaze"),
    )
    .unwrap();
    assert_eq!(
        stdout(&cached_render(&cache, PLAN, "mdemo-cluster2")),
        compiled
    );
    assert_eq!(cache_entries(&cache)[&name], entry_text(&compiled));
}

#[test]
fn the_plan_bytes_its_file_name_the_cluster_and_the_selection_each_key_the_cache() {
    let dir = scratch("cache_keys");
    let cache = dir.join("cache");
    let plan = dir.join("mesh.toml");
    fs::copy(PLAN, &plan).unwrap();
    let plan = plan.to_str().unwrap();
    cached_render(&cache, plan, "mdemo-cluster1");
    fs::write(plan, fs::read_to_string(PLAN).unwrap() + "\n# edited\n").unwrap();
    cached_render(&cache, plan, "mdemo-cluster1");
    assert_eq!(cache_entries(&cache).len(), 2, "an edited plan misses");

    let renamed = dir.join("other.toml");
    fs::copy(plan, &renamed).unwrap();
    let out = cached_render(&cache, renamed.to_str().unwrap(), "mdemo-cluster1");
    assert!(
        stdout(&out).contains("from other.toml."),
        "headers name the plan file"
    );
    cached_render(&cache, plan, "mdemo-cluster3");
    let istio = meshplan_env(
        &[
            "render",
            plan,
            "--cluster",
            "mdemo-cluster3",
            "--only",
            "istio",
        ],
        &[("MESHPLAN_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert!(stdout(&istio).contains("kind: IstioOperator"));
    assert_eq!(cache_entries(&cache).len(), 5);
}

#[test]
fn plans_with_warnings_and_failed_renders_are_not_cached() {
    let cache = scratch("cache_warnings").join("cache");
    let warn = "tests/fixtures/warn/lb_istiod_on_remote.toml";
    for _ in 0..2 {
        let out = cached_render(&cache, warn, "control-1");
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("warning"),
            "warned every time"
        );
    }
    assert_eq!(
        cached_render(&cache, PLAN, "mdemo-cluster9").status.code(),
        Some(1)
    );
    assert!(cache_entries(&cache).is_empty());
}

#[test]
fn no_cache_and_an_empty_cache_dir_write_nothing() {
    let dir = scratch("cache_off");
    let cache = dir.join("cache");
    let flag = meshplan_env(
        &["render", PLAN, "--cluster", "mdemo-cluster1", "--no-cache"],
        &[("MESHPLAN_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert_eq!(flag.status.code(), Some(0));
    assert!(!cache.exists());
    let empty = meshplan_env(
        &["render", PLAN, "--cluster", "mdemo-cluster1"],
        &[
            ("MESHPLAN_CACHE_DIR", ""),
            ("HOME", dir.to_str().unwrap()),
            ("XDG_CACHE_HOME", dir.to_str().unwrap()),
        ],
    );
    assert_eq!(empty.status.code(), Some(0));
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written anywhere"
    );
}

#[test]
fn an_unwritable_cache_does_not_fail_the_render() {
    let dir = scratch("cache_unwritable");
    let in_the_way = dir.join("cache");
    fs::write(&in_the_way, "a file where the cache directory would be\n").unwrap();
    let out = cached_render(&in_the_way, PLAN, "mdemo-cluster1");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("kind: Namespace"));
    assert_eq!(
        fs::read_to_string(&in_the_way).unwrap(),
        "a file where the cache directory would be\n"
    );
}

#[test]
fn the_oldest_entries_go_past_the_limit_and_nothing_else_does() {
    const LIMIT: usize = 4096;
    let cache = scratch("cache_prune").join("cache");
    fs::create_dir_all(&cache).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let fake = |i: usize| format!("{i:064x}.yaml");
    for i in 0..LIMIT {
        let file = fs::File::create(cache.join(fake(i))).unwrap();
        // entry 0 is the oldest
        file.set_modified(old + std::time::Duration::from_secs(i as u64))
            .unwrap();
    }
    fs::write(cache.join("notes.txt"), "mine\n").unwrap();
    fs::write(cache.join("0.yaml"), "mine too\n").unwrap();
    // temporary files of killed runs: an old one goes, a recent one may still be written
    let abandoned = format!(".{}.42", fake(7).trim_end_matches(".yaml"));
    let in_flight = format!(".{}.43", fake(8).trim_end_matches(".yaml"));
    fs::File::create(cache.join(&abandoned))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::write(cache.join(&in_flight), "").unwrap();
    cached_render(&cache, PLAN, "mdemo-cluster1");
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), LIMIT + 3, "one removed for the one added");
    assert!(!entries.contains_key(&fake(0)), "the oldest went");
    assert!(entries.contains_key(&fake(1)));
    assert!(entries.contains_key("notes.txt") && entries.contains_key("0.yaml"));
    assert!(!entries.contains_key(&abandoned) && entries.contains_key(&in_flight));
}

#[test]
fn old_entries_go_when_the_cache_outgrows_its_size_limit() {
    let cache = scratch("cache_bytes").join("cache");
    fs::create_dir_all(&cache).unwrap();
    let huge = cache.join(format!("{:064x}.yaml", 1));
    let file = fs::File::create(&huge).unwrap();
    file.set_len(300 << 20).unwrap(); // sparse: 300 MiB long, no disk used
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
    )
    .unwrap();
    drop(file);
    cached_render(&cache, PLAN, "mdemo-cluster1");
    assert!(!huge.exists(), "past 256 MiB the oldest entry went");
    assert_eq!(cache_entries(&cache).len(), 1, "the new entry stays");
}

#[cfg(unix)]
#[test]
fn a_cache_others_can_write_to_is_neither_read_nor_written() {
    use std::os::unix::fs::PermissionsExt;
    let (cache, name, compiled) =
        planted_cache("cache_shared", "mdemo-cluster1", "kind: Planted\n");
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        stdout(&cached_render(&cache, PLAN, "mdemo-cluster1")),
        compiled
    );
    assert_eq!(
        cache_entries(&cache)[&name],
        entry_text("kind: Planted\n"),
        "not rewritten"
    );
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        stdout(&cached_render(&cache, PLAN, "mdemo-cluster1")),
        "kind: Planted\n"
    );
}

#[cfg(unix)]
#[test]
fn a_new_cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let cache = scratch("cache_private").join("a/b/cache");
    cached_render(&cache, PLAN, "mdemo-cluster1");
    let mode = fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
