//! Rules of the `overlap` family: on one network, pod and service ranges of all clusters are
//! disjoint (pods route to each other directly there), and node IPs, MetalLB pools and planned
//! LoadBalancer addresses lie outside all of them. Across networks overlap is allowed.

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
struct Item {
    what: String,
    span: SourceSpan,
    interval: Interval,
}

fn item(cluster: &str, key: &str, value: &Spanned<IpNet>) -> Item {
    Item {
        what: format!("`{cluster}`'s {key} {}", value.get_ref()),
        span: at(value),
        interval: Interval::of_net(value.get_ref()),
    }
}

fn network_ranges<'a>(
    clusters: impl Iterator<Item = &'a ClusterFacts<'a>>,
) -> Vec<(RangeKind, Item)> {
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

fn network_addresses<'a>(clusters: impl Iterator<Item = &'a ClusterFacts<'a>>) -> Vec<Item> {
    let mut items = Vec::new();
    for cluster in clusters {
        for node in &cluster.nodes {
            if let Some(ip) = &node.ip {
                items.push(Item {
                    what: format!(
                        "node `{}`'s ip {}",
                        node.raw.get_ref().name.get_ref(),
                        ip.get_ref()
                    ),
                    span: at(ip),
                    interval: Interval::of_addr(*ip.get_ref()),
                });
            }
        }
        for entry in &cluster.pool {
            items.push(Item {
                what: format!(
                    "`{}`'s MetalLB pool entry {}",
                    cluster.name(),
                    entry.raw.get_ref()
                ),
                span: at(entry.raw),
                interval: entry.interval,
            });
        }
        if let Some(ip) = cluster.api_server_ip() {
            items.push(Item {
                what: format!("`{}`'s api_server {}", cluster.name(), ip.get_ref()),
                span: at(&ip),
                interval: Interval::of_addr(*ip.get_ref()),
            });
        }
        for peer in &cluster.peers {
            items.push(Item {
                what: format!("`{}`'s BGP peer {}", cluster.name(), peer.get_ref()),
                span: at(peer),
                interval: Interval::of_addr(*peer.get_ref()),
            });
        }
        for lb in &cluster.lb {
            items.push(Item {
                what: format!(
                    "`{}`'s lb.{} {}",
                    cluster.name(),
                    lb.kind.key(),
                    lb.addr.get_ref()
                ),
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
        let (first, first_at) = (a.1.what.clone(), a.1.span);
        let (second, second_at) = (b.1.what.clone(), b.1.span);
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
            address: addresses[a].what.clone(),
            address_at: addresses[a].span,
            range: ranges[r].1.what.clone(),
            range_at: ranges[r].1.span,
        });
    }
}
