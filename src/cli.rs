//! The command line: arguments, subcommands and their help (clap). Handlers are in `main.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCompleter;

use crate::completion;

/// The version `--version` prints: the release and the commit it was built from (`unknown`
/// outside a git checkout). Generated files carry only the release (`.meshplan-manifest`), so
/// the same plan builds the same bytes whatever commit built it.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MESHPLAN_COMMIT"),
    ")"
);

/// Compile a multi-cluster Istio mesh plan (TOML) into per-cluster bundles, after proving it
/// consistent.
#[derive(Debug, Parser)]
#[command(name = "meshplan", version = VERSION, about, long_about = None)]
pub struct Parsed {
    #[command(subcommand)]
    pub command: Command,
}

/// How findings and errors are reported: on every subcommand that reports any.
#[derive(Debug, Clone, Copy, Args)]
pub struct Reporting {
    /// How findings are printed on stderr: `human` (graphical) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = DiagnosticsFormat::Human)]
    pub diagnostics: DiagnosticsFormat,
    /// Colour in human diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Print errors only: no warnings, no summary line.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Default for Reporting {
    fn default() -> Self {
        Reporting {
            diagnostics: DiagnosticsFormat::Human,
            color: Color::Auto,
            quiet: false,
        }
    }
}

/// The command line as the handlers use it: the subcommand and how to report.
#[derive(Debug)]
pub struct Cli {
    pub command: Command,
    pub diagnostics: DiagnosticsFormat,
    pub color: Color,
    pub quiet: bool,
}

impl Cli {
    /// Parses the process's arguments (exits with clap's message on a usage error).
    pub fn parse() -> Cli {
        let command = Parsed::parse().command;
        let reporting = command.reporting();
        Cli {
            command,
            diagnostics: reporting.diagnostics,
            color: reporting.color,
            quiet: reporting.quiet,
        }
    }
}

impl Command {
    /// The subcommand's reporting flags; the defaults for those that report nothing.
    fn reporting(&self) -> Reporting {
        match self {
            Command::Check { reporting, .. }
            | Command::Certs { reporting, .. }
            | Command::Build { reporting, .. }
            | Command::Render { reporting, .. }
            | Command::Diff { reporting, .. }
            | Command::Upgrade { reporting, .. }
            | Command::Explain { reporting, .. } => *reporting,
            Command::ExplainCode { .. } | Command::Schema | Command::Completions { .. } => {
                Reporting::default()
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a plan: print every finding, exit 0 when valid (warnings allowed), 1 when not.
    #[command(
        after_help = "Examples:\n  meshplan check plans/three-cloud-metallb.toml\n  meshplan check plan.toml --diagnostics json 2> findings.jsonl"
    )]
    Check {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan file.
        plan: PathBuf,
        /// Also check the mesh's CA directory made by `meshplan certs` (or by Istio's
        /// tools/certs): files, keys, chains, one shared root, validity.
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
    },
    /// Make the mesh's CA offline: a root and one intermediate per cluster, as Istio's
    /// tools/certs does, in DIR (mode 0700; keys 0600). Never overwrites a key.
    #[command(
        after_help = "DIR holds private keys: keep it out of git and out of the compiled tree (refused there).\nA second run changes nothing; a cluster added to the plan gets only its own intermediate.\n\nExamples:\n  meshplan certs plans/mesh.toml --out ~/.meshplan/certs/mesh\n  meshplan certs plan.toml --out ca --root-cert org-root.pem --root-key org-root-key.pem\n  meshplan certs plan.toml --out ca --rotate cluster2   # new key and certificate for one cluster"
    )]
    Certs {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan file.
        plan: PathBuf,
        /// The CA directory.
        #[arg(short = 'o', long, value_name = "DIR")]
        out: PathBuf,
        /// Sign with this existing root certificate (an organisation's) instead of generating
        /// a root; needs --root-key. Its key is not copied into DIR.
        #[arg(long, value_name = "FILE", requires = "root_key")]
        root_cert: Option<PathBuf>,
        /// The private key of --root-cert (PEM: PKCS#8, PKCS#1 or SEC1, unencrypted).
        #[arg(long, value_name = "FILE", requires = "root_cert")]
        root_key: Option<PathBuf>,
        /// The algorithm of new keys.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rsa4096)]
        key_algorithm: KeyAlgorithm,
        /// Validity of a new root, in days.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        root_days: u32,
        /// Validity of a new intermediate, in days (never past the root's end).
        #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..=36500))]
        intermediate_days: u32,
        /// Replace this cluster's intermediate key and certificate (the other clusters are kept).
        #[arg(long, value_name = "CLUSTER", add = ArgValueCompleter::new(completion::cluster_names))]
        rotate: Option<String>,
    },
    /// Validate, then write the output tree (or, with --check, compare it with DIR).
    #[command(
        after_help = "Examples:\n  meshplan build plans/three-cloud-metallb.toml -o out\n  meshplan build plan.toml -o deploy --check   # in CI: fail when committed output is stale"
    )]
    Build {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan file.
        plan: PathBuf,
        /// Output directory.
        #[arg(short, long, value_name = "DIR", default_value = "out")]
        output: PathBuf,
        /// Write nothing; exit 1 and list every missing, changed or stale file if DIR is not
        /// what the plan compiles to.
        #[arg(long)]
        check: bool,
        /// Build into a non-empty directory that holds no `.meshplan-manifest` (files in the
        /// way still stop the build; `/` and the home directory are always refused).
        #[arg(long)]
        force: bool,
    },
    /// Print one cluster's manifests as one YAML stream, for `| kubectl apply -f -`.
    #[command(
        after_help = "Examples:\n  meshplan render plan.toml --cluster cluster1 | kubectl --context cluster1 apply -f -\n  meshplan render plan.toml --cluster cluster1 --only istio | istioctl install --context cluster1 -y -f -"
    )]
    Render {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan file.
        plan: PathBuf,
        /// The cluster to print.
        #[arg(long, add = ArgValueCompleter::new(completion::cluster_names))]
        cluster: String,
        /// `kubectl` (default): the kubectl-applicable manifests; `istio`: the control-plane
        /// IstioOperator for `istioctl install -f -`; `eastwest`: the east-west gateway's.
        #[arg(long, value_enum, default_value_t = Only::Kubectl)]
        only: Only,
    },
    /// Show what a plan change means (summary), then the unified diff of the compiled trees.
    #[command(
        after_help = "Either side may be `-` for stdin. Exit 0: no difference; 1: different; 2: error.\n\nExamples:\n  meshplan diff old.toml new.toml\n  git show main:plans/mesh.toml | meshplan diff - plans/mesh.toml"
    )]
    Diff {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan before.
        old: PathBuf,
        /// The plan after.
        new: PathBuf,
    },
    /// Compile the upgrade from one plan to the next (a new Istio version and revision) into an
    /// ordered, resumable procedure: DIR/upgrade.sh, DIR/README.md and the files it uses.
    #[command(
        after_help = "The plans may differ only in [mesh.istio] version and revision (and the Gateway API release).
upgrade.sh runs its phases in order; `upgrade.sh remove-old` removes the old revision, and
`upgrade.sh rollback` undoes every phase before that.

Examples:
  meshplan upgrade plans/mesh.toml plans/mesh-1.31.toml -o upgrade-1.31
  git show main:plans/mesh.toml > old.toml && meshplan upgrade old.toml plans/mesh.toml -o upgrade"
    )]
    Upgrade {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan installed now.
        old: PathBuf,
        /// The plan to upgrade to.
        new: PathBuf,
        /// Output directory.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// Write into a non-empty directory that holds no `.meshplan-manifest`.
        #[arg(long)]
        force: bool,
    },
    /// Print the planning tables (clusters, networks, addresses, pools) and a topology diagram.
    #[command(
        after_help = "Examples:\n  meshplan explain plans/three-cloud-metallb.toml\n  meshplan explain plan.toml --format markdown >> pr-description.md\n  meshplan explain plan.toml --without east-primary --without east-remote\n  meshplan explain plan.toml --without east-primary --format json | jq .no_endpoints\n  meshplan explain plan.toml --traffic --from east-primary --service reviews"
    )]
    Explain {
        #[command(flatten)]
        reporting: Reporting,
        /// The plan file.
        plan: PathBuf,
        /// `text` for a terminal, `markdown` (tables and a Mermaid diagram) for a pull request,
        /// `json` for scripts.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// What if this cluster goes down: services left without endpoints, where the others
        /// fail over, remotes that lose their control plane, networks left without an
        /// east-west gateway. Repeat for several clusters.
        #[arg(long, value_name = "CLUSTER", conflicts_with = "traffic", add = ArgValueCompleter::new(completion::cluster_names))]
        without: Vec<String>,
        /// What each client cluster reaches of each service (`[[service]]` and the samples),
        /// in the priority tiers its proxies use, with the east-west gateway each remote
        /// endpoint is reached through: the model the verify scripts check.
        #[arg(long)]
        traffic: bool,
        /// With `--traffic`: only this client cluster.
        #[arg(long, value_name = "CLUSTER", requires = "traffic")]
        from: Option<String>,
        /// With `--traffic`: only this service (`name` or `name.namespace`).
        #[arg(long, value_name = "NAME", requires = "traffic")]
        service: Option<String>,
    },
    /// Print what a diagnostic code means, its cause and its fix (docs/diagnostics.md).
    #[command(
        after_help = "The code is the one in a report: error[meshplan::io::read_plan], `code` in JSON.\n\nExamples:\n  meshplan explain-code meshplan::overlap::pod_cidr\n  meshplan explain-code pool::outside"
    )]
    ExplainCode {
        /// The code, with or without its `meshplan::` prefix.
        code: String,
    },
    /// Print the JSON Schema of the plan format (for editors: Taplo, Even Better TOML).
    #[command(
        after_help = "Examples:\n  meshplan schema > plan.schema.json   # then start a plan with `#:schema ./plan.schema.json`"
    )]
    Schema,
    /// Print a shell completion script (cluster names complete from the plan on the line).
    #[command(
        after_help = "The script asks meshplan (on PATH) for each completion, so --cluster, --without and --rotate offer\nthe clusters of the plan already typed.\n\nExamples:\n  meshplan completions bash > /etc/bash_completion.d/meshplan\n  meshplan completions zsh > \"${fpath[1]}/_meshplan\""
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    /// RSA 4096, as Istio's tools/certs (about a second a key per core).
    Rsa4096,
    /// ECDSA P-256 (instant).
    EcdsaP256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Only {
    Kubectl,
    Istio,
    Eastwest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticsFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}
