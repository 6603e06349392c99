//! Rules of the `overlap` family: on one network, pod and service ranges of all clusters are
//! disjoint (pods route to each other directly there), and node IPs, MetalLB pools and planned
//! LoadBalancer addresses lie outside all of them. Across networks overlap is allowed.

use std::net::IpAddr;

use ipnet::IpNet;
use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::ClusterFacts;
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::sweep::{self, Interval};

/// `meshplan::overlap::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum OverlapError {
    /// Pod ranges of two clusters on one network.
    #[error("pod ranges overlap on network `{network}`: {second} and {first}")]
    #[diagnostic(
        code(meshplan::overlap::pod_cidr),
        help(
            "pods of clusters on one network reach each other directly, so their ranges must be disjoint: move one cluster's pod_cidr to a free range, or put the clusters on different networks (then traffic goes through east-west gateways)"
        )
    )]
    PodCidr {
        /// The network.
        network: String,
        /// e.g. "`c1`'s pod_cidr 10.1.0.0/16".
        first: String,
        #[label("{first}")]
        first_at: SourceSpan,
        /// The other side.
        second: String,
        #[label("overlaps {first}")]
        second_at: SourceSpan,
    },

    /// Service ranges of two clusters on one network.
    #[error("service ranges overlap on network `{network}`: {second} and {first}")]
    #[diagnostic(
        code(meshplan::overlap::service_cidr),
        help(
            "clusters on one network must have disjoint service ranges: move one cluster's service_cidr to a free range, or put the clusters on different networks"
        )
    )]
    ServiceCidr {
        /// The network.
        network: String,
        /// One side.
        first: String,
        #[label("{first}")]
        first_at: SourceSpan,
        /// The other side.
        second: String,
        #[label("overlaps {first}")]
        second_at: SourceSpan,
    },

    /// A pod range and a service range, of one cluster or of two on one network.
    #[error("a pod range and a service range overlap on network `{network}`: {second} and {first}")]
    #[diagnostic(
        code(meshplan::overlap::pod_service),
        help(
            "a pod address that is also a service address is routed wrongly (kube-proxy captures it): keep every pod_cidr and service_cidr on the network disjoint"
        )
    )]
    PodService {
        /// The network.
        network: String,
        /// One side.
        first: String,
        #[label("{first}")]
        first_at: SourceSpan,
        /// The other side.
        second: String,
        #[label("overlaps {first}")]
        second_at: SourceSpan,
    },

    /// A node IP, pool or LB address inside a pod or service range.
    #[error("{address} lies inside {range}")]
    #[diagnostic(
        code(meshplan::overlap::address),
        help(
            "node, API server, MetalLB, LoadBalancer and router addresses must be outside every pod and service range of their network, or traffic to them is captured by pod routes or kube-proxy: move the address, or move the range if the address is fixed (a node's IP)"
        )
    )]
    Address {
        /// e.g. "node `n1`'s ip 10.1.0.5".
        address: String,
        #[label("{address}")]
        address_at: SourceSpan,
        /// e.g. "`c1`'s pod_cidr 10.1.0.0/16".
        range: String,
        #[label("{range}")]
        range_at: SourceSpan,
    },
}

/// Runs the `overlap` rules, network by network.
pub fn check(facts: &Facts, out: &mut Findings) {
    for (index, network) in facts.networks.iter().enumerate() {
        let ranges = network_ranges(facts.clusters_on(index));
        let id = network.raw.get_ref().id.get_ref();
        ranges_are_disjoint(id, &ranges, out);
        addresses_avoid_ranges(&ranges, &network_addresses(facts.clusters_on(index)), out);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Pod,
    Service,
}

/// A described, located interval.
struct Item<'a> {
    what: What<'a>,
    span: SourceSpan,
    interval: Interval,
}

/// What an interval is, in a finding's words: written only for the intervals a finding names
/// (a plan of 50,000 nodes has as many, and findings are few).
enum What<'a> {
    /// "`c1`'s pod_cidr 10.1.0.0/16".
    Range {
        cluster: &'a str,
        key: &'static str,
        net: IpNet,
    },
    /// "node `n1`'s ip 10.1.0.5".
    Node { name: &'a str, ip: IpAddr },
    /// "`c1`'s MetalLB pool entry 10.0.0.1-10.0.0.9".
    Pool { cluster: &'a str, entry: &'a str },
    /// "`c1`'s api_server 10.0.0.1".
    ApiServer { cluster: &'a str, ip: IpAddr },
    /// "`c1`'s BGP peer 10.0.0.1".
    Peer { cluster: &'a str, ip: IpAddr },
    /// "`c1`'s lb.istiod 10.0.0.1".
    Lb {
        cluster: &'a str,
        key: &'static str,
        ip: IpAddr,
    },
}

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Range { cluster, key, net } => write!(f, "`{cluster}`'s {key} {net}"),
            What::Node { name, ip } => write!(f, "node `{name}`'s ip {ip}"),
            What::Pool { cluster, entry } => write!(f, "`{cluster}`'s MetalLB pool entry {entry}"),
            What::ApiServer { cluster, ip } => write!(f, "`{cluster}`'s api_server {ip}"),
            What::Peer { cluster, ip } => write!(f, "`{cluster}`'s BGP peer {ip}"),
            What::Lb { cluster, key, ip } => write!(f, "`{cluster}`'s lb.{key} {ip}"),
        }
    }
}

fn item<'a>(cluster: &'a str, key: &'static str, value: &Spanned<IpNet>) -> Item<'a> {
    Item {
        what: What::Range {
            cluster,
            key,
            net: *value.get_ref(),
        },
        span: at(value),
        interval: Interval::of_net(value.get_ref()),
    }
}

fn network_ranges<'a>(
    clusters: impl Iterator<Item = &'a ClusterFacts<'a>>,
) -> Vec<(RangeKind, Item<'a>)> {
    let mut ranges = Vec::new();
    for cluster in clusters {
        if let Some(pods) = &cluster.pod_cidr {
            ranges.push((RangeKind::Pod, item(cluster.name(), "pod_cidr", pods)));
        }
        if let Some(services) = &cluster.service_cidr {
            ranges.push((
                RangeKind::Service,
                item(cluster.name(), "service_cidr", services),
            ));
        }
    }
    ranges
}

fn network_addresses<'a>(clusters: impl Iterator<Item = &'a ClusterFacts<'a>>) -> Vec<Item<'a>> {
    let mut items = Vec::new();
    for cluster in clusters {
        for node in &cluster.nodes {
            if let Some(ip) = &node.ip {
                items.push(Item {
                    what: What::Node {
                        name: node.raw.get_ref().name.get_ref(),
                        ip: *ip.get_ref(),
                    },
                    span: at(ip),
                    interval: Interval::of_addr(*ip.get_ref()),
                });
            }
        }
        for entry in &cluster.pool {
            items.push(Item {
                what: What::Pool {
                    cluster: cluster.name(),
                    entry: entry.raw.get_ref(),
                },
                span: at(entry.raw),
                interval: entry.interval,
            });
        }
        if let Some(ip) = cluster.api_server_ip() {
            items.push(Item {
                what: What::ApiServer {
                    cluster: cluster.name(),
                    ip: *ip.get_ref(),
                },
                span: at(&ip),
                interval: Interval::of_addr(*ip.get_ref()),
            });
        }
        for peer in &cluster.peers {
            items.push(Item {
                what: What::Peer {
                    cluster: cluster.name(),
                    ip: *peer.get_ref(),
                },
                span: at(peer),
                interval: Interval::of_addr(*peer.get_ref()),
            });
        }
        for lb in &cluster.lb {
            items.push(Item {
                what: What::Lb {
                    cluster: cluster.name(),
                    key: lb.kind.key(),
                    ip: *lb.addr.get_ref(),
                },
                span: at(&lb.addr),
                interval: Interval::of_addr(*lb.addr.get_ref()),
            });
        }
    }
    items
}

fn ranges_are_disjoint(network: &str, ranges: &[(RangeKind, Item)], out: &mut Findings) {
    let intervals: Vec<Interval> = ranges.iter().map(|(_, r)| r.interval).collect();
    for (i, j) in sweep::overlapping_pairs(&intervals) {
        let (mut a, mut b) = (&ranges[i], &ranges[j]);
        if b.1.span.offset() < a.1.span.offset() {
            std::mem::swap(&mut a, &mut b);
        }
        let network = network.to_owned();
        let (first, first_at) = (a.1.what.to_string(), a.1.span);
        let (second, second_at) = (b.1.what.to_string(), b.1.span);
        out.push(match (a.0, b.0) {
            (RangeKind::Pod, RangeKind::Pod) => OverlapError::PodCidr {
                network,
                first,
                first_at,
                second,
                second_at,
            },
            (RangeKind::Service, RangeKind::Service) => OverlapError::ServiceCidr {
                network,
                first,
                first_at,
                second,
                second_at,
            },
            _ => OverlapError::PodService {
                network,
                first,
                first_at,
                second,
                second_at,
            },
        });
    }
}

fn addresses_avoid_ranges(ranges: &[(RangeKind, Item)], addresses: &[Item], out: &mut Findings) {
    let range_intervals: Vec<Interval> = ranges.iter().map(|(_, r)| r.interval).collect();
    let address_intervals: Vec<Interval> = addresses.iter().map(|a| a.interval).collect();
    for (r, a) in sweep::crossing_pairs(&range_intervals, &address_intervals) {
        out.push(OverlapError::Address {
            address: addresses[a].what.to_string(),
            address_at: addresses[a].span,
            range: ranges[r].1.what.to_string(),
            range_at: ranges[r].1.span,
        });
    }
}
