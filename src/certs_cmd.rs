//! `meshplan certs` and `check --certs`: arguments → [`meshplan::certs`], messages on stderr.

use std::io::Write;
use std::path::Path;

use meshplan::certs::{self, BroughtRoot, Options, store};
use meshplan::diagnostic::Error;
use meshplan::model::Plan;

use crate::cli::KeyAlgorithm;

/// What the user asked `meshplan certs` for.
pub struct Request<'a> {
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

fn cluster_names(plan: &Plan) -> Vec<&str> {
    plan.clusters.iter().map(|c| c.name.as_str()).collect()
}

fn read_brought(cert: &Path, key: &Path) -> Result<BroughtRoot, Failure> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|err| {
            failure(
                "meshplan::io::read_plan",
                format!("cannot read `{}`: {err}", path.display()),
                2,
            )
        })
    };
    Ok(BroughtRoot {
        cert_path: cert.display().to_string(),
        cert_pem: read(cert)?,
        key_path: key.display().to_string(),
        key_pem: read(key)?,
    })
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
    let options = Options {
        algorithm: match request.algorithm {
            KeyAlgorithm::Rsa4096 => certs::KeyAlgorithm::Rsa4096,
            KeyAlgorithm::EcdsaP256 => certs::KeyAlgorithm::EcdsaP256,
        },
        root_days: request.root_days,
        intermediate_days: request.intermediate_days,
        root: request
            .root
            .map(|(cert, key)| read_brought(cert, key))
            .transpose()?,
        rotate: request.rotate.map(str::to_owned),
    };
    let done = store::generate(request.out, &names, &options).map_err(|err| match err {
        store::StoreError::Io { .. } => failure("meshplan::io::write_output", err.to_string(), 2),
        _ => failure("meshplan::certs::refused", err.to_string(), 2),
    })?;
    let mut stderr = std::io::stderr().lock();
    for warning in &done.warnings {
        let _ = writeln!(stderr, "warning: {}", meshplan::terminal::text(warning));
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
                "rotated: {rotated} (run its scripts/cacerts.sh, then restart istiod)"
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

/// The `cert` findings of `check --certs DIR`.
pub fn check_dir(plan_path: &Path, dir: &Path, plan: &Plan) -> Vec<Error> {
    let names = cluster_names(plan);
    let read = store::reader(dir);
    let shown = dir.display().to_string();
    let fix = fix_command(plan_path, dir);
    let input = certs::check::Input {
        dir: &shown,
        read: &read,
        fix: &fix,
        now: time::OffsetDateTime::now_utc(),
    };
    certs::check::check(&input, &names)
        .into_iter()
        .map(Error::from)
        .collect()
}
