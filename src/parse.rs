//! Stage 1: `&Source` → `raw::Plan`. TOML syntax and shape (types, missing and unknown keys).
//!
//! The first problem stops parsing: later stages need a complete `raw::Plan`. Diagnostics here
//! form the `plan` family.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use crate::{raw, source::Source, suggest};

mod fast;
mod pieces;

/// The plan as [`fast`]'s reader gives it, `None` where [`parse`] goes on to the `toml` crate:
/// for tests that prove both give the same plan.
#[doc(hidden)]
pub fn fast(source: &Source) -> Option<raw::Plan> {
    fast::parse(&source.text)
}

/// The plan parsed in pieces whenever it has `min_clusters` clusters or more, `None` where
/// [`parse`] would parse the whole text: for tests that prove both give the same plan.
#[doc(hidden)]
pub fn in_pieces(source: &Source, min_clusters: usize) -> Option<raw::Plan> {
    pieces::parse_from(&source.text, min_clusters)
}

/// Problems with the plan's syntax or shape (`meshplan::plan::*`).
#[derive(Debug, Error, Diagnostic)]
pub enum PlanError {
    /// The file is not UTF-8.
    #[error("the plan is not UTF-8 text")]
    #[diagnostic(
        code(meshplan::plan::encoding),
        help(
            "TOML files must be UTF-8; re-save the plan as UTF-8 (check for a stray binary or UTF-16 file)"
        )
    )]
    Encoding {
        /// The first byte that is not UTF-8.
        #[label("first invalid byte")]
        at: SourceSpan,
    },

    /// TOML syntax error.
    #[error("invalid TOML: {message}")]
    #[diagnostic(code(meshplan::plan::syntax))]
    Syntax {
        /// What the TOML parser said.
        message: String,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A key the plan format does not have.
    #[error("unknown key `{key}`")]
    #[diagnostic(code(meshplan::plan::unknown_key))]
    UnknownKey {
        /// The key as written.
        key: String,
        #[label("not a key of this table")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A required key is absent.
    #[error("missing key `{key}`")]
    #[diagnostic(code(meshplan::plan::missing_key))]
    MissingKey {
        /// The missing key.
        key: String,
        #[label("{label}")]
        at: SourceSpan,
        /// What the label says.
        label: String,
        #[help]
        help: String,
    },

    /// A value of the wrong TOML type, or a number out of range.
    #[error("{subject} {problem}")]
    #[diagnostic(code(meshplan::plan::invalid_type))]
    InvalidType {
        /// "`asn`" or "a value".
        subject: String,
        /// e.g. "must be a whole number from 0 to 4294967295, not the string \"64512\"".
        problem: String,
        #[label("wrong type")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A value outside a fixed set of choices.
    #[error("`{value}` is not an allowed value{of_key}")]
    #[diagnostic(code(meshplan::plan::invalid_value))]
    InvalidValue {
        /// The value as written.
        value: String,
        /// " of `role`", or empty when the key is unknown.
        of_key: String,
        #[label("not allowed here")]
        at: SourceSpan,
        #[help]
        help: String,
    },
}

/// Parses the plan text into its raw mirror.
pub fn parse(source: &Source) -> Result<raw::Plan, PlanError> {
    // The TOML plans are written in, by our own reader; anything else, the `toml` crate's.
    if let Some(plan) = fast::parse(&source.text) {
        return Ok(plan);
    }
    // A large plan in pieces on every core; any problem, and a small plan, the whole text.
    if let Some(plan) = pieces::parse(&source.text) {
        return Ok(plan);
    }
    whole(source)
}

/// The whole text in one `toml` parse: what [`parse`] falls back to, and what its pieces must
/// agree with.
pub fn whole(source: &Source) -> Result<raw::Plan, PlanError> {
    toml::from_str(&source.text).map_err(|err| classify(&err, &source.text))
}

/// Maps a TOML/serde error to one of our codes. serde formats its data-model errors in a fixed
/// way ("unknown field `x`, expected one of ..."), which is what lets us name the key and offer
/// the nearest allowed one.
fn classify(err: &toml::de::Error, text: &str) -> PlanError {
    let message = err.message().to_owned();
    let span = err.span().unwrap_or(0..0);
    let key = key_before(text, span.start);
    let at: SourceSpan = span.clone().into();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let key = first_quoted(rest).unwrap_or_default();
        let help = choice_help(&key, rest, "keys allowed in this table");
        PlanError::UnknownKey { key, at, help }
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let value = first_quoted(rest).unwrap_or_default();
        let help = choice_help(&value, rest, "allowed values");
        let of_key = key.map(|k| format!(" of `{k}`")).unwrap_or_default();
        PlanError::InvalidValue {
            value,
            of_key,
            at,
            help,
        }
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        missing_key(first_quoted(rest).unwrap_or_default(), at)
    } else if let Some((found, expected)) = type_mismatch(&message) {
        // Inside an array the error has no key of its own: the line's key is the array's.
        let entry_of = key.is_none().then(|| line_key(text, span.start)).flatten();
        let list_key = key.as_deref().or(entry_of.as_deref());
        if let Some(example) = list_key.and_then(list_of_tables_example) {
            let subject = match (&key, &entry_of) {
                (Some(k), _) => format!("`{k}`"),
                (None, Some(k)) => format!("each entry of `{k}`"),
                (None, None) => "a value".to_owned(),
            };
            let expected = if key.is_some() {
                "a list of tables"
            } else {
                "a table"
            };
            return PlanError::InvalidType {
                subject,
                problem: format!("must be {expected}, not {found}"),
                at,
                help: format!("write it as a list of inline tables: `{example}`"),
            };
        }
        let subject = key.map_or_else(|| "a value".to_owned(), |k| format!("`{k}`"));
        let problem = format!("must be {expected}, not {found}");
        let help = type_help(&expected, text.get(span).unwrap_or_default());
        PlanError::InvalidType {
            subject,
            problem,
            at,
            help,
        }
    } else {
        let help = syntax_help(&message, text, span.start);
        PlanError::Syntax { message, at, help }
    }
}

/// Tables are written as headers, plain keys as `key = value`.
fn missing_key(key: String, at: SourceSpan) -> PlanError {
    let help = match key.as_str() {
        "mesh" => {
            "start the plan with a `[mesh]` table: `[mesh]` then `id = \"my-mesh\"`".to_owned()
        }
        "istio" => {
            "add a `[mesh.istio]` table with `version = \"1.24.2\"` (the Istio release to target)"
                .to_owned()
        }
        _ => format!("add `{key} = ...` to this table (see docs/plan-format.md)"),
    };
    let label = match key.as_str() {
        "mesh" => "the plan has no [mesh] table".to_owned(),
        _ => format!("this table needs `{key}`"),
    };
    PlanError::MissingKey {
        key,
        at,
        label,
        help,
    }
}

/// `(found, expected)` from serde's "invalid type: string \"x\", expected u32" and
/// "invalid value: integer `-1`, expected u32", in words a plan author uses.
fn type_mismatch(message: &str) -> Option<(String, String)> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .or_else(|| message.strip_prefix("invalid length "))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let expected = match expected {
        "u32" => "a whole number from 0 to 4294967295",
        "u16" => "a whole number from 0 to 65535",
        "u8" => "a whole number from 0 to 255",
        "i64" | "u64" | "usize" | "i32" => "an integer, without quotes",
        "a sequence" => "a list, e.g. `[\"a\", \"b\"]`",
        "a string" => "a string in double quotes",
        "a boolean" => "`true` or `false`",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        other => other,
    };
    Some((
        format!("the {}", found.replace('`', "")),
        expected.to_owned(),
    ))
}

fn type_help(expected: &str, written: &str) -> String {
    if expected.starts_with("a list") && written.starts_with('"') {
        format!("put the value in brackets: `[{written}]`")
    } else if (expected.starts_with("a whole number") || expected.starts_with("an integer"))
        && written.starts_with('"')
    {
        format!(
            "write the number without quotes: `{}`",
            written.trim_matches('"')
        )
    } else if expected.starts_with("a string") {
        format!("quote the value: `\"{}\"`", written.trim_matches('"'))
    } else {
        "see docs/plan-format.md for the type of each key".to_owned()
    }
}

fn syntax_help(message: &str, text: &str, offset: usize) -> String {
    if let Some((key, value)) = unquoted_value(text, offset) {
        format!(
            "addresses, ranges and versions are strings: quote the value, `{key} = \"{value}\"`"
        )
    } else if message.contains("duplicate key") {
        "each key may appear once in a table; remove or rename the second one".to_owned()
    } else {
        "see https://toml.io: strings need double quotes, tables `[name]`, lists of tables `[[name]]`".to_owned()
    }
}

/// `key = 10.0.0.0/16` on the line at `offset`: a value that should have been quoted.
fn unquoted_value(text: &str, offset: usize) -> Option<(&str, &str)> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let (key, value) = line.split_once('=')?;
    let value = value.split('#').next()?.trim();
    let looks_like_address = value.chars().any(|c| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | '/' | ':' | '-'));
    looks_like_address.then_some((key.trim(), value))
}

/// The key whose value starts at `offset`, read back from the text (`key = ` before it on the
/// same line), so type errors can name it.
/// The keys whose value is a list of inline tables, with an example of each as the plan
/// format documents it: a mis-shaped one is shown the shape, not a list of strings.
fn list_of_tables_example(key: &str) -> Option<&'static str> {
    match key {
        "failover" => Some(r#"failover = [{ from = "us-east", to = "us-west" }]"#),
        _ => None,
    }
}

/// The key assigned on the line that holds `offset` (`failover` for a value inside
/// `failover = [ ... ]` on one line).
fn line_key(text: &str, offset: usize) -> Option<String> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..offset)?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    plain.then(|| key.to_owned())
}

fn key_before(text: &str, offset: usize) -> Option<String> {
    let line = text.get(..offset)?.rsplit('\n').next()?;
    let before = line.trim_end().strip_suffix('=')?.trim_end();
    let key: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

fn choice_help(given: &str, rest: &str, what: &str) -> String {
    let choices = expected_choices(rest);
    let listed = choices
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match suggest::nearest(given, choices.iter().map(String::as_str)) {
        Some(best) => format!("did you mean `{best}`? {what}: {listed}"),
        None if choices.is_empty() => "remove it; this table takes no keys".to_owned(),
        None => format!("{what}: {listed}"),
    }
}

/// The backquoted words after "expected" in a serde message.
fn expected_choices(rest: &str) -> Vec<String> {
    let Some((_, expected)) = rest.split_once("expected") else {
        return Vec::new();
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn first_quoted(text: &str) -> Option<String> {
    text.split('`').nth(1).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> PlanError {
        match parse(&Source::new("t.toml", text)) {
            Ok(_) => panic!("expected a parse error"),
            Err(err) => err,
        }
    }

    fn service_with(line: &str) -> String {
        format!(
            "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"1.24.0\"\n[[service]]\nname = \"a\"\nnamespace = \"n\"\n{line}\n"
        )
    }

    fn type_error(text: &str) -> (String, String) {
        match parse_err(text) {
            PlanError::InvalidType {
                subject,
                problem,
                help,
                ..
            } => (format!("{subject} {problem}"), help),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_quoted_port_is_asked_for_as_an_integer_without_quotes() {
        let (message, help) = type_error(&service_with("port = \"8080\""));
        assert_eq!(
            message,
            "`port` must be an integer, without quotes, not the string \"8080\""
        );
        assert_eq!(help, "write the number without quotes: `8080`");
    }

    #[test]
    fn a_mis_shaped_failover_is_shown_a_list_of_tables() {
        let example = r#"write it as a list of inline tables: `failover = [{ from = "us-east", to = "us-west" }]`"#;
        for (line, said) in [
            (
                r#"failover = ["us-east", "us-west"]"#,
                "each entry of `failover` must be a table, not the string \"us-east\"",
            ),
            (
                r#"failover = { from = "us-east", to = "us-west" }"#,
                "`failover` must be a list of tables, not the map",
            ),
            (
                r#"failover = "us-east""#,
                "`failover` must be a list of tables, not the string \"us-east\"",
            ),
        ] {
            let (message, help) = type_error(&service_with(line));
            assert_eq!(message, said, "{line}");
            assert_eq!(help, example, "{line}");
        }
    }

    #[test]
    fn unknown_key_suggests_the_nearest_known_key() {
        let err = parse_err("[mesh]\nid = \"m\"\n[mesh.istio]\nvesion = \"1.24.0\"\n");
        match err {
            PlanError::UnknownKey { key, help, .. } => {
                assert_eq!(key, "vesion");
                assert!(help.starts_with("did you mean `version`?"), "{help}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_enum_value_suggests_the_nearest_value() {
        let text =
            "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"1.24.0\"\ninstaller = \"helmm\"\n";
        match parse_err(text) {
            PlanError::InvalidValue { value, help, .. } => {
                assert_eq!(value, "helmm");
                assert!(help.starts_with("did you mean `helm`?"), "{help}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
