//! Rules of the `pool` family: MetalLB pool entries parse and are well formed, pools do not
//! overlap or contain node IPs, have room for the addresses planned in them, sit in the nodes'
//! subnet in L2 mode, and BGP mode has what it needs.

use std::net::IpAddr;

use ipnet::IpNet;
use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, PoolEntry};
use super::{Facts, Findings, cidr};
use crate::diagnostic::at;
use crate::raw::{self, MetallbMode};
use crate::sweep::{self, Interval};

/// `meshplan::pool::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum PoolError {
    /// Neither a CIDR nor a range.
    #[error("`{value}` is not a MetalLB address entry")]
    #[diagnostic(
        code(meshplan::pool::invalid_entry),
        help(
            "write an inclusive range of two full addresses, `10.6.136.25-10.6.136.29`, or a CIDR such as `10.0.0.0/29`"
        )
    )]
    InvalidEntry {
        /// As written.
        value: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: String,
    },

    /// Range end before start.
    #[error("range `{value}` ends before it starts")]
    #[diagnostic(
        code(meshplan::pool::reversed_range),
        help("write the lower address first: `{fixed}`")
    )]
    ReversedRange {
        /// As written.
        value: String,
        /// Swapped.
        fixed: String,
        #[label("start is after end")]
        at: SourceSpan,
    },

    /// IPv4 start with IPv6 end, or the reverse.
    #[error("range `{value}` mixes IPv4 and IPv6")]
    #[diagnostic(
        code(meshplan::pool::mixed_family),
        help("write one entry per family; MetalLB silently allocates nothing from a mixed range")
    )]
    MixedFamily {
        /// As written.
        value: String,
        #[label("both ends must be one family")]
        at: SourceSpan,
    },

    /// `addresses = []`.
    #[error("MetalLB pool of `{cluster}` has no addresses")]
    #[diagnostic(
        code(meshplan::pool::empty),
        help("list at least one CIDR or range, or remove `[cluster.metallb]`")
    )]
    Empty {
        /// The cluster.
        cluster: String,
        #[label("empty")]
        at: SourceSpan,
    },

    /// Two pool entries share addresses.
    #[error("MetalLB pools overlap: {second} and {first}")]
    #[diagnostic(
        code(meshplan::pool::overlap),
        help(
            "give every pool its own addresses; MetalLB rejects overlapping pools in one cluster, and two clusters announcing one address break each other"
        )
    )]
    Overlap {
        /// Described, e.g. "`c1`'s pool entry 10.0.0.0/29".
        first: String,
        #[label("{first}")]
        first_at: SourceSpan,
        /// Described.
        second: String,
        #[label("overlaps {first}")]
        second_at: SourceSpan,
    },

    /// A pool contains a node's address.
    #[error("MetalLB pool of `{cluster}` contains node `{node}`'s address {ip}")]
    #[diagnostic(
        code(meshplan::pool::contains_node_ip),
        help(
            "shrink the pool so it skips {ip}: MetalLB would hand the node's address to a Service and the node becomes unreachable (metallb/metallb#1397)"
        )
    )]
    ContainsNodeIp {
        /// The pool's cluster.
        cluster: String,
        /// The node.
        node: String,
        /// The node's IP.
        ip: IpAddr,
        #[label("this entry contains {ip}")]
        pool_at: SourceSpan,
        #[label("node `{node}`")]
        node_at: SourceSpan,
    },

    /// A pool contains an API server's address.
    #[error("MetalLB pool of `{cluster}` contains the api_server address {ip} of `{server}`")]
    #[diagnostic(
        code(meshplan::pool::contains_api_server),
        help(
            "shrink the pool so it skips {ip}: MetalLB would hand the API server's address to a Service, and kubectl, istioctl and every remote secret that reaches `{server}` would reach that Service instead"
        )
    )]
    ContainsApiServer {
        /// The pool's cluster.
        cluster: String,
        /// The cluster whose API server it is.
        server: String,
        /// The address.
        ip: IpAddr,
        #[label("this entry contains {ip}")]
        pool_at: SourceSpan,
        #[label("`{server}`'s api_server")]
        server_at: SourceSpan,
    },

    /// Fewer pool addresses than planned LB addresses.
    #[error(
        "MetalLB pool of `{cluster}` has {size} addresses for {planned} planned LoadBalancer addresses"
    )]
    #[diagnostic(
        code(meshplan::pool::too_small),
        help(
            "widen the pool to at least {planned} addresses, or plan fewer Services with addresses in it"
        )
    )]
    TooSmall {
        /// The cluster.
        cluster: String,
        /// Addresses in the pool.
        size: u128,
        /// Planned lb addresses.
        planned: usize,
        #[label("{size} addresses")]
        at: SourceSpan,
    },

    /// L2 pool outside the node subnet: nobody answers ARP for it.
    #[error("L2 pool entry `{value}` of `{cluster}` is outside node subnet {subnet}")]
    #[diagnostic(
        code(meshplan::pool::outside_node_subnet),
        severity(Warning),
        help(
            "in L2 mode MetalLB answers ARP/NDP only on the nodes' own subnet; use addresses from {subnet}, or `mode = \"bgp\"` (metallb/metallb#433)"
        )
    )]
    OutsideNodeSubnet {
        /// The cluster.
        cluster: String,
        /// The entry.
        value: String,
        /// The network's node subnet.
        subnet: IpNet,
        #[label("not in {subnet}")]
        at: SourceSpan,
        #[label("node subnet of the network")]
        subnet_at: SourceSpan,
    },

    /// BGP mode without peers or ASN.
    #[error("BGP mode of `{cluster}` needs {missing}")]
    #[diagnostic(code(meshplan::pool::bgp_incomplete))]
    BgpIncomplete {
        #[help]
        help: &'static str,
        /// The cluster.
        cluster: String,
        /// What is missing.
        missing: &'static str,
        #[label("mode = \"bgp\"")]
        at: SourceSpan,
    },

    /// L2Advertisement `interfaces` on a MetalLB release whose CRD does not have the field.
    #[error("`interfaces` needs MetalLB 0.13.6 or later; the plan targets {version}")]
    #[diagnostic(
        code(meshplan::pool::interfaces_unsupported),
        help(
            "MetalLB added L2Advertisement `interfaces` in v0.13.6 (its CRD before that has no such field, and the API server refuses the L2Advertisement: `.spec.interfaces: field not declared in schema`): set mesh.metallb.version to 0.13.6 or later, or remove `interfaces`"
        )
    )]
    InterfacesUnsupported {
        /// The plan's MetalLB version, as written.
        version: String,
        #[label("not in MetalLB {version}'s L2Advertisement")]
        at: SourceSpan,
    },

    /// A key of the other mode.
    #[error("`{key}` is ignored in {mode} mode")]
    #[diagnostic(code(meshplan::pool::mode_mismatch), severity(Warning), help("{hint}"))]
    ModeMismatch {
        /// The key.
        key: &'static str,
        /// The pool's mode.
        mode: &'static str,
        /// How to fix.
        hint: &'static str,
        #[label("only used in the other mode")]
        at: SourceSpan,
    },
}

/// Parses one `addresses` entry: a CIDR, or `start-end`.
pub fn parse_entry(entry: &Spanned<String>, out: &mut Findings) -> Option<Interval> {
    match entry.get_ref().split_once('-') {
        None => {
            cidr::parse_cidr(entry, "addresses", out).map(|net| Interval::of_net(net.get_ref()))
        }
        Some((start, end)) => parse_range(entry, start.trim(), end.trim(), out),
    }
}

fn parse_range(
    entry: &Spanned<String>,
    start: &str,
    end: &str,
    out: &mut Findings,
) -> Option<Interval> {
    let text = entry.get_ref().clone();
    let (Ok(lo), Ok(hi)) = (start.parse::<IpAddr>(), end.parse::<IpAddr>()) else {
        let bad = if start.parse::<IpAddr>().is_err() {
            start
        } else {
            end
        };
        out.push(PoolError::InvalidEntry {
            value: text,
            at: at(entry),
            reason: format!("`{bad}` is not an IP address"),
        });
        return None;
    };
    if lo.is_ipv4() != hi.is_ipv4() {
        out.push(PoolError::MixedFamily {
            value: text,
            at: at(entry),
        });
        return None;
    }
    let interval = Interval::of_range(lo, hi);
    if interval.is_none() {
        out.push(PoolError::ReversedRange {
            value: text,
            fixed: format!("{hi}-{lo}"),
            at: at(entry),
        });
    }
    interval
}

/// Runs the `pool` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    pools_do_not_overlap(facts, out);
    pools_exclude_node_ips(facts, out);
    for cluster in &facts.clusters {
        let Some(metallb) = &cluster.raw.get_ref().metallb else {
            continue;
        };
        pool_is_not_empty(cluster, metallb, out);
        pool_has_room(cluster, metallb, out);
        l2_pool_in_node_subnet(facts, cluster, metallb.get_ref(), out);
        bgp_has_peers_and_asn(cluster, metallb.get_ref(), out);
        keys_match_mode(metallb.get_ref(), out);
        interfaces_are_known(facts, metallb.get_ref(), out);
    }
}

/// MetalLB's L2Advertisement has `interfaces` from v0.13.6 (`api/v1beta1/l2advertisement_types.go`
/// at the v0.13.5 and v0.13.6 tags). A version without a patch names the minor, whose newest
/// releases have it.
fn interfaces_are_known(facts: &Facts, metallb: &raw::Metallb, out: &mut Findings) {
    let (Some(interfaces), Some(version)) = (&metallb.interfaces, &facts.metallb_version) else {
        return;
    };
    let before = (
        version.major,
        version.minor,
        version.patch.unwrap_or(u64::MAX),
    ) < (0, 13, 6);
    if before {
        out.push(PoolError::InterfacesUnsupported {
            version: version.to_string(),
            at: at(interfaces),
        });
    }
}

fn pool_is_not_empty(cluster: &ClusterFacts, metallb: &Spanned<raw::Metallb>, out: &mut Findings) {
    let addresses = &metallb.get_ref().addresses;
    if addresses.get_ref().is_empty() {
        out.push(PoolError::Empty {
            cluster: cluster.name().to_owned(),
            at: at(addresses),
        });
    }
}

/// Plan-wide: pools of one cluster must not overlap, and two clusters announcing the same
/// address (on one L2, or routed to both) break each other.
fn pools_do_not_overlap(facts: &Facts, out: &mut Findings) {
    let entries: Vec<(&ClusterFacts, &PoolEntry)> = facts
        .clusters
        .iter()
        .flat_map(|c| c.pool.iter().map(move |e| (c, e)))
        .collect();
    let intervals: Vec<Interval> = entries.iter().map(|(_, e)| e.interval).collect();
    for (i, j) in sweep::overlapping_pairs(&intervals) {
        let (mut first, mut second) = (entries[i], entries[j]);
        if second.1.raw.span().start < first.1.raw.span().start {
            std::mem::swap(&mut first, &mut second);
        }
        out.push(PoolError::Overlap {
            first: describe_entry(first),
            first_at: at(first.1.raw),
            second: describe_entry(second),
            second_at: at(second.1.raw),
        });
    }
}

fn describe_entry((cluster, entry): (&ClusterFacts, &PoolEntry)) -> String {
    format!("`{}`'s pool entry {}", cluster.name(), entry.raw.get_ref())
}

fn pool_has_room(cluster: &ClusterFacts, metallb: &Spanned<raw::Metallb>, out: &mut Findings) {
    if cluster.pool.is_empty() {
        return;
    }
    let size = cluster.pool.iter().fold(0u128, |sum, entry| {
        sum.saturating_add(entry.interval.size())
    });
    let planned = cluster.lb.len();
    if (planned as u128) > size {
        out.push(PoolError::TooSmall {
            cluster: cluster.name().to_owned(),
            size,
            planned,
            at: at(&metallb.get_ref().addresses),
        });
    }
}

/// Per network (the scope on which node addresses are unique): one sweep over all pools and
/// the node and API server addresses of the network.
fn pools_exclude_node_ips(facts: &Facts, out: &mut Findings) {
    for network in 0..facts.networks.len() {
        let pools: Vec<(&ClusterFacts, &PoolEntry)> = facts
            .clusters_on(network)
            .flat_map(|c| c.pool.iter().map(move |e| (c, e)))
            .collect();
        let taken: Vec<(Taken, Spanned<IpAddr>)> = facts
            .clusters_on(network)
            .flat_map(|c| {
                let nodes = c.nodes.iter().filter_map(|n| {
                    let ip = n.ip.as_ref()?;
                    Some((Taken::Node(n.raw.get_ref().name.get_ref()), ip.clone()))
                });
                nodes.chain(c.api_server_ip().map(|ip| (Taken::ApiServer(c.name()), ip)))
            })
            .collect();
        let pool_intervals: Vec<Interval> = pools.iter().map(|(_, e)| e.interval).collect();
        let ips: Vec<Interval> = taken
            .iter()
            .map(|(_, ip)| Interval::of_addr(*ip.get_ref()))
            .collect();
        for (p, n) in sweep::crossing_pairs(&pool_intervals, &ips) {
            let ((cluster, entry), (owner, ip)) = (pools[p], &taken[n]);
            let (cluster, ip, pool_at) = (cluster.name().to_owned(), *ip.get_ref(), at(entry.raw));
            out.push(match owner {
                Taken::Node(node) => PoolError::ContainsNodeIp {
                    cluster,
                    node: (*node).to_owned(),
                    ip,
                    pool_at,
                    node_at: at(&taken[n].1),
                },
                Taken::ApiServer(server) => PoolError::ContainsApiServer {
                    cluster,
                    server: (*server).to_owned(),
                    ip,
                    pool_at,
                    server_at: at(&taken[n].1),
                },
            });
        }
    }
}

/// An address MetalLB must never hand out, and whose it is.
enum Taken<'a> {
    Node(&'a str),
    ApiServer(&'a str),
}

fn l2_pool_in_node_subnet(
    facts: &Facts,
    cluster: &ClusterFacts,
    metallb: &raw::Metallb,
    out: &mut Findings,
) {
    let mode = metallb
        .mode
        .as_ref()
        .map_or(MetallbMode::L2, |m| *m.get_ref());
    let subnet = cluster
        .network
        .and_then(|n| facts.networks[n].node_subnet.as_ref());
    let (MetallbMode::L2, Some(subnet)) = (mode, subnet) else {
        return;
    };
    let inside = Interval::of_net(subnet.get_ref());
    for entry in cluster
        .pool
        .iter()
        .filter(|e| !inside.contains(&e.interval))
    {
        out.push(PoolError::OutsideNodeSubnet {
            cluster: cluster.name().to_owned(),
            value: entry.raw.get_ref().clone(),
            subnet: *subnet.get_ref(),
            at: at(entry.raw),
            subnet_at: at(subnet),
        });
    }
}

fn bgp_has_peers_and_asn(cluster: &ClusterFacts, metallb: &raw::Metallb, out: &mut Findings) {
    let Some(mode) = metallb
        .mode
        .as_ref()
        .filter(|m| *m.get_ref() == MetallbMode::Bgp)
    else {
        return;
    };
    let no_peers = metallb
        .peers
        .as_ref()
        .is_none_or(|p| p.get_ref().is_empty());
    let no_asn = metallb.asn.as_ref().is_none_or(|a| *a.get_ref() == 0);
    const PEERS: &str =
        "add the routers to peer with: `peers = [{ address = \"10.0.0.1\", asn = 64513 }]`";
    const ASN: &str = "add MetalLB's own AS number: `asn = 64512` (a private AS, not 0)";
    const BOTH: &str = "add `asn = 64512` (MetalLB's own AS) and `peers = [{ address = \"10.0.0.1\", asn = 64513 }]`";
    let (missing, help) = match (no_peers, no_asn) {
        (true, true) => ("`peers` and `asn`", BOTH),
        (true, false) => ("`peers`", PEERS),
        (false, true) => ("`asn` (MetalLB's own AS number, not 0)", ASN),
        (false, false) => ("", ""),
    };
    if !missing.is_empty() {
        out.push(PoolError::BgpIncomplete {
            help,
            cluster: cluster.name().to_owned(),
            missing,
            at: at(mode),
        });
    }
    let peers = metallb.peers.iter().flat_map(|p| p.get_ref().iter());
    for asn in peers
        .map(|p| &p.get_ref().asn)
        .filter(|a| *a.get_ref() == 0)
    {
        out.push(PoolError::BgpIncomplete {
            help: "give the router's real AS number; 0 is reserved",
            cluster: cluster.name().to_owned(),
            missing: "a peer AS number other than 0",
            at: at(asn),
        });
    }
}

fn keys_match_mode(metallb: &raw::Metallb, out: &mut Findings) {
    let bgp = metallb
        .mode
        .as_ref()
        .is_some_and(|m| *m.get_ref() == MetallbMode::Bgp);
    if bgp {
        if let Some(interfaces) = &metallb.interfaces {
            out.push(PoolError::ModeMismatch {
                key: "interfaces",
                mode: "bgp",
                hint: "remove `interfaces`, or set `mode = \"l2\"`",
                at: at(interfaces),
            });
        }
        return;
    }
    let bgp_keys = [
        metallb.peers.as_ref().map(|p| ("peers", at(p))),
        metallb.asn.as_ref().map(|a| ("asn", at(a))),
    ];
    for (key, span) in bgp_keys.into_iter().flatten() {
        out.push(PoolError::ModeMismatch {
            key,
            mode: "l2",
            hint: "set `mode = \"bgp\"` to peer with routers, or remove the BGP keys",
            at: span,
        });
    }
}
