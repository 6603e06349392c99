//! What `[mesh] dataplane = "ambient"` needs, as Istio's ambient multicluster guides state it
//! (istio.io/latest/docs/ambient/install/multicluster): primaries only, on separate networks,
//! on a release that has ambient multicluster (alpha in 1.27, beta from 1.29), with east-west
//! gateways a Gateway API gateway can pin. That every network has an east-west gateway is
//! `network::no_eastwest`, as in sidecar mode. The codes belong to the families they are about.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, LbKind};
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::model::{Version, lb_via};
use crate::raw::{Dataplane, LbVia, Role};
use crate::releases::{self, Maturity};

/// Findings about an ambient mesh.
#[derive(Debug, Error, Diagnostic)]
pub enum AmbientError {
    /// A remote in an ambient mesh.
    #[error("remote cluster `{cluster}` cannot join an ambient mesh")]
    #[diagnostic(
        code(meshplan::role::ambient_remote),
        help(
            "ambient multicluster supports multiple primaries only (Istio: \"configurations with one or more remote clusters will not work correctly\"); make `{cluster}` a primary, or keep the mesh on `dataplane = \"sidecar\"`"
        )
    )]
    Remote {
        /// The cluster.
        cluster: String,
        #[label("a remote")]
        at: SourceSpan,
        #[label("ambient set here")]
        dataplane_at: SourceSpan,
    },

    /// A release without ambient multicluster.
    #[error("Istio {version} has no ambient multicluster")]
    #[diagnostic(
        code(meshplan::version::ambient_unsupported),
        help(
            "ambient multicluster arrived (alpha) in Istio 1.27 and is beta from 1.29: target 1.29 or later, or keep `dataplane = \"sidecar\"`"
        )
    )]
    Unsupported {
        /// The targeted version.
        version: String,
        #[label("before 1.27")]
        at: SourceSpan,
    },

    /// A release where ambient multicluster is alpha.
    #[error("ambient multicluster is alpha in Istio {version}")]
    #[diagnostic(
        code(meshplan::version::ambient_alpha),
        severity(Warning),
        help(
            "Istio 1.27 and 1.28 ship ambient multicluster as alpha (not for production); it is beta from 1.29"
        )
    )]
    Alpha {
        /// The targeted version.
        version: String,
        #[label("alpha here")]
        at: SourceSpan,
    },

    /// Two ambient clusters on one network.
    #[error("ambient clusters `{first}` and `{second}` share network `{network}`")]
    #[diagnostic(
        code(meshplan::network::ambient_shared_network),
        severity(Warning),
        help(
            "Istio supports ambient multicluster on separate networks only (\"multicluster single-network configurations are untested, and may be broken\"); give each cluster its own network and east-west gateway"
        )
    )]
    SharedNetwork {
        /// The network.
        network: String,
        /// The first cluster.
        first: String,
        /// The second cluster.
        second: String,
        #[label("`{second}` is on `{network}` too")]
        at: SourceSpan,
    },

    /// Failover or outlier detection on a service of an ambient mesh: only a waypoint does them.
    #[error(
        "service `{service}` asks for {what}, which ztunnel does not do: ambient needs a waypoint for it"
    )]
    #[diagnostic(
        code(meshplan::service::ambient_needs_waypoint),
        help(
            "in ambient mode a DestinationRule's failover and outlier detection are applied only by a waypoint (Istio's ambient multicluster failover guide: a waypoint of the same name in each cluster, its Service labelled istio.io/global=true, the service labelled istio.io/use-waypoint); meshplan does not deploy waypoints yet: remove `{key}` (ztunnel then spreads requests over every endpoint), or keep the mesh on `dataplane = \"sidecar\"`"
        )
    )]
    NeedsWaypoint {
        /// `name.namespace`.
        service: String,
        /// `locality failover` or `outlier detection`.
        what: &'static str,
        /// `failover` or `[service.outlier]`.
        key: &'static str,
        #[label("needs a waypoint")]
        at: SourceSpan,
    },

    /// An ambient east-west gateway served by externalIPs or a node port.
    #[error("the ambient east-west gateway of `{cluster}` cannot use `via = \"{via}\"`")]
    #[diagnostic(
        code(meshplan::lb::ambient_via),
        help(
            "istiod deploys the ambient east-west gateway from a Gateway API Gateway, whose address is pinned through `spec.addresses` and its Service annotations: use `via = \"metallb\"` or `\"cloud\"`"
        )
    )]
    Via {
        /// The cluster.
        cluster: String,
        /// The delivery.
        via: &'static str,
        #[label("not for a Gateway API gateway")]
        at: SourceSpan,
    },
}

/// Runs the ambient rules when the plan asks for ambient.
pub fn check(facts: &Facts, out: &mut Findings) {
    let mesh = facts.plan.mesh.get_ref();
    let Some(dataplane) = mesh.dataplane.as_ref() else {
        return;
    };
    if *dataplane.get_ref() != Dataplane::Ambient {
        return;
    }
    if let Some(version) = &facts.istio_version {
        version_has_ambient_multicluster(&mesh.istio.get_ref().version, version, out);
    }
    for cluster in &facts.clusters {
        primaries_only(cluster, dataplane, out);
        gateway_delivery(cluster, out);
    }
    one_cluster_per_network(facts, out);
    for spanned in &facts.plan.service {
        let s = spanned.get_ref();
        let service = || format!("{}.{}", s.name.get_ref(), s.namespace.get_ref());
        if let Some(failover) = &s.failover {
            out.push(AmbientError::NeedsWaypoint {
                service: service(),
                what: "locality failover",
                key: "failover",
                at: at(failover),
            });
        } else if let Some(outlier) = &s.outlier {
            out.push(AmbientError::NeedsWaypoint {
                service: service(),
                what: "outlier detection",
                key: "[service.outlier]",
                at: at(outlier),
            });
        }
    }
}

fn version_has_ambient_multicluster(
    written: &Spanned<String>,
    version: &Version,
    out: &mut Findings,
) {
    // The release table's maturity; a release newer than the table is taken as beta.
    match releases::istio(version).map(|r| r.ambient_multicluster) {
        Some(None) => out.push(AmbientError::Unsupported {
            version: version.to_string(),
            at: at(written),
        }),
        Some(Some(maturity)) if maturity <= Maturity::Alpha => out.push(AmbientError::Alpha {
            version: version.to_string(),
            at: at(written),
        }),
        _ => {}
    }
}

fn primaries_only(cluster: &ClusterFacts, dataplane: &Spanned<Dataplane>, out: &mut Findings) {
    let role = &cluster.raw.get_ref().role;
    if *role.get_ref() == Role::Remote {
        out.push(AmbientError::Remote {
            cluster: cluster.name().to_owned(),
            at: at(role),
            dataplane_at: at(dataplane),
        });
    }
}

fn gateway_delivery(cluster: &ClusterFacts, out: &mut Findings) {
    let via = lb_via(cluster.raw.get_ref());
    let name = match via {
        LbVia::ExternalIps => "external_ips",
        LbVia::NodePort => "node_port",
        LbVia::Metallb | LbVia::Cloud => return,
    };
    if let Some(eastwest) = cluster.lb(LbKind::Eastwest) {
        out.push(AmbientError::Via {
            cluster: cluster.name().to_owned(),
            via: name,
            at: at(&eastwest.addr),
        });
    }
}

fn one_cluster_per_network(facts: &Facts, out: &mut Findings) {
    for (index, network) in facts.networks.iter().enumerate() {
        let members: Vec<&ClusterFacts> = facts.clusters_on(index).collect();
        if let [first, second, ..] = members.as_slice() {
            out.push(AmbientError::SharedNetwork {
                network: network.raw.get_ref().id.get_ref().clone(),
                first: first.name().to_owned(),
                second: second.name().to_owned(),
                at: at(&second.raw.get_ref().network),
            });
        }
    }
}
