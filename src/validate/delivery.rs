//! Rules of the `lb` family about delivery: how each planned address reaches its Service
//! (`[cluster.lb] via`: MetalLB, a cloud load balancer, externalIPs or a NodePort), and the
//! east-west gateway's DNS name. Each kind has its own ways to plan an address nothing serves.

use std::net::IpAddr;

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, LbKind};
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::model::{DEFAULT_EASTWEST_NODE_PORT, lb_via};
use crate::raw::{self, Installer, LbVia, Role};

/// Kubernetes' default `--service-node-port-range`.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// `meshplan::lb::*` about how addresses are delivered.
#[derive(Debug, Error, Diagnostic)]
pub enum DeliveryError {
    /// `via = "metallb"` on a cluster without pools.
    #[error("`{cluster}` has lb.via = \"metallb\" but no [cluster.metallb] pool")]
    #[diagnostic(
        code(meshplan::lb::via_metallb_without_pool),
        help(
            "add [cluster.metallb] addresses holding the planned addresses, or choose another `via` (cloud, external_ips, node_port)"
        )
    )]
    MetallbWithoutPool {
        /// The cluster.
        cluster: String,
        #[label("MetalLB needs a pool to hand out")]
        at: SourceSpan,
    },

    /// Both an address and a hostname for the east-west gateway.
    #[error("`{cluster}` plans the east-west gateway twice: lb.eastwest and lb.eastwest_hostname")]
    #[diagnostic(
        code(meshplan::lb::hostname_with_address),
        help(
            "keep lb.eastwest for a load balancer given an IP, or lb.eastwest_hostname for one known by its DNS name (e.g. an AWS NLB), not both"
        )
    )]
    HostnameWithAddress {
        /// The cluster.
        cluster: String,
        #[label("an address")]
        address_at: SourceSpan,
        #[label("and a hostname")]
        at: SourceSpan,
    },

    /// A hostname delivered by something other than a cloud load balancer.
    #[error("lb.eastwest_hostname of `{cluster}` needs lb.via = \"cloud\"")]
    #[diagnostic(
        code(meshplan::lb::hostname_not_cloud),
        help(
            "only a cloud load balancer is known by a DNS name; MetalLB, externalIPs and node ports take an IP: plan lb.eastwest instead, or set `via = \"cloud\"`"
        )
    )]
    HostnameNotCloud {
        /// The cluster.
        cluster: String,
        #[label("a DNS name")]
        at: SourceSpan,
    },

    /// A hostname that is no DNS name.
    #[error("lb.eastwest_hostname `{value}` of `{cluster}` is not a DNS name: {problem}")]
    #[diagnostic(
        code(meshplan::lb::invalid_hostname),
        help(
            "write the load balancer's DNS name as the cloud shows it, e.g. `a1b2c3.elb.us-east-1.amazonaws.com` (lowercase, no scheme or port)"
        )
    )]
    InvalidHostname {
        /// The cluster.
        cluster: String,
        /// As written.
        value: String,
        /// What is wrong.
        problem: &'static str,
        #[label("not a DNS name")]
        at: SourceSpan,
    },

    /// Remotes would reach istiod through a hostname.
    #[error("the remotes of `{cluster}` would reach istiod through a hostname")]
    #[diagnostic(
        code(meshplan::lb::hostname_pilot),
        help(
            "a remote's remotePilotAddress must be an IP here: plan `lb.istiod` (an IP) on `{cluster}`, or give its east-west gateway an IP (lb.eastwest)"
        )
    )]
    HostnamePilot {
        /// The primary.
        cluster: String,
        #[label("remotes reach istiod here, through the east-west gateway")]
        at: SourceSpan,
    },

    /// A node port outside the default node-port range.
    #[error(
        "lb.eastwest_node_port {port} of `{cluster}` is outside the node-port range 30000-32767"
    )]
    #[diagnostic(
        code(meshplan::lb::node_port_range),
        help(
            "the API server refuses a node port outside --service-node-port-range (default 30000-32767): pick one inside it, e.g. {default}"
        )
    )]
    NodePortRange {
        /// The cluster.
        cluster: String,
        /// The port.
        port: u16,
        /// The default port.
        default: u16,
        #[label("outside 30000-32767")]
        at: SourceSpan,
    },

    /// A NodePort gateway through which remotes would reach istiod.
    #[error("the remotes of `{cluster}` cannot reach istiod through a NodePort east-west gateway")]
    #[diagnostic(
        code(meshplan::lb::node_port_istiod),
        help(
            "remotes call istiod on ports 15012 and 15017 of remotePilotAddress, and a NodePort moves them; plan `lb.istiod` on `{cluster}` with another `via`, or serve the east-west gateway by MetalLB, a cloud load balancer or externalIPs"
        )
    )]
    NodePortIstiod {
        /// The primary.
        cluster: String,
        #[label("via = \"node_port\"")]
        at: SourceSpan,
    },

    /// `via = "node_port"` with addresses other than the east-west gateway.
    #[error("lb.{key} of `{cluster}` cannot be served by a node port")]
    #[diagnostic(
        code(meshplan::lb::node_port_only_eastwest),
        help(
            "`via = \"node_port\"` serves only the east-west gateway (meshNetworks carries its node port); remove lb.{key} or choose another `via` for the cluster"
        )
    )]
    NodePortOnlyEastwest {
        /// The cluster.
        cluster: String,
        /// The key.
        key: &'static str,
        #[label("only lb.eastwest can use a node port")]
        at: SourceSpan,
    },

    /// A NodePort gateway with the Helm installer.
    #[error("a NodePort east-west gateway on `{cluster}` needs installer = \"istioctl\"")]
    #[diagnostic(
        code(meshplan::lb::node_port_helm),
        help(
            "the istio/gateway chart's network-gateway ports take no node port, so the port could not be pinned; install with istioctl, or serve the gateway by MetalLB, a cloud load balancer or externalIPs"
        )
    )]
    NodePortHelm {
        /// The cluster.
        cluster: String,
        #[label("via = \"node_port\"")]
        at: SourceSpan,
    },

    /// A NodePort gateway address that is none of the cluster's nodes.
    #[error("lb.eastwest {addr} of `{cluster}` is none of its nodes' addresses")]
    #[diagnostic(
        code(meshplan::lb::node_port_address),
        help("a NodePort is reached on a node's own address: use one of {nodes}")
    )]
    NodePortAddress {
        /// The cluster.
        cluster: String,
        /// The address.
        addr: IpAddr,
        /// The node addresses.
        nodes: String,
        #[label("not a node of `{cluster}`")]
        at: SourceSpan,
    },

    /// An external IP off the network's node subnet.
    #[error("lb.{key} {addr} of `{cluster}` is outside node subnet {subnet} of its network")]
    #[diagnostic(
        code(meshplan::lb::external_ip_off_subnet),
        help(
            "kube-proxy answers an external IP only on the nodes the network routes it to; pick an address on {subnet} (a VIP that moves between nodes, or a node's own)"
        )
    )]
    ExternalIpOffSubnet {
        /// The cluster.
        cluster: String,
        /// The key.
        key: &'static str,
        /// The address.
        addr: IpAddr,
        /// The node subnet.
        subnet: String,
        #[label("off the node subnet")]
        at: SourceSpan,
        #[label("the network's nodes")]
        subnet_at: SourceSpan,
    },

    /// An annotation key Kubernetes refuses.
    #[error(
        "lb.annotations key `{key}` of `{cluster}` is not a Kubernetes annotation key: {problem}"
    )]
    #[diagnostic(
        code(meshplan::lb::annotation_key),
        help(
            "an annotation key is an optional DNS prefix and a name, e.g. `service.beta.kubernetes.io/aws-load-balancer-type`; the API server refuses others"
        )
    )]
    AnnotationKey {
        /// The cluster.
        cluster: String,
        /// The key.
        key: String,
        /// What is wrong.
        problem: &'static str,
        #[label("not a valid key")]
        at: SourceSpan,
    },

    /// Annotations that no Service will carry.
    #[error("lb.annotations of `{cluster}` are ignored with via = \"{via}\"")]
    #[diagnostic(
        code(meshplan::lb::annotations_ignored),
        severity(Warning),
        help(
            "lb.annotations go on cloud load balancers only (`via = \"cloud\"`); remove them or change `via`"
        )
    )]
    AnnotationsIgnored {
        /// The cluster.
        cluster: String,
        /// The delivery.
        via: &'static str,
        #[label("not applied")]
        at: SourceSpan,
    },

    /// A LoadBalancer address on a platform where nothing assigns one.
    #[error("nothing on platform {platform} assigns `{cluster}`'s load-balancer address {address}")]
    #[diagnostic(
        code(meshplan::lb::no_load_balancer),
        severity(Warning),
        help(
            "without [cluster.metallb], `via` defaults to \"cloud\": a LoadBalancer Service, which stays <pending> where no load-balancer controller runs ({platform} has none of its own), and install.sh waits for {address} until MESHPLAN_WAIT_TIMEOUT. Choose how the address reaches the cluster: `via = \"metallb\"` with a [cluster.metallb] pool holding it; `via = \"external_ips\"` if the network routes it to a node (a VIP); `via = \"node_port\"` (the east-west gateway only); or write `via = \"cloud\"` if a controller does serve this cluster (a cloud provider, cloud-provider-kind, kube-vip)"
        )
    )]
    NoLoadBalancer {
        /// The cluster.
        cluster: String,
        /// Its platform.
        platform: &'static str,
        /// The first address planned.
        address: String,
        #[label("nothing assigns this address")]
        at: SourceSpan,
        #[label("no load-balancer controller of its own")]
        platform_at: SourceSpan,
    },
}

/// Runs the delivery rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    for cluster in &facts.clusters {
        let Some(lb) = cluster.raw.get_ref().lb.as_ref().map(Spanned::get_ref) else {
            continue;
        };
        metallb_has_pool(cluster, lb, out);
        hostname(facts, cluster, lb, out);
        node_port(facts, cluster, lb, out);
        external_ips_on_subnet(facts, cluster, out);
        annotations_only_for_cloud(cluster, lb, out);
        annotation_keys_are_valid(cluster, lb, out);
        something_assigns_the_address(cluster, lb, out);
    }
}

/// Platforms whose clusters run no load-balancer controller unless someone adds one.
fn without_load_balancer(platform: raw::Platform) -> Option<&'static str> {
    match platform {
        raw::Platform::Kubeadm => Some("kubeadm"),
        raw::Platform::Kind => Some("kind"),
        raw::Platform::Icp => Some("icp"),
        raw::Platform::Generic | raw::Platform::Gke => None,
    }
}

/// `via` left to its default of "cloud" on a platform that serves no LoadBalancer: nothing
/// would ever assign the address. A `via = "cloud"` written out says a controller does.
fn something_assigns_the_address(cluster: &ClusterFacts, lb: &raw::Lb, out: &mut Findings) {
    let raw_cluster = cluster.raw.get_ref();
    let Some(platform_at) = &raw_cluster.platform else {
        return;
    };
    let Some(platform) = without_load_balancer(*platform_at.get_ref()) else {
        return;
    };
    if lb.via.is_some() || via(cluster) != LbVia::Cloud {
        return;
    }
    let first = cluster
        .lb
        .first()
        .map(|a| (a.addr.get_ref().to_string(), at(&a.addr)))
        .or_else(|| {
            lb.eastwest_hostname
                .as_ref()
                .map(|h| (h.get_ref().clone(), at(h)))
        });
    if let Some((address, address_at)) = first {
        out.push(DeliveryError::NoLoadBalancer {
            cluster: cluster.name().to_owned(),
            platform,
            address,
            at: address_at,
            platform_at: at(platform_at),
        });
    }
}

fn via(cluster: &ClusterFacts) -> LbVia {
    lb_via(cluster.raw.get_ref())
}

fn via_name(via: LbVia) -> &'static str {
    match via {
        LbVia::Metallb => "metallb",
        LbVia::Cloud => "cloud",
        LbVia::ExternalIps => "external_ips",
        LbVia::NodePort => "node_port",
    }
}

/// Where to point at `via`: the key if written, else the `[cluster.lb]` table's name.
fn via_at(cluster: &ClusterFacts, lb: &raw::Lb) -> SourceSpan {
    lb.via
        .as_ref()
        .map_or_else(|| at(&cluster.raw.get_ref().name), at)
}

fn metallb_has_pool(cluster: &ClusterFacts, lb: &raw::Lb, out: &mut Findings) {
    if via(cluster) == LbVia::Metallb && cluster.raw.get_ref().metallb.is_none() {
        out.push(DeliveryError::MetallbWithoutPool {
            cluster: cluster.name().to_owned(),
            at: via_at(cluster, lb),
        });
    }
}

/// Whether remotes reach this primary's istiod through its east-west gateway.
fn remotes_use_eastwest(facts: &Facts, cluster: &ClusterFacts, lb: &raw::Lb) -> bool {
    *cluster.raw.get_ref().role.get_ref() == Role::Primary
        && lb.istiod.is_none()
        && facts.clusters.iter().any(|c| {
            *c.raw.get_ref().role.get_ref() == Role::Remote
                && crate::model::primary_name(facts, c).as_deref() == Some(cluster.name())
        })
}

fn hostname(facts: &Facts, cluster: &ClusterFacts, lb: &raw::Lb, out: &mut Findings) {
    let Some(host) = &lb.eastwest_hostname else {
        return;
    };
    let name = cluster.name().to_owned();
    if let Some(address) = &lb.eastwest {
        out.push(DeliveryError::HostnameWithAddress {
            cluster: name.clone(),
            address_at: at(address),
            at: at(host),
        });
    }
    if via(cluster) != LbVia::Cloud {
        out.push(DeliveryError::HostnameNotCloud {
            cluster: name.clone(),
            at: at(host),
        });
    }
    if let Some(problem) = super::names::dns_subdomain_problem(host.get_ref()) {
        out.push(DeliveryError::InvalidHostname {
            cluster: name.clone(),
            value: host.get_ref().clone(),
            problem,
            at: at(host),
        });
    }
    if lb.eastwest.is_none() && remotes_use_eastwest(facts, cluster, lb) {
        out.push(DeliveryError::HostnamePilot {
            cluster: name,
            at: at(host),
        });
    }
}

fn node_port(facts: &Facts, cluster: &ClusterFacts, lb: &raw::Lb, out: &mut Findings) {
    if let Some(port) = &lb.eastwest_node_port
        && !NODE_PORTS.contains(port.get_ref())
    {
        out.push(DeliveryError::NodePortRange {
            cluster: cluster.name().to_owned(),
            port: *port.get_ref(),
            default: DEFAULT_EASTWEST_NODE_PORT,
            at: at(port),
        });
    }
    if via(cluster) != LbVia::NodePort {
        return;
    }
    let name = cluster.name().to_owned();
    for kind in [LbKind::Istiod, LbKind::Ingress] {
        if let Some(planned) = cluster.lb(kind) {
            out.push(DeliveryError::NodePortOnlyEastwest {
                cluster: name.clone(),
                key: kind.key(),
                at: at(&planned.addr),
            });
        }
    }
    if remotes_use_eastwest(facts, cluster, lb) {
        out.push(DeliveryError::NodePortIstiod {
            cluster: name.clone(),
            at: via_at(cluster, lb),
        });
    }
    let helm = facts.plan.mesh.get_ref().istio.get_ref().installer.as_ref();
    if helm.is_some_and(|i| *i.get_ref() == Installer::Helm) {
        out.push(DeliveryError::NodePortHelm {
            cluster: name.clone(),
            at: via_at(cluster, lb),
        });
    }
    node_port_on_a_node(cluster, out);
}

fn node_port_on_a_node(cluster: &ClusterFacts, out: &mut Findings) {
    let Some(eastwest) = cluster.lb(LbKind::Eastwest) else {
        return;
    };
    let nodes: Vec<IpAddr> = cluster
        .nodes
        .iter()
        .filter_map(|n| n.ip.as_ref().map(|ip| *ip.get_ref()))
        .collect();
    if nodes.is_empty() || nodes.contains(eastwest.addr.get_ref()) {
        return;
    }
    out.push(DeliveryError::NodePortAddress {
        cluster: cluster.name().to_owned(),
        addr: *eastwest.addr.get_ref(),
        nodes: nodes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        at: at(&eastwest.addr),
    });
}

fn external_ips_on_subnet(facts: &Facts, cluster: &ClusterFacts, out: &mut Findings) {
    if via(cluster) != LbVia::ExternalIps {
        return;
    }
    let Some(subnet) = cluster
        .network
        .and_then(|i| facts.networks[i].node_subnet.as_ref())
    else {
        return;
    };
    for planned in &cluster.lb {
        if !subnet.get_ref().contains(planned.addr.get_ref()) {
            out.push(DeliveryError::ExternalIpOffSubnet {
                cluster: cluster.name().to_owned(),
                key: planned.kind.key(),
                addr: *planned.addr.get_ref(),
                subnet: subnet.get_ref().to_string(),
                at: at(&planned.addr),
                subnet_at: at(subnet),
            });
        }
    }
}

/// Why `key` is not a qualified name: `[prefix/]name`, prefix a DNS subdomain.
fn annotation_key_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix
        .and_then(super::names::dns_subdomain_problem)
        .or_else(|| super::names::label_value_problem(name))
}

fn annotation_keys_are_valid(cluster: &ClusterFacts, lb: &raw::Lb, out: &mut Findings) {
    let Some(annotations) = &lb.annotations else {
        return;
    };
    for key in annotations.get_ref().keys() {
        if let Some(problem) = annotation_key_problem(key) {
            out.push(DeliveryError::AnnotationKey {
                cluster: cluster.name().to_owned(),
                key: key.clone(),
                problem,
                at: at(annotations),
            });
        }
    }
}

fn annotations_only_for_cloud(cluster: &ClusterFacts, lb: &raw::Lb, out: &mut Findings) {
    let via = via(cluster);
    if let Some(annotations) = &lb.annotations
        && via != LbVia::Cloud
    {
        out.push(DeliveryError::AnnotationsIgnored {
            cluster: cluster.name().to_owned(),
            via: via_name(via),
            at: at(annotations),
        });
    }
}
