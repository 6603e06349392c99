//! meshplan: proves a multi-cluster Istio mesh plan consistent and compiles it into files.
//!
//! The pipeline, one module per stage: [`parse`] (TOML with spans → [`raw::Plan`]) →
//! [`validate`] (every rule, every finding → [`model::Plan`]) → resolve → render → emit.
//! Only `main.rs` touches the filesystem or the terminal, except [`certs::store`] and
//! [`certs::dir`]: the mesh's private keys are kept apart from the deterministic compile.
//! [`fsread`] (capped, regular-file-only reads) and [`userdirs`] (the user's id and home
//! directories) serve both.
#![deny(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::exit,
    clippy::dbg_macro
)]

pub mod certs;
pub mod codes;
pub mod diagnostic;
pub mod diff;
pub mod explain;
pub mod fsread;
pub mod model;
pub mod parallel;
pub mod parse;
pub mod raw;
pub mod releases;
pub mod render;
pub mod report;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod suggest;
pub mod sweep;
pub mod terminal;
pub mod trust;
pub mod userdirs;
pub mod validate;
pub mod whatif;

use diagnostic::Error;
use parse::PlanError;
pub use source::Source;

/// The outcome of checking a plan.
pub struct Checked {
    /// Every finding, sorted by position in the plan.
    pub findings: Vec<Error>,
    /// The validated plan, when no finding is an error.
    pub plan: Option<model::Plan>,
}

impl Checked {
    /// Whether the plan is valid (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.plan.is_some()
    }
}

/// Parses and validates a plan, dated the day the release table was checked: what tests and
/// every caller without a clock get, so findings do not change as time passes.
pub fn check(source: &Source) -> Checked {
    check_on(source, releases::CHECKED)
}

/// Parses and validates a plan; `today` dates the end-of-life rule (`meshplan` passes the
/// clock's date, or `MESHPLAN_TODAY`).
pub fn check_on(source: &Source, today: releases::Day) -> Checked {
    match parse::parse(source) {
        Ok(raw) => {
            let validated = validate::validate_on(&raw, today);
            Checked {
                findings: validated.findings,
                plan: validated.plan,
            }
        }
        Err(err) => Checked {
            findings: vec![err.into()],
            plan: None,
        },
    }
}

/// The plan file's name without directories, exactly, for `explain`'s heading (generated files
/// do not name the plan: a renamed plan compiles to the same bytes, and no file name can inject
/// into YAML). The templates show it through [`terminal::text`] or as a Markdown code span;
/// `explain --format json` keeps it exact.
pub fn plan_file_name(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_owned()
}

/// Checks, resolves and renders a plan: the whole compile, in memory.
pub fn compile(source: &Source) -> (Checked, Option<Result<render::Output, render::RenderError>>) {
    let checked = check(source);
    let output = checked.plan.as_ref().map(|plan| {
        let mesh = resolve::resolve(plan, &plan_file_name(&source.name));
        render::render(&mesh, &explain::explain(plan, &mesh))
    });
    (checked, output)
}

/// Decodes a plan file's bytes and checks it; text that is not UTF-8 is a finding, not a
/// failure.
pub fn check_bytes(name: &str, bytes: &[u8]) -> (Source, Checked) {
    check_bytes_on(name, bytes, releases::CHECKED)
}

/// [`check_bytes`] dated `today` (see [`check_on`]).
pub fn check_bytes_on(name: &str, bytes: &[u8], today: releases::Day) -> (Source, Checked) {
    let (source, bad_byte) = Source::from_bytes(name, bytes);
    let checked = match bad_byte {
        Some(offset) => Checked {
            findings: vec![
                PlanError::Encoding {
                    at: (offset, 1).into(),
                }
                .into(),
            ],
            plan: None,
        },
        None => check_on(&source, today),
    };
    (source, checked)
}
