//! `meshplan explain`: the planning tables people keep by hand next to a mesh (clusters,
//! networks, addresses, MetalLB pools) and a Mermaid diagram of the topology, derived from the
//! resolved mesh. The tables are computed here; `templates/explain.*.j2` lay them out.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::Plan;
use crate::resolve::Mesh;
use crate::sweep::Interval;

/// What explain shows.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The plan file name.
    pub plan_file: String,
    /// Mesh ID.
    pub mesh_id: String,
    /// Istio version and installer.
    pub istio: String,
    /// The tables, in order.
    pub tables: Vec<Table>,
    /// Mermaid `flowchart` lines (without the code fence).
    pub mermaid: Vec<String>,
    /// The install procedure, step by step (what `install.sh` runs and prints).
    pub install_steps: Vec<crate::resolve::procedure::Step>,
    /// What a fresh shell needs before the first step.
    pub install_needs: crate::resolve::procedure::Needs,
}

/// A titled table; `text_rows` are the same cells padded for plain text.
#[derive(Debug, Serialize)]
pub struct Table {
    /// Title.
    pub title: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
    /// Header and rows as padded plain-text lines.
    pub text_lines: Vec<String>,
}

impl Table {
    fn new(title: &str, headers: &[&str], rows: Vec<Vec<String>>) -> Table {
        let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([headers[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let mut text_lines = vec![line(&headers), line(&rule)];
        text_lines.extend(rows.iter().map(|r| line(r)));
        Table {
            title: title.to_owned(),
            headers,
            rows,
            text_lines,
        }
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Explains a resolved mesh.
pub fn explain(plan: &Plan, mesh: &Mesh) -> Explanation {
    Explanation {
        plan_file: mesh.plan_file.clone(),
        mesh_id: mesh.id.clone(),
        istio: format!(
            "Istio {} ({}, {} data plane{})",
            mesh.istio.tag,
            mesh.istio.installer,
            if mesh.istio.ambient.is_some() {
                "ambient"
            } else {
                "sidecar"
            },
            match &mesh.istio.control_plane.revision {
                Some(revision) =>
                    format!(", revision {revision}: {}", mesh.istio.control_plane.istiod),
                None => String::new(),
            }
        ),
        tables: [
            Some(clusters(plan)),
            Some(networks(plan)),
            Some(addresses(plan, mesh)),
            Some(pools(plan)),
            (!plan.services.is_empty()).then(|| services(plan)),
            verify_expectations(mesh),
            Some(artifacts(mesh)),
        ]
        .into_iter()
        .flatten()
        .collect(),
        mermaid: mermaid(plan, mesh),
        install_steps: mesh.procedure.steps.clone(),
        install_needs: mesh.procedure.needs.clone(),
    }
}

/// What the install fetches, where from, and where its publisher serves it: what a mirror
/// needs (`images.txt` and `charts.txt` list the same).
fn artifacts(mesh: &Mesh) -> Table {
    let a = &mesh.artifacts;
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.extend(a.images.iter().map(|i| {
        vec![
            format!("image ({})", i.used_by),
            i.image.clone(),
            i.upstream.clone(),
        ]
    }));
    rows.extend(a.charts.iter().map(|c| {
        vec![
            format!("chart {} {}", c.name, c.version),
            c.repository.clone(),
            c.upstream.clone(),
        ]
    }));
    rows.extend(
        a.downloads
            .iter()
            .map(|d| vec![d.what.clone(), d.location.clone(), d.upstream.clone()]),
    );
    Table::new(
        "Artifacts (images.txt, charts.txt)",
        &["artifact", "fetched from", "upstream"],
        rows,
    )
}

fn clusters(plan: &Plan) -> Table {
    let rows = plan
        .clusters
        .iter()
        .map(|c| {
            let locality = [&c.locality.region, &c.locality.zone, &c.locality.subzone]
                .iter()
                .filter_map(|l| l.as_deref())
                .collect::<Vec<_>>()
                .join("/");
            vec![
                c.name.clone(),
                crate::resolve::role_name(c.role).to_owned(),
                or_dash(c.primary.as_ref()),
                c.network.clone(),
                c.pod_cidr.to_string(),
                c.service_cidr.to_string(),
                if locality.is_empty() {
                    "-".to_owned()
                } else {
                    locality
                },
                c.nodes.len().to_string(),
            ]
        })
        .collect();
    Table::new(
        "Clusters",
        &[
            "cluster", "role", "primary", "network", "pods", "services", "locality", "nodes",
        ],
        rows,
    )
}

fn networks(plan: &Plan) -> Table {
    let rows = plan
        .networks
        .iter()
        .map(|n| {
            let members: Vec<_> = plan.clusters.iter().filter(|c| c.network == n.id).collect();
            let gateways: Vec<String> = members
                .iter()
                .filter_map(|c| c.lb.eastwest.map(|ip| format!("{ip} ({})", c.name)))
                .collect();
            vec![
                n.id.clone(),
                crate::resolve::routing_name(n.routing).to_owned(),
                or_dash(n.node_subnet),
                members
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if gateways.is_empty() {
                    "-".to_owned()
                } else {
                    gateways.join(", ")
                },
            ]
        })
        .collect();
    Table::new(
        "Networks",
        &[
            "network",
            "routing",
            "node subnet",
            "clusters",
            "east-west gateways",
        ],
        rows,
    )
}

fn addresses(plan: &Plan, mesh: &Mesh) -> Table {
    let rows = plan
        .clusters
        .iter()
        .zip(&mesh.clusters)
        .map(|(c, b)| {
            vec![
                c.name.clone(),
                or_dash(c.lb.istiod),
                or_dash(c.lb.eastwest),
                or_dash(c.lb.ingress),
                or_dash(b.remote_pilot_address),
            ]
        })
        .collect();
    Table::new(
        "Addresses",
        &[
            "cluster",
            "istiod",
            "east-west",
            "ingress",
            "reaches istiod at",
        ],
        rows,
    )
}

fn pools(plan: &Plan) -> Table {
    let rows = plan
        .clusters
        .iter()
        .filter_map(|c| {
            let m = c.metallb.as_ref()?;
            let planned: Vec<IpAddr> = [c.lb.istiod, c.lb.eastwest, c.lb.ingress]
                .into_iter()
                .flatten()
                .collect();
            let in_pool = planned
                .iter()
                .filter(|ip| m.addresses.iter().any(|e| entry_contains(e, **ip)))
                .count() as u128;
            Some(vec![
                c.name.clone(),
                m.pool.clone(),
                crate::resolve::metallb_mode_name(m.mode).to_owned(),
                m.addresses.join(", "),
                m.size.to_string(),
                planned
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                m.size.saturating_sub(in_pool).to_string(),
            ])
        })
        .collect();
    Table::new(
        "MetalLB pools",
        &[
            "cluster",
            "pool",
            "mode",
            "addresses",
            "size",
            "planned",
            "free",
        ],
        rows,
    )
}

/// Where each service runs, who reaches it and where it fails over (only for plans with
/// services, so plans without keep their tables).
fn services(plan: &Plan) -> Table {
    let rows = plan
        .services
        .iter()
        .map(|s| {
            let failover: Vec<String> = s
                .failover
                .iter()
                .map(|f| format!("{}→{}", f.from, f.to))
                .collect();
            vec![
                s.id(),
                s.port.to_string(),
                s.clusters.join(", "),
                match s.scope {
                    crate::raw::Scope::Mesh => "mesh",
                    crate::raw::Scope::Cluster => "cluster",
                }
                .to_owned(),
                if failover.is_empty() {
                    "-".to_owned()
                } else {
                    failover.join(", ")
                },
                or_dash(s.outlier.as_ref().map(|o| {
                    format!(
                        "{} × 5xx / {}, eject {} (max {}%)",
                        o.consecutive_5xx, o.interval, o.base_ejection_time, o.max_ejection_percent
                    )
                })),
            ]
        })
        .collect();
    Table::new(
        "Services",
        &[
            "service", "port", "clusters", "scope", "failover", "outlier",
        ],
        rows,
    )
}

/// How many other clusters the verify table names before "and N more".
const WAITS_SHOWN: usize = 3;

/// What each cluster's verify scripts expect: the first tier of the traffic model
/// (`meshplan explain --traffic`), only for plans with a verify script.
fn verify_expectations(mesh: &Mesh) -> Option<Table> {
    let mut rows = Vec::new();
    for c in &mesh.clusters {
        let Some(samples) = &c.samples else {
            continue;
        };
        let checks = [
            ("verify.sh", "helloworld", &samples.verify),
            ("verify-bookinfo.sh", "reviews", &samples.verify_bookinfo),
        ];
        for (script, service, expect) in checks {
            let Some(expect) = expect else {
                continue;
            };
            // A few clusters by name; the scripts list them all.
            let mut waits: Vec<String> = expect
                .waits
                .iter()
                .take(WAITS_SHOWN)
                .map(|w| format!("{} ({})", w.cluster, w.deployments.join(", ")))
                .collect();
            if expect.waits.len() > WAITS_SHOWN {
                waits.push(format!(
                    "and {} more clusters",
                    expect.waits.len() - WAITS_SHOWN
                ));
            }
            rows.push(vec![
                c.name.clone(),
                script.to_owned(),
                format!("{service} {}", expect.versions.join(", ")),
                if expect.not_expected.is_empty() {
                    "-".to_owned()
                } else {
                    expect.not_expected.join(", ")
                },
                if waits.is_empty() {
                    "-".to_owned()
                } else {
                    waits.join("; ")
                },
            ]);
        }
    }
    (!rows.is_empty()).then(|| {
        Table::new(
            "Verify expectations (first tier of `meshplan explain --traffic`)",
            &[
                "cluster",
                "script",
                "expects",
                "must not answer",
                "also waits for",
            ],
            rows,
        )
    })
}

fn entry_contains(entry: &str, ip: IpAddr) -> bool {
    let interval = match entry.split_once('-') {
        Some((a, b)) => a
            .trim()
            .parse()
            .ok()
            .zip(b.trim().parse().ok())
            .and_then(|(a, b)| Interval::of_range(a, b)),
        None => entry
            .parse::<ipnet::IpNet>()
            .ok()
            .map(|n| Interval::of_net(&n)),
    };
    interval.is_some_and(|i| i.contains(&Interval::of_addr(ip)))
}

/// Clusters grouped by network; primary → remote edges; east-west gateways with their address.
fn mermaid(plan: &Plan, mesh: &Mesh) -> Vec<String> {
    let id = |name: &str| format!("c_{}", name.replace(['-', '.'], "_"));
    let mut lines = vec!["flowchart LR".to_owned()];
    for (n, network) in plan.networks.iter().enumerate() {
        lines.push(format!("  subgraph net{n}[\"network {}\"]", network.id));
        for c in plan.clusters.iter().filter(|c| c.network == network.id) {
            lines.push(format!(
                "    {}[\"{} ({})\"]",
                id(&c.name),
                c.name,
                crate::resolve::role_name(c.role)
            ));
            if let Some(ip) = c.lb.eastwest {
                lines.push(format!("    {}_ew{{{{\"east-west {ip}\"}}}}", id(&c.name)));
                lines.push(format!("    {} --- {}_ew", id(&c.name), id(&c.name)));
            }
        }
        lines.push("  end".to_owned());
    }
    for b in &mesh.clusters {
        if let (Some(primary), Some(addr)) = (&b.primary, b.remote_pilot_address) {
            lines.push(format!(
                "  {} -->|\"{} {addr}\"| {}",
                id(primary),
                mesh.istio.control_plane.istiod,
                id(&b.name)
            ));
        }
    }
    lines
}
