//! Prints a synthetic plan: `cargo run --release --example synthetic_plan -- CLUSTERS NODES NETWORKS`.
//! Used by `benches/run.sh`.

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (clusters, nodes, networks) = match args.as_slice() {
        [c, n, k] => (*c, *n, *k),
        _ => (100, 5000, 4),
    };
    print!(
        "{}",
        synthetic::plan(&synthetic::Shape::large(clusters, nodes, networks))
    );
}
