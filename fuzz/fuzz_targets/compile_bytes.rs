//! The whole compile of arbitrary bytes: decode, parse, validate, resolve, render, and both
//! report formats. Anything but a panic is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (source, checked) = meshplan::check_bytes("fuzz.toml", data);
    for finding in &checked.findings {
        let _ = meshplan::report::json(&source, finding);
        let _ = meshplan::report::human(&source, finding, meshplan::report::Style { color: false, width: 80 });
    }
    if let Some(plan) = &checked.plan {
        let (_, output) = meshplan::compile(&source);
        let _ = output;
        // `render --cluster`'s path: one cluster resolved alone, each selection.
        if let Some(first) = plan.clusters.first() {
            let (mesh, cluster) = meshplan::resolve::resolve_cluster(plan, "fuzz.toml", &first.name);
            if let Some(cluster) = cluster {
                use meshplan::render::{cluster_stream, Selection};
                for selection in [Selection::Kubectl, Selection::Istio, Selection::Eastwest] {
                    let _ = cluster_stream(&mesh, &cluster, selection);
                }
            }
        }
    }
});
