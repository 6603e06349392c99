//! Rules of the `lb` family: planned LoadBalancer addresses are unique in the plan, lie in the
//! cluster's MetalLB pools when it has any, and `istiod` is planned only where istiod runs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, LbAddress, LbKind};
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw::Role;
use crate::sweep::Interval;

/// `meshplan::lb::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum LbError {
    /// An lb address of a family the cluster's Services do not have.
    #[error("lb.{key} {addr} of `{cluster}` is IPv{family}, but the cluster's service_cidr is not")]
    #[diagnostic(
        code(meshplan::lb::family),
        help(
            "a LoadBalancer Service gets addresses of its cluster's IP families only, so it would stay <pending>; plan an address of the service_cidr's family ({service_cidr}), or make the cluster dual-stack"
        )
    )]
    Family {
        key: &'static str,
        addr: IpAddr,
        cluster: String,
        family: u8,
        service_cidr: String,
        #[label("IPv{family}")]
        at: SourceSpan,
    },

    /// An lb address outside the cluster's MetalLB pools.
    #[error("lb.{key} {addr} of `{cluster}` is outside its MetalLB pool")]
    #[diagnostic(
        code(meshplan::lb::outside_pool),
        help(
            "MetalLB only hands out addresses from its pools; a Service asking for {addr} stays <pending> forever (metallb/metallb#2079). Add {addr} to [cluster.metallb] addresses or pick an address inside them"
        )
    )]
    OutsidePool {
        /// The cluster.
        cluster: String,
        /// The `[cluster.lb]` key.
        key: &'static str,
        /// The address.
        addr: IpAddr,
        #[label("not in any pool entry")]
        at: SourceSpan,
        #[label("the pool")]
        pool_at: SourceSpan,
    },

    /// A LoadBalancer address that is an API server's.
    #[error("LoadBalancer address {addr} is the api_server address of `{server}`")]
    #[diagnostic(
        code(meshplan::lb::api_server),
        help(
            "a Service's load-balancer address and a cluster's API server cannot share an address: one of them would answer for the other, and remote secrets, kubectl and istioctl would reach the wrong one. Give the Service another address"
        )
    )]
    ApiServer {
        /// The address.
        addr: IpAddr,
        #[label("`{owner}`'s lb.{key}")]
        at: SourceSpan,
        /// The Service's cluster.
        owner: String,
        /// Its key.
        key: &'static str,
        #[label("`{server}`'s api_server")]
        server_at: SourceSpan,
        /// The API server's cluster.
        server: String,
    },

    /// The same address planned twice.
    #[error("LoadBalancer address {addr} is planned twice")]
    #[diagnostic(
        code(meshplan::lb::duplicate),
        help(
            "every planned LoadBalancer address belongs to one Service in one cluster; give one of them another address"
        )
    )]
    Duplicate {
        /// The address.
        addr: IpAddr,
        #[label("`{first}`'s lb.{first_key}")]
        first_at: SourceSpan,
        /// The first owner.
        first: String,
        /// Its key.
        first_key: &'static str,
        #[label("`{second}`'s lb.{second_key}: the same address")]
        second_at: SourceSpan,
        /// The second owner.
        second: String,
        /// Its key.
        second_key: &'static str,
    },

    /// `lb.istiod` on a remote, which runs no istiod.
    #[error("lb.istiod is ignored on remote cluster `{cluster}`")]
    #[diagnostic(
        code(meshplan::lb::istiod_on_remote),
        severity(Warning),
        help("a remote uses its primary's istiod: plan `lb.istiod` on the primary instead")
    )]
    IstiodOnRemote {
        /// The cluster.
        cluster: String,
        #[label("remotes run no istiod")]
        at: SourceSpan,
    },
}

/// Runs the `lb` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    addresses_are_unique(facts, out);
    addresses_are_not_api_servers(facts, out);
    for cluster in &facts.clusters {
        addresses_in_pool(cluster, out);
        istiod_only_on_primary(cluster, out);
        addresses_match_the_cluster_family(cluster, out);
    }
}

fn addresses_match_the_cluster_family(cluster: &ClusterFacts, out: &mut Findings) {
    let Some(service) = &cluster.service_cidr else {
        return;
    };
    let service_v4 = matches!(service.get_ref(), ipnet::IpNet::V4(_));
    for lb in &cluster.lb {
        let addr = lb.addr.get_ref().to_canonical();
        if addr.is_ipv4() != service_v4 {
            out.push(LbError::Family {
                key: lb.kind.key(),
                addr: *lb.addr.get_ref(),
                cluster: cluster.name().to_owned(),
                family: if addr.is_ipv4() { 4 } else { 6 },
                service_cidr: service.get_ref().to_string(),
                at: at(&lb.addr),
            });
        }
    }
}

fn addresses_are_not_api_servers(facts: &Facts, out: &mut Findings) {
    let servers: BTreeMap<IpAddr, (&ClusterFacts, Spanned<IpAddr>)> = facts
        .clusters
        .iter()
        .filter_map(|c| {
            c.api_server_ip()
                .map(|ip| (ip.get_ref().to_canonical(), (c, ip)))
        })
        .collect();
    let planned = facts
        .clusters
        .iter()
        .flat_map(|c| c.lb.iter().map(move |lb| (c, lb)));
    for (cluster, lb) in planned {
        if let Some((server, ip)) = servers.get(&lb.addr.get_ref().to_canonical()) {
            out.push(LbError::ApiServer {
                addr: *lb.addr.get_ref(),
                at: at(&lb.addr),
                owner: cluster.name().to_owned(),
                key: lb.kind.key(),
                server_at: at(ip),
                server: server.name().to_owned(),
            });
        }
    }
}

fn addresses_are_unique(facts: &Facts, out: &mut Findings) {
    let mut seen: BTreeMap<IpAddr, (&ClusterFacts, &LbAddress)> = BTreeMap::new();
    let planned = facts
        .clusters
        .iter()
        .flat_map(|c| c.lb.iter().map(move |lb| (c, lb)));
    for (cluster, lb) in planned {
        // `::ffff:10.0.0.1` is 10.0.0.1 on the wire: compare addresses in canonical form.
        let canonical = lb.addr.get_ref().to_canonical();
        match seen.get(&canonical) {
            Some((first, first_lb)) => out.push(LbError::Duplicate {
                addr: *lb.addr.get_ref(),
                first_at: at(&first_lb.addr),
                first: first.name().to_owned(),
                first_key: first_lb.kind.key(),
                second_at: at(&lb.addr),
                second: cluster.name().to_owned(),
                second_key: lb.kind.key(),
            }),
            None => {
                seen.insert(canonical, (cluster, lb));
            }
        }
    }
}

fn addresses_in_pool(cluster: &ClusterFacts, out: &mut Findings) {
    let Some(metallb) = &cluster.raw.get_ref().metallb else {
        return;
    };
    if crate::model::lb_via(cluster.raw.get_ref()) != crate::raw::LbVia::Metallb {
        return;
    }
    if cluster.pool.is_empty() {
        return;
    }
    for lb in &cluster.lb {
        let addr = Interval::of_addr(*lb.addr.get_ref());
        if !cluster
            .pool
            .iter()
            .any(|entry| entry.interval.contains(&addr))
        {
            out.push(LbError::OutsidePool {
                cluster: cluster.name().to_owned(),
                key: lb.kind.key(),
                addr: *lb.addr.get_ref(),
                at: at(&lb.addr),
                pool_at: at(&metallb.get_ref().addresses),
            });
        }
    }
}

fn istiod_only_on_primary(cluster: &ClusterFacts, out: &mut Findings) {
    if *cluster.raw.get_ref().role.get_ref() != Role::Remote {
        return;
    }
    if let Some(lb) = cluster.lb(LbKind::Istiod) {
        out.push(LbError::IstiodOnRemote {
            cluster: cluster.name().to_owned(),
            at: at(&lb.addr),
        });
    }
}
