//! The command line: arguments, subcommands and their help (clap). Handlers are in `main.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Compile a multi-cluster Istio mesh plan (TOML) into per-cluster bundles, after proving it
/// consistent.
#[derive(Debug, Parser)]
#[command(name = "meshplan", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How findings are printed on stderr: `human` (graphical) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = DiagnosticsFormat::Human)]
    pub diagnostics: DiagnosticsFormat,
    /// Colour in human diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Print errors only: no warnings, no summary line.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a plan: print every finding, exit 0 when valid (warnings allowed), 1 when not.
    #[command(
        after_help = "Examples:\n  meshplan check plans/three-cloud-metallb.toml\n  meshplan check plan.toml --diagnostics json 2> findings.jsonl"
    )]
    Check {
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
        /// The plan file.
        plan: PathBuf,
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
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
        #[arg(long, value_name = "CLUSTER")]
        rotate: Option<String>,
    },
    /// Validate, then write the output tree (or, with --check, compare it with DIR).
    #[command(
        after_help = "Examples:\n  meshplan build plans/three-cloud-metallb.toml -o out\n  meshplan build plan.toml -o deploy --check   # in CI: fail when committed output is stale"
    )]
    Build {
        /// The plan file.
        plan: PathBuf,
        /// Output directory.
        #[arg(short, long, default_value = "out")]
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
    /// Print the planning tables (clusters, networks, addresses, pools) and a topology diagram.
    #[command(
        after_help = "Examples:\n  meshplan explain plans/three-cloud-metallb.toml\n  meshplan explain plan.toml --format markdown >> pr-description.md\n  meshplan explain plan.toml --without east-primary --without east-remote\n  meshplan explain plan.toml --without east-primary --format json | jq .no_endpoints\n  meshplan explain plan.toml --traffic --from east-primary --service reviews"
    )]
    Explain {
        /// The plan file.
        plan: PathBuf,
        /// `text` for a terminal, `markdown` (tables and a Mermaid diagram) for a pull request,
        /// `json` for scripts.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// What if this cluster goes down: services left without endpoints, where the others
        /// fail over, remotes that lose their control plane, networks left without an
        /// east-west gateway. Repeat for several clusters.
        #[arg(long, value_name = "CLUSTER", conflicts_with = "traffic")]
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
    /// Show what a plan change means (summary), then the unified diff of the compiled trees.
    #[command(
        after_help = "Either side may be `-` for stdin. Exit 0: no difference; 1: different; 2: error.\n\nExamples:\n  meshplan diff old.toml new.toml\n  git show main:plans/mesh.toml | meshplan diff - plans/mesh.toml"
    )]
    Diff {
        /// The plan before.
        old: PathBuf,
        /// The plan after.
        new: PathBuf,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  meshplan completions bash > /etc/bash_completion.d/meshplan\n  meshplan completions zsh > \"${fpath[1]}/_meshplan\""
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of the plan format (for editors: Taplo, Even Better TOML).
    #[command(
        after_help = "Examples:\n  meshplan schema > plan.schema.json   # then start a plan with `#:schema ./plan.schema.json`"
    )]
    Schema,
    /// Print one cluster's manifests as one YAML stream, for `| kubectl apply -f -`.
    #[command(
        after_help = "Examples:\n  meshplan render plan.toml --cluster cluster1 | kubectl --context cluster1 apply -f -\n  meshplan render plan.toml --cluster cluster1 --only istio | istioctl install --context cluster1 -y -f -"
    )]
    Render {
        /// The plan file.
        plan: PathBuf,
        /// The cluster to print.
        #[arg(long)]
        cluster: String,
        /// `kubectl` (default): the kubectl-applicable manifests; `istio`: the control-plane
        /// IstioOperator for `istioctl install -f -`; `eastwest`: the east-west gateway's.
        #[arg(long, value_enum, default_value_t = Only::Kubectl)]
        only: Only,
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
