//! Rules of the `cidr` family: every CIDR and address parses, has no host bits, and service
//! ranges fit the Kubernetes limit.

use std::net::IpAddr;

use ipnet::IpNet;
use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::{Facts, Findings};
use crate::diagnostic::at;

/// `meshplan::cidr::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum CidrError {
    /// Not a CIDR.
    #[error("`{value}` is not a CIDR")]
    #[diagnostic(code(meshplan::cidr::invalid))]
    Invalid {
        /// As written.
        value: String,
        #[label("{key} must be an address and a prefix length")]
        at: SourceSpan,
        /// The key.
        key: &'static str,
        #[help]
        help: String,
    },

    /// Host bits set.
    #[error("`{value}` has host bits set")]
    #[diagnostic(
        code(meshplan::cidr::host_bits),
        help(
            "write `{canonical}`: the address of a range has every bit after the prefix length cleared"
        )
    )]
    HostBits {
        /// As written.
        value: String,
        /// The same range, host bits cleared.
        canonical: String,
        #[label("{key} has host bits set; the range it denotes is {canonical}")]
        at: SourceSpan,
        /// The key.
        key: &'static str,
    },

    /// Not an IP address.
    #[error("`{value}` is not an IP address")]
    #[diagnostic(code(meshplan::cidr::invalid_address))]
    InvalidAddress {
        /// As written.
        value: String,
        #[label("{key} must be one IPv4 or IPv6 address")]
        at: SourceSpan,
        /// The key.
        key: &'static str,
        #[help]
        help: String,
    },

    /// An address no Service or node can have.
    #[error("`{key}` {value} is {kind}")]
    #[diagnostic(
        code(meshplan::cidr::special_address),
        help(
            "use a unicast address on the nodes' network: {kind} cannot be assigned to a node, a Service or a router"
        )
    )]
    SpecialAddress {
        /// The key.
        key: &'static str,
        /// The address.
        value: IpAddr,
        /// unspecified, loopback, multicast or broadcast.
        kind: &'static str,
        #[label("not assignable")]
        at: SourceSpan,
    },

    /// A service range too small for a cluster's Services.
    #[error("service_cidr {value} of `{cluster}` is too small for a cluster's Services")]
    #[diagnostic(
        code(meshplan::cidr::service_too_small),
        help(
            "use a /{min_prefix} or wider (kubeadm puts cluster DNS at the range's tenth address, and the first is the `kubernetes` Service); clusters usually get a /16 to /20"
        )
    )]
    ServiceTooSmall {
        value: String,
        cluster: String,
        min_prefix: u8,
        #[label("fewer than 16 addresses")]
        at: SourceSpan,
    },

    /// Service range larger than kube-apiserver and kubeadm accept.
    #[error("service_cidr `{value}` of `{cluster}` is larger than Kubernetes allows")]
    #[diagnostic(
        code(meshplan::cidr::service_too_large),
        help(
            "use a prefix of /{max_prefix} or longer (e.g. `{suggestion}`); kube-apiserver (before 1.34) and kubeadm refuse larger service ranges"
        )
    )]
    ServiceTooLarge {
        /// As written.
        value: String,
        /// The cluster.
        cluster: String,
        /// Longest allowed prefix.
        max_prefix: u8,
        /// The range's first /max_prefix.
        suggestion: String,
        #[label("a /{prefix} has more addresses than the /{max_prefix} limit")]
        at: SourceSpan,
        /// The range's prefix length.
        prefix: u8,
    },
}

/// Parses a CIDR, reporting a malformed one or one with host bits.
pub fn parse_cidr(
    value: &Spanned<String>,
    key: &'static str,
    out: &mut Findings,
) -> Option<Spanned<IpNet>> {
    let text = value.get_ref();
    let Ok(net) = text.parse::<IpNet>() else {
        out.push(CidrError::Invalid {
            value: text.clone(),
            at: at(value),
            key,
            help: cidr_help(text),
        });
        return None;
    };
    if net != net.trunc() {
        out.push(CidrError::HostBits {
            value: text.clone(),
            canonical: net.trunc().to_string(),
            at: at(value),
            key,
        });
        return None;
    }
    Some(Spanned::new(value.span(), net))
}

fn cidr_help(text: &str) -> String {
    if let Ok(addr) = text.parse::<IpAddr>() {
        let single = if addr.is_ipv4() { 32 } else { 128 };
        format!(
            "add the prefix length: a range is written as its first address and prefix (e.g. `10.244.0.0/16`); the single address is `{text}/{single}`"
        )
    } else {
        "write an address, `/` and a prefix length, e.g. `10.1.0.0/16` or `fd00:10::/64`".to_owned()
    }
}

/// Parses an IP address.
pub fn parse_address(
    value: &Spanned<String>,
    key: &'static str,
    out: &mut Findings,
) -> Option<Spanned<IpAddr>> {
    let text = value.get_ref();
    match text.parse::<IpAddr>() {
        Ok(addr) => match special_kind(addr) {
            None => Some(Spanned::new(value.span(), addr)),
            Some(kind) => {
                out.push(CidrError::SpecialAddress {
                    key,
                    value: addr,
                    kind,
                    at: at(value),
                });
                None
            }
        },
        Err(_) => {
            let help = match text.split_once('/') {
                Some((addr, _)) => format!("write the address alone: `{addr}`"),
                None => "write an IPv4 (`10.0.0.5`) or IPv6 (`fd00::5`) address; hostnames are not accepted because gateways and pools need IPs".to_owned(),
            };
            out.push(CidrError::InvalidAddress {
                value: text.clone(),
                at: at(value),
                key,
                help,
            });
            None
        }
    }
}

fn special_kind(addr: IpAddr) -> Option<&'static str> {
    let broadcast = match addr {
        IpAddr::V4(v4) => v4.is_broadcast(),
        IpAddr::V6(_) => false,
    };
    if addr.is_unspecified() {
        Some("the unspecified address")
    } else if addr.is_loopback() {
        Some("a loopback address")
    } else if addr.is_multicast() {
        Some("a multicast address")
    } else if broadcast {
        Some("the broadcast address")
    } else {
        None
    }
}

/// Runs the relational `cidr` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    for cluster in &facts.clusters {
        if let Some(range) = &cluster.service_cidr {
            service_range_fits_kubernetes(cluster.name(), range, out);
            service_range_holds_services(cluster.name(), range, out);
        }
    }
}

/// kubeadm gives cluster DNS the tenth address of the service range, and the first is the
/// `kubernetes` Service: a range of fewer than 16 addresses cannot hold a cluster's Services.
fn service_range_holds_services(cluster: &str, range: &Spanned<IpNet>, out: &mut Findings) {
    const MIN_HOST_BITS: u8 = 4;
    let net = range.get_ref();
    let min_prefix = net.max_prefix_len() - MIN_HOST_BITS;
    if net.prefix_len() > min_prefix {
        out.push(CidrError::ServiceTooSmall {
            value: net.to_string(),
            cluster: cluster.to_owned(),
            min_prefix,
            at: at(range),
        });
    }
}

/// kube-apiserver (before 1.34) and kubeadm cap service ranges at 20 host bits.
fn service_range_fits_kubernetes(cluster: &str, range: &Spanned<IpNet>, out: &mut Findings) {
    const MAX_HOST_BITS: u8 = 20;
    let net = range.get_ref();
    let max_prefix = net.max_prefix_len() - MAX_HOST_BITS;
    if net.prefix_len() >= max_prefix {
        return;
    }
    let suggestion = IpNet::new(net.network(), max_prefix)
        .map(|n| n.trunc().to_string())
        .unwrap_or_default();
    out.push(CidrError::ServiceTooLarge {
        value: net.to_string(),
        cluster: cluster.to_owned(),
        max_prefix,
        suggestion,
        at: at(range),
        prefix: net.prefix_len(),
    });
}
