//! The `meshplan` command: arguments → library stages → files, terminal output, exit code.
//!
//! Exit codes: 0 success (warnings allowed); 1 the plan is invalid; 2 usage error or I/O failure.

mod cache;
mod cli;
mod emit;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use cache::{Cache, Key};
use clap::Parser;
use cli::{Cli, Color, Command, DiagnosticsFormat, Format, Only};
use meshplan::render::{Output, Selection};
use meshplan::{Checked, Source, report};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Check { plan } => run_check(&cli, plan),
        Command::Explain {
            plan,
            format,
            without,
        } if !without.is_empty() => run_what_if(&cli, plan, *format, without),
        Command::Explain { plan, format, .. } => run_explain(&cli, plan, *format),
        Command::Diff { old, new } => run_diff(&cli, old, new),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "meshplan",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Schema => {
            let schema = meshplan::schema::plan_schema();
            let _ = std::io::stdout().lock().write_all(schema.as_bytes());
            ExitCode::SUCCESS
        }
        Command::Build {
            plan,
            output,
            check,
        } => run_build(&cli, plan, output, *check),
        Command::Render {
            plan,
            cluster,
            only,
            no_cache,
        } => run_render(&cli, plan, cluster, *only, *no_cache),
    }
}

/// Checks and resolves a plan, printing findings; the exit code when it is invalid.
fn resolved(
    cli: &Cli,
    path: &Path,
) -> Result<(meshplan::model::Plan, meshplan::resolve::Mesh), ExitCode> {
    let (source, checked) = load(cli, path).ok_or(ExitCode::from(2))?;
    print_findings(cli, &source, &checked);
    let plan = checked.plan.ok_or(ExitCode::from(1))?;
    let mesh = meshplan::resolve::resolve(&plan, &meshplan::plan_file_name(&source.name));
    Ok((plan, mesh))
}

fn rendered<T>(cli: &Cli, result: Result<T, meshplan::render::RenderError>) -> Result<T, ExitCode> {
    result.map_err(|err| {
        report_error(cli, "meshplan::render::template", &err.to_string());
        ExitCode::from(2)
    })
}

/// Checks and compiles a plan into its whole tree.
fn compile(cli: &Cli, path: &Path) -> Result<Output, ExitCode> {
    let (plan, mesh) = resolved(cli, path)?;
    let explanation = meshplan::explain::explain(&plan, &mesh);
    rendered(cli, meshplan::render::render(&mesh, &explanation))
}

/// One side of a diff, compiled; `name` is what headers call it (stdin borrows the other
/// side's file name, so generated headers do not differ for that reason alone).
struct Compiled {
    name: String,
    plan: meshplan::model::Plan,
    mesh: meshplan::resolve::Mesh,
    output: Output,
}

impl Compiled {
    fn side(&self) -> meshplan::diff::Side<'_> {
        meshplan::diff::Side {
            name: &self.name,
            plan: &self.plan,
            mesh: &self.mesh,
            output: &self.output,
        }
    }
}

fn compile_side(cli: &Cli, path: &Path, stdin_as: &Path) -> Result<Compiled, ExitCode> {
    let (label, bytes) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        if let Err(err) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes) {
            report_error(
                cli,
                "meshplan::io::read_plan",
                &format!("cannot read the plan from stdin: {err}"),
            );
            return Err(ExitCode::from(2));
        }
        (stdin_as.display().to_string(), bytes)
    } else {
        match std::fs::read(path) {
            Ok(bytes) => (path.display().to_string(), bytes),
            Err(err) => {
                report_error(
                    cli,
                    "meshplan::io::read_plan",
                    &format!("cannot read plan `{}`: {err}", path.display()),
                );
                return Err(ExitCode::from(2));
            }
        }
    };
    let (source, checked) = meshplan::check_bytes(&label, &bytes);
    print_findings(cli, &source, &checked);
    let plan = checked.plan.ok_or(ExitCode::from(2))?;
    let mesh = meshplan::resolve::resolve(&plan, &meshplan::plan_file_name(&source.name));
    let explanation = meshplan::explain::explain(&plan, &mesh);
    let output = rendered(cli, meshplan::render::render(&mesh, &explanation))?;
    let name = if path.as_os_str() == "-" {
        "-".to_owned()
    } else {
        path.display().to_string()
    };
    Ok(Compiled {
        name,
        plan,
        mesh,
        output,
    })
}

fn run_diff(cli: &Cli, old: &Path, new: &Path) -> ExitCode {
    if old.as_os_str() == "-" && new.as_os_str() == "-" {
        report_error(
            cli,
            "meshplan::cli::usage",
            "only one side of a diff can be read from stdin",
        );
        return ExitCode::from(2);
    }
    let (old, new) = match (compile_side(cli, old, new), compile_side(cli, new, old)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let diff = meshplan::diff::diff(&old.side(), &new.side());
    if diff.is_empty() {
        return ExitCode::SUCCESS;
    }
    let color = use_color_on_stdout(cli.color);
    let mut stdout = std::io::stdout().lock();
    for line in &diff.summary {
        let _ = writeln!(stdout, "{line}");
    }
    for file in &diff.files {
        let _ = writeln!(stdout);
        for line in file.lines() {
            let _ = writeln!(stdout, "{}", paint(line, color));
        }
    }
    ExitCode::from(1)
}

fn paint(line: &str, color: bool) -> String {
    let code = match line.as_bytes().first() {
        _ if !color => return line.to_owned(),
        Some(b'+') => "32",
        Some(b'-') => "31",
        Some(b'@') => "36",
        _ => return line.to_owned(),
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}

fn use_color_on_stdout(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn run_explain(cli: &Cli, path: &Path, format: Format) -> ExitCode {
    let (plan, mesh) = match resolved(cli, path) {
        Ok(resolved) => resolved,
        Err(code) => return code,
    };
    let explanation = meshplan::explain::explain(&plan, &mesh);
    let text = match format {
        Format::Json => Ok(json(&explanation)),
        _ => rendered(
            cli,
            meshplan::render::render_explanation(&explanation, format == Format::Markdown),
        ),
    };
    match text {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Pretty JSON with a final newline.
fn json(value: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// `explain --without`: needs the validated plan only, not the resolved bundles.
fn run_what_if(cli: &Cli, path: &Path, format: Format, without: &[String]) -> ExitCode {
    let Some((source, checked)) = load(cli, path) else {
        return ExitCode::from(2);
    };
    print_findings(cli, &source, &checked);
    let Some(plan) = checked.plan else {
        return ExitCode::from(1);
    };
    let plan_file = meshplan::plan_file_name(&source.name);
    let what_if = match meshplan::whatif::what_if(&plan, &plan_file, without) {
        Ok(what_if) => what_if,
        Err(unknown) => return unknown_cluster(cli, &plan, &unknown.name),
    };
    let text = match format {
        Format::Json => Ok(json(&what_if)),
        _ => rendered(
            cli,
            meshplan::render::render_what_if(&what_if, format == Format::Markdown),
        ),
    };
    match text {
        Ok(text) => print_stream(&text),
        Err(code) => code,
    }
}

fn run_build(cli: &Cli, path: &Path, dir: &Path, check: bool) -> ExitCode {
    let output = match compile(cli, path) {
        Ok(output) => output,
        Err(code) => return code,
    };
    if check {
        return match emit::check(dir, &output) {
            Ok(drift) => report_drift(cli, dir, &drift),
            Err(err) => {
                report_error(cli, "meshplan::io::write_output", &err.to_string());
                ExitCode::from(2)
            }
        };
    }
    match emit::build(dir, &output) {
        Ok(written) => {
            if !cli.quiet {
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(
                    stderr,
                    "{}: {} files written, {} unchanged, {} removed",
                    dir.display(),
                    written.changed.len(),
                    written.unchanged,
                    written.removed.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            report_error(cli, "meshplan::io::write_output", &err.to_string());
            ExitCode::from(2)
        }
    }
}

/// Drift is data (what differs), so it goes to stdout, one `kind: path` line each.
fn report_drift(cli: &Cli, dir: &Path, drift: &emit::Drift) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    for (kind, paths) in [
        ("missing", &drift.missing),
        ("changed", &drift.changed),
        ("stale", &drift.stale),
    ] {
        for path in paths {
            let _ = writeln!(stdout, "{kind}: {}", dir.join(path).display());
        }
    }
    if drift.is_empty() {
        if !cli.quiet {
            let _ = writeln!(std::io::stderr(), "{}: up to date", dir.display());
        }
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "{}: not what the plan compiles to; run `meshplan build` and commit the result",
            dir.display()
        );
        ExitCode::from(1)
    }
}

fn run_render(cli: &Cli, path: &Path, name: &str, only: Only, no_cache: bool) -> ExitCode {
    let selection = match only {
        Only::Kubectl => Selection::Kubectl,
        Only::Istio => Selection::Istio,
        Only::Eastwest => Selection::Eastwest,
    };
    let plan_name = path.display().to_string();
    let plan_file = meshplan::plan_file_name(&plan_name);
    let cache = if no_cache { None } else { Cache::open() };
    let cached = cache.as_ref().and_then(|cache| {
        let key = Key::of_file(&plan_file, name, selection, path).ok()?;
        cache.get(&key)
    });
    if let Some(stream) = cached {
        print_summary(cli, &plan_name, &[]);
        return print_stream(&stream);
    }
    let Some(bytes) = read_plan(cli, path) else {
        return ExitCode::from(2);
    };
    let (source, checked) = meshplan::check_bytes(&plan_name, &bytes);
    print_findings(cli, &source, &checked);
    let Some(plan) = checked.plan else {
        return ExitCode::from(1);
    };
    let (mesh, cluster) = meshplan::resolve::resolve_cluster(&plan, &plan_file, name);
    let Some(cluster) = cluster else {
        return unknown_cluster(cli, &plan, name);
    };
    match rendered(
        cli,
        meshplan::render::cluster_stream(&mesh, &cluster, selection),
    ) {
        Ok(Some(stream)) => {
            if let Some(cache) = cache.filter(|_| checked.findings.is_empty()) {
                cache.put(&Key::new(&plan_file, name, selection, &bytes), &stream);
            }
            print_stream(&stream)
        }
        Ok(None) => nothing_to_render(cli, name, only),
        Err(code) => code,
    }
}

fn print_stream(stream: &str) -> ExitCode {
    let _ = std::io::stdout().lock().write_all(stream.as_bytes());
    ExitCode::SUCCESS
}

fn unknown_cluster(cli: &Cli, plan: &meshplan::model::Plan, name: &str) -> ExitCode {
    let names: Vec<&str> = plan.clusters.iter().map(|c| c.name.as_str()).collect();
    let hint = meshplan::suggest::nearest(name, names.iter().copied())
        .map(|best| format!("did you mean `{best}`? "))
        .unwrap_or_default();
    report_error(
        cli,
        "meshplan::cli::unknown_cluster",
        &format!(
            "no cluster `{name}` in the plan; {hint}clusters: {}",
            names.join(", ")
        ),
    );
    ExitCode::from(1)
}

fn nothing_to_render(cli: &Cli, name: &str, only: Only) -> ExitCode {
    let why = match only {
        Only::Eastwest => "it has no east-west gateway (no lb.eastwest)",
        _ => "the plan installs Istio with Helm (see the helm/ values in its bundle)",
    };
    report_error(
        cli,
        "meshplan::cli::nothing_to_render",
        &format!("nothing to render for `{name}`: {why}"),
    );
    ExitCode::from(1)
}

fn run_check(cli: &Cli, path: &Path) -> ExitCode {
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
fn load(cli: &Cli, path: &Path) -> Option<(Source, Checked)> {
    let bytes = read_plan(cli, path)?;
    Some(meshplan::check_bytes(&path.display().to_string(), &bytes))
}

/// The plan file's bytes; `None` (after reporting) when it cannot be read.
fn read_plan(cli: &Cli, path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path)
        .map_err(|err| {
            report_error(
                cli,
                "meshplan::io::read_plan",
                &format!("cannot read plan `{}`: {err}", path.display()),
            );
        })
        .ok()
}

/// An error that is not a plan finding (I/O, usage, a missing cluster), in the chosen format.
fn report_error(cli: &Cli, code: &str, message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = match cli.diagnostics {
        DiagnosticsFormat::Human => writeln!(stderr, "error: {message}"),
        DiagnosticsFormat::Json => writeln!(
            stderr,
            "{}",
            serde_json::json!({
                "code": code, "severity": "error",
                "message": message, "help": null, "file": null,
                "line": null, "column": null, "labels": [],
            })
        ),
    };
}

fn print_findings(cli: &Cli, source: &Source, checked: &Checked) {
    let shown = checked
        .findings
        .iter()
        .filter(|f| !cli.quiet || f.is_error());
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
        }
    }
    print_summary(cli, &source.name, &checked.findings);
}

/// `plans/x.toml: valid`, for people: not with `--quiet` or JSON diagnostics.
fn print_summary(cli: &Cli, plan_name: &str, findings: &[meshplan::diagnostic::Error]) {
    if cli.diagnostics == DiagnosticsFormat::Human && !cli.quiet {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            report::summary(plan_name, findings)
        );
    }
}

fn use_color(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}
