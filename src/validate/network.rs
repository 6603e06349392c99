//! Rules of the `network` family: clusters name declared networks, declared networks are used,
//! a static network says its node subnet, and a multi-network mesh has an east-west gateway
//! address on every network.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use super::facts::LbKind;
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw::Routing;
use crate::suggest;

/// `meshplan::network::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum NetworkError {
    /// A cluster names a network that is not declared.
    #[error("cluster `{cluster}` is on network `{network}`, which is not declared")]
    #[diagnostic(code(meshplan::network::undeclared))]
    Undeclared {
        /// The cluster.
        cluster: String,
        /// As written.
        network: String,
        #[label("no [[network]] has this id")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A declared network no cluster uses.
    #[error("network `{network}` has no clusters")]
    #[diagnostic(
        code(meshplan::network::unused),
        severity(Warning),
        help(
            "remove the [[network]] table, or set `network = \"{network}\"` on the clusters that belong to it"
        )
    )]
    Unused {
        /// The network.
        network: String,
        #[label("declared here, used by no cluster")]
        at: SourceSpan,
    },

    /// A node subnet that is every address.
    #[error("node_subnet {value} of network `{network}` is every address, not a subnet")]
    #[diagnostic(
        code(meshplan::network::node_subnet_everything),
        help(
            "write the one L2 subnet the network's nodes share, e.g. `172.16.187.0/24`: static routes are single-hop, and a /0 would let any address pass as a next hop"
        )
    )]
    NodeSubnetEverything {
        network: String,
        value: String,
        #[label("prefix length 0")]
        at: SourceSpan,
    },

    /// Static routing without a node subnet.
    #[error("network `{network}` routes statically but has no node_subnet")]
    #[diagnostic(
        code(meshplan::network::missing_node_subnet),
        help(
            "add `node_subnet = \"<cidr>\"`, the one L2 subnet all nodes of the network share; static routes are single-hop and are only valid there"
        )
    )]
    MissingNodeSubnet {
        /// The network.
        network: String,
        #[label("routing = \"static\"")]
        at: SourceSpan,
    },

    /// A network of a multi-network mesh without any east-west gateway address.
    #[error("network `{network}` has no east-west gateway, but the mesh spans {count} networks")]
    #[diagnostic(
        code(meshplan::network::no_eastwest),
        help(
            "traffic between networks goes through east-west gateways: add `[cluster.lb] eastwest = \"<ip>\"` to a cluster on `{network}` (without a planned address the gateway's LoadBalancer stays <pending>, istio/istio#49045)"
        )
    )]
    NoEastwest {
        /// The network.
        network: String,
        /// Networks in the mesh.
        count: usize,
        #[label("no cluster here has lb.eastwest")]
        at: SourceSpan,
    },

    /// A cluster of a multi-network mesh without its own east-west gateway.
    #[error("cluster `{cluster}` has no east-west gateway in a multi-network mesh")]
    #[diagnostic(
        code(meshplan::network::cluster_without_eastwest),
        severity(Warning),
        help(
            "its services are reachable from other networks only through another cluster's gateway on `{network}`; add `[cluster.lb] eastwest = \"<ip>\"` unless that is intended"
        )
    )]
    ClusterWithoutEastwest {
        /// The cluster.
        cluster: String,
        /// Its network.
        network: String,
        #[label("no lb.eastwest")]
        at: SourceSpan,
    },
}

/// Runs the `network` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    clusters_name_declared_networks(facts, out);
    for (index, network) in facts.networks.iter().enumerate() {
        let raw = network.raw.get_ref();
        let duplicate = facts.networks[..index]
            .iter()
            .any(|n| n.raw.get_ref().id.get_ref() == raw.id.get_ref());
        if !duplicate && facts.clusters_on(index).next().is_none() {
            out.push(NetworkError::Unused {
                network: raw.id.get_ref().clone(),
                at: at(&raw.id),
            });
        }
        if let Some(routing) = raw
            .routing
            .as_ref()
            .filter(|r| *r.get_ref() == Routing::Static)
            && raw.node_subnet.is_none()
        {
            out.push(NetworkError::MissingNodeSubnet {
                network: raw.id.get_ref().clone(),
                at: at(routing),
            });
        }
    }
    for network in &facts.networks {
        if let Some(subnet) = network
            .node_subnet
            .as_ref()
            .filter(|s| s.get_ref().prefix_len() == 0)
        {
            out.push(NetworkError::NodeSubnetEverything {
                network: network.raw.get_ref().id.get_ref().clone(),
                value: subnet.get_ref().to_string(),
                at: at(subnet),
            });
        }
    }
    every_network_has_eastwest(facts, out);
}

fn clusters_name_declared_networks(facts: &Facts, out: &mut Findings) {
    let declared = || {
        facts
            .networks
            .iter()
            .map(|n| n.raw.get_ref().id.get_ref().as_str())
    };
    for cluster in facts.clusters.iter().filter(|c| c.network.is_none()) {
        let written = &cluster.raw.get_ref().network;
        let listed = declared()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match suggest::nearest(written.get_ref(), declared()) {
            Some(best) => format!(
                "did you mean `{best}`? Otherwise declare it: `[[network]]` with `id = \"{}\"`",
                written.get_ref()
            ),
            None if listed.is_empty() => "declare it: `[[network]]` with `id = \"...\"`".to_owned(),
            None => format!("declare it with a `[[network]]` table, or use one of: {listed}"),
        };
        out.push(NetworkError::Undeclared {
            cluster: cluster.name().to_owned(),
            network: written.get_ref().clone(),
            at: at(written),
            help,
        });
    }
}

fn every_network_has_eastwest(facts: &Facts, out: &mut Findings) {
    let used: Vec<usize> = (0..facts.networks.len())
        .filter(|&i| facts.clusters_on(i).next().is_some())
        .collect();
    if used.len() < 2 {
        return;
    }
    for &index in &used {
        let id = &facts.networks[index].raw.get_ref().id;
        let has_gateway = |c: &&super::facts::ClusterFacts| {
            c.lb(LbKind::Eastwest).is_some()
                || c.raw.get_ref().lb.as_ref().is_some_and(|lb| {
                    lb.get_ref().eastwest.is_some() || lb.get_ref().eastwest_hostname.is_some()
                })
        };
        let (with, without): (Vec<_>, Vec<_>) = facts.clusters_on(index).partition(has_gateway);
        if with.is_empty() {
            out.push(NetworkError::NoEastwest {
                network: id.get_ref().clone(),
                count: used.len(),
                at: at(id),
            });
            continue;
        }
        for cluster in without {
            out.push(NetworkError::ClusterWithoutEastwest {
                cluster: cluster.name().to_owned(),
                network: id.get_ref().clone(),
                at: at(&cluster.raw.get_ref().name),
            });
        }
    }
}
