//! The generated static routes, proven in a real kernel.
//!
//! Every node of a three-cluster static-routed plan becomes a network namespace on one bridge
//! with its planned address; every node's pod block gets a "pod" namespace with an address in
//! the block. The generated `routes.sh` runs inside every node; then a pod of each cluster must
//! reach a pod of each other cluster, and after `routes-undo.sh` it must not. Only namespaces
//! this test creates are touched, and traffic stays inside them. Needs root and iproute2 and
//! ping (`.ci/run` installs them); elsewhere it prints why it skipped.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ipnet::Ipv4Net;
use meshplan::Source;

#[path = "support/tools.rs"]
mod tools;

const PLAN: &str = "tests/fixtures/ok/three-clusters-static-routes.toml";

fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the namespaces it created, whatever happens to the test.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: String) -> String {
        must(&["ip", "netns", "add", &name]);
        self.0.push(name.clone());
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.0.iter().rev() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    for tool in ["ip", "ping", "bash"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let probe = format!("mp-probe-{}", std::process::id());
    let added = run(&["ip", "netns", "add", &probe]);
    if !added.status.success() {
        return Some(format!(
            "cannot create network namespaces (root needed): {}",
            String::from_utf8_lossy(&added.stderr).trim()
        ));
    }
    let _ = run(&["ip", "netns", "del", &probe]);
    None
}

struct Node {
    cluster: String,
    ip: Ipv4Addr,
    block: Ipv4Net,
    ns: String,
    pod_ns: String,
}

impl Node {
    fn pod_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.block.network()) + 2)
    }
}

fn nodes_of(plan: &meshplan::model::Plan, prefix: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for cluster in &plan.clusters {
        for node in &cluster.nodes {
            let (Some(IpAddr::V4(ip)), Some(ipnet::IpNet::V4(block))) = (node.ip, node.pod_cidr)
            else {
                panic!("the routes plan uses IPv4 nodes with blocks");
            };
            let i = nodes.len();
            nodes.push(Node {
                cluster: cluster.name.clone(),
                ip,
                block,
                ns: format!("{prefix}-n{i}"),
                pod_ns: format!("{prefix}-p{i}"),
            });
        }
    }
    nodes
}

fn wire(namespaces: &mut Namespaces, nodes: &[Node], bridge_ns: &str, subnet_len: u8) {
    must(&[
        "ip", "-n", bridge_ns, "link", "add", "br0", "type", "bridge",
    ]);
    must(&["ip", "-n", bridge_ns, "link", "set", "br0", "up"]);
    for (i, node) in nodes.iter().enumerate() {
        let ns = namespaces.add(node.ns.clone());
        let pod = namespaces.add(node.pod_ns.clone());
        let port = format!("n{i}");
        must(&[
            "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
            "netns", bridge_ns,
        ]);
        must(&[
            "ip", "-n", bridge_ns, "link", "set", &port, "master", "br0", "up",
        ]);
        address_and_up(&ns, &format!("{}/{subnet_len}", node.ip), "eth0");
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        for setting in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            must(&["ip", "netns", "exec", &ns, "sysctl", "-qw", setting]);
        }
        let gateway = Ipv4Addr::from(u32::from(node.block.network()) + 1);
        let len = node.block.prefix_len();
        must(&[
            "ip", "link", "add", "eth0", "netns", &pod, "type", "veth", "peer", "name", "pod",
            "netns", &ns,
        ]);
        address_and_up(&ns, &format!("{gateway}/{len}"), "pod");
        address_and_up(&pod, &format!("{}/{len}", node.pod_ip()), "eth0");
        must(&["ip", "-n", &pod, "link", "set", "lo", "up"]);
        must(&[
            "ip",
            "-n",
            &pod,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ]);
    }
}

/// Gives `dev` in namespace `ns` the address `cidr` and brings it up.
fn address_and_up(ns: &str, cidr: &str, dev: &str) {
    must(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]);
    must(&["ip", "-n", ns, "link", "set", dev, "up"]);
}

fn pings(from: &Node, to: &Node) -> bool {
    run(&[
        "ip",
        "netns",
        "exec",
        &from.pod_ns,
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &to.pod_ip().to_string(),
    ])
    .status
    .success()
}

fn script(tree: &Path, node: &Node, name: &str) -> String {
    tree.join(&node.cluster)
        .join("scripts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs a cluster's script on each of its nodes, twice: the second run must succeed too.
fn run_twice_on_every_node(tree: &Path, nodes: &[Node], name: &str) {
    for node in nodes {
        for _ in 0..2 {
            must(&[
                "ip",
                "netns",
                "exec",
                &node.ns,
                "bash",
                &script(tree, node, name),
            ]);
        }
    }
}

/// Every pod of a cluster against every pod of every other cluster, in parallel: an
/// unreachable pod costs a one-second ping timeout.
fn cross_cluster_reachability(nodes: &[Node]) -> Vec<(String, String, bool)> {
    let pairs: Vec<(&Node, &Node)> = nodes
        .iter()
        .flat_map(|from| {
            nodes
                .iter()
                .filter(move |to| to.cluster != from.cluster)
                .map(move |to| (from, to))
        })
        .collect();
    std::thread::scope(|scope| {
        let pings: Vec<_> = pairs
            .iter()
            .map(|(from, to)| {
                scope.spawn(move || (from.ns.clone(), to.ns.clone(), pings(from, to)))
            })
            .collect();
        pings.into_iter().map(|p| p.join().unwrap()).collect()
    })
}

#[test]
fn generated_routes_connect_pods_across_clusters_and_undo_removes_them() {
    if let Some(reason) = unavailable() {
        tools::skip("routes netns test", &reason);
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(PLAN)).unwrap();
    let source = Source::new(PLAN, text);
    let (checked, output) = meshplan::compile(&source);
    let plan = checked.plan.unwrap();
    let tree = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("routes-netns");
    let _ = std::fs::remove_dir_all(&tree);
    for (path, text) in output.unwrap().unwrap() {
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let subnet_len = plan.networks[0].node_subnet.unwrap().prefix_len();

    let prefix = format!("mp{}", std::process::id());
    let mut namespaces = Namespaces(Vec::new());
    let bridge = namespaces.add(format!("{prefix}-br"));
    let nodes = nodes_of(&plan, &prefix);
    wire(&mut namespaces, &nodes, &bridge, subnet_len);

    assert!(
        cross_cluster_reachability(&nodes)
            .iter()
            .all(|(_, _, ok)| !ok),
        "pods must not reach other clusters before routes.sh"
    );

    // A node refuses another cluster's script.
    let other = nodes
        .iter()
        .find(|n| n.cluster != nodes[0].cluster)
        .unwrap();
    let refused = run(&[
        "ip",
        "netns",
        "exec",
        &nodes[0].ns,
        "bash",
        &script(&tree, other, "routes.sh"),
    ]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "routes.sh of {} ran on a node of {}",
        other.cluster,
        nodes[0].cluster
    );

    run_twice_on_every_node(&tree, &nodes, "routes.sh");
    let unreachable: Vec<_> = cross_cluster_reachability(&nodes)
        .into_iter()
        .filter(|(_, _, ok)| !ok)
        .collect();
    assert!(
        unreachable.is_empty(),
        "pods that cannot reach each other with routes: {unreachable:?}"
    );

    run_twice_on_every_node(&tree, &nodes, "routes-undo.sh");
    let reachable: Vec<_> = cross_cluster_reachability(&nodes)
        .into_iter()
        .filter(|(_, _, ok)| *ok)
        .collect();
    assert!(
        reachable.is_empty(),
        "pods still reachable after routes-undo.sh: {reachable:?}"
    );
}
