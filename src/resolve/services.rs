//! `[[service]]` → what istiod reads: a DestinationRule per service with failover or outlier
//! settings, and the hosts that stay cluster-local.
//!
//! Both go to every cluster whose istiod reads configuration, that is every primary (a remote's
//! istiod is its primary's). meshplan writes only objects it owns: the DestinationRules live
//! in `istio-system` (Istio's root namespace, so they apply to the host from every namespace,
//! and need no user namespace to exist where the service does not run), and cluster-local
//! hosts go to `meshConfig.serviceSettings` rather than labels on the user's Services. A user's
//! own DestinationRule in the service's namespace takes precedence over ours.
//!
//! Ambient (issue 15) hooks in at [`Service::global`]: in ambient mode a service is reachable
//! from other clusters only when labelled `istio.io/global: "true"`, which is exactly the
//! services with `global == true`; sidecar mode puts the others in `serviceSettings`.

use serde::Serialize;

use crate::model::{self, Failover, Outlier, Plan};
use crate::raw::Scope;

/// A service as istiod sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// `name.namespace`.
    pub id: String,
    /// The DestinationRule's and serviceSettings' host, `name.namespace.svc.cluster.local`.
    pub host: String,
    /// Reachable from every cluster (`scope = "mesh"`); `false`: only from its own cluster.
    pub global: bool,
    /// Locality failover entries.
    pub failover: Vec<Failover>,
    /// Outlier detection (always present with failover).
    pub outlier: Option<Outlier>,
}

impl Service {
    /// Whether the service needs a DestinationRule.
    pub fn needs_destination_rule(&self) -> bool {
        !self.failover.is_empty() || self.outlier.is_some()
    }
}

/// Kubernetes' default cluster DNS domain, which Istio's service hosts use.
const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// The plan's services, in plan order.
pub fn services(plan: &Plan) -> Vec<Service> {
    plan.services.iter().map(service).collect()
}

fn service(s: &model::Service) -> Service {
    Service {
        id: s.id(),
        host: format!("{}.{}.{CLUSTER_DOMAIN}", s.name, s.namespace),
        global: s.scope == Scope::Mesh,
        failover: s.failover.clone(),
        outlier: s.outlier.clone(),
    }
}

/// What one config cluster (a primary) gets.
#[derive(Debug, Default, Serialize)]
pub struct ConfigFor {
    /// Services with a DestinationRule, in plan order.
    pub destination_rules: Vec<Service>,
    /// Hosts of cluster-local services (sidecar mode: `meshConfig.serviceSettings`).
    pub cluster_local_hosts: Vec<String>,
}

/// The service configuration for a primary; empty for a remote.
pub fn config_for(services: &[Service], is_primary: bool) -> ConfigFor {
    if !is_primary {
        return ConfigFor::default();
    }
    ConfigFor {
        destination_rules: services
            .iter()
            .filter(|s| s.needs_destination_rule())
            .cloned()
            .collect(),
        cluster_local_hosts: services
            .iter()
            .filter(|s| !s.global)
            .map(|s| s.host.clone())
            .collect(),
    }
}
