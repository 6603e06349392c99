//! Rules of the `service` family: `[[service]]` tables name real clusters, ports and outlier
//! settings Istio accepts, failover between regions the plan has and the service runs in, and
//! mesh-scoped services that clients on other networks can reach.

use std::collections::{BTreeSet, HashMap, HashSet};

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, LbKind};
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw::{self, Scope};
use crate::suggest;

/// `meshplan::service::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum ServiceError {
    /// A service name or namespace that is not a DNS-1123 label.
    #[error("service {key} `{value}` is not a DNS-1123 label: {problem}")]
    #[diagnostic(
        code(meshplan::service::invalid_name),
        help(
            "Kubernetes Service names and namespaces are lowercase letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit"
        )
    )]
    InvalidName {
        /// `name` or `namespace`.
        key: &'static str,
        /// As written.
        value: String,
        /// What is wrong.
        problem: &'static str,
        #[label("{problem}")]
        at: SourceSpan,
    },

    /// A service runs in a cluster the plan does not have.
    #[error("service `{service}` runs in cluster `{cluster}`, which is not in the plan")]
    #[diagnostic(code(meshplan::service::unknown_cluster))]
    UnknownCluster {
        /// `name.namespace`.
        service: String,
        /// As written.
        cluster: String,
        #[label("no [[cluster]] has this name")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A service with no clusters.
    #[error("service `{service}` runs in no cluster")]
    #[diagnostic(
        code(meshplan::service::no_clusters),
        help("list the clusters its endpoints run in: `clusters = [\"<cluster>\", ...]`")
    )]
    NoClusters {
        /// `name.namespace`.
        service: String,
        #[label("empty")]
        at: SourceSpan,
    },

    /// The same name and namespace twice.
    #[error("service `{service}` is declared twice")]
    #[diagnostic(
        code(meshplan::service::duplicate),
        help(
            "one [[service]] table per Service: merge the two (list every cluster in `clusters`)"
        )
    )]
    Duplicate {
        /// `name.namespace`.
        service: String,
        #[label("first declared here")]
        first: SourceSpan,
        #[label("declared again here")]
        at: SourceSpan,
    },

    /// A port outside 1..65535.
    #[error("service `{service}` has port {port}, outside 1..65535")]
    #[diagnostic(
        code(meshplan::service::port_range),
        help("a Service port is between 1 and 65535")
    )]
    PortRange {
        /// `name.namespace`.
        service: String,
        /// As written.
        port: i64,
        #[label("not a port")]
        at: SourceSpan,
    },

    /// A failover region no cluster of the plan is in.
    #[error("failover region `{region}` of service `{service}` is not the region of any cluster")]
    #[diagnostic(code(meshplan::service::unknown_region))]
    UnknownRegion {
        /// `name.namespace`.
        service: String,
        /// As written.
        region: String,
        #[label("no cluster or node has this region")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// Failover into a region where the service does not run.
    #[error("service `{service}` fails over to region `{region}`, where it has no cluster")]
    #[diagnostic(
        code(meshplan::service::failover_into_nothing),
        help(
            "clients in `{from}` would fail over to no endpoint at all; add a cluster of `{region}` to `clusters`, or fail over to a region the service runs in"
        )
    )]
    FailoverIntoNothing {
        /// `name.namespace`.
        service: String,
        /// The `from` region.
        from: String,
        /// The `to` region.
        region: String,
        #[label("none of the service's clusters is in this region")]
        at: SourceSpan,
    },

    /// Failover from a region to itself (Istio rejects it).
    #[error("service `{service}` fails over from `{region}` to `{region}`")]
    #[diagnostic(
        code(meshplan::service::failover_same_region),
        help(
            "Istio rejects a failover whose `from` and `to` are the same region; name another region in `to`"
        )
    )]
    FailoverSameRegion {
        /// `name.namespace`.
        service: String,
        /// The region.
        region: String,
        #[label("from = to")]
        at: SourceSpan,
    },

    /// Failover on a cluster-local service.
    #[error("service `{service}` has scope = \"cluster\" and a failover")]
    #[diagnostic(
        code(meshplan::service::failover_cluster_scope),
        help(
            "a cluster-local service is only reached from its own cluster, so it never fails over to another region: remove `failover`, or set `scope = \"mesh\"`"
        )
    )]
    FailoverClusterScope {
        /// `name.namespace`.
        service: String,
        #[label("scope = \"cluster\"")]
        scope: SourceSpan,
        #[label("failover needs a mesh-scoped service")]
        at: SourceSpan,
    },

    /// A mesh-scoped service only on networks without an east-west gateway.
    #[error(
        "mesh-scoped service `{service}` runs only on network {networks}, which other networks cannot reach"
    )]
    #[diagnostic(
        code(meshplan::service::unreachable_network),
        help(
            "clients on other networks reach it only through an east-west gateway: add `[cluster.lb] eastwest = \"<ip>\"` to a cluster on {networks}, or set `scope = \"cluster\"`"
        )
    )]
    UnreachableNetwork {
        /// `name.namespace`.
        service: String,
        /// The service's networks.
        networks: String,
        #[label("no east-west gateway on these clusters' network")]
        at: SourceSpan,
    },

    /// An outlier setting Istio would reject.
    #[error("service `{service}`: outlier {key} = {value} would be rejected by Istio")]
    #[diagnostic(code(meshplan::service::invalid_outlier))]
    InvalidOutlier {
        /// `name.namespace`.
        service: String,
        /// The key.
        key: &'static str,
        /// As written.
        value: String,
        #[label("{why}")]
        at: SourceSpan,
        /// Why.
        why: &'static str,
        #[help]
        help: String,
    },

    /// A mesh-scoped service in one cluster only.
    #[error("mesh-scoped service `{service}` runs in one cluster only, `{cluster}`")]
    #[diagnostic(
        code(meshplan::service::single_cluster),
        severity(Warning),
        help(
            "if `{cluster}` goes down the service has no endpoint anywhere (`meshplan explain PLAN --without {cluster}`); run it in a second cluster, or set `scope = \"cluster\"` if only that cluster's clients use it"
        )
    )]
    SingleCluster {
        /// `name.namespace`.
        service: String,
        /// The one cluster.
        cluster: String,
        #[label("one cluster")]
        at: SourceSpan,
    },

    /// A cluster-scoped service that clients in some clusters cannot reach at all.
    #[error(
        "cluster-scoped service `{service}` answers no client in {clusters}: it runs only in {runs}"
    )]
    #[diagnostic(
        code(meshplan::service::cluster_scope_leaves_clients),
        severity(Warning),
        help(
            "`scope = \"cluster\"` keeps each client on its own cluster's endpoints (serviceSettings.clusterLocal; in ambient, no `istio.io/global`), so a call from {clusters} gets no endpoint; run it there too, or set `scope = \"mesh\"` if they call it (`meshplan explain PLAN --traffic --service {service}` shows who reaches what)"
        )
    )]
    ClusterScopeLeavesClients {
        /// `name.namespace`.
        service: String,
        /// The clusters without an endpoint, quoted and joined.
        clusters: String,
        /// The clusters it runs in, quoted and joined.
        runs: String,
        #[label("only the service's own clusters reach it")]
        at: SourceSpan,
    },
}

/// Every region a cluster's nodes can be in: the cluster's own and its nodes' overrides.
pub fn cluster_regions(cluster: &raw::Cluster) -> impl Iterator<Item = &str> {
    cluster.region.iter().map(|r| r.get_ref().as_str()).chain(
        cluster
            .node
            .iter()
            .filter_map(|n| n.get_ref().region.as_ref())
            .map(|r| r.get_ref().as_str()),
    )
}

/// What the rules look up, built once (plans with thousands of services and clusters).
struct Index<'f> {
    clusters: HashMap<&'f str, &'f ClusterFacts<'f>>,
    regions: BTreeSet<&'f str>,
    /// Networks (indices) with an east-west gateway address.
    networks_with_gateway: HashSet<usize>,
    multi_network: bool,
}

impl<'f> Index<'f> {
    fn new(facts: &'f Facts<'f>) -> Self {
        let mut clusters = HashMap::new();
        for c in &facts.clusters {
            clusters.entry(c.name()).or_insert(c);
        }
        let used: HashSet<usize> = facts.clusters.iter().filter_map(|c| c.network).collect();
        Index {
            clusters,
            regions: facts
                .clusters
                .iter()
                .flat_map(|c| cluster_regions(c.raw.get_ref()))
                .collect(),
            networks_with_gateway: facts
                .clusters
                .iter()
                .filter(|c| has_eastwest(c))
                .filter_map(|c| c.network)
                .collect(),
            multi_network: used.len() > 1,
        }
    }
}

fn has_eastwest(c: &ClusterFacts) -> bool {
    c.lb(LbKind::Eastwest).is_some()
        || c.raw.get_ref().lb.as_ref().is_some_and(|lb| {
            lb.get_ref().eastwest.is_some() || lb.get_ref().eastwest_hostname.is_some()
        })
}

/// `name.namespace`, how findings and outputs name a service.
pub fn service_id(s: &raw::Service) -> String {
    format!("{}.{}", s.name.get_ref(), s.namespace.get_ref())
}

/// Runs the `service` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    if facts.plan.service.is_empty() {
        return;
    }
    let index = Index::new(facts);
    let mut seen: HashMap<(&str, &str), &Spanned<raw::Service>> = HashMap::new();
    for spanned in &facts.plan.service {
        let s = spanned.get_ref();
        names_are_labels(s, out);
        let key = (s.name.get_ref().as_str(), s.namespace.get_ref().as_str());
        match seen.get(&key) {
            Some(first) => out.push(ServiceError::Duplicate {
                service: service_id(s),
                first: at(&first.get_ref().name),
                at: at(&s.name),
            }),
            None => {
                seen.insert(key, spanned);
            }
        }
        port_in_range(s, out);
        clusters_exist(s, &index, out);
        failover_is_sound(s, &index, out);
        outlier_is_accepted(s, out);
        reachable_and_redundant(s, &index, out);
        cluster_scope_reaches_every_cluster(s, facts, out);
    }
}

/// A cluster-scoped service is reached only from the clusters it runs in; a client anywhere else
/// gets no endpoint (meshplan cannot know who calls a plan's own service, so every cluster of the
/// plan counts as a possible client).
fn cluster_scope_reaches_every_cluster(s: &raw::Service, facts: &Facts, out: &mut Findings) {
    let Some(scope) = s
        .scope
        .as_ref()
        .filter(|sc| *sc.get_ref() == Scope::Cluster)
    else {
        return;
    };
    let runs: BTreeSet<&str> = s
        .clusters
        .get_ref()
        .iter()
        .map(|c| c.get_ref().as_str())
        .collect();
    let left: Vec<&str> = facts
        .plan
        .cluster
        .iter()
        .map(|c| c.get_ref().name.get_ref().as_str())
        .filter(|name| !runs.contains(name))
        .collect();
    if left.is_empty() || runs.is_empty() {
        return;
    }
    let quoted = |names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(ServiceError::ClusterScopeLeavesClients {
        service: service_id(s),
        clusters: quoted(&mut left.into_iter()),
        runs: quoted(&mut runs.into_iter()),
        at: at(scope),
    });
}

fn names_are_labels(s: &raw::Service, out: &mut Findings) {
    for (key, value) in [("name", &s.name), ("namespace", &s.namespace)] {
        if let Some(problem) = super::names::dns_label_problem(value.get_ref(), 63) {
            out.push(ServiceError::InvalidName {
                key,
                value: value.get_ref().clone(),
                problem,
                at: at(value),
            });
        }
    }
}

fn port_in_range(s: &raw::Service, out: &mut Findings) {
    let port = *s.port.get_ref();
    if !(1..=65535).contains(&port) {
        out.push(ServiceError::PortRange {
            service: service_id(s),
            port,
            at: at(&s.port),
        });
    }
}

fn clusters_exist(s: &raw::Service, index: &Index, out: &mut Findings) {
    if s.clusters.get_ref().is_empty() {
        out.push(ServiceError::NoClusters {
            service: service_id(s),
            at: at(&s.clusters),
        });
    }
    for name in s.clusters.get_ref() {
        if index.clusters.contains_key(name.get_ref().as_str()) {
            continue;
        }
        let help = match suggest::nearest(name.get_ref(), index.clusters.keys().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "name a `[[cluster]]` of the plan".to_owned(),
        };
        out.push(ServiceError::UnknownCluster {
            service: service_id(s),
            cluster: name.get_ref().clone(),
            at: at(name),
            help,
        });
    }
}

/// The regions the service's (known) clusters are in.
fn service_regions<'a>(s: &raw::Service, index: &Index<'a>) -> BTreeSet<&'a str> {
    s.clusters
        .get_ref()
        .iter()
        .filter_map(|name| index.clusters.get(name.get_ref().as_str()))
        .flat_map(|c| cluster_regions(c.raw.get_ref()))
        .collect()
}

fn failover_is_sound(s: &raw::Service, index: &Index, out: &mut Findings) {
    let Some(failover) = &s.failover else {
        return;
    };
    if let Some(scope) = s
        .scope
        .as_ref()
        .filter(|sc| *sc.get_ref() == Scope::Cluster)
    {
        out.push(ServiceError::FailoverClusterScope {
            service: service_id(s),
            scope: at(scope),
            at: at(failover),
        });
        return;
    }
    let own = service_regions(s, index);
    for entry in failover.get_ref() {
        let entry = entry.get_ref();
        let mut known = true;
        for region in [&entry.from, &entry.to] {
            if !index.regions.contains(region.get_ref().as_str()) {
                known = false;
                out.push(unknown_region(s, region, index));
            }
        }
        if entry.from.get_ref() == entry.to.get_ref() {
            out.push(ServiceError::FailoverSameRegion {
                service: service_id(s),
                region: entry.to.get_ref().clone(),
                at: at(&entry.to),
            });
        } else if known && !own.contains(entry.to.get_ref().as_str()) {
            out.push(ServiceError::FailoverIntoNothing {
                service: service_id(s),
                from: entry.from.get_ref().clone(),
                region: entry.to.get_ref().clone(),
                at: at(&entry.to),
            });
        }
    }
}

fn unknown_region(s: &raw::Service, region: &Spanned<String>, index: &Index) -> ServiceError {
    let listed: Vec<&str> = index.regions.iter().copied().collect();
    let help = match suggest::nearest(region.get_ref(), listed.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None if listed.is_empty() => {
            "no cluster of the plan has a region: set `region = \"...\"` on the clusters".to_owned()
        }
        None => format!("regions of the plan: {}", listed.join(", ")),
    };
    ServiceError::UnknownRegion {
        service: service_id(s),
        region: region.get_ref().clone(),
        at: at(region),
        help,
    }
}

fn outlier_is_accepted(s: &raw::Service, out: &mut Findings) {
    let Some(outlier) = &s.outlier else {
        return;
    };
    let o = outlier.get_ref();
    let mut bad = |key, value: String, span, why, help: &str| {
        out.push(ServiceError::InvalidOutlier {
            service: service_id(s),
            key,
            value,
            at: span,
            why,
            help: help.to_owned(),
        });
    };
    if let Some(n) = o.consecutive_5xx.as_ref()
        && !(0..=i64::from(u32::MAX)).contains(n.get_ref())
    {
        bad(
            "consecutive_5xx",
            n.get_ref().to_string(),
            at(n),
            "not a count",
            "`consecutive_5xx` is a count of errors, 0 (off) or more; Istio's default is 5",
        );
    }
    if let Some(p) = o.max_ejection_percent.as_ref()
        && !(0..=100).contains(p.get_ref())
    {
        bad(
            "max_ejection_percent",
            p.get_ref().to_string(),
            at(p),
            "not a percentage",
            "`max_ejection_percent` is between 0 and 100",
        );
    }
    for (key, value) in [
        ("interval", &o.interval),
        ("base_ejection_time", &o.base_ejection_time),
    ] {
        if let Some(v) = value
            && duration_ms(v.get_ref()).is_none_or(|ms| ms < 1)
        {
            bad(
                key,
                format!("{:?}", v.get_ref()),
                at(v),
                "not a duration of at least 1ms",
                "write a whole number with a unit: `500ms`, `10s`, `1m`, `1h` (Istio requires at least 1ms)",
            );
        }
    }
}

/// Milliseconds in a duration written `<digits><ms|s|m|h>`; `None` for anything else.
pub fn duration_ms(text: &str) -> Option<u64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    if digits.is_empty() || digits.len() > 12 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn reachable_and_redundant(s: &raw::Service, index: &Index, out: &mut Findings) {
    if s.scope
        .as_ref()
        .is_some_and(|sc| *sc.get_ref() == Scope::Cluster)
    {
        return;
    }
    let known: Vec<&ClusterFacts> = s
        .clusters
        .get_ref()
        .iter()
        .filter_map(|name| index.clusters.get(name.get_ref().as_str()).copied())
        .collect();
    let networks: BTreeSet<usize> = known.iter().filter_map(|c| c.network).collect();
    if index.multi_network
        && !networks.is_empty()
        && networks
            .iter()
            .all(|n| !index.networks_with_gateway.contains(n))
    {
        let names: BTreeSet<&str> = known
            .iter()
            .map(|c| c.raw.get_ref().network.get_ref().as_str())
            .collect();
        out.push(ServiceError::UnreachableNetwork {
            service: service_id(s),
            networks: names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            at: at(&s.clusters),
        });
    }
    // With an unknown cluster, `unknown_cluster` says what is wrong; one cluster may be a typo.
    if known.len() < s.clusters.get_ref().len() {
        return;
    }
    let distinct: BTreeSet<&str> = known.iter().map(|c| c.name()).collect();
    if let [only] = distinct.into_iter().collect::<Vec<_>>().as_slice() {
        out.push(ServiceError::SingleCluster {
            service: service_id(s),
            cluster: (*only).to_owned(),
            at: at(&s.clusters),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn durations_parse_like_istio_writes_them() {
        assert_eq!(duration_ms("10s"), Some(10_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("1m"), Some(60_000));
        assert_eq!(duration_ms("0s"), Some(0));
        for bad in ["", "s", "10", "1.5s", "-1s", "10 s", "1d", "ms"] {
            assert_eq!(duration_ms(bad), None, "{bad}");
        }
    }
}
