//! The `meshplan` command: arguments → library stages → files, terminal output, exit code.
//!
//! Exit codes: 0 success (warnings allowed); 1 the plan is invalid; 2 usage error or I/O failure.

mod certs_cmd;
mod cli;
mod completion;
mod emit;

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use cli::{Cli, Color, Command, DiagnosticsFormat, Format, Only};
use meshplan::render::{Output, Selection, printable_word};
use meshplan::{Checked, Source, report, terminal};

/// A compile is hundreds of thousands of small allocations (the plan's strings and nodes, the
/// model, every rendered value); mimalloc serves them with a third less CPU than glibc's
/// malloc (`render --cluster` of a 1,000-cluster plan: 109 -> 75 ms, issue 28), for a peak
/// 14 MB higher (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // When a shell asks for completions (COMPLETE=SHELL), answer and exit; otherwise a no-op.
    clap_complete::CompleteEnv::with_factory(<cli::Parsed as clap::CommandFactory>::command)
        .complete();
    let cli = Cli::parse();
    match &cli.command {
        Command::Check { plan, certs, .. } => run_check(&cli, plan, certs.as_deref()),
        Command::Certs { .. } => run_certs(&cli),
        Command::Explain {
            plan,
            format,
            traffic: true,
            from,
            service,
            ..
        } => run_traffic(&cli, plan, *format, from.as_deref(), service.as_deref()),
        Command::Explain {
            plan,
            format,
            without,
            ..
        } if !without.is_empty() => run_what_if(&cli, plan, *format, without),
        Command::Explain { plan, format, .. } => run_explain(&cli, plan, *format),
        Command::Diff { old, new, .. } => run_diff(&cli, old, new),
        Command::Upgrade {
            old,
            new,
            output,
            force,
            ..
        } => run_upgrade(&cli, old, new, output, *force),
        Command::Completions { shell } => print_completion_script(*shell),
        Command::ExplainCode { code } => run_explain_code(&cli, code),
        Command::Schema => {
            let schema = meshplan::schema::plan_schema();
            let _ = std::io::stdout().lock().write_all(schema.as_bytes());
            ExitCode::SUCCESS
        }
        Command::Build {
            plan,
            output,
            check,
            force,
            ..
        } => run_build(&cli, plan, output, *check, *force),
        Command::Render {
            plan,
            cluster,
            only,
            ..
        } => run_render(&cli, plan, cluster, *only),
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
    // The README first, so the explanation and the plan are gone before the clusters' files
    // are rendered (peak memory, issue 28).
    let explanation = meshplan::explain::explain(&plan, &mesh);
    drop(plan);
    let readme = rendered(
        cli,
        meshplan::render::render_explanation(&explanation, true),
    )?;
    drop(explanation);
    let mut output = rendered(cli, meshplan::render::render_tree(&mesh, readme))?;
    attach(cli, path, &mesh, &mut output)?;
    Ok(output)
}

/// The largest file beside the plan that the tree takes a copy of (Gateway API's
/// experimental CRDs are about 1.3 MB).
const MAX_ATTACHMENT_BYTES: u64 = 16 << 20;

/// Copies the files the plan names beside itself (`gateway_api_crds`) into the tree: paths are
/// relative to the plan's directory (the working directory for a plan from stdin).
fn attach(
    cli: &Cli,
    plan: &Path,
    mesh: &meshplan::resolve::Mesh,
    output: &mut Output,
) -> Result<(), ExitCode> {
    let dir = match plan.parent() {
        Some(dir) if plan.as_os_str() != "-" && !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    for attachment in &mesh.artifacts.attachments {
        let file = dir.join(&attachment.source);
        let fail = |why: String| {
            report_error(
                cli,
                "meshplan::io::read_attachment",
                &format!(
                    "cannot copy `{}` (gateway_api_crds) into the tree: {why}",
                    file.display()
                ),
            );
            ExitCode::from(2)
        };
        let reader = std::fs::File::open(&file).map_err(|e| fail(e.to_string()))?;
        let mut bytes = Vec::new();
        reader
            .take(MAX_ATTACHMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > MAX_ATTACHMENT_BYTES {
            return Err(fail("larger than 16 MiB".to_owned()));
        }
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".to_owned()))?;
        output.insert(attachment.tree_path.clone(), text);
    }
    Ok(())
}

/// The day findings are dated (the end-of-life rule): `MESHPLAN_TODAY` (`YYYY-MM-DD`), else
/// the clock's, in UTC.
fn today(cli: &Cli) -> Option<meshplan::releases::Day> {
    match std::env::var("MESHPLAN_TODAY") {
        Ok(text) => {
            let day = meshplan::releases::Day::parse(&text);
            if day.is_none() {
                report_error(
                    cli,
                    "meshplan::cli::usage",
                    &format!("MESHPLAN_TODAY=`{text}` is not a date: write YYYY-MM-DD"),
                );
            }
            day
        }
        Err(_) => {
            let now = time::OffsetDateTime::now_utc().date();
            Some(meshplan::releases::Day::new(
                u16::try_from(now.year()).unwrap_or(u16::MAX),
                u8::from(now.month()),
                now.day(),
            ))
        }
    }
}

/// Checks a plan's bytes, dated [`today`]; `None` (after reporting) when the date is invalid.
fn check_bytes(cli: &Cli, name: &str, bytes: &[u8]) -> Option<(Source, Checked)> {
    Some(meshplan::check_bytes_on(name, bytes, today(cli)?))
}

/// One side of a diff, compiled; `name` is the file, or `<stdin>`. (Generated files do not
/// name the plan, so a renamed plan compiles to the same tree.)
struct Compiled {
    name: String,
    source: Source,
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

fn compile_side(cli: &Cli, path: &Path) -> Result<Compiled, ExitCode> {
    let (label, bytes) = read_plan(cli, path).ok_or(ExitCode::from(2))?;
    let (source, checked) = check_bytes(cli, &label, &bytes).ok_or(ExitCode::from(2))?;
    print_findings(cli, &source, &checked);
    let plan = checked.plan.ok_or(ExitCode::from(2))?;
    let mesh = meshplan::resolve::resolve(&plan, &meshplan::plan_file_name(&source.name));
    let explanation = meshplan::explain::explain(&plan, &mesh);
    let mut output = rendered(cli, meshplan::render::render(&mesh, &explanation))?;
    attach(cli, path, &mesh, &mut output)?;
    Ok(Compiled {
        name: terminal::text(&source.name).into_owned(),
        source,
        plan,
        mesh,
        output,
    })
}

/// What diagnostics and the diff summary call a plan read from stdin.
const STDIN: &str = "<stdin>";

fn run_diff(cli: &Cli, old: &Path, new: &Path) -> ExitCode {
    if old.as_os_str() == "-" && new.as_os_str() == "-" {
        report_error(
            cli,
            "meshplan::cli::usage",
            "only one side of a diff can be read from stdin",
        );
        return ExitCode::from(2);
    }
    let (old, new) = match (compile_side(cli, old), compile_side(cli, new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let diff = meshplan::diff::diff(&old.side(), &new.side());
    if diff.is_empty() {
        // Said on stdout, as terraform does: an empty output reads like a failure in a PR.
        let _ = writeln!(std::io::stdout().lock(), "no changes");
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

/// `meshplan upgrade`: both plans compiled, the pair checked by the upgrade rules (findings
/// point into the new plan), then the procedure and the files it uses written to DIR.
fn run_upgrade(cli: &Cli, old: &Path, new: &Path, dir: &Path, force: bool) -> ExitCode {
    if old.as_os_str() == "-" && new.as_os_str() == "-" {
        report_error(
            cli,
            "meshplan::cli::usage",
            "only one side of an upgrade can be read from stdin",
        );
        return ExitCode::from(2);
    }
    let (old, new) = match (compile_side(cli, old), compile_side(cli, new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let raw = meshplan::parse::parse(&new.source).ok();
    let findings: Vec<meshplan::diagnostic::Error> =
        meshplan::validate::upgrade::check_pair(&old.plan, &new.plan, raw.as_ref())
            .into_iter()
            .map(Into::into)
            .collect();
    if !findings.is_empty() {
        print_finding_list(cli, &new.source, &findings);
        print_summary(cli, &new.source.name, &findings);
        return ExitCode::from(1);
    }
    let upgrade = meshplan::resolve::upgrade::upgrade(&old.plan, &old.mesh, &new.plan, &new.mesh);
    let output = match rendered(
        cli,
        meshplan::render::render_upgrade(&upgrade, &old.mesh, &old.output, &new.output),
    ) {
        Ok(output) => output,
        Err(code) => return code,
    };
    match emit::build(dir, &output, emit::Options { force }) {
        Ok(written) => {
            if !cli.quiet {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{}: {} files written, {} unchanged, {} removed; run {}",
                    terminal::path(dir),
                    written.changed.len(),
                    written.unchanged,
                    written.removed.len(),
                    printable_word(&format!("{}/upgrade.sh", terminal::path(dir)))
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

/// `explain --traffic`: the traffic model, from the validated plan alone.
fn run_traffic(
    cli: &Cli,
    path: &Path,
    format: Format,
    from: Option<&str>,
    service: Option<&str>,
) -> ExitCode {
    let Some((source, checked)) = load(cli, path) else {
        return ExitCode::from(2);
    };
    print_findings(cli, &source, &checked);
    let Some(plan) = checked.plan else {
        return ExitCode::from(1);
    };
    if let Some(name) = from
        && !plan.clusters.iter().any(|c| c.name == name)
    {
        return unknown_cluster(cli, &plan, name);
    }
    let plan_file = meshplan::plan_file_name(&source.name);
    let traffic = meshplan::resolve::traffic::traffic(&plan, &plan_file, from, service);
    if let Some(name) = service
        && traffic.services.is_empty()
    {
        let all = meshplan::resolve::traffic::traffic(&plan, &plan_file, Some(""), None);
        let names: Vec<String> = all.services.iter().map(|s| s.service.clone()).collect();
        let hint = meshplan::suggest::nearest(name, names.iter().map(String::as_str))
            .map(|best| format!("did you mean `{best}`? "))
            .unwrap_or_default();
        report_error(
            cli,
            "meshplan::cli::unknown_service",
            &format!(
                "no service `{name}` in the plan or its samples; {hint}services: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        );
        return ExitCode::from(1);
    }
    let text = match format {
        Format::Json => Ok(json(&traffic)),
        _ => rendered(
            cli,
            meshplan::render::render_traffic(&traffic, format == Format::Markdown),
        ),
    };
    match text {
        Ok(text) => print_stream(&text),
        Err(code) => code,
    }
}

fn run_build(cli: &Cli, path: &Path, dir: &Path, check: bool, force: bool) -> ExitCode {
    let output = match compile(cli, path) {
        Ok(output) => output,
        Err(code) => return code,
    };
    if check {
        return match emit::check(dir, &output) {
            Ok(drift) => report_drift(cli, path, dir, &drift),
            Err(err) => {
                report_error(cli, "meshplan::io::write_output", &err.to_string());
                ExitCode::from(2)
            }
        };
    }
    match emit::build(dir, &output, emit::Options { force }) {
        Ok(written) => {
            if !cli.quiet {
                let mut stderr = std::io::stderr().lock();
                if written.recovered {
                    let _ = writeln!(
                        stderr,
                        "{}: put the old tree back first (a build was interrupted)",
                        terminal::path(dir)
                    );
                }
                let _ = writeln!(
                    stderr,
                    "{}: {} files written, {} unchanged, {} removed",
                    terminal::path(dir),
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

/// Drift is data (what differs), so it goes to stdout, one `kind: path` line each; what to do
/// about it goes to stderr, as a command to paste.
fn report_drift(cli: &Cli, plan: &Path, dir: &Path, drift: &emit::Drift) -> ExitCode {
    let rebuild = terminal::text(&format!(
        "meshplan build {} -o {}",
        printable_word(&plan.display().to_string()),
        printable_word(&terminal::path(dir).to_string())
    ))
    .into_owned();
    let mut stderr = std::io::stderr().lock();
    if drift.no_dir {
        let _ = writeln!(
            stderr,
            "{}: does not exist; run `{rebuild}` and commit the result",
            terminal::path(dir)
        );
        return ExitCode::from(1);
    }
    if drift.is_empty() {
        if !cli.quiet {
            let _ = writeln!(stderr, "{}: up to date", terminal::path(dir));
        }
        return ExitCode::SUCCESS;
    }
    if let Some(other) = &drift.built_by_other {
        let other = match other.as_str() {
            "" => "an older meshplan".to_owned(),
            version => format!("meshplan {version}"),
        };
        let _ = writeln!(
            stderr,
            "{}: built by {other}; this is meshplan {}, so some differences may come from the upgrade rather than the plan",
            terminal::path(dir),
            env!("CARGO_PKG_VERSION")
        );
    }
    let mut stdout = std::io::stdout().lock();
    for (kind, paths) in [
        ("missing", &drift.missing),
        ("changed", &drift.changed),
        ("stale", &drift.stale),
    ] {
        for path in paths {
            let _ = writeln!(stdout, "{kind}: {}", terminal::path(&dir.join(path)));
        }
    }
    let _ = writeln!(
        stderr,
        "{}: not what the plan compiles to; run `{rebuild}` and commit the result",
        terminal::path(dir)
    );
    ExitCode::from(1)
}

fn run_render(cli: &Cli, path: &Path, name: &str, only: Only) -> ExitCode {
    let selection = match only {
        Only::Kubectl => Selection::Kubectl,
        Only::Istio => Selection::Istio,
        Only::Eastwest => Selection::Eastwest,
    };
    let Some((plan_name, bytes)) = read_plan(cli, path) else {
        return ExitCode::from(2);
    };
    let plan_file = meshplan::plan_file_name(&plan_name);
    let Some((source, checked)) = check_bytes(cli, &plan_name, &bytes) else {
        return ExitCode::from(2);
    };
    print_findings(cli, &source, &checked);
    let Some(plan) = checked.plan else {
        return ExitCode::from(1);
    };
    let (mesh, cluster) = meshplan::resolve::resolve_cluster(&plan, &plan_file, name);
    let Some(cluster) = cluster else {
        return unknown_cluster(cli, &plan, name);
    };
    let code = match rendered(
        cli,
        meshplan::render::cluster_stream(&mesh, &cluster, selection),
    ) {
        Ok(Some(stream)) => print_stream(&stream),
        Ok(None) => nothing_to_render(cli, name, only),
        Err(code) => code,
    };
    // The process ends here: the plan, its model and its text are only memory, which the
    // kernel takes back at once; freeing their allocations one by one is ~5% of a render of
    // 1,000 clusters (issue 28).
    std::mem::forget((plan, mesh, cluster, source, bytes, checked.findings));
    code
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

fn run_check(cli: &Cli, path: &Path, certs: Option<&Path>) -> ExitCode {
    let Some((source, checked)) = load(cli, path) else {
        return ExitCode::from(2);
    };
    let mut valid = checked.is_valid();
    print_findings(cli, &source, &checked);
    if let (Some(dir), Some(plan)) = (certs, &checked.plan) {
        let findings = certs_cmd::check_dir(path, dir, plan);
        valid &= findings.iter().all(|f| !f.is_error());
        // The CA directory has its own verdict: its findings are not the plan's.
        let name = format!(
            "{} (the CA files of {} cluster{})",
            dir.display(),
            plan.clusters.len(),
            if plan.clusters.len() == 1 { "" } else { "s" }
        );
        print_finding_list(cli, &source, &findings);
        print_summary(cli, &name, &findings);
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_certs(cli: &Cli) -> ExitCode {
    let Command::Certs {
        plan,
        out,
        root_cert,
        root_key,
        key_algorithm,
        root_days,
        intermediate_days,
        rotate,
        ..
    } = &cli.command
    else {
        return ExitCode::from(2);
    };
    let (plan_model, _) = match resolved(cli, plan) {
        Ok(resolved) => resolved,
        Err(code) => return code,
    };
    let request = certs_cmd::Request {
        plan_path: plan.as_path(),
        out: out.as_path(),
        root: root_cert.as_deref().zip(root_key.as_deref()),
        algorithm: *key_algorithm,
        root_days: *root_days,
        intermediate_days: *intermediate_days,
        rotate: rotate.as_deref(),
    };
    match certs_cmd::run(&plan_model, &request, cli.quiet) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report_error(cli, failure.code, &failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

/// The registration script for `shell`: it calls `COMPLETE=SHELL meshplan -- WORDS...`, which
/// clap_complete answers at the top of `main` (see `completion.rs`).
fn print_completion_script(shell: clap_complete::Shell) -> ExitCode {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Zsh => &Zsh,
        _ => return ExitCode::from(2),
    };
    let mut stdout = std::io::stdout().lock();
    match completer.write_registration("COMPLETE", "meshplan", "meshplan", "meshplan", &mut stdout)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

/// Prints a code's entry of docs/diagnostics.md; an unknown code is an error with the nearest.
fn run_explain_code(cli: &Cli, code: &str) -> ExitCode {
    if let Some(entry) = meshplan::codes::entry(code) {
        let _ = writeln!(std::io::stdout().lock(), "{entry}");
        return ExitCode::SUCCESS;
    }
    // Compared without the prefix every code shares, which would make any word look close.
    let short = |c: &'static str| c.trim_start_matches("meshplan::");
    let given = meshplan::codes::full(code);
    let given = given.trim_start_matches("meshplan::");
    let hint = match meshplan::suggest::nearest(given, meshplan::codes::codes().map(short)) {
        Some(nearest) => format!("; did you mean meshplan::{nearest}?"),
        None => "; the codes are listed in docs/diagnostics.md".to_owned(),
    };
    report_error(
        cli,
        "meshplan::cli::unknown_code",
        &format!("no diagnostic has the code `{code}`{hint}"),
    );
    ExitCode::from(1)
}

/// Reads and checks a plan; `None` (after reporting) when the file cannot be read.
fn load(cli: &Cli, path: &Path) -> Option<(Source, Checked)> {
    let (label, bytes) = read_plan(cli, path)?;
    check_bytes(cli, &label, &bytes)
}

/// The plan's name as findings show it and its bytes; `-` is standard input, shown as
/// `<stdin>`, as kubectl, helm and terraform read it. `None` (after reporting) when it cannot
/// be read or is too large.
fn read_plan(cli: &Cli, path: &Path) -> Option<(String, Vec<u8>)> {
    if path.as_os_str() == "-" {
        let bytes = read_capped(cli, std::io::stdin().lock(), "the plan from stdin")?;
        return Some((STDIN.to_owned(), bytes));
    }
    // Exact here: `report_error` escapes it for people, JSON keeps it.
    let what = format!("plan `{}`", path.display());
    match std::fs::File::open(path) {
        Ok(file) => read_capped(cli, file, &what).map(|bytes| (path.display().to_string(), bytes)),
        Err(err) => {
            report_error(
                cli,
                "meshplan::io::read_plan",
                &format!("cannot read {what}: {err}"),
            );
            None
        }
    }
}

/// The largest plan meshplan reads: far above any real plan (1,000 clusters and 50,000 nodes
/// are 6 MB), and a bound on what `/dev/zero` or an endless pipe can make it hold in memory.
const MAX_PLAN_BYTES: u64 = 64 << 20;

/// Reads at most [`MAX_PLAN_BYTES`]; `None` (after reporting) on an error or a longer input.
fn read_capped(cli: &Cli, reader: impl std::io::Read, what: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Err(err) = reader.take(MAX_PLAN_BYTES + 1).read_to_end(&mut bytes) {
        report_error(
            cli,
            "meshplan::io::read_plan",
            &format!("cannot read {what}: {err}"),
        );
        return None;
    }
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        report_error(
            cli,
            "meshplan::io::plan_too_large",
            &format!("{what} is larger than 64 MiB, the most meshplan reads; is it the plan?"),
        );
        return None;
    }
    Some(bytes)
}

/// An error that is not a plan finding (I/O, usage, a missing cluster), in the chosen format.
pub(crate) fn report_error(cli: &Cli, code: &str, message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = match cli.diagnostics {
        // Messages quote paths and names as given: escaped, so they cannot forge lines.
        // The code as JSON gives it, so a human report can be looked up (`explain-code`).
        DiagnosticsFormat::Human => writeln!(stderr, "error[{code}]: {}", terminal::text(message)),
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
    print_finding_list(cli, source, &checked.findings);
    print_summary(cli, &source.name, &checked.findings);
}

/// Findings in the chosen format (errors only with `--quiet`), without a summary.
fn print_finding_list(cli: &Cli, source: &Source, findings: &[meshplan::diagnostic::Error]) {
    let shown = findings.iter().filter(|f| !cli.quiet || f.is_error());
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
