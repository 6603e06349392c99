//! Rules of the `role` family: the mesh has a primary, every remote names (or implies) an
//! existing primary, and that primary exposes istiod to it.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;
use toml::Spanned;

use super::facts::{ClusterFacts, LbKind};
use super::{Facts, Findings};
use crate::diagnostic::at;
use crate::raw::Role;
use crate::suggest;

/// `meshplan::role::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum RoleError {
    /// No cluster is a primary.
    #[error("the mesh has no primary cluster")]
    #[diagnostic(
        code(meshplan::role::no_primary),
        help("set `role = \"primary\"` on at least one cluster: remotes need a primary's istiod")
    )]
    NoPrimary {
        #[label("first cluster's role")]
        at: SourceSpan,
    },

    /// `primary` names no cluster.
    #[error("remote `{cluster}` names primary `{primary}`, which is not a cluster of the plan")]
    #[diagnostic(code(meshplan::role::unknown_primary))]
    UnknownPrimary {
        /// The remote.
        cluster: String,
        /// As written.
        primary: String,
        #[label("no such cluster")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// `primary` names a remote.
    #[error("remote `{cluster}` names `{primary}` as its primary, but `{primary}` is a remote")]
    #[diagnostic(
        code(meshplan::role::not_a_primary),
        help(
            "a remote uses a primary's istiod; name a cluster with `role = \"primary\"`{choices}"
        )
    )]
    NotAPrimary {
        /// The remote.
        cluster: String,
        /// As written.
        primary: String,
        /// Listed primaries.
        choices: String,
        #[label("not a primary")]
        at: SourceSpan,
        #[label("`{primary}` is a remote")]
        role_at: SourceSpan,
    },

    /// Several primaries and no `primary` key.
    #[error("remote `{cluster}` must say which primary it uses")]
    #[diagnostic(
        code(meshplan::role::ambiguous_primary),
        help(
            "the plan has several primaries ({choices}); add `primary = \"<name>\"` to this cluster"
        )
    )]
    AmbiguousPrimary {
        /// The remote.
        cluster: String,
        /// Listed primaries.
        choices: String,
        #[label("role = \"remote\", no `primary`")]
        at: SourceSpan,
    },

    /// Primary has no address for its remotes to reach istiod.
    #[error(
        "remote `{cluster}` cannot reach istiod: primary `{primary}` has neither lb.istiod nor lb.eastwest"
    )]
    #[diagnostic(
        code(meshplan::role::unreachable_istiod),
        help(
            "plan an address for `{primary}`: `[cluster.lb] eastwest = \"...\"` (istiod exposed through the east-west gateway on 15012/15017) or `istiod = \"...\"` (a dedicated LoadBalancer for istiod); the remote's remotePilotAddress is derived from it"
        )
    )]
    UnreachableIstiod {
        /// The remote.
        cluster: String,
        /// Its primary.
        primary: String,
        #[label("{via}")]
        at: SourceSpan,
        /// What the first label says.
        via: String,
        #[label("primary without lb.istiod or lb.eastwest")]
        primary_at: SourceSpan,
    },

    /// More remote secrets than [`MANY_REMOTE_SECRETS`].
    #[error(
        "{primaries} primaries each watch the other {others} clusters: {secrets} remote secrets"
    )]
    #[diagnostic(
        code(meshplan::role::many_remote_secrets),
        severity(Warning),
        help(
            "every primary's istiod watches every other cluster, so remote secrets (and their steps in remote-secrets.sh, install.sh and README.md, about 500 bytes each) grow as primaries × clusters; above 10,000 the output runs to megabytes. Make most clusters remotes of a few primaries: a remote adds one secret per primary, a primary one per cluster"
        )
    )]
    ManyRemoteSecrets {
        /// Primaries.
        primaries: usize,
        /// Clusters each primary watches.
        others: usize,
        /// primaries × others, written with thousands separators.
        secrets: String,
        #[label("the first of {primaries} primaries")]
        at: SourceSpan,
    },

    /// More remote secrets than [`MOST_REMOTE_SECRETS`].
    #[error(
        "{primaries} primaries each watch the other {others} clusters: {secrets} remote secrets, more than meshplan compiles (100,000)"
    )]
    #[diagnostic(
        code(meshplan::role::too_many_remote_secrets),
        help(
            "every primary's istiod watches every other cluster, so the output grows as primaries × clusters (about 500 bytes a remote secret: 100,000 are 50 MB, and memory grows with it); make most clusters remotes of a few primaries, or split the mesh"
        )
    )]
    TooManyRemoteSecrets {
        /// Primaries.
        primaries: usize,
        /// Clusters each primary watches.
        others: usize,
        /// primaries × others, written with thousands separators.
        secrets: String,
        #[label("the first of {primaries} primaries")]
        at: SourceSpan,
    },

    /// `primary` on a primary.
    #[error("`primary` is ignored on primary cluster `{cluster}`")]
    #[diagnostic(
        code(meshplan::role::primary_of_primary),
        severity(Warning),
        help(
            "only remotes name a primary; remove the key, or set `role = \"remote\"` if this cluster should use `{primary}`'s istiod"
        )
    )]
    PrimaryOfPrimary {
        /// The cluster.
        cluster: String,
        /// As written.
        primary: String,
        #[label("ignored")]
        at: SourceSpan,
    },
}

/// Remote secrets above which a plan gets a warning: each primary's istiod watches every
/// other cluster, so they number primaries × (clusters − 1), and every one is a step in
/// `remote-secrets.sh`, `install.sh` and `README.md` (about 500 bytes of output each, measured
/// in docs/performance.md). 10,000 is 100 clusters that are all primaries, 5 MB of output.
pub const MANY_REMOTE_SECRETS: usize = 10_000;

/// Remote secrets above which a plan is refused: 100,000 (317 clusters that are all primaries)
/// are about 50 MB of output and 300 MB of memory to build it, and both grow as the square;
/// 1,000 primaries took 2.2 GB and wrote 459 MB (review R7).
pub const MOST_REMOTE_SECRETS: usize = 100_000;

/// Runs the `role` rules.
pub fn check(facts: &Facts, out: &mut Findings) {
    let primaries: Vec<&ClusterFacts> = facts.clusters.iter().filter(|c| is_primary(c)).collect();
    let Some(first) = primaries.first() else {
        if let Some(first) = facts.clusters.first() {
            out.push(RoleError::NoPrimary {
                at: at(&first.raw.get_ref().role),
            });
        }
        return;
    };
    remote_secrets_are_bounded(primaries.len(), facts.clusters.len(), first, out);
    for cluster in &facts.clusters {
        if is_primary(cluster) {
            primary_names_no_primary(cluster, out);
        } else if let Some(primary) = primary_of(facts, &primaries, cluster, out) {
            primary_exposes_istiod(cluster, primary, out);
        }
    }
}

/// Warns above [`MANY_REMOTE_SECRETS`] remote secrets, refuses above [`MOST_REMOTE_SECRETS`].
fn remote_secrets_are_bounded(
    primaries: usize,
    clusters: usize,
    first: &ClusterFacts,
    out: &mut Findings,
) {
    let others = clusters.saturating_sub(1);
    let count = primaries.saturating_mul(others);
    let at = at(&first.raw.get_ref().role);
    let secrets = thousands(count);
    if count > MOST_REMOTE_SECRETS {
        out.push(RoleError::TooManyRemoteSecrets {
            primaries,
            others,
            secrets,
            at,
        });
    } else if count > MANY_REMOTE_SECRETS {
        out.push(RoleError::ManyRemoteSecrets {
            primaries,
            others,
            secrets,
            at,
        });
    }
}

/// `100172` as `100,172`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn is_primary(cluster: &ClusterFacts) -> bool {
    *cluster.raw.get_ref().role.get_ref() == Role::Primary
}

fn listed(primaries: &[&ClusterFacts]) -> String {
    primaries
        .iter()
        .map(|p| format!("`{}`", p.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves a remote's primary, reporting why it cannot be resolved.
fn primary_of<'a>(
    facts: &'a Facts,
    primaries: &[&'a ClusterFacts<'a>],
    remote: &ClusterFacts,
    out: &mut Findings,
) -> Option<&'a ClusterFacts<'a>> {
    let Some(named) = &remote.raw.get_ref().primary else {
        if let [only] = primaries {
            return Some(*only);
        }
        out.push(RoleError::AmbiguousPrimary {
            cluster: remote.name().to_owned(),
            choices: listed(primaries),
            at: at(&remote.raw.get_ref().role),
        });
        return None;
    };
    match facts.cluster(named.get_ref()) {
        None => {
            unknown_primary(primaries, remote, named, out);
            None
        }
        Some(target) if !is_primary(target) => {
            out.push(RoleError::NotAPrimary {
                cluster: remote.name().to_owned(),
                primary: named.get_ref().clone(),
                choices: format!(": {}", listed(primaries)),
                at: at(named),
                role_at: at(&target.raw.get_ref().role),
            });
            None
        }
        Some(target) => Some(target),
    }
}

fn unknown_primary(
    primaries: &[&ClusterFacts],
    remote: &ClusterFacts,
    named: &Spanned<String>,
    out: &mut Findings,
) {
    let help = match suggest::nearest(named.get_ref(), primaries.iter().map(|p| p.name())) {
        Some(best) => format!("did you mean `{best}`? primaries: {}", listed(primaries)),
        None => format!("name one of the primaries: {}", listed(primaries)),
    };
    out.push(RoleError::UnknownPrimary {
        cluster: remote.name().to_owned(),
        primary: named.get_ref().clone(),
        at: at(named),
        help,
    });
}

fn primary_exposes_istiod(remote: &ClusterFacts, primary: &ClusterFacts, out: &mut Findings) {
    let exposed = primary.lb(LbKind::Istiod).is_some() || primary.lb(LbKind::Eastwest).is_some();
    // An lb address that failed to parse was already reported; don't pile on.
    let written = primary.raw.get_ref().lb.as_ref().is_some_and(|lb| {
        let lb = lb.get_ref();
        // A hostname gateway gets its own finding (`lb::hostname_pilot`).
        lb.istiod.is_some() || lb.eastwest.is_some() || lb.eastwest_hostname.is_some()
    });
    if exposed || written {
        return;
    }
    let raw = remote.raw.get_ref();
    out.push(RoleError::UnreachableIstiod {
        cluster: remote.name().to_owned(),
        primary: primary.name().to_owned(),
        at: raw.primary.as_ref().map_or_else(|| at(&raw.role), at),
        via: match &raw.primary {
            Some(_) => format!("remote `{}` uses this primary's istiod", remote.name()),
            None => format!("remote `{}` uses the only primary's istiod", remote.name()),
        },
        primary_at: at(&primary.raw.get_ref().name),
    });
}

fn primary_names_no_primary(cluster: &ClusterFacts, out: &mut Findings) {
    if let Some(named) = &cluster.raw.get_ref().primary {
        out.push(RoleError::PrimaryOfPrimary {
            cluster: cluster.name().to_owned(),
            primary: named.get_ref().clone(),
            at: at(named),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        let shown = [0, 999, 1_000, 10_100, 100_172, 1_234_567].map(thousands);
        assert_eq!(
            shown,
            ["0", "999", "1,000", "10,100", "100,172", "1,234,567"]
        );
    }
}
