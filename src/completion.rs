//! Shell completion that knows the plan: `--cluster`, `--without` and `--rotate` complete the
//! names of the clusters in the plan given on the same command line, as kubectl completes
//! resources. The shell asks meshplan itself (clap_complete's dynamic completion: the script
//! `meshplan completions SHELL` prints calls `COMPLETE=SHELL meshplan -- WORDS...`), so the
//! names are always the plan's current ones.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::CompletionCandidate;

use crate::cli::Parsed;

/// The most of a plan read to complete a name (plans are capped at 64 MiB everywhere).
const PLAN_CAP: u64 = 64 << 20;

/// The plan's cluster names that start with `current`.
pub fn cluster_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let words: Vec<OsString> = std::env::args_os().collect();
    let Some(plan) = plan_argument(&words) else {
        return Vec::new();
    };
    let current = current.to_string_lossy();
    names_in(Path::new(&plan))
        .into_iter()
        .filter(|name| name.starts_with(current.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// The cluster names of the plan at `path`, in plan order; none when it cannot be read or
/// parsed (completion never reports errors).
fn names_in(path: &Path) -> Vec<String> {
    let Ok((bytes, _)) = meshplan::fsread::read_path(path, PLAN_CAP) else {
        return Vec::new();
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Vec::new();
    };
    let source = meshplan::Source::new(path.display().to_string(), text);
    meshplan::parse::parse(&source)
        .map(|plan| {
            plan.cluster
                .iter()
                .map(|c| c.get_ref().name.get_ref().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The PLAN of the command being completed: the subcommand's first positional word. `words`
/// is this process's arguments, `meshplan -- meshplan SUBCOMMAND ARGS...` when the shell asks.
fn plan_argument(words: &[OsString]) -> Option<OsString> {
    let line = words
        .iter()
        .position(|w| w == "--")
        .map(|i| &words[i + 1..])?;
    let subcommand = line.get(1)?.to_str()?;
    let command = Parsed::command();
    let sub = command.find_subcommand(subcommand)?;
    let takes_value = |word: &str| {
        sub.get_arguments().any(|arg| {
            arg.get_action().takes_values()
                && (arg.get_long().is_some_and(|l| word == format!("--{l}"))
                    || arg.get_short().is_some_and(|s| word == format!("-{s}")))
        })
    };
    let mut rest = line.iter().skip(2);
    while let Some(word) = rest.next() {
        let text = word.to_string_lossy();
        if text == "-" {
            return None; // stdin: nothing to read ahead of the command
        }
        if text.starts_with('-') {
            if takes_value(&text) {
                rest.next();
            }
            continue;
        }
        return Some(word.clone());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_plan_is_the_first_positional_word_after_the_subcommand() {
        let plan =
            |line: &str| plan_argument(&words(line)).map(|p| p.into_string().unwrap_or_default());
        assert_eq!(
            plan("meshplan -- meshplan render p.toml --cluster c"),
            Some("p.toml".to_owned())
        );
        assert_eq!(
            plan("meshplan -- meshplan explain --format json p.toml --without "),
            Some("p.toml".to_owned())
        );
        assert_eq!(
            plan("meshplan -- meshplan certs -o ca --key-algorithm rsa4096 p.toml --rotate "),
            Some("p.toml".to_owned())
        );
        assert_eq!(plan("meshplan -- meshplan render - --cluster "), None);
        assert_eq!(plan("meshplan render p.toml"), None);
    }
}
