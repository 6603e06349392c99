//! Stage 2: `raw::Plan` → `model::Plan`, or every finding that stands in the way.
//!
//! First every value is parsed ([`facts`]); then each rule family checks the parsed plan. A
//! family is one file holding its rules (one function each) and the diagnostics they raise:
//!
//! | family     | file          | what it checks                                          |
//! |------------|---------------|---------------------------------------------------------|
//! | `name`     | `names.rs`    | DNS names, label values, duplicates                     |
//! | `cidr`     | `cidr.rs`     | CIDR and address syntax, host bits, service range size  |
//! | `overlap`  | `overlap.rs`  | pod/service ranges and addresses on one network         |
//! | `pool`     | `pool.rs`     | MetalLB pools                                           |
//! | `lb`       | `lb.rs`       | planned LoadBalancer addresses                          |
//! | `lb`       | `delivery.rs` | how each address reaches its Service (`lb.via`)         |
//! | `node`     | `node.rs`     | nodes, pod blocks, static routing prerequisites         |
//! | `role`     | `role.rs`     | primaries and remotes                                   |
//! | `network`  | `network.rs`  | network references and east-west reachability           |
//! | `platform` | `platform.rs` | kind, GKE, API server URLs                              |
//! | `version`  | `version.rs`  | Istio, MetalLB and Kubernetes versions                  |
//! | several    | `ambient.rs`  | what `dataplane = "ambient"` needs                      |
//! | `service`  | `service.rs`  | `[[service]]`: clusters, ports, failover, outlier, scope |
//! | `artifacts`| `artifacts.rs`| `[mesh.artifacts]`: hubs, chart repositories, URLs      |
//! | `upgrade`  | `upgrade.rs`  | a pair of plans: version jumps, revisions, skew         |
//! | `trust`    | `crate::trust`| `[mesh.trust]`: roots, phases, revocations, trust domains |

pub mod ambient;
pub mod artifacts;
pub mod cidr;
pub mod delivery;
pub mod facts;
pub mod lb;
pub mod names;
pub mod network;
pub mod node;
pub mod overlap;
pub mod platform;
pub mod pool;
pub mod role;
pub mod service;
pub mod upgrade;
pub mod version;

use crate::diagnostic::{Error, at};
use crate::model;
use crate::parse::PlanError;
use crate::raw;
use crate::releases::{self, Day};

pub use facts::Facts;

/// Findings collected during one validation run.
#[derive(Debug, Default)]
pub struct Findings(Vec<Error>);

impl Findings {
    /// Records one finding.
    pub fn push(&mut self, finding: impl Into<Error>) {
        self.0.push(finding.into());
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Error::is_error)
    }

    /// The findings, sorted by their position in the plan.
    pub fn into_sorted(mut self) -> Vec<Error> {
        self.0.sort_by_key(Error::offset);
        self.0
    }
}

/// The outcome of validation: every finding, and the model when there was no error.
pub struct Validated {
    /// Errors and warnings, sorted by position.
    pub findings: Vec<Error>,
    /// The validated plan, present only when no finding is an error.
    pub plan: Option<model::Plan>,
}

/// Runs every rule over the plan, dated the day the release table was checked (so findings do
/// not change as time passes).
pub fn validate(plan: &raw::Plan) -> Validated {
    validate_on(plan, releases::CHECKED)
}

/// Runs every rule over the plan; `today` dates the end-of-life rule.
pub fn validate_on(plan: &raw::Plan, today: Day) -> Validated {
    let mut out = Findings::default();
    lists_are_not_empty(plan, &mut out);
    let facts = Facts::gather(plan, &mut out);
    names::check(&facts, &mut out);
    cidr::check(&facts, &mut out);
    overlap::check(&facts, &mut out);
    pool::check(&facts, &mut out);
    lb::check(&facts, &mut out);
    delivery::check(&facts, &mut out);
    node::check(&facts, &mut out);
    role::check(&facts, &mut out);
    network::check(&facts, &mut out);
    platform::check(&facts, &mut out);
    version::check(&facts, today, &mut out);
    ambient::check(&facts, &mut out);
    service::check(&facts, &mut out);
    artifacts::check(&facts, &mut out);
    let trust = crate::trust::check(&facts, &mut out);
    let plan = if out.has_errors() {
        None
    } else {
        model::Plan::from_facts(&facts).map(|plan| model::Plan { trust, ..plan })
    };
    Validated {
        findings: out.into_sorted(),
        plan,
    }
}

/// A plan needs at least one `[[network]]` and one `[[cluster]]` (`plan` family).
fn lists_are_not_empty(plan: &raw::Plan, out: &mut Findings) {
    for (key, empty) in [
        ("network", plan.network.is_empty()),
        ("cluster", plan.cluster.is_empty()),
    ] {
        if empty {
            out.push(PlanError::MissingKey {
                key: key.to_owned(),
                at: at(&plan.mesh),
                label: format!("the plan has no [[{key}]] table"),
                help: format!("add at least one `[[{key}]]` table (see docs/plan-format.md)"),
            });
        }
    }
}
