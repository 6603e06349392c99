//! Stage 1: `&Source` → `raw::Plan`. TOML syntax and shape (types, missing and unknown keys).
//!
//! The first problem stops parsing: later stages need a complete `raw::Plan`. Diagnostics here
//! form the `plan` family.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use crate::{raw, source::Source, suggest};

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
    #[diagnostic(
        code(meshplan::plan::syntax),
        help(
            "see https://toml.io for the syntax; strings need double quotes, tables `[name]`, lists of tables `[[name]]`"
        )
    )]
    Syntax {
        /// What the TOML parser said.
        message: String,
        #[label("here")]
        at: SourceSpan,
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
        #[label("this table needs `{key}`")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    /// A value of the wrong TOML type.
    #[error("wrong type: {message}")]
    #[diagnostic(
        code(meshplan::plan::invalid_type),
        help(
            "see docs/plan-format.md for the type of each key (strings are quoted, lists use [ ], booleans are true/false)"
        )
    )]
    InvalidType {
        /// What serde said, e.g. "invalid type: integer `5`, expected a string".
        message: String,
        #[label("wrong type")]
        at: SourceSpan,
    },

    /// A value outside a fixed set of choices.
    #[error("`{value}` is not one of the allowed values")]
    #[diagnostic(code(meshplan::plan::invalid_value))]
    InvalidValue {
        /// The value as written.
        value: String,
        #[label("not allowed here")]
        at: SourceSpan,
        #[help]
        help: String,
    },
}

/// Parses the plan text into its raw mirror.
pub fn parse(source: &Source) -> Result<raw::Plan, PlanError> {
    toml::from_str(&source.text).map_err(|err| classify(&err))
}

/// Maps a TOML/serde error to one of our codes. serde formats its data-model errors in a fixed
/// way ("unknown field `x`, expected one of ..."), which is what lets us name the key and offer
/// the nearest allowed one.
fn classify(err: &toml::de::Error) -> PlanError {
    let message = err.message().to_owned();
    let at: SourceSpan = err.span().unwrap_or(0..0).into();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let key = first_quoted(rest).unwrap_or_default();
        let help = choice_help(&key, rest, "keys allowed in this table");
        PlanError::UnknownKey { key, at, help }
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let value = first_quoted(rest).unwrap_or_default();
        let help = choice_help(&value, rest, "allowed values");
        PlanError::InvalidValue { value, at, help }
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        let key = first_quoted(rest).unwrap_or_default();
        let help = format!("add `{key} = ...` to this table (see docs/plan-format.md)");
        PlanError::MissingKey { key, at, help }
    } else if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        PlanError::InvalidType { message, at }
    } else {
        PlanError::Syntax { message, at }
    }
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
