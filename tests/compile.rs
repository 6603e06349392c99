//! Snapshot and contract tests over every plan file the project ships or tests with.
//!
//! - `tests/fixtures/ok/*.toml` and `plans/*.toml`: no errors, and no warning the file's header
//!   comment does not name (a shipped plan whose pins break a release rule says so there, with
//!   the reason); snapshot = the model meshplan understood, as YAML.
//! - `tests/fixtures/err/*.toml`: invalid, and the first finding has the code the file's first
//!   line declares; snapshot = the rendered reports a user sees.
//! - `tests/fixtures/warn/*.toml`: valid, and the first finding is the declared warning.
//!
//! Most fixtures pin an Istio release that is past its end of life on the day the release table
//! was checked (the date tests run on): that warning is allowed in any fixture, and skipped when
//! finding a fixture's first finding.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::fs;
use std::path::{Path, PathBuf};

use std::process::Command;

use meshplan::render::Output;
use meshplan::{Checked, Source, check_bytes, report};

#[path = "support/tools.rs"]
mod tools;

#[path = "support/bash_compat.rs"]
mod bash_compat;
use proptest::prelude::*;
use serde::Deserialize;

const STYLE: report::Style = report::Style {
    color: false,
    width: 80,
};

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path as users would type it from the repository root, so reports are machine-independent.
fn display_name(path: &Path) -> String {
    path.strip_prefix(crate_root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn load(path: &Path) -> (Source, Checked) {
    let bytes = fs::read(path).unwrap();
    check_bytes(&display_name(path), &bytes)
}

fn rendered_findings(source: &Source, checked: &Checked) -> String {
    let mut out: String = checked
        .findings
        .iter()
        .map(|f| report::human(source, f, STYLE))
        .collect();
    out.push_str(&report::summary(&source.name, &checked.findings));
    out.push('\n');
    out
}

/// The `# code: meshplan::...` a fixture declares on its first line.
fn declared_code(path: &Path) -> String {
    let bytes = fs::read(path).unwrap();
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(first_line)
        .trim()
        .strip_prefix("# code: ")
        .unwrap_or_else(|| panic!("{} must start with `# code: meshplan::...`", path.display()))
        .to_owned()
}

/// Snapshots are named after the input's folder and file: `check@err__plan_syntax.toml.snap`.
fn snapshot(path: &Path, text: &str) {
    named_snapshot("check", path, text);
}

fn named_snapshot(name: &str, path: &Path, text: &str) {
    let os_name = |p: Option<&std::ffi::OsStr>| {
        p.map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let folder = os_name(path.parent().and_then(Path::file_name));
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_suffix(format!("{folder}__{}", os_name(path.file_name())));
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// The warning that most fixtures carry, whatever they test (see the module comment).
const END_OF_LIFE: &str = "meshplan::version::istio_eol";

/// The comment lines a plan file starts with.
fn header_comment(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A shipped plan or ok fixture: no errors, and every warning's code named in its header
/// comment (fixtures may also carry the end-of-life warning without saying so).
fn assert_only_declared_warnings(path: &Path, source: &Source, checked: &Checked) {
    let header = header_comment(path);
    let shipped = display_name(path).starts_with("plans/");
    for finding in &checked.findings {
        let code = finding.code_str();
        assert!(
            !finding.is_error() && (header.contains(&code) || (!shipped && code == END_OF_LIFE)),
            "{}: {code} is not named in its header comment:\n{}",
            source.name,
            rendered_findings(source, checked)
        );
    }
}

fn model_snapshot(path: &Path) {
    let (source, checked) = load(path);
    assert_only_declared_warnings(path, &source, &checked);
    let model = checked
        .plan
        .as_ref()
        .map(serde_yaml::to_string)
        .unwrap()
        .unwrap();
    snapshot(path, &model);
    let tree = compile_tree(&source);
    named_snapshot("build", path, &tree_text(&tree));
    assert_yaml_is_well_formed(&source.name, &tree);
    assert_scripts_are_well_formed(&source.name, &tree);
    assert_cluster_streams_match_the_tree(checked.plan.as_ref().unwrap(), &source, &tree);
    assert_readme_says_what_a_fresh_shell_needs(checked.plan.as_ref().unwrap(), &source, &tree);
}

/// Words in `text` that start with `prefix` and go on with characters `allowed` takes.
fn words_starting(text: &str, prefix: &str, allowed: &str) -> Vec<String> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || allowed.contains(*c))
                .collect::<String>()
        })
        .collect()
}

/// The tree's README lists, before the install order, what the scripts need from the shell:
/// every context, the oldest bash and kubectl, every MESHPLAN_* variable any script reads, and
/// every host any script fetches from. Read from the scripts, so the list cannot fall behind.
fn assert_readme_says_what_a_fresh_shell_needs(
    plan: &meshplan::model::Plan,
    source: &Source,
    tree: &Output,
) {
    let readme = &tree["README.md"];
    let start = readme
        .find("## Before you start")
        .unwrap_or_else(|| panic!("{}: README has no \"Before you start\"", source.name));
    let end = readme.find("## Install order").unwrap();
    let before = &readme[start..end];
    for c in &plan.clusters {
        assert!(
            before.contains(&c.context),
            "{}: context {}",
            source.name,
            c.context
        );
    }
    assert!(before.contains("bash: 3.2 or later"), "{before}");
    assert!(before.contains("kubectl: 1.25 or later"), "{before}");
    let scripts: String = tree
        .iter()
        .filter(|(p, _)| p.ends_with(".sh"))
        .map(|(_, t)| t.as_str())
        .collect();
    let mut variables = words_starting(&scripts, "MESHPLAN_", "_");
    variables.push("CERTS_DIR".to_owned());
    for variable in &variables {
        if variable == "MESHPLAN_" {
            continue; // "the MESHPLAN_* variables"
        }
        assert!(
            before.contains(&format!("`{variable}`")),
            "{}: README does not list {variable}",
            source.name
        );
    }
    for url in words_starting(&scripts, "https://", "_.-:/") {
        let host = url["https://".len()..].split(['/', ':']).next().unwrap();
        // Hints in messages (istio.io/downloadIstio, helm.sh) are not fetched by the install,
        // and the clusters' API servers are reached through the contexts.
        let api_server = plan
            .clusters
            .iter()
            .filter_map(|c| c.api_server.as_deref())
            .any(|a| a.starts_with(&url));
        if scripts.contains(&format!("curl -L {url}"))
            || url.starts_with("https://helm.sh")
            || api_server
        {
            continue;
        }
        assert!(
            before.contains(&format!("`{host}`")),
            "{}: README does not list {host} ({url})",
            source.name
        );
    }
}

/// `meshplan render --cluster` resolves and renders one cluster only; what it prints must be
/// what the built tree holds: the kustomization's resources in order, and the IstioOperators.
fn assert_cluster_streams_match_the_tree(
    plan: &meshplan::model::Plan,
    source: &Source,
    tree: &Output,
) {
    use meshplan::render::{Selection, cluster_stream};
    let plan_file = meshplan::plan_file_name(&source.name);
    for name in plan.clusters.iter().map(|c| &c.name) {
        let (mesh, cluster) = meshplan::resolve::resolve_cluster(plan, &plan_file, name);
        let cluster = cluster.unwrap();
        let kustomization: serde_yaml::Value =
            serde_yaml::from_str(&tree[&format!("{name}/kustomization.yaml")]).unwrap();
        let resources: Vec<&str> = kustomization["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let applied = resources
            .iter()
            .map(|file| tree[&format!("{name}/{file}")].as_str())
            .collect::<Vec<_>>()
            .join("---\n");
        let stream = |selection| cluster_stream(&mesh, &cluster, selection).unwrap();
        let file = |path: &str| tree.get(&format!("{name}/{path}")).cloned();
        assert_eq!(
            stream(Selection::Kubectl),
            Some(applied),
            "{} {name}",
            source.name
        );
        assert_eq!(stream(Selection::Istio), file("istio/control-plane.yaml"));
        assert_eq!(
            stream(Selection::Eastwest),
            file("istio/eastwest-gateway.yaml")
        );
    }
}

fn compile_tree(source: &Source) -> Output {
    let (_, output) = meshplan::compile(source);
    output.unwrap().unwrap()
}

/// The whole tree, each file under a `==== path ====` header.
fn tree_text(tree: &Output) -> String {
    tree.iter()
        .map(|(path, text)| format!("==== {path} ====\n{text}"))
        .collect()
}

/// Kinds that are not namespaced (everything else meshplan writes must name its namespace).
const CLUSTER_SCOPED: &[&str] = &["Namespace", "Kustomization"];

fn assert_yaml_is_well_formed(plan: &str, tree: &Output) {
    for (path, text) in tree.iter().filter(|(p, _)| p.ends_with(".yaml")) {
        let documents: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(text)
            .map(|doc| {
                serde_yaml::Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{plan}: {path} does not parse: {e}\n{text}"))
            })
            .collect();
        assert!(!documents.is_empty(), "{plan}: {path} has no document");
        if path.contains("/helm/") || path.contains("/platform/") {
            continue; // Helm values and platform configs, not Kubernetes API objects
        }
        for doc in &documents {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{plan}: {path}: a document without kind"));
            if !CLUSTER_SCOPED.contains(&kind) {
                assert!(
                    doc["metadata"]["namespace"].as_str().is_some(),
                    "{plan}: {path}: {kind} {:?} names no namespace",
                    doc["metadata"]["name"]
                );
            }
        }
    }
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `bash -n` always; shellcheck where it is installed (CI installs it); and nothing bash 3.2
/// lacks (support/bash_compat.rs).
fn assert_scripts_are_well_formed(plan: &str, tree: &Output) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("scripts")
        .join(plan.replace('/', "_"));
    let shellcheck = tool_available("shellcheck");
    for (path, text) in tree.iter().filter(|(p, _)| p.ends_with(".sh")) {
        assert!(
            text.starts_with("#!/usr/bin/env bash\n"),
            "{plan}: {path} has no bash shebang"
        );
        assert!(
            text.contains("\nset -euo pipefail\n"),
            "{plan}: {path} lacks set -euo pipefail"
        );
        let old_bash = bash_compat::violations(text);
        assert!(
            old_bash.is_empty(),
            "{plan}: {path} needs a bash newer than 3.2:\n{}",
            old_bash.join("\n")
        );
        let file = dir.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, text).unwrap();
        let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
        assert!(
            syntax.status.success(),
            "{plan}: {path}: bash -n: {}",
            String::from_utf8_lossy(&syntax.stderr)
        );
        if shellcheck {
            let lint = Command::new("shellcheck").arg(&file).output().unwrap();
            assert!(
                lint.status.success(),
                "{plan}: {path}: shellcheck:\n{}",
                String::from_utf8_lossy(&lint.stdout)
            );
        }
    }
}

#[test]
fn shellcheck_is_used_when_installed() {
    if !tool_available("shellcheck") {
        tools::skip(
            "shellcheck of generated scripts",
            "shellcheck is not installed; scripts got `bash -n` only",
        );
    }
}

#[test]
fn ok_fixtures_check_clean() {
    insta::glob!("fixtures", "ok/*.toml", model_snapshot);
}

/// Runs `check` on each `plans/*.toml` as `insta::glob!` would, without walking the whole crate
/// (a glob based at the crate root also walks `target/`, where other tests leave links).
fn for_each_shipped_plan(check: impl Fn(&Path)) {
    let mut plans: Vec<PathBuf> = fs::read_dir(crate_root().join("plans"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    plans.sort();
    assert!(!plans.is_empty());
    for plan in plans {
        let mut settings = insta::Settings::clone_current();
        settings.set_input_file(&plan);
        settings.bind(|| check(&plan));
    }
}

#[test]
fn shipped_plans_check_clean() {
    for_each_shipped_plan(model_snapshot);
}

/// The fixture is valid or not as expected, its first finding has the declared code, and the
/// reports a user sees are snapshotted.
fn assert_declared_code_first(path: &Path, expect_valid: bool) {
    let (source, checked) = load(path);
    let rendered = rendered_findings(&source, &checked);
    assert_eq!(
        checked.is_valid(),
        expect_valid,
        "validity of {}:\n{rendered}",
        source.name
    );
    let declared = declared_code(path);
    let first = checked
        .findings
        .iter()
        .map(|f| f.code_str())
        .find(|code| code != END_OF_LIFE || declared == END_OF_LIFE)
        .unwrap_or_default();
    assert_eq!(
        first, declared,
        "first finding of {}:\n{rendered}",
        source.name
    );
    snapshot(path, &rendered);
}

#[test]
fn err_fixtures_report_their_code_first() {
    insta::glob!("fixtures", "err/*.toml", |path| assert_declared_code_first(
        path, false
    ));
}

#[test]
fn warn_fixtures_are_valid_with_their_warning_first() {
    insta::glob!(
        "fixtures",
        "warn/*.toml",
        |path| assert_declared_code_first(path, true)
    );
}

/// Warn fixtures are valid plans too: their scripts need nothing bash 3.2 lacks either.
#[test]
fn warn_fixture_scripts_need_only_bash_3_2() {
    for entry in fs::read_dir(crate_root().join("tests/fixtures/warn")).unwrap() {
        let path = entry.unwrap().path();
        let (source, _) = load(&path);
        for (file, text) in compile_tree(&source)
            .iter()
            .filter(|(p, _)| p.ends_with(".sh"))
        {
            let old_bash = bash_compat::violations(text);
            assert!(
                old_bash.is_empty(),
                "{}: {file} needs a bash newer than 3.2:\n{}",
                source.name,
                old_bash.join("\n")
            );
        }
    }
}

fn codes_in_source() -> Vec<String> {
    let mut codes = Vec::new();
    // Plan findings live in the parse stage and the rule families; certificate findings
    // (`check --certs`) in src/certs/, and `[mesh.trust]`'s in src/trust/.
    let mut files = vec![crate_root().join("src/parse.rs")];
    for dir in ["src/validate", "src/certs", "src/trust"] {
        for entry in fs::read_dir(crate_root().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let text = fs::read_to_string(path).unwrap();
        for piece in text.split("code(meshplan::").skip(1) {
            let code = piece.split(')').next().unwrap();
            codes.push(format!("meshplan::{code}"));
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

#[test]
fn every_code_is_documented_and_has_a_fixture() {
    let codes = codes_in_source();
    assert!(codes.len() > 40, "found only {} codes", codes.len());
    let docs = fs::read_to_string(crate_root().join("docs/diagnostics.md")).unwrap();
    let documented: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(str::trim)
        .collect();
    let mut declared = Vec::new();
    // Certificate fixtures are recipes (tests/certs.rs builds and breaks a CA directory at run
    // time, so no private key is committed); their first line declares the code the same way.
    // Upgrade fixtures are new plans whose second line names the old one (tests/upgrade.rs).
    for dir in [
        "tests/fixtures/err",
        "tests/fixtures/warn",
        "tests/fixtures/cert",
        "tests/fixtures/upgrade",
        "tests/fixtures/trust-cert",
    ] {
        for entry in fs::read_dir(crate_root().join(dir)).unwrap() {
            declared.push(declared_code(&entry.unwrap().path()));
        }
    }
    for code in &codes {
        assert!(
            documented.contains(&code.as_str()),
            "{code} has no `### {code}` in docs/diagnostics.md"
        );
        assert!(
            declared.contains(code),
            "{code} has no fixture declaring it"
        );
    }
    let not_about_the_plan = [
        "meshplan::io::read_plan",
        "meshplan::io::plan_too_large",
        "meshplan::io::read_attachment",
        "meshplan::io::write_output",
        "meshplan::cli::unknown_cluster",
        "meshplan::cli::unknown_service",
        "meshplan::cli::nothing_to_render",
        "meshplan::cli::unknown_code",
        "meshplan::render::template",
        "meshplan::certs::refused",
    ];
    // The live clusters' codes are doctor.sh's (tests/doctor.rs makes each one).
    let live: Vec<&str> = meshplan::resolve::doctor::CODES
        .iter()
        .map(|(code, _)| *code)
        .collect();
    for code in &live {
        assert!(
            documented.contains(code),
            "{code} has no `### {code}` in docs/diagnostics.md"
        );
    }
    for heading in documented.iter().filter(|h| h.starts_with("meshplan::")) {
        assert!(
            codes.iter().any(|c| c == heading)
                || not_about_the_plan.contains(heading)
                || live.contains(heading),
            "docs/diagnostics.md documents unknown code {heading}"
        );
    }
}

fn shipped_plan_texts() -> Vec<String> {
    let mut texts = Vec::new();
    for entry in fs::read_dir(crate_root().join("plans")).unwrap() {
        texts.push(fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    texts.sort();
    texts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No input makes meshplan panic: arbitrary bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (_, checked) = check_bytes("fuzz.toml", &bytes);
        for finding in &checked.findings {
            prop_assert!(!finding.code_str().is_empty());
        }
    }

    /// Nor do near-misses of real plans: one byte range of a shipped plan replaced by noise.
    #[test]
    fn mutated_plans_never_panic(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        len in 0usize..16,
        noise in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let texts = shipped_plan_texts();
        let mut bytes = which.get(&texts).clone().into_bytes();
        let start = at.index(bytes.len());
        let end = (start + len).min(bytes.len());
        bytes.splice(start..end, noise);
        let (source, checked) = check_bytes("mutated.toml", &bytes);
        for finding in &checked.findings {
            let _ = report::human(&source, finding, STYLE);
            let _ = report::json(&source, finding);
        }
    }
}

fn toml_as_json(path: &Path) -> serde_json::Value {
    let value: toml::Value = toml::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(value).unwrap()
}

fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&meshplan::schema::plan_schema()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn the_committed_schema_is_what_meshplan_schema_prints() {
    let committed = fs::read_to_string(crate_root().join("docs/plan.schema.json")).unwrap();
    assert_eq!(
        committed,
        meshplan::schema::plan_schema(),
        "run `cargo run -- schema > docs/plan.schema.json`"
    );
}

#[test]
fn every_plan_and_ok_fixture_validates_against_the_schema() {
    let validator = schema_validator();
    for dir in ["plans", "tests/fixtures/ok"] {
        for entry in fs::read_dir(crate_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let errors: Vec<String> = validator
                .iter_errors(&toml_as_json(&path))
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
    }
    for entry in fs::read_dir(crate_root().join("plans")).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            text.starts_with("#:schema ../docs/plan.schema.json\n"),
            "plans carry the #:schema line"
        );
    }
}

#[test]
fn the_schema_rejects_an_unknown_key() {
    let path = crate_root().join("tests/fixtures/err/plan_unknown_key.toml");
    assert!(!schema_validator().is_valid(&toml_as_json(&path)));
}

fn explanation(path: &Path) -> meshplan::explain::Explanation {
    let (source, checked) = load(path);
    let plan = checked.plan.unwrap();
    let mesh = meshplan::resolve::resolve(&plan, &meshplan::plan_file_name(&source.name));
    meshplan::explain::explain(&plan, &mesh)
}

#[test]
fn explain_snapshots_in_both_formats_for_every_plan() {
    for_each_shipped_plan(|path| {
        let explained = explanation(path);
        let text = meshplan::render::render_explanation(&explained, false).unwrap();
        let markdown = meshplan::render::render_explanation(&explained, true).unwrap();
        named_snapshot("explain-text", path, &text);
        named_snapshot("explain-markdown", path, &markdown);
        assert_mermaid_is_well_formed(&explained.mermaid);
    });
}

/// A flowchart whose subgraphs close and whose edges join declared nodes.
fn assert_mermaid_is_well_formed(lines: &[String]) {
    assert_eq!(lines.first().map(String::as_str), Some("flowchart LR"));
    let opened = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("subgraph "))
        .count();
    let closed = lines.iter().filter(|l| l.trim() == "end").count();
    assert_eq!(opened, closed, "every subgraph ends");
    let declared: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            l.trim()
                .split(['[', '{'])
                .next()
                .filter(|id| !id.contains(' ') && l.contains('"'))
        })
        .collect();
    for edge in lines
        .iter()
        .filter(|l| l.contains("-->") || l.contains("---"))
    {
        let words: Vec<&str> = edge.split_whitespace().collect();
        let (from, to) = (words[0], words[words.len() - 1]);
        assert!(
            declared.contains(&from) && declared.contains(&to),
            "edge {edge} joins undeclared nodes"
        );
    }
}
