//! Prints a synthetic plan. Used by `benches/run.sh`.
//!
//! - `cargo run --release --example synthetic_plan -- CLUSTERS NODES NETWORKS [SERVICES]`
//! - `... -- bad-pool-entries N`: N findings on one line of a small plan;
//! - `... -- all-primaries N`: N clusters, all primaries (N × (N − 1) remote secrets).

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = words.iter().filter_map(|a| a.parse().ok()).collect();
    let plan = match (words.first().map(String::as_str), args.as_slice()) {
        (Some("bad-pool-entries"), [n]) => synthetic::bad_pool_entries(*n),
        (Some("all-primaries"), [n]) => synthetic::all_primaries(*n),
        (_, [c, n, k]) => large(*c, *n, *k, 0),
        (_, [c, n, k, s]) => large(*c, *n, *k, *s),
        _ => large(100, 5000, 4, 0),
    };
    print!("{plan}");
}

fn large(clusters: usize, nodes: usize, networks: usize, services: usize) -> String {
    let mut shape = synthetic::Shape::large(clusters, nodes, networks);
    shape.services = services;
    synthetic::plan(&shape)
}
