//! Micro-benchmark of each pipeline stage on synthetic plans of 10, 100 and 1,000 clusters
//! (`cargo bench --bench stages`). `benches/run.sh` times the whole commands; this shows which
//! stage the time goes to.

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use meshplan::{Source, explain, parse, render, resolve, validate};

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

fn main() {
    divan::main();
}
