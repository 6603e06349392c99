//! `meshplan certs` and `check --certs`: arguments → [`meshplan::certs`], messages on stderr.

use std::io::Write;
use std::path::Path;

use meshplan::certs::{self, Options, store};
use meshplan::diagnostic::Error;
use meshplan::model::Plan;

use crate::cli::KeyAlgorithm;

/// What the user asked `meshplan certs` for.
pub struct Request<'a> {
    /// The plan file as the user named it (for the commands messages suggest).
    pub plan_path: &'a Path,
    pub out: &'a Path,
    pub root: Option<(&'a Path, &'a Path)>,
    pub algorithm: KeyAlgorithm,
    pub root_days: u32,
    pub intermediate_days: u32,
    pub rotate: Option<&'a str>,
}

/// Why it stopped: a code, a message and the exit code.
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub exit: u8,
}

fn failure(code: &'static str, message: String, exit: u8) -> Failure {
    Failure {
        code,
        message,
        exit,
    }
}

/// The command that makes what is missing, for help texts: the plan and DIR as given.
pub fn fix_command(plan: &Path, dir: &Path) -> String {
    format!("meshplan certs {} --out {}", plan.display(), dir.display())
}

/// What follows a re-issued intermediate on `cluster`: its cacerts Secret, then a restart of
/// the istiod that reads it. A remote runs no istiod (its primary's signs its workloads), so
/// nothing restarts there.
pub fn after_rotation(plan: &Plan, cluster: &str) -> String {
    let Some(found) = plan.clusters.iter().find(|c| c.name == cluster) else {
        return String::new();
    };
    let script = meshplan::render::printable_word(&format!("{cluster}/scripts/cacerts.sh"));
    let cacerts = format!("`bash {script}` in the built tree");
    match &found.primary {
        Some(primary) if found.role == meshplan::raw::Role::Remote => format!(
            "{cacerts}; {cluster} runs no istiod (its workloads' certificates come from {primary}'s), so nothing restarts"
        ),
        _ => format!(
            "{cacerts}, then `kubectl --context {} -n istio-system rollout restart deployment/istiod`",
            meshplan::render::printable_word(&found.context)
        ),
    }
}

/// `generating RSA 4096 keys: 3 of 5` on stderr: rewritten in place on a terminal, one line
/// per key elsewhere (a CI log).
fn key_progress(done: usize, total: usize) {
    use std::io::IsTerminal;
    let mut stderr = std::io::stderr().lock();
    let line = format!("generating RSA 4096 keys: {done} of {total}");
    let _ = if stderr.is_terminal() {
        let end = if done == total { "\n" } else { "" };
        write!(stderr, "\r{line}{end}")
    } else {
        writeln!(stderr, "{line}")
    };
}

fn cluster_names(plan: &Plan) -> Vec<&str> {
    plan.clusters.iter().map(|c| c.name.as_str()).collect()
}

fn refusal(err: store::StoreError) -> Failure {
    match err {
        store::StoreError::Io { .. }
        | store::StoreError::Staging { .. }
        | store::StoreError::Commit { .. } => {
            failure("meshplan::io::write_output", err.to_string(), 2)
        }
        _ => failure("meshplan::certs::refused", err.to_string(), 2),
    }
}

/// Runs `meshplan certs`.
pub fn run(plan: &Plan, request: &Request, quiet: bool) -> Result<(), Failure> {
    let names = cluster_names(plan);
    if let Some(rotate) = request.rotate
        && !names.contains(&rotate)
    {
        let hint = meshplan::suggest::nearest(rotate, names.iter().copied())
            .map(|best| format!("did you mean `{best}`? "))
            .unwrap_or_default();
        return Err(failure(
            "meshplan::cli::unknown_cluster",
            format!(
                "--rotate: no cluster `{rotate}` in the plan; {hint}clusters: {}",
                names.join(", ")
            ),
            1,
        ));
    }
    // The place first: a refused DIR is refused before anything else is read.
    let instead = format!(
        "`meshplan certs {} --out ~/.meshplan/certs/{}`",
        meshplan::render::printable_word(&request.plan_path.display().to_string()),
        meshplan::render::printable_word(&plan.mesh.id)
    );
    store::check_out_path_for(request.out, &instead).map_err(refusal)?;
    let options = Options {
        algorithm: match request.algorithm {
            KeyAlgorithm::Rsa4096 => certs::KeyAlgorithm::Rsa4096,
            KeyAlgorithm::EcdsaP256 => certs::KeyAlgorithm::EcdsaP256,
        },
        root_days: request.root_days,
        intermediate_days: request.intermediate_days,
        root: request
            .root
            .map(|(cert, key)| store::read_brought(cert, key))
            .transpose()
            .map_err(refusal)?,
        rotate: request.rotate.map(str::to_owned),
        // RSA 4096 keys take about a second each: say so rather than sit silent.
        progress: (!quiet && request.algorithm == KeyAlgorithm::Rsa4096).then_some(key_progress),
        crl_sign: false,
    };
    if let Some(trust) = &plan.trust {
        return run_phases(trust, request, &options, quiet);
    }
    let done = store::generate(request.out, &names, &options).map_err(refusal)?;
    let mut stderr = std::io::stderr().lock();
    for warning in &done.warnings {
        let _ = writeln!(stderr, "warning: {}", meshplan::terminal::text(warning));
    }
    if !done.finished.is_empty() {
        let _ = writeln!(
            stderr,
            "{}: finished an interrupted run first: {}",
            request.out.display(),
            done.finished.join(", ")
        );
    }
    if !quiet {
        let root = match done.root {
            store::RootOutcome::Generated => "root generated",
            store::RootOutcome::Kept => "root kept",
            store::RootOutcome::Brought => "root brought in",
        };
        let mut parts = vec![root.to_owned()];
        for (what, list) in [
            ("new intermediates", &done.issued),
            ("certified existing keys", &done.reissued),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what}: {}", list.join(", ")));
            }
        }
        if let Some(rotated) = &done.rotated {
            parts.push(format!(
                "rotated: {rotated} (next: {})",
                after_rotation(plan, rotated)
            ));
        }
        parts.push(format!("{} kept", done.kept.len()));
        parts.push(format!("{} files written", done.written.len()));
        let _ = writeln!(
            stderr,
            "{}: {}",
            meshplan::terminal::path(request.out),
            parts.join("; ")
        );
    }
    Ok(())
}

/// `meshplan certs` for a plan with `[mesh.trust]` phases: every root and what each phase
/// needs, one directory per root.
fn run_phases(
    trust: &meshplan::trust::Trust,
    request: &Request,
    options: &Options,
    quiet: bool,
) -> Result<(), Failure> {
    let done = meshplan::trust::ca::generate(request.out, trust, options).map_err(refusal)?;
    let mut stderr = std::io::stderr().lock();
    for root in &done {
        for warning in &root.generated.warnings {
            let _ = writeln!(stderr, "warning: {}", meshplan::terminal::text(warning));
        }
    }
    if quiet {
        return Ok(());
    }
    for root in &done {
        let g = &root.generated;
        let mut parts = vec![
            match g.root {
                store::RootOutcome::Generated => "root generated",
                store::RootOutcome::Kept => "root kept",
                store::RootOutcome::Brought => "root brought in",
            }
            .to_owned(),
        ];
        if !g.issued.is_empty() {
            parts.push(format!("new intermediates: {}", g.issued.join(", ")));
        }
        if !g.reissued.is_empty() {
            parts.push(format!(
                "certified existing keys: {}",
                g.reissued.join(", ")
            ));
        }
        parts.push(format!("{} kept", g.kept.len()));
        if root.crl_written {
            parts.push("ca-crl.pem written".to_owned());
        }
        parts.push(format!(
            "{} files written",
            g.written.len() + usize::from(root.crl_written)
        ));
        if let Some(print) = &root.fingerprint {
            parts.push(format!("SHA256 {print}"));
        }
        let _ = writeln!(
            stderr,
            "{}: {}",
            meshplan::terminal::path(&request.out.join(&root.root)),
            parts.join("; ")
        );
    }
    Ok(())
}

/// The `cert` findings of `check --certs DIR`.
pub fn check_dir(plan_path: &Path, dir: &Path, plan: &Plan) -> Vec<Error> {
    let names = cluster_names(plan);
    let inspected = store::Inspected::open(dir, &names);
    let read = |rel: &str| inspected.read(rel);
    let shown = dir.display().to_string();
    let fix = fix_command(plan_path, dir);
    if matches!(std::fs::symlink_metadata(dir), Err(err) if err.kind() == std::io::ErrorKind::NotFound)
    {
        // One finding for a directory that is not there, not four files per cluster.
        let missing = certs::check::CertError::MissingFile {
            whose: "the mesh's CA directory".to_owned(),
            file: format!("{shown}/"),
            fix,
        };
        return vec![Error::from(missing)];
    }
    let after_rotation = |cluster: &str| after_rotation(plan, cluster);
    if let Some(trust) = &plan.trust {
        let checked = meshplan::trust::ca::check_dir(
            dir,
            trust,
            &plan.mesh.trust_domain,
            &fix,
            &after_rotation,
            time::OffsetDateTime::now_utc(),
        );
        return checked.findings;
    }
    let input = certs::check::Input {
        dir: &shown,
        read: &read,
        problems: &inspected.problems,
        trust_domain: &plan.mesh.trust_domain,
        fix: &fix,
        after_rotation: &after_rotation,
        now: time::OffsetDateTime::now_utc(),
    };
    certs::check::check(&input, &names)
        .into_iter()
        .map(Error::from)
        .collect()
}
