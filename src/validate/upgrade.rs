//! Rules of the `upgrade` family: whether an old and a new plan make an upgrade meshplan can
//! order (`meshplan upgrade OLD NEW`, and `meshplan diff` when the version changes). Each rule
//! looks at the pair; the findings point at the new plan's `[mesh.istio]`.
//!
//! What the rules enforce, and where it comes from:
//! - A canary (revision-based) upgrade may jump two minors, an in-place upgrade one: "When using
//!   revision-based upgrades jumping across two minor versions is supported (e.g. upgrading
//!   directly from version 1.8 to 1.10). This is in contrast to in-place upgrades where it is
//!   required to upgrade to each intermediate minor release" (istio.io/latest/docs/setup/upgrade/canary/,
//!   quoted in istio/istio#39786).
//! - A data plane is never ahead of its control plane ("The Istio control plane can be one
//!   version ahead of the data plane. However, the data plane cannot be ahead of the control
//!   plane", istio.io/latest/docs/releases/supported-releases/): the procedure moves a
//!   cluster's injection only once the new istiod serving it runs, and ambient's istio-cni and
//!   ztunnel only after istiod.
//! - Primaries of one mesh are at most one minor apart while the upgrade runs: with several
//!   primaries, a cluster whose workloads moved talks to clusters whose workloads did not.
//! - ztunnel and istio-cni work with an istiod of their own version or one minor newer, so an
//!   ambient mesh upgrades in place, one minor at a time ("The CNI node agent and ztunnel
//!   components are compatible with a control plane at the same version, or one version
//!   higher", Istio's ambient upgrade guide, istio.io/latest/docs/ambient/upgrade/helm/).
//! - An upgrade changes the version and the revision, nothing else: other changes go through
//!   `meshplan diff` and a rebuild first, so that a failed upgrade is about the upgrade.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use crate::model::{Plan, Version};
use crate::raw::{self, Dataplane};

/// `meshplan::upgrade::*`.
#[derive(Debug, Error, Diagnostic)]
pub enum UpgradeError {
    /// Same version, same revision.
    #[error(
        "the two plans target the same Istio, {version}{revision}: there is nothing to upgrade"
    )]
    #[diagnostic(
        code(meshplan::upgrade::nothing),
        help(
            "raise mesh.istio.version in the new plan; for any other change, use `meshplan diff OLD NEW` and `meshplan build`"
        )
    )]
    Nothing {
        /// The version of both.
        version: String,
        /// `, revision R` or empty.
        revision: String,
        #[label("the same as the old plan's")]
        at: SourceSpan,
    },

    /// The new version is older.
    #[error(
        "Istio {to} is older than the old plan's {from}: meshplan orders upgrades, not downgrades"
    )]
    #[diagnostic(
        code(meshplan::upgrade::downgrade),
        help(
            "to go back during an upgrade, run its rollback (`upgrade.sh rollback`); after the old revision was removed, a downgrade is a new canary: name a revision and keep the old plan's version"
        )
    )]
    Downgrade {
        /// Old version.
        from: String,
        /// New version.
        to: String,
        #[label("older than {from}")]
        at: SourceSpan,
    },

    /// A jump Istio does not support.
    #[error("Istio {from} -> {to} jumps {minors} minor versions; {how} supports at most {most}")]
    #[diagnostic(code(meshplan::upgrade::jump))]
    Jump {
        /// Old version.
        from: String,
        /// New version.
        to: String,
        /// Minor versions jumped.
        minors: u64,
        /// `a canary upgrade` or `an in-place upgrade`.
        how: &'static str,
        /// The most it supports.
        most: u64,
        #[label("{minors} minors after {from}")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// Several primaries two minors apart.
    #[error(
        "the mesh has {primaries} primaries, and Istio {from} -> {to} would leave them two minors apart while the upgrade runs"
    )]
    #[diagnostic(
        code(meshplan::upgrade::primary_skew),
        help(
            "upgrade one minor at a time: first to {step}, with its own revision, then to {to}; while a multi-primary mesh upgrades, clusters whose workloads moved talk to clusters whose workloads did not"
        )
    )]
    PrimarySkew {
        /// Old version.
        from: String,
        /// New version.
        to: String,
        /// The minor in between.
        step: String,
        /// How many primaries.
        primaries: usize,
        #[label("two minors after {from}")]
        at: SourceSpan,
    },

    /// A sidecar mesh's version changes under the same revision.
    #[error(
        "a canary upgrade installs Istio {to} beside {from}, so it needs a revision of its own; the new plan keeps {revision}"
    )]
    #[diagnostic(code(meshplan::upgrade::same_revision))]
    SameRevision {
        /// Old version.
        from: String,
        /// New version.
        to: String,
        /// `the default revision` or `revision R`.
        revision: String,
        #[label("a new version under the old plan's revision")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// The plans differ in more than the version and revision.
    #[error(
        "an upgrade changes only the Istio version and revision, and these plans also differ in: {changes}"
    )]
    #[diagnostic(
        code(meshplan::upgrade::other_changes),
        help(
            "make the other changes first (`meshplan diff OLD NEXT` shows what they do, `meshplan build` and install.sh apply them), then upgrade from that plan"
        )
    )]
    OtherChanges {
        /// The differences, `; `-separated.
        changes: String,
        #[label("the upgrade")]
        at: SourceSpan,
    },
}

/// Every finding about upgrading from `old` to `new`; `new_raw` (the new plan as parsed) gives
/// the findings their place in the new plan.
pub fn check_pair(old: &Plan, new: &Plan, new_raw: Option<&raw::Plan>) -> Vec<UpgradeError> {
    let mut out = Vec::new();
    let spans = new_raw.map_or(
        Spans {
            version: (0, 0).into(),
            revision: None,
        },
        Spans::of,
    );
    if let Some(err) = other_changes(old, new, spans.version) {
        out.push(err);
    }
    let (from, to) = (&old.mesh.istio_version, &new.mesh.istio_version);
    let (was, is) = (&old.mesh.revision, &new.mesh.revision);
    if from == to && was == is {
        out.push(UpgradeError::Nothing {
            version: to.to_string(),
            revision: is
                .as_ref()
                .map_or_else(String::new, |r| format!(", revision {r}")),
            at: spans.version,
        });
        return out;
    }
    if minor_key(to) < minor_key(from) || (minor_key(to) == minor_key(from) && to < from) {
        out.push(UpgradeError::Downgrade {
            from: from.to_string(),
            to: to.to_string(),
            at: spans.version,
        });
        return out;
    }
    let ambient = new.mesh.dataplane == Dataplane::Ambient;
    // An ambient plan names no revision (meshplan::version::revision_ambient): it upgrades in
    // place.
    if !ambient {
        out.extend(same_revision(
            from,
            to,
            was,
            is,
            spans.revision_or_version(),
        ));
    }
    out.extend(jump(from, to, ambient, spans.version));
    out.extend(primary_skew(new, from, to, ambient, spans.version));
    out
}

/// Where the findings point in the new plan.
struct Spans {
    version: SourceSpan,
    revision: Option<SourceSpan>,
}

impl Spans {
    fn of(raw: &raw::Plan) -> Spans {
        let istio = raw.mesh.get_ref().istio.get_ref();
        Spans {
            version: istio.version.span().into(),
            revision: istio.revision.as_ref().map(|r| r.span().into()),
        }
    }

    fn revision_or_version(&self) -> SourceSpan {
        self.revision.unwrap_or(self.version)
    }
}

fn minor_key(version: &Version) -> (u64, u64) {
    (version.major, version.minor)
}

/// Minor versions between two releases of one major; `None` across majors.
fn minors_between(from: &Version, to: &Version) -> Option<u64> {
    (from.major == to.major).then(|| to.minor.saturating_sub(from.minor))
}

fn revision_name(revision: &Option<String>) -> String {
    revision.as_ref().map_or_else(
        || "the default revision".to_owned(),
        |r| format!("revision {r}"),
    )
}

/// The revision Istio's docs would give `version`: `1-31-0`.
pub fn suggested_revision(version: &Version) -> String {
    version.to_string().replace('.', "-")
}

fn same_revision(
    from: &Version,
    to: &Version,
    was: &Option<String>,
    is: &Option<String>,
    at: SourceSpan,
) -> Option<UpgradeError> {
    (was == is).then(|| UpgradeError::SameRevision {
        from: from.to_string(),
        to: to.to_string(),
        revision: revision_name(was),
        at,
        help: format!(
            "set [mesh.istio] revision = \"{}\" in the new plan: istiod-{} then runs beside the old istiod, and the upgrade moves each cluster's injection to it in turn",
            suggested_revision(to),
            suggested_revision(to)
        ),
    })
}

fn jump(from: &Version, to: &Version, ambient: bool, at: SourceSpan) -> Option<UpgradeError> {
    let (how, most) = if ambient {
        ("an in-place upgrade", 1)
    } else {
        ("a canary upgrade", 2)
    };
    let minors = minors_between(from, to).unwrap_or(u64::MAX);
    (minors > most).then(|| UpgradeError::Jump {
        from: from.to_string(),
        to: to.to_string(),
        minors,
        how,
        most,
        at,
        help: if ambient {
            format!(
                "upgrade to {}.{} first: ztunnel and istio-cni work only with an istiod of their own minor or the next",
                from.major,
                from.minor + 1
            )
        } else {
            format!(
                "upgrade to {}.{} first, then from there to {to}: Istio tests revision-based upgrades across at most two minors",
                from.major,
                from.minor + 2
            )
        },
    })
}

fn primary_skew(
    plan: &Plan,
    from: &Version,
    to: &Version,
    ambient: bool,
    at: SourceSpan,
) -> Option<UpgradeError> {
    let primaries = plan
        .clusters
        .iter()
        .filter(|c| c.role == raw::Role::Primary)
        .count();
    (primaries > 1 && !ambient && minors_between(from, to) == Some(2)).then(|| {
        UpgradeError::PrimarySkew {
            from: from.to_string(),
            to: to.to_string(),
            step: format!("{}.{}", from.major, from.minor + 1),
            primaries,
            at,
        }
    })
}

/// What differs between the plans besides the version, the revision and the Gateway API
/// release (a new Istio may need newer CRDs).
fn other_changes(old: &Plan, new: &Plan, at: SourceSpan) -> Option<UpgradeError> {
    let allowed = [
        "mesh: istio_version ",
        "mesh: revision ",
        "mesh: artifacts.gateway_api_version ",
    ];
    let changes: Vec<String> = crate::diff::plan_changes(old, new)
        .into_iter()
        .map(|line| line.trim().to_owned())
        .filter(|line| !allowed.iter().any(|a| line.starts_with(a)))
        .collect();
    (!changes.is_empty()).then(|| UpgradeError::OtherChanges {
        changes: changes.join("; "),
        at,
    })
}
