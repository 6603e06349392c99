//! The `meshplan` command: arguments → library stages → files, terminal output, exit code.
//!
//! Exit codes: 0 success (warnings allowed); 1 the plan is invalid; 2 usage error or I/O failure.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use meshplan::{Checked, Source, report};

/// Compile a multi-cluster Istio mesh plan (TOML) into per-cluster bundles, after proving it
/// consistent.
#[derive(Debug, Parser)]
#[command(name = "meshplan", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How findings are printed on stderr: `human` (graphical) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = DiagnosticsFormat::Human)]
    diagnostics: DiagnosticsFormat,
    /// Colour in human diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Print errors only: no warnings, no summary line.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a plan: print every finding, exit 0 when valid (warnings allowed), 1 when not.
    #[command(
        after_help = "Examples:\n  meshplan check plans/three-cloud-metallb.toml\n  meshplan check plan.toml --diagnostics json 2> findings.jsonl"
    )]
    Check {
        /// The plan file.
        plan: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiagnosticsFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Check { plan } => run_check(&cli, plan),
    }
}

fn run_check(cli: &Cli, path: &PathBuf) -> ExitCode {
    let Some((source, checked)) = load(cli, path) else {
        return ExitCode::from(2);
    };
    print_findings(cli, &source, &checked);
    if checked.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Reads and checks a plan; `None` (after reporting) when the file cannot be read.
fn load(cli: &Cli, path: &PathBuf) -> Option<(Source, Checked)> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Some(meshplan::check_bytes(&name, &bytes)),
        Err(err) => {
            report_io(cli, &format!("cannot read plan `{name}`: {err}"), &name);
            None
        }
    }
}

fn report_io(cli: &Cli, message: &str, file: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = match cli.diagnostics {
        DiagnosticsFormat::Human => writeln!(stderr, "error: {message}"),
        DiagnosticsFormat::Json => writeln!(
            stderr,
            "{}",
            serde_json::json!({
                "code": "meshplan::io::read_plan", "severity": "error",
                "message": message, "help": null, "file": file,
                "line": null, "column": null, "labels": [],
            })
        ),
    };
}

fn print_findings(cli: &Cli, source: &Source, checked: &Checked) {
    let shown: Vec<&meshplan::diagnostic::Error> = checked
        .findings
        .iter()
        .filter(|f| !cli.quiet || f.is_error())
        .collect();
    let mut stderr = std::io::stderr().lock();
    match cli.diagnostics {
        DiagnosticsFormat::Json => {
            for finding in shown {
                if let Ok(line) = serde_json::to_string(&report::json(source, finding)) {
                    let _ = writeln!(stderr, "{line}");
                }
            }
        }
        DiagnosticsFormat::Human => {
            let style = report::Style {
                color: use_color(cli.color),
                width: 100,
            };
            for finding in shown {
                let _ = write!(stderr, "{}", report::human(source, finding, style));
            }
            if !cli.quiet {
                let _ = writeln!(stderr, "{}", report::summary(source, &checked.findings));
            }
        }
    }
}

fn use_color(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}
