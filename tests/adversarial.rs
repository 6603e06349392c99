//! Hostile values in every free-text or name field: each is either rejected with a clear code,
//! or written so that YAML reads back the same string and the shell sees one literal word.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::path::PathBuf;
use std::process::Command;

use meshplan::Source;
use meshplan::render::Output;
use serde::Deserialize;

#[path = "support/run.rs"]
mod run;

const BASE: &str = r#"
[mesh]
id = {mesh_id}

[mesh.istio]
version = {version}
hub = {hub}

[mesh.samples]
hub = {samples_hub}

[mesh.gitops]
repository = {repo}
revision = {revision}
tool = "argocd"

[[network]]
id = {network}

[[network]]
id = "net-b"

[[cluster]]
name = {cluster}
role = "primary"
network = {network}
context = {context}
pod_cidr = "10.1.0.0/16"
service_cidr = "10.2.0.0/16"
region = {region}

[cluster.lb]
eastwest = "192.168.1.10"

[cluster.metallb]
addresses = ["192.168.1.10-192.168.1.20"]
interfaces = [{iface}]

[cluster.samples]
helloworld = {helloworld}
sleep = true

[[cluster.node]]
name = {node}
ip = "192.168.1.2"

[[cluster]]
name = "c2"
role = "remote"
network = "net-b"
pod_cidr = "10.3.0.0/16"
service_cidr = "10.4.0.0/16"

[cluster.lb]
eastwest = "192.168.2.10"
"#;

const DEFAULTS: &[(&str, &str)] = &[
    ("mesh_id", "m"),
    ("version", "1.24.2"),
    ("hub", "docker.io/istio"),
    ("samples_hub", "docker.io/istio"),
    ("repo", "https://git.example.com/m.git"),
    ("revision", "main"),
    ("network", "net-a"),
    ("cluster", "c1"),
    ("context", "ctx-1"),
    ("region", "r1"),
    ("iface", "eth0"),
    ("helloworld", "v1"),
    ("node", "n1"),
];

fn hostile() -> Vec<String> {
    [
        "it's",
        "\"quoted\"",
        "$(rm -rf /)",
        "`id`",
        "line\nbreak",
        "#comment",
        "key: value",
        "yes",
        "~",
        "*a",
        "&anchor",
        "ünïcødé ✓",
        "-n",
        "a b",
        "{}",
        "[1]",
        "null",
        "1.20",
        "!!binary",
        "tab\there",
        "nul\0byte",
        "bell\u{7}",
        "line\u{2028}separator",
        "next\u{85}line",
        "{{ .cluster }}",
        "{{ printf \"%s\" .path }}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("x{}", "y".repeat(10_000))])
    .collect()
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn plan_with(field: &str, value: &str) -> String {
    let mut text = BASE.to_owned();
    for (name, default) in DEFAULTS {
        let v = if *name == field { value } else { default };
        text = text.replace(&format!("{{{name}}}"), &toml_string(v));
    }
    text
}

fn yaml_docs(output: &Output, path: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(&output[path])
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect()
}

fn doc_of_kind(output: &Output, path: &str, kind: &str) -> serde_yaml::Value {
    yaml_docs(output, path)
        .into_iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap()
}

fn helloworld_deployment(output: &Output) -> serde_yaml::Value {
    yaml_docs(output, "c1/samples.yaml")
        .into_iter()
        .find(|d| {
            d["kind"].as_str() == Some("Deployment")
                && d["metadata"]["labels"]["app"].as_str() == Some("helloworld")
        })
        .unwrap()
}

/// Compiles with one field hostile: `Ok(output)` when accepted, `Err(first error code)` when not.
fn compile(field: &str, value: &str) -> Result<Output, String> {
    let text = plan_with(field, value);
    let (checked, output) = meshplan::compile(&Source::new("hostile.toml", text.as_str()));
    match checked.findings.iter().find(|f| f.is_error()) {
        Some(error) => Err(error.code_str()),
        None => Ok(output.unwrap().unwrap()),
    }
}

/// What bash makes of `name=<quoted>` as the script writes it.
fn shell_value(script: &str, name: &str) -> String {
    let start = script.find(&format!("\n{name}=")).unwrap() + 1;
    let end = script[start..]
        .find("\n\n")
        .map_or(script.len(), |e| start + e);
    let program = format!("{}\nprintf '%s' \"${name}\"", &script[start..end]);
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash rejected: {}",
        &script[start..end]
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_scripts_parse(output: &Output) {
    for (path, text) in output.iter().filter(|(p, _)| p.ends_with(".sh")) {
        let out = Command::new("bash")
            .args(["-n", "-c", text])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path} does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Control characters and line separators are refused in every free-text field: written raw
/// into a script or YAML they are never what the value means.
const CONTROL: &str = "meshplan::name::control_character";

fn has_control(value: &str) -> bool {
    value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// A free-text field: every value without a control character is accepted and reads back
/// unchanged where it is written; every value with one is refused with its code.
fn free_text(field: &str, read_back: impl Fn(&Output) -> String) {
    for value in hostile() {
        match compile(field, &value) {
            Err(code) => assert!(
                has_control(&value) && code == CONTROL,
                "{field} = {value:?} rejected: {code}"
            ),
            Ok(output) => {
                assert!(!has_control(&value), "{field} = {value:?} accepted");
                assert_eq!(read_back(&output), value, "{field} did not round-trip");
                assert_scripts_parse(&output);
            }
        }
    }
}

/// A name field: each value is either rejected with `code` or round-trips.
fn name_field(field: &str, code: &str, read_back: impl Fn(&Output) -> String) {
    let mut rejected = 0;
    for value in hostile() {
        match compile(field, &value) {
            Err(found) => {
                assert!(
                    found == code || found == CONTROL,
                    "{field} = {value:?}: {found}"
                );
                rejected += 1;
            }
            Ok(output) => {
                assert_eq!(
                    read_back(&output),
                    value,
                    "{field} = {value:?} did not round-trip"
                );
                assert_scripts_parse(&output);
            }
        }
    }
    assert!(rejected > 0, "{field}: no hostile value was rejected");
}

#[test]
fn contexts_are_one_literal_shell_word() {
    free_text("context", |o| {
        shell_value(&o["c1/scripts/install.sh"], "context")
    });
}

#[test]
fn hubs_read_back_from_yaml() {
    free_text("hub", |o| {
        doc_of_kind(o, "c1/istio/control-plane.yaml", "IstioOperator")["spec"]["hub"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    free_text("samples_hub", |o| {
        let deployment = helloworld_deployment(o);
        let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap();
        image
            .strip_suffix("/examples-helloworld-v1:1.0")
            .unwrap()
            .to_owned()
    });
}

#[test]
fn interfaces_read_back_from_yaml() {
    free_text("iface", |o| {
        doc_of_kind(o, "c1/metallb.yaml", "L2Advertisement")["spec"]["interfaces"][0]
            .as_str()
            .unwrap()
            .to_owned()
    });
}

#[test]
fn gitops_values_are_quoted_or_rejected() {
    let repo = |o: &Output| {
        doc_of_kind(o, "gitops/argocd.yaml", "ApplicationSet")["spec"]["template"]["spec"]["source"]
            ["repoURL"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    name_field("repo", "meshplan::platform::gitops", repo);
    // Argo CD evaluates the template (goTemplate: true): `{{` is refused, anything else is
    // written literally.
    let revision = |o: &Output| {
        doc_of_kind(o, "gitops/argocd.yaml", "ApplicationSet")["spec"]["template"]["spec"]["source"]
            ["targetRevision"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for value in hostile() {
        match compile("revision", &value) {
            Err(code) if value.contains("{{") => assert_eq!(code, "meshplan::platform::gitops"),
            Err(code) => assert!(has_control(&value) && code == CONTROL, "{value:?}: {code}"),
            Ok(output) => {
                assert!(
                    !value.contains("{{") && !has_control(&value),
                    "{value:?} accepted"
                );
                assert_eq!(revision(&output), value);
            }
        }
    }
    for value in ["{{ .cluster }}", "x}}"] {
        assert_eq!(
            compile("repo", &format!("https://git.example.com/{value}"))
                .err()
                .as_deref(),
            Some("meshplan::platform::gitops"),
            "{value}"
        );
    }
}

#[test]
fn names_and_ids_are_rejected_unless_they_are_valid() {
    let network_label = |o: &Output| {
        doc_of_kind(o, "c1/namespace.yaml", "Namespace")["metadata"]["labels"]["topology.istio.io/network"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    name_field("network", "meshplan::name::label_value", network_label);
    name_field("mesh_id", "meshplan::name::label_value", |o| {
        doc_of_kind(o, "c1/istio/control-plane.yaml", "IstioOperator")["spec"]["values"]["global"]["meshID"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    name_field("helloworld", "meshplan::name::label_value", |o| {
        let deployment = helloworld_deployment(o);
        deployment["metadata"]["labels"]["version"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    for (field, code) in [
        ("cluster", "meshplan::name::cluster"),
        ("node", "meshplan::name::node"),
        ("region", "meshplan::name::label_value"),
        ("version", "meshplan::version::invalid"),
    ] {
        for value in hostile() {
            let result = compile(field, &value);
            assert!(
                result.is_err()
                    || value == "yes"
                    || value == "1.20"
                    || value == "null"
                    || value == "-n" && field != "cluster",
                "{field} = {value:?} was accepted"
            );
            if let Err(found) = result {
                assert!(
                    found == code || found.starts_with("meshplan::version::"),
                    "{field} = {value:?}: {found}"
                );
            }
        }
    }
}

/// U+2028, U+2029 and U+0085 end a line for YAML 1.1 parsers (PyYAML, go-yaml): a plan file
/// named with them must not add a document to `render | kubectl apply -f -`.
#[test]
fn the_plan_file_name_never_reaches_the_output() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("adversarial_name");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = "p\u{2028}---\u{2028}kind: ConfigMap\u{2029}x\u{85}y.toml";
    let plan = dir.join(name);
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans/three-cloud-metallb.toml"),
        &plan,
    )
    .unwrap();
    let rendered = Command::new(env!("CARGO_BIN_EXE_meshplan"))
        .args([
            "render",
            plan.to_str().unwrap(),
            "--cluster",
            "mdemo-cluster1",
        ])
        .output()
        .unwrap();
    assert_eq!(rendered.status.code(), Some(0));
    let stream = String::from_utf8(rendered.stdout).unwrap();
    for c in ['\u{2028}', '\u{2029}', '\u{85}'] {
        assert!(!stream.contains(c), "{c:?} reached the stream");
    }
    assert!(!stream.contains("ConfigMap"));
}

/// What bash makes of a printed command line, as words, run in `dir`: a `$(...)`, a `;` or a
/// backquote left unquoted would run there (the payloads only touch files in `dir`).
fn words_of_printed(dir: &std::path::Path, line: &str) -> Vec<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -- {line}\nprintf '%s\\0' \"$@\""))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The words after `--kube-context` in a printed command.
fn kube_context(words: &[String]) -> Option<&str> {
    let at = words.iter().position(|w| w == "--kube-context")?;
    words.get(at + 1).map(String::as_str)
}

/// The by-hand commands install.sh prints and README.md shows are quoted as the executed ones
/// are: pasted into a shell, every value is one literal word, and nothing runs.
#[test]
fn printed_commands_quote_every_value() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("adversarial_printed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let payloads = [
        "$(touch pwned1)".to_owned(),
        "a;touch pwned2".to_owned(),
        "`touch pwned3`".to_owned(),
        "it's $HOME".to_owned(),
        "a b *".to_owned(),
        "\"q\" | touch pwned4".to_owned(),
    ];
    for context in payloads
        .iter()
        .chain(hostile().iter().filter(|v| !has_control(v)))
    {
        let output = compile("context", context).unwrap();
        // install.sh prints the line with `echo '...'`: what the operator sees is bash's output.
        let echo = output["install.sh"]
            .lines()
            .find(|l| l.starts_with("echo ") && l.contains("--kube-context"))
            .unwrap_or_else(|| panic!("no printed MetalLB command:\n{}", output["install.sh"]));
        let shown = Command::new("bash").arg("-c").arg(echo).output().unwrap();
        let printed = String::from_utf8(shown.stdout).unwrap();
        let words = words_of_printed(&dir, printed.trim());
        assert_eq!(kube_context(&words), Some(context.as_str()), "{printed}");
        // README.md shows it as a code span.
        let readme = output["README.md"]
            .lines()
            .find(|l| l.contains("--kube-context"))
            .unwrap();
        let fence = readme.trim().chars().take_while(|c| *c == '`').count();
        let code = readme.trim()[fence..readme.trim().len() - fence].trim();
        let words = words_of_printed(&dir, code);
        assert_eq!(kube_context(&words), Some(context.as_str()), "{readme}");
    }
    let pwned: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(
        pwned.is_empty(),
        "a printed command ran something: {pwned:?}"
    );
}

/// A scratch directory of its own for each test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_plan(from: &str, dir: &std::path::Path, name: &str) -> String {
    let plan = dir.join(name);
    std::fs::copy(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(from), &plan).unwrap();
    plan.to_str().unwrap().to_owned()
}

/// The text of a code span that closes the way CommonMark reads it.
fn code_spans_and_links(markdown: &str) -> (Vec<String>, usize) {
    use pulldown_cmark::{Event, Parser, Tag};
    let mut codes = Vec::new();
    let mut links = 0;
    for event in Parser::new(markdown) {
        match event {
            Event::Code(text) => codes.push(text.into_string()),
            Event::Start(Tag::Link { .. } | Tag::Image { .. }) => links += 1,
            Event::Html(_) | Event::InlineHtml(_) => links += 1,
            _ => {}
        }
    }
    (codes, links)
}

/// Review V3: `explain --format markdown` (pasted into pull requests) printed the plan's file
/// name inside one pair of backticks, so a name with a backtick closed the code span and
/// the rest became a live link.
#[test]
fn a_file_name_stays_code_in_explain_markdown() {
    let dir = scratch_dir("adversarial_markdown_name");
    let name = "a` [click](https:evil.example) `b.toml";
    let plan = copy_plan("tests/fixtures/ok/bookinfo-split.toml", &dir, name);
    let out = run::meshplan(&[
        "explain",
        &plan,
        "--without",
        "books-front",
        "--format",
        "markdown",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let markdown = String::from_utf8(out.stdout).unwrap();
    let (codes, links) = code_spans_and_links(&markdown);
    assert_eq!(links, 0, "{markdown}");
    assert!(codes.iter().any(|c| c == name), "{codes:?}\n{markdown}");
    // Runs of backticks of every length, and one at either end.
    for name in ["``x```y`.toml", "`x.toml", "x.toml`", "````"] {
        let plan = copy_plan("tests/fixtures/ok/bookinfo-split.toml", &dir, name);
        let out = run::meshplan(&[
            "explain",
            &plan,
            "--without",
            "books-front",
            "--format",
            "markdown",
        ]);
        let markdown = String::from_utf8(out.stdout).unwrap();
        let (codes, links) = code_spans_and_links(&markdown);
        assert_eq!(links, 0, "{markdown}");
        assert!(
            codes.iter().any(|c| c == name),
            "{name}: {codes:?}\n{markdown}"
        );
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Review V5: a plan file named with a newline or terminal escapes forged lines of human
/// output ("ok.toml: valid" above "x.toml: invalid"). Control characters are shown escaped;
/// JSON keeps the exact name.
#[test]
fn a_file_name_cannot_forge_lines_or_send_escapes() {
    let dir = scratch_dir("adversarial_forged_lines");
    for name in [
        "ok.toml: valid\nx.toml",
        "evil\u{1b}[1A\u{1b}[2K\rplan.toml",
    ] {
        let plan = copy_plan(
            "tests/fixtures/err/seed001_service_range_host_bits.toml",
            &dir,
            name,
        );
        let out = run::meshplan(&["check", &plan, "--color", "never"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr_of(&out);
        assert!(!err.contains(['\u{1b}', '\r']), "{err:?}");
        assert!(
            err.lines().all(|l| !l.starts_with("x.toml")),
            "a forged line: {err}"
        );
        let shown = name.escape_debug().to_string();
        assert!(err.contains(&format!("{shown}: invalid, 1 error")), "{err}");
        assert!(
            err.contains(&format!("{shown}:")),
            "diagnostic header: {err}"
        );

        let out = run::meshplan(&["check", &plan, "--diagnostics", "json"]);
        let finding: serde_json::Value =
            serde_json::from_str(stderr_of(&out).lines().next().unwrap()).unwrap();
        assert_eq!(finding["file"], plan.as_str(), "JSON keeps the exact name");
    }
    let plan = copy_plan(
        "plans/three-cloud-metallb.toml",
        &dir,
        "ok.toml: valid\nx.toml",
    );
    let out = run::meshplan(&["explain", &plan]);
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.ends_with(r"from ok.toml: valid\nx.toml"), "{first}");
}

/// Review V5 for the output directory: `build`'s summary, `build --check`'s drift lines and
/// `certs`' summary print DIR as given; a newline in it must not start a line.
#[test]
fn an_output_directory_cannot_forge_lines() {
    let dir = scratch_dir("adversarial_forged_dir");
    let plan = copy_plan("plans/three-cloud-metallb.toml", &dir, "p.toml");
    let out_dir = dir.join("t\nfake: up to date");
    let out_path = out_dir.to_str().unwrap();
    let shown = out_path.escape_debug().to_string();

    let built = run::meshplan(&["build", &plan, "-o", out_path]);
    assert_eq!(built.status.code(), Some(0), "{}", stderr_of(&built));
    let err = stderr_of(&built);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "the plan's summary, then the build's: {err}"
    );
    assert!(lines[1].starts_with(&format!("{shown}: ")), "{err}");

    std::fs::remove_file(out_dir.join("mdemo-cluster1/kustomization.yaml")).unwrap();
    let checked = run::meshplan(&["build", &plan, "-o", out_path, "--check"]);
    assert_eq!(checked.status.code(), Some(1));
    let drift = String::from_utf8(checked.stdout.clone()).unwrap();
    assert_eq!(drift.lines().count(), 1, "{drift}");
    assert!(
        drift.starts_with(&format!(
            "missing: {shown}/mdemo-cluster1/kustomization.yaml"
        )),
        "{drift}"
    );
    let err = stderr_of(&checked);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains(&format!("\n{shown}: not what")), "{err}");

    let ca = dir.join("ca\nx: root kept");
    let ca_path = ca.to_str().unwrap();
    let certs = run::meshplan(&[
        "certs",
        &plan,
        "--out",
        ca_path,
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    assert_eq!(certs.status.code(), Some(0), "{}", stderr_of(&certs));
    let err = stderr_of(&certs);
    assert!(
        err.lines().all(|l| !l.starts_with("x: ")),
        "a forged line: {err}"
    );
    assert!(err.contains(&ca_path.escape_debug().to_string()), "{err}");
}
