//! Stage 4: [`resolve::Mesh`] → [`Output`], every file's text, by minijinja templates.
//!
//! One template per output file, in `templates/` at the file's path (`cluster/` stands for each
//! cluster's directory), embedded in the binary by [`TEMPLATES`]. Templates loop and format; the
//! decisions were made in `resolve`. No filesystem here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

use crate::explain::Explanation;
use crate::resolve::samples::Expect;
use crate::resolve::{Cluster, Mesh};

/// Every template, by name (its path under `templates/` without `.j2`).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("explain.md", include_str!("../templates/explain.md.j2")),
    (
        "explain-traffic.md",
        include_str!("../templates/explain-traffic.md.j2"),
    ),
    (
        "explain-traffic.txt",
        include_str!("../templates/explain-traffic.txt.j2"),
    ),
    ("explain.txt", include_str!("../templates/explain.txt.j2")),
    (
        "explain-without.md",
        include_str!("../templates/explain-without.md.j2"),
    ),
    (
        "explain-without.txt",
        include_str!("../templates/explain-without.txt.j2"),
    ),
    ("install.sh", include_str!("../templates/install.sh.j2")),
    ("images.txt", include_str!("../templates/images.txt.j2")),
    ("charts.txt", include_str!("../templates/charts.txt.j2")),
    ("preflight.sh", include_str!("../templates/preflight.sh.j2")),
    (
        "verify-trust.sh",
        include_str!("../templates/verify-trust.sh.j2"),
    ),
    ("doctor.sh", include_str!("../templates/doctor.sh.j2")),
    (
        "fragments/verify.sh",
        include_str!("../templates/fragments/verify.sh.j2"),
    ),
    ("upgrade.sh", include_str!("../templates/upgrade.sh.j2")),
    ("upgrade.md", include_str!("../templates/upgrade.md.j2")),
    ("trust.sh", include_str!("../templates/trust.sh.j2")),
    ("trust.md", include_str!("../templates/trust.md.j2")),
    (
        "gitops/argocd.yaml",
        include_str!("../templates/gitops/argocd.yaml.j2"),
    ),
    (
        "gitops/flux.yaml",
        include_str!("../templates/gitops/flux.yaml.j2"),
    ),
    (
        "cluster/namespace.yaml",
        include_str!("../templates/cluster/namespace.yaml.j2"),
    ),
    (
        "cluster/eastwest-gateway.yaml",
        include_str!("../templates/cluster/eastwest-gateway.yaml.j2"),
    ),
    (
        "cluster/helm/cni.yaml",
        include_str!("../templates/cluster/helm/cni.yaml.j2"),
    ),
    (
        "cluster/helm/ztunnel.yaml",
        include_str!("../templates/cluster/helm/ztunnel.yaml.j2"),
    ),
    (
        "cluster/istiod-lb.yaml",
        include_str!("../templates/cluster/istiod-lb.yaml.j2"),
    ),
    (
        "cluster/gateways.yaml",
        include_str!("../templates/cluster/gateways.yaml.j2"),
    ),
    (
        "cluster/destination-rules.yaml",
        include_str!("../templates/cluster/destination-rules.yaml.j2"),
    ),
    (
        "cluster/kustomization.yaml",
        include_str!("../templates/cluster/kustomization.yaml.j2"),
    ),
    (
        "cluster/istio/control-plane.yaml",
        include_str!("../templates/cluster/istio/control-plane.yaml.j2"),
    ),
    (
        "cluster/istio/eastwest-gateway.yaml",
        include_str!("../templates/cluster/istio/eastwest-gateway.yaml.j2"),
    ),
    (
        "cluster/istio/ingress-gateway.yaml",
        include_str!("../templates/cluster/istio/ingress-gateway.yaml.j2"),
    ),
    (
        "cluster/helm/base.yaml",
        include_str!("../templates/cluster/helm/base.yaml.j2"),
    ),
    (
        "cluster/helm/istiod.yaml",
        include_str!("../templates/cluster/helm/istiod.yaml.j2"),
    ),
    (
        "cluster/helm/eastwest-gateway.yaml",
        include_str!("../templates/cluster/helm/eastwest-gateway.yaml.j2"),
    ),
    (
        "cluster/helm/ingress-gateway.yaml",
        include_str!("../templates/cluster/helm/ingress-gateway.yaml.j2"),
    ),
    (
        "cluster/scripts/install.sh",
        include_str!("../templates/cluster/scripts/install.sh.j2"),
    ),
    (
        "cluster/scripts/cacerts.sh",
        include_str!("../templates/cluster/scripts/cacerts.sh.j2"),
    ),
    (
        "cluster/scripts/remote-secrets.sh",
        include_str!("../templates/cluster/scripts/remote-secrets.sh.j2"),
    ),
    (
        "cluster/scripts/node-labels.sh",
        include_str!("../templates/cluster/scripts/node-labels.sh.j2"),
    ),
    (
        "cluster/scripts/routes.sh",
        include_str!("../templates/cluster/scripts/routes.sh.j2"),
    ),
    (
        "cluster/scripts/routes-undo.sh",
        include_str!("../templates/cluster/scripts/routes-undo.sh.j2"),
    ),
    (
        "cluster/scripts/verify.sh",
        include_str!("../templates/cluster/scripts/verify.sh.j2"),
    ),
    (
        "cluster/scripts/verify-bookinfo.sh",
        include_str!("../templates/cluster/scripts/verify-bookinfo.sh.j2"),
    ),
    (
        "cluster/metallb.yaml",
        include_str!("../templates/cluster/metallb.yaml.j2"),
    ),
    (
        "cluster/samples.yaml",
        include_str!("../templates/cluster/samples.yaml.j2"),
    ),
    (
        "cluster/platform/kind.yaml",
        include_str!("../templates/cluster/platform/kind.yaml.j2"),
    ),
    (
        "cluster/platform/kubeadm.yaml",
        include_str!("../templates/cluster/platform/kubeadm.yaml.j2"),
    ),
    (
        "cluster/platform/icp-config.yaml",
        include_str!("../templates/cluster/platform/icp-config.yaml.j2"),
    ),
    (
        "cluster/platform/gke-firewall.sh",
        include_str!("../templates/cluster/platform/gke-firewall.sh.j2"),
    ),
];

/// The compiled tree: path relative to the output directory → file text.
pub type Output = BTreeMap<String, String>;

/// A template failed to render: a bug in meshplan, not in the plan.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("internal error rendering `{file}`: {message}")]
#[diagnostic(
    code(meshplan::render::template),
    help("this is a bug in meshplan; please report it with the plan that triggers it")
)]
pub struct RenderError {
    /// The output file.
    pub file: String,
    /// minijinja's account, with the template line.
    pub message: String,
}

/// Renders every file of the mesh; `README.md` is the explanation in Markdown.
pub fn render(mesh: &Mesh, explanation: &Explanation) -> Result<Output, RenderError> {
    render_tree(mesh, render_explanation(explanation, true)?)
}

/// [`render`] with `README.md` already rendered ([`render_explanation`] in Markdown): the
/// caller can drop the explanation and the plan before the clusters' files are rendered.
pub fn render_tree(mesh: &Mesh, readme: String) -> Result<Output, RenderError> {
    let env = environment()?;
    let mut output = Output::new();
    let trust = Value::from(minijinja::value::Serde(&mesh.trust));
    let readme = match &mesh.trust {
        // The phases of `[mesh.trust]` close the README: "Rotating and joining trust".
        Some(_) => {
            let section = render_one(
                &env,
                "trust.md",
                context! { mesh => Value::from(minijinja::value::Serde(mesh)), trust => trust.clone() },
            )?;
            format!("{}\n{section}", readme.trim_end())
        }
        None => readme,
    };
    output.insert("README.md".to_owned(), readme);
    let mesh_value = Value::from(minijinja::value::Serde(mesh));
    // The mesh's own files (install.sh alone is 7.6 MB at 1,000 clusters) render on a thread
    // of their own beside the clusters', instead of before them on one core (issue 28).
    let (mesh_files, bundles) = std::thread::scope(|scope| {
        let mesh_files = scope.spawn(|| render_mesh_files(&env, mesh, &mesh_value, &trust));
        let bundles = render_clusters(&env, &mesh_value, &mesh.clusters);
        (crate::parallel::joined(mesh_files), bundles)
    });
    output.extend(mesh_files?);
    for bundle in bundles {
        output.extend(bundle?);
    }
    Ok(output)
}

/// The files at the top of the tree, beside the clusters' directories (the README aside).
fn render_mesh_files(
    env: &Environment,
    mesh: &Mesh,
    mesh_value: &Value,
    trust: &Value,
) -> Result<Output, RenderError> {
    let procedure = Value::from(minijinja::value::Serde(&mesh.procedure));
    let artifacts = Value::from(minijinja::value::Serde(&mesh.artifacts));
    let mut mesh_files = vec![
        "install.sh".to_owned(),
        "preflight.sh".to_owned(),
        "verify-trust.sh".to_owned(),
        "doctor.sh".to_owned(),
        "images.txt".to_owned(),
        "charts.txt".to_owned(),
    ];
    if let Some(gitops) = &mesh.gitops {
        mesh_files.push(format!("gitops/{}.yaml", gitops.tool));
    }
    if mesh.trust.is_some() {
        mesh_files.push("trust.sh".to_owned());
    }
    let mut output = Output::new();
    for file in mesh_files {
        let ctx = context! {
            mesh => mesh_value.clone(),
            procedure => procedure.clone(),
            artifacts => artifacts.clone(),
            clusters => Value::from(minijinja::value::Serde(&mesh.procedure.members)),
            doctor => Value::from(minijinja::value::Serde(&mesh.doctor)),
            trust => trust.clone(),
        };
        let text = render_one(env, &file, ctx)?;
        output.insert(file, text);
    }
    Ok(output)
}

/// Every cluster's bundle, the clusters shared out over the machine's cores: rendering is
/// most of a large build's time. The output is a map, so the order threads finish in does not
/// matter.
fn render_clusters(
    env: &Environment,
    mesh: &Value,
    clusters: &[Cluster],
) -> Vec<Result<Output, RenderError>> {
    let verify = VerifyParts::default();
    crate::parallel::map_on_all_cores(clusters, |cluster| {
        render_cluster_with(env, mesh, &verify, cluster)
    })
}

/// The mesh is converted to a template value once and shared: converting it per file made
/// rendering quadratic in the number of clusters.
fn render_cluster_with<'m>(
    env: &Environment,
    mesh: &Value,
    verify: &VerifyParts<'m>,
    cluster: &'m Cluster,
) -> Result<Output, RenderError> {
    let ctx = cluster_context(env, mesh, verify, cluster, &cluster.files)?;
    let mut output = Output::new();
    for file in &cluster.files {
        let text = render_one(env, &format!("cluster/{file}"), ctx.clone())?;
        output.insert(format!("{}/{file}", cluster.name), text);
    }
    Ok(output)
}

/// What every template of a cluster's directory is given: the mesh, the cluster, and for
/// `scripts/verify.sh` the parts of it made from the client's long shared lists
/// ([`VerifyParts`]), when `files` (those to render) include it.
fn cluster_context<'m>(
    env: &Environment,
    mesh: &Value,
    verify: &VerifyParts<'m>,
    cluster: &'m Cluster,
    files: &[impl AsRef<str>],
) -> Result<Value, RenderError> {
    let expect = cluster
        .samples
        .as_ref()
        .and_then(|s| s.verify.as_ref())
        .filter(|_| files.iter().any(|f| f.as_ref() == "scripts/verify.sh"));
    let verify = match expect {
        Some(expect) => verify.value(env, expect)?,
        None => Value::from(()),
    };
    Ok(context! {
        mesh => mesh.clone(),
        cluster => Value::from(minijinja::value::Serde(cluster)),
        verify => verify,
    })
}

/// How many of the contexts a verify script waits in are rendered together and shared.
const WAIT_PART: usize = 32;

/// The parts of `scripts/verify.sh` that are long lists many clients share (issue 28: with
/// helloworld in 1,000 clusters every client expects the same 1,000 versions and waits in 999
/// other contexts), each rendered once by the macros of `fragments/verify.sh` for all the
/// clients that share it, and handed to verify.sh as text: converting those lists to template
/// values and looping over them for every client was most of a large build's time. The text is
/// what verify.sh's own loops wrote, byte for byte (the snapshots and the determinism tests).
///
/// The waits leave out the client's own cluster, so they are cut into parts of [`WAIT_PART`]
/// contexts: the parts without the client's cluster are shared, the one with it is rendered
/// for that client alone.
#[derive(Default)]
struct VerifyParts<'m> {
    /// By the versions: `[versions, cases, expects]`, the macros of the same names.
    versions: Mutex<HashMap<&'m [String], [Value; 3]>>,
    /// The same, by the address of a shared list: hashing 1,000 versions for each of 1,000
    /// clients cost more than the lookup saves.
    by_address: Mutex<HashMap<(usize, usize), [Value; 3]>>,
    /// A part of a shared wait list, by the list's address and the part's index.
    waits: Mutex<HashMap<(usize, usize), Value>>,
}

impl<'m> VerifyParts<'m> {
    /// verify.sh's `verify`: its texts, the number of contexts it waits in and the first.
    fn value(&self, env: &Environment, expect: &'m Expect) -> Result<Value, RenderError> {
        let [versions, cases, expects] = self.versions_of(env, &expect.versions)?;
        let (all, except) = expect.waits.shared();
        let mut waits = Vec::with_capacity(all.len().div_ceil(WAIT_PART));
        for (index, part) in all.chunks(WAIT_PART).enumerate() {
            let text = if part.iter().any(|(i, _)| Some(*i) == except) {
                let contexts: Vec<&str> = part
                    .iter()
                    .filter(|(i, _)| Some(*i) != except)
                    .map(|(_, wait)| wait.context.as_str())
                    .collect();
                Value::from(verify_macro(
                    env,
                    "waits",
                    contexts.iter().copied().collect(),
                )?)
            } else {
                let key = (Arc::as_ptr(all).cast::<()>() as usize, index);
                let found = lock(&self.waits).get(&key).cloned();
                match found {
                    Some(text) => text,
                    None => {
                        let contexts: Vec<&str> =
                            part.iter().map(|(_, wait)| wait.context.as_str()).collect();
                        let text = Value::from(verify_macro(
                            env,
                            "waits",
                            contexts.iter().copied().collect(),
                        )?);
                        lock(&self.waits).insert(key, text.clone());
                        text
                    }
                }
            };
            waits.push(text);
        }
        let first_wait = expect.waits.iter().next().map(|w| w.context.as_str());
        Ok(context! {
            versions => versions,
            cases => cases,
            expects => expects,
            waits => waits,
            wait_count => expect.waits.len(),
            first_wait => first_wait,
        })
    }

    fn versions_of(
        &self,
        env: &Environment,
        versions: &'m [String],
    ) -> Result<[Value; 3], RenderError> {
        let address = (versions.as_ptr() as usize, versions.len());
        if let Some(found) = lock(&self.by_address).get(&address) {
            return Ok(found.clone());
        }
        let found = lock(&self.versions).get(versions).cloned();
        if let Some(found) = found {
            lock(&self.by_address).insert(address, found.clone());
            return Ok(found);
        }
        let list: Value = versions.iter().map(String::as_str).collect();
        let texts = [
            Value::from(verify_macro(env, "versions", list.clone())?),
            Value::from(verify_macro(env, "cases", list.clone())?),
            Value::from(verify_macro(env, "expects", list)?),
        ];
        lock(&self.versions).insert(versions, texts.clone());
        lock(&self.by_address).insert(address, texts.clone());
        Ok(texts)
    }
}

/// A mutex's data, even when a thread panicked holding it (the data is a cache of texts, each
/// inserted whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One macro of `fragments/verify.sh` called with one list: its text, exactly.
fn verify_macro(env: &Environment, name: &str, list: Value) -> Result<String, RenderError> {
    let error = |err: minijinja::Error| RenderError {
        file: "scripts/verify.sh".to_owned(),
        message: format!("{err:#}"),
    };
    let mut captured = env
        .get_template("fragments/verify.sh")
        .map_err(error)?
        .render_captured(())
        .map_err(error)?;
    captured
        .with_state_mut(|state| state.call_macro(name, &[list]))
        .map_err(error)
}

/// The upgrade's tree: `upgrade.sh`, `README.md`, and under `old/` and `new/` the files of the
/// two compiled trees its steps use.
pub fn render_upgrade(
    upgrade: &crate::resolve::upgrade::Upgrade,
    old_mesh: &Mesh,
    old: &Output,
    new: &Output,
) -> Result<Output, RenderError> {
    let env = environment()?;
    let value = Value::from(minijinja::value::Serde(upgrade));
    let mut output = Output::new();
    output.insert(
        "upgrade.sh".to_owned(),
        render_one(&env, "upgrade.sh", context! { upgrade => value.clone() })?,
    );
    output.insert(
        "README.md".to_owned(),
        render_one(&env, "upgrade.md", context! { upgrade => value })?,
    );
    for path in &upgrade.files {
        if let Some(("pinned", file)) = path.split_once('/') {
            output.insert(
                path.clone(),
                pinned_lb(&env, old_mesh, file, &upgrade.from.label)?,
            );
            continue;
        }
        let (tree, file) = match path.split_once('/') {
            Some(("old", file)) => (old, file),
            Some(("new", file)) => (new, file),
            _ => (new, path.as_str()),
        };
        let text = tree.get(file).ok_or_else(|| RenderError {
            file: path.clone(),
            message: "a step of the upgrade names a file its tree does not have".to_owned(),
        })?;
        output.insert(path.clone(), text.clone());
    }
    Ok(output)
}

/// A primary's `istiod-lb.yaml` of the old tree, its selector pinned to the old revision's
/// istiod (`istio.io/rev`), so that a canary istiod does not join it.
fn pinned_lb(
    env: &Environment,
    mesh: &Mesh,
    file: &str,
    revision: &str,
) -> Result<String, RenderError> {
    let missing = || RenderError {
        file: format!("pinned/{file}"),
        message: "the upgrade pins an istiod load balancer the old tree does not have".to_owned(),
    };
    let (name, _) = file.split_once('/').ok_or_else(missing)?;
    let cluster = mesh
        .clusters
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(missing)?;
    let json = |err: serde_json::Error| RenderError {
        file: format!("pinned/{file}"),
        message: err.to_string(),
    };
    // The template selects `istio.io/rev` when the mesh names a revision: here, the old one's
    // label (`default` for the unrevisioned control plane, whose pods carry it too).
    let mut mesh_value = serde_json::to_value(mesh).map_err(json)?;
    mesh_value["istio"]["control_plane"]["revision"] = serde_json::Value::from(revision);
    mesh_value["istio"]["control_plane"]["rev_label"] = serde_json::Value::from(revision);
    let ctx = context! {
        mesh => Value::from(minijinja::value::Serde(&mesh_value)),
        cluster => Value::from(minijinja::value::Serde(cluster)),
    };
    render_one(env, "cluster/istiod-lb.yaml", ctx)
}

/// Which of a cluster's files `meshplan render --cluster` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selection {
    /// The kubectl-applicable manifests, in apply order.
    Kubectl,
    /// The control-plane IstioOperator (`istioctl install -f -`).
    Istio,
    /// The east-west gateway's IstioOperator.
    Eastwest,
}

impl Selection {
    /// The files it selects, relative to the cluster's directory.
    fn files(self, cluster: &Cluster) -> Vec<&str> {
        match self {
            Selection::Kubectl => cluster.kubectl_files.iter().map(String::as_str).collect(),
            Selection::Istio => vec!["istio/control-plane.yaml"],
            Selection::Eastwest => vec!["istio/eastwest-gateway.yaml"],
        }
    }
}

/// The selected files of one cluster as one YAML stream, byte for byte the files [`render`]
/// writes joined by `---` lines; `None` when the cluster has none of them (a Helm install has
/// no IstioOperator, a cluster without `lb.eastwest` no east-west gateway). Renders only those
/// files.
pub fn cluster_stream(
    mesh: &Mesh,
    cluster: &Cluster,
    selection: Selection,
) -> Result<Option<String>, RenderError> {
    let env = environment()?;
    let mesh_value = Value::from(minijinja::value::Serde(mesh));
    let files: Vec<&str> = selection
        .files(cluster)
        .into_iter()
        .filter(|file| cluster.files.iter().any(|f| f == file))
        .collect();
    let ctx = cluster_context(&env, &mesh_value, &VerifyParts::default(), cluster, &files)?;
    let texts = files
        .into_iter()
        .map(|file| render_one(&env, &format!("cluster/{file}"), ctx.clone()))
        .collect::<Result<Vec<String>, RenderError>>()?;
    Ok((!texts.is_empty()).then(|| texts.join("---\n")))
}

/// Renders `meshplan explain` as Markdown or plain text.
pub fn render_explanation(
    explanation: &Explanation,
    markdown: bool,
) -> Result<String, RenderError> {
    render_explanation_with(&environment()?, explanation, markdown)
}

/// Renders `explain --traffic` as text or markdown.
pub fn render_traffic(
    traffic: &crate::resolve::traffic::Traffic,
    markdown: bool,
) -> Result<String, RenderError> {
    let name = if markdown {
        "explain-traffic.md"
    } else {
        "explain-traffic.txt"
    };
    let mut text = render_one(
        &environment()?,
        name,
        context! { t => Value::from(minijinja::value::Serde(traffic)) },
    )?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Renders `explain --without` as text or markdown.
pub fn render_what_if(
    what_if: &crate::whatif::WhatIf,
    markdown: bool,
) -> Result<String, RenderError> {
    let name = if markdown {
        "explain-without.md"
    } else {
        "explain-without.txt"
    };
    let mut text = render_one(
        &environment()?,
        name,
        context! { w => Value::from(minijinja::value::Serde(what_if)) },
    )?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn render_explanation_with(
    env: &Environment,
    explanation: &Explanation,
    markdown: bool,
) -> Result<String, RenderError> {
    let name = if markdown {
        "explain.md"
    } else {
        "explain.txt"
    };
    render_one(
        env,
        name,
        context! { explanation => Value::from(minijinja::value::Serde(explanation)) },
    )
}

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .map_err(|err| RenderError {
            file: "templates".to_owned(),
            message: format!("{err:#}"),
        })?;
    env.set_syntax(syntax);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("yaml", yaml_scalar);
    env.add_filter("sh", shell_word);
    env.add_filter("shline", shell_line);
    env.add_filter("shown", shown);
    env.add_filter("md_code", markdown_code);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(|err| RenderError {
            file: (*name).to_owned(),
            message: format!("{err:#}"),
        })?;
    }
    Ok(env)
}

fn render_one(env: &Environment, name: &str, ctx: Value) -> Result<String, RenderError> {
    let error = |err: minijinja::Error| RenderError {
        file: name.trim_start_matches("cluster/").to_owned(),
        message: format!("{err:#}"),
    };
    let text = env
        .get_template(name)
        .map_err(error)?
        .render(ctx)
        .map_err(error)?;
    Ok(normalize(text))
}

/// LF endings, one trailing newline: the same bytes on every machine.
fn normalize(mut text: String) -> String {
    if text.contains('\r') {
        text = text.replace("\r\n", "\n");
    }
    while text.ends_with("\n\n") {
        text.pop();
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    // A build holds every file until it commits them: no spare capacity (issue 28).
    text.shrink_to_fit();
    text
}

/// A YAML scalar that reads back as exactly this string: a JSON string literal, which YAML
/// parses as a double-quoted scalar (so `yes`, `~`, `1.20` or `a: b` stay strings).
fn yaml_scalar(value: Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    serde_json::to_string(&text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// One literal shell word: single-quoted, with embedded quotes closed and escaped. Values in a
/// script's code are always quoted, so a reader sees at once that they are data.
fn shell_word(value: Value) -> String {
    quote(&text_of(&value))
}

/// A command, given as words, as one line a person reads, pastes or a script runs: each word
/// bare when the shell takes it as it is, single-quoted when not. install.sh runs and prints
/// the procedure's commands, and README.md shows them, all through this one function.
fn shell_line(words: Vec<Value>) -> String {
    words
        .iter()
        .map(|word| printable_word(&text_of(word)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word the shell reads back unchanged: bare when every character is plain, else quoted.
pub fn printable_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain { text.to_owned() } else { quote(text) }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A user-supplied name in text for a terminal: control characters escaped.
fn shown(value: Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    crate::terminal::text(&text).into_owned()
}

/// A Markdown code span that CommonMark reads back as exactly `value` (control characters
/// escaped): fenced by one backtick more than its longest run of backticks, so no backtick in
/// it can close the span, and padded with a space on each side when it starts or ends with a
/// backtick or a space (CommonMark strips one such pair, unless the span is all spaces). A plan file named
/// ``a` [click](https:evil) `b.toml`` stays code, not a link, in a pull request.
fn markdown_code(value: Value) -> String {
    let text = shown(value);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let edges = [text.chars().next(), text.chars().last()];
    let all_spaces = text.chars().all(|c| c == ' ');
    let pad = if !all_spaces && edges.iter().any(|c| matches!(c, Some('`' | ' '))) {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_code_spans_fence_every_run_of_backticks() {
        let code = |text: &str| markdown_code(Value::from(text));
        assert_eq!(code("plan.toml"), "`plan.toml`");
        assert_eq!(code("a` [x](y) `b"), "``a` [x](y) `b``");
        assert_eq!(code("``x```y"), "```` ``x```y ````");
        assert_eq!(code(" x "), "`  x  `");
        assert_eq!(code("a\nb"), "`a\\nb`");
        assert_eq!(code("``x``"), "``` ``x`` ```");
    }

    #[test]
    fn template_table_lists_exactly_the_templates_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    on_disk.push(rel.trim_end_matches(".j2").to_owned());
                }
            }
        }
        on_disk.sort();
        let mut table: Vec<String> = TEMPLATES.iter().map(|(n, _)| (*n).to_owned()).collect();
        table.sort();
        assert_eq!(table, on_disk);
    }

    #[test]
    fn yaml_scalars_read_back_as_the_same_string() {
        for text in [
            "yes", "~", "*a", "a: b", "1.20", "x\ny", "quote\"s", "#c", "ü",
        ] {
            let written = yaml_scalar(Value::from(text));
            let read: String = serde_yaml::from_str(&written).unwrap();
            assert_eq!(read, text);
        }
    }

    #[test]
    fn printed_lines_read_back_as_their_words() {
        let words = [
            "helm",
            "--kube-context",
            "$(touch x)",
            "it's",
            "",
            "a b",
            "~",
            "-n",
        ];
        let line = shell_line(words.iter().map(|w| Value::from(*w)).collect());
        assert_eq!(
            line,
            r"helm --kube-context '$(touch x)' 'it'\''s' '' 'a b' '~' -n"
        );
    }

    #[test]
    fn shell_words_are_single_quoted() {
        assert_eq!(shell_word(Value::from("ctx")), "'ctx'");
        assert_eq!(shell_word(Value::from("it's $(x)")), r"'it'\''s $(x)'");
    }
}
