//! Rules of the `name` family: cluster and node names are DNS names, IDs and localities are
//! Kubernetes label values, object names are valid, and nothing is named twice.

use std::collections::BTreeMap;

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw;

const LABEL_HELP: &str = "up to 63 characters: letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit";

/// `meshplan::name::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum NameError {
    /// Cluster name not a DNS-1123 label.
    #[error("cluster name `{value}` is not a DNS-1123 label")]
    #[diagnostic(
        code(meshplan::name::cluster),
        help(
            "use up to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit{hint}; the name becomes clusterName, the remote-secret name and a label value"
        )
    )]
    Cluster {
        /// As written.
        value: String,
        /// A corrected name, if one is obvious.
        hint: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: &'static str,
    },

    /// Node name not a DNS-1123 subdomain.
    #[error("node name `{value}` is not a DNS-1123 subdomain")]
    #[diagnostic(
        code(meshplan::name::node),
        help(
            "use the node's Kubernetes name (`kubectl get nodes`): lowercase letters, digits, `-` and `.`, up to 253 characters"
        )
    )]
    Node {
        /// As written.
        value: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: &'static str,
    },

    /// Not a label value.
    #[error("{key} `{value}` is not a valid Kubernetes label value")]
    #[diagnostic(
        code(meshplan::name::label_value),
        help("{LABEL_HELP}; it is written as a label (e.g. {written_as})")
    )]
    LabelValue {
        /// Which key.
        key: &'static str,
        /// As written.
        value: String,
        /// Where the value ends up.
        written_as: &'static str,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: &'static str,
    },

    /// Not a valid object name.
    #[error("{key} `{value}` is not a valid Kubernetes object name")]
    #[diagnostic(
        code(meshplan::name::resource),
        help(
            "use lowercase letters, digits and `-` (up to {max} characters), starting and ending with a letter or digit"
        )
    )]
    Resource {
        /// Which key.
        key: &'static str,
        /// As written.
        value: String,
        /// Length limit.
        max: usize,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: &'static str,
    },

    /// Not a trust domain.
    #[error("trust_domain `{value}` is not a valid trust domain")]
    #[diagnostic(
        code(meshplan::name::trust_domain),
        help(
            "a trust domain is a DNS name such as `cluster.local` or `mesh.example.com`; all clusters of the mesh share it"
        )
    )]
    TrustDomain {
        /// As written.
        value: String,
        #[label("{reason}")]
        at: SourceSpan,
        /// What is wrong.
        reason: &'static str,
    },

    /// Free-form text with a control character or a line separator.
    #[error("{key} holds the control character {which}")]
    #[diagnostic(
        code(meshplan::name::control_character),
        help(
            "remove it: the value is written into scripts and YAML, where a NUL, a line break or a tab is never what a {key} means (U+2028, U+2029 and U+0085 end a line for YAML 1.1 parsers)"
        )
    )]
    ControlCharacter {
        /// The plan key.
        key: &'static str,
        /// The character, as `U+XXXX`.
        which: String,
        #[label("here")]
        at: SourceSpan,
    },

    /// Something named twice.
    #[error("{what} `{value}` is defined twice")]
    #[diagnostic(
        code(meshplan::name::duplicate),
        help(
            "{what}s must be unique{scope}: istiod silently ignores a second cluster with a name it already knows; rename one of them"
        )
    )]
    Duplicate {
        /// cluster, network or node.
        what: &'static str,
        /// The name.
        value: String,
        /// Where uniqueness applies.
        scope: &'static str,
        /// What goes wrong otherwise.
        why: &'static str,
        #[label("defined again here")]
        at: SourceSpan,
        #[label("first defined here")]
        first_at: SourceSpan,
    },
}

/// Runs the `name` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    let plan = facts.plan;
    let mesh = plan.mesh.get_ref();
    label_value(&mesh.id, "mesh.id", "values.global.meshID", out);
    if let Some(domain) = &mesh.trust_domain {
        trust_domain(domain, out);
    }
    if let Some(namespace) = mesh
        .samples
        .as_ref()
        .and_then(|s| s.get_ref().namespace.as_ref())
    {
        resource_name(namespace, "mesh.samples.namespace", 63, false, out);
    }
    if let Some(namespace) = mesh
        .metallb
        .as_ref()
        .and_then(|m| m.get_ref().namespace.as_ref())
    {
        resource_name(namespace, "mesh.metallb.namespace", 63, false, out);
    }
    for network in &plan.network {
        label_value(
            &network.get_ref().id,
            "network id",
            "topology.istio.io/network",
            out,
        );
    }
    unique(
        plan.network.iter().map(|n| &n.get_ref().id),
        (
            "network",
            " in the plan",
            "a cluster's network is looked up by its id",
        ),
        out,
    );
    unique(
        plan.cluster.iter().map(|c| &c.get_ref().name),
        (
            "cluster",
            " in the plan",
            "istiod silently ignores a second cluster with a name it already knows",
        ),
        out,
    );
    for cluster in &plan.cluster {
        cluster_names(cluster.get_ref(), out);
    }
    for (key, value) in free_text(plan) {
        no_control_character(key, value, out);
    }
}

/// The free-form strings of a plan (not names, not addresses), which are written into scripts
/// and YAML as given.
fn free_text(plan: &raw::Plan) -> Vec<(&'static str, &Spanned<String>)> {
    let mesh = plan.mesh.get_ref();
    let mut found = Vec::new();
    found.extend(
        mesh.istio
            .get_ref()
            .hub
            .iter()
            .map(|h| ("mesh.istio.hub", h)),
    );
    if let Some(samples) = &mesh.samples {
        found.extend(
            samples
                .get_ref()
                .hub
                .iter()
                .map(|h| ("mesh.samples.hub", h)),
        );
    }
    if let Some(gitops) = &mesh.gitops {
        let gitops = gitops.get_ref();
        found.push(("mesh.gitops.repository", &gitops.repository));
        found.extend(gitops.revision.iter().map(|r| ("mesh.gitops.revision", r)));
        found.extend(gitops.path.iter().map(|p| ("mesh.gitops.path", p)));
    }
    for cluster in &plan.cluster {
        let cluster = cluster.get_ref();
        found.extend(cluster.context.iter().map(|c| ("context", c)));
        if let Some(annotations) = cluster
            .lb
            .as_ref()
            .and_then(|lb| lb.get_ref().annotations.as_ref())
        {
            found.extend(annotations.get_ref().values().map(|v| ("lb annotation", v)));
        }
        if let Some(kubeadm) = &cluster.kubeadm {
            let kubeadm = kubeadm.get_ref();
            found.extend(
                kubeadm
                    .image_repository
                    .iter()
                    .map(|r| ("kubeadm.image_repository", r)),
            );
            found.extend(kubeadm.cri_socket.iter().map(|c| ("kubeadm.cri_socket", c)));
        }
        if let Some(interfaces) = cluster
            .metallb
            .as_ref()
            .and_then(|m| m.get_ref().interfaces.as_ref())
        {
            found.extend(
                interfaces
                    .get_ref()
                    .iter()
                    .map(|i| ("metallb interface", i)),
            );
        }
    }
    found
}

fn no_control_character(key: &'static str, value: &Spanned<String>, out: &mut Findings) {
    let bad = value
        .get_ref()
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
    if let Some(c) = bad {
        out.push(NameError::ControlCharacter {
            key,
            which: format!("U+{:04X}", u32::from(c)),
            at: at(value),
        });
    }
}

fn cluster_names(cluster: &raw::Cluster, out: &mut Findings) {
    cluster_name(&cluster.name, out);
    locality(&cluster.region, &cluster.zone, &cluster.subzone, out);
    for node in &cluster.node {
        let node = node.get_ref();
        node_name(&node.name, out);
        locality(&node.region, &node.zone, &node.subzone, out);
    }
    unique(
        cluster.node.iter().map(|n| &n.get_ref().name),
        (
            "node",
            " within a cluster",
            "node labels and routes are written per node name",
        ),
        out,
    );
    if let Some(pool) = cluster
        .metallb
        .as_ref()
        .and_then(|m| m.get_ref().pool.as_ref())
    {
        resource_name(pool, "metallb.pool", 253, true, out);
    }
    if let Some(name) = &cluster.tls_server_name {
        resource_name(name, "tls_server_name", 253, true, out);
    }
    if let Some(version) = cluster
        .samples
        .as_ref()
        .and_then(|s| s.get_ref().helloworld.as_ref())
    {
        label_value(version, "samples.helloworld", "the pod label version", out);
    }
}

fn locality(
    region: &Option<Spanned<String>>,
    zone: &Option<Spanned<String>>,
    subzone: &Option<Spanned<String>>,
    out: &mut Findings,
) {
    let keys = [
        (region, "region", "topology.kubernetes.io/region"),
        (zone, "zone", "topology.kubernetes.io/zone"),
        (subzone, "subzone", "topology.istio.io/subzone"),
    ];
    for (value, key, label) in keys {
        if let Some(value) = value {
            label_value(value, key, label, out);
        }
    }
}

/// Why `value` is not a Kubernetes label value (non-empty here: an empty ID means nothing).
pub(super) fn label_value_problem(value: &str) -> Option<&'static str> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if value.is_empty() {
        Some("empty")
    } else if value.len() > 63 {
        Some("longer than 63 characters")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("only letters, digits, `-`, `_` and `.` are allowed")
    } else if !edge_ok(value.chars().next()) || !edge_ok(value.chars().last()) {
        Some("must start and end with a letter or digit")
    } else {
        None
    }
}

/// Why `value` is not a DNS-1123 label (lowercase).
pub(super) fn dns_label_problem(value: &str, max: usize) -> Option<&'static str> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if value.is_empty() {
        Some("empty")
    } else if value.len() > max {
        Some("too long")
    } else if value.chars().any(|c| c.is_ascii_uppercase()) {
        Some("upper-case letters are not allowed")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Some("only lowercase letters, digits and `-` are allowed")
    } else if !edge_ok(value.chars().next()) || !edge_ok(value.chars().last()) {
        Some("must start and end with a letter or digit")
    } else {
        None
    }
}

/// Why `value` is not a DNS-1123 subdomain.
pub(super) fn dns_subdomain_problem(value: &str) -> Option<&'static str> {
    if value.len() > 253 {
        return Some("longer than 253 characters");
    }
    value
        .split('.')
        .find_map(|part| dns_label_problem(part, 63))
        .map(|problem| {
            if problem == "empty" {
                "empty part between dots"
            } else {
                problem
            }
        })
}

fn label_value(
    value: &Spanned<String>,
    key: &'static str,
    written_as: &'static str,
    out: &mut Findings,
) {
    if let Some(reason) = label_value_problem(value.get_ref()) {
        out.push(NameError::LabelValue {
            key,
            value: value.get_ref().clone(),
            written_as,
            at: at(value),
            reason,
        });
    }
}

fn cluster_name(value: &Spanned<String>, out: &mut Findings) {
    let Some(reason) = dns_label_problem(value.get_ref(), 63) else {
        return;
    };
    let fixed: String = value
        .get_ref()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let fixed = fixed.trim_matches('-');
    let hint = if dns_label_problem(fixed, 63).is_none() {
        format!(", e.g. `{fixed}`")
    } else {
        String::new()
    };
    out.push(NameError::Cluster {
        value: value.get_ref().clone(),
        hint,
        at: at(value),
        reason,
    });
}

fn node_name(value: &Spanned<String>, out: &mut Findings) {
    if let Some(reason) = dns_subdomain_problem(value.get_ref()) {
        out.push(NameError::Node {
            value: value.get_ref().clone(),
            at: at(value),
            reason,
        });
    }
}

fn resource_name(
    value: &Spanned<String>,
    key: &'static str,
    max: usize,
    subdomain: bool,
    out: &mut Findings,
) {
    let problem = if subdomain {
        dns_subdomain_problem(value.get_ref())
    } else {
        dns_label_problem(value.get_ref(), max)
    };
    if let Some(reason) = problem {
        out.push(NameError::Resource {
            key,
            value: value.get_ref().clone(),
            max,
            at: at(value),
            reason,
        });
    }
}

fn trust_domain(value: &Spanned<String>, out: &mut Findings) {
    if let Some(reason) = dns_subdomain_problem(&value.get_ref().to_ascii_lowercase()) {
        out.push(NameError::TrustDomain {
            value: value.get_ref().clone(),
            at: at(value),
            reason,
        });
    }
}

/// Reports names seen twice; `kind` is (what, scope, why uniqueness matters).
fn unique<'a>(
    names: impl Iterator<Item = &'a Spanned<String>>,
    (what, scope, why): (&'static str, &'static str, &'static str),
    out: &mut Findings,
) {
    let mut seen: BTreeMap<&str, &Spanned<String>> = BTreeMap::new();
    for name in names {
        match seen.get(name.get_ref().as_str()) {
            Some(first) => out.push(NameError::Duplicate {
                what,
                value: name.get_ref().clone(),
                scope,
                why,
                at: at(name),
                first_at: at(first),
            }),
            None => {
                seen.insert(name.get_ref(), name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_kubernetes() {
        assert_eq!(label_value_problem("network-c1"), None);
        assert_eq!(label_value_problem("Zone_1.a"), None);
        assert!(label_value_problem("-x").is_some());
        assert!(label_value_problem("a b").is_some());
        assert!(label_value_problem(&"a".repeat(64)).is_some());
    }

    #[test]
    fn cluster_names_are_lowercase_labels() {
        assert_eq!(dns_label_problem("mdemo-cluster1", 63), None);
        assert_eq!(
            dns_label_problem("Cluster1", 63),
            Some("upper-case letters are not allowed")
        );
        assert!(dns_label_problem("c_1", 63).is_some());
        assert_eq!(dns_subdomain_problem("node-1.example"), None);
        assert_eq!(
            dns_subdomain_problem("a..b"),
            Some("empty part between dots")
        );
    }
}
