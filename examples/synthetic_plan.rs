//! Prints a synthetic plan: `cargo run --release --example synthetic_plan -- CLUSTERS NODES NETWORKS [SERVICES]`.
//! Used by `benches/run.sh`.

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (clusters, nodes, networks, services) = match args.as_slice() {
        [c, n, k] => (*c, *n, *k, 0),
        [c, n, k, s] => (*c, *n, *k, *s),
        _ => (100, 5000, 4, 0),
    };
    let mut shape = synthetic::Shape::large(clusters, nodes, networks);
    shape.services = services;
    print!("{}", synthetic::plan(&shape));
}
