//! Rules of the `node` family: node IPs unique on their network and inside its node subnet, pod
//! blocks inside the cluster's pod range and disjoint, and everything static routing needs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, NodeFacts};
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw::Routing;
use crate::sweep::{self, Interval};

/// `meshplan::node::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum NodeError {
    /// Two nodes on one network with one IP.
    #[error("node IP {ip} is used twice on network `{network}`")]
    #[diagnostic(
        code(meshplan::node::duplicate_ip),
        help("every node on a network needs its own address; correct one of the two")
    )]
    DuplicateIp {
        /// The address.
        ip: IpAddr,
        /// The network.
        network: String,
        #[label("node `{first}`")]
        first_at: SourceSpan,
        /// First node.
        first: String,
        #[label("node `{second}` has the same IP")]
        second_at: SourceSpan,
        /// Second node.
        second: String,
    },

    /// Node block outside the cluster's pod range.
    #[error("pod block {block} of node `{node}` is outside `{cluster}`'s pod_cidr {pod_cidr}")]
    #[diagnostic(
        code(meshplan::node::block_outside_cluster),
        help(
            "a node's pod block is carved from its cluster's pod range: use a block inside {pod_cidr} (check `calicoctl ipam show --show-blocks` or `kubectl get node -o jsonpath='{{.spec.podCIDR}}'`)"
        )
    )]
    BlockOutsideCluster {
        /// The node.
        node: String,
        /// The cluster.
        cluster: String,
        /// The block.
        block: IpNet,
        /// The cluster's range.
        pod_cidr: IpNet,
        #[label("not inside {pod_cidr}")]
        at: SourceSpan,
        #[label("the cluster's pod range")]
        cluster_at: SourceSpan,
    },

    /// Two node blocks overlap.
    #[error("pod blocks of nodes `{second}` and `{first}` overlap")]
    #[diagnostic(
        code(meshplan::node::block_overlap),
        help(
            "each node owns its pod block; two nodes with overlapping blocks make routes to one of them unreachable"
        )
    )]
    BlockOverlap {
        /// First node.
        first: String,
        #[label("node `{first}`'s block")]
        first_at: SourceSpan,
        /// Second node.
        second: String,
        #[label("overlaps node `{first}`'s block")]
        second_at: SourceSpan,
    },

    /// A node on a static network without ip or pod_cidr.
    #[error("node `{node}` needs `{missing}` for static routing on network `{network}`")]
    #[diagnostic(
        code(meshplan::node::static_incomplete),
        help(
            "routes.sh installs `ip route replace <pod block> via <node ip>` for every node: give the node both `ip` and `pod_cidr`"
        )
    )]
    StaticIncomplete {
        /// The node.
        node: String,
        /// The key(s) missing.
        missing: &'static str,
        /// The network.
        network: String,
        #[label("this node")]
        at: SourceSpan,
    },

    /// A cluster on a static network without nodes.
    #[error("cluster `{cluster}` lists no nodes, but network `{network}` routes statically")]
    #[diagnostic(
        code(meshplan::node::missing_nodes),
        help(
            "add a `[[cluster.node]]` table with `name`, `ip` and `pod_cidr` for every node; routes are generated per node block"
        )
    )]
    MissingNodes {
        /// The cluster.
        cluster: String,
        /// The network.
        network: String,
        #[label("no [[cluster.node]]")]
        at: SourceSpan,
    },

    /// A node IP outside the network's node subnet.
    #[error("node `{node}`'s ip {ip} is outside node subnet {subnet} of network `{network}`")]
    #[diagnostic(
        code(meshplan::node::outside_subnet),
        help(
            "node_subnet says every node of the network sits on {subnet} (static routes need a single hop): fix the address, or widen node_subnet"
        )
    )]
    OutsideSubnet {
        /// The node.
        node: String,
        /// Its address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
        /// The network.
        network: String,
        #[label("not in {subnet}")]
        at: SourceSpan,
        #[label("node_subnet")]
        subnet_at: SourceSpan,
    },
}

/// Runs the `node` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    for cluster in &facts.clusters {
        blocks_inside_cluster(cluster, out);
    }
    for (index, network) in facts.networks.iter().enumerate() {
        let id = network.raw.get_ref().id.get_ref();
        let nodes: Vec<&NodeFacts> = facts.clusters_on(index).flat_map(|c| &c.nodes).collect();
        ips_unique(id, &nodes, out);
        blocks_disjoint(&nodes, out);
        if let Some(subnet) = &network.node_subnet {
            ips_inside_subnet(id, subnet, &nodes, out);
        }
        let routing = network.raw.get_ref().routing.as_ref().map(|r| *r.get_ref());
        if routing == Some(Routing::Static) {
            for cluster in facts.clusters_on(index) {
                static_routing_prerequisites(id, cluster, out);
            }
        }
    }
}

fn node_name<'a>(node: &'a NodeFacts) -> &'a str {
    node.raw.get_ref().name.get_ref()
}

fn ips_unique(network: &str, nodes: &[&NodeFacts], out: &mut Findings) {
    let mut seen: BTreeMap<IpAddr, (&NodeFacts, &Spanned<IpAddr>)> = BTreeMap::new();
    for node in nodes {
        let Some(ip) = &node.ip else { continue };
        match seen.get(ip.get_ref()) {
            Some((first, first_ip)) => out.push(NodeError::DuplicateIp {
                ip: *ip.get_ref(),
                network: network.to_owned(),
                first_at: at(first_ip),
                first: node_name(first).to_owned(),
                second_at: at(ip),
                second: node_name(node).to_owned(),
            }),
            None => {
                seen.insert(*ip.get_ref(), (node, ip));
            }
        }
    }
}

fn blocks_inside_cluster(cluster: &ClusterFacts, out: &mut Findings) {
    let Some(pod_cidr) = &cluster.pod_cidr else {
        return;
    };
    for node in &cluster.nodes {
        let Some(block) = &node.block else { continue };
        if !pod_cidr.get_ref().contains(block.get_ref()) {
            out.push(NodeError::BlockOutsideCluster {
                node: node_name(node).to_owned(),
                cluster: cluster.name().to_owned(),
                block: *block.get_ref(),
                pod_cidr: *pod_cidr.get_ref(),
                at: at(block),
                cluster_at: at(pod_cidr),
            });
        }
    }
}

fn blocks_disjoint(nodes: &[&NodeFacts], out: &mut Findings) {
    let with_blocks: Vec<(&NodeFacts, &Spanned<IpNet>)> = nodes
        .iter()
        .filter_map(|n| Some((*n, n.block.as_ref()?)))
        .collect();
    let intervals: Vec<Interval> = with_blocks
        .iter()
        .map(|(_, b)| Interval::of_net(b.get_ref()))
        .collect();
    for (i, j) in sweep::overlapping_pairs(&intervals) {
        let (mut a, mut b) = (with_blocks[i], with_blocks[j]);
        if b.1.span().start < a.1.span().start {
            std::mem::swap(&mut a, &mut b);
        }
        out.push(NodeError::BlockOverlap {
            first: node_name(a.0).to_owned(),
            first_at: at(a.1),
            second: node_name(b.0).to_owned(),
            second_at: at(b.1),
        });
    }
}

fn ips_inside_subnet(
    network: &str,
    subnet: &Spanned<IpNet>,
    nodes: &[&NodeFacts],
    out: &mut Findings,
) {
    for node in nodes {
        let Some(ip) = &node.ip else { continue };
        if !subnet.get_ref().contains(ip.get_ref()) {
            out.push(NodeError::OutsideSubnet {
                node: node_name(node).to_owned(),
                ip: *ip.get_ref(),
                subnet: *subnet.get_ref(),
                network: network.to_owned(),
                at: at(ip),
                subnet_at: at(subnet),
            });
        }
    }
}

fn static_routing_prerequisites(network: &str, cluster: &ClusterFacts, out: &mut Findings) {
    if cluster.nodes.is_empty() {
        out.push(NodeError::MissingNodes {
            cluster: cluster.name().to_owned(),
            network: network.to_owned(),
            at: at(&cluster.raw.get_ref().name),
        });
    }
    for node in &cluster.nodes {
        let raw = node.raw.get_ref();
        let missing = match (raw.ip.is_none(), raw.pod_cidr.is_none()) {
            (true, true) => "ip` and `pod_cidr",
            (true, false) => "ip",
            (false, true) => "pod_cidr",
            (false, false) => continue,
        };
        out.push(NodeError::StaticIncomplete {
            node: node_name(node).to_owned(),
            missing,
            network: network.to_owned(),
            at: at(&raw.name),
        });
    }
}
