//! Synthetic plans of any size and shape, valid by construction: the property tests draw
//! random shapes, the benchmarks large ones (`examples/synthetic_plan.rs`).
//!
//! Address plan: cluster `i` gets pods `10.x.y.0/20` below `10.128.0.0` and services the same
//! /20 above it; node `k` of a cluster the `k`-th /26 of its pod range and address
//! `172.16.0.0 + global node index + 1`; the LoadBalancer addresses of cluster `i` are the
//! eight addresses at `172.24.0.0 + 8i` (inside the node subnet), its MetalLB pool.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// What a synthetic plan looks like.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Clusters (at most 2048).
    pub clusters: usize,
    /// Nodes per cluster (at most 64).
    pub nodes_per_cluster: usize,
    /// Networks; cluster `i` is on network `i % networks`.
    pub networks: usize,
    /// Primaries: the first clusters; remotes use primary `i % primaries`.
    pub primaries: usize,
    /// The first `static_networks` networks route statically.
    pub static_networks: usize,
    /// `mesh.istio.version`.
    pub istio: &'static str,
    /// `installer = "helm"`.
    pub helm: bool,
    /// `[cluster.metallb]` on cluster `i` when `i % metallb_every == 0` (0: none).
    pub metallb_every: usize,
    /// IPVS kube-proxy on clusters with MetalLB.
    pub ipvs: bool,
    /// Platform of cluster `i`: `platforms[i % len]`.
    pub platforms: Vec<&'static str>,
    /// helloworld + sleep on every cluster, bookinfo on the first.
    pub samples: bool,
    /// `[mesh.gitops]` tool.
    pub gitops: Option<&'static str>,
    /// `[[service]]` tables: service `j` runs in three consecutive clusters (so in three
    /// regions); every second fails over `region0` → `region1` (where it runs there), every third has outlier
    /// settings, every fifth is cluster-local instead.
    pub services: usize,
}

impl Shape {
    /// A large plan for benchmarks.
    pub fn large(clusters: usize, nodes: usize, networks: usize) -> Shape {
        Shape {
            clusters,
            nodes_per_cluster: nodes.div_ceil(clusters.max(1)).min(64),
            networks: networks.max(1),
            primaries: (clusters / 100).max(1),
            static_networks: 1,
            istio: "1.24.2",
            helm: false,
            metallb_every: 2,
            ipvs: true,
            platforms: vec!["kubeadm", "generic", "kind", "icp"],
            samples: true,
            gitops: Some("argocd"),
            services: 0,
        }
    }
}

fn v4(base: u32, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(base + offset)
}

/// The plan's TOML text.
pub fn plan(shape: &Shape) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[mesh]\nid = \"synthetic\"\n\n[mesh.istio]\nversion = \"{}\"",
        shape.istio
    );
    if shape.helm {
        out.push_str("installer = \"helm\"\n");
    }
    if let Some(tool) = shape.gitops {
        let _ = writeln!(
            out,
            "\n[mesh.gitops]\nrepository = \"https://git.example.com/mesh.git\"\npath = \"deploy\"\ntool = \"{tool}\""
        );
    }
    for n in 0..shape.networks {
        let _ = writeln!(out, "\n[[network]]\nid = \"net{n}\"");
        if n < shape.static_networks {
            out.push_str("routing = \"static\"\nnode_subnet = \"172.16.0.0/12\"\n");
        }
    }
    for i in 0..shape.clusters {
        cluster(&mut out, shape, i);
    }
    for j in 0..shape.services {
        service(&mut out, shape, j);
    }
    out
}

fn service(out: &mut String, shape: &Shape, j: usize) {
    let n = shape.clusters.max(1);
    let indices: Vec<usize> = (0..3.min(n)).map(|k| (j * 7 + k) % n).collect();
    let clusters: Vec<String> = indices.iter().map(|i| format!("\"c{i}\"")).collect();
    let _ = writeln!(
        out,
        "\n[[service]]\nname = \"svc{j}\"\nnamespace = \"ns{}\"\nport = {}\nclusters = [{}]",
        j % 100,
        8000 + j % 1000,
        clusters.join(", ")
    );
    if j % 5 == 4 || n == 1 {
        out.push_str("scope = \"cluster\"\n");
        return;
    }
    // Cluster `i` is in `region{i % 3}`: fail over only into a region the service runs in.
    if j.is_multiple_of(2) && indices.iter().any(|i| i % 3 == 1) {
        out.push_str("failover = [{ from = \"region0\", to = \"region1\" }]\n");
    }
    if j.is_multiple_of(3) {
        out.push_str("\n[service.outlier]\nconsecutive_5xx = 3\ninterval = \"5s\"\n");
    }
}

fn cluster(out: &mut String, shape: &Shape, i: usize) {
    let i32_ = i as u32;
    let pods = v4(0x0a00_0000, i32_ << 12);
    let services = v4(0x0a80_0000, i32_ << 12);
    let primary = i < shape.primaries.max(1);
    let platform = shape
        .platforms
        .get(i % shape.platforms.len().max(1))
        .copied()
        .unwrap_or("generic");
    let _ = writeln!(
        out,
        "\n[[cluster]]\nname = \"c{i}\"\nrole = \"{}\"\nnetwork = \"net{}\"\nplatform = \"{platform}\"\napi_server = \"https://{}:6443\"\npod_cidr = \"{pods}/20\"\nservice_cidr = \"{services}/20\"\nregion = \"region{}\"\nzone = \"zone{i}\"",
        if primary { "primary" } else { "remote" },
        i % shape.networks.max(1),
        v4(0xac10_0000, (i32_ * 64) + 1),
        i % 3,
    );
    if !primary && shape.primaries > 1 {
        let _ = writeln!(out, "primary = \"c{}\"", i % shape.primaries);
    }
    let with_metallb = shape.metallb_every > 0 && i.is_multiple_of(shape.metallb_every);
    if with_metallb && shape.ipvs {
        out.push_str("kube_proxy = \"ipvs\"\n");
    }
    if platform == "gke" {
        let _ = writeln!(
            out,
            "\n[cluster.gke]\nproject = \"synthetic-project\"\ntarget_tags = [\"gke-c{i}-node\"]"
        );
    }
    let lb = 0xac18_0000 + i32_ * 8;
    let _ = writeln!(out, "\n[cluster.lb]\neastwest = \"{}\"", v4(lb, 1));
    if primary {
        let _ = writeln!(
            out,
            "istiod = \"{}\"\ningress = \"{}\"",
            v4(lb, 2),
            v4(lb, 3)
        );
    }
    if with_metallb {
        let _ = writeln!(
            out,
            "\n[cluster.metallb]\naddresses = [\"{}-{}\"]",
            v4(lb, 0),
            v4(lb, 7)
        );
    }
    if shape.samples {
        let _ = writeln!(
            out,
            "\n[cluster.samples]\nhelloworld = \"v{i}\"\nsleep = true"
        );
        if i == 0 {
            out.push_str("bookinfo = [\"productpage\", \"details\", \"reviews-v1\"]\n");
        }
    }
    for k in 0..shape.nodes_per_cluster {
        let k32 = k as u32;
        let _ = writeln!(
            out,
            "\n[[cluster.node]]\nname = \"c{i}-n{k}\"\nip = \"{}\"\npod_cidr = \"{}/26\"\ncontrol_plane = {}",
            v4(0xac10_0000, i32_ * 64 + k32 + 1),
            v4(u32::from(pods), k32 * 64),
            k == 0
        );
    }
}

/// A two-cluster plan whose first MetalLB pool also lists `entries` values that are not
/// addresses, all on one line: as many findings on one line (review R3 found their cost
/// quadratic).
pub fn bad_pool_entries(entries: usize) -> String {
    let mut shape = Shape::large(2, 2, 1);
    shape.static_networks = 0;
    let bad: Vec<String> = (0..entries).map(|k| format!("\"bad{k}\"")).collect();
    plan(&shape).replacen(
        "addresses = [\"",
        &format!("addresses = [{}, \"", bad.join(", ")),
        1,
    )
}

/// A plan of `clusters` clusters that are all primaries: `clusters × (clusters − 1)` remote
/// secrets (review R7 found the output growing as their square, without bound).
pub fn all_primaries(clusters: usize) -> String {
    let mut shape = Shape::large(clusters, 0, 1);
    shape.primaries = clusters;
    shape.static_networks = 0;
    plan(&shape)
}
