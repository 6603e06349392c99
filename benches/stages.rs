//! Micro-benchmark of each pipeline stage on synthetic plans of 10, 100 and 1,000 clusters
//! (`cargo bench --bench stages`). `benches/run.sh` times the whole commands; this shows which
//! stage the time goes to.

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use meshplan::{Source, explain, parse, render, report, resolve, validate};

const SIZES: [usize; 3] = [10, 100, 1000];

fn source(clusters: usize) -> Source {
    let shape = synthetic::Shape::large(clusters, clusters * 50, clusters.div_ceil(10));
    Source::new(format!("plan-{clusters}.toml"), synthetic::plan(&shape))
}

fn valid_plan(source: &Source) -> meshplan::model::Plan {
    let raw = parse::parse(source).unwrap_or_else(|err| panic!("synthetic plan parses: {err}"));
    validate::validate(&raw)
        .plan
        .unwrap_or_else(|| panic!("synthetic plan is valid"))
}

#[divan::bench(args = SIZES)]
fn parse(bencher: divan::Bencher, clusters: usize) {
    let source = source(clusters);
    bencher.bench(|| parse::parse(&source).is_ok());
}

#[divan::bench(args = SIZES)]
fn validate(bencher: divan::Bencher, clusters: usize) {
    let source = source(clusters);
    let Ok(raw) = parse::parse(&source) else {
        panic!("synthetic plan parses")
    };
    bencher.bench(|| validate::validate(&raw).plan.is_some());
}

#[divan::bench(args = SIZES)]
fn resolve(bencher: divan::Bencher, clusters: usize) {
    let plan = valid_plan(&source(clusters));
    bencher.bench(|| resolve::resolve(&plan, "plan.toml"));
}

/// What `meshplan render --cluster c7` does after validation: resolve that cluster, render its
/// kubectl stream.
#[divan::bench(args = SIZES)]
fn render_one_cluster(bencher: divan::Bencher, clusters: usize) {
    let plan = valid_plan(&source(clusters));
    bencher.bench(|| {
        let (mesh, cluster) = resolve::resolve_cluster(&plan, "plan.toml", "c7");
        let Some(cluster) = cluster else {
            panic!("synthetic plan has a cluster c7")
        };
        render::cluster_stream(&mesh, &cluster, render::Selection::Kubectl).is_ok()
    });
}

#[divan::bench(args = SIZES, sample_count = 10)]
fn render_tree(bencher: divan::Bencher, clusters: usize) {
    let plan = valid_plan(&source(clusters));
    let mesh = resolve::resolve(&plan, "plan.toml");
    let explanation = explain::explain(&plan, &mesh);
    bencher.bench(|| render::render(&mesh, &explanation).is_ok());
}

#[divan::bench(args = SIZES, sample_count = 10)]
fn compile(bencher: divan::Bencher, clusters: usize) {
    let source = source(clusters);
    bencher.bench(|| meshplan::compile(&source).1.is_some());
}

/// `meshplan explain --without c0 --without c1` after reading the plan: parse, validate (the
/// `service` rules included) and the what-if, on plans with ten services per cluster.
#[divan::bench(args = SIZES, sample_count = 10)]
fn explain_without(bencher: divan::Bencher, clusters: usize) {
    let mut shape = synthetic::Shape::large(clusters, clusters * 50, clusters.div_ceil(10));
    shape.services = clusters * 10;
    let source = Source::new(format!("plan-{clusters}.toml"), synthetic::plan(&shape));
    let without = ["c0".to_owned(), "c1".to_owned()];
    bencher.bench(|| {
        let plan = valid_plan(&source);
        meshplan::whatif::what_if(&plan, "plan.toml", &without).is_ok()
    });
}

/// Findings on one line of the plan (review R3: 64,000 took 52 s to print, 10.5 s as JSON).
const FINDINGS: [usize; 3] = [1_000, 8_000, 64_000];

/// The findings of a plan with `entries` bad MetalLB entries on one line, and a fresh copy of
/// its text (so each sample builds the line index, as a run does).
fn with_findings(entries: usize) -> (Source, Vec<meshplan::diagnostic::Error>) {
    let source = Source::new("bad.toml", synthetic::bad_pool_entries(entries));
    let findings = meshplan::check(&source).findings;
    assert_eq!(findings.len(), entries, "one finding per bad entry");
    (source, findings)
}

/// Parse and validate, `entries` findings on one line.
#[divan::bench(args = FINDINGS, sample_count = 5)]
fn check_with_findings(bencher: divan::Bencher, entries: usize) {
    let source = Source::new("bad.toml", synthetic::bad_pool_entries(entries));
    bencher.bench(|| meshplan::check(&source).findings.len());
}

/// `--diagnostics json`: every finding with its line and column.
#[divan::bench(args = FINDINGS, sample_count = 5)]
fn findings_json(bencher: divan::Bencher, entries: usize) {
    let (source, findings) = with_findings(entries);
    bencher
        .with_inputs(|| Source::new(source.name.clone(), source.text.clone()))
        .bench_refs(|fresh| report::json_lines(fresh, &findings).len());
}

/// The human report of every finding.
#[divan::bench(args = FINDINGS, sample_count = 5)]
fn findings_human(bencher: divan::Bencher, entries: usize) {
    let (source, findings) = with_findings(entries);
    let style = report::Style {
        color: false,
        width: 100,
    };
    bencher
        .with_inputs(|| Source::new(source.name.clone(), source.text.clone()))
        .bench_refs(|fresh| {
            findings
                .iter()
                .map(|f| report::human(fresh, f, style).len())
                .sum::<usize>()
        });
}

/// The whole compile of a mesh whose clusters are all primaries: remote secrets, and the
/// output, grow as the square (review R7). 100 is the most without a warning; 317 is refused.
#[divan::bench(args = [25, 50, 100], sample_count = 5)]
fn compile_all_primaries(bencher: divan::Bencher, clusters: usize) {
    let source = Source::new("primaries.toml", synthetic::all_primaries(clusters));
    bencher.bench(|| {
        let (checked, output) = meshplan::compile(&source);
        assert!(checked.is_valid(), "{clusters} primaries compile");
        output.map_or(0, |o| {
            o.map_or(0, |o| o.values().map(String::len).sum::<usize>())
        })
    });
}

/// The rotation of `tests/fixtures/trust/rotation.toml` (A → A+B → B, four phases) on a mesh
/// of `clusters` primaries, and its CA (ECDSA) made once in a temporary directory.
fn rotation_ca(clusters: usize) -> (meshplan::model::Plan, std::path::PathBuf) {
    let text = format!(
        "{}\n[mesh.trust]\n\n[[mesh.trust.root]]\nname = \"root-a\"\n\n[[mesh.trust.root]]\nname = \"root-b\"\n\n[[mesh.trust.phase]]\nname = \"a\"\ntrust = [\"root-a\"]\nsign = \"root-a\"\n\n[[mesh.trust.phase]]\nname = \"trust-b\"\ntrust = [\"root-a\", \"root-b\"]\nsign = \"root-a\"\n\n[[mesh.trust.phase]]\nname = \"sign-b\"\ntrust = [\"root-a\", \"root-b\"]\nsign = \"root-b\"\n\n[[mesh.trust.phase]]\nname = \"b\"\ntrust = [\"root-b\"]\nsign = \"root-b\"\n",
        synthetic::all_primaries(clusters)
    );
    let plan = valid_plan(&Source::new("rotation.toml", text));
    let dir = std::env::temp_dir().join(format!(
        "meshplan-bench-trust-{clusters}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let options = meshplan::certs::Options {
        algorithm: meshplan::certs::KeyAlgorithm::EcdsaP256,
        ..Default::default()
    };
    let trust = plan
        .trust
        .as_ref()
        .unwrap_or_else(|| panic!("the plan has phases"));
    meshplan::trust::ca::generate(&dir, trust, &options)
        .unwrap_or_else(|err| panic!("the CA is made: {err}"));
    (plan, dir)
}

/// `check --certs` of every phase of a rotation (issue 26's target: 100 clusters under 2 s,
/// ECDSA): each root's directory by the one-root rules, then the matrix, leaves issued in
/// memory. 100 clusters, 4 phases: 100 + 3 × 3 × 100² ordered pairs (about 90,000).
#[divan::bench(args = [10, 100], sample_count = 5)]
fn trust_check_certs(bencher: divan::Bencher, clusters: usize) {
    let (plan, dir) = rotation_ca(clusters);
    let trust = plan.trust.as_ref().unwrap_or_else(|| panic!("phases"));
    let after = |_: &str| String::new();
    bencher.bench(|| {
        let checked = meshplan::trust::ca::check_dir(
            &dir,
            trust,
            &plan.mesh.trust_domain,
            "meshplan certs PLAN --out DIR",
            &after,
            time::OffsetDateTime::now_utc(),
        );
        assert!(
            checked.findings.iter().all(|f| !f.is_error()),
            "{:?}",
            checked.findings
        );
        checked.summary.map_or(0, |s| s.accepted)
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    divan::main();
}
